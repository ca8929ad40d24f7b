//! Every use of the engine's API in the server lives here: parsing and validating a submitted prompt,
//! running a queued job through the one executor (whose cache lives across prompts), turning events
//! into WebSocket messages (with `progress_state` and previews), and the node catalogue. The rest of the server sees JSON and its own types.

use std::sync::{Arc, Mutex};

use omnigen_engine::workflow::{into_api_document, DocumentKind};
use omnigen_engine::{
    Event, EventSink, ExecutionErrorData, Executor, ExecutorConfig, NodeFinished, PromptRequest,
    RunOptions, RunStatus, SavedFile,
};
use serde_json::{json, Map, Value as Json};

use crate::preview::PendingPreview;
use crate::progress_state::{Change, NodeStates};
use crate::queue::{Job, JobResult, JobState};

pub use omnigen_engine::{new_prompt_id, now_ms, CancelToken, Dirs, Registry};

/// A submitted prompt that validated: what the queue stores.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The graph, as submitted.
    pub prompt: Json,
    /// `extra_data` with `client_id` copied in.
    pub extra_data: Json,
    /// The client whose socket gets the events.
    pub client_id: Option<String>,
    /// The prompt id the client chose, if any.
    pub prompt_id: Option<String>,
    /// `partial_execution_targets`.
    pub targets: Option<Vec<String>>,
    /// The outputs that will run (ComfyUI's `outputs_to_execute`).
    pub outputs: Vec<String>,
    /// Errors of outputs that were dropped while the rest runs (`{}` when none).
    pub node_errors: Json,
}

/// Who a message is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every connected socket.
    Everyone,
    /// The socket of this client id only.
    Client(String),
    /// Nobody (a prompt queued without a client id gets no per-node events, as in ComfyUI).
    Nobody,
}

/// How a job's run ended, ready for the queue.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The final state.
    pub state: JobState,
    /// Outputs and status messages for history.
    pub result: JobResult,
    /// The files output nodes wrote (a remote worker ships them to the server).
    pub saved: Vec<SavedFile>,
}

/// The engine as the server uses it: one executor (one cache) over an open registry.
pub struct Engine {
    executor: Executor,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `registry`, handing `dirs` to nodes.
    pub fn new(registry: Arc<Registry>, dirs: Dirs) -> Self {
        Engine {
            executor: Executor::new(
                registry,
                ExecutorConfig {
                    dirs,
                    ..ExecutorConfig::default()
                },
            ),
        }
    }

    /// Any graph document (a UI workflow, an API graph or a `POST /prompt` body) as an API-format one,
    /// converted with the catalogue the way `omnigen convert` does. `Err` is ComfyUI's 400 body naming
    /// the node.
    pub fn api_document(&self, doc: Json) -> Result<(DocumentKind, Json), Json> {
        into_api_document(doc, self.executor.registry()).map_err(|e| e.to_comfy_json())
    }

    /// Parses and validates a `POST /prompt` body. `Err` is ComfyUI's 400 body.
    pub fn accept(&self, body: Json) -> Result<Accepted, Json> {
        let request = PromptRequest::from_json(body).map_err(|e| e.to_comfy_json())?;
        let validated = self.executor.validate(&request).map_err(|r| r.to_json())?;
        let outputs = validated.outputs.iter().map(|n| n.0.clone()).collect();
        let node_errors = validated.node_errors_json();
        drop(validated);
        let PromptRequest {
            prompt,
            extra_data,
            client_id,
            prompt_id,
            partial_execution_targets,
            ..
        } = request;
        // The graph's JSON is shared only by the graph now: take it rather than copy a large prompt.
        let raw = Arc::clone(prompt.raw_arc());
        drop(prompt);
        let prompt = Arc::try_unwrap(raw).unwrap_or_else(|shared| (*shared).clone());
        Ok(Accepted {
            prompt,
            extra_data,
            client_id,
            prompt_id,
            targets: partial_execution_targets.map(|t| t.into_iter().map(|n| n.0).collect()),
            outputs,
            node_errors,
        })
    }

