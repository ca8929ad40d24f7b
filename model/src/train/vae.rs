//! Training an SDXL-shaped `AutoencoderKL` of small channels from scratch (the demo model's VAE, issue 13):
//! the same [`Vae`] the pipeline runs, its weights in a seeded `VarMap`, a reparameterised encode → decode
//! with a KL term, the reconstruction loss weighted towards foreground and edge pixels
//! ([`data::pixel_weights`]), AdamW with warm-up and cosine decay, and the result saved in the diffusers
//! layout [`Vae::load`] reads (`config.json` + `diffusion_pytorch_model.safetensors`).

pub mod data;

use std::ops::ControlFlow;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Optimizer as _, VarBuilder, VarMap};

use crate::error::{Error, Result};
use crate::latent::Latent;
use crate::noise::NoiseRng;
use crate::vae::{EncodeMode, Vae, VaeConfig, VAE_CONFIG_FILE, VAE_WEIGHT_FILES};
pub use data::{pixel_weights, VaeImages};

/// What to train and how. `Default` is the demo VAE: channels 16-32-64-64 (three downsamples, latent =
/// pixels / 8), one resnet a level, 4 latent channels.
#[derive(Debug, Clone, PartialEq)]
pub struct VaeTrainConfig {
    /// Channels per resolution level (`block_out_channels`); `len − 1` downsamples.
    pub channels: Vec<usize>,
    /// ResNet blocks per encoder level (the decoder has one more).
    pub layers_per_block: usize,
    /// GroupNorm groups (must divide every channel count).
    pub norm_groups: usize,
    /// Latent channels.
    pub latent_channels: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Peak learning rate (after warm-up; cosine decay to a tenth of it).
    pub lr: f64,
    /// Warm-up steps (linear from 0).
    pub warmup: usize,
    /// Pictures a step.
    pub batch_size: usize,
    /// Seed of the initial weights, the batches and the posterior noise.
    pub seed: u64,
    /// Weight of the KL term (per pixel value, like the reconstruction term).
    pub kl_weight: f64,
    /// Extra reconstruction weight of foreground pixels.
    pub foreground_weight: f32,
    /// Extra reconstruction weight of pixels at an edge.
    pub edge_weight: f32,
    /// The encoder's initial log-variance: small, so that early latents are nearly deterministic.
    pub initial_logvar: f64,
    /// Gradient clipping (total norm).
    pub max_grad_norm: f64,
    /// Train on random `crop`×`crop` windows (a multiple of the downscale) instead of whole pictures for
    /// the first `crop_steps` steps (`None`: whole pictures throughout).
    pub crop: Option<usize>,
    /// How many of the steps use windows when `crop` is set.
    pub crop_steps: usize,
}

impl Default for VaeTrainConfig {
    fn default() -> Self {
        Self {
            channels: vec![16, 32, 64, 64],
            layers_per_block: 1,
            norm_groups: 8,
            latent_channels: 4,
            steps: 2000,
            lr: 2e-3,
            warmup: 50,
            batch_size: 8,
            seed: 0,
            kl_weight: 1e-4,
            foreground_weight: 4.0,
            edge_weight: 8.0,
            initial_logvar: -8.0,
            max_grad_norm: 1.0,
            crop: None,
            crop_steps: 0,
        }
    }
}

impl VaeTrainConfig {
    /// The VAE architecture this trains (scaling factor 1 until [`VaeTrainer::calibrate`]).
    pub fn vae_config(&self) -> VaeConfig {
        VaeConfig {
            in_channels: 3,
            out_channels: 3,
            latent_channels: self.latent_channels,
            block_out_channels: self.channels.clone(),
            layers_per_block: self.layers_per_block,
            norm_num_groups: self.norm_groups,
            scaling_factor: 1.0,
            shift_factor: None,
            use_quant_conv: true,
            use_post_quant_conv: true,
            mid_block_add_attention: true,
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Input(format!("VAE training: {m}")));
        if self.channels.len() < 2 {
            return bad(format!(
                "channels {:?} need at least two levels",
                self.channels
            ));
        }
        if self.norm_groups == 0 || self.channels.iter().any(|c| c % self.norm_groups != 0) {
            return bad(format!(
                "every channel count of {:?} must be a multiple of the {} norm groups",
                self.channels, self.norm_groups
            ));
        }
        if let Some(c) = self.crop {
            let f = 1 << (self.channels.len() - 1);
            if c == 0 || c % f != 0 {
                return bad(format!("crop {c} must be a positive multiple of {f}"));
            }
        }
        if self.batch_size == 0 || self.latent_channels == 0 || self.lr.is_nan() || self.lr <= 0.0 {
            return bad("batch size, latent channels and learning rate must be positive".into());
        }
        Ok(())
    }

