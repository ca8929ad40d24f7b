//! `omnigen train`: fine-tunes a model on a JSONL dataset (model/src/train/). This file maps the flags onto
//! `TrainConfig`, shows progress (a bar with loss and steps/s on a terminal, one line per step elsewhere) and
//! turns Ctrl-C into a resumable checkpoint.

use std::io::IsTerminal;
use std::ops::ControlFlow;

use indicatif::{ProgressBar, ProgressStyle};
use omnigen_model::train::{
    BadData, Duration, ImagePrep, LoraConfig, OptimConfig, RunOutcome, StepReport, TrainConfig,
    TrainMode, Trainer,
};
use omnigen_model::{DTypeChoice, DeviceChoice};

use crate::cli::TrainArgs;
use crate::interrupt::Interrupt;
use crate::outcome::Failure;

/// The run's configuration from the flags (usage errors for bad values).
fn config(args: &TrainArgs) -> Result<TrainConfig, Failure> {
    let usage = |m: String| Failure::Usage(anyhow::anyhow!(m));
    let device = DeviceChoice::parse(&args.device)
        .map_err(|e| usage(format!("--device: {e}")))?
        .open()
        .map_err(|e| usage(format!("--device {}: {e}", args.device)))?;
    let dtype = DTypeChoice::parse(&args.dtype)
        .map_err(|e| usage(format!("--dtype: {e}")))?
        .resolve(&device)
        .map_err(|e| usage(format!("--dtype {}: {e}", args.dtype)))?;
    let mut cfg = TrainConfig::new(&args.data, &args.model, &args.output);
    cfg.mode = if args.full {
        TrainMode::Full
    } else {
        TrainMode::Lora(LoraConfig {
            rank: args.lora_rank,
            alpha: args.lora_alpha.unwrap_or(args.lora_rank as f64),
        })
    };
    cfg.optim = OptimConfig {
        lr: args.lr,
        weight_decay: args.weight_decay,
        max_grad_norm: (args.max_grad_norm > 0.0).then_some(args.max_grad_norm),
        ..OptimConfig::default()
    };
    cfg.batch_size = args.batch_size;
    cfg.grad_accum = args.grad_accum;
    cfg.duration = match (args.steps, args.epochs) {
        (Some(s), _) => Duration::Steps(s),
        (None, e) => Duration::Epochs(e.unwrap_or(1)),
    };
    cfg.images = ImagePrep {
        max_image_size: args.max_image_size,
        keep_raw_resolution: args.keep_raw_resolution,
    };
    cfg.condition_dropout = args.condition_dropout;
    if let Some(text) = &args.dropout_text {
        cfg.dropout_text = text.clone();
    }
    cfg.ema_decay = args.ema;
    cfg.dtype = dtype;
    cfg.device = device;
    cfg.checkpoint_every = args.checkpoint_every;
    cfg.resume = args.resume.clone();
    cfg.seed = args.seed;
    cfg.on_bad_data = if args.skip_bad_data {
        BadData::Skip
    } else {
        BadData::Fail
    };
    Ok(cfg)
}

fn progress_line(r: &StepReport) -> String {
    format!(
        "step {}/{} loss {:.5} grad-norm {:.4} {:.2} steps/s{}",
        r.row.step,
        r.total_steps,
        r.row.loss,
        r.row.grad_norm,
        r.steps_per_s,
        if r.checkpointed { " (checkpoint)" } else { "" }
    )
}

/// Runs `omnigen train`.
pub async fn run(args: TrainArgs, interrupt: Interrupt) -> Result<(), Failure> {
    let cfg = config(&args)?;
    let quiet = args.quiet;
    tokio::task::spawn_blocking(move || train(cfg, quiet, &interrupt))
        .await
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("training thread failed: {e}")))?
}

fn train(cfg: TrainConfig, quiet: bool, interrupt: &Interrupt) -> Result<(), Failure> {
    let mut trainer = Trainer::new(cfg).map_err(|e| Failure::Usage(anyhow::anyhow!("{e}")))?;
    for w in trainer.warnings() {
        eprintln!("warning: skipped {w}");
    }
    eprintln!(
        "training on {} example(s): steps {}..{}",
        trainer.dataset().len(),
        trainer.step() + 1,
        trainer.total_steps()
    );
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(trainer.total_steps() as u64);
        if let Ok(style) = ProgressStyle::with_template("train [{bar:30}] {pos}/{len} {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_position(trainer.step() as u64);
        bar
    });
    let outcome = trainer.run(&mut |r| {
        match &bar {
            Some(bar) => {
                bar.set_position(r.row.step as u64);
                bar.set_message(format!(
                    "loss {:.5} {:.2} steps/s",
                    r.row.loss, r.steps_per_s
                ));
            }
            None => eprintln!("{}", progress_line(r)),
        }
        if interrupt.is_pressed() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    match outcome.map_err(|e| Failure::Runtime(anyhow::anyhow!("{e}")))? {
        RunOutcome::Finished { checkpoint } => {
            println!("{}", checkpoint.display());
            Ok(())
        }
        RunOutcome::Stopped { checkpoint, step } => {
            eprintln!(
                "interrupted after step {step}: resume with --resume {}",
                checkpoint.display()
            );
            Err(Failure::Interrupted)
        }
    }
}
