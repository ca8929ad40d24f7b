//! Plugin directories: discovery, registration in the engine's registry, and reload.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use omnigen_engine::Registry;

use crate::error::LoadError;
use crate::limits::PluginConfig;
use crate::manifest::{sha256_hex, Manifest, MANIFEST_SUFFIX};
use crate::node::plugin_nodes;
use crate::plugin::LoadedPlugin;
use crate::runtime::PluginRuntime;

/// What a (re)load changed.
#[derive(Debug, Default, Clone)]
pub struct ReloadReport {
    /// Plugins loaded for the first time (names).
    pub added: Vec<String>,
    /// Plugins replaced by a new build (names).
    pub reloaded: Vec<String>,
    /// Plugins whose manifest disappeared (names); their nodes were unregistered.
    pub removed: Vec<String>,
    /// Plugins that failed to load; a previous build, if any, stays registered.
    pub failed: Vec<LoadError>,
    /// class_types registered, replaced or removed.
    pub changed_class_types: Vec<String>,
}

impl ReloadReport {
    /// Whether nothing changed and nothing failed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.reloaded.is_empty()
            && self.removed.is_empty()
            && self.failed.is_empty()
    }
}

/// Identity of what is on disk for one manifest, to skip unchanged plugins on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DiskState {
    manifest: String,
    wasm: String,
}

fn disk_state(manifest_path: &Path) -> Option<DiskState> {
    let manifest_bytes = std::fs::read(manifest_path).ok()?;
    let wasm = serde_json::from_slice::<Manifest>(&manifest_bytes)
        .ok()
        .and_then(|m| std::fs::read(m.wasm_path(manifest_path)).ok())
        .map(|b| sha256_hex(&b))
        .unwrap_or_default();
    Some(DiskState {
        manifest: sha256_hex(&manifest_bytes),
        wasm,
    })
}

struct Entry {
    plugin: Option<Arc<LoadedPlugin>>,
    state: Option<DiskState>,
    class_types: Vec<String>,
}

/// The plugins of one or more directories, registered in an engine registry.
pub struct PluginHost {
    runtime: PluginRuntime,
    dirs: Vec<PathBuf>,
    entries: Mutex<BTreeMap<PathBuf, Entry>>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("dirs", &self.dirs)
            .field("plugins", &self.plugin_names())
            .finish()
    }
}

