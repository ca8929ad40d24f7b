//! Example plugin `geometry`: resize, crop and pad.

use omnigen_plugin_sdk::prelude::*;

fn dim(params: &Params, name: &str) -> Result<u32, NodeError> {
    let v = params.int(name)?;
    u32::try_from(v)
        .map_err(|_| NodeError::InvalidParams(format!("`{name}` = {v} is out of range")))
}

fn empty_check(width: u32, height: u32) -> Result<(), NodeError> {
    if width == 0 || height == 0 {
        return Err(NodeError::InvalidInput(format!(
            "result would be empty ({width}x{height})"
        )));
    }
    Ok(())
}

/// Resizes an image (nearest neighbour or bilinear).
pub struct Resize;
impl Node for Resize {
    const ID: &'static str = "resize";
    fn spec() -> NodeSpec {
        NodeSpec::new("Resize")
            .description("Resizes an image to width x height.")
            .category("image/transform")
            .input(Port::image("image"))
            .output(Port::image("image"))
            .int_param("width", 512, 1, 8192)
            .int_param("height", 512, 1, 8192)
            .choice_param("method", &["bilinear", "nearest"], "bilinear")
    }
    fn run(ctx: &Context, mut inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let src = inputs.take_image("image")?;
        let (w, h) = (dim(params, "width")?, dim(params, "height")?);
        empty_check(w, h)?;
        let c = channels(src.format);
        let (sw, sh) = (src.width as usize, src.height as usize);
        let mut data = vec![0u8; w as usize * h as usize * c];
        let bilinear = params.str("method")? == "bilinear";
        let sx = sw as f32 / w as f32;
        let sy = sh as f32 / h as f32;
        for y in 0..h as usize {
            if y % 64 == 0 {
                ctx.checkpoint(y as f32 / h as f32)?;
            }
            let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (sh - 1) as f32);
            for x in 0..w as usize {
                let fx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (sw - 1) as f32);
                let out = &mut data[(y * w as usize + x) * c..][..c];
                if bilinear {
                    let (x0, y0) = (fx as usize, fy as usize);
                    let (x1, y1) = ((x0 + 1).min(sw - 1), (y0 + 1).min(sh - 1));
                    let (ax, ay) = (fx - x0 as f32, fy - y0 as f32);
                    for (ch, o) in out.iter_mut().enumerate() {
                        let p = |xx: usize, yy: usize| src.data[(yy * sw + xx) * c + ch] as f32;
                        let top = p(x0, y0) * (1.0 - ax) + p(x1, y0) * ax;
                        let bottom = p(x0, y1) * (1.0 - ax) + p(x1, y1) * ax;
                        *o = (top * (1.0 - ay) + bottom * ay).round() as u8;
                    }
                } else {
                    let (nx, ny) = (fx.round() as usize, fy.round() as usize);
                    out.copy_from_slice(&src.data[(ny * sw + nx) * c..][..c]);
                }
            }
        }
        Ok(Outputs::new().image(
            "image",
            Image {
                width: w,
                height: h,
                format: src.format,
                data,
            },
        ))
    }
}

/// Crops a rectangle out of an image (clamped to the image).
pub struct Crop;
impl Node for Crop {
    const ID: &'static str = "crop";
    fn spec() -> NodeSpec {
        NodeSpec::new("Crop")
            .description(
                "Keeps the rectangle at (x, y) of size width x height, clamped to the image.",
            )
            .category("image/transform")
            .input(Port::image("image"))
            .output(Port::image("image"))
            .int_param("x", 0, 0, 16384)
            .int_param("y", 0, 0, 16384)
            .int_param("width", 512, 1, 16384)
            .int_param("height", 512, 1, 16384)
    }
    fn run(_ctx: &Context, mut inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let src = inputs.take_image("image")?;
        let (x, y) = (
            dim(params, "x")?.min(src.width),
            dim(params, "y")?.min(src.height),
        );
        let w = dim(params, "width")?.min(src.width - x);
        let h = dim(params, "height")?.min(src.height - y);
        empty_check(w, h)?;
        let c = channels(src.format);
        let row = w as usize * c;
        let mut data = Vec::with_capacity(row * h as usize);
        for yy in y..y + h {
            let start = (yy as usize * src.width as usize + x as usize) * c;
            data.extend_from_slice(&src.data[start..start + row]);
        }
        Ok(Outputs::new().image(
            "image",
            Image {
                width: w,
                height: h,
                format: src.format,
                data,
            },
        ))
    }
}

/// Pads an image with a solid border; also outputs a mask of the added border (for outpainting).
pub struct Pad;
impl Node for Pad {
    const ID: &'static str = "pad";
    fn spec() -> NodeSpec {
        NodeSpec::new("Pad")
            .description("Adds a border of a grey level; the mask selects the added border.")
            .category("image/transform")
            .input(Port::image("image"))
            .output(Port::image("image"))
            .output(Port::mask("border"))
            .int_param("left", 0, 0, 4096)
            .int_param("top", 0, 0, 4096)
            .int_param("right", 0, 0, 4096)
            .int_param("bottom", 0, 0, 4096)
            .int_param("value", 0, 0, 255)
    }
    fn run(_ctx: &Context, mut inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let src = inputs.take_image("image")?;
        let (l, t) = (dim(params, "left")?, dim(params, "top")?);
        let (r, b) = (dim(params, "right")?, dim(params, "bottom")?);
        let value = params.int("value")?.clamp(0, 255) as u8;
        let w = src.width + l + r;
        let h = src.height + t + b;
        let c = channels(src.format);
        let mut fill = vec![value; c];
        if src.format == PixelFormat::Rgba8 {
            fill[3] = 255;
        }
        let mut data: Vec<u8> = fill
            .iter()
            .copied()
            .cycle()
            .take(w as usize * h as usize * c)
            .collect();
        let mut border = vec![255u8; w as usize * h as usize];
        let row = src.width as usize * c;
        for yy in 0..src.height as usize {
            let dst = ((yy + t as usize) * w as usize + l as usize) * c;
            data[dst..dst + row].copy_from_slice(&src.data[yy * row..(yy + 1) * row]);
            let m = (yy + t as usize) * w as usize + l as usize;
            border[m..m + src.width as usize].fill(0);
        }
        Ok(Outputs::new()
            .image(
                "image",
                Image {
                    width: w,
                    height: h,
                    format: src.format,
                    data,
                },
            )
            .mask(
                "border",
                Mask {
                    width: w,
                    height: h,
                    data: border,
                },
            ))
    }
}

omnigen_plugin_sdk::plugin!(name: "geometry", version: "0.1.0", nodes: [Resize, Crop, Pad]);
