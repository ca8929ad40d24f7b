//! OmniGen v1 in candle, numerically matching the official `omnigen==1.0.3` implementation.
//!
//! This crate knows tensors, weights and instructions (OmniGen's text+images prompts); it knows nothing of graphs.
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use omnigen_model::{
//!     processor::preprocess_image, to_rgb8, EncodeMode, Instruction, LoadOptions, OmniGen, SampleOptions, Vae,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Official layout (config.json, model.safetensors, tokenizer.json, vae/) or diffusers layout.
//! let model = OmniGen::load("OmniGen-v1", &LoadOptions::default())?; // f32 on CPU, bf16 on GPU
//! let vae = Vae::load(&model.files().vae_dir, model.device())?;
//!
//! // A condition image: OmniGen's preprocessing (resize/crop to multiples of 16), then the VAE.
//! let photo = image::open("photo.png")?.to_rgb8();
//! let pixels = preprocess_image(&photo, 1024, model.device())?;
//! let cond = vae.encode(&pixels, EncodeMode::Mean)?;
//!
//! let prompt = Instruction::new("<img><|image_1|></img> Remove the cup.").with_images(vec![cond]);
//! let opts = SampleOptions { width: 512, height: 512, steps: 50, guidance_scale: 2.0, seed: 42,
//!     use_input_image_size_as_output: true, ..SampleOptions::default() };
//! let latent = model.sample(&prompt, &opts, None, &mut |p| {
//!     eprintln!("step {}/{}", p.step, p.total);
//!     ControlFlow::Continue(())
//! })?;
//! let image = to_rgb8(&vae.decode(&latent)?)?.remove(0);
//! image.save("out.png")?;
//! # Ok(()) }
//! ```

pub mod processor;

mod attention;
pub mod config;
mod cpu_kernels;
pub mod device;
mod embed;
pub mod error;
mod files;
mod final_layer;
mod grad;
mod image_out;
mod instruction;
pub mod kv_cache;
pub mod latent;
mod layer;
mod lora;
mod nn;
pub mod noise;
pub mod offload;
pub mod options;
mod pipeline;
pub mod pos_embed;
pub mod quant;
pub mod rope;
pub mod sampler;
pub mod scheduler;
pub mod span;
pub mod train;
pub mod transformer;
pub mod vae;
mod weights;

/// Entry points for the benchmarks (`benches/bench_model.rs`); not part of the supported API.
#[doc(hidden)]
pub mod bench_hooks {
    use candle_core::Tensor;

    /// The fused f32 CPU attention the decoder runs: `softmax(q kᵀ/√D + mask) v` as `[B,Sq,H·D]`, for
    /// `q` `[B,H,Sq,D]`, `k`/`v` `[B,H,Sk,D]` and the additive `mask` `[B,1,Sq,Sk]` applied to rows
    /// `< free_from`.
    pub fn cpu_attention(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
        free_from: usize,
    ) -> crate::Result<Tensor> {
        crate::cpu_kernels::attention(q, &[(k.clone(), v.clone())], mask, free_from)
    }

    /// Normal(0, 0.02) weights made on demand (the position table is the formula's, as in every real
    /// checkpoint): a checkpoint-free model of any size for speed and memory benchmarks.
    struct RandomWeights;

    impl candle_nn::var_builder::SimpleBackend for RandomWeights {
        fn get(
            &self,
            s: candle_core::Shape,
            name: &str,
            _h: candle_nn::Init,
            dtype: candle_core::DType,
            dev: &candle_core::Device,
        ) -> candle_core::Result<Tensor> {
            if name == "pos_embed" {
                if let [1, n, c] = s.dims() {
                    let side = (*n as f64).sqrt() as usize;
                    if let Ok(Some(table)) = crate::pos_embed::formula_table(side, *c, dev) {
                        return table.to_dtype(dtype);
                    }
                }
            }
            if name.ends_with("norm.weight") {
                return Tensor::ones(s, dtype, dev);
            }
            // The values do not matter for speed or memory; the device's own generator is the fastest.
            Tensor::randn(0f32, 0.02, s, dev)?.to_dtype(dtype)
        }

        fn get_unchecked(
            &self,
            name: &str,
            _dtype: candle_core::DType,
            _dev: &candle_core::Device,
        ) -> candle_core::Result<Tensor> {
            Err(candle_core::Error::Msg(format!(
                "random weights need a shape for {name}"
            )))
        }

        fn contains_tensor(&self, _name: &str) -> bool {
            true
        }
    }

    /// A transformer of `cfg` with random weights in `dtype` on `device`, its decoder linears stored in
    /// `format`, the layers offloaded to host memory when `offload_model`.
    pub fn random_transformer(
        cfg: &crate::OmniGenConfig,
        dtype: candle_core::DType,
        format: crate::WeightFormat,
        device: &candle_core::Device,
        offload_model: bool,
    ) -> crate::Result<crate::Transformer> {
        let backend = |device: &candle_core::Device| {
            let b: Box<dyn candle_nn::var_builder::SimpleBackend> = Box::new(RandomWeights);
            candle_nn::VarBuilder::from_backend(b, dtype, device.clone())
        };
        let vb = backend(device);
        let host = offload_model.then(|| backend(&crate::offload::host()));
        crate::Transformer::placed(
            cfg,
            &vb,
            host.as_ref(),
            crate::quant::LinearSource::Quantize(format),
        )
    }

    /// A transformer of `cfg`'s architecture with all-zero weights in `dtype` (for memory benchmarks: the
    /// buffers do not depend on the values).
    pub fn zero_transformer(
        cfg: &crate::OmniGenConfig,
        dtype: candle_core::DType,
        device: &candle_core::Device,
    ) -> crate::Result<crate::Transformer> {
        let vb = candle_nn::VarBuilder::zeros(dtype, device);
        crate::Transformer::new(
            cfg,
            &vb,
            crate::quant::LinearSource::Quantize(crate::WeightFormat::Full),
        )
    }

    /// A VAE of `cfg`'s architecture with all-zero weights (for memory and time benchmarks: the work and
    /// the buffers do not depend on the values).
    pub fn zero_vae(
        cfg: crate::VaeConfig,
        device: &candle_core::Device,
    ) -> crate::Result<crate::Vae> {
        // Plain zero tensors, not a VarMap's variables (those would record every op for backprop).
        let vb = candle_nn::VarBuilder::zeros(candle_core::DType::F32, device);
        crate::Vae::from_var_builder(cfg, &vb)
    }
}

pub use config::{OmniGenConfig, RopeScaling};
pub use device::{DTypeChoice, DeviceChoice};
pub use error::{Error, Result};
pub use files::{ModelFiles, OFFICIAL_FILES};
pub use image_out::to_rgb8;
pub use instruction::Instruction;
pub use kv_cache::KvCache;
pub use latent::Latent;
pub use options::{LoadOptions, OptionError, OptionField, SampleOptions};
pub use pipeline::OmniGen;
pub use quant::WeightFormat;
pub use sampler::{BranchBatch, CfgMode, KvCacheMode, LoopInputs, LoopOptions, StepProgress};
pub use transformer::{ForwardInput, ImageSpan, Transformer};
pub use vae::{EncodeMode, Vae, VaeConfig};