    /// The learning rate at `step` (0-based): linear warm-up, then cosine decay to `lr / 10`.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.steps.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        let floor = self.lr / 10.0;
        floor + (self.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// The losses of one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VaeStepStats {
    /// The step (1-based).
    pub step: usize,
    /// Weighted reconstruction + weighted KL.
    pub loss: f64,
    /// The weighted mean squared reconstruction error (pixels in [-1, 1]).
    pub reconstruction: f64,
    /// The KL divergence per pixel value.
    pub kl: f64,
    /// The learning rate used.
    pub lr: f64,
    /// The gradient norm before clipping.
    pub grad_norm: f64,
}

/// A VAE being trained.
pub struct VaeTrainer {
    config: VaeTrainConfig,
    vae_config: VaeConfig,
    varmap: VarMap,
    vars: Vec<Var>,
    vae: Vae,
    optimizer: candle_nn::AdamW,
    step: usize,
}

impl VaeTrainer {
    /// A freshly initialised VAE on `device`: convolutions and linears uniform in ±1/√fan_in (torch's
    /// default), norms at identity, biases zero, and the log-variance half of `quant_conv` at
    /// `initial_logvar`.
    pub fn new(config: VaeTrainConfig, device: &Device) -> Result<Self> {
        config.check()?;
        let vae_config = config.vae_config();
        let varmap = VarMap::new();
        // The mid-block attentions take diffusers' current names (`to_q`, …) when they exist.
        let last = *config.channels.last().unwrap_or(&1);
        for side in ["encoder", "decoder"] {
            varmap.get(
                (last, last),
                &format!("{side}.mid_block.attentions.0.to_q.weight"),
                candle_nn::Init::Const(0.0),
                DType::F32,
                device,
            )?;
        }
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let vae = Vae::from_var_builder(vae_config.clone(), &vb)?;
        initialise(&varmap, &config)?;
        let mut named: Vec<(String, Var)> = varmap
            .data()
            .lock()
            .map_err(|_| Error::Input("VAE variables poisoned".into()))?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let vars: Vec<Var> = named.into_iter().map(|(_, v)| v).collect();
        let optimizer = candle_nn::AdamW::new(
            vars.clone(),
            candle_nn::ParamsAdamW {
                lr: config.lr_at(0),
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
            },
        )?;
        Ok(Self {
            config,
            vae_config,
            varmap,
            vars,
            vae,
            optimizer,
            step: 0,
        })
    }

    /// Continues from a saved VAE folder of the same architecture: its weights replace the initial ones
    /// (the optimiser state and the schedule start afresh).
    pub fn load_weights(&mut self, dir: &Path) -> Result<()> {
        let file = Vae::weights_file(dir).ok_or_else(|| Error::Layout {
            path: dir.to_path_buf(),
            missing: vec![VAE_WEIGHT_FILES[0].to_string()],
        })?;
        self.varmap.load(&file)?;
        Ok(())
    }

    /// The VAE as it is now (its tensors are the trained variables).
    pub fn vae(&self) -> &Vae {
        &self.vae
    }

    /// The configuration.
    pub fn config(&self) -> &VaeTrainConfig {
        &self.config
    }

    /// Trainable parameters.
    pub fn parameter_count(&self) -> usize {
        self.vars.iter().map(|v| v.elem_count()).sum()
    }

