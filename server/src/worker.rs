//! The worker: takes jobs from the queue one at a time and runs them through the engine, delivering
//! their messages to the client hub and their previews to the encoder; and the pruner, which bounds
//! history on its own task so execution never waits for it.

use std::sync::Arc;

use crate::engine_adapter::{now_ms, CancelToken, Outgoing};
use crate::preview::Encoder;
use crate::state::{AppState, Current};

/// Runs queued jobs until the task is dropped. A job still running when the process dies stays
/// `running` in storage and is recovered at the next start.
pub async fn run(state: Arc<AppState>) {
    let hub = Arc::clone(&state);
    let encoder = Encoder::start(move |to, preview| hub.clients.send_preview(to, preview));
    let encoder = match encoder {
        Ok(encoder) => Some(encoder),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the preview encoder; previews are not sent");
            None
        }
    };
    loop {
        let job = match state.queue.claim_next() {
            Ok(Some(job)) => job,
            Ok(None) => {
                state.wake.notified().await;
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the queue; retrying in a second");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let cancel = CancelToken::new();
        let id = job.id.clone();
        state.set_current(Some(Current {
            id: id.clone(),
            cancel: cancel.clone(),
        }));
        let relay = Arc::clone(&state);
        let previews = encoder.as_ref().map(Encoder::previews);
        let finished = state
            .engine
            .run(job, cancel, move |out| match out {
                Outgoing::Text(to, text) | Outgoing::Final(to, text) => {
                    relay.clients.send_text(to, text)
                }
                Outgoing::Preview(preview) => {
                    if let Some(previews) = &previews {
                        previews.submit(preview);
                    }
                }
            })
            .await;
        state.set_current(None);
        if let Err(e) = state.queue.finish(&id, finished.state, &finished.result) {
            tracing::error!(prompt_id = %id, error = %e, "cannot record the finished prompt");
        }
        state.broadcast_status();
    }
}

/// Prunes history now and then, on the blocking pool.
pub async fn prune(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.config.prune_every);
    loop {
        tick.tick().await;
        let pruner = Arc::clone(&state);
        let pruned = tokio::task::spawn_blocking(move || {
            pruner.queue.prune(pruner.config.history, now_ms())
        })
        .await;
        match pruned {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(removed = n, "pruned history"),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot prune history"),
            Err(e) => tracing::warn!(error = %e, "history pruner failed"),
        }
    }
}
