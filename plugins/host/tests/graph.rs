//! Plugin nodes inside real graphs, run by the engine's executor next to ordinary nodes:
//! a source image → plugin edge map → a saving sink; hostile plugins in a graph fail with an
//! `execution_error` naming plugin and node, and the executor keeps running other graphs.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use omnigen_engine::{
    BoxFuture, EventSink, Executor, ExecutorConfig, Image, InputSpec, Inputs, NodeContext,
    NodeError, NodeOutput, NodeSchema, NodeType, PromptRequest, Registry, RunOptions, RunStatus,
    Value,
};
use serde_json::json;

/// A built-in-style source: a white square on black, RGB, `size` pixels wide.
struct SquareImage;
impl NodeType for SquareImage {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("TestSquare")
            .required(InputSpec::int("size").default_int(32).min(8).max(256))
            .output("IMAGE")
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let n = inputs.get_usize("size")?;
            let mut data = vec![0.0f32; n * n * 3];
            for y in n / 4..3 * n / 4 {
                for x in n / 4..3 * n / 4 {
                    data[(y * n + x) * 3..][..3].fill(1.0);
                }
            }
            Ok(NodeOutput::new(vec![Value::Image(Arc::new(Image::new(
                1, n, n, 3, data,
            )?))]))
        })
    }
}

/// A built-in-style output node: writes the image's bytes (as 8-bit) to `<dir>/<name>.raw`
/// atomically, and passes the image on.
struct SaveRaw(PathBuf);
impl NodeType for SaveRaw {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("TestSaveRaw")
            .required(InputSpec::socket("images", "IMAGE"))
            .required(InputSpec::string("name").default_value("out"))
            .output("IMAGE")
            .output_node()
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let image = inputs.get_image("images")?;
            let bytes: Vec<u8> = image
                .data()
                .iter()
                .map(|v| (v * 255.0).round() as u8)
                .collect();
            let path = self.0.join(format!("{}.raw", inputs.get_str("name")?));
            omnigen_plugins::write_atomic(&path, &bytes)?;
            Ok(NodeOutput::new(vec![Value::Image(image)]).with_ui(
                json!({"images": [{"filename": path.file_name().unwrap().to_string_lossy()}]}),
            ))
        })
    }
}

struct Fixture {
    executor: Executor,
    out: tempfile::TempDir,
    _plugins: tempfile::TempDir,
    _host: omnigen_plugins::PluginHost,
}

fn fixture() -> Fixture {
    let plugins = tempfile::tempdir().unwrap();
    common::install_into(plugins.path(), "edges", "omnigen_plugin_edges");
    common::install_into(plugins.path(), "hostile", "omnigen_plugin_hostile");
    common::install_into(plugins.path(), "prompt", "omnigen_plugin_prompt");
    let out = tempfile::tempdir().unwrap();
    let registry = Arc::new(Registry::new());
    registry.register(SquareImage);
    registry.register(SaveRaw(out.path().to_path_buf()));
    let (host, report) =
        omnigen_plugins::register_dir(&registry, plugins.path(), &common::test_config()).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let config = ExecutorConfig {
        max_concurrency: 2,
        ..ExecutorConfig::default()
    };
    Fixture {
        executor: Executor::new(registry, config),
        out,
        _plugins: plugins,
        _host: host,
    }
}

fn request(graph: serde_json::Value) -> PromptRequest {
    PromptRequest::from_json(json!({ "prompt": graph })).unwrap()
}

