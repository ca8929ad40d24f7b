//! Merging a PEFT LoRA adapter (`adapter_config.json` + `adapter_model.safetensors`) into loaded weights:
//! `W ← W + scale · (alpha / r) · B A` (spec §9.2).

use std::path::Path;

use candle_core::{DType, Device};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::transformer::Transformer;
use crate::weights::Checkpoint;

#[derive(Debug, Deserialize)]
struct AdapterConfig {
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    fan_in_fan_out: bool,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    rank_pattern: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    alpha_pattern: serde_json::Map<String, serde_json::Value>,
}

/// Merges the adapter in `dir` into `tr` with an extra user `scale` (1.0 = as trained). Returns the number
/// of merged layers.
pub fn merge_lora(tr: &mut Transformer, dir: &Path, scale: f64) -> Result<usize> {
    let cfg_path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    let cfg: AdapterConfig = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: cfg_path.clone(),
        message: e.to_string(),
    })?;
    let unsupported = |what: &str| Error::Json {
        path: cfg_path.clone(),
        message: format!("{what} is not supported for merging"),
    };
    if cfg.use_dora {
        return Err(unsupported("use_dora"));
    }
    if cfg.fan_in_fan_out {
        return Err(unsupported("fan_in_fan_out"));
    }
    if !cfg.rank_pattern.is_empty() || !cfg.alpha_pattern.is_empty() {
        return Err(unsupported("a per-module rank_pattern/alpha_pattern"));
    }
    if cfg.r == 0 {
        return Err(unsupported("r = 0"));
    }
    let scaling = if cfg.use_rslora {
        cfg.lora_alpha / (cfg.r as f64).sqrt()
    } else {
        cfg.lora_alpha / cfg.r as f64
    } * scale;

    let path = dir.join("adapter_model.safetensors");
    let adapter = Checkpoint::open(std::slice::from_ref(&path), &[])?;
    let mut modules: Vec<String> = adapter
        .names()
        .iter()
        .filter_map(|n| n.strip_suffix(".lora_A.weight").map(str::to_string))
        .collect();
    modules.sort();
    if modules.is_empty() {
        return Err(Error::Safetensors {
            path,
            message: "no `*.lora_A.weight` tensors".into(),
        });
    }
    // The factors are read in f32 on the CPU; only the product moves to the model's device.
    let vb = adapter.into_var_builder(DType::F32, &Device::Cpu);
    let device = tr.device().clone();
    for key in &modules {
        let module = key.strip_prefix("base_model.model.").unwrap_or(key);
        let linear = tr
            .decoder_linears_mut()
            .find_map(|(name, linear)| (name == module).then_some(linear))
            .ok_or_else(|| Error::Input(format!(
                "LoRA targets `{module}`, which is not a mergeable linear layer of OmniGen's transformer"
            )))?;
        let (out_dim, in_dim) = linear.dims()?;
        let vb = vb.pp(key);
        let a = vb.get((cfg.r, in_dim), "lora_A.weight")?;
        let b = vb.get((out_dim, cfg.r), "lora_B.weight")?;
        let delta = (b.matmul(&a)? * scaling)?.to_device(&device)?;
        linear.add_to_weight(&delta)?;
    }
    Ok(modules.len())
}
