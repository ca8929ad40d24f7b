//! Training parity against `fixtures/reference/train.safetensors` (made by `scripts/make_train_fixtures.py`
//! with the official `omnigen==1.0.3` trainer code and PEFT 0.9.0): the rectified-flow loss, the LoRA
//! gradients and the factors after one clipped AdamW step, with noise, t, condition dropout and the LoRA
//! initialisation injected; and an adapter trained by `omnigen train` (`fixtures/trained_lora`), merged by the
//! official pipeline's `merge_lora` and sampled (`reference/trained_lora.*`, `scripts/make_merge_fixtures.py`).

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::{assert_close, fixtures, get, reference, spans, TestResult};
use omnigen_model::train::{
    flow_loss, timestep_from_normal, FlowBatch, LoraAdapter, LoraConfig, OptimConfig, Optimizer,
};
use omnigen_model::Transformer;

fn tiny_transformer() -> anyhow::Result<Transformer> {
    let dir = fixtures().join("tiny");
    Ok(Transformer::load(
        &dir.join("config.json"),
        &[dir.join("model.safetensors")],
        false,
        DType::F32,
        omnigen_model::WeightFormat::Full,
        &Device::Cpu,
    )?)
}

fn train_cases() -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(fixtures().join("reference").join("train_cases.json"))?;
    Ok(serde_json::from_str(&text)?)
}

/// The tiny model with LoRA (r = 8, alpha = 8) whose factors are the reference's initial ones.
fn adapted(reference: &HashMap<String, Tensor>) -> anyhow::Result<(Transformer, LoraAdapter)> {
    let mut tr = tiny_transformer()?;
    let lora = LoraAdapter::attach(&mut tr, LoraConfig::official(8), 0)?;
    for (name, _, _) in lora.modules() {
        let a = get(reference, &format!("init.{name}.lora_A"))?;
        let b = get(reference, &format!("init.{name}.lora_B"))?;
        lora.set(name, &a, &b)?;
    }
    Ok((tr, lora))
}

