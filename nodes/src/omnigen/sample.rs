//! `OmniGenSample`: the denoising loop, with per-step progress and previews, cancellation, and one
//! sampler at a time per device.

use std::ops::ControlFlow;
use std::sync::Arc;

use omnigen_engine::{
    BoxFuture, CheckContext, Image, InputSpec, Inputs, NodeContext, NodeError, NodeOutput,
    NodeSchema, NodeType, Resource, Value,
};
use omnigen_model::processor::ProcessorError;
use omnigen_model::{
    options::{MAX_OUTPUT_SIDE, OUTPUT_SIDE_MULTIPLE},
    CfgMode, Error as ModelError, KvCacheMode, SampleOptions, StepProgress,
};

use super::values::{InstructionValue, LatentValue, ModelValue, LATENT, OMNIGEN, OMNIGEN_PROMPT};
use super::{model_error, seed_input, CATEGORY};

/// The `OmniGenSample` node.
#[derive(Debug, Clone, Default)]
pub struct OmniGenSample;

/// `OmniGenSample`'s settings as the model's [`SampleOptions`], parsed once by the same code for
/// `validate` (the constants; a linked setting keeps the model's default there and is checked at run
/// time) and `run` (everything). The model's rules ([`SampleOptions::validate`]) are the checks; their
/// errors name the input.
#[derive(Debug, Clone, PartialEq)]
struct SampleArgs {
    options: SampleOptions,
}

impl SampleArgs {
    fn parse(inputs: &Inputs) -> Result<Self, NodeError> {
        let mut options = SampleOptions::default();
        if inputs.contains("width") {
            options.width = inputs.get_usize("width")?;
        }
        if inputs.contains("height") {
            options.height = inputs.get_usize("height")?;
        }
        if let Some(on) = inputs.opt_bool("use_input_image_size_as_output")? {
            options.use_input_image_size_as_output = on;
        }
        if inputs.contains("steps") {
            options.steps = inputs.get_usize("steps")?;
        }
        if let Some(scale) = inputs.opt_float("guidance_scale")? {
            options.guidance_scale = scale;
        }
        if let Some(scale) = inputs.opt_float("img_guidance_scale")? {
            options.img_guidance_scale = scale;
        }
        if inputs.contains("seed") {
            options.seed = inputs.get_u64("seed")?;
        }
        if let Some(kv) = inputs.opt_str("kv_cache")? {
            options.kv_cache =
                KvCacheMode::parse(kv).map_err(|e| NodeError::input("kv_cache", e))?;
        }
        if let Some(on) = inputs.opt_bool("offload_kv_cache")? {
            options.offload_kv_cache = on;
        }
        if let Some(separate) = inputs.opt_bool("separate_cfg")? {
            options.cfg = if separate {
                CfgMode::Separate
            } else {
                CfgMode::Batched
            };
        }
        options
            .validate()
            .map_err(|e| NodeError::input(e.field().name(), e))?;
        Ok(Self { options })
    }
}

/// A sampling failure of the model, pointed at the input that caused it when there is one.
fn sample_error(err: &ModelError) -> NodeError {
    match err {
        ModelError::InvalidOption(e) => NodeError::input(e.field().name(), e),
        ModelError::NoiseShape {
            found,
            expected,
            height,
            width,
        } => NodeError::input(
            "noise",
            format!("has shape {found:?} but a {width}x{height} output needs {expected:?}"),
        ),
        ModelError::Processor(ProcessorError::InputSizeNeedsImage { .. }) => NodeError::input(
            "use_input_image_size_as_output",
            "is on but the prompt has no picture of its own (connect image_1 to BuildPrompt)",
        ),
        other => model_error("sampling", other),
    }
}

