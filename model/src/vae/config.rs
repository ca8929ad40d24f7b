//! `vae/config.json` of a diffusers `AutoencoderKL` (SDXL VAE for OmniGen).

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The fields of a diffusers `AutoencoderKL` config that the architecture depends on.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct VaeConfig {
    /// Image channels in (3).
    #[serde(default = "three")]
    pub in_channels: usize,
    /// Image channels out (3).
    #[serde(default = "three")]
    pub out_channels: usize,
    /// Latent channels (4).
    #[serde(default = "four")]
    pub latent_channels: usize,
    /// Channels per resolution level.
    pub block_out_channels: Vec<usize>,
    /// ResNet blocks per encoder level (decoder levels have one more).
    #[serde(default = "one")]
    pub layers_per_block: usize,
    /// GroupNorm groups.
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    /// Latent scale (0.13025 for SDXL).
    #[serde(default = "sdxl_scale")]
    pub scaling_factor: f64,
    /// Latent shift (absent for SDXL).
    #[serde(default)]
    pub shift_factor: Option<f64>,
    /// Whether `quant_conv` exists.
    #[serde(default = "yes")]
    pub use_quant_conv: bool,
    /// Whether `post_quant_conv` exists.
    #[serde(default = "yes")]
    pub use_post_quant_conv: bool,
    /// Whether the mid blocks have self-attention.
    #[serde(default = "yes")]
    pub mid_block_add_attention: bool,
}

fn three() -> usize {
    3
}
fn four() -> usize {
    4
}
fn one() -> usize {
    1
}
fn thirty_two() -> usize {
    32
}
fn sdxl_scale() -> f64 {
    0.13025
}
fn yes() -> bool {
    true
}

impl VaeConfig {
    /// Reads `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if cfg.block_out_channels.is_empty()
            || cfg
                .block_out_channels
                .iter()
                .any(|c| c % cfg.norm_num_groups != 0)
        {
            return Err(Error::Json {
                path: path.to_path_buf(),
                message: format!(
                    "block_out_channels {:?} must be non-empty multiples of norm_num_groups {}",
                    cfg.block_out_channels, cfg.norm_num_groups
                ),
            });
        }
        Ok(cfg)
    }

    /// The SDXL VAE configuration.
    pub fn sdxl() -> Self {
        Self {
            in_channels: 3,
            out_channels: 3,
            latent_channels: 4,
            block_out_channels: vec![128, 256, 512, 512],
            layers_per_block: 2,
            norm_num_groups: 32,
            scaling_factor: 0.13025,
            shift_factor: None,
            use_quant_conv: true,
            use_post_quant_conv: true,
            mid_block_add_attention: true,
        }
    }

    /// Pixels per latent cell.
    pub fn downscale(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }
}
