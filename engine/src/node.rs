//! The node contract: what a node type implements and what it receives while running.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value as Json;

pub use crate::dirs::Dirs;
use crate::event::EventSink;
use crate::graph::NodeId;
use crate::outputs::{ui_listing, SavedFile};
use crate::resource::{Resource, ResourceGuard, ResourceLocks};
use crate::schema::NodeSchema;
use crate::throttle::ProgressThrottle;
use crate::value::{downcast_opaque, Image, Mask, OpaqueValue, Value};

/// A boxed, sendable future (what [`NodeType::run`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A node type: a schema plus behaviour. Registered in a [`crate::Registry`] under its schema's name.
///
/// Only [`schema`](NodeType::schema) and [`run`](NodeType::run) are required. A CPU-heavy node should do its
/// work through [`NodeContext::run_blocking`] so it does not stall other branches.
///
/// ```
/// use omnigen_engine::{BoxFuture, InputSpec, Inputs, NodeContext, NodeError, NodeOutput, NodeSchema, NodeType, Value};
///
/// struct AddInts;
/// impl NodeType for AddInts {
///     fn schema(&self) -> NodeSchema {
///         NodeSchema::new("AddInts")
///             .required(InputSpec::int("a").default_int(0))
///             .required(InputSpec::int("b").default_int(0))
///             .output("INT")
///     }
///     fn run<'a>(&'a self, inputs: Inputs, _ctx: NodeContext) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
///         Box::pin(async move {
///             let sum = inputs.get_int("a")? + inputs.get_int("b")?;
///             Ok(NodeOutput::new(vec![Value::Int(sum)]))
///         })
///     }
/// }
/// ```
pub trait NodeType: Send + Sync + 'static {
    /// The node's schema. Called once when registered; the registry keeps the result.
    fn schema(&self) -> NodeSchema;

    /// ComfyUI's `IS_CHANGED`: a fingerprint of external state (e.g. the sha256 of a file the node reads),
    /// part of the cache key. `inputs` holds the constant (non-linked) inputs only, already coerced.
    /// Called once per run for every planned node, before anything executes: keep it quick.
    fn fingerprint(&self, inputs: &Inputs, ctx: &CheckContext) -> Result<Fingerprint, NodeError> {
        let _ = (inputs, ctx);
        Ok(Fingerprint::Constant)
    }

    /// ComfyUI's `VALIDATE_INPUTS`: extra checks on the constant inputs after type and range checks passed
    /// (so a range or combo the schema declares needs no second check here). An `Err` is reported as
    /// `custom_validation_failed`; an error made with [`NodeError::input`] names the input in the report.
    fn validate(&self, inputs: &Inputs, ctx: &CheckContext) -> Result<(), NodeError> {
        let _ = (inputs, ctx);
        Ok(())
    }

    /// A resource this node must hold alone while it runs (e.g. `Resource::new("cuda:0")`): nodes naming
    /// the same resource never run at the same time, even on independent branches. `inputs` holds the
    /// constant inputs only; a resource known only at run time is taken with
    /// [`NodeContext::lock_resource`], which uses the same locks.
    fn exclusive_resource(&self, inputs: &Inputs) -> Option<Resource> {
        let _ = inputs;
        None
    }

    /// Runs the node. Inputs are complete (constants coerced, links resolved, hidden inputs injected).
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>>;
}

/// The result of [`NodeType::fingerprint`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Fingerprint {
    /// Depends only on the inputs (the default).
    Constant,
    /// Depends on external state summarised by this string; a new string re-runs the node.
    Value(String),
    /// Never reuse a cached result (ComfyUI's `NaN`).
    Always,
}

/// What [`NodeType::fingerprint`] and [`NodeType::validate`] see besides the inputs.
#[derive(Debug, Clone)]
pub struct CheckContext {
    /// The node's id in the graph.
    pub node_id: NodeId,
    /// Input/output/temp folders.
    pub dirs: Arc<Dirs>,
    /// Names of the inputs fed by a link (their values are only known at run time), so a node can check
    /// which optional sockets are connected before anything runs.
    pub linked: Vec<String>,
}

