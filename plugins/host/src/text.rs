//! Text a plugin supplies (log lines, failure messages, names, descriptions) made safe to print:
//! bounded in size and free of control characters, before it reaches an event, a log or an error.
//!
//! A plugin's string may be megabytes long and may carry terminal escape sequences (set the window
//! title, clear the screen, fake a success line) or bidirectional overrides that reorder what a
//! reader sees. Every such character is replaced by a visible escape (`\u{1b}`), and the text is
//! cut at a character boundary, with `…` marking the cut. The result is a fresh, right-sized
//! string: nothing of the plugin's (possibly huge) allocation is kept.

/// Longest failure message a plugin may report, in bytes; longer ones are cut.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Longest name (node id, port, import) quoted in an error, in bytes; longer ones are cut.
pub const MAX_NAME_BYTES: usize = 128;

/// Whether `c` must not reach a terminal as is: C0 and C1 controls (ESC, CSI, BEL, …), DEL, and the
/// bidirectional formatting characters.
fn is_unsafe(c: char, keep_newlines: bool) -> bool {
    match c {
        '\n' | '\t' => !keep_newlines,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' => true,
        c => c.is_control(),
    }
}

fn clean_to(text: &str, max_bytes: usize, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len().min(max_bytes) + '…'.len_utf8());
    for c in text.chars() {
        let start = out.len();
        if is_unsafe(c, keep_newlines) {
            use std::fmt::Write;
            let _ = write!(out, "{}", c.escape_unicode());
        } else {
            out.push(c);
        }
        if out.len() > max_bytes {
            out.truncate(start);
            out.push('…');
            break;
        }
    }
    out.shrink_to_fit();
    out
}

/// Whether `text` holds a character [`one_line`] would escape (control, bidi, newline).
pub fn needs_escaping(text: &str) -> bool {
    text.chars().any(|c| is_unsafe(c, false))
}

/// `text` on one line: control characters (newlines included) escaped, at most `max_bytes` bytes
/// (plus the `…` that marks a cut).
pub fn one_line(text: &str, max_bytes: usize) -> String {
    clean_to(text, max_bytes, false)
}

/// `text` with newlines and tabs kept, every other control character escaped, at most
/// `max_bytes` bytes (plus the `…` that marks a cut).
pub fn multi_line(text: &str, max_bytes: usize) -> String {
    clean_to(text, max_bytes, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_made_visible() {
        let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[2J\rdone \u{9b}31m \u{202e}txt.exe";
        let clean = one_line(hostile, 1000);
        assert!(!clean.chars().any(|c| c.is_control()), "{clean:?}");
        assert_eq!(
            clean,
            "\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{d}done \\u{9b}31m \\u{202e}txt.exe"
        );
        assert_eq!(multi_line("a\nb\tc\u{1b}", 100), "a\nb\tc\\u{1b}");
        assert_eq!(one_line("a\nb", 100), "a\\u{a}b");
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary_into_a_small_string() {
        let huge = "é".repeat(1 << 20);
        let cut = one_line(&huge, 5);
        assert_eq!(cut, "éé…");
        assert!(cut.capacity() <= 16);
        assert_eq!(one_line("short", 10), "short");
        // An escape is never cut in half.
        assert_eq!(one_line("ab\u{1b}", 4), "ab…");
    }
}
