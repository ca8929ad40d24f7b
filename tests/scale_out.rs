//! Scale-out on NATS JetStream through the real binaries (docs/scale-out.md): `omnigen serve --queue`
//! as the front, `omnigen worker` processes running the jobs, a throwaway `nats-server -js` between
//! them (tests/nats_support). Needs Debian's `nats-server`; `OMNIGEN_SKIP_NATS=1` skips.
#![cfg(unix)]

mod nats_support;
mod serve_support;

use nats_support::scene::{
    entry, job, listen, output_file, png_of, times_in_history, types_for, wait_for_entry, Scene,
};
use nats_support::Worker;
use serde_json::json;
use serve_support::{message_types, Served, PATIENCE};

#[test]
fn a_remote_job_runs_end_to_end_and_its_events_and_output_reach_the_client() {
    if nats_support::skipped() {
        return;
    }
    let scene = Scene::new();
    let server = scene.serve("30", "3");
    let worker = scene.worker("w1");
    let seen = listen(server.port, "client-a");
    let (status, answer) = server.post(
        "/prompt",
        &json!({"prompt": job("remote", 3, 10), "client_id": "client-a"}),
    );
    assert_eq!(status, 200, "{answer}");
    let id = answer["prompt_id"].as_str().unwrap().to_string();
    server.wait_until("execution_success at the client", |_| {
        types_for(&seen, &id).contains(&"execution_success".to_string())
    });
    // The engine's events, relayed unchanged and in order.
    let types = types_for(&seen, &id);
    let first = |t: &str| {
        types
            .iter()
            .position(|x| x == t)
            .unwrap_or_else(|| panic!("no {t} in {types:?}"))
    };
    assert!(first("execution_start") < first("executing"));
    assert!(first("progress") < first("execution_success"));
    assert!(first("executed") < first("execution_success"));
    assert!(types.contains(&"progress_state".to_string()), "{types:?}");
    // Told it is done, the client finds the history and the file on the server.
    let entry = entry(&server, &id).expect("recorded before execution_success was relayed");
    assert_eq!(entry["status"]["status_str"], "success", "{entry}");
    assert_eq!(entry["outputs"]["3"]["text"][0], "counted to 3");
    let (filename, subfolder) = output_file(&entry);
    let (status, bytes) = server.get_bytes(&format!(
        "/view?filename={filename}&subfolder={subfolder}&type=output"
    ));
    assert_eq!(status, 200);
    let made = png_of(&scene.dir.path().join("workers/w1/output").join(&filename));
    assert_eq!(bytes, made, "/view serves the worker's file byte for byte");
    let decoded = image::load_from_memory(&bytes).expect("a PNG");
    assert_eq!((decoded.width(), decoded.height()), (6, 4));
    assert!(worker.logged("finished", &id), "{}", worker.log());
    assert_eq!(times_in_history(&server, &id), 1);
}

