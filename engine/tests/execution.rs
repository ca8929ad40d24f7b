//! Execution: order, events, concurrency, exclusive resources, caching, failures, cancellation.

mod common;

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use common::*;
use omnigen_engine::{
    CancelToken, Event, Executor, ExecutorConfig, Fingerprint, NodeFinished, NodeId, PromptRequest,
    Registry, RunOptions, RunStatus,
};
use serde_json::{json, Value as Json};

fn request(prompt: Json) -> PromptRequest {
    PromptRequest::from_json(prompt).unwrap()
}

fn executor(registry: Arc<Registry>, concurrency: usize) -> Executor {
    Executor::new(
        registry,
        ExecutorConfig {
            max_concurrency: concurrency,
            ..Default::default()
        },
    )
}

fn chain() -> Json {
    json!({
        "1": {"class_type": "Const", "inputs": {"value": 2}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 3}},
        "3": {"class_type": "Add", "inputs": {"a": ["2", 0], "b": ["1", 0]}},
        "4": {"class_type": "Sink", "inputs": {"value": ["3", 0]}},
        "unused": {"class_type": "Const", "inputs": {"value": 9}}
    })
}

#[tokio::test]
async fn runs_ancestors_of_outputs_in_dependency_order_with_comfyui_events() {
    let runs = Runs::default();
    let exec = executor(basic_registry(&runs), 1);
    let (sink, events) = collector();
    let report = exec
        .run(&request(chain()), RunOptions::new(sink).prompt_id("p1"))
        .await
        .unwrap();
    assert!(report.is_success());
    assert_eq!(runs.all(), ["1", "2", "3", "4"], "node 'unused' never runs");
    assert_eq!(report.ui_outputs[&NodeId::from("4")], json!({"value": [7]}));

    let events = events.lock().unwrap();
    assert_eq!(
        types(&events),
        [
            "execution_start",
            "execution_cached",
            "executing",
            "executing",
            "executing",
            "executing",
            "executed",
            "execution_success",
            "executing"
        ]
    );
    assert_eq!(executing_nodes(&events), ["1", "2", "3", "4"]);
    assert!(events.iter().all(|e| e.prompt_id() == "p1"));
    assert_eq!(
        events.last().unwrap().to_json(),
        json!({"type": "executing", "data": {"node": null, "prompt_id": "p1"}})
    );
    let executed = events
        .iter()
        .find(|e| e.type_name() == "executed")
        .unwrap()
        .to_json();
    assert_eq!(
        executed,
        json!({"type": "executed", "data": {"node": "4", "display_node": "4", "output": {"value": [7]},
               "prompt_id": "p1"}})
    );
}

