//! The execution plan that validation produces: the nodes a prompt runs, in dependency order, each with
//! its constant inputs and its links as indices into the plan.

use indexmap::IndexMap;
use serde_json::Value as Json;

use crate::graph::NodeId;
use crate::node::{CheckContext, Dirs, Inputs};
use crate::registry::RegisteredNode;
use std::sync::Arc;

/// An input fed by another planned node's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedInput {
    /// The input's name.
    pub input: String,
    /// The source node: an index into the plan, always smaller than the index of the node it feeds.
    pub source: usize,
    /// The source's output slot.
    pub slot: usize,
}

/// One node of the plan.
#[derive(Debug, Clone)]
pub struct PlannedNode {
    /// Node id.
    pub id: NodeId,
    /// The registered type (a snapshot: registry changes during a run do not affect it).
    pub node_type: RegisteredNode,
    /// The prompt's `is_changed` override.
    pub is_changed: Option<Json>,
    /// `_meta.title`.
    pub title: Option<String>,
    constants: Inputs,
    links: Vec<LinkedInput>,
    dependencies: Vec<usize>,
    dependents: Vec<usize>,
}

impl PlannedNode {
    /// The constant inputs, coerced (what fingerprint, validate and exclusive_resource see).
    pub fn constant_inputs(&self) -> &Inputs {
        &self.constants
    }

    /// The inputs fed by links, in schema order.
    pub fn links(&self) -> &[LinkedInput] {
        &self.links
    }

    /// Names of the inputs fed by a link.
    pub fn linked_input_names(&self) -> Vec<String> {
        self.links.iter().map(|l| l.input.clone()).collect()
    }

    /// The distinct planned nodes this one links to (indices into the plan).
    pub fn dependencies(&self) -> &[usize] {
        &self.dependencies
    }

    /// The distinct planned nodes that link to this one (indices into the plan).
    pub fn dependents(&self) -> &[usize] {
        &self.dependents
    }

    /// What `fingerprint` and `validate` see besides the constant inputs.
    pub fn check_context(&self, dirs: &Arc<Dirs>) -> CheckContext {
        CheckContext {
            node_id: self.id.clone(),
            dirs: Arc::clone(dirs),
            linked: self.linked_input_names(),
        }
    }
}

/// A node as validation resolved it, before planning: links still point at positions in the prompt.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedNode {
    pub(crate) id: NodeId,
    pub(crate) node_type: RegisteredNode,
    pub(crate) is_changed: Option<Json>,
    pub(crate) title: Option<String>,
    pub(crate) constants: Inputs,
    /// `(input name, source position in the prompt, slot)`.
    pub(crate) links: Vec<(String, usize, usize)>,
}

/// The plan: nodes in a dependency order (each after every node it links to), by id.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    nodes: IndexMap<NodeId, PlannedNode>,
}

impl Plan {
    /// Builds the plan from resolved nodes given in a dependency order, as `(prompt position, node)`;
    /// every link must point at a node given earlier (validation guarantees it: links to missing nodes
    /// and cycles are errors, and the ancestors of a planned node are planned).
    pub(crate) fn from_sorted(sorted: Vec<(usize, ResolvedNode)>, prompt_len: usize) -> Plan {
        let mut index_of_position = vec![usize::MAX; prompt_len];
        let mut nodes: IndexMap<NodeId, PlannedNode> = IndexMap::with_capacity(sorted.len());
        for (position, resolved) in sorted {
            let me = nodes.len();
            index_of_position[position] = me;
            let mut dependencies = Vec::new();
            let links = resolved
                .links
                .into_iter()
                .map(|(input, source_position, slot)| {
                    let source = index_of_position[source_position];
                    debug_assert!(source < me, "validation sorts sources first");
                    if !dependencies.contains(&source) {
                        dependencies.push(source);
                    }
                    LinkedInput {
                        input,
                        source,
                        slot,
                    }
                })
                .collect();
            for &d in &dependencies {
                if let Some((_, source)) = nodes.get_index_mut(d) {
                    source.dependents.push(me);
                }
            }
            nodes.insert(
                resolved.id.clone(),
                PlannedNode {
                    id: resolved.id,
                    node_type: resolved.node_type,
                    is_changed: resolved.is_changed,
                    title: resolved.title,
                    constants: resolved.constants,
                    links,
                    dependencies,
                    dependents: Vec::new(),
                },
            );
        }
        Plan { nodes }
    }

    /// Number of planned nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether nothing is planned.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node ids in plan order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &NodeId> {
        self.nodes.keys()
    }

    /// Nodes in plan order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &PlannedNode> {
        self.nodes.values()
    }

    /// The node at plan index `index`.
    pub fn node(&self, index: usize) -> Option<&PlannedNode> {
        self.nodes.get_index(index).map(|(_, n)| n)
    }

    /// A node by id.
    pub fn get(&self, id: &str) -> Option<&PlannedNode> {
        self.nodes.get(id)
    }

    /// The plan index of a node.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.get_index_of(id)
    }
}

impl std::ops::Index<&str> for Plan {
    type Output = PlannedNode;
    /// The node with this id; panics when it is not planned (use [`Plan::get`] otherwise).
    fn index(&self, id: &str) -> &PlannedNode {
        &self.nodes[id]
    }
}

impl std::ops::Index<usize> for Plan {
    type Output = PlannedNode;
    /// The node at this plan index; panics when out of range (use [`Plan::node`] otherwise).
    fn index(&self, index: usize) -> &PlannedNode {
        &self.nodes[index]
    }
}
