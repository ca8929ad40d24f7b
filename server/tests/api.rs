//! The HTTP + WebSocket protocol, driven over a real loopback socket.

mod common;

use std::time::Duration;

use common::{graph, slow, types, TestServer};
use serde_json::json;

#[tokio::test]
async fn prompt_accepts_json_whatever_the_content_type() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let body = graph(1, "c").to_string();
    for content_type in [
        Some("application/json"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = s.http.post(s.url("/prompt")).body(body.clone());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let (status, answer) = common::status_json(request.send().await.unwrap()).await;
        assert_eq!(status, 200, "{content_type:?}: {answer}");
        let id = answer["prompt_id"].as_str().unwrap();
        assert_eq!(id.len(), 36);
        assert!(answer["number"].is_i64());
        assert_eq!(answer["node_errors"], json!({}));
        s.finished(id).await;
    }
    // Bare and /api paths are the same route.
    let (status, answer) = s.post("/api/prompt", graph(2, "c")).await;
    assert_eq!(status, 200, "{answer}");
    s.stop().await;
}

#[tokio::test]
async fn bad_prompts_get_comfyui_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = omnigen_server::ServerConfig::new(dir.path());
    config.max_body_bytes = 64 * 1024;
    let s = TestServer::start_with(config).await;

    let (status, answer) = s
        .post(
            "/prompt",
            json!({"prompt": {"1": {"class_type": "Nope", "inputs": {}}}}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["type"], "missing_node_type", "{answer}");
    assert_eq!(answer["node_errors"]["1"]["class_type"], "Nope");

    let (status, answer) = s
        .post("/prompt", json!({"prompt": {"1": {"class_type": "Const", "inputs": {"value": "x"}}, "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}}))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["node_errors"]["1"]["errors"][0]["type"].is_string(),
        "{answer}"
    );

    let (status, answer) = s.post("/prompt", json!({"client_id": "c"})).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["type"], "no_prompt");

    let r = s
        .http
        .post(s.url("/prompt"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, answer) = common::status_json(r).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["message"], "Invalid JSON body");

    let (status, _) = s
        .post(
            "/prompt",
            json!({"prompt": graph(1, "c")["prompt"], "prompt_id": "../x"}),
        )
        .await;
    assert_eq!(status, 400);

    let huge = format!(
        "{{\"prompt\": {{}}, \"pad\": \"{}\"}}",
        "x".repeat(100 * 1024)
    );
    let r = s
        .http
        .post(s.url("/prompt"))
        .body(huge)
        .send()
        .await
        .unwrap();
    let (status, answer) = common::status_json(r).await;
    assert_eq!(status, 413, "{answer}");

    // Nothing bad was queued.
    let (_, q) = s.get("/queue").await;
    assert_eq!(q, json!({"queue_running": [], "queue_pending": []}));
    s.stop().await;
}

#[tokio::test]
async fn events_go_to_the_client_that_queued_and_status_to_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let mut a = s.socket("alice").await;
    let mut b = s.socket("bob").await;
    for (socket, sid) in [(&mut a, "alice"), (&mut b, "bob")] {
        let hello = socket.next().await;
        assert_eq!(hello["type"], "status");
        assert_eq!(hello["data"]["sid"], sid);
        assert_eq!(hello["data"]["status"]["exec_info"]["queue_remaining"], 0);
    }
    // The frontend's first message; garbage after it is ignored.
    a.send(r#"{"type":"feature_flags","data":{"supports_preview_metadata":true}}"#)
        .await;
    let flags = a.next().await;
    assert_eq!(flags["type"], "feature_flags");
    assert_eq!(flags["data"]["supports_preview_metadata"], true);
    a.send("garbage {").await;

    let id = s.queue(graph(7, "alice")).await;
    let seen = a.until_done(&id).await;
    let kinds = types(&seen);
    let position = |t: &str| {
        kinds
            .iter()
            .position(|k| *k == t)
            .unwrap_or_else(|| panic!("{t} in {kinds:?}"))
    };
    assert!(position("execution_start") < position("execution_cached"));
    assert!(position("execution_cached") < position("executed"));
    assert!(position("executed") < position("execution_success"));
    let executed = &seen[position("executed")];
    assert_eq!(executed["data"]["node"], "2");
    assert_eq!(executed["data"]["output"], json!({"value": ["7"]}));
    assert_eq!(executed["data"]["prompt_id"], id.as_str());
    assert!(seen
        .iter()
        .any(|m| m["type"] == "executing" && m["data"]["node"] == "1"));

    // Bob saw the queue change but none of Alice's execution.
    let mut bob_saw = Vec::new();
    while let Some(m) = b.next_within(Duration::from_millis(300)).await {
        bob_saw.push(m);
    }
    assert!(!bob_saw.is_empty());
    assert!(bob_saw.iter().all(|m| m["type"] == "status"), "{bob_saw:?}");

    // A client that connects after the run sees the empty queue at once.
    let mut late = s.socket("carol").await;
    assert_eq!(
        late.next().await["data"]["status"]["exec_info"]["queue_remaining"],
        0
    );
    s.stop().await;
}

#[tokio::test]
async fn the_cache_lives_across_prompts() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let first = s.queue(graph(5, "c")).await;
    let entry = s.finished(&first).await;
    assert_eq!(entry["status"]["status_str"], "success");
    assert_eq!(entry["outputs"]["2"]["value"][0], "5");
    assert_eq!((s.consts.count(), s.shows.count()), (1, 1));

    let again = s.queue(graph(5, "c")).await;
    let entry = s.finished(&again).await;
    assert_eq!(
        (s.consts.count(), s.shows.count()),
        (1, 1),
        "nothing re-executed"
    );
    let cached = entry["status"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m[0] == "execution_cached")
        .unwrap();
    assert_eq!(cached[1]["nodes"], json!(["1", "2"]));
    assert_eq!(
        entry["outputs"]["2"]["value"][0], "5",
        "cached outputs are still reported"
    );

    let changed = s.queue(graph(6, "c")).await;
    s.finished(&changed).await;
    assert_eq!((s.consts.count(), s.shows.count()), (2, 2));

    // `/free` drops the cache: the same graph runs again.
    let (status, _) = s.post("/api/free", json!({"free_memory": true})).await;
    assert_eq!(status, 200);
    let freed = s.queue(graph(6, "c")).await;
    s.finished(&freed).await;
    assert_eq!((s.consts.count(), s.shows.count()), (3, 3));
    s.stop().await;
}

#[tokio::test]
async fn queue_front_delete_clear_and_interrupt() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let blocker = s.queue(slow(1000, 10)).await;
    s.running(&blocker).await;
    let a = s.queue(graph(1, "c")).await;
    let b = s.queue(graph(2, "c")).await;
    let mut front = graph(3, "c");
    front["front"] = json!(true);
    let c = s.queue(front).await;

    let pending_ids = |q: &serde_json::Value| -> Vec<String> {
        q["queue_pending"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i[1].as_str().unwrap().to_string())
            .collect()
    };
    let (_, q) = s.get("/queue").await;
    assert_eq!(pending_ids(&q), [c.clone(), a.clone(), b.clone()]);
    assert_eq!(q["queue_running"][0][1], blocker.as_str());
    assert_eq!(q["queue_running"][0][2]["1"]["class_type"], "Slow");
    let (_, p) = s.get("/prompt").await;
    assert_eq!(p["exec_info"]["queue_remaining"], 4);

    let (status, _) = s.post("/queue", json!({"delete": [a]})).await;
    assert_eq!(status, 200);
    let (_, q) = s.get("/api/queue").await;
    assert_eq!(pending_ids(&q), [c.clone(), b.clone()]);
    s.post("/queue", json!({"clear": true})).await;
    let (_, q) = s.get("/queue").await;
    assert!(pending_ids(&q).is_empty());

    // Interrupting another prompt id leaves the running one alone.
    s.post("/interrupt", json!({"prompt_id": a})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, q) = s.get("/queue").await;
    assert_eq!(q["queue_running"][0][1], blocker.as_str());
    let (status, _) = s.post("/interrupt", json!({})).await;
    assert_eq!(status, 200);
    let entry = s.finished(&blocker).await;
    assert_eq!(entry["status"]["status_str"], "error");
    assert_eq!(entry["status"]["completed"], false);
    let last = entry["status"]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last[0], "execution_interrupted");

    // Deleted and cleared prompts never ran and are not history.
    let (_, h) = s.get("/history").await;
    assert_eq!(
        h.as_object().unwrap().keys().collect::<Vec<_>>(),
        [&blocker]
    );
    assert_eq!(s.consts.count(), 0);
    s.stop().await;
}

