//! The one function every route uses to turn a client's `subfolder` + `filename` into a path inside one
//! of the server's folders. ComfyUI's traversal CVEs came from checks applied in some routes and not
//! others; here there is no other way to reach a user file.

use std::path::{Component, Path, PathBuf};

/// Why a client-supplied path was refused.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// A component is not a plain name (`..`, `.`, empty, absolute, a drive prefix …).
    #[error("path component {0:?} is not allowed: use plain relative names")]
    BadComponent(String),
    /// A character that has no business in a file name here (backslash, NUL, `%`, `:`).
    #[error("path {0:?} contains a forbidden character (backslash, NUL, '%' or ':')")]
    BadCharacter(String),
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
    if part.chars().any(|c| matches!(c, '\\' | '\0' | '%' | ':')) {
        return Err(PathError::BadCharacter(part.to_string()));
    }
    let mut components = Path::new(part).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(_)), None) => Ok(part),
        _ => Err(PathError::BadComponent(part.to_string())),
    }
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
        let cases = [
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
    fn base_name_drops_folders() {
        assert_eq!(base_name("../../x.png"), "x.png");
        assert_eq!(base_name("a\\b\\c.png"), "c.png");
        assert_eq!(base_name("c.png"), "c.png");
    }
}
