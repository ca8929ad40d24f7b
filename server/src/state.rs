//! The state every handler and the worker share.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value as Json};
use tokio::sync::{watch, Notify};

use crate::clients::Clients;
use crate::config::ServerConfig;
use crate::engine_adapter::{Audience, CancelToken, Engine};
use crate::queue::nats::protocol::Control;
use crate::queue::nats::Front;
use crate::queue::Queue;

/// The job the worker is running, so `/interrupt` can stop it.
#[derive(Debug, Clone)]
pub struct Current {
    /// Its prompt id.
    pub id: String,
    /// Cancels its run.
    pub cancel: CancelToken,
}

/// Shared by the handlers, the worker and the pruner.
pub struct AppState {
    /// Settings.
    pub config: ServerConfig,
    /// The durable queue and history.
    pub queue: Arc<dyn Queue>,
    /// The engine (one executor, one cache).
    pub engine: Engine,
    /// Connected WebSocket clients.
    pub clients: Clients,
    /// Wakes the worker when something is queued.
    pub wake: Notify,
    /// The running job, if any.
    pub current: Mutex<Option<Current>>,
    /// Becomes `true` when the server shuts down (open sockets close).
    pub shutdown: watch::Receiver<bool>,
    /// With `--queue nats://…`: the workers run the jobs and this is how to reach them.
    pub remote: Option<Arc<Front>>,
}

impl AppState {
    /// `{"type":"status","data":{"status":{"exec_info":{"queue_remaining":N}}[, "sid"]}}`.
    pub fn status_message(&self, sid: Option<&str>) -> Json {
        let remaining = self.queue.remaining().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot count the queue");
            0
        });
        let mut data = json!({"status": {"exec_info": {"queue_remaining": remaining}}});
        if let Some(sid) = sid {
            data["sid"] = json!(sid);
        }
        json!({"type": "status", "data": data})
    }

    /// Tells every client the queue changed.
    pub fn broadcast_status(&self) {
        self.clients
            .send(&Audience::Everyone, &self.status_message(None));
    }

    /// The running job.
    pub fn current(&self) -> Option<Current> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops the running job (only `wanted` when given): the local one, or, with remote workers, the
    /// one any worker runs.
    pub async fn interrupt(&self, wanted: Option<&str>) {
        if let Some(front) = &self.remote {
            let control = Control::Interrupt {
                prompt_id: wanted.map(String::from),
            };
            front.control(&control).await;
        } else if let Some(current) = self.current() {
            if wanted.is_none_or(|id| id == current.id) {
                current.cancel.cancel();
            }
        }
    }

    pub(crate) fn set_current(&self, current: Option<Current>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = current;
    }
}
