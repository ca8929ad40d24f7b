//! The built-in node catalogue.
//!
//! One module per family of nodes; [`register_builtin`] adds them all to a registry. A new family
//! (e.g. the OmniGen model nodes) gets its own module and one line in
//! [`register_builtin_with`].

pub mod io;
pub mod omnigen;
pub mod primitives;

use std::sync::Arc;

use omnigen_engine::Registry;

pub use io::config::IoConfig;

/// Registers every built-in node type with default settings.
pub fn register_builtin(registry: &Registry) {
    register_builtin_with(registry, IoConfig::default());
}

/// Registers every built-in node type, with the IO nodes configured by `io`.
pub fn register_builtin_with(registry: &Registry, io: IoConfig) {
    io::register(registry, io);
    omnigen::register(registry, io.allow_absolute_paths);
    for kind in primitives::PrimitiveKind::ALL {
        registry.register_arc(Arc::new(primitives::Primitive(kind)));
    }
}
