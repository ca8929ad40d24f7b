//! Building the node catalogue a command works with: built-in nodes, plugin nodes, test nodes.

use std::sync::Arc;

use omnigen_engine::Registry;
use omnigen_nodes::io::decode::DecodeLimits;
use omnigen_nodes::IoConfig;

use crate::cli::{CatalogueArgs, DirArgs};
use crate::{plugins, test_nodes};

/// The IO nodes' settings from the directory flags (defaults when a command has none).
pub fn io_config(dirs: Option<&DirArgs>) -> IoConfig {
    match dirs {
        Some(d) => IoConfig {
            allow_absolute_paths: d.allow_absolute_paths,
            decode_limits: DecodeLimits {
                max_dimension: d.max_image_size,
            },
        },
        None => IoConfig::default(),
    }
}

/// A registry with every node type the flags ask for.
pub fn build_registry(catalogue: &CatalogueArgs, io: IoConfig) -> anyhow::Result<Arc<Registry>> {
    let registry = Arc::new(Registry::new());
    omnigen_nodes::register_builtin_with(&registry, io);
    if catalogue.test_nodes {
        test_nodes::register(&registry);
    }
    plugins::register(&registry, &catalogue.plugin_dirs)?;
    Ok(registry)
}