    /// Runs a queued job to its end, handing each message to `out`, and recording ComfyUI's status
    /// messages for history. The graph is validated again (the catalogue may have changed since it was
    /// queued, or the server restarted).
    pub async fn run(
        &self,
        job: Job,
        cancel: CancelToken,
        out: impl Fn(Outgoing<'_>) + Send + Sync + 'static,
    ) -> Finished {
        let audience = match &job.client_id {
            Some(id) => Audience::Client(id.clone()),
            None => Audience::Nobody,
        };
        let relay = Arc::new(Relay {
            audience: audience.clone(),
            states: Mutex::new(NodeStates::new(job.id.clone())),
            history: Mutex::new(Vec::new()),
            out: Box::new(out),
        });
        let to_events = Arc::clone(&relay);
        let sink = EventSink::from_fn(move |event: Event| to_events.event(event));
        let to_states = Arc::clone(&relay);
        let finished = NodeFinished::from_fn(move |node| to_states.finished(node));

        let id = job.id.clone();
        let request = match PromptRequest::from_json(request_json(job)) {
            Ok(r) => r,
            Err(e) => return refused(&id, &relay, e.to_comfy_json()),
        };
        let options = RunOptions::new(sink)
            .prompt_id(id.clone())
            .cancel(cancel)
            .node_finished(finished);
        let report = match self.executor.run(&request, options).await {
            Ok(report) => report,
            Err(validation) => return refused(&id, &relay, validation.to_json()),
        };
        let state = match report.status {
            RunStatus::Success => JobState::Completed,
            RunStatus::Failed(_) => JobState::Failed,
            RunStatus::Interrupted { .. } => JobState::Interrupted,
        };
        let outputs: Map<String, Json> = report
            .ui_outputs
            .into_iter()
            .map(|(id, ui)| (id.0, ui))
            .collect();
        Finished {
            state,
            result: JobResult {
                outputs: Json::Object(outputs),
                messages: Json::Array(relay.take_history()),
            },
            saved: report.saved_files.into_values().flatten().collect(),
        }
    }

    /// `GET /object_info`: file combos (LoadImage's `image`) list the input folder as it is now.
    pub fn object_info(&self) -> Json {
        self.executor.registry().object_info(self.executor.dirs())
    }

    /// `GET /object_info/{class}` (`{}` when unknown).
    pub fn object_info_for(&self, class_type: &str) -> Json {
        self.executor
            .registry()
            .object_info_for(class_type, self.executor.dirs())
    }

    /// Drops every cached output (`POST /free` with `free_memory`).
    pub fn free_memory(&self) {
        self.executor.clear_cache();
    }
}

/// A message of a run for the worker to deliver.
#[derive(Debug)]
pub enum Outgoing<'a> {
    /// A JSON text for its audience.
    Text(&'a Audience, String),
    /// A JSON text that ends the run (`execution_success`, `execution_error`, `execution_interrupted`,
    /// `executing` with no node): a remote worker holds these back until the result is recorded, so a
    /// client told "done" finds the outputs on the server.
    Final(&'a Audience, String),
    /// A preview to encode (off the execution path) and send to its client.
    Preview(PendingPreview),
}

static EVERYONE: Audience = Audience::Everyone;

/// Turns one run's events into messages: its audience, its `progress_state` and its history record.
/// Called on the execution path, so it only serialises and hands over.
struct Relay {
    audience: Audience,
    states: Mutex<NodeStates>,
    history: Mutex<Vec<Json>>,
    out: Box<dyn Fn(Outgoing<'_>) + Send + Sync>,
}

impl Relay {
    fn event(&self, event: Event) {
        if records_in_history(&event) {
            let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
            history.push(json!([event.type_name(), event.to_json()["data"]]));
        }
        // ComfyUI broadcasts interruptions; everything else goes to the prompt's client.
        let to = match event {
            Event::ExecutionInterrupted { .. } => &EVERYONE,
            _ => &self.audience,
        };
        if *to == Audience::Nobody {
            return;
        }
        // Held while sending so that the messages of nodes running at once keep one order.
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        match &event {
            Event::Executing {
                node: Some(node), ..
            } => {
                // As ComfyUI: the node's `progress_state` first, then `executing`.
                self.send_state(&mut states, Change::Started(node));
                self.send_event(to, &event);
            }
            Event::Progress {
                value,
                max,
                prompt_id,
                node,
                preview,
            } => {
                self.send_event(to, &event);
                self.send_state(
                    &mut states,
                    Change::Progress {
                        node,
                        value: *value,
                        max: *max,
                    },
                );
                if let Some(image) = preview {
                    (self.out)(Outgoing::Preview(PendingPreview {
                        to: to.clone(),
                        image: Arc::clone(image),
                        node: node.clone(),
                        prompt_id: prompt_id.clone(),
                    }));
                }
            }
            Event::ExecutionError(error) => {
                self.send_state(&mut states, Change::Failed(&error.node_id));
                self.send_event(to, &event);
            }
            _ => self.send_event(to, &event),
        }
    }

    /// Whether `event` ends the run (see [`Outgoing::Final`]).
    fn ends_run(event: &Event) -> bool {
        matches!(
            event,
            Event::ExecutionSuccess { .. }
                | Event::ExecutionError(_)
                | Event::ExecutionInterrupted { .. }
                | Event::Executing { node: None, .. }
        )
    }

    /// A node returned: it is finished in `progress_state`.
    fn finished(&self, node: &str) {
        if self.audience != Audience::Nobody {
            let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
            self.send_state(&mut states, Change::Finished(node));
        }
    }

    fn send_event(&self, to: &Audience, event: &Event) {
        match serde_json::to_string(event) {
            Ok(text) if Self::ends_run(event) => (self.out)(Outgoing::Final(to, text)),
            Ok(text) => (self.out)(Outgoing::Text(to, text)),
            Err(e) => tracing::error!(error = %e, "cannot serialise an event"),
        }
    }

    fn send_state(&self, states: &mut NodeStates, change: Change<'_>) {
        if let Some(text) = states.apply(change) {
            (self.out)(Outgoing::Text(&self.audience, text));
        }
    }

    fn take_history(&self) -> Vec<Json> {
        std::mem::take(&mut *self.history.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A job whose graph no longer validates: an `execution_error` to its client, then "done".
fn refused(prompt_id: &str, relay: &Relay, error: Json) -> Finished {
    let message = error["error"]["message"].as_str().unwrap_or("");
    relay.event(Event::ExecutionError(ExecutionErrorData {
        prompt_id: prompt_id.to_string(),
        node_id: String::new(),
        node_type: String::new(),
        executed: Vec::new(),
        exception_message: format!("the prompt no longer validates: {message}"),
        exception_type: "validation".into(),
        traceback: vec![error.to_string()],
        current_inputs: Map::new(),
        current_outputs: Vec::new(),
        timestamp: now_ms(),
    }));
    relay.event(Event::Executing {
        node: None,
        display_node: None,
        prompt_id: prompt_id.to_string(),
    });
    Finished {
        state: JobState::Failed,
        result: JobResult {
            outputs: json!({}),
            messages: Json::Array(relay.take_history()),
        },
        saved: Vec::new(),
    }
}

/// The messages ComfyUI keeps in a history entry's `status.messages`.
fn records_in_history(event: &Event) -> bool {
    matches!(
        event,
        Event::ExecutionStart { .. }
            | Event::ExecutionCached { .. }
            | Event::ExecutionSuccess { .. }
            | Event::ExecutionError(_)
            | Event::ExecutionInterrupted { .. }
    )
}

/// The stored job as the `POST /prompt` wrapper the engine parses (moved, not copied: a prompt may be
/// large).
fn request_json(job: Job) -> Json {
    let mut m = Map::new();
    m.insert("prompt".into(), job.prompt);
    m.insert("extra_data".into(), job.extra_data);
    if let Some(id) = job.client_id {
        m.insert("client_id".into(), json!(id));
    }
    if let Some(t) = job.targets {
        m.insert("partial_execution_targets".into(), json!(t));
    }
    Json::Object(m)
}
