//! The ComfyUI API format: parsing, inspecting and lossless round-tripping of prompts.
//!
//! A prompt is `{node_id: {"class_type", "inputs": {name: literal | [src_id, slot]}, "_meta": {"title"}}}`,
//! optionally wrapped as `{"prompt": {...}, "extra_data": {...}, "client_id": ..., ...}` as `POST /prompt`
//! receives it. The parsed [`Graph`] keeps the original JSON, so writing it back neither reorders nor drops
//! fields.

use std::fmt;
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Map, Value as Json};

/// A node's id within a graph (`"3"`, `"45:12"` …).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub String);

impl NodeId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for NodeId {
    fn from(s: &str) -> Self {
        NodeId(s.to_string())
    }
}

impl From<String> for NodeId {
    fn from(s: String) -> Self {
        NodeId(s)
    }
}

impl std::borrow::Borrow<str> for NodeId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A link to another node's output: `["4", 0]` in the prompt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Link {
    /// The source node.
    pub node: NodeId,
    /// The source node's output slot.
    pub slot: usize,
}

/// One input value as written in the prompt.
#[derive(Debug, Clone, PartialEq)]
pub enum InputValue {
    /// A link: a 2-element array whose first element is a string and second a non-negative integer
    /// (an integral float such as `0.0` counts, as in ComfyUI).
    Link(Link),
    /// A link-shaped array (`["4", x]`) whose slot is not a valid index (negative, fractional, huge).
    BadLink(Json),
    /// A plain literal. May be an array that is not a link: the validator rejects arrays whose length is
    /// not 2 (`bad_linked_input`) and others fail type conversion.
    Literal(Json),
    /// A literal wrapped as `{"__value__": …}` (how the frontend sends list-valued widgets), unwrapped.
    Wrapped(Json),
}

impl InputValue {
    /// Classifies a raw input value by ComfyUI's rules.
    pub fn from_json(value: &Json) -> Self {
        match value {
            Json::Array(items)
                if items.len() == 2 && items[0].is_string() && items[1].is_number() =>
            {
                let node = NodeId(items[0].as_str().unwrap_or_default().to_string());
                match slot_index(&items[1]) {
                    Some(slot) => InputValue::Link(Link { node, slot }),
                    None => InputValue::BadLink(value.clone()),
                }
            }
            Json::Object(m) if m.contains_key("__value__") => {
                InputValue::Wrapped(m.get("__value__").cloned().unwrap_or(Json::Null))
            }
            other => InputValue::Literal(other.clone()),
        }
    }

    /// The link, if this is one.
    pub fn as_link(&self) -> Option<&Link> {
        match self {
            InputValue::Link(l) => Some(l),
            _ => None,
        }
    }
}

fn slot_index(n: &Json) -> Option<usize> {
    if let Some(u) = n.as_u64() {
        return usize::try_from(u).ok();
    }
    let f = n.as_f64()?;
    if f >= 0.0 && f.fract() == 0.0 && f < u32::MAX as f64 {
        Some(f as usize)
    } else {
        None
    }
}

/// One node of a prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphNode {
    /// The node's id.
    pub id: NodeId,
    /// Its class_type.
    pub class_type: String,
    /// Its inputs, in prompt order.
    pub inputs: IndexMap<String, InputValue>,
    /// `_meta.title`, if given.
    pub title: Option<String>,
    /// The `is_changed` override, if given: replaces the node's fingerprint in the cache key.
    pub is_changed: Option<Json>,
}

impl GraphNode {
    /// The links this node's inputs make, as `(input name, link)`.
    pub fn links(&self) -> impl Iterator<Item = (&str, &Link)> {
        self.inputs
            .iter()
            .filter_map(|(k, v)| v.as_link().map(|l| (k.as_str(), l)))
    }
}

/// Why a prompt could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The text is not valid JSON.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Syntax {
        /// What serde_json reported.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// The JSON is not a prompt (e.g. a node is not an object, or has no class_type). Every problem
    /// found is listed.
    #[error("invalid prompt: {}", problems.join("; "))]
    Structure {
        /// One line per problem.
        problems: Vec<String>,
    },
}

impl ParseError {
    /// ComfyUI's error JSON for this problem (`invalid_prompt`, no node errors).
    pub fn to_comfy_json(&self) -> Json {
        let (message, details) = match self {
            ParseError::Syntax { .. } => ("Invalid prompt JSON".to_string(), self.to_string()),
            ParseError::Structure { problems } => {
                ("Invalid prompt".to_string(), problems.join("\n"))
            }
        };
        serde_json::json!({
            "error": {"type": "invalid_prompt", "message": message, "details": details, "extra_info": {}},
            "node_errors": {}
        })
    }
}

