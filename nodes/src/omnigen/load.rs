//! `LoadOmniGen`: a model folder or Hugging Face repo id → the transformer (`OMNIGEN`) and its `VAE`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use omnigen_engine::{
    BoxFuture, CheckContext, Fingerprint, InputSpec, Inputs, NodeContext, NodeError, NodeOutput,
    NodeSchema, NodeType, Value,
};
use omnigen_model::{DeviceChoice, LoadOptions, OmniGen, Vae, OFFICIAL_FILES};

use super::hub::{self, HubSettings, ModelSource};
use super::values::{ModelValue, VaeValue, OMNIGEN, VAE};
use super::{model_error, CATEGORY};

/// Files of a PEFT LoRA adapter folder.
const LORA_FILES: [&str; 2] = ["adapter_config.json", "adapter_model.safetensors"];

/// The `LoadOmniGen` node.
#[derive(Debug, Clone)]
pub struct LoadOmniGen {
    hub: HubSettings,
    /// What `device: auto` means (a worker's `--device`); `Auto` picks as the model does.
    auto_device: DeviceChoice,
}

impl LoadOmniGen {
    /// A loader using the Hugging Face settings of the environment (`HF_HOME`, `HF_ENDPOINT`, `HF_HUB_OFFLINE`).
    pub fn new() -> Self {
        Self::with_hub(HubSettings::from_env())
    }

    /// A loader with explicit Hugging Face settings (tests, embedding applications).
    pub fn with_hub(hub: HubSettings) -> Self {
        LoadOmniGen {
            hub,
            auto_device: DeviceChoice::Auto,
        }
    }

    /// This loader with `device: auto` meaning `device` (`omnigen worker --device`); a graph naming
    /// a device keeps it.
    pub fn with_auto_device(mut self, device: DeviceChoice) -> Self {
        self.auto_device = device;
        self
    }
}

impl Default for LoadOmniGen {
    fn default() -> Self {
        Self::new()
    }
}

/// `LoadOmniGen`'s settings, parsed and checked once by the same code for `validate` (the constants; a
/// linked setting keeps the model's default there) and `run` (everything). The dtype and device rules
/// are the model's ([`LoadOptions::set_precision`], [`DeviceChoice::parse`], [`LoadOptions::validate`]).
#[derive(Debug, Clone)]
struct LoadArgs {
    /// Where the model comes from; `None` while `model` is linked.
    source: Option<ModelSource>,
    options: LoadOptions,
    /// A checked LoRA folder, if one is given.
    lora: Option<PathBuf>,
    lora_scale: f64,
}

impl LoadArgs {
    fn parse(inputs: &Inputs) -> Result<Self, NodeError> {
        let mut options = LoadOptions::default();
        if let Some(text) = inputs.opt_str("dtype")? {
            options
                .set_precision(text)
                .map_err(|e| NodeError::input("dtype", e))?;
        }
        if let Some(text) = inputs.opt_str("device")? {
            options.device = DeviceChoice::parse(text).map_err(|e| {
                NodeError::input(
                    "device",
                    format!("device '{text}' is not understood ({e}); use auto, cpu or cuda:N"),
                )
            })?;
        }
        if let Some(on) = inputs.opt_bool("offload_model")? {
            options.offload_model = on;
        }
        options
            .validate()
            .map_err(|e| NodeError::input("dtype", e))?;
        let lora = match inputs.opt_str("lora")?.map(str::trim) {
            Some(lora) if !lora.is_empty() => {
                check_lora(lora).map_err(|e| NodeError::input("lora", e))?;
                Some(PathBuf::from(lora))
            }
            _ => None,
        };
        let source = inputs
            .opt_str("model")?
            .map(|model| hub::classify(model).map_err(|e| NodeError::input("model", e)))
            .transpose()?;
        if let Some(ModelSource::Folder(folder)) = &source {
            hub::check_folder(folder).map_err(|e| NodeError::input("model", e))?;
        }
        Ok(Self {
            source,
            options,
            lora,
            lora_scale: inputs.opt_float("lora_scale")?.unwrap_or(1.0),
        })
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
    OFFICIAL_FILES
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
                InputSpec::combo("dtype", ["auto", "f32", "bf16", "q8", "q4"])
                    .default_value("auto")
                    .tooltip(
                        "auto = bf16 on a GPU, f32 on the CPU. q8 / q4 store the transformer's \
                         layers in 8 / 4 bits (about 4.1 / 2.3 GB instead of 7.6 GB), computing in \
                         the auto dtype.",
                    ),
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
            .optional(
                InputSpec::boolean("offload_model")
                    .default_value(false)
                    .tooltip(
                        "Keep the transformer's layers in host memory and copy each to the GPU just \
                         before it runs (the next one copied while the current one computes): the GPU \
                         holds two layers instead of all 32. Same pictures, slower steps.",
                    ),
            )
            .named_output(OMNIGEN, "model")
            .named_output(VAE, "vae")
    }

