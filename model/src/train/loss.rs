//! The rectified-flow loss of the official trainer (`OmniGen/train_helper/loss.py`).

use candle_core::{Tensor, D};

use crate::error::{Error, Result};
use crate::span::ImageSpan;
use crate::transformer::{ForwardInput, Transformer};

/// One batch of same-size targets with its injected randomness.
#[derive(Debug, Clone, Copy)]
pub struct FlowBatch<'a> {
    /// Target latents x1 `[B,4,h,w]` (scaled VAE latents of the output images).
    pub x1: &'a Tensor,
    /// Noise x0, same shape.
    pub x0: &'a Tensor,
    /// Timesteps t `[B]` in (0, 1) (see [`timestep_from_normal`]).
    pub t: &'a Tensor,
    /// Token ids `[B,T]` (left-padded), as the collator builds them.
    pub input_ids: &'a Tensor,
    /// Condition-image latents `[1,4,h_i,w_i]` in span order.
    pub condition_latents: &'a [Tensor],
    /// Their spans.
    pub image_spans: &'a [ImageSpan],
    /// 0/1 attention mask `[B,S,S]`.
    pub attention_mask: &'a Tensor,
    /// Positions `[B,S]`.
    pub position_ids: &'a Tensor,
}

/// The official timestep draw: `t = sigmoid(u)` for `u ~ N(0, 1)`.
pub fn timestep_from_normal(u: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::sigmoid(u)?)
}

/// `mean_b mean((v(x_t, t) − (x1 − x0))²)` with `x_t = t·x1 + (1 − t)·x0`: each image's MSE over all its
/// elements, then the mean over the batch, as `training_losses(...)["loss"].mean()`. A scalar tensor,
/// differentiable through the transformer (its LoRA `Var`s, or any weights made `Var`s).
pub fn flow_loss(tr: &Transformer, batch: &FlowBatch) -> Result<Tensor> {
    let (b, _, _, _) = batch.x1.dims4()?;
    if batch.x0.dims() != batch.x1.dims() || batch.t.dims() != [b] {
        return Err(Error::Input(format!(
            "flow loss: x1 {:?}, x0 {:?} and t {:?} do not agree (t must be [{b}])",
            batch.x1.dims(),
            batch.x0.dims(),
            batch.t.dims()
        )));
    }
    let t = batch.t.reshape((b, 1, 1, 1))?;
    let xt = (batch.x1.broadcast_mul(&t)? + batch.x0.broadcast_mul(&(1.0 - &t)?)?)?;
    let target = (batch.x1 - batch.x0)?;
    let out = tr.forward(&ForwardInput {
        x: &xt,
        timestep: batch.t,
        input_ids: Some(batch.input_ids),
        condition_latents: batch.condition_latents,
        image_spans: batch.image_spans,
        attention_mask: batch.attention_mask,
        position_ids: batch.position_ids,
    })?;
    let sq = (out.to_dtype(target.dtype())? - target)?.sqr()?;
    let per_image = sq.flatten_from(1)?.mean(D::Minus1)?;
    Ok(per_image.mean_all()?)
}
