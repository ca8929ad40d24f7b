//! One run of a validated prompt: its options and report, signatures, the cache partition, scheduling,
//! exclusive resources, events.
//!
//! The executor hands a run what it borrows ([`RunEnv`]); this module knows nothing of the executor.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use indexmap::IndexMap;
use serde_json::{Map, Value as Json};
use tokio::task::JoinSet;

use crate::cache::{CachedOutput, OutputCache, Signature, SignatureBuilder};
use crate::event::{now_ms, Event, EventSink, ExecutionErrorData};
use crate::graph::{NodeId, PromptRequest};
use crate::node::{
    CancelToken, Dirs, Fingerprint, Inputs, NodeContext, NodeContextParts, NodeError, NodeOutput,
};
use crate::outputs::SavedFile;
use crate::plan::{Plan, PlannedNode};
use crate::resource::ResourceLocks;
use crate::schema::HiddenKind;
use crate::validate::{NodeErrors, ValidatedPrompt};
use crate::value::Value;

/// A cached output node's UI data and the files it saved, re-sent as `executed` on a cache hit.
type CachedUi = (Json, Vec<SavedFile>);

/// Per-run options.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The prompt id to report; a fresh UUID when `None` (or the request's own `prompt_id`).
    pub prompt_id: Option<String>,
    /// Where events go.
    pub events: EventSink,
    /// Cancel this to interrupt the run.
    pub cancel: CancelToken,
    /// Told when each node returns successfully.
    pub node_finished: NodeFinished,
}

type NodeFinishedFn = dyn Fn(&str) + Send + Sync;

/// Called with a node's id when the node returned successfully, on the task that ran it, before
/// anything that depends on it starts. No event says this for a node without UI output; a server marks
/// the node finished with it (ComfyUI's `progress_state`). Like an [`EventSink`] it must be quick and
/// must not block.
#[derive(Clone, Default)]
pub struct NodeFinished(Option<Arc<NodeFinishedFn>>);

impl NodeFinished {
    /// A hook calling `f`.
    pub fn from_fn(f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        NodeFinished(Some(Arc::new(f)))
    }

    fn call(&self, node_id: &str) {
        if let Some(f) = &self.0 {
            f(node_id);
        }
    }
}

impl std::fmt::Debug for NodeFinished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeFinished")
            .field("set", &self.0.is_some())
            .finish()
    }
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
    /// Sets the hook told when each node returns successfully.
    pub fn node_finished(mut self, hook: NodeFinished) -> Self {
        self.node_finished = hook;
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

/// What a run borrows from the executor that starts it.
pub(crate) struct RunEnv<'e> {
    /// The output cache shared by runs.
    pub(crate) cache: &'e Mutex<OutputCache>,
    /// The exclusive-resource locks shared by runs.
    pub(crate) resources: &'e ResourceLocks,
    /// Folders handed to nodes.
    pub(crate) dirs: &'e Arc<Dirs>,
    /// How many nodes may run at once (at least 1).
    pub(crate) max_concurrency: usize,
    /// Makes `Fingerprint::Always` signatures unique.
    pub(crate) nonce: &'e AtomicU64,
}

impl RunEnv<'_> {
    fn cache(&self) -> MutexGuard<'_, OutputCache> {
        // Cache operations cannot panic half-way in a way that breaks its invariants badly; keep going.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a planned node needs in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeState {
    /// Not needed: nothing downstream runs.
    NotNeeded,
    /// Its outputs come from the cache.
    Cached,
    /// It executes.
    Run,
}

type TaskResult = (usize, Result<NodeOutput, NodeError>);

/// Each planned node's output values, once known.
type NodeResults = Vec<Option<Arc<Vec<Value>>>>;

/// The state of one run.
pub(crate) struct Run<'e> {
    env: RunEnv<'e>,
    validated: &'e ValidatedPrompt,
    options: &'e RunOptions,
    prompt_id: String,
    prompt: Arc<Json>,
    extra_data: Arc<Json>,
    events: EventSink,
    abort: CancelToken,
    started_at: Instant,
    status: RunStatus,
    executed: Vec<NodeId>,
    cached: Vec<NodeId>,
    ui_outputs: IndexMap<NodeId, Json>,
    saved_files: IndexMap<NodeId, Vec<SavedFile>>,
}

