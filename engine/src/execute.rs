//! The executor: runs a validated prompt's planned nodes with caching, concurrency, exclusive resources and
//! cancellation, reporting ComfyUI events.
//!
//! One prompt runs at a time per executor (as in ComfyUI); inside it, independent branches run
//! concurrently up to [`ExecutorConfig::max_concurrency`]. A node failure stops the prompt (running
//! siblings are asked to cancel, and what they finish is still cached); the executor stays usable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use indexmap::IndexMap;
use serde_json::Value as Json;

use crate::cache::{CacheStats, OutputCache};
use crate::event::{EventSink, ExecutionErrorData};
use crate::graph::{NodeId, PromptRequest};
use crate::node::{CancelToken, Dirs};
use crate::outputs::SavedFile;
use crate::registry::Registry;
use crate::validate::{validate, NodeErrors, ValidatedPrompt, ValidationReport};

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

/// Per-run options.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The prompt id to report; a fresh UUID when `None` (or the request's own `prompt_id`).
    pub prompt_id: Option<String>,
    /// Where events go.
    pub events: EventSink,
    /// Cancel this to interrupt the run.
    pub cancel: CancelToken,
}

impl RunOptions {
    /// Options sending events to `events`.
    pub fn new(events: EventSink) -> Self {
        RunOptions {
            events,
            ..Default::default()
        }
    }
    /// Sets the prompt id.
    pub fn prompt_id(mut self, id: impl Into<String>) -> Self {
        self.prompt_id = Some(id.into());
        self
    }
    /// Sets the cancellation token.
    pub fn cancel(mut self, token: CancelToken) -> Self {
        self.cancel = token;
        self
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunStatus {
    /// Every planned node finished.
    Success,
    /// A node failed (the `execution_error` data).
    Failed(Box<ExecutionErrorData>),
    /// The run was cancelled.
    Interrupted {
        /// The node running (or next to run) when it stopped.
        node_id: Option<NodeId>,
    },
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The prompt id used in events.
    pub prompt_id: String,
    /// How it ended.
    pub status: RunStatus,
    /// Nodes that executed, in completion order.
    pub executed: Vec<NodeId>,
    /// Planned nodes whose outputs came from the cache (as in `execution_cached`).
    pub cached: Vec<NodeId>,
    /// UI outputs of output nodes (executed or cached), by node id.
    pub ui_outputs: IndexMap<NodeId, Json>,
    /// Files saved by output nodes (executed or cached), by node id: the record `ui_outputs` is rendered from.
    pub saved_files: IndexMap<NodeId, Vec<SavedFile>>,
    /// Validation errors of outputs that were dropped while others ran.
    pub node_errors: IndexMap<NodeId, NodeErrors>,
    /// When `execution_start` was sent.
    pub started_at: Instant,
    /// When the run finished.
    pub finished_at: Instant,
}

impl RunReport {
    /// Whether every planned node finished.
    pub fn is_success(&self) -> bool {
        self.status == RunStatus::Success
    }
}

/// Runs prompts against a registry, keeping an output cache between runs.
pub struct Executor {
    registry: Arc<Registry>,
    pub(crate) max_concurrency: usize,
    dirs: Arc<Dirs>,
    cache: Mutex<OutputCache>,
    run_lock: tokio::sync::Mutex<()>,
    resources: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Makes `Fingerprint::Always` signatures unique.
    pub(crate) nonce: AtomicU64,
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
            resources: Mutex::new(HashMap::new()),
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

    pub(crate) fn cache(&self) -> MutexGuard<'_, OutputCache> {
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
        let mut run = crate::run::Run::new(self, request, &validated, &options, prompt_id);
        run.execute().await;
        run.finish(validated.node_errors.clone())
    }

    pub(crate) fn resource_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.resources.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(name.to_string()).or_default())
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
