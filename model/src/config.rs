//! Model configuration: the Phi-3 `config.json` of the official layout, or diffusers'
//! `transformer/config.json` (same numbers, other field names).

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// LongRoPE ("su" / "longrope") scaling of the Phi-3 config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RopeScaling {
    /// `"su"` (the OmniGen-v1 spelling) or `"longrope"` (what transformers rewrites it to).
    #[serde(rename = "type", alias = "rope_type")]
    pub kind: String,
    /// Per-pair factors used while the padded sequence length is ≤ `original_max_position_embeddings`.
    pub short_factor: Vec<f64>,
    /// Per-pair factors used above it.
    pub long_factor: Vec<f64>,
}

/// The transformer configuration (Phi-3 decoder plus OmniGen's constants).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct OmniGenConfig {
    /// Model width (3072 for OmniGen-v1).
    pub hidden_size: usize,
    /// MLP width (8192).
    pub intermediate_size: usize,
    /// Decoder layers (32).
    #[serde(alias = "num_layers")]
    pub num_hidden_layers: usize,
    /// Attention heads (32).
    pub num_attention_heads: usize,
    /// KV heads; must equal `num_attention_heads` (OmniGen has no GQA).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Vocabulary size of `llm.embed_tokens`.
    pub vocab_size: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base.
    #[serde(alias = "rope_base", default = "default_theta")]
    pub rope_theta: f64,
    /// LongRoPE "max" length (131072); sets the cos/sin magnitude scale.
    pub max_position_embeddings: usize,
    /// LongRoPE switch length (4096): long factors when the padded length exceeds it.
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
    /// LongRoPE factors; `None` means plain RoPE.
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    /// Latent patch size (2).
    #[serde(default = "default_patch")]
    pub patch_size: usize,
    /// Latent channels (4).
    #[serde(default = "default_in_channels")]
    pub in_channels: usize,
    /// Side of the fixed 2-D sin-cos position grid (192).
    #[serde(default = "default_pos_max")]
    pub pos_embed_max_size: usize,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_theta() -> f64 {
    10000.0
}
fn default_patch() -> usize {
    2
}
fn default_in_channels() -> usize {
    4
}
fn default_pos_max() -> usize {
    192
}

impl OmniGenConfig {
    /// Reads and validates a config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        cfg.validate().map_err(|message| Error::Json {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(cfg)
    }

    /// Checks the invariants the implementation relies on.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if let Some(kv) = self.num_key_value_heads {
            if kv != self.num_attention_heads {
                return Err(format!(
                    "num_key_value_heads {kv} != num_attention_heads {}: OmniGen has no grouped-query attention",
                    self.num_attention_heads
                ));
            }
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(format!(
                "head dim {} must be even for RoPE",
                self.head_dim()
            ));
        }
        if let Some(rs) = &self.rope_scaling {
            if rs.kind != "su" && rs.kind != "longrope" {
                return Err(format!(
                    "rope_scaling type `{}` is not supported (expected \"su\" or \"longrope\")",
                    rs.kind
                ));
            }
            let half = self.head_dim() / 2;
            if rs.short_factor.len() != half || rs.long_factor.len() != half {
                return Err(format!(
                    "rope_scaling factors must have head_dim/2 = {half} entries (short {}, long {})",
                    rs.short_factor.len(),
                    rs.long_factor.len()
                ));
            }
            if self.original_max_position_embeddings.is_none() {
                return Err("rope_scaling needs original_max_position_embeddings".into());
            }
        }
        Ok(())
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}
