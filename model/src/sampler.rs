//! The sampling loop of `OmniGenScheduler` with classifier-free guidance (spec §7–§8): Euler steps on the
//! sigma table, separate or batched CFG, and the three KV-cache modes.

use std::ops::ControlFlow;

use candle_core::{DType, Tensor, D};

use crate::error::{Error, Result};
use crate::kv_cache::KvCache;
pub use crate::options::{CfgMode, KvCacheMode};
use crate::scheduler::{euler_step, scale_like_torch};
use crate::span::ImageSpan;
use crate::transformer::{ForwardInput, Transformer};

/// Passed to the progress callback after each step.
#[derive(Debug, Clone, Copy)]
pub struct StepProgress<'a> {
    /// Steps done (1-based).
    pub step: usize,
    /// Total steps.
    pub total: usize,
    /// The time reached after this step.
    pub sigma: f32,
    /// The latent after this step, `[B,4,h,w]` in the model's dtype (for previews).
    pub latent: &'a Tensor,
}

/// One collated batch of model inputs (one CFG branch in separate mode, all branches in batched mode).
#[derive(Debug, Clone)]
pub struct BranchBatch {
    /// `[rows,T]` ids, left-padded.
    pub input_ids: Tensor,
    /// `[rows,S,S]` 0/1 mask with `S = T + 1 + N_out`.
    pub attention_mask: Tensor,
    /// `[rows,S]` positions.
    pub position_ids: Tensor,
    /// Scaled condition latents `[1,4,h_i,w_i]`, in span order.
    pub condition_latents: Vec<Tensor>,
    /// Their spans.
    pub image_spans: Vec<ImageSpan>,
}

/// Everything the loop needs besides the noise.
#[derive(Debug, Clone)]
pub struct LoopInputs {
    /// Separate mode: one batch per branch, in the order cond, uncond, (img_cond).
    /// Batched mode: a single batch whose rows are `[cond.., uncond.., (img_cond..)]`.
    pub batches: Vec<BranchBatch>,
    /// How `batches` is organised.
    pub cfg: CfgMode,
    /// Number of CFG branches (1 = no guidance, 2 = text, 3 = text + image).
    pub n_branches: usize,
}

/// Guidance and schedule of one run.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Time table, `sigmas[0] = 0` … `sigmas[n] = 1`.
    pub sigmas: Vec<f32>,
    /// Text guidance scale.
    pub guidance_scale: f64,
    /// Image guidance scale (3 branches only).
    pub img_guidance_scale: f64,
    /// Cache behaviour.
    pub kv_cache: KvCacheMode,
    /// Keep the cache in host memory ([`KvCache::offloaded`]).
    pub offload_kv_cache: bool,
}

/// Combines branch outputs in the reference's operation order, each op rounded to the model dtype.
pub fn combine_cfg(
    outs: &[Tensor],
    guidance_scale: f64,
    img_guidance_scale: f64,
) -> Result<Tensor> {
    match outs {
        [only] => Ok(only.clone()),
        [cond, uncond] => {
            let d = (cond - uncond)?;
            Ok((uncond + scale_like_torch(&d, guidance_scale)?)?)
        }
        [cond, uncond, img_cond] => {
            let a = (img_cond - uncond)?;
            let c = (uncond + scale_like_torch(&a, img_guidance_scale)?)?;
            let d = (cond - img_cond)?;
            Ok((c + scale_like_torch(&d, guidance_scale)?)?)
        }
        _ => Err(Error::Input(format!(
            "{} CFG branches (expected 1 to 3)",
            outs.len()
        ))),
    }
}

/// Last `n` query rows of a batch's mask and positions (the inputs of cached steps).
fn cached_view(batch: &BranchBatch, n: usize) -> Result<(Tensor, Tensor)> {
    let s = batch.position_ids.dim(D::Minus1)?;
    if n > s {
        return Err(Error::Input(format!(
            "{n} image+time tokens exceed the sequence length {s}"
        )));
    }
    let mask = batch.attention_mask.narrow(1, s - n, n)?.contiguous()?;
    let pos = batch.position_ids.narrow(1, s - n, n)?.contiguous()?;
    Ok((mask, pos))
}

