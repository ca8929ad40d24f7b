//! The open catalogue of node types.
//!
//! Thread-safe and changeable at run time: the wasm plugin host registers and replaces node types while a
//! watch or server process lives. Each change bumps [`Registry::generation`], so a long-lived process can
//! tell that its catalogue (or a graph's validity) may have changed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value as Json};

use crate::dirs::Dirs;
use crate::node::NodeType;
use crate::schema::NodeSchema;

/// A registered node type with its schema (computed once at registration).
#[derive(Clone)]
pub struct RegisteredNode {
    /// The implementation.
    pub node: Arc<dyn NodeType>,
    /// Its schema.
    pub schema: Arc<NodeSchema>,
}

impl std::fmt::Debug for RegisteredNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredNode")
            .field("class_type", &self.schema.name)
            .finish()
    }
}

/// Errors from [`Registry::register_new`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// A node type with this class_type is already registered.
    #[error("node type '{0}' is already registered")]
    Duplicate(String),
    /// The schema's name is empty.
    #[error("node type has an empty class_type")]
    EmptyName,
}

/// The catalogue of node types, keyed by class_type.
#[derive(Default)]
pub struct Registry {
    nodes: RwLock<BTreeMap<String, RegisteredNode>>,
    generation: AtomicU64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("class_types", &self.class_types())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, RegisteredNode>> {
        // A panic while holding the lock cannot leave the map half-updated (inserts are atomic), so a
        // poisoned lock is still safe to use.
        self.nodes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, RegisteredNode>> {
        self.nodes.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a node type, replacing any previous one with the same class_type (returned).
    pub fn register(&self, node: impl NodeType) -> Option<RegisteredNode> {
        self.register_arc(Arc::new(node))
    }

    /// Registers a shared node type, replacing any previous one with the same class_type (returned).
    pub fn register_arc(&self, node: Arc<dyn NodeType>) -> Option<RegisteredNode> {
        let schema = Arc::new(node.schema());
        let old = self
            .write()
            .insert(schema.name.clone(), RegisteredNode { node, schema });
        self.generation.fetch_add(1, Ordering::SeqCst);
        old
    }

    /// Registers a node type, failing if the class_type is taken or empty.
    pub fn register_new(&self, node: Arc<dyn NodeType>) -> Result<(), RegistryError> {
        let schema = Arc::new(node.schema());
        if schema.name.is_empty() {
            return Err(RegistryError::EmptyName);
        }
        let mut map = self.write();
        if map.contains_key(&schema.name) {
            return Err(RegistryError::Duplicate(schema.name.clone()));
        }
        map.insert(schema.name.clone(), RegisteredNode { node, schema });
        drop(map);
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Removes a node type; returns it if it was registered.
    pub fn unregister(&self, class_type: &str) -> Option<RegisteredNode> {
        let old = self.write().remove(class_type);
        if old.is_some() {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        old
    }

    /// Looks up a node type.
    pub fn get(&self, class_type: &str) -> Option<RegisteredNode> {
        self.read().get(class_type).cloned()
    }

    /// Whether a class_type is registered.
    pub fn contains(&self, class_type: &str) -> bool {
        self.read().contains_key(class_type)
    }

    /// All registered class_types, sorted.
    pub fn class_types(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Number of registered node types.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the registry is empty.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// A counter bumped on every change of the catalogue.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The full `/object_info` catalogue: `{class_type: NodeDef, …}`, with combos of input files
    /// listing the files of `dirs.input` now.
    pub fn object_info(&self, dirs: &Dirs) -> Json {
        Json::Object(
            self.read()
                .iter()
                .map(|(k, n)| (k.clone(), n.schema.to_object_info(dirs)))
                .collect::<Map<_, _>>(),
        )
    }

    /// `/object_info/{class}`: `{class_type: NodeDef}`, or `{}` when unknown (as ComfyUI answers).
    pub fn object_info_for(&self, class_type: &str, dirs: &Dirs) -> Json {
        let mut m = Map::new();
        if let Some(n) = self.get(class_type) {
            m.insert(class_type.to_string(), n.schema.to_object_info(dirs));
        }
        Json::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{BoxFuture, Inputs, NodeContext, NodeError, NodeOutput};

    struct Named(&'static str, &'static str);
    impl NodeType for Named {
        fn schema(&self) -> NodeSchema {
            NodeSchema::new(self.0).category(self.1)
        }
        fn run<'a>(
            &'a self,
            _inputs: Inputs,
            _ctx: NodeContext,
        ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
            Box::pin(async { Ok(NodeOutput::default()) })
        }
    }

    #[test]
    fn register_replace_unregister() {
        let r = Registry::new();
        assert!(r.register(Named("A", "one")).is_none());
        let g = r.generation();
        assert!(r.register(Named("A", "two")).is_some());
        assert!(r.generation() > g);
        assert_eq!(r.get("A").unwrap().schema.category, "two");
        assert_eq!(
            r.register_new(Arc::new(Named("A", "three"))),
            Err(RegistryError::Duplicate("A".into()))
        );
        assert_eq!(r.object_info(&Dirs::default())["A"]["category"], "two");
        assert_eq!(
            r.object_info_for("B", &Dirs::default()),
            serde_json::json!({})
        );
        assert!(r.unregister("A").is_some());
        assert!(r.is_empty());
    }
}
