//! What travels over NATS between the server (the front) and its workers: subject and stream names,
//! and the JSON bodies. One place, so both sides agree.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::queue::{Job, JobState};

/// The work-queue stream of accepted prompts (one message per prompt, acked by the worker that ran it).
pub const JOBS_STREAM: &str = "OMNIGEN_JOBS";
/// The subject jobs are published on.
pub const JOBS_SUBJECT: &str = "omnigen.jobs";
/// The durable pull consumer every worker shares (each job goes to one of them).
pub const WORKERS_CONSUMER: &str = "omnigen-workers";
/// The object store bucket carrying the server's input files (uploads LoadImage reads) to workers,
/// content-addressed: `<sha256>`. Objects expire after [`INPUTS_MAX_AGE`].
pub const INPUTS_BUCKET: &str = "omnigen-inputs";
/// How long a shipped input file stays in [`INPUTS_BUCKET`] (re-shipped by the next job needing it).
pub const INPUTS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// Worker announcements: `omnigen.workers.<worker id>`, one [`Announcement`] every few seconds.
pub const WORKERS_PREFIX: &str = "omnigen.workers";
/// The work-queue stream of finished jobs, consumed by the server.
pub const RESULTS_STREAM: &str = "OMNIGEN_RESULTS";
/// The subject results are published on.
pub const RESULTS_SUBJECT: &str = "omnigen.results";
/// The server's durable consumer of results.
pub const FRONT_CONSUMER: &str = "omnigen-front";
/// The object store bucket carrying output files from workers to the server.
pub const FILES_BUCKET: &str = "omnigen-files";
/// Request-reply: a worker asks the server whether it may run a job it was delivered.
pub const CLAIM_SUBJECT: &str = "omnigen.claim";
/// Broadcast from the server to every worker (interrupt, free memory).
pub const CONTROL_SUBJECT: &str = "omnigen.control";
/// A worker's attempt that failed before a result existed (a storage error): the job's last error.
pub const ATTEMPT_SUBJECT: &str = "omnigen.attempt";
/// The engine's events of one job: `omnigen.events.<prompt id>`, each message one WebSocket text.
pub const EVENTS_PREFIX: &str = "omnigen.events";
/// Encoded previews of one job: `omnigen.previews.<prompt id>`, the JPEG as payload.
pub const PREVIEWS_PREFIX: &str = "omnigen.previews";
/// Header naming who gets an event or preview: [`TO_EVERYONE`] or the client's sid.
pub const TO_HEADER: &str = "Omnigen-To";
/// [`TO_HEADER`]'s value for a message every socket gets.
pub const TO_EVERYONE: &str = "*";
/// Header carrying a preview's type 4 metadata.
pub const METADATA_HEADER: &str = "Omnigen-Preview-Metadata";

/// An accepted prompt as the worker runs it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobMessage {
    /// The prompt id.
    pub id: String,
    /// Its queue number.
    pub number: f64,
    /// The graph (API format).
    pub prompt: Json,
    /// `extra_data`.
    pub extra_data: Json,
    /// The outputs validation chose.
    pub outputs: Vec<String>,
    /// The client that gets its events.
    pub client_id: Option<String>,
    /// `partial_execution_targets`.
    pub targets: Option<Vec<String>>,
    /// Files of the server's input folder the graph refers to, shipped in [`INPUTS_BUCKET`] (empty
    /// when the folders are shared).
    #[serde(default)]
    pub inputs: Vec<InputFile>,
    /// For a job larger than the NATS server's `max_payload`: the whole message is the object of
    /// this name in [`FILES_BUCKET`] ([`JobMessage::stored_name`]) and the fields above are empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<String>,
}

/// One input file a job needs: its name below the input folder and its content's sha256 (the
/// object's name in [`INPUTS_BUCKET`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InputFile {
    /// `subfolder/name.png` or `name.png`, `/`-joined, relative to the input folder.
    pub name: String,
    /// Lowercase hex sha256 of the content.
    pub sha256: String,
}

