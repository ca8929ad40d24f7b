//! Building the node catalogue a command works with: built-in nodes, plugin nodes, test nodes.

use std::sync::Arc;

use omnigen_engine::Registry;
use omnigen_nodes::io::decode::DecodeLimits;
use omnigen_nodes::IoConfig;

use crate::cli::{CatalogueArgs, DirArgs};
use crate::{plugins, test_nodes};

/// The registry plus whatever must stay alive for its nodes to work (the plugin host).
pub struct Catalogue {
    /// Every registered node type.
    pub registry: Arc<Registry>,
    /// Keeps plugin nodes callable; dropped with the catalogue.
    pub plugins: plugins::LoadedPlugins,
}

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

/// A catalogue with every node type the flags ask for.
pub fn build(catalogue: &CatalogueArgs, io: IoConfig) -> anyhow::Result<Catalogue> {
    let registry = Arc::new(Registry::new());
    omnigen_nodes::register_builtin_with(&registry, io);
    if catalogue.test_nodes {
        test_nodes::register(&registry);
    }
    let plugins = plugins::register(&registry, &catalogue.plugin_dirs)?;
    Ok(Catalogue { registry, plugins })
}
