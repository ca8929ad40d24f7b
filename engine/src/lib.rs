//! `omnigen-engine`: a general dataflow host for ComfyUI-format graphs.
//!
//! It knows nothing of any model. It parses ComfyUI API-format prompts, validates them against an open
//! [`Registry`] of [`NodeType`]s (errors in ComfyUI's JSON shape), runs them with caching, concurrency and
//! cancellation, and reports progress as [`Event`]s that map one-to-one onto ComfyUI's WebSocket messages.
//! See `docs/engine.md` for a guided tour.

pub mod event;
pub mod node;
pub mod registry;
pub mod schema;
pub mod value;

pub use event::{now_ms, Event, EventSink, ExecutionErrorData};
pub use node::{
    BoxFuture, CancelToken, CheckContext, Dirs, Fingerprint, Inputs, NodeContext, NodeContextParts,
    NodeError, NodeOutput, NodeType,
};
pub use registry::{RegisteredNode, Registry, RegistryError};
pub use schema::{
    HiddenInput, HiddenKind, InputOptions, InputSpec, InputType, NodeSchema, Number, OutputSpec,
};
pub use value::{downcast_opaque, Image, Mask, OpaqueValue, Value, ValueError};
