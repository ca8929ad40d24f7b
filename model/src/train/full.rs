//! Full fine-tuning: the transformer loaded with every parameter as a candle `Var`, and saved back in the
//! official layout (`config.json`, `model.safetensors`, the tokenizer files, `vae/`) that the loader reads.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::config::OmniGenConfig;
use crate::error::{Error, Result};
use crate::files::ModelFiles;
use crate::quant::{LinearSource, WeightFormat};
use crate::transformer::Transformer;
use crate::weights::Layout;

/// Tensors that are buffers in the official model (`register_buffer`), never trained.
const FROZEN: [&str; 1] = ["pos_embed"];

/// A transformer whose parameters are `Var`s, with every tensor's official name.
pub struct FullModel {
    /// The transformer (its weights share storage with the vars).
    pub transformer: Transformer,
    /// Trainable parameters, in load order.
    pub params: Vec<(String, Var)>,
    /// Buffers read from the checkpoint (saved back unchanged).
    pub frozen: Vec<(String, Tensor)>,
}

type Recorded = Arc<Mutex<(Vec<(String, Var)>, Vec<(String, Tensor)>)>>;

/// A weight backend that turns every tensor read into a `Var` (except the buffers) and records it.
struct VarRecorder {
    inner: VarBuilder<'static>,
    seen: Recorded,
}

impl VarRecorder {
    fn record(&self, name: &str, t: Tensor) -> candle_core::Result<Tensor> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if FROZEN.contains(&name) {
            seen.1.push((name.to_string(), t.clone()));
            return Ok(t);
        }
        let var = Var::from_tensor(&t)?;
        let tensor = var.as_tensor().clone();
        seen.0.push((name.to_string(), var));
        Ok(tensor)
    }
}

impl SimpleBackend for VarRecorder {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        hints: candle_nn::Init,
        dtype: DType,
        _: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self.inner.get_with_hints_dtype(shape, name, hints, dtype)?;
        self.record(name, t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, _: &Device) -> candle_core::Result<Tensor> {
        let t = self.inner.get_unchecked_dtype(name, dtype)?;
        self.record(name, t)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.contains_tensor(name)
    }
}

impl FullModel {
    /// Loads the transformer of `files` (official or diffusers layout, full precision) as trainable vars.
    pub fn load(files: &ModelFiles, dtype: DType, device: &Device) -> Result<Self> {
        if files.quantized.is_some() {
            return Err(Error::Input(
                "a pre-quantized model folder cannot be fine-tuned; use the full-precision folder"
                    .into(),
            ));
        }
        let cfg = OmniGenConfig::from_file(&files.config)?;
        let layout = if files.diffusers {
            Layout::Diffusers
        } else {
            Layout::Official
        };
        let inner = crate::weights::open(&files.weights, layout, dtype, device)?;
        let seen: Recorded = Arc::default();
        let backend = VarRecorder {
            inner,
            seen: seen.clone(),
        };
        let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
        let transformer = Transformer::new(&cfg, &vb, LinearSource::Quantize(WeightFormat::Full))?;
        drop(vb);
        let (params, frozen) = std::mem::take(&mut *seen.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(Self {
            transformer,
            params,
            frozen,
        })
    }
}

/// Writes an official-layout model folder into `dir`: `model.safetensors` holding `tensors` (official
/// names), and `config.json`, the tokenizer files and `vae/` copied from `source`.
pub fn save_model_folder(
    dir: &Path,
    source: &ModelFiles,
    tensors: HashMap<String, Tensor>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let cpu: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    candle_core::safetensors::save(&cpu, dir.join("model.safetensors"))?;
    copy_file(&source.config, &dir.join("config.json"))?;
    let tok_dir = source.tokenizer.parent().unwrap_or(Path::new("."));
    for name in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        let from = tok_dir.join(name);
        if from.is_file() {
            copy_file(&from, &dir.join(name))?;
        }
    }
    if source.vae_dir.is_dir() {
        copy_tree(&source.vae_dir, &dir.join("vae"))?;
    }
    Ok(())
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).map_err(|e| Error::io(from, e))?;
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(entry.file_name()))?;
        } else {
            copy_file(&path, &to.join(entry.file_name()))?;
        }
    }
    Ok(())
}
