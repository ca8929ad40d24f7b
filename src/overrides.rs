//! `--set ID.INPUT=VALUE`: overriding one input of one node in a graph before it runs.

use serde_json::Value as Json;

/// One parsed `--set` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct InputOverride {
    /// The node id (the graph's key, e.g. `"3"` or `"45:12"`).
    pub node_id: String,
    /// The input name.
    pub input: String,
    /// The new value: the VALUE text parsed as JSON, or the text itself as a string.
    pub value: Json,
}

/// A `--set` argument that cannot be parsed or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    /// Not of the form `ID.INPUT=VALUE`.
    #[error("--set '{0}': expected ID.INPUT=VALUE, e.g. --set 3.seed=42")]
    Syntax(String),
    /// The graph has no node with this id.
    #[error("--set '{arg}': the graph has no node with id '{node_id}' (its ids are: {known})")]
    UnknownNode {
        /// The argument as given.
        arg: String,
        /// The id that was not found.
        node_id: String,
        /// The graph's ids, comma separated.
        known: String,
    },
    /// The node's type declares no input of that name.
    #[error("--set '{arg}': node '{node_id}' ({class_type}) has no input '{input}' (its inputs are: {known})")]
    UnknownInput {
        /// The argument as given.
        arg: String,
        /// The node id.
        node_id: String,
        /// The node's class type.
        class_type: String,
        /// The input that was not found.
        input: String,
        /// The declared inputs, comma separated.
        known: String,
    },
    /// The graph is not a JSON object of node objects.
    #[error("--set '{0}': the graph is not a JSON object of nodes")]
    NotAGraph(String),
}

impl InputOverride {
    /// Parses `ID.INPUT=VALUE`. The id is everything before the last `.` of the part before `=`,
    /// so ids such as `45:12` work. VALUE is JSON if it parses (`42`, `true`, `"x"`, `["4",0]`),
    /// otherwise the raw text (`--set 6.text=a cat` sets the string `a cat`).
    pub fn parse(arg: &str) -> Result<Self, OverrideError> {
        let syntax = || OverrideError::Syntax(arg.to_string());
        let (target, raw_value) = arg.split_once('=').ok_or_else(syntax)?;
        let (node_id, input) = target.rsplit_once('.').ok_or_else(syntax)?;
        if node_id.is_empty() || input.is_empty() {
            return Err(syntax());
        }
        let value =
            serde_json::from_str(raw_value).unwrap_or_else(|_| Json::String(raw_value.into()));
        Ok(Self {
            node_id: node_id.to_string(),
            input: input.to_string(),
            value,
        })
    }
}

/// Applies overrides to an API-format graph. `declared_inputs(class_type)` returns the names the
/// node type declares, or `None` for a type the catalogue does not know (validation reports it).
pub fn apply_overrides(
    graph: &mut Json,
    args: &[String],
    declared_inputs: impl Fn(&str) -> Option<Vec<String>>,
) -> Result<(), OverrideError> {
    for arg in args {
        let parsed = InputOverride::parse(arg)?;
        let nodes = graph
            .as_object_mut()
            .ok_or_else(|| OverrideError::NotAGraph(arg.clone()))?;
        let known_ids = || nodes_list(nodes.keys());
        if !nodes.contains_key(&parsed.node_id) {
            return Err(OverrideError::UnknownNode {
                arg: arg.clone(),
                node_id: parsed.node_id,
                known: known_ids(),
            });
        }
        let node = nodes
            .get_mut(&parsed.node_id)
            .and_then(Json::as_object_mut)
            .ok_or_else(|| OverrideError::NotAGraph(arg.clone()))?;
        let class_type = node
            .get("class_type")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(declared) = declared_inputs(&class_type) {
            if !declared.contains(&parsed.input) {
                return Err(OverrideError::UnknownInput {
                    arg: arg.clone(),
                    node_id: parsed.node_id,
                    class_type,
                    input: parsed.input,
                    known: nodes_list(declared.iter()),
                });
            }
        }
        let inputs = node
            .entry("inputs")
            .or_insert_with(|| Json::Object(Default::default()));
        let inputs = inputs
            .as_object_mut()
            .ok_or_else(|| OverrideError::NotAGraph(arg.clone()))?;
        inputs.insert(parsed.input, parsed.value);
    }
    Ok(())
}

fn nodes_list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names.map(String::as_str).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_parse_as_json_or_fall_back_to_text() {
        let o = InputOverride::parse("3.seed=42").expect("parses");
        assert_eq!((o.node_id.as_str(), o.input.as_str()), ("3", "seed"));
        assert_eq!(o.value, json!(42));
        assert_eq!(
            InputOverride::parse("6.text=a cat").expect("p").value,
            json!("a cat")
        );
        assert_eq!(
            InputOverride::parse("6.text=\"7\"").expect("p").value,
            json!("7")
        );
        assert_eq!(InputOverride::parse("6.text=").expect("p").value, json!(""));
        let o = InputOverride::parse("45:12.image=[\"4\",0]").expect("parses");
        assert_eq!(o.node_id, "45:12");
        assert_eq!(o.value, json!(["4", 0]));
        let big = InputOverride::parse("3.seed=18446744073709551615").expect("p");
        assert_eq!(big.value.to_string(), "18446744073709551615");
    }

    #[test]
    fn malformed_arguments_are_refused() {
        for bad in ["3seed=1", "3.seed", ".seed=1", "3.=1"] {
            assert!(
                matches!(InputOverride::parse(bad), Err(OverrideError::Syntax(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn overrides_replace_inputs_and_name_unknown_targets() {
        let mut graph = json!({"3": {"class_type": "K", "inputs": {"seed": 1}}});
        let declared = |class: &str| (class == "K").then(|| vec!["seed".to_string()]);
        apply_overrides(&mut graph, &["3.seed=9".into()], declared).expect("applies");
        assert_eq!(graph["3"]["inputs"]["seed"], json!(9));

        let err = apply_overrides(&mut graph, &["4.seed=9".into()], declared).expect_err("id");
        assert!(err.to_string().contains("no node with id '4'"), "{err}");
        assert!(err.to_string().contains("ids are: 3"), "{err}");
        let err = apply_overrides(&mut graph, &["3.sed=9".into()], declared).expect_err("input");
        assert!(err.to_string().contains("no input 'sed'"), "{err}");
    }
}
