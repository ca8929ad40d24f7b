//! Integration point for WebAssembly plugin nodes (`--plugins DIR`).
//!
//! INTEGRATION POINT: the `omnigen-plugins` crate (plugins/host) loads `*.wasm` components and
//! registers their nodes. Until it is wired in here, `--plugins` is refused with a clear message
//! rather than silently ignored.

use std::path::PathBuf;

use anyhow::bail;
use omnigen_engine::Registry;

/// Registers the plugin nodes found in `dirs` (none when `dirs` is empty).
pub fn register(_registry: &Registry, dirs: &[PathBuf]) -> anyhow::Result<()> {
    if let Some(dir) = dirs.first() {
        bail!(
            "--plugins {}: plugin support is not available in this build yet",
            dir.display()
        );
    }
    Ok(())
}
