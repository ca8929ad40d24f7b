//! Execution events, one-to-one with ComfyUI's WebSocket messages, and the sink they are sent to.
//!
//! `serde_json::to_string(&event)` yields exactly the text frame ComfyUI sends: `{"type": …, "data": {…}}`.
//! A preview image attached to a progress event is not part of the JSON: a server sends it as a binary
//! frame (type 4) next to the `progress` message.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value as Json;

use crate::value::Image;

/// Milliseconds since the Unix epoch, as ComfyUI stamps its messages.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One execution event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Event {
    /// A prompt begins.
    ExecutionStart {
        /// Prompt id.
        prompt_id: String,
        /// Milliseconds since the epoch.
        timestamp: u64,
    },
    /// The planned nodes whose outputs came from the cache.
    ExecutionCached {
        /// Cached node ids.
        nodes: Vec<String>,
        /// Prompt id.
        prompt_id: String,
        /// Milliseconds since the epoch.
        timestamp: u64,
    },
    /// A node starts (`node: Some`), or the prompt is finished (`node: None`, ComfyUI's "done" signal).
    Executing {
        /// Node id, or `null` when the prompt is done.
        node: Option<String>,
        /// Node shown in the UI (same as `node`); omitted in the final message.
        #[serde(skip_serializing_if = "Option::is_none")]
        display_node: Option<String>,
        /// Prompt id.
        prompt_id: String,
    },
    /// A running node reports progress.
    Progress {
        /// Steps done.
        value: u64,
        /// Total steps.
        max: u64,
        /// Prompt id.
        prompt_id: String,
        /// Node id.
        node: String,
        /// Optional preview, sent by a server as a binary frame; not part of the JSON.
        #[serde(skip)]
        preview: Option<Arc<Image>>,
    },
    /// A node finished with UI output (also re-sent for cached output nodes).
    Executed {
        /// Node id.
        node: String,
        /// Node shown in the UI.
        display_node: String,
        /// The node's UI dictionary, e.g. `{"images":[{"filename","subfolder","type"}]}`.
        output: Json,
        /// Prompt id.
        prompt_id: String,
    },
    /// Every planned node finished.
    ExecutionSuccess {
        /// Prompt id.
        prompt_id: String,
        /// Milliseconds since the epoch.
        timestamp: u64,
    },
    /// A node failed; the prompt stopped.
    ExecutionError(ExecutionErrorData),
    /// The prompt was cancelled.
    ExecutionInterrupted {
        /// Prompt id.
        prompt_id: String,
        /// The node that was running (or next to run).
        node_id: Option<String>,
        /// Its class_type.
        node_type: Option<String>,
        /// Node ids executed (or cached) before the interruption.
        executed: Vec<String>,
        /// Milliseconds since the epoch.
        timestamp: u64,
    },
}

/// The data of an `execution_error` message.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExecutionErrorData {
    /// Prompt id.
    pub prompt_id: String,
    /// The failing node.
    pub node_id: String,
    /// Its class_type.
    pub node_type: String,
    /// Node ids executed (or cached) before the failure.
    pub executed: Vec<String>,
    /// What went wrong.
    pub exception_message: String,
    /// A category: `"NodeError"`, `"panic"`, `"graph.DependencyCycleError"` …
    pub exception_type: String,
    /// Context lines (the error's details and causes).
    pub traceback: Vec<String>,
    /// The node's input values, summarised: `{name: [value]}` as ComfyUI formats them.
    pub current_inputs: serde_json::Map<String, Json>,
    /// Outputs produced so far (always empty: outputs are all-or-nothing here).
    pub current_outputs: Vec<Json>,
    /// Milliseconds since the epoch.
    pub timestamp: u64,
}

