//! Validation before anything runs: every problem at once, in ComfyUI's error JSON shape.
//!
//! ```json
//! {"error": {"type", "message", "details", "extra_info"},
//!  "node_errors": {"<id>": {"errors": [{"type", "message", "details", "extra_info"}],
//!                           "dependent_outputs": ["<output id>"], "class_type": "…"}}}
//! ```
//! As in ComfyUI, only the ancestors of output nodes are checked; an output whose subtree has an error is
//! dropped, and the prompt fails only when no output is left.

use std::collections::{HashMap, HashSet};

use petgraph::Direction;
use std::sync::Arc;

use indexmap::IndexMap;
use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::{json, Map, Value as Json};

use crate::coerce::{coerce_literal, CoerceError};
use crate::graph::{Graph, GraphNode, InputValue, NodeId, PromptRequest};
use crate::node::{CheckContext, Dirs, Inputs};
use crate::registry::{RegisteredNode, Registry};
use crate::schema::{InputSpec, InputType};
use crate::value::Value;

/// ComfyUI's validation error types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// The prompt itself is malformed.
    InvalidPrompt,
    /// A class_type is not registered.
    MissingNodeType,
    /// No output node to run.
    PromptNoOutputs,
    /// Every output failed validation.
    PromptOutputsFailedValidation,
    /// A required input is absent.
    RequiredInputMissing,
    /// A link is malformed or points nowhere.
    BadLinkedInput,
    /// A link's output type does not match the input type.
    ReturnTypeMismatch,
    /// A literal cannot be converted to the input type.
    InvalidInputType,
    /// Below `min`.
    ValueSmallerThanMin,
    /// Above `max`.
    ValueBiggerThanMax,
    /// Not one of the combo options.
    ValueNotInList,
    /// The node's own validation rejected the inputs.
    CustomValidationFailed,
    /// The node is part of a dependency cycle.
    DependencyCycle,
}

impl ErrorType {
    /// The `type` string ComfyUI uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidPrompt => "invalid_prompt",
            ErrorType::MissingNodeType => "missing_node_type",
            ErrorType::PromptNoOutputs => "prompt_no_outputs",
            ErrorType::PromptOutputsFailedValidation => "prompt_outputs_failed_validation",
            ErrorType::RequiredInputMissing => "required_input_missing",
            ErrorType::BadLinkedInput => "bad_linked_input",
            ErrorType::ReturnTypeMismatch => "return_type_mismatch",
            ErrorType::InvalidInputType => "invalid_input_type",
            ErrorType::ValueSmallerThanMin => "value_smaller_than_min",
            ErrorType::ValueBiggerThanMax => "value_bigger_than_max",
            ErrorType::ValueNotInList => "value_not_in_list",
            ErrorType::CustomValidationFailed => "custom_validation_failed",
            ErrorType::DependencyCycle => "dependency_cycle",
        }
    }
}

/// One error: `{type, message, details, extra_info}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationError {
    /// Error type.
    pub kind: ErrorType,
    /// Short message.
    pub message: String,
    /// Details (usually the input name and specifics).
    pub details: String,
    /// Structured extras (`input_name`, `input_config`, `received_value`, …).
    pub extra_info: Json,
}

impl ValidationError {
    fn new(
        kind: ErrorType,
        message: impl Into<String>,
        details: impl Into<String>,
        extra: Json,
    ) -> Self {
        ValidationError {
            kind,
            message: message.into(),
            details: details.into(),
            extra_info: extra,
        }
    }

    /// As JSON.
    pub fn to_json(&self) -> Json {
        json!({"type": self.kind.as_str(), "message": self.message, "details": self.details,
               "extra_info": self.extra_info})
    }
}

/// The errors of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeErrors {
    /// Its errors.
    pub errors: Vec<ValidationError>,
    /// The output nodes that depend on it.
    pub dependent_outputs: Vec<NodeId>,
    /// Its class_type.
    pub class_type: String,
}

impl NodeErrors {
    /// As JSON.
    pub fn to_json(&self) -> Json {
        json!({"errors": self.errors.iter().map(ValidationError::to_json).collect::<Vec<_>>(),
               "dependent_outputs": self.dependent_outputs.iter().map(NodeId::as_str).collect::<Vec<_>>(),
               "class_type": self.class_type})
    }
}