#[tokio::test]
async fn cache_skips_unchanged_nodes_and_reruns_changed_ones_and_descendants_only() {
    let runs = Runs::default();
    let exec = executor(basic_registry(&runs), 2);
    let graph = json!({
        "a": {"class_type": "Const", "inputs": {"value": 1}},
        "b": {"class_type": "Const", "inputs": {"value": 10}},
        "sum": {"class_type": "Add", "inputs": {"a": ["a", 0], "b": ["b", 0]}},
        "out": {"class_type": "Sink", "inputs": {"value": ["sum", 0]}},
        "out_b": {"class_type": "Sink", "inputs": {"value": ["b", 0]}}
    });
    exec.run(&request(graph.clone()), RunOptions::default())
        .await
        .unwrap();
    assert_eq!(runs.count(), 5);

    // Unchanged: nothing executes; every node is reported cached; output nodes re-send `executed`.
    runs.clear();
    let (sink, events) = collector();
    let report = exec
        .run(&request(graph.clone()), RunOptions::new(sink))
        .await
        .unwrap();
    assert!(runs.all().is_empty());
    let events = events.lock().unwrap().clone();
    let mut cached = cached_nodes(&events);
    cached.sort();
    assert_eq!(cached, ["a", "b", "out", "out_b", "sum"]);
    assert!(executing_nodes(&events).is_empty());
    assert_eq!(
        events
            .iter()
            .filter(|e| e.type_name() == "executed")
            .count(),
        2
    );
    assert_eq!(
        report.ui_outputs[&NodeId::from("out")],
        json!({"value": [11]})
    );

    // Change a constant of 'a': a, sum and out re-run; b and out_b stay cached.
    runs.clear();
    let mut changed = graph.clone();
    changed["a"]["inputs"]["value"] = json!(5);
    let (sink, events) = collector();
    let report = exec
        .run(&request(changed), RunOptions::new(sink))
        .await
        .unwrap();
    let mut ran = runs.all();
    ran.sort();
    assert_eq!(ran, ["a", "out", "sum"]);
    let mut cached = cached_nodes(&events.lock().unwrap());
    cached.sort();
    assert_eq!(cached, ["b", "out_b"]);
    assert_eq!(
        report.ui_outputs[&NodeId::from("out")],
        json!({"value": [15]})
    );

    // Same structure under other node ids shares cache entries (ids are not part of the key) — except
    // Sink, whose hidden UNIQUE_ID input makes its key include the id, as in ComfyUI.
    runs.clear();
    let renamed = json!({
        "x": {"class_type": "Const", "inputs": {"value": 10}},
        "y": {"class_type": "Sink", "inputs": {"value": ["x", 0]}}
    });
    exec.run(&request(renamed), RunOptions::default())
        .await
        .unwrap();
    assert_eq!(runs.all(), ["y"]);

    exec.clear_cache();
    runs.clear();
    exec.run(&request(graph), RunOptions::default())
        .await
        .unwrap();
    assert_eq!(runs.count(), 5, "after clear_cache everything runs again");
}

#[tokio::test]
async fn fingerprints_and_is_changed_control_reuse() {
    let runs = Runs::default();
    let registry = basic_registry(&runs);
    let state = Arc::new(Mutex::new(Fingerprint::Value("v1".into())));
    registry.register(External {
        state: Arc::clone(&state),
        runs: runs.clone(),
    });
    let exec = executor(registry, 2);
    let graph = json!({
        "e": {"class_type": "External", "inputs": {"name": "f", "mode": "a"}},
        "s": {"class_type": "Sink", "inputs": {"value": ["e", 0]}}
    });
    exec.run(&request(graph.clone()), RunOptions::default())
        .await
        .unwrap();
    runs.clear();
    exec.run(&request(graph.clone()), RunOptions::default())
        .await
        .unwrap();
    assert!(runs.all().is_empty(), "same fingerprint: cached");

    *state.lock().unwrap() = Fingerprint::Value("v2".into());
    exec.run(&request(graph.clone()), RunOptions::default())
        .await
        .unwrap();
    assert_eq!(runs.all(), ["e", "s"], "external state changed");

    runs.clear();
    *state.lock().unwrap() = Fingerprint::Always;
    exec.run(&request(graph.clone()), RunOptions::default())
        .await
        .unwrap();
    exec.run(&request(graph.clone()), RunOptions::default())
        .await
        .unwrap();
    assert_eq!(
        runs.count(),
        4,
        "Always re-runs the node and its descendants every time"
    );

    // A fixed `is_changed` in the prompt overrides the fingerprint.
    runs.clear();
    let mut pinned = graph;
    pinned["e"]["is_changed"] = json!("fixed");
    exec.run(&request(pinned.clone()), RunOptions::default())
        .await
        .unwrap();
    exec.run(&request(pinned), RunOptions::default())
        .await
        .unwrap();
    assert_eq!(runs.all(), ["e", "s"]);
}

#[tokio::test]
async fn independent_branches_run_concurrently() {
    // Each Meet node waits at a 3-party barrier: the run can only finish if all three overlap.
    let runs = Runs::default();
    let registry = basic_registry(&runs);
    registry.register(Meet(Arc::new(tokio::sync::Barrier::new(3))));
    let exec = executor(registry, 3);
    let graph = json!({
        "m1": {"class_type": "Meet", "inputs": {"value": 1}},
        "m2": {"class_type": "Meet", "inputs": {"value": 2}},
        "m3": {"class_type": "Meet", "inputs": {"value": 3}},
        "s1": {"class_type": "Add", "inputs": {"a": ["m1", 0], "b": ["m2", 0]}},
        "s2": {"class_type": "Add", "inputs": {"a": ["s1", 0], "b": ["m3", 0]}},
        "out": {"class_type": "Sink", "inputs": {"value": ["s2", 0]}}
    });
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        exec.run(&request(graph), RunOptions::default()),
    )
    .await
    .expect("branches did not overlap")
    .unwrap();
    assert_eq!(
        report.ui_outputs[&NodeId::from("out")],
        json!({"value": [6]})
    );
}

