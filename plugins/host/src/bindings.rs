//! Host bindings generated from `plugins/wit` (`omnigen:plugin@0.1.0`).
//!
//! One module per interface version: when the WIT grows a `0.2.0`, it gets its own module here
//! and the loader picks the module matching a component's export name.

/// Bindings of `omnigen:plugin@0.1.0`.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../wit",
        imports: { default: trappable },
    });
}

/// The interface version this host serves, as found in export names.
pub const ABI_VERSION: &str = "0.1.0";

/// The export a plugin component must provide.
pub const NODE_EXPORT: &str = "omnigen:plugin/node@0.1.0";
