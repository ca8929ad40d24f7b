//! Hot reload: saves are picked up (including write-temp-then-rename), broken saves keep the last good
//! graph, and `drive` runs the executor on each valid change.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use omnigen_engine::{
    drive, drive_with, BoxFuture, DriveEnd, Executor, ExecutorConfig, GraphWatcher, InputValue,
    Inputs, NodeContext, NodeError, NodeOutput, NodeSchema, NodeType, RunOptions, RunStatus, Value,
    WatchConfig, WatchEvent, WatchHooks, WatchOutcome, WatchProblem, WatchedGraph,
};
use serde_json::json;
use std::ops::ControlFlow;
use std::sync::Arc;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::{Notify, Semaphore};

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

/// `Gate {} -> INT`: signals `started`, then waits until `open` gets a permit (or the run is cancelled).
struct Gate {
    started: Arc<Notify>,
    open: Arc<Semaphore>,
}

impl NodeType for Gate {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Gate").output("INT")
    }
    fn run<'a>(
        &'a self,
        _inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            self.started.notify_one();
            loop {
                ctx.check_cancelled()?;
                if let Ok(permit) = self.open.try_acquire() {
                    permit.forget();
                    return Ok(NodeOutput::new(vec![Value::Int(1)]));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    }
}

/// The cancellation rule's other half: a change of another watched graph while one runs does not cancel
/// the running one; it waits, and only its newest version runs afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_another_graph_waits_for_the_running_one() {
    let dir = tempfile::tempdir().unwrap();
    let gated = json!({"g": {"class_type": "Gate", "inputs": {}},
                       "s": {"class_type": "Sink", "inputs": {"value": ["g", 0]}}});
    std::fs::write(dir.path().join("a.json"), gated.to_string()).unwrap();
    let other = dir.path().join("b.json");
    std::fs::write(&other, graph(1)).unwrap();
    let runs = Runs::default();
    let registry = basic_registry(&runs);
    let started = Arc::new(Notify::new());
    let open = Arc::new(Semaphore::new(0));
    registry.register(Gate {
        started: started.clone(),
        open: open.clone(),
    });
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

    // a.json (first in the initial scan) is running; b.json's first version is queued behind it.
    tokio::time::timeout(GENEROUS, started.notified())
        .await
        .expect("a.json started");
    save_via_rename(&other, &graph(2));
    save_via_rename(&other, &graph(3));
    // Give the watcher time to deliver both saves while a.json still runs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    open.add_permits(1);

    match next_outcome(&mut out_rx).await {
        WatchOutcome::Ran {
            path,
            report,
            superseded,
            ..
        } => {
            assert_eq!(path.file_name().unwrap(), "a.json");
            assert!(report.is_success(), "not cancelled: {:?}", report.status);
            assert!(!superseded);
        }
        other => panic!("{other:?}"),
    }
    match next_outcome(&mut out_rx).await {
        WatchOutcome::Ran { path, report, .. } => {
            assert_eq!(path.file_name().unwrap(), "b.json");
            assert!(report.is_success());
            assert_eq!(
                report.ui_outputs["2"]["value"][0], 3,
                "only the newest save of b.json ran"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(runs.all(), ["s", "1", "2"], "b.json ran once, after a.json");
    drop(watcher);
    tokio::time::timeout(GENEROUS, driver)
        .await
        .unwrap()
        .unwrap();
}

/// Hooks that skip graphs whose `Const` is 1, stop after the first run, and report what they saw.
struct Recorder {
    seen: UnboundedSender<String>,
}

impl WatchHooks for Recorder {
    fn prepare(&mut self, _path: &Path, graph: WatchedGraph) -> Option<WatchedGraph> {
        let value = literal_i64(&graph.request.prompt.node("1")?.inputs["value"]);
        let _ = self.seen.send(format!("prepare {value:?}"));
        (value != Some(1)).then_some(graph)
    }
    fn run_options(&mut self, _path: &Path) -> RunOptions {
        RunOptions::default()
    }
    fn on_outcome(&mut self, outcome: WatchOutcome) -> ControlFlow<()> {
        match outcome {
            WatchOutcome::Ran { report, .. } => {
                let _ = self.seen.send(format!("ran {}", report.is_success()));
                ControlFlow::Break(())
            }
            _ => ControlFlow::Continue(()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drive_with_hooks_can_skip_a_graph_halt_the_loop_and_be_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.json");
    std::fs::write(&file, graph(1)).unwrap();
    let runs = Runs::default();
    let registry = basic_registry(&runs);
    let exec = Executor::new(registry.clone(), ExecutorConfig::default());
    let (_watcher, mut rx) = GraphWatcher::spawn(&file, registry, WatchConfig::default()).unwrap();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let mut hooks = Recorder { seen: seen_tx };

    let saver = {
        let file = file.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            save_via_rename(&file, &graph(2));
        })
    };
    let end = tokio::time::timeout(
        GENEROUS,
        drive_with(&exec, &mut rx, &mut hooks, std::future::pending()),
    )
    .await
    .expect("the hook halts the loop");
    saver.await.unwrap();
    assert_eq!(end, DriveEnd::Halted);
    let mut log = Vec::new();
    while let Ok(line) = seen.try_recv() {
        log.push(line);
    }
    assert_eq!(log, ["prepare Some(1)", "prepare Some(2)", "ran true"]);
    assert_eq!(runs.all(), ["1", "2"], "the skipped graph did not run");

    // Idle, with a stop signal: the loop returns without a watch event.
    let stop = Arc::new(Notify::new());
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.notify_one();
        })
    };
    let end = tokio::time::timeout(
        GENEROUS,
        drive_with(&exec, &mut rx, &mut hooks, stop.notified()),
    )
    .await
    .expect("stopped");
    stopper.await.unwrap();
    assert_eq!(end, DriveEnd::Stopped);
}

