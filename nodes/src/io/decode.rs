//! Decoding image files into normalised pixel buffers, safely.
//!
//! Safety here means: the format is sniffed from the content (not trusted from the extension), the
//! decoder runs under [`image::Limits`] so a tiny file that claims to be 100k×100k pixels (a
//! "decompression bomb") is refused before any large allocation, and EXIF orientation is applied so
//! a phone photo comes out upright.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

/// Largest width or height (in pixels) accepted by default. 8192² RGBA8 is 256 MiB of pixels.
pub const DEFAULT_MAX_DIMENSION: u32 = 8192;

/// Limits applied when decoding an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Maximum accepted width and height, in pixels.
    pub max_dimension: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_dimension: DEFAULT_MAX_DIMENSION,
        }
    }
}

impl DecodeLimits {
    fn to_image_limits(self) -> Limits {
        let mut limits = Limits::default();
        limits.max_image_width = Some(self.max_dimension);
        limits.max_image_height = Some(self.max_dimension);
        // RGBA f32 of the largest accepted image plus the decoder's own buffer.
        let side = u64::from(self.max_dimension);
        limits.max_alloc = Some(side * side * 4 * 4 + side * side * 8);
        limits
    }
}

/// Why an image could not be decoded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file could not be read.
    #[error("cannot read image {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying IO error.
        source: std::io::Error,
    },
    /// The content is not a supported image (PNG, JPEG, WebP) or is corrupt.
    #[error("cannot decode image {path}: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: image::ImageError,
    },
    /// The image is larger than the configured limit.
    #[error("image {path} exceeds the size limit of {max}x{max} pixels: {source}")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The configured maximum side length.
        max: u32,
        /// The decoder's error.
        source: image::ImageError,
    },
}

/// A decoded image: RGB and optional alpha, as `f32` in `0.0..=1.0`, row-major, top row first.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` interleaved RGB values.
    pub rgb: Vec<f32>,
    /// `width * height` alpha values when the file has an alpha channel.
    pub alpha: Option<Vec<f32>>,
}

/// Reads and decodes the image file at `path` (PNG, JPEG or WebP; the first frame of animations).
pub fn decode_image_file(path: &Path, limits: DecodeLimits) -> Result<DecodedImage, DecodeError> {
    let bytes = std::fs::read(path).map_err(|source| DecodeError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    decode_image_bytes(&bytes, limits).map_err(|source| classify(path, limits, source))
}

/// Decodes an in-memory image (format sniffed from the content) and applies EXIF orientation.
pub fn decode_image_bytes(
    bytes: &[u8],
    limits: DecodeLimits,
) -> Result<DecodedImage, image::ImageError> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    reader.limits(limits.to_image_limits());
    let mut decoder = reader.into_decoder()?;
    // A missing or unreadable EXIF block is not an error: the image is simply not rotated.
    let orientation = decoder.orientation().ok();
    let mut image = DynamicImage::from_decoder(decoder)?;
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok(to_normalised(&image))
}

fn to_normalised(image: &DynamicImage) -> DecodedImage {
    let (width, height) = (image.width(), image.height());
    let rgba = image.to_rgba32f();
    let pixels = rgba.as_raw();
    let mut rgb = Vec::with_capacity(pixels.len() / 4 * 3);
    for px in pixels.chunks_exact(4) {
        rgb.extend_from_slice(&px[..3]);
    }
    let alpha = image
        .color()
        .has_alpha()
        .then(|| pixels.chunks_exact(4).map(|px| px[3]).collect());
    DecodedImage {
        width,
        height,
        rgb,
        alpha,
    }
}

fn classify(path: &Path, limits: DecodeLimits, source: image::ImageError) -> DecodeError {
    let path = path.to_path_buf();
    match source {
        image::ImageError::Limits(_) => DecodeError::TooLarge {
            path,
            max: limits.max_dimension,
            source,
        },
        source => DecodeError::Decode { path, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgba, RgbaImage};

    fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).expect("encode test image");
        out.into_inner()
    }

    #[test]
    fn png_with_alpha_keeps_alpha_and_colours() {
        let mut img = RgbaImage::new(3, 2);
        img.put_pixel(0, 0, Rgba([255, 0, 0, 255]));
        img.put_pixel(2, 1, Rgba([0, 0, 255, 0]));
        let bytes = encode(&DynamicImage::ImageRgba8(img), ImageFormat::Png);
        let decoded = decode_image_bytes(&bytes, DecodeLimits::default()).expect("decodes");
        assert_eq!((decoded.width, decoded.height), (3, 2));
        assert_eq!(&decoded.rgb[..3], &[1.0, 0.0, 0.0]);
        let alpha = decoded.alpha.expect("png has alpha");
        assert_eq!(alpha[0], 1.0);
        assert_eq!(alpha[5], 0.0);
    }

    #[test]
    fn jpeg_has_no_alpha() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(4, 4, image::Rgb([9, 9, 9])));
        let bytes = encode(&img, ImageFormat::Jpeg);
        let decoded = decode_image_bytes(&bytes, DecodeLimits::default()).expect("decodes");
        assert!(decoded.alpha.is_none());
        assert_eq!(decoded.rgb.len(), 4 * 4 * 3);
    }

    /// A 2x1 PNG (left red, right blue) with an eXIf chunk saying "rotate 90° clockwise".
    fn png_with_exif_orientation_6() -> Vec<u8> {
        // Big-endian TIFF header, one IFD entry: tag 0x0112 (Orientation), SHORT, count 1, value 6.
        let exif: Vec<u8> = [
            &b"MM\0\x2a\0\0\0\x08"[..],
            &[0, 1],
            &[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0],
            &[0, 0, 0, 0],
        ]
        .concat();
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, 2, 1);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().expect("header");
            writer
                .write_chunk(png::chunk::ChunkType(*b"eXIf"), &exif)
                .expect("exif chunk");
            writer
                .write_image_data(&[255, 0, 0, 0, 0, 255])
                .expect("pixels");
        }
        out
    }

    #[test]
    fn exif_orientation_is_applied() {
        let decoded = decode_image_bytes(&png_with_exif_orientation_6(), DecodeLimits::default())
            .expect("decodes");
        // Rotated 90° clockwise: 1 wide, 2 high, red (the old left) on top.
        assert_eq!((decoded.width, decoded.height), (1, 2));
        assert_eq!(&decoded.rgb[..3], &[1.0, 0.0, 0.0]);
        assert_eq!(&decoded.rgb[3..], &[0.0, 0.0, 1.0]);
    }

    #[test]
    fn oversized_image_is_refused_before_decoding() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::new(20, 10));
        let bytes = encode(&img, ImageFormat::Png);
        let err = decode_image_bytes(&bytes, DecodeLimits { max_dimension: 16 })
            .expect_err("20 px wide exceeds 16");
        assert!(matches!(err, image::ImageError::Limits(_)), "{err}");
    }

    #[test]
    fn corrupt_file_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("broken.png");
        std::fs::write(&path, b"\x89PNG\r\n\x1a\nnot really").expect("write");
        let err = decode_image_file(&path, DecodeLimits::default()).expect_err("corrupt");
        assert!(err.to_string().contains("broken.png"), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = decode_image_file(Path::new("no/such/file.png"), DecodeLimits::default())
            .expect_err("missing");
        assert!(matches!(err, DecodeError::Read { .. }));
        assert!(err.to_string().contains("no/such/file.png"), "{err}");
    }
}
