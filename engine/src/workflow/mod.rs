//! The editor's UI workflow (litegraph JSON, schema 0.4 and 1) converted to the API format, the way the
//! frontend's `graphToPrompt` does it, so saved workflows run headlessly.
//!
//! The steps follow the frontend (1.58): frontend-only `PrimitiveNode`s push their value into the widgets
//! they feed; subgraph instances are flattened into `outer:inner` execution ids; every node that is not
//! frontend-only, muted (mode 2) or bypassed (mode 4) becomes a prompt node whose widget values come from
//! `widgets_values_named` or `widgets_values` matched against the catalogue's widgets ([`widgets`]), and
//! whose linked inputs are followed through Reroutes, bypassed nodes and subgraph boundaries
//! ([`resolve`]); links to nodes that end up absent are dropped. Notes and groups disappear.
//!
//! What the frontend does in node-specific JavaScript (dynamic prompts `{a|b}`, `%date%` text
//! replacement, custom widgets of plugins) is not reproduced; values pass through as saved.

mod document;
mod error;
mod flatten;
mod model;
mod resolve;
mod source;
mod widgets;

use std::collections::HashMap;

use indexmap::IndexMap;
use serde_json::{json, Map, Value as Json};

use crate::registry::Registry;
pub use document::{into_api_document, DocumentKind};
pub use error::WorkflowError;
use flatten::{flatten, ExecNode, Scope};
pub use model::looks_like_ui_workflow;
use model::{UiGraph, Workflow, MODE_BYPASS, MODE_NEVER};
use resolve::{is_virtual_type, Resolved, Resolver};
pub use source::{
    document_from_bytes, document_from_png_chunks, is_png, SourceError, PNG_SIGNATURE,
};
use widgets::{match_values, widgets_of, SavedValues};

/// The PrimitiveNode property that turns on `%…%` text replacement, which is not reproduced.
const REPLACE_PROPERTY: &str = "Run widget replace on values";

/// Converts a UI workflow to an API-format prompt (`{id: {inputs, class_type, _meta}}`), using the
/// catalogue for each node's widgets.
pub fn to_api(workflow: &Json, registry: &Registry) -> Result<Json, WorkflowError> {
    let wf = Workflow::parse(workflow)?;
    let table = flatten(&wf)?;
    let pushed = primitive_values(&wf)?;
    let resolver = Resolver {
        wf: &wf,
        table: &table,
    };
    let mut output: IndexMap<String, Json> = IndexMap::new();
    for exec in table.values() {
        let node = exec.node;
        if is_virtual_type(&node.type_name)
            || wf.subgraphs.contains_key(&node.type_name)
            || node.mode == MODE_NEVER
            || node.mode == MODE_BYPASS
        {
            continue;
        }
        output.insert(
            exec.id.clone(),
            prompt_node(exec, &wf, registry, &resolver, &pushed)?,
        );
    }
    drop_links_to_absent_nodes(&mut output);
    Ok(Json::Object(in_javascript_key_order(output)))
}

/// Widget values pushed by PrimitiveNodes: (graph, target node id) → widget name → value.
type Pushed<'w> = HashMap<(Scope<'w>, String), HashMap<String, Json>>;

fn primitive_values(wf: &Workflow) -> Result<Pushed<'_>, WorkflowError> {
    let mut pushed = Pushed::new();
    let graphs = std::iter::once((Scope::Root, &wf.root)).chain(
        wf.subgraphs
            .iter()
            .map(|(id, def)| (Scope::Subgraph(id.as_str()), &def.graph)),
    );
    for (scope, graph) in graphs {
        for node in graph
            .nodes
            .iter()
            .filter(|n| n.type_name == "PrimitiveNode")
        {
            let Some(value) = node.widgets_values.as_ref().and_then(|v| v.first()) else {
                continue;
            };
            let replaces = node.properties.get(REPLACE_PROPERTY) == Some(&Json::Bool(true));
            if replaces && value.as_str().is_some_and(|s| s.contains('%')) {
                return Err(WorkflowError::Unsupported {
                    node: node.id.clone(),
                    problem: format!(
                        "PrimitiveNode with '{REPLACE_PROPERTY}' on: %…% replacement is done by the editor; \
                         turn the property off or write the final text"
                    ),
                });
            }
            push_to_targets(graph, scope, &node.id, value, &mut pushed);
        }
    }
    Ok(pushed)
}

