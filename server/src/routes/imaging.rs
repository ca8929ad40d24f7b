//! The pixel work behind the file routes: decoding under the image limits (uploads, masks, previews),
//! applying a mask's alpha to an original, and re-encoding for `/view`'s `preview=` and `channel=`.
//! Everything here is CPU work: callers run it on the blocking pool.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ExtendedColorType, ImageFormat, ImageReader, Limits, RgbaImage};

use crate::error::{ApiError, ApiResult};

/// The quality of a preview that does not name one (ComfyUI's default).
const DEFAULT_QUALITY: u8 = 90;

/// Decodes `bytes` (format sniffed from the content) refusing anything wider or taller than
/// `max_side` before the pixels are allocated: the same limit, and the same allocation bound, as
/// LoadImage's decoder. `what` names the image in the error.
pub fn decode(what: &str, bytes: &[u8], max_side: u32) -> ApiResult<DynamicImage> {
    let bad = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => ApiError::BadRequest(format!(
            "{what} is larger than the server's limit of {max_side}x{max_side} pixels"
        )),
        e => ApiError::BadRequest(format!("{what} is not a readable image: {e}")),
    };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ApiError::BadRequest(format!("{what}: {e}")))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    // RGBA f32 of the largest accepted image plus the decoder's own buffer (as LoadImage bounds it).
    let side = u64::from(max_side);
    limits.max_alloc = Some(side * side * 4 * 4 + side * side * 8);
    reader.limits(limits);
    reader.decode().map_err(bad)
}

/// ComfyUI's mask upload: the original's pixels with the mask's alpha channel, as a PNG that keeps the
/// original's text chunks (its embedded workflow). The two must be the same size.
pub fn apply_mask(
    original: &DynamicImage,
    original_png: &[u8],
    mask: &DynamicImage,
) -> ApiResult<Vec<u8>> {
    if (original.width(), original.height()) != (mask.width(), mask.height()) {
        return Err(ApiError::BadRequest(format!(
            "the mask is {}x{} but the original image is {}x{}",
            mask.width(),
            mask.height(),
            original.width(),
            original.height()
        )));
    }
    let mut pixels: RgbaImage = original.to_rgba8();
    let mask = mask.to_rgba8();
    for (px, m) in pixels.pixels_mut().zip(mask.pixels()) {
        px.0[3] = m.0[3];
    }
    encode_png(&pixels, &text_chunks(original_png))
}

/// The `tEXt`/`zTXt`/`iTXt` chunks of a PNG (none for other formats or unreadable ones; a compressed
/// chunk that does not inflate is skipped).
pub fn text_chunks(bytes: &[u8]) -> Vec<(String, String)> {
    collect_text_chunks(bytes, false).unwrap_or_default()
}

/// The text chunks of a PNG, or why they cannot all be read (a truncated file, a compressed chunk over
/// the decoder's limit …): for reading a graph out of the PNG, where a lost chunk must not go unnoticed.
pub fn read_text_chunks(bytes: &[u8]) -> Result<Vec<(String, String)>, png::DecodingError> {
    collect_text_chunks(bytes, true)
}

/// How much text a PNG's compressed chunks may inflate to, all together: far more than any workflow, far
/// less than a small zTXt chunk of zeros can claim (the png crate's `get_text` has no bound).
const TEXT_INFLATE_LIMIT: usize = 32 << 20;

fn collect_text_chunks(
    bytes: &[u8],
    strict: bool,
) -> Result<Vec<(String, String)>, png::DecodingError> {
    let reader = png::Decoder::new(Cursor::new(bytes)).read_info()?;
    let info = reader.info();
    let mut chunks: Vec<(String, String)> = info
        .uncompressed_latin1_text
        .iter()
        .map(|c| (c.keyword.clone(), c.text.clone()))
        .collect();
    type Inflate<'c> = Box<dyn Fn(usize) -> Result<String, png::DecodingError> + 'c>;
    let latin1 = info.compressed_latin1_text.iter().map(|c| {
        let inflate: Inflate = Box::new(move |limit| {
            let mut c = c.clone();
            c.decompress_text_with_limit(limit)?;
            c.get_text()
        });
        (c.keyword.clone(), inflate)
    });
    let utf8 = info.utf8_text.iter().map(|c| {
        let inflate: Inflate = Box::new(move |limit| {
            let mut c = c.clone();
            c.decompress_text_with_limit(limit)?;
            c.get_text()
        });
        (c.keyword.clone(), inflate)
    });
    let mut budget = TEXT_INFLATE_LIMIT;
    for (keyword, inflate) in latin1.chain(utf8) {
        match inflate(budget) {
            Ok(text) => {
                budget = budget.saturating_sub(text.len());
                chunks.push((keyword, text));
            }
            Err(e) if strict => return Err(e),
            Err(_) => {}
        }
    }
    Ok(chunks)
}