    fn validate(&self, inputs: &Inputs, ctx: &CheckContext) -> Result<(), NodeError> {
        let args = LoadArgs::parse(inputs)?;
        // Offline and not cached can be told before anything runs; otherwise the run downloads.
        if let Some(ModelSource::Hub(repo)) = &args.source {
            if self.hub.offline && self.hub.cached_folder(repo).is_none() {
                return Err(NodeError::input(
                    "model",
                    hub::missing_model_help(
                        &self.hub,
                        repo,
                        ctx.node_id.as_str(),
                        "HF_HUB_OFFLINE is set, so nothing is downloaded",
                    ),
                ));
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
            let mut args = LoadArgs::parse(&inputs)?;
            if args.options.device == DeviceChoice::Auto {
                args.options.device = self.auto_device;
            }
            let source = args
                .source
                .ok_or_else(|| NodeError::input("model", "missing"))?;
            let hub = self.hub.clone();
            ctx.run_blocking(move |ctx| {
                let folder: PathBuf = match source {
                    ModelSource::Folder(folder) => folder,
                    ModelSource::Hub(repo) => hub
                        .fetch(&repo, ctx.node_id())
                        .map_err(|e| NodeError::input("model", e).with_kind("ModelNotFound"))?,
                };
                ctx.check_cancelled()?;
                let mut omnigen = OmniGen::load(&folder, &args.options)
                    .map_err(|e| model_error("loading the model", &e))?;
                if let Some(lora) = &args.lora {
                    omnigen
                        .merge_lora(lora, args.lora_scale)
                        .map_err(|e| model_error("merging the LoRA", &e))?;
                }
                let vae = Vae::load(&omnigen.files().vae_dir, omnigen.device())
                    .map_err(|e| model_error("loading the VAE", &e))?;
                let device_name = super::device_name(omnigen.device());
                let source = folder.display().to_string();
                let bytes = omnigen.files().weights.iter().map(|w| file_size(w)).sum();
                let vae_bytes = omnigen.files().vae_weights().map_or(0, |w| file_size(&w));
                let model_value = ModelValue {
                    model: omnigen,
                    device_name,
                    source: source.clone(),
                    bytes,
                };
                let vae_value = VaeValue {
                    vae,
                    source,
                    bytes: vae_bytes,
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
    use omnigen_model::{DTypeChoice, WeightFormat};

    fn parse(name: &str, text: &str) -> Result<LoadArgs, NodeError> {
        LoadArgs::parse(&Inputs::new().with(name, Value::String(text.into())))
    }

    #[test]
    fn device_and_dtype_strings_are_checked() {
        assert!(parse("device", "auto").is_ok());
        assert!(parse("device", "cpu").is_ok());
        assert_eq!(
            parse("device", "cuda:1").expect("cuda:1").options.device,
            DeviceChoice::Cuda(1)
        );
        let err = parse("device", "gpu please").unwrap_err().message;
        assert!(err.starts_with("input 'device'"), "{err}");
        assert!(err.contains("auto, cpu or cuda:N"), "{err}");
        assert_eq!(
            parse("dtype", "bf16").expect("bf16").options.dtype,
            DTypeChoice::BF16
        );
        let err = parse("dtype", "f16").unwrap_err().message;
        assert!(
            err.starts_with("input 'dtype'") && err.contains("black images"),
            "{err}"
        );
        assert!(parse("dtype", "f64").is_err());
        let q4 = parse("dtype", "q4").expect("q4").options;
        assert_eq!(
            (q4.dtype, q4.weights),
            (DTypeChoice::Auto, WeightFormat::Q4)
        );
        assert_eq!(
            parse("dtype", "f32").expect("f32").options.weights,
            WeightFormat::Full
        );
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
