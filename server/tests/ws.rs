//! The WebSocket stream over a real loopback socket: `progress_state`, traffic that stays linear in the
//! graph size, binary preview frames, and routing between clients.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{graph, wide, Frame, Socket, TestServer};
use serde_json::{json, Value as Json};

/// The text messages, without the `status` broadcasts (their place depends on timing).
fn texts(frames: &[Frame]) -> Vec<Json> {
    frames
        .iter()
        .filter_map(Frame::text)
        .filter(|m| m["type"] != "status")
        .cloned()
        .collect()
}

/// A message as a short line: `executing 1`, `progress_state 1:running:0/1`, `progress 2/3` …
fn line(m: &Json) -> String {
    let kind = m["type"].as_str().unwrap_or("?");
    let data = &m["data"];
    match kind {
        "executing" => format!("executing {}", data["node"].as_str().unwrap_or("null")),
        "executed" => format!("executed {}", data["node"].as_str().unwrap_or("?")),
        "progress" => format!("progress {}/{}", data["value"], data["max"]),
        "progress_state" => {
            let nodes: Vec<String> = data["nodes"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(id, s)| {
                    format!(
                        "{id}:{}:{}/{}",
                        s["state"].as_str().unwrap(),
                        s["value"],
                        s["max"]
                    )
                })
                .collect();
            format!("progress_state {}", nodes.join(","))
        }
        other => other.to_string(),
    }
}

/// Replays the messages as the 1.5x frontend's store does (each `progress_state` replaces the node map)
/// and checks what it would show: the node `executing` names is running, and nothing runs at the end.
fn check_frontend_view(messages: &[Json], prompt_id: &str) {
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    for m in messages {
        match m["type"].as_str() {
            Some("progress_state") => {
                assert_eq!(m["data"]["prompt_id"], prompt_id);
                shown = m["data"]["nodes"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(id, s)| {
                        for field in [
                            "value",
                            "max",
                            "state",
                            "node_id",
                            "prompt_id",
                            "display_node_id",
                            "parent_node_id",
                            "real_node_id",
                        ] {
                            assert!(s.get(field).is_some(), "{field} missing in {s}");
                        }
                        assert_eq!(s["node_id"], id.as_str());
                        assert_eq!(s["prompt_id"], prompt_id);
                        (id.clone(), s["state"].as_str().unwrap().to_string())
                    })
                    .collect();
            }
            Some("executing") => match m["data"]["node"].as_str() {
                Some(node) => assert_eq!(
                    shown.get(node).map(String::as_str),
                    Some("running"),
                    "executing {node} while the frontend shows {shown:?}"
                ),
                None => assert!(
                    shown.values().all(|s| s != "running"),
                    "still running at the end: {shown:?}"
                ),
            },
            _ => {}
        }
    }
}

async fn hello(socket: &mut Socket) {
    assert_eq!(socket.next().await["type"], "status");
}

#[tokio::test]
async fn progress_state_marks_the_running_node_and_each_finished_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let mut c = s.socket("c").await;
    hello(&mut c).await;

    // Const 1 -> Show 2: each node is marked running before `executing` names it, and finished after.
    let id = s.queue(graph(7, "c")).await;
    let messages = texts(&c.frames_until_done(&id).await);
    let lines: Vec<String> = messages.iter().map(line).collect();
    assert_eq!(
        lines,
        [
            "execution_start",
            "execution_cached",
            "progress_state 1:running:0/1",
            "executing 1",
            "progress_state 1:finished:1/1",
            "progress_state 2:running:0/1",
            "executing 2",
            "progress_state 2:finished:1/1",
            "executed 2",
            "execution_success",
            "executing null",
        ]
    );
    check_frontend_view(&messages, &id);

    // A node reporting steps: each `progress` is followed by the state with its value.
    let body = json!({"prompt": {"1": {"class_type": "Slow", "inputs": {"steps": 3, "ms": 1}}}, "client_id": "c"});
    let id = s.queue(body).await;
    let messages = texts(&c.frames_until_done(&id).await);
    let lines: Vec<String> = messages.iter().map(line).collect();
    assert_eq!(
        lines[2..],
        [
            "progress_state 1:running:0/1",
            "executing 1",
            "progress 1/3",
            "progress_state 1:running:1/3",
            "progress 2/3",
            "progress_state 1:running:2/3",
            "progress 3/3",
            "progress_state 1:running:3/3",
            "progress_state 1:finished:3/3",
            "executed 1",
            "execution_success",
            "executing null",
        ]
    );
    check_frontend_view(&messages, &id);

    // A cached re-run starts no node, so it sends no `progress_state`.
    let id = s.queue(graph(7, "c")).await;
    let messages = texts(&c.frames_until_done(&id).await);
    assert!(
        messages.iter().all(|m| m["type"] != "progress_state"),
        "{messages:?}"
    );
    s.stop().await;
}

/// Bytes of every frame one client gets for a wide graph of `n` nodes, and its `progress_state`
/// messages.
async fn wide_traffic(s: &TestServer, n: usize, seed: i64) -> (usize, Vec<Json>) {
    let client = format!("wide{n}");
    let mut socket = s.socket(&client).await;
    hello(&mut socket).await;
    let id = s.queue(wide(n, seed, &client)).await;
    let frames = socket.frames_until_done(&id).await;
    let bytes = frames.iter().map(Frame::len).sum();
    let messages = texts(&frames);
    check_frontend_view(&messages, &id);
    let states = messages
        .into_iter()
        .filter(|m| m["type"] == "progress_state")
        .collect();
    (bytes, states)
}

