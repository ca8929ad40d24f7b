//! `omnigen train-vae --data JSONL|DIR --output DIR`: trains a small SDXL-shaped VAE from scratch
//! (model/src/train/vae.rs), printing the losses, and writes the VAE folder with its `loss.csv`.

use std::io::Write;
use std::ops::ControlFlow;
use std::time::Instant;

use anyhow::Context;
use omnigen_model::train::vae::{VaeImages, VaeTrainConfig, VaeTrainer};
use omnigen_model::DeviceChoice;

use crate::cli::TrainVaeArgs;
use crate::outcome::Failure;

/// Pictures the latent scale is measured on after training.
const CALIBRATION_PICTURES: usize = 64;

/// Trains, calibrates the latent scale, saves.
pub fn run(args: TrainVaeArgs) -> Result<(), Failure> {
    let config = VaeTrainConfig {
        channels: args.channels,
        layers_per_block: args.layers_per_block,
        norm_groups: args.norm_groups,
        steps: args.steps,
        lr: args.lr,
        batch_size: args.batch_size,
        seed: args.seed,
        kl_weight: args.kl_weight,
        crop: args.crop,
        crop_steps: args.crop_steps,
        ..VaeTrainConfig::default()
    };
    let usage = |e: anyhow::Error| Failure::Usage(e);
    let data = VaeImages::load(&args.data, config.foreground_weight, config.edge_weight)
        .with_context(|| format!("cannot read the pictures of '{}'", args.data.display()))
        .map_err(usage)?;
    let device = DeviceChoice::Auto.open().map_err(|e| usage(e.into()))?;
    let mut trainer = VaeTrainer::new(config, &device).map_err(|e| usage(e.into()))?;
    if let Some(init) = &args.init {
        trainer
            .load_weights(init)
            .with_context(|| format!("cannot start from the VAE '{}'", init.display()))
            .map_err(usage)?;
    }
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create '{}'", args.output.display()))
        .map_err(Failure::Runtime)?;
    let (w, h) = data.size();
    eprintln!(
        "training a VAE of {} parameters on {} pictures of {w}x{h} for {} steps",
        trainer.parameter_count(),
        data.len(),
        trainer.config().steps
    );
    let csv_path = args.output.join("loss.csv");
    let mut csv = std::fs::File::create(&csv_path)
        .with_context(|| format!("cannot create '{}'", csv_path.display()))
        .map_err(Failure::Runtime)?;
    let _ = writeln!(csv, "step,loss,reconstruction,kl,lr,grad_norm,seconds");
    let start = Instant::now();
    let log_every = args.log_every.max(1);
    trainer
        .run(&data, &mut |s| {
            let secs = start.elapsed().as_secs_f64();
            let _ = writeln!(
                csv,
                "{},{:.6},{:.6},{:.6},{:.6e},{:.4},{secs:.2}",
                s.step, s.loss, s.reconstruction, s.kl, s.lr, s.grad_norm
            );
            if s.step % log_every == 0 || s.step == 1 {
                eprintln!(
                    "step {:>6}  loss {:.5}  recon {:.5}  kl {:.4}  lr {:.2e}  {:.2} steps/s",
                    s.step,
                    s.loss,
                    s.reconstruction,
                    s.kl,
                    s.lr,
                    s.step as f64 / secs.max(1e-9)
                );
            }
            ControlFlow::Continue(())
        })
        .map_err(|e| Failure::Runtime(e.into()))?;
    let picks: Vec<usize> = (0..data.len().min(CALIBRATION_PICTURES)).collect();
    let (pixels, _) = data
        .batch(&picks, &device)
        .map_err(|e| Failure::Runtime(e.into()))?;
    let factor = trainer
        .calibrate(&pixels)
        .map_err(|e| Failure::Runtime(e.into()))?;
    trainer
        .save(&args.output)
        .map_err(|e| Failure::Runtime(e.into()))?;
    println!("{}", args.output.display());
    eprintln!(
        "wrote the VAE (scaling factor {factor:.5}) after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
