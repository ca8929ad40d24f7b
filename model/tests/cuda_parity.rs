//! Parity on a CUDA GPU (built only with `--features cuda`; run on a machine with a GPU): the float32
//! forward and sampling loop against the official reference, bf16 within its tolerance, the VAE, and
//! the seeded noise giving the same latents on CPU and GPU.
#![cfg(feature = "cuda")]

mod common;

use std::ops::ControlFlow;

use candle_core::{DType, Device, Tensor};
use common::*;
use omnigen_model::{
    CfgMode, ForwardInput, Instruction, KvCacheMode, Latent, OmniGen, SampleOptions, Vae,
};

fn gpu() -> anyhow::Result<Device> {
    Ok(Device::new_cuda(0)?)
}

fn forward_case(model: &OmniGen, name: &str) -> anyhow::Result<(Tensor, Tensor)> {
    let dev = model.device().clone();
    let r = reference("forward")?;
    let p = |f: &str| -> anyhow::Result<Tensor> {
        Ok(get(&r, &format!("fwd.{name}.{f}"))?.to_device(&dev)?)
    };
    let sp = spans(&get(&r, &format!("fwd.{name}.image_sizes"))?)?;
    let latents = (0..sp.len())
        .map(|k| p(&format!("cond_latent.{k}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (x, t, ids, mask, pos) = (
        p("x")?,
        p("t")?,
        p("input_ids")?,
        p("attention_mask")?,
        p("position_ids")?,
    );
    let out = model.transformer().forward(&ForwardInput {
        x: &x,
        timestep: &t,
        input_ids: Some(&ids),
        condition_latents: &latents,
        image_spans: &sp,
        attention_mask: &mask,
        position_ids: &pos,
    })?;
    Ok((
        out.to_device(&Device::Cpu)?,
        get(&r, &format!("fwd.{name}.out"))?,
    ))
}

#[test]
fn cuda_forward_f32_and_bf16() -> TestResult {
    let dev = gpu()?;
    let m32 = OmniGen::load_on(&fixtures().join("tiny"), DType::F32, &dev)?;
    for name in ["t2i_batched", "t2i_cond_only", "two_images_batched"] {
        let (out, want) = forward_case(&m32, name)?;
        assert_close(&format!("cuda f32 fwd.{name}"), &out, &want, 1e-4)?;
    }
    let m16 = OmniGen::load_on(&fixtures().join("tiny"), DType::BF16, &dev)?;
    let r = reference("forward")?;
    for name in ["t2i_batched", "two_images_batched"] {
        let (out, _) = forward_case(&m16, name)?;
        let want = get(&r, &format!("fwd.{name}_bf16.out"))?;
        assert_close(&format!("cuda bf16 fwd.{name}"), &out, &want, 5e-2)?;
    }
    Ok(())
}

#[test]
fn cuda_sampling_matches_reference_and_cpu_seed() -> TestResult {
    let dev = gpu()?;
    let model = OmniGen::load_on(&fixtures().join("tiny"), DType::F32, &dev)?;
    let r = reference("sampling")?;
    let opts = SampleOptions {
        width: 80,
        height: 48,
        steps: 4,
        guidance_scale: 2.5,
        kv_cache: KvCacheMode::Reference,
        cfg: CfgMode::Separate,
        ..SampleOptions::default()
    };
    let prompt = Instruction::new("A curly-haired man in a red shirt is drinking tea.");
    let noise = get(&r, "loop.t2i_sep_kv.noise")?;
    let z = model.sample(&prompt, &opts, Some(noise), &mut |_| {
        ControlFlow::Continue(())
    })?;
    let want = get(&r, "loop.t2i_sep_kv.final_latent")?;
    assert_close(
        "cuda loop t2i_sep_kv",
        &z.tensor().to_device(&Device::Cpu)?,
        &want,
        1e-4,
    )?;

    // Same seed, same latents on CPU and GPU (the noise is drawn on the CPU).
    let cpu = tiny(DType::F32)?;
    let seeded = SampleOptions { seed: 7, ..opts };
    let a = model.sample(&prompt, &seeded, None, &mut |_| ControlFlow::Continue(()))?;
    let b = cpu.sample(&prompt, &seeded, None, &mut |_| ControlFlow::Continue(()))?;
    assert_close(
        "cuda vs cpu seeded",
        &a.tensor().to_device(&Device::Cpu)?,
        b.tensor(),
        1e-4,
    )?;

    let vae = Vae::load(fixtures().join("tiny").join("vae"), &dev)?;
    let px = vae.decode(&Latent::new(want.to_device(&dev)?)?)?;
    assert_close(
        "cuda vae decode",
        &px.to_device(&Device::Cpu)?,
        &get(&r, "loop.t2i_sep_kv.decoded")?,
        1e-3,
    )?;
    Ok(())
}
