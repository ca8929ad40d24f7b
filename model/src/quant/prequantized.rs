//! Pre-quantized model folders (`omnigen quantize`): the official layout with the decoder's linear
//! weights moved, already quantized, into `quantized.gguf`, and every other tensor left in
//! `model.safetensors`. Loading one reads each quantized layer straight from the file, so the full-precision
//! weights are never in memory; writing one streams the source checkpoint a layer at a time.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::quantized::{gguf_file, QTensor};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use super::{is_quantized_weight, LinearSource, WeightFormat, TOKEN_EMBEDDING};
use crate::config::OmniGenConfig;
use crate::error::{Error, Result};
use crate::files::ModelFiles;
use crate::transformer::Transformer;
use crate::vae::{Vae, VAE_CONFIG_FILE};
use crate::weights::Layout;

/// The file of a pre-quantized folder that holds the quantized decoder weights.
pub const PREQUANTIZED_FILE: &str = "quantized.gguf";

/// Metadata key naming the format the file was written in.
const FORMAT_KEY: &str = "omnigen.weight_format";

/// The quantized decoder weights of a pre-quantized folder, read one tensor at a time.
pub struct StoredLinears {
    path: PathBuf,
    content: gguf_file::Content,
    file: Mutex<BufReader<File>>,
}

impl std::fmt::Debug for StoredLinears {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredLinears")
            .field("path", &self.path)
            .finish()
    }
}

impl StoredLinears {
    /// Opens `path` and reads its header (a truncated or foreign file is refused here).
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut reader = BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader).map_err(|e| corrupt(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            content,
            file: Mutex::new(reader),
        })
    }

    /// True when the file stores `name`.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// Reads tensor `name`, checking it has `shape`, onto `device`.
    pub(crate) fn get(&self, name: &str, shape: &[usize], device: &Device) -> Result<QTensor> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let tensor = self
            .content
            .tensor(&mut *file, name, device)
            .map_err(|e| corrupt(&self.path, e))?;
        if tensor.shape().dims() != shape {
            return Err(Error::Safetensors {
                path: self.path.clone(),
                message: format!(
                    "tensor `{name}` has shape {:?}, the config needs {shape:?}",
                    tensor.shape().dims()
                ),
            });
        }
        Ok(tensor)
    }
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Safetensors {
        path: path.to_path_buf(),
        message: format!("not a readable quantized weight file: {e}"),
    }
}

/// What [`write_prequantized`] wrote.
#[derive(Debug, Clone)]
pub struct PrequantizedReport {
    /// Decoder linears stored quantized (the token embedding is stored quantized too, not counted).
    pub quantized_layers: usize,
    /// Bytes of `quantized.gguf`.
    pub quantized_bytes: u64,
    /// Bytes of the new `model.safetensors` (the tensors kept in full precision).
    pub other_bytes: u64,
}

