//! Mid-size OmniGen benchmark (not a test): hidden 3072, 32 heads, MLP 8192, 2 layers, ~1,100 tokens,
//! random weights, float32 on CPU.
//!
//! Measures: loading (peak RSS vs weight bytes), one transformer forward, one sampling step (2-branch
//! separate CFG without cache + Euler update, as `model/scripts/bench_reference.py` times it), one cached
//! step, and where a forward's time goes (linears vs attention). With `--python <python> --script
//! model/benches/torch_timing.py` it runs the official PyTorch code on the same weights and inputs in a
//! second process, alternating rounds with the candle timings, and prints the ratios.
//!
//! Run: `cargo bench -p omnigen-model --bench bench_model -- [--dir DIR] [--rounds N] [--python PY --script S]
//! [--quantized]`; `--quantized` adds the same forward with 8- and 4-bit decoder weights (bytes, time, error).
//! `DIR` holds `config.json`, `model.safetensors` and `bench_inputs.safetensors` as written by
//! `model/scripts/bench_reference.py DIR`; without them, random weights and inputs are generated (seeded).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use omnigen_model::noise::NoiseRng;
use omnigen_model::sampler::{
    sample_loop, BranchBatch, CfgMode, KvCacheMode, LoopInputs, LoopOptions,
};
use omnigen_model::{ForwardInput, KvCache, Transformer, WeightFormat};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const HIDDEN: usize = 3072;
const HEADS: usize = 32;
const INTER: usize = 8192;
const LAYERS: usize = 2;
const VOCAB: usize = 32064;
const TEXT: usize = 75;
const LATENT: usize = 64; // 512x512 output -> 32x32 = 1024 image tokens; S = 75 + 1 + 1024 = 1100

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn config_json() -> String {
    let half = HIDDEN / HEADS / 2;
    let ones = vec!["1.0"; half].join(",");
    format!(
        r#"{{"hidden_size":{HIDDEN},"intermediate_size":{INTER},"num_hidden_layers":{LAYERS},"num_attention_heads":{HEADS},
"num_key_value_heads":{HEADS},"vocab_size":{VOCAB},"rms_norm_eps":1e-5,"rope_theta":10000.0,
"max_position_embeddings":131072,"original_max_position_embeddings":4096,
"rope_scaling":{{"type":"su","short_factor":[{ones}],"long_factor":[{ones}]}}}}"#
    )
}

fn randn(rng: &mut NoiseRng, shape: &[usize], std: f32) -> Res<Tensor> {
    let n = shape.iter().product();
    let v: Vec<f32> = rng.normals(n).into_iter().map(|x| x * std).collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
}