/// A plugin build a process has loaded: what a worker announces and what the front requires.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct PluginBuild {
    /// The plugin's name (its node types are `<name>/<node id>`).
    pub name: String,
    /// Its declared version (informational; the hash decides).
    pub version: String,
    /// The sha256 of its component.
    pub sha256: String,
    /// The node types it registers.
    pub class_types: Vec<String>,
}

/// A worker telling the front it is alive and what it can run, every [`Announcement::every_ms`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Announcement {
    /// Unique per worker process (its name plus a random suffix).
    pub id: String,
    /// Its `--name`.
    pub name: String,
    /// The device its model nodes use (`--device`: `auto`, `cpu`, `cuda:0` …).
    pub device: String,
    /// Free RAM in bytes, where known.
    pub ram_free: Option<u64>,
    /// Total RAM in bytes, where known.
    pub ram_total: Option<u64>,
    /// Free memory of the device in bytes, where known (not yet measured for GPUs).
    pub vram_free: Option<u64>,
    /// The models it has loaded (see `routing::model_keys`), most recent first.
    pub models: Vec<String>,
    /// Its plugins with their hashes.
    pub plugins: Vec<PluginBuild>,
    /// The prompt it is running, if any.
    pub running: Option<String>,
    /// How often it announces itself.
    pub every_ms: u64,
    /// The front forgets it this long after its last announcement.
    pub ttl_ms: u64,
    /// `true` in the last announcement of a worker that stops cleanly.
    #[serde(default)]
    pub leaving: bool,
}

impl JobMessage {
    /// The message of a stored job.
    pub fn of(job: &Job) -> Self {
        JobMessage {
            id: job.id.clone(),
            number: job.number,
            prompt: job.prompt.clone(),
            extra_data: job.extra_data.clone(),
            outputs: job.outputs.clone(),
            client_id: job.client_id.clone(),
            targets: job.targets.clone(),
            inputs: Vec::new(),
            stored: None,
        }
    }

    /// The object a large job's message is stored under: `<prompt id>/job.json`.
    pub fn stored_name(prompt_id: &str) -> String {
        format!("{prompt_id}/job.json")
    }

    /// The small message standing for a large one stored under [`JobMessage::stored_name`].
    pub fn stub(&self) -> Self {
        JobMessage {
            id: self.id.clone(),
            number: self.number,
            prompt: Json::Null,
            extra_data: Json::Null,
            outputs: Vec::new(),
            client_id: None,
            targets: None,
            inputs: Vec::new(),
            stored: Some(Self::stored_name(&self.id)),
        }
    }

    /// The job the worker's engine runs.
    pub fn into_job(self, attempts: u32) -> Job {
        Job {
            id: self.id,
            number: self.number,
            state: JobState::Running,
            prompt: self.prompt,
            extra_data: self.extra_data,
            outputs: self.outputs,
            client_id: self.client_id,
            targets: self.targets,
            created_at: 0,
            started_at: None,
            finished_at: None,
            attempts,
            result: Default::default(),
        }
    }
}

/// A worker asking to run a delivered job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClaimRequest {
    /// The prompt id.
    pub id: String,
    /// The worker's name (logs).
    pub worker: String,
    /// The worker's [`Announcement::id`].
    #[serde(default)]
    pub worker_id: String,
    /// What it can run: its plugins (name and hash) …
    #[serde(default)]
    pub plugins: Vec<PluginBuild>,
    /// … and the models it has loaded.
    #[serde(default)]
    pub models: Vec<String>,
}

/// The server's answer to a [`ClaimRequest`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClaimReply {
    /// Run it; `false` when it was cancelled or already finished (the worker acks and drops it).
    pub run: bool,
    /// With `run: false`: not for this worker (it lacks a plugin, or another has the model loaded);
    /// the worker gives it back (NAK with a delay) for another worker, and the job stays pending.
    #[serde(default)]
    pub later: bool,
    /// Why, for the worker's log.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A file a job wrote, stored in [`FILES_BUCKET`] under [`StoredFile::object_name`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredFile {
    /// `output` or `temp`.
    pub kind: String,
    /// Folders below the kind's folder, `/`-joined.
    pub subfolder: String,
    /// The file name.
    pub filename: String,
}

