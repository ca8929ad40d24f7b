//! LoRA training memory of the real OmniGen width, measured per decoder layer (ignored by default: it
//! allocates a few GiB). Run with
//! `cargo test -p omnigen-model --test train_memory -- --ignored --nocapture`.
//!
//! A transformer of the real config's width (hidden 3072, 32 heads, MLP 8192) with zero weights and 1 or 2
//! decoder layers runs one LoRA training forward + backward (r = 8 on qkv_proj/o_proj, as the official
//! trainer) at three output sizes; the peak resident memory of each run (VmHWM, reset before it) gives the
//! per-layer peak at each sequence length, and the figures for 32 layers at 1024² are extrapolated from a
//! fit `a·S + b·S²` (BENCHMARKS.md, Training memory).

use candle_core::{DType, Device, Tensor};
use omnigen_model::processor::{collate, TokenRow};
use omnigen_model::train::{flow_loss, FlowBatch, LoraAdapter, LoraConfig};
use omnigen_model::OmniGenConfig;

fn real_width_config(layers: usize) -> OmniGenConfig {
    let factors: Vec<f64> = (0..48).map(|i| 1.0 + i as f64 * 0.1).collect();
    let json = serde_json::json!({
        "hidden_size": 3072, "intermediate_size": 8192, "num_attention_heads": 32, "num_key_value_heads": 32,
        "num_hidden_layers": layers, "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": 160, "pad_token_id": 3,
        "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "model_type": "phi3",
        "rope_scaling": {"type": "su", "long_factor": factors, "short_factor": factors},
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, json.to_string()).unwrap();
    OmniGenConfig::from_file(&path).unwrap()
}

fn status_kib(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Peak RSS (bytes) above the state before the run, of one LoRA forward + backward at `side`².
fn peak_of_step(layers: usize, side: usize) -> (u64, usize) {
    let dev = Device::Cpu;
    let mut cfg = real_width_config(layers);
    cfg.pos_embed_max_size = cfg.pos_embed_max_size.min(side / 16);
    let mut tr = omnigen_model::bench_hooks::zero_transformer(&cfg, DType::F32, &dev).unwrap();
    let _lora = LoraAdapter::attach(&mut tr, LoraConfig::official(8), 0).unwrap();
    let text = 24;
    let n_out = (side / 16) * (side / 16);
    let c = collate(
        &[TokenRow {
            ids: vec![5; text],
            spans: vec![],
        }],
        n_out,
        &dev,
    )
    .unwrap();
    let h = side / 8;
    let x1 = Tensor::zeros((1, 4, h, h), DType::F32, &dev).unwrap();
    let x0 = Tensor::randn(0f32, 1.0, (1, 4, h, h), &dev).unwrap();
    let t = Tensor::new(&[0.5f32], &dev).unwrap();
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
    let base = status_kib("VmRSS:");
    let loss = flow_loss(
        &tr,
        &FlowBatch {
            x1: &x1,
            x0: &x0,
            t: &t,
            input_ids: &c.input_ids,
            condition_latents: &[],
            image_spans: &c.image_spans,
            attention_mask: &c.attention_mask,
            position_ids: &c.position_ids,
        },
    )
    .unwrap();
    let grads = loss.backward().unwrap();
    drop(grads);
    let peak = status_kib("VmHWM:");
    ((peak.saturating_sub(base)) * 1024, c.seq_len())
}

#[test]
#[ignore = "allocates a few GiB; a measurement for BENCHMARKS.md"]
fn lora_training_memory_per_layer_at_the_real_width() {
    let gib = |b: f64| b / (1u64 << 30) as f64;
    let mut per_layer = Vec::new();
    for side in [256, 384, 512] {
        let (one, s) = peak_of_step(1, side);
        let (two, _) = peak_of_step(2, side);
        let layer = two.saturating_sub(one) as f64;
        eprintln!(
            "{side}²: S = {s} tokens, peak above the model: 1 layer {:.3} GiB, 2 layers {:.3} GiB, per layer {:.3} GiB (f32)",
            gib(one as f64),
            gib(two as f64),
            gib(layer)
        );
        per_layer.push((s as f64, layer, one as f64 - layer));
    }
    // per_layer(S) = c + a·S + b·S² through the three points (Cramer's rule on the Vandermonde system).
    let p: Vec<(f64, f64)> = per_layer.iter().map(|&(s, m, _)| (s, m)).collect();
    let det3 = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let rows: Vec<[f64; 3]> = p.iter().map(|&(s, _)| [1.0, s, s * s]).collect();
    let m = [rows[0], rows[1], rows[2]];
    let d = det3(m);
    let solve = |col: usize| {
        let mut mm = m;
        for (r, &(_, y)) in p.iter().enumerate() {
            mm[r][col] = y;
        }
        det3(mm) / d
    };
    let (c, a, b) = (solve(0), solve(1), solve(2));
    let s = 24.0 + 1.0 + 4096.0;
    let layer_1024 = c + a * s + b * s * s;
    let (s3, _, fixed3) = per_layer[2];
    let fixed_1024 = fixed3 * s / s3;
    eprintln!(
        "fit: per layer = {:.3} GiB + {a:.0}·S + {b:.1}·S² bytes; at 1024² (S = {s}): {:.2} GiB a layer, 32 layers \
         {:.1} GiB + outside the layers ~{:.2} GiB (f32)",
        gib(c),
        gib(layer_1024),
        gib(32.0 * layer_1024),
        gib(fixed_1024)
    );
    assert!(b > 0.0, "the attention scores grow with S²");
}