impl<'e> Run<'e> {
    pub(crate) fn new(
        env: RunEnv<'e>,
        request: &PromptRequest,
        validated: &'e ValidatedPrompt,
        options: &'e RunOptions,
        prompt_id: String,
    ) -> Self {
        Run {
            env,
            validated,
            options,
            prompt_id,
            prompt: Arc::clone(request.prompt.raw_arc()),
            extra_data: Arc::new(request.extra_data.clone()),
            events: options.events.clone(),
            abort: options.cancel.child(),
            started_at: Instant::now(),
            status: RunStatus::Success,
            executed: Vec::new(),
            cached: Vec::new(),
            ui_outputs: IndexMap::new(),
            saved_files: IndexMap::new(),
        }
    }

    fn emit(&self, event: Event) {
        self.events.send(event);
    }

    pub(crate) async fn execute(&mut self) {
        self.started_at = Instant::now();
        self.emit(Event::ExecutionStart {
            prompt_id: self.prompt_id.clone(),
            timestamp: now_ms(),
        });
        let plan = &self.validated.nodes;
        let n = plan.len();
        let outputs: Vec<usize> = self
            .validated
            .outputs
            .iter()
            .filter_map(|o| plan.index_of(o.as_str()))
            .collect();

        let sigs = self.signatures(plan);
        let (state, mut results, mut cached_ui) = self.partition_cached(plan, &outputs, &sigs);
        self.cached_event();
        for &o in &outputs {
            if let Some((ui, saved)) = cached_ui[o].take() {
                self.executed_event(&plan[o].id, ui, saved);
            }
        }

        let mut waiting: Vec<usize> = plan
            .iter()
            .map(|node| {
                node.dependencies()
                    .iter()
                    .filter(|&&d| state[d] == NodeState::Run)
                    .count()
            })
            .collect();
        let mut ready: BinaryHeap<Reverse<usize>> = (0..n)
            .filter(|&i| state[i] == NodeState::Run && waiting[i] == 0)
            .map(Reverse)
            .collect();
        let mut tasks: JoinSet<TaskResult> = JoinSet::new();
        let mut task_node: HashMap<tokio::task::Id, usize> = HashMap::new();
        let mut inputs_of: HashMap<usize, Inputs> = HashMap::new();
        let mut finished: VecDeque<TaskResult> = VecDeque::new();
        let mut stopping = false;

        loop {
            while !stopping && tasks.len() < self.env.max_concurrency {
                let Some(Reverse(i)) = ready.pop() else { break };
                let node = &plan[i];
                if self.options.cancel.is_cancelled() {
                    self.status = RunStatus::Interrupted {
                        node_id: Some(node.id.clone()),
                    };
                    stopping = true;
                    break;
                }
                let inputs = match self.gather_inputs(plan, node, &results) {
                    Ok(inputs) => inputs,
                    Err(e) => {
                        self.fail(&node.id, e, &Inputs::new());
                        stopping = true;
                        break;
                    }
                };
                self.env.cache().release_stale(&node.id, &sigs[i]);
                inputs_of.insert(i, inputs.clone());
                // Poll once inline: trivial nodes finish here without a task hand-off; anything that
                // waits is moved to its own task so branches overlap.
                let mut task = Box::pin(self.node_task(i, node, inputs));
                match poll_once(i, task.as_mut()) {
                    Some(done) => finished.push_back(done),
                    None => {
                        let handle = tasks.spawn(task);
                        task_node.insert(handle.id(), i);
                    }
                }
            }
            let (i, result) = match finished.pop_front() {
                Some(done) => done,
                None => match tasks.join_next_with_id().await {
                    None => break,
                    Some(Ok((_, done))) => done,
                    Some(Err(join)) => {
                        let i = task_node.get(&join.id()).copied().unwrap_or(0);
                        (
                            i,
                            Err(NodeError::new(panic_message(join)).with_kind("panic")),
                        )
                    }
                },
            };
            let node = &plan[i];
            let inputs = inputs_of.remove(&i).unwrap_or_default();
            match result.and_then(|out| check_output_count(node, out)) {
                Ok(out) => {
                    let values = Arc::new(out.values);
                    self.env.cache().insert(
                        &node.id,
                        sigs[i],
                        CachedOutput {
                            values: Arc::clone(&values),
                            ui: out.ui.clone(),
                            saved: out.saved.clone(),
                        },
                    );
                    results[i] = Some(values);
                    self.executed.push(node.id.clone());
                    if let Some(ui) = out.ui {
                        self.executed_event(&node.id, ui, out.saved);
                    }
                    for &d in node.dependents() {
                        if state[d] == NodeState::Run {
                            waiting[d] -= 1;
                            if waiting[d] == 0 {
                                ready.push(Reverse(d));
                            }
                        }
                    }
                }
                Err(e) => {
                    // Only the first way of stopping is reported: a failure, or the user's cancel. A
                    // sibling that stops because of either just stops.
                    if self.status == RunStatus::Success {
                        if e.is_cancelled() && self.options.cancel.is_cancelled() {
                            self.status = RunStatus::Interrupted {
                                node_id: Some(node.id.clone()),
                            };
                        } else {
                            self.fail(&node.id, e, &inputs);
                        }
                    }
                    stopping = true;
                }
            }
            if stopping {
                self.abort.cancel();
            }
        }
        if self.status == RunStatus::Success
            && self.options.cancel.is_cancelled()
            && !ready.is_empty()
        {
            let next = ready.peek().map(|Reverse(i)| plan[*i].id.clone());
            self.status = RunStatus::Interrupted { node_id: next };
        }
    }

