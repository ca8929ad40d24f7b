//! Phi-3 self-attention with a fused `qkv_proj`, LongRoPE, an additive mask and the condition KV cache.

use candle_core::{DType, Tensor, D};

use crate::error::Result;
use crate::nn::Linear;
use crate::weights::Vb;

/// `self_attn` of one decoder layer.
#[derive(Debug, Clone)]
pub struct Attention {
    pub(crate) qkv_proj: Linear,
    pub(crate) o_proj: Linear,
    n_heads: usize,
    head_dim: usize,
}

/// The additive attention mask of one forward call, plus the first query row from which every row is
/// fully unmasked (image-token rows usually are), so that those rows skip the mask add.
#[derive(Debug, Clone)]
pub(crate) struct AttnMask {
    /// `[B,1,Sq,Sk]` additive mask.
    pub additive: Tensor,
    /// Rows `free_from..Sq` attend to every key.
    pub free_from: usize,
}

impl AttnMask {
    /// Keeps only the first `n` key columns (the reference's step-0 cache crop).
    fn crop_keys(&self, n: usize) -> Result<Self> {
        Ok(Self {
            additive: self.additive.narrow(3, 0, n)?,
            free_from: self.free_from,
        })
    }
}

/// What a layer's attention does with the cache in this call.
pub(crate) enum LayerCache<'a> {
    Off,
    Fill {
        slot: &'a mut Option<(Tensor, Tensor)>,
        tail: usize,
        attend_cropped: bool,
    },
    Read(&'a (Tensor, Tensor)),
}

impl Attention {
    pub(crate) fn new(hidden: usize, n_heads: usize, vb: &Vb) -> Result<Self> {
        Ok(Self {
            qkv_proj: Linear::new(hidden, 3 * hidden, false, &vb.pp("qkv_proj"))?,
            o_proj: Linear::new(hidden, hidden, false, &vb.pp("o_proj"))?,
            n_heads,
            head_dim: hidden / n_heads,
        })
    }

    fn heads(&self, x: &Tensor, b: usize, s: usize) -> Result<Tensor> {
        Ok(x.reshape((b, s, self.n_heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// `x` `[B,Sq,C]`; `cos`/`sin` `[B,Sq,D/2]`; `mask` additive `[B,1,Sq,Sk]` where `Sk` covers cached
    /// plus new keys.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &AttnMask,
        cache: LayerCache,
    ) -> Result<Tensor> {
        let (b, s, c) = x.dims3()?;
        let qkv = self.qkv_proj.forward(x)?;
        let q = self.heads(&qkv.narrow(D::Minus1, 0, c)?, b, s)?;
        let k = self.heads(&qkv.narrow(D::Minus1, c, c)?, b, s)?;
        let v = self.heads(&qkv.narrow(D::Minus1, 2 * c, c)?, b, s)?;
        let q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
        let (keys, values, mask) = match cache {
            LayerCache::Off => (k, v, mask.clone()),
            LayerCache::Fill {
                slot,
                tail,
                attend_cropped,
            } => {
                let n_cond = s - tail;
                let ck = k.narrow(2, 0, n_cond)?.contiguous()?;
                let cv = v.narrow(2, 0, n_cond)?.contiguous()?;
                *slot = Some((ck.clone(), cv.clone()));
                if attend_cropped {
                    // The reference's DynamicCache.update returns the *cropped* K/V on the first step and the
                    // layer slices the mask to that many columns.
                    (ck, cv, mask.crop_keys(n_cond)?)
                } else {
                    (k, v, mask.clone())
                }
            }
            LayerCache::Read((ck, cv)) => (
                Tensor::cat(&[ck, &k], 2)?,
                Tensor::cat(&[cv, &v], 2)?,
                mask.clone(),
            ),
        };
        let y = attend(&q, &keys, &values, &mask)?;
        let y = y.transpose(1, 2)?.reshape((b, s, c))?;
        self.o_proj.forward(&y)
    }
}

/// softmax(q kᵀ / sqrt(d) + mask) v; rows from `mask.free_from` on skip the (all-zero) mask add.
pub(crate) fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: &AttnMask) -> Result<Tensor> {
    let sq = q.dim(2)?;
    let r = mask.free_from.min(sq);
    if r == 0 {
        return attend_rows(q, k, v, None);
    }
    if r == sq {
        return attend_rows(q, k, v, Some(&mask.additive));
    }
    let masked = attend_rows(
        &q.narrow(2, 0, r)?,
        k,
        v,
        Some(&mask.additive.narrow(2, 0, r)?),
    )?;
    let free = attend_rows(&q.narrow(2, r, sq - r)?, k, v, None)?;
    Ok(Tensor::cat(&[masked, free], 2)?)
}

/// softmax(q kᵀ / sqrt(d) [+ mask]) v, with the softmax in f32.
fn attend_rows(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let d = q.dim(D::Minus1)?;
    let scale = 1.0 / (d as f64).sqrt();
    // Scaling q (B·H·S·D values) is much cheaper than scaling the scores (B·H·S·S).
    let scores = (q * scale)?.matmul(&k.t()?)?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores,
    };
    let dtype = scores.dtype();
    let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?;
    Ok(probs.matmul(v)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn unmasked_rows_skip_the_mask_with_identical_results() -> Result<()> {
        let dev = Device::Cpu;
        let (h, s, d) = (2, 7, 4);
        let q = Tensor::randn(0f32, 1.0, (1, h, s, d), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (1, h, s, d), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (1, h, s, d), &dev)?;
        // Causal for the first 3 rows, all-visible after.
        let mut m = vec![0f32; s * s];
        for r in 0..3 {
            for c in (r + 1)..s {
                m[r * s + c] = f32::MIN;
            }
        }
        let additive = Tensor::from_vec(m, (1, 1, s, s), &dev)?;
        let full = attend_rows(&q, &k, &v, Some(&additive))?;
        for free_from in [3, 5, s] {
            let split = attend(
                &q,
                &k,
                &v,
                &AttnMask {
                    additive: additive.clone(),
                    free_from,
                },
            )?;
            let diff = (&split - &full)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            assert_eq!(diff, 0.0, "free_from {free_from}");
        }
        Ok(())
    }
}
