//! Values that flow along a graph's links.
//!
//! The engine knows a handful of concrete kinds (numbers, text, images, masks, JSON, lists) and carries
//! everything else — a loaded model, a latent tensor, a conditioning — as an [`OpaqueValue`] it does not
//! look inside. Values are cheap to clone: large payloads sit behind an [`Arc`].

use std::any::Any;
use std::fmt::Debug;
use std::sync::{Arc, OnceLock};

/// A value passed between nodes.
#[derive(Debug, Clone)]
pub enum Value {
    /// An integer. `i128` holds both the full `i64` and the full `u64` range: ComfyUI sends seeds up to
    /// 2^64−1.
    Int(i128),
    /// A floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    String(String),
    /// A batch of images (ComfyUI's `IMAGE`).
    Image(Arc<Image>),
    /// A batch of masks (ComfyUI's `MASK`).
    Mask(Arc<Mask>),
    /// Arbitrary JSON: a literal given to a `*` (any-type) input, or a hidden input filled from `extra_data`.
    Json(serde_json::Value),
    /// A list of values.
    List(Vec<Value>),
    /// A value of a type the engine does not know (a model, a latent, …).
    Opaque(Arc<dyn OpaqueValue>),
}

impl Value {
    /// Wraps a node-specific value.
    pub fn opaque<T: OpaqueValue>(value: T) -> Self {
        Value::Opaque(Arc::new(value))
    }

    /// A short name of this value's kind for error messages: `INT`, `FLOAT`, `BOOLEAN`, `STRING`, `IMAGE`,
    /// `MASK`, `JSON`, `LIST`, or the opaque value's own type name.
    pub fn kind_name(&self) -> &str {
        match self {
            Value::Int(_) => "INT",
            Value::Float(_) => "FLOAT",
            Value::Bool(_) => "BOOLEAN",
            Value::String(_) => "STRING",
            Value::Image(_) => "IMAGE",
            Value::Mask(_) => "MASK",
            Value::Json(_) => "JSON",
            Value::List(_) => "LIST",
            Value::Opaque(o) => o.type_name(),
        }
    }

    /// Approximate heap size in bytes, used to bound the output cache.
    pub fn size_bytes(&self) -> usize {
        let inline = std::mem::size_of::<Value>();
        inline
            + match self {
                Value::Int(_) | Value::Float(_) | Value::Bool(_) => 0,
                Value::String(s) => s.len(),
                Value::Image(i) => i.size_bytes(),
                Value::Mask(m) => m.data.len() * 4,
                Value::Json(j) => json_size(j),
                Value::List(l) => l.iter().map(Value::size_bytes).sum(),
                Value::Opaque(o) => o.size_bytes(),
            }
    }

    /// Borrows an opaque value as `T`, if it is one.
    pub fn downcast_ref<T: OpaqueValue>(&self) -> Option<&T> {
        match self {
            Value::Opaque(o) => o.downcast_ref::<T>(),
            _ => None,
        }
    }

    /// A compact JSON rendering for reports (`execution_error.current_inputs`): scalars as themselves,
    /// images/masks/opaque values as a short description rather than their data.
    pub fn summary(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Value::Int(i) => int_to_json(*i),
            Value::Float(f) => json!(f),
            Value::Bool(b) => json!(b),
            Value::String(s) => json!(s),
            Value::Image(i) => {
                let (b, h, w, c) = i.dims();
                json!(format!("IMAGE[{b}, {h}, {w}, {c}]"))
            }
            Value::Mask(m) => {
                let (b, h, w) = m.dims();
                json!(format!("MASK[{b}, {h}, {w}]"))
            }
            Value::Json(j) => j.clone(),
            Value::List(l) => serde_json::Value::Array(l.iter().map(Value::summary).collect()),
            Value::Opaque(o) => json!(format!("{} ({} bytes)", o.type_name(), o.size_bytes())),
        }
    }
}

