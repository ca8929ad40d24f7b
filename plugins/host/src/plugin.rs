//! A loaded plugin: manifest, checked description, pre-instantiated component; and one node run
//! in a fresh, limited store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value as Json};
use wasmtime::Trap;

use crate::bindings::v0_1::omnigen::plugin::types as wit;
use crate::bindings::v0_1::PluginPre;
use crate::bindings::NODE_EXPORT;
use crate::cache::load_or_compile;
use crate::descriptor::{check_info, NodeDescriptor, PluginInfo};
use crate::error::{LoadError, RunError, RunFailure};
use crate::limits::Limits;
use crate::manifest::{sha256_hex, Manifest};
use crate::params::build_params;
use crate::runtime::PluginRuntime;
use crate::store::{new_store, CancelFlag, HostStop, LogLine, ProgressFn, RunState};
use crate::text;
use crate::validate::{check_inputs, check_outputs};
use crate::values::PluginValue;

/// Longest time `describe()` may take at load.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How the host controls one call.
#[derive(Clone, Default)]
pub struct CallControl {
    /// Receives progress reports; returning `false` cancels the call.
    pub progress: Option<ProgressFn>,
    /// Set to stop the call.
    pub cancel: CancelFlag,
}

/// The successful result of a node run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutput {
    /// Output values, in the order of the node's declared outputs.
    pub values: Vec<(String, PluginValue)>,
    /// What the plugin logged (bounded).
    pub log: Vec<LogLine>,
    /// Log lines dropped beyond the cap.
    pub dropped_logs: u64,
}

/// A plugin ready to run: compiled, linked, described and checked.
pub struct LoadedPlugin {
    manifest: Manifest,
    manifest_path: PathBuf,
    info: PluginInfo,
    limits: Limits,
    pre: PluginPre<RunState>,
    runtime: PluginRuntime,
    name: Arc<str>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("manifest", &self.manifest)
            .field("manifest_path", &self.manifest_path)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn invalid(plugin: &str, message: impl Into<String>) -> LoadError {
    LoadError::Invalid {
        plugin: plugin.to_string(),
        message: message.into(),
    }
}

impl LoadedPlugin {
    /// Loads the plugin described by the manifest at `manifest_path`.
    pub fn load(runtime: &PluginRuntime, manifest_path: &Path) -> Result<Self, LoadError> {
        let manifest = Manifest::read(manifest_path)?;
        let bytes = manifest.read_wasm(manifest_path, runtime.config().max_wasm_bytes)?;
        Self::from_bytes(runtime, manifest, manifest_path, &bytes)
    }

    /// Loads a plugin from its manifest and component bytes (the hash is checked).
    pub fn from_bytes(
        runtime: &PluginRuntime,
        manifest: Manifest,
        manifest_path: &Path,
        bytes: &[u8],
    ) -> Result<Self, LoadError> {
        Self::load_checked(runtime, manifest, manifest_path, bytes, true)
    }

    /// Loads a component without a manifest of its own (to learn its name and version).
    pub(crate) fn probe(
        runtime: &PluginRuntime,
        manifest: Manifest,
        bytes: &[u8],
    ) -> Result<Self, LoadError> {
        Self::load_checked(runtime, manifest, Path::new(""), bytes, false)
    }

    fn load_checked(
        runtime: &PluginRuntime,
        manifest: Manifest,
        manifest_path: &Path,
        bytes: &[u8],
        check_name: bool,
    ) -> Result<Self, LoadError> {
        let name = manifest.name.clone();
        let actual = sha256_hex(bytes);
        if !actual.eq_ignore_ascii_case(&manifest.sha256) {
            return Err(LoadError::HashMismatch {
                plugin: name,
                wasm: manifest.wasm.clone(),
                expected: manifest.sha256.clone(),
                actual,
            });
        }
        let component = load_or_compile(runtime, &actual, bytes).map_err(|e| invalid(&name, e))?;
        check_exports(runtime, &component).map_err(|e| invalid(&name, e))?;
        let linker = runtime
            .linker_for(&component)
            .map_err(|e| invalid(&name, format!("{e:#}")))?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| invalid(&name, format!("does not fit the host interface: {e:#}")))?;
        let pre = PluginPre::new(instance_pre).map_err(|e| {
            invalid(
                &name,
                format!("does not export the interface {NODE_EXPORT}: {e:#}"),
            )
        })?;
        let limits = runtime.config().limits_for(&manifest.limits);
        let mut plugin = LoadedPlugin {
            manifest: Manifest {
                sha256: actual,
                ..manifest
            },
            manifest_path: manifest_path.to_path_buf(),
            info: PluginInfo {
                name: name.clone(),
                version: String::new(),
                nodes: Vec::new(),
            },
            limits,
            pre,
            runtime: runtime.clone(),
            name: Arc::from(name.as_str()),
        };
        plugin.info = plugin.describe()?;
        if check_name && plugin.info.name != name {
            // `info.name` was cleaned by `check_info`.
            return Err(invalid(
                &name,
                format!(
                    "describes itself as `{}`; the manifest says `{name}`",
                    plugin.info.name
                ),
            ));
        }
        Ok(plugin)
    }

