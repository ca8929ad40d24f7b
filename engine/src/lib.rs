//! `omnigen-engine`: a general dataflow host for ComfyUI-format graphs.
//!
//! It knows nothing of any model. It parses ComfyUI API-format prompts ([`graph`]), validates them against
//! an open [`Registry`] of [`NodeType`]s with errors in ComfyUI's JSON shape ([`validate()`]), runs them with
//! caching, concurrency and cancellation ([`Executor`]), and reports progress as [`Event`]s that map
//! one-to-one onto ComfyUI's WebSocket messages. [`watch`] re-runs a graph file on every save.
//! See `docs/engine.md` for a guided tour.

pub mod cache;
pub mod coerce;
pub mod dirs;
pub mod event;
pub mod execute;
pub mod graph;
pub mod node;
pub mod outputs;
pub mod plan;
pub mod registry;
pub mod resource;
mod run;
pub mod schema;
mod throttle;
pub use throttle::{PROGRESS_BURST, PROGRESS_INTERVAL};
pub mod validate;
pub mod value;
pub mod watch;
pub mod workflow;

pub use cache::{CacheStats, OutputCache, Signature};
pub use event::{now_ms, Event, EventSink, ExecutionErrorData};
pub use execute::{
    new_prompt_id, Executor, ExecutorConfig, NodeFinished, RunOptions, RunReport, RunStatus,
};
pub use graph::{Graph, GraphNode, InputValue, Link, NodeId, ParseError, PromptRequest};
pub use node::{
    BoxFuture, CancelToken, CheckContext, Dirs, Fingerprint, Inputs, NodeContext, NodeContextParts,
    NodeError, NodeOutput, NodeType,
};
pub use outputs::{SavedFile, SavedKind};
pub use plan::{LinkedInput, Plan, PlannedNode};
pub use registry::{RegisteredNode, Registry, RegistryError};
pub use resource::{Resource, ResourceGuard, ResourceLocks};
pub use schema::{
    HiddenInput, HiddenKind, InputOptions, InputSpec, InputType, NodeSchema, Number, OutputSpec,
};
pub use validate::{
    validate, validate_graph, ErrorType, NodeErrors, ValidatedPrompt, ValidationError,
    ValidationReport,
};
pub use value::{downcast_opaque, Image, Mask, OpaqueValue, Value, ValueError};
pub use watch::{
    drive, drive_with, DriveEnd, GraphWatcher, WatchConfig, WatchError, WatchEvent, WatchHooks,
    WatchOutcome, WatchProblem, WatchedGraph, REGISTRY_POLL,
};