/// Converts an integer to a JSON number without losing precision (the workspace enables serde_json's
/// `arbitrary_precision`, so `u64::MAX` and beyond survive).
pub fn int_to_json(i: i128) -> serde_json::Value {
    serde_json::to_value(i).unwrap_or_else(|_| serde_json::Value::String(i.to_string()))
}

fn json_size(j: &serde_json::Value) -> usize {
    match j {
        serde_json::Value::String(s) => s.len() + 24,
        serde_json::Value::Array(a) => 24 + a.iter().map(json_size).sum::<usize>(),
        serde_json::Value::Object(o) => {
            48 + o.iter().map(|(k, v)| k.len() + json_size(v)).sum::<usize>()
        }
        _ => 16,
    }
}

/// A value of a type the engine does not interpret: a loaded model, a latent tensor, a prompt structure.
///
/// Implementors name their ComfyUI type (`"MODEL"`, `"LATENT"`, …) and report their size so the cache can
/// budget memory. Retrieve the concrete type with [`Value::downcast_ref`], [`downcast_opaque`] or
/// [`crate::Inputs::get_opaque`].
pub trait OpaqueValue: Any + Send + Sync + Debug {
    /// The ComfyUI type name of this value, e.g. `"LATENT"`.
    fn type_name(&self) -> &str;
    /// Approximate memory held by this value in bytes (host and device memory together).
    fn size_bytes(&self) -> usize;
}

impl dyn OpaqueValue {
    /// Borrows this value as `T`, if it is one.
    pub fn downcast_ref<T: OpaqueValue>(&self) -> Option<&T> {
        let any: &dyn Any = self;
        any.downcast_ref::<T>()
    }

    /// Whether this value is a `T`.
    pub fn is<T: OpaqueValue>(&self) -> bool {
        let any: &dyn Any = self;
        any.is::<T>()
    }
}

/// Turns a shared opaque value into a shared `T`, or gives it back unchanged if it is not a `T`.
pub fn downcast_opaque<T: OpaqueValue>(
    value: Arc<dyn OpaqueValue>,
) -> Result<Arc<T>, Arc<dyn OpaqueValue>> {
    let original = Arc::clone(&value);
    let any: Arc<dyn Any + Send + Sync> = value;
    any.downcast::<T>().map_err(|_| original)
}

/// Errors building an [`Image`] or [`Mask`] from raw data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValueError {
    /// The data length does not match the declared dimensions.
    #[error("{what}: expected {expected} values for dimensions {dims}, got {actual}")]
    SizeMismatch {
        /// `"image"` or `"mask"`.
        what: &'static str,
        /// The dimensions, formatted.
        dims: String,
        /// Values expected.
        expected: usize,
        /// Values given.
        actual: usize,
    },
    /// A dimension is zero or the channel count is not 1, 3 or 4.
    #[error("{what}: invalid dimensions {dims}: {why}")]
    BadDims {
        /// `"image"` or `"mask"`.
        what: &'static str,
        /// The dimensions, formatted.
        dims: String,
        /// Why they are invalid.
        why: &'static str,
    },
}

/// A batch of images in ComfyUI's layout: `[batch, height, width, channels]`, row-major, `f32` values in
/// `0.0..=1.0`. Channels are 3 (RGB) or 4 (RGBA); 1 (grey) is accepted for completeness.
///
/// An image made from 8-bit data ([`Image::from_bytes`], [`Image::from_gray_bytes`]) keeps those bytes,
/// a quarter of the float size (a twelfth for grey shown as RGB), and makes the `f32` values only when a
/// node first asks for them ([`Image::data`]); nodes that read bytes ([`Image::bytes`]) never pay for
/// floats.
#[derive(Debug, Clone)]
pub struct Image {
    batch: usize,
    height: usize,
    width: usize,
    channels: usize,
    pixels: Pixels,
}

