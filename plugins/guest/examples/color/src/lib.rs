//! Example plugin `color`: grayscale, invert, and a luminance threshold mask.

use omnigen_plugin_sdk::prelude::*;

/// ITU-R BT.601 luma in 8-bit fixed point.
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((77 * r as u32 + 150 * g as u32 + 29 * b as u32 + 128) >> 8) as u8
}

/// The luma of every pixel of `image`, whatever its format.
fn luma_plane(image: &Image) -> Vec<u8> {
    let c = channels(image.format);
    match image.format {
        PixelFormat::Gray8 => image.data.clone(),
        _ => image
            .data
            .chunks_exact(c)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect(),
    }
}

/// Converts an image to 8-bit grayscale.
pub struct Grayscale;
impl Node for Grayscale {
    const ID: &'static str = "grayscale";
    fn spec() -> NodeSpec {
        NodeSpec::new("Grayscale")
            .description("Converts an image to grayscale (BT.601 luma); alpha is dropped.")
            .category("image/color")
            .input(Port::image("image"))
            .output(Port::image("image"))
    }
    fn run(_ctx: &Context, mut inputs: Inputs, _params: &Params) -> Result<Outputs, NodeError> {
        let image = inputs.take_image("image")?;
        let data = luma_plane(&image);
        let gray = Image {
            format: PixelFormat::Gray8,
            data,
            ..image
        };
        Ok(Outputs::new().image("image", gray))
    }
}

/// Inverts the colour channels (alpha is kept).
pub struct Invert;
impl Node for Invert {
    const ID: &'static str = "invert";
    fn spec() -> NodeSpec {
        NodeSpec::new("Invert")
            .description("Inverts the colour channels of an image; alpha is kept.")
            .category("image/color")
            .input(Port::image("image"))
            .output(Port::image("image"))
    }
    fn run(_ctx: &Context, mut inputs: Inputs, _params: &Params) -> Result<Outputs, NodeError> {
        let mut image = inputs.take_image("image")?;
        if image.format == PixelFormat::Rgba8 {
            for px in image.data.chunks_exact_mut(4) {
                px[0] = 255 - px[0];
                px[1] = 255 - px[1];
                px[2] = 255 - px[2];
            }
        } else {
            image.data.iter_mut().for_each(|b| *b = 255 - *b);
        }
        Ok(Outputs::new().image("image", image))
    }
}

/// Selects the pixels whose luma lies at or above a threshold.
pub struct LumaMask;
impl Node for LumaMask {
    const ID: &'static str = "luma_mask";
    fn spec() -> NodeSpec {
        NodeSpec::new("Luma threshold mask")
            .description("A mask of the pixels whose luma is at or above `threshold`.")
            .category("mask")
            .input(Port::image("image"))
            .output(Port::mask("mask"))
            .int_param("threshold", 128, 0, 255)
            .bool_param("invert", false)
    }
    fn run(_ctx: &Context, mut inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let image = inputs.take_image("image")?;
        let threshold = params.int("threshold")?.clamp(0, 255) as u8;
        let invert = params.bool("invert")?;
        let data = luma_plane(&image)
            .into_iter()
            .map(|l| if (l >= threshold) != invert { 255 } else { 0 })
            .collect();
        let mask = Mask {
            width: image.width,
            height: image.height,
            data,
        };
        Ok(Outputs::new().mask("mask", mask))
    }
}

omnigen_plugin_sdk::plugin!(name: "color", version: "0.1.0", nodes: [Grayscale, Invert, LumaMask]);
