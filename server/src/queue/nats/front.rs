//! The server's side of NATS: it publishes accepted prompts (shipping the input files they name),
//! answers workers' claims from its SQLite queue and the routing rules (a cancelled or finished job is
//! not run; a job is not for a worker without its plugins; a job claimed `max_deliver` times without
//! finishing is recorded failed), keeps the list of live workers, relays each job's events and
//! previews to the WebSocket client that queued it, and records each result once (fetching its files
//! first).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage as Publish};
use async_nats::HeaderMap;
use futures_util::StreamExt;
use serde_json::{json, Value as Json};
use tokio::task::JoinHandle;

use super::directory::Directory;
use super::protocol::{
    Announcement, AttemptFailed, ClaimReply, ClaimRequest, Control, JobMessage, ResultMessage,
    StoredFile, ATTEMPT_SUBJECT, CLAIM_SUBJECT, CONTROL_SUBJECT, EVENTS_PREFIX, FILES_BUCKET,
    FRONT_CONSUMER, INPUTS_BUCKET, JOBS_SUBJECT, METADATA_HEADER, PREVIEWS_PREFIX, RESULTS_STREAM,
    TO_EVERYONE, TO_HEADER, WORKERS_PREFIX,
};
use super::routing::{self, Decision};
use super::{connect, files, FilesMode, Link, NatsError, NatsSettings};
use crate::engine_adapter::{now_ms, Audience};
use crate::preview::EncodedPreview;
use crate::queue::{Job, JobResult, JobState};
use crate::state::AppState;

/// The server's NATS side.
pub struct Front {
    link: Link,
    settings: NatsSettings,
    /// Serialises recording results and delivery failures, so a job is finished once.
    finishing: tokio::sync::Mutex<()>,
    /// The last error a worker reported per job, for the record when it runs out of deliveries.
    last_errors: Mutex<HashMap<String, String>>,
    /// The live workers.
    directory: Directory,
    /// When each job was first declined for a worker (the model preference lasts
    /// [`PREFER_LOADED_FOR`] from then).
    declined: Mutex<HashMap<String, Instant>>,
    /// Running jobs no live worker announces, since when (see [`Front::sweep`]).
    orphaned: Mutex<HashMap<String, Instant>>,
}

/// How long a job waits for an idle worker that has its model loaded before any worker may take it.
pub const PREFER_LOADED_FOR: Duration = Duration::from_secs(10);
/// Room left under `max_payload` for headers: a job message larger than that goes through the
/// object store.
const PAYLOAD_SLACK: usize = 4096;
/// A job's first refusal is forgotten after this long (it only matters for [`PREFER_LOADED_FOR`]).
const FORGET_DECLINED_AFTER: Duration = Duration::from_secs(600);
/// How often the front looks for running jobs that no live worker runs.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front")
            .field("url", &self.settings.url)
            .finish_non_exhaustive()
    }
}

impl Front {
    /// Connects and sets up the streams, the shared worker consumer and the file bucket.
    pub async fn connect(settings: NatsSettings) -> Result<Arc<Front>, NatsError> {
        let link = connect(&settings, "omnigen-server").await?;
        Ok(Arc::new(Front {
            link,
            settings,
            finishing: tokio::sync::Mutex::new(()),
            last_errors: Mutex::new(HashMap::new()),
            directory: Directory::default(),
            declined: Mutex::new(HashMap::new()),
            orphaned: Mutex::new(HashMap::new()),
        }))
    }

    async fn files_bucket(&self) -> Result<jetstream::object_store::ObjectStore, NatsError> {
        self.link
            .js
            .get_object_store(FILES_BUCKET)
            .await
            .map_err(|e| NatsError::new(format!("open object store {FILES_BUCKET}"), e))
    }

    /// Deletes a large job's stored message, if it had one (it is final now).
    async fn forget_stored(&self, id: &str) {
        if let Ok(bucket) = self.files_bucket().await {
            let _ = bucket.delete(JobMessage::stored_name(id).as_str()).await;
        }
    }

    /// The workers heard from within their TTL (`/system_stats`).
    pub fn workers(&self) -> Vec<Announcement> {
        self.directory.live(Instant::now())
    }

