//! Planning: the nodes a validated prompt needs, in dependency order, with their links as indices.

use std::collections::HashMap;

use petgraph::graph::DiGraph;

use crate::graph::NodeId;
use crate::validate::{ResolvedInput, ValidatedPrompt};

/// How one input of a planned node is fed.
#[derive(Debug, Clone)]
pub enum PlannedInput {
    /// A constant (index into the node's resolved inputs).
    Constant,
    /// Output `slot` of planned node `source` (an index into [`Plan::order`]).
    Link {
        /// Index of the source node in the plan.
        source: usize,
        /// Output slot.
        slot: usize,
    },
}

/// The execution plan: nodes in a topological order, with dependency lists by index.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Node ids in a topological order (every node after all nodes it depends on).
    pub order: Vec<NodeId>,
    /// For each node, its inputs in resolved order.
    pub inputs: Vec<Vec<PlannedInput>>,
    /// For each node, the distinct nodes it depends on.
    pub dependencies: Vec<Vec<usize>>,
    /// For each node, the distinct nodes that depend on it.
    pub dependents: Vec<Vec<usize>>,
    /// Indices of the output nodes.
    pub outputs: Vec<usize>,
}

/// Why a plan could not be made (validation normally catches these first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The nodes form a cycle.
    #[error("dependency cycle through node {0}")]
    Cycle(NodeId),
    /// A link points to a node that is not part of the validated prompt.
    #[error("node {0} links to unknown node {1}")]
    UnknownLink(NodeId, NodeId),
}

impl Plan {
    /// Orders the validated nodes (already restricted to the outputs' ancestors).
    pub fn new(prompt: &ValidatedPrompt) -> Result<Plan, PlanError> {
        let mut graph: DiGraph<usize, ()> =
            DiGraph::with_capacity(prompt.nodes.len(), prompt.nodes.len());
        let ids: Vec<&NodeId> = prompt.nodes.keys().collect();
        let pos: HashMap<&NodeId, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let gi: Vec<_> = (0..ids.len()).map(|i| graph.add_node(i)).collect();
        for (i, node) in prompt.nodes.values().enumerate() {
            for (_, input) in &node.inputs {
                if let ResolvedInput::Link { node: src, .. } = input {
                    let &s = pos
                        .get(src)
                        .ok_or_else(|| PlanError::UnknownLink(node.id.clone(), src.clone()))?;
                    graph.update_edge(gi[s], gi[i], ());
                }
            }
        }
        let sorted = petgraph::algo::toposort(&graph, None)
            .map_err(|c| PlanError::Cycle(ids[graph[c.node_id()]].clone()))?;
        let order_of: Vec<usize> = sorted.iter().map(|n| graph[*n]).collect();
        let mut rank = vec![0usize; ids.len()];
        for (r, &orig) in order_of.iter().enumerate() {
            rank[orig] = r;
        }

        let mut plan = Plan {
            order: order_of.iter().map(|&o| ids[o].clone()).collect(),
            inputs: Vec::with_capacity(ids.len()),
            dependencies: vec![Vec::new(); ids.len()],
            dependents: vec![Vec::new(); ids.len()],
            outputs: Vec::new(),
        };
        for &orig in &order_of {
            let node = &prompt.nodes[orig];
            let me = rank[orig];
            let mut planned = Vec::with_capacity(node.inputs.len());
            for (_, input) in &node.inputs {
                planned.push(match input {
                    ResolvedInput::Constant(_) => PlannedInput::Constant,
                    ResolvedInput::Link { node: src, slot } => {
                        let source = rank[pos[src]];
                        if !plan.dependencies[me].contains(&source) {
                            plan.dependencies[me].push(source);
                            plan.dependents[source].push(me);
                        }
                        PlannedInput::Link {
                            source,
                            slot: *slot,
                        }
                    }
                });
            }
            plan.inputs.push(planned);
        }
        plan.outputs = prompt
            .outputs
            .iter()
            .filter_map(|o| pos.get(o).map(|&p| rank[p]))
            .collect();
        Ok(plan)
    }

    /// Number of planned nodes.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is planned.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}