impl NodeType for OmniGenSample {
    fn schema(&self) -> NodeSchema {
        let size = |name: &str| {
            InputSpec::int(name)
                .default_int(1024)
                .min(OUTPUT_SIDE_MULTIPLE as i64)
                .max(MAX_OUTPUT_SIDE as i64)
                .step(OUTPUT_SIDE_MULTIPLE as i64)
                .tooltip("Output size in pixels: a multiple of 16, at most 3072.")
        };
        NodeSchema::new("OmniGenSample")
            .display_name("OmniGen Sampler")
            .category(CATEGORY)
            .description(
                "Generates a LATENT from a prompt: rectified-flow Euler steps with text and image guidance, as the \
                 reference pipeline. Reports every step with a preview; can be cancelled between steps.",
            )
            .required(InputSpec::socket("model", OMNIGEN))
            .required(InputSpec::socket("prompt", OMNIGEN_PROMPT))
            .required(size("width"))
            .required(size("height"))
            .required(
                InputSpec::boolean("use_input_image_size_as_output")
                    .default_value(false)
                    .tooltip("Make the output the size of the prompt's image_1 (editing); width/height are then ignored."),
            )
            .required(InputSpec::int("steps").default_int(50).min(1).max(1000).tooltip("Denoising steps."))
            .required(
                InputSpec::float("guidance_scale")
                    .default_value(2.5)
                    .min(0.0)
                    .max(20.0)
                    .step(0.1)
                    .tooltip("Text guidance; 2-3 is typical, lower it if pictures look oversaturated."),
            )
            .required(
                InputSpec::float("img_guidance_scale")
                    .default_value(1.6)
                    .min(0.0)
                    .max(20.0)
                    .step(0.1)
                    .tooltip("Image guidance (used when the prompt has pictures)."),
            )
            .required(seed_input("Seed of the initial noise."))
            .required(
                InputSpec::combo("kv_cache", KvCacheMode::NAMES)
                    .default_value("reference")
                    .tooltip(
                        "reference = the official default (identical pictures, including its first-step quirk); \
                         exact = cached but equal to off; off = no cache (slowest).",
                    ),
            )
            .required(
                InputSpec::boolean("separate_cfg")
                    .default_value(true)
                    .tooltip("Run the guidance branches one by one (the reference default, less memory)."),
            )
            .optional(
                InputSpec::boolean("offload_kv_cache")
                    .default_value(false)
                    .tooltip(
                        "Keep the prompt's cached keys/values in host memory, copied to the GPU layer by \
                         layer as they are read. Same pictures; saves GPU memory with large input images.",
                    ),
            )
            .optional(
                InputSpec::socket("noise", LATENT)
                    .tooltip("Initial noise [1,4,height/8,width/8] instead of the seeded one (reproducing other runs)."),
            )
            .named_output(LATENT, "latent")
    }

    fn validate(&self, inputs: &Inputs, _ctx: &CheckContext) -> Result<(), NodeError> {
        SampleArgs::parse(inputs).map(drop)
    }

    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let SampleArgs { options } = SampleArgs::parse(&inputs)?;
            let model = inputs.get_opaque::<ModelValue>("model")?;
            let instruction = inputs.get_opaque::<InstructionValue>("prompt")?;
            let noise = inputs
                .opt_opaque::<LatentValue>("noise")?
                .map(|n| n.0.tensor().clone());
            // One sampler at a time per device, so two never compete for its memory. The device comes
            // in through the `model` link, so it is locked at run time, with the engine's resource locks.
            let _device = ctx.lock_resource(Resource::new(&model.device_name)).await;
            ctx.run_blocking(move |ctx| {
                ctx.check_cancelled()?;
                let mut on_step = |p: StepProgress<'_>| {
                    // A preview failing to render is not worth stopping the sampler for.
                    let preview = latent_preview(p.latent).ok().map(Arc::new);
                    match ctx.progress_with_preview(p.step as u64, p.total as u64, preview) {
                        Ok(()) => ControlFlow::Continue(()),
                        Err(_) => ControlFlow::Break(()),
                    }
                };
                let result = model
                    .model
                    .sample(&instruction.0, &options, noise, &mut on_step);
                match result {
                    Ok(latent) => Ok(NodeOutput::new(vec![Value::opaque(LatentValue(latent))])),
                    Err(_) if ctx.is_cancelled() => Err(NodeError::cancelled()),
                    Err(e) => Err(sample_error(&e)),
                }
            })
            .await
        })
    }
}