#[tokio::test]
async fn websocket_traffic_grows_linearly_with_the_graph() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let (small, small_states) = wide_traffic(&s, 200, 1).await;
    let (large, large_states) = wide_traffic(&s, 400, 2).await;
    // Two messages per node (started, finished), each naming one node: a full snapshot per message, as
    // ComfyUI sends, would make twice the nodes cost about four times the bytes.
    assert_eq!(small_states.len(), 2 * 200);
    assert_eq!(large_states.len(), 2 * 400);
    for state in small_states.iter().chain(&large_states) {
        assert_eq!(
            state["data"]["nodes"].as_object().unwrap().len(),
            1,
            "{state}"
        );
    }
    let ratio = large as f64 / small as f64;
    assert!(
        (1.8..2.25).contains(&ratio),
        "{small} bytes for 200 nodes, {large} for 400: ratio {ratio:.2}"
    );
    assert!(large / 400 < 1_000, "{} bytes a node", large / 400);
    s.stop().await;
}

/// What one decoded preview frame said.
#[derive(Debug)]
struct Preview {
    kind: u32,
    metadata: Option<Json>,
    width: u32,
    height: u32,
}

fn decode_preview(frame: &[u8]) -> Preview {
    let word = |at: usize| u32::from_be_bytes(frame[at..at + 4].try_into().unwrap());
    let kind = word(0);
    let (metadata, image) = match kind {
        1 => {
            assert_eq!(word(4), 1, "format 1 = JPEG");
            (None, &frame[8..])
        }
        4 => {
            let len = word(4) as usize;
            let meta: Json = serde_json::from_slice(&frame[8..8 + len]).expect("metadata JSON");
            (Some(meta), &frame[8 + len..])
        }
        other => panic!("binary frame of type {other}"),
    };
    let img =
        image::load_from_memory_with_format(image, image::ImageFormat::Jpeg).expect("a valid JPEG");
    Preview {
        kind,
        metadata,
        width: img.width(),
        height: img.height(),
    }
}

fn previews(frames: &[Frame]) -> Vec<Preview> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Binary(b) => Some(decode_preview(b)),
            Frame::Text(..) => None,
        })
        .collect()
}

/// Every prompt id the text messages name.
fn prompt_ids(frames: &[Frame]) -> Vec<String> {
    let mut ids: Vec<String> = frames
        .iter()
        .filter_map(Frame::text)
        .filter_map(|m| m["data"]["prompt_id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn previews_graph(side: u64, client: &str) -> Json {
    json!({
        "prompt": {"1": {"class_type": "Previews", "inputs": {"steps": 4, "ms": 20, "side": side}}},
        "client_id": client
    })
}

#[tokio::test]
async fn previews_arrive_as_type_4_or_type_1_as_negotiated_and_only_to_their_client() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let mut alice = s.socket("alice").await;
    let mut bob = s.socket("bob").await;
    hello(&mut alice).await;
    hello(&mut bob).await;
    // Alice is the frontend (negotiates metadata); Bob an older client that never says.
    alice
        .send(r#"{"type":"feature_flags","data":{"supports_preview_metadata":true,"max_upload_size":1}}"#)
        .await;
    assert_eq!(alice.next().await["type"], "feature_flags");

    let alice_id = s.queue(previews_graph(8, "alice")).await;
    let bob_id = s.queue(previews_graph(12, "bob")).await;
    let mut alice_frames = alice.frames_until_done(&alice_id).await;
    let mut bob_frames = bob.frames_until_done(&bob_id).await;
    // Previews are encoded on their own thread and may trail their run a little.
    alice_frames.extend(alice.frames_until_quiet(Duration::from_millis(300)).await);
    bob_frames.extend(bob.frames_until_quiet(Duration::from_millis(300)).await);

    assert_eq!(prompt_ids(&alice_frames), std::slice::from_ref(&alice_id));
    assert_eq!(prompt_ids(&bob_frames), std::slice::from_ref(&bob_id));

    let alice_previews = previews(&alice_frames);
    assert!(!alice_previews.is_empty());
    for p in &alice_previews {
        assert_eq!(p.kind, 4);
        assert_eq!(
            p.metadata,
            Some(
                json!({"node_id": "1", "display_node_id": "1", "prompt_id": alice_id,
                        "parent_node_id": null, "real_node_id": "1", "image_type": "image/jpeg"})
            )
        );
        assert_eq!(p.height, 8);
        assert!((9..=12).contains(&p.width), "{p:?}");
    }
    // The last step's preview is never lost.
    assert_eq!(alice_previews.last().unwrap().width, 12);

    let bob_previews = previews(&bob_frames);
    assert!(!bob_previews.is_empty());
    for p in &bob_previews {
        assert_eq!((p.kind, &p.metadata, p.height), (1, &None, 12), "{p:?}");
        assert!((13..=16).contains(&p.width), "{p:?}");
    }
    assert_eq!(bob_previews.last().unwrap().width, 16);
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_does_not_stall_execution() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    // Connected, never read: its frames pile up until the server drops it.
    let _sloth = s.socket("sloth").await;
    for seed in 0..3 {
        let id = s.queue(wide(2_000, seed, "sloth")).await;
        let entry = s.finished(&id).await;
        assert_eq!(entry["status"]["status_str"], "success");
    }
    let body = json!({"prompt": {"1": {"class_type": "Previews", "inputs": {"steps": 200, "ms": 0, "side": 256}}}, "client_id": "sloth"});
    let id = s.queue(body).await;
    assert_eq!(s.finished(&id).await["status"]["status_str"], "success");

    // Another client is served as usual.
    let mut c = s.socket("c").await;
    hello(&mut c).await;
    let id = s.queue(graph(3, "c")).await;
    let messages = texts(&c.frames_until_done(&id).await);
    assert_eq!(messages.last().map(line).as_deref(), Some("executing null"));
    s.stop().await;
}
