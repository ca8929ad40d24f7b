//! Scale-out on NATS JetStream (docs/scale-out.md): the server stays the front (its SQLite queue is
//! the history `/history`, `/jobs` and `/view` read), publishes accepted prompts to a work-queue stream
//! and never runs them; `omnigen worker` processes pull them, run them with the same engine, and send
//! back events, files and results.
//!
//! - [`protocol`]: subjects, streams and message bodies.
//! - [`front`]: the server's side (publish, claims, results, events relay, max-deliver advisories).
//! - [`worker`]: the worker's side.
//! - [`files`]: moving output and input files through the object store.
//! - [`routing`]: which worker may run a job (plugins, loaded models).
//! - [`directory`]: the front's list of live workers (announcements with a TTL).

pub mod directory;
pub mod files;
pub mod front;
pub mod protocol;
pub mod routing;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, object_store, stream};

use protocol::{
    PluginBuild, FILES_BUCKET, FRONT_CONSUMER, INPUTS_BUCKET, INPUTS_MAX_AGE, JOBS_STREAM,
    JOBS_SUBJECT, RESULTS_STREAM, RESULTS_SUBJECT, WORKERS_CONSUMER,
};

pub use front::Front;
pub use worker::{run_worker, WorkerConfig};

/// How files travel between the front and its workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FilesMode {
    /// Through JetStream's object store: outputs to the front, uploaded inputs to the workers.
    #[default]
    ObjectStore,
    /// The workers' folders are the server's (a shared mount): outputs are written in place, inputs
    /// read in place, nothing is copied.
    Shared,
}

impl FilesMode {
    /// Parses `object-store` or `shared`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "object-store" => Ok(FilesMode::ObjectStore),
            "shared" => Ok(FilesMode::Shared),
            other => Err(format!(
                "--files {other}: use object-store (the default) or shared"
            )),
        }
    }
}

/// The plugin builds a process has loaded now (plugins reload while it runs), asked for each time.
#[derive(Clone)]
pub struct PluginList(Arc<dyn Fn() -> Vec<PluginBuild> + Send + Sync>);

impl PluginList {
    /// A list read by `current` each time.
    pub fn new(current: impl Fn() -> Vec<PluginBuild> + Send + Sync + 'static) -> Self {
        PluginList(Arc::new(current))
    }

    /// The builds loaded now.
    pub fn current(&self) -> Vec<PluginBuild> {
        (self.0)()
    }
}

impl Default for PluginList {
    fn default() -> Self {
        PluginList::new(Vec::new)
    }
}

impl std::fmt::Debug for PluginList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.current().iter().map(|b| &b.name))
            .finish()
    }
}

/// How to reach NATS and how jobs are delivered.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// `nats://HOST:PORT` (several separated by commas; `tls://` for TLS).
    pub url: String,
    /// A job not acked nor heartbeated for this long goes to another worker (its worker is presumed
    /// dead). Workers heartbeat every third of it.
    pub ack_wait: Duration,
    /// A job claimed this many times without finishing is recorded failed (counted by the front, in
    /// SQLite's `attempts`; refusals by routing do not count).
    pub max_deliver: i64,
    /// A NATS credentials file (`.creds`), passed through to the client.
    pub credentials: Option<PathBuf>,
    /// A CA certificate to trust for `tls://` servers.
    pub root_certificate: Option<PathBuf>,
    /// How files travel.
    pub files: FilesMode,
    /// The plugins this process has loaded (the front requires a job's plugins with these hashes).
    pub plugins: PluginList,
}