#[tokio::test]
async fn nodes_sharing_an_exclusive_resource_never_overlap() {
    let runs = Runs::default();
    let registry = basic_registry(&runs);
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    registry.register(Exclusive {
        running: Arc::clone(&running),
        peak: Arc::clone(&peak),
        resource: Some("gpu"),
    });
    let exec = executor(registry, 4);
    let mut graph = serde_json::Map::new();
    for i in 0..4 {
        graph.insert(
            format!("x{i}"),
            json!({"class_type": "Exclusive", "inputs": {"value": i}}),
        );
        graph.insert(
            format!("s{i}"),
            json!({"class_type": "Sink", "inputs": {"value": [format!("x{i}"), 0]}}),
        );
    }
    let report = exec
        .run(&request(Json::Object(graph)), RunOptions::default())
        .await
        .unwrap();
    assert!(report.is_success());
    assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// Counts how many `Locker` nodes run at once, per resource and in all.
#[derive(Default)]
struct LockStats {
    running: Mutex<std::collections::HashMap<String, usize>>,
    peak: Mutex<std::collections::HashMap<String, usize>>,
    total: AtomicUsize,
    peak_total: AtomicUsize,
}

/// `Locker {device: STRING, value: INT} -> INT`: takes `device` with `ctx.lock_resource` at run time (the
/// scheduler is not told), then holds it until another node runs alongside or 300 ms pass. The
/// `ExclusiveLocker` variant also names `device` as its `exclusive_resource`, so it asks again for a
/// resource the scheduler already holds for it.
struct Locker {
    stats: Arc<LockStats>,
    exclusive: bool,
}
impl omnigen_engine::NodeType for Locker {
    fn schema(&self) -> omnigen_engine::NodeSchema {
        let name = if self.exclusive {
            "ExclusiveLocker"
        } else {
            "Locker"
        };
        omnigen_engine::NodeSchema::new(name)
            .required(omnigen_engine::InputSpec::string("device"))
            .required(omnigen_engine::InputSpec::int("value"))
            .output("INT")
    }
    fn exclusive_resource(
        &self,
        inputs: &omnigen_engine::Inputs,
    ) -> Option<omnigen_engine::Resource> {
        let device = inputs.get_str("device").ok()?;
        self.exclusive
            .then(|| omnigen_engine::Resource::new(device))
    }
    fn run<'a>(
        &'a self,
        inputs: omnigen_engine::Inputs,
        ctx: omnigen_engine::NodeContext,
    ) -> omnigen_engine::BoxFuture<'a, Result<omnigen_engine::NodeOutput, omnigen_engine::NodeError>>
    {
        use std::sync::atomic::Ordering::SeqCst;
        Box::pin(async move {
            let device = inputs.get_str("device")?.to_string();
            let guard = ctx
                .lock_resource(omnigen_engine::Resource::new(&device))
                .await;
            assert_eq!(guard.resource().as_str(), device);
            {
                let mut running = self.stats.running.lock().unwrap();
                let now = running.entry(device.clone()).or_default();
                *now += 1;
                let mut peak = self.stats.peak.lock().unwrap();
                let p = peak.entry(device.clone()).or_default();
                *p = (*p).max(*now);
            }
            let total = self.stats.total.fetch_add(1, SeqCst) + 1;
            self.stats.peak_total.fetch_max(total, SeqCst);
            let start = std::time::Instant::now();
            while self.stats.total.load(SeqCst) < 2
                && start.elapsed() < std::time::Duration::from_millis(300)
            {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            self.stats.total.fetch_sub(1, SeqCst);
            *self.stats.running.lock().unwrap().get_mut(&device).unwrap() -= 1;
            drop(guard);
            Ok(omnigen_engine::NodeOutput::new(vec![
                omnigen_engine::Value::Int(inputs.get_int("value")?),
            ]))
        })
    }
}

fn locker_graph(nodes: &[(&str, &str)]) -> Json {
    let mut graph = serde_json::Map::new();
    for (i, (class, device)) in nodes.iter().enumerate() {
        graph.insert(
            format!("l{i}"),
            json!({"class_type": class, "inputs": {"device": device, "value": i}}),
        );
        graph.insert(
            format!("s{i}"),
            json!({"class_type": "Sink", "inputs": {"value": [format!("l{i}"), 0]}}),
        );
    }
    Json::Object(graph)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_time_resource_locks_never_overlap_on_one_resource_and_overlap_across_two() {
    let runs = Runs::default();
    let registry = basic_registry(&runs);
    let stats = Arc::new(LockStats::default());
    registry.register(Locker {
        stats: Arc::clone(&stats),
        exclusive: false,
    });
    let exec = executor(registry, 4);
    let graph = locker_graph(&[
        ("Locker", "gpu0"),
        ("Locker", "gpu0"),
        ("Locker", "gpu1"),
        ("Locker", "gpu1"),
    ]);
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        exec.run(&request(graph), RunOptions::default()),
    )
    .await
    .expect("no deadlock")
    .unwrap();
    assert!(report.is_success(), "{:?}", report.status);
    let peak = stats.peak.lock().unwrap().clone();
    assert_eq!(peak["gpu0"], 1, "two holders of gpu0 at once");
    assert_eq!(peak["gpu1"], 1, "two holders of gpu1 at once");
    assert_eq!(
        stats.peak_total.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "gpu0 and gpu1 holders should run side by side"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_time_locks_and_exclusive_resources_share_one_lock_table() {
    let runs = Runs::default();
    let registry = basic_registry(&runs);
    let stats = Arc::new(LockStats::default());
    for exclusive in [false, true] {
        registry.register(Locker {
            stats: Arc::clone(&stats),
            exclusive,
        });
    }
    let exec = executor(registry, 4);
    let graph = locker_graph(&[
        ("Locker", "gpu"),
        ("ExclusiveLocker", "gpu"),
        ("Locker", "gpu"),
        ("ExclusiveLocker", "gpu"),
    ]);
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        exec.run(&request(graph), RunOptions::default()),
    )
    .await
    .expect("asking again for the node's own exclusive resource must not deadlock")
    .unwrap();
    assert!(report.is_success(), "{:?}", report.status);
    assert_eq!(report.executed.len(), 8);
    assert_eq!(stats.peak.lock().unwrap()["gpu"], 1);
    assert_eq!(
        stats.peak_total.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn the_node_finished_hook_follows_each_successful_node_before_its_dependents_start() {
    let runs = Runs::default();
    let exec = executor(basic_registry(&runs), 1);
    // Events and hook calls in one log, in the order they happen.
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let events_log = Arc::clone(&log);
    let sink = omnigen_engine::EventSink::from_fn(move |e| {
        if let Event::Executing { node: Some(n), .. } = e {
            events_log.lock().unwrap().push(format!("start {n}"));
        }
    });
    let hook_log = Arc::clone(&log);
    let hook = NodeFinished::from_fn(move |n| hook_log.lock().unwrap().push(format!("done {n}")));
    exec.run(
        &request(json!({
            "1": {"class_type": "Const", "inputs": {"value": 4}},
            "2": {"class_type": "Fail", "inputs": {"value": ["1", 0]}},
            "3": {"class_type": "Sink", "inputs": {"value": ["2", 0]}}
        })),
        RunOptions::new(sink).node_finished(hook),
    )
    .await
    .unwrap();
    // The failing node is never reported finished, and nothing after it starts.
    assert_eq!(*log.lock().unwrap(), ["start 1", "done 1", "start 2"]);
}

#[tokio::test]
async fn a_failing_node_reports_why_and_the_executor_stays_usable() {
    let runs = Runs::default();
    let exec = executor(basic_registry(&runs), 1);
    let (sink, events) = collector();
    let report = exec
        .run(
            &request(json!({
                "1": {"class_type": "Const", "inputs": {"value": 4}},
                "2": {"class_type": "Fail", "inputs": {"value": ["1", 0]}},
                "3": {"class_type": "Sink", "inputs": {"value": ["2", 0]}}
            })),
            RunOptions::new(sink).prompt_id("p"),
        )
        .await
        .unwrap();
    let RunStatus::Failed(data) = &report.status else {
        panic!("{:?}", report.status)
    };
    assert_eq!(data.node_id, "2");
    assert_eq!(data.node_type, "Fail");
    assert_eq!(data.exception_message, "cannot handle 4");
    assert_eq!(data.traceback, ["in test node Fail"]);
    assert_eq!(data.current_inputs["value"], json!([4]));
    assert_eq!(data.executed, ["1"]);
    let events = events.lock().unwrap().clone();
    assert_eq!(
        &types(&events)[types(&events).len() - 2..],
        ["execution_error", "executing"]
    );
    let j = events
        .iter()
        .find(|e| e.type_name() == "execution_error")
        .unwrap()
        .to_json();
    assert_eq!(j["data"]["node_id"], "2");
    assert_eq!(j["data"]["prompt_id"], "p");
    assert!(!runs.all().contains(&"3".to_string()));

    // Panics are contained too, and the same executor runs the next prompt.
    let report = exec
        .run(
            &request(json!({"1": {"class_type": "Panic", "inputs": {"value": 1}},
                             "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}})),
            RunOptions::default(),
        )
        .await
        .unwrap();
    let RunStatus::Failed(data) = &report.status else {
        panic!("{:?}", report.status)
    };
    assert_eq!(data.exception_type, "panic");
    assert!(data.exception_message.contains("boom"));
    let report = exec
        .run(&request(chain()), RunOptions::default())
        .await
        .unwrap();
    assert!(report.is_success());
}

#[tokio::test]
async fn validation_errors_come_back_before_anything_runs() {
    let runs = Runs::default();
    let exec = executor(basic_registry(&runs), 1);
    let (sink, events) = collector();
    let err = exec
        .run(
            &request(json!({"1": {"class_type": "Sink", "inputs": {}}})),
            RunOptions::new(sink),
        )
        .await
        .unwrap_err();
    assert_eq!(err.error.kind.as_str(), "prompt_outputs_failed_validation");
    assert!(events.lock().unwrap().is_empty());
    assert_eq!(runs.count(), 0);
}

#[tokio::test]
async fn cancellation_stops_at_the_next_progress_tick_and_keeps_finished_outputs() {
    let runs = Runs::default();
    let registry = basic_registry(&runs);
    let started = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    registry.register(Steps {
        started: Arc::clone(&started),
        release: Arc::clone(&release),
    });
    let exec = Arc::new(executor(registry, 1));
    let graph = json!({
        "1": {"class_type": "Const", "inputs": {"value": 1}},
        "2": {"class_type": "Steps", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "Sink", "inputs": {"value": ["2", 0]}}
    });
    let cancel = CancelToken::new();
    let (sink, events) = collector();
    let task = {
        let exec = Arc::clone(&exec);
        let req = request(graph.clone());
        let opts = RunOptions::new(sink).cancel(cancel.clone());
        tokio::spawn(async move { exec.run(&req, opts).await })
    };
    started.notified().await;
    cancel.cancel();
    release.add_permits(1);
    let report = task.await.unwrap().unwrap();
    assert_eq!(
        report.status,
        RunStatus::Interrupted {
            node_id: Some(NodeId::from("2"))
        }
    );
    assert_eq!(runs.all(), ["1"]);
    let events = events.lock().unwrap().clone();
    let progress: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress {
                value, max, node, ..
            } if node == "2" => Some((*value, *max)),
            _ => None,
        })
        .collect();
    assert_eq!(
        progress,
        [(0, 3), (1, 3)],
        "the tick after cancel is where it stops"
    );
    let j = events
        .iter()
        .find(|e| e.type_name() == "execution_interrupted")
        .unwrap()
        .to_json();
    assert_eq!(j["data"]["node_id"], "2");
    assert_eq!(j["data"]["node_type"], "Steps");
    assert_eq!(j["data"]["executed"], json!(["1"]));
    assert_eq!(types(&events).last(), Some(&"executing"));

    // The finished node's output was kept: the next run starts from the cache.
    runs.clear();
    release.add_permits(3);
    let (sink, events) = collector();
    let report = exec
        .run(&request(graph), RunOptions::new(sink))
        .await
        .unwrap();
    assert!(report.is_success());
    assert_eq!(cached_nodes(&events.lock().unwrap()), ["1"]);
    assert_eq!(runs.all(), ["3"]);
}

#[tokio::test]
async fn a_cancelled_run_before_start_executes_nothing() {
    let runs = Runs::default();
    let exec = executor(basic_registry(&runs), 1);
    let cancel = CancelToken::new();
    cancel.cancel();
    let report = exec
        .run(&request(chain()), RunOptions::default().cancel(cancel))
        .await
        .unwrap();
    assert_eq!(
        report.status,
        RunStatus::Interrupted {
            node_id: Some(NodeId::from("1"))
        }
    );
    assert_eq!(runs.count(), 0);
}

#[tokio::test]
async fn a_changed_input_releases_the_old_cache_entry() {
    let runs = Runs::default();
    let exec = executor(basic_registry(&runs), 1);
    let mut graph = chain();
    exec.run(&request(graph.clone()), RunOptions::default())
        .await
        .unwrap();
    let before = exec.cache_stats();
    graph["1"]["inputs"]["value"] = json!(3);
    exec.run(&request(graph), RunOptions::default())
        .await
        .unwrap();
    let after = exec.cache_stats();
    assert_eq!(
        after.entries, before.entries,
        "old entries of re-run nodes were replaced, not kept"
    );
    assert_eq!(after.releases - before.releases, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_work_reports_progress_and_returns() {
    let runs = Runs::default();
    let registry = basic_registry(&runs);
    registry.register(common::Heavy);
    let exec = executor(registry, 2);
    let (sink, events) = collector();
    let report = exec
        .run(
            &request(json!({"h": {"class_type": "Heavy", "inputs": {"n": 5}},
                             "s": {"class_type": "Sink", "inputs": {"value": ["h", 0]}}})),
            RunOptions::new(sink),
        )
        .await
        .unwrap();
    assert_eq!(
        report.ui_outputs[&NodeId::from("s")],
        json!({"value": [10]})
    );
    let ticks = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.type_name() == "progress")
        .count();
    assert_eq!(ticks, 5);
}

#[tokio::test]
async fn the_context_carries_extra_pnginfo_and_prompt_and_extra_data_fills_other_hidden_inputs() {
    let registry = basic_registry(&Runs::default());
    registry.register(common::Meta);
    let exec = executor(registry, 1);
    let req = request(json!({
        "prompt": {"m": {"class_type": "Meta", "inputs": {}}},
        "extra_data": {"extra_pnginfo": {"workflow": {"id": "wf"}}, "auth_token_comfy_org": "t"}
    }));
    let report = exec.run(&req, RunOptions::default()).await.unwrap();
    assert_eq!(
        report.ui_outputs[&NodeId::from("m")],
        json!({"hidden": null, "token": "t", "from_ctx": {"workflow": {"id": "wf"}},
               "prompt_nodes": 1, "class_type": "Meta"}),
        "EXTRA_PNGINFO is advertised but read from the context, not copied into the inputs"
    );
}

#[tokio::test]
async fn the_memory_budget_evicts_and_evicted_nodes_run_again() {
    let runs = Runs::default();
    let exec = Executor::new(
        basic_registry(&runs),
        ExecutorConfig {
            max_concurrency: 1,
            cache_budget_bytes: 1,
            ..Default::default()
        },
    );
    exec.run(&request(chain()), RunOptions::default())
        .await
        .unwrap();
    let stats = exec.cache_stats();
    assert_eq!(
        stats.entries, 1,
        "only the newest entry survives a 1-byte budget"
    );
    assert_eq!(stats.evictions, 3);
    // The output node is still cached, and a cached node cuts off its subtree: nothing runs.
    runs.clear();
    exec.run(&request(chain()), RunOptions::default())
        .await
        .unwrap();
    assert!(runs.all().is_empty());
    // A new output reading node 3 needs the evicted ancestors again.
    let mut more = chain();
    more["5"] = json!({"class_type": "Sink", "inputs": {"value": ["3", 0]}});
    exec.run(&request(more), RunOptions::default())
        .await
        .unwrap();
    assert_eq!(runs.all(), ["1", "2", "3", "5"]);
}

#[tokio::test]
async fn node_types_registered_later_are_usable_by_the_same_executor() {
    let runs = Runs::default();
    let registry = Arc::new(Registry::new());
    registry.register(Sink(runs.clone()));
    let exec = executor(Arc::clone(&registry), 1);
    let graph = request(chain());
    let err = exec.run(&graph, RunOptions::default()).await.unwrap_err();
    assert_eq!(err.error.kind.as_str(), "missing_node_type");
    registry.register(Const(runs.clone()));
    registry.register(Add(runs.clone()));
    assert!(exec
        .run(&graph, RunOptions::default())
        .await
        .unwrap()
        .is_success());
    registry.unregister("Add");
    assert!(exec.run(&graph, RunOptions::default()).await.is_err());
}

#[tokio::test]
async fn returning_the_wrong_number_of_outputs_is_an_error() {
    let registry = basic_registry(&Runs::default());
    registry.register(common::Liar);
    let exec = executor(registry, 1);
    let report = exec
        .run(
            &request(json!({"l": {"class_type": "Liar", "inputs": {}},
                             "s": {"class_type": "Sink", "inputs": {"value": ["l", 1]}}})),
            RunOptions::default(),
        )
        .await
        .unwrap();
    let RunStatus::Failed(data) = report.status else {
        panic!()
    };
    assert_eq!(data.exception_type, "OutputCountMismatch");
    assert_eq!(data.node_id, "l");
}

#[tokio::test]
async fn max_concurrency_bounds_how_many_nodes_overlap() {
    let registry = basic_registry(&Runs::default());
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    registry.register(Exclusive {
        running: Arc::clone(&running),
        peak: Arc::clone(&peak),
        resource: None,
    });
    let exec = executor(registry, 2);
    let mut graph = serde_json::Map::new();
    for i in 0..6 {
        graph.insert(
            format!("x{i}"),
            json!({"class_type": "Overlap", "inputs": {"value": i}}),
        );
        graph.insert(
            format!("s{i}"),
            json!({"class_type": "Sink", "inputs": {"value": [format!("x{i}"), 0]}}),
        );
    }
    let report = exec
        .run(&request(Json::Object(graph)), RunOptions::default())
        .await
        .unwrap();
    assert!(report.is_success());
    assert_eq!(
        peak.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "overlap happens, but never beyond the limit"
    );
}

#[tokio::test]
async fn a_failure_stops_running_siblings_and_is_reported_once() {
    let runs = Runs::default();
    let registry = basic_registry(&runs);
    registry.register(common::Hold {
        started: Arc::new(tokio::sync::Notify::new()),
    });
    let exec = executor(registry, 4);
    let (sink, events) = collector();
    let report = exec
        .run(
            &request(json!({
                "h": {"class_type": "Hold", "inputs": {"wait": true}},
                "f": {"class_type": "Fail", "inputs": {"value": 1}},
                "sh": {"class_type": "Sink", "inputs": {"value": ["h", 0]}},
                "sf": {"class_type": "Sink", "inputs": {"value": ["f", 0]}}
            })),
            RunOptions::new(sink),
        )
        .await
        .unwrap();
    let RunStatus::Failed(data) = &report.status else {
        panic!("{:?}", report.status)
    };
    assert_eq!(data.node_id, "f");
    let events = events.lock().unwrap().clone();
    let kinds = types(&events);
    assert_eq!(kinds.iter().filter(|k| **k == "execution_error").count(), 1);
    assert!(!kinds.contains(&"execution_interrupted"));
    assert!(!kinds.contains(&"execution_success"));
    assert!(runs.all().is_empty(), "no sink ran");
}