    fn describe(&self) -> Result<PluginInfo, LoadError> {
        let mut limits = self.limits.clone();
        limits.timeout = limits.timeout.min(DESCRIBE_TIMEOUT);
        let mut store = new_store(
            self.runtime.engine(),
            self.name.clone(),
            limits.clone(),
            None,
            CancelFlag::new(),
        );
        let info = self
            .pre
            .instantiate(&mut store)
            .and_then(|p| p.omnigen_plugin_node().call_describe(&mut store))
            .map_err(|e| {
                // The plugin's last words (a panic message) say why.
                let last_log = match store.data().log_lines().last() {
                    Some(line) => format!(" (last log: {})", line.message),
                    None => String::new(),
                };
                invalid(
                    &self.name,
                    format!("describe() failed: {}{last_log}", classify(e, &limits)),
                )
            })?;
        check_info(info).map_err(|e| invalid(&self.name, format!("describe(): {e}")))
    }

    /// The plugin's name (the namespace of its class_types).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The manifest, with `sha256` as computed from the loaded bytes.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Where the manifest was read from.
    pub fn manifest_path(&self) -> &Path {
        &self.manifest_path
    }

    /// sha256 of the component.
    pub fn sha256(&self) -> &str {
        &self.manifest.sha256
    }

    /// The checked self-description.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The limits every call of this plugin runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The node `id`.
    pub fn node(&self, id: &str) -> Option<&NodeDescriptor> {
        self.info.node(id)
    }

    /// Creates a store and an instance and drops them, without calling anything: measures
    /// instantiation, and pre-faults a pool slot.
    pub fn instantiate_only(&self) -> Result<(), RunError> {
        let mut store = new_store(
            self.runtime.engine(),
            self.name.clone(),
            self.limits.clone(),
            None,
            CancelFlag::new(),
        );
        self.pre
            .instantiate(&mut store)
            .map(drop)
            .map_err(|e| RunError {
                plugin: self.name.to_string(),
                node: "(instantiate)".into(),
                failure: classify(e, &self.limits),
                log_tail: vec![],
            })
    }

    /// Runs node `node_id` in a fresh instance. `params` holds widget values by name (missing
    /// ones take their defaults). Inputs, params and outputs are checked against the node's
    /// declaration; any trap, limit or bad output becomes a [`RunError`] naming plugin and node.
    pub fn run(
        &self,
        node_id: &str,
        inputs: Vec<(String, PluginValue)>,
        params: &Map<String, Json>,
        control: &CallControl,
    ) -> Result<RunOutput, RunError> {
        let fail = |failure, log_tail| RunError {
            plugin: self.name.to_string(),
            node: node_id.to_string(),
            failure,
            log_tail,
        };
        let node = self.node(node_id).ok_or_else(|| {
            fail(
                RunFailure::InvalidInput(format!("the plugin has no node `{node_id}`")),
                vec![],
            )
        })?;
        check_inputs(node, &inputs, &self.limits)
            .map_err(|e| fail(RunFailure::InvalidInput(e), vec![]))?;
        let params = build_params(&node.params, params)
            .map_err(|e| fail(RunFailure::InvalidParams(e), vec![]))?;

        let mut store = new_store(
            self.runtime.engine(),
            self.name.clone(),
            self.limits.clone(),
            control.progress.clone(),
            control.cancel.clone(),
        );
        let wit_inputs: Vec<wit::NamedValue> = inputs
            .into_iter()
            .map(|(name, value)| wit::NamedValue {
                name,
                value: value.into(),
            })
            .collect();
        let result = self.pre.instantiate(&mut store).and_then(|p| {
            p.omnigen_plugin_node()
                .call_run(&mut store, node_id, &wit_inputs, &params)
        });
        drop(wit_inputs);
        let log_tail = |store: &wasmtime::Store<RunState>| -> Vec<String> {
            let lines = store.data().log_lines();
            lines[lines.len().saturating_sub(5)..]
                .iter()
                .map(|l| l.message.clone())
                .collect()
        };
        let outputs = match result {
            Err(e) => {
                let failure = classify(e, &self.limits);
                return Err(fail(failure, log_tail(&store)));
            }
            Ok(Err(reported)) => return Err(fail(reported_failure(reported), log_tail(&store))),
            Ok(Ok(outputs)) => outputs,
        };
        let values = outputs
            .into_iter()
            .map(|nv| (nv.name, PluginValue::from(nv.value)))
            .collect();
        let values = check_outputs(node, values, &self.limits)
            .map_err(|e| fail(RunFailure::InvalidOutput(e), log_tail(&store)))?;
        let dropped_logs = store.data().dropped_logs();
        Ok(RunOutput {
            values,
            log: store.data_mut().take_log(),
            dropped_logs,
        })
    }
}

