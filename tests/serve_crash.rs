//! `kill -9` of a real `omnigen serve` in the middle of a prompt, then a restart on the same data dir:
//! every queued prompt is accounted for in `/history` exactly once, the one that was running is run
//! again once (at-least-once, docs/server.md "Durability") and, if it dies a second time, recorded as
//! interrupted; the pending prompts complete; and every file saved before a crash is still on disk,
//! byte for byte, and decodes.
//!
//! Each prompt is `LoadImage -> SaveImage` next to a `TestSlowCount` (`--test-nodes`): the two
//! branches run concurrently, so a slow prompt has saved its image long before it finishes, and the
//! kill falls between a saved output and the prompt's end.
#![cfg(unix)]

mod serve_support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value as Json};
use serve_support::{message_types, Served};

/// A prompt saving `input.png` as `PREFIX_00001_.png` while counting `steps` × 25 ms.
fn job(prefix: &str, steps: u64) -> Json {
    json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": "input.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
        "3": {"class_type": "TestSlowCount", "inputs": {"steps": steps, "delay_ms": 25}}
    })
}

/// About 5 s: ample time to be caught running, short enough to let the test finish.
const SLOW: u64 = 200;

struct Scene {
    _dir: tempfile::TempDir,
    work: PathBuf,
    data: PathBuf,
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let work = dir.path().to_path_buf();
        let data = work.join("data");
        std::fs::create_dir_all(data.join("input")).unwrap();
        serve_support::write_png(&data.join("input/input.png"), 6, 4);
        Scene {
            _dir: dir,
            work,
            data,
        }
    }

    fn serve(&self) -> Served {
        Served::start(&self.work, &self.data, &["--test-nodes"])
    }

    fn output(&self, name: &str) -> PathBuf {
        self.data.join("output").join(name)
    }

    /// Every file in the output folder, by name.
    fn outputs(&self) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(self.data.join("output"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| {
                        let name = e.file_name().into_string().unwrap();
                        let bytes = std::fs::read(e.path()).unwrap();
                        (name, bytes)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The history entry of `id`, if it is there.
fn entry(server: &Served, id: &str) -> Option<Json> {
    let (_, history) = server.get(&format!("/history/{id}"));
    history.get(id).cloned()
}

/// The `requeued` flags of its `execution_interrupted` messages left by crash recovery.
fn crash_marks(entry: &Json) -> Vec<bool> {
    entry["status"]["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|m| m[0] == "execution_interrupted")
                .filter_map(|m| m[1]["requeued"].as_bool())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `id` runs and has saved `file`, then kills the server; returns the outputs on disk
/// at the moment of the kill.
fn kill_while_running(
    scene: &Scene,
    server: Served,
    id: &str,
    file: &str,
) -> BTreeMap<String, Vec<u8>> {
    let path = scene.output(file);
    server.wait_until(&format!("{id} running with {file} saved"), |s| {
        path.is_file() && s.running() == [id.to_string()]
    });
    let on_disk = scene.outputs();
    server.kill9();
    on_disk
}

/// Everything saved before is still there, unchanged; every saved PNG decodes.
fn assert_outputs_kept(scene: &Scene, before: &BTreeMap<String, Vec<u8>>) {
    let now = scene.outputs();
    for (name, bytes) in before {
        let kept = now
            .get(name)
            .unwrap_or_else(|| panic!("{name}, saved before the crash, is gone"));
        assert!(kept == bytes, "{name} changed after the crash");
    }
    for (name, bytes) in &now {
        if name.ends_with(".png") {
            let image = image::load_from_memory(bytes)
                .unwrap_or_else(|e| panic!("{name} does not decode ({e}): truncated?"));
            assert_eq!((image.width(), image.height()), (6, 4), "{name}");
        }
    }
}

/// How many times `id` is a key of the raw `/history` body (a parsed map would hide a duplicate).
fn times_in_history(server: &Served, id: &str) -> usize {
    let (status, body) = server.get_bytes("/history");
    assert_eq!(status, 200);
    String::from_utf8_lossy(&body)
        .matches(&format!("\"{id}\":"))
        .count()
}

#[test]
fn kill_9_mid_run_loses_no_prompt_and_no_saved_output() {
    let scene = Scene::new();

    // --- first life: one quick prompt done, a slow one running, two pending ------------------
    let server = scene.serve();
    let quick = server.queue(&job("quick", 1));
    let slow = server.queue(&job("slow", SLOW));
    let pending = [
        server.queue(&job("pending_a", 2)),
        server.queue(&job("pending_b", 3)),
    ];
    server.wait_until("the quick prompt to finish", |s| entry(s, &quick).is_some());
    let before = kill_while_running(&scene, server, &slow, "slow_00001_.png");
    assert!(
        before.contains_key("quick_00001_.png"),
        "{:?}",
        before.keys()
    );

    // --- second life: the slow prompt runs again, the pending ones complete ------------------
    let server = scene.serve();
    let all = [&quick, &slow, &pending[0], &pending[1]];
    server.wait_until("every prompt of the first life in history", |s| {
        all.iter().all(|id| entry(s, id).is_some())
    });
    for id in all {
        let e = entry(&server, id).unwrap();
        assert_eq!(e["status"]["status_str"], "success", "{id}: {e}");
        assert_eq!(
            times_in_history(&server, id),
            1,
            "{id} listed more than once"
        );
    }
    let again = entry(&server, &slow).unwrap();
    assert_eq!(crash_marks(&again), [true], "{again}");
    let types = message_types(&again);
    assert_eq!(
        types.first().map(String::as_str),
        Some("execution_interrupted")
    );
    assert_eq!(types.last().map(String::as_str), Some("execution_success"));
    // The second run saved a second file; the first one is untouched.
    let saved = &again["outputs"]["2"]["images"][0]["filename"];
    assert_eq!(saved, "slow_00002_.png", "{again}");
    for id in [&quick, &pending[0], &pending[1]] {
        assert!(crash_marks(&entry(&server, id).unwrap()).is_empty(), "{id}");
    }
    assert_outputs_kept(&scene, &before);
    for name in [
        "pending_a_00001_.png",
        "pending_b_00001_.png",
        "slow_00002_.png",
    ] {
        assert!(scene.output(name).is_file(), "{name} missing");
    }

    // --- a prompt that dies twice is recorded as interrupted, not run a third time -----------
    let doomed = server.queue(&job("doomed", SLOW + 1));
    let after = server.queue(&job("after", 4));
    let before = kill_while_running(&scene, server, &doomed, "doomed_00001_.png");
    let server = scene.serve();
    let before = {
        let mut seen = kill_while_running(&scene, server, &doomed, "doomed_00002_.png");
        seen.extend(before);
        seen
    };
    let server = scene.serve();
    server.wait_until(
        "the twice-killed prompt and the one after it in history",
        |s| entry(s, &doomed).is_some() && entry(s, &after).is_some(),
    );
    let dead = entry(&server, &doomed).unwrap();
    assert_eq!(dead["status"]["status_str"], "error", "{dead}");
    assert_eq!(dead["status"]["completed"], false, "{dead}");
    assert_eq!(crash_marks(&dead), [true, false], "{dead}");
    assert_eq!(
        entry(&server, &after).unwrap()["status"]["status_str"],
        "success"
    );
    assert!(
        !scene.output("doomed_00003_.png").exists(),
        "a prompt interrupted twice ran a third time"
    );
    let (_, history) = server.get("/history");
    assert_eq!(history.as_object().map(|h| h.len()), Some(6), "{history}");
    for id in [&quick, &slow, &pending[0], &pending[1], &doomed, &after] {
        assert_eq!(
            times_in_history(&server, id),
            1,
            "{id} listed more than once"
        );
    }
    let (_, status) = server.get("/prompt");
    assert_eq!(status["exec_info"]["queue_remaining"], 0, "{status}");
    assert_outputs_kept(&scene, &before);
}
