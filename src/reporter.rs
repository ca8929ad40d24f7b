//! Fans the engine's events out to the progress view and the `--events` JSON lines.

use std::sync::{Arc, Mutex, MutexGuard};

use omnigen_engine::{Event, EventSink};

use crate::events_jsonl::JsonlWriter;
use crate::progress::ProgressView;

/// Everything that listens to events during a command.
pub struct Reporter {
    /// The human-readable view on stderr.
    pub view: ProgressView,
    jsonl: Option<JsonlWriter>,
    jsonl_broken: bool,
}

/// A reporter shared between the command and the engine's event sink.
#[derive(Clone)]
pub struct SharedReporter(Arc<Mutex<Reporter>>);

impl SharedReporter {
    /// A reporter with the given view and optional JSON-lines sink.
    pub fn new(view: ProgressView, jsonl: Option<JsonlWriter>) -> Self {
        Self(Arc::new(Mutex::new(Reporter {
            view,
            jsonl,
            jsonl_broken: false,
        })))
    }

    /// Locks the reporter (a panic elsewhere must not silence reporting).
    pub fn lock(&self) -> MutexGuard<'_, Reporter> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An engine event sink feeding this reporter. Writing a line and updating a bar is quick
    /// enough to do on the executor's task.
    pub fn sink(&self) -> EventSink {
        let shared = self.clone();
        EventSink::from_fn(move |event| shared.lock().on_event(&event))
    }
}

impl Reporter {
    fn on_event(&mut self, event: &Event) {
        if let (Some(jsonl), false) = (&mut self.jsonl, self.jsonl_broken) {
            if let Err(e) = jsonl.write(event) {
                // Keep running; say once that the event stream is gone.
                self.jsonl_broken = true;
                self.view
                    .line(&format!("warning: cannot write events: {e}"));
            }
        }
        self.view.on_event(event);
    }
}
