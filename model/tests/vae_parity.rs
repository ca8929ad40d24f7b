//! VAE encode (posterior mean and injected-noise sample) and decode against diffusers' AutoencoderKL.

mod common;

use candle_core::Device;
use common::*;
use omnigen_model::{to_rgb8, EncodeMode, Latent, Vae};

#[test]
fn encode_mean_and_sample_match_reference() -> TestResult {
    let vae = Vae::load(fixtures().join("tiny").join("vae"), &Device::Cpu)?;
    let r = reference("vae")?;
    for img in ["a", "b"] {
        let p = |f: &str| get(&r, &format!("vae.{img}.{f}"));
        let pixels = p("pixels")?;
        let (mean, std) = vae.posterior(&pixels)?;
        assert_close(&format!("vae.{img} mean"), &mean, &p("mean")?, 1e-5)?;
        assert_close(&format!("vae.{img} std"), &std, &p("std")?, 1e-5)?;
        let z = vae.encode(&pixels, EncodeMode::Mean)?;
        assert_close(
            &format!("vae.{img} scaled mean"),
            z.tensor(),
            &p("latent_scaled_mean")?,
            1e-5,
        )?;
        let z = vae.encode(&pixels, EncodeMode::Noise(p("eps")?))?;
        assert_close(
            &format!("vae.{img} scaled sample"),
            z.tensor(),
            &p("latent_scaled_sample")?,
            1e-5,
        )?;
    }
    Ok(())
}

#[test]
fn seeded_sample_is_deterministic_and_differs_from_mean() -> TestResult {
    let vae = Vae::load(fixtures().join("tiny").join("vae"), &Device::Cpu)?;
    let pixels = get(&reference("vae")?, "vae.a.pixels")?;
    let a = vae.encode(&pixels, EncodeMode::Sample { seed: 3 })?;
    let b = vae.encode(&pixels, EncodeMode::Sample { seed: 3 })?;
    let m = vae.encode(&pixels, EncodeMode::Mean)?;
    assert_eq!(max_abs_diff(a.tensor(), b.tensor())?, 0.0);
    assert!(max_abs_diff(a.tensor(), m.tensor())? > 0.0);
    Ok(())
}

#[test]
fn decode_matches_reference_and_uint8_within_one() -> TestResult {
    let vae = Vae::load(fixtures().join("tiny").join("vae"), &Device::Cpu)?;
    let r = reference("vae")?;
    let latent = Latent::new(get(&r, "vae.decode.latent")?)?;
    let out = vae.decode(&latent)?;
    assert_close("vae.decode", &out, &get(&r, "vae.decode.out")?, 1e-4)?;
    let img = to_rgb8(&out)?.remove(0);
    let want = get(&r, "vae.decode.uint8")?
        .flatten_all()?
        .to_vec1::<u8>()?;
    let worst = img
        .as_raw()
        .iter()
        .zip(&want)
        .map(|(&a, &b)| (a as i32 - b as i32).abs())
        .max()
        .unwrap_or(0);
    eprintln!("vae.decode uint8: max difference {worst}");
    assert!(worst <= 1);
    Ok(())
}

#[test]
fn bad_pixel_shape_is_an_error() -> TestResult {
    let vae = Vae::load(fixtures().join("tiny").join("vae"), &Device::Cpu)?;
    let px = candle_core::Tensor::zeros((1, 3, 20, 16), candle_core::DType::F32, &Device::Cpu)?;
    assert!(vae.encode(&px, EncodeMode::Mean).is_err());
    Ok(())
}

/// The banded decode is the whole-map decode (up to summation order): on the reference latent with one
/// row per band, and on a larger random latent with a few rows per band, pixels agree to 1e-5 and the
/// 8-bit pictures to one level (a value on a rounding boundary may land either side).
#[test]
fn tiled_decode_equals_the_whole_map_decode() -> TestResult {
    let vae = Vae::load(fixtures().join("tiny").join("vae"), &Device::Cpu)?;
    let reference_latent = get(&reference("vae")?, "vae.decode.latent")?;
    let random = omnigen_model::noise::gaussian(7, (1, 4, 24, 40), &Device::Cpu)?;
    for (latent, band_bytes) in [(reference_latent, 1), (random, 16 << 10)] {
        let latent = Latent::new(latent)?;
        let whole = vae.decode(&latent)?;
        let tiled = vae.decode_tiled(&latent, band_bytes)?;
        assert_close("tiled decode", &tiled, &whole, 1e-5)?;
        let (a, b) = (to_rgb8(&tiled)?.remove(0), to_rgb8(&whole)?.remove(0));
        let worst = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(&x, &y)| x.abs_diff(y))
            .max()
            .unwrap_or(0);
        assert!(worst <= 1, "8-bit pictures differ by {worst}");
    }
    Ok(())
}

/// The banded encoder gives the whole-map encoder's posterior (up to summation order), with one output
/// row per band (every band edge exercised, the stride-2 downsampling included) and with a few rows.
#[test]
fn tiled_encode_equals_the_whole_map_encode() -> TestResult {
    let vae = Vae::load(fixtures().join("tiny").join("vae"), &Device::Cpu)?;
    let pixels = omnigen_model::noise::gaussian(3, (1, 3, 48, 80), &Device::Cpu)?.tanh()?;
    let (mean, std) = vae.posterior(&pixels)?;
    for band_bytes in [1, 16 << 10] {
        let (tiled_mean, tiled_std) = vae.posterior_tiled(&pixels, band_bytes)?;
        assert_close("tiled encode mean", &tiled_mean, &mean, 1e-5)?;
        assert_close("tiled encode std", &tiled_std, &std, 1e-5)?;
    }
    Ok(())
}
