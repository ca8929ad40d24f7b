//! Condition-image preprocessing (`crop_arr` in `utils.py` plus `ToTensor` and `Normalize(0.5, 0.5)`,
//! spec §6.4): BOX halving while the short side is at least `2*M`, a BICUBIC downscale when the long side
//! exceeds `M`, a BICUBIC upscale when the short side is below 16, a centre crop to multiples of 16, and
//! the mapping of bytes to `[-1, 1]`.

use candle_core::{Device, Tensor};
use image::RgbImage;

use super::error::{ProcessorError, ProcessorResult};
use super::resample::{resize, Filter};

/// One resize of the preprocessing chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResizeStep {
    /// Filter Pillow is called with.
    pub filter: Filter,
    /// Target width.
    pub width: u32,
    /// Target height.
    pub height: u32,
}

/// The complete preprocessing plan for an image of a given size: resizes, then a crop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// Resizes in order (possibly none).
    pub resizes: Vec<ResizeStep>,
    /// Size after the resizes (width, height).
    pub resized: (u32, u32),
    /// Left column of the crop.
    pub crop_x: u32,
    /// Top row of the crop.
    pub crop_y: u32,
    /// Final width (a multiple of 16).
    pub width: u32,
    /// Final height (a multiple of 16).
    pub height: u32,
}

/// Python's `round()` (half to even) of a non-negative value, as an integer side length.
fn round_half_even(x: f64) -> u32 {
    let r = x.round_ties_even();
    if r <= 0.0 {
        0
    } else {
        r as u32
    }
}

/// Computes where `crop_arr` resizes and crops an image of `width` x `height` for `max_input_image_size`.
/// Errors when the image is empty or so thin that a side would shrink to 0 pixels.
pub fn crop_geometry(
    width: u32,
    height: u32,
    max_input_image_size: u32,
) -> ProcessorResult<Geometry> {
    let bad = |reason: &str| ProcessorError::BadImage {
        width,
        height,
        max_size: max_input_image_size,
        reason: reason.to_string(),
    };
    if max_input_image_size < 16 {
        return Err(ProcessorError::BadMaxImageSize(max_input_image_size));
    }
    if width == 0 || height == 0 {
        return Err(bad("the image is empty"));
    }
    let m = u64::from(max_input_image_size);
    let (mut w, mut h) = (width, height);
    let mut resizes = Vec::new();
    while u64::from(w.min(h)) >= 2 * m {
        (w, h) = (w / 2, h / 2);
        resizes.push(ResizeStep {
            filter: Filter::Box,
            width: w,
            height: h,
        });
    }
    // `scale` and the products are Python floats (f64), rounded half to even.
    let rescale = |w: u32, h: u32, scale: f64| {
        (
            round_half_even(w as f64 * scale),
            round_half_even(h as f64 * scale),
        )
    };
    if u64::from(w.max(h)) > m {
        let scale = max_input_image_size as f64 / w.max(h) as f64;
        (w, h) = rescale(w, h, scale);
        if w == 0 || h == 0 {
            return Err(bad("its short side would be resized to 0 pixels"));
        }
        resizes.push(ResizeStep {
            filter: Filter::Bicubic,
            width: w,
            height: h,
        });
    }
    if w.min(h) < 16 {
        let scale = 16.0 / w.min(h) as f64;
        (w, h) = rescale(w, h, scale);
        resizes.push(ResizeStep {
            filter: Filter::Bicubic,
            width: w,
            height: h,
        });
    }
    let crop = |side: u32| (side % 16) / 2;
    Ok(Geometry {
        resizes,
        resized: (w, h),
        crop_x: crop(w),
        crop_y: crop(h),
        width: w - w % 16,
        height: h - h % 16,
    })
}

/// Resizes and crops `img` as `crop_arr` does; returns the cropped 8-bit image (sides multiples of 16).
pub fn preprocess_rgb(img: &RgbImage, max_input_image_size: u32) -> ProcessorResult<RgbImage> {
    let geo = crop_geometry(img.width(), img.height(), max_input_image_size)?;
    let mut cur = img.clone();
    for step in &geo.resizes {
        // Pillow skips identical-size resizes; `resize` does the same.
        cur = resize(&cur, step.width, step.height, step.filter);
    }
    Ok(image::imageops::crop_imm(&cur, geo.crop_x, geo.crop_y, geo.width, geo.height).to_image())
}

/// `ToTensor()` + `Normalize(0.5, 0.5)`: `[1, 3, H, W]` f32 on `device`, each value `(v/255 - 0.5)/0.5`
/// computed in f32 like torchvision.
pub fn to_normalized_tensor(img: &RgbImage, device: &Device) -> ProcessorResult<Tensor> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut data = vec![0f32; 3 * h * w];
    for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            data[c * h * w + i] = (f32::from(v) / 255.0 - 0.5) / 0.5;
        }
    }
    Ok(Tensor::from_vec(data, (1, 3, h, w), device)?)
}

/// Full preprocessing of one condition image: `[1, 3, H, W]` f32 in `[-1, 1]` on `device`, with H and W
/// multiples of 16. Pixel-exact with the official processor (Pillow 10.2 resampling).
pub fn preprocess_image(
    img: &RgbImage,
    max_input_image_size: u32,
    device: &Device,
) -> ProcessorResult<Tensor> {
    to_normalized_tensor(&preprocess_rgb(img, max_input_image_size)?, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_of_a_small_image_only_crops() {
        let g = crop_geometry(56, 40, 1024).unwrap();
        assert!(g.resizes.is_empty());
        assert_eq!((g.crop_x, g.crop_y, g.width, g.height), (4, 4, 48, 32));
    }

    #[test]
    fn geometry_halves_then_downscales_then_crops() {
        let g = crop_geometry(230, 150, 37).unwrap();
        let sizes: Vec<_> = g
            .resizes
            .iter()
            .map(|s| (s.filter, s.width, s.height))
            .collect();
        assert_eq!(
            sizes,
            vec![
                (Filter::Box, 115, 75),
                (Filter::Box, 57, 37),
                (Filter::Bicubic, 37, 24)
            ]
        );
        assert_eq!((g.crop_x, g.crop_y, g.width, g.height), (2, 4, 32, 16));
    }

    #[test]
    fn python_round_is_half_to_even() {
        assert_eq!(round_half_even(2.5), 2);
        assert_eq!(round_half_even(3.5), 4);
        assert_eq!(round_half_even(0.4), 0);
    }

    #[test]
    fn thin_images_are_upscaled_to_sixteen() {
        let g = crop_geometry(12, 40, 1024).unwrap();
        assert_eq!(
            g.resizes,
            vec![ResizeStep {
                filter: Filter::Bicubic,
                width: 16,
                height: 53
            }]
        );
        assert_eq!((g.width, g.height, g.crop_y), (16, 48, 2));
    }

    #[test]
    fn degenerate_inputs_are_errors() {
        assert!(matches!(
            crop_geometry(0, 10, 1024),
            Err(ProcessorError::BadImage { .. })
        ));
        assert!(matches!(
            crop_geometry(1, 5000, 1024),
            Err(ProcessorError::BadImage { .. })
        ));
        assert!(matches!(
            crop_geometry(64, 64, 8),
            Err(ProcessorError::BadMaxImageSize(8))
        ));
    }
}
