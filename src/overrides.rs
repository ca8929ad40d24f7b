//! `--set ID.INPUT=VALUE`: overriding one input of one node in a graph before it runs.
//!
//! The argument is parsed once, by clap, into an [`Override`]; applying it (on every run under `watch`)
//! only checks it against the graph and the catalogue.

use std::fmt;
use std::str::FromStr;

use omnigen_engine::NodeId;
use serde_json::Value as Json;

/// One parsed `--set` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The node (the graph's key, e.g. `"3"` or `"45:12"`).
    pub node: NodeId,
    /// The input name.
    pub input: String,
    /// The new value: the VALUE text parsed as JSON, or the text itself as a string.
    pub value: Json,
}

/// A `--set` argument that is not of the form `ID.INPUT=VALUE` (clap names the argument and value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected ID.INPUT=VALUE, e.g. --set 3.seed=42")]
pub struct OverrideSyntaxError;

/// A `--set` argument that does not fit the graph it is applied to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    /// The graph has no node with this id.
    #[error("--set {target}: the graph has no node with id '{node}' (its ids are: {known})")]
    UnknownNode {
        /// `ID.INPUT` as given.
        target: String,
        /// The id that was not found.
        node: NodeId,
        /// The graph's ids, comma separated.
        known: String,
    },
    /// The node's type declares no input of that name.
    #[error("--set {target}: node '{node}' ({class_type}) has no input '{input}' (its inputs are: {known})")]
    UnknownInput {
        /// `ID.INPUT` as given.
        target: String,
        /// The node id.
        node: NodeId,
        /// The node's class type.
        class_type: String,
        /// The input that was not found.
        input: String,
        /// The declared inputs, comma separated.
        known: String,
    },
    /// The graph is not a JSON object of node objects.
    #[error("--set {0}: the graph is not a JSON object of nodes")]
    NotAGraph(String),
}

impl FromStr for Override {
    type Err = OverrideSyntaxError;

    /// Parses `ID.INPUT=VALUE`. The id is everything before the last `.` of the part before `=`,
    /// so ids such as `45:12` work. VALUE is JSON if it parses (`42`, `true`, `"x"`, `["4",0]`),
    /// otherwise the raw text (`--set 6.text=a cat` sets the string `a cat`).
    fn from_str(arg: &str) -> Result<Self, Self::Err> {
        let (target, raw_value) = arg.split_once('=').ok_or(OverrideSyntaxError)?;
        let (node, input) = target.rsplit_once('.').ok_or(OverrideSyntaxError)?;
        if node.is_empty() || input.is_empty() {
            return Err(OverrideSyntaxError);
        }
        let value =
            serde_json::from_str(raw_value).unwrap_or_else(|_| Json::String(raw_value.into()));
        Ok(Self {
            node: NodeId::from(node),
            input: input.to_string(),
            value,
        })
    }
}

impl fmt::Display for Override {
    /// `ID.INPUT`, the part that names what is overridden.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.node, self.input)
    }
}

/// Applies overrides to an API-format graph. `declared_inputs(class_type)` returns the names the
/// node type declares, or `None` for a type the catalogue does not know (validation reports it).
pub fn apply_overrides(
    graph: &mut Json,
    overrides: &[Override],
    declared_inputs: impl Fn(&str) -> Option<Vec<String>>,
) -> Result<(), OverrideError> {
    for set in overrides {
        let nodes = graph
            .as_object_mut()
            .ok_or_else(|| OverrideError::NotAGraph(set.to_string()))?;
        if !nodes.contains_key(set.node.as_str()) {
            return Err(OverrideError::UnknownNode {
                target: set.to_string(),
                node: set.node.clone(),
                known: names_list(nodes.keys()),
            });
        }
        let node = nodes
            .get_mut(set.node.as_str())
            .and_then(Json::as_object_mut)
            .ok_or_else(|| OverrideError::NotAGraph(set.to_string()))?;
        let class_type = node
            .get("class_type")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(declared) = declared_inputs(&class_type) {
            if !declared.contains(&set.input) {
                return Err(OverrideError::UnknownInput {
                    target: set.to_string(),
                    node: set.node.clone(),
                    class_type,
                    input: set.input.clone(),
                    known: names_list(declared.iter()),
                });
            }
        }
        let inputs = node
            .entry("inputs")
            .or_insert_with(|| Json::Object(Default::default()));
        let inputs = inputs
            .as_object_mut()
            .ok_or_else(|| OverrideError::NotAGraph(set.to_string()))?;
        inputs.insert(set.input.clone(), set.value.clone());
    }
    Ok(())
}

fn names_list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names.map(String::as_str).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(arg: &str) -> Override {
        arg.parse().expect("parses")
    }

    #[test]
    fn values_parse_as_json_or_fall_back_to_text() {
        let o = parse("3.seed=42");
        assert_eq!((o.node.as_str(), o.input.as_str()), ("3", "seed"));
        assert_eq!(o.value, json!(42));
        assert_eq!(parse("6.text=a cat").value, json!("a cat"));
        assert_eq!(parse("6.text=\"7\"").value, json!("7"));
        assert_eq!(parse("6.text=").value, json!(""));
        let o = parse("45:12.image=[\"4\",0]");
        assert_eq!(o.node.as_str(), "45:12");
        assert_eq!(o.value, json!(["4", 0]));
        let big = parse("3.seed=18446744073709551615");
        assert_eq!(big.value.to_string(), "18446744073709551615");
        assert_eq!(o.to_string(), "45:12.image");
    }

    #[test]
    fn malformed_arguments_are_refused() {
        for bad in ["3seed=1", "3.seed", ".seed=1", "3.=1"] {
            assert_eq!(bad.parse::<Override>(), Err(OverrideSyntaxError), "{bad}");
        }
    }

    #[test]
    fn overrides_replace_inputs_and_name_unknown_targets() {
        let mut graph = json!({"3": {"class_type": "K", "inputs": {"seed": 1}}});
        let declared = |class: &str| (class == "K").then(|| vec!["seed".to_string()]);
        apply_overrides(&mut graph, &[parse("3.seed=9")], declared).expect("applies");
        assert_eq!(graph["3"]["inputs"]["seed"], json!(9));

        let err = apply_overrides(&mut graph, &[parse("4.seed=9")], declared).expect_err("id");
        assert!(err.to_string().contains("no node with id '4'"), "{err}");
        assert!(err.to_string().contains("ids are: 3"), "{err}");
        let err = apply_overrides(&mut graph, &[parse("3.sed=9")], declared).expect_err("input");
        assert!(err.to_string().contains("no input 'sed'"), "{err}");
    }
}
