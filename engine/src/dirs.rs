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