/// Runs the full loop from `noise` `[B,4,h,w]`; returns the final latents `[B,4,h,w]` in f32.
pub fn sample_loop(
    model: &Transformer,
    inputs: &LoopInputs,
    noise: &Tensor,
    opts: &LoopOptions,
    progress: &mut dyn FnMut(StepProgress<'_>) -> ControlFlow<()>,
) -> Result<Tensor> {
    let dtype = model.dtype();
    let device = model.device().clone();
    let (b, _, h, w) = noise.dims4()?;
    let p = model.config().patch_size;
    let tail = (h / p) * (w / p) + 1;
    let n_steps = opts.sigmas.len().saturating_sub(1);
    let expected_batches = match inputs.cfg {
        CfgMode::Separate => inputs.n_branches,
        CfgMode::Batched => 1,
    };
    if inputs.batches.len() != expected_batches || !(1..=3).contains(&inputs.n_branches) {
        return Err(Error::Input(format!(
            "{} input batches for {} CFG branches in {:?} mode",
            inputs.batches.len(),
            inputs.n_branches,
            inputs.cfg
        )));
    }
    let empty = if opts.offload_kv_cache {
        KvCache::offloaded()
    } else {
        KvCache::new()
    };
    let mut caches: Vec<KvCache> = vec![empty; inputs.batches.len()];
    let cached_views: Vec<(Tensor, Tensor)> = match opts.kv_cache {
        KvCacheMode::Off => Vec::new(),
        _ => inputs
            .batches
            .iter()
            .map(|bb| cached_view(bb, tail))
            .collect::<Result<_>>()?,
    };
    let mut z = noise.to_device(&device)?.to_dtype(dtype)?;
    for i in 0..n_steps {
        let sigma = opts.sigmas[i];
        let mut outs = Vec::with_capacity(inputs.n_branches);
        for (bi, batch) in inputs.batches.iter().enumerate() {
            let rows = batch.input_ids.dim(0)?;
            let x = if rows == b {
                z.clone()
            } else {
                Tensor::cat(&vec![&z; rows / b.max(1)], 0)?
            };
            let mut t = Tensor::full(sigma, rows, &device)?;
            if inputs.cfg == CfgMode::Separate && dtype != DType::F32 {
                // forward_with_separate_cfg casts t to the latent dtype before embedding it.
                t = t.to_dtype(dtype)?.to_dtype(DType::F32)?;
            }
            let full = ForwardInput {
                x: &x,
                timestep: &t,
                input_ids: Some(&batch.input_ids),
                condition_latents: &batch.condition_latents,
                image_spans: &batch.image_spans,
                attention_mask: &batch.attention_mask,
                position_ids: &batch.position_ids,
            };
            let out = match (opts.kv_cache, i) {
                (KvCacheMode::Off, _) => model.forward(&full)?,
                (mode, 0) => model.forward_fill_cache(
                    &full,
                    &mut caches[bi],
                    mode == KvCacheMode::Reference,
                )?,
                _ => {
                    let (mask, pos) = &cached_views[bi];
                    let cached = ForwardInput {
                        input_ids: None,
                        condition_latents: &[],
                        image_spans: &[],
                        attention_mask: mask,
                        position_ids: pos,
                        ..full
                    };
                    model.forward_cached(&cached, &caches[bi])?
                }
            };
            match inputs.cfg {
                CfgMode::Separate => outs.push(out),
                CfgMode::Batched => outs.extend(out.chunk(inputs.n_branches, 0)?),
            }
        }
        let v = combine_cfg(&outs, opts.guidance_scale, opts.img_guidance_scale)?;
        let dt = opts.sigmas[i + 1] - sigma;
        z = euler_step(&z, &v, dt)?;
        let report = StepProgress {
            step: i + 1,
            total: n_steps,
            sigma: opts.sigmas[i + 1],
            latent: &z,
        };
        if progress(report).is_break() {
            return Err(Error::Cancelled { step: i + 1 });
        }
    }
    Ok(z.to_dtype(DType::F32)?)
}
