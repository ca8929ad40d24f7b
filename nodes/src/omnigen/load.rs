//! `LoadOmniGen`: a model folder or Hugging Face repo id → the transformer (`OMNIGEN`) and its `VAE`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use omnigen_engine::{
    BoxFuture, CheckContext, Fingerprint, InputSpec, Inputs, NodeContext, NodeError, NodeOutput,
    NodeSchema, NodeType, Value,
};
use omnigen_model::{DTypeChoice, DeviceChoice, LoadOptions, OmniGen, Vae};

use super::hub::{self, HubSettings, ModelSource};
use super::values::{ModelValue, VaeValue, OMNIGEN, VAE};
use super::{model_error, CATEGORY};

/// Files of a PEFT LoRA adapter folder.
const LORA_FILES: [&str; 2] = ["adapter_config.json", "adapter_model.safetensors"];

/// The `LoadOmniGen` node.
#[derive(Debug, Clone)]
pub struct LoadOmniGen {
    hub: HubSettings,
}

impl LoadOmniGen {
    /// A loader using the Hugging Face settings of the environment (`HF_HOME`, `HF_ENDPOINT`, `HF_HUB_OFFLINE`).
    pub fn new() -> Self {
        Self::with_hub(HubSettings::from_env())
    }

    /// A loader with explicit Hugging Face settings (tests, embedding applications).
    pub fn with_hub(hub: HubSettings) -> Self {
        LoadOmniGen { hub }
    }
}

impl Default for LoadOmniGen {
    fn default() -> Self {
        Self::new()
    }
}

/// Parses the `device` input: `auto`, `cpu`, `cuda:N` (or `cuda` = `cuda:0`), `metal:N`.
fn parse_device(text: &str) -> Result<DeviceChoice, String> {
    DeviceChoice::parse(text.trim())
        .map_err(|e| format!("device '{text}' is not understood ({e}); use auto, cpu or cuda:N"))
}

fn parse_dtype(text: &str) -> Result<DTypeChoice, String> {
    match text {
        "auto" => Ok(DTypeChoice::Auto),
        "f32" => Ok(DTypeChoice::F32),
        "bf16" => Ok(DTypeChoice::BF16),
        other => Err(format!("dtype '{other}' is not one of auto, f32, bf16")),
    }
}

/// Checks a LoRA folder has the adapter files.
fn check_lora(lora: &str) -> Result<(), String> {
    let dir = Path::new(lora);
    if !dir.is_dir() {
        return Err(format!(
            "LoRA folder '{lora}' does not exist; give a PEFT adapter folder ({}) or leave lora empty",
            LORA_FILES.join(", ")
        ));
    }
    let missing: Vec<&str> = LORA_FILES
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "LoRA folder '{lora}' is missing {}",
            missing.join(", ")
        ))
    }
}

