//! Test-only node types and helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use omnigen_engine::{
    BoxFuture, CheckContext, Event, EventSink, Fingerprint, InputSpec, Inputs, NodeContext,
    NodeError, NodeOutput, NodeSchema, NodeType, Registry, Value,
};
use serde_json::json;

/// Counts runs per class_type.
#[derive(Default, Clone)]
pub struct Runs(Arc<Mutex<Vec<String>>>);

impl Runs {
    pub fn record(&self, what: &str) {
        self.0.lock().unwrap().push(what.to_string());
    }
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// `Const {value: INT} -> INT`
pub struct Const(pub Runs);
impl NodeType for Const {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Const")
            .required(
                InputSpec::int("value")
                    .default_int(0)
                    .min(-1000)
                    .max(u64::MAX),
            )
            .output("INT")
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            self.0.record(ctx.node_id());
            Ok(NodeOutput::new(vec![Value::Int(inputs.get_int("value")?)]))
        })
    }
}

/// `Add {a: INT, b: INT} -> INT`
pub struct Add(pub Runs);
impl NodeType for Add {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Add")
            .required(InputSpec::int("a"))
            .required(InputSpec::int("b"))
            .output("INT")
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            self.0.record(ctx.node_id());
            Ok(NodeOutput::new(vec![Value::Int(
                inputs.get_int("a")? + inputs.get_int("b")?,
            )]))
        })
    }
}

/// `Sink {value: *} ` output node; UI `{"value": [v]}`.
pub struct Sink(pub Runs);
impl NodeType for Sink {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Sink")
            .output_node()
            .required(InputSpec::socket("value", "*"))
            .hidden("prompt", "PROMPT")
            .hidden("id", "UNIQUE_ID")
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            self.0.record(ctx.node_id());
            if inputs.get_json("prompt").is_err() || inputs.get_str("id")? != ctx.node_id() {
                return Err(NodeError::new("hidden inputs not injected"));
            }
            Ok(NodeOutput::ui(
                json!({"value": [inputs.get("value").map(|v| v.summary())]}),
            ))
        })
    }
}

/// `Fail {value: INT}` -> INT; always fails.
pub struct Fail;
impl NodeType for Fail {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Fail")
            .required(InputSpec::int("value"))
            .output("INT")
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let v = inputs.get_int("value")?;
            Err(NodeError::new(format!("cannot handle {v}")).with_detail("in test node Fail"))
        })
    }
}

/// `Panic {value: INT} -> INT`; panics.
pub struct Panic;
impl NodeType for Panic {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Panic")
            .required(InputSpec::int("value"))
            .output("INT")
    }
    fn run<'a>(
        &'a self,
        _inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move { panic!("boom") })
    }
}

/// `Meet {value: INT} -> INT`: waits at a shared barrier; only completes if enough nodes run at once.
pub struct Meet(pub Arc<tokio::sync::Barrier>);
impl NodeType for Meet {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Meet")
            .required(InputSpec::int("value"))
            .output("INT")
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            self.0.wait().await;
            Ok(NodeOutput::new(vec![Value::Int(inputs.get_int("value")?)]))
        })
    }
}

/// `Exclusive {value: INT} -> INT` holding resource "gpu" (or, as `Overlap`, no resource); records the
/// peak number running at once.
pub struct Exclusive {
    pub running: Arc<AtomicUsize>,
    pub peak: Arc<AtomicUsize>,
    pub resource: Option<&'static str>,
}
impl NodeType for Exclusive {
    fn schema(&self) -> NodeSchema {
        let name = if self.resource.is_some() {
            "Exclusive"
        } else {
            "Overlap"
        };
        NodeSchema::new(name)
            .required(InputSpec::int("value"))
            .output("INT")
    }
    fn exclusive_resource(&self, _inputs: &Inputs) -> Option<String> {
        self.resource.map(str::to_string)
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
            self.running.fetch_sub(1, Ordering::SeqCst);
            Ok(NodeOutput::new(vec![Value::Int(inputs.get_int("value")?)]))
        })
    }
}

/// `Steps {value: INT} -> INT`: reports progress, signals `started`, then waits for `release` between
/// steps while observing cancellation.
pub struct Steps {
    pub started: Arc<tokio::sync::Notify>,
    pub release: Arc<tokio::sync::Semaphore>,
}
impl NodeType for Steps {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Steps")
            .required(InputSpec::int("value"))
            .output("INT")
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            ctx.progress(0, 3)?;
            self.started.notify_one();
            for step in 1..=3 {
                let permit = self
                    .release
                    .acquire()
                    .await
                    .map_err(|e| NodeError::new(e.to_string()))?;
                permit.forget();
                ctx.progress(step, 3)?;
            }
            Ok(NodeOutput::new(vec![Value::Int(inputs.get_int("value")?)]))
        })
    }
}

