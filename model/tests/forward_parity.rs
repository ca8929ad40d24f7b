//! One transformer forward against the official implementation (tiny model, float32 and bf16), including
//! LongRoPE on both sides of the long/short switch, non-square outputs, LoRA merging, the diffusers layout, a
//! sharded checkpoint and the KV cache (step 0 quirk and later steps).

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;
use omnigen_model::{quant, ForwardInput, KvCache, OmniGen, Transformer, WeightFormat};

/// Inputs of case `fwd.<name>` plus its condition latents.
struct Case {
    x: Tensor,
    t: Tensor,
    ids: Tensor,
    mask: Tensor,
    pos: Tensor,
    spans: Vec<omnigen_model::ImageSpan>,
    latents: Vec<Tensor>,
}

fn case(name: &str) -> anyhow::Result<(Case, std::collections::HashMap<String, Tensor>)> {
    let r = reference("forward")?;
    let p = |f: &str| get(&r, &format!("fwd.{name}.{f}"));
    let spans = spans(&p("image_sizes")?)?;
    let latents = (0..spans.len())
        .map(|k| p(&format!("cond_latent.{k}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let c = Case {
        x: p("x")?,
        t: p("t")?,
        ids: p("input_ids")?,
        mask: p("attention_mask")?,
        pos: p("position_ids")?,
        spans,
        latents,
    };
    Ok((c, r))
}

fn run(model: &Transformer, c: &Case) -> anyhow::Result<Tensor> {
    Ok(model.forward(&ForwardInput {
        x: &c.x,
        timestep: &c.t,
        input_ids: Some(&c.ids),
        condition_latents: &c.latents,
        image_spans: &c.spans,
        attention_mask: &c.mask,
        position_ids: &c.pos,
    })?)
}

const F32_CASES: [&str; 5] = [
    "t2i_batched",
    "t2i_cond_only",
    "two_images_batched",
    "two_images_cond_only",
    "two_images_imgcond_only",
];

#[test]
fn forward_f32_matches_reference_on_both_rope_factor_sets() -> TestResult {
    let model = tiny(DType::F32)?;
    let tr = model.transformer();
    for name in F32_CASES {
        let (c, r) = case(name)?;
        let seq = c.mask.dim(2)?;
        eprintln!(
            "{name}: seq {seq}, long factors: {}",
            tr.rope().uses_long(seq)
        );
        let out = run(tr, &c)?;
        assert_close(
            &format!("fwd.{name}"),
            &out,
            &get(&r, &format!("fwd.{name}.out"))?,
            1e-5,
        )?;
    }
    // The cases must cover both sides of the switch (padded length 106/97 > 64 > 44/56/48).
    assert!(tr.rope().uses_long(106) && !tr.rope().uses_long(44));
    Ok(())
}

#[test]
fn forward_bf16_stays_close_to_reference_bf16() -> TestResult {
    let model = tiny(DType::BF16)?;
    for name in ["t2i_batched", "two_images_batched"] {
        let (c, r) = case(name)?;
        let out = run(model.transformer(), &c)?;
        // bf16 has 8 mantissa bits; outputs are O(1), so a few bf16 ulps of drift through 2 layers.
        let want = get(&r, &format!("fwd.{name}_bf16.out"))?;
        assert_close(
            &format!("fwd.{name}_bf16 vs reference bf16"),
            &out,
            &want,
            5e-2,
        )?;
        let f32_ref = get(&r, &format!("fwd.{name}.out"))?;
        assert_close(
            &format!("fwd.{name}_bf16 vs reference f32"),
            &out,
            &f32_ref,
            1e-1,
        )?;
    }
    Ok(())
}

#[test]
fn lora_merge_matches_peft() -> TestResult {
    let mut model = tiny(DType::F32)?;
    let merged = model.merge_lora(fixtures().join("lora"), 1.0)?;
    assert_eq!(merged, 4);
    for name in ["t2i_batched", "two_images_batched"] {
        let (c, r) = case(name)?;
        let out = run(model.transformer(), &c)?;
        let want = get(&r, &format!("fwd.{name}_lora.out"))?;
        assert_close(&format!("fwd.{name}_lora"), &out, &want, 1e-5)?;
        // ...and LoRA changes the output noticeably.
        assert!(max_abs_diff(&out, &get(&r, &format!("fwd.{name}.out"))?)? > 1e-3);
    }
    Ok(())
}

#[test]
fn lora_scale_zero_is_identity() -> TestResult {
    let mut model = tiny(DType::F32)?;
    model.merge_lora(fixtures().join("lora"), 0.0)?;
    let (c, r) = case("t2i_batched")?;
    let out = run(model.transformer(), &c)?;
    assert_close("lora scale 0", &out, &get(&r, "fwd.t2i_batched.out")?, 1e-5)?;
    Ok(())
}

/// Quantized decoder weights: every decoder linear is stored in blocks (the tiny model's widths 32 and 64
/// take q8_0 and, for 4 bits, q4_0), in a fraction of the bytes, and the velocity stays near the official
/// f32 one. The errors are reported in BENCHMARKS.md (Quantized weights).
#[test]
fn quantized_forward_stays_near_the_reference() -> TestResult {
    let full = tiny(DType::F32)?;
    let (full_bytes, _) = full.transformer().decoder_linear_bytes();
    for (format, bound) in [(WeightFormat::Q8, 0.01), (WeightFormat::Q4, 0.1)] {
        let model = tiny_in(format)?;
        let (bytes, quantized) = model.transformer().decoder_linear_bytes();
        let layers = 4 * model.transformer().config().num_hidden_layers;
        assert_eq!(
            quantized, layers,
            "{format}: every decoder linear is quantized"
        );
        eprintln!("{format}: decoder linears {bytes} bytes vs {full_bytes} in f32");
        assert!(
            bytes * 3 < full_bytes,
            "{format}: {bytes} bytes is not a quantized size"
        );
        let cfg = model.transformer().config();
        let computed: usize = quant::decoder_linear_shapes(cfg.hidden_size, cfg.intermediate_size)
            .iter()
            .map(|&(o, i)| quant::linear_weight_bytes(o, i, format, 4))
            .sum::<usize>()
            * cfg.num_hidden_layers;
        assert_eq!(
            bytes, computed,
            "{format}: measured bytes vs the arithmetic"
        );
        let (table, quantized) = model.transformer().token_embedding_bytes();
        let (dense, _) = full.transformer().token_embedding_bytes();
        assert!(
            quantized && table * 3 < dense,
            "{format}: token embedding {table} vs {dense} bytes"
        );
        for name in F32_CASES {
            let (c, r) = case(name)?;
            let want = get(&r, &format!("fwd.{name}.out"))?;
            let err = relative_error(&run(model.transformer(), &c)?, &want)?;
            eprintln!("{format} {name}: velocity relative error {err:.2e}");
            assert!(
                err > 0.0 && err <= bound,
                "{format} {name}: relative error {err} (bound {bound})"
            );
        }
    }
    Ok(())
}

/// The tiny checkpoint's position table is the official formula rounded to bf16, so it is rebuilt from
/// per-axis values instead of being held (the real model's is 113 M values); the forward parity tests
/// above run on the rebuilt one.
#[test]
fn position_table_is_recognised_as_the_formula() -> TestResult {
    for dtype in [DType::F32, DType::BF16] {
        assert!(
            tiny(dtype)?.transformer().pos_embed().is_formula(),
            "{dtype:?}"
        );
    }
    Ok(())
}

/// `omnigen quantize`'s folder: the decoder linears move, quantized, into `quantized.gguf` and load
/// from there to exactly the model that quantizing at load gives; the rest of the folder is a complete
/// official-layout model.
#[test]
fn prequantized_folder_loads_the_same_model() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let (c, _) = case("two_images_batched")?;
    for (format, sources) in [
        (WeightFormat::Q8, fixtures().join("tiny")),
        (WeightFormat::Q4, fixtures().join("tiny-diffusers")),
    ] {
        let out = scratch.path().join(format.to_string());
        let report = quant::write_prequantized(&sources, &out, format)?;
        assert_eq!(report.quantized_layers, 8, "{format}");
        let stored = candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu)?;
        assert!(stored
            .keys()
            .all(|k| !k.contains("qkv_proj") && !k.contains("down_proj")));
        assert!(!stored.contains_key("llm.embed_tokens.weight"));
        assert!(stored.contains_key("llm.norm.weight"));
        let loaded = OmniGen::load_on(&out, DType::F32, &Device::Cpu)?;
        assert_eq!(
            loaded.files().quantized,
            Some(out.join(quant::PREQUANTIZED_FILE))
        );
        let direct = tiny_in(format)?;
        let diff = max_abs_diff(
            &run(loaded.transformer(), &c)?,
            &run(direct.transformer(), &c)?,
        )?;
        assert_eq!(diff, 0.0, "{format}: pre-quantized vs quantized at load");
        let again = quant::write_prequantized(&sources, &out, format).expect_err("exists");
        assert!(again.to_string().contains("already exists"), "{again}");
    }
    let full = quant::write_prequantized(
        &fixtures().join("tiny"),
        &scratch.path().join("full"),
        WeightFormat::Full,
    )
    .expect_err("full precision is not a quantized format");
    assert!(full.to_string().contains("q8 or q4"), "{full}");
    Ok(())
}

