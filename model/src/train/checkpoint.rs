//! What a checkpoint folder holds besides the weights: `optimizer.safetensors` (AdamW moments, EMA
//! copies) and `trainer_state.json` (step, seed and the settings a resume must keep).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::trainer::{TrainConfig, TrainMode};
use crate::error::{Error, Result};

/// The optimizer state file of a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The trainer state file of a checkpoint.
pub const STATE_FILE: &str = "trainer_state.json";

/// `trainer_state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Format version (1).
    pub version: u32,
    /// Optimizer steps done.
    pub step: usize,
    /// AdamW's step count (bias correction).
    pub optimizer_steps: usize,
    /// Steps the run was asked for.
    pub total_steps: usize,
    /// `"lora"` or `"full"`.
    pub mode: String,
    /// LoRA rank and alpha (0 for full).
    pub lora_rank: usize,
    /// LoRA alpha.
    pub lora_alpha: f64,
    /// The run seed: with `step` it is the whole random state (draws are counter-based).
    pub seed: u64,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per step.
    pub grad_accum: usize,
    /// Seconds trained so far.
    pub elapsed_s: f64,
}

impl TrainerState {
    pub(crate) fn of(
        cfg: &TrainConfig,
        step: usize,
        optimizer_steps: usize,
        total: usize,
        elapsed_s: f64,
    ) -> Self {
        let (mode, lora_rank, lora_alpha) = match cfg.mode {
            TrainMode::Lora(l) => ("lora", l.rank, l.alpha),
            TrainMode::Full => ("full", 0, 0.0),
        };
        Self {
            version: 1,
            step,
            optimizer_steps,
            total_steps: total,
            mode: mode.into(),
            lora_rank,
            lora_alpha,
            seed: cfg.seed,
            batch_size: cfg.batch_size,
            grad_accum: cfg.grad_accum,
            elapsed_s,
        }
    }

    /// Reads `dir/trainer_state.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::Json {
            path,
            message: e.to_string(),
        })
    }

    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Json {
            path: path.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
    }

    /// Refuses a resume whose settings would not continue the same run (mode, rank, seed, batching).
    pub(crate) fn check_compatible(&self, cfg: &TrainConfig) -> Result<()> {
        let now = Self::of(cfg, 0, 0, 0, 0.0);
        let mut differ = Vec::new();
        if now.mode != self.mode {
            differ.push(format!("mode {} (checkpoint: {})", now.mode, self.mode));
        }
        if (now.lora_rank, now.lora_alpha) != (self.lora_rank, self.lora_alpha) {
            differ.push(format!(
                "LoRA rank/alpha {}/{} (checkpoint: {}/{})",
                now.lora_rank, now.lora_alpha, self.lora_rank, self.lora_alpha
            ));
        }
        if now.seed != self.seed {
            differ.push(format!("seed {} (checkpoint: {})", now.seed, self.seed));
        }
        if (now.batch_size, now.grad_accum) != (self.batch_size, self.grad_accum) {
            differ.push(format!(
                "batch size/accumulation {}/{} (checkpoint: {}/{})",
                now.batch_size, now.grad_accum, self.batch_size, self.grad_accum
            ));
        }
        if differ.is_empty() {
            Ok(())
        } else {
            Err(Error::Input(format!(
                "cannot resume from this checkpoint with different settings: {}",
                differ.join("; ")
            )))
        }
    }
}

pub(crate) fn write_optimizer(dir: &Path, tensors: HashMap<String, Tensor>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let cpu: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    candle_core::safetensors::save(&cpu, dir.join(OPTIMIZER_FILE))?;
    Ok(())
}

pub(crate) fn read_optimizer(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let path = dir.join(OPTIMIZER_FILE);
    candle_core::safetensors::load(&path, device)
        .map_err(|e| Error::Input(format!("cannot read `{}`: {e}", path.display())))
}