/// Writes random weights (official names) if `dir/model.safetensors` is missing.
fn ensure_weights(dir: &Path) -> Res<()> {
    std::fs::create_dir_all(dir)?;
    if !dir.join("config.json").is_file() {
        std::fs::write(dir.join("config.json"), config_json())?;
    }
    if dir.join("model.safetensors").is_file() {
        return Ok(());
    }
    eprintln!("generating random weights in {}", dir.display());
    let mut rng = NoiseRng::new(1234);
    let mut w: HashMap<String, Tensor> = HashMap::new();
    let h = HIDDEN;
    let mut put = |name: &str, shape: &[usize], std: f32, rng: &mut NoiseRng| -> Res<()> {
        w.insert(name.to_string(), randn(rng, shape, std)?);
        Ok(())
    };
    put("pos_embed", &[1, 192 * 192, h], 0.5, &mut rng)?;
    for e in ["x_embedder", "input_x_embedder"] {
        put(&format!("{e}.proj.weight"), &[h, 4, 2, 2], 0.1, &mut rng)?;
        put(&format!("{e}.proj.bias"), &[h], 0.02, &mut rng)?;
    }
    for e in ["time_token", "t_embedder"] {
        put(&format!("{e}.mlp.0.weight"), &[h, 256], 0.02, &mut rng)?;
        put(&format!("{e}.mlp.0.bias"), &[h], 0.02, &mut rng)?;
        put(&format!("{e}.mlp.2.weight"), &[h, h], 0.02, &mut rng)?;
        put(&format!("{e}.mlp.2.bias"), &[h], 0.02, &mut rng)?;
    }
    put(
        "final_layer.adaLN_modulation.1.weight",
        &[2 * h, h],
        0.02,
        &mut rng,
    )?;
    put(
        "final_layer.adaLN_modulation.1.bias",
        &[2 * h],
        0.02,
        &mut rng,
    )?;
    put("final_layer.linear.weight", &[16, h], 0.02, &mut rng)?;
    put("final_layer.linear.bias", &[16], 0.02, &mut rng)?;
    put("llm.embed_tokens.weight", &[VOCAB, h], 0.02, &mut rng)?;
    put("llm.norm.weight", &[h], 0.0, &mut rng)?;
    for l in 0..LAYERS {
        let p = format!("llm.layers.{l}");
        put(
            &format!("{p}.self_attn.qkv_proj.weight"),
            &[3 * h, h],
            0.02,
            &mut rng,
        )?;
        put(
            &format!("{p}.self_attn.o_proj.weight"),
            &[h, h],
            0.02,
            &mut rng,
        )?;
        put(
            &format!("{p}.mlp.gate_up_proj.weight"),
            &[2 * INTER, h],
            0.02,
            &mut rng,
        )?;
        put(
            &format!("{p}.mlp.down_proj.weight"),
            &[h, INTER],
            0.02,
            &mut rng,
        )?;
        put(&format!("{p}.input_layernorm.weight"), &[h], 0.0, &mut rng)?;
        put(
            &format!("{p}.post_attention_layernorm.weight"),
            &[h],
            0.0,
            &mut rng,
        )?;
    }
    // RMSNorm weights around 1.
    for (k, v) in w.iter_mut() {
        if k.ends_with("norm.weight") {
            *v = (v.ones_like()? + &*v)?;
        }
    }
    candle_core::safetensors::save(&w, dir.join("model.safetensors"))?;
    Ok(())
}

/// The collator's inputs for one unpadded row of `text` tokens and `n` output tokens.
fn synth_inputs(rng: &mut NoiseRng) -> Res<HashMap<String, Tensor>> {
    let n = (LATENT / 2) * (LATENT / 2);
    let s = TEXT + 1 + n;
    let ids: Vec<i64> = (0..TEXT)
        .map(|_| (rng.next_u64() % 31_999 + 1) as i64)
        .collect();
    let mut mask = vec![0f32; s * s];
    for r in 0..s {
        for c in 0..s {
            let allowed = if r <= TEXT { c <= r } else { true };
            mask[r * s + c] = allowed as u8 as f32;
        }
    }
    let pos: Vec<i64> = (0..s as i64).collect();
    let mut m = HashMap::new();
    m.insert(
        "input_ids".into(),
        Tensor::from_vec(ids, (1, TEXT), &Device::Cpu)?,
    );
    m.insert(
        "attention_mask".into(),
        Tensor::from_vec(mask, (1, s, s), &Device::Cpu)?,
    );
    m.insert(
        "position_ids".into(),
        Tensor::from_vec(pos, (1, s), &Device::Cpu)?,
    );
    m.insert("x".into(), randn(rng, &[1, 4, LATENT, LATENT], 1.0)?);
    m.insert("t".into(), Tensor::new(&[0.3f32], &Device::Cpu)?);
    Ok(m)
}

fn best_of<F: FnMut() -> Res<()>>(n: usize, mut f: F) -> Res<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..n {
        let t0 = Instant::now();
        f()?;
        best = best.min(t0.elapsed().as_secs_f64());
    }
    Ok(best)
}

struct Args {
    dir: PathBuf,
    rounds: usize,
    python: Option<String>,
    script: Option<String>,
    quantized: bool,
}

