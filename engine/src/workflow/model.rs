//! The editor's saved workflow (litegraph serialisation, schema 0.4 and 1), read into typed structs.
//!
//! Only what the conversion needs is kept: nodes with their slots, modes and widget values, links, and the
//! subgraph definitions. Positions, sizes, groups, colours and native reroutes only affect drawing.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};

use super::error::WorkflowError;

/// A link id (`links[i][0]` in 0.4, `links[i].id` in 1).
pub(crate) type LinkId = i64;

/// The id litegraph gives a subgraph's input boundary node.
pub(crate) const SUBGRAPH_INPUT_ID: &str = "-10";

/// One link: which output feeds which input.
#[derive(Debug, Clone)]
pub(crate) struct UiLink {
    pub origin_id: String,
    pub origin_slot: usize,
}

/// One input slot of a node.
#[derive(Debug, Clone)]
pub(crate) struct UiInput {
    pub name: String,
    pub type_name: String,
    pub link: Option<LinkId>,
    /// `widget.name` when the slot belongs to a widget (a widget converted to an input).
    pub widget: Option<String>,
}

/// One output slot of a node.
#[derive(Debug, Clone)]
pub(crate) struct UiOutput {
    pub type_name: String,
}

/// One node as saved.
#[derive(Debug, Clone)]
pub(crate) struct UiNode {
    /// The id as JavaScript's `String(id)` writes it.
    pub id: String,
    pub type_name: String,
    pub title: Option<String>,
    pub mode: i64,
    /// The execution order litegraph computed when the workflow was saved.
    pub order: Option<i64>,
    pub inputs: Vec<UiInput>,
    pub outputs: Vec<UiOutput>,
    pub widgets_values: Option<Vec<Json>>,
    pub widgets_values_named: Option<Map<String, Json>>,
    pub properties: Map<String, Json>,
}

/// Node mode NEVER ("muted"): dropped.
pub(crate) const MODE_NEVER: i64 = 2;
/// Node mode BYPASS: removed, its outputs rewired to a matching input.
pub(crate) const MODE_BYPASS: i64 = 4;

/// One graph: the root workflow or a subgraph definition.
#[derive(Debug, Clone, Default)]
pub(crate) struct UiGraph {
    pub nodes: Vec<UiNode>,
    pub links: HashMap<LinkId, UiLink>,
    /// Links by origin `(node id, slot)`, for nodes that push values to their targets.
    pub targets: HashMap<(String, usize), Vec<(String, usize)>>,
}

impl UiGraph {
    pub fn node(&self, id: &str) -> Option<&UiNode> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// One input or output of a subgraph definition.
#[derive(Debug, Clone)]
pub(crate) struct SubgraphIo {
    pub link_ids: Vec<LinkId>,
}

/// A subgraph definition (`definitions.subgraphs[]`).
#[derive(Debug, Clone)]
pub(crate) struct SubgraphDef {
    pub graph: UiGraph,
    pub outputs: Vec<SubgraphIo>,
}

/// A whole workflow.
#[derive(Debug, Clone)]
pub(crate) struct Workflow {
    pub root: UiGraph,
    /// Definitions by id (a subgraph instance's `type`), nested definitions included.
    pub subgraphs: HashMap<String, SubgraphDef>,
    /// Legacy group-node definitions (`extra.groupNodes`), which are not converted.
    pub group_node_types: Vec<String>,
}

impl Workflow {
    /// Reads a workflow document.
    pub fn parse(doc: &Json) -> Result<Self, WorkflowError> {
        let obj = doc
            .as_object()
            .ok_or_else(|| shape("a workflow must be a JSON object"))?;
        let root = parse_graph(obj, "the workflow")?;
        let mut subgraphs = HashMap::new();
        collect_definitions(obj, &mut subgraphs, 0)?;
        let group_node_types = obj
            .get("extra")
            .and_then(|e| e.get("groupNodes"))
            .and_then(Json::as_object)
            .map(|m| m.keys().map(|k| format!("workflow>{k}")).collect())
            .unwrap_or_default();
        Ok(Workflow {
            root,
            subgraphs,
            group_node_types,
        })
    }
}

/// Whether a document looks like a UI workflow rather than an API graph: a `nodes` array.
pub fn looks_like_ui_workflow(doc: &Json) -> bool {
    doc.get("nodes").is_some_and(Json::is_array)
}

fn shape(message: impl Into<String>) -> WorkflowError {
    WorkflowError::Shape(message.into())
}

fn collect_definitions(
    obj: &Map<String, Json>,
    into: &mut HashMap<String, SubgraphDef>,
    depth: usize,
) -> Result<(), WorkflowError> {
    // Definitions nest only as deep as subgraphs do; a bound keeps a hostile document from recursing forever.
    if depth > 64 {
        return Err(shape("subgraph definitions are nested more than 64 deep"));
    }
    let Some(list) = obj
        .get("definitions")
        .and_then(|d| d.get("subgraphs"))
        .and_then(Json::as_array)
    else {
        return Ok(());
    };
    for (i, def) in list.iter().enumerate() {
        let def = def
            .as_object()
            .ok_or_else(|| shape(format!("definitions.subgraphs[{i}] is not an object")))?;
        let id = def
            .get("id")
            .and_then(Json::as_str)
            .ok_or_else(|| shape(format!("definitions.subgraphs[{i}] has no string id")))?;
        let where_ = format!("subgraph {id}");
        let graph = parse_graph(def, &where_)?;
        let outputs = parse_io(def.get("outputs"), &where_)?;
        into.insert(id.to_string(), SubgraphDef { graph, outputs });
        collect_definitions(def, into, depth + 1)?;
    }
    Ok(())
}

fn parse_io(list: Option<&Json>, where_: &str) -> Result<Vec<SubgraphIo>, WorkflowError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| shape(format!("{where_}: inputs/outputs must be arrays")))?;
    Ok(list
        .iter()
        .map(|io| SubgraphIo {
            link_ids: io
                .get("linkIds")
                .and_then(Json::as_array)
                .map(|ids| ids.iter().filter_map(Json::as_i64).collect())
                .unwrap_or_default(),
        })
        .collect())
}