    /// Publishes a queued job to the work queue, after shipping the files of `input_dir` it names
    /// (unless the folders are shared); returns once JetStream stored it.
    pub async fn publish(&self, job: &Job, input_dir: &Path) -> Result<(), NatsError> {
        let doing = format!("publish prompt {}", job.id);
        let mut message = JobMessage::of(job);
        if self.settings.files == FilesMode::ObjectStore {
            let (prompt, dir) = (job.prompt.clone(), input_dir.to_path_buf());
            let inputs = tokio::task::spawn_blocking(move || files::inputs_of(&prompt, &dir))
                .await
                .map_err(|e| NatsError::new(&doing, e))?;
            if !inputs.is_empty() {
                let bucket = self
                    .link
                    .js
                    .get_object_store(INPUTS_BUCKET)
                    .await
                    .map_err(|e| NatsError::new(format!("open object store {INPUTS_BUCKET}"), e))?;
                files::ship_inputs(&bucket, &inputs).await?;
            }
            message.inputs = inputs.into_iter().map(|(file, _)| file).collect();
        }
        let mut payload = serde_json::to_vec(&message).map_err(|e| NatsError::new(&doing, e))?;
        if payload.len() + PAYLOAD_SLACK > self.link.client.server_info().max_payload {
            // Too large for one NATS message: the whole message goes to the object store and a stub
            // naming it to the stream.
            let bucket = self.files_bucket().await?;
            let name = JobMessage::stored_name(&job.id);
            bucket
                .put(name.as_str(), &mut payload.as_slice())
                .await
                .map_err(|e| NatsError::new(format!("store the large prompt {}", job.id), e))?;
            payload = serde_json::to_vec(&message.stub()).map_err(|e| NatsError::new(&doing, e))?;
        }
        let ack = self
            .link
            .js
            .send_publish(
                JOBS_SUBJECT,
                Publish::build().payload(payload.into()).message_id(&job.id),
            )
            .await
            .map_err(|e| NatsError::new(&doing, e))?;
        ack.await.map_err(|e| NatsError::new(&doing, e))?;
        Ok(())
    }

    /// Tells every worker (interrupt, free memory).
    pub async fn control(&self, control: &Control) {
        let publish = async {
            let body = serde_json::to_vec(control).map_err(|e| e.to_string())?;
            self.link
                .client
                .publish(CONTROL_SUBJECT, body.into())
                .await
                .map_err(|e| e.to_string())?;
            self.link.client.flush().await.map_err(|e| e.to_string())
        };
        if let Err(e) = publish.await {
            tracing::error!(error = %e, ?control, "cannot tell the workers");
        }
    }

    /// Starts the tasks that serve workers: claims, events, previews, results, attempts, advisories.
    pub async fn spawn(
        self: &Arc<Self>,
        state: Arc<AppState>,
    ) -> Result<Vec<JoinHandle<()>>, NatsError> {
        let client = &self.link.client;
        let sub = |subject: String| async move {
            client
                .subscribe(subject.clone())
                .await
                .map_err(|e| NatsError::new(format!("subscribe to {subject}"), e))
        };
        let claims = sub(CLAIM_SUBJECT.into()).await?;
        let events = sub(format!("{EVENTS_PREFIX}.>")).await?;
        let previews = sub(PREVIEWS_PREFIX.into()).await?;
        let attempts = sub(ATTEMPT_SUBJECT.into()).await?;
        let announcements = sub(format!("{WORKERS_PREFIX}.*")).await?;
        let results = self
            .link
            .js
            .get_stream(RESULTS_STREAM)
            .await
            .map_err(|e| NatsError::new(format!("open stream {RESULTS_STREAM}"), e))?
            .get_consumer::<jetstream::consumer::pull::Config>(FRONT_CONSUMER)
            .await
            .map_err(|e| NatsError::new(format!("open consumer {FRONT_CONSUMER}"), e))?
            .messages()
            .await
            .map_err(|e| NatsError::new(format!("consume {RESULTS_STREAM}"), e))?;
        Ok(vec![
            tokio::spawn(Arc::clone(self).answer_claims(Arc::clone(&state), claims)),
            tokio::spawn(relay_events(Arc::clone(&state), events)),
            tokio::spawn(relay_previews(Arc::clone(&state), previews)),
            tokio::spawn(Arc::clone(self).note_attempts(attempts)),
            tokio::spawn(Arc::clone(self).record_results(Arc::clone(&state), results)),
            tokio::spawn(Arc::clone(self).note_workers(announcements)),
            tokio::spawn(Arc::clone(self).sweep(state)),
        ])
    }