/// Finds the manifests (`*.plugin.json`) in `dir`, sorted.
pub fn find_manifests(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let read = std::fs::read_dir(dir).map_err(|e| LoadError::Io {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut found: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(MANIFEST_SUFFIX) && !n.starts_with('.'))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Loads every plugin in `dir` and registers its nodes in `registry`.
///
/// Returns the host (keep it to reload) and the report; a plugin that fails to load is listed
/// in `report.failed` and does not stop the others. Fails only if the engine cannot start or
/// the directory cannot be read.
pub fn register_dir(
    registry: &Registry,
    dir: &Path,
    config: &PluginConfig,
) -> Result<(PluginHost, ReloadReport), LoadError> {
    register_dirs(registry, &[dir.to_path_buf()], config)
}

/// Like [`register_dir`] for several directories (`--plugins A --plugins B`); a plugin name
/// may appear only once across them.
pub fn register_dirs(
    registry: &Registry,
    dirs: &[PathBuf],
    config: &PluginConfig,
) -> Result<(PluginHost, ReloadReport), LoadError> {
    for dir in dirs {
        find_manifests(dir)?;
    }
    let runtime = PluginRuntime::new(config.clone()).map_err(|message| LoadError::Invalid {
        plugin: "(host)".into(),
        message,
    })?;
    let host = PluginHost::new(runtime, dirs.to_vec());
    let report = host.reload(registry);
    Ok((host, report))
}

impl PluginHost {
    /// A host over `dirs` using `runtime`; nothing is loaded until [`PluginHost::reload`].
    pub fn new(runtime: PluginRuntime, dirs: Vec<PathBuf>) -> Self {
        PluginHost {
            runtime,
            dirs,
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    /// The engine shared by these plugins.
    pub fn runtime(&self) -> &PluginRuntime {
        &self.runtime
    }

    /// The watched directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The loaded plugins, by name.
    pub fn plugins(&self) -> BTreeMap<String, Arc<LoadedPlugin>> {
        self.lock()
            .values()
            .filter_map(|e| e.plugin.clone())
            .map(|p| (p.name().to_string(), p))
            .collect()
    }

    /// Names of the loaded plugins.
    pub fn plugin_names(&self) -> Vec<String> {
        self.plugins().into_keys().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rescans the directories: loads new and changed plugins, unregisters removed ones, keeps
    /// the previous build of any plugin whose new build fails. Compilation happens here, on the
    /// caller's thread; running graphs keep the build they started with.
    pub fn reload(&self, registry: &Registry) -> ReloadReport {
        let mut report = ReloadReport::default();
        let mut manifests = Vec::new();
        for dir in &self.dirs {
            match find_manifests(dir) {
                Ok(found) => manifests.extend(found),
                Err(e) => report.failed.push(e),
            }
        }
        let mut entries = self.lock();

        // Removed manifests: unregister their nodes.
        let gone: Vec<PathBuf> = entries
            .keys()
            .filter(|p| !manifests.contains(p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(entry) = entries.remove(&path) {
                for ct in &entry.class_types {
                    registry.unregister(ct);
                }
                report.changed_class_types.extend(entry.class_types);
                if let Some(p) = entry.plugin {
                    report.removed.push(p.name().to_string());
                }
            }
        }

        for path in manifests {
            let state = disk_state(&path);
            if let Some(entry) = entries.get(&path) {
                if entry.state == state {
                    continue; // unchanged (or unchanged and still broken)
                }
            }
            let previous_state = state.clone();
            let loaded = LoadedPlugin::load(&self.runtime, &path).and_then(|p| {
                let clash = entries.iter().find(|(other, e)| {
                    **other != path && e.plugin.as_ref().is_some_and(|q| q.name() == p.name())
                });
                match clash {
                    Some((other, _)) => Err(LoadError::Invalid {
                        plugin: p.name().to_string(),
                        message: format!(
                            "a plugin of this name is already loaded from {}",
                            other.display()
                        ),
                    }),
                    None => Ok(p),
                }
            });
            match loaded {
                Err(e) => {
                    tracing::warn!("{e}");
                    report.failed.push(e);
                    let entry = entries.entry(path).or_insert(Entry {
                        plugin: None,
                        state: None,
                        class_types: Vec::new(),
                    });
                    entry.state = previous_state; // do not retry until the files change again
                }
                Ok(plugin) => {
                    let plugin = Arc::new(plugin);
                    let nodes = plugin_nodes(&plugin);
                    let old = entries.remove(&path);
                    let old_types = old
                        .as_ref()
                        .map(|e| e.class_types.clone())
                        .unwrap_or_default();
                    let mine: Vec<String> = entries
                        .values()
                        .flat_map(|e| e.class_types.iter().cloned())
                        .collect();
                    let taken: Vec<&String> = nodes
                        .keys()
                        .filter(|ct| {
                            registry.contains(ct) && !old_types.contains(ct) && !mine.contains(ct)
                        })
                        .collect();
                    if let Some(ct) = taken.first() {
                        report.failed.push(LoadError::Invalid {
                            plugin: plugin.name().to_string(),
                            message: format!(
                                "node `{ct}` would replace a node that is not from this plugin"
                            ),
                        });
                        if let Some(old) = old {
                            entries.insert(
                                path.clone(),
                                Entry {
                                    state: previous_state,
                                    ..old
                                },
                            );
                        }
                        continue;
                    }
                    for ct in old_types.iter().filter(|ct| !nodes.contains_key(*ct)) {
                        registry.unregister(ct);
                        report.changed_class_types.push(ct.clone());
                    }
                    let class_types: Vec<String> = nodes.keys().cloned().collect();
                    for (ct, node) in nodes {
                        registry.register(node);
                        report.changed_class_types.push(ct);
                    }
                    match old.and_then(|e| e.plugin) {
                        Some(_) => report.reloaded.push(plugin.name().to_string()),
                        None => report.added.push(plugin.name().to_string()),
                    }
                    tracing::info!(
                        "plugin `{}` {} loaded ({} nodes)",
                        plugin.name(),
                        plugin.info().version,
                        class_types.len()
                    );
                    entries.insert(
                        path,
                        Entry {
                            plugin: Some(plugin),
                            state: previous_state,
                            class_types,
                        },
                    );
                }
            }
        }
        report
    }

    /// Installs the component at `wasm` into the first plugins directory: copies it as
    /// `<name>.wasm` and writes `<name>.plugin.json` with its sha256 (both atomically). The name
    /// and version come from the component's own description. Returns the manifest written.
    pub fn install(
        &self,
        wasm: &Path,
        limits: crate::limits::LimitRequest,
    ) -> Result<Manifest, LoadError> {
        let dir = self.dirs.first().ok_or_else(|| LoadError::Invalid {
            plugin: "(install)".into(),
            message: "no plugins directory".into(),
        })?;
        install(&self.runtime, wasm, dir, limits)
    }
}

/// Installs the component at `wasm` into `dir` (see [`PluginHost::install`]).
pub fn install(
    runtime: &PluginRuntime,
    wasm: &Path,
    dir: &Path,
    limits: crate::limits::LimitRequest,
) -> Result<Manifest, LoadError> {
    let io = |path: &Path, e: std::io::Error| LoadError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let bytes = std::fs::read(wasm).map_err(|e| io(wasm, e))?;
    let probe = Manifest {
        name: "install".into(),
        version: String::new(),
        abi: crate::bindings::ABI_VERSION.into(),
        wasm: "install.wasm".into(),
        sha256: sha256_hex(&bytes),
        limits: limits.clone(),
    };
    let info = LoadedPlugin::probe(runtime, probe.clone(), &bytes)?
        .info()
        .clone();
    let manifest = Manifest {
        name: info.name.clone(),
        version: info.version.clone(),
        wasm: format!("{}.wasm", info.name),
        ..probe
    };
    manifest.check().map_err(|message| LoadError::Invalid {
        plugin: info.name.clone(),
        message,
    })?;
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let wasm_dest = dir.join(&manifest.wasm);
    crate::cache::write_atomic(&wasm_dest, &bytes).map_err(|e| io(&wasm_dest, e))?;
    let manifest_dest = dir.join(format!("{}{MANIFEST_SUFFIX}", info.name));
    crate::cache::write_atomic(&manifest_dest, manifest.to_json().as_bytes())
        .map_err(|e| io(&manifest_dest, e))?;
    Ok(manifest)
}
