//! The SDXL `AutoencoderKL` (diffusers layout), always run in float32 as the reference does.

mod blocks;
mod coder;
pub mod config;
mod tiled;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2d, VarBuilder};

use crate::error::{Error, Result};
use crate::latent::Latent;
use crate::weights::Layout;
use blocks::conv;
use coder::{Decoder, Encoder};
pub use config::VaeConfig;
pub use tiled::DEFAULT_BAND_BYTES;

/// The config of a VAE folder.
pub const VAE_CONFIG_FILE: &str = "config.json";
/// The weight file names of a VAE folder, in order of preference.
pub const VAE_WEIGHT_FILES: [&str; 2] =
    ["diffusion_pytorch_model.safetensors", "model.safetensors"];

/// The largest latent (in positions, 128² = a 1024² picture) that [`Vae::decode`] decodes as one map;
/// its mid-block attention scores alone take 1 GiB there.
pub const WHOLE_MAP_MAX_TOKENS: usize = 128 * 128;

/// How `Vae::encode` turns the posterior into a latent.
#[derive(Debug, Clone)]
pub enum EncodeMode {
    /// The posterior mean (deterministic; best for parity).
    Mean,
    /// `mean + std·ε` with ε from the crate's seeded generator (what the reference's `.sample()` does, with
    /// torch's global RNG instead).
    Sample {
        /// Seed of the ε draw.
        seed: u64,
    },
    /// `mean + std·ε` with an injected ε of the latent's shape.
    Noise(Tensor),
}

/// SDXL VAE: encoder, decoder, (post-)quant convs, and the latent scale/shift.
#[derive(Debug, Clone)]
pub struct Vae {
    cfg: VaeConfig,
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: Option<Conv2d>,
    post_quant_conv: Option<Conv2d>,
    device: Device,
}

impl Vae {
    /// The weight file of a VAE folder: the first of [`VAE_WEIGHT_FILES`] present.
    pub fn weights_file(dir: &Path) -> Option<PathBuf> {
        VAE_WEIGHT_FILES
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
    }

