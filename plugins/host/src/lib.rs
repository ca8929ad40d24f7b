//! Sandboxed WebAssembly plugin nodes for omnigen.
//!
//! A plugin is a component implementing the `omnigen:plugin@0.1.0` WIT interface
//! (`plugins/wit/plugin.wit`), installed in a plugins directory with a small manifest
//! (`<name>.plugin.json`). This crate loads plugins into one wasmtime engine, runs each node
//! call in a fresh store under memory, time and stack limits, validates everything a plugin
//! returns, and exposes plugin nodes to the engine like built-in nodes.
//!
//! Sandbox: a plugin imports only `omnigen:plugin/host` (logging, progress). Any other import
//! (WASI filesystem, sockets, environment, clocks, random…) is linked to a stub that stops the
//! call with an error naming the import.

mod bindings;
mod cache;
mod convert;
mod descriptor;
mod error;
mod files;
pub mod guest;
mod host;
mod limits;
mod manifest;
mod node;
mod params;
mod plugin;
mod runtime;
mod store;
mod text;
mod validate;
mod values;
mod watch;

pub use bindings::{ABI_VERSION, NODE_EXPORT};
pub use cache::write_atomic;
pub use descriptor::{NodeDescriptor, PluginInfo, PortSpec, PIN_INPUT};
pub use error::{LoadError, RunError, RunFailure};
pub use host::{find_manifests, install, register_dir, register_dirs, PluginHost, ReloadReport};
pub use limits::{LimitRequest, Limits, PluginConfig, COPY_SLACK_BYTES, MIN_MEMORY_BYTES};
pub use manifest::{sha256_hex, Manifest, MANIFEST_SUFFIX};
pub use node::{class_type, plugin_nodes, PluginNode};
pub use params::{ParamKind, ParamSpec};
pub use plugin::{CallControl, LoadedPlugin, RunOutput};
pub use runtime::{PluginRuntime, EPOCH_TICK};
pub use store::{CancelFlag, LogLevel, LogLine, ProgressFn};
pub use values::{PixelFormat, PixelImage, PixelMask, PluginValue, PortKind};
pub use watch::{PluginWatcher, DEBOUNCE};
