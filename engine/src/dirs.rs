//! The folders a run reads from and writes to (ComfyUI's input, output and temp directories).

use std::path::PathBuf;

/// Folders a node may read from and write to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dirs {
    /// Where inputs (uploaded images …) live.
    pub input: PathBuf,
    /// Where output nodes save results.
    pub output: PathBuf,
    /// Where previews and scratch files go.
    pub temp: PathBuf,
}

impl Dirs {
    /// The names of the input folder's files whose extension is one of `extensions` (lower-case, no
    /// dot), sorted: what a combo of input files offers (ComfyUI lists `LoadImage`'s the same way, the
    /// folder's top level only). Hidden files (a `.` first, such as an upload's temporary file) and names
    /// that are not UTF-8 are left out; a missing folder lists nothing.
    pub fn input_files(&self, extensions: &[String]) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.input) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.') && has_extension(name, extensions))
            .collect();
        names.sort();
        names
    }
}

fn has_extension(name: &str, extensions: &[String]) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| extensions.iter().any(|e| e.eq_ignore_ascii_case(ext)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_files_lists_matching_top_level_files_sorted() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["b.PNG", "a.jpg", "notes.txt", ".upload.tmp.png"] {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        std::fs::create_dir(dir.path().join("sub.png")).expect("mkdir");
        let dirs = Dirs {
            input: dir.path().to_path_buf(),
            ..Dirs::default()
        };
        let exts = ["png".to_string(), "jpg".to_string()];
        assert_eq!(dirs.input_files(&exts), ["a.jpg", "b.PNG"]);
        let missing = Dirs {
            input: dir.path().join("nope"),
            ..Dirs::default()
        };
        assert!(missing.input_files(&exts).is_empty());
    }
}
