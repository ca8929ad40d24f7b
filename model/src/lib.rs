//! OmniGen v1 in candle, numerically matching the official `omnigen==1.0.3` implementation.
//!
//! This crate knows tensors, weights and prompts; it knows nothing of graphs.

pub mod processor;

mod attention;
pub mod config;
pub mod device;
mod embed;
pub mod error;
mod final_layer;
mod image_out;
pub mod kv_cache;
pub mod latent;
mod layer;
mod lora;
mod nn;
pub mod noise;
mod pipeline;
pub mod rope;
pub mod sampler;
pub mod scheduler;
pub mod transformer;
pub mod vae;
mod weights;

pub use config::{OmniGenConfig, RopeScaling};
pub use device::{DTypeChoice, DeviceChoice};
pub use error::{Error, Result};
pub use image_out::to_rgb8;
pub use kv_cache::KvCache;
pub use latent::Latent;
pub use pipeline::{LoadOptions, ModelFiles, OmniGen, Prompt, SampleOptions};
pub use sampler::{BranchBatch, CfgMode, KvCacheMode, LoopInputs, LoopOptions, StepProgress};
pub use transformer::{ForwardInput, ImageSpan, Transformer};
pub use vae::{EncodeMode, Vae, VaeConfig};
