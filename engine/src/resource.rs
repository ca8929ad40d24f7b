//! Exclusive resources: named things (a GPU, a device's memory) that only one node may use at a time.
//!
//! One lock table per executor serves both ways of claiming a resource: the scheduler takes the lock of
//! [`NodeType::exclusive_resource`](crate::NodeType::exclusive_resource) (known from constant inputs)
//! before a node starts, and a running node takes a lock it only learns about at run time (the device of
//! a model coming in through a link) with [`NodeContext::lock_resource`](crate::NodeContext::lock_resource).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// The name of an exclusive resource, e.g. `Resource::new("cuda:0")`. Equal names are the same resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resource(Arc<str>);

impl Resource {
    /// A resource named `name`.
    pub fn new(name: impl AsRef<str>) -> Self {
        Resource(Arc::from(name.as_ref()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Resource {
    fn from(name: &str) -> Self {
        Resource::new(name)
    }
}

impl From<String> for Resource {
    fn from(name: String) -> Self {
        Resource(Arc::from(name))
    }
}

/// The lock table: one async mutex per resource name. Cheap to clone (clones share the table).
#[derive(Debug, Clone, Default)]
pub struct ResourceLocks {
    table: Arc<Mutex<HashMap<Resource, Arc<tokio::sync::Mutex<()>>>>>,
}

impl ResourceLocks {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until `resource` is free and holds it until the returned guard is dropped. The future owns
    /// what it needs, so it can be moved into a task.
    pub fn lock(&self, resource: Resource) -> impl Future<Output = ResourceGuard> + Send + 'static {
        let mutex = {
            // The table only maps names to mutexes; a panic elsewhere cannot leave it half-updated.
            let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(table.entry(resource.clone()).or_default())
        };
        async move {
            ResourceGuard {
                resource,
                _held: Some(mutex.lock_owned().await),
            }
        }
    }
}

/// Holds a resource; dropping it lets the next waiter in.
#[derive(Debug)]
pub struct ResourceGuard {
    resource: Resource,
    /// `None` when the resource was already held by the same node (see [`ResourceGuard::already_held`]).
    _held: Option<OwnedMutexGuard<()>>,
}

impl ResourceGuard {
    /// A guard for a resource the caller already holds (a node asking again for its own
    /// `exclusive_resource`): waiting for it would wait forever.
    pub(crate) fn already_held(resource: Resource) -> Self {
        ResourceGuard {
            resource,
            _held: None,
        }
    }

    /// The resource held.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_per_name_and_names_are_independent() {
        let locks = ResourceLocks::new();
        let first = locks.lock(Resource::new("cuda:0")).await;
        // A different name is free, the same name waits until the guard drops.
        let _other = locks.lock(Resource::from("cpu")).await;
        let mut second = Box::pin(locks.clone().lock(Resource::new("cuda:0")));
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(second.as_mut().poll(&mut cx).is_pending());
        drop(first);
        let second = second.await;
        assert_eq!(second.resource().to_string(), "cuda:0");
    }
}
