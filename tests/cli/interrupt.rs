//! Ctrl-C (SIGINT) during `omnigen run`: stops at the next progress tick, reports
//! `execution_interrupted`, keeps the files already written, exits 130.

use std::process::Stdio;

use serde_json::{json, Value as Json};

use crate::support::*;

#[cfg(unix)]
#[test]
fn sigint_interrupts_the_run_keeps_outputs_and_exits_130() {
    let ws = Workspace::new();
    ws.write_input_png("a.png", 2, 2, 255);
    let mut graph = load_save_graph("a.png", "kept");
    // A slow output node next to the quick branch: ~100 s if never interrupted.
    graph["3"] = json!({"class_type": "TestSlowCount", "inputs": {"steps": 5000, "delay_ms": 20}});
    ws.write_json("graph.json", &graph);
    let events_path = ws.path("events.jsonl");
    let child = ws
        .omnigen()
        .args([
            "run",
            "graph.json",
            "--test-nodes",
            "--events",
            "events.jsonl",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start run");

    // Wait until the image is saved and the slow node is visibly making progress.
    wait_for_file(&events_path, "progress of the slow node", |text| {
        let events = json_lines_prefix(text);
        events
            .iter()
            .any(|e| e["type"] == "executed" && e["data"]["node"] == "2")
            && events
                .iter()
                .any(|e| e["type"] == "progress" && e["data"]["node"] == "3")
    });
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("send SIGINT");
    assert!(status.success());
    let output = child.wait_with_output().expect("wait");
    assert_exit(&output, 130);

    let events = json_lines(&std::fs::read_to_string(&events_path).expect("events"));
    let interrupted = events
        .iter()
        .find(|e| e["type"] == "execution_interrupted")
        .expect("execution_interrupted event");
    assert_eq!(interrupted["data"]["node_id"], "3");
    assert!(!events.iter().any(|e| e["type"] == "execution_success"));
    // The slow node stopped long before its last step.
    let last_progress = events
        .iter()
        .filter(|e| e["type"] == "progress")
        .filter_map(|e| e["data"]["value"].as_u64())
        .max()
        .expect("progress");
    assert!(last_progress < 5000, "ran to the end: {last_progress}");
    assert_eq!(ws.files_in("output"), ["kept_00001_.png"]);
    assert!(
        stderr(&output).contains("interrupted"),
        "{}",
        stderr(&output)
    );
}

/// Complete lines only: the file may be read while a line is being written.
fn json_lines_prefix(text: &str) -> Vec<Json> {
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    json_lines(complete)
}