/// A cheap RGB picture of the first latent of a batch (no VAE decode), for progress previews.
fn latent_preview(latent: &candle_core::Tensor) -> Result<Image, String> {
    let first = latent
        .get(0)
        .and_then(|t| t.to_dtype(candle_core::DType::F32))
        .map_err(|e| e.to_string())?;
    let (_, h, w) = first.dims3().map_err(|e| e.to_string())?;
    let data = first
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| e.to_string())?;
    super::preview::latent_to_rgb(&data, h, w).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constants(pairs: &[(&str, Value)]) -> Inputs {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect()
    }

    #[test]
    fn sizes_must_be_multiples_of_16_up_to_3072() {
        let parse = |name: &str, v: i128| SampleArgs::parse(&constants(&[(name, Value::Int(v))]));
        assert_eq!(parse("width", 1024).expect("ok").options.width, 1024);
        assert!(parse("width", 3072).is_ok());
        assert_eq!(
            parse("width", 1000).unwrap_err().message,
            "input 'width': width 1000 must be a multiple of 16 between 16 and 3072"
        );
        assert!(parse("height", 3088)
            .unwrap_err()
            .message
            .starts_with("input 'height'"));
        assert!(parse("height", 0).is_err());
        assert!(parse("height", -16).is_err());
        // The output takes an input picture's size: width/height are not used, so not checked.
        let from_image = constants(&[
            ("width", Value::Int(1000)),
            ("use_input_image_size_as_output", Value::Bool(true)),
        ]);
        assert!(SampleArgs::parse(&from_image).is_ok());
    }

    #[test]
    fn kv_cache_modes_parse() {
        let parse =
            |text: &str| SampleArgs::parse(&constants(&[("kv_cache", Value::String(text.into()))]));
        assert_eq!(
            parse("reference").expect("ok").options.kv_cache,
            KvCacheMode::Reference
        );
        assert_eq!(parse("off").expect("ok").options.kv_cache, KvCacheMode::Off);
        assert!(parse("fast")
            .unwrap_err()
            .message
            .starts_with("input 'kv_cache'"));
    }

    #[test]
    fn steps_and_settings_become_the_model_options() {
        let err = SampleArgs::parse(&constants(&[("steps", Value::Int(0))])).unwrap_err();
        assert_eq!(err.message, "input 'steps': steps 0 must be at least 1");
        let args = SampleArgs::parse(&constants(&[
            ("steps", Value::Int(3)),
            ("seed", Value::Int(7)),
            ("separate_cfg", Value::Bool(false)),
            ("guidance_scale", Value::Float(2.5)),
        ]))
        .expect("ok");
        assert_eq!(args.options.steps, 3);
        assert_eq!(args.options.seed, 7);
        assert_eq!(args.options.cfg, CfgMode::Batched);
        assert_eq!(args.options.guidance_scale, 2.5);
    }

    #[test]
    fn model_errors_name_the_input() {
        let noise = sample_error(&ModelError::NoiseShape {
            found: vec![1, 4, 8, 8],
            expected: vec![1, 4, 4, 4],
            height: 32,
            width: 32,
        });
        assert!(
            noise
                .message
                .starts_with("input 'noise': has shape [1, 4, 8, 8]"),
            "{}",
            noise.message
        );
        let no_image = sample_error(&ModelError::Processor(
            ProcessorError::InputSizeNeedsImage { prompt: 0 },
        ));
        assert!(no_image
            .message
            .starts_with("input 'use_input_image_size_as_output'"));
    }
}
