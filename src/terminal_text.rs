//! Making text from nodes and plugins safe to print on a terminal.
//!
//! Error messages, node ids, class names, output names and log lines can come from a community plugin
//! or a graph file. Printed raw, an escape sequence could set the window title, clear the screen or draw
//! a fake success line, and a 64 MiB message would flood the log. Everything the CLI prints that it did
//! not write itself goes through [`escape`] (via [`text`] or [`field`]).

use std::fmt::Write as _;

/// Most bytes one printed message may take (after escaping); the rest is cut with a note.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// A multi-line message (error text, traceback, validation report): newlines are kept, every other
/// control character is escaped, and the result is bounded by [`MAX_MESSAGE_BYTES`].
pub fn text(untrusted: &str) -> String {
    escape(untrusted, Newlines::Keep, MAX_MESSAGE_BYTES)
}

/// A value printed inside a line (node id, class name, output name, file name): like [`text`], but a
/// newline is escaped too, so the value cannot start a line of its own.
pub fn field(untrusted: &str) -> String {
    escape(untrusted, Newlines::Escape, MAX_MESSAGE_BYTES)
}

/// Whether [`escape`] keeps `\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Newlines {
    /// Multi-line text: `\n` stays a line break.
    Keep,
    /// One line: `\n` is written as `\n`.
    Escape,
}

/// The one rule: C0 controls (including ESC, CR, tab, backspace), DEL, C1 controls and the Unicode
/// bidirectional overrides (which reorder what a reader sees) are written as visible escapes (`\r`,
/// `\t`, `\u{1b}`, …); `\n` is kept or escaped as asked. Output beyond `limit` bytes is cut at a
/// character boundary and `... (N bytes cut)` appended, N counting the bytes of `untrusted` left out.
pub fn escape(untrusted: &str, newlines: Newlines, limit: usize) -> String {
    let mut out = String::with_capacity(untrusted.len().min(limit) + 16);
    for (at, c) in untrusted.char_indices() {
        let before = out.len();
        match c {
            '\n' if newlines == Newlines::Keep => out.push('\n'),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
        if out.len() > limit {
            out.truncate(before);
            let _ = write!(out, "... ({} bytes cut)", untrusted.len() - at);
            break;
        }
    }
    out
}

fn is_unsafe(c: char) -> bool {
    c.is_control() // C0, DEL and C1
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(
            text("node 3 (KSampler) failed: ümlaut ✓"),
            "node 3 (KSampler) failed: ümlaut ✓"
        );
        assert_eq!(text("two\nlines"), "two\nlines");
    }

    #[test]
    fn terminal_controls_are_made_visible() {
        // Set the window title, clear the screen, return to column 0 and print a fake success line.
        let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[2J\rdone: 0 failed\u{9b}31m\u{8}\u{7f}\u{202e}";
        let shown = text(hostile);
        assert_eq!(
            shown,
            "\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\rdone: 0 failed\\u{9b}31m\\u{8}\\u{7f}\\u{202e}"
        );
        assert!(!shown.chars().any(|c| c.is_control()), "{shown}");
        assert_eq!(text("a\tb"), "a\\tb");
    }

    #[test]
    fn fields_stay_on_one_line() {
        assert_eq!(field("3\ndone: ok"), "3\\ndone: ok");
        assert_eq!(text("3\ndone: ok"), "3\ndone: ok");
    }

    #[test]
    fn long_messages_are_cut_with_a_note() {
        let huge = "x".repeat(1 << 20);
        let shown = text(&huge);
        let cut = (1 << 20) - MAX_MESSAGE_BYTES;
        assert_eq!(
            shown,
            format!("{}... ({cut} bytes cut)", "x".repeat(MAX_MESSAGE_BYTES))
        );
        // Escapes count towards the bound, and a cut never splits a character or an escape.
        let shown = escape("é\u{1b}é", Newlines::Keep, 4);
        assert_eq!(shown, "é... (3 bytes cut)");
        assert_eq!(escape("abc", Newlines::Keep, 3), "abc");
    }
}
