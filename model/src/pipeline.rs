//! The user-facing model: load a folder (official or diffusers layout), merge LoRA, sample a prompt.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::config::OmniGenConfig;
use crate::device::{DTypeChoice, DeviceChoice};
use crate::error::{Error, Result};
use crate::latent::Latent;
use crate::processor::{Processor, PromptInput, PromptRequest, DEFAULT_NEGATIVE_PROMPT};
use crate::sampler::{
    sample_loop, BranchBatch, CfgMode, KvCacheMode, LoopInputs, LoopOptions, StepProgress,
};
use crate::scheduler::sigmas;
use crate::transformer::Transformer;
use crate::weights::Layout;

/// Options of [`OmniGen::load`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Compute dtype.
    pub dtype: DTypeChoice,
    /// Device.
    pub device: DeviceChoice,
}

/// The files of a model folder.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// Transformer config.
    pub config: PathBuf,
    /// Transformer weight files.
    pub weights: Vec<PathBuf>,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// The VAE folder (may be absent on disk).
    pub vae_dir: PathBuf,
    /// Whether the folder uses diffusers' names.
    pub diffusers: bool,
}

fn safetensors_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    Ok(files)
}

impl ModelFiles {
    /// Finds the files of `dir`: the official layout (`config.json`, `model.safetensors`, `tokenizer.json`,
    /// `vae/`) or the diffusers one (`transformer/`, `tokenizer/`, `vae/`).
    pub fn discover(dir: &Path) -> Result<Self> {
        let missing = |message: String| Error::Layout {
            path: dir.to_path_buf(),
            message,
        };
        let diffusers = dir.join("transformer").join("config.json").is_file();
        let (config, weights, tokenizer) = if diffusers {
            let t = dir.join("transformer");
            let w = safetensors_in(&t)?;
            (
                t.join("config.json"),
                w,
                dir.join("tokenizer").join("tokenizer.json"),
            )
        } else {
            let single = dir.join("model.safetensors");
            let w = if single.is_file() {
                vec![single]
            } else {
                safetensors_in(dir)?
            };
            (dir.join("config.json"), w, dir.join("tokenizer.json"))
        };
        if !config.is_file() {
            return Err(missing(format!(
                "no `config.json` (official layout) or `transformer/config.json` (diffusers layout); looked for `{}`",
                config.display()
            )));
        }
        if weights.is_empty() {
            return Err(missing(
                "no `.safetensors` weight file next to the config".into(),
            ));
        }
        if !tokenizer.is_file() {
            return Err(missing(format!(
                "no tokenizer at `{}`",
                tokenizer.display()
            )));
        }
        Ok(Self {
            config,
            weights,
            tokenizer,
            vae_dir: dir.join("vae"),
            diffusers,
        })
    }
}

/// A prompt: instruction with `<img><|image_k|></img>` placeholders, its condition images as latents
/// (`images[k-1]` fills `<|image_k|>`), the negative prompt and whether image guidance is used.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// The instruction.
    pub instruction: String,
    /// Condition-image latents (from [`crate::Vae::encode`]).
    pub images: Vec<Latent>,
    /// Negative prompt of the uncond branch; `None` = OmniGen's default.
    pub negative_prompt: Option<String>,
    /// Add the image-only guidance branch when there are images (official default: true).
    pub use_img_guidance: bool,
}

impl Prompt {
    /// A text-only prompt with defaults.
    pub fn new(instruction: impl Into<String>) -> Self {
        Self {
            instruction: instruction.into(),
            images: Vec::new(),
            negative_prompt: None,
            use_img_guidance: true,
        }
    }

    /// Sets the condition images.
    pub fn with_images(mut self, images: Vec<Latent>) -> Self {
        self.images = images;
        self
    }

    /// Sets the negative prompt.
    pub fn with_negative_prompt(mut self, negative: impl Into<String>) -> Self {
        self.negative_prompt = Some(negative.into());
        self
    }

