//! The user-facing model: load a folder (official or diffusers layout), merge LoRA, sample an instruction.

use std::ops::ControlFlow;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::config::OmniGenConfig;
use crate::error::{Error, Result};
use crate::files::ModelFiles;
use crate::instruction::Instruction;
use crate::latent::{Latent, VAE_FACTOR};
use crate::options::{CfgMode, LoadOptions, SampleOptions};
use crate::processor::{BatchRequest, InstructionInput, Processor};
use crate::quant::{LinearSource, StoredLinears, WeightFormat};
use crate::sampler::{sample_loop, BranchBatch, LoopInputs, LoopOptions, StepProgress};
use crate::scheduler::sigmas;
use crate::transformer::Transformer;
use crate::weights::Layout;

/// OmniGen: transformer, tokenizer/processor and configuration on one device and dtype.
#[derive(Debug, Clone)]
pub struct OmniGen {
    transformer: Transformer,
    processor: Processor,
    files: ModelFiles,
}

impl OmniGen {
    /// Loads a model folder (official or diffusers layout), memory-mapped, in the requested dtype/device.
    pub fn load(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        opts.validate()?;
        let device = opts.device.open()?;
        let dtype = opts.dtype.resolve(&device)?;
        Self::load_with(
            dir.as_ref(),
            dtype,
            opts.weights,
            &device,
            opts.offload_model,
        )
    }

    /// Loads on an explicit device and dtype (f16 is refused), in full precision.
    pub fn load_on(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        Self::load_in(dir, dtype, WeightFormat::Full, device)
    }

    /// Loads on an explicit device and compute dtype, the decoder's linear weights stored in `format`
    /// (quantized one layer at a time as they load).
    pub fn load_in(
        dir: &Path,
        dtype: DType,
        format: WeightFormat,
        device: &Device,
    ) -> Result<Self> {
        Self::load_with(dir, dtype, format, device, false)
    }

    /// [`OmniGen::load_in`], the decoder layers kept in host memory and streamed to `device` as they
    /// run when `offload_model` ([`crate::offload`]; the results are the same).
    pub fn load_with(
        dir: &Path,
        dtype: DType,
        format: WeightFormat,
        device: &Device,
        offload_model: bool,
    ) -> Result<Self> {
        if dtype == DType::F16 {
            return Err(Error::F16Unsupported);
        }
        if !matches!(dtype, DType::F32 | DType::BF16) {
            return Err(Error::Input(format!(
                "dtype {dtype:?} is not supported (use f32 or bf16)"
            )));
        }
        let files = ModelFiles::discover(dir)?;
        let cfg = OmniGenConfig::from_file(&files.config)?;
        let layout = if files.diffusers {
            Layout::Diffusers
        } else {
            Layout::Official
        };
        let weights = crate::weights::open(&files.weights, layout, dtype, device)?;
        let stored = match &files.quantized {
            Some(path) => Some(StoredLinears::open(path)?),
            None => None,
        };
        // A pre-quantized folder brings its own format; the requested one applies to the others.
        let source = match &stored {
            Some(stored) => LinearSource::Stored(stored),
            None => LinearSource::Quantize(format),
        };
        let host_weights = if offload_model {
            Some(crate::weights::open(
                &files.weights,
                layout,
                dtype,
                &crate::offload::host(),
            )?)
        } else {
            None
        };
        let transformer = Transformer::placed(&cfg, &weights, host_weights.as_ref(), source)?;
        drop((weights, host_weights)); // unmap the checkpoint
        let processor = Processor::from_tokenizer_file(&files.tokenizer)?;
        Ok(Self {
            transformer,
            processor,
            files,
        })
    }

    /// The transformer.
    pub fn transformer(&self) -> &Transformer {
        &self.transformer
    }

    /// The prompt processor (tokenizer).
    pub fn processor(&self) -> &Processor {
        &self.processor
    }

    /// The files it was loaded from (e.g. `files().vae_dir` for [`crate::Vae::load`]).
    pub fn files(&self) -> &ModelFiles {
        &self.files
    }

