//! DiT final layer (adaLN shift/scale, LayerNorm without affine, linear to p·p·c) and unpatchify.

use candle_core::{Tensor, D};

use crate::error::Result;
use crate::nn::{layer_norm_no_affine, Linear};
use candle_nn::VarBuilder;

/// `final_layer`.
#[derive(Debug, Clone)]
pub struct FinalLayer {
    ada_ln: Linear,
    linear: Linear,
    hidden: usize,
}

impl FinalLayer {
    pub(crate) fn new(
        hidden: usize,
        patch: usize,
        out_channels: usize,
        vb: &VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            ada_ln: Linear::new(hidden, 2 * hidden, true, &vb.pp("adaLN_modulation").pp(1))?,
            linear: Linear::new(hidden, patch * patch * out_channels, true, &vb.pp("linear"))?,
            hidden,
        })
    }

    /// `x` `[B,N,C]`, conditioning `c` `[B,C]` → `[B,N,p·p·c]`.
    pub fn forward(&self, x: &Tensor, c: &Tensor) -> Result<Tensor> {
        let m = self.ada_ln.forward(&candle_nn::ops::silu(c)?)?;
        let shift = m.narrow(D::Minus1, 0, self.hidden)?.unsqueeze(1)?;
        let scale = m
            .narrow(D::Minus1, self.hidden, self.hidden)?
            .unsqueeze(1)?;
        let y = layer_norm_no_affine(x, 1e-6)?;
        let y = y.broadcast_mul(&(scale + 1.0)?)?.broadcast_add(&shift)?;
        self.linear.forward(&y)
    }
}

/// `[B, (h/p)(w/p), p·p·c]` → `[B, c, h, w]` with the patch index ordered `(row p, col q, channel)`.
pub fn unpatchify(x: &Tensor, patch: usize, channels: usize, h: usize, w: usize) -> Result<Tensor> {
    let b = x.dim(0)?;
    let (gh, gw) = (h / patch, w / patch);
    Ok(x.reshape((b, gh, gw, patch, patch, channels))?
        .permute((0, 5, 1, 3, 2, 4))?
        .reshape((b, channels, h, w))?)
}