fn node_errors_json(errors: &IndexMap<NodeId, NodeErrors>) -> Json {
    Json::Object(
        errors
            .iter()
            .map(|(id, e)| (id.0.clone(), e.to_json()))
            .collect::<Map<_, _>>(),
    )
}

/// A failed validation: ComfyUI's HTTP-400 body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {}", error.message, error.details)]
pub struct ValidationReport {
    /// The top-level error.
    pub error: Box<ValidationError>,
    /// Per-node errors.
    pub node_errors: IndexMap<NodeId, NodeErrors>,
}

impl ValidationReport {
    /// `{"error": …, "node_errors": …}`.
    pub fn to_json(&self) -> Json {
        json!({"error": self.error.to_json(), "node_errors": node_errors_json(&self.node_errors)})
    }

    /// Every error, one per line, for a terminal: `node 3 (KSampler): Value 0 smaller than min of 1: steps`.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}: {}", self.error.message, self.error.details);
        for (id, ne) in &self.node_errors {
            for e in &ne.errors {
                out.push_str(&format!(
                    "\n  node {id} ({}): {}: {}",
                    ne.class_type, e.message, e.details
                ));
            }
        }
        out
    }
}

/// An input after validation: a coerced constant or a link.
#[derive(Debug, Clone)]
pub enum ResolvedInput {
    /// A constant value.
    Constant(Value),
    /// Another node's output.
    Link {
        /// Source node.
        node: NodeId,
        /// Source output slot.
        slot: usize,
    },
}

/// A node ready to plan and run.
#[derive(Debug, Clone)]
pub struct ResolvedNode {
    /// Node id.
    pub id: NodeId,
    /// The registered type (a snapshot: registry changes during a run do not affect it).
    pub node_type: RegisteredNode,
    /// Declared inputs present in the prompt, in schema order.
    pub inputs: Vec<(String, ResolvedInput)>,
    /// The prompt's `is_changed` override.
    pub is_changed: Option<Json>,
    /// `_meta.title`.
    pub title: Option<String>,
    constants: Inputs,
}

impl ResolvedNode {
    /// The constant inputs only (what fingerprint, validate and exclusive_resource see).
    pub fn constant_inputs(&self) -> &Inputs {
        &self.constants
    }

