//! ComfyUI's `progress_state` messages, kept linear in the graph size.
//!
//! The 1.5x frontends mark the running node (outline, progress bar, tab title) only from
//! `progress_state`, and every message *replaces* their node-state map (docs/server.md, WebSocket). ComfyUI
//! puts every node started so far into every message, so its traffic grows with the square of the graph.
//! Here a message carries the nodes running now, plus the one node whose change it reports when that node
//! just finished or failed: everything the frontend derives from `state == "running"` is what ComfyUI's
//! snapshot gives, and a message's size is bounded by how many nodes run at once.

use serde::ser::{Serialize, SerializeMap, Serializer};

/// A change of one node's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// The node started (ComfyUI starts it at 0 of 1).
    Started(&'a str),
    /// The node reported progress.
    Progress {
        /// The node.
        node: &'a str,
        /// Steps done.
        value: u64,
        /// Total steps.
        max: u64,
    },
    /// The node returned successfully.
    Finished(&'a str),
    /// The node failed.
    Failed(&'a str),
}

/// The node states of one run, as its `progress_state` messages report them.
#[derive(Debug)]
pub struct NodeStates {
    prompt_id: String,
    /// `(node, value, max)` of the nodes running now, in the order they started. Short: at most the
    /// engine's concurrency.
    running: Vec<(String, u64, u64)>,
}

impl NodeStates {
    /// No node running yet.
    pub fn new(prompt_id: impl Into<String>) -> Self {
        NodeStates {
            prompt_id: prompt_id.into(),
            running: Vec::new(),
        }
    }

    /// Applies `change`; returns the `progress_state` message text to send, or `None` when the change
    /// concerns no node this run knows (a failure before any node ran).
    pub fn apply(&mut self, change: Change<'_>) -> Option<String> {
        let ended = match change {
            Change::Started(node) => {
                self.set_running(node, 0, 1);
                None
            }
            Change::Progress { node, value, max } => {
                self.set_running(node, value, max);
                None
            }
            Change::Finished(node) => {
                // ComfyUI reports a finished node at its last `max`, fully done.
                let max = self.stop(node).map_or(1, |(_, max)| max);
                Some((node, max, max, "finished"))
            }
            Change::Failed(node) => {
                let (value, max) = self.stop(node)?;
                Some((node, value, max, "error"))
            }
        };
        let mut entries: Vec<Entry<'_>> = self
            .running
            .iter()
            .map(|(node, value, max)| Entry::new(node, *value, *max, "running", &self.prompt_id))
            .collect();
        if let Some((node, value, max, state)) = ended {
            entries.push(Entry::new(node, value, max, state, &self.prompt_id));
        }
        let message = Message {
            kind: "progress_state",
            data: Data {
                prompt_id: &self.prompt_id,
                nodes: Nodes(entries),
            },
        };
        serde_json::to_string(&message).ok()
    }

    fn set_running(&mut self, node: &str, value: u64, max: u64) {
        match self.running.iter_mut().find(|(n, ..)| n == node) {
            Some(entry) => (entry.1, entry.2) = (value, max),
            None => self.running.push((node.to_string(), value, max)),
        }
    }

    /// Forgets a running node; its last `(value, max)`.
    fn stop(&mut self, node: &str) -> Option<(u64, u64)> {
        let at = self.running.iter().position(|(n, ..)| n == node)?;
        let (_, value, max) = self.running.remove(at);
        Some((value, max))
    }
}

#[derive(serde::Serialize)]
struct Message<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    data: Data<'a>,
}

#[derive(serde::Serialize)]
struct Data<'a> {
    prompt_id: &'a str,
    nodes: Nodes<'a>,
}

/// The entries as a map keyed by node id.
struct Nodes<'a>(Vec<Entry<'a>>);

impl Serialize for Nodes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for entry in &self.0 {
            map.serialize_entry(entry.node_id, entry)?;
        }
        map.end()
    }
}

