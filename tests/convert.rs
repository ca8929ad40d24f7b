//! UI workflows, POST bodies and PNGs as graph files: `omnigen convert`, `validate` and `run` on each,
//! and the workflow travelling into the saved PNG and back.

#[path = "cli/support.rs"]
#[allow(dead_code)]
mod support;

use omnigen_nodes::io::png_write::encode_png;
use serde_json::{json, Value as Json};
use support::*;

/// The editor's saved form of `LoadImage(image) -> SaveImage(prefix)`, as frontend 1.58 writes it.
fn ui_load_save(image: &str, prefix: &str) -> Json {
    json!({
        "id": "5f8c5a3e-0000-4000-8000-000000000001",
        "revision": 0,
        "last_node_id": 2,
        "last_link_id": 1,
        "nodes": [
            {"id": 1, "type": "LoadImage", "pos": [0, 0], "size": [300, 300], "flags": {}, "order": 0, "mode": 0,
             "inputs": [{"name": "image", "type": "STRING", "widget": {"name": "image"}, "link": null}],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}, {"name": "MASK", "type": "MASK", "links": []}],
             "properties": {"Node name for S&R": "LoadImage"},
             "widgets_values": [image],
             "widgets_values_named": {"image": image, "upload": "image"}},
            {"id": 2, "type": "SaveImage", "pos": [400, 0], "size": [300, 300], "flags": {}, "order": 1, "mode": 0,
             "title": "Keep it",
             "inputs": [{"name": "images", "type": "IMAGE", "link": 1},
                        {"name": "filename_prefix", "type": "STRING", "widget": {"name": "filename_prefix"}, "link": null}],
             "outputs": [],
             "properties": {"Node name for S&R": "SaveImage"},
             "widgets_values": [prefix],
             "widgets_values_named": {"filename_prefix": prefix}},
            {"id": 3, "type": "Note", "pos": [0, 400], "size": [300, 100], "flags": {}, "order": 2, "mode": 0,
             "inputs": [], "outputs": [], "properties": {}, "widgets_values": ["a note"]}
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
        "groups": [],
        "config": {},
        "extra": {"frontendVersion": "1.58.1"},
        "version": 0.4
    })
}

#[test]
fn convert_prints_the_api_graph_of_a_ui_workflow() {
    let ws = Workspace::new();
    ws.write_json("wf.json", &ui_load_save("a.png", "x"));
    let out = ws.run(&["convert", "wf.json"]);
    assert_exit(&out, 0);
    let api: Json = serde_json::from_str(&stdout(&out)).expect("stdout is JSON");
    assert_eq!(
        api,
        json!({
            "1": {"inputs": {"image": "a.png"}, "class_type": "LoadImage", "_meta": {"title": "Load Image"}},
            "2": {"inputs": {"filename_prefix": "x", "images": ["1", 0]}, "class_type": "SaveImage", "_meta": {"title": "Keep it"}}
        })
    );
    // An API graph and a POST body print as the graph they hold.
    ws.write_json("api.json", &api);
    ws.write_json("body.json", &json!({"prompt": api, "client_id": "c"}));
    for file in ["api.json", "body.json"] {
        let out = ws.run(&["convert", file]);
        assert_exit(&out, 0);
        assert_eq!(
            serde_json::from_str::<Json>(&stdout(&out)).expect("JSON"),
            api,
            "{file}"
        );
    }
}

#[test]
fn a_ui_workflow_runs_and_its_png_carries_the_workflow_and_runs_again() {
    let ws = Workspace::new();
    ws.write_input_png("a.png", 4, 3, 255);
    let workflow = ui_load_save("a.png", "first");
    ws.write_json("wf.json", &workflow);
    assert_exit(&ws.run(&["validate", "wf.json"]), 0);
    let out = ws.run(&["run", "wf.json", "--quiet"]);
    assert_exit(&out, 0);
    let saved = ws.path("output/first_00001_.png");
    let chunks = png_text_chunks(&saved);
    let chunk = |key: &str| -> Json {
        let text = &chunks
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("no {key} chunk"))
            .1;
        serde_json::from_str(text).expect("chunk is JSON")
    };
    assert_eq!(
        chunk("workflow"),
        workflow,
        "the editor's graph travels into the PNG"
    );
    assert_eq!(chunk("prompt")["2"]["inputs"]["filename_prefix"], "first");

    // The PNG is a graph file: its prompt runs (with --set), and the re-saved PNG keeps the workflow.
    let out = ws.run(&[
        "run",
        "output/first_00001_.png",
        "--quiet",
        "--set",
        "2.filename_prefix=second",
    ]);
    assert_exit(&out, 0);
    let again = png_text_chunks(&ws.path("output/second_00001_.png"));
    assert!(again
        .iter()
        .any(|(k, v)| k == "workflow"
            && serde_json::from_str::<Json>(v).ok() == Some(workflow.clone())));
}

#[test]
fn a_png_with_only_a_workflow_chunk_is_converted() {
    let ws = Workspace::new();
    ws.write_input_png("a.png", 2, 2, 255);
    let workflow = ui_load_save("a.png", "from_png");
    let png = encode_png(
        1,
        1,
        3,
        &[0.0, 0.0, 0.0],
        &[("workflow".into(), workflow.to_string())],
    )
    .expect("png");
    std::fs::write(ws.path("wf.png"), png).expect("write");
    let out = ws.run(&["convert", "wf.png"]);
    assert_exit(&out, 0);
    let api: Json = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(api["2"]["inputs"]["images"], json!(["1", 0]));
    assert_exit(&ws.run(&["validate", "wf.png"]), 0);
}

#[test]
fn bad_files_are_invalid_graphs_naming_the_file_and_the_node() {
    let ws = Workspace::new();
    let mut workflow = ui_load_save("a.png", "x");
    workflow["nodes"][1]["type"] = json!("NoSuchNode");
    ws.write_json("unknown.json", &workflow);
    let out = ws.run(&["validate", "unknown.json"]);
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(
        err.contains("unknown.json") && err.contains("node 2") && err.contains("NoSuchNode"),
        "{err}"
    );

    let mut short = ui_load_save("a.png", "x");
    short["nodes"][1]["widgets_values"] = json!([]);
    short["nodes"][1]
        .as_object_mut()
        .expect("node")
        .remove("widgets_values_named");
    ws.write_json("short.json", &short);
    let out = ws.run(&["run", "short.json"]);
    assert_exit(&out, 3);
    assert!(stderr(&out).contains("filename_prefix"), "{}", stderr(&out));

    let plain = encode_png(1, 1, 3, &[0.0, 0.0, 0.0], &[]).expect("png");
    std::fs::write(ws.path("plain.png"), plain).expect("write");
    let out = ws.run(&["validate", "plain.png", "--json"]);
    assert_exit(&out, 3);
    let body: Json = serde_json::from_str(stdout(&out).trim()).expect("error JSON");
    assert_eq!(body["error"]["type"], "invalid_prompt");
    assert!(body["error"]["details"]
        .as_str()
        .is_some_and(|d| d.contains("plain.png") && d.contains("workflow")));

    std::fs::write(ws.path("binary.json"), [0xff, 0xfe, 0x00]).expect("write");
    assert_exit(&ws.run(&["convert", "binary.json"]), 3);
}
