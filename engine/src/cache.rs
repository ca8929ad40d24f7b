//! The output cache: node outputs keyed by input signature.
//!
//! A signature hashes a node's class, its constant inputs, its fingerprint (`IS_CHANGED`) and, for each
//! link, the source's signature and slot — never node ids (unless the node is not idempotent), so equal
//! subgraphs under different ids share entries, and changing a constant changes the signature of that node
//! and of everything downstream.
//!
//! Policy:
//! - **Latest per node id.** The cache remembers which signature each node id last produced. When a node id
//!   is about to run with a new signature, its previous entry is released at once (unless another node id
//!   still uses it). So changing a loader's input drops the old model before the new one loads, and a
//!   model feeding several nodes is held once and reused across runs.
//! - **Memory budget.** Entries are sized with [`Value::size_bytes`]; when the total exceeds the budget,
//!   least-recently-used entries are evicted (the entry just stored is kept even if it alone is larger).
//! - [`OutputCache::clear`] drops everything (ComfyUI's `/free` with `free_memory`).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::graph::NodeId;
use crate::node::Fingerprint;
use crate::outputs::SavedFile;
use crate::value::Value;

/// A node's input signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 32]);

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(&self.0[..8]))
    }
}

/// Builds a [`Signature`] from a node's parts.
pub struct SignatureBuilder(Sha256);

impl SignatureBuilder {
    /// Starts a signature for a class_type.
    pub fn new(class_type: &str) -> Self {
        let mut h = Sha256::new();
        field(&mut h, b'C', class_type.as_bytes());
        SignatureBuilder(h)
    }
    /// Adds the fingerprint (`nonce` makes [`Fingerprint::Always`] unique per run).
    pub fn fingerprint(&mut self, fp: &Fingerprint, nonce: u64) -> &mut Self {
        match fp {
            Fingerprint::Constant => field(&mut self.0, b'F', b""),
            Fingerprint::Value(v) => field(&mut self.0, b'V', v.as_bytes()),
            Fingerprint::Always => field(&mut self.0, b'A', &nonce.to_le_bytes()),
        }
        self
    }
    /// Adds a prompt's `is_changed` override.
    pub fn is_changed(&mut self, v: &Json) -> &mut Self {
        field(&mut self.0, b'O', v.to_string().as_bytes());
        self
    }
    /// Adds the node id (for nodes that are not idempotent).
    pub fn node_id(&mut self, id: &NodeId) -> &mut Self {
        field(&mut self.0, b'N', id.0.as_bytes());
        self
    }
    /// Adds a constant input.
    pub fn constant(&mut self, name: &str, value: &Value) -> &mut Self {
        field(&mut self.0, b'I', name.as_bytes());
        hash_value(&mut self.0, value);
        self
    }
    /// Adds a linked input.
    pub fn link(&mut self, name: &str, source: &Signature, slot: usize) -> &mut Self {
        field(&mut self.0, b'L', name.as_bytes());
        self.0.update(source.0);
        self.0.update((slot as u64).to_le_bytes());
        self
    }
    /// Finishes.
    pub fn finish(self) -> Signature {
        Signature(self.0.finalize().into())
    }
}

fn field(h: &mut Sha256, tag: u8, bytes: &[u8]) {
    h.update([tag]);
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

fn hash_value(h: &mut Sha256, v: &Value) {
    match v {
        Value::Int(i) => field(h, b'i', &i.to_le_bytes()),
        Value::Float(f) => field(h, b'f', &f.to_bits().to_le_bytes()),
        Value::Bool(b) => field(h, b'b', &[u8::from(*b)]),
        Value::String(s) => field(h, b's', s.as_bytes()),
        Value::Json(j) => field(h, b'j', j.to_string().as_bytes()),
        Value::List(items) => {
            field(h, b'l', &(items.len() as u64).to_le_bytes());
            items.iter().for_each(|i| hash_value(h, i));
        }
        // Constants are literals from the prompt and never images or opaque values; hash by identity so
        // a programmatic caller still gets a deterministic (if conservative) key.
        Value::Image(i) => field(h, b'm', &(Arc::as_ptr(i) as usize).to_le_bytes()),
        Value::Mask(m) => field(h, b'k', &(Arc::as_ptr(m) as usize).to_le_bytes()),
        Value::Opaque(o) => field(
            h,
            b'o',
            &(Arc::as_ptr(o) as *const () as usize).to_le_bytes(),
        ),
    }
}

/// A cached result.
#[derive(Debug, Clone)]
pub struct CachedOutput {
    /// The node's output values.
    pub values: Arc<Vec<Value>>,
    /// Its UI data (re-sent as `executed` for cached output nodes).
    pub ui: Option<Json>,
    /// The files it saved (reported again for cached output nodes).
    pub saved: Vec<SavedFile>,
}

#[derive(Debug)]
struct Entry {
    output: CachedOutput,
    size: usize,
    last_used: u64,
    users: usize,
}

/// Counters for observing the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Entries held.
    pub entries: usize,
    /// Bytes held (approximate).
    pub bytes: usize,
    /// The budget in bytes.
    pub budget: usize,
    /// Entries evicted for the budget since creation.
    pub evictions: u64,
    /// Entries released because their node got a new signature.
    pub releases: u64,
}

/// The output cache (see the module docs for the policy).
#[derive(Debug)]
pub struct OutputCache {
    entries: HashMap<Signature, Entry>,
    latest: HashMap<NodeId, Signature>,
    bytes: usize,
    budget: usize,
    tick: u64,
    evictions: u64,
    releases: u64,
}