    /// Switches image guidance.
    pub fn with_img_guidance(mut self, on: bool) -> Self {
        self.use_img_guidance = on;
        self
    }

    /// The negative prompt in effect.
    pub fn negative(&self) -> &str {
        self.negative_prompt
            .as_deref()
            .unwrap_or(DEFAULT_NEGATIVE_PROMPT)
    }
}

/// Options of [`OmniGen::sample`] (defaults = the official pipeline's code defaults, 1024², 50 steps).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOptions {
    /// Output width in pixels (multiple of 16).
    pub width: usize,
    /// Output height in pixels (multiple of 16).
    pub height: usize,
    /// Denoising steps.
    pub steps: usize,
    /// Text guidance scale (official code default 3.0; docs use 2.5).
    pub guidance_scale: f64,
    /// Image guidance scale (1.6).
    pub img_guidance_scale: f64,
    /// Seed of the initial noise (the crate's generator).
    pub seed: u64,
    /// KV-cache mode.
    pub kv_cache: KvCacheMode,
    /// CFG mode.
    pub cfg: CfgMode,
    /// Output size = processed size of the first condition image.
    pub use_input_image_size_as_output: bool,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            width: 1024,
            height: 1024,
            steps: 50,
            guidance_scale: 3.0,
            img_guidance_scale: 1.6,
            seed: 0,
            kv_cache: KvCacheMode::Reference,
            cfg: CfgMode::Separate,
            use_input_image_size_as_output: false,
        }
    }
}

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
        let device = opts.device.open()?;
        let dtype = opts.dtype.resolve(&device)?;
        Self::load_on(dir.as_ref(), dtype, &device)
    }

    /// Loads on an explicit device and dtype (f16 is refused).
    pub fn load_on(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
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
        let transformer = Transformer::new(&cfg, &weights)?;
        drop(weights); // unmap the checkpoint
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

    /// Turns a prompt into per-branch model inputs for an output of `opts`' size. Returns the inputs and the
    /// output size `(height, width)` in pixels.
    pub fn prepare(
        &self,
        prompt: &Prompt,
        opts: &SampleOptions,
    ) -> Result<(LoopInputs, (usize, usize))> {
        let sizes: Vec<(usize, usize)> = prompt.images.iter().map(Latent::pixel_size).collect();
        let req = PromptRequest {
            prompts: vec![PromptInput::new(prompt.instruction.clone(), sizes)],
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

    /// Samples one image latent. `noise` (`[1,4,H/8,W/8]`) overrides the seeded noise. `progress` is called
    /// after every step; returning `ControlFlow::Break(())` cancels with [`Error::Cancelled`].
    pub fn sample(
        &self,
        prompt: &Prompt,
        opts: &SampleOptions,
        noise: Option<Tensor>,
        progress: &mut dyn FnMut(StepProgress<'_>) -> ControlFlow<()>,
    ) -> Result<Latent> {
        if opts.steps == 0 {
            return Err(Error::Input("steps must be at least 1".into()));
        }
        let (inputs, (height, width)) = self.prepare(prompt, opts)?;
        let c = self.transformer.config().in_channels;
        let shape = [1, c, height / 8, width / 8];
        let noise = match noise {
            Some(n) if n.dims() == shape => n,
            Some(n) => {
                return Err(Error::Input(format!(
                    "noise has shape {:?}, the {height}x{width} output needs {shape:?}",
                    n.dims()
                )))
            }
            None => crate::noise::gaussian(opts.seed, shape.to_vec(), self.device())?,
        };
        let loop_opts = LoopOptions {
            sigmas: sigmas(opts.steps),
            guidance_scale: opts.guidance_scale,
            img_guidance_scale: opts.img_guidance_scale,
            kv_cache: opts.kv_cache,
        };
        let z = sample_loop(&self.transformer, &inputs, &noise, &loop_opts, progress)?;
        Latent::new(z)
    }
}
