//! A scene for the scale-out tests: a temp dir with the server's data folder (an `input.png` in its
//! input folder), a throwaway nats-server, and helpers to start the front and workers, queue jobs,
//! read history and listen on the WebSocket (text and binary frames).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use serde_json::{json, Value as Json};

use super::{Nats, Worker};
use crate::serve_support::{self, Served, PATIENCE};

/// A temp dir and a nats-server.
pub struct Scene {
    /// Everything of the scene lives here.
    pub dir: tempfile::TempDir,
    /// Its nats-server.
    pub nats: Nats,
}

impl Scene {
    /// A new scene.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("data/input")).unwrap();
        serve_support::write_png(&dir.path().join("data/input/input.png"), 6, 4);
        Scene {
            dir,
            nats: Nats::start(),
        }
    }

    /// The server's data dir.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The front, with `ack_wait` seconds before a silent worker's job moves and `max_deliver`.
    pub fn serve(&self, ack_wait: &str, max_deliver: &str) -> Served {
        self.serve_with(&["--ack-wait-secs", ack_wait, "--max-deliver", max_deliver])
    }

    /// The front with test nodes, `--queue` and `extra` flags.
    pub fn serve_with(&self, extra: &[&str]) -> Served {
        let mut args = vec!["--test-nodes", "--queue", &self.nats.url];
        args.extend_from_slice(extra);
        Served::start(self.dir.path(), &self.data(), &args)
    }

    /// A worker with its folders under `workers/NAME`, reading `input`, with `extra` flags.
    pub fn worker_with(&self, name: &str, input: &Path, extra: &[&str]) -> Worker {
        Worker::start_with(
            &self.nats.url,
            name,
            &self.dir.path().join("workers"),
            input,
            extra,
        )
    }

    /// A worker sharing the server's input folder (its output folder is its own).
    pub fn worker(&self, name: &str) -> Worker {
        Worker::start(
            &self.nats.url,
            name,
            &self.dir.path().join("workers"),
            &self.data().join("input"),
        )
    }
}

/// `LoadImage -> SaveImage` next to a `TestSlowCount` of `steps` × `delay_ms`.
pub fn job(prefix: &str, steps: u64, delay_ms: u64) -> Json {
    json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": "input.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
        "3": {"class_type": "TestSlowCount", "inputs": {"steps": steps, "delay_ms": delay_ms}}
    })
}

pub fn entry(server: &Served, id: &str) -> Option<Json> {
    let (_, history) = server.get(&format!("/history/{id}"));
    history.get(id).cloned()
}

pub fn wait_for_entry(server: &Served, id: &str) -> Json {
    server.wait_until(&format!("{id} in history"), |s| entry(s, id).is_some());
    entry(server, id).expect("an entry")
}

/// How many times `id` is a key of the raw `/history` body (a parsed map would hide a duplicate).
pub fn times_in_history(server: &Served, id: &str) -> usize {
    let (status, body) = server.get_bytes("/history");
    assert_eq!(status, 200);
    String::from_utf8_lossy(&body)
        .matches(&format!("\"{id}\":"))
        .count()
}

/// A WebSocket client under `client_id`, collecting its JSON messages on its own thread.
pub fn listen(port: u16, client_id: &str) -> Arc<Mutex<Vec<Json>>> {
    listen_frames(port, client_id, None).texts
}

/// What a [`listen_frames`] client received.
pub struct Frames {
    /// The JSON texts.
    pub texts: Arc<Mutex<Vec<Json>>>,
    /// The binary frames (previews), whole.
    pub binaries: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// A WebSocket client under `client_id` that first sends `hello` (e.g. `feature_flags`), collecting
/// text and binary frames on its own thread.
pub fn listen_frames(port: u16, client_id: &str, hello: Option<Json>) -> Frames {
    use futures_util::SinkExt;
    let frames = Frames {
        texts: Arc::default(),
        binaries: Arc::default(),
    };
    let (texts, binaries) = (Arc::clone(&frames.texts), Arc::clone(&frames.binaries));
    let url = format!("ws://127.0.0.1:{port}/ws?clientId={client_id}");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .expect("connect the WebSocket");
            if let Some(hello) = hello {
                socket
                    .send(tokio_tungstenite::tungstenite::Message::text(
                        hello.to_string(),
                    ))
                    .await
                    .expect("send hello");
            }
            let _ = ready_tx.send(());
            while let Some(Ok(message)) = socket.next().await {
                if message.is_binary() {
                    binaries.lock().unwrap().push(message.into_data().to_vec());
                } else if let Ok(text) = message.to_text() {
                    if let Ok(value) = serde_json::from_str::<Json>(text) {
                        texts.lock().unwrap().push(value);
                    }
                }
            }
        });
    });
    ready_rx
        .recv_timeout(PATIENCE)
        .expect("the WebSocket connected");
    frames
}

pub fn types_for(seen: &Mutex<Vec<Json>>, id: &str) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|m| m["data"]["prompt_id"] == id)
        .filter_map(|m| m["type"].as_str().map(String::from))
        .collect()
}

pub fn output_file(entry: &Json) -> (String, String) {
    let image = &entry["outputs"]["2"]["images"][0];
    (
        image["filename"].as_str().expect("a filename").to_string(),
        image["subfolder"].as_str().unwrap_or("").to_string(),
    )
}

pub fn png_of(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
