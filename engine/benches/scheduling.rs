//! Scheduling overhead of the engine: `cargo bench -p omnigen-engine`.
//!
//! Measures, with trivial nodes so only the engine's own cost shows:
//! - a 1,000-node chain and a 1,000-node wide graph, cold (cache cleared each time): µs per node, for the
//!   whole `Executor::run` (validate + plan + signatures + execute + events) and for execution alone;
//! - a fully cached re-run of the same graphs (everything from the cache);
//! - watch latency: from writing the graph file to `execution_start` of the run it triggers.
//!
//! Prints one line per figure; targets: ≤ 20 µs/node, cached re-run ≤ 10 ms, watch latency ≤ 150 ms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use omnigen_engine::{
    drive, BoxFuture, EventSink, Executor, ExecutorConfig, GraphWatcher, InputSpec, Inputs,
    NodeContext, NodeError, NodeOutput, NodeSchema, NodeType, PromptRequest, Registry, RunOptions,
    Value, WatchConfig, WatchOutcome,
};
use serde_json::{json, Map, Value as Json};

/// `Pass {x: INT} -> INT`, optionally an output node.
struct Pass {
    output: bool,
}
impl NodeType for Pass {
    fn schema(&self) -> NodeSchema {
        let s = NodeSchema::new(if self.output { "Out" } else { "Pass" })
            .required(InputSpec::int("x"))
            .output("INT");
        if self.output {
            s.output_node()
        } else {
            s
        }
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move { Ok(NodeOutput::new(vec![Value::Int(inputs.get_int("x")? + 1)])) })
    }
}

fn registry() -> Arc<Registry> {
    let r = Registry::new();
    r.register(Pass { output: false });
    r.register(Pass { output: true });
    Arc::new(r)
}

fn chain(n: usize) -> Json {
    let mut m = Map::new();
    m.insert(
        "0".into(),
        json!({"class_type": "Pass", "inputs": {"x": 0}}),
    );
    for i in 1..n {
        let class = if i == n - 1 { "Out" } else { "Pass" };
        m.insert(
            i.to_string(),
            json!({"class_type": class, "inputs": {"x": [(i - 1).to_string(), 0]}}),
        );
    }
    Json::Object(m)
}

fn wide(n: usize) -> Json {
    Json::Object(
        (0..n)
            .map(|i| {
                (
                    i.to_string(),
                    json!({"class_type": "Out", "inputs": {"x": i}}),
                )
            })
            .collect(),
    )
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn bench_graph(name: &str, graph: Json, nodes: usize, iterations: usize) {
    let exec = Executor::new(registry(), ExecutorConfig::default());
    let request = PromptRequest::from_json(graph).expect("bench graph parses");
    let mut cold = Vec::new();
    let mut exec_only = Vec::new();
    for _ in 0..iterations {
        exec.clear_cache();
        let validated = exec.validate(&request).expect("bench graph validates");
        let t = Instant::now();
        let report = exec
            .run_validated(&request, validated, RunOptions::new(EventSink::none()))
            .await;
        exec_only.push(t.elapsed());
        assert!(report.is_success() && report.executed.len() == nodes);
        exec.clear_cache();
        let t = Instant::now();
        let report = exec
            .run(&request, RunOptions::new(EventSink::none()))
            .await
            .expect("valid");
        cold.push(t.elapsed());
        assert!(report.is_success());
    }
    let mut validate_only = Vec::new();
    for _ in 0..iterations {
        let t = Instant::now();
        let validated = exec.validate(&request).expect("valid");
        validate_only.push(t.elapsed());
        assert_eq!(validated.nodes.len(), nodes);
    }
    let mut cached = Vec::new();
    for _ in 0..iterations {
        let t = Instant::now();
        let report = exec
            .run(&request, RunOptions::new(EventSink::none()))
            .await
            .expect("valid");
        cached.push(t.elapsed());
        assert!(report.executed.is_empty() && report.cached.len() == nodes);
    }
    let per_node = |d: Duration| d.as_secs_f64() * 1e6 / nodes as f64;
    let (cold, exec_only, validate_only, cached) = (
        median(cold),
        median(exec_only),
        median(validate_only),
        median(cached),
    );
    println!(
        "{name:<12} cold run (validate+plan+execute): {:>6.2} ms = {:>5.2} µs/node | plan+execute: {:>5.2} µs/node | validate: {:>5.2} µs/node | fully cached re-run: {:>5.2} ms",
        cold.as_secs_f64() * 1e3,
        per_node(cold),
        per_node(exec_only),
        per_node(validate_only),
        cached.as_secs_f64() * 1e3
    );
}

async fn bench_watch(rounds: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("graph.json");
    let text = |v: usize| {
        json!({"1": {"class_type": "Pass", "inputs": {"x": v}}, "2": {"class_type": "Out", "inputs": {"x": ["1", 0]}}})
            .to_string()
    };
    std::fs::write(&file, text(0)).expect("write graph");
    let reg = registry();
    let exec = Executor::new(Arc::clone(&reg), ExecutorConfig::default());
    let config = WatchConfig::default();
    let debounce = config.debounce;
    let (watcher, mut rx) = GraphWatcher::spawn(&file, reg, config).expect("watch");
    let (tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        drive(
            &exec,
            &mut rx,
            |_| RunOptions::default(),
            |o| {
                if let WatchOutcome::Ran { report, .. } = o {
                    let _ = tx.send(report.started_at);
                }
            },
        )
        .await
    });
    started.recv().await.expect("initial run");
    let mut samples = Vec::new();
    for v in 1..=rounds {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let written = Instant::now();
        std::fs::write(&file, text(v)).expect("write graph");
        let start = started.recv().await.expect("run after save");
        samples.push(start.saturating_duration_since(written));
    }
    drop(watcher);
    let _ = driver.await;
    let max = samples.iter().max().copied().unwrap_or_default();
    println!(
        "watch latency file write -> execution_start: median {:.1} ms, max {:.1} ms over {rounds} saves (debounce {} ms)",
        median(samples).as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        debounce.as_millis()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        bench_graph("chain x1000", chain(1000), 1000, 30).await;
        bench_graph("wide x1000", wide(1000), 1000, 30).await;
        bench_watch(20).await;
    });
}