impl NatsSettings {
    /// Defaults for `url`: 30 s ack wait, 3 deliveries, no credentials.
    pub fn new(url: impl Into<String>) -> Self {
        NatsSettings {
            url: url.into(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 3,
            credentials: None,
            root_certificate: None,
            files: FilesMode::ObjectStore,
            plugins: PluginList::default(),
        }
    }
}

/// A NATS failure, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("NATS: {doing}: {reason}")]
pub struct NatsError {
    /// What failed (`connect to nats://…`, `create stream OMNIGEN_JOBS` …).
    pub doing: String,
    /// The client's error.
    pub reason: String,
}

impl NatsError {
    pub(crate) fn new(doing: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        NatsError {
            doing: doing.into(),
            reason: reason.to_string(),
        }
    }
}

/// The connection and JetStream context both sides use.
#[derive(Clone)]
pub struct Link {
    /// Core NATS (events, claims, control).
    pub client: async_nats::Client,
    /// JetStream (jobs, results, files).
    pub js: jetstream::Context,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").finish_non_exhaustive()
    }
}

/// Connects (the client reconnects by itself after a loss) and makes sure
/// the streams, consumers and bucket exist with `settings`. Both the server and workers call it; it
/// is idempotent.
pub async fn connect(settings: &NatsSettings, name: &str) -> Result<Link, NatsError> {
    let doing = format!("connect to {}", settings.url);
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5));
    if let Some(creds) = &settings.credentials {
        options = options
            .credentials_file(creds)
            .await
            .map_err(|e| NatsError::new(format!("read credentials {}", creds.display()), e))?;
    }
    if let Some(ca) = &settings.root_certificate {
        options = options.add_root_certificates(ca.clone());
    }
    // The first connection must succeed (a wrong address is reported); later losses are reconnected
    // by the client.
    let client = options
        .connect(settings.url.as_str())
        .await
        .map_err(|e| NatsError::new(&doing, e))?;
    let js = jetstream::new(client.clone());
    ensure_topology(&js, settings).await?;
    Ok(Link { client, js })
}

async fn ensure_topology(
    js: &jetstream::Context,
    settings: &NatsSettings,
) -> Result<(), NatsError> {
    let jobs = js
        .get_or_create_stream(stream::Config {
            name: JOBS_STREAM.into(),
            subjects: vec![JOBS_SUBJECT.into()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            // A prompt re-published by a retry within this window is stored once.
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| NatsError::new(format!("create stream {JOBS_STREAM}"), e))?;
    jobs.get_or_create_consumer(
        WORKERS_CONSUMER,
        consumer::pull::Config {
            durable_name: Some(WORKERS_CONSUMER.into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: settings.ack_wait,
            // Unlimited: a worker that is handed a job it cannot run gives it back (routing), which
            // JetStream counts as a delivery. The front counts real attempts (accepted claims) and
            // fails a job after `max_deliver` of them.
            max_deliver: -1,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| NatsError::new(format!("create consumer {WORKERS_CONSUMER}"), e))?;
    let results = js
        .get_or_create_stream(stream::Config {
            name: RESULTS_STREAM.into(),
            subjects: vec![RESULTS_SUBJECT.into()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| NatsError::new(format!("create stream {RESULTS_STREAM}"), e))?;
    results
        .get_or_create_consumer(
            FRONT_CONSUMER,
            consumer::pull::Config {
                durable_name: Some(FRONT_CONSUMER.into()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(60),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| NatsError::new(format!("create consumer {FRONT_CONSUMER}"), e))?;
    if js.get_object_store(FILES_BUCKET).await.is_err() {
        js.create_object_store(object_store::Config {
            bucket: FILES_BUCKET.into(),
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| NatsError::new(format!("create object store {FILES_BUCKET}"), e))?;
    }
    if js.get_object_store(INPUTS_BUCKET).await.is_err() {
        js.create_object_store(object_store::Config {
            bucket: INPUTS_BUCKET.into(),
            storage: stream::StorageType::File,
            max_age: INPUTS_MAX_AGE,
            ..Default::default()
        })
        .await
        .map_err(|e| NatsError::new(format!("create object store {INPUTS_BUCKET}"), e))?;
    }
    Ok(())
}