/// A parsed prompt: nodes in document order, plus the original JSON for lossless output.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    nodes: IndexMap<NodeId, GraphNode>,
    raw: Arc<Json>,
}

impl Graph {
    /// Parses a bare API-format prompt from text. JSON syntax errors carry line and column.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        Self::from_json(parse_json(text)?)
    }

    /// Builds a graph from a JSON value (the prompt object).
    pub fn from_json(raw: Json) -> Result<Self, ParseError> {
        let Json::Object(map) = &raw else {
            return Err(ParseError::Structure {
                problems: vec![format!(
                    "a prompt must be a JSON object of nodes, found {}",
                    json_kind(&raw)
                )],
            });
        };
        let mut problems = Vec::new();
        let mut nodes = IndexMap::with_capacity(map.len());
        for (id, node) in map {
            match parse_node(id, node) {
                Ok(n) => {
                    nodes.insert(n.id.clone(), n);
                }
                Err(p) => problems.push(p),
            }
        }
        if problems.is_empty() {
            Ok(Graph {
                nodes,
                raw: Arc::new(raw),
            })
        } else {
            Err(ParseError::Structure { problems })
        }
    }

    /// The nodes, in document order.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = &GraphNode> {
        self.nodes.values()
    }
    /// A node by id.
    pub fn node(&self, id: &str) -> Option<&GraphNode> {
        self.nodes.get(id)
    }
    /// A node's position in document order.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.nodes.get_index_of(id)
    }
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    /// The original JSON, unchanged (what a node's `ctx.prompt()` returns).
    pub fn raw(&self) -> &Json {
        &self.raw
    }
    /// The original JSON, shared (cheap to hand to every node of a run).
    pub fn raw_arc(&self) -> &Arc<Json> {
        &self.raw
    }
    /// The graph as JSON text, field order and values exactly as parsed.
    pub fn to_json_string(&self) -> String {
        self.raw.to_string()
    }
}

