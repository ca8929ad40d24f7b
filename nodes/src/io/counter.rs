//! ComfyUI's numbered output names: `<prefix>_00001_.png`, `<prefix>_00002_.png`, …
//!
//! Like ComfyUI we start after the highest counter already present for the prefix, so numbering
//! continues across runs. Unlike ComfyUI we never trust the scan alone: each name is claimed with
//! an atomic no-clobber create, and a taken name moves on to the next counter.

use std::path::{Path, PathBuf};

use super::atomic::write_new_file_atomically;

/// Gives up after this many taken names in a row (something else is racing us hard).
const MAX_ATTEMPTS: u32 = 10_000;

/// The file name for `stem` and `counter`, in ComfyUI's format.
pub fn numbered_name(stem: &str, counter: u32, extension: &str) -> String {
    format!("{stem}_{counter:05}_.{extension}")
}

/// The counter following the highest `<stem>_<digits>_…` file in `dir` (1 when there is none or
/// the directory does not exist yet).
pub fn next_counter(dir: &Path, stem: &str) -> u32 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 1;
    };
    let highest = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| counter_of(&name, stem))
        .max()
        .unwrap_or(0);
    highest.saturating_add(1)
}

/// The counter in `name` if it is `<stem>_<digits>_<anything>`.
fn counter_of(name: &str, stem: &str) -> Option<u32> {
    let rest = name.strip_prefix(stem)?.strip_prefix('_')?;
    let (digits, _) = rest.split_once('_')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Writes `bytes` to the next free `<stem>_NNNNN_.<extension>` in `dir` (created if needed) and
/// returns the path written. Never overwrites an existing file.
pub fn write_numbered(
    dir: &Path,
    stem: &str,
    extension: &str,
    bytes: &[u8],
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let mut counter = next_counter(dir, stem);
    for _ in 0..MAX_ATTEMPTS {
        let path = dir.join(numbered_name(stem, counter, extension));
        match write_new_file_atomically(&path, bytes) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => counter += 1,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!(
            "no free file name for prefix '{stem}' in {} after {MAX_ATTEMPTS} attempts",
            dir.display()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_parsing_follows_comfyui() {
        assert_eq!(counter_of("cat_00007_.png", "cat"), Some(7));
        assert_eq!(counter_of("cat_12_.webp", "cat"), Some(12));
        assert_eq!(counter_of("cat_x_.png", "cat"), None);
        assert_eq!(counter_of("catalog_00003_.png", "cat"), None);
        assert_eq!(counter_of("cat_00003.png", "cat"), None);
    }

    #[test]
    fn numbering_continues_after_the_highest_and_never_overwrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(next_counter(dir.path(), "cat"), 1);
        std::fs::write(dir.path().join("cat_00004_.png"), b"old").expect("seed");
        let written = write_numbered(dir.path(), "cat", "png", b"new").expect("write");
        assert_eq!(written, dir.path().join("cat_00005_.png"));
        // A file squatting on the next name is skipped, not overwritten.
        std::fs::write(dir.path().join("cat_00006_.png"), b"squatter").expect("seed");
        std::fs::remove_file(dir.path().join("cat_00004_.png")).expect("rm");
        let written = write_numbered(dir.path(), "cat", "png", b"newer").expect("write");
        assert_eq!(written, dir.path().join("cat_00007_.png"));
        assert_eq!(
            std::fs::read(dir.path().join("cat_00006_.png")).expect("read"),
            b"squatter"
        );
    }
}
