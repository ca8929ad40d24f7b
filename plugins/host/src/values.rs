//! Host-side plain values exchanged with plugins, independent of the generated bindings.

use crate::bindings::v0_1::omnigen::plugin::types as wit;

/// Pixel layout of an 8-bit image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 1 channel.
    Gray8,
    /// 3 channels.
    Rgb8,
    /// 4 channels (straight alpha).
    Rgba8,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn channels(self) -> u64 {
        match self {
            PixelFormat::Gray8 => 1,
            PixelFormat::Rgb8 => 3,
            PixelFormat::Rgba8 => 4,
        }
    }

    /// The format with `channels` channels, if any.
    pub fn from_channels(channels: usize) -> Option<Self> {
        match channels {
            1 => Some(PixelFormat::Gray8),
            3 => Some(PixelFormat::Rgb8),
            4 => Some(PixelFormat::Rgba8),
            _ => None,
        }
    }
}

/// One 8-bit image, row-major and tightly packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PixelImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixel layout.
    pub format: PixelFormat,
    /// `width * height * channels` bytes.
    pub data: Vec<u8>,
}

/// One 8-bit single-channel mask (255 = fully selected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PixelMask {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height` bytes.
    pub data: Vec<u8>,
}

/// A value on a plugin port.
#[derive(Debug, Clone, PartialEq)]
pub enum PluginValue {
    /// An image.
    Image(PixelImage),
    /// A mask.
    Mask(PixelMask),
    /// Text.
    Text(String),
    /// An integer.
    Integer(i64),
    /// A number.
    Number(f64),
    /// A boolean.
    Boolean(bool),
    /// A serialized JSON document.
    Json(String),
}

/// The kind of a port or value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortKind {
    /// [`PluginValue::Image`].
    Image,
    /// [`PluginValue::Mask`].
    Mask,
    /// [`PluginValue::Text`].
    Text,
    /// [`PluginValue::Integer`].
    Integer,
    /// [`PluginValue::Number`].
    Number,
    /// [`PluginValue::Boolean`].
    Boolean,
    /// [`PluginValue::Json`].
    Json,
}

impl PortKind {
    /// The graph type name of this kind (`IMAGE`, `MASK`, `STRING`, `INT`, `FLOAT`, `BOOLEAN`, `JSON`).
    pub fn graph_type(self) -> &'static str {
        match self {
            PortKind::Image => "IMAGE",
            PortKind::Mask => "MASK",
            PortKind::Text => "STRING",
            PortKind::Integer => "INT",
            PortKind::Number => "FLOAT",
            PortKind::Boolean => "BOOLEAN",
            PortKind::Json => "JSON",
        }
    }

    /// The WIT name of this kind (`image`, `mask`, `text`, …), used in messages about plugins.
    pub fn wit_name(self) -> &'static str {
        match self {
            PortKind::Image => "image",
            PortKind::Mask => "mask",
            PortKind::Text => "text",
            PortKind::Integer => "integer",
            PortKind::Number => "number",
            PortKind::Boolean => "boolean",
            PortKind::Json => "json",
        }
    }
}

impl PluginValue {
    /// The kind of this value.
    pub fn kind(&self) -> PortKind {
        match self {
            PluginValue::Image(_) => PortKind::Image,
            PluginValue::Mask(_) => PortKind::Mask,
            PluginValue::Text(_) => PortKind::Text,
            PluginValue::Integer(_) => PortKind::Integer,
            PluginValue::Number(_) => PortKind::Number,
            PluginValue::Boolean(_) => PortKind::Boolean,
            PluginValue::Json(_) => PortKind::Json,
        }
    }
}

// Conversions to and from the generated types move the byte buffers; nothing is copied.

impl From<wit::PixelFormat> for PixelFormat {
    fn from(f: wit::PixelFormat) -> Self {
        match f {
            wit::PixelFormat::Gray8 => PixelFormat::Gray8,
            wit::PixelFormat::Rgb8 => PixelFormat::Rgb8,
            wit::PixelFormat::Rgba8 => PixelFormat::Rgba8,
        }
    }
}

impl From<PixelFormat> for wit::PixelFormat {
    fn from(f: PixelFormat) -> Self {
        match f {
            PixelFormat::Gray8 => wit::PixelFormat::Gray8,
            PixelFormat::Rgb8 => wit::PixelFormat::Rgb8,
            PixelFormat::Rgba8 => wit::PixelFormat::Rgba8,
        }
    }
}

impl From<wit::ValueKind> for PortKind {
    fn from(k: wit::ValueKind) -> Self {
        match k {
            wit::ValueKind::Image => PortKind::Image,
            wit::ValueKind::Mask => PortKind::Mask,
            wit::ValueKind::Text => PortKind::Text,
            wit::ValueKind::Integer => PortKind::Integer,
            wit::ValueKind::Number => PortKind::Number,
            wit::ValueKind::Boolean => PortKind::Boolean,
            wit::ValueKind::Json => PortKind::Json,
        }
    }
}

impl From<PluginValue> for wit::Value {
    fn from(v: PluginValue) -> Self {
        match v {
            PluginValue::Image(i) => wit::Value::Image(wit::Image {
                width: i.width,
                height: i.height,
                format: i.format.into(),
                data: i.data,
            }),
            PluginValue::Mask(m) => wit::Value::Mask(wit::Mask {
                width: m.width,
                height: m.height,
                data: m.data,
            }),
            PluginValue::Text(s) => wit::Value::Text(s),
            PluginValue::Integer(i) => wit::Value::Integer(i),
            PluginValue::Number(n) => wit::Value::Number(n),
            PluginValue::Boolean(b) => wit::Value::Boolean(b),
            PluginValue::Json(s) => wit::Value::Json(s),
        }
    }
}

impl From<wit::Value> for PluginValue {
    fn from(v: wit::Value) -> Self {
        match v {
            wit::Value::Image(i) => PluginValue::Image(PixelImage {
                width: i.width,
                height: i.height,
                format: i.format.into(),
                data: i.data,
            }),
            wit::Value::Mask(m) => PluginValue::Mask(PixelMask {
                width: m.width,
                height: m.height,
                data: m.data,
            }),
            wit::Value::Text(s) => PluginValue::Text(s),
            wit::Value::Integer(i) => PluginValue::Integer(i),
            wit::Value::Number(n) => PluginValue::Number(n),
            wit::Value::Boolean(b) => PluginValue::Boolean(b),
            wit::Value::Json(s) => PluginValue::Json(s),
        }
    }
}
