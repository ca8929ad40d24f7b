//! Phi-3 LongRoPE ("su"/"longrope") as transformers 4.45.2 computes it for OmniGen.
//!
//! Two traps (spec §4.4): the long/short factor set is chosen from the *padded total key length* of the
//! forward call (cache included), not from the positions; and cos/sin are multiplied by
//! `sqrt(1 + ln(max/orig)/ln(orig))` before being cast to the model dtype.

use candle_core::{DType, Device, Tensor};

use crate::config::OmniGenConfig;
use crate::error::Result;

/// Inverse frequencies for both factor sets plus the switch length and magnitude scale.
#[derive(Debug, Clone)]
pub struct LongRope {
    inv_short: Vec<f32>,
    inv_long: Vec<f32>,
    /// Long factors are used when the key length exceeds this (`None`: never).
    switch_len: Option<usize>,
    scale: f32,
}

fn inv_freq(factors: Option<&[f64]>, theta: f64, head_dim: usize) -> Vec<f32> {
    (0..head_dim / 2)
        .map(|j| {
            // torch: (arange(0, dim, 2).float() / dim), base ** that in f32, times the f32 factor, 1 / that.
            let expo = (2 * j) as f32 / head_dim as f32;
            let base = (theta as f32).powf(expo);
            let ext = factors.map_or(1.0, |f| f[j] as f32);
            1.0f32 / (ext * base)
        })
        .collect()
}

impl LongRope {
    /// Builds the tables from the configuration.
    pub fn new(cfg: &OmniGenConfig) -> Self {
        let hd = cfg.head_dim();
        match (&cfg.rope_scaling, cfg.original_max_position_embeddings) {
            (Some(rs), Some(orig)) => {
                let ratio = cfg.max_position_embeddings as f64 / orig as f64;
                let scale = if ratio <= 1.0 {
                    1.0
                } else {
                    (1.0 + ratio.ln() / (orig as f64).ln()).sqrt()
                };
                Self {
                    inv_short: inv_freq(Some(&rs.short_factor), cfg.rope_theta, hd),
                    inv_long: inv_freq(Some(&rs.long_factor), cfg.rope_theta, hd),
                    switch_len: Some(orig),
                    scale: scale as f32,
                }
            }
            _ => {
                let inv = inv_freq(None, cfg.rope_theta, hd);
                Self {
                    inv_short: inv.clone(),
                    inv_long: inv,
                    switch_len: None,
                    scale: 1.0,
                }
            }
        }
    }

    /// Whether a forward whose keys span `kv_len` positions uses the long factors.
    pub fn uses_long(&self, kv_len: usize) -> bool {
        self.switch_len.is_some_and(|s| kv_len > s)
    }

    /// cos and sin of shape `[B, Sq, head_dim/2]` in `dtype` for `position_ids` `[B, Sq]` (any integer or
    /// float dtype) in a forward whose total key length is `kv_len`.
    pub fn cos_sin(
        &self,
        position_ids: &Tensor,
        kv_len: usize,
        dtype: DType,
    ) -> Result<(Tensor, Tensor)> {
        let device: &Device = position_ids.device();
        let inv = if self.uses_long(kv_len) {
            &self.inv_long
        } else {
            &self.inv_short
        };
        let inv = Tensor::from_slice(inv, (1, 1, inv.len()), device)?;
        let pos = position_ids.to_dtype(DType::F32)?.unsqueeze(2)?;
        let freqs = pos.broadcast_mul(&inv)?;
        let scale = self.scale as f64;
        let cos = (freqs.cos()? * scale)?.to_dtype(dtype)?.contiguous()?;
        let sin = (freqs.sin()? * scale)?.to_dtype(dtype)?.contiguous()?;
        Ok((cos, sin))
    }
}