    /// Names of the inputs fed by a link.
    pub fn linked_input_names(&self) -> Vec<String> {
        self.inputs
            .iter()
            .filter(|(_, input)| matches!(input, ResolvedInput::Link { .. }))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// A validated prompt: the outputs to run and every node they need.
#[derive(Debug, Clone)]
pub struct ValidatedPrompt {
    /// Valid output nodes, in prompt order.
    pub outputs: Vec<NodeId>,
    /// The outputs and all their ancestors, in prompt order.
    pub nodes: IndexMap<NodeId, ResolvedNode>,
    /// Errors of outputs that were dropped (empty when everything is valid). ComfyUI still runs the rest
    /// and returns these alongside the prompt id.
    pub node_errors: IndexMap<NodeId, NodeErrors>,
}

impl ValidatedPrompt {
    /// `node_errors` as ComfyUI's JSON object.
    pub fn node_errors_json(&self) -> Json {
        node_errors_json(&self.node_errors)
    }
}

/// Validates a request against the registry.
pub fn validate(
    request: &PromptRequest,
    registry: &Registry,
    dirs: &Arc<Dirs>,
) -> Result<ValidatedPrompt, ValidationReport> {
    validate_graph(
        &request.prompt,
        registry,
        request.partial_execution_targets.as_deref(),
        dirs,
    )
}

/// Validates a graph; `targets` restricts the outputs (ComfyUI's `partial_execution_targets`).
pub fn validate_graph(
    graph: &Graph,
    registry: &Registry,
    targets: Option<&[NodeId]>,
    dirs: &Arc<Dirs>,
) -> Result<ValidatedPrompt, ValidationReport> {
    let types = resolve_types(graph, registry)?;

    let outputs: Vec<NodeId> = graph
        .nodes()
        .zip(&types)
        .filter(|(_, t)| t.schema.output_node)
        .map(|(n, _)| n)
        .filter(|n| targets.is_none_or(|t| t.contains(&n.id)))
        .map(|n| n.id.clone())
        .collect();
    if outputs.is_empty() {
        return Err(ValidationReport {
            error: Box::new(ValidationError::new(
                ErrorType::PromptNoOutputs,
                "Prompt has no outputs",
                "",
                json!({}),
            )),
            node_errors: IndexMap::new(),
        });
    }

    // Node positions in prompt order double as petgraph indices.
    let topology = Topology::new(graph);
    let nodes_in_order: Vec<&GraphNode> = graph.nodes().collect();
    let output_pos: Vec<usize> = outputs
        .iter()
        .filter_map(|o| graph.position(o.as_str()))
        .collect();
    let needed = topology.reach(output_pos.iter().copied(), Direction::Incoming);
    let in_cycle = topology.nodes_in_cycles();

    // Check every node some output needs, in prompt order, collecting all errors.
    let mut errors: IndexMap<usize, Vec<ValidationError>> = IndexMap::new();
    let mut resolved: HashMap<usize, ResolvedNode> = HashMap::new();
    for (pos, node) in nodes_in_order.iter().enumerate() {
        if !needed[pos] {
            continue;
        }
        let (r, mut errs) = check_node(node, &types[pos], &types, graph, dirs);
        if in_cycle[pos] {
            errs.push(ValidationError::new(
                ErrorType::DependencyCycle,
                "Dependency cycle detected",
                format!("Node {} is part of a dependency cycle", node.id),
                json!({"node_id": node.id.as_str()}),
            ));
        }
        if errs.is_empty() {
            resolved.insert(pos, r);
        } else {
            errors.insert(pos, errs);
        }
    }

    // An output is invalid when an error lies upstream of it.
    let tainted = topology.reach(errors.keys().copied(), Direction::Outgoing);
    let valid_outputs: Vec<usize> = output_pos
        .iter()
        .copied()
        .filter(|&o| !tainted[o])
        .collect();
    let node_errors: IndexMap<NodeId, NodeErrors> = errors
        .into_iter()
        .map(|(pos, errs)| {
            let downstream = topology.reach(std::iter::once(pos), Direction::Outgoing);
            let dependent_outputs = output_pos
                .iter()
                .filter(|&&o| downstream[o])
                .map(|&o| nodes_in_order[o].id.clone())
                .collect();
            let id = nodes_in_order[pos].id.clone();
            let class_type = types[pos].schema.name.clone();
            (
                id,
                NodeErrors {
                    errors: errs,
                    dependent_outputs,
                    class_type,
                },
            )
        })
        .collect();

    if valid_outputs.is_empty() {
        let details = node_errors
            .values()
            .flat_map(|ne| ne.errors.iter())
            .map(|e| format!("{}: {}", e.message, e.details))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(ValidationReport {
            error: Box::new(ValidationError::new(
                ErrorType::PromptOutputsFailedValidation,
                "Prompt outputs failed validation",
                details,
                json!({}),
            )),
            node_errors,
        });
    }

    let needed = topology.reach(valid_outputs.iter().copied(), Direction::Incoming);
    let nodes = (0..nodes_in_order.len())
        .filter(|&pos| needed[pos])
        .filter_map(|pos| {
            resolved
                .remove(&pos)
                .map(|r| (nodes_in_order[pos].id.clone(), r))
        })
        .collect();
    let valid_outputs = valid_outputs
        .into_iter()
        .map(|o| nodes_in_order[o].id.clone())
        .collect();
    Ok(ValidatedPrompt {
        outputs: valid_outputs,
        nodes,
        node_errors,
    })
}

/// Looks every class_type up; all unknown ones are reported together.
fn resolve_types(
    graph: &Graph,
    registry: &Registry,
) -> Result<Vec<RegisteredNode>, ValidationReport> {
    let mut types = Vec::with_capacity(graph.len());
    let mut missing: IndexMap<NodeId, NodeErrors> = IndexMap::new();
    for node in graph.nodes() {
        match registry.get(&node.class_type) {
            Some(t) => types.push(t),
            None => {
                let e = missing_type_error(node);
                missing.insert(
                    node.id.clone(),
                    NodeErrors {
                        errors: vec![e],
                        dependent_outputs: Vec::new(),
                        class_type: node.class_type.clone(),
                    },
                );
            }
        }
    }
    match missing.first() {
        None => Ok(types),
        Some((_, first)) => Err(ValidationReport {
            error: Box::new(first.errors[0].clone()),
            node_errors: missing,
        }),
    }
}

fn missing_type_error(node: &GraphNode) -> ValidationError {
    ValidationError::new(
        ErrorType::MissingNodeType,
        format!(
            "Cannot execute because node {} does not exist.",
            node.class_type
        ),
        format!("Node ID '#{}'", node.id),
        json!({"node_id": node.id.as_str(), "class_type": node.class_type,
               "node_title": node.title.clone().unwrap_or_else(|| node.class_type.clone())}),
    )
}

/// The link structure of a graph, for reachability and cycles. Node `i` is the `i`-th node in prompt
/// order.
struct Topology {
    graph: DiGraph<(), ()>,
}

impl Topology {
    fn new(g: &Graph) -> Self {
        let mut graph = DiGraph::with_capacity(g.len(), g.len());
        for _ in 0..g.len() {
            graph.add_node(());
        }
        for (target, node) in g.nodes().enumerate() {
            for (_, link) in node.links() {
                if let Some(source) = g.position(link.node.as_str()) {
                    graph.add_edge(NodeIndex::new(source), NodeIndex::new(target), ());
                }
            }
        }
        Topology { graph }
    }

    /// Nodes reachable from `starts` (included) following links in `direction`.
    fn reach(&self, starts: impl Iterator<Item = usize>, direction: Direction) -> Vec<bool> {
        let mut seen = vec![false; self.graph.node_count()];
        let mut stack: Vec<NodeIndex> = starts.map(NodeIndex::new).collect();
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut seen[i.index()], true) {
                stack.extend(self.graph.neighbors_directed(i, direction));
            }
        }
        seen
    }