fn encode_png(pixels: &RgbaImage, chunks: &[(String, String)]) -> ApiResult<Vec<u8>> {
    let failed = |e: png::EncodingError| ApiError::Internal(format!("cannot encode the PNG: {e}"));
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, pixels.width(), pixels.height());
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        for (keyword, text) in chunks {
            let added = if text.is_ascii() {
                encoder.add_text_chunk(keyword.clone(), text.clone())
            } else {
                encoder.add_itxt_chunk(keyword.clone(), text.clone())
            };
            // A keyword the encoder refuses (too long, odd bytes) is dropped, not fatal.
            if let Err(e) = added {
                tracing::warn!(keyword = %keyword, error = %e, "dropped a PNG text chunk");
            }
        }
        let mut writer = encoder.write_header().map_err(failed)?;
        writer.write_image_data(pixels.as_raw()).map_err(failed)?;
        writer.finish().map_err(failed)?;
    }
    Ok(out)
}

/// `channel=`: which channels `/view` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Colour without alpha.
    Rgb,
    /// The alpha channel alone (on transparent black), ComfyUI's mask view.
    Alpha,
    /// Everything (the file as it is).
    Rgba,
}

impl Channel {
    /// Parses `rgb`, `a` or `rgba`.
    pub fn parse(text: &str) -> ApiResult<Self> {
        match text {
            "rgb" => Ok(Channel::Rgb),
            "a" => Ok(Channel::Alpha),
            "rgba" => Ok(Channel::Rgba),
            other => Err(ApiError::BadRequest(format!(
                "channel {other:?} is not one of rgb, a, rgba"
            ))),
        }
    }
}

/// An encoded image to send.
#[derive(Debug)]
pub struct Encoded {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Its content type.
    pub content_type: &'static str,
    /// The file extension matching it.
    pub extension: &'static str,
}

/// `channel=rgb|a` without a preview: a PNG of those channels, as ComfyUI answers.
pub fn channel_png(image: &DynamicImage, channel: Channel) -> ApiResult<Encoded> {
    let picked = match channel {
        Channel::Rgb => DynamicImage::ImageRgb8(image.to_rgb8()),
        Channel::Alpha => {
            let mut alpha = RgbaImage::new(image.width(), image.height());
            let source = image.to_rgba8();
            let has_alpha = image.color().has_alpha();
            for (px, src) in alpha.pixels_mut().zip(source.pixels()) {
                px.0 = [0, 0, 0, if has_alpha { src.0[3] } else { 255 }];
            }
            DynamicImage::ImageRgba8(alpha)
        }
        Channel::Rgba => image.clone(),
    };
    let mut out = Cursor::new(Vec::new());
    picked
        .write_to(&mut out, ImageFormat::Png)
        .map_err(|e| ApiError::Internal(format!("cannot encode the PNG: {e}")))?;
    Ok(Encoded {
        bytes: out.into_inner(),
        content_type: "image/png",
        extension: "png",
    })
}