    /// Every [`SWEEP_EVERY`]: a job recorded running that no live worker has announced running for
    /// longer than the ack wait plus a worker's TTL is run by nobody (its worker died, and no worker
    /// is left to be delivered it again, or the job's last attempt is used up). It is recorded failed
    /// if it was claimed `max_deliver` times, else put back to pending (its message waits in the
    /// stream for the next worker; it can be cancelled meanwhile).
    async fn sweep(self: Arc<Self>, state: Arc<AppState>) {
        let grace = self.settings.ack_wait + super::worker::ANNOUNCE_TTL;
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tick.tick().await;
            let running = match state.queue.running() {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "sweep: cannot read running jobs");
                    continue;
                }
            };
            let now = Instant::now();
            // Refusals of jobs long gone (cancelled, finished elsewhere) are forgotten.
            self.declined
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, first| now.duration_since(*first) < FORGET_DECLINED_AFTER);
            let busy: Vec<String> = self
                .directory
                .live(now)
                .into_iter()
                .filter_map(|w| w.running)
                .collect();
            let due: Vec<Job> = {
                let mut orphaned = self.orphaned.lock().unwrap_or_else(|p| p.into_inner());
                orphaned.retain(|id, _| running.iter().any(|j| &j.id == id) && !busy.contains(id));
                running
                    .into_iter()
                    .filter(|job| !busy.contains(&job.id))
                    .filter(|job| {
                        let since = *orphaned.entry(job.id.clone()).or_insert(now);
                        now.duration_since(since) >= grace
                    })
                    .collect()
            };
            for job in due {
                self.orphaned
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&job.id);
                if i64::from(job.attempts) >= self.settings.max_deliver {
                    if let Err(e) = self.exhausted(&state, &job).await {
                        tracing::error!(prompt_id = %job.id, error = %e, "sweep: cannot record a failure");
                    }
                    continue;
                }
                match state.queue.release(&job.id) {
                    Ok(true) => {
                        tracing::warn!(prompt_id = %job.id, "no live worker runs it: pending again");
                        state.broadcast_status();
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(prompt_id = %job.id, error = %e, "sweep: cannot release")
                    }
                }
            }
        }
    }

    async fn note_workers(self: Arc<Self>, mut announcements: async_nats::Subscriber) {
        while let Some(message) = announcements.next().await {
            match serde_json::from_slice::<Announcement>(&message.payload) {
                Ok(announcement) => self.directory.note(announcement, Instant::now()),
                Err(e) => tracing::warn!(error = %e, "a malformed worker announcement"),
            }
        }
    }

    async fn answer_claims(
        self: Arc<Self>,
        state: Arc<AppState>,
        mut claims: async_nats::Subscriber,
    ) {
        while let Some(message) = claims.next().await {
            let Some(reply) = message.reply.clone() else {
                continue;
            };
            let answer = match serde_json::from_slice::<ClaimRequest>(&message.payload) {
                Ok(claim) => match self.answer(&state, &claim).await {
                    Ok(answer) => answer,
                    Err(e) => {
                        // No answer: the worker retries later.
                        tracing::error!(prompt_id = %claim.id, error = %e, "cannot answer a claim");
                        continue;
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "a malformed claim");
                    no(None)
                }
            };
            let run = answer.run;
            let body = json!(answer).to_string();
            if let Err(e) = self.link.client.publish(reply, body.into()).await {
                tracing::warn!(error = %e, "cannot answer a claim");
            }
            if run {
                state.broadcast_status();
            }
        }
    }

    /// Whether `claim`'s worker runs its job: not when it is gone or final; failed when it was
    /// claimed `max_deliver` times already; not for a worker the routing rules send elsewhere.
    async fn answer(&self, state: &AppState, claim: &ClaimRequest) -> Result<ClaimReply, String> {
        let Some(job) = state.queue.job(&claim.id).map_err(|e| e.to_string())? else {
            return Ok(no(None));
        };
        if job.state.is_final() {
            return Ok(no(None));
        }
        if job.state == JobState::Running && i64::from(job.attempts) >= self.settings.max_deliver {
            self.exhausted(state, &job)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(no(None));
        }
        let builds = self.settings.plugins.current();
        let required = routing::required_plugins(&job.prompt, &builds);
        let now = Instant::now();
        let prefer = {
            let declined = self.declined.lock().unwrap_or_else(|p| p.into_inner());
            declined
                .get(&claim.id)
                .is_none_or(|first| now.duration_since(*first) < PREFER_LOADED_FOR)
        };
        let live = self.directory.live(now);
        if let Decision::NotForYou(reason) =
            routing::decide(&job.prompt, &required, claim, &live, prefer)
        {
            tracing::debug!(prompt_id = %claim.id, worker = %claim.worker, %reason, "not for this worker");
            self.declined
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(claim.id.clone())
                .or_insert(now);
            return Ok(ClaimReply {
                run: false,
                later: true,
                reason: Some(reason),
            });
        }
        let claimed = state.queue.claim(&claim.id).map_err(|e| e.to_string())?;
        self.declined
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&claim.id);
        if claimed.is_some() {
            tracing::debug!(prompt_id = %claim.id, worker = %claim.worker, "claimed");
        }
        Ok(ClaimReply {
            run: claimed.is_some(),
            later: false,
            reason: None,
        })
    }

    async fn note_attempts(self: Arc<Self>, mut attempts: async_nats::Subscriber) {
        while let Some(message) = attempts.next().await {
            if let Ok(attempt) = serde_json::from_slice::<AttemptFailed>(&message.payload) {
                tracing::warn!(prompt_id = %attempt.id, worker = %attempt.worker, error = %attempt.error, "an attempt failed");
                self.last_errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(attempt.id, attempt.error);
            }
        }
    }

    async fn record_results(
        self: Arc<Self>,
        state: Arc<AppState>,
        mut results: jetstream::consumer::pull::Stream,
    ) {
        while let Some(message) = results.next().await {
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "reading results");
                    continue;
                }
            };
            match serde_json::from_slice::<ResultMessage>(&message.payload) {
                Ok(result) => self.record(&state, result).await,
                Err(e) => tracing::error!(error = %e, "a malformed result; dropped"),
            }
            if let Err(e) = message.ack().await {
                tracing::warn!(error = %e, "cannot ack a result (it will be seen again and ignored)");
            }
        }
    }

    /// Records one result unless its job is already final (a second run after a redelivery).
    async fn record(&self, state: &AppState, result: ResultMessage) {
        let _once = self.finishing.lock().await;
        let bucket = match self.link.js.get_object_store(FILES_BUCKET).await {
            Ok(bucket) => bucket,
            Err(e) => {
                tracing::error!(error = %e, "cannot open the file bucket");
                return;
            }
        };
        let id = result.id.clone();
        match state.queue.job(&id) {
            Ok(Some(job)) if !job.state.is_final() => {}
            Ok(_) => {
                tracing::info!(prompt_id = %id, worker = %result.worker, "a duplicate result; ignored");
                if !result.in_place {
                    discard(&bucket, &id, &result.files).await;
                }
                return;
            }
            Err(e) => {
                tracing::error!(prompt_id = %id, error = %e, "cannot read the job of a result");
                return;
            }
        }
        let mut finished = JobState::parse(&result.state)
            .filter(|s| s.is_final())
            .unwrap_or(JobState::Failed);
        let mut messages = result.messages;
        let arrived = if result.in_place {
            files::check_in_place(&state.config.folders, &result.files)
        } else {
            files::fetch(&bucket, &id, &state.config.folders, &result.files).await
        };
        if let Err(e) = arrived {
            tracing::error!(prompt_id = %id, error = %e, "cannot fetch a result's files");
            finished = JobState::Failed;
            if let Json::Array(list) = &mut messages {
                list.push(json!([
                    "execution_error",
                    error_data(&id, &format!("the outputs did not arrive: {e}"))
                ]));
            }
        }
        let record = JobResult {
            outputs: result.outputs,
            messages,
        };
        if let Err(e) = state.queue.finish(&id, finished, &record) {
            tracing::error!(prompt_id = %id, error = %e, "cannot record a result");
            return;
        }
        self.last_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.forget_stored(&id).await;
        for closing in result.closing {
            state
                .clients
                .send_text(&audience(closing.to.as_deref()), closing.text);
        }
        state.broadcast_status();
    }

    /// A job claimed `max_deliver` times without a result: failed, with the last error known. Its
    /// message is acked by the worker that is told not to run it.
    async fn exhausted(&self, state: &AppState, job: &Job) -> Result<(), NatsError> {
        let _once = self.finishing.lock().await;
        let deliveries = job.attempts;
        let known = self
            .last_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&job.id);
        let error = match known {
            Some(e) => format!("delivered {deliveries} times without finishing; last error: {e}"),
            None => format!(
                "delivered {deliveries} times without finishing: each worker that took it stopped (crashed, was killed or lost its connection) before a result"
            ),
        };
        let final_now = state
            .queue
            .job(&job.id)
            .map_err(|e| NatsError::new("read the queue", e))?
            .is_some_and(|j| j.state.is_final());
        if final_now {
            return Ok(());
        }
        let data = error_data(&job.id, &error);
        let record = JobResult {
            outputs: json!({}),
            messages: json!([["execution_error", data.clone()]]),
        };
        state
            .queue
            .finish(&job.id, JobState::Failed, &record)
            .map_err(|e| NatsError::new("record the failure", e))?;
        tracing::error!(prompt_id = %job.id, %error, "recorded failed");
        self.forget_stored(&job.id).await;
        if let Some(client) = &job.client_id {
            let to = Audience::Client(client.clone());
            state
                .clients
                .send(&to, &json!({"type": "execution_error", "data": data}));
            state.clients.send(
                &to,
                &json!({"type": "executing", "data": {"node": null, "display_node": null, "prompt_id": job.id}}),
            );
        }
        state.broadcast_status();
        Ok(())
    }
}

