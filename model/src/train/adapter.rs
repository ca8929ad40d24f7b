//! Trainable LoRA factors attached to the transformer, and their PEFT files.

use std::path::Path;

use candle_core::{DType, Tensor, Var};

use crate::error::{Error, Result};
use crate::lora::linear_mut;
use crate::nn::LoraBranch;
use crate::transformer::Transformer;

/// The layers the official trainer adapts (`target_modules=["qkv_proj", "o_proj"]`).
pub const LORA_TARGETS: [&str; 2] = ["self_attn.qkv_proj", "self_attn.o_proj"];

/// LoRA hyper-parameters (`LoraConfig(r, lora_alpha)`; the official trainer uses alpha = r).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoraConfig {
    /// Rank `r`.
    pub rank: usize,
    /// `lora_alpha`; the branch is scaled by alpha / r.
    pub alpha: f64,
}

impl LoraConfig {
    /// Rank `r` with alpha = r, as `train.py --use_lora --lora_rank r`.
    pub fn official(rank: usize) -> Self {
        Self {
            rank,
            alpha: rank as f64,
        }
    }
}

/// The trainable factors, one `A` `[r, in]` and `B` `[out, r]` per adapted layer, named like PEFT's modules
/// (`llm.layers.3.self_attn.qkv_proj`).
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    config: LoraConfig,
    modules: Vec<(String, Var, Var)>,
}

impl LoraAdapter {
    /// Attaches LoRA branches to every `qkv_proj` and `o_proj` of `tr`, initialised as PEFT's
    /// `init_lora_weights="gaussian"`: `A ~ N(0, (1/r)²)` from the crate's generator with `seed`, `B = 0`.
    pub fn attach(tr: &mut Transformer, config: LoraConfig, seed: u64) -> Result<Self> {
        if config.rank == 0 {
            return Err(Error::Input("LoRA rank must be at least 1".into()));
        }
        let device = tr.device().clone();
        let dtype = tr.dtype();
        let n_layers = tr.config().num_hidden_layers;
        let mut modules = Vec::new();
        for layer in 0..n_layers {
            for (k, target) in LORA_TARGETS.iter().enumerate() {
                let name = format!("llm.layers.{layer}.{target}");
                let linear = linear_mut(tr, &name)
                    .ok_or_else(|| Error::Input(format!("no layer `{name}` to adapt")))?;
                let (out_dim, in_dim) = linear.dims()?;
                let stream = seed.wrapping_add((layer * LORA_TARGETS.len() + k) as u64);
                let a = (crate::noise::gaussian(stream, &[config.rank, in_dim], &device)?
                    / config.rank as f64)?
                    .to_dtype(dtype)?;
                let a = Var::from_tensor(&a)?;
                let b = Var::zeros((out_dim, config.rank), dtype, &device)?;
                linear.set_lora(Some(LoraBranch {
                    a: a.clone(),
                    b: b.clone(),
                    scaling: config.alpha / config.rank as f64,
                }));
                modules.push((name, a, b));
            }
        }
        Ok(Self { config, modules })
    }

    /// The configuration.
    pub fn config(&self) -> LoraConfig {
        self.config
    }

    /// `(module, A, B)` for every adapted layer, in layer order (`qkv_proj` before `o_proj`).
    pub fn modules(&self) -> &[(String, Var, Var)] {
        &self.modules
    }

    /// Every trainable variable (`A` then `B` of each module).
    pub fn vars(&self) -> Vec<Var> {
        self.modules
            .iter()
            .flat_map(|(_, a, b)| [a.clone(), b.clone()])
            .collect()
    }

    /// Overwrites the factors of `module` (e.g. to resume, or to inject a reference initialisation).
    pub fn set(&self, module: &str, a: &Tensor, b: &Tensor) -> Result<()> {
        let (_, va, vb) = self
            .modules
            .iter()
            .find(|(n, _, _)| n == module)
            .ok_or_else(|| Error::Input(format!("LoRA has no module `{module}`")))?;
        for (var, t, what) in [(va, a, "lora_A"), (vb, b, "lora_B")] {
            if var.dims() != t.dims() {
                return Err(Error::Input(format!(
                    "{module}.{what}: expected shape {:?}, got {:?}",
                    var.dims(),
                    t.dims()
                )));
            }
            var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
        }
        Ok(())
    }

    /// Writes a PEFT adapter folder (`adapter_config.json` + `adapter_model.safetensors`, f32 factors named
    /// `base_model.model.<module>.lora_{A,B}.weight`) that `merge_lora` and PEFT load. Files are written to a
    /// temporary name and renamed.
    pub fn save_peft(&self, dir: &Path) -> Result<()> {
        let factors: Vec<(String, Tensor, Tensor)> = self
            .modules
            .iter()
            .map(|(n, a, b)| (n.clone(), a.as_tensor().clone(), b.as_tensor().clone()))
            .collect();
        write_peft(dir, self.config, &factors)
    }
}

/// Writes a PEFT adapter folder for `config` from `(module, A, B)` factors (`adapter_config.json` + `adapter_model.safetensors`, f32 factors named
/// `base_model.model.<module>.lora_{A,B}.weight`) that `merge_lora` and PEFT load. Files are written to a
/// temporary name and renamed.
pub fn write_peft(
    dir: &Path,
    config: LoraConfig,
    factors: &[(String, Tensor, Tensor)],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tensors = Vec::new();
    for (name, a, b) in factors {
        for (t, which) in [(a, "lora_A"), (b, "lora_B")] {
            let key = format!("base_model.model.{name}.{which}.weight");
            tensors.push((
                key,
                t.to_dtype(DType::F32)?
                    .to_device(&candle_core::Device::Cpu)?,
            ));
        }
    }
    let weights = dir.join("adapter_model.safetensors");
    let tmp = dir.join(".adapter_model.safetensors.tmp");
    candle_core::safetensors::save(
        &tensors
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>(),
        &tmp,
    )?;
    std::fs::rename(&tmp, &weights).map_err(|e| Error::io(&weights, e))?;
    // PEFT writes an integer alpha; keep that spelling when it is one.
    let alpha = if config.alpha.fract() == 0.0 && config.alpha.abs() < 1e15 {
        serde_json::json!(config.alpha as i64)
    } else {
        serde_json::json!(config.alpha)
    };
    let config = serde_json::json!({
        "peft_type": "LORA",
        "task_type": null,
        "r": config.rank,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": false,
        "init_lora_weights": "gaussian",
        "target_modules": ["qkv_proj", "o_proj"],
        "use_rslora": false,
        "use_dora": false,
        "rank_pattern": {},
        "alpha_pattern": {},
        "modules_to_save": null,
        "base_model_name_or_path": null,
        "revision": null,
        "inference_mode": true,
    });
    let cfg_path = dir.join("adapter_config.json");
    let tmp = dir.join(".adapter_config.json.tmp");
    let text = serde_json::to_string_pretty(&config).map_err(|e| Error::Json {
        path: cfg_path.clone(),
        message: e.to_string(),
    })?;
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    Ok(())
}
