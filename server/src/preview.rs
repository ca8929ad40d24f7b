//! Per-step preview images as ComfyUI's binary WebSocket frames, encoded off the execution path.
//!
//! A node's progress event may carry a preview image. The run hands it to the [`Encoder`], whose own
//! thread turns it into a JPEG (at most [`PREVIEW_MAX_SIDE`] pixels a side, as ComfyUI's default
//! `--preview-size`) and gives it to the client hub. The encoder keeps only the newest image waiting: a
//! node producing previews faster than they encode loses the intermediate ones, never its last, and
//! execution never waits. Each socket lays the frame out itself ([`EncodedPreview::frame`]): type 1 for a
//! client that did not negotiate `supports_preview_metadata`, type 4 with metadata for one that did.

use std::sync::{Arc, Condvar, Mutex};

use axum::body::Bytes;
use image::codecs::jpeg::JpegEncoder;
use image::RgbImage;
use omnigen_engine::Image;

use crate::engine_adapter::Audience;

/// Binary event type of a preview without metadata (`[u32 1][u32 format][image]`).
pub const PREVIEW_IMAGE: u32 = 1;
/// Binary event type of a preview with metadata (`[u32 4][u32 json length][json][image]`).
pub const PREVIEW_IMAGE_WITH_METADATA: u32 = 4;
/// The format code of a JPEG in a type 1 frame (2 is PNG).
pub const FORMAT_JPEG: u32 = 1;
/// The longest side of a preview; larger images are scaled down.
pub const PREVIEW_MAX_SIDE: u32 = 512;
/// ComfyUI's JPEG quality for previews.
const JPEG_QUALITY: u8 = 95;

/// A preview waiting to be encoded.
#[derive(Debug, Clone)]
pub struct PendingPreview {
    /// Who gets it (the prompt's client).
    pub to: Audience,
    /// The image (the first of a batch is shown).
    pub image: Arc<Image>,
    /// The node that made it.
    pub node: String,
    /// Its prompt.
    pub prompt_id: String,
}

/// An encoded preview, ready to be framed for any socket.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedPreview {
    /// The JPEG bytes.
    pub image: Bytes,
    /// The type 4 metadata: `{node_id, display_node_id, prompt_id, parent_node_id, real_node_id,
    /// image_type}`.
    pub metadata: String,
}

impl EncodedPreview {
    /// Encodes `pending` (see the module docs).
    pub fn encode(pending: &PendingPreview) -> Result<Self, String> {
        let image = jpeg(&pending.image)?;
        let metadata = serde_json::json!({
            "node_id": pending.node,
            "display_node_id": pending.node,
            "prompt_id": pending.prompt_id,
            "parent_node_id": null,
            "real_node_id": pending.node,
            "image_type": "image/jpeg",
        })
        .to_string();
        Ok(EncodedPreview {
            image: Bytes::from(image),
            metadata,
        })
    }

    /// The binary frame: type 4 with metadata, or type 1.
    pub fn frame(&self, with_metadata: bool) -> Bytes {
        let mut frame;
        if with_metadata {
            // A few hundred bytes of JSON always fit in the u32 length.
            let len = u32::try_from(self.metadata.len()).unwrap_or(u32::MAX);
            frame = Vec::with_capacity(8 + self.metadata.len() + self.image.len());
            frame.extend_from_slice(&PREVIEW_IMAGE_WITH_METADATA.to_be_bytes());
            frame.extend_from_slice(&len.to_be_bytes());
            frame.extend_from_slice(self.metadata.as_bytes());
        } else {
            frame = Vec::with_capacity(8 + self.image.len());
            frame.extend_from_slice(&PREVIEW_IMAGE.to_be_bytes());
            frame.extend_from_slice(&FORMAT_JPEG.to_be_bytes());
        }
        frame.extend_from_slice(&self.image);
        Bytes::from(frame)
    }
}

/// The first image of the batch as a JPEG, scaled down to [`PREVIEW_MAX_SIDE`]. Grey is shown as grey
/// and an alpha channel is dropped.
fn jpeg(image: &Image) -> Result<Vec<u8>, String> {
    let (width, height) = (image.width(), image.height());
    let too_large = || format!("a {width}x{height} preview is too large");
    let w = u32::try_from(width).map_err(|_| too_large())?;
    let h = u32::try_from(height).map_err(|_| too_large())?;
    let pixels = width.checked_mul(height).ok_or_else(too_large)?;
    let rgb = first_frame_rgb8(image, pixels);
    let mut frame = RgbImage::from_raw(w, h, rgb).ok_or_else(too_large)?;
    if w.max(h) > PREVIEW_MAX_SIDE {
        let scale = f64::from(PREVIEW_MAX_SIDE) / f64::from(w.max(h));
        let fit = |side: u32| ((f64::from(side) * scale).round() as u32).max(1);
        frame = image::imageops::thumbnail(&frame, fit(w), fit(h));
    }
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
        .encode_image(&frame)
        .map_err(|e| format!("cannot encode the preview: {e}"))?;
    Ok(out)
}

/// The first `pixels` pixels as RGB bytes, from the image's 8-bit values when it has them.
fn first_frame_rgb8(image: &Image, pixels: usize) -> Vec<u8> {
    let channels = image.channels();
    let mut rgb = Vec::with_capacity(pixels * 3);
    let mut push = |px: &[u8]| match px.len() {
        1 => rgb.extend_from_slice(&[px[0], px[0], px[0]]),
        _ => rgb.extend_from_slice(&px[..3]),
    };
    match image.bytes() {
        Some((bytes, stored)) => {
            for px in bytes.chunks_exact(stored).take(pixels) {
                push(px);
            }
        }
        None => {
            let to_u8 = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            let mut px = [0u8; 4];
            for values in image.data().chunks_exact(channels).take(pixels) {
                for (p, v) in px.iter_mut().zip(values) {
                    *p = to_u8(*v);
                }
                push(&px[..channels]);
            }
        }
    }
    rgb
}

