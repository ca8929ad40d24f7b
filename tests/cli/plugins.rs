//! WebAssembly plugin nodes through the CLI: `--plugins DIR` registers them next to the built-in
//! nodes, and a graph mixing both runs end to end.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use omnigen_plugins::{guest, install, LimitRequest, PluginConfig, PluginRuntime};
use serde_json::json;

use crate::support::*;

/// The example guest plugins, built once per test binary (shared with the plugin host's tests, which
/// build into the same folder).
fn guest_wasm(stem: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guest-target");
        guest::build_guests(&target).unwrap_or_else(|e| panic!("{e}"))
    });
    dir.join(format!("{stem}.wasm"))
}

/// A workspace whose `plugins/` folder holds the named example plugins (`edges`, `prompt`, …).
fn workspace_with_plugins(names: &[&str]) -> Workspace {
    let ws = Workspace::new();
    let plugins = ws.path("plugins");
    std::fs::create_dir(&plugins).expect("create plugins dir");
    let runtime = PluginRuntime::new(PluginConfig::default()).expect("plugin runtime");
    for name in names {
        let manifest = install(
            &runtime,
            &guest_wasm(&format!("omnigen_plugin_{name}")),
            &plugins,
            LimitRequest::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(manifest.name, *name);
    }
    ws
}

/// A workspace whose `plugins/` folder holds the example edge-map plugin.
fn workspace_with_edges_plugin() -> Workspace {
    workspace_with_plugins(&["edges"])
}

#[test]
fn plugin_nodes_join_the_catalogue() {
    let ws = workspace_with_edges_plugin();
    let out = ws.run(&["nodes", "--json", "--plugins", "plugins"]);
    assert_exit(&out, 0);
    let catalogue: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let canny = &catalogue["edges/canny"];
    assert_eq!(canny["output"], json!(["IMAGE"]), "{canny}");
    assert_eq!(canny["python_module"], json!("custom_nodes.edges"));
    assert!(catalogue.get("LoadImage").is_some(), "built-in nodes stay");
}

#[test]
fn load_image_to_edge_plugin_to_save_image() {
    let ws = workspace_with_edges_plugin();
    ws.write_input_png("house.png", 24, 16, 255);
    let graph = json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": "house.png"}},
        "2": {"class_type": "edges/canny",
              "inputs": {"image": ["1", 0], "low_threshold": 40.0, "high_threshold": 100.0}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "edges"}}
    });
    let file = ws.write_json("graph.json", &graph);
    let out = ws.run(&[
        "run",
        file.to_str().expect("utf-8 path"),
        "--plugins",
        "plugins",
        "--quiet",
    ]);
    assert_exit(&out, 0);
    assert_eq!(ws.files_in("output"), vec!["edges_00001_.png".to_string()]);
    let saved = ws.path("output").join("edges_00001_.png");
    let picture = image::open(&saved).expect("saved png decodes");
    assert_eq!((picture.width(), picture.height()), (24, 16));
    let chunks = png_text_chunks(&saved);
    assert!(
        chunks
            .iter()
            .any(|(k, v)| k == "prompt" && v.contains("edges/canny")),
        "the graph with the plugin node is embedded"
    );
}

#[test]
fn a_graph_naming_a_plugin_that_is_not_loaded_fails_validation() {
    let ws = Workspace::new();
    ws.write_input_png("house.png", 8, 8, 255);
    let graph = json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": "house.png"}},
        "2": {"class_type": "edges/canny", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "edges"}}
    });
    let file = ws.write_json("graph.json", &graph);
    let out = ws.run(&["validate", file.to_str().expect("utf-8 path"), "--json"]);
    assert_exit(&out, 3);
    assert!(
        stdout(&out).contains("missing_node_type"),
        "{}",
        stdout(&out)
    );
}

/// The tiny random OmniGen checkpoint the model's parity tests use.
fn tiny_model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("model/tests/fixtures/tiny")
        .display()
        .to_string()
}

/// Runs `plugins/graphs/edges_to_omnigen.json` (edge-map plugin and prompt-template plugin feeding
/// OmniGen's visual-conditional generation) on the tiny model with the given Canny thresholds; returns
/// the saved picture and the executed node ids.
fn run_edges_to_omnigen(ws: &Workspace, low: f64, high: f64) -> (image::RgbImage, Vec<String>) {
    let graph = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/graphs/edges_to_omnigen.json");
    let sets = [
        format!("1.model={}", tiny_model()),
        "1.device=cpu".to_string(),
        "7.width=64".to_string(),
        "7.height=48".to_string(),
        "7.steps=2".to_string(),
        format!("3.low_threshold={low}"),
        format!("3.high_threshold={high}"),
    ];
    let mut args = vec![
        "run",
        graph.to_str().expect("utf-8 path"),
        "--plugins",
        "plugins",
        "--events",
        "jsonl",
        "--quiet",
    ];
    for set in &sets {
        args.extend(["--set", set.as_str()]);
    }
    let before = ws.files_in("output");
    let out = ws.run(&args);
    assert_exit(&out, 0);
    let saved: Vec<String> = ws
        .files_in("output")
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    assert_eq!(saved.len(), 1, "one new picture: {saved:?}");
    let path = ws.path("output").join(&saved[0]);
    let chunks = png_text_chunks(&path);
    let prompt = chunks
        .iter()
        .find(|(k, _)| k == "prompt")
        .map(|(_, v)| v.clone())
        .expect("graph embedded in the png");
    assert!(
        prompt.contains("edges/canny") && prompt.contains("prompt/template"),
        "both plugin nodes are in the embedded graph"
    );
    let picture = image::open(&path).expect("saved png decodes").to_rgb8();
    (picture, executed_nodes(&json_lines(&stdout(&out))))
}

#[test]
fn edge_map_plugin_feeds_omnigen_visual_conditional_generation() {
    let ws = workspace_with_plugins(&["edges", "prompt"]);
    // A white rectangle on black: strong edges along its border, flat everywhere else.
    let picture = image::RgbImage::from_fn(64, 48, |x, y| {
        let inside = (16..48).contains(&x) && (12..36).contains(&y);
        image::Rgb(if inside { [255; 3] } else { [0; 3] })
    });
    picture
        .save(ws.path("input").join("house.png"))
        .expect("save input");

    let (with_edges, executed) = run_edges_to_omnigen(&ws, 40.0, 100.0);
    assert_eq!((with_edges.width(), with_edges.height()), (64, 48));
    let mut executed_sorted = executed.clone();
    executed_sorted.sort();
    assert_eq!(
        executed_sorted,
        ["1", "2", "3", "4", "5", "6", "7", "8", "9"],
        "every node of the mixed graph ran"
    );
    // The sampler ran after the plugin that made its condition image.
    let position = |id: &str| executed.iter().position(|n| n == id).expect("executed");
    assert!(position("3") < position("4") && position("4") < position("7"));
    assert!(position("5") < position("6") && position("6") < position("7"));

    // Thresholds no gradient reaches give an empty edge map: a different condition image must give a
    // different picture, so the plugin's output really is what OmniGen was conditioned on.
    let (without_edges, _) = run_edges_to_omnigen(&ws, 1000.0, 1000.0);
    assert!(
        with_edges.as_raw() != without_edges.as_raw(),
        "the edge map conditions the generation"
    );
}
