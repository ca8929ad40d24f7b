//! Plugin nodes as engine node types: schema (the `/object_info` shape), pinning by hash,
//! cache fingerprint, and runs on the blocking pool.

use std::collections::BTreeMap;
use std::sync::Arc;

use omnigen_engine::{
    BoxFuture, CheckContext, Fingerprint, InputSpec, Inputs, NodeContext, NodeError, NodeOutput,
    NodeSchema, NodeType, Value,
};
use serde_json::{Map, Value as Json};

use crate::convert::{batch_of, to_engine, to_plugin};
use crate::descriptor::{NodeDescriptor, PIN_INPUT};
use crate::error::{RunError, RunFailure};
use crate::params::ParamKind;
use crate::plugin::{CallControl, LoadedPlugin};
use crate::store::CancelFlag;
use crate::values::{PluginValue, PortKind};

/// The class_type of node `node_id` of plugin `plugin`: `"<plugin>/<node_id>"`.
pub fn class_type(plugin: &str, node_id: &str) -> String {
    format!("{plugin}/{node_id}")
}

/// One node of a loaded plugin, registered in the engine's registry.
pub struct PluginNode {
    plugin: Arc<LoadedPlugin>,
    node_id: String,
    descriptor: NodeDescriptor,
}

impl PluginNode {
    /// The node `node_id` of `plugin`, if the plugin has it.
    pub fn new(plugin: Arc<LoadedPlugin>, node_id: &str) -> Option<Self> {
        let descriptor = plugin.node(node_id)?.clone();
        Some(PluginNode {
            plugin,
            node_id: node_id.to_string(),
            descriptor,
        })
    }

    /// The plugin this node belongs to.
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    fn descriptor(&self) -> &NodeDescriptor {
        &self.descriptor
    }
}

fn port_input(name: &str, kind: PortKind) -> InputSpec {
    match kind {
        PortKind::Image | PortKind::Mask | PortKind::Json => {
            InputSpec::socket(name, kind.graph_type())
        }
        PortKind::Text => InputSpec::string(name).force_input(),
        PortKind::Integer => InputSpec::int(name).force_input(),
        PortKind::Number => InputSpec::float(name).force_input(),
        PortKind::Boolean => InputSpec::boolean(name).force_input(),
    }
}

fn param_input(name: &str, kind: &ParamKind) -> InputSpec {
    match kind {
        ParamKind::Int { default, min, max } => {
            let mut spec = InputSpec::int(name).default_int(*default);
            if *min != i64::MIN {
                spec = spec.min(*min);
            }
            if *max != i64::MAX {
                spec = spec.max(*max);
            }
            spec
        }
        ParamKind::Float { default, min, max } => {
            let mut spec = InputSpec::float(name).default_value(*default).step(0.01);
            if *min != f64::MIN {
                spec = spec.min(*min);
            }
            if *max != f64::MAX {
                spec = spec.max(*max);
            }
            spec
        }
        ParamKind::Bool { default } => InputSpec::boolean(name).default_value(*default),
        ParamKind::Text { default, multiline } => {
            let spec = InputSpec::string(name).default_value(default.clone());
            if *multiline {
                spec.multiline()
            } else {
                spec
            }
        }
        ParamKind::Choice { choices, default } => {
            InputSpec::combo(name, choices.iter().cloned()).default_value(default.clone())
        }
    }
}

