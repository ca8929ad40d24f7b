//! The durable queue: prompts waiting, running and finished (history), behind a small trait so that
//! another backend (NATS JetStream for workers) can stand in for the SQLite one.
//!
//! Rows are the truth: a job's [`JobState`] lives in storage, not in memory, so a restart (or a crash)
//! loses nothing. The queue knows graphs only as JSON; it never parses or runs them.

pub mod nats;
mod sqlite;

use serde_json::Value as Json;

pub use sqlite::SqliteQueue;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting to run.
    Pending,
    /// Claimed by the worker.
    Running,
    /// Ran to the end.
    Completed,
    /// A node failed (or the graph no longer validated).
    Failed,
    /// Stopped by an interrupt, or running when the server died and not re-queued again.
    Interrupted,
    /// Deleted from the queue before it ran.
    Cancelled,
}

impl JobState {
    /// The name stored in the database (and shown by `/jobs`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Interrupted => "interrupted",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => JobState::Pending,
            "running" => JobState::Running,
            "completed" => JobState::Completed,
            "failed" => JobState::Failed,
            "interrupted" => JobState::Interrupted,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }

    /// Whether the job is over (it belongs to history).
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Pending | JobState::Running)
    }
}

/// Where a new job goes in the queue (ComfyUI's `number` / `front`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Priority {
    /// After everything queued (the queue's counter).
    Back,
    /// Before everything queued (the counter, negated).
    Front,
    /// An explicit number: lower runs first.
    Number(f64),
}

/// A prompt to queue: the graph and what came with it, as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The prompt id (unique).
    pub id: String,
    /// Where it goes.
    pub priority: Priority,
    /// The graph (API format).
    pub prompt: Json,
    /// `extra_data` (with `client_id` copied in).
    pub extra_data: Json,
    /// The output node ids validation chose (ComfyUI's `outputs_to_execute`).
    pub outputs: Vec<String>,
    /// The client whose socket gets the events.
    pub client_id: Option<String>,
    /// `partial_execution_targets`, if given.
    pub targets: Option<Vec<String>>,
}

/// What a finished run leaves behind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobResult {
    /// UI outputs by node id (`{"9": {"images": [...]}}`).
    pub outputs: Json,
    /// ComfyUI's status messages: `[["execution_start", {...}], ...]`.
    pub messages: Json,
}

/// One job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The prompt id.
    pub id: String,
    /// Its priority number (lower runs first).
    pub number: f64,
    /// Where it stands.
    pub state: JobState,
    /// The graph.
    pub prompt: Json,
    /// `extra_data`.
    pub extra_data: Json,
    /// Output node ids to execute.
    pub outputs: Vec<String>,
    /// The client that queued it.
    pub client_id: Option<String>,
    /// `partial_execution_targets`.
    pub targets: Option<Vec<String>>,
    /// Milliseconds since the epoch when it was queued.
    pub created_at: u64,
    /// When it last started running.
    pub started_at: Option<u64>,
    /// When it finished.
    pub finished_at: Option<u64>,
    /// How many times it was claimed (more than once after a crash re-queue).
    pub attempts: u32,
    /// Outputs and messages (messages also record a re-queue after a crash).
    pub result: JobResult,
}

/// What startup recovery did with jobs found running (the previous process died mid-run).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovery {
    /// Put back into the queue (their first interruption).
    pub requeued: Vec<String>,
    /// Already re-queued once before: recorded as interrupted for good.
    pub interrupted: Vec<String>,
}

/// A slice of history, as ComfyUI's `GET /history?max_items=&offset=` asks for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryPage {
    /// At most this many entries; with no offset, the newest ones.
    pub max_items: Option<usize>,
    /// Skip this many of the oldest entries.
    pub offset: Option<usize>,
}

/// How `/jobs` orders its list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JobSort {
    /// By the time the job was queued (ComfyUI's `created_at`).
    #[default]
    Created,
    /// By how long it ran (`execution_duration`; jobs that never ran count as 0).
    Duration,
}

