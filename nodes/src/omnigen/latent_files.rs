//! `LoadLatent` and `SaveLatent`: latents as `.safetensors` files holding one f32 tensor named `latent`
//! of shape `[B, 4, h, w]` (scaled latents, as OmniGen samples them). `LoadLatent` also reads ComfyUI's
//! `latent_tensor` name.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use omnigen_engine::{
    BoxFuture, CheckContext, Fingerprint, InputSpec, Inputs, NodeContext, NodeError, NodeOutput,
    NodeSchema, NodeType, Value,
};
use omnigen_model::Latent;
use safetensors::{Dtype, SafeTensors};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::values::{LatentValue, LATENT};
use super::CATEGORY;
use crate::io::counter::write_numbered;
use crate::io::paths::{resolve_in_dir, split_filename_prefix};

/// Tensor name written and read.
pub const TENSOR_NAME: &str = "latent";
/// ComfyUI's name for the same thing, accepted when reading.
const COMFY_TENSOR_NAME: &str = "latent_tensor";

/// The `LoadLatent` node.
#[derive(Debug, Clone, Default)]
pub struct LoadLatent {
    /// Whether absolute paths outside the input directory may be read.
    pub allow_absolute_paths: bool,
}

/// The `SaveLatent` node.
#[derive(Debug, Clone, Default)]
pub struct SaveLatent;

/// A latent file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LatentFileError {
    /// Not a safetensors file.
    #[error("'{path}' is not a readable .safetensors file: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// No `latent` tensor.
    #[error("'{path}' holds no tensor named '{TENSOR_NAME}' (found: {found})")]
    NoLatent {
        /// The file.
        path: String,
        /// Names present.
        found: String,
    },
    /// Wrong dtype or shape.
    #[error("'{path}': tensor '{TENSOR_NAME}' must be f32 of shape [B,4,h,w], found {dtype:?} {shape:?}")]
    BadTensor {
        /// The file.
        path: String,
        /// Its dtype.
        dtype: Dtype,
        /// Its shape.
        shape: Vec<usize>,
    },
}

/// Reads a latent file's tensor (on the CPU).
pub fn read_latent_file(path: &Path) -> Result<Latent, LatentFileError> {
    let shown = path.display().to_string();
    let unreadable = |reason: String| LatentFileError::Unreadable {
        path: shown.clone(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| unreadable(e.to_string()))?;
    let view = file
        .tensor(TENSOR_NAME)
        .or_else(|_| file.tensor(COMFY_TENSOR_NAME))
        .map_err(|_| LatentFileError::NoLatent {
            path: shown.clone(),
            found: file.names().join(", "),
        })?;
    let shape = view.shape().to_vec();
    if view.dtype() != Dtype::F32 || shape.len() != 4 || shape[1] != 4 || shape.contains(&0) {
        return Err(LatentFileError::BadTensor {
            path: shown,
            dtype: view.dtype(),
            shape,
        });
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let tensor =
        Tensor::from_vec(values, shape, &Device::Cpu).map_err(|e| unreadable(e.to_string()))?;
    Latent::new(tensor).map_err(|e| unreadable(e.to_string()))
}

/// A latent as the bytes of a `.safetensors` file.
pub fn latent_file_bytes(latent: &Latent) -> Result<Vec<u8>, NodeError> {
    let tensor = latent
        .tensor()
        .to_device(&Device::Cpu)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| NodeError::new(format!("reading the latent: {e}")))?;
    let data: Vec<u8> = tensor.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(Dtype::F32, latent.tensor().dims().to_vec(), &data)
            .map_err(|e| NodeError::new(format!("writing the latent: {e}")))?;
    safetensors::serialize([(TENSOR_NAME, view)], None)
        .map_err(|e| NodeError::new(format!("writing the latent: {e}")))
}

impl LoadLatent {
    fn resolve(&self, base: &Path, name: &str) -> Result<PathBuf, String> {
        let path =
            resolve_in_dir(base, name, self.allow_absolute_paths).map_err(|e| e.to_string())?;
        if !path.is_file() {
            return Err(format!(
                "latent file '{name}' not found in the input directory ({})",
                base.display()
            ));
        }
        Ok(path)
    }
}

impl NodeType for LoadLatent {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("LoadLatent")
            .display_name("Load Latent")
            .category(CATEGORY)
            .description("Reads a LATENT from a .safetensors file (one f32 tensor 'latent' [B,4,h,w]) in the input directory.")
            .required(InputSpec::string("latent").default_value("latent.safetensors").tooltip("File name, relative to the input directory."))
            .named_output(LATENT, "latent")
    }

    fn validate(&self, inputs: &Inputs, ctx: &CheckContext) -> Result<(), NodeError> {
        if let Some(name) = inputs.opt_str("latent")? {
            self.resolve(&ctx.dirs.input, name)
                .map_err(|e| NodeError::input("latent", e))?;
        }
        Ok(())
    }

    fn fingerprint(&self, inputs: &Inputs, ctx: &CheckContext) -> Result<Fingerprint, NodeError> {
        let Some(name) = inputs.opt_str("latent")? else {
            return Ok(Fingerprint::Constant);
        };
        let path = self
            .resolve(&ctx.dirs.input, name)
            .map_err(|e| NodeError::input("latent", e))?;
        let bytes = std::fs::read(&path)?;
        Ok(Fingerprint::Value(hex::encode(Sha256::digest(&bytes))))
    }

    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let name = inputs.get_str("latent")?;
            let path = self
                .resolve(&ctx.dirs().input, name)
                .map_err(|e| NodeError::input("latent", e))?;
            let latent = read_latent_file(&path).map_err(|e| NodeError::input("latent", e))?;
            Ok(NodeOutput::new(vec![Value::opaque(LatentValue(latent))]))
        })
    }
}