impl serde::Serialize for Graph {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

fn parse_node(id: &str, node: &Json) -> Result<GraphNode, String> {
    let Json::Object(obj) = node else {
        return Err(format!(
            "node '{id}' must be an object, found {}",
            json_kind(node)
        ));
    };
    let class_type = match obj.get("class_type") {
        Some(Json::String(s)) if !s.is_empty() => s.clone(),
        Some(other) => {
            return Err(format!(
                "node '{id}': class_type must be a non-empty string, found {}",
                json_kind(other)
            ))
        }
        None => return Err(format!("node '{id}' has no class_type")),
    };
    let inputs = match obj.get("inputs") {
        None | Some(Json::Null) => IndexMap::new(),
        Some(Json::Object(m)) => m
            .iter()
            .map(|(k, v)| (k.clone(), InputValue::from_json(v)))
            .collect(),
        Some(other) => {
            return Err(format!(
                "node '{id}': inputs must be an object, found {}",
                json_kind(other)
            ))
        }
    };
    let title = obj
        .get("_meta")
        .and_then(|m| m.get("title"))
        .and_then(Json::as_str)
        .map(str::to_string);
    Ok(GraphNode {
        id: NodeId(id.to_string()),
        class_type,
        inputs,
        title,
        is_changed: obj.get("is_changed").cloned(),
    })
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Parses JSON text, reporting syntax errors with line and column.
pub fn parse_json(text: &str) -> Result<Json, ParseError> {
    serde_json::from_str(text).map_err(|e| ParseError::Syntax {
        message: e.to_string(),
        line: e.line(),
        column: e.column(),
    })
}

/// A prompt plus the request around it (`POST /prompt` body, or a bare graph file).
#[derive(Debug, Clone, PartialEq)]
pub struct PromptRequest {
    /// The graph.
    pub prompt: Graph,
    /// `extra_data` (`extra_pnginfo`, …); an empty object when absent.
    pub extra_data: Json,
    /// `client_id`, if given (also copied into `extra_data.client_id`, as ComfyUI does).
    pub client_id: Option<String>,
    /// `prompt_id`, if given.
    pub prompt_id: Option<String>,
    /// `partial_execution_targets`: run only these output nodes.
    pub partial_execution_targets: Option<Vec<NodeId>>,
    raw: Json,
}

impl PromptRequest {
    /// Parses either a bare graph or a `{"prompt": …, "extra_data": …}` wrapper. A document is a wrapper
    /// when its `prompt` member is an object without a `class_type` (so a node whose id is `"prompt"` is
    /// still read as a node).
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        Self::from_json(parse_json(text)?)
    }

    /// Like [`parse`](Self::parse), from a JSON value.
    pub fn from_json(raw: Json) -> Result<Self, ParseError> {
        let is_wrapper = raw
            .get("prompt")
            .is_some_and(|p| p.is_object() && p.get("class_type").is_none());
        if !is_wrapper {
            return Ok(Self::from_graph(Graph::from_json(raw)?));
        }
        let prompt = Graph::from_json(raw.get("prompt").cloned().unwrap_or(Json::Null))?;
        let mut problems = Vec::new();
        let mut extra_data = match raw.get("extra_data") {
            None | Some(Json::Null) => Json::Object(Map::new()),
            Some(Json::Object(m)) => Json::Object(m.clone()),
            Some(other) => {
                problems.push(format!(
                    "extra_data must be an object, found {}",
                    json_kind(other)
                ));
                Json::Object(Map::new())
            }
        };
        let client_id = optional_string(&raw, "client_id", &mut problems);
        let prompt_id = optional_string(&raw, "prompt_id", &mut problems);
        let targets = match raw.get("partial_execution_targets") {
            None | Some(Json::Null) => None,
            Some(Json::Array(items)) => {
                let mut ids = Vec::new();
                for item in items {
                    match item {
                        Json::String(s) => ids.push(NodeId(s.clone())),
                        other => problems.push(format!(
                            "partial_execution_targets must hold node id strings, found {}",
                            json_kind(other)
                        )),
                    }
                }
                Some(ids)
            }
            Some(other) => {
                problems.push(format!(
                    "partial_execution_targets must be an array, found {}",
                    json_kind(other)
                ));
                None
            }
        };
        if !problems.is_empty() {
            return Err(ParseError::Structure { problems });
        }
        if let (Some(id), Json::Object(m)) = (&client_id, &mut extra_data) {
            m.insert("client_id".into(), Json::String(id.clone()));
        }
        Ok(PromptRequest {
            prompt,
            extra_data,
            client_id,
            prompt_id,
            partial_execution_targets: targets,
            raw,
        })
    }

    /// A request for a bare graph.
    pub fn from_graph(prompt: Graph) -> Self {
        let raw = (**prompt.raw_arc()).clone();
        PromptRequest {
            prompt,
            extra_data: Json::Object(Map::new()),
            client_id: None,
            prompt_id: None,
            partial_execution_targets: None,
            raw,
        }
    }

    /// The document as parsed (wrapper or bare graph), unchanged.
    pub fn raw(&self) -> &Json {
        &self.raw
    }

    /// `extra_data.extra_pnginfo`, if present.
    pub fn extra_pnginfo(&self) -> Option<&Json> {
        self.extra_data.get("extra_pnginfo")
    }
}

fn optional_string(raw: &Json, key: &str, problems: &mut Vec<String>) -> Option<String> {
    match raw.get(key) {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(other) => {
            problems.push(format!(
                "{key} must be a string, found {}",
                json_kind(other)
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn link_rule_matches_comfyui() {
        let cases = [
            (json!(["4", 0]), "link"),
            (json!(["4", 1.0]), "link"),
            (json!(["4", -1]), "bad"),
            (json!(["4", 0.5]), "bad"),
            (json!([4, 0]), "literal"),
            (json!(["4", "0"]), "literal"),
            (json!(["4", 0, 1]), "literal"),
            (json!({"__value__": [1, 2]}), "wrapped"),
            (json!("4"), "literal"),
        ];
        for (value, want) in cases {
            let got = match InputValue::from_json(&value) {
                InputValue::Link(_) => "link",
                InputValue::BadLink(_) => "bad",
                InputValue::Literal(_) => "literal",
                InputValue::Wrapped(_) => "wrapped",
            };
            assert_eq!(got, want, "{value}");
        }
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let err = Graph::parse("{\n  \"1\": {\"class_type\": \"A\",}\n}").unwrap_err();
        match err {
            ParseError::Syntax { line, column, .. } => {
                assert_eq!(line, 2);
                assert!(column > 20, "column {column}");
            }
            other => panic!("{other:?}"),
        }
    }
}