/// What waits for the encoding thread.
#[derive(Default)]
struct Waiting {
    next: Option<PendingPreview>,
    closed: bool,
}

#[derive(Default)]
struct Slot {
    waiting: Mutex<Waiting>,
    wake: Condvar,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The preview encoder: one thread, one waiting image (the newest). Dropping it stops the thread once the
/// image being encoded is delivered.
pub struct Encoder {
    slot: Arc<Slot>,
}

/// Hands previews to an [`Encoder`]; cheap to clone, never blocks.
#[derive(Clone)]
pub struct Previews {
    slot: Arc<Slot>,
}

impl Encoder {
    /// Starts the encoding thread; `deliver` gets each encoded preview.
    pub fn start(
        deliver: impl Fn(&Audience, Arc<EncodedPreview>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let slot = Arc::new(Slot::default());
        let worker = Arc::clone(&slot);
        std::thread::Builder::new()
            .name("preview-encoder".into())
            .spawn(move || encode_loop(&worker, deliver))?;
        Ok(Encoder { slot })
    }

    /// A handle that submits previews.
    pub fn previews(&self) -> Previews {
        Previews {
            slot: Arc::clone(&self.slot),
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        self.slot.lock().closed = true;
        self.slot.wake.notify_one();
    }
}

impl Previews {
    /// Queues a preview, replacing one that still waits.
    pub fn submit(&self, preview: PendingPreview) {
        self.slot.lock().next = Some(preview);
        self.slot.wake.notify_one();
    }
}

fn encode_loop(slot: &Slot, deliver: impl Fn(&Audience, Arc<EncodedPreview>)) {
    loop {
        let pending = {
            let mut waiting = slot.lock();
            loop {
                if waiting.closed {
                    return;
                }
                if let Some(next) = waiting.next.take() {
                    break next;
                }
                waiting = slot.wake.wait(waiting).unwrap_or_else(|p| p.into_inner());
            }
        };
        match EncodedPreview::encode(&pending) {
            Ok(encoded) => deliver(&pending.to, Arc::new(encoded)),
            Err(e) => tracing::debug!(node = %pending.node, error = %e, "preview dropped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(image: Image) -> PendingPreview {
        PendingPreview {
            to: Audience::Client("c".into()),
            image: Arc::new(image),
            node: "7".into(),
            prompt_id: "p".into(),
        }
    }

    fn decode(jpeg: &[u8]) -> image::RgbImage {
        image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)
            .expect("a JPEG")
            .to_rgb8()
    }

    #[test]
    fn frames_have_comfyuis_layouts() {
        let red = Image::filled(1, 4, 6, &[1.0, 0.0, 0.0]).unwrap();
        let p = EncodedPreview::encode(&pending(red)).unwrap();

        let legacy = p.frame(false);
        assert_eq!(&legacy[..8], &[0, 0, 0, 1, 0, 0, 0, 1]);
        let img = decode(&legacy[8..]);
        assert_eq!(img.dimensions(), (6, 4));
        let px = img.get_pixel(2, 2);
        assert!(px[0] > 200 && px[1] < 60 && px[2] < 60, "{px:?}");

        let with = p.frame(true);
        assert_eq!(&with[..4], &[0, 0, 0, 4]);
        let len = u32::from_be_bytes(with[4..8].try_into().unwrap()) as usize;
        let meta: serde_json::Value = serde_json::from_slice(&with[8..8 + len]).unwrap();
        assert_eq!(
            meta,
            serde_json::json!({"node_id": "7", "display_node_id": "7", "prompt_id": "p",
                               "parent_node_id": null, "real_node_id": "7", "image_type": "image/jpeg"})
        );
        assert_eq!(decode(&with[8 + len..]).dimensions(), (6, 4));
    }

    #[test]
    fn large_images_are_scaled_down_and_grey_and_bytes_work() {
        let big = Image::filled(2, 600, 1200, &[0.5]).unwrap();
        let p = EncodedPreview::encode(&pending(big)).unwrap();
        let img = decode(&p.image);
        assert_eq!(img.dimensions(), (512, 256));
        let px = img.get_pixel(10, 10);
        assert!(px[0].abs_diff(128) < 8 && px[0] == px[1], "{px:?}");

        let rgba = Image::from_bytes(1, 2, 3, 4, [0, 255, 0, 9].repeat(6)).unwrap();
        let p = EncodedPreview::encode(&pending(rgba)).unwrap();
        let px = *decode(&p.image).get_pixel(1, 1);
        assert!(px[1] > 200 && px[0] < 60, "{px:?}");
    }

    #[test]
    fn the_encoder_delivers_the_newest_preview() {
        let (tx, rx) = std::sync::mpsc::channel();
        let encoder = Encoder::start(move |to, p| {
            tx.send((to.clone(), p)).unwrap();
        })
        .unwrap();
        let previews = encoder.previews();
        for width in 1..=5 {
            previews.submit(pending(Image::filled(1, 2, width, &[0.2]).unwrap()));
        }
        // The last one always arrives (some before it may have been replaced while waiting).
        let mut last = None;
        while let Ok((to, p)) = rx.recv_timeout(std::time::Duration::from_secs(10)) {
            assert_eq!(to, Audience::Client("c".into()));
            let width = decode(&p.image).width();
            if width == 5 {
                last = Some(width);
                break;
            }
        }
        assert_eq!(last, Some(5));
        drop(encoder);
    }
}