fn push_to_targets<'w>(
    graph: &UiGraph,
    scope: Scope<'w>,
    source: &str,
    value: &Json,
    pushed: &mut Pushed<'w>,
) {
    let Some(targets) = graph.targets.get(&(source.to_string(), 0)) else {
        return;
    };
    for (target_id, target_slot) in targets {
        let widget = graph
            .node(target_id)
            .and_then(|t| t.inputs.get(*target_slot))
            .and_then(|input| input.widget.clone());
        if let Some(widget) = widget {
            pushed
                .entry((scope, target_id.clone()))
                .or_default()
                .insert(widget, value.clone());
        }
    }
}

fn prompt_node<'w>(
    exec: &ExecNode<'w>,
    wf: &'w Workflow,
    registry: &Registry,
    resolver: &Resolver<'_, 'w>,
    pushed: &Pushed<'w>,
) -> Result<Json, WorkflowError> {
    let node = exec.node;
    if wf.group_node_types.contains(&node.type_name) {
        return Err(WorkflowError::Unsupported {
            node: exec.id.clone(),
            problem: format!(
                "'{}' is a legacy group node; convert it to a subgraph in the editor and save again",
                node.type_name
            ),
        });
    }
    let Some(registered) = registry.get(&node.type_name) else {
        return Err(WorkflowError::UnknownNodeType {
            node: exec.id.clone(),
            class_type: node.type_name.clone(),
        });
    };
    let schema = &registered.schema;
    let saved = SavedValues {
        positional: node.widgets_values.as_deref(),
        named: node.widgets_values_named.as_ref(),
    };
    let values =
        match_values(&widgets_of(schema), &saved).map_err(|problem| WorkflowError::Widgets {
            node: exec.id.clone(),
            class_type: node.type_name.clone(),
            problem,
        })?;
    let overrides = pushed.get(&(exec.scope, node.id.clone()));
    let mut inputs = Map::new();
    for (name, value) in values {
        let value = overrides
            .and_then(|o| o.get(&name))
            .cloned()
            .unwrap_or(value);
        inputs.insert(name, wrap_array(value));
    }
    for (slot, input) in node.inputs.iter().enumerate() {
        match resolver.input(exec, slot, None, &mut Default::default())? {
            Some(Resolved::Output(origin, origin_slot)) => {
                inputs.insert(input.name.clone(), json!([origin, origin_slot]));
            }
            Some(Resolved::Widget(value)) => {
                inputs.insert(input.name.clone(), wrap_array(value));
            }
            None => {}
        }
    }
    let title = node.title.clone().unwrap_or_else(|| {
        if schema.display_name.is_empty() {
            schema.name.clone()
        } else {
            schema.display_name.clone()
        }
    });
    let mut meta = Map::new();
    meta.insert("title".into(), Json::String(title));
    for key in ["cnr_id", "aux_id", "ver"] {
        if let Some(Json::String(s)) = node.properties.get(key) {
            if !s.is_empty() {
                meta.insert(key.into(), Json::String(s.clone()));
            }
        }
    }
    Ok(json!({"inputs": inputs, "class_type": node.type_name, "_meta": meta}))
}

/// Array values are reserved for links in the prompt; the frontend wraps list-valued widgets.
fn wrap_array(value: Json) -> Json {
    if value.is_array() {
        json!({ "__value__": value })
    } else {
        value
    }
}

fn drop_links_to_absent_nodes(output: &mut IndexMap<String, Json>) {
    let present: std::collections::HashSet<String> = output.keys().cloned().collect();
    for node in output.values_mut() {
        if let Some(Json::Object(inputs)) = node.get_mut("inputs") {
            inputs.retain(|_, v| match v.as_array().map(Vec::as_slice) {
                Some([Json::String(id), _]) => present.contains(id),
                _ => true,
            });
        }
    }
}

/// JavaScript objects list integer-like keys first, ascending, then the others in insertion order; the
/// frontend's prompt object is such an object.
fn in_javascript_key_order(output: IndexMap<String, Json>) -> Map<String, Json> {
    let (mut integers, others): (Vec<_>, Vec<_>) = output
        .into_iter()
        .partition(|(k, _)| array_index(k).is_some());
    integers.sort_by_key(|(k, _)| array_index(k));
    integers.into_iter().chain(others).collect()
}

fn array_index(key: &str) -> Option<u32> {
    let n: u32 = key.parse().ok()?;
    (n.to_string() == key && n != u32::MAX).then_some(n)
}