/// "Do not run it" (cancelled, finished or failed).
fn no(reason: Option<String>) -> ClaimReply {
    ClaimReply {
        run: false,
        later: false,
        reason,
    }
}

/// Deletes the files of a result that will not be recorded.
async fn discard(bucket: &jetstream::object_store::ObjectStore, id: &str, files: &[StoredFile]) {
    for file in files {
        let _ = bucket.delete(file.object_name(id).as_str()).await;
    }
}

/// `execution_error`'s data for a failure outside any node.
fn error_data(prompt_id: &str, message: &str) -> Json {
    json!({
        "prompt_id": prompt_id,
        "node_id": "",
        "node_type": "",
        "executed": [],
        "exception_message": message,
        "exception_type": "delivery",
        "traceback": [],
        "current_inputs": {},
        "current_outputs": [],
        "timestamp": now_ms(),
    })
}

fn audience(to: Option<&str>) -> Audience {
    match to {
        None | Some(TO_EVERYONE) => Audience::Everyone,
        Some(sid) => Audience::Client(sid.to_string()),
    }
}

fn header_audience(headers: Option<&HeaderMap>) -> Audience {
    audience(headers.and_then(|h| h.get(TO_HEADER)).map(|v| v.as_str()))
}

/// Each worker event, unchanged, to the socket it names.
async fn relay_events(state: Arc<AppState>, mut events: async_nats::Subscriber) {
    while let Some(message) = events.next().await {
        let to = header_audience(message.headers.as_ref());
        match String::from_utf8(message.payload.to_vec()) {
            Ok(text) => state.clients.send_text(&to, text),
            Err(_) => {
                tracing::warn!(subject = %message.subject, "an event that is not UTF-8; dropped")
            }
        }
    }
}

/// Each worker preview (already encoded) to the socket it names.
async fn relay_previews(state: Arc<AppState>, mut previews: async_nats::Subscriber) {
    while let Some(message) = previews.next().await {
        let to = header_audience(message.headers.as_ref());
        let metadata = message
            .headers
            .as_ref()
            .and_then(|h| h.get(METADATA_HEADER))
            .map(|v| v.as_str().to_string())
            .unwrap_or_default();
        let preview = EncodedPreview {
            image: message.payload,
            metadata,
        };
        state.clients.send_preview(&to, Arc::new(preview));
    }
}