fn args() -> Args {
    let mut a = Args {
        dir: std::env::temp_dir().join("omnigen-bench-model"),
        rounds: 3,
        python: None,
        script: None,
        quantized: false,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let next = v.get(i + 1).cloned();
        match v[i].as_str() {
            "--dir" => a.dir = next.map(PathBuf::from).unwrap_or(a.dir),
            "--rounds" => a.rounds = next.and_then(|s| s.parse().ok()).unwrap_or(a.rounds),
            "--python" => a.python = next,
            "--script" => a.script = next,
            "--quantized" => {
                a.quantized = true;
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

/// The PyTorch side (`torch_timing.py`), kept running and asked for one timing round at a time.
struct TorchSide {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl TorchSide {
    fn start(py: &str, script: &str, dir: &Path) -> Res<Self> {
        let mut child = std::process::Command::new(py)
            .arg(script)
            .arg(dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let out = std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut me = Self { child, out };
        let ready = me.read_json()?;
        println!("PyTorch ready: {ready}");
        Ok(me)
    }

    fn read_json(&mut self) -> Res<serde_json::Value> {
        use std::io::BufRead;
        let mut line = String::new();
        if self.out.read_line(&mut line)? == 0 {
            return Err("the PyTorch process ended early".into());
        }
        Ok(serde_json::from_str(line.trim())?)
    }

    fn round(&mut self) -> Res<serde_json::Value> {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().ok_or("no stdin")?;
        stdin.write_all(b"go\n")?;
        stdin.flush()?;
        self.read_json()
    }
}

impl Drop for TorchSide {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// One branch's collated inputs.
struct Branch {
    ids: Tensor,
    mask: Tensor,
    pos: Tensor,
}

/// Inputs written by `bench_reference.py` (or synthesised): both branches, x, t and the reference outputs.
struct Inputs {
    cond: Branch,
    uncond: Branch,
    x: Tensor,
    t: Tensor,
    forward_out: Option<Tensor>,
    step_out: Option<Tensor>,
}

fn load_inputs(dir: &Path) -> Res<Inputs> {
    let path = dir.join("bench_inputs.safetensors");
    if !path.is_file() {
        let m = synth_inputs(&mut NoiseRng::new(99))?;
        let g = |k: &str| m[k].clone();
        let branch = || Branch {
            ids: g("input_ids"),
            mask: g("attention_mask"),
            pos: g("position_ids"),
        };
        return Ok(Inputs {
            cond: branch(),
            uncond: branch(),
            x: g("x"),
            t: g("t"),
            forward_out: None,
            step_out: None,
        });
    }
    let m = candle_core::safetensors::load(&path, &Device::Cpu)?;
    let g = |k: &str| -> Res<Tensor> {
        m.get(k)
            .cloned()
            .ok_or_else(|| format!("{} lacks `{k}`", path.display()).into())
    };
    let branch = |b: &str| -> Res<Branch> {
        Ok(Branch {
            ids: g(&format!("{b}.input_ids"))?,
            mask: g(&format!("{b}.attention_mask"))?.to_dtype(DType::F32)?,
            pos: g(&format!("{b}.position_ids"))?,
        })
    };
    Ok(Inputs {
        cond: branch("cond")?,
        uncond: branch("uncond")?,
        x: g("x")?,
        t: g("t")?,
        forward_out: m.get("forward.out").cloned(),
        step_out: m.get("step.out").cloned(),
    })
}

fn max_err(a: &Tensor, b: &Tensor) -> Res<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

fn main() -> Res<()> {
    let a = args();
    let dir = a.dir.clone();
    let python = match (&a.python, &a.script) {
        (Some(p), Some(s)) => Some((p.clone(), s.clone())),
        _ => None,
    };
    ensure_weights(&dir)?;
    let weights = dir.join("model.safetensors");
    let weight_bytes = std::fs::metadata(&weights)?.len();

    // Load before anything else, so that VmHWM reflects the load alone.
    let hwm0 = status_kb("VmHWM:");
    let t0 = Instant::now();
    let tr = Transformer::load(
        &dir.join("config.json"),
        std::slice::from_ref(&weights),
        false,
        DType::F32,
        WeightFormat::Full,
        &Device::Cpu,
    )?;
    let load_s = t0.elapsed().as_secs_f64();
    let hwm = status_kb("VmHWM:");
    let rss = status_kb("VmRSS:");
    println!(
        "load: {load_s:.2} s; weights {:.1} MB; peak RSS {:.1} MB = {:.3}x weights ({:.1} MB before load); \
         RSS after load {:.1} MB",
        weight_bytes as f64 / 1e6,
        hwm as f64 * 1024.0 / 1e6,
        hwm as f64 * 1024.0 / weight_bytes as f64,
        hwm0 as f64 * 1024.0 / 1e6,
        rss as f64 * 1024.0 / 1e6
    );

    let inp = load_inputs(&dir)?;
    let s = inp.cond.mask.dim(2)?;
    println!(
        "config: hidden {HIDDEN}, heads {HEADS}, mlp {INTER}, layers {LAYERS}; cond {s} tokens, uncond {} tokens; \
         threads {}",
        inp.uncond.mask.dim(2)?,
        candle_core::utils::get_num_threads()
    );
    let fwd = ForwardInput {
        x: &inp.x,
        timestep: &inp.t,
        input_ids: Some(&inp.cond.ids),
        condition_latents: &[],
        image_spans: &[],
        attention_mask: &inp.cond.mask,
        position_ids: &inp.cond.pos,
    };
    let out = tr.forward(&fwd)?; // warm-up and check
    if let Some(want) = &inp.forward_out {
        println!(
            "forward vs PyTorch: max abs error {:.3e}",
            max_err(&out, want)?
        );
    }

    // One sampling step as the reference times it: cond + uncond forwards (separate CFG, no cache), CFG
    // combine, Euler update from t = 0.3 to 0.32.
    let batch = |b: &Branch| BranchBatch {
        input_ids: b.ids.clone(),
        attention_mask: b.mask.clone(),
        position_ids: b.pos.clone(),
        condition_latents: vec![],
        image_spans: vec![],
    };
    let loop_in = LoopInputs {
        batches: vec![batch(&inp.cond), batch(&inp.uncond)],
        cfg: CfgMode::Separate,
        n_branches: 2,
    };
    let t0v = inp.t.to_vec1::<f32>()?[0];
    let step_opts = LoopOptions {
        sigmas: vec![t0v, 0.32],
        guidance_scale: 2.5,
        img_guidance_scale: 1.6,
        kv_cache: KvCacheMode::Off,
        offload_kv_cache: false,
    };
    let run_step = || -> Res<Tensor> {
        Ok(sample_loop(&tr, &loop_in, &inp.x, &step_opts, &mut |_| {
            ControlFlow::Continue(())
        })?)
    };
    let z = run_step()?;
    if let Some(want) = &inp.step_out {
        println!(
            "step vs PyTorch: max abs error {:.3e}",
            max_err(&z, &want.narrow(0, 0, 1)?)?
        );
    }
    // A cached step (steps 1..N of the default mode): only time + image tokens are recomputed.
    let mut cache = KvCache::new();
    tr.forward_fill_cache(&fwd, &mut cache, true)?;
    let n_tail = s - inp.cond.ids.dim(1)?;
    let m1 = inp.cond.mask.narrow(1, s - n_tail, n_tail)?.contiguous()?;
    let p1 = inp.cond.pos.narrow(1, s - n_tail, n_tail)?.contiguous()?;
    let cached = ForwardInput {
        input_ids: None,
        attention_mask: &m1,
        position_ids: &p1,
        ..fwd
    };

    // The PyTorch process starts after the candle load so that it does not disturb the RSS figure.
    let mut torch = match &python {
        Some((p, sc)) => Some(TorchSide::start(p, sc, &dir)?),
        None => None,
    };
    let mut rows = Vec::new();
    for round in 0..a.rounds {
        let f = best_of(1, || {
            tr.forward(&fwd)?;
            Ok(())
        })?;
        let step = best_of(1, || {
            run_step()?;
            Ok(())
        })?;
        let cached_f = best_of(1, || {
            tr.forward_cached(&cached, &cache)?;
            Ok(())
        })?;
        let py = match torch.as_mut() {
            Some(side) => Some(side.round()?),
            None => None,
        };
        let py_f = py.as_ref().and_then(|v| v["forward_s"].as_f64());
        let py_step = py.as_ref().and_then(|v| v["step_s"].as_f64());
        let ratios = match (py_f, py_step) {
            (Some(pf), Some(ps)) => format!(
                "; PyTorch forward {pf:.3} s, step {ps:.3} s; candle/PyTorch forward {:.3}x, step {:.3}x",
                f / pf,
                step / ps
            ),
            _ => String::new(),
        };
        println!(
            "round {round}: candle forward {f:.3} s, step {step:.3} s, cached forward {cached_f:.3} s{ratios}"
        );
        rows.push((f, step, py_f, py_step));
    }
    let med = |mut v: Vec<f64>| -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!(
        "median: candle forward {:.3} s, step {:.3} s",
        med(rows.iter().map(|r| r.0).collect()),
        med(rows.iter().map(|r| r.1).collect())
    );
    let fr: Vec<f64> = rows.iter().filter_map(|r| r.2.map(|p| r.0 / p)).collect();
    let sr: Vec<f64> = rows.iter().filter_map(|r| r.3.map(|p| r.1 / p)).collect();
    if !fr.is_empty() && !sr.is_empty() {
        println!(
            "median ratio candle/PyTorch: forward {:.3}x, step {:.3}x",
            med(fr),
            med(sr)
        );
    }
    drop(torch);
    breakdown(s)?;
    if a.quantized {
        drop(cache);
        quantized(&dir, &tr, &fwd, &out, a.rounds)?;
    }
    real_config_weights();
    Ok(())
}

/// `--quantized`: the same weights with 8- and 4-bit decoder linears: bytes, forward time and the
/// velocity's relative error against the f32 forward `want`.
fn quantized(
    dir: &Path,
    full: &Transformer,
    fwd: &ForwardInput,
    want: &Tensor,
    rounds: usize,
) -> Res<()> {
    let (full_bytes, _) = full.decoder_linear_bytes();
    let full_s = best_of(rounds, || {
        full.forward(fwd)?;
        Ok(())
    })?;
    println!(
        "f32: decoder linears {:.1} MB, forward {full_s:.3} s (best of {rounds})",
        full_bytes as f64 / 1e6
    );
    for format in [WeightFormat::Q8, WeightFormat::Q4] {
        let t0 = Instant::now();
        let tr = Transformer::load(
            &dir.join("config.json"),
            &[dir.join("model.safetensors")],
            false,
            DType::F32,
            format,
            &Device::Cpu,
        )?;
        let load_s = t0.elapsed().as_secs_f64();
        let (bytes, layers) = tr.decoder_linear_bytes();
        let out = tr.forward(fwd)?;
        let diff = (&out - want)?
            .sqr()?
            .sum_all()?
            .sqrt()?
            .to_scalar::<f32>()?;
        let norm = want.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
        let s = best_of(rounds, || {
            tr.forward(fwd)?;
            Ok(())
        })?;
        println!(
            "{format}: {layers} layers quantized, decoder linears {:.1} MB ({:.3}x f32), load {load_s:.2} s, \
             forward {s:.3} s ({:.2}x f32), velocity relative error {:.2e}",
            bytes as f64 / 1e6,
            bytes as f64 / full_bytes as f64,
            s / full_s,
            diff / norm
        );
    }
    Ok(())
}

/// Weights in memory for the real config (hidden 3072, MLP 8192, 32 blocks, vocab 32064), by format and
/// compute dtype: the decoder linears (arithmetic tested against measured bytes), the token embedding
/// (q8_0 when quantized) and every other tensor in the compute dtype; the position table counts only its
/// per-axis values (rebuilt from the formula).
fn real_config_weights() {
    let (h, inter, blocks, vocab, grid) = (3072usize, 8192usize, 32usize, 32064usize, 192usize);
    let others = 2 * (h * 16 + h) // x_embedder, input_x_embedder
        + 2 * (256 * h + h + h * h + h) // time_token, t_embedder
        + (2 * h * h + 2 * h + 16 * h + 16) // final layer
        + (2 * blocks + 1) * h // RMSNorms
        + grid * h / 2; // position table, per axis
    for (dtype, dense) in [("bf16", 2usize), ("f32", 4)] {
        let line: Vec<String> = [WeightFormat::Full, WeightFormat::Q8, WeightFormat::Q4]
            .into_iter()
            .map(|format| {
                let linears: usize = omnigen_model::quant::decoder_linear_shapes(h, inter)
                    .iter()
                    .map(|&(o, i)| omnigen_model::quant::linear_weight_bytes(o, i, format, dense))
                    .sum::<usize>()
                    * blocks;
                // The token embedding: q8_0 with any quantized format (`embedding_block_type`).
                let embedding = match format.embedding_block_type(h) {
                    Some(block) => vocab * h / block.block_size() * block.type_size(),
                    None => vocab * h * dense,
                };
                format!(
                    "{format} {:.2} GB",
                    (linears + embedding + others * dense) as f64 / 1e9
                )
            })
            .collect();
        println!(
            "real config weights, other tensors in {dtype}: {}",
            line.join(", ")
        );
    }
}

/// Times the pieces of one layer at sequence length `s`: the four linears and the attention core.
fn breakdown(s: usize) -> Res<()> {
    let mut rng = NoiseRng::new(5);
    let h = randn(&mut rng, &[1, s, HIDDEN], 1.0)?;
    let lin = |o: usize, i: usize, rng: &mut NoiseRng| -> Res<candle_nn::Linear> {
        Ok(candle_nn::Linear::new(randn(rng, &[o, i], 0.02)?, None))
    };
    use candle_core::Module;
    let qkv = lin(3 * HIDDEN, HIDDEN, &mut rng)?;
    let o = lin(HIDDEN, HIDDEN, &mut rng)?;
    let gu = lin(2 * INTER, HIDDEN, &mut rng)?;
    let down = lin(HIDDEN, INTER, &mut rng)?;
    let act = randn(&mut rng, &[1, s, INTER], 1.0)?;
    let linears = best_of(2, || {
        qkv.forward(&h)?;
        o.forward(&h)?;
        gu.forward(&h)?;
        down.forward(&act)?;
        Ok(())
    })?;
    let hd = HIDDEN / HEADS;
    let q = randn(&mut rng, &[1, HEADS, s, hd], 1.0)?;
    let k = randn(&mut rng, &[1, HEADS, s, hd], 1.0)?;
    let v = randn(&mut rng, &[1, HEADS, s, hd], 1.0)?;
    // What the decoder runs on the CPU in f32: the fused kernel (no score tensor, output in o_proj's layout).
    let mask = Tensor::zeros((1, 1, s, s), DType::F32, &Device::Cpu)?;
    let attn = best_of(2, || {
        omnigen_model::bench_hooks::cpu_attention(&q, &k, &v, &mask, 0)?;
        Ok(())
    })?;
    // The same product with plain candle ops, for comparison (what other devices and dtypes run).
    let attn_candle = best_of(2, || {
        let scores = (&q * (1.0 / (hd as f64).sqrt()))?.matmul(&k.t()?)?;
        let p = candle_nn::ops::softmax_last_dim(&scores)?;
        p.matmul(&v)?.transpose(1, 2)?.reshape((1, s, HIDDEN))?;
        Ok(())
    })?;
    let lin_flops = 2.0
        * s as f64
        * (HIDDEN * 3 * HIDDEN + HIDDEN * HIDDEN + HIDDEN * 2 * INTER + INTER * HIDDEN) as f64;
    let attn_flops = 4.0 * (HEADS * s * s * hd) as f64;
    println!(
        "per layer at S={s}: linears {linears:.3} s ({:.0} GFLOP/s), attention core {attn:.3} s ({:.0} GFLOP/s; \
         plain candle ops {attn_candle:.3} s); x{LAYERS} layers = {:.3} s linears + {:.3} s attention",
        lin_flops / linears / 1e9,
        attn_flops / attn / 1e9,
        linears * LAYERS as f64,
        attn * LAYERS as f64
    );
    Ok(())
}