    /// Input signatures in plan order: each includes its sources' signatures.
    fn signatures(&self, plan: &Plan) -> Vec<Signature> {
        let mut sigs: Vec<Signature> = Vec::with_capacity(plan.len());
        for node in plan.iter() {
            let schema = &node.node_type.schema;
            let mut b = SignatureBuilder::new(&schema.name);
            match &node.is_changed {
                Some(v) => {
                    b.is_changed(v);
                }
                None => {
                    let fp = self.fingerprint(node);
                    b.fingerprint(&fp, self.env.nonce.fetch_add(1, Ordering::Relaxed));
                }
            }
            if schema.not_idempotent || schema.has_unique_id() {
                b.node_id(&node.id);
            }
            for (name, value) in node.constant_inputs().iter() {
                b.constant(name, value);
            }
            for link in node.links() {
                b.link(&link.input, &sigs[link.source], link.slot);
            }
            sigs.push(b.finish());
        }
        sigs
    }

    /// Walks up from the outputs: a cached node supplies its outputs and cuts off its whole subtree;
    /// every other node reached must run. Records the cached nodes for `execution_cached`.
    fn partition_cached(
        &mut self,
        plan: &Plan,
        outputs: &[usize],
        sigs: &[Signature],
    ) -> (Vec<NodeState>, NodeResults, Vec<Option<CachedUi>>) {
        let n = plan.len();
        let mut state = vec![NodeState::NotNeeded; n];
        let mut results: NodeResults = vec![None; n];
        let mut cached_ui: Vec<Option<CachedUi>> = vec![None; n];
        let mut cache = self.env.cache();
        let mut stack: Vec<usize> = outputs.to_vec();
        while let Some(i) = stack.pop() {
            if state[i] != NodeState::NotNeeded {
                continue;
            }
            if let Some(hit) = cache.get(&sigs[i]) {
                state[i] = NodeState::Cached;
                results[i] = Some(hit.values);
                cached_ui[i] = hit.ui.map(|ui| (ui, hit.saved));
                cache.touch_node(&plan[i].id, sigs[i]);
            } else {
                state[i] = NodeState::Run;
                stack.extend(plan[i].dependencies().iter().copied());
            }
        }
        for (i, node) in plan.iter().enumerate() {
            if state[i] == NodeState::Cached
                || (state[i] == NodeState::NotNeeded && cache.contains(&sigs[i]))
            {
                self.cached.push(node.id.clone());
            }
        }
        (state, results, cached_ui)
    }

