//! The typed record of files an output node saved.
//!
//! Output nodes (e.g. `SaveImage`) report what they wrote as [`SavedFile`]s. The UI JSON sent in the
//! `executed` event (ComfyUI's `{"images":[{"filename","subfolder","type"}]}`) is rendered from that
//! record by [`NodeOutput::saved`](crate::NodeOutput::saved), and hosts read the record itself from
//! [`RunReport::saved_files`](crate::RunReport::saved_files) instead of parsing the UI JSON back.

use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};

use crate::dirs::Dirs;

/// Which folder a saved file lives in (ComfyUI's `type` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SavedKind {
    /// The output folder (`SaveImage`, `SaveLatent`).
    Output,
    /// The temp folder (`PreviewImage`).
    Temp,
}

impl SavedKind {
    /// The name ComfyUI uses in `type` fields: `"output"` or `"temp"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SavedKind::Output => "output",
            SavedKind::Temp => "temp",
        }
    }

    /// The folder of `dirs` this kind names.
    pub fn folder(self, dirs: &Dirs) -> &Path {
        match self {
            SavedKind::Output => &dirs.output,
            SavedKind::Temp => &dirs.temp,
        }
    }
}

/// One file an output node wrote.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SavedFile {
    /// The file name, without folders (e.g. `cat_00001_.png`).
    pub filename: String,
    /// Folders below the kind's folder, joined with `/` (empty for none), as ComfyUI reports them.
    pub subfolder: String,
    /// Which folder it is in.
    pub kind: SavedKind,
}

impl SavedFile {
    /// The record of `path`, written into `subfolder` (relative) of the `kind` folder.
    pub fn new(path: &Path, subfolder: &Path, kind: SavedKind) -> Self {
        let subfolder = subfolder
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        SavedFile {
            filename: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            subfolder,
            kind,
        }
    }

    /// ComfyUI's UI entry: `{"filename", "subfolder", "type"}`.
    pub fn to_json(&self) -> Json {
        json!({
            "filename": self.filename,
            "subfolder": self.subfolder,
            "type": self.kind.as_str(),
        })
    }

    /// Where the file is, resolved against the folders the run used.
    pub fn path_in(&self, dirs: &Dirs) -> PathBuf {
        let mut path = self.kind.folder(dirs).to_path_buf();
        for part in self.subfolder.split('/').filter(|p| !p.is_empty()) {
            path.push(part);
        }
        path.push(&self.filename);
        path
    }
}

/// The UI JSON listing `files` under `key` (`"images"`, `"latents"`): `{key: [{filename, subfolder, type}]}`.
pub fn ui_listing(key: &str, files: &[SavedFile]) -> Json {
    let entries: Vec<Json> = files.iter().map(SavedFile::to_json).collect();
    let mut ui = serde_json::Map::new();
    ui.insert(key.to_string(), Json::Array(entries));
    Json::Object(ui)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_comfyui_entries_with_forward_slashes() {
        let file = SavedFile::new(
            Path::new("out/a/b/x_00001_.png"),
            Path::new("a/b"),
            SavedKind::Temp,
        );
        assert_eq!(
            ui_listing("images", std::slice::from_ref(&file)).to_string(),
            r#"{"images":[{"filename":"x_00001_.png","subfolder":"a/b","type":"temp"}]}"#
        );
    }

    #[test]
    fn resolves_against_the_kind_folder() {
        let dirs = Dirs {
            input: "in".into(),
            output: "out".into(),
            temp: "tmp".into(),
        };
        let file = SavedFile::new(Path::new("x.png"), Path::new(""), SavedKind::Output);
        assert_eq!(file.path_in(&dirs), Path::new("out/x.png"));
        let file = SavedFile::new(Path::new("y.png"), Path::new("a/b"), SavedKind::Temp);
        assert_eq!(file.path_in(&dirs), Path::new("tmp/a/b/y.png"));
    }
}
