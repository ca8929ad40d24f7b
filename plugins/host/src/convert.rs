//! Conversion between the engine's values (f32 image batches in `[B,H,W,C]`) and plugin values
//! (one 8-bit image per call).

use std::sync::Arc;

use omnigen_engine::{Image, Mask, Value};

use crate::values::{PixelFormat, PixelImage, PixelMask, PluginValue, PortKind};

fn to_u8(v: f32) -> u8 {
    // NaN maps to 0; everything else is clamped to [0, 1].
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

fn to_f32(v: u8) -> f32 {
    f32::from(v) / 255.0
}

/// Image `index` of an engine batch as an 8-bit plugin image. An image that holds 8-bit values
/// (a plugin's output, say) gives them directly, without a detour through floats.
pub fn image_frame(image: &Image, index: usize) -> Result<PixelImage, String> {
    let (batch, h, w, c) = image.dims();
    let format = PixelFormat::from_channels(c)
        .ok_or_else(|| format!("images with {c} channels are not supported"))?;
    if index >= batch {
        return Err(format!("batch has no image {index}"));
    }
    let data = match image.bytes() {
        Some((bytes, stored)) => {
            let len = h * w * stored;
            let frame = &bytes[index * len..(index + 1) * len];
            if stored == c {
                frame.to_vec()
            } else {
                // Grey shown as RGB.
                frame.iter().flat_map(|&v| [v, v, v]).collect()
            }
        }
        None => {
            let frame = image
                .frame(index)
                .ok_or_else(|| format!("batch has no image {index}"))?;
            frame.iter().copied().map(to_u8).collect()
        }
    };
    Ok(PixelImage {
        width: u32::try_from(w).map_err(|_| "image too wide".to_string())?,
        height: u32::try_from(h).map_err(|_| "image too tall".to_string())?,
        format,
        data,
    })
}

/// Mask `index` of an engine batch as an 8-bit plugin mask.
pub fn mask_frame(mask: &Mask, index: usize) -> Result<PixelMask, String> {
    let (_, h, w) = mask.dims();
    let frame = mask
        .frame(index)
        .ok_or_else(|| format!("batch has no mask {index}"))?;
    Ok(PixelMask {
        width: u32::try_from(w).map_err(|_| "mask too wide".to_string())?,
        height: u32::try_from(h).map_err(|_| "mask too tall".to_string())?,
        data: frame.iter().copied().map(to_u8).collect(),
    })
}

/// Stacks plugin images into one engine batch, keeping their 8-bit values (a single image's
/// buffer is moved, not copied). Gray images become 3-channel grey, so that downstream nodes
/// expecting RGB accept them, but keep one byte per pixel until a node asks for floats.
pub fn stack_images(frames: Vec<PixelImage>) -> Result<Image, String> {
    let first = frames.first().ok_or("no images to stack")?;
    let (w, h, format) = (first.width, first.height, first.format);
    if frames
        .iter()
        .any(|f| f.width != w || f.height != h || f.format != format)
    {
        return Err("the images of one batch differ in size or format".into());
    }
    let batch = frames.len();
    let data = if batch == 1 {
        frames
            .into_iter()
            .next()
            .map(|f| f.data)
            .unwrap_or_default()
    } else {
        frames.iter().flat_map(|f| f.data.iter().copied()).collect()
    };
    let (h, w) = (h as usize, w as usize);
    match format {
        PixelFormat::Gray8 => Image::from_gray_bytes(batch, h, w, data),
        other => Image::from_bytes(batch, h, w, other.channels() as usize, data),
    }
    .map_err(|e| e.to_string())
}

/// Stacks plugin masks into one engine batch.
pub fn stack_masks(frames: Vec<PixelMask>) -> Result<Mask, String> {
    let first = frames.first().ok_or("no masks to stack")?;
    let (w, h) = (first.width, first.height);
    if frames.iter().any(|f| f.width != w || f.height != h) {
        return Err("the masks of one batch differ in size".into());
    }
    let data = frames
        .iter()
        .flat_map(|f| f.data.iter().copied().map(to_f32))
        .collect();
    Mask::new(frames.len(), h as usize, w as usize, data).map_err(|e| e.to_string())
}

/// The batch size of an engine value (1 for anything but images and masks).
pub fn batch_of(value: &Value) -> usize {
    match value {
        Value::Image(i) => i.batch(),
        Value::Mask(m) => m.dims().0,
        _ => 1,
    }
}

/// Element `index` of an engine input for a port of `kind` (images and masks of batch 1 are
/// broadcast to every index).
pub fn to_plugin(value: &Value, kind: PortKind, index: usize) -> Result<PluginValue, String> {
    let pick = |batch: usize| if batch == 1 { 0 } else { index };
    match (kind, value) {
        (PortKind::Image, Value::Image(i)) => {
            image_frame(i, pick(i.batch())).map(PluginValue::Image)
        }
        (PortKind::Mask, Value::Mask(m)) => mask_frame(m, pick(m.dims().0)).map(PluginValue::Mask),
        (PortKind::Text, Value::String(s)) => Ok(PluginValue::Text(s.clone())),
        (PortKind::Integer, Value::Int(i)) => i64::try_from(*i)
            .map(PluginValue::Integer)
            .map_err(|_| format!("{i} does not fit in 64 bits")),
        (PortKind::Number, Value::Float(f)) => Ok(PluginValue::Number(*f)),
        (PortKind::Number, Value::Int(i)) => Ok(PluginValue::Number(*i as f64)),
        (PortKind::Boolean, Value::Bool(b)) => Ok(PluginValue::Boolean(*b)),
        (PortKind::Json, Value::Json(j)) => Ok(PluginValue::Json(j.to_string())),
        (PortKind::Json, Value::String(s)) => Ok(PluginValue::Json(s.clone())),
        (kind, other) => Err(format!(
            "expected {}, got {}",
            kind.graph_type(),
            other.kind_name()
        )),
    }
}

/// Turns the per-index outputs of one port back into one engine value: images and masks are
/// stacked into a batch; other kinds take the first call's value.
pub fn to_engine(kind: PortKind, values: Vec<PluginValue>) -> Result<Value, String> {
    match kind {
        PortKind::Image => stack_images(
            values
                .into_iter()
                .filter_map(|v| match v {
                    PluginValue::Image(i) => Some(i),
                    _ => None,
                })
                .collect(),
        )
        .map(|i| Value::Image(Arc::new(i))),
        PortKind::Mask => stack_masks(
            values
                .into_iter()
                .filter_map(|v| match v {
                    PluginValue::Mask(m) => Some(m),
                    _ => None,
                })
                .collect(),
        )
        .map(|m| Value::Mask(Arc::new(m))),
        _ => {
            let first = values.into_iter().next().ok_or("no value")?;
            Ok(match first {
                PluginValue::Text(s) => Value::String(s),
                PluginValue::Integer(i) => Value::Int(i128::from(i)),
                PluginValue::Number(n) => Value::Float(n),
                PluginValue::Boolean(b) => Value::Bool(b),
                PluginValue::Json(s) => {
                    Value::Json(serde_json::from_str(&s).map_err(|e| format!("invalid JSON: {e}"))?)
                }
                PluginValue::Image(_) | PluginValue::Mask(_) => {
                    return Err("unexpected image".into())
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_round_trip_through_8_bit() {
        let data: Vec<f32> = (0..2 * 2 * 2 * 3).map(|i| i as f32 / 23.0).collect();
        let image = Image::new(2, 2, 2, 3, data.clone()).unwrap();
        let frames = vec![
            image_frame(&image, 0).unwrap(),
            image_frame(&image, 1).unwrap(),
        ];
        assert_eq!(frames[0].format, PixelFormat::Rgb8);
        assert_eq!(frames[1].data.len(), 12);
        let back = stack_images(frames).unwrap();
        assert_eq!(back.dims(), (2, 2, 2, 3));
        for (a, b) in back.data().iter().zip(&data) {
            assert!((a - b).abs() <= 0.5 / 255.0 + 1e-6);
        }
    }

    #[test]
    fn gray_becomes_three_channel_grey() {
        let gray = PixelImage {
            width: 2,
            height: 1,
            format: PixelFormat::Gray8,
            data: vec![0, 255],
        };
        let image = stack_images(vec![gray]).unwrap();
        assert_eq!(image.dims(), (1, 1, 2, 3));
        assert_eq!(image.data(), &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn plugin_images_stay_8_bit_and_go_back_without_floats() {
        let rgba = PixelImage {
            width: 1,
            height: 2,
            format: PixelFormat::Rgba8,
            data: vec![1, 2, 3, 4, 5, 6, 7, 8],
        };
        let image = stack_images(vec![rgba.clone()]).unwrap();
        assert_eq!(image.size_bytes(), 8, "no floats made");
        assert_eq!(image_frame(&image, 0).unwrap(), rgba);
        assert_eq!(image.size_bytes(), 8, "still no floats");

        let gray = PixelImage {
            width: 2,
            height: 1,
            format: PixelFormat::Gray8,
            data: vec![9, 200],
        };
        let image = stack_images(vec![gray.clone(), gray]).unwrap();
        assert_eq!((image.dims(), image.size_bytes()), ((2, 1, 2, 3), 4));
        let frame = image_frame(&image, 1).unwrap();
        assert_eq!(frame.format, PixelFormat::Rgb8);
        assert_eq!(frame.data, vec![9, 9, 9, 200, 200, 200]);
        assert!(image_frame(&image, 2).is_err());
    }

    #[test]
    fn out_of_range_and_nan_are_clamped() {
        assert_eq!(to_u8(f32::NAN), 0);
        assert_eq!(to_u8(-3.0), 0);
        assert_eq!(to_u8(7.0), 255);
    }

    #[test]
    fn kinds_must_match() {
        let err = to_plugin(&Value::String("x".into()), PortKind::Image, 0).unwrap_err();
        assert_eq!(err, "expected IMAGE, got STRING");
        assert_eq!(
            to_plugin(&Value::Int(3), PortKind::Number, 0).unwrap(),
            PluginValue::Number(3.0)
        );
        assert!(to_plugin(&Value::Int(i128::MAX), PortKind::Integer, 0).is_err());
    }
}
