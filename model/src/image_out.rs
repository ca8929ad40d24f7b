//! Conversion of decoded pixels to 8-bit images with the reference's truncating rule.

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};

/// `[B,3,H,W]` pixels in about [-1,1] → one RGB image per batch row, computed as the official pipeline
/// does: `((x·0.5 + 0.5).clamp(0,1) · 255)` then **truncated** to u8 (not rounded).
pub fn to_rgb8(pixels: &Tensor) -> Result<Vec<image::RgbImage>> {
    let (b, c, h, w) = pixels.dims4()?;
    if c != 3 {
        return Err(Error::Input(format!(
            "expected 3 channels, got {:?}",
            pixels.dims()
        )));
    }
    let data = pixels
        .to_dtype(DType::F32)?
        .permute((0, 2, 3, 1))?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let per = h * w * 3;
    (0..b)
        .map(|i| {
            let bytes: Vec<u8> = data[i * per..(i + 1) * per]
                .iter()
                .map(|&x| (((x * 0.5f32) + 0.5f32).clamp(0.0, 1.0) * 255.0f32) as u8)
                .collect();
            image::RgbImage::from_raw(w as u32, h as u32, bytes)
                .ok_or_else(|| Error::Input("image buffer size mismatch".into()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn truncates_instead_of_rounding() -> Result<()> {
        // 0.998 -> (0.999)*255 = 254.745 -> 254 (rounding would give 255); -2 clamps to 0.
        let px = Tensor::from_vec(vec![0.998f32, -2.0, 1.0], (1, 3, 1, 1), &Device::Cpu)?;
        let img = to_rgb8(&px)?;
        assert_eq!(img[0].get_pixel(0, 0).0, [254, 0, 255]);
        Ok(())
    }
}
