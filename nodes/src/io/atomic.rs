//! Atomic, never-clobbering file creation.
//!
//! A reader (or a crash) must never see a half-written output, and two writers racing for the same
//! name must never overwrite each other. So the bytes go to a temporary file in the destination's
//! directory, are flushed to disk, and the file is then *linked* into place with no-replace
//! semantics (`persist_noclobber`): if the name is taken we get `AlreadyExists` and nothing changes.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically. Fails with [`std::io::ErrorKind::AlreadyExists`] if
/// `path` exists; the existing file is left untouched. The parent directory must exist.
pub fn write_new_file_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".omnigen-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist_noclobber(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.png");
        write_new_file_atomically(&path, b"first").expect("first write");
        let err = write_new_file_atomically(&path, b"second").expect_err("must not clobber");
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).expect("read"), b"first");
        // No temporary files are left behind after either outcome.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.png")]);
    }
}
