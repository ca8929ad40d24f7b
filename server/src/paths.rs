//! The one function every route uses to turn a client's `subfolder` + `filename` into a path inside one
//! of the server's folders. ComfyUI's traversal CVEs came from checks applied in some routes and not
//! others; here there is no other way to reach a user file.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The longest file or folder name accepted, in bytes (what Linux, macOS and Windows file systems hold).
pub const MAX_NAME_BYTES: usize = 255;

/// Why a client-supplied path was refused.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// A component is not a plain name (`..`, `.`, empty, absolute, a drive prefix …).
    #[error("path component {0:?} is not allowed: use plain relative names")]
    BadComponent(String),
    /// A character that has no business in a file name here (backslash, NUL or another control
    /// character, `%`, `:`).
    #[error(
        "path {0:?} contains a forbidden character (backslash, control character, '%' or ':')"
    )]
    BadCharacter(String),
    /// A name longer than file systems allow (checked here, so it is the client's error, not an I/O
    /// failure of the server).
    #[error("path component of {0} bytes is too long (at most {MAX_NAME_BYTES})")]
    TooLong(usize),
    /// The path resolves (through a symlink) outside the folder.
    #[error("path {0:?} resolves outside its folder")]
    Escapes(String),
    /// No such file.
    #[error("file {0:?} not found")]
    NotFound(String),
    /// The folder itself could not be read or created.
    #[error("{0}")]
    Io(String),
}

/// Whether the resolved file must already exist (reading) or only its folder (writing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The file must exist.
    Read,
    /// The file may be new; missing subfolders are created.
    Write,
}

/// Resolves `subfolder/filename` under `root`, refusing anything but plain relative components, and
/// checking after symlinks are resolved that the result is still inside `root`.
pub fn resolve(
    root: &Path,
    subfolder: &str,
    filename: &str,
    access: Access,
) -> Result<PathBuf, PathError> {
    if subfolder.starts_with('/') {
        return Err(PathError::BadComponent(subfolder.to_string()));
    }
    let folders = subfolder
        .split('/')
        .filter(|p| !p.is_empty())
        .map(plain_component)
        .collect::<Result<Vec<_>, _>>()?;
    let name = plain_component(filename)?;
    let shown = folders
        .iter()
        .chain(std::iter::once(&name))
        .copied()
        .collect::<Vec<_>>()
        .join("/");

    let root = root
        .canonicalize()
        .map_err(|e| PathError::Io(format!("folder {}: {e}", root.display())))?;
    let inside = |p: PathBuf| {
        if p.starts_with(&root) {
            Ok(p)
        } else {
            Err(PathError::Escapes(shown.clone()))
        }
    };
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => PathError::NotFound(shown.clone()),
        _ => PathError::Io(format!("{shown}: {e}")),
    };
    // Walk down one folder at a time, resolving symlinks at each step, so that nothing is created (and
    // nothing is read) outside the root even when a subfolder is a link pointing out.
    let mut dir = root.clone();
    for folder in folders {
        let next = dir.join(folder);
        if access == Access::Write && std::fs::symlink_metadata(&next).is_err() {
            std::fs::create_dir(&next).map_err(io)?;
        }
        dir = inside(next.canonicalize().map_err(io)?)?;
    }
    let target = dir.join(name);
    match access {
        Access::Read => inside(target.canonicalize().map_err(io)?),
        Access::Write => match std::fs::symlink_metadata(&target) {
            // An existing link at the target would redirect the write: it must stay inside too.
            Ok(meta) if meta.file_type().is_symlink() => inside(
                target
                    .canonicalize()
                    .map_err(|_| PathError::Escapes(shown.clone()))?,
            ),
            _ => Ok(target),
        },
    }
}

/// One component as the client wrote it: accepted only if it is a plain name.
fn plain_component(part: &str) -> Result<&str, PathError> {
    if part.len() > MAX_NAME_BYTES {
        return Err(PathError::TooLong(part.len()));
    }
    if part
        .chars()
        .any(|c| c.is_control() || matches!(c, '\\' | '%' | ':'))
    {
        return Err(PathError::BadCharacter(part.to_string()));
    }
    let mut components = Path::new(part).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(_)), None) => Ok(part),
        _ => Err(PathError::BadComponent(part.to_string())),
    }
}

/// Writes `bytes` to `path` (resolved by [`resolve`]) so that no reader and no crash ever sees a
/// half-written file: the bytes go to a hidden temporary file in the same folder, are flushed, and the
/// file is renamed over `path`. A rename replaces a symlink at `path` rather than writing through it.
/// A crash can leave only a `.omnigen-write-*.tmp` file behind, never a truncated `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(
        ".omnigen-write-{}-{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// The base name of an uploaded file (what comes after the last `/` or `\`), as ComfyUI keeps it.
pub fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_resolve_inside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.png"), b"x").unwrap();
        let p = resolve(dir.path(), "sub", "a.png", Access::Read).unwrap();
        assert!(p.ends_with("sub/a.png"));
        let p = resolve(dir.path(), "new/deeper", "b.png", Access::Write).unwrap();
        assert!(p.ends_with("new/deeper/b.png"));
        assert!(dir.path().join("new/deeper").is_dir());
    }

    #[test]
    fn traversal_variants_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let long = "a".repeat(MAX_NAME_BYTES + 1);
        let cases: [(&str, &str); 17] = [
            ("", ".."),
            ("..", "a.png"),
            ("a/../..", "a.png"),
            ("", "/etc/passwd"),
            ("/etc", "passwd"),
            ("", "..\\a.png"),
            ("", "C:\\a.png"),
            ("C:", "a.png"),
            ("", "a\0.png"),
            ("", "%2e%2e"),
            ("%2e%2e", "a.png"),
            ("", "."),
            ("", ""),
            ("", "a\n.png"),
            ("a\u{1b}b", "a.png"),
            ("", &long),
            (&long, "a.png"),
        ];
        for (sub, name) in cases {
            for access in [Access::Read, Access::Write] {
                let err = resolve(dir.path(), sub, name, access).unwrap_err();
                assert!(
                    !matches!(err, PathError::NotFound(_) | PathError::Io(_)),
                    "{sub:?}/{name:?}: {err}"
                );
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), b"s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.txt"),
            dir.path().join("file.txt"),
        )
        .unwrap();
        for (sub, name) in [("link", "secret.txt"), ("", "file.txt")] {
            for access in [Access::Read, Access::Write] {
                assert!(matches!(
                    resolve(dir.path(), sub, name, access),
                    Err(PathError::Escapes(_))
                ));
            }
        }
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        #[cfg(unix)]
        {
            let outside = tempfile::tempdir().unwrap();
            let secret = outside.path().join("secret");
            std::fs::write(&secret, b"keep").unwrap();
            std::os::unix::fs::symlink(&secret, dir.path().join("link.png")).unwrap();
            write_atomically(&dir.path().join("link.png"), b"new").unwrap();
            assert_eq!(std::fs::read(&secret).unwrap(), b"keep");
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn base_name_drops_folders() {
        assert_eq!(base_name("../../x.png"), "x.png");
        assert_eq!(base_name("a\\b\\c.png"), "c.png");
        assert_eq!(base_name("c.png"), "c.png");
    }
}