/// How an image's values are held.
#[derive(Debug, Clone)]
enum Pixels {
    /// The `f32` values themselves.
    Float(Vec<f32>),
    /// 8-bit values with `stored` channels per pixel (the image's own count, or 1 for grey shown as
    /// RGB), and the `f32` values once someone asked for them.
    Bytes {
        bytes: Vec<u8>,
        stored: usize,
        float: OnceLock<Vec<f32>>,
    },
}

impl PartialEq for Image {
    fn eq(&self, other: &Self) -> bool {
        if self.dims() != other.dims() {
            return false;
        }
        match (&self.pixels, &other.pixels) {
            (
                Pixels::Bytes {
                    bytes: a,
                    stored: sa,
                    ..
                },
                Pixels::Bytes {
                    bytes: b,
                    stored: sb,
                    ..
                },
            ) if sa == sb => a == b,
            _ => self.data() == other.data(),
        }
    }
}

/// 8-bit values as floats in `0..=1`, each repeated `repeat` times (grey shown as RGB).
fn expand(bytes: &[u8], repeat: usize) -> Vec<f32> {
    let float = |v: u8| f32::from(v) / 255.0;
    if repeat == 1 {
        return bytes.iter().copied().map(float).collect();
    }
    let mut data = Vec::with_capacity(bytes.len() * repeat);
    for &v in bytes {
        data.extend(std::iter::repeat_n(float(v), repeat));
    }
    data
}

impl Image {
    fn check_dims(
        batch: usize,
        height: usize,
        width: usize,
        channels: usize,
        len: usize,
    ) -> Result<(), ValueError> {
        let dims = format!("[{batch}, {height}, {width}, {channels}]");
        if batch == 0 || height == 0 || width == 0 {
            return Err(ValueError::BadDims {
                what: "image",
                dims,
                why: "batch, height and width must be at least 1",
            });
        }
        if !matches!(channels, 1 | 3 | 4) {
            return Err(ValueError::BadDims {
                what: "image",
                dims,
                why: "channels must be 1, 3 or 4",
            });
        }
        let expected =
            checked_product(&[batch, height, width, channels]).ok_or(ValueError::BadDims {
                what: "image",
                dims: dims.clone(),
                why: "too large",
            })?;
        if len != expected {
            return Err(ValueError::SizeMismatch {
                what: "image",
                dims,
                expected,
                actual: len,
            });
        }
        Ok(())
    }

    /// Builds an image batch, checking that `data.len() == batch*height*width*channels`.
    pub fn new(
        batch: usize,
        height: usize,
        width: usize,
        channels: usize,
        data: Vec<f32>,
    ) -> Result<Self, ValueError> {
        Self::check_dims(batch, height, width, channels, data.len())?;
        Ok(Image {
            batch,
            height,
            width,
            channels,
            pixels: Pixels::Float(data),
        })
    }

    /// Builds an image batch from 8-bit values (`v / 255` each), checking that
    /// `bytes.len() == batch*height*width*channels`. The bytes are kept as they are.
    pub fn from_bytes(
        batch: usize,
        height: usize,
        width: usize,
        channels: usize,
        bytes: Vec<u8>,
    ) -> Result<Self, ValueError> {
        Self::check_dims(batch, height, width, channels, bytes.len())?;
        Ok(Image {
            batch,
            height,
            width,
            channels,
            pixels: Pixels::Bytes {
                bytes,
                stored: channels,
                float: OnceLock::new(),
            },
        })
    }

    /// Builds an RGB image batch from 8-bit grey values (one byte per pixel, repeated over the three
    /// channels), checking that `bytes.len() == batch*height*width`. Keeps one byte per pixel.
    pub fn from_gray_bytes(
        batch: usize,
        height: usize,
        width: usize,
        bytes: Vec<u8>,
    ) -> Result<Self, ValueError> {
        Self::check_dims(batch, height, width, 1, bytes.len())?;
        Ok(Image {
            batch,
            height,
            width,
            channels: 3,
            pixels: Pixels::Bytes {
                bytes,
                stored: 1,
                float: OnceLock::new(),
            },
        })
    }

