//! End-to-end sampling benchmark on random weights of any size (not a test): seconds per image and per
//! step, and peak resident memory, for a text-to-image or editing prompt shaped as the processor shapes
//! it (text tokens, image spans of `(side/16)²` tokens each, causal text with bidirectional image blocks,
//! the time and output tokens attending to everything). No checkpoint is read: the weights are made on
//! the device, so the real 3.8B config runs anywhere it fits, with the real FLOPs and buffers.
//!
//! ```text
//! cargo bench -p omnigen-model --bench bench_sample -- [--device cpu|cuda] [--dtype f32|bf16]
//!     [--format full|q8|q4] [--size 1024] [--steps 50] [--layers 32] [--images 0|1|2] [--image-side 1024]
//!     [--kv reference|exact|off] [--batched-cfg] [--offload-model] [--offload-kv-cache]
//! ```
//!
//! The defaults are the official pipeline's: 1024², 50 steps, the KV cache, separate CFG branches, the
//! real config (hidden 3072, MLP 8192, 32 heads, vocab 32064). It prints one JSON line. Peak RSS is
//! `VmHWM` of this process; on CUDA, device memory is best read from outside (`nvidia-smi`), which is what
//! `scripts/gpu/bench.sh` does.

use std::ops::ControlFlow;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use omnigen_model::{
    BranchBatch, CfgMode, ImageSpan, KvCacheMode, LoopInputs, LoopOptions, OmniGenConfig,
    StepProgress, WeightFormat,
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Text tokens of a typical prompt, and of the negative prompt (the official default is ~35 tokens).
const PROMPT_TOKENS: usize = 48;
const NEGATIVE_TOKENS: usize = 36;

#[derive(Debug)]
struct Args {
    device: String,
    dtype: String,
    format: String,
    size: usize,
    steps: usize,
    layers: usize,
    images: usize,
    image_side: usize,
    kv: String,
    batched_cfg: bool,
    offload_model: bool,
    offload_kv_cache: bool,
}

fn args() -> Res<Args> {
    let mut a = Args {
        device: "cpu".into(),
        dtype: String::new(),
        format: "full".into(),
        size: 1024,
        steps: 50,
        layers: 32,
        images: 0,
        image_side: 1024,
        kv: "reference".into(),
        batched_cfg: false,
        offload_model: false,
        offload_kv_cache: false,
    };
    let v: Vec<String> = std::env::args()
        .skip(1)
        .filter(|s| s != "--bench")
        .collect();
    let mut it = v.iter();
    while let Some(flag) = it.next() {
        let mut value = || -> Res<String> {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value").into())
        };
        match flag.as_str() {
            "--device" => a.device = value()?,
            "--dtype" => a.dtype = value()?,
            "--format" => a.format = value()?,
            "--size" => a.size = value()?.parse()?,
            "--steps" => a.steps = value()?.parse()?,
            "--layers" => a.layers = value()?.parse()?,
            "--images" => a.images = value()?.parse()?,
            "--image-side" => a.image_side = value()?.parse()?,
            "--kv" => a.kv = value()?,
            "--batched-cfg" => a.batched_cfg = true,
            "--offload-model" => a.offload_model = true,
            "--offload-kv-cache" => a.offload_kv_cache = true,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(a)
}

/// OmniGen-v1's transformer config with `layers` decoder layers (plain RoPE: the same FLOPs).
fn real_config(layers: usize) -> Res<OmniGenConfig> {
    Ok(serde_json::from_value(serde_json::json!({
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "num_hidden_layers": layers,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 32064,
        "max_position_embeddings": 131072,
        "original_max_position_embeddings": 4096,
        "pos_embed_max_size": 192
    }))?)
}

/// One branch's inputs: `text` tokens with `images` image spans of `image_tokens` each spliced in after
/// the first text token, then the time token and `out_tokens` output tokens.
fn branch(
    text: usize,
    images: usize,
    image_tokens: usize,
    image_latent: &Tensor,
    out_tokens: usize,
    device: &Device,
    vocab: u32,
) -> Res<BranchBatch> {
    let t = text + images * image_tokens;
    let s = t + 1 + out_tokens;
    let spans: Vec<ImageSpan> = (0..images)
        .map(|k| ImageSpan {
            row: 0,
            start: 1 + k * image_tokens,
            end: 1 + (k + 1) * image_tokens,
        })
        .collect();
    let block_of = |i: usize| spans.iter().position(|sp| (sp.start..sp.end).contains(&i));
    let mut mask = vec![0f32; s * s];
    for i in 0..s {
        let row = &mut mask[i * s..(i + 1) * s];
        if i >= t {
            row.fill(1.0);
            continue;
        }
        row[..=i].fill(1.0);
        if let Some(k) = block_of(i) {
            row[spans[k].start..spans[k].end].fill(1.0);
        }
    }
    let ids: Vec<u32> = (0..t as u32).map(|i| (i * 7919 + 11) % vocab).collect();
    let pos: Vec<i64> = (0..s as i64).collect();
    Ok(BranchBatch {
        input_ids: Tensor::from_vec(ids, (1, t), device)?,
        attention_mask: Tensor::from_vec(mask, (1, s, s), device)?,
        position_ids: Tensor::from_vec(pos, (1, s), device)?,
        condition_latents: vec![image_latent.clone(); images],
        image_spans: spans,
    })
}

/// `VmHWM` (peak resident set) of this process, in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn main() -> Res<()> {
    let a = args()?;
    let device = match a.device.as_str() {
        "cpu" => Device::Cpu,
        "cuda" | "cuda:0" => Device::new_cuda(0)?,
        other => return Err(format!("unknown device {other}").into()),
    };
    let dtype = match (a.dtype.as_str(), device.is_cpu()) {
        ("", true) | ("f32", _) => DType::F32,
        ("", false) | ("bf16", _) => DType::BF16,
        (other, _) => return Err(format!("unknown dtype {other}").into()),
    };
    let format = match a.format.as_str() {
        "full" => WeightFormat::Full,
        other => WeightFormat::parse_quantized(other).ok_or(format!("unknown format {other}"))?,
    };
    let kv = KvCacheMode::parse(&a.kv)?;
    let cfg = real_config(a.layers)?;

    let t0 = Instant::now();
    let model = omnigen_model::bench_hooks::random_transformer(
        &cfg,
        dtype,
        format,
        &device,
        a.offload_model,
    )?;
    device.synchronize()?;
    let load_s = t0.elapsed().as_secs_f64();

    let latent = a.size / 8;
    let out_tokens = (latent / 2) * (latent / 2);
    let image_latent_side = a.image_side / 8;
    let image_tokens = (image_latent_side / 2) * (image_latent_side / 2);
    let image_latent = Tensor::randn(
        0f32,
        1.0,
        (1, 4, image_latent_side, image_latent_side),
        &device,
    )?
    .to_dtype(dtype)?;
    let vocab = cfg.vocab_size as u32;
    let mk = |text, images| {
        branch(
            text,
            images,
            image_tokens,
            &image_latent,
            out_tokens,
            &device,
            vocab,
        )
    };
    // The official branches: cond and uncond (the negative prompt, no images), and with images the
    // image-only branch (its prompt is the placeholders).
    let mut batches = vec![mk(PROMPT_TOKENS, a.images)?, mk(NEGATIVE_TOKENS, 0)?];
    if a.images > 0 {
        batches.push(mk(2 * a.images, a.images)?);
    }
    let n_branches = batches.len();
    if a.batched_cfg {
        return Err(
            "--batched-cfg: not built into this bench (its rows need equal lengths)".into(),
        );
    }
    let inputs = LoopInputs {
        batches,
        cfg: CfgMode::Separate,
        n_branches,
    };
    let noise = Tensor::randn(0f32, 1.0, (1, 4, latent, latent), &device)?;
    let opts = LoopOptions {
        sigmas: omnigen_model::scheduler::sigmas(a.steps),
        guidance_scale: 2.5,
        img_guidance_scale: 1.6,
        kv_cache: kv,
        offload_kv_cache: a.offload_kv_cache,
    };
    let mut step_ends = Vec::with_capacity(a.steps);
    let t1 = Instant::now();
    let z = omnigen_model::sampler::sample_loop(
        &model,
        &inputs,
        &noise,
        &opts,
        &mut |_: StepProgress| {
            // Each step's end on the device, so per-step times are real.
            let _ = device.synchronize();
            step_ends.push(t1.elapsed().as_secs_f64());
            ControlFlow::Continue(())
        },
    )?;
    let _ = z.sum_all()?.to_scalar::<f32>()?;
    let total_s = t1.elapsed().as_secs_f64();
    let first_step_s = step_ends.first().copied().unwrap_or(total_s);
    let later = if step_ends.len() > 1 {
        (total_s - first_step_s) / (step_ends.len() - 1) as f64
    } else {
        first_step_s
    };
    let report = serde_json::json!({
        "device": a.device,
        "dtype": format!("{dtype:?}").to_lowercase(),
        "format": a.format,
        "size": a.size,
        "steps": a.steps,
        "layers": a.layers,
        "images": a.images,
        "image_side": a.image_side,
        "kv_cache": a.kv,
        "offload_model": a.offload_model,
        "offload_kv_cache": a.offload_kv_cache,
        "branches": n_branches,
        "tokens_per_branch": inputs.batches.iter().map(|b| b.attention_mask.dim(1).unwrap_or(0)).collect::<Vec<_>>(),
        "load_s": load_s,
        "seconds_per_image": total_s,
        "first_step_s": first_step_s,
        "seconds_per_later_step": later,
        "peak_rss_bytes": peak_rss(),
    });
    println!("{report}");
    Ok(())
}