/// A UI workflow: `Const(value)` → `Sink`, as the editor saves it; `const_type` names the first node.
fn ui_workflow(const_type: &str, value: i64) -> String {
    json!({
        "last_node_id": 2, "last_link_id": 1, "version": 0.4,
        "nodes": [
            {"id": 1, "type": const_type, "mode": 0, "inputs": [],
             "outputs": [{"name": "INT", "type": "INT", "links": [1]}],
             "widgets_values": [value], "properties": {}},
            {"id": 2, "type": "Sink", "mode": 0,
             "inputs": [{"name": "value", "type": "*", "link": 1}],
             "outputs": [], "widgets_values": [], "properties": {}}
        ],
        "links": [[1, 1, 0, 2, 0, "INT"]],
        "groups": []
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editor_workflows_are_converted_and_carry_themselves_for_saved_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("workflow.json");
    std::fs::write(&file, ui_workflow("Const", 7)).unwrap();
    let runs = Runs::default();
    let (_watcher, mut rx) =
        GraphWatcher::spawn(&file, basic_registry(&runs), WatchConfig::default()).unwrap();

    let changed = next(&mut rx).await;
    assert_eq!(const_value(&changed), Some(7), "{changed:?}");
    let WatchEvent::Changed { request, .. } = &changed else {
        unreachable!()
    };
    let workflow = &request.extra_pnginfo().expect("extra_pnginfo")["workflow"];
    assert_eq!(workflow["nodes"].as_array().map(Vec::len), Some(2));

    save_via_rename(&file, &ui_workflow("NoSuchNode", 8));
    match next(&mut rx).await {
        WatchEvent::Invalid {
            problem: WatchProblem::Workflow(e),
            last_good,
            ..
        } => {
            assert!(e.to_string().contains("NoSuchNode"), "{e}");
            assert!(last_good.is_some(), "the last good graph is kept");
        }
        other => panic!("{other:?}"),
    }
}
