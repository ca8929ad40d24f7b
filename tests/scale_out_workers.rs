//! Scale-out, the workers' side of the picture (docs/scale-out.md): announcements in `/system_stats`,
//! routing by plugin, uploaded inputs reaching a worker with its own input folder, previews from a
//! remote worker, shared folders instead of the object store, `--device`. Real binaries against a
//! throwaway `nats-server -js` (tests/nats_support); `OMNIGEN_SKIP_NATS=1` skips.
#![cfg(unix)]

mod nats_support;
mod serve_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use nats_support::scene::{entry, job, listen_frames, output_file, wait_for_entry, Scene};
use omnigen_plugins::{guest, install, LimitRequest, PluginConfig, PluginRuntime};
use serde_json::{json, Value as Json};
use serve_support::Served;

/// The live workers `/system_stats` lists, as (name, announcement).
fn live_workers(server: &Served) -> Vec<(String, Json)> {
    let (status, stats) = server.get("/system_stats");
    assert_eq!(status, 200);
    stats["omnigen_workers"]
        .as_array()
        .expect("omnigen_workers is a list with --queue")
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap_or_default().to_string(),
                w.clone(),
            )
        })
        .collect()
}

fn names(server: &Served) -> Vec<String> {
    live_workers(server).into_iter().map(|(n, _)| n).collect()
}

#[test]
fn workers_announce_themselves_and_a_dead_one_disappears() {
    if nats_support::skipped() {
        return;
    }
    let scene = Scene::new();
    let server = scene.serve("30", "3");
    let input = scene.data().join("input");
    let _a = scene.worker_with("wa", &input, &["--device", "cpu"]);
    let mut b = scene.worker("wb");
    server.wait_until("both workers listed", |s| names(s) == ["wa", "wb"]);
    let (status, stats) = server.get("/system_stats");
    assert_eq!(status, 200);
    // ComfyUI's fields are unchanged next to ours.
    assert!(stats["system"]["os"].is_string(), "{stats}");
    assert!(stats["devices"].is_array(), "{stats}");
    let workers = live_workers(&server);
    let wa = &workers[0].1;
    assert_eq!(wa["device"], "cpu", "{wa}");
    assert_eq!(wa["plugins"], json!([]), "{wa}");
    assert_eq!(wa["running"], Json::Null, "{wa}");
    assert!(
        wa["id"].as_str().is_some_and(|id| id.starts_with("wa-")),
        "{wa}"
    );
    assert!(wa["ttl_ms"].as_u64().is_some_and(|t| t > 0), "{wa}");
    if cfg!(target_os = "linux") {
        assert!(wa["ram_total"].as_u64().is_some_and(|r| r > 0), "{wa}");
    }
    // A job in progress shows on its worker.
    let id = server.queue(&job("busy", 40, 50));
    server.wait_until("a worker listed as running it", |s| {
        live_workers(s).iter().any(|(_, w)| w["running"] == id)
    });
    wait_for_entry(&server, &id);
    // A killed worker says nothing; it goes after its TTL.
    b.kill9();
    server.wait_until("the killed worker gone", |s| names(s) == ["wa"]);
    // The embedded queue has no workers to list.
    let embedded = Served::start(
        scene.dir.path(),
        &scene.dir.path().join("embedded"),
        &["--test-nodes"],
    );
    let (_, stats) = embedded.get("/system_stats");
    assert!(stats.get("omnigen_workers").is_none(), "{stats}");
}

/// The example guest plugins, built once per test binary (into the folder the CLI tests share).
fn guest_wasm(stem: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guest-target");
        guest::build_guests(&target).unwrap_or_else(|e| panic!("{e}"))
    });
    dir.join(format!("{stem}.wasm"))
}

/// A folder with the example `edges` plugin installed.
fn edges_plugin(dir: &Path) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    let runtime = PluginRuntime::new(PluginConfig::default()).expect("plugin runtime");
    install(
        &runtime,
        &guest_wasm("omnigen_plugin_edges"),
        &plugins,
        LimitRequest::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    plugins
}

/// `LoadImage -> edges/canny -> SaveImage`.
fn edges_job(prefix: &str) -> Json {
    json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": "input.png"}},
        "2": {"class_type": "edges/canny",
              "inputs": {"image": ["1", 0], "low_threshold": 40.0, "high_threshold": 100.0}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}}
    })
}