    /// The loss of a batch: pixels `[B,3,H,W]` in [-1, 1] and per-pixel weights `[B,1,H,W]`.
    pub fn loss(&self, pixels: &Tensor, weights: &Tensor, seed: u64) -> Result<(Tensor, f64, f64)> {
        let (mean, std) = self.vae.posterior(pixels)?;
        let eps = crate::noise::gaussian(seed, mean.shape().clone(), mean.device())?;
        let z = (&mean + std.mul(&eps)?)?;
        let recon = self
            .vae
            .decode(&Latent::new((z * self.vae.config().scaling_factor)?)?)?;
        let per_pixel = (recon - pixels)?.sqr()?.broadcast_mul(weights)?;
        let channels = pixels.dim(1)? as f64;
        let reconstruction = (per_pixel.sum_all()? / (weights.sum_all()? * channels)?)?;
        let var = std.sqr()?;
        let kl_sum = ((mean.sqr()? + &var)? - var.log()?)?
            .affine(0.5, -0.5)?
            .sum_all()?;
        let kl = (kl_sum / pixels.elem_count() as f64)?;
        let loss = (&reconstruction + (&kl * self.config.kl_weight)?)?;
        let (r, k) = (
            reconstruction.to_scalar::<f32>()? as f64,
            kl.to_scalar::<f32>()? as f64,
        );
        Ok((loss, r, k))
    }

    /// One optimiser step on a batch (see [`VaeTrainer::loss`]).
    pub fn step(&mut self, pixels: &Tensor, weights: &Tensor) -> Result<VaeStepStats> {
        let lr = self.config.lr_at(self.step);
        self.optimizer.set_learning_rate(lr);
        let noise_seed = self
            .config
            .seed
            .wrapping_mul(0x9E37_79B9)
            .wrapping_add(self.step as u64);
        let (loss, reconstruction, kl) = self.loss(pixels, weights, noise_seed)?;
        let mut grads = loss.backward()?;
        let grad_norm = super::clip_grad_norm(&mut grads, &self.vars, self.config.max_grad_norm)?;
        self.optimizer.step(&grads)?;
        self.step += 1;
        Ok(VaeStepStats {
            step: self.step,
            loss: loss.to_scalar::<f32>()? as f64,
            reconstruction,
            kl,
            lr,
            grad_norm,
        })
    }