/// One node's state, with ComfyUI's fields (no subgraph expansion here: every id is the node's own).
#[derive(serde::Serialize)]
struct Entry<'a> {
    value: u64,
    max: u64,
    state: &'static str,
    node_id: &'a str,
    prompt_id: &'a str,
    display_node_id: &'a str,
    parent_node_id: Option<&'a str>,
    real_node_id: &'a str,
}

impl<'a> Entry<'a> {
    fn new(node: &'a str, value: u64, max: u64, state: &'static str, prompt_id: &'a str) -> Self {
        Entry {
            value,
            max,
            state,
            node_id: node,
            prompt_id,
            display_node_id: node,
            parent_node_id: None,
            real_node_id: node,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value as Json};

    fn nodes(text: Option<String>) -> Json {
        let message: Json = serde_json::from_str(&text.expect("a message")).unwrap();
        assert_eq!(message["type"], "progress_state");
        assert_eq!(message["data"]["prompt_id"], "p");
        message["data"]["nodes"].clone()
    }

    fn states(nodes: &Json) -> Vec<(String, String, u64, u64)> {
        nodes
            .as_object()
            .unwrap()
            .iter()
            .map(|(id, s)| {
                (
                    id.clone(),
                    s["state"].as_str().unwrap().to_string(),
                    s["value"].as_u64().unwrap(),
                    s["max"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    fn st(id: &str, state: &str, value: u64, max: u64) -> (String, String, u64, u64) {
        (id.into(), state.into(), value, max)
    }

    #[test]
    fn a_node_runs_reports_progress_and_finishes() {
        let mut s = NodeStates::new("p");
        let started = nodes(s.apply(Change::Started("7")));
        assert_eq!(
            started["7"],
            json!({"value": 0, "max": 1, "state": "running", "node_id": "7", "prompt_id": "p",
                   "display_node_id": "7", "parent_node_id": null, "real_node_id": "7"})
        );
        let step = nodes(s.apply(Change::Progress {
            node: "7",
            value: 3,
            max: 20,
        }));
        assert_eq!(states(&step), [st("7", "running", 3, 20)]);
        let done = nodes(s.apply(Change::Finished("7")));
        assert_eq!(states(&done), [st("7", "finished", 20, 20)]);
        // The next node's start no longer lists the finished one: the message stays small.
        let next = nodes(s.apply(Change::Started("8")));
        assert_eq!(states(&next), [st("8", "running", 0, 1)]);
    }

    #[test]
    fn concurrent_nodes_are_all_listed_while_they_run() {
        let mut s = NodeStates::new("p");
        s.apply(Change::Started("1"));
        let both = nodes(s.apply(Change::Started("2")));
        assert_eq!(
            states(&both),
            [st("1", "running", 0, 1), st("2", "running", 0, 1)]
        );
        let one_done = nodes(s.apply(Change::Finished("1")));
        assert_eq!(
            states(&one_done),
            [st("2", "running", 0, 1), st("1", "finished", 1, 1)]
        );
    }

    #[test]
    fn a_failure_is_reported_once_for_a_running_node_only() {
        let mut s = NodeStates::new("p");
        assert_eq!(s.apply(Change::Failed("")), None);
        s.apply(Change::Started("4"));
        s.apply(Change::Progress {
            node: "4",
            value: 2,
            max: 5,
        });
        let failed = nodes(s.apply(Change::Failed("4")));
        assert_eq!(states(&failed), [st("4", "error", 2, 5)]);
        assert_eq!(s.apply(Change::Failed("4")), None);
    }

    #[test]
    fn node_ids_are_escaped() {
        let mut s = NodeStates::new("p");
        let text = s.apply(Change::Started("a\"b")).unwrap();
        let n = nodes(Some(text));
        assert_eq!(n["a\"b"]["node_id"], "a\"b");
    }
}
