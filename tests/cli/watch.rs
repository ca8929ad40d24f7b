//! `omnigen watch`: re-runs on save, executes only what changed, survives broken saves.

use std::path::Path;
use std::process::{Child, Stdio};

use serde_json::{json, Value as Json};

use crate::support::*;

/// Kills the watcher when the test ends, even on a failed assertion (then showing its log).
struct Watcher {
    child: Child,
    log: std::path::PathBuf,
}

impl Watcher {
    /// Sends Ctrl-C (SIGINT) and waits for the process to exit.
    #[cfg(unix)]
    fn interrupt(&mut self) -> std::process::ExitStatus {
        let sent = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("send SIGINT");
        assert!(sent.success());
        self.child.wait().expect("wait for watch")
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("omnigen watch stderr:\n{log}");
        }
    }
}

/// The events of run number `n` (1-based): the slice from its `execution_start` to the next.
fn run_events(events: &[Json], n: usize) -> Vec<Json> {
    let starts: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["type"] == "execution_start")
        .map(|(i, _)| i)
        .collect();
    let start = starts[n - 1];
    let end = starts.get(n).copied().unwrap_or(events.len());
    events[start..end].to_vec()
}

fn finished_runs(text: &str) -> usize {
    json_lines(text)
        .iter()
        .filter(|e| e["type"] == "executing" && e["data"]["node"].is_null())
        .count()
}

/// Writes `json` the way many editors save: to a temporary file, then renamed over the original.
fn save_by_rename(path: &Path, json: &Json) {
    let temp = path.with_extension("json.tmp");
    std::fs::write(&temp, serde_json::to_string_pretty(json).expect("json")).expect("write temp");
    std::fs::rename(&temp, path).expect("rename");
}