fn pending(server: &Served) -> Vec<String> {
    let (_, queue) = server.get("/queue");
    queue["queue_pending"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item[1].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_plugin_job_waits_for_and_runs_only_on_a_worker_with_that_plugin() {
    if nats_support::skipped() {
        return;
    }
    let scene = Scene::new();
    let plugins = edges_plugin(scene.dir.path());
    let plugins_arg = plugins.to_str().expect("utf-8 path");
    let server = scene.serve_with(&["--plugins", plugins_arg]);
    let input = scene.data().join("input");
    let plain = scene.worker("plain");
    // Only a worker without the plugin: the job is given back, and waits as pending.
    let first = server.queue(&edges_job("edges_first"));
    plain.wait_for_log("the plugin job given back", |log| {
        log.lines()
            .any(|l| l.contains(&first) && l.contains("given back") && l.contains("edges"))
    });
    assert_eq!(pending(&server), std::slice::from_ref(&first));
    assert!(entry(&server, &first).is_none());
    // A worker with the plugin arrives and takes it, and every later plugin job.
    let capable = scene.worker_with("capable", &input, &["--plugins", plugins_arg]);
    server.wait_until("the capable worker announced with its plugin", |s| {
        live_workers(s).iter().any(|(name, w)| {
            name == "capable"
                && w["plugins"][0]["name"] == "edges"
                && w["plugins"][0]["sha256"].is_string()
        })
    });
    let mut plugin_jobs = vec![first];
    plugin_jobs.extend((0..4).map(|i| server.queue(&edges_job(&format!("edges{i}")))));
    let plain_jobs: Vec<String> = (0..4)
        .map(|i| server.queue(&job(&format!("plain{i}"), 2, 20)))
        .collect();
    for id in plugin_jobs.iter().chain(&plain_jobs) {
        let entry = wait_for_entry(&server, id);
        assert_eq!(entry["status"]["status_str"], "success", "{entry}");
    }
    for id in &plugin_jobs {
        assert!(capable.logged("finished", id), "{}", capable.log());
        assert!(!plain.logged("running", id), "{}", plain.log());
        let entry = wait_for_entry(&server, id);
        let image = &entry["outputs"]["3"]["images"][0];
        let (filename, subfolder) = (
            image["filename"].as_str().expect("a filename"),
            image["subfolder"].as_str().unwrap_or(""),
        );
        let (status, bytes) = server.get_bytes(&format!(
            "/view?filename={filename}&subfolder={subfolder}&type=output"
        ));
        assert_eq!(status, 200);
        assert!(image::load_from_memory(&bytes).is_ok(), "{filename} intact");
    }
    // Plain jobs run on either, each once.
    for id in &plain_jobs {
        let runs = [&plain, &capable]
            .iter()
            .filter(|w| w.logged("finished", id))
            .count();
        assert_eq!(runs, 1, "{id}");
    }
}

/// A `multipart/form-data` body with one file field `image`.
fn upload_body(boundary: &str, filename: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{filename}\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[test]
fn an_uploaded_input_reaches_a_worker_with_its_own_input_folder() {
    if nats_support::skipped() {
        return;
    }
    let scene = Scene::new();
    let server = scene.serve("30", "3");
    let own_input = scene.dir.path().join("worker-input");
    let worker = scene.worker_with("wi", &own_input, &[]);
    let picture = scene.dir.path().join("upload.png");
    serve_support::write_png(&picture, 10, 7);
    let bytes = std::fs::read(&picture).unwrap();
    let boundary = "omnigen-test-boundary";
    let (status, answer) = serve_support::http_typed(
        server.port,
        "POST",
        "/upload/image",
        &format!("multipart/form-data; boundary={boundary}"),
        Some(&upload_body(boundary, "uploaded.png", &bytes)),
    )
    .expect("upload");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let graph = json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": "uploaded.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "up"}}
    });
    let id = server.queue(&graph);
    let entry = wait_for_entry(&server, &id);
    assert_eq!(entry["status"]["status_str"], "success", "{entry}");
    assert!(worker.logged("finished", &id));
    // The worker's input folder now holds the upload, byte for byte, and the output is made of it.
    assert_eq!(
        std::fs::read(own_input.join("uploaded.png")).unwrap(),
        bytes
    );
    let (filename, subfolder) = output_file(&entry);
    let (status, saved) = server.get_bytes(&format!(
        "/view?filename={filename}&subfolder={subfolder}&type=output"
    ));
    assert_eq!(status, 200);
    let decoded = image::load_from_memory(&saved).expect("a PNG");
    assert_eq!((decoded.width(), decoded.height()), (10, 7));
    assert_eq!(
        decoded.to_rgb8().into_raw(),
        image::open(&picture).unwrap().to_rgb8().into_raw()
    );
}