/// A truncated `quantized.gguf` is refused with the file named, not a panic.
#[test]
fn truncated_prequantized_file_is_a_clear_error() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let out = scratch.path().join("q8");
    quant::write_prequantized(&fixtures().join("tiny"), &out, WeightFormat::Q8)?;
    let gguf = out.join(quant::PREQUANTIZED_FILE);
    let bytes = std::fs::read(&gguf)?;
    std::fs::write(&gguf, &bytes[..bytes.len() / 2])?;
    let err = OmniGen::load_on(&out, DType::F32, &Device::Cpu).expect_err("truncated");
    assert!(err.to_string().contains("quantized.gguf"), "{err}");
    Ok(())
}

/// A LoRA merged into quantized weights is re-quantized: the result stays as near the f32 merge as the
/// quantization itself.
#[test]
fn lora_merges_into_quantized_weights() -> TestResult {
    let r = reference("forward")?;
    let (c, _) = case("t2i_batched")?;
    let want = get(&r, "fwd.t2i_batched_lora.out")?;
    let mut model = tiny_in(WeightFormat::Q8)?;
    model.merge_lora(fixtures().join("lora"), 1.0)?;
    let err = relative_error(&run(model.transformer(), &c)?, &want)?;
    eprintln!("q8 + LoRA: velocity relative error {err:.2e}");
    assert!(err <= 0.01, "q8 + LoRA: relative error {err}");
    Ok(())
}

