//! `omnigen validate` (and `run` on invalid graphs): ComfyUI's error JSON and the exit codes.

use serde_json::{json, Value as Json};

use crate::support::*;

/// Runs `validate --json` on `graph` and returns (exit code, parsed stdout).
fn validate_json(ws: &Workspace, graph: &Json, extra: &[&str]) -> (Option<i32>, Json) {
    ws.write_json("graph.json", graph);
    let mut args = vec!["validate", "graph.json", "--json"];
    args.extend_from_slice(extra);
    let out = ws.run(&args);
    let body = serde_json::from_str(stdout(&out).trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\n{}",
            stdout(&out),
            stderr(&out)
        )
    });
    (out.status.code(), body)
}

fn first_node_error_type(body: &Json, node: &str) -> String {
    body["node_errors"][node]["errors"][0]["type"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_valid_graph_passes_with_exit_code_zero() {
    let ws = Workspace::new();
    ws.write_input_png("a.png", 2, 2, 255);
    let (code, body) = validate_json(&ws, &load_save_graph("a.png", "x"), &[]);
    assert_eq!(code, Some(0));
    assert_eq!(body, json!({"node_errors": {}}));
    let out = ws.run(&["validate", "graph.json"]);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("valid"), "{}", stdout(&out));
    // Validation runs nothing.
    assert!(ws.files_in("output").is_empty());
}

#[test]
fn unknown_node_type() {
    let ws = Workspace::new();
    let graph = json!({"1": {"class_type": "NoSuchNode", "inputs": {}}});
    let (code, body) = validate_json(&ws, &graph, &[]);
    assert_eq!(code, Some(3));
    assert_eq!(body["error"]["type"], "missing_node_type");
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("NoSuchNode"));
}

#[test]
fn required_input_missing() {
    let ws = Workspace::new();
    ws.write_input_png("a.png", 2, 2, 255);
    let mut graph = load_save_graph("a.png", "x");
    graph["2"]["inputs"]
        .as_object_mut()
        .expect("inputs")
        .remove("images");
    let (code, body) = validate_json(&ws, &graph, &[]);
    assert_eq!(code, Some(3));
    assert_eq!(body["error"]["type"], "prompt_outputs_failed_validation");
    assert_eq!(first_node_error_type(&body, "2"), "required_input_missing");
    assert_eq!(body["node_errors"]["2"]["class_type"], "SaveImage");
    assert_eq!(body["node_errors"]["2"]["errors"][0]["details"], "images");
}

#[test]
fn link_of_the_wrong_type() {
    let ws = Workspace::new();
    ws.write_input_png("a.png", 2, 2, 255);
    let mut graph = load_save_graph("a.png", "x");
    graph["2"]["inputs"]["images"] = json!(["1", 1]); // the MASK output
    let (code, body) = validate_json(&ws, &graph, &[]);
    assert_eq!(code, Some(3));
    assert_eq!(first_node_error_type(&body, "2"), "return_type_mismatch");
}

#[test]
fn value_out_of_range() {
    let ws = Workspace::new();
    let graph =
        json!({"1": {"class_type": "TestSlowCount", "inputs": {"steps": 0, "delay_ms": 0}}});
    let (code, body) = validate_json(&ws, &graph, &["--test-nodes"]);
    assert_eq!(code, Some(3));
    assert_eq!(first_node_error_type(&body, "1"), "value_smaller_than_min");
}

#[test]
fn missing_input_file_is_a_custom_validation_failure() {
    let ws = Workspace::new();
    let (code, body) = validate_json(&ws, &load_save_graph("nope.png", "x"), &[]);
    assert_eq!(code, Some(3));
    assert_eq!(
        first_node_error_type(&body, "1"),
        "custom_validation_failed"
    );
    let details = body["node_errors"]["1"]["errors"][0]["details"]
        .as_str()
        .expect("details");
    assert!(details.contains("nope.png"), "{details}");
}

#[test]
fn a_graph_without_output_nodes() {
    let ws = Workspace::new();
    ws.write_input_png("a.png", 2, 2, 255);
    let graph = json!({"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}}});
    let (code, body) = validate_json(&ws, &graph, &[]);
    assert_eq!(code, Some(3));
    assert_eq!(body["error"]["type"], "prompt_no_outputs");
}

#[test]
fn text_that_is_not_json_is_an_invalid_prompt() {
    let ws = Workspace::new();
    std::fs::write(ws.path("graph.json"), "{\"1\": {").expect("write");
    let out = ws.run(&["validate", "graph.json", "--json"]);
    assert_exit(&out, 3);
    let body: Json = serde_json::from_str(stdout(&out).trim()).expect("json");
    assert_eq!(body["error"]["type"], "invalid_prompt");
    assert_eq!(body["node_errors"], json!({}));
    // Readable form names the position.
    let out = ws.run(&["validate", "graph.json"]);
    assert_exit(&out, 3);
    assert!(stderr(&out).contains("line 1"), "{}", stderr(&out));
}

#[test]
fn readable_report_names_node_and_problem() {
    let ws = Workspace::new();
    let graph =
        json!({"1": {"class_type": "TestSlowCount", "inputs": {"steps": 0, "delay_ms": 0}}});
    ws.write_json("graph.json", &graph);
    let out = ws.run(&["validate", "graph.json", "--test-nodes"]);
    assert_exit(&out, 3);
    let text = stderr(&out);
    assert!(text.contains("node 1 (TestSlowCount)"), "{text}");
    assert!(text.contains("smaller than min"), "{text}");
}

#[test]
fn run_on_an_invalid_graph_exits_3_and_runs_nothing() {
    let ws = Workspace::new();
    ws.write_json("graph.json", &load_save_graph("missing.png", "x"));
    let out = ws.run(&["run", "graph.json"]);
    assert_exit(&out, 3);
    assert!(stderr(&out).contains("missing.png"), "{}", stderr(&out));
    assert!(ws.files_in("output").is_empty());
}

#[test]
fn usage_errors_exit_2() {
    let ws = Workspace::new();
    let out = ws.run(&["validate", "no_such_file.json"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("no_such_file.json"),
        "{}",
        stderr(&out)
    );
    assert_exit(&ws.run(&["run"]), 2);
    assert_exit(&ws.run(&["frobnicate"]), 2);
    assert_exit(&ws.run(&["nodes", "--no-such-flag"]), 2);
}

/// Text from a graph (or a plugin) reaches the terminal escaped and bounded: no escape sequence from
/// a class name, and a huge one is cut with a note.
#[test]
fn control_characters_and_huge_names_are_escaped_on_the_terminal() {
    let ws = Workspace::new();
    let hostile = format!("\u{1b}]0;pwned\u{7}\u{1b}[2J\rdone{}", "x".repeat(100_000));
    ws.write_json(
        "graph.json",
        &json!({"1": {"class_type": hostile, "inputs": {}}}),
    );
    let out = ws.run(&["validate", "graph.json"]);
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(
        !err.chars().any(|c| c.is_control() && c != '\n'),
        "raw control characters reached the terminal: {:?}",
        &err[..err.len().min(300)]
    );
    assert!(
        err.contains("\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\rdone"),
        "{err:.300}"
    );
    assert!(err.contains("bytes cut)"), "{err:.300}");
    assert!(err.len() < 20_000, "{} bytes on stderr", err.len());
}