/// A filtered, sorted page of jobs in any state (`GET /jobs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobQuery {
    /// Only jobs in these states.
    pub states: Vec<JobState>,
    /// Only jobs whose `extra_data.extra_pnginfo.workflow.id` is this.
    pub workflow_id: Option<String>,
    /// The order.
    pub sort: JobSort,
    /// Newest (or longest) first.
    pub descending: bool,
    /// Skip this many.
    pub offset: usize,
    /// At most this many.
    pub limit: usize,
}

/// What [`Queue::list_jobs`] returns: the page and how many jobs matched in all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobPage {
    /// The jobs of the page, in order.
    pub jobs: Vec<Job>,
    /// How many matched the filter (before `offset` and `limit`).
    pub total: usize,
}

/// How much history to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Keep at most this many finished jobs (the newest).
    pub max_entries: usize,
    /// Drop finished jobs older than this many milliseconds.
    pub max_age_ms: u64,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            max_entries: 10_000,
            max_age_ms: 30 * 24 * 3600 * 1000,
        }
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
    /// A stored row could not be read back.
    #[error("stored job {id}: {problem}")]
    Corrupt {
        /// The job.
        id: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A job id that is already queued or in history.
    #[error("prompt id {0} is already used")]
    Duplicate(String),
    /// Opening the database file failed.
    #[error("cannot open queue database {path}: {reason}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// What a queue operation returns.
pub type QueueResult<T> = Result<T, QueueError>;

/// The queue and its history. Calls are short and synchronous (a local database); implementations are
/// shared between the HTTP handlers and the worker.
pub trait Queue: Send + Sync {
    /// Puts back jobs left running by a previous process: the first time, into the queue (recorded in
    /// their messages); the second time, into history as interrupted. Called once at startup.
    fn recover(&self) -> QueueResult<Recovery>;
    /// Queues a job and returns its number.
    fn enqueue(&self, job: NewJob) -> QueueResult<f64>;
    /// Cancels these pending jobs (running or finished ones are left alone); returns how many.
    fn delete_pending(&self, ids: &[String]) -> QueueResult<usize>;
    /// Cancels every pending job; returns how many.
    fn clear_pending(&self) -> QueueResult<usize>;
    /// Marks the next pending job (lowest number, then oldest) running and returns it.
    fn claim_next(&self) -> QueueResult<Option<Job>>;
    /// Marks this job running for a remote worker and returns it: when it is pending, or already running
    /// (its earlier worker died and the job was delivered again). `None` when it is unknown or final
    /// (cancelled, or finished by an earlier delivery): the worker must not run it.
    fn claim(&self, id: &str) -> QueueResult<Option<Job>>;
    /// Puts a running job back to pending, keeping its attempts (a remote job no live worker runs);
    /// `false` when it was not running.
    fn release(&self, id: &str) -> QueueResult<bool>;
    /// Records how a running job ended (`state` must be final).
    fn finish(&self, id: &str, state: JobState, result: &JobResult) -> QueueResult<()>;
    /// Pending jobs in the order they will run.
    fn pending(&self) -> QueueResult<Vec<Job>>;
    /// Running jobs.
    fn running(&self) -> QueueResult<Vec<Job>>;
    /// Pending plus running (ComfyUI's `queue_remaining`).
    fn remaining(&self) -> QueueResult<usize>;
    /// One job in any state.
    fn job(&self, id: &str) -> QueueResult<Option<Job>>;
    /// Finished jobs (completed, failed, interrupted) in the order they finished.
    fn history(&self, page: HistoryPage) -> QueueResult<Vec<Job>>;
    /// Forgets these finished jobs; returns how many.
    fn delete_history(&self, ids: &[String]) -> QueueResult<usize>;
    /// Forgets every finished job; returns how many.
    fn clear_history(&self) -> QueueResult<usize>;
    /// Drops finished jobs beyond `limits` (oldest first) as of `now_ms`; returns how many.
    fn prune(&self, limits: HistoryLimits, now_ms: u64) -> QueueResult<usize>;
    /// Jobs in any state, filtered, sorted and paged (`GET /jobs`).
    fn list_jobs(&self, query: &JobQuery) -> QueueResult<JobPage>;
}
