//! Plugin directories: discovery, registration in the engine's registry, and reload.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Identity of what is on disk for one manifest, to skip unchanged plugins on reload: the hashes
/// of the manifest and component bytes, or why they could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DiskState {
    manifest: String,
    wasm: String,
}

/// One manifest as found on disk: its state, and the checked manifest with its component bytes
/// (or why they could not be had). Nothing is read before the manifest is checked, and nothing
/// that is not a regular file of bounded size inside the plugin folder is read at all.
struct OnDisk {
    state: DiskState,
    files: Result<(Manifest, Vec<u8>), LoadError>,
}

fn read_on_disk(manifest_path: &Path, max_wasm_bytes: u64) -> OnDisk {
    let unreadable = |e: &LoadError| format!("unreadable: {e}");
    let manifest_bytes = match Manifest::read_bytes(manifest_path) {
        Ok(bytes) => bytes,
        Err(e) => {
            return OnDisk {
                state: DiskState {
                    manifest: unreadable(&e),
                    wasm: String::new(),
                },
                files: Err(e),
            }
        }
    };
    let mut state = DiskState {
        manifest: sha256_hex(&manifest_bytes),
        wasm: String::new(),
    };
    let files = Manifest::parse(manifest_path, &manifest_bytes).and_then(|manifest| {
        let wasm = manifest.read_wasm(manifest_path, max_wasm_bytes)?;
        Ok((manifest, wasm))
    });
    state.wasm = match &files {
        Ok((_, wasm)) => sha256_hex(wasm),
        Err(e) => unreadable(e),
    };
    OnDisk { state, files }
}

/// Runs `load` on every item, at most `workers` at a time, and returns the results in order.
fn load_concurrently<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    load: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let result = load(item);
                *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
            });
        }
    });
    results
        .into_iter()
        .filter_map(|r| r.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect()
}

struct Entry {
    plugin: Option<Arc<LoadedPlugin>>,
    state: DiskState,
    class_types: Vec<String>,
}

/// The plugins of one or more directories, registered in an engine registry.
pub struct PluginHost {
    runtime: PluginRuntime,
    dirs: Vec<PathBuf>,
    entries: Mutex<BTreeMap<PathBuf, Entry>>,
    /// Held for a whole reload, so that two reloads do not interleave.
    reloading: Mutex<()>,
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
            reloading: Mutex::new(()),
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
    /// caller's thread and a few helpers (plugins load concurrently, so a plugin whose
    /// `describe()` hangs costs one timeout, not one per plugin); running graphs keep the build
    /// they started with.
    pub fn reload(&self, registry: &Registry) -> ReloadReport {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = ReloadReport::default();
        let mut manifests = Vec::new();
        for dir in &self.dirs {
            match find_manifests(dir) {
                Ok(found) => manifests.extend(found),
                Err(e) => report.failed.push(e),
            }
        }

        // Removed manifests: unregister their nodes.
        let changed: Vec<(PathBuf, OnDisk)> = {
            let mut entries = self.lock();
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
            let max_wasm = self.runtime.config().max_wasm_bytes;
            manifests
                .into_iter()
                .map(|path| {
                    let on_disk = read_on_disk(&path, max_wasm);
                    (path, on_disk)
                })
                // Unchanged (or unchanged and still broken): nothing to do.
                .filter(|(path, on_disk)| {
                    entries.get(path).is_none_or(|e| e.state != on_disk.state)
                })
                .collect()
        };

        // Compile and describe without holding the entries (others may list plugins meanwhile).
        let loaded = load_concurrently(
            &changed,
            self.runtime.config().concurrent_loads(),
            |(path, on_disk)| match &on_disk.files {
                Err(e) => Err(e.clone()),
                Ok((manifest, bytes)) => {
                    LoadedPlugin::from_bytes(&self.runtime, manifest.clone(), path, bytes)
                }
            },
        );

        let mut entries = self.lock();
        for ((path, on_disk), loaded) in changed.into_iter().zip(loaded) {
            let previous_state = on_disk.state;
            let loaded = loaded.and_then(|p| {
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
                        state: previous_state.clone(),
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
    let bytes = crate::files::read_bounded(wasm, runtime.config().max_wasm_bytes).map_err(|e| {
        LoadError::Io {
            path: wasm.to_path_buf(),
            message: e.to_string(),
        }
    })?;
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
