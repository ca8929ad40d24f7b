//! Small building blocks shared by the transformer: linear layers whose weights can be replaced (LoRA
//! merge), RMSNorm with the reference's dtype handling, and a parameter-free LayerNorm.

use candle_core::{DType, Module, Tensor, Var, D};

use crate::error::Result;
use candle_nn::VarBuilder;

/// A linear layer `y = x Wᵀ + b` whose weight can be swapped after loading (LoRA merging), with an optional
/// trainable LoRA branch `+ scaling · (x Aᵀ) Bᵀ` (PEFT's `lora.Linear`, without dropout).
#[derive(Debug, Clone)]
pub struct Linear {
    inner: candle_nn::Linear,
    lora: Option<LoraBranch>,
}

/// Trainable LoRA factors of one layer: `A` `[r, in]`, `B` `[out, r]`, `scaling` = alpha / r.
#[derive(Debug, Clone)]
pub(crate) struct LoraBranch {
    pub a: Var,
    pub b: Var,
    pub scaling: f64,
}

impl Linear {
    /// Loads `weight` `[out, in]` (and `bias` `[out]` when `bias` is true) under `vb`.
    pub(crate) fn new(in_dim: usize, out_dim: usize, bias: bool, vb: &VarBuilder) -> Result<Self> {
        let w = vb.get(&[out_dim, in_dim], "weight")?;
        let b = if bias {
            Some(vb.get(&[out_dim], "bias")?)
        } else {
            None
        };
        Ok(Self::from_parts(w, b))
    }

    /// Builds from explicit tensors.
    pub fn from_parts(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            inner: candle_nn::Linear::new(weight, bias),
            lora: None,
        }
    }

    /// Attaches (or replaces) the trainable LoRA branch.
    pub(crate) fn set_lora(&mut self, branch: Option<LoraBranch>) {
        self.lora = branch;
    }

    /// The `[out, in]` weight.
    pub fn weight(&self) -> &Tensor {
        self.inner.weight()
    }

    /// Replaces the weight by `weight + delta` (delta in any float dtype; added in f32, stored in the
    /// weight's dtype).
    pub fn add_to_weight(&mut self, delta: &Tensor) -> Result<()> {
        let w = self.inner.weight();
        let merged =
            (w.to_dtype(DType::F32)? + delta.to_dtype(DType::F32)?)?.to_dtype(w.dtype())?;
        self.inner = candle_nn::Linear::new(merged, self.inner.bias().cloned());
        Ok(())
    }

    /// Applies the layer over the last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.inner.forward(x)?;
        let Some(lora) = &self.lora else {
            return Ok(y);
        };
        // PEFT: base(x) + lora_B(lora_A(x)) * scaling.
        let down = candle_nn::Linear::new(lora.a.as_tensor().clone(), None).forward(x)?;
        let up = candle_nn::Linear::new(lora.b.as_tensor().clone(), None).forward(&down)?;
        Ok((y + (up * lora.scaling)?)?)
    }
}

/// Phi-3 RMSNorm: normalise in f32, cast back, then multiply by the weight in the model dtype.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub(crate) fn new(dim: usize, eps: f64, vb: &VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(&[dim], "weight")?,
            eps,
        })
    }

    /// Normalises over the last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.dtype() == DType::F32 && !crate::grad::needs_grad(&[x, &self.weight]) {
            return Ok(candle_nn::ops::rms_norm(x, &self.weight, self.eps as f32)?);
        }
        // Reduced precision (round the normalised value before the weight multiply, as HF does) or
        // training (candle's fused rms_norm has no backward): plain ops.
        let xf = x.to_dtype(DType::F32)?;
        let var = xf.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = xf.broadcast_mul(&(var + self.eps)?.sqrt()?.recip()?)?;
        Ok(normed.to_dtype(x.dtype())?.broadcast_mul(&self.weight)?)
    }
}

/// LayerNorm without affine parameters, computed in f32 and cast back.
pub fn layer_norm_no_affine(x: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let xf = x.to_dtype(DType::F32)?;
    let mean = xf.mean_keepdim(D::Minus1)?;
    let centered = xf.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let y = centered.broadcast_div(&(var + eps)?.sqrt()?)?;
    Ok(y.to_dtype(dtype)?)
}
