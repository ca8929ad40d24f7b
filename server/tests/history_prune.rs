//! History is bounded by the pruner, which runs on its own task: it trims finished prompts while
//! another prompt is executing, and the running prompt neither waits for it nor is touched by it.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use omnigen_server::{HistoryLimits, ServerConfig};

/// Longest we wait for the server to do something; a guard against a hang, not a speed assertion.
const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_pruned_by_count_while_a_prompt_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.history = HistoryLimits {
        max_entries: 2,
        max_age_ms: u64::MAX,
    };
    config.prune_every = Duration::from_millis(20);
    let s = TestServer::start_with(config).await;

    let mut quick = Vec::new();
    for value in 0..5 {
        let id = s.queue(common::graph(value, "c")).await;
        quick.push(id);
    }
    // A prompt that keeps running (10 ms × 100 000 steps) while the pruner works.
    let slow = s.queue(common::slow(100_000, 10)).await;
    s.running(&slow).await;

    let deadline = Instant::now() + PATIENCE;
    let kept = loop {
        let (_, history) = s.get("/history").await;
        let ids: Vec<String> = history.as_object().unwrap().keys().cloned().collect();
        if ids.len() <= 2 && ids.iter().all(|id| quick.contains(id)) && !ids.is_empty() {
            break ids;
        }
        assert!(
            Instant::now() < deadline,
            "history was not pruned to 2 while a prompt ran: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The newest finished prompts are the ones kept, and the slow prompt is still running.
    assert_eq!(kept, quick[3..].to_vec());
    let (_, queue) = s.get("/queue").await;
    assert_eq!(queue["queue_running"][0][1], slow.as_str(), "{queue}");

    // Execution goes on: interrupting it finishes it into (pruned) history.
    s.post("/interrupt", serde_json::json!({})).await;
    let entry = s.finished(&slow).await;
    assert_eq!(entry["status"]["status_str"], "error", "{entry}");
    s.stop().await;
}

#[tokio::test]
async fn history_is_pruned_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.history = HistoryLimits {
        max_entries: 10_000,
        max_age_ms: 1,
    };
    config.prune_every = Duration::from_millis(20);
    let s = TestServer::start_with(config).await;
    let id = s.queue(common::graph(1, "c")).await;
    // Wait for it to run (visible as the queue emptying), then for the pruner to forget it.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, status) = s.get("/prompt").await;
        let (_, entry) = s.get(&format!("/history/{id}")).await;
        if status["exec_info"]["queue_remaining"] == 0 && entry.get(&id).is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a finished prompt older than the age limit stayed in history"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.consts.count(), 1, "the prompt ran");
    s.stop().await;
}
