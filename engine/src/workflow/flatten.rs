//! The flat table of executable nodes: every root node, and every node inside each subgraph instance
//! under its execution id `outer:inner` (nested: `a:b:c`), in the order the frontend builds it.

use indexmap::IndexMap;

use super::error::WorkflowError;
use super::model::{UiGraph, UiNode, Workflow, MODE_BYPASS, MODE_NEVER};

/// Which graph a node lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scope<'w> {
    Root,
    Subgraph(&'w str),
}

/// One node of the flat table.
#[derive(Debug, Clone)]
pub(crate) struct ExecNode<'w> {
    pub id: String,
    pub node: &'w UiNode,
    pub scope: Scope<'w>,
    /// Execution ids of the subgraph instances from the root down to the one holding this node.
    pub path: Vec<String>,
    /// The execution id of the subgraph instance holding this node, if any.
    pub instance: Option<String>,
}

/// Subgraphs nest at most this deep (a definition that contains itself is caught earlier, this bounds the
/// table for a hostile document).
const MAX_DEPTH: usize = 32;

impl Workflow {
    pub fn graph(&self, scope: Scope<'_>) -> &UiGraph {
        match scope {
            Scope::Root => &self.root,
            Scope::Subgraph(id) => &self.subgraphs[id].graph,
        }
    }
}

/// Builds the table: root nodes by their saved execution order, a subgraph instance followed by its inner
/// nodes (in definition order). Muted and bypassed root instances are not expanded.
pub(crate) fn flatten(wf: &Workflow) -> Result<IndexMap<String, ExecNode<'_>>, WorkflowError> {
    let mut roots: Vec<&UiNode> = wf.root.nodes.iter().collect();
    // `order` is the execution order litegraph computed at save time; a stable sort keeps the document
    // order for nodes without one.
    roots.sort_by_key(|n| n.order.unwrap_or(i64::MAX));
    let mut table = IndexMap::new();
    for node in roots {
        let exec = ExecNode {
            id: node.id.clone(),
            node,
            scope: Scope::Root,
            path: Vec::new(),
            instance: None,
        };
        table.insert(exec.id.clone(), exec);
        if node.mode == MODE_NEVER || node.mode == MODE_BYPASS {
            continue;
        }
        if let Some((def_id, _)) = wf.subgraphs.get_key_value(&node.type_name) {
            expand(wf, node, def_id, &[], &mut table, &mut Vec::new())?;
        }
    }
    Ok(table)
}

fn expand<'w>(
    wf: &'w Workflow,
    instance: &'w UiNode,
    def_id: &'w str,
    path: &[String],
    table: &mut IndexMap<String, ExecNode<'w>>,
    open: &mut Vec<&'w str>,
) -> Result<(), WorkflowError> {
    let mut inner_path = path.to_vec();
    inner_path.push(instance.id.clone());
    let instance_id = inner_path.join(":");
    if open.contains(&def_id) || open.len() >= MAX_DEPTH {
        return Err(WorkflowError::Unsupported {
            node: instance_id,
            problem: format!(
                "subgraph {def_id} contains itself (or nests more than {MAX_DEPTH} deep)"
            ),
        });
    }
    open.push(def_id);
    for node in &wf.subgraphs[def_id].graph.nodes {
        let mut id_path = inner_path.clone();
        id_path.push(node.id.clone());
        let exec = ExecNode {
            id: id_path.join(":"),
            node,
            scope: Scope::Subgraph(def_id),
            path: inner_path.clone(),
            instance: Some(instance_id.clone()),
        };
        table.insert(exec.id.clone(), exec);
        if let Some((nested, _)) = wf.subgraphs.get_key_value(&node.type_name) {
            expand(wf, node, nested, &inner_path, table, open)?;
        }
    }
    open.pop();
    Ok(())
}