#[test]
fn a_killed_workers_job_is_redelivered_and_completes_exactly_once() {
    if nats_support::skipped() {
        return;
    }
    let scene = Scene::new();
    let server = scene.serve("2", "5");
    let mut a = scene.worker("wa");
    let mut b = scene.worker("wb");
    // About 4 s: long enough to be caught running.
    let id = server.queue(&job("survivor", 100, 40));
    server.wait_until("a worker running it", |_| {
        a.logged("running", &id) || b.logged("running", &id)
    });
    let (victim, survivor) = if a.logged("running", &id) {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    victim.kill9();
    let entry = wait_for_entry(&server, &id);
    assert_eq!(entry["status"]["status_str"], "success", "{entry}");
    assert!(survivor.logged("finished", &id), "{}", survivor.log());
    let types = message_types(&entry);
    assert_eq!(
        types.iter().filter(|t| *t == "execution_success").count(),
        1,
        "{types:?}"
    );
    assert_eq!(times_in_history(&server, &id), 1);
    let (filename, subfolder) = output_file(&entry);
    let (status, bytes) = server.get_bytes(&format!(
        "/view?filename={filename}&subfolder={subfolder}&type=output"
    ));
    assert_eq!(status, 200);
    assert!(image::load_from_memory(&bytes).is_ok(), "an intact PNG");
    // The /jobs record counts both claims.
    let (_, job) = server.get(&format!("/jobs/{id}"));
    assert_eq!(job["status"], "completed", "{job}");
}

#[test]
fn a_poison_job_is_failed_after_max_deliver_with_its_error() {
    if nats_support::skipped() {
        return;
    }
    let scene = Scene::new();
    let server = scene.serve("1", "2");
    let mut a = scene.worker("pa");
    let mut b = scene.worker("pb");
    let id = server.queue(&json!({"1": {"class_type": "TestCrash", "inputs": {"code": 1}}}));
    // Each delivery kills the worker that takes it.
    server.wait_until("both workers crashed on it", |_| a.exited() && b.exited());
    assert!(a.logged("running", &id) && b.logged("running", &id));
    // JetStream notices the exhausted job when a worker next asks for work; this one never gets it.
    let c = scene.worker("pc");
    let entry = wait_for_entry(&server, &id);
    assert_eq!(entry["status"]["status_str"], "error", "{entry}");
    let messages = entry["status"]["messages"].to_string();
    assert!(
        messages.contains("delivered 2 times without finishing"),
        "{messages}"
    );
    let next = server.queue(&job("after", 1, 1));
    assert_eq!(
        wait_for_entry(&server, &next)["status"]["status_str"],
        "success"
    );
    assert!(!c.logged("running", &id), "{}", c.log());
}

#[test]
fn interrupt_and_delete_reach_the_workers() {
    if nats_support::skipped() {
        return;
    }
    let scene = Scene::new();
    let server = scene.serve("30", "3");
    let worker = scene.worker("wi");
    let long = server.queue(&job("long", 100_000, 50));
    let waiting = server.queue(&job("waiting", 1, 1));
    server.wait_until("the long job running", |_| worker.logged("running", &long));
    for (path, body) in [
        ("/queue", json!({"delete": [waiting]})),
        ("/interrupt", json!({"prompt_id": long})),
    ] {
        let sent =
            serve_support::http(server.port, "POST", path, Some(body.to_string().as_bytes()));
        assert_eq!(sent.map(|(status, _)| status), Ok(200), "POST {path}");
    }
    let entry = wait_for_entry(&server, &long);
    assert!(
        message_types(&entry).contains(&"execution_interrupted".to_string()),
        "{entry}"
    );
    let (_, deleted) = server.get(&format!("/jobs/{waiting}"));
    assert_eq!(deleted["status"], "cancelled", "{deleted}");
    worker.wait_for_log("the deleted job dropped", |log| {
        log.lines()
            .any(|l| l.contains(&waiting) && l.contains("dropped"))
    });
    assert!(!worker.logged("running", &waiting));
}

#[test]
fn a_front_killed_mid_stream_loses_nothing_after_its_restart() {
    if nats_support::skipped() {
        return;
    }
    let scene = Scene::new();
    let server = scene.serve("30", "3");
    let worker = scene.worker("wr");
    // About 2 s each: the kill falls while the first runs and the second waits in the stream.
    let first = server.queue(&job("first", 50, 40));
    let second = server.queue(&job("second", 50, 40));
    server.wait_until("the first job running", |_| {
        worker.logged("running", &first)
    });
    server.kill9();
    // The worker finishes its job with no front to take the result, and holds the next one.
    worker.wait_for_log("the first job finished", |log| {
        log.lines()
            .any(|l| l.contains("finished") && l.contains(&first))
    });
    let server = scene.serve("30", "3");
    for id in [&first, &second] {
        let entry = wait_for_entry(&server, id);
        assert_eq!(entry["status"]["status_str"], "success", "{entry}");
        assert_eq!(times_in_history(&server, id), 1);
        let (filename, subfolder) = output_file(&entry);
        let (status, _) = server.get_bytes(&format!(
            "/view?filename={filename}&subfolder={subfolder}&type=output"
        ));
        assert_eq!(status, 200, "{filename} fetched after the restart");
    }
}

/// Not a check: the dispatch figure for BENCHMARKS.md (`cargo test --test scale_out -- --ignored
/// --nocapture`). Median time from `POST /prompt` to `execution_success` at the client's WebSocket for a
/// one-node graph, embedded queue versus NATS with one worker on the same machine.
#[test]
#[ignore = "a measurement for BENCHMARKS.md, not a test"]
fn dispatch_overhead_figure() {
    if nats_support::skipped() {
        return;
    }
    const RUNS: u64 = 60;
    let scene = Scene::new();
    let measure = |server: &Served, label: &str| {
        let seen = listen(server.port, label);
        let mut times: Vec<f64> = (0..RUNS)
            .map(|i| {
                // A different graph each time: nothing is served from the cache.
                let graph = json!({"1": {"class_type": "TestSlowCount", "inputs": {"steps": 1 + i, "delay_ms": 0}}});
                let start = std::time::Instant::now();
                let (status, answer) =
                    server.post("/prompt", &json!({"prompt": graph, "client_id": label}));
                assert_eq!(status, 200, "{answer}");
                let id = answer["prompt_id"].as_str().unwrap().to_string();
                while !types_for(&seen, &id).contains(&"execution_success".to_string()) {
                    assert!(start.elapsed() < PATIENCE, "no execution_success");
                    std::thread::sleep(std::time::Duration::from_micros(100));
                }
                start.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let p90 = times[times.len() * 9 / 10];
        eprintln!("{label}: median {median:.2} ms, p90 {p90:.2} ms over {RUNS} prompts");
        median
    };
    let embedded_dir = scene.dir.path().join("embedded");
    let embedded = Served::start(scene.dir.path(), &embedded_dir, &["--test-nodes"]);
    let local = measure(&embedded, "embedded");
    drop(embedded);
    let server = scene.serve("30", "3");
    let _worker = scene.worker("bench");
    let remote = measure(&server, "nats");
    eprintln!("added by NATS: {:.2} ms per prompt", remote - local);
}

/// Not a check: the throughput figure for BENCHMARKS.md (`cargo test --test scale_out -- --ignored
/// --nocapture throughput_figure`). Jobs a second with 1, 2 and 4 workers on this machine, for a
/// trivial graph (dispatch-bound) and one of 200 progress steps of 1 ms sleep each (worker-bound),
/// each job a different graph so nothing is served from a cache; all queued at once, timed until the last
/// `execution_success` reaches the client.
#[test]
#[ignore = "a measurement for BENCHMARKS.md, not a test"]
fn throughput_figure() {
    type Graph = fn(u64) -> serde_json::Value;
    if nats_support::skipped() {
        return;
    }
    const JOBS: u64 = 40;
    let scene = Scene::new();
    let server = scene.serve("30", "3");
    let seen = listen(server.port, "bench");
    let graphs: [(&str, Graph); 2] = [
        (
            "trivial",
            |i| json!({"1": {"class_type": "TestSlowCount", "inputs": {"steps": 1 + i, "delay_ms": 0}}}),
        ),
        (
            "200 sleeps of 1 ms",
            |i| json!({"1": {"class_type": "TestSlowCount", "inputs": {"steps": 200 + i, "delay_ms": 1}}}),
        ),
    ];
    for count in [1usize, 2, 4] {
        let workers: Vec<Worker> = (0..count)
            .map(|n| scene.worker(&format!("t{count}-{n}")))
            .collect();
        server.wait_until("the workers announced", |s| {
            let (_, stats) = s.get("/system_stats");
            stats["omnigen_workers"].as_array().map_or(0, Vec::len) == count
        });
        for (label, graph) in &graphs {
            let start = std::time::Instant::now();
            let ids: Vec<String> = (0..JOBS)
                .map(|i| {
                    // Fresh workers per count: distinct graphs within a count are enough.
                    let (status, answer) = server.post(
                        "/prompt",
                        &json!({"prompt": graph(i), "client_id": "bench"}),
                    );
                    assert_eq!(status, 200, "{answer}");
                    answer["prompt_id"].as_str().unwrap().to_string()
                })
                .collect();
            let done =
                |id: &String| types_for(&seen, id).contains(&"execution_success".to_string());
            while !ids.iter().all(done) {
                assert!(start.elapsed() < PATIENCE, "not all jobs finished");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "{count} worker(s), {label}: {JOBS} jobs in {secs:.2} s = {:.1} jobs/s",
                JOBS as f64 / secs
            );
        }
        drop(workers);
        server.wait_until("the workers gone", |s| {
            let (_, stats) = s.get("/system_stats");
            stats["omnigen_workers"]
                .as_array()
                .is_some_and(Vec::is_empty)
        });
    }
}

#[test]
fn three_workers_share_thirty_jobs_and_a_kill_loses_none() {
    if nats_support::skipped() {
        return;
    }
    let scene = Scene::new();
    let server = scene.serve("2", "5");
    let mut workers: Vec<Worker> = ["s1", "s2", "s3"].map(|n| scene.worker(n)).into();
    let ids: Vec<String> = (0..30)
        .map(|i| server.queue(&job(&format!("many{i}"), 10, 20)))
        .collect();
    // Kill whichever worker is running the third job while it runs.
    server.wait_until("the third job running", |_| {
        workers.iter().any(|w| w.logged("running", &ids[2]))
    });
    let victim = workers
        .iter()
        .position(|w| w.logged("running", &ids[2]))
        .expect("a worker runs it");
    workers[victim].kill9();
    for id in &ids {
        let entry = wait_for_entry(&server, id);
        assert_eq!(entry["status"]["status_str"], "success", "{entry}");
        assert_eq!(times_in_history(&server, id), 1);
        let (filename, subfolder) = output_file(&entry);
        let (status, bytes) = server.get_bytes(&format!(
            "/view?filename={filename}&subfolder={subfolder}&type=output"
        ));
        assert_eq!(status, 200);
        assert!(image::load_from_memory(&bytes).is_ok(), "{filename} intact");
    }
    let finished_by = |w: &Worker| ids.iter().filter(|id| w.logged("finished", id)).count();
    let survivors: usize = workers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, w)| finished_by(w))
        .sum();
    assert!(survivors + finished_by(&workers[victim]) >= ids.len());
    assert!(!workers[victim].logged("finished", &ids[2]));
    assert!(
        workers
            .iter()
            .enumerate()
            .any(|(i, w)| i != victim && w.logged("finished", &ids[2])),
        "another worker ran the killed one's job"
    );
}

#[test]
fn a_nats_server_restart_on_its_file_store_loses_no_job() {
    if nats_support::skipped() {
        return;
    }
    let mut scene = Scene::new();
    let server = scene.serve("30", "3");
    let mut worker = scene.worker("n1");
    let before = server.queue(&job("before", 1, 1));
    wait_for_entry(&server, &before);
    // A job stored while no worker runs, then nats-server killed and restarted on the same store.
    worker.kill9();
    let stored = server.queue(&job("stored", 2, 1));
    scene.nats.restart();
    let _fresh = scene.worker("n2");
    let entry = wait_for_entry(&server, &stored);
    assert_eq!(entry["status"]["status_str"], "success", "{entry}");
    // The front reconnected: new prompts still flow.
    let after = server.queue(&job("after", 3, 1));
    assert_eq!(
        wait_for_entry(&server, &after)["status"]["status_str"],
        "success"
    );
    assert_eq!(times_in_history(&server, &stored), 1);
}