impl CheckContext {
    /// A context for `node_id` with no linked inputs.
    pub fn new(node_id: impl Into<NodeId>, dirs: Arc<Dirs>) -> Self {
        Self {
            node_id: node_id.into(),
            dirs,
            linked: Vec::new(),
        }
    }

    /// Whether input `name` is fed by a link.
    pub fn is_linked(&self, name: &str) -> bool {
        self.linked.iter().any(|n| n == name)
    }
}

/// A cancellation flag shared between a run and whoever may cancel it. Cheap to clone and check; usable
/// from blocking code. A [`child`](CancelToken::child) token is cancelled with its parent, or alone.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<CancelInner>);

#[derive(Debug, Default)]
struct CancelInner {
    flag: AtomicBool,
    parent: Option<CancelToken>,
}

impl CancelToken {
    /// A fresh, not-cancelled token.
    pub fn new() -> Self {
        Self::default()
    }
    /// A token cancelled when this one is, which can also be cancelled on its own.
    pub fn child(&self) -> Self {
        CancelToken(Arc::new(CancelInner {
            flag: AtomicBool::new(false),
            parent: Some(self.clone()),
        }))
    }
    /// Requests cancellation.
    pub fn cancel(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
    }
    /// Whether cancellation was requested (here or on a parent).
    pub fn is_cancelled(&self) -> bool {
        self.0.flag.load(Ordering::Relaxed)
            || self
                .0
                .parent
                .as_ref()
                .is_some_and(CancelToken::is_cancelled)
    }
}

/// An error from a node (or from reading its inputs).
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{message}")]
pub struct NodeError {
    /// What went wrong, for a person.
    pub message: String,
    /// Further lines of context (reported as `traceback` in `execution_error`).
    pub details: Vec<String>,
    /// A category, reported as `exception_type` (`"NodeError"` unless set).
    pub kind: String,
    /// The input the error is about (set by [`NodeError::input`]).
    input: Option<String>,
    cancelled: bool,
}

impl NodeError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        NodeError {
            message: message.into(),
            details: Vec::new(),
            kind: "NodeError".into(),
            input: None,
            cancelled: false,
        }
    }
    /// An error about one input: the message reads `input '<name>': <reason>`, and validation reports
    /// it as ComfyUI does (`"details": "<name> - <reason>"`, `"extra_info": {"input_name": …}`).
    pub fn input(name: &str, reason: impl std::fmt::Display) -> Self {
        let mut e = NodeError::new(format!("input '{name}': {reason}")).with_kind("InputError");
        e.input = Some(name.to_string());
        e
    }
    /// The input this error is about, if it was made with [`NodeError::input`].
    pub fn input_name(&self) -> Option<&str> {
        self.input.as_deref()
    }
    /// The message without the `input '<name>': ` prefix of [`NodeError::input`].
    pub fn reason(&self) -> &str {
        match &self.input {
            Some(name) => self
                .message
                .strip_prefix(&format!("input '{name}': "))
                .unwrap_or(&self.message),
            None => &self.message,
        }
    }
    /// The error a cancelled node returns ([`NodeContext::check_cancelled`] makes it).
    pub fn cancelled() -> Self {
        NodeError {
            message: "cancelled".into(),
            details: Vec::new(),
            kind: "Interrupted".into(),
            input: None,
            cancelled: true,
        }
    }
    /// Wraps any error, keeping its chain of causes as details.
    pub fn from_error(err: &(dyn std::error::Error + 'static)) -> Self {
        let mut e = NodeError::new(err.to_string());
        let mut source = err.source();
        while let Some(s) = source {
            e.details.push(format!("caused by: {s}"));
            source = s.source();
        }
        e
    }
    /// Adds a line of detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.details.push(detail.into());
        self
    }
    /// Sets the category.
    pub fn with_kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }
    /// Whether this error means "stopped because cancelled" rather than a failure.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled
    }
}

