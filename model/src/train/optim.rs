//! Gradient clipping and AdamW as the official trainer applies them (`accelerator.clip_grad_norm_` =
//! `torch.nn.utils.clip_grad_norm_`, then `torch.optim.AdamW`). The AdamW update is candle's `AdamW`
//! (same operations in the same order), kept here so that its moments and step count can be saved and
//! restored for a bit-exact resume.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

use crate::error::{Error, Result};

/// Optimiser settings. `Default` is `train.py`'s: lr 1e-4, weight decay 0, clipping at norm 1.0,
/// torch's betas (0.9, 0.999) and eps 1e-8.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimConfig {
    /// Learning rate (constant, as `--lr_scheduler constant`).
    pub lr: f64,
    /// Decoupled weight decay λ.
    pub weight_decay: f64,
    /// `None`: no clipping.
    pub max_grad_norm: Option<f64>,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε.
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
    /// First and second moments, one pair per var.
    moments: Vec<(Tensor, Tensor)>,
    step_t: usize,
    config: OptimConfig,
}

impl Optimizer {
    /// An optimiser over `vars`: decoupled decay `θ ← θ(1 − lr·λ)` first, then `lr · m̂ / (√v̂ + eps)`
    /// (torch's and candle's update).
    pub fn new(vars: Vec<Var>, config: OptimConfig) -> Result<Self> {
        let moments = vars
            .iter()
            .map(|v| {
                let z = Tensor::zeros(v.shape(), v.dtype(), v.device())?;
                Ok((z.clone(), z))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            vars,
            moments,
            step_t: 0,
            config,
        })
    }

    /// Clips (when configured) and applies one update. Returns the gradient norm before clipping.
    pub fn step(&mut self, grads: &mut GradStore) -> Result<f64> {
        let max = self.config.max_grad_norm.unwrap_or(f64::INFINITY);
        let norm = clip_grad_norm(grads, &self.vars, max)?;
        self.step_t += 1;
        let c = &self.config;
        let (lr, beta1, beta2) = (c.lr, c.beta1, c.beta2);
        let scale_m = 1f64 / (1f64 - beta1.powi(self.step_t as i32));
        let scale_v = 1f64 / (1f64 - beta2.powi(self.step_t as i32));
        for (theta, (m, v)) in self.vars.iter().zip(self.moments.iter_mut()) {
            let Some(g) = grads.get(theta.as_tensor()) else {
                continue;
            };
            let next_m = ((&*m * beta1)? + (g * (1.0 - beta1))?)?;
            let next_v = ((&*v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&next_m * scale_m)?;
            let v_hat = (&next_v * scale_v)?;
            let next_theta = (theta.as_tensor() * (1f64 - lr * c.weight_decay))?;
            let adjusted = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
            theta.set(&(next_theta - (adjusted * lr)?)?)?;
            *m = next_m.detach();
            *v = next_v.detach();
        }
        Ok(norm)
    }

    /// The configuration.
    pub fn config(&self) -> &OptimConfig {
        &self.config
    }

    /// Updates applied so far (torch's `state["step"]`).
    pub fn steps(&self) -> usize {
        self.step_t
    }

    /// The state as named tensors (`m.{i}`, `v.{i}` in var order) and the step count, for checkpoints.
    pub fn state(&self) -> (HashMap<String, Tensor>, usize) {
        let mut out = HashMap::new();
        for (i, (m, v)) in self.moments.iter().enumerate() {
            out.insert(format!("m.{i}"), m.clone());
            out.insert(format!("v.{i}"), v.clone());
        }
        (out, self.step_t)
    }

    /// Restores a state written by [`Optimizer::state`]; every moment must be present with its var's shape.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, steps: usize) -> Result<()> {
        for (i, (var, (m, v))) in self.vars.iter().zip(self.moments.iter_mut()).enumerate() {
            for (slot, key) in [(&mut *m, format!("m.{i}")), (&mut *v, format!("v.{i}"))] {
                let t = tensors
                    .get(&key)
                    .ok_or_else(|| Error::Input(format!("optimizer state has no `{key}`")))?;
                if t.dims() != var.dims() {
                    return Err(Error::Input(format!(
                        "optimizer state `{key}` has shape {:?}, its variable {:?}",
                        t.dims(),
                        var.dims()
                    )));
                }
                *slot = t.to_dtype(var.dtype())?.to_device(var.device())?;
            }
        }
        self.step_t = steps;
        Ok(())
    }
}