    fn fingerprint(&self, node: &PlannedNode) -> Fingerprint {
        let ctx = node.check_context(self.env.dirs);
        match node
            .node_type
            .node
            .fingerprint(node.constant_inputs(), &ctx)
        {
            Ok(fp) => fp,
            Err(e) => {
                // As in ComfyUI, a failing IS_CHANGED means "always re-run"; the node itself will report.
                tracing::debug!(node = %node.id, error = %e, "fingerprint failed; node will re-run");
                Fingerprint::Always
            }
        }
    }

    /// The node's constants, its links' values and the hidden inputs the engine injects. `PROMPT` and
    /// `EXTRA_PNGINFO` are not copied into the inputs: every node reads them from its context
    /// (`ctx.prompt()`, `ctx.extra_pnginfo()`), which shares one copy per run.
    fn gather_inputs(
        &self,
        plan: &Plan,
        node: &PlannedNode,
        results: &[Option<Arc<Vec<Value>>>],
    ) -> Result<Inputs, NodeError> {
        let mut inputs = node.constant_inputs().clone();
        for link in node.links() {
            let value = results[link.source]
                .as_ref()
                .and_then(|values| values.get(link.slot))
                .cloned()
                .ok_or_else(|| {
                    NodeError::input(
                        &link.input,
                        format!(
                            "no value from node {} slot {}",
                            plan[link.source].id, link.slot
                        ),
                    )
                })?;
            inputs.insert(link.input.clone(), value);
        }
        for hidden in &node.node_type.schema.hidden {
            let value = match &hidden.kind {
                HiddenKind::Prompt | HiddenKind::ExtraPngInfo => continue,
                HiddenKind::UniqueId => Value::String(node.id.0.clone()),
                HiddenKind::Other(magic) => match self.extra_data.get(magic.to_ascii_lowercase()) {
                    Some(v) => Value::Json(v.clone()),
                    None => continue,
                },
            };
            inputs.insert(hidden.name.clone(), value);
        }
        Ok(inputs)
    }