#[test]
fn sharded_checkpoint_gives_the_same_forward() -> TestResult {
    // `tiny/model.safetensors` split into two shards, as `model-0000N-of-00002.safetensors`.
    let dir = tempfile::tempdir()?;
    let src = fixtures().join("tiny");
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.path().join(f))?;
    }
    let mut names: Vec<(String, Tensor)> =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu)?
            .into_iter()
            .collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let second = names.split_off(names.len() / 2);
    for (k, part) in [names, second].into_iter().enumerate() {
        let part: std::collections::HashMap<String, Tensor> = part.into_iter().collect();
        let file = format!("model-{:05}-of-00002.safetensors", k + 1);
        candle_core::safetensors::save(&part, dir.path().join(file))?;
    }
    let sharded = OmniGen::load_on(dir.path(), DType::F32, &Device::Cpu)?;
    assert_eq!(sharded.files().weights.len(), 2);
    let official = tiny(DType::F32)?;
    let (c, _) = case("two_images_batched")?;
    let a = run(official.transformer(), &c)?;
    let b = run(sharded.transformer(), &c)?;
    assert_close("sharded vs single file", &b, &a, 0.0)?;
    Ok(())
}

#[test]
fn diffusers_layout_gives_the_same_forward() -> TestResult {
    let official = tiny(DType::F32)?;
    let diffusers = OmniGen::load_on(&fixtures().join("tiny-diffusers"), DType::F32, &Device::Cpu)?;
    assert!(diffusers.files().diffusers);
    for name in ["t2i_batched", "two_images_batched"] {
        let (c, _) = case(name)?;
        let a = run(official.transformer(), &c)?;
        let b = run(diffusers.transformer(), &c)?;
        assert_close(&format!("diffusers vs official {name}"), &b, &a, 0.0)?;
    }
    Ok(())
}

#[test]
fn kv_cache_step0_quirk_and_cached_step1_match_reference() -> TestResult {
    let model = tiny(DType::F32)?;
    let tr = model.transformer();
    let proc_ref = reference("processor")?;
    let r = reference("forward")?;
    let p = |f: &str| get(&proc_ref, &format!("proc.two_images.{f}"));
    let k = |f: &str| get(&r, &format!("kv.two_images_batched.{f}"));
    let ids = p("input_ids")?;
    let mask = p("attention_mask")?.to_dtype(DType::F32)?;
    let pos = p("position_ids")?;
    let sp = spans(&p("image_sizes")?)?;
    let latents = (0..sp.len())
        .map(|i| k(&format!("cond_latent.{i}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (x0, t0) = (k("step0.x")?, k("step0.t")?);
    let input = ForwardInput {
        x: &x0,
        timestep: &t0,
        input_ids: Some(&ids),
        condition_latents: &latents,
        image_spans: &sp,
        attention_mask: &mask,
        position_ids: &pos,
    };
    // Reference behaviour: step 0 sees only the condition tokens.
    let mut cache = KvCache::new();
    let out0 = tr.forward_fill_cache(&input, &mut cache, true)?;
    assert_close("kv step0 (reference quirk)", &out0, &k("step0.out")?, 1e-5)?;
    assert_eq!(cache.cached_len(), 90);
    // Exact mode: step 0 equals the plain forward.
    let mut exact = KvCache::new();
    let out0_exact = tr.forward_fill_cache(&input, &mut exact, false)?;
    assert_close(
        "kv step0 (exact)",
        &out0_exact,
        &k("step0.out_nocache")?,
        1e-5,
    )?;
    assert!(
        max_abs_diff(&out0, &out0_exact)? > 1e-3,
        "the quirk must change step 0"
    );

    // Step 1 from the cache: only time + image tokens as queries.
    let (x1, t1) = (k("step1.x")?, k("step1.t")?);
    let (m1, p1) = (k("step1.attention_mask")?, k("step1.position_ids")?);
    let cached = ForwardInput {
        x: &x1,
        timestep: &t1,
        input_ids: None,
        condition_latents: &[],
        image_spans: &[],
        attention_mask: &m1,
        position_ids: &p1,
    };
    let out1 = tr.forward_cached(&cached, &cache)?;
    assert_close("kv step1 (cached)", &out1, &k("step1.out")?, 1e-5)?;
    let out1_exact = tr.forward_cached(&cached, &exact)?;
    assert_close(
        "kv step1 (exact cache) vs no cache",
        &out1_exact,
        &k("step1.out_nocache")?,
        1e-5,
    )?;
    Ok(())
}