fn parse_graph(obj: &Map<String, Json>, where_: &str) -> Result<UiGraph, WorkflowError> {
    let nodes = obj
        .get("nodes")
        .and_then(Json::as_array)
        .ok_or_else(|| shape(format!("{where_} has no `nodes` array")))?;
    let nodes = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| parse_node(n, &format!("{where_}, nodes[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut links = HashMap::new();
    let mut targets: HashMap<(String, usize), Vec<(String, usize)>> = HashMap::new();
    if let Some(list) = obj.get("links") {
        let list = list
            .as_array()
            .ok_or_else(|| shape(format!("{where_}: `links` must be an array")))?;
        for (i, link) in list.iter().enumerate() {
            let (id, link, target) = parse_link(link)
                .ok_or_else(|| shape(format!("{where_}, links[{i}] is not a link")))?;
            targets
                .entry((link.origin_id.clone(), link.origin_slot))
                .or_default()
                .push(target);
            links.insert(id, link);
        }
    }
    Ok(UiGraph {
        nodes,
        links,
        targets,
    })
}

/// A link in either form: `[id, origin_id, origin_slot, target_id, target_slot, type]` (0.4) or
/// `{id, origin_id, origin_slot, target_id, target_slot, type}` (1).
fn parse_link(link: &Json) -> Option<(LinkId, UiLink, (String, usize))> {
    let field = |index: usize, key: &str| match link {
        Json::Array(items) => items.get(index),
        Json::Object(m) => m.get(key),
        _ => None,
    };
    let id = field(0, "id")?.as_i64()?;
    let origin_id = node_id(field(1, "origin_id")?)?;
    let origin_slot = slot(field(2, "origin_slot")?)?;
    let target_id = node_id(field(3, "target_id")?)?;
    let target_slot = slot(field(4, "target_slot")?)?;
    Some((
        id,
        UiLink {
            origin_id,
            origin_slot,
        },
        (target_id, target_slot),
    ))
}

fn slot(v: &Json) -> Option<usize> {
    v.as_u64().and_then(|s| usize::try_from(s).ok())
}

/// A node id as JavaScript's `String(id)` writes it.
fn node_id(v: &Json) -> Option<String> {
    match v {
        Json::Number(n) => n.as_i64().map(|i| i.to_string()),
        Json::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// A slot type: a string, or a legacy number (events).
fn type_name(v: Option<&Json>) -> String {
    match v {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn parse_node(n: &Json, where_: &str) -> Result<UiNode, WorkflowError> {
    let obj = n
        .as_object()
        .ok_or_else(|| shape(format!("{where_} is not an object")))?;
    let id = obj
        .get("id")
        .and_then(node_id)
        .ok_or_else(|| shape(format!("{where_} has no id")))?;
    let type_name_ = obj
        .get("type")
        .and_then(Json::as_str)
        .ok_or_else(|| shape(format!("node {id} has no type")))?
        .to_string();
    let inputs = slots(obj, "inputs", &id)?
        .iter()
        .map(|s| UiInput {
            name: s
                .get("name")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string(),
            type_name: type_name(s.get("type")),
            link: s.get("link").and_then(Json::as_i64),
            widget: s
                .get("widget")
                .and_then(|w| w.get("name"))
                .and_then(Json::as_str)
                .map(str::to_string),
        })
        .collect();
    let outputs = slots(obj, "outputs", &id)?
        .iter()
        .map(|s| UiOutput {
            type_name: type_name(s.get("type")),
        })
        .collect();
    // Some custom nodes save `widgets_values` as an object keyed by widget name.
    let (widgets_values, legacy_named) = match obj.get("widgets_values") {
        Some(Json::Array(items)) => (Some(items.clone()), None),
        Some(Json::Object(m)) => (None, Some(m.clone())),
        _ => (None, None),
    };
    let widgets_values_named = obj
        .get("widgets_values_named")
        .and_then(Json::as_object)
        .cloned()
        .or(legacy_named);
    Ok(UiNode {
        id,
        type_name: type_name_,
        title: obj.get("title").and_then(Json::as_str).map(str::to_string),
        mode: obj.get("mode").and_then(Json::as_i64).unwrap_or(0),
        order: obj.get("order").and_then(Json::as_i64),
        inputs,
        outputs,
        widgets_values,
        widgets_values_named,
        properties: obj
            .get("properties")
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_default(),
    })
}

/// A node's `inputs` or `outputs` array (absent or null: none).
fn slots<'a>(obj: &'a Map<String, Json>, key: &str, id: &str) -> Result<&'a [Json], WorkflowError> {
    match obj.get(key) {
        None | Some(Json::Null) => Ok(&[]),
        Some(Json::Array(items)) => Ok(items),
        Some(_) => Err(shape(format!("node {id}: `{key}` must be an array"))),
    }
}
