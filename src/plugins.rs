//! WebAssembly plugin nodes (`--plugins DIR`, and `./plugins` when it holds manifests).
//!
//! Loading, sandboxing and reloading live in the `omnigen-plugins` crate; this module only picks the
//! folders, prints what failed to load, and keeps the host alive for as long as the command runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::terminal_text;
use anyhow::Context;
use omnigen_engine::Registry;
use omnigen_plugins::{
    class_type, find_manifests, register_dirs, PluginConfig, PluginHost, PluginWatcher,
    ReloadReport,
};
use omnigen_server::{PluginBuild, PluginList};

/// The folder searched when no `--plugins` flag is given (used only if it holds `*.plugin.json` files).
pub const DEFAULT_PLUGIN_DIR: &str = "plugins";

/// Keeps loaded plugin nodes callable (their compiled components live in the host).
#[derive(Default)]
pub struct LoadedPlugins {
    host: Option<Arc<PluginHost>>,
    watcher: Option<PluginWatcher>,
}

impl std::fmt::Debug for LoadedPlugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugins")
            .field("plugins", &self.host.as_ref().map(|h| h.plugin_names()))
            .field("watching", &self.watcher.is_some())
            .finish()
    }
}

impl LoadedPlugins {
    /// The loaded plugin builds (name, version, sha256, node types), read afresh each time (plugins
    /// reload): what a NATS worker announces and what the front requires.
    pub fn builds(&self) -> PluginList {
        let host = self.host.clone();
        PluginList::new(move || {
            let Some(host) = &host else {
                return Vec::new();
            };
            host.plugins()
                .into_values()
                .map(|plugin| PluginBuild {
                    name: plugin.name().to_string(),
                    version: plugin.info().version.clone(),
                    sha256: plugin.sha256().to_string(),
                    class_types: plugin
                        .info()
                        .nodes
                        .iter()
                        .map(|n| class_type(plugin.name(), &n.id))
                        .collect(),
                })
                .collect()
        })
    }

    /// Reloads plugins whose files change, off the execution path, until this value is dropped. The
    /// graph watcher notices the registry change and re-runs the nodes that used a reloaded plugin.
    pub fn watch(&mut self, registry: Arc<Registry>) -> anyhow::Result<()> {
        let Some(host) = &self.host else {
            return Ok(());
        };
        let watcher = PluginWatcher::start(Arc::clone(host), registry, print_report)
            .map_err(anyhow::Error::msg)
            .context("watching plugin folders")?;
        self.watcher = Some(watcher);
        Ok(())
    }
}

/// Registers the plugin nodes found in `dirs`, or in [`DEFAULT_PLUGIN_DIR`] when `dirs` is empty and
/// that folder holds plugin manifests. A plugin that fails to load is reported and skipped.
pub fn register(registry: &Registry, dirs: &[PathBuf]) -> anyhow::Result<LoadedPlugins> {
    let dirs: Vec<PathBuf> = if dirs.is_empty() {
        let default = Path::new(DEFAULT_PLUGIN_DIR);
        match find_manifests(default) {
            Ok(found) if !found.is_empty() => vec![default.to_path_buf()],
            _ => return Ok(LoadedPlugins::default()),
        }
    } else {
        dirs.to_vec()
    };
    let config = PluginConfig {
        cache_dir: component_cache_dir(),
        ..PluginConfig::default()
    };
    let (host, report) =
        register_dirs(registry, &dirs, &config).context("loading WebAssembly plugins")?;
    print_report(report);
    Ok(LoadedPlugins {
        host: Some(Arc::new(host)),
        watcher: None,
    })
}

/// Prints plugins that failed to load or were reloaded (to stderr: stdout is for machine output).
/// Plugin names and errors come from the plugins' files, so they are escaped and bounded.
fn print_report(report: ReloadReport) {
    for failure in &report.failed {
        eprintln!("warning: {}", terminal_text::text(&failure.to_string()));
    }
    for name in &report.reloaded {
        eprintln!("plugin `{}` reloaded", terminal_text::field(name));
    }
    for name in &report.removed {
        eprintln!("plugin `{}` removed", terminal_text::field(name));
    }
}

/// Where compiled components are cached between runs: `$XDG_CACHE_HOME/omnigen/components`, else
/// `~/.cache/omnigen/components`; none when neither is known.
fn component_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("omnigen").join("components"))
}