impl From<std::io::Error> for NodeError {
    fn from(e: std::io::Error) -> Self {
        NodeError::from_error(&e).with_kind("IOError")
    }
}

impl From<crate::value::ValueError> for NodeError {
    fn from(e: crate::value::ValueError) -> Self {
        NodeError::from_error(&e).with_kind("ValueError")
    }
}

/// What a node returns: one value per output slot, plus optional UI data.
#[derive(Debug, Clone, Default)]
pub struct NodeOutput {
    /// One value per declared output, in slot order.
    pub values: Vec<Value>,
    /// UI data for the frontend, sent as `executed.output` (e.g. `{"images":[{filename,subfolder,type}]}`).
    pub ui: Option<Json>,
    /// The files this node saved; set with [`NodeOutput::saved`], which renders `ui` from it.
    pub saved: Vec<SavedFile>,
}

impl NodeOutput {
    /// Outputs without UI data.
    pub fn new(values: Vec<Value>) -> Self {
        NodeOutput {
            values,
            ..NodeOutput::default()
        }
    }
    /// UI data only (typical for output nodes).
    pub fn ui(ui: Json) -> Self {
        NodeOutput {
            ui: Some(ui),
            ..NodeOutput::default()
        }
    }
    /// The files an output node saved: the typed record, and the UI JSON rendered from it under `key`
    /// (ComfyUI's `{"images": [{filename, subfolder, type}]}` for `key = "images"`).
    pub fn saved(key: &str, files: Vec<SavedFile>) -> Self {
        NodeOutput {
            ui: Some(ui_listing(key, &files)),
            saved: files,
            ..NodeOutput::default()
        }
    }
    /// Adds UI data.
    pub fn with_ui(mut self, ui: Json) -> Self {
        self.ui = Some(ui);
        self
    }
}

/// A node's inputs by name, with typed getters that fail with an error naming the input.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    values: BTreeMap<String, Value>,
}

macro_rules! getters {
    ($(#[$doc:meta] $get:ident, $opt:ident, $t:ty, $pat:pat => $out:expr, $want:literal;)*) => {$(
        #[$doc]
        pub fn $get(&self, name: &str) -> Result<$t, NodeError> {
            self.$opt(name)?.ok_or_else(|| NodeError::input(name, "missing"))
        }
        #[$doc]
        /// Absent inputs give `Ok(None)`.
        pub fn $opt(&self, name: &str) -> Result<Option<$t>, NodeError> {
            match self.values.get(name) {
                None => Ok(None),
                Some($pat) => Ok(Some($out)),
                Some(other) => Err(NodeError::input(
                    name,
                    format!("expected {}, got {}", $want, other.kind_name()),
                )),
            }
        }
    )*};
}

impl Inputs {
    /// Empty inputs.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets an input.
    pub fn insert(&mut self, name: impl Into<String>, value: Value) {
        self.values.insert(name.into(), value);
    }
    /// Builder form of [`insert`](Self::insert).
    pub fn with(mut self, name: impl Into<String>, value: Value) -> Self {
        self.insert(name, value);
        self
    }
    /// The raw value of an input.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }
    /// Whether an input is present.
    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
    /// Input names and values, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }
    /// Number of inputs.
    pub fn len(&self) -> usize {
        self.values.len()
    }
    /// Whether there are no inputs.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    /// Removes and returns an input.
    pub fn take(&mut self, name: &str) -> Option<Value> {
        self.values.remove(name)
    }