impl Event {
    /// The ComfyUI message type string (`"execution_start"`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::ExecutionStart { .. } => "execution_start",
            Event::ExecutionCached { .. } => "execution_cached",
            Event::Executing { .. } => "executing",
            Event::Progress { .. } => "progress",
            Event::Executed { .. } => "executed",
            Event::ExecutionSuccess { .. } => "execution_success",
            Event::ExecutionError(_) => "execution_error",
            Event::ExecutionInterrupted { .. } => "execution_interrupted",
        }
    }

    /// The prompt this event belongs to.
    pub fn prompt_id(&self) -> &str {
        match self {
            Event::ExecutionStart { prompt_id, .. }
            | Event::ExecutionCached { prompt_id, .. }
            | Event::Executing { prompt_id, .. }
            | Event::Progress { prompt_id, .. }
            | Event::Executed { prompt_id, .. }
            | Event::ExecutionSuccess { prompt_id, .. }
            | Event::ExecutionInterrupted { prompt_id, .. } => prompt_id,
            Event::ExecutionError(e) => &e.prompt_id,
        }
    }

    /// The message as ComfyUI's JSON text frame.
    pub fn to_json(&self) -> Json {
        serde_json::to_value(self).unwrap_or(Json::Null)
    }
}

type SinkFn = dyn Fn(Event) + Send + Sync;

/// Where the executor sends events. Cheap to clone; sending never blocks execution.
#[derive(Clone, Default)]
pub struct EventSink {
    send: Option<Arc<SinkFn>>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("connected", &self.send.is_some())
            .finish()
    }
}

impl EventSink {
    /// A sink that drops every event.
    pub fn none() -> Self {
        EventSink { send: None }
    }

    /// A sink calling `f` for every event. `f` runs on the executor's task: it must be quick and must not
    /// block.
    pub fn from_fn(f: impl Fn(Event) + Send + Sync + 'static) -> Self {
        EventSink {
            send: Some(Arc::new(f)),
        }
    }

    /// A sink feeding an unbounded channel (every event is kept; the receiver decides the pace).
    pub fn channel() -> (Self, tokio::sync::mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            Self::from_fn(move |e| {
                let _ = tx.send(e);
            }),
            rx,
        )
    }

    /// A sink feeding a broadcast channel of the given capacity (many listeners; a slow listener misses
    /// old events rather than slowing execution).
    pub fn broadcast(capacity: usize) -> (Self, tokio::sync::broadcast::Sender<Event>) {
        let (tx, _) = tokio::sync::broadcast::channel(capacity.max(1));
        let sender = tx.clone();
        (
            Self::from_fn(move |e| {
                let _ = sender.send(e);
            }),
            tx,
        )
    }

    /// Sends one event.
    pub fn send(&self, event: Event) {
        if let Some(f) = &self.send {
            f(event);
        }
    }

    /// A sink that sends every event to both `self` and `other`.
    pub fn tee(self, other: EventSink) -> Self {
        match (self.send, other.send) {
            (None, None) => EventSink::none(),
            (Some(a), None) | (None, Some(a)) => EventSink { send: Some(a) },
            (Some(a), Some(b)) => EventSink::from_fn(move |e| {
                a(e.clone());
                b(e);
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_like_comfyui() {
        let e = Event::Executing {
            node: None,
            display_node: None,
            prompt_id: "p".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"executing","data":{"node":null,"prompt_id":"p"}}"#
        );
        let e = Event::Progress {
            value: 3,
            max: 20,
            prompt_id: "p".into(),
            node: "7".into(),
            preview: None,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"progress","data":{"value":3,"max":20,"prompt_id":"p","node":"7"}}"#
        );
        let e = Event::ExecutionCached {
            nodes: vec!["1".into()],
            prompt_id: "p".into(),
            timestamp: 5,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"execution_cached","data":{"nodes":["1"],"prompt_id":"p","timestamp":5}}"#
        );
        assert_eq!(e.type_name(), "execution_cached");
    }

    #[test]
    fn error_event_is_flat_data() {
        let e = Event::ExecutionError(ExecutionErrorData {
            prompt_id: "p".into(),
            node_id: "2".into(),
            node_type: "Boom".into(),
            executed: vec!["1".into()],
            exception_message: "bad".into(),
            exception_type: "NodeError".into(),
            traceback: vec![],
            current_inputs: Default::default(),
            current_outputs: vec![],
            timestamp: 1,
        });
        let j = e.to_json();
        assert_eq!(j["type"], "execution_error");
        assert_eq!(j["data"]["node_id"], "2");
        assert_eq!(j["data"]["executed"][0], "1");
    }
}
