//! Following an input back to the output that really feeds it, as the frontend's `ExecutableNodeDTO`
//! does: through bypassed nodes (by the slot rule), Reroutes and other frontend-only nodes, and across
//! subgraph boundaries.

use std::collections::HashSet;

use indexmap::IndexMap;
use serde_json::Value as Json;

use super::error::WorkflowError;
use super::flatten::{ExecNode, Scope};
use super::model::{Workflow, MODE_BYPASS, MODE_NEVER, SUBGRAPH_INPUT_ID};

/// Where an input's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resolved {
    /// An output of an executable node: `[execution id, slot]` in the prompt.
    Output(String, usize),
    /// A widget value promoted onto a subgraph instance.
    Widget(Json),
}

/// Node types that exist only in the editor: never sent, links through them are followed.
pub(crate) fn is_virtual_type(type_name: &str) -> bool {
    matches!(
        type_name,
        "Reroute" | "PrimitiveNode" | "Note" | "MarkdownNote"
    )
}

/// The resolver over one flattened workflow.
pub(crate) struct Resolver<'a, 'w> {
    pub wf: &'w Workflow,
    pub table: &'a IndexMap<String, ExecNode<'w>>,
}

type Visited = HashSet<(String, bool, usize)>;

impl<'w> Resolver<'_, 'w> {
    /// What feeds input `slot` of `exec`, if anything. `type_name` overrides the input's own type for the
    /// bypass rule (a Reroute passes on the type of the input it finally feeds).
    pub fn input(
        &self,
        exec: &ExecNode<'w>,
        slot: usize,
        type_name: Option<&str>,
        visited: &mut Visited,
    ) -> Result<Option<Resolved>, WorkflowError> {
        self.guard(exec, false, slot, visited)?;
        let input = exec
            .node
            .inputs
            .get(slot)
            .ok_or_else(|| broken(exec, format!("has no input slot {slot}")))?;
        let Some(link_id) = input.link else {
            return Ok(None);
        };
        let graph = self.wf.graph(exec.scope);
        let link = graph.links.get(&link_id).ok_or_else(|| {
            broken(
                exec,
                format!(
                    "input '{}' names link {link_id}, which does not exist",
                    input.name
                ),
            )
        })?;

        if link.origin_id == SUBGRAPH_INPUT_ID {
            if let Some(instance_id) = &exec.instance {
                return self.across_subgraph_input(exec, instance_id, link.origin_slot, visited);
            }
        }
        let origin = graph.node(&link.origin_id).ok_or_else(|| {
            broken(
                exec,
                format!(
                    "input '{}' is linked from node {}, which does not exist",
                    input.name, link.origin_id
                ),
            )
        })?;
        let origin_id = exec_id(&exec.path, &origin.id);
        let origin_exec = self.exec(&origin_id, exec)?;
        let ty = type_name.unwrap_or(&input.type_name).to_string();
        self.output(origin_exec, link.origin_slot, &ty, visited)
    }

    /// An inner node's input wired to the subgraph's input boundary: continue outside, on the instance.
    fn across_subgraph_input(
        &self,
        exec: &ExecNode<'w>,
        instance_id: &str,
        boundary_slot: usize,
        visited: &mut Visited,
    ) -> Result<Option<Resolved>, WorkflowError> {
        let instance = self.exec(instance_id, exec)?;
        let outer_input = instance.node.inputs.get(boundary_slot).ok_or_else(|| {
            broken(
                instance,
                format!("subgraph instance has no input slot {boundary_slot}"),
            )
        })?;
        if outer_input.link.is_none() {
            // Not connected outside: a widget promoted onto the instance gives its value, else nothing.
            let value = outer_input.widget.as_ref().and_then(|name| {
                instance
                    .node
                    .widgets_values_named
                    .as_ref()
                    .and_then(|named| named.get(name))
                    .cloned()
            });
            return Ok(value.map(Resolved::Widget));
        }
        // The outer link targets this very instance input; the frontend re-enters there.
        self.input(instance, boundary_slot, None, visited)
    }

    /// What output `slot` of `exec` really is, for an input of type `type_name`.
    pub fn output(
        &self,
        exec: &ExecNode<'w>,
        slot: usize,
        type_name: &str,
        visited: &mut Visited,
    ) -> Result<Option<Resolved>, WorkflowError> {
        self.guard(exec, true, slot, visited)?;
        let node = exec.node;
        if node.mode == MODE_NEVER {
            return Ok(None);
        }
        if node.mode == MODE_BYPASS {
            return match bypass_slot(exec, slot, type_name) {
                Some(index) if index < node.inputs.len() => self.input(exec, index, None, visited),
                _ => Ok(None),
            };
        }
        if let Some(def) = self.wf.subgraphs.get(&node.type_name) {
            let Some(link_id) = def.outputs.get(slot).and_then(|o| o.link_ids.first()) else {
                return Ok(None);
            };
            let Some(link) = def.graph.links.get(link_id) else {
                return Err(broken(
                    exec,
                    format!("subgraph output {slot} names link {link_id}, which does not exist"),
                ));
            };
            let mut inner_path = exec.path.clone();
            inner_path.push(node.id.clone());
            let inner = self.exec(&exec_id(&inner_path, &link.origin_id), exec)?;
            return self.output(inner, link.origin_slot, type_name, visited);
        }
        if is_virtual_type(&node.type_name) {
            // A virtual node's output N passes on whatever feeds its input N.
            if node.inputs.get(slot).is_some_and(|i| i.link.is_some()) {
                return self.input(exec, slot, Some(type_name), visited);
            }
            return Ok(None);
        }
        Ok(Some(Resolved::Output(exec.id.clone(), slot)))
    }

    fn exec(&self, id: &str, from: &ExecNode<'w>) -> Result<&ExecNode<'w>, WorkflowError> {
        self.table.get(id).ok_or_else(|| {
            broken(
                from,
                format!("links to node {id}, which is not in the graph"),
            )
        })
    }

    fn guard(
        &self,
        exec: &ExecNode<'w>,
        output: bool,
        slot: usize,
        visited: &mut Visited,
    ) -> Result<(), WorkflowError> {
        let scope = match exec.scope {
            Scope::Root => String::new(),
            Scope::Subgraph(id) => id.to_string(),
        };
        if !visited.insert((format!("{scope}:{}", exec.node.id), output, slot)) {
            return Err(broken(
                exec,
                "its links form a loop through bypassed or virtual nodes".to_string(),
            ));
        }
        Ok(())
    }
}

