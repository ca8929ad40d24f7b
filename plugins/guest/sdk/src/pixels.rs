//! Pixel-format facts shared by nodes.

use crate::PixelFormat;

/// Bytes per pixel of a format.
pub fn channels(format: PixelFormat) -> usize {
    match format {
        PixelFormat::Gray8 => 1,
        PixelFormat::Rgb8 => 3,
        PixelFormat::Rgba8 => 4,
    }
}
