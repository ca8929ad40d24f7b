//! What a plugin says it provides (`describe()`), checked before any of it is trusted.

use std::collections::HashSet;

use crate::bindings::v0_1::omnigen::plugin::types as wit;
use crate::params::{parse_schema, ParamKind, ParamSpec};
use crate::text;
use crate::values::PortKind;

/// A typed port of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct PortSpec {
    /// Port name, unique among the node's inputs (or outputs) and parameters.
    pub name: String,
    /// Value kind.
    pub kind: PortKind,
    /// Tooltip text.
    pub description: String,
    /// Inputs only: the node runs without it.
    pub optional: bool,
}

/// One node type of a plugin, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeDescriptor {
    /// Id inside the plugin.
    pub id: String,
    /// Human-readable name.
    pub display_name: String,
    /// Longer description.
    pub description: String,
    /// Menu category.
    pub category: String,
    /// Typed inputs.
    pub inputs: Vec<PortSpec>,
    /// Typed outputs.
    pub outputs: Vec<PortSpec>,
    /// Parameters (widget inputs).
    pub params: Vec<ParamSpec>,
    /// Same inputs and params give the same outputs.
    pub deterministic: bool,
}

/// What a plugin provides, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginInfo {
    /// Plugin name (equals the manifest's).
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// Its node types.
    pub nodes: Vec<NodeDescriptor>,
}

impl PluginInfo {
    /// The node with id `id`.
    pub fn node(&self, id: &str) -> Option<&NodeDescriptor> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// The optional widget the host adds to every plugin node: it pins the plugin's sha256 (full or a
/// prefix of at least 8 hex digits). Empty means "whatever version is installed". A plugin may not
/// declare an input or parameter of this name.
pub const PIN_INPUT: &str = "plugin_sha256";

const MAX_NODES: usize = 256;
const MAX_PORTS: usize = 64;
const MAX_TEXT: usize = 4096;

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z' | 'A'..='Z' | '_'))
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A name or description from the plugin: refused if too long, control characters escaped (it is
/// shown in catalogues, menus and terminals).
fn short_text(what: &str, s: String) -> Result<String, String> {
    if s.len() > MAX_TEXT {
        Err(format!("{what} is {} bytes (at most {MAX_TEXT})", s.len()))
    } else if what.contains("description") {
        Ok(text::multi_line(&s, MAX_TEXT))
    } else {
        Ok(text::one_line(&s, MAX_TEXT))
    }
}

/// A name the plugin declared, quoted in an error: bounded and escaped.
fn quoted(name: &str) -> String {
    format!("\"{}\"", text::one_line(name, text::MAX_NAME_BYTES))
}

fn check_ports(
    node: &str,
    side: &str,
    ports: Vec<wit::Port>,
    taken: &mut HashSet<String>,
) -> Result<Vec<PortSpec>, String> {
    if ports.len() > MAX_PORTS {
        return Err(format!(
            "node `{node}` declares {} {side} (at most {MAX_PORTS})",
            ports.len()
        ));
    }
    ports
        .into_iter()
        .map(|p| {
            if !is_identifier(&p.name) {
                return Err(format!(
                    "node `{node}`: {side} port name {} is not an identifier",
                    quoted(&p.name)
                ));
            }
            if !taken.insert(p.name.clone()) {
                return Err(format!(
                    "node `{node}`: {side} port `{}` is declared twice",
                    p.name
                ));
            }
            Ok(PortSpec {
                kind: p.kind.into(),
                description: short_text("port description", p.description)?,
                optional: p.optional && side == "inputs",
                name: p.name,
            })
        })
        .collect()
}

fn check_node(n: wit::NodeDescriptor) -> Result<NodeDescriptor, String> {
    if !is_identifier(&n.id) {
        return Err(format!(
            "node id {} is not an identifier (letters, digits, _ and -)",
            quoted(&n.id)
        ));
    }
    let id = n.id;
    // The pin widget is added to every plugin node by the host.
    let mut input_names = HashSet::from([PIN_INPUT.to_string()]);
    let inputs = check_ports(&id, "inputs", n.inputs, &mut input_names)?;
    let outputs = check_ports(&id, "outputs", n.outputs, &mut HashSet::new())?;
    let params = parse_schema(&n.params_schema).map_err(|e| {
        format!(
            "node `{id}`: {}",
            text::one_line(&e, text::MAX_MESSAGE_BYTES)
        )
    })?;
    let mut params = params;
    for p in &mut params {
        p.description = text::multi_line(&p.description, MAX_TEXT);
        let values: Vec<&str> = match &p.kind {
            ParamKind::Choice { choices, default } => choices
                .iter()
                .map(String::as_str)
                .chain([default.as_str()])
                .collect(),
            _ => Vec::new(),
        };
        if values.iter().any(|v| text::needs_escaping(v)) {
            // Choices are matched against graph values, so they cannot be escaped: refuse them.
            return Err(format!(
                "node `{id}`: parameter {}: choices may not contain control characters",
                quoted(&p.name)
            ));
        }
    }
    for p in &params {
        // Parameters and inputs share one namespace in the graph format.
        if !is_identifier(&p.name) || !input_names.insert(p.name.clone()) {
            return Err(format!(
                "node `{id}`: parameter {} is not an identifier or clashes with an input",
                quoted(&p.name)
            ));
        }
    }
    Ok(NodeDescriptor {
        display_name: short_text("display name", n.display_name)?,
        description: short_text("description", n.description)?,
        category: short_text("category", n.category)?,
        inputs,
        outputs,
        params,
        deterministic: n.deterministic,
        id,
    })
}

/// Checks a plugin's self-description: names, counts, sizes, uniqueness and parameter schemas.
pub fn check_info(info: wit::PluginInfo) -> Result<PluginInfo, String> {
    if info.nodes.is_empty() {
        return Err("the plugin declares no nodes".into());
    }
    if info.nodes.len() > MAX_NODES {
        return Err(format!(
            "the plugin declares {} nodes (at most {MAX_NODES})",
            info.nodes.len()
        ));
    }
    let mut seen = HashSet::new();
    let mut nodes = Vec::with_capacity(info.nodes.len());
    for n in info.nodes {
        let node = check_node(n)?;
        if !seen.insert(node.id.clone()) {
            return Err(format!("node id `{}` is declared twice", node.id));
        }
        nodes.push(node);
    }
    Ok(PluginInfo {
        name: short_text("plugin name", info.name)?,
        version: short_text("plugin version", info.version)?,
        nodes,
    })
}