    fn nodes_in_cycles(&self) -> Vec<bool> {
        let mut flags = vec![false; self.graph.node_count()];
        for scc in petgraph::algo::tarjan_scc(&self.graph) {
            if scc.len() > 1 || self.graph.contains_edge(scc[0], scc[0]) {
                scc.iter().for_each(|i| flags[i.index()] = true);
            }
        }
        flags
    }
}

/// Checks one node's inputs; returns the resolved node and its errors.
fn check_node(
    node: &GraphNode,
    reg: &RegisteredNode,
    types: &[RegisteredNode],
    graph: &Graph,
    dirs: &Arc<Dirs>,
) -> (ResolvedNode, Vec<ValidationError>) {
    let schema = &reg.schema;
    let mut errors = Vec::new();
    let mut inputs = Vec::new();
    let mut constants = Inputs::new();
    let specs = schema
        .required
        .iter()
        .map(|s| (s, true))
        .chain(schema.optional.iter().map(|s| (s, false)));
    for (spec, required) in specs {
        match node.inputs.get(&spec.name) {
            None if required => errors.push(ValidationError::new(
                ErrorType::RequiredInputMissing,
                "Required input is missing",
                spec.name.clone(),
                json!({"input_name": spec.name}),
            )),
            None => {}
            Some(value) => match check_input(spec, value, types, graph) {
                Ok(r) => {
                    if let ResolvedInput::Constant(c) = &r {
                        constants.insert(spec.name.clone(), c.clone());
                    }
                    inputs.push((spec.name.clone(), r));
                }
                Err(e) => errors.push(*e),
            },
        }
    }
    let resolved = ResolvedNode {
        id: node.id.clone(),
        node_type: reg.clone(),
        inputs,
        is_changed: node.is_changed.clone(),
        title: node.title.clone(),
        constants,
    };
    if errors.is_empty() {
        let ctx = CheckContext {
            node_id: node.id.0.clone(),
            dirs: Arc::clone(dirs),
            linked: resolved.linked_input_names(),
        };
        if let Err(err) = reg.node.validate(resolved.constant_inputs(), &ctx) {
            errors.push(ValidationError::new(
                ErrorType::CustomValidationFailed,
                "Custom validation failed for node",
                err.message,
                json!({}),
            ));
        }
    }
    (resolved, errors)
}

