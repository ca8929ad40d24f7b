//! Encoding images as PNG with ComfyUI-style text metadata.
//!
//! ComfyUI stores the executed API graph in a `prompt` text chunk and each `extra_pnginfo` entry
//! (notably the editor's `workflow`) in a chunk of its own, so dropping a PNG onto the editor
//! restores the graph. We write the same chunks: `tEXt` when the text is ASCII (what Python's
//! `json.dumps` produces), `iTXt` (UTF-8) otherwise, since `tEXt` is Latin-1 only.

/// Why encoding failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The pixel buffer does not match `width * height * channels`.
    #[error("pixel buffer has {actual} values, expected {expected} for a {width}x{height} image")]
    BadBuffer {
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
        /// Values expected.
        expected: usize,
        /// Values given.
        actual: usize,
    },
    /// Only 1 (grey), 3 (RGB) and 4 (RGBA) channels can be written.
    #[error("cannot write a PNG with {0} channels (expected 1, 3 or 4)")]
    Channels(usize),
    /// The PNG encoder failed (e.g. zero-sized image, invalid keyword).
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
}

/// Converts a `0.0..=1.0` float channel to a byte the way ComfyUI does (`clip(255*v)` then
/// truncation), so our files match ComfyUI's byte for byte.
pub fn float_to_byte(value: f32) -> u8 {
    // `as` saturates and maps NaN to 0, which is what we want for out-of-range values.
    (value * 255.0).clamp(0.0, 255.0) as u8
}

/// Encodes interleaved float pixels (`channels` = 1 grey, 3 RGB or 4 RGBA) as an 8-bit PNG
/// carrying the given text chunks, in order.
pub fn encode_png(
    width: u32,
    height: u32,
    channels: usize,
    pixels: &[f32],
    text_chunks: &[(String, String)],
) -> Result<Vec<u8>, EncodeError> {
    let color = match channels {
        1 => png::ColorType::Grayscale,
        3 => png::ColorType::Rgb,
        4 => png::ColorType::Rgba,
        other => return Err(EncodeError::Channels(other)),
    };
    let expected = width as usize * height as usize * channels;
    if pixels.len() != expected {
        return Err(EncodeError::BadBuffer {
            width,
            height,
            expected,
            actual: pixels.len(),
        });
    }
    let bytes: Vec<u8> = pixels.iter().copied().map(float_to_byte).collect();
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(color);
        encoder.set_depth(png::BitDepth::Eight);
        for (keyword, text) in text_chunks {
            if text.is_ascii() {
                encoder.add_text_chunk(keyword.clone(), text.clone())?;
            } else {
                encoder.add_itxt_chunk(keyword.clone(), text.clone())?;
            }
        }
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&bytes)?;
        writer.finish()?;
    }
    Ok(out)
}

/// Reads all text chunks (`tEXt`, `zTXt`, `iTXt`) of a PNG as `(keyword, text)` pairs.
/// Used by tests and by anyone who wants the embedded graph back.
pub fn read_png_text_chunks(png_bytes: &[u8]) -> Result<Vec<(String, String)>, png::DecodingError> {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let reader = decoder.read_info()?;
    let info = reader.info();
    let mut chunks: Vec<(String, String)> = info
        .uncompressed_latin1_text
        .iter()
        .map(|c| (c.keyword.clone(), c.text.clone()))
        .collect();
    for chunk in &info.compressed_latin1_text {
        chunks.push((chunk.keyword.clone(), chunk.get_text()?));
    }
    for chunk in &info.utf8_text {
        chunks.push((chunk.keyword.clone(), chunk.get_text()?));
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_chunks_round_trip_ascii_and_unicode() {
        let chunks = vec![
            (
                "prompt".to_string(),
                r#"{"1":{"class_type":"X"}}"#.to_string(),
            ),
            ("workflow".to_string(), r#"{"title":"café ☕"}"#.to_string()),
        ];
        let png = encode_png(2, 1, 3, &[0.0, 0.5, 1.0, 1.0, 1.0, 1.0], &chunks).expect("encode");
        let read = read_png_text_chunks(&png).expect("decode");
        assert_eq!(read, chunks);
        let decoded = image::load_from_memory(&png).expect("valid png").to_rgb8();
        assert_eq!(decoded.as_raw(), &[0, 127, 255, 255, 255, 255]);
    }

    #[test]
    fn float_to_byte_matches_comfyui_truncation_and_clamps() {
        assert_eq!(float_to_byte(0.5), 127);
        assert_eq!(float_to_byte(-3.0), 0);
        assert_eq!(float_to_byte(7.0), 255);
        assert_eq!(float_to_byte(f32::NAN), 0);
    }

    #[test]
    fn every_byte_survives_decode_then_encode() {
        // LoadImage normalises with v/255; SaveImage must give v back, not v-1.
        for v in 0..=255u8 {
            assert_eq!(float_to_byte(f32::from(v) / 255.0), v, "byte {v}");
        }
    }

    #[test]
    fn wrong_buffer_size_is_an_error() {
        let err = encode_png(2, 2, 3, &[0.0; 3], &[]).expect_err("too short");
        assert!(matches!(err, EncodeError::BadBuffer { expected: 12, .. }));
        let err = encode_png(1, 1, 2, &[0.0; 2], &[]).expect_err("two channels");
        assert!(matches!(err, EncodeError::Channels(2)));
    }
}
