//! Full sampling loops (4 steps) against the official pipeline: text-to-image and image-conditioned
//! prompts, separate and batched CFG, KV cache on and off, output size from the input image, bf16, plus
//! decoding to uint8. Noise and condition latents are injected from the fixtures.

mod common;

use std::ops::ControlFlow;

use candle_core::{DType, Tensor};
use common::*;
use omnigen_model::{
    scheduler, to_rgb8, CfgMode, Error, Instruction, KvCacheMode, Latent, OmniGen, SampleOptions,
    Vae, WeightFormat,
};

struct Run {
    name: String,
    final_latent: Tensor,
}

fn options(case: &serde_json::Value, kv: KvCacheMode) -> SampleOptions {
    SampleOptions {
        width: case["width"].as_u64().unwrap_or(0) as usize,
        height: case["height"].as_u64().unwrap_or(0) as usize,
        steps: case["steps"].as_u64().unwrap_or(0) as usize,
        guidance_scale: case["guidance_scale"].as_f64().unwrap_or(0.0),
        img_guidance_scale: case["img_guidance_scale"].as_f64().unwrap_or(0.0),
        seed: 0,
        kv_cache: kv,
        cfg: if case["separate_cfg"].as_bool() == Some(true) {
            CfgMode::Separate
        } else {
            CfgMode::Batched
        },
        use_input_image_size_as_output: case["use_input_image_size_as_output"].as_bool()
            == Some(true),
        ..SampleOptions::default()
    }
}

