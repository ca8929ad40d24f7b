//! `omnigen worker`: announces itself every few seconds (device, memory, loaded models, plugins),
//! pulls jobs from the shared consumer one at a time, asks the server whether to run each (it may have
//! been cancelled, finished by an earlier delivery, or be for a worker with other plugins: then it is
//! given back), takes the input files it needs, runs it with the same [`Engine`] the embedded server
//! uses, heartbeats (`AckProgress`) while it runs, publishes its events and previews as they come,
//! stores its files in the object store (or leaves them in the shared folder), publishes its result,
//! then acks.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::{self, AckKind};
use async_nats::HeaderMap;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

use super::protocol::{
    Announcement, AttemptFailed, ClaimReply, ClaimRequest, Closing, Control, JobMessage,
    ResultMessage, ATTEMPT_SUBJECT, CLAIM_SUBJECT, CONTROL_SUBJECT, EVENTS_PREFIX, FILES_BUCKET,
    INPUTS_BUCKET, JOBS_STREAM, METADATA_HEADER, PREVIEWS_PREFIX, RESULTS_SUBJECT, TO_EVERYONE,
    TO_HEADER, WORKERS_CONSUMER, WORKERS_PREFIX,
};
use super::{connect, files, routing, FilesMode, Link, NatsError, NatsSettings};
use crate::engine_adapter::{
    new_prompt_id, Audience, CancelToken, Dirs, Engine, Outgoing, Registry,
};
use crate::preview::{EncodedPreview, Encoder};
use crate::queue::JobState;

/// How long a worker waits for the server's answer to a claim before asking again.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a pull request waits for a job before asking again (and checking for shutdown).
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// How often a worker announces itself.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(2);
/// How long the front keeps a worker it has not heard from (four missed announcements).
pub const ANNOUNCE_TTL: Duration = Duration::from_secs(8);
/// How long a job not for this worker is held back from redelivery (to it or another), times its
/// deliveries so far (at most 20: 10 s).
const GIVE_BACK_DELAY: Duration = Duration::from_millis(500);
/// How many loaded models a worker remembers (most recent first).
const MODELS_KEPT: usize = 4;

/// What a worker is started with.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// How to reach NATS.
    pub settings: NatsSettings,
    /// This worker's name (logs, results).
    pub name: String,
    /// The folders its nodes read and write.
    pub dirs: Dirs,
    /// The device its model nodes use (announced).
    pub device: String,
}

/// The job being run, so a control message can interrupt it.
type Current = Arc<Mutex<Option<(String, CancelToken)>>>;

/// The model keys of the last jobs run (see [`routing::model_keys`]), most recent first.
type Models = Arc<Mutex<Vec<String>>>;

/// What the front said about a delivered job.
enum Answer {
    Run,
    Drop,
    GiveBack(String),
}

