//! VAE decode at large sizes (not a test): time and peak RSS of the whole-map decode against the banded
//! one (`Vae::decode_tiled`), SDXL's VAE architecture with zero weights (the work and the buffers do not
//! depend on the values), f32 on CPU. Peak RSS only grows, so each measurement is its own process:
//!
//! `cargo bench -p omnigen-model --bench bench_vae -- --size 1024 --mode whole|tiled [--band-mb 64]`

use std::time::Instant;

use candle_core::{Device, Tensor};
use omnigen_model::{Latent, VaeConfig};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// SDXL's `vae/config.json` (the fields the architecture reads).
const SDXL_VAE: &str = r#"{"in_channels": 3, "out_channels": 3, "latent_channels": 4,
  "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "norm_num_groups": 32,
  "scaling_factor": 0.13025}"#;

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let size: usize = value("--size").map_or(Ok(1024), |s| s.parse())?;
    let mode = value("--mode").unwrap_or_else(|| "tiled".into());
    let band_mb: usize = value("--band-mb").map_or(Ok(64), |s| s.parse())?;
    let cfg: VaeConfig = serde_json::from_str(SDXL_VAE)?;
    let vae = omnigen_model::bench_hooks::zero_vae(cfg, &Device::Cpu)?;
    let latent = Latent::new(Tensor::zeros(
        (1, 4, size / 8, size / 8),
        candle_core::DType::F32,
        &Device::Cpu,
    )?)?;
    let before = peak_rss_mb();
    let t0 = Instant::now();
    let pixels = match mode.as_str() {
        "whole" => vae.decode(&latent)?,
        "tiled" => vae.decode_tiled(&latent, band_mb << 20)?,
        other => return Err(format!("--mode {other}: use whole or tiled").into()),
    };
    println!(
        "{size}x{size} {mode} (bands of {band_mb} MB): {:.1} s, peak RSS {:.0} MB ({before:.0} MB before), output {:?}",
        t0.elapsed().as_secs_f64(),
        peak_rss_mb(),
        pixels.dims()
    );
    Ok(())
}