#[test]
fn a_remote_jobs_previews_reach_the_websocket_as_binary_frames() {
    if nats_support::skipped() {
        return;
    }
    let scene = Scene::new();
    let server = scene.serve("30", "3");
    let _worker = scene.worker("wp");
    let plain = listen_frames(server.port, "plain-client", None);
    let flags = json!({"type": "feature_flags", "data": {"supports_preview_metadata": true}});
    let rich = listen_frames(server.port, "rich-client", Some(flags));
    let graph = |steps: u64| {
        json!({"1": {"class_type": "TestSlowCount",
                     "inputs": {"steps": steps, "delay_ms": 30, "preview": true}}})
    };
    for (client, steps) in [("plain-client", 5), ("rich-client", 6)] {
        let (status, answer) = server.post(
            "/prompt",
            &json!({"prompt": graph(steps), "client_id": client}),
        );
        assert_eq!(status, 200, "{answer}");
        let id = answer["prompt_id"].as_str().unwrap().to_string();
        wait_for_entry(&server, &id);
    }
    // Type 1 frames: a JPEG of the 8x4 preview.
    let frames = plain.binaries.lock().unwrap().clone();
    assert!(!frames.is_empty(), "no preview reached the plain client");
    for frame in &frames {
        assert_eq!(&frame[..8], &[0, 0, 0, 1, 0, 0, 0, 1], "type 1, JPEG");
        let jpeg = image::load_from_memory(&frame[8..]).expect("a JPEG");
        assert_eq!((jpeg.width(), jpeg.height()), (8, 4));
    }
    // Type 4 frames (the client asked for metadata): JSON naming the prompt and node, then the JPEG.
    let frames = rich.binaries.lock().unwrap().clone();
    assert!(!frames.is_empty(), "no preview reached the rich client");
    for frame in &frames {
        assert_eq!(&frame[..4], &[0, 0, 0, 4]);
        let len = u32::from_be_bytes(frame[4..8].try_into().unwrap()) as usize;
        let metadata: Json = serde_json::from_slice(&frame[8..8 + len]).expect("metadata JSON");
        assert_eq!(metadata["node_id"], "1", "{metadata}");
        assert!(metadata["prompt_id"].is_string(), "{metadata}");
        assert!(image::load_from_memory(&frame[8 + len..]).is_ok());
    }
    // Each client saw only its own job's events.
    let texts = plain.texts.lock().unwrap();
    assert!(texts.iter().any(|m| m["type"] == "progress"));
}

#[test]
fn shared_folders_replace_the_object_store_when_both_sides_say_so() {
    if nats_support::skipped() {
        return;
    }
    let scene = Scene::new();
    let server = scene.serve_with(&["--files", "shared"]);
    let data = scene.data();
    let (input, output, temp) = (data.join("input"), data.join("output"), data.join("temp"));
    let folders = [
        "--files",
        "shared",
        "--output-dir",
        output.to_str().unwrap(),
        "--temp-dir",
        temp.to_str().unwrap(),
    ];
    let mut sharing = scene.worker_with("sharing", &input, &folders);
    let id = server.queue(&job("shared", 1, 1));
    let entry = wait_for_entry(&server, &id);
    assert_eq!(entry["status"]["status_str"], "success", "{entry}");
    let (filename, subfolder) = output_file(&entry);
    assert!(output.join(&filename).is_file(), "written in place");
    let (status, _) = server.get_bytes(&format!(
        "/view?filename={filename}&subfolder={subfolder}&type=output"
    ));
    assert_eq!(status, 200);
    sharing.kill9();
    // A worker that says shared but writes elsewhere: the job fails, saying why.
    let _astray = scene.worker_with("astray", &input, &["--files", "shared"]);
    let id = server.queue(&job("astray", 1, 1));
    let entry = wait_for_entry(&server, &id);
    assert_eq!(entry["status"]["status_str"], "error", "{entry}");
    let messages = entry["status"]["messages"].to_string();
    assert!(
        messages.contains("the worker's folders must be the server's"),
        "{messages}"
    );
}

