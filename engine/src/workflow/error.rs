//! Why a UI workflow could not be converted to the API format.

/// A conversion failure. Every variant names the node (and, inside a subgraph, its execution id) so the
/// user can find it in the editor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    /// The document is not shaped like a litegraph workflow (`nodes` missing, a link of the wrong shape …).
    #[error("invalid UI workflow: {0}")]
    Shape(String),
    /// A node's type is neither in the catalogue, nor a frontend-only node, nor a subgraph definition.
    #[error("node {node} has type '{class_type}', which is not in the node catalogue (install the plugin that provides it, or remove the node)")]
    UnknownNodeType {
        /// Execution id of the node (`"7"`, `"45:12"`).
        node: String,
        /// Its `type`.
        class_type: String,
    },
    /// A node's saved widget values cannot be matched to the catalogue's inputs one for one.
    #[error("node {node} ({class_type}): {problem}")]
    Widgets {
        /// Execution id of the node.
        node: String,
        /// Its class_type.
        class_type: String,
        /// What does not line up.
        problem: String,
    },
    /// A link names a node, slot or link id that does not exist.
    #[error("node {node}: {problem}")]
    BrokenLink {
        /// Execution id of the node whose input could not be followed.
        node: String,
        /// What is missing.
        problem: String,
    },
    /// Something the frontend does in JavaScript that this converter does not reproduce.
    #[error("node {node}: {problem}")]
    Unsupported {
        /// Execution id of the node.
        node: String,
        /// What is not supported, and what to do instead.
        problem: String,
    },
}

impl WorkflowError {
    /// The execution id of the node the problem is at (none for a document of the wrong shape).
    pub fn node(&self) -> Option<&str> {
        match self {
            WorkflowError::Shape(_) => None,
            WorkflowError::UnknownNodeType { node, .. }
            | WorkflowError::Widgets { node, .. }
            | WorkflowError::BrokenLink { node, .. }
            | WorkflowError::Unsupported { node, .. } => Some(node),
        }
    }

    /// ComfyUI's error JSON for this problem: `invalid_workflow`, with the node (when there is one) in
    /// `node_errors` as validation errors are, so a client can point at it.
    pub fn to_comfy_json(&self) -> serde_json::Value {
        let message = "Cannot convert the UI workflow to the API format";
        let details = self.to_string();
        let error = |extra_info: serde_json::Value| {
            serde_json::json!({"type": "invalid_workflow", "message": message, "details": details,
                               "extra_info": extra_info})
        };
        let mut node_errors = serde_json::Map::new();
        if let Some(node) = self.node() {
            let class_type = match self {
                WorkflowError::UnknownNodeType { class_type, .. }
                | WorkflowError::Widgets { class_type, .. } => class_type.as_str(),
                _ => "",
            };
            node_errors.insert(
                node.to_string(),
                serde_json::json!({"errors": [error(serde_json::json!({}))],
                                   "dependent_outputs": [], "class_type": class_type}),
            );
        }
        let extra_info = match self.node() {
            Some(node) => serde_json::json!({"node_id": node}),
            None => serde_json::json!({}),
        };
        serde_json::json!({"error": error(extra_info), "node_errors": node_errors})
    }
}
