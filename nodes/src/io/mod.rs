//! Image input/output: the `LoadImage`, `SaveImage` and `PreviewImage` nodes and the file helpers
//! they share (safe paths, decoding with limits, PNG metadata, atomic numbered writes).

pub mod atomic;
pub mod config;
pub mod counter;
pub mod decode;
pub mod load_image;
pub mod paths;
pub mod png_write;
pub mod save_image;

use omnigen_engine::Registry;

/// Registers `LoadImage`, `SaveImage` and `PreviewImage`.
pub fn register(registry: &Registry, config: config::IoConfig) {
    registry.register(load_image::LoadImage::new(config));
    registry.register(save_image::SaveImage);
    registry.register(save_image::PreviewImage);
}
