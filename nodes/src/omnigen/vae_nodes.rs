//! `EncodeVAE` (OmniGen's image preprocessing, then the VAE encoder) and `DecodeVAE`.

use std::sync::Arc;

use candle_core::Tensor;
use image::RgbImage;
use omnigen_engine::{
    BoxFuture, Image, InputSpec, Inputs, NodeContext, NodeError, NodeOutput, NodeSchema, NodeType,
    Value,
};
use omnigen_model::{EncodeMode, Latent};

use super::values::{LatentValue, VaeValue, LATENT, VAE};
use super::{model_error, seed_input, CATEGORY};

/// The `EncodeVAE` node.
#[derive(Debug, Clone, Default)]
pub struct EncodeVae;

/// The `DecodeVAE` node.
#[derive(Debug, Clone, Default)]
pub struct DecodeVae;

/// One frame of an engine image (`[H,W,C]` floats in 0..=1) as 8-bit RGB: alpha is dropped and grey is
/// repeated, like PIL's `convert('RGB')`. Values are rounded, so an image loaded from 8-bit data comes
/// back bit-exact.
pub fn frame_to_rgb8(image: &Image, index: usize) -> Option<RgbImage> {
    let (_, h, w, c) = image.dims();
    let frame = image.frame(index)?;
    let to_u8 = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let mut buf = Vec::with_capacity(h * w * 3);
    for px in frame.chunks_exact(c) {
        match c {
            1 => buf.extend_from_slice(&[to_u8(px[0]); 3]),
            _ => buf.extend(px[..3].iter().map(|v| to_u8(*v))),
        }
    }
    RgbImage::from_raw(w as u32, h as u32, buf)
}

/// 8-bit RGB images of one size as an engine image batch.
pub fn rgb8_to_image(images: &[RgbImage]) -> Result<Image, NodeError> {
    let first = images
        .first()
        .ok_or_else(|| NodeError::new("the VAE decoded no image"))?;
    let (w, h) = first.dimensions();
    let data: Vec<f32> = images
        .iter()
        .flat_map(|img| img.as_raw().iter().map(|v| f32::from(*v) / 255.0))
        .collect();
    Ok(Image::new(images.len(), h as usize, w as usize, 3, data)?)
}

impl NodeType for EncodeVae {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("EncodeVAE")
            .display_name("OmniGen VAE Encode")
            .category(CATEGORY)
            .description(
                "Prepares a picture as OmniGen does (halve while at least twice max_input_image_size, fit into \
                 max_input_image_size, centre-crop to multiples of 16) and encodes it to a LATENT.",
            )
            .required(InputSpec::socket("vae", VAE))
            .required(InputSpec::socket("image", "IMAGE"))
            .required(
                InputSpec::int("max_input_image_size")
                    .default_int(1024)
                    .min(16)
                    .max(3072)
                    .step(16)
                    .tooltip("Longest side a condition picture is reduced to."),
            )
            .required(
                InputSpec::combo("mode", ["sample", "mean"])
                    .default_value("sample")
                    .tooltip("sample = the reference (random draw from the encoder's distribution); mean = deterministic."),
            )
            .required(seed_input("Seed of the draw in sample mode."))
            .named_output(LATENT, "latent")
    }

    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let vae = inputs.get_opaque::<VaeValue>("vae")?;
            let image = inputs.get_image("image")?;
            let max_size = inputs.get_usize("max_input_image_size")?;
            let max_size = u32::try_from(max_size)
                .map_err(|_| NodeError::input("max_input_image_size", "too large"))?;
            let sample = match inputs.get_str("mode")? {
                "sample" => true,
                "mean" => false,
                other => {
                    return Err(NodeError::input(
                        "mode",
                        format!("'{other}' is not sample or mean"),
                    ))
                }
            };
            let seed = inputs.get_u64("seed")?;
            ctx.run_blocking(move |ctx| {
                let device = vae.vae.device().clone();
                let mut latents = Vec::with_capacity(image.batch());
                for index in 0..image.batch() {
                    ctx.check_cancelled()?;
                    let rgb = frame_to_rgb8(&image, index)
                        .ok_or_else(|| NodeError::input("image", "unreadable frame"))?;
                    let pixels =
                        omnigen_model::processor::preprocess_image(&rgb, max_size, &device)
                            .map_err(|e| NodeError::input("image", e))?;
                    let mode = if sample {
                        EncodeMode::Sample {
                            seed: seed.wrapping_add(index as u64),
                        }
                    } else {
                        EncodeMode::Mean
                    };
                    let latent = vae
                        .vae
                        .encode(&pixels, mode)
                        .map_err(|e| model_error("encoding the image", &e))?;
                    latents.push(latent.into_tensor());
                }
                let batch =
                    Tensor::cat(&latents, 0).map_err(|e| model_error("stacking latents", &e))?;
                let latent = Latent::new(batch).map_err(|e| model_error("stacking latents", &e))?;
                Ok(NodeOutput::new(vec![Value::Opaque(Arc::new(LatentValue(
                    latent,
                )))]))
            })
            .await
        })
    }
}

impl NodeType for DecodeVae {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("DecodeVAE")
            .display_name("OmniGen VAE Decode")
            .category(CATEGORY)
            .description("Decodes a LATENT to a picture (8-bit values, truncated like the reference pipeline).")
            .required(InputSpec::socket("vae", VAE))
            .required(InputSpec::socket("latent", LATENT))
            .named_output("IMAGE", "image")
    }

    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let vae = inputs.get_opaque::<VaeValue>("vae")?;
            let latent = inputs.get_opaque::<LatentValue>("latent")?;
            ctx.run_blocking(move |_ctx| {
                let pixels = vae
                    .vae
                    .decode(&latent.0)
                    .map_err(|e| model_error("decoding the latent", &e))?;
                let rgb = omnigen_model::to_rgb8(&pixels)
                    .map_err(|e| model_error("converting the picture", &e))?;
                let image = rgb8_to_image(&rgb)?;
                Ok(NodeOutput::new(vec![Value::Image(Arc::new(image))]))
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_bit_pictures_round_trip_exactly() {
        let raw: Vec<u8> = (0..2 * 3 * 3).map(|v| (v * 14) as u8).collect();
        let rgb = RgbImage::from_raw(3, 2, raw.clone()).expect("rgb");
        let image = rgb8_to_image(&[rgb]).expect("image");
        assert_eq!(image.dims(), (1, 2, 3, 3));
        assert_eq!(frame_to_rgb8(&image, 0).expect("frame").into_raw(), raw);
    }

    #[test]
    fn alpha_is_dropped_and_grey_repeated() {
        let rgba = Image::new(1, 1, 1, 4, vec![1.0, 0.5, 0.0, 0.25]).expect("image");
        assert_eq!(
            frame_to_rgb8(&rgba, 0).expect("frame").into_raw(),
            vec![255, 128, 0]
        );
        let grey = Image::new(1, 1, 1, 1, vec![0.2]).expect("image");
        assert_eq!(
            frame_to_rgb8(&grey, 0).expect("frame").into_raw(),
            vec![51, 51, 51]
        );
        assert!(frame_to_rgb8(&grey, 1).is_none());
    }
}