    /// A batch filled with one colour (`color.len()` is the channel count).
    pub fn filled(
        batch: usize,
        height: usize,
        width: usize,
        color: &[f32],
    ) -> Result<Self, ValueError> {
        let pixels = checked_product(&[batch, height, width]).unwrap_or(0);
        let data = color
            .iter()
            .copied()
            .cycle()
            .take(pixels.saturating_mul(color.len()))
            .collect();
        Image::new(batch, height, width, color.len(), data)
    }

    /// `(batch, height, width, channels)`.
    pub fn dims(&self) -> (usize, usize, usize, usize) {
        (self.batch, self.height, self.width, self.channels)
    }
    /// Number of images in the batch.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }
    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }
    /// Channels per pixel.
    pub fn channels(&self) -> usize {
        self.channels
    }
    /// All values, `[B,H,W,C]` row-major (made from the 8-bit values on first use, then kept).
    pub fn data(&self) -> &[f32] {
        match &self.pixels {
            Pixels::Float(data) => data,
            Pixels::Bytes {
                bytes,
                stored,
                float,
            } => float.get_or_init(|| expand(bytes, self.channels / stored)),
        }
    }
    /// Consumes the image, returning its values.
    pub fn into_data(self) -> Vec<f32> {
        match self.pixels {
            Pixels::Float(data) => data,
            Pixels::Bytes {
                bytes,
                stored,
                float,
            } => float
                .into_inner()
                .unwrap_or_else(|| expand(&bytes, self.channels / stored)),
        }
    }
    /// The 8-bit values of the batch and their channels per pixel (1 for grey shown as RGB), if the
    /// image was made from bytes.
    pub fn bytes(&self) -> Option<(&[u8], usize)> {
        match &self.pixels {
            Pixels::Float(_) => None,
            Pixels::Bytes { bytes, stored, .. } => Some((bytes, *stored)),
        }
    }
    /// Bytes of memory the pixel values take now.
    pub fn size_bytes(&self) -> usize {
        match &self.pixels {
            Pixels::Float(data) => data.len() * 4,
            Pixels::Bytes { bytes, float, .. } => {
                bytes.len() + float.get().map_or(0, |f| f.len() * 4)
            }
        }
    }
    /// The values of image `index` of the batch (`[H,W,C]`), if it exists.
    pub fn frame(&self, index: usize) -> Option<&[f32]> {
        let len = self.height * self.width * self.channels;
        self.data().get(index * len..(index + 1) * len)
    }
    /// The channel values of one pixel, if it exists.
    pub fn pixel(&self, index: usize, y: usize, x: usize) -> Option<&[f32]> {
        if index >= self.batch || y >= self.height || x >= self.width {
            return None;
        }
        let start = ((index * self.height + y) * self.width + x) * self.channels;
        self.data().get(start..start + self.channels)
    }
}

/// A batch of masks: `[batch, height, width]`, row-major, `f32` values in `0.0..=1.0`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    batch: usize,
    height: usize,
    width: usize,
    data: Vec<f32>,
}

impl Mask {
    /// Builds a mask batch, checking that `data.len() == batch*height*width`.
    pub fn new(
        batch: usize,
        height: usize,
        width: usize,
        data: Vec<f32>,
    ) -> Result<Self, ValueError> {
        let dims = format!("[{batch}, {height}, {width}]");
        if batch == 0 || height == 0 || width == 0 {
            return Err(ValueError::BadDims {
                what: "mask",
                dims,
                why: "batch, height and width must be at least 1",
            });
        }
        let expected = checked_product(&[batch, height, width]).ok_or(ValueError::BadDims {
            what: "mask",
            dims: dims.clone(),
            why: "too large",
        })?;
        if data.len() != expected {
            return Err(ValueError::SizeMismatch {
                what: "mask",
                dims,
                expected,
                actual: data.len(),
            });
        }
        Ok(Mask {
            batch,
            height,
            width,
            data,
        })
    }