/// Runs jobs until `stop` completes (between jobs; a job running then is left to be redelivered).
pub async fn run_worker(
    config: WorkerConfig,
    registry: Arc<Registry>,
    stop: impl Future<Output = ()>,
) -> Result<(), NatsError> {
    for dir in [&config.dirs.input, &config.dirs.output, &config.dirs.temp] {
        std::fs::create_dir_all(dir)
            .map_err(|e| NatsError::new(format!("create {}", dir.display()), e))?;
    }
    let link = connect(&config.settings, &config.name).await?;
    let consumer: jetstream::consumer::Consumer<pull::Config> = link
        .js
        .get_stream(JOBS_STREAM)
        .await
        .map_err(|e| NatsError::new(format!("open stream {JOBS_STREAM}"), e))?
        .get_consumer(WORKERS_CONSUMER)
        .await
        .map_err(|e| NatsError::new(format!("open consumer {WORKERS_CONSUMER}"), e))?;
    // The consumer's own ack wait (whoever created it set it), so heartbeats always beat it.
    let ack_wait = consumer.cached_info().config.ack_wait;
    let engine = Arc::new(Engine::new(registry, config.dirs.clone()));
    let current: Current = Arc::default();
    let models: Models = Arc::default();
    let control = link
        .client
        .subscribe(CONTROL_SUBJECT)
        .await
        .map_err(|e| NatsError::new(format!("subscribe to {CONTROL_SUBJECT}"), e))?;
    let controls = tokio::spawn(obey(
        control,
        Arc::clone(&current),
        Arc::clone(&models),
        Arc::clone(&engine),
    ));
    let herald = Herald {
        client: link.client.clone(),
        id: worker_id(&config.name),
        name: config.name.clone(),
        device: config.device.clone(),
        settings: config.settings.clone(),
        current: Arc::clone(&current),
        models: Arc::clone(&models),
        changed: Arc::default(),
    };
    herald.announce(false).await;
    let announcing = tokio::spawn(herald.clone().run());
    let outbound = Outbound::start(link.client.clone());
    let to_previews = outbound.clone();
    let encoder = Encoder::start(move |to, preview| to_previews.preview(to, preview))
        .map_err(|e| NatsError::new("start the preview encoder", e))?;
    let worker = Worker {
        link,
        name: config.name,
        files: config.settings.files,
        dirs: config.dirs,
        engine,
        current,
        models,
        herald: herald.clone(),
        outbound,
        encoder,
        heartbeat: (ack_wait / 3).max(Duration::from_millis(100)),
        given_back: Mutex::default(),
    };
    tokio::pin!(stop);
    loop {
        let batch = tokio::select! {
            () = &mut stop => break,
            batch = consumer.batch().max_messages(1).expires(PULL_EXPIRES).messages() => batch,
        };
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "cannot pull a job; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(message) = batch.next().await {
            match message {
                Ok(message) => worker.take(message).await,
                Err(e) => tracing::debug!(error = %e, "pull"),
            }
        }
    }
    controls.abort();
    announcing.abort();
    herald.announce(true).await;
    Ok(())
}

/// Announces the worker on `omnigen.workers.<id>` every [`ANNOUNCE_EVERY`], and at once when a job
/// starts or ends.
#[derive(Clone)]
struct Herald {
    client: async_nats::Client,
    id: String,
    name: String,
    device: String,
    settings: NatsSettings,
    current: Current,
    models: Models,
    changed: Arc<tokio::sync::Notify>,
}

impl Herald {
    async fn run(self) {
        let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.changed.notified() => {}
            }
            self.announce(false).await;
        }
    }

    fn announcement(&self, leaving: bool) -> Announcement {
        let (total, free) = crate::routes::info::memory();
        let known = |bytes: u64| (bytes > 0).then_some(bytes);
        Announcement {
            id: self.id.clone(),
            name: self.name.clone(),
            device: self.device.clone(),
            ram_free: known(free),
            ram_total: known(total),
            vram_free: None,
            models: self
                .models
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            plugins: self.settings.plugins.current(),
            running: self
                .current
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|(id, _)| id.clone()),
            every_ms: millis(ANNOUNCE_EVERY),
            ttl_ms: millis(ANNOUNCE_TTL),
            leaving,
        }
    }

    async fn announce(&self, leaving: bool) {
        let subject = format!("{WORKERS_PREFIX}.{}", self.id);
        let sent = match serde_json::to_vec(&self.announcement(leaving)) {
            Ok(body) => self
                .client
                .publish(subject, body.into())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if leaving {
            let _ = self.client.flush().await;
        }
        if let Err(e) = sent {
            tracing::debug!(error = %e, "cannot announce the worker");
        }
    }
}

