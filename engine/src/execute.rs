//! The executor: runs a validated prompt's planned nodes with caching, concurrency, exclusive resources and
//! cancellation, reporting ComfyUI events.
//!
//! One prompt runs at a time per executor (as in ComfyUI); inside it, independent branches run
//! concurrently up to [`ExecutorConfig::max_concurrency`]. A node failure stops the prompt (running
//! siblings are asked to cancel, and what they finish is still cached); the executor stays usable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::cache::{CacheStats, OutputCache};
use crate::graph::PromptRequest;
use crate::node::Dirs;
use crate::registry::Registry;
use crate::resource::ResourceLocks;
use crate::run::{Run, RunEnv};
use crate::validate::{validate, ValidatedPrompt, ValidationReport};

pub use crate::run::{NodeFinished, RunOptions, RunReport, RunStatus};

/// Executor settings.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// How many nodes may run at once (at least 1).
    pub max_concurrency: usize,
    /// Memory budget of the output cache in bytes.
    pub cache_budget_bytes: usize,
    /// Input/output/temp folders handed to nodes.
    pub dirs: Dirs,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            max_concurrency: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .max(2),
            cache_budget_bytes: 8 << 30,
            dirs: Dirs::default(),
        }
    }
}

/// Runs prompts against a registry, keeping an output cache between runs.
pub struct Executor {
    registry: Arc<Registry>,
    max_concurrency: usize,
    dirs: Arc<Dirs>,
    cache: Mutex<OutputCache>,
    run_lock: tokio::sync::Mutex<()>,
    resources: ResourceLocks,
    /// Makes `Fingerprint::Always` signatures unique.
    nonce: AtomicU64,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("max_concurrency", &self.max_concurrency)
            .field("cache", &self.cache_stats())
            .finish()
    }
}

impl Executor {
    /// An executor over `registry`.
    pub fn new(registry: Arc<Registry>, config: ExecutorConfig) -> Self {
        Executor {
            registry,
            max_concurrency: config.max_concurrency.max(1),
            dirs: Arc::new(config.dirs),
            cache: Mutex::new(OutputCache::new(config.cache_budget_bytes)),
            run_lock: tokio::sync::Mutex::new(()),
            resources: ResourceLocks::new(),
            nonce: AtomicU64::new(0),
        }
    }

    /// The registry this executor validates against.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The folders nodes see.
    pub fn dirs(&self) -> &Arc<Dirs> {
        &self.dirs
    }

    fn cache(&self) -> MutexGuard<'_, OutputCache> {
        // Cache operations cannot panic half-way in a way that breaks its invariants badly; keep going.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops every cached output (ComfyUI's `/free` with `free_memory`).
    pub fn clear_cache(&self) {
        self.cache().clear();
    }

    /// Cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache().stats()
    }

    /// Validates against the registry without running.
    pub fn validate(&self, request: &PromptRequest) -> Result<ValidatedPrompt, ValidationReport> {
        validate(request, &self.registry, &self.dirs)
    }

    /// Validates and runs a prompt. Validation failures come back as `Err` (ComfyUI's HTTP-400 body); a run
    /// that started always returns a report, whatever its status.
    pub async fn run(
        &self,
        request: &PromptRequest,
        options: RunOptions,
    ) -> Result<RunReport, ValidationReport> {
        let _one_at_a_time = self.run_lock.lock().await;
        let validated = self.validate(request)?;
        Ok(self.execute(request, validated, options).await)
    }

    /// Runs an already validated prompt.
    pub async fn run_validated(
        &self,
        request: &PromptRequest,
        validated: ValidatedPrompt,
        options: RunOptions,
    ) -> RunReport {
        let _one_at_a_time = self.run_lock.lock().await;
        self.execute(request, validated, options).await
    }

    async fn execute(
        &self,
        request: &PromptRequest,
        validated: ValidatedPrompt,
        options: RunOptions,
    ) -> RunReport {
        let prompt_id = options
            .prompt_id
            .clone()
            .or_else(|| request.prompt_id.clone())
            .unwrap_or_else(new_prompt_id);
        let env = RunEnv {
            cache: &self.cache,
            resources: &self.resources,
            dirs: &self.dirs,
            max_concurrency: self.max_concurrency,
            nonce: &self.nonce,
        };
        let mut run = Run::new(env, request, &validated, &options, prompt_id);
        run.execute().await;
        run.finish(validated.node_errors.clone())
    }

    /// The lock table behind exclusive resources (shared with every node's
    /// [`NodeContext::lock_resource`](crate::NodeContext::lock_resource)).
    pub fn resources(&self) -> &ResourceLocks {
        &self.resources
    }
}

/// A fresh random UUID (v4 format) for a prompt id.
pub fn new_prompt_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 16];
    for (k, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_usize(k);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