    /// Device.
    pub fn device(&self) -> &Device {
        self.transformer.device()
    }

    /// Compute dtype.
    pub fn dtype(&self) -> DType {
        self.transformer.dtype()
    }

    /// Merges a PEFT LoRA folder into the weights with an extra `scale` (1.0 = as trained). Returns the
    /// number of merged layers.
    pub fn merge_lora(&mut self, dir: impl AsRef<Path>, scale: f64) -> Result<usize> {
        crate::lora::merge_lora(&mut self.transformer, dir.as_ref(), scale)
    }

    /// The latent (and noise) shape `[1, C, H/8, W/8]` of a `height` × `width` pixel output.
    pub fn latent_shape(&self, height: usize, width: usize) -> [usize; 4] {
        let c = self.transformer.config().in_channels;
        [1, c, height / VAE_FACTOR, width / VAE_FACTOR]
    }

    /// Turns an instruction into per-branch model inputs for an output of `opts`' size. Returns the inputs
    /// and the output size `(height, width)` in pixels.
    pub fn prepare(
        &self,
        prompt: &Instruction,
        opts: &SampleOptions,
    ) -> Result<(LoopInputs, (usize, usize))> {
        let sizes: Vec<(usize, usize)> = prompt.images.iter().map(Latent::pixel_size).collect();
        let mut input = InstructionInput::new(prompt.text.clone(), sizes);
        input.size_image = prompt.size_image;
        let req = BatchRequest {
            prompts: vec![input],
            negative_prompt: prompt.negative_prompt.clone(),
            use_img_guidance: prompt.use_img_guidance,
            separate_cfg: opts.cfg == CfgMode::Separate,
            height: opts.height,
            width: opts.width,
            use_input_image_size_as_output: opts.use_input_image_size_as_output,
        };
        let device = self.device();
        let processed = self.processor.process(&req, device)?;
        let batches = processed
            .batches
            .into_iter()
            .map(|b| {
                let condition_latents = b
                    .image_refs
                    .iter()
                    .map(|r| Ok(prompt.images[r.image].tensor().to_device(device)?))
                    .collect::<Result<Vec<Tensor>>>()?;
                Ok(BranchBatch {
                    input_ids: b.collated.input_ids,
                    attention_mask: b.collated.attention_mask,
                    position_ids: b.collated.position_ids,
                    condition_latents,
                    image_spans: b.collated.image_spans,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let inputs = LoopInputs {
            batches,
            cfg: opts.cfg,
            n_branches: processed.num_branches,
        };
        Ok((inputs, processed.output_size))
    }

    /// Samples one image latent. `noise` (of [`OmniGen::latent_shape`]) overrides the seeded noise.
    /// `progress` is called after every step; returning `ControlFlow::Break(())` cancels with
    /// [`Error::Cancelled`]. Options are checked first ([`SampleOptions::validate`]).
    pub fn sample(
        &self,
        prompt: &Instruction,
        opts: &SampleOptions,
        noise: Option<Tensor>,
        progress: &mut dyn FnMut(StepProgress<'_>) -> ControlFlow<()>,
    ) -> Result<Latent> {
        opts.validate()?;
        let (inputs, (height, width)) = self.prepare(prompt, opts)?;
        let shape = self.latent_shape(height, width);
        let noise = match noise {
            Some(n) if n.dims() == shape => n,
            Some(n) => {
                return Err(Error::NoiseShape {
                    found: n.dims().to_vec(),
                    expected: shape.to_vec(),
                    height,
                    width,
                })
            }
            None => crate::noise::gaussian(opts.seed, shape.to_vec(), self.device())?,
        };
        let loop_opts = LoopOptions {
            sigmas: sigmas(opts.steps),
            guidance_scale: opts.guidance_scale,
            img_guidance_scale: opts.img_guidance_scale,
            kv_cache: opts.kv_cache,
            offload_kv_cache: opts.offload_kv_cache,
        };
        let z = sample_loop(&self.transformer, &inputs, &noise, &loop_opts, progress)?;
        Latent::new(z)
    }
}