impl StoredFile {
    /// The object's name: `<prompt id>/<kind>/<subfolder>/<filename>`.
    pub fn object_name(&self, prompt_id: &str) -> String {
        if self.subfolder.is_empty() {
            format!("{prompt_id}/{}/{}", self.kind, self.filename)
        } else {
            format!(
                "{prompt_id}/{}/{}/{}",
                self.kind, self.subfolder, self.filename
            )
        }
    }
}

/// A finished job, published by its worker once its files are stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResultMessage {
    /// The prompt id.
    pub id: String,
    /// The worker that ran it.
    pub worker: String,
    /// `completed`, `failed` or `interrupted`.
    pub state: String,
    /// UI outputs by node id.
    pub outputs: Json,
    /// ComfyUI's status messages.
    pub messages: Json,
    /// The files to fetch into the server's folders.
    pub files: Vec<StoredFile>,
    /// The run's closing WebSocket texts (see `Outgoing::Final`), sent once the result is recorded.
    pub closing: Vec<Closing>,
    /// The files are already in the server's folders (`--files shared`), not in [`FILES_BUCKET`].
    #[serde(default)]
    pub in_place: bool,
}

/// One held-back closing text and who gets it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Closing {
    /// The client's sid, or `None` for every socket.
    pub to: Option<String>,
    /// The JSON text, unchanged.
    pub text: String,
}

/// An attempt that ended without a result (see [`ATTEMPT_SUBJECT`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AttemptFailed {
    /// The prompt id.
    pub id: String,
    /// The worker.
    pub worker: String,
    /// What went wrong.
    pub error: String,
}

/// A broadcast to every worker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// Stop this running job, or every running job when `None` (`POST /interrupt` without an id).
    Interrupt {
        /// The prompt id.
        prompt_id: Option<String>,
    },
    /// Drop every cached output (`POST /free`).
    FreeMemory,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn object_names_keep_subfolders() {
        let f = |sub: &str| StoredFile {
            kind: "output".into(),
            subfolder: sub.into(),
            filename: "a_00001_.png".into(),
        };
        assert_eq!(f("").object_name("p1"), "p1/output/a_00001_.png");
        assert_eq!(f("x/y").object_name("p1"), "p1/output/x/y/a_00001_.png");
    }

    #[test]
    fn older_claims_and_replies_still_parse() {
        let claim: ClaimRequest =
            serde_json::from_value(json!({"id": "p", "worker": "w"})).unwrap();
        assert!(claim.plugins.is_empty() && claim.worker_id.is_empty());
        let reply: ClaimReply = serde_json::from_value(json!({"run": true})).unwrap();
        assert!(reply.run && !reply.later);
    }

    #[test]
    fn control_messages_are_tagged() {
        let interrupt = Control::Interrupt {
            prompt_id: Some("p".into()),
        };
        assert_eq!(
            serde_json::to_value(&interrupt).unwrap(),
            json!({"interrupt": {"prompt_id": "p"}})
        );
        assert_eq!(
            serde_json::from_value::<Control>(json!("free_memory")).unwrap(),
            Control::FreeMemory
        );
    }

    #[test]
    fn a_job_survives_its_message() {
        let message = JobMessage {
            id: "p".into(),
            number: 3.0,
            prompt: json!({"1": {"class_type": "X", "inputs": {"v": 12345678901234567890u64}}}),
            extra_data: json!({"client_id": "c"}),
            outputs: vec!["1".into()],
            client_id: Some("c".into()),
            targets: None,
            inputs: vec![InputFile {
                name: "sub/in.png".into(),
                sha256: "ab".into(),
            }],
            stored: None,
        };
        let text = serde_json::to_string(&message).unwrap();
        let back: JobMessage = serde_json::from_str(&text).unwrap();
        assert_eq!(back, message);
        let job = back.into_job(2);
        assert_eq!((job.state, job.attempts), (JobState::Running, 2));
    }
}
