//! Gradient clipping and AdamW as the official trainer applies them (`accelerator.clip_grad_norm_` =
//! `torch.nn.utils.clip_grad_norm_`, then `torch.optim.AdamW`).

use candle_core::backprop::GradStore;
use candle_core::{DType, Var};
use candle_nn::Optimizer as _;

use crate::error::Result;

/// Optimiser settings. `Default` is `train.py`'s: lr 1e-4, weight decay 0, clipping at norm 1.0,
/// torch's betas (0.9, 0.999) and eps 1e-8.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimConfig {
    pub lr: f64,
    pub weight_decay: f64,
    /// `None`: no clipping.
    pub max_grad_norm: Option<f64>,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            weight_decay: 0.0,
            max_grad_norm: Some(1.0),
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Scales the gradients of `vars` in `grads` so that their total 2-norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_`: factor `min(1, max_norm / (norm + 1e-6))`. Returns the norm before
/// clipping.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    let mut sum = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sum += g
                .to_dtype(DType::F32)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f32>()? as f64;
        }
    }
    let norm = sum.sqrt();
    let coef = (max_norm / (norm + 1e-6)).min(1.0);
    if coef < 1.0 {
        for v in vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                let scaled = (g * coef)?;
                grads.insert(v.as_tensor(), scaled);
            }
        }
    }
    Ok(norm)
}

/// AdamW over a set of variables with optional clipping before each step.
pub struct Optimizer {
    vars: Vec<Var>,
    adamw: candle_nn::AdamW,
    config: OptimConfig,
}

impl Optimizer {
    /// An optimiser over `vars` (candle's AdamW: the same update as torch's, decoupled decay
    /// `θ ← θ(1 − lr·λ)` first, then `lr · m̂ / (√v̂ + eps)`).
    pub fn new(vars: Vec<Var>, config: OptimConfig) -> Result<Self> {
        let adamw = candle_nn::AdamW::new(
            vars.clone(),
            candle_nn::ParamsAdamW {
                lr: config.lr,
                beta1: config.beta1,
                beta2: config.beta2,
                eps: config.eps,
                weight_decay: config.weight_decay,
            },
        )?;
        Ok(Self {
            vars,
            adamw,
            config,
        })
    }

    /// Clips (when configured) and applies one update. Returns the gradient norm before clipping.
    pub fn step(&mut self, grads: &mut GradStore) -> Result<f64> {
        let norm = match self.config.max_grad_norm {
            Some(max) => clip_grad_norm(grads, &self.vars, max)?,
            None => clip_grad_norm(grads, &self.vars, f64::INFINITY)?,
        };
        self.adamw.step(grads)?;
        Ok(norm)
    }

    /// The configuration.
    pub fn config(&self) -> &OptimConfig {
        &self.config
    }
}
