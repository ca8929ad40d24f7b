//! Hot reload: saves are picked up (including write-temp-then-rename), broken saves keep the last good
//! graph, and `drive` runs the executor on each valid change.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use omnigen_engine::{
    drive, Executor, ExecutorConfig, GraphWatcher, InputValue, RunOptions, RunStatus, WatchConfig,
    WatchEvent, WatchOutcome, WatchProblem,
};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

const GENEROUS: Duration = Duration::from_secs(20);

fn graph(value: i64) -> String {
    json!({
        "1": {"class_type": "Const", "inputs": {"value": value}},
        "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}
    })
    .to_string()
}

async fn next(rx: &mut UnboundedReceiver<WatchEvent>) -> WatchEvent {
    tokio::time::timeout(GENEROUS, rx.recv())
        .await
        .expect("no watch event arrived")
        .expect("watcher closed")
}

/// The next valid change. An in-place write can be seen half-done (truncated, then written); the
/// watcher reports that as a parse error and then the complete content, so skip such transient errors.
async fn next_changed(rx: &mut UnboundedReceiver<WatchEvent>) -> WatchEvent {
    loop {
        match next(rx).await {
            WatchEvent::Invalid {
                problem: WatchProblem::Parse(_),
                ..
            } => continue,
            other => return other,
        }
    }
}

fn const_value(ev: &WatchEvent) -> Option<i64> {
    match ev {
        WatchEvent::Changed { request, .. } => {
            literal_i64(&request.prompt.node("1")?.inputs["value"])
        }
        _ => None,
    }
}

fn literal_i64(v: &InputValue) -> Option<i64> {
    match v {
        InputValue::Literal(v) => v.as_i64(),
        _ => None,
    }
}