/// Writes a pre-quantized copy of the model folder `src` (either layout) into the new folder `out`
/// (official layout: config, tokenizer, `vae/`, `model.safetensors` without the decoder linears, and
/// [`PREQUANTIZED_FILE`]). The folder appears complete or not at all.
pub fn write_prequantized(
    src: &Path,
    out: &Path,
    format: WeightFormat,
) -> Result<PrequantizedReport> {
    if format == WeightFormat::Full {
        return Err(Error::Input(
            "choose a quantized format (q8 or q4) to write a pre-quantized model".into(),
        ));
    }
    if out.exists() {
        return Err(Error::Input(format!(
            "'{}' already exists; give a new folder for the quantized model",
            out.display()
        )));
    }
    let files = ModelFiles::discover_with_vae(src)?;
    if files.quantized.is_some() {
        return Err(Error::Input(format!(
            "'{}' is already pre-quantized",
            src.display()
        )));
    }
    let cfg = OmniGenConfig::from_file(&files.config)?;
    let layout = if files.diffusers {
        Layout::Diffusers
    } else {
        Layout::Official
    };
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".omnigen-quantize-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io(&parent, e))?;
    let dir = staging.path();

    // Build the transformer through a builder that keeps what loading reads, except the decoder linears
    // (those are quantized as they load and never kept in full precision).
    let kept = Arc::new(Mutex::new(HashMap::new()));
    let source = crate::weights::open(&files.weights, layout, DType::F32, &Device::Cpu)?;
    let recorder = Recorder {
        inner: source,
        kept: Arc::clone(&kept),
    };
    let vb = VarBuilder::from_backend(Box::new(recorder), DType::F32, Device::Cpu);
    let mut transformer = Transformer::new(&cfg, &vb, LinearSource::Quantize(format))?;
    drop(vb);
    let mut kept = std::mem::take(&mut *kept.lock().unwrap_or_else(|p| p.into_inner()));
    let mut quantized = Vec::new();
    for (name, linear) in transformer.decoder_linears_mut() {
        let name = format!("{name}.weight");
        match linear.qtensor() {
            Some(q) => quantized.push((name, q)),
            // A layer no block size fits stays in full precision, with the other tensors.
            None => {
                kept.insert(name, linear.weight()?);
            }
        }
    }
    match transformer.token_embedding().qtensor() {
        Some(q) => quantized.push((TOKEN_EMBEDDING.to_string(), q)),
        None => {
            return Err(Error::Input(format!(
                "the token embedding's width {} fits no block size; cannot quantize this model",
                transformer.config().hidden_size
            )))
        }
    }
    let format_name = gguf_file::Value::String(format.to_string());
    let refs: Vec<(&str, &QTensor)> = quantized
        .iter()
        .map(|(n, q)| (n.as_str(), q.as_ref()))
        .collect();
    let gguf_path = dir.join(PREQUANTIZED_FILE);
    let mut gguf =
        std::io::BufWriter::new(File::create(&gguf_path).map_err(|e| Error::io(&gguf_path, e))?);
    gguf_file::write(&mut gguf, &[(FORMAT_KEY, &format_name)], &refs)
        .map_err(|e| Error::io(&gguf_path, std::io::Error::other(e.to_string())))?;
    drop(gguf);
    let weights_path = dir.join("model.safetensors");
    candle_core::safetensors::save(&kept, &weights_path)
        .map_err(|e| Error::io(&weights_path, std::io::Error::other(e.to_string())))?;

    copy(&files.config, &dir.join("config.json"))?;
    copy_tokenizer(&files.tokenizer, dir)?;
    let vae_out = dir.join("vae");
    std::fs::create_dir(&vae_out).map_err(|e| Error::io(&vae_out, e))?;
    copy(
        &files.vae_dir.join(VAE_CONFIG_FILE),
        &vae_out.join(VAE_CONFIG_FILE),
    )?;
    let vae_weights = Vae::weights_file(&files.vae_dir).ok_or_else(|| Error::Layout {
        path: files.vae_dir.clone(),
        missing: vec![crate::vae::VAE_WEIGHT_FILES[0].to_string()],
    })?;
    let vae_name = vae_weights
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_default();
    copy(&vae_weights, &vae_out.join(vae_name))?;

    let report = PrequantizedReport {
        quantized_layers: quantized.len() - 1,
        quantized_bytes: file_len(&gguf_path),
        other_bytes: file_len(&weights_path),
    };
    let staged = staging.keep();
    std::fs::rename(&staged, out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staged);
        Error::io(out, e)
    })?;
    Ok(report)
}

/// `tokenizer.json` and the tokenizer files beside it.
fn copy_tokenizer(tokenizer: &Path, dir: &Path) -> Result<()> {
    copy(tokenizer, &dir.join("tokenizer.json"))?;
    let Some(folder) = tokenizer.parent() else {
        return Ok(());
    };
    for name in ["tokenizer_config.json", "special_tokens_map.json"] {
        let from = folder.join(name);
        if from.is_file() {
            copy(&from, &dir.join(name))?;
        }
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).map_err(|e| Error::io(from, e))?;
    Ok(())
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// A weight backend that passes reads through to the checkpoint and keeps every tensor read except the
/// ones a quantized format stores quantized (tensors share storage with the model, so keeping them costs nothing extra).
struct Recorder {
    inner: VarBuilder<'static>,
    kept: Arc<Mutex<HashMap<String, Tensor>>>,
}

impl Recorder {
    fn keep(&self, name: &str, tensor: &Tensor) {
        if !is_quantized_weight(name) {
            self.kept
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.to_string(), tensor.clone());
        }
    }
}

impl SimpleBackend for Recorder {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        hints: candle_nn::Init,
        dtype: DType,
        _device: &Device,
    ) -> candle_core::Result<Tensor> {
        let tensor = self.inner.get_with_hints_dtype(shape, name, hints, dtype)?;
        self.keep(name, &tensor);
        Ok(tensor)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        _device: &Device,
    ) -> candle_core::Result<Tensor> {
        let tensor = self.inner.get_unchecked_dtype(name, dtype)?;
        self.keep(name, &tensor);
        Ok(tensor)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.contains_tensor(name)
    }
}
