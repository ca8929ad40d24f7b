//! `OmniGenSample`: the denoising loop, with per-step progress and previews, cancellation, and one
//! sampler at a time per device.

use std::ops::ControlFlow;
use std::sync::Arc;

use omnigen_engine::{
    BoxFuture, CheckContext, Image, InputSpec, Inputs, NodeContext, NodeError, NodeOutput,
    NodeSchema, NodeType, Resource, Value,
};
use omnigen_model::{CfgMode, KvCacheMode, Prompt, SampleOptions, StepProgress};

use super::values::{LatentValue, ModelValue, PromptValue, LATENT, OMNIGEN, OMNIGEN_PROMPT};
use super::{model_error, seed_input, CATEGORY};

/// Largest output side: the model's position table covers 192 × 192 patches of 16 pixels.
pub const MAX_SIZE: i128 = 3072;

/// The `OmniGenSample` node.
#[derive(Debug, Clone, Default)]
pub struct OmniGenSample;

/// Checks a width or height: a multiple of 16 in `16..=3072`.
pub fn check_size(name: &str, value: i128) -> Result<(), String> {
    if !(16..=MAX_SIZE).contains(&value) || value % 16 != 0 {
        return Err(format!(
            "{name} {value} must be a multiple of 16 between 16 and {MAX_SIZE}"
        ));
    }
    Ok(())
}

fn parse_kv_cache(text: &str) -> Result<KvCacheMode, String> {
    match text {
        "reference" => Ok(KvCacheMode::Reference),
        "exact" => Ok(KvCacheMode::Exact),
        "off" => Ok(KvCacheMode::Off),
        other => Err(format!(
            "kv_cache '{other}' is not one of reference, exact, off"
        )),
    }
}

impl NodeType for OmniGenSample {
    fn schema(&self) -> NodeSchema {
        let size = |name: &str| {
            InputSpec::int(name)
                .default_int(1024)
                .min(16)
                .max(MAX_SIZE as i64)
                .step(16)
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
                InputSpec::combo("kv_cache", ["reference", "exact", "off"])
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
                InputSpec::socket("noise", LATENT)
                    .tooltip("Initial noise [1,4,height/8,width/8] instead of the seeded one (reproducing other runs)."),
            )
            .named_output(LATENT, "latent")
    }

    fn validate(&self, inputs: &Inputs, _ctx: &CheckContext) -> Result<(), NodeError> {
        for name in ["width", "height"] {
            if let Some(v) = inputs.opt_int(name)? {
                check_size(name, v).map_err(|e| NodeError::input(name, e))?;
            }
        }
        if let Some(steps) = inputs.opt_int("steps")? {
            if steps < 1 {
                return Err(NodeError::input(
                    "steps",
                    format!("{steps} must be at least 1"),
                ));
            }
        }
        if let Some(kv) = inputs.opt_str("kv_cache")? {
            parse_kv_cache(kv).map_err(|e| NodeError::input("kv_cache", e))?;
        }
        Ok(())
    }

    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let model = inputs.get_opaque::<ModelValue>("model")?;
            let prompt = inputs.get_opaque::<PromptValue>("prompt")?;
            let (mut width, mut height) = (inputs.get_int("width")?, inputs.get_int("height")?);
            check_size("width", width).map_err(|e| NodeError::input("width", e))?;
            check_size("height", height).map_err(|e| NodeError::input("height", e))?;
            if inputs.get_bool("use_input_image_size_as_output")? {
                // The query's first picture: after few-shot examples, not the first example's.
                let first = prompt.images.get(prompt.query_offset).ok_or_else(|| {
                    NodeError::input(
                        "use_input_image_size_as_output",
                        "is on but the prompt has no picture of its own (connect image_1 to BuildPrompt)",
                    )
                })?;
                let (h, w) = first.pixel_size();
                (width, height) = (w as i128, h as i128);
            }
            let steps = inputs.get_usize("steps")?;
            if steps < 1 {
                return Err(NodeError::input("steps", "must be at least 1"));
            }
            let options = SampleOptions {
                width: width as usize,
                height: height as usize,
                steps,
                guidance_scale: inputs.get_float("guidance_scale")?,
                img_guidance_scale: inputs.get_float("img_guidance_scale")?,
                seed: inputs.get_u64("seed")?,
                kv_cache: parse_kv_cache(inputs.get_str("kv_cache")?)
                    .map_err(|e| NodeError::input("kv_cache", e))?,
                cfg: if inputs.get_bool("separate_cfg")? {
                    CfgMode::Separate
                } else {
                    CfgMode::Batched
                },
                use_input_image_size_as_output: false,
            };
            let noise = match inputs.opt_opaque::<LatentValue>("noise")? {
                Some(n) => {
                    let want = [1, 4, options.height / 8, options.width / 8];
                    if n.0.tensor().dims() != want {
                        return Err(NodeError::input(
                            "noise",
                            format!(
                                "has shape {:?} but a {}x{} output needs {want:?}",
                                n.0.tensor().dims(),
                                options.width,
                                options.height
                            ),
                        ));
                    }
                    Some(n.0.tensor().clone())
                }
                None => None,
            };
            let request = Prompt::new(prompt.instruction.clone())
                .with_images(prompt.images.clone())
                .with_negative_prompt(prompt.negative_prompt.clone())
                .with_img_guidance(prompt.use_img_guidance);
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
                let result = model.model.sample(&request, &options, noise, &mut on_step);
                match result {
                    Ok(latent) => Ok(NodeOutput::new(vec![Value::opaque(LatentValue(latent))])),
                    Err(_) if ctx.is_cancelled() => Err(NodeError::cancelled()),
                    Err(e) => Err(model_error("sampling", &e)),
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

    #[test]
    fn sizes_must_be_multiples_of_16_up_to_3072() {
        assert!(check_size("width", 1024).is_ok());
        assert!(check_size("width", 3072).is_ok());
        assert_eq!(
            check_size("width", 1000).unwrap_err(),
            "width 1000 must be a multiple of 16 between 16 and 3072"
        );
        assert!(check_size("height", 3088).is_err());
        assert!(check_size("height", 0).is_err());
    }

    #[test]
    fn kv_cache_modes_parse() {
        assert!(matches!(
            parse_kv_cache("reference"),
            Ok(KvCacheMode::Reference)
        ));
        assert!(matches!(parse_kv_cache("off"), Ok(KvCacheMode::Off)));
        assert!(parse_kv_cache("fast").is_err());
    }
}