    /// Trains for the configured steps on random batches of `data` (drawn from the seed), calling
    /// `on_step` after each; it may stop the run early.
    pub fn run(
        &mut self,
        data: &VaeImages,
        on_step: &mut dyn FnMut(&VaeStepStats) -> ControlFlow<()>,
    ) -> Result<()> {
        if data.is_empty() {
            return Err(Error::Input("no pictures to train the VAE on".into()));
        }
        let device = self.vae.device().clone();
        let mut rng = NoiseRng::new(self.config.seed ^ 0x0BA7_C4E5);
        let below =
            |rng: &mut NoiseRng, n: usize| ((rng.next_u64() as u128 * n as u128) >> 64) as usize;
        let (w, h) = data.size();
        while self.step < self.config.steps {
            let picks: Vec<usize> = (0..self.config.batch_size)
                .map(|_| below(&mut rng, data.len()))
                .collect();
            let window = self
                .config
                .crop
                .filter(|&c| self.step < self.config.crop_steps && c < w.min(h));
            let (pixels, weights) = match window {
                Some(side) => {
                    let picks: Vec<(usize, usize, usize)> = picks
                        .iter()
                        .map(|&i| {
                            (
                                i,
                                below(&mut rng, w - side + 1),
                                below(&mut rng, h - side + 1),
                            )
                        })
                        .collect();
                    data.crops(&picks, side, &device)?
                }
                None => data.batch(&picks, &device)?,
            };
            let stats = self.step(&pixels, &weights)?;
            if on_step(&stats).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Sets the latent scaling factor to 1 / (standard deviation of the posterior means of `pixels`), as
    /// Stable Diffusion chose its 0.18215, so that OmniGen's transformer sees latents of unit scale.
    /// Returns the factor.
    pub fn calibrate(&mut self, pixels: &Tensor) -> Result<f64> {
        let (mean, _) = self.vae.posterior(pixels)?;
        let mean = mean.detach();
        let m = mean.mean_all()?.to_scalar::<f32>()? as f64;
        let var = (mean - m)?.sqr()?.mean_all()?.to_scalar::<f32>()? as f64;
        let factor = 1.0 / var.sqrt().max(1e-6);
        self.vae_config.scaling_factor = factor;
        Ok(factor)
    }

    /// Encodes (posterior mean) and decodes `pixels`: the reconstruction in [-1, 1] (clamped).
    pub fn reconstruct(&self, pixels: &Tensor) -> Result<Tensor> {
        let latent = self.vae.encode(pixels, EncodeMode::Mean)?;
        Ok(self.vae.decode(&latent)?.detach().clamp(-1f32, 1f32)?)
    }

    /// Writes `dir/config.json` (diffusers' `AutoencoderKL` config) and
    /// `dir/diffusion_pytorch_model.safetensors`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let config = diffusers_config(&self.vae_config);
        let path = dir.join(VAE_CONFIG_FILE);
        let text = serde_json::to_string_pretty(&config).map_err(|e| Error::Json {
            path: path.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))?;
        self.varmap.save(dir.join(VAE_WEIGHT_FILES[0]))?;
        Ok(())
    }
}

/// `picture` encoded (posterior mean) and decoded by `vae`: what a VAE keeps of a picture.
pub fn reconstruct_picture(vae: &Vae, picture: &image::RgbImage) -> Result<image::RgbImage> {
    let pixels = VaeImages::new(vec![picture.clone()], 0.0, 0.0)?
        .batch(&[0], vae.device())?
        .0;
    let latent = vae.encode(&pixels, EncodeMode::Mean)?;
    crate::to_rgb8(&vae.decode(&latent)?)?
        .pop()
        .ok_or_else(|| Error::Input("the VAE decoded no picture".into()))
}

/// Seeded initial values of every variable, in name order.
fn initialise(varmap: &VarMap, config: &VaeTrainConfig) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::Input("VAE variables poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = NoiseRng::new(config.seed);
    let l = config.latent_channels;
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let n = var.elem_count();
        let mut values = if dims.len() >= 2 {
            let fan_in: usize = dims[1..].iter().product();
            let bound = 1.0 / (fan_in as f64).sqrt();
            (0..n)
                .map(|_| ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * bound)
                .map(|v| v as f32)
                .collect()
        } else if name.ends_with(".weight") {
            vec![1f32; n] // a GroupNorm scale
        } else {
            vec![0f32; n]
        };
        if name == "quant_conv.weight" {
            // Output rows l..2l (the log-variance) start at zero, so it starts exactly at the bias.
            values[l * 2 * l..].fill(0.0);
        }
        if name == "quant_conv.bias" {
            values[l..].fill(config.initial_logvar as f32);
        }
        var.set(&Tensor::from_vec(values, dims, var.device())?)?;
    }
    Ok(())
}

/// The diffusers `AutoencoderKL` config of `cfg`.
fn diffusers_config(cfg: &VaeConfig) -> serde_json::Value {
    let levels = cfg.block_out_channels.len();
    serde_json::json!({
        "_class_name": "AutoencoderKL",
        "_diffusers_version": "0.30.3",
        "act_fn": "silu",
        "block_out_channels": cfg.block_out_channels,
        "down_block_types": vec!["DownEncoderBlock2D"; levels],
        "force_upcast": true,
        "in_channels": cfg.in_channels,
        "latent_channels": cfg.latent_channels,
        "latents_mean": null,
        "latents_std": null,
        "layers_per_block": cfg.layers_per_block,
        "mid_block_add_attention": cfg.mid_block_add_attention,
        "norm_num_groups": cfg.norm_num_groups,
        "out_channels": cfg.out_channels,
        "sample_size": 64,
        "scaling_factor": cfg.scaling_factor,
        "shift_factor": null,
        "up_block_types": vec!["UpDecoderBlock2D"; levels],
        "use_post_quant_conv": cfg.use_post_quant_conv,
        "use_quant_conv": cfg.use_quant_conv,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VAE small enough for a unit test: 8-8 channels (one downsample), 16×16 pictures.
    fn tiny() -> VaeTrainConfig {
        VaeTrainConfig {
            channels: vec![8, 8],
            norm_groups: 4,
            steps: 12,
            lr: 3e-3,
            warmup: 2,
            batch_size: 2,
            seed: 5,
            ..VaeTrainConfig::default()
        }
    }

    /// Two 16×16 pictures: a square of colour on a plain background.
    fn pictures() -> VaeImages {
        let img = |bg: [u8; 3], fg: [u8; 3]| {
            image::RgbImage::from_fn(16, 16, |x, y| {
                image::Rgb(if (4..12).contains(&x) && (4..12).contains(&y) {
                    fg
                } else {
                    bg
                })
            })
        };
        VaeImages::new(
            vec![img([255; 3], [220, 40, 40]), img([0; 3], [40, 80, 220])],
            4.0,
            8.0,
        )
        .expect("pictures")
    }

    #[test]
    fn a_few_steps_lower_the_loss_and_the_saved_vae_loads() -> Result<()> {
        let dev = Device::Cpu;
        let data = pictures();
        let (pixels, weights) = data.batch(&[0, 1], &dev)?;
        let mut t = VaeTrainer::new(tiny(), &dev)?;
        let before = t.loss(&pixels, &weights, 0)?.1;
        for _ in 0..12 {
            t.step(&pixels, &weights)?;
        }
        let after = t.loss(&pixels, &weights, 0)?.1;
        assert!(after < before * 0.7, "reconstruction {before} -> {after}");
        // Same seed, same weights.
        let again = VaeTrainer::new(tiny(), &dev)?;
        let fresh = VaeTrainer::new(tiny(), &dev)?;
        assert_eq!(
            again.loss(&pixels, &weights, 0)?.1,
            fresh.loss(&pixels, &weights, 0)?.1
        );
        // Saved in the diffusers layout, it loads as the pipeline's VAE and reconstructs the same.
        let factor = t.calibrate(&pixels)?;
        assert!(factor.is_finite() && factor > 0.0);
        let dir = std::env::temp_dir().join(format!("omnigen-vae-train-{}", std::process::id()));
        t.save(&dir)?;
        let mut resumed = VaeTrainer::new(tiny(), &dev)?;
        resumed.load_weights(&dir)?;
        assert_eq!(
            resumed.loss(&pixels, &weights, 0)?.1,
            t.loss(&pixels, &weights, 0)?.1
        );
        let loaded = Vae::load(&dir, &dev)?;
        assert_eq!(loaded.config().block_out_channels, vec![8, 8]);
        assert!((loaded.config().scaling_factor - factor).abs() < 1e-9);
        let ours = t.reconstruct(&pixels)?;
        let theirs = loaded
            .decode(&loaded.encode(&pixels, EncodeMode::Mean)?)?
            .clamp(-1f32, 1f32)?;
        let diff = (ours - theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-4, "{diff}");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn the_learning_rate_warms_up_then_decays_to_a_tenth() {
        let c = VaeTrainConfig {
            steps: 100,
            warmup: 10,
            lr: 1.0,
            ..VaeTrainConfig::default()
        };
        assert!((c.lr_at(0) - 0.1).abs() < 1e-12);
        assert!((c.lr_at(10) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(100) - 0.1).abs() < 1e-12);
        assert!(c.lr_at(50) < 1.0 && c.lr_at(50) > 0.1);
    }

    #[test]
    fn bad_configs_are_errors() {
        let c = VaeTrainConfig {
            channels: vec![12, 16],
            ..VaeTrainConfig::default()
        };
        assert!(VaeTrainer::new(c, &Device::Cpu).is_err());
    }
}