/// The frontend's bypass rule: the input at the same slot if its type fits both the output and the final
/// input, else the first input of exactly the final type, else the first that fits both. `*` and empty
/// types take the same slot (or the first).
fn bypass_slot(exec: &ExecNode<'_>, slot: usize, type_name: &str) -> Option<usize> {
    let inputs = &exec.node.inputs;
    if type_name == "*" || type_name.is_empty() {
        return Some(if inputs.len() > slot { slot } else { 0 });
    }
    let output_type = exec
        .node
        .outputs
        .get(slot)
        .map_or("", |o| o.type_name.as_str());
    let fits = |t: &str| valid_connection(t, output_type) && valid_connection(t, type_name);
    if inputs.get(slot).is_some_and(|i| fits(&i.type_name)) {
        return Some(slot);
    }
    inputs
        .iter()
        .position(|i| i.type_name == type_name)
        .or_else(|| inputs.iter().position(|i| fits(&i.type_name)))
}

/// litegraph's `isValidConnection`: `*` and empty match anything; otherwise case-insensitive equality,
/// or any overlap of comma-separated lists.
pub(crate) fn valid_connection(a: &str, b: &str) -> bool {
    let generic = |t: &str| t.is_empty() || t == "*" || t == "0";
    if generic(a) || generic(b) || a == b {
        return true;
    }
    let (a, b) = (a.to_lowercase(), b.to_lowercase());
    if !a.contains(',') && !b.contains(',') {
        return a == b;
    }
    a.split(',')
        .any(|x| b.split(',').any(|y| valid_connection(x, y)))
}

fn exec_id(path: &[String], id: &str) -> String {
    if path.is_empty() {
        id.to_string()
    } else {
        format!("{}:{id}", path.join(":"))
    }
}

fn broken(exec: &ExecNode<'_>, problem: String) -> WorkflowError {
    WorkflowError::BrokenLink {
        node: exec.id.clone(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_rule_matches_litegraph() {
        assert!(valid_connection("*", "IMAGE"));
        assert!(valid_connection("", "IMAGE"));
        assert!(valid_connection("image", "IMAGE"));
        assert!(valid_connection("INT,FLOAT", "FLOAT"));
        assert!(!valid_connection("IMAGE", "MASK"));
        assert!(!valid_connection("INT,FLOAT", "STRING,BOOLEAN"));
    }
}