impl NodeType for SaveLatent {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("SaveLatent")
            .display_name("Save Latent")
            .category(CATEGORY)
            .description(
                "Writes a LATENT to <prefix>_NNNNN_.safetensors in the output directory (atomically, never \
                 overwriting), one f32 tensor named 'latent'.",
            )
            .output_node()
            .required(InputSpec::socket("samples", LATENT))
            .required(InputSpec::string("filename_prefix").default_value("latents/omnigen"))
    }

    fn validate(&self, inputs: &Inputs, _ctx: &CheckContext) -> Result<(), NodeError> {
        if let Some(prefix) = inputs.opt_str("filename_prefix")? {
            split_filename_prefix(prefix).map_err(|e| NodeError::input("filename_prefix", e))?;
        }
        Ok(())
    }

    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let latent = inputs.get_opaque::<LatentValue>("samples")?;
            let prefix = inputs.get_str("filename_prefix")?;
            let (subfolder, stem) = split_filename_prefix(prefix)
                .map_err(|e| NodeError::input("filename_prefix", e))?;
            let bytes = latent_file_bytes(&latent.0)?;
            let dir = ctx.dirs().output.join(&subfolder);
            let path = write_numbered(&dir, &stem, "safetensors", &bytes)?;
            let filename = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            Ok(NodeOutput::ui(json!({
                "latents": [{"filename": filename, "subfolder": subfolder.to_string_lossy(), "type": "output"}]
            })))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latent(values: Vec<f32>, shape: &[usize]) -> Latent {
        Latent::new(Tensor::from_vec(values, shape, &Device::Cpu).expect("tensor")).expect("latent")
    }

    #[test]
    fn files_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let values: Vec<f32> = (0..2 * 4 * 3 * 2).map(|v| v as f32 * 0.25 - 3.0).collect();
        let original = latent(values.clone(), &[2, 4, 3, 2]);
        let path = dir.path().join("x.safetensors");
        std::fs::write(&path, latent_file_bytes(&original).expect("bytes")).expect("write");
        let back = read_latent_file(&path).expect("read");
        assert_eq!(back.tensor().dims(), &[2, 4, 3, 2]);
        let got: Vec<f32> = back
            .tensor()
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("values");
        assert_eq!(got, values);
    }

    #[test]
    fn bad_files_are_explained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let garbage = dir.path().join("garbage.safetensors");
        std::fs::write(&garbage, b"not a tensor file").expect("write");
        assert!(matches!(
            read_latent_file(&garbage),
            Err(LatentFileError::Unreadable { .. })
        ));

        let data = vec![0u8; 4 * 3 * 4];
        let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![1, 3, 2, 2], &data)
            .expect("view");
        let wrong = dir.path().join("wrong.safetensors");
        std::fs::write(
            &wrong,
            safetensors::serialize([("latent", view)], None).expect("ser"),
        )
        .expect("write");
        let err = read_latent_file(&wrong).unwrap_err();
        assert!(err.to_string().contains("[1, 3, 2, 2]"), "{err}");

        let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![1, 4, 1, 3], &data[..48])
            .expect("view");
        let other = dir.path().join("other.safetensors");
        std::fs::write(
            &other,
            safetensors::serialize([("samples", view)], None).expect("ser"),
        )
        .expect("write");
        assert!(read_latent_file(&other)
            .unwrap_err()
            .to_string()
            .contains("found: samples"));
    }
}
