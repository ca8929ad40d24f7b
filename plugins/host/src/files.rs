//! Reading the files of a plugin folder without trusting them: only regular files, only inside the
//! folder once symlinks are resolved, never more than a size limit, and never blocking on a FIFO
//! or a device (`"wasm": "/dev/zero"` or a named pipe must fail at once, not hang or fill memory).

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Longest manifest read; real ones are a few hundred bytes.
pub(crate) const MAX_MANIFEST_BYTES: u64 = 64 << 10;

/// Why a file was not read. Displays as a sentence about the file (the caller names the path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileRefusal {
    /// The OS could not resolve, stat or read it.
    Io(String),
    /// It resolves to a place outside the plugin folder.
    OutsideFolder(PathBuf),
    /// It is a FIFO, a device, a socket or a directory.
    NotRegular(&'static str),
    /// It is larger than allowed.
    TooLarge { size: u64, limit: u64 },
}

impl std::fmt::Display for FileRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileRefusal::Io(e) => write!(f, "{e}"),
            FileRefusal::OutsideFolder(target) => write!(
                f,
                "resolves to {}, outside the plugin folder; plugin files must lie inside it",
                target.display()
            ),
            FileRefusal::NotRegular(kind) => {
                write!(f, "is a {kind}, not a regular file; refusing to read it")
            }
            FileRefusal::TooLarge { size, limit } => write!(
                f,
                "is {size} bytes, more than the limit of {limit} bytes ({} MiB)",
                limit >> 20
            ),
        }
    }
}

fn kind_of(meta: &fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "named pipe (FIFO)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "device";
        }
        if t.is_socket() {
            return "socket";
        }
    }
    if meta.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

fn check_regular(meta: &fs::Metadata, limit: u64) -> Result<(), FileRefusal> {
    if !meta.is_file() {
        return Err(FileRefusal::NotRegular(kind_of(meta)));
    }
    if meta.len() > limit {
        return Err(FileRefusal::TooLarge {
            size: meta.len(),
            limit,
        });
    }
    Ok(())
}

/// Opens without blocking (a FIFO swapped in after the check would otherwise wait for a writer)
/// and without following a symlink swapped in after resolution.
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW);
    }
    options.open(path)
}

/// Reads the regular file at `path`, refusing special files and files over `limit` bytes before
/// reading a byte of them.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, FileRefusal> {
    let io = |e: std::io::Error| FileRefusal::Io(e.to_string());
    // `metadata` follows symlinks but never opens the target, so it cannot block.
    check_regular(&fs::metadata(path).map_err(io)?, limit)?;
    let resolved = fs::canonicalize(path).map_err(io)?;
    let file = open_nonblocking(&resolved).map_err(io)?;
    // Check again what was actually opened.
    let meta = file.metadata().map_err(io)?;
    check_regular(&meta, limit)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // One byte more than allowed tells a file that grew since the check.
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(FileRefusal::TooLarge {
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// Like [`read_bounded`] for a file that must lie inside `folder` once symlinks are resolved.
pub(crate) fn read_in_folder(
    folder: &Path,
    path: &Path,
    limit: u64,
) -> Result<Vec<u8>, FileRefusal> {
    let io = |e: std::io::Error| FileRefusal::Io(e.to_string());
    let folder = fs::canonicalize(folder).map_err(io)?;
    let resolved = fs::canonicalize(path).map_err(io)?;
    if !resolved.starts_with(&folder) {
        return Err(FileRefusal::OutsideFolder(resolved));
    }
    read_bounded(&resolved, limit)
}

/// The folder a manifest lives in (where its component must be).
pub(crate) fn folder_of(manifest_path: &Path) -> &Path {
    match manifest_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_inside_the_folder_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.wasm");
        fs::write(&file, b"abc").unwrap();
        assert_eq!(read_in_folder(dir.path(), &file, 3).unwrap(), b"abc");
        assert_eq!(
            read_in_folder(dir.path(), &file, 2).unwrap_err(),
            FileRefusal::TooLarge { size: 3, limit: 2 }
        );
    }

    #[cfg(unix)]
    #[test]
    fn devices_and_links_out_of_the_folder_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("zero.wasm");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(matches!(
            read_in_folder(dir.path(), &link, 1 << 20),
            Err(FileRefusal::OutsideFolder(_))
        ));
        assert_eq!(
            read_bounded(Path::new("/dev/zero"), 1 << 20).unwrap_err(),
            FileRefusal::NotRegular("device")
        );
        let msg = FileRefusal::NotRegular("device").to_string();
        assert!(msg.contains("not a regular file"), "{msg}");
    }
}
