//! `offload_model` and `offload_kv_cache` give the same latents as keeping everything on the device.
//!
//! On the CPU the host and the device are the same memory, so these runs check the streaming machinery
//! (layer copies made one layer ahead on a second thread, cache entries stored and read back per layer,
//! LoRA merged into host-resident layers); `cuda_parity.rs` checks the real host-to-GPU copies.

mod common;

use std::ops::ControlFlow;

use candle_core::{DType, Device, Tensor};
use common::{assert_close, fixtures, TestResult};
use omnigen_model::{Instruction, KvCacheMode, Latent, OmniGen, SampleOptions, WeightFormat};

fn tiny(format: WeightFormat, offload_model: bool) -> anyhow::Result<OmniGen> {
    let model = OmniGen::load_with(
        &fixtures().join("tiny"),
        DType::F32,
        format,
        &Device::Cpu,
        offload_model,
    )?;
    anyhow::ensure!(model.transformer().is_offloaded() == offload_model);
    Ok(model)
}

/// An editing prompt with one condition image, so the cache holds real condition tokens.
fn edit_prompt() -> anyhow::Result<Instruction> {
    let image = Tensor::randn(0f32, 1.0, (1, 4, 4, 6), &Device::Cpu)?;
    Ok(Instruction::new("Remove the cup. <img><|image_1|></img>")
        .with_images(vec![Latent::new(image)?])
        .with_img_guidance(true))
}

fn sample(
    model: &OmniGen,
    prompt: &Instruction,
    kv_cache: KvCacheMode,
    offload_kv_cache: bool,
    noise: &Tensor,
) -> anyhow::Result<Tensor> {
    let opts = SampleOptions {
        width: 48,
        height: 32,
        steps: 3,
        kv_cache,
        offload_kv_cache,
        ..SampleOptions::default()
    };
    let latent = model.sample(prompt, &opts, Some(noise.clone()), &mut |_| {
        ControlFlow::Continue(())
    })?;
    Ok(latent.tensor().clone())
}

#[test]
fn offloaded_layers_and_cache_give_the_resident_latents() -> TestResult {
    let prompt = edit_prompt()?;
    let noise = Tensor::randn(0f32, 1.0, (1, 4, 4, 6), &Device::Cpu)?;
    for format in [WeightFormat::Full, WeightFormat::Q8] {
        let resident = tiny(format, false)?;
        let offloaded = tiny(format, true)?;
        for kv in [KvCacheMode::Reference, KvCacheMode::Exact, KvCacheMode::Off] {
            let want = sample(&resident, &prompt, kv, false, &noise)?;
            for (model, offload_kv) in [(&offloaded, false), (&offloaded, true), (&resident, true)]
            {
                let got = sample(model, &prompt, kv, offload_kv, &noise)?;
                let what = format!(
                    "{format:?}, kv {kv:?}, offload_model {}, offload_kv_cache {offload_kv}",
                    model.transformer().is_offloaded()
                );
                assert_close(&what, &got, &want, 1e-5)?;
            }
        }
    }
    Ok(())
}

#[test]
fn a_lora_merges_into_offloaded_layers_as_into_resident_ones() -> TestResult {
    let lora = fixtures().join("lora");
    let mut resident = tiny(WeightFormat::Full, false)?;
    let mut offloaded = tiny(WeightFormat::Full, true)?;
    let merged = resident.merge_lora(&lora, 1.0)?;
    assert!(merged > 0);
    assert_eq!(offloaded.merge_lora(&lora, 1.0)?, merged);
    let prompt = Instruction::new("A red circle on the left.");
    let noise = Tensor::randn(0f32, 1.0, (1, 4, 4, 6), &Device::Cpu)?;
    let want = sample(&resident, &prompt, KvCacheMode::Reference, false, &noise)?;
    let got = sample(&offloaded, &prompt, KvCacheMode::Reference, true, &noise)?;
    assert_close("merged LoRA, offloaded", &got, &want, 1e-5)?;
    // The merge changed the picture: the comparison is not between two unmerged models.
    let plain = tiny(WeightFormat::Full, true)?;
    let unmerged = sample(&plain, &prompt, KvCacheMode::Reference, false, &noise)?;
    assert!(common::max_abs_diff(&got, &unmerged)? > 1e-4);
    Ok(())
}