fn value_to_json(value: &Value) -> Json {
    match value {
        Value::Int(i) => omnigen_engine::value::int_to_json(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::Bool(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Json(j) => j.clone(),
        other => Json::String(other.kind_name().to_string()),
    }
}

/// Whether `pin` (a full sha256 or a prefix of at least 8 hex digits) names `sha256`.
fn pin_matches(pin: &str, sha256: &str) -> bool {
    let pin = pin.trim().to_ascii_lowercase();
    pin.len() >= 8 && pin.len() <= 64 && sha256.starts_with(&pin)
}

fn node_error(e: RunError) -> NodeError {
    let kind = match &e.failure {
        RunFailure::Cancelled => return NodeError::cancelled(),
        RunFailure::InvalidInput(_) => "PluginInvalidInput",
        RunFailure::InvalidParams(_) => "PluginInvalidParams",
        RunFailure::Timeout(_) => "PluginTimeout",
        RunFailure::OutOfMemory(_) => "PluginOutOfMemory",
        RunFailure::StackOverflow => "PluginStackOverflow",
        RunFailure::Forbidden(_) => "PluginSandboxViolation",
        RunFailure::LogFlood(_) => "PluginLogFlood",
        RunFailure::CopyBudget(_) => "PluginCopyBudget",
        RunFailure::Crashed(_) => "PluginCrashed",
        RunFailure::InvalidOutput(_) => "PluginInvalidOutput",
        RunFailure::Reported(_) => "PluginError",
        RunFailure::Busy => "PluginBusy",
        RunFailure::Host(_) => "PluginHostError",
    };
    let mut err = NodeError::new(e.to_string()).with_kind(kind);
    for line in &e.log_tail {
        err = err.with_detail(format!("plugin log: {line}"));
    }
    err
}

/// Runs the node once per batch element and stacks the results.
fn run_batched(
    plugin: &LoadedPlugin,
    node_id: &str,
    mut inputs: Inputs,
    ctx: &NodeContext,
) -> Result<NodeOutput, NodeError> {
    let node = plugin.node(node_id).ok_or_else(|| {
        NodeError::new(format!(
            "plugin `{}` has no node `{node_id}`",
            plugin.name()
        ))
    })?;
    let mut params = Map::new();
    for p in &node.params {
        if let Some(v) = inputs.take(&p.name) {
            params.insert(p.name.clone(), value_to_json(&v));
        }
    }
    let mut connected: Vec<(&str, PortKind, Value)> = Vec::new();
    for port in &node.inputs {
        if let Some(v) = inputs.take(&port.name) {
            connected.push((&port.name, port.kind, v));
        }
    }
    let batch = connected
        .iter()
        .map(|(_, _, v)| batch_of(v))
        .max()
        .unwrap_or(1);
    if let Some((name, _, v)) = connected
        .iter()
        .find(|(_, _, v)| batch_of(v) != 1 && batch_of(v) != batch)
    {
        return Err(NodeError::input(
            name,
            format!(
                "batch of {} does not match the other inputs' batch of {batch}",
                batch_of(v)
            ),
        ));
    }

    let mut per_port: Vec<Vec<PluginValue>> = vec![Vec::with_capacity(batch); node.outputs.len()];
    for index in 0..batch {
        let mut call_inputs = Vec::with_capacity(connected.len());
        for (name, kind, value) in &connected {
            let v = to_plugin(value, *kind, index).map_err(|e| NodeError::input(name, e))?;
            call_inputs.push((name.to_string(), v));
        }
        let progress_ctx = ctx.clone();
        let token = ctx.cancel_token().clone();
        let control = CallControl {
            progress: Some(Arc::new(move |fraction: f32| {
                let done = (index as f64 + f64::from(fraction)) / batch as f64;
                progress_ctx.progress((done * 1000.0) as u64, 1000).is_ok()
            })),
            cancel: CancelFlag::linked(move || token.is_cancelled()),
        };
        let output = plugin
            .run(node_id, call_inputs, &params, &control)
            .map_err(node_error)?;
        for (slot, (_, value)) in per_port.iter_mut().zip(output.values) {
            slot.push(value);
        }
    }
    let values = node
        .outputs
        .iter()
        .zip(per_port)
        .map(|(port, values)| {
            to_engine(port.kind, values).map_err(|e| {
                NodeError::new(format!(
                    "plugin `{}` node `{node_id}`: output `{}`: {e}",
                    plugin.name(),
                    port.name
                ))
                .with_kind("PluginInvalidOutput")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NodeOutput::new(values))
}

impl NodeType for PluginNode {
    fn schema(&self) -> NodeSchema {
        let d = self.descriptor();
        let plugin = self.plugin.info();
        let mut schema = NodeSchema::new(class_type(self.plugin.name(), &d.id))
            .display_name(d.display_name.clone())
            .category(if d.category.is_empty() {
                "plugins".to_string()
            } else {
                d.category.clone()
            })
            .description(
                format!(
                    "{} (plugin {} {})",
                    d.description, plugin.name, plugin.version
                )
                .trim_start()
                .to_string(),
            )
            .python_module(format!("custom_nodes.{}", self.plugin.name()));
        if !d.deterministic {
            schema = schema.not_idempotent();
        }
        for port in &d.inputs {
            let spec = port_input(&port.name, port.kind).tooltip(port.description.clone());
            schema = if port.optional {
                schema.optional(spec)
            } else {
                schema.required(spec)
            };
        }
        for param in &d.params {
            schema = schema
                .required(param_input(&param.name, &param.kind).tooltip(param.description.clone()));
        }
        schema = schema.optional(
            InputSpec::string(PIN_INPUT)
                .default_value("")
                .tooltip(format!(
                    "Pin this node to a plugin build by sha256 (installed: {})",
                    self.plugin.sha256()
                )),
        );
        for port in &d.outputs {
            schema = schema.named_output(port.kind.graph_type(), port.name.clone());
        }
        schema
    }

    fn fingerprint(&self, _inputs: &Inputs, _ctx: &CheckContext) -> Result<Fingerprint, NodeError> {
        // A new build of the plugin re-runs its nodes; nondeterministic nodes always re-run.
        if self.descriptor().deterministic {
            Ok(Fingerprint::Value(self.plugin.sha256().to_string()))
        } else {
            Ok(Fingerprint::Always)
        }
    }

    fn validate(&self, inputs: &Inputs, _ctx: &CheckContext) -> Result<(), NodeError> {
        match inputs.get(PIN_INPUT) {
            Some(Value::String(pin)) if !pin.trim().is_empty() && !pin_matches(pin, self.plugin.sha256()) => Err(NodeError::new(format!(
                "plugin `{}` is pinned to sha256 {}, but the installed build is {} (version {}); install the pinned build or update the pin",
                self.plugin.name(),
                pin.trim(),
                self.plugin.sha256(),
                self.plugin.info().version
            ))),
            _ => Ok(()),
        }
    }

    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        let plugin = Arc::clone(&self.plugin);
        let node_id = self.node_id.clone();
        Box::pin(async move {
            ctx.run_blocking(move |ctx| run_batched(&plugin, &node_id, inputs, &ctx))
                .await
        })
    }
}

/// The class_types a plugin provides, with their nodes.
pub fn plugin_nodes(plugin: &Arc<LoadedPlugin>) -> BTreeMap<String, PluginNode> {
    plugin
        .info()
        .nodes
        .iter()
        .filter_map(|n| {
            Some((
                class_type(plugin.name(), &n.id),
                PluginNode::new(Arc::clone(plugin), &n.id)?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_accept_full_hashes_and_long_prefixes() {
        let sha = "0123456789abcdef".repeat(4);
        assert!(pin_matches(&sha, &sha));
        assert!(pin_matches("01234567", &sha));
        assert!(pin_matches(" 0123456789ABCDEF ", &sha));
        assert!(!pin_matches("0123456", &sha));
        assert!(!pin_matches("11234567", &sha));
    }
}