/// `preview=FORMAT;QUALITY` (`webp;90`, `jpeg;80`): a re-encoded, smaller copy.
///
/// As in ComfyUI, a preview whose `channel` contains `a` keeps alpha as WebP, whatever format was asked.
/// The `image` crate encodes WebP only losslessly, which defeats a preview, so every other preview
/// (`jpeg`, and `webp` too) is JPEG of the asked quality; one that keeps alpha is lossless WebP (the
/// quality does not apply).
pub fn preview(image: &DynamicImage, spec: &str, channel: Option<&str>) -> ApiResult<Encoded> {
    let quality = spec
        .rsplit(';')
        .next()
        .and_then(|q| q.trim().parse::<u8>().ok())
        .unwrap_or(DEFAULT_QUALITY)
        .clamp(1, 100);
    if channel.is_some_and(|c| c.contains('a')) {
        let rgba = image.to_rgba8();
        let mut out = Vec::new();
        WebPEncoder::new_lossless(&mut out)
            .encode(
                rgba.as_raw(),
                rgba.width(),
                rgba.height(),
                ExtendedColorType::Rgba8,
            )
            .map_err(|e| ApiError::Internal(format!("cannot encode the WebP preview: {e}")))?;
        return Ok(Encoded {
            bytes: out,
            content_type: "image/webp",
            extension: "webp",
        });
    }
    let rgb = image.to_rgb8();
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&rgb)
        .map_err(|e| ApiError::Internal(format!("cannot encode the JPEG preview: {e}")))?;
    Ok(Encoded {
        bytes: out,
        content_type: "image/jpeg",
        extension: "jpg",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    fn png(image: &DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn rgba(w: u32, h: u32, px: [u8; 4]) -> DynamicImage {
        DynamicImage::ImageRgba8(RgbaImage::from_pixel(w, h, Rgba(px)))
    }

    #[test]
    fn decode_checks_limits_and_content() {
        let bytes = png(&rgba(20, 10, [1, 2, 3, 4]));
        assert_eq!(decode("a.png", &bytes, 64).unwrap().width(), 20);
        let err = decode("a.png", &bytes, 16).unwrap_err().to_string();
        assert!(err.contains("16x16"), "{err}");
        let err = decode("b.png", &bytes[..40], 64).unwrap_err().to_string();
        assert!(err.contains("b.png"), "{err}");
    }

    #[test]
    fn mask_alpha_goes_onto_the_original_and_text_chunks_stay() {
        let original = rgba(2, 2, [200, 100, 50, 255]);
        let mut with_text = Vec::new();
        {
            let mut e = png::Encoder::new(&mut with_text, 2, 2);
            e.set_color(png::ColorType::Rgba);
            e.add_text_chunk("workflow".into(), "{\"id\":1}".into())
                .unwrap();
            let mut w = e.write_header().unwrap();
            w.write_image_data(original.to_rgba8().as_raw()).unwrap();
        }
        let mask = rgba(2, 2, [0, 0, 0, 7]);
        let out = apply_mask(&original, &with_text, &mask).unwrap();
        let back = image::load_from_memory(&out).unwrap().to_rgba8();
        assert_eq!(back.get_pixel(1, 1).0, [200, 100, 50, 7]);
        assert_eq!(
            text_chunks(&out),
            [("workflow".to_string(), "{\"id\":1}".to_string())]
        );
        let err = apply_mask(&original, &with_text, &rgba(3, 2, [0; 4])).unwrap_err();
        assert!(err.to_string().contains("3x2"), "{err}");
    }

    #[test]
    fn channels_follow_comfyui() {
        let image = rgba(1, 1, [10, 20, 30, 40]);
        let rgb = channel_png(&image, Channel::Rgb).unwrap();
        let back = image::load_from_memory(&rgb.bytes).unwrap();
        assert!(!back.color().has_alpha());
        assert_eq!(back.to_rgb8().get_pixel(0, 0).0, [10, 20, 30]);
        let a = channel_png(&image, Channel::Alpha).unwrap();
        let back = image::load_from_memory(&a.bytes).unwrap().to_rgba8();
        assert_eq!(back.get_pixel(0, 0).0, [0, 0, 0, 40]);
        let opaque = DynamicImage::ImageRgb8(image::RgbImage::new(1, 1));
        let a = channel_png(&opaque, Channel::Alpha).unwrap();
        let back = image::load_from_memory(&a.bytes).unwrap().to_rgba8();
        assert_eq!(back.get_pixel(0, 0).0[3], 255);
        assert!(Channel::parse("rgbx").is_err());
    }

    #[test]
    fn previews_are_jpeg_unless_alpha_is_kept() {
        let image = rgba(8, 8, [10, 20, 30, 40]);
        let jpeg = preview(&image, "jpeg;80", None).unwrap();
        assert_eq!(jpeg.content_type, "image/jpeg");
        assert!(jpeg.bytes.starts_with(b"\xff\xd8\xff"));
        let webp = preview(&image, "webp;90", None).unwrap();
        assert_eq!(webp.content_type, "image/jpeg");
        let alpha = preview(&image, "webp;90", Some("rgba")).unwrap();
        assert_eq!(alpha.content_type, "image/webp");
        let back = image::load_from_memory(&alpha.bytes).unwrap().to_rgba8();
        assert_eq!(back.get_pixel(0, 0).0, [10, 20, 30, 40]);
        let rgb = preview(&image, "webp", Some("rgb")).unwrap();
        assert_eq!(rgb.content_type, "image/jpeg");
    }
}