#[tokio::test]
async fn history_lists_pages_deletes_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let mut ids = Vec::new();
    for v in 0..3 {
        let id = s.queue(graph(v, "c")).await;
        s.finished(&id).await;
        ids.push(id);
    }
    let (_, h) = s.get("/history?max_items=2").await;
    assert_eq!(
        h.as_object().unwrap().keys().cloned().collect::<Vec<_>>(),
        ids[1..]
    );
    let entry = &h[&ids[2]];
    assert_eq!(entry["prompt"][1], ids[2].as_str());
    assert_eq!(entry["prompt"][2]["1"]["inputs"]["value"], 2);
    assert_eq!(entry["prompt"][3]["client_id"], "c");
    assert_eq!(entry["prompt"][4], json!(["2"]));
    assert_eq!(entry["meta"]["2"]["node_id"], "2");

    // A prompt is queued behind a slow one, and the server stops while the slow one runs.
    let blocker = s.queue(slow(300, 10)).await;
    s.running(&blocker).await;
    let waiting = s.queue(graph(9, "c")).await;
    s.stop().await;

    let s = TestServer::start(dir.path()).await;
    assert_eq!(
        s.server.as_ref().unwrap().recovery().requeued,
        std::slice::from_ref(&blocker)
    );
    let (_, h) = s.get(&format!("/history/{}", ids[0])).await;
    assert_eq!(h[&ids[0]]["outputs"]["2"]["value"][0], "0");
    let entry = s.finished(&blocker).await;
    assert_eq!(entry["status"]["status_str"], "success");
    let first = &entry["status"]["messages"][0];
    assert_eq!(
        first[0], "execution_interrupted",
        "the crash is recorded: {entry}"
    );
    let entry = s.finished(&waiting).await;
    assert_eq!(entry["outputs"]["2"]["value"][0], "9");

    s.post("/history", json!({"delete": [ids[0]]})).await;
    let (_, h) = s.get(&format!("/history/{}", ids[0])).await;
    assert_eq!(h, json!({}));
    s.post("/history", json!({"clear": true})).await;
    let (_, h) = s.get("/history").await;
    assert_eq!(h, json!({}));
    s.stop().await;
}

#[tokio::test]
async fn catalogue_and_boot_routes_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let (status, info) = s.get("/api/object_info").await;
    assert_eq!(status, 200);
    assert_eq!(info["Const"]["input"]["required"]["value"][0], "INT");
    assert!(info["Show"]["output_node"].as_bool().unwrap());
    let (_, one) = s.get("/object_info/Slow").await;
    assert_eq!(
        one.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["Slow"]
    );
    let (_, none) = s.get("/object_info/Nope").await;
    assert_eq!(none, json!({}));
    let (_, stats) = s.get("/api/system_stats").await;
    assert!(stats["system"]["required_frontend_version"].is_string());
    assert!(stats["devices"].is_array());
    let (_, features) = s.get("/api/features").await;
    assert_eq!(features["max_upload_size"], 100 * 1024 * 1024);
    assert_eq!(s.get("/api/embeddings").await.1, json!([]));
    assert_eq!(
        s.get("/api/extensions").await.1,
        json!(["/extensions/omnigen/default_workflow.js"])
    );
    let (_, users) = s.get("/api/users").await;
    assert!(users.get("users").is_none());
    assert_eq!(users["storage"], "server");
    s.stop().await;
}
