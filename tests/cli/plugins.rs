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

/// A workspace whose `plugins/` folder holds the example edge-map plugin.
fn workspace_with_edges_plugin() -> Workspace {
    let ws = Workspace::new();
    let plugins = ws.path("plugins");
    std::fs::create_dir(&plugins).expect("create plugins dir");
    let runtime = PluginRuntime::new(PluginConfig::default()).expect("plugin runtime");
    let manifest = install(
        &runtime,
        &guest_wasm("omnigen_plugin_edges"),
        &plugins,
        LimitRequest::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(manifest.name, "edges");
    ws
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
