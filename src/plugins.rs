//! Integration point for WebAssembly plugin nodes (`--plugins DIR`).
//!
//! INTEGRATION POINT: the `omnigen-plugins` crate (plugins/host) loads `*.plugin.json` manifests
//! and their `*.wasm` components and registers their nodes (`omnigen_plugins::register_dirs`,
//! whose `PluginHost` goes into [`LoadedPlugins`] to keep the nodes alive). Until it is wired in
//! here, `--plugins` is refused with a clear message rather than silently ignored.

use std::path::PathBuf;

use anyhow::bail;
use omnigen_engine::Registry;

/// Whatever keeps loaded plugin nodes working (nothing yet).
#[derive(Debug, Default)]
pub struct LoadedPlugins;

/// Registers the plugin nodes found in `dirs` (none when `dirs` is empty).
pub fn register(_registry: &Registry, dirs: &[PathBuf]) -> anyhow::Result<LoadedPlugins> {
    if let Some(dir) = dirs.first() {
        bail!(
            "--plugins {}: plugin support is not available in this build yet",
            dir.display()
        );
    }
    Ok(LoadedPlugins)
}