fn check_exports(
    runtime: &PluginRuntime,
    component: &wasmtime::component::Component,
) -> Result<(), String> {
    let ty = component.component_type();
    let names: Vec<String> = ty
        .exports(runtime.engine())
        .map(|(name, _)| name.to_string())
        .collect();
    if names.iter().any(|n| n == NODE_EXPORT) {
        return Ok(());
    }
    match names.iter().find(|n| n.starts_with("omnigen:plugin/node@")) {
        Some(other) => Err(format!("exports {other}, but this host serves {NODE_EXPORT}; rebuild the plugin against this version of the SDK")),
        None => Err(format!("does not export {NODE_EXPORT} (exports: {})", if names.is_empty() { "nothing".to_string() } else { names.join(", ") })),
    }
}

/// A failure the plugin reported, its message bounded and on one line (it reaches terminals).
fn reported_failure(e: wit::NodeError) -> RunFailure {
    let clean = |m: &str| text::one_line(m, text::MAX_MESSAGE_BYTES);
    match e {
        wit::NodeError::InvalidInput(m) => {
            RunFailure::Reported(format!("invalid input: {}", clean(&m)))
        }
        wit::NodeError::InvalidParams(m) => {
            RunFailure::Reported(format!("invalid parameters: {}", clean(&m)))
        }
        wit::NodeError::Cancelled => RunFailure::Cancelled,
        wit::NodeError::Failed(m) => RunFailure::Reported(clean(&m)),
    }
}

/// How wasmtime words a result or log message larger than the hostcall fuel (the copy budget).
const COPY_BUDGET_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

/// Turns a wasmtime error into a failure a user can act on.
fn classify(e: wasmtime::Error, limits: &Limits) -> RunFailure {
    let stop = e
        .downcast_ref::<HostStop>()
        .or_else(|| e.chain().find_map(|c| c.downcast_ref::<HostStop>()));
    if let Some(stop) = stop {
        return match stop {
            HostStop::Timeout => RunFailure::Timeout(limits.timeout),
            HostStop::Cancelled => RunFailure::Cancelled,
            HostStop::OutOfMemory => RunFailure::OutOfMemory(limits.memory_bytes),
            HostStop::LogFlood => RunFailure::LogFlood(limits.log_flood_calls),
        };
    }
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::StackOverflow => RunFailure::StackOverflow,
            other => RunFailure::Crashed(format!("{other}")),
        };
    }
    // wasmtime's text may quote the plugin (import names, function names in backtraces).
    let message = format!("{e:#}");
    if message.contains(COPY_BUDGET_EXHAUSTED) {
        return RunFailure::CopyBudget(limits.copy_budget_bytes());
    }
    if let Some(rest) = message.split("unknown import: `").nth(1) {
        let import = rest.split('`').next().unwrap_or(rest);
        return RunFailure::Forbidden(text::one_line(import, text::MAX_NAME_BYTES));
    }
    if message.contains("maximum concurrent") || message.contains("pooling allocator") {
        return RunFailure::Busy;
    }
    RunFailure::Crashed(text::multi_line(&message, text::MAX_MESSAGE_BYTES))
}
