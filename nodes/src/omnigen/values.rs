//! The values OmniGen nodes pass to each other. The engine carries them as opaque values; their
//! `type_name` is the socket type a graph links (`OMNIGEN`, `VAE`, `LATENT`, `OMNIGEN_PROMPT`,
//! `OMNIGEN_EXAMPLE`).

use std::fmt;
use std::sync::Arc;

use omnigen_engine::OpaqueValue;
use omnigen_model::{Instruction, Latent, OmniGen, Vae};

use super::few_shot::ExampleChain;

/// Socket type of a loaded transformer.
pub const OMNIGEN: &str = "OMNIGEN";
/// Socket type of a loaded VAE.
pub const VAE: &str = "VAE";
/// Socket type of a latent batch.
pub const LATENT: &str = "LATENT";
/// Socket type of an instruction ready for sampling (the name saved graphs use).
pub const OMNIGEN_PROMPT: &str = "OMNIGEN_PROMPT";
/// Socket type of a chain of few-shot examples.
pub const OMNIGEN_EXAMPLE: &str = "OMNIGEN_EXAMPLE";

/// A loaded OmniGen transformer (with tokenizer), shared by every node that uses it.
pub struct ModelValue {
    /// The model (sampling needs only shared access; samplers on one device take the device lock).
    pub model: OmniGen,
    /// Where it runs, e.g. `cpu` or `cuda:0` (the exclusive-resource name).
    pub device_name: String,
    /// What it was loaded from, for messages.
    pub source: String,
    /// Bytes of weights held.
    pub bytes: usize,
}

impl fmt::Debug for ModelValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelValue")
            .field("source", &self.source)
            .field("device", &self.device_name)
            .finish()
    }
}

impl OpaqueValue for ModelValue {
    fn type_name(&self) -> &str {
        OMNIGEN
    }
    fn size_bytes(&self) -> usize {
        self.bytes
    }
}

/// A loaded VAE.
pub struct VaeValue {
    /// The VAE.
    pub vae: Vae,
    /// What it was loaded from, for messages.
    pub source: String,
    /// Bytes of weights held.
    pub bytes: usize,
}

impl fmt::Debug for VaeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaeValue")
            .field("source", &self.source)
            .finish()
    }
}

impl OpaqueValue for VaeValue {
    fn type_name(&self) -> &str {
        VAE
    }
    fn size_bytes(&self) -> usize {
        self.bytes
    }
}

/// A batch of scaled latents `[B, 4, h, w]` (f32).
#[derive(Debug, Clone)]
pub struct LatentValue(pub Latent);

impl OpaqueValue for LatentValue {
    fn type_name(&self) -> &str {
        LATENT
    }
    fn size_bytes(&self) -> usize {
        self.0.tensor().elem_count() * 4
    }
}

/// An OmniGen instruction ready for sampling: the full text (few-shot examples already folded in), the
/// condition latents in placeholder order, the guidance settings and which picture sets the output size
/// (the query's own first one, after any examples').
#[derive(Debug, Clone)]
pub struct InstructionValue(pub Instruction);

impl OpaqueValue for InstructionValue {
    fn type_name(&self) -> &str {
        OMNIGEN_PROMPT
    }
    fn size_bytes(&self) -> usize {
        let i = &self.0;
        i.text.len()
            + i.negative_prompt.as_ref().map_or(0, String::len)
            + i.images
                .iter()
                .map(|l| l.tensor().elem_count() * 4)
                .sum::<usize>()
    }
}

/// A chain of few-shot examples.
#[derive(Debug, Clone)]
pub struct ExampleValue(pub Arc<ExampleChain<Latent>>);

impl OpaqueValue for ExampleValue {
    fn type_name(&self) -> &str {
        OMNIGEN_EXAMPLE
    }
    fn size_bytes(&self) -> usize {
        self.0
            .examples
            .iter()
            .flat_map(|e| e.inputs.iter().chain(std::iter::once(&e.output)))
            .map(|l| l.tensor().elem_count() * 4)
            .sum()
    }
}
