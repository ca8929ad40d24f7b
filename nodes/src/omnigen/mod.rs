//! The OmniGen model nodes: loading, VAE encode/decode, prompts (with few-shot examples), sampling and
//! latent files. Node names, input names and defaults are the interface saved workflows depend on;
//! `docs/nodes.md` is generated from the catalogue by [`docs::nodes_markdown`].

pub mod docs;
pub mod few_shot;
pub mod hub;
pub mod latent_files;
pub mod load;
pub mod preview;
pub mod prompt_nodes;
pub mod sample;
pub mod vae_nodes;
pub mod values;

use std::sync::Arc;

use omnigen_engine::{InputSpec, NodeError, NodeType, Registry};

/// Menu category of every node here.
pub const CATEGORY: &str = "omnigen";

/// Every OmniGen node type. `allow_absolute_paths` is the IO nodes' setting, used by `LoadLatent`.
pub fn nodes(allow_absolute_paths: bool) -> Vec<Arc<dyn NodeType>> {
    vec![
        Arc::new(load::LoadOmniGen::new()),
        Arc::new(vae_nodes::EncodeVae),
        Arc::new(prompt_nodes::BuildPrompt),
        Arc::new(prompt_nodes::FewShotExample),
        Arc::new(sample::OmniGenSample),
        Arc::new(vae_nodes::DecodeVae),
        Arc::new(latent_files::LoadLatent {
            allow_absolute_paths,
        }),
        Arc::new(latent_files::SaveLatent),
    ]
}

/// Registers every OmniGen node type.
pub fn register(registry: &Registry, allow_absolute_paths: bool) {
    for node in nodes(allow_absolute_paths) {
        registry.register_arc(node);
    }
}

/// A `seed` input: the full `u64` range, like ComfyUI's seeds.
pub(crate) fn seed_input(tooltip: &str) -> InputSpec {
    InputSpec::int("seed")
        .default_int(0)
        .min(0)
        .max(u64::MAX)
        .option("control_after_generate", true)
        .tooltip(tooltip)
}

/// A model-crate error as a node error, keeping its causes.
pub(crate) fn model_error(doing: &str, err: &(dyn std::error::Error + 'static)) -> NodeError {
    let mut e = NodeError::from_error(err);
    e.message = format!("{doing}: {}", e.message);
    e.with_kind("ModelError")
}

/// `cpu`, `cuda:N` or `metal:N`: the name samplers serialise on.
pub(crate) fn device_name(device: &candle_core::Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}