fn prompt(
    case: &serde_json::Value,
    r: &std::collections::HashMap<String, Tensor>,
) -> anyhow::Result<Instruction> {
    let name = case["name"].as_str().unwrap_or_default();
    let n_images = case["images"].as_array().map_or(0, |a| a.len());
    // The cond branch's spans come first and follow placeholder order, so cond_latent.k is image k+1.
    let images = (0..n_images)
        .map(|k| {
            Ok(Latent::new(get(
                r,
                &format!("loop.{name}.cond_latent.{k}"),
            )?)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(
        Instruction::new(case["prompt"].as_str().unwrap_or_default())
            .with_images(images)
            .with_img_guidance(case["use_img_guidance"].as_bool() == Some(true)),
    )
}

fn run_case(model: &OmniGen, case: &serde_json::Value, kv: KvCacheMode) -> anyhow::Result<Run> {
    let r = reference("sampling")?;
    let name = case["name"].as_str().unwrap_or_default().to_string();
    let noise = get(&r, &format!("loop.{name}.noise"))?;
    let opts = options(case, kv);
    let mut steps = 0;
    let z = model.sample(&prompt(case, &r)?, &opts, Some(noise), &mut |p| {
        steps = p.step;
        ControlFlow::Continue(())
    })?;
    assert_eq!(
        steps, opts.steps,
        "progress must be reported for every step"
    );
    Ok(Run {
        name,
        final_latent: z.into_tensor(),
    })
}

fn sampling_cases() -> anyhow::Result<Vec<serde_json::Value>> {
    Ok(cases()?["sampling"].as_array().cloned().unwrap_or_default())
}

/// The sampling case named `name`.
fn sampling_case(name: &str) -> anyhow::Result<serde_json::Value> {
    sampling_cases()?
        .into_iter()
        .find(|c| c["name"] == name)
        .ok_or_else(|| anyhow::anyhow!("case {name} missing"))
}

#[test]
fn sigma_table_matches_reference() -> TestResult {
    let r = reference("sampling")?;
    let want = get(&r, "loop.t2i_sep_kv.sigmas")?.to_vec1::<f32>()?;
    assert_eq!(scheduler::sigmas(want.len() - 1), want);
    Ok(())
}

#[test]
fn f32_loops_match_reference_final_latents() -> TestResult {
    let model = tiny(DType::F32)?;
    let r = reference("sampling")?;
    let mut checked = 0;
    for case in sampling_cases()? {
        if case["dtype"] != "float32" {
            continue;
        }
        let kv = if case["use_kv_cache"].as_bool() == Some(true) {
            KvCacheMode::Reference
        } else {
            KvCacheMode::Off
        };
        let run = run_case(&model, &case, kv)?;
        let want = get(&r, &format!("loop.{}.final_latent", run.name))?;
        assert_close(
            &format!("loop.{} final latent", run.name),
            &run.final_latent,
            &want,
            1e-4,
        )?;
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} sampling cases found");
    Ok(())
}

#[test]
fn exact_cache_equals_no_cache_and_differs_from_reference_cache() -> TestResult {
    let model = tiny(DType::F32)?;
    let r = reference("sampling")?;
    for (name, nokv) in [
        ("t2i_sep_kv", "t2i_sep_nokv"),
        (
            "two_images_batched_kv_imgcfg",
            "two_images_batched_nokv_imgcfg",
        ),
    ] {
        let case = sampling_case(name)?;
        let exact = run_case(&model, &case, KvCacheMode::Exact)?;
        let off = run_case(&model, &case, KvCacheMode::Off)?;
        assert_close(
            &format!("{name}: exact cache vs no cache"),
            &exact.final_latent,
            &off.final_latent,
            1e-5,
        )?;
        // The no-cache reference of the same prompt is the oracle for the exact mode.
        let want = get(&r, &format!("loop.{nokv}.final_latent"))?;
        assert_close(
            &format!("{name}: exact cache vs reference no-cache"),
            &exact.final_latent,
            &want,
            1e-4,
        )?;
        let quirk = get(&r, &format!("loop.{name}.final_latent"))?;
        assert!(max_abs_diff(&exact.final_latent, &quirk)? > 1e-3);
    }
    Ok(())
}

#[test]
fn bf16_loop_stays_close_to_reference() -> TestResult {
    let model = tiny(DType::BF16)?;
    let r = reference("sampling")?;
    let case = sampling_cases()?
        .into_iter()
        .find(|c| c["name"] == "t2i_sep_kv_bf16")
        .ok_or_else(|| anyhow::anyhow!("bf16 case missing"))?;
    let run = run_case(&model, &case, KvCacheMode::Reference)?;
    let want = get(&r, "loop.t2i_sep_kv_bf16.final_latent")?;
    assert_close(
        "bf16 loop vs reference bf16",
        &run.final_latent,
        &want,
        1e-1,
    )?;
    let f32_want = get(&r, "loop.t2i_sep_kv.final_latent")?;
    assert_close(
        "bf16 loop vs reference f32",
        &run.final_latent,
        &f32_want,
        2e-1,
    )?;
    Ok(())
}

#[test]
fn decoded_images_match_reference_uint8() -> TestResult {
    let model = tiny(DType::F32)?;
    let vae = Vae::load(fixtures().join("tiny").join("vae"), model.device())?;
    let r = reference("sampling")?;
    for name in ["t2i_sep_kv", "edit_input_size_sep_kv"] {
        let case = sampling_case(name)?;
        let run = run_case(&model, &case, KvCacheMode::Reference)?;
        let pixels = vae.decode(&Latent::new(run.final_latent)?)?;
        assert_close(
            &format!("{name} decoded"),
            &pixels,
            &get(&r, &format!("loop.{name}.decoded"))?,
            1e-3,
        )?;
        let img = to_rgb8(&pixels)?.remove(0);
        let want = get(&r, &format!("loop.{name}.image_uint8"))?;
        let (h, w, _) = want.dims3()?;
        assert_eq!((img.height() as usize, img.width() as usize), (h, w));
        let want = want.flatten_all()?.to_vec1::<u8>()?;
        let worst = img
            .as_raw()
            .iter()
            .zip(&want)
            .map(|(&a, &b)| (a as i32 - b as i32).abs())
            .max()
            .unwrap_or(0);
        eprintln!("{name}: max uint8 difference {worst}");
        assert!(worst <= 1, "{name}: uint8 pixels differ by {worst}");
    }
    Ok(())
}

/// Whole sampling loops with quantized decoder weights: the final latent and the decoded picture against
/// the official f32 run (figures in BENCHMARKS.md, Quantized weights).
#[test]
fn quantized_loops_stay_near_the_reference() -> TestResult {
    let r = reference("sampling")?;
    let vae = Vae::load(
        fixtures().join("tiny").join("vae"),
        &candle_core::Device::Cpu,
    )?;
    for (format, latent_bound, pixel_bound) in
        [(WeightFormat::Q8, 0.01, 1.0), (WeightFormat::Q4, 0.1, 4.0)]
    {
        let model = tiny_in(format)?;
        for name in ["t2i_sep_kv", "edit_input_size_sep_kv"] {
            let case = sampling_case(name)?;
            let run = run_case(&model, &case, KvCacheMode::Reference)?;
            let want = get(&r, &format!("loop.{name}.final_latent"))?;
            let err = relative_error(&run.final_latent, &want)?;
            let img = to_rgb8(&vae.decode(&Latent::new(run.final_latent)?)?)?.remove(0);
            let want = get(&r, &format!("loop.{name}.image_uint8"))?
                .flatten_all()?
                .to_vec1::<u8>()?;
            let diffs: Vec<f64> = img
                .as_raw()
                .iter()
                .zip(&want)
                .map(|(&a, &b)| (a as f64 - b as f64).abs())
                .collect();
            let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
            let worst = diffs.iter().copied().fold(0.0, f64::max);
            eprintln!(
                "{format} {name}: final latent relative error {err:.2e}; pixels mean |Δ| {mean:.2}, max {worst}"
            );
            assert!(
                err <= latent_bound,
                "{format} {name}: latent relative error {err}"
            );
            assert!(
                mean <= pixel_bound,
                "{format} {name}: mean pixel difference {mean}"
            );
        }
    }
    Ok(())
}

#[test]
fn progress_can_cancel_and_seeded_noise_is_reproducible() -> TestResult {
    let model = tiny(DType::F32)?;
    let opts = SampleOptions {
        width: 32,
        height: 32,
        steps: 3,
        guidance_scale: 2.5,
        seed: 11,
        ..SampleOptions::default()
    };
    let p = Instruction::new("A curly-haired man in a red shirt is drinking tea.");
    let mut seen = Vec::new();
    let res = model.sample(&p, &opts, None, &mut |s| {
        seen.push(s.step);
        if s.step == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    assert!(matches!(res, Err(Error::Cancelled { step: 2 })), "{res:?}");
    assert_eq!(seen, vec![1, 2]);
    let a = model.sample(&p, &opts, None, &mut |_| ControlFlow::Continue(()))?;
    let b = model.sample(&p, &opts, None, &mut |_| ControlFlow::Continue(()))?;
    assert_eq!(max_abs_diff(a.tensor(), b.tensor())?, 0.0);
    let other = SampleOptions {
        seed: 12,
        ..opts.clone()
    };
    let c = model.sample(&p, &other, None, &mut |_| ControlFlow::Continue(()))?;
    assert!(max_abs_diff(a.tensor(), c.tensor())? > 1e-3);
    Ok(())
}

#[test]
fn wrong_noise_shape_is_rejected() -> TestResult {
    let model = tiny(DType::F32)?;
    let opts = SampleOptions {
        width: 32,
        height: 32,
        steps: 1,
        ..SampleOptions::default()
    };
    let noise = Tensor::zeros((1, 4, 8, 8), DType::F32, model.device())?;
    let res = model.sample(&Instruction::new("tea"), &opts, Some(noise), &mut |_| {
        ControlFlow::Continue(())
    });
    assert!(
        matches!(res, Err(ref e @ Error::NoiseShape { .. }) if e.to_string().contains("noise")),
        "{res:?}"
    );
    Ok(())
}