    getters! {
        /// An `INT` input.
        get_int, opt_int, i128, Value::Int(i) => *i, "INT";
        /// A `BOOLEAN` input.
        get_bool, opt_bool, bool, Value::Bool(b) => *b, "BOOLEAN";
        /// A `STRING` input.
        get_str, opt_str, &str, Value::String(s) => s.as_str(), "STRING";
        /// An `IMAGE` input.
        get_image, opt_image, Arc<Image>, Value::Image(i) => Arc::clone(i), "IMAGE";
        /// A `MASK` input.
        get_mask, opt_mask, Arc<Mask>, Value::Mask(m) => Arc::clone(m), "MASK";
        /// A JSON input (literals on `*` inputs, hidden inputs filled from `extra_data`).
        get_json, opt_json, &Json, Value::Json(j) => j, "JSON";
        /// A list input.
        get_list, opt_list, &[Value], Value::List(l) => l.as_slice(), "LIST";
    }

    /// A `FLOAT` input (an `INT` is widened).
    pub fn get_float(&self, name: &str) -> Result<f64, NodeError> {
        self.opt_float(name)?
            .ok_or_else(|| NodeError::input(name, "missing"))
    }
    /// A `FLOAT` input (an `INT` is widened); absent inputs give `Ok(None)`.
    pub fn opt_float(&self, name: &str) -> Result<Option<f64>, NodeError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(Value::Float(f)) => Ok(Some(*f)),
            Some(Value::Int(i)) => Ok(Some(*i as f64)),
            Some(other) => Err(NodeError::input(
                name,
                format!("expected FLOAT, got {}", other.kind_name()),
            )),
        }
    }
    /// An `INT` input that must fit `i64`.
    pub fn get_i64(&self, name: &str) -> Result<i64, NodeError> {
        let v = self.get_int(name)?;
        i64::try_from(v).map_err(|_| NodeError::input(name, format!("{v} does not fit in i64")))
    }
    /// An `INT` input that must fit `u64` (seeds).
    pub fn get_u64(&self, name: &str) -> Result<u64, NodeError> {
        let v = self.get_int(name)?;
        u64::try_from(v).map_err(|_| NodeError::input(name, format!("{v} does not fit in u64")))
    }
    /// An `INT` input that must fit `usize` (sizes, counts).
    pub fn get_usize(&self, name: &str) -> Result<usize, NodeError> {
        let v = self.get_int(name)?;
        usize::try_from(v).map_err(|_| NodeError::input(name, format!("{v} is not a valid size")))
    }
    /// A node-specific value of type `T`.
    pub fn get_opaque<T: OpaqueValue>(&self, name: &str) -> Result<Arc<T>, NodeError> {
        self.opt_opaque(name)?
            .ok_or_else(|| NodeError::input(name, "missing"))
    }
    /// A node-specific value of type `T`; absent inputs give `Ok(None)`.
    pub fn opt_opaque<T: OpaqueValue>(&self, name: &str) -> Result<Option<Arc<T>>, NodeError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(Value::Opaque(o)) => downcast_opaque::<T>(Arc::clone(o)).map(Some).map_err(|o| {
                NodeError::input(
                    name,
                    format!(
                        "expected {}, got {}",
                        std::any::type_name::<T>(),
                        o.type_name()
                    ),
                )
            }),
            Some(other) => Err(NodeError::input(
                name,
                format!(
                    "expected {}, got {}",
                    std::any::type_name::<T>(),
                    other.kind_name()
                ),
            )),
        }
    }
}

impl FromIterator<(String, Value)> for Inputs {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Inputs {
            values: iter.into_iter().collect(),
        }
    }
}

#[derive(Debug)]
struct ContextInner {
    prompt_id: String,
    node_id: String,
    class_type: String,
    dirs: Arc<Dirs>,
    prompt: Arc<Json>,
    extra_data: Arc<Json>,
    progress: ProgressThrottle,
    cancel: CancelToken,
    resources: ResourceLocks,
    held: Option<Resource>,
}

/// What a running node can see and do besides its inputs: identity, folders, progress, cancellation,
/// exclusive resources.
/// Cheap to clone; may be moved into blocking code.
#[derive(Debug, Clone)]
pub struct NodeContext {
    inner: Arc<ContextInner>,
}