#[test]
fn worker_device_is_checked_before_connecting() {
    // No NATS needed: the flag is refused before the worker connects.
    let run = |device: &str| {
        Command::new(env!("CARGO_BIN_EXE_omnigen"))
            .args([
                "worker",
                "--queue",
                "nats://127.0.0.1:9",
                "--device",
                device,
            ])
            .output()
            .expect("run omnigen worker")
    };
    let out = run("tpu");
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("use auto, cpu, cuda:N or metal:N"),
        "{stderr}"
    );
    if !cfg!(feature = "cuda") {
        let out = run("cuda:0");
        assert_eq!(out.status.code(), Some(2), "a usage error");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("built without CUDA"), "{stderr}");
    }
}

#[test]
fn a_job_whose_worker_died_with_no_worker_left_is_pending_again_or_failed() {
    if nats_support::skipped() {
        return;
    }
    let scene = Scene::new();
    // Two attempts allowed: the first worker's death leaves one.
    let server = scene.serve("1", "2");
    let mut first = scene.worker("first");
    let id = server.queue(&job("orphan", 1000, 20));
    first.wait_for_log("the job running", |log| {
        log.lines()
            .any(|l| l.contains("running") && l.contains(&id))
    });
    first.kill9();
    // Nobody runs it now: the sweep puts it back to pending, and a new worker runs it.
    server.wait_until("the orphan pending again", |s| pending(s).contains(&id));
    assert!(entry(&server, &id).is_none());
    let mut second = scene.worker("second");
    second.wait_for_log("the job running again", |log| {
        log.lines()
            .any(|l| l.contains("running") && l.contains(&id))
    });
    // The second death uses up its attempts: recorded failed with no worker left to be delivered it.
    second.kill9();
    let entry = wait_for_entry(&server, &id);
    assert_eq!(entry["status"]["status_str"], "error", "{entry}");
    let messages = entry["status"]["messages"].to_string();
    assert!(
        messages.contains("delivered 2 times without finishing"),
        "{messages}"
    );
}

#[test]
fn a_prompt_larger_than_max_payload_travels_through_the_object_store() {
    if nats_support::skipped() {
        return;
    }
    let scene = Scene::new();
    let server = scene.serve("30", "3");
    let worker = scene.worker("wl");
    // 1.5 MB of text: over nats-server's default 1 MB max_payload.
    let text = "omnigen ".repeat(200_000);
    let graph = json!({
        "1": {"class_type": "PrimitiveString", "inputs": {"value": text}},
        "2": {"class_type": "TestSlowCount", "inputs": {"steps": 3, "delay_ms": 1}}
    });
    let id = server.queue(&graph);
    let entry = wait_for_entry(&server, &id);
    assert_eq!(entry["status"]["status_str"], "success", "{entry}");
    assert_eq!(entry["outputs"]["2"]["text"][0], "counted to 3");
    assert!(worker.logged("finished", &id), "{}", worker.log());
    assert!(
        worker.logged("read from the object store", &id),
        "{}",
        worker.log()
    );
    // The worker ran the whole graph: the stored prompt is the one queued.
    let (_, job) = server.get(&format!("/jobs/{id}"));
    assert_eq!(job["status"], "completed", "{job}");
}

#[test]
fn a_job_goes_to_the_idle_worker_that_has_its_model_loaded() {
    if nats_support::skipped() {
        return;
    }
    let scene = Scene::new();
    let server = scene.serve("30", "3");
    let a = scene.worker("ma");
    let b = scene.worker("mb");
    server.wait_until("both workers listed", |s| names(s) == ["ma", "mb"]);
    let graph = |steps: u64| {
        json!({"1": {"class_type": "TestSlowCount",
                     "inputs": {"steps": steps, "delay_ms": 1, "model": "m1"}}})
    };
    let first = server.queue(&graph(1));
    wait_for_entry(&server, &first);
    let (warm, cold) = if a.logged("finished", &first) {
        (&a, &b)
    } else {
        (&b, &a)
    };
    for steps in 2..7 {
        // Once the warm worker says it is idle with the model, the next job goes to it.
        server.wait_until("the warm worker idle with m1", |s| {
            live_workers(s).iter().any(|(name, w)| {
                *name == warm.name
                    && w["running"].is_null()
                    && w["models"] == json!(["TestSlowCount:m1"])
            })
        });
        let id = server.queue(&graph(steps));
        wait_for_entry(&server, &id);
        assert!(warm.logged("finished", &id), "{}", warm.log());
        assert!(!cold.logged("running", &id), "{}", cold.log());
    }
}