/// The loss of case `name`, computed on `tr`.
fn case_loss(tr: &Transformer, r: &HashMap<String, Tensor>, name: &str) -> anyhow::Result<Tensor> {
    let p = |k: &str| get(r, &format!("{name}.{k}"));
    let (x1, x0) = (p("x1")?, p("x0")?);
    let t = timestep_from_normal(&p("u")?)?;
    assert_close(&format!("{name} t = sigmoid(u)"), &t, &p("t")?, 1e-7)?;
    let image_spans = spans(&p("image_sizes")?)?;
    let cond = (0..image_spans.len())
        .map(|k| p(&format!("cond_latent.{k}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mask = p("attention_mask")?.to_dtype(DType::F32)?;
    let (ids, pos) = (p("input_ids")?, p("position_ids")?);
    Ok(flow_loss(
        tr,
        &FlowBatch {
            x1: &x1,
            x0: &x0,
            t: &t,
            input_ids: &ids,
            condition_latents: &cond,
            image_spans: &image_spans,
            attention_mask: &mask,
            position_ids: &pos,
        },
    )?)
}

fn rel(got: f32, want: f32) -> f32 {
    (got - want).abs() / want.abs().max(f32::MIN_POSITIVE)
}

#[test]
fn loss_gradients_and_one_adamw_step_match_the_official_trainer() -> TestResult {
    let r = reference("train")?;
    let cases = train_cases()?;
    let cases = cases["cases"].as_array().expect("cases array");
    assert_eq!(cases.len(), 2);
    for case in cases {
        let name = case["name"].as_str().expect("case name");
        let (tr, lora) = adapted(&r)?;
        let loss = case_loss(&tr, &r, name)?;
        let got = loss.to_scalar::<f32>()?;
        let want = get(&r, &format!("{name}.loss"))?.to_vec1::<f32>()?[0];
        eprintln!(
            "{name}: loss {got} vs {want} (relative {:.2e})",
            rel(got, want)
        );
        assert!(rel(got, want) <= 1e-5, "{name}: loss {got} vs {want}");

        let grads = loss.backward()?;
        for (module, a, b) in lora.modules() {
            for (var, which) in [(a, "lora_A"), (b, "lora_B")] {
                let g = grads
                    .get(var.as_tensor())
                    .ok_or_else(|| anyhow::anyhow!("no gradient for {module}.{which}"))?;
                let want = get(&r, &format!("{name}.grad.{module}.{which}"))?;
                assert_close(&format!("{name} grad {module}.{which}"), g, &want, 1e-5)?;
            }
        }

        for opt in case["optimizers"].as_array().expect("optimizers") {
            let tag = opt["name"].as_str().expect("optimizer name");
            let (tr, lora) = adapted(&r)?;
            let mut grads = case_loss(&tr, &r, name)?.backward()?;
            let config = OptimConfig {
                lr: opt["lr"].as_f64().expect("lr"),
                weight_decay: opt["weight_decay"].as_f64().expect("weight_decay"),
                max_grad_norm: opt["max_grad_norm"].as_f64(),
                ..OptimConfig::default()
            };
            let mut optimizer = Optimizer::new(lora.vars(), config)?;
            let norm = optimizer.step(&mut grads)?;
            let want_norm = case["grad_norm"].as_f64().expect("grad_norm");
            assert!(
                (norm - want_norm).abs() <= 1e-5 * want_norm,
                "{name}: grad norm {norm} vs {want_norm}"
            );
            for (module, a, b) in lora.modules() {
                for (var, which) in [(a, "lora_A"), (b, "lora_B")] {
                    let want = get(&r, &format!("{name}.{tag}.after.{module}.{which}"))?;
                    let init = get(&r, &format!("init.{module}.{which}"))?;
                    assert_close(
                        &format!("{name} {tag} after {module}.{which}"),
                        var.as_tensor(),
                        &want,
                        1e-5,
                    )?;
                    // The update itself, which is ~lr in size: compare it relative to the lr.
                    let step_err =
                        common::max_abs_diff(&(var.as_tensor() - &init)?, &(&want - &init)?)?;
                    let lr = config.lr as f32;
                    assert!(
                        step_err <= 1e-3 * lr,
                        "{name} {tag} {module}.{which}: update differs by {step_err} (lr {lr})"
                    );
                }
            }
        }
    }
    Ok(())
}

#[test]
fn a_trained_adapter_saved_as_peft_merges_back_to_the_same_weights() -> TestResult {
    let r = reference("train")?;
    let (tr, lora) = adapted(&r)?;
    let mut grads = case_loss(&tr, &r, "batch3")?.backward()?;
    let mut optimizer = Optimizer::new(
        lora.vars(),
        OptimConfig {
            lr: 1e-2,
            ..OptimConfig::default()
        },
    )?;
    optimizer.step(&mut grads)?;
    let adapted_loss = case_loss(&tr, &r, "single_nonsquare")?.to_scalar::<f32>()?;

    let dir = tempfile::tempdir()?;
    lora.save_peft(dir.path())?;
    // The public merge (`OmniGen::merge_lora`, what `LoadOmniGen`'s `lora` input calls) reads the saved folder.
    let mut pipe =
        omnigen_model::OmniGen::load_on(&fixtures().join("tiny"), DType::F32, &Device::Cpu)?;
    assert_eq!(pipe.merge_lora(dir.path(), 1.0)?, 4);
    let merged_loss = case_loss(pipe.transformer(), &r, "single_nonsquare")?.to_scalar::<f32>()?;
    let base_loss = case_loss(&tiny_transformer()?, &r, "single_nonsquare")?.to_scalar::<f32>()?;
    eprintln!("adapted {adapted_loss}, merged {merged_loss}, base {base_loss}");
    assert!(
        rel(merged_loss, adapted_loss) <= 1e-5,
        "merged {merged_loss} vs adapted {adapted_loss}"
    );
    assert!(
        rel(base_loss, adapted_loss) > 1e-4,
        "the adapter changes the model"
    );
    Ok(())
}

#[test]
fn two_adamw_steps_on_two_batches_match_the_official_trainer() -> TestResult {
    let r = reference("train")?;
    let cases = train_cases()?;
    let two = &cases["two_steps"];
    let opt = &two["optimizer"];
    let (tr, lora) = adapted(&r)?;
    let mut optimizer = Optimizer::new(
        lora.vars(),
        OptimConfig {
            lr: opt["lr"].as_f64().expect("lr"),
            weight_decay: opt["weight_decay"].as_f64().expect("weight_decay"),
            max_grad_norm: opt["max_grad_norm"].as_f64(),
            ..OptimConfig::default()
        },
    )?;
    let names = two["cases"].as_array().expect("cases");
    let want_norms = two["grad_norms"].as_array().expect("grad_norms");
    for (name, want_norm) in names.iter().zip(want_norms) {
        let name = name.as_str().expect("case name");
        let mut grads = case_loss(&tr, &r, name)?.backward()?;
        let norm = optimizer.step(&mut grads)?;
        let want_norm = want_norm.as_f64().expect("norm");
        eprintln!("{name}: grad norm {norm} vs {want_norm}");
        assert!(
            (norm - want_norm).abs() <= 1e-5 * want_norm,
            "{name}: grad norm {norm} vs {want_norm}"
        );
    }
    for (module, a, b) in lora.modules() {
        for (var, which) in [(a, "lora_A"), (b, "lora_B")] {
            let want = get(&r, &format!("two_steps.after.{module}.{which}"))?;
            assert_close(
                &format!("two steps {module}.{which}"),
                var.as_tensor(),
                &want,
                1e-5,
            )?;
        }
    }
    Ok(())
}

#[test]
fn a_fresh_adapter_is_peft_gaussian_and_leaves_the_model_unchanged() -> TestResult {
    let r = reference("train")?;
    let mut tr = tiny_transformer()?;
    let base_loss = case_loss(&tr, &r, "batch3")?.to_scalar::<f32>()?;
    let lora = LoraAdapter::attach(&mut tr, LoraConfig::official(8), 7)?;
    assert_eq!(lora.modules().len(), 4, "qkv_proj and o_proj of 2 layers");
    let mut a_values = Vec::new();
    for (module, a, b) in lora.modules() {
        assert_eq!(a.dims()[0], 8, "{module}: A is [r, in]");
        assert_eq!(
            b.as_tensor().abs()?.sum_all()?.to_scalar::<f32>()?,
            0.0,
            "{module}: B starts at 0"
        );
        a_values.extend(a.as_tensor().flatten_all()?.to_vec1::<f32>()?);
    }
    // init_lora_weights="gaussian": A ~ N(0, std 1/r); 1,024 draws (a fixed seed) give the std to about 2 %.
    let n = a_values.len() as f32;
    let mean = a_values.iter().sum::<f32>() / n;
    let std = (a_values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
    assert!(
        (std - 0.125).abs() < 0.01 && mean.abs() < 0.01,
        "A mean {mean}, std {std}"
    );
    let loss = case_loss(&tr, &r, "batch3")?;
    assert!(
        rel(loss.to_scalar::<f32>()?, base_loss) <= 1e-6,
        "B = 0 leaves the output unchanged"
    );
    // ... and the loss is differentiable: with B = 0 only B gets a gradient.
    let grads = loss.backward()?;
    let (_, a, b) = &lora.modules()[0];
    let gb = grads.get(b.as_tensor()).expect("gradient of B");
    assert!(gb.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
    let ga = grads.get(a.as_tensor()).expect("gradient of A");
    assert_eq!(ga.abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
    Ok(())
}

/// `fixtures/trained_lora` was trained by `omnigen train` (6 steps, see scripts/make_merge_fixtures.py); the
/// official pipeline's `merge_lora` + sampling loop on it gave `reference/trained_lora.safetensors`.
#[test]
fn an_adapter_trained_here_merged_samples_as_the_official_merge_lora() -> TestResult {
    let path = fixtures().join("reference").join("trained_lora.json");
    let cases: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let r = reference("trained_lora")?;
    let base = omnigen_model::OmniGen::load_on(&fixtures().join("tiny"), DType::F32, &Device::Cpu)?;
    let mut model =
        omnigen_model::OmniGen::load_on(&fixtures().join("tiny"), DType::F32, &Device::Cpu)?;
    let merged = model.merge_lora(fixtures().join("trained_lora"), 1.0)?;
    assert_eq!(merged, 4, "2 layers x (qkv_proj, o_proj)");
    for case in cases["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let opts = omnigen_model::SampleOptions {
            width: case["width"].as_u64().expect("width") as usize,
            height: case["height"].as_u64().expect("height") as usize,
            steps: case["steps"].as_u64().expect("steps") as usize,
            guidance_scale: case["guidance_scale"].as_f64().expect("guidance_scale"),
            img_guidance_scale: 1.6,
            seed: 0,
            kv_cache: omnigen_model::KvCacheMode::Reference,
            cfg: omnigen_model::CfgMode::Separate,
            use_input_image_size_as_output: false,
            ..omnigen_model::SampleOptions::default()
        };
        let prompt = omnigen_model::Instruction::new(case["prompt"].as_str().expect("prompt"));
        let noise = get(&r, &format!("{name}.noise"))?;
        let go = &mut |_: omnigen_model::StepProgress| std::ops::ControlFlow::Continue(());
        let z = model.sample(&prompt, &opts, Some(noise.clone()), go)?;
        let want = get(&r, &format!("{name}.final_latent"))?;
        let err = common::max_abs_diff(z.tensor(), &want)?;
        // The adapter matters: without it the sample is far from the reference.
        let unmerged = base.sample(&prompt, &opts, Some(noise), go)?;
        let moved = common::max_abs_diff(unmerged.tensor(), &want)?;
        eprintln!("{name}: final latent max |diff| {err:.2e} (without the adapter {moved:.2e})");
        assert!(err <= 1e-4, "{name}: {err}");
        assert!(
            moved > 1e-2,
            "{name}: the adapter changes the sample by only {moved}"
        );
    }
    Ok(())
}