/// Everything needed to build a [`NodeContext`] (used by the executor, and by tests running a node alone).
#[derive(Debug, Clone, Default)]
pub struct NodeContextParts {
    /// Prompt id.
    pub prompt_id: String,
    /// Node id.
    pub node_id: String,
    /// Node class_type.
    pub class_type: String,
    /// Folders.
    pub dirs: Arc<Dirs>,
    /// The whole prompt (API format).
    pub prompt: Arc<Json>,
    /// The request's `extra_data` (`extra_pnginfo`, `client_id` …); `null` when absent.
    pub extra_data: Arc<Json>,
    /// Where progress goes.
    pub events: EventSink,
    /// Cancellation flag of the run.
    pub cancel: CancelToken,
    /// The executor's lock table (what [`NodeContext::lock_resource`] locks).
    pub resources: ResourceLocks,
    /// The resource the scheduler already holds for this node (its `exclusive_resource`).
    pub held: Option<Resource>,
}

impl NodeContext {
    /// Builds a context.
    pub fn new(parts: NodeContextParts) -> Self {
        NodeContext {
            inner: Arc::new(ContextInner {
                // First, while the ids are still here to clone.
                progress: ProgressThrottle::new(
                    parts.events,
                    parts.prompt_id.clone(),
                    parts.node_id.clone(),
                ),
                prompt_id: parts.prompt_id,
                node_id: parts.node_id,
                class_type: parts.class_type,
                dirs: parts.dirs,
                prompt: parts.prompt,
                extra_data: parts.extra_data,
                cancel: parts.cancel,
                resources: parts.resources,
                held: parts.held,
            }),
        }
    }
    /// Prompt id of the run.
    pub fn prompt_id(&self) -> &str {
        &self.inner.prompt_id
    }
    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }
    /// This node's class_type.
    pub fn class_type(&self) -> &str {
        &self.inner.class_type
    }
    /// Input/output/temp folders.
    pub fn dirs(&self) -> &Dirs {
        &self.inner.dirs
    }
    /// The whole prompt (API format), e.g. to embed in a saved PNG.
    pub fn prompt(&self) -> &Json {
        &self.inner.prompt
    }
    /// The request's `extra_data` (`null` when absent).
    pub fn extra_data(&self) -> &Json {
        &self.inner.extra_data
    }
    /// `extra_data.extra_pnginfo`, if present (the UI workflow to embed in saved PNGs).
    pub fn extra_pnginfo(&self) -> Option<&Json> {
        self.inner.extra_data.get("extra_pnginfo")
    }
    /// The run's cancellation flag (clone it into blocking code).
    pub fn cancel_token(&self) -> &CancelToken {
        &self.inner.cancel
    }
    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }
    /// `Err(NodeError::cancelled())` once the run was cancelled: call it between steps and use `?`.
    pub fn check_cancelled(&self) -> Result<(), NodeError> {
        if self.is_cancelled() {
            Err(NodeError::cancelled())
        } else {
            Ok(())
        }
    }
    /// Reports progress (`progress` event); returns an error if the run was cancelled, so a loop can
    /// `ctx.progress(step, steps)?`.
    pub fn progress(&self, value: u64, max: u64) -> Result<(), NodeError> {
        self.progress_with_preview(value, max, None)
    }
    /// Reports progress with a preview image (a server sends it as a binary preview frame).
    pub fn progress_with_preview(
        &self,
        value: u64,
        max: u64,
        preview: Option<Arc<Image>>,
    ) -> Result<(), NodeError> {
        self.inner.progress.report(value, max, preview);
        self.check_cancelled()
    }
    /// Waits until `resource` is free and holds it until the guard is dropped: a resource known only at
    /// run time (e.g. the device of a model that came in through a link). It shares the executor's locks
    /// with [`NodeType::exclusive_resource`], so the two never overlap; asking for the resource the node
    /// already holds as its `exclusive_resource` returns at once. Not re-entrant otherwise: a node must
    /// not ask for a resource it holds through an earlier guard. Check cancellation after it returns.
    pub async fn lock_resource(&self, resource: Resource) -> ResourceGuard {
        if self.inner.held.as_ref() == Some(&resource) {
            return ResourceGuard::already_held(resource);
        }
        self.inner.resources.lock(resource).await
    }
    /// Runs CPU-heavy work on tokio's blocking pool so other branches keep running. The closure gets a
    /// clone of this context (for progress and cancellation).
    pub async fn run_blocking<T, F>(&self, f: F) -> Result<T, NodeError>
    where
        T: Send + 'static,
        F: FnOnce(NodeContext) -> Result<T, NodeError> + Send + 'static,
    {
        let ctx = self.clone();
        match tokio::task::spawn_blocking(move || f(ctx)).await {
            Ok(result) => result,
            Err(join) => {
                Err(NodeError::new(format!("blocking task failed: {join}")).with_kind("panic"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    #[test]
    fn getters_name_the_input_on_error() {
        let inputs = Inputs::new()
            .with("seed", Value::Int(u64::MAX as i128))
            .with("text", Value::String("hi".into()))
            .with("scale", Value::Int(2));
        assert_eq!(inputs.get_u64("seed").unwrap(), u64::MAX);
        assert!(inputs.get_i64("seed").unwrap_err().message.contains("seed"));
        assert_eq!(inputs.get_str("text").unwrap(), "hi");
        let err = inputs.get_int("text").unwrap_err();
        assert_eq!(err.message, "input 'text': expected INT, got STRING");
        assert_eq!(inputs.get_float("scale").unwrap(), 2.0);
        assert!(inputs
            .get_image("missing")
            .unwrap_err()
            .message
            .contains("missing"));
        assert_eq!(inputs.opt_image("missing").unwrap(), None);
    }

    #[test]
    fn input_errors_keep_the_input_name_and_the_bare_reason() {
        let e = NodeError::input("image", "Invalid image file: a.png");
        assert_eq!(e.message, "input 'image': Invalid image file: a.png");
        assert_eq!(e.input_name(), Some("image"));
        assert_eq!(e.reason(), "Invalid image file: a.png");
        let plain = NodeError::new("boom");
        assert_eq!((plain.input_name(), plain.reason()), (None, "boom"));
    }

    #[tokio::test]
    async fn asking_for_the_held_resource_returns_at_once() {
        let locks = ResourceLocks::new();
        let gpu = Resource::new("gpu");
        let _scheduler = locks.lock(gpu.clone()).await;
        let ctx = NodeContext::new(NodeContextParts {
            resources: locks.clone(),
            held: Some(gpu.clone()),
            ..Default::default()
        });
        let again = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            ctx.lock_resource(gpu.clone()),
        )
        .await
        .expect("must not wait for itself");
        assert_eq!(again.resource(), &gpu);
        // Another resource is free.
        let other = ctx.lock_resource(Resource::new("cpu")).await;
        assert_eq!(other.resource().as_str(), "cpu");
    }

    #[test]
    fn progress_reports_and_observes_cancellation() {
        let (sink, mut rx) = EventSink::channel();
        let cancel = CancelToken::new();
        let ctx = NodeContext::new(NodeContextParts {
            prompt_id: "p".into(),
            node_id: "3".into(),
            events: sink,
            cancel: cancel.clone(),
            ..Default::default()
        });
        assert!(ctx.progress(1, 4).is_ok());
        cancel.cancel();
        assert!(ctx.progress(2, 4).unwrap_err().is_cancelled());
        let first = rx.try_recv().unwrap();
        assert!(matches!(
            first,
            Event::Progress {
                value: 1,
                max: 4,
                ..
            }
        ));
    }
}