    /// Loads `dir/config.json` and `dir/diffusion_pytorch_model.safetensors` (or `model.safetensors`).
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg = VaeConfig::from_file(&dir.join(VAE_CONFIG_FILE))?;
        let weights = Self::weights_file(dir).ok_or_else(|| Error::Layout {
            path: dir.to_path_buf(),
            missing: vec![VAE_WEIGHT_FILES[0].to_string()],
        })?;
        let vb = crate::weights::open(&[weights], Layout::Official, DType::F32, device)?;
        Self::from_var_builder(cfg, &vb)
    }

    pub(crate) fn from_var_builder(cfg: VaeConfig, vb: &VarBuilder) -> Result<Self> {
        let l = cfg.latent_channels;
        Ok(Self {
            encoder: Encoder::new(&cfg, &vb.pp("encoder"))?,
            decoder: Decoder::new(&cfg, &vb.pp("decoder"))?,
            quant_conv: if cfg.use_quant_conv {
                Some(conv(2 * l, 2 * l, 1, 1, 0, &vb.pp("quant_conv"))?)
            } else {
                None
            },
            post_quant_conv: if cfg.use_post_quant_conv {
                Some(conv(l, l, 1, 1, 0, &vb.pp("post_quant_conv"))?)
            } else {
                None
            },
            device: vb.device().clone(),
            cfg,
        })
    }

    /// Configuration (scaling factor, channels).
    pub fn config(&self) -> &VaeConfig {
        &self.cfg
    }

    /// Device the VAE runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Posterior mean and std of pixels `[B,3,H,W]` in [-1,1] (H, W multiples of 8). Pictures of more
    /// than [`WHOLE_MAP_MAX_TOKENS`] latent positions (over 1024²) are encoded in row bands, as
    /// [`Vae::decode`] decodes them.
    pub fn posterior(&self, pixels: &Tensor) -> Result<(Tensor, Tensor)> {
        let (_, _, h, w) = pixels.dims4()?;
        let f = self.cfg.downscale();
        let band = ((h / f) * (w / f) > WHOLE_MAP_MAX_TOKENS).then_some(DEFAULT_BAND_BYTES);
        self.posterior_in(pixels, band)
    }

    /// [`Vae::posterior`] with the encoder run in row bands of about `band_bytes` of temporaries each:
    /// the same moments up to float summation order.
    pub fn posterior_tiled(&self, pixels: &Tensor, band_bytes: usize) -> Result<(Tensor, Tensor)> {
        self.posterior_in(pixels, Some(band_bytes))
    }

    fn posterior_in(&self, pixels: &Tensor, band: Option<usize>) -> Result<(Tensor, Tensor)> {
        let (_, c, h, w) = pixels.dims4()?;
        let f = self.cfg.downscale();
        if c != self.cfg.in_channels || h % f != 0 || w % f != 0 {
            return Err(Error::Input(format!(
                "VAE input must be [B,{},H,W] with H, W multiples of {f}, got {:?}",
                self.cfg.in_channels,
                pixels.dims()
            )));
        }
        let x = pixels.to_device(&self.device)?.to_dtype(DType::F32)?;
        let mut moments = match band {
            Some(bytes) => self.encoder.forward_tiled(&x, bytes)?,
            None => self.encoder.forward(&x)?,
        };
        if let Some(q) = &self.quant_conv {
            moments = q.forward(&moments)?;
        }
        let l = self.cfg.latent_channels;
        let mean = moments.narrow(1, 0, l)?;
        let logvar = moments.narrow(1, l, l)?.clamp(-30f32, 20f32)?;
        let std = (logvar * 0.5)?.exp()?;
        Ok((mean, std))
    }

    /// Encodes pixels `[B,3,H,W]` in [-1,1] into a scaled latent: `(z − shift)·scale` or `z·scale`.
    pub fn encode(&self, pixels: &Tensor, mode: EncodeMode) -> Result<Latent> {
        let (mean, std) = self.posterior(pixels)?;
        let z = match mode {
            EncodeMode::Mean => mean,
            EncodeMode::Sample { seed } => {
                let eps = crate::noise::gaussian(seed, mean.shape().clone(), &self.device)?;
                (mean + std.mul(&eps)?)?
            }
            EncodeMode::Noise(eps) => {
                if eps.dims() != mean.dims() {
                    return Err(Error::Input(format!(
                        "encode noise has shape {:?}, the posterior has {:?}",
                        eps.dims(),
                        mean.dims()
                    )));
                }
                let eps = eps.to_device(&self.device)?.to_dtype(DType::F32)?;
                (mean + std.mul(&eps)?)?
            }
        };
        let z = match self.cfg.shift_factor {
            Some(s) => ((z - s)? * self.cfg.scaling_factor)?,
            None => (z * self.cfg.scaling_factor)?,
        };
        Latent::new(z)
    }

    /// Decodes a scaled latent into pixels `[B,3,8h,8w]` (about [-1,1], not clamped). Latents of more
    /// than [`WHOLE_MAP_MAX_TOKENS`] positions (pictures over 1024²) decode in row bands
    /// ([`Vae::decode_tiled`]): the same picture, without the whole-map path's attention scores (4 GiB
    /// at 1448², 17 GiB at 2048²).
    pub fn decode(&self, latent: &Latent) -> Result<Tensor> {
        let z = self.decoder_input(latent)?;
        let (_, _, h, w) = z.dims4()?;
        if h * w > WHOLE_MAP_MAX_TOKENS {
            self.decoder.forward_tiled(&z, DEFAULT_BAND_BYTES)
        } else {
            self.decoder.forward(&z)
        }
    }

    /// The decoder's input: the latent unscaled (and unshifted), through `post_quant_conv`.
    fn decoder_input(&self, latent: &Latent) -> Result<Tensor> {
        let z = latent
            .tensor()
            .to_device(&self.device)?
            .to_dtype(DType::F32)?;
        let z = (z / self.cfg.scaling_factor)?;
        let z = match self.cfg.shift_factor {
            Some(s) => (z + s)?,
            None => z,
        };
        Ok(match &self.post_quant_conv {
            Some(c) => c.forward(&z)?,
            None => z,
        })
    }

    /// [`Vae::decode`] in row bands (the same picture up to float summation order), each band's
    /// temporaries about `band_bytes`: for pictures whose whole-map decode does not fit in memory.
    pub fn decode_tiled(&self, latent: &Latent, band_bytes: usize) -> Result<Tensor> {
        self.decoder
            .forward_tiled(&self.decoder_input(latent)?, band_bytes)
    }
}
