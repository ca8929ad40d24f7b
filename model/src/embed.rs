//! OmniGen's embeddings around the decoder: 2×2 patch embedding (as a matmul, which also works for bf16
//! on CPU where candle has no bf16 conv) and the DiT timestep embedder (`t` in [0,1], cos first). The
//! position table is [`crate::pos_embed`].

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::nn::Linear;
use candle_nn::VarBuilder;

/// `x_embedder` / `input_x_embedder`: Conv2d(in→C, kernel = stride = p).
#[derive(Debug, Clone)]
pub struct PatchEmbed {
    proj: Linear,
    patch: usize,
    in_channels: usize,
}

impl PatchEmbed {
    pub(crate) fn new(
        patch: usize,
        in_channels: usize,
        hidden: usize,
        vb: &VarBuilder,
    ) -> Result<Self> {
        let vb = vb.pp("proj");
        let w = vb.get(&[hidden, in_channels, patch, patch], "weight")?;
        let b = vb.get(&[hidden], "bias")?;
        let proj = Linear::from_parts(w.reshape((hidden, in_channels * patch * patch))?, Some(b));
        Ok(Self {
            proj,
            patch,
            in_channels,
        })
    }

    /// `[B,c,h,w]` → `[B,(h/p)(w/p),C]`, tokens in row-major order.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let p = self.patch;
        if c != self.in_channels || h % p != 0 || w % p != 0 {
            return Err(Error::Input(format!(
                "latent of shape {:?} does not fit a {p}x{p} patch embedding of {} channels",
                x.dims(),
                self.in_channels
            )));
        }
        let (gh, gw) = (h / p, w / p);
        let patches = x
            .reshape((b, c, gh, p, gw, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .reshape((b, gh * gw, c * p * p))?;
        self.proj.forward(&patches)
    }
}

/// `time_token` / `t_embedder`: sinusoid of t (256 features, cos first) → Linear → SiLU → Linear.
#[derive(Debug, Clone)]
pub struct TimestepEmbedder {
    mlp0: Linear,
    mlp2: Linear,
    freqs: Vec<f32>,
}

/// Frequency features of the DiT timestep embedding.
pub const TIMESTEP_FREQ_DIM: usize = 256;

impl TimestepEmbedder {
    pub(crate) fn new(hidden: usize, vb: &VarBuilder) -> Result<Self> {
        let half = TIMESTEP_FREQ_DIM / 2;
        // torch: exp(-ln(10000) * arange(0, half, f32) / half), all in f32.
        let neg_ln = -(10000f64.ln()) as f32;
        let freqs = (0..half)
            .map(|i| (neg_ln * i as f32 / half as f32).exp())
            .collect();
        Ok(Self {
            mlp0: Linear::new(TIMESTEP_FREQ_DIM, hidden, true, &vb.pp("mlp").pp(0))?,
            mlp2: Linear::new(hidden, hidden, true, &vb.pp("mlp").pp(2))?,
            freqs,
        })
    }

    /// `t` `[B]` (f32, values in [0,1]) → `[B,C]` in `dtype`.
    pub fn forward(&self, t: &Tensor, dtype: DType) -> Result<Tensor> {
        let freqs = Tensor::from_slice(&self.freqs, (1, self.freqs.len()), t.device())?;
        let args = t
            .to_dtype(DType::F32)?
            .unsqueeze(1)?
            .broadcast_mul(&freqs)?;
        let emb = Tensor::cat(&[args.cos()?, args.sin()?], 1)?.to_dtype(dtype)?;
        let h = candle_nn::ops::silu(&self.mlp0.forward(&emb)?)?;
        self.mlp2.forward(&h)
    }
}
