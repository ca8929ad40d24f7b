//! The OmniGen model nodes (being built: the model-independent parts first).

pub mod few_shot;
pub mod hub;
pub mod placeholders;
pub mod preview;
