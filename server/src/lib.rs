//! `omnigen-server`: a ComfyUI-compatible HTTP + WebSocket server over the engine, with a durable queue,
//! history and safe defaults. It knows nothing of any model: it serves whatever catalogue it is given.
//! See `docs/server.md`.
//!
//! ```no_run
//! # async fn demo(registry: std::sync::Arc<omnigen_engine::Registry>) -> Result<(), omnigen_server::StartError> {
//! let server = omnigen_server::start(omnigen_server::ServerConfig::new("data"), registry).await?;
//! println!("listening on {}", server.local_addr());
//! tokio::signal::ctrl_c().await.ok();
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod clients;
pub mod config;
mod engine_adapter;
mod error;
pub mod paths;
mod preview;
mod progress_state;
pub mod queue;
mod routes;
pub mod security;
mod serving;
mod shapes;
mod state;
mod worker;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

pub use config::{Folders, ServerConfig, DEFAULT_MAX_BODY, DEFAULT_PORT};
pub use engine_adapter::{Dirs, Registry};
pub use error::ApiError;
pub use queue::nats::protocol::PluginBuild;
pub use queue::nats::{run_worker, FilesMode, NatsSettings, PluginList, WorkerConfig};
pub use queue::{HistoryLimits, Queue, SqliteQueue};

use crate::engine_adapter::Engine;
use crate::security::Guard;
use crate::state::AppState;

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Listening beyond loopback without a token.
    #[error(transparent)]
    NeedsToken(#[from] security::NeedsToken),
    /// A folder could not be created.
    #[error("cannot create {path}: {reason}")]
    Folder {
        /// The folder.
        path: String,
        /// Why.
        reason: String,
    },
    /// The queue database could not be opened or recovered.
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    /// NATS could not be reached or set up (`--queue nats://…`).
    #[error(transparent)]
    Nats(#[from] queue::nats::NatsError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// A running server.
pub struct RunningServer {
    addr: SocketAddr,
    recovery: queue::Recovery,
    stop: watch::Sender<bool>,
    http: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// The address it listens on (the real port when started with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What startup recovery did with prompts left running by a previous process.
    pub fn recovery(&self) -> &queue::Recovery {
        &self.recovery
    }

    /// Stops accepting requests, closes sockets and stops the worker. A prompt still running stays
    /// `running` in the queue and is re-queued at the next start (the same path as a crash).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in &self.background {
            task.abort();
        }
        for task in self.background {
            let _ = task.await;
        }
        let _ = self.http.await;
    }
}

/// Starts the server: opens (and recovers) the queue, starts the worker and the pruner, and listens.
pub async fn start(
    config: ServerConfig,
    registry: Arc<Registry>,
) -> Result<RunningServer, StartError> {
    security::check_listen(config.listen, config.token.as_deref())?;
    let folders = &config.folders;
    for dir in [
        &config.data_dir,
        &folders.input,
        &folders.output,
        &folders.temp,
    ] {
        std::fs::create_dir_all(dir).map_err(|e| StartError::Folder {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    let queue = SqliteQueue::open(&config.database_path())?;
    // With remote workers a job left running may still be running on its worker (or will be
    // redelivered by NATS): nothing to recover here.
    let remote = match &config.nats {
        Some(settings) => Some(queue::nats::Front::connect(settings.clone()).await?),
        None => None,
    };
    let recovery = match remote {
        Some(_) => queue::Recovery::default(),
        None => queue.recover()?,
    };
    for id in &recovery.requeued {
        tracing::warn!(prompt_id = %id, "prompt was running when the server stopped: queued again");
    }
    for id in &recovery.interrupted {
        tracing::warn!(prompt_id = %id, "prompt was interrupted twice by a server stop: recorded as interrupted");
    }

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| StartError::Bind {
            addr: config.listen,
            reason: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| StartError::Bind {
        addr: config.listen,
        reason: e.to_string(),
    })?;

    let dirs = Dirs {
        input: folders.input.clone(),
        output: folders.output.clone(),
        temp: folders.temp.clone(),
    };
    let guard = Arc::new(
        Guard::new(addr, config.token.clone(), &config.allowed_hosts)
            .with_body_limit(config.max_body_bytes),
    );
    let timeouts = serving::Timeouts {
        header: config.header_read_timeout,
        body_idle: config.body_idle_timeout,
    };
    let (stop, shutdown) = watch::channel(false);
    let state = Arc::new(AppState {
        engine: Engine::new(registry, dirs),
        queue: Arc::new(queue),
        clients: Default::default(),
        wake: Notify::new(),
        current: Mutex::new(None),
        shutdown: shutdown.clone(),
        config,
        remote: remote.clone(),
    });
    let mut background = vec![tokio::spawn(worker::prune(Arc::clone(&state)))];
    match &remote {
        Some(front) => background.extend(front.spawn(Arc::clone(&state)).await?),
        None => background.push(tokio::spawn(worker::run(Arc::clone(&state)))),
    }
    let app = routes::router(state, guard);
    let http = tokio::spawn(serving::serve(listener, app, timeouts, shutdown));
    Ok(RunningServer {
        addr,
        recovery,
        stop,
        http,
        background,
    })
}