/// A cheap summary of a folder's weight files (size and modification time), so a replaced checkpoint
/// reloads on the next run.
fn folder_stamp(folder: &Path) -> String {
    hub::MODEL_FILES
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(folder.join(f)).ok();
            let len = meta.as_ref().map(|m| m.len()).unwrap_or(0);
            let modified = meta
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            format!("{f}:{len}:{modified}")
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn file_size(path: &Path) -> usize {
    std::fs::metadata(path)
        .map(|m| m.len() as usize)
        .unwrap_or(0)
}

impl NodeType for LoadOmniGen {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("LoadOmniGen")
            .display_name("Load OmniGen")
            .category(CATEGORY)
            .description(
                "Loads OmniGen v1 and its VAE from a local folder or a Hugging Face repo id (downloaded into the \
                 Hugging Face cache on first use). The loaded model stays in memory between runs.",
            )
            .required(
                InputSpec::string("model")
                    .default_value(hub::DEFAULT_REPO)
                    .tooltip("A local OmniGen folder, or a Hugging Face repo id such as Shitao/OmniGen-v1."),
            )
            .required(
                InputSpec::combo("dtype", ["auto", "f32", "bf16"])
                    .default_value("auto")
                    .tooltip("auto = bf16 on a GPU, f32 on the CPU."),
            )
            .required(
                InputSpec::string("device")
                    .default_value("auto")
                    .tooltip("auto, cpu or cuda:N."),
            )
            .optional(
                InputSpec::string("lora")
                    .default_value("")
                    .tooltip("Optional PEFT LoRA folder (adapter_config.json + adapter_model.safetensors), merged into the weights."),
            )
            .optional(
                InputSpec::float("lora_scale")
                    .default_value(1.0)
                    .min(-10.0)
                    .max(10.0)
                    .step(0.05)
                    .tooltip("Strength of the LoRA."),
            )
            .named_output(OMNIGEN, "model")
            .named_output(VAE, "vae")
    }

    fn validate(&self, inputs: &Inputs, ctx: &CheckContext) -> Result<(), NodeError> {
        if let Some(device) = inputs.opt_str("device")? {
            parse_device(device).map_err(|e| NodeError::input("device", e))?;
        }
        if let Some(dtype) = inputs.opt_str("dtype")? {
            parse_dtype(dtype).map_err(|e| NodeError::input("dtype", e))?;
        }
        if let Some(lora) = inputs.opt_str("lora")? {
            if !lora.trim().is_empty() {
                check_lora(lora.trim()).map_err(|e| NodeError::input("lora", e))?;
            }
        }
        if let Some(model) = inputs.opt_str("model")? {
            let in_model = |e: &dyn std::fmt::Display| NodeError::input("model", e);
            match hub::classify(model).map_err(|e| in_model(&e))? {
                ModelSource::Folder(folder) => {
                    hub::check_folder(&folder).map_err(|e| in_model(&e))?
                }
                ModelSource::Hub(repo) => {
                    // Offline and not cached can be told before anything runs; otherwise the run downloads.
                    if self.hub.offline && self.hub.cached_folder(&repo).is_none() {
                        return Err(in_model(&hub::missing_model_help(
                            &self.hub,
                            &repo,
                            ctx.node_id.as_str(),
                            "HF_HUB_OFFLINE is set, so nothing is downloaded",
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    fn fingerprint(&self, inputs: &Inputs, _ctx: &CheckContext) -> Result<Fingerprint, NodeError> {
        let Some(model) = inputs.opt_str("model")? else {
            return Ok(Fingerprint::Constant);
        };
        Ok(match hub::classify(model) {
            Ok(ModelSource::Folder(folder)) => Fingerprint::Value(folder_stamp(&folder)),
            _ => Fingerprint::Constant,
        })
    }

    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let model = inputs.get_str("model")?.to_string();
            let dtype =
                parse_dtype(inputs.get_str("dtype")?).map_err(|e| NodeError::input("dtype", e))?;
            let device = parse_device(inputs.get_str("device")?)
                .map_err(|e| NodeError::input("device", e))?;
            let lora = inputs
                .opt_str("lora")?
                .map(str::trim)
                .unwrap_or("")
                .to_string();
            let lora_scale = inputs.opt_float("lora_scale")?.unwrap_or(1.0);
            let hub = self.hub.clone();
            ctx.run_blocking(move |ctx| {
                let folder: PathBuf =
                    match hub::classify(&model).map_err(|e| NodeError::input("model", e))? {
                        ModelSource::Folder(folder) => {
                            hub::check_folder(&folder).map_err(|e| NodeError::input("model", e))?;
                            folder
                        }
                        ModelSource::Hub(repo) => hub
                            .fetch(&repo, ctx.node_id())
                            .map_err(|e| NodeError::input("model", e).with_kind("ModelNotFound"))?,
                    };
                ctx.check_cancelled()?;
                let options = LoadOptions { dtype, device };
                let mut omnigen = OmniGen::load(&folder, &options)
                    .map_err(|e| model_error("loading the model", &e))?;
                if !lora.is_empty() {
                    check_lora(&lora).map_err(|e| NodeError::input("lora", e))?;
                    omnigen
                        .merge_lora(&lora, lora_scale)
                        .map_err(|e| model_error("merging the LoRA", &e))?;
                }
                let vae = Vae::load(&omnigen.files().vae_dir, omnigen.device())
                    .map_err(|e| model_error("loading the VAE", &e))?;
                let device_name = super::device_name(omnigen.device());
                let source = folder.display().to_string();
                let bytes = omnigen.files().weights.iter().map(|w| file_size(w)).sum();
                let model_value = ModelValue {
                    model: omnigen,
                    device_name,
                    source: source.clone(),
                    bytes,
                };
                let vae_value = VaeValue {
                    vae,
                    source,
                    bytes: file_size(
                        &folder
                            .join("vae")
                            .join("diffusion_pytorch_model.safetensors"),
                    ),
                };
                Ok(NodeOutput::new(vec![
                    Value::Opaque(Arc::new(model_value)),
                    Value::Opaque(Arc::new(vae_value)),
                ]))
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_and_dtype_strings_are_checked() {
        assert!(parse_device("auto").is_ok());
        assert!(parse_device("cpu").is_ok());
        assert!(parse_device("cuda:1").is_ok());
        assert!(parse_device("gpu please")
            .unwrap_err()
            .contains("auto, cpu or cuda:N"));
        assert!(parse_dtype("bf16").is_ok());
        assert!(parse_dtype("f16").is_err());
    }

    #[test]
    fn lora_folder_must_hold_the_adapter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_str().expect("utf8");
        assert!(check_lora(path)
            .unwrap_err()
            .contains("adapter_config.json, adapter_model.safetensors"));
        assert!(check_lora("/no/such/lora")
            .unwrap_err()
            .contains("does not exist"));
    }

    #[test]
    fn offline_and_uncached_is_a_validation_error_with_help() {
        let cache = tempfile::tempdir().expect("tempdir");
        let node = LoadOmniGen::with_hub(HubSettings {
            cache_dir: cache.path().to_path_buf(),
            endpoint: None,
            offline: true,
        });
        let ctx = CheckContext::new("4", Default::default());
        let inputs = Inputs::new()
            .with("model", Value::String(hub::DEFAULT_REPO.into()))
            .with("dtype", Value::String("auto".into()))
            .with("device", Value::String("auto".into()));
        let err = node.validate(&inputs, &ctx).unwrap_err().message;
        assert!(err.contains("HF_HUB_OFFLINE is set"), "{err}");
        assert!(err.contains("--set 4.model="), "{err}");
        let bad_device = inputs.with("device", Value::String("tpu".into()));
        assert!(node
            .validate(&bad_device, &ctx)
            .unwrap_err()
            .message
            .contains("device 'tpu'"));
    }
}
