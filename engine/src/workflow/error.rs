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