#[test]
fn saves_rerun_only_changed_nodes_and_broken_saves_keep_the_last_good_graph() {
    let ws = Workspace::new();
    ws.write_input_png("a.png", 3, 2, 255);
    // The graph lives in its own folder: the watcher watches that folder, and our polling of the
    // events file must not count as activity there.
    std::fs::create_dir(ws.path("graphs")).expect("mkdir");
    let graph_path = ws.write_json("graphs/graph.json", &load_save_graph("a.png", "first"));
    let events_path = ws.path("events.jsonl");
    let log = std::fs::File::create(ws.path("watch.log")).expect("log file");
    let child = ws
        .omnigen()
        .args([
            "watch",
            "graphs/graph.json",
            "--events",
            "events.jsonl",
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start watch");
    let mut watcher = Watcher {
        child,
        log: ws.path("watch.log"),
    };

    // 1. The initial run executes both nodes.
    wait_for_file(&events_path, "the first run", |t| finished_runs(t) >= 1);

    // 2. A save changing only SaveImage's prefix (temp file + rename) re-runs only SaveImage.
    save_by_rename(&graph_path, &load_save_graph("a.png", "second"));
    let text = wait_for_file(&events_path, "the second run", |t| finished_runs(t) >= 2);
    let second = run_events(&json_lines(&text), 2);
    assert_eq!(executed_nodes(&second), ["2"]);
    let cached = second
        .iter()
        .find(|e| e["type"] == "execution_cached")
        .expect("execution_cached");
    assert_eq!(cached["data"]["nodes"], json!(["1"]));

    // 3. A broken save is reported and nothing runs; the next good save runs again.
    std::fs::write(&graph_path, "{ this is not json").expect("broken save");
    wait_for_file(&ws.path("watch.log"), "the rejection message", |t| {
        t.contains("save rejected")
    });
    save_by_rename(&graph_path, &load_save_graph("a.png", "third"));
    let text = wait_for_file(&events_path, "the third run", |t| finished_runs(t) >= 3);
    let events = json_lines(&text);
    assert_eq!(executed_nodes(&run_events(&events, 3)), ["2"]);

    // 4. Changing the input picture's content re-runs LoadImage too (fingerprint = sha256).
    ws.write_input_png("a.png", 4, 2, 255);
    save_by_rename(&graph_path, &load_save_graph("a.png", "fourth"));
    let text = wait_for_file(&events_path, "the fourth run", |t| finished_runs(t) >= 4);
    assert_eq!(
        executed_nodes(&run_events(&json_lines(&text), 4)),
        ["1", "2"]
    );

    // Every run produced its file; the broken save produced none.
    assert_eq!(
        ws.files_in("output"),
        [
            "first_00001_.png",
            "fourth_00001_.png",
            "second_00001_.png",
            "third_00001_.png"
        ]
    );
    let log = std::fs::read_to_string(ws.path("watch.log")).expect("log");
    assert!(log.contains("file change -> execution start in"), "{log}");

    // 5. Ctrl-C while idle stops watching with the documented exit code.
    #[cfg(unix)]
    assert_eq!(watcher.interrupt().code(), Some(130));
}

#[test]
fn a_save_during_a_long_run_cancels_it_and_runs_the_new_graph() {
    let ws = Workspace::new();
    std::fs::create_dir(ws.path("graphs")).expect("mkdir");
    let slow = |steps: u32| json!({"1": {"class_type": "TestSlowCount", "inputs": {"steps": steps, "delay_ms": 20}}});
    let graph_path = ws.write_json("graphs/slow.json", &slow(5000));
    let events_path = ws.path("events.jsonl");
    let log = std::fs::File::create(ws.path("watch.log")).expect("log file");
    let child = ws
        .omnigen()
        .args([
            "watch",
            "graphs/slow.json",
            "--test-nodes",
            "--events",
            "events.jsonl",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start watch");
    let _watcher = Watcher {
        child,
        log: ws.path("watch.log"),
    };

    wait_for_file(&events_path, "the slow run's progress", |t| {
        t.contains("\"type\":\"progress\"")
    });
    save_by_rename(&graph_path, &slow(2));
    let text = wait_for_file(&events_path, "the second run", |t| finished_runs(t) >= 2);
    let events = json_lines(&text);
    let first = run_events(&events, 1);
    assert!(
        first.iter().any(|e| e["type"] == "execution_interrupted"),
        "the first run was not interrupted: {first:?}"
    );
    let second = run_events(&events, 2);
    assert!(second.iter().any(|e| e["type"] == "execution_success"));
    let log = std::fs::read_to_string(ws.path("watch.log")).expect("log");
    assert!(log.contains("cancelled by a newer save"), "{log}");
}

/// The cancellation rule's other half: saving another graph of a watched folder while one runs does
/// not cancel the running graph; the saved one runs after it.
#[test]
fn a_save_of_another_graph_waits_for_the_running_one() {
    let ws = Workspace::new();
    std::fs::create_dir(ws.path("graphs")).expect("mkdir");
    let slow = |steps: u32, delay_ms: u32| json!({"1": {"class_type": "TestSlowCount", "inputs": {"steps": steps, "delay_ms": delay_ms}}});
    // Sorted names: the slow graph runs first, the quick one is queued behind it.
    ws.write_json("graphs/a_slow.json", &slow(100, 20));
    let quick = ws.write_json("graphs/b_quick.json", &slow(1, 0));
    let events_path = ws.path("events.jsonl");
    let log = std::fs::File::create(ws.path("watch.log")).expect("log file");
    let child = ws
        .omnigen()
        .args([
            "watch",
            "graphs",
            "--test-nodes",
            "--events",
            "events.jsonl",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start watch");
    let _watcher = Watcher {
        child,
        log: ws.path("watch.log"),
    };

    wait_for_file(&events_path, "the slow run's progress", |t| {
        t.contains("\"type\":\"progress\"")
    });
    save_by_rename(&quick, &slow(3, 0));
    let text = wait_for_file(&events_path, "both runs", |t| finished_runs(t) >= 2);
    let events = json_lines(&text);
    let max_of = |run: &[Json]| {
        run.iter()
            .find(|e| e["type"] == "progress")
            .map(|e| e["data"]["max"].clone())
    };
    let first = run_events(&events, 1);
    assert_eq!(max_of(&first), Some(json!(100)), "the slow graph ran first");
    assert!(
        first.iter().any(|e| e["type"] == "execution_success"),
        "the slow run was cancelled by another file's save: {first:?}"
    );
    let second = run_events(&events, 2);
    assert_eq!(
        max_of(&second),
        Some(json!(3)),
        "the quick graph's newest save ran next"
    );
    assert!(second.iter().any(|e| e["type"] == "execution_success"));
    let log = std::fs::read_to_string(ws.path("watch.log")).expect("log");
    assert!(!log.contains("cancelled by a newer save"), "{log}");
}
