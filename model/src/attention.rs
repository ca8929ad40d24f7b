//! Phi-3 self-attention with a fused `qkv_proj`, LongRoPE, an additive mask and the condition KV cache.

use candle_core::{DType, Tensor, D};

use crate::cpu_kernels;
use crate::error::Result;
use crate::nn::Linear;
use crate::quant::LinearSource;
use candle_nn::VarBuilder;

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
    pub(crate) fn new(
        hidden: usize,
        n_heads: usize,
        vb: &VarBuilder,
        source: LinearSource,
    ) -> Result<Self> {
        Ok(Self {
            qkv_proj: Linear::new_in(hidden, 3 * hidden, &vb.pp("qkv_proj"), source)?,
            o_proj: Linear::new_in(hidden, hidden, &vb.pp("o_proj"), source)?,
            n_heads,
            head_dim: hidden / n_heads,
        })
    }

    /// A copy on `device`.
    pub(crate) fn to_device(&self, device: &candle_core::Device) -> Result<Self> {
        Ok(Self {
            qkv_proj: self.qkv_proj.to_device(device)?,
            o_proj: self.o_proj.to_device(device)?,
            n_heads: self.n_heads,
            head_dim: self.head_dim,
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
        // f32 on the CPU: fused RoPE and attention (no score tensor, no head transposes or copies).
        let fused = cpu_kernels::fused_applies(&[&qkv, cos, sin, &mask.additive]);
        let (q, k, v) = if fused {
            let (q, k) = cpu_kernels::rope_qk(&qkv, cos, sin, self.n_heads, self.head_dim)?;
            let v = qkv
                .reshape((b, s, 3, self.n_heads, self.head_dim))?
                .narrow(2, 2, 1)?
                .squeeze(2)?;
            (q.transpose(1, 2)?, k.transpose(1, 2)?, v.transpose(1, 2)?)
        } else {
            let q = self.heads(&qkv.narrow(D::Minus1, 0, c)?, b, s)?;
            let k = self.heads(&qkv.narrow(D::Minus1, c, c)?, b, s)?;
            let v = self.heads(&qkv.narrow(D::Minus1, 2 * c, c)?, b, s)?;
            let q = crate::grad::rope(&q, cos, sin)?;
            let k = crate::grad::rope(&k, cos, sin)?;
            (q, k, v)
        };
        // The keys/values attended to, as segments along the sequence (cached ones first).
        let (kv, mask) = match cache {
            LayerCache::Off => (vec![(k, v)], mask.clone()),
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
                    (vec![(ck, cv)], mask.crop_keys(n_cond)?)
                } else {
                    (vec![(k, v)], mask.clone())
                }
            }
            LayerCache::Read((ck, cv)) => (vec![(ck.clone(), cv.clone()), (k, v)], mask.clone()),
        };
        let y = if fused {
            cpu_kernels::attention(&q, &kv, &mask.additive, mask.free_from)?
        } else {
            let keys = Tensor::cat(&kv.iter().map(|(k, _)| k).collect::<Vec<_>>(), 2)?;
            let values = Tensor::cat(&kv.iter().map(|(_, v)| v).collect::<Vec<_>>(), 2)?;
            attend(&q, &keys, &values, &mask)?
                .transpose(1, 2)?
                .reshape((b, s, c))?
        };
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
    let probs = crate::grad::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?;
    Ok(probs.matmul(v)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_kernels::tests::rel_err;
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
            // Bit-identical with the `gemm` crate; MKL's sgemm may round a row subset differently.
            assert!(diff <= 1e-6, "free_from {free_from}: {diff}");
        }
        Ok(())
    }

    /// `[B,S,H,D]` random data seen as `[B,H,S,D]` (strided, like the fused path's q/k/v).
    fn strided_heads(b: usize, s: usize, h: usize, d: usize) -> Result<Tensor> {
        Ok(Tensor::randn(0f32, 1.0, (b, s, h, d), &Device::Cpu)?.transpose(1, 2)?)
    }

    #[test]
    fn fused_cpu_attention_matches_candle() -> Result<()> {
        let dev = Device::Cpu;
        // Two row blocks of the fused kernel; a cached segment before the new keys.
        let (b, h, sq, d, n_cached) = (2, 3, 70, 16, 23);
        let sk = n_cached + sq;
        let q = (strided_heads(b, sq, h, d)? * 3.0)?;
        let (ck, cv) = (
            Tensor::randn(0f32, 1.0, (b, h, n_cached, d), &dev)?,
            Tensor::randn(0f32, 1.0, (b, h, n_cached, d), &dev)?,
        );
        let (k, v) = (strided_heads(b, sq, h, d)?, strided_heads(b, sq, h, d)?);
        // Mask entries: 0, f32::MIN, -inf and finite negatives; key 0 always visible.
        let m: Vec<f32> = (0..b * sq * sk)
            .map(|i| match (i % sk, (i * 7919) % 5) {
                (0, _) => 0.0,
                (_, 0) => f32::MIN,
                (_, 1) => f32::NEG_INFINITY,
                (_, 2) => -((i % 13) as f32),
                _ => 0.0,
            })
            .collect();
        let additive = Tensor::from_vec(m, (b, 1, sq, sk), &dev)?;
        // The candle path wants contiguous heads.
        let keys = Tensor::cat(&[&ck, &k], 2)?.contiguous()?;
        let values = Tensor::cat(&[&cv, &v], 2)?.contiguous()?;
        for free_from in [0, 30, 64, sq] {
            let mask = AttnMask {
                additive: additive.clone(),
                free_from,
            };
            let want = attend(&q, &keys, &values, &mask)?
                .transpose(1, 2)?
                .reshape((b, sq, h * d))?;
            let kv = [(ck.clone(), cv.clone()), (k.clone(), v.clone())];
            let got = cpu_kernels::attention(&q, &kv, &additive, free_from)?;
            let err = rel_err(&got, &want)?;
            assert!(err < 1e-6, "free_from {free_from}: relative error {err}");
            // Keys only from the cache (Sk < Sq), with the mask cropped to them: a strided mask view.
            let cropped = mask.crop_keys(n_cached)?;
            let want = attend(&q, &ck, &cv, &cropped)?
                .transpose(1, 2)?
                .reshape((b, sq, h * d))?;
            let kv = [(ck.clone(), cv.clone())];
            let got = cpu_kernels::attention(&q, &kv, &cropped.additive, free_from)?;
            let err = rel_err(&got, &want)?;
            assert!(
                err < 1e-6,
                "cropped, free_from {free_from}: relative error {err}"
            );
        }
        Ok(())
    }

    #[test]
    fn fused_cpu_rope_equals_candle_rope() -> Result<()> {
        let dev = Device::Cpu;
        let (b, s, h, d) = (2, 5, 3, 8);
        let qkv = Tensor::randn(0f32, 1.0, (b, s, 3 * h * d), &dev)?;
        let cos = Tensor::randn(0f32, 1.0, (b, s, d / 2), &dev)?;
        let sin = Tensor::randn(0f32, 1.0, (b, s, d / 2), &dev)?;
        let (q, k) = cpu_kernels::rope_qk(&qkv, &cos, &sin, h, d)?;
        for (i, got) in [q, k].iter().enumerate() {
            let x = qkv
                .narrow(2, i * h * d, h * d)?
                .reshape((b, s, h, d))?
                .transpose(1, 2)?
                .contiguous()?;
            let want = candle_nn::rotary_emb::rope(&x, &cos, &sin)?;
            let diff = (got.transpose(1, 2)? - want)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            assert_eq!(diff, 0.0);
        }
        Ok(())
    }
}