    fn node_task(
        &self,
        index: usize,
        node: &PlannedNode,
        inputs: Inputs,
    ) -> impl std::future::Future<Output = TaskResult> + Send + 'static {
        let implementation = Arc::clone(&node.node_type.node);
        let held = implementation.exclusive_resource(node.constant_inputs());
        let lock = held.clone().map(|r| self.env.resources.lock(r));
        let ctx = NodeContext::new(NodeContextParts {
            prompt_id: self.prompt_id.clone(),
            node_id: node.id.0.clone(),
            class_type: node.node_type.schema.name.clone(),
            dirs: Arc::clone(self.env.dirs),
            prompt: Arc::clone(&self.prompt),
            extra_data: Arc::clone(&self.extra_data),
            events: self.events.clone(),
            cancel: self.abort.clone(),
            resources: self.env.resources.clone(),
            held,
        });
        let events = self.events.clone();
        let finished = self.options.node_finished.clone();
        // The id outlives the context only when someone listens.
        let finished_id = finished.0.is_some().then(|| node.id.0.clone());
        async move {
            let _held = match lock {
                Some(lock) => Some(lock.await),
                None => None,
            };
            if ctx.is_cancelled() {
                return (index, Err(NodeError::cancelled()));
            }
            events.send(Event::Executing {
                node: Some(ctx.node_id().to_string()),
                display_node: Some(ctx.node_id().to_string()),
                prompt_id: ctx.prompt_id().to_string(),
            });
            let result = implementation.run(inputs, ctx).await;
            if let (Ok(_), Some(id)) = (&result, &finished_id) {
                finished.call(id);
            }
            (index, result)
        }
    }

    fn cached_event(&self) {
        self.emit(Event::ExecutionCached {
            nodes: self.cached.iter().map(|n| n.0.clone()).collect(),
            prompt_id: self.prompt_id.clone(),
            timestamp: now_ms(),
        });
    }

    fn executed_event(&mut self, id: &NodeId, ui: Json, saved: Vec<SavedFile>) {
        self.ui_outputs.insert(id.clone(), ui.clone());
        if !saved.is_empty() {
            self.saved_files.insert(id.clone(), saved);
        }
        self.emit(Event::Executed {
            node: id.0.clone(),
            display_node: id.0.clone(),
            output: ui,
            prompt_id: self.prompt_id.clone(),
        });
    }

    fn node_type_of(&self, id: &NodeId) -> Option<String> {
        self.validated
            .nodes
            .get(id.as_str())
            .map(|n| n.node_type.schema.name.clone())
    }

    fn fail(&mut self, id: &NodeId, error: NodeError, inputs: &Inputs) {
        let current_inputs: Map<String, Json> = inputs
            .iter()
            .map(|(k, v)| (k.to_string(), Json::Array(vec![v.summary()])))
            .collect();
        self.status = RunStatus::Failed(Box::new(ExecutionErrorData {
            prompt_id: self.prompt_id.clone(),
            node_id: id.0.clone(),
            node_type: self.node_type_of(id).unwrap_or_default(),
            executed: self.done_ids(),
            exception_message: error.message,
            exception_type: error.kind,
            traceback: error.details,
            current_inputs,
            current_outputs: Vec::new(),
            timestamp: now_ms(),
        }));
    }

    fn done_ids(&self) -> Vec<String> {
        self.cached
            .iter()
            .chain(&self.executed)
            .map(|n| n.0.clone())
            .collect()
    }

    pub(crate) fn finish(self, node_errors: IndexMap<NodeId, NodeErrors>) -> RunReport {
        match &self.status {
            RunStatus::Success => self.emit(Event::ExecutionSuccess {
                prompt_id: self.prompt_id.clone(),
                timestamp: now_ms(),
            }),
            RunStatus::Failed(data) => self.emit(Event::ExecutionError((**data).clone())),
            RunStatus::Interrupted { node_id } => self.emit(Event::ExecutionInterrupted {
                prompt_id: self.prompt_id.clone(),
                node_id: node_id.as_ref().map(|n| n.0.clone()),
                node_type: node_id.as_ref().and_then(|n| self.node_type_of(n)),
                executed: self.done_ids(),
                timestamp: now_ms(),
            }),
        }
        self.emit(Event::Executing {
            node: None,
            display_node: None,
            prompt_id: self.prompt_id.clone(),
        });
        RunReport {
            prompt_id: self.prompt_id,
            status: self.status,
            executed: self.executed,
            cached: self.cached,
            ui_outputs: self.ui_outputs,
            saved_files: self.saved_files,
            node_errors,
            started_at: self.started_at,
            finished_at: Instant::now(),
        }
    }
}

fn check_output_count(node: &PlannedNode, out: NodeOutput) -> Result<NodeOutput, NodeError> {
    let declared = node.node_type.schema.outputs.len();
    if out.values.len() == declared {
        Ok(out)
    } else {
        Err(NodeError::new(format!(
            "node returned {} output values but its schema declares {declared}",
            out.values.len()
        ))
        .with_kind("OutputCountMismatch"))
    }
}

/// Polls a node's future once with a no-op waker; a panic becomes a failed result.
fn poll_once(
    index: usize,
    task: std::pin::Pin<&mut (impl std::future::Future<Output = TaskResult> + ?Sized)>,
) -> Option<TaskResult> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task.poll(&mut cx))) {
        Ok(std::task::Poll::Ready(done)) => Some(done),
        Ok(std::task::Poll::Pending) => None,
        Err(payload) => Some((
            index,
            Err(
                NodeError::new(format!("node panicked: {}", panic_text(&*payload)))
                    .with_kind("panic"),
            ),
        )),
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn panic_message(join: tokio::task::JoinError) -> String {
    if join.is_cancelled() {
        return "node task was cancelled".into();
    }
    match join.try_into_panic() {
        Ok(payload) => format!("node panicked: {}", panic_text(&*payload)),
        Err(e) => format!("node task failed: {e}"),
    }
}