/// The name plus a random suffix, as one NATS subject token (`[A-Za-z0-9_-]`).
fn worker_id(name: &str) -> String {
    let token: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let suffix: String = new_prompt_id()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect();
    format!("{token}-{suffix}")
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

struct Worker {
    link: Link,
    name: String,
    files: FilesMode,
    dirs: Dirs,
    engine: Arc<Engine>,
    current: Current,
    models: Models,
    herald: Herald,
    outbound: Outbound,
    encoder: Encoder,
    heartbeat: Duration,
    given_back: Mutex<std::collections::HashSet<String>>,
}

impl Worker {
    /// One delivered job: claim, run, store, publish, ack.
    async fn take(&self, message: jetstream::Message) {
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
        let mut job: JobMessage = match serde_json::from_slice(&message.payload) {
            Ok(job) => job,
            Err(e) => {
                // Not a job this version can read: never deliver it again.
                tracing::error!(error = %e, "a malformed job message; terminated");
                let _ = message.ack_with(AckKind::Term).await;
                return;
            }
        };
        let id = job.id.clone();
        match self.claim_patiently(&message, &id).await {
            Answer::Run => {}
            Answer::Drop => {
                tracing::info!(prompt_id = %id, "cancelled or already finished; dropped");
                let _ = message.ack().await;
                return;
            }
            Answer::GiveBack(reason) => {
                if self.first_give_back(&id) {
                    tracing::info!(prompt_id = %id, %reason, "not for this worker; given back");
                }
                // Longer each time it comes back, so jobs nobody can run do not spin.
                let times = u32::try_from(delivered.clamp(1, 20)).unwrap_or(20);
                let _ = message
                    .ack_with(AckKind::Nak(Some(GIVE_BACK_DELAY * times)))
                    .await;
                return;
            }
        }
        if let Some(name) = job.stored.clone() {
            match self.stored_job(&name).await {
                Ok(full) if full.id == id => {
                    tracing::info!(prompt_id = %id, object = %name, "a large prompt, read from the object store");
                    job = full;
                }
                outcome => {
                    let error = match outcome {
                        Ok(_) => format!("{name} holds another prompt"),
                        Err(e) => e.to_string(),
                    };
                    self.attempt_failed(&message, &id, error).await;
                    return;
                }
            }
        }
        tracing::info!(prompt_id = %id, worker = %self.name, delivered, "running");
        let message = Arc::new(message);
        let beating = Arc::clone(&message);
        let every = self.heartbeat;
        let heartbeat = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = beating.ack_with(AckKind::Progress).await {
                    tracing::warn!(error = %e, "cannot send a heartbeat");
                }
            }
        });
        let outcome = self
            .run(job, u32::try_from(delivered).unwrap_or(u32::MAX))
            .await;
        heartbeat.abort();
        match outcome {
            Ok(()) => {
                if let Err(e) = message.double_ack().await {
                    // The result is published; a redelivery is answered "already finished".
                    tracing::warn!(prompt_id = %id, error = %e, "cannot ack a finished job");
                }
                tracing::info!(prompt_id = %id, worker = %self.name, "finished");
            }
            Err(e) => self.attempt_failed(&message, &id, e.to_string()).await,
        }
    }

    /// Reports an attempt that ended without a result and puts the job back.
    async fn attempt_failed(&self, message: &jetstream::Message, id: &str, error: String) {
        tracing::error!(prompt_id = %id, %error, "attempt failed; job put back");
        let attempt = AttemptFailed {
            id: id.to_string(),
            worker: self.name.clone(),
            error,
        };
        if let Ok(body) = serde_json::to_vec(&attempt) {
            let _ = self.link.client.publish(ATTEMPT_SUBJECT, body.into()).await;
            let _ = self.link.client.flush().await;
        }
        let _ = message
            .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
            .await;
    }

    /// A large job's whole message, from the object store.
    async fn stored_job(&self, name: &str) -> Result<JobMessage, NatsError> {
        let doing = format!("read the large prompt {name}");
        let bucket = self
            .link
            .js
            .get_object_store(FILES_BUCKET)
            .await
            .map_err(|e| NatsError::new(&doing, e))?;
        let mut object = bucket
            .get(name)
            .await
            .map_err(|e| NatsError::new(&doing, e))?;
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| NatsError::new(&doing, e))?;
        serde_json::from_slice(&bytes).map_err(|e| NatsError::new(&doing, e))
    }

    /// Whether `id` is given back for the first time (logged once, not at every redelivery).
    fn first_give_back(&self, id: &str) -> bool {
        let mut seen = self.given_back.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 10_000 {
            seen.clear();
        }
        seen.insert(id.to_string())
    }

    /// Asks the front until it answers, keeping the job meanwhile (`AckProgress`): a front that is
    /// down or restarting must not use up the job's deliveries.
    async fn claim_patiently(&self, message: &jetstream::Message, id: &str) -> Answer {
        let mut warned = false;
        loop {
            match self.claim(id).await {
                Ok(run) => return run,
                Err(e) => {
                    if !warned {
                        tracing::warn!(prompt_id = %id, error = %e, "the server does not answer; holding the job and asking again");
                        warned = true;
                    }
                    let _ = message.ack_with(AckKind::Progress).await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn claim(&self, id: &str) -> Result<Answer, String> {
        let me = self.herald.announcement(false);
        let body = serde_json::to_vec(&ClaimRequest {
            id: id.to_string(),
            worker: self.name.clone(),
            worker_id: me.id,
            plugins: me.plugins,
            models: me.models,
        })
        .map_err(|e| e.to_string())?;
        let request = self.link.client.request(CLAIM_SUBJECT, body.into());
        let answer = tokio::time::timeout(CLAIM_TIMEOUT, request)
            .await
            .map_err(|_| format!("no answer within {CLAIM_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        let reply: ClaimReply =
            serde_json::from_slice(&answer.payload).map_err(|e| e.to_string())?;
        Ok(match reply {
            ClaimReply { run: true, .. } => Answer::Run,
            ClaimReply {
                later: true,
                reason,
                ..
            } => Answer::GiveBack(reason.unwrap_or_default()),
            _ => Answer::Drop,
        })
    }

    /// Runs the job and publishes its result (after its events and files).
    async fn run(&self, job: JobMessage, attempts: u32) -> Result<(), NatsError> {
        let id = job.id.clone();
        let cancel = CancelToken::new();
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((id.clone(), cancel.clone()));
        self.herald.changed.notify_one();
        let outcome = self.run_current(job, attempts, cancel).await;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.herald.changed.notify_one();
        outcome
    }

    /// [`Worker::run`] once the job is announced as running.
    async fn run_current(
        &self,
        job: JobMessage,
        attempts: u32,
        cancel: CancelToken,
    ) -> Result<(), NatsError> {
        let id = job.id.clone();
        if !job.inputs.is_empty() {
            let bucket = self
                .link
                .js
                .get_object_store(INPUTS_BUCKET)
                .await
                .map_err(|e| NatsError::new(format!("open object store {INPUTS_BUCKET}"), e))?;
            files::receive_inputs(&bucket, &self.dirs.input, &job.inputs).await?;
        }
        let model_keys = routing::model_keys(&job.prompt);
        let closing: Arc<Mutex<Vec<Closing>>> = Arc::default();
        let held = Arc::clone(&closing);
        let events = self.outbound.clone();
        let previews = self.encoder.previews();
        let subject = format!("{EVENTS_PREFIX}.{id}");
        let finished = self
            .engine
            .run(job.into_job(attempts), cancel, move |out| match out {
                Outgoing::Text(to, text) => events.text(subject.clone(), to, text),
                Outgoing::Final(Audience::Nobody, _) => {}
                Outgoing::Final(to, text) => held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Closing { to: sid(to), text }),
                Outgoing::Preview(preview) => previews.submit(preview),
            })
            .await;
        if finished.state == JobState::Completed && !model_keys.is_empty() {
            remember(&self.models, model_keys);
        }
        let stored = match self.files {
            FilesMode::Shared => finished.saved.iter().map(files::record).collect(),
            FilesMode::ObjectStore => {
                let bucket = self
                    .link
                    .js
                    .get_object_store(FILES_BUCKET)
                    .await
                    .map_err(|e| NatsError::new(format!("open object store {FILES_BUCKET}"), e))?;
                files::store(&bucket, &id, &self.dirs, &finished.saved).await?
            }
        };
        // Every event of the run reaches NATS before its result.
        self.outbound.flush().await;
        let result = ResultMessage {
            id: id.clone(),
            worker: self.name.clone(),
            state: finished.state.as_str().to_string(),
            outputs: finished.result.outputs,
            messages: finished.result.messages,
            files: stored,
            closing: std::mem::take(&mut *closing.lock().unwrap_or_else(|p| p.into_inner())),
            in_place: self.files == FilesMode::Shared,
        };
        let doing = format!("publish the result of {id}");
        let body = serde_json::to_vec(&result).map_err(|e| NatsError::new(&doing, e))?;
        let ack = self
            .link
            .js
            .send_publish(
                RESULTS_SUBJECT,
                Publish::build()
                    .payload(body.into())
                    .message_id(format!("{id}.{}.{attempts}", self.name)),
            )
            .await
            .map_err(|e| NatsError::new(&doing, e))?;
        ack.await.map_err(|e| NatsError::new(&doing, e))?;
        Ok(())
    }
}

/// The client a message is for (`None`: everyone).
fn sid(to: &Audience) -> Option<String> {
    match to {
        Audience::Client(sid) => Some(sid.clone()),
        Audience::Everyone | Audience::Nobody => None,
    }
}

/// Puts `keys` first in the remembered models, keeping [`MODELS_KEPT`].
fn remember(models: &Models, keys: Vec<String>) {
    let mut models = models.lock().unwrap_or_else(|p| p.into_inner());
    models.retain(|m| !keys.contains(m));
    let mut next = keys;
    next.append(&mut models);
    next.truncate(MODELS_KEPT);
    *models = next;
}

/// Control messages: interrupt the running job, free the cache.
async fn obey(
    mut control: async_nats::Subscriber,
    current: Current,
    models: Models,
    engine: Arc<Engine>,
) {
    while let Some(message) = control.next().await {
        match serde_json::from_slice::<Control>(&message.payload) {
            Ok(Control::Interrupt { prompt_id }) => {
                let running = current.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some((id, cancel)) = running {
                    if prompt_id.as_deref().is_none_or(|wanted| wanted == id) {
                        tracing::info!(prompt_id = %id, "interrupted");
                        cancel.cancel();
                    }
                }
            }
            Ok(Control::FreeMemory) => {
                engine.free_memory();
                models.lock().unwrap_or_else(|p| p.into_inner()).clear();
            }
            Err(e) => tracing::warn!(error = %e, "a malformed control message"),
        }
    }
}

/// Events and previews leave in the order the run made them, on one task, without blocking execution.
#[derive(Clone)]
struct Outbound {
    tx: mpsc::UnboundedSender<Out>,
}

enum Out {
    Text {
        subject: String,
        to: Option<String>,
        text: String,
    },
    Preview {
        to: Option<String>,
        preview: Arc<EncodedPreview>,
    },
    Flush(oneshot::Sender<()>),
}

impl Outbound {
    fn start(client: async_nats::Client) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
        tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                let sent = match out {
                    Out::Text { subject, to, text } => {
                        client
                            .publish_with_headers(subject, headers(to.as_deref()), text.into())
                            .await
                    }
                    Out::Preview { to, preview } => {
                        let mut h = headers(to.as_deref());
                        h.insert(METADATA_HEADER, preview.metadata.as_str());
                        client
                            .publish_with_headers(PREVIEWS_PREFIX, h, preview.image.clone())
                            .await
                    }
                    Out::Flush(done) => {
                        let _ = client.flush().await;
                        let _ = done.send(());
                        Ok(())
                    }
                };
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "cannot publish an event");
                }
            }
        });
        Outbound { tx }
    }

    fn text(&self, subject: String, to: &Audience, text: String) {
        if *to == Audience::Nobody {
            return;
        }
        let _ = self.tx.send(Out::Text {
            subject,
            to: sid(to),
            text,
        });
    }

    fn preview(&self, to: &Audience, preview: Arc<EncodedPreview>) {
        if *to == Audience::Nobody {
            return;
        }
        let _ = self.tx.send(Out::Preview {
            to: sid(to),
            preview,
        });
    }

    async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Out::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

fn headers(to: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(TO_HEADER, to.unwrap_or(TO_EVERYONE));
    h
}