    /// `(batch, height, width)`.
    pub fn dims(&self) -> (usize, usize, usize) {
        (self.batch, self.height, self.width)
    }
    /// All values, `[B,H,W]` row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    /// Consumes the mask, returning its values.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }
    /// The values of mask `index` of the batch (`[H,W]`), if it exists.
    pub fn frame(&self, index: usize) -> Option<&[f32]> {
        let len = self.height * self.width;
        self.data.get(index * len..(index + 1) * len)
    }
    /// One value, if it exists.
    pub fn at(&self, index: usize, y: usize, x: usize) -> Option<f32> {
        if index >= self.batch || y >= self.height || x >= self.width {
            return None;
        }
        self.data
            .get((index * self.height + y) * self.width + x)
            .copied()
    }
}

fn checked_product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Latent(usize);
    impl OpaqueValue for Latent {
        fn type_name(&self) -> &str {
            "LATENT"
        }
        fn size_bytes(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn image_checks_sizes_and_indexes_pixels() {
        assert!(matches!(
            Image::new(1, 2, 2, 3, vec![0.0; 11]),
            Err(ValueError::SizeMismatch {
                expected: 12,
                actual: 11,
                ..
            })
        ));
        assert!(Image::new(1, 2, 2, 2, vec![0.0; 8]).is_err());
        let data: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let img = Image::new(2, 2, 2, 3, data).unwrap();
        assert_eq!(img.pixel(1, 1, 0), Some(&[18.0, 19.0, 20.0][..]));
        assert_eq!(img.frame(1).map(|f| f[0]), Some(12.0));
        assert_eq!(img.pixel(2, 0, 0), None);
    }

    #[test]
    fn byte_images_keep_their_bytes_and_make_floats_on_demand() {
        let img = Image::from_bytes(1, 1, 2, 3, vec![0, 51, 255, 0, 0, 0]).unwrap();
        assert_eq!(img.size_bytes(), 6);
        assert_eq!(img.bytes(), Some((&[0, 51, 255, 0, 0, 0][..], 3)));
        assert_eq!(img.pixel(0, 0, 0), Some(&[0.0, 0.2, 1.0][..]));
        assert_eq!(img.size_bytes(), 6 + 6 * 4);
        let floats = Image::new(1, 1, 2, 3, vec![0.0, 0.2, 1.0, 0.0, 0.0, 0.0]).unwrap();
        assert_eq!(img, floats);
        assert_eq!(img.clone().into_data(), floats.into_data());
        assert!(Image::from_bytes(1, 1, 2, 3, vec![0; 5]).is_err());

        let gray = Image::from_gray_bytes(1, 1, 2, vec![0, 255]).unwrap();
        assert_eq!(gray.dims(), (1, 1, 2, 3));
        assert_eq!(gray.size_bytes(), 2);
        assert_eq!(gray.data(), &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        assert_ne!(gray, Image::from_bytes(1, 1, 2, 3, vec![0; 6]).unwrap());
    }

    #[test]
    fn mask_checks_sizes() {
        assert!(Mask::new(1, 2, 2, vec![0.0; 3]).is_err());
        let m = Mask::new(1, 2, 2, vec![0.0, 0.25, 0.5, 1.0]).unwrap();
        assert_eq!(m.at(0, 1, 0), Some(0.5));
    }

    #[test]
    fn opaque_downcasts() {
        let v = Value::opaque(Latent(10));
        assert_eq!(v.kind_name(), "LATENT");
        assert_eq!(v.downcast_ref::<Latent>().map(|l| l.0), Some(10));
        let Value::Opaque(arc) = v else { panic!() };
        let typed = downcast_opaque::<Latent>(arc).unwrap();
        assert_eq!(typed.0, 10);
    }

    #[test]
    fn u64_max_survives_json() {
        let j = int_to_json(u64::MAX as i128);
        assert_eq!(j.to_string(), "18446744073709551615");
    }
}
