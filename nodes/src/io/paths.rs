//! Resolving user-supplied names against the input/output/temp directories without escaping them.
//!
//! Graph files come from anywhere (shared workflows, a web UI later), so a name like
//! `../../etc/passwd` or `/etc/passwd` must not reach outside the directory it is meant for.
//! Rule: names are relative paths made of normal components only (no `..`, no root, no drive).
//! Absolute input paths are accepted only when the caller explicitly allows them (the CLI's
//! `--allow-absolute-paths`). Symlinks placed inside the directories by their owner are followed.

use std::path::{Component, Path, PathBuf};

/// Which of the three standard directories a name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirKind {
    /// The input directory (LoadImage's files).
    Input,
    /// The output directory (SaveImage).
    Output,
    /// The temp directory (PreviewImage).
    Temp,
}

impl DirKind {
    /// The name ComfyUI uses for this directory in `type` fields and annotations.
    pub fn as_str(self) -> &'static str {
        match self {
            DirKind::Input => "input",
            DirKind::Output => "output",
            DirKind::Temp => "temp",
        }
    }
}

/// A name that would leave its directory, or is otherwise unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The name contains `..`, a root or a drive prefix.
    #[error("path '{0}' escapes its directory (use a relative path without '..')")]
    Escapes(String),
    /// The name is empty or names a directory, not a file.
    #[error("path '{0}' does not name a file")]
    NotAFile(String),
}

/// Splits ComfyUI's optional annotation suffix: `"cat.png [output]"` → (`"cat.png"`, Output).
/// Without a suffix the default directory is used.
pub fn split_annotation(name: &str, default: DirKind) -> (&str, DirKind) {
    for kind in [DirKind::Input, DirKind::Output, DirKind::Temp] {
        let suffix = format!(" [{}]", kind.as_str());
        if let Some(stripped) = name.strip_suffix(&suffix) {
            return (stripped, kind);
        }
    }
    (name, default)
}

/// Checks that `name` is a relative path of normal components and returns it cleaned
/// (`./a//b.png` → `a/b.png`).
pub fn relative_inside(name: &str) -> Result<PathBuf, PathError> {
    let mut clean = PathBuf::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(PathError::Escapes(name.to_string()))
            }
        }
    }
    if clean.as_os_str().is_empty() || name.ends_with('/') {
        return Err(PathError::NotAFile(name.to_string()));
    }
    Ok(clean)
}

/// Resolves a file name given to a loader node against `base`. Absolute paths are returned as
/// they are when `allow_absolute` is set, and refused otherwise.
pub fn resolve_in_dir(base: &Path, name: &str, allow_absolute: bool) -> Result<PathBuf, PathError> {
    if allow_absolute && Path::new(name).is_absolute() {
        return Ok(PathBuf::from(name));
    }
    Ok(base.join(relative_inside(name)?))
}

/// Splits a `filename_prefix` such as `"portraits/cat"` into its subfolder (`"portraits"`) and
/// file stem prefix (`"cat"`), refusing escapes.
pub fn split_filename_prefix(prefix: &str) -> Result<(PathBuf, String), PathError> {
    let clean = relative_inside(prefix)?;
    let stem = clean
        .file_name()
        .and_then(|s| s.to_str())
        .ok_or_else(|| PathError::NotAFile(prefix.to_string()))?
        .to_string();
    let subfolder = clean.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((subfolder, stem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_refused() {
        for bad in ["../x.png", "a/../../x.png", "/etc/passwd", "a/..", ".."] {
            assert!(
                matches!(relative_inside(bad), Err(PathError::Escapes(_))),
                "{bad} should be refused"
            );
        }
    }

    #[test]
    fn normal_names_are_cleaned() {
        assert_eq!(relative_inside("./a//b.png"), Ok(PathBuf::from("a/b.png")));
        assert!(matches!(relative_inside(""), Err(PathError::NotAFile(_))));
        assert!(matches!(
            relative_inside("dir/"),
            Err(PathError::NotAFile(_))
        ));
    }

    #[test]
    fn absolute_paths_only_when_allowed() {
        let base = Path::new("in");
        assert!(resolve_in_dir(base, "/tmp/x.png", false).is_err());
        assert_eq!(
            resolve_in_dir(base, "/tmp/x.png", true),
            Ok(PathBuf::from("/tmp/x.png"))
        );
        assert_eq!(
            resolve_in_dir(base, "sub/x.png", false),
            Ok(PathBuf::from("in/sub/x.png"))
        );
    }

    #[test]
    fn annotation_picks_the_directory() {
        assert_eq!(
            split_annotation("a.png [output]", DirKind::Input),
            ("a.png", DirKind::Output)
        );
        assert_eq!(
            split_annotation("a.png", DirKind::Input),
            ("a.png", DirKind::Input)
        );
    }

    #[test]
    fn prefix_splits_into_subfolder_and_stem() {
        assert_eq!(
            split_filename_prefix("portraits/cat"),
            Ok((PathBuf::from("portraits"), "cat".to_string()))
        );
        assert_eq!(
            split_filename_prefix("cat"),
            Ok((PathBuf::new(), "cat".to_string()))
        );
        assert!(split_filename_prefix("../cat").is_err());
    }
}