impl OutputCache {
    /// A cache holding at most about `budget_bytes`.
    pub fn new(budget_bytes: usize) -> Self {
        OutputCache {
            entries: HashMap::new(),
            latest: HashMap::new(),
            bytes: 0,
            budget: budget_bytes,
            tick: 0,
            evictions: 0,
            releases: 0,
        }
    }

    /// Looks a signature up, marking it recently used.
    pub fn get(&mut self, sig: &Signature) -> Option<CachedOutput> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(sig).map(|e| {
            e.last_used = tick;
            e.output.clone()
        })
    }

    /// Whether a signature is cached (does not touch recency).
    pub fn contains(&self, sig: &Signature) -> bool {
        self.entries.contains_key(sig)
    }

    /// Records that `node` now uses `sig` (a cache hit in this run): keeps it as the node's latest.
    pub fn touch_node(&mut self, node: &NodeId, sig: Signature) {
        self.set_latest(node, sig);
    }

    /// Releases `node`'s previous entry if its signature differs from `sig` (called before the node runs
    /// with a new signature, so a replaced model is freed before its successor loads).
    pub fn release_stale(&mut self, node: &NodeId, sig: &Signature) {
        if let Some(old) = self.latest.get(node).copied() {
            if old != *sig {
                self.latest.remove(node);
                self.drop_user(&old, true);
            }
        }
    }

    /// Stores a node's result under `sig` and evicts for the budget.
    pub fn insert(&mut self, node: &NodeId, sig: Signature, output: CachedOutput) {
        self.tick += 1;
        let size = output.values.iter().map(Value::size_bytes).sum::<usize>()
            + output.ui.as_ref().map_or(0, |u| u.to_string().len());
        if let Some(e) = self.entries.get_mut(&sig) {
            e.last_used = self.tick;
        } else {
            self.bytes += size;
            self.entries.insert(
                sig,
                Entry {
                    output,
                    size,
                    last_used: self.tick,
                    users: 0,
                },
            );
        }
        self.set_latest(node, sig);
        self.evict_for_budget(&sig);
    }

    fn set_latest(&mut self, node: &NodeId, sig: Signature) {
        match self.latest.insert(node.clone(), sig) {
            Some(old) if old == sig => {}
            previous => {
                if let Some(e) = self.entries.get_mut(&sig) {
                    e.users += 1;
                }
                if let Some(old) = previous {
                    self.drop_user(&old, true);
                }
            }
        }
    }

    fn drop_user(&mut self, sig: &Signature, release: bool) {
        let remove = match self.entries.get_mut(sig) {
            Some(e) => {
                e.users = e.users.saturating_sub(1);
                e.users == 0
            }
            None => false,
        };
        if remove && release {
            if let Some(e) = self.entries.remove(sig) {
                self.bytes -= e.size;
                self.releases += 1;
            }
        }
    }

    fn evict_for_budget(&mut self, keep: &Signature) {
        while self.bytes > self.budget && self.entries.len() > 1 {
            let Some(victim) = self
                .entries
                .iter()
                .filter(|(s, _)| *s != keep)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(s, _)| *s)
            else {
                break;
            };
            if let Some(e) = self.entries.remove(&victim) {
                self.bytes -= e.size;
                self.evictions += 1;
            }
            self.latest.retain(|_, s| *s != victim);
        }
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.latest.clear();
        self.bytes = 0;
    }

    /// Changes the budget (evicting at once if needed).
    pub fn set_budget(&mut self, budget_bytes: usize) {
        self.budget = budget_bytes;
        let keep = Signature([0; 32]);
        self.evict_for_budget(&keep);
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.entries.len(),
            bytes: self.bytes,
            budget: self.budget,
            evictions: self.evictions,
            releases: self.releases,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(n: u8) -> Signature {
        Signature([n; 32])
    }
    fn out(bytes: usize) -> CachedOutput {
        CachedOutput {
            values: Arc::new(vec![Value::String("x".repeat(bytes))]),
            ui: None,
            saved: Vec::new(),
        }
    }

    #[test]
    fn new_signature_for_a_node_releases_its_old_entry() {
        let mut c = OutputCache::new(usize::MAX);
        let n = NodeId::from("1");
        c.insert(&n, sig(1), out(10));
        c.release_stale(&n, &sig(2));
        assert!(!c.contains(&sig(1)));
        c.insert(&n, sig(2), out(10));
        assert_eq!(c.stats().entries, 1);
        assert_eq!(c.stats().releases, 1);
    }

    #[test]
    fn shared_entry_survives_until_its_last_user_moves_on() {
        let mut c = OutputCache::new(usize::MAX);
        let (a, b) = (NodeId::from("a"), NodeId::from("b"));
        c.insert(&a, sig(1), out(10));
        c.touch_node(&b, sig(1));
        c.release_stale(&a, &sig(2));
        assert!(c.contains(&sig(1)), "b still uses it");
        c.release_stale(&b, &sig(3));
        assert!(!c.contains(&sig(1)));
    }

    #[test]
    fn budget_evicts_least_recently_used() {
        let per = out(100).values.iter().map(Value::size_bytes).sum::<usize>();
        let mut c = OutputCache::new(per * 2);
        c.insert(&NodeId::from("1"), sig(1), out(100));
        c.insert(&NodeId::from("2"), sig(2), out(100));
        assert!(c.get(&sig(1)).is_some());
        c.insert(&NodeId::from("3"), sig(3), out(100));
        assert!(c.contains(&sig(1)) && c.contains(&sig(3)));
        assert!(!c.contains(&sig(2)));
        assert_eq!(c.stats().evictions, 1);
        c.clear();
        assert_eq!(c.stats().entries, 0);
    }
}
