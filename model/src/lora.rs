//! Merging a PEFT LoRA adapter (`adapter_config.json` + `adapter_model.safetensors`) into loaded weights:
//! `W ← W + scale · (alpha / r) · B A` (spec §9.2).

use std::path::Path;

use candle_core::{DType, Device};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::nn::Linear;
use crate::transformer::Transformer;
use crate::weights::SafetensorsFile;

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

/// The linear layer of `transformer` named `module` (official naming, e.g. `llm.layers.3.self_attn.qkv_proj`).
fn linear_mut<'a>(tr: &'a mut Transformer, module: &str) -> Option<&'a mut Linear> {
    let rest = module.strip_prefix("llm.layers.")?;
    let (idx, name) = rest.split_once('.')?;
    let layer = tr.llm.layers.get_mut(idx.parse::<usize>().ok()?)?;
    Some(match name {
        "self_attn.qkv_proj" => &mut layer.self_attn.qkv_proj,
        "self_attn.o_proj" => &mut layer.self_attn.o_proj,
        "mlp.gate_up_proj" => &mut layer.mlp.gate_up_proj,
        "mlp.down_proj" => &mut layer.mlp.down_proj,
        _ => return None,
    })
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

    let file = SafetensorsFile::open(&dir.join("adapter_model.safetensors"))?;
    let mut modules: Vec<String> = file
        .names()
        .filter_map(|n| n.strip_suffix(".lora_A.weight").map(str::to_string))
        .collect();
    modules.sort();
    if modules.is_empty() {
        return Err(Error::Safetensors {
            path: file.path().to_path_buf(),
            message: "no `*.lora_A.weight` tensors".into(),
        });
    }
    let device = tr.device().clone();
    for key in &modules {
        let module = key.strip_prefix("base_model.model.").unwrap_or(key);
        let a_name = format!("{key}.lora_A.weight");
        let b_name = format!("{key}.lora_B.weight");
        let load = |n: &str| -> Result<candle_core::Tensor> {
            file.load(n, DType::F32, &Device::Cpu)?
                .ok_or_else(|| Error::MissingTensor {
                    name: n.to_string(),
                    expected: vec![],
                    source_desc: format!("`{}`", file.path().display()),
                })
        };
        let (a, b) = (load(&a_name)?, load(&b_name)?);
        let linear = linear_mut(tr, module).ok_or_else(|| Error::Input(format!(
            "LoRA targets `{module}`, which is not a mergeable linear layer of OmniGen's transformer"
        )))?;
        let (out_dim, in_dim) = linear.weight().dims2()?;
        let expect_a = [cfg.r, in_dim];
        let expect_b = [out_dim, cfg.r];
        for (name, t, expected) in [(&a_name, &a, &expect_a), (&b_name, &b, &expect_b)] {
            if t.dims() != expected {
                return Err(Error::ShapeMismatch {
                    name: name.clone(),
                    expected: expected.to_vec(),
                    found: t.dims().to_vec(),
                });
            }
        }
        let delta = (b.matmul(&a)? * scaling)?.to_device(&device)?;
        linear.add_to_weight(&delta)?;
    }
    Ok(modules.len())
}