fn save_via_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("json.tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_on_save_keeps_last_good_graph_on_broken_save() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("graph.json");
    std::fs::write(&file, graph(1)).unwrap();
    let runs = Runs::default();
    let (_watcher, mut rx) =
        GraphWatcher::spawn(&file, basic_registry(&runs), WatchConfig::default()).unwrap();

    assert_eq!(const_value(&next(&mut rx).await), Some(1), "initial load");

    std::fs::write(&file, graph(2)).unwrap();
    assert_eq!(
        const_value(&next_changed(&mut rx).await),
        Some(2),
        "in-place write"
    );

    save_via_rename(&file, &graph(3));
    assert_eq!(
        const_value(&next(&mut rx).await),
        Some(3),
        "write-temp-then-rename save"
    );

    save_via_rename(&file, "{\n  \"1\": {\"class_type\": \"Const\",,\n}");
    match next(&mut rx).await {
        WatchEvent::Invalid {
            problem: WatchProblem::Parse(e),
            last_good,
            ..
        } => {
            assert!(e.to_string().contains("line 2"), "{e}");
            let kept = last_good.expect("last good graph kept");
            assert_eq!(
                literal_i64(&kept.prompt.node("1").unwrap().inputs["value"]),
                Some(3)
            );
        }
        other => panic!("{other:?}"),
    }

    save_via_rename(&file, r#"{"2": {"class_type": "Sink", "inputs": {}}}"#);
    match next(&mut rx).await {
        WatchEvent::Invalid {
            problem: WatchProblem::Validation(report),
            ..
        } => {
            assert_eq!(
                report.to_json()["node_errors"]["2"]["errors"][0]["type"],
                "required_input_missing"
            );
        }
        other => panic!("{other:?}"),
    }

    std::fs::write(&file, graph(4)).unwrap();
    assert_eq!(
        const_value(&next(&mut rx).await),
        Some(4),
        "a good save after broken ones"
    );

    std::fs::remove_file(&file).unwrap();
    assert!(matches!(next(&mut rx).await, WatchEvent::Removed { .. }));
}

async fn next_outcome(rx: &mut UnboundedReceiver<WatchOutcome>) -> WatchOutcome {
    tokio::time::timeout(GENEROUS, rx.recv())
        .await
        .expect("no outcome")
        .expect("driver ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drive_runs_each_change_and_measures_latency() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.json");
    std::fs::write(&file, graph(1)).unwrap();
    let runs = Runs::default();
    let registry = basic_registry(&runs);
    let exec = Executor::new(registry.clone(), ExecutorConfig::default());
    let (watcher, mut rx) =
        GraphWatcher::spawn(dir.path(), registry, WatchConfig::default()).unwrap();

    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        drive(
            &exec,
            &mut rx,
            |_| RunOptions::default(),
            |o| {
                let _ = out_tx.send(o);
            },
        )
        .await;
    });

    match next_outcome(&mut out_rx).await {
        WatchOutcome::Ran { report, path, .. } => {
            assert!(report.is_success());
            assert_eq!(path.file_name().unwrap(), "g.json");
        }
        other => panic!("{other:?}"),
    }
    save_via_rename(&file, &graph(5));
    match next_outcome(&mut out_rx).await {
        WatchOutcome::Ran {
            report, latency, ..
        } => {
            assert!(report.is_success());
            assert_eq!(report.cached.len(), 0);
            assert!(
                latency >= WatchConfig::default().debounce,
                "measured from the file event, across the debounce"
            );
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(dir.path().join("broken.json"), "{").unwrap();
    assert!(matches!(
        next_outcome(&mut out_rx).await,
        WatchOutcome::Rejected { .. }
    ));
    assert_eq!(runs.all(), ["1", "2", "1", "2"]);

    drop(watcher);
    tokio::time::timeout(GENEROUS, driver)
        .await
        .expect("driver ends when the watcher is dropped")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_becomes_valid_when_its_node_type_is_registered_later() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("late.json");
    std::fs::write(&file, graph(7)).unwrap();
    let runs = Runs::default();
    let registry = omnigen_engine::Registry::new();
    registry.register(Sink(runs.clone()));
    let registry = std::sync::Arc::new(registry);
    let (_watcher, mut rx) =
        GraphWatcher::spawn(&file, registry.clone(), WatchConfig::default()).unwrap();
    match next(&mut rx).await {
        WatchEvent::Invalid {
            problem: WatchProblem::Validation(report),
            ..
        } => {
            assert_eq!(report.error.kind.as_str(), "missing_node_type");
        }
        other => panic!("{other:?}"),
    }
    // A plugin registers the missing type; the unchanged file is re-validated on its own.
    registry.register(Const(runs));
    assert_eq!(const_value(&next(&mut rx).await), Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_save_interrupts_the_running_graph_and_runs_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long.json");
    let hold = |wait: bool| {
        json!({"h": {"class_type": "Hold", "inputs": {"wait": wait}},
               "s": {"class_type": "Sink", "inputs": {"value": ["h", 0]}}})
        .to_string()
    };
    std::fs::write(&file, hold(true)).unwrap();
    let runs = Runs::default();
    let registry = basic_registry(&runs);
    let started = std::sync::Arc::new(tokio::sync::Notify::new());
    registry.register(Hold {
        started: started.clone(),
    });
    let exec = Executor::new(registry.clone(), ExecutorConfig::default());
    let (watcher, mut rx) = GraphWatcher::spawn(&file, registry, WatchConfig::default()).unwrap();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        drive(
            &exec,
            &mut rx,
            |_| RunOptions::default(),
            |o| {
                let _ = out_tx.send(o);
            },
        )
        .await;
    });

    tokio::time::timeout(GENEROUS, started.notified())
        .await
        .expect("first run started");
    save_via_rename(&file, &hold(false));
    match next_outcome(&mut out_rx).await {
        WatchOutcome::Ran { report, .. } => {
            assert_eq!(
                report.status,
                RunStatus::Interrupted {
                    node_id: Some("h".into())
                }
            );
        }
        other => panic!("{other:?}"),
    }
    match next_outcome(&mut out_rx).await {
        WatchOutcome::Ran { report, .. } => assert!(report.is_success(), "{:?}", report.status),
        other => panic!("{other:?}"),
    }
    assert_eq!(runs.all(), ["s"], "only the new graph's sink ran");
    drop(watcher);
    tokio::time::timeout(GENEROUS, driver)
        .await
        .unwrap()
        .unwrap();
}

/// Another file in the same folder rewritten every 10 ms must not hold a save of the watched graph
/// back: only events about watched files extend the debounce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_folder_does_not_hold_a_save_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("graph.json");
    std::fs::write(&file, graph(1)).unwrap();
    let runs = Runs::default();
    let (_watcher, mut rx) =
        GraphWatcher::spawn(&file, basic_registry(&runs), WatchConfig::default()).unwrap();
    assert_eq!(const_value(&next(&mut rx).await), Some(1), "initial load");

    let noise = dir.path().join("noise.log");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::fs::write(&noise, i.to_string()).unwrap();
                i += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    save_via_rename(&file, &graph(2));
    // Well under the 60 s the old debounce could wait, and under the MAX_DEBOUNCE cap it must never
    // reach: the noise does not extend the quiet period at all.
    let got = tokio::time::timeout(Duration::from_millis(1900), next_changed(&mut rx)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(
        const_value(&got.expect("save was held back by a busy folder")),
        Some(2)
    );
}