fn check_input(
    spec: &InputSpec,
    value: &InputValue,
    types: &[RegisteredNode],
    graph: &Graph,
) -> Result<ResolvedInput, Box<ValidationError>> {
    let name = &spec.name;
    let bad_link = |received: &Json, why: &str| {
        Box::new(ValidationError::new(
            ErrorType::BadLinkedInput,
            "Bad linked input, must be a length-2 list of [string, int]",
            format!("{name}: {why}"),
            json!({"input_name": name, "input_config": spec.to_json(), "received_value": received}),
        ))
    };
    match value {
        InputValue::BadLink(raw) => Err(bad_link(
            raw,
            "the output index is not a non-negative integer",
        )),
        InputValue::Literal(Json::Array(items)) if items.len() != 2 => Err(bad_link(
            &Json::Array(items.clone()),
            "arrays that are not links must be wrapped as {\"__value__\": [...]}",
        )),
        InputValue::Link(link) => {
            let raw = || json!([link.node.as_str(), link.slot]);
            let Some(source) = graph.position(link.node.as_str()) else {
                return Err(bad_link(
                    &raw(),
                    &format!("linked node '{}' does not exist", link.node),
                ));
            };
            let source = &types[source].schema;
            let Some(out) = source.outputs.get(link.slot) else {
                return Err(bad_link(
                    &raw(),
                    &format!(
                        "node '{}' ({}) has {} outputs, no slot {}",
                        link.node,
                        source.name,
                        source.outputs.len(),
                        link.slot
                    ),
                ));
            };
            let input_type = spec.kind.type_name();
            if !types_match(&out.type_name, input_type) {
                return Err(Box::new(ValidationError::new(
                    ErrorType::ReturnTypeMismatch,
                    "Return type mismatch between linked nodes",
                    format!(
                        "{name}, received_type({}) mismatch input_type({input_type})",
                        out.type_name
                    ),
                    json!({"input_name": name, "input_config": spec.to_json(), "received_type": out.type_name,
                           "linked_node": raw()}),
                )));
            }
            Ok(ResolvedInput::Link {
                node: link.node.clone(),
                slot: link.slot,
            })
        }
        InputValue::Literal(literal) | InputValue::Wrapped(literal) => {
            coerce_literal(&spec.kind, spec.options.min, spec.options.max, literal)
                .map(ResolvedInput::Constant)
                .map_err(|e| Box::new(literal_error(spec, literal, e)))
        }
    }
}

/// ComfyUI's `validate_node_input`: equal, either side `*`, or overlapping comma unions.
pub fn types_match(output_type: &str, input_type: &str) -> bool {
    if output_type == input_type || output_type == "*" || input_type == "*" {
        return true;
    }
    let outs: HashSet<&str> = output_type.split(',').map(str::trim).collect();
    input_type
        .split(',')
        .map(str::trim)
        .any(|t| outs.contains(t))
}

fn literal_error(spec: &InputSpec, literal: &Json, e: CoerceError) -> ValidationError {
    let name = &spec.name;
    let extra =
        json!({"input_name": name, "input_config": spec.to_json(), "received_value": literal});
    match e {
        CoerceError::Convert(why) => {
            let mut extra = extra;
            extra["exception_message"] = json!(why);
            ValidationError::new(
                ErrorType::InvalidInputType,
                format!(
                    "Failed to convert an input value to a {} value",
                    spec.kind.type_name()
                ),
                format!("{name}, {literal}, {why}"),
                extra,
            )
        }
        CoerceError::BelowMin(m) => ValidationError::new(
            ErrorType::ValueSmallerThanMin,
            format!(
                "Value {} smaller than min of {}",
                display(literal),
                m.to_json()
            ),
            name.clone(),
            extra,
        ),
        CoerceError::AboveMax(m) => ValidationError::new(
            ErrorType::ValueBiggerThanMax,
            format!(
                "Value {} bigger than max of {}",
                display(literal),
                m.to_json()
            ),
            name.clone(),
            extra,
        ),
        CoerceError::NotInList => {
            let options = match &spec.kind {
                InputType::Combo(o) if o.len() > 20 => {
                    format!("[{}, ... ({} more)]", quoted(&o[..20]), o.len() - 20)
                }
                InputType::Combo(o) => format!("[{}]", quoted(o)),
                _ => String::new(),
            };
            ValidationError::new(
                ErrorType::ValueNotInList,
                "Value not in list",
                format!("{name}: '{}' not in {options}", display(literal)),
                extra,
            )
        }
    }
}

fn display(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_matching() {
        assert!(types_match("IMAGE", "IMAGE"));
        assert!(types_match("*", "IMAGE"));
        assert!(types_match("LATENT", "*"));
        assert!(types_match("INT,FLOAT", "FLOAT"));
        assert!(!types_match("IMAGE", "MASK"));
    }
}
