//! The one rule that keeps autograd intact: an op whose inputs need a gradient takes candle's plain,
//! differentiable ops. The fused CPU kernels (`cpu_kernels`) and candle's fast `rms_norm`,
//! `softmax_last_dim` and `rope` have no backward and would silently detach their outputs.

use candle_core::{Tensor, D};

use crate::error::Result;

/// Whether any tensor is recorded for backpropagation: a `Var`, or computed from one.
pub(crate) fn needs_grad(ts: &[&Tensor]) -> bool {
    ts.iter().any(|t| t.track_op())
}

/// Softmax over the last dimension: candle's fused kernel, or the plain ops when a gradient is needed.
pub(crate) fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if needs_grad(&[x]) {
        Ok(candle_nn::ops::softmax(x, D::Minus1)?)
    } else {
        Ok(candle_nn::ops::softmax_last_dim(x)?)
    }
}

/// Non-interleaved RoPE of `x` `[B,H,S,D]` with `cos`/`sin` `[B,S,D/2]` (candle's `rope` layout): the fused
/// kernel, or `x·cos + rotate_half(x)·sin` in plain ops when a gradient is needed.
pub(crate) fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if !needs_grad(&[x, cos, sin]) {
        return Ok(candle_nn::rotary_emb::rope(x, cos, sin)?);
    }
    let half = x.dim(D::Minus1)? / 2;
    let (x1, x2) = (
        x.narrow(D::Minus1, 0, half)?,
        x.narrow(D::Minus1, half, half)?,
    );
    let (cos, sin) = (cos.unsqueeze(1)?, sin.unsqueeze(1)?);
    let lo = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
    let hi = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
    Ok(Tensor::cat(&[lo, hi], D::Minus1)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn plain_rope_and_softmax_equal_the_fused_ones_and_keep_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1.0, (2, 3, 5, 8), &dev)?;
        let cos = Tensor::randn(0f32, 1.0, (2, 5, 4), &dev)?;
        let sin = Tensor::randn(0f32, 1.0, (2, 5, 4), &dev)?;
        let fused = candle_nn::rotary_emb::rope(x.as_tensor(), &cos, &sin)?;
        let plain = rope(x.as_tensor(), &cos, &sin)?;
        let diff = (&fused - &plain)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-6, "rope: {diff}");
        let sm = softmax_last_dim(&plain)?;
        let want = candle_nn::ops::softmax_last_dim(&fused)?;
        let diff = (&sm - &want)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-6, "softmax: {diff}");
        // The plain path is recorded: a gradient reaches x.
        let grads = (sm.sqr()?.sum_all()?).backward()?;
        let g = grads.get(x.as_tensor()).expect("gradient of x");
        assert!(g.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
        assert!(!needs_grad(&[&fused]), "the fused rope detaches its output");
        Ok(())
    }
}