fn edge_graph(name: &str) -> serde_json::Value {
    json!({
        "1": {"class_type": "TestSquare", "inputs": {"size": 32}},
        "2": {"class_type": "edges/canny", "inputs": {"image": ["1", 0], "low_threshold": 50.0, "high_threshold": 120.0}},
        "3": {"class_type": "TestSaveRaw", "inputs": {"images": ["2", 0], "name": name}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_edge_plugin_sink_runs_end_to_end_and_caches() {
    let f = fixture();
    let report = f
        .executor
        .run(
            &request(edge_graph("edges")),
            RunOptions::new(EventSink::none()),
        )
        .await
        .unwrap();
    assert!(report.is_success(), "{:?}", report.status);
    let bytes = std::fs::read(f.out.path().join("edges.raw")).unwrap();
    // 32x32, gray expanded to RGB; binary edges around the square, nothing at the centre.
    assert_eq!(bytes.len(), 32 * 32 * 3);
    assert!(bytes.iter().all(|&b| b == 0 || b == 255));
    assert_eq!(bytes[(16 * 32 + 16) * 3], 0);
    assert!((6..10).any(|x| bytes[(16 * 32 + x) * 3] == 255));

    // Deterministic plugin nodes are cached like any node.
    let again = f
        .executor
        .run(
            &request(edge_graph("edges")),
            RunOptions::new(EventSink::none()),
        )
        .await
        .unwrap();
    assert!(again.is_success());
    assert!(
        again.cached.iter().any(|id| id.as_str() == "2"),
        "cached: {:?}",
        again.cached
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugin_nodes_fail_cleanly_and_saved_outputs_survive() {
    let f = fixture();
    for node in [
        "spin",
        "hog",
        "recurse",
        "panic",
        "bad_size",
        "wrong_type",
        "read_file",
        "connect",
        "log_spam",
    ] {
        let name = format!("before_{node}");
        // The saver runs first (the hostile node depends on it), then the hostile node fails.
        let graph = json!({
            "1": {"class_type": "TestSquare", "inputs": {"size": 16}},
            "2": {"class_type": "TestSaveRaw", "inputs": {"images": ["1", 0], "name": name}},
            "3": {"class_type": format!("hostile/{node}"), "inputs": {"image": ["2", 0]}},
            "4": {"class_type": "TestSaveRaw", "inputs": {"images": ["3", 0], "name": "never"}}
        });
        let report = f
            .executor
            .run(&request(graph), RunOptions::new(EventSink::none()))
            .await
            .unwrap();
        let RunStatus::Failed(error) = &report.status else {
            panic!("{node}: expected a failure, got {:?}", report.status)
        };
        assert_eq!(error.node_id, "3");
        assert_eq!(error.node_type, format!("hostile/{node}"));
        assert!(
            error
                .exception_message
                .starts_with(&format!("plugin `hostile` node `{node}`: ")),
            "{}",
            error.exception_message
        );
        assert!(
            error.exception_type.starts_with("Plugin"),
            "{}",
            error.exception_type
        );
        // The output saved before the failure is intact; the one after was never written.
        assert_eq!(
            std::fs::read(f.out.path().join(format!("{name}.raw")))
                .unwrap()
                .len(),
            16 * 16 * 3
        );
        assert!(!f.out.path().join("never.raw").exists());

        // The same executor keeps running other graphs.
        let ok = f
            .executor
            .run(
                &request(edge_graph(&format!("after_{node}"))),
                RunOptions::new(EventSink::none()),
            )
            .await
            .unwrap();
        assert!(ok.is_success(), "{node}: {:?}", ok.status);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_mismatch_is_a_validation_error_naming_the_plugin() {
    let f = fixture();
    let mut graph = edge_graph("pinned");
    graph["2"]["inputs"]["plugin_sha256"] = json!("0123456789abcdef");
    let err = f
        .executor
        .run(&request(graph), RunOptions::new(EventSink::none()))
        .await
        .unwrap_err();
    let text = err.to_json().to_string();
    assert!(
        text.contains("plugin `edges` is pinned to sha256 0123456789abcdef"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_outputs_feed_builtin_typed_inputs() {
    let f = fixture();
    // prompt/template (STRING out) feeds a string widget of a built-in-style node.
    let graph = json!({
        "1": {"class_type": "prompt/template", "inputs": {"template": "from_{{plugin}}"}},
        "2": {"class_type": "TestSquare", "inputs": {"size": 8}},
        "3": {"class_type": "TestSaveRaw", "inputs": {"images": ["2", 0], "name": ["1", 0]}}
    });
    let report = f
        .executor
        .run(&request(graph), RunOptions::new(EventSink::none()))
        .await
        .unwrap();
    assert!(report.is_success(), "{:?}", report.status);
    assert!(f.out.path().join("from_{plugin}.raw").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progress_flood_is_coalesced_into_a_few_events() {
    // The hostile plugin gets a long timeout here: 100,000 progress calls take a while unoptimised.
    let plugins = tempfile::tempdir().unwrap();
    let bytes = common::wasm("omnigen_plugin_hostile");
    let manifest = common::manifest_for(
        "hostile",
        &bytes,
        omnigen_plugins::LimitRequest {
            timeout_ms: Some(60_000),
            ..Default::default()
        },
    );
    std::fs::write(plugins.path().join(&manifest.wasm), &bytes).unwrap();
    std::fs::write(
        plugins.path().join("hostile.plugin.json"),
        manifest.to_json(),
    )
    .unwrap();
    let registry = Arc::new(Registry::new());
    let out = tempfile::tempdir().unwrap();
    registry.register(SaveRaw(out.path().to_path_buf()));
    let config = omnigen_plugins::PluginConfig {
        max_timeout: std::time::Duration::from_secs(60),
        ..common::test_config()
    };
    let (_host, report) =
        omnigen_plugins::register_dir(&registry, plugins.path(), &config).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let executor = Executor::new(registry, ExecutorConfig::default());
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = {
        let events = Arc::clone(&events);
        EventSink::from_fn(move |e| {
            if let omnigen_engine::Event::Progress { value, max, .. } = e {
                events.lock().unwrap().push((value, max));
            }
        })
    };
    let graph = json!({
        "1": {"class_type": "hostile/progress_flood", "inputs": {}},
        "2": {"class_type": "TestSaveRaw", "inputs": {"images": ["1", 0], "name": "flood"}}
    });
    let start = std::time::Instant::now();
    let report = executor
        .run(&request(graph), RunOptions::new(sink))
        .await
        .unwrap();
    let took = start.elapsed();
    assert!(report.is_success(), "{:?}", report.status);
    let events = events.lock().unwrap().clone();
    // 100,001 reports: the burst, then at most one event per interval, plus the last.
    let bound = omnigen_engine::PROGRESS_BURST as usize
        + (took.as_millis() / omnigen_engine::PROGRESS_INTERVAL.as_millis()) as usize
        + 1;
    assert!(
        events.len() <= bound,
        "{} progress events in {took:?} (bound {bound})",
        events.len()
    );
    assert_eq!(
        events.last(),
        Some(&(1000, 1000)),
        "the last report arrives"
    );
}
