//! The cache policy that model nodes rely on: a loaded model is shared by every node that uses it, is not
//! reloaded between runs, and changing the loader's input releases the old model before the new one loads.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use omnigen_engine::{
    BoxFuture, Executor, ExecutorConfig, InputSpec, Inputs, NodeContext, NodeError, NodeOutput,
    NodeSchema, NodeType, OpaqueValue, PromptRequest, RunOptions, Value,
};
use serde_json::json;

#[derive(Debug)]
struct Model {
    name: String,
    dropped: Arc<AtomicUsize>,
}
impl OpaqueValue for Model {
    fn type_name(&self) -> &str {
        "MODEL"
    }
    fn size_bytes(&self) -> usize {
        1 << 20
    }
}
impl Drop for Model {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// `Loader {name} -> MODEL`; records, at each load, how many models had been dropped before it.
struct Loader {
    dropped: Arc<AtomicUsize>,
    loads: Arc<Mutex<Vec<(String, usize)>>>,
}
impl NodeType for Loader {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Loader")
            .required(InputSpec::string("name"))
            .output("MODEL")
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let name = inputs.get_str("name")?.to_string();
            self.loads
                .lock()
                .unwrap()
                .push((name.clone(), self.dropped.load(Ordering::SeqCst)));
            Ok(NodeOutput::new(vec![Value::opaque(Model {
                name,
                dropped: Arc::clone(&self.dropped),
            })]))
        })
    }
}

/// `Use {model: MODEL, x: INT} -> INT`: proves it got the model.
struct Use;
impl NodeType for Use {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Use")
            .required(InputSpec::socket("model", "MODEL"))
            .required(InputSpec::int("x"))
            .output("INT")
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let model = inputs.get_opaque::<Model>("model")?;
            Ok(NodeOutput::new(vec![Value::Int(
                model.name.len() as i128 * 100 + inputs.get_int("x")?,
            )]))
        })
    }
}

fn graph(model: &str, x1: i64, x2: i64) -> PromptRequest {
    PromptRequest::from_json(json!({
        "load": {"class_type": "Loader", "inputs": {"name": model}},
        "u1": {"class_type": "Use", "inputs": {"model": ["load", 0], "x": x1}},
        "u2": {"class_type": "Use", "inputs": {"model": ["load", 0], "x": x2}},
        "s1": {"class_type": "Sink", "inputs": {"value": ["u1", 0]}},
        "s2": {"class_type": "Sink", "inputs": {"value": ["u2", 0]}}
    }))
    .unwrap()
}

#[tokio::test]
async fn models_are_shared_kept_between_runs_and_released_when_replaced() {
    let runs = Runs::default();
    let registry = basic_registry(&runs);
    let dropped = Arc::new(AtomicUsize::new(0));
    let loads = Arc::new(Mutex::new(Vec::new()));
    registry.register(Loader {
        dropped: Arc::clone(&dropped),
        loads: Arc::clone(&loads),
    });
    registry.register(Use);
    let exec = Executor::new(
        registry,
        ExecutorConfig {
            max_concurrency: 2,
            ..Default::default()
        },
    );

    let report = exec
        .run(&graph("aa", 1, 2), RunOptions::default())
        .await
        .unwrap();
    assert_eq!(report.ui_outputs["s1"], json!({"value": [201]}));
    assert_eq!(report.ui_outputs["s2"], json!({"value": [202]}));
    assert_eq!(loads.lock().unwrap().len(), 1, "one load feeds both users");

    // A consumer's constant changes: the model comes from the cache, not reloaded.
    let report = exec
        .run(&graph("aa", 5, 2), RunOptions::default())
        .await
        .unwrap();
    assert_eq!(report.ui_outputs["s1"], json!({"value": [205]}));
    assert_eq!(loads.lock().unwrap().len(), 1);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        0,
        "the cached model is alive"
    );

    // The loader's input changes: the old model is released before the new one loads.
    let report = exec
        .run(&graph("bbb", 5, 2), RunOptions::default())
        .await
        .unwrap();
    assert_eq!(report.ui_outputs["s1"], json!({"value": [305]}));
    assert_eq!(
        *loads.lock().unwrap(),
        [("aa".to_string(), 0), ("bbb".to_string(), 1)]
    );
    assert_eq!(dropped.load(Ordering::SeqCst), 1);

    exec.clear_cache();
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        2,
        "clearing the cache frees the current model"
    );
}

#[test]
fn executor_and_registry_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Executor>();
    shareable::<omnigen_engine::Registry>();
    shareable::<NodeContext>();
}