/// `Checked {value: INT} -> INT`: custom validation rejects odd values.
pub struct Checked;
impl NodeType for Checked {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Checked")
            .required(InputSpec::int("value"))
            .output("INT")
    }
    fn validate(&self, inputs: &Inputs, _ctx: &CheckContext) -> Result<(), NodeError> {
        match inputs.get_int("value") {
            Ok(v) if v % 2 == 0 => Ok(()),
            Ok(v) => Err(NodeError::new(format!("value - {v} is odd"))),
            Err(e) => Err(e),
        }
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move { Ok(NodeOutput::new(vec![Value::Int(inputs.get_int("value")?)])) })
    }
}

/// `External {name: STRING} -> INT`: fingerprint comes from shared state (like a file's hash).
pub struct External {
    pub state: Arc<Mutex<Fingerprint>>,
    pub runs: Runs,
}
impl NodeType for External {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("External")
            .required(InputSpec::string("name"))
            .required(InputSpec::combo("mode", ["a", "b"]))
            .optional(InputSpec::float("scale").min(0.0).max(1.0))
            .optional(InputSpec::boolean("flag"))
            .output("INT")
    }
    fn fingerprint(&self, _inputs: &Inputs, _ctx: &CheckContext) -> Result<Fingerprint, NodeError> {
        Ok(self.state.lock().unwrap().clone())
    }
    fn run<'a>(
        &'a self,
        _inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            self.runs.record(ctx.node_id());
            Ok(NodeOutput::new(vec![Value::Int(1)]))
        })
    }
}

/// `Img -> IMAGE` (for type mismatches).
pub struct Img;
impl NodeType for Img {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Img").output("IMAGE")
    }
    fn run<'a>(
        &'a self,
        _inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let img = omnigen_engine::Image::filled(1, 2, 2, &[0.5, 0.5, 0.5])?;
            Ok(NodeOutput::new(vec![Value::Image(Arc::new(img))]))
        })
    }
}

/// A registry with the basic test nodes, sharing one run log.
pub fn basic_registry(runs: &Runs) -> Arc<Registry> {
    let r = Registry::new();
    r.register(Const(runs.clone()));
    r.register(Add(runs.clone()));
    r.register(Sink(runs.clone()));
    r.register(Fail);
    r.register(Panic);
    r.register(Checked);
    r.register(Img);
    Arc::new(r)
}

/// Collects events.
pub fn collector() -> (EventSink, Arc<Mutex<Vec<Event>>>) {
    let store = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&store);
    (
        EventSink::from_fn(move |e| s.lock().unwrap().push(e)),
        store,
    )
}

/// The `type` of each event.
pub fn types(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(Event::type_name).collect()
}

/// The node ids of `execution_cached`.
pub fn cached_nodes(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .find_map(|e| match e {
            Event::ExecutionCached { nodes, .. } => Some(nodes.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The node ids of `executing` events (non-null), in order.
pub fn executing_nodes(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Executing { node: Some(n), .. } => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// `Heavy {n: INT} -> INT`: sums 0..n on the blocking pool, reporting progress from there.
pub struct Heavy;
impl NodeType for Heavy {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Heavy")
            .required(InputSpec::int("n").min(0).max(1000))
            .output("INT")
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let n = inputs.get_u64("n")?;
            let sum = ctx
                .run_blocking(move |ctx| {
                    let mut sum = 0i128;
                    for i in 0..n {
                        sum += i as i128;
                        ctx.progress(i + 1, n)?;
                    }
                    Ok(sum)
                })
                .await?;
            Ok(NodeOutput::new(vec![Value::Int(sum)]))
        })
    }
}

/// `Meta` output node: echoes the hidden EXTRA_PNGINFO input and what its context sees.
pub struct Meta;
impl NodeType for Meta {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Meta")
            .output_node()
            .optional(InputSpec::socket("value", "*"))
            .hidden("extra_pnginfo", "EXTRA_PNGINFO")
            .hidden("token", "AUTH_TOKEN_COMFY_ORG")
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            Ok(NodeOutput::ui(json!({
                "hidden": inputs.get_json("extra_pnginfo")?,
                "token": inputs.opt_json("token")?,
                "from_ctx": ctx.extra_pnginfo(),
                "prompt_nodes": ctx.prompt().as_object().map(|m| m.len()),
                "class_type": ctx.class_type(),
            })))
        })
    }
}

/// `Liar -> INT, INT` (declares two outputs, returns one).
pub struct Liar;
impl NodeType for Liar {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Liar").output("INT").output("INT")
    }
    fn run<'a>(
        &'a self,
        _inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move { Ok(NodeOutput::new(vec![Value::Int(1)])) })
    }
}

/// `Hold {wait: BOOLEAN} -> INT`: with `wait`, signals `started` and holds until its run is cancelled.
pub struct Hold {
    pub started: Arc<tokio::sync::Notify>,
}
impl NodeType for Hold {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Hold")
            .required(InputSpec::boolean("wait"))
            .output("INT")
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            if inputs.get_bool("wait")? {
                self.started.notify_one();
                loop {
                    ctx.check_cancelled()?;
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            }
            Ok(NodeOutput::new(vec![Value::Int(1)]))
        })
    }
}
