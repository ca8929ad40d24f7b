//! The options of loading and sampling, their defaults and their rules. Every check of a user-set option
//! lives here and fails with an [`OptionError`] that names the option ([`OptionField`]), so a front end
//! (the graph nodes, a CLI) can point at the input to fix.

use crate::device::{DTypeChoice, DeviceChoice};
use crate::quant::WeightFormat;

/// Output sides are multiples of this many pixels (VAE factor 8 × patch size 2).
pub const OUTPUT_SIDE_MULTIPLE: usize = 16;

/// Largest output side in pixels: OmniGen-v1's position table covers 192 × 192 patches of 16 pixels.
pub const MAX_OUTPUT_SIDE: usize = 3072;

/// The option an [`OptionError`] is about. [`OptionField::name`] is the option's name, which the graph
/// nodes use as their input name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionField {
    /// [`SampleOptions::width`].
    Width,
    /// [`SampleOptions::height`].
    Height,
    /// [`SampleOptions::steps`].
    Steps,
    /// [`SampleOptions::kv_cache`].
    KvCache,
    /// [`LoadOptions::dtype`].
    DType,
    /// [`LoadOptions::device`].
    Device,
}

impl OptionField {
    /// The option's name (`width`, `height`, `steps`, `kv_cache`, `dtype`, `device`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Width => "width",
            Self::Height => "height",
            Self::Steps => "steps",
            Self::KvCache => "kv_cache",
            Self::DType => "dtype",
            Self::Device => "device",
        }
    }
}

impl std::fmt::Display for OptionField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An option value the model cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// A width or height that is not a multiple of 16 in `16..=3072`.
    #[error("{field} {value} must be a multiple of {OUTPUT_SIDE_MULTIPLE} between {OUTPUT_SIDE_MULTIPLE} and {MAX_OUTPUT_SIDE}")]
    OutputSide {
        /// [`OptionField::Width`] or [`OptionField::Height`].
        field: OptionField,
        /// The value given.
        value: usize,
    },
    /// Zero denoising steps.
    #[error("steps {0} must be at least 1")]
    Steps(usize),
    /// A dtype name that is not `auto`, `f32`, `bf16`, `q8`, `q4` (or `f16`, which loading refuses).
    #[error("unknown dtype `{0}` (expected auto, f32, bf16, q8 or q4)")]
    UnknownDType(String),
    /// A device name that is not `auto`, `cpu`, `cuda[:N]` or `metal[:N]`.
    #[error("unknown device `{0}` (expected auto, cpu, cuda:N or metal:N)")]
    UnknownDevice(String),
    /// A KV-cache mode that is not one of [`KvCacheMode::NAMES`].
    #[error("kv_cache '{0}' is not one of reference, exact, off")]
    UnknownKvCache(String),
}

impl OptionError {
    /// The option at fault.
    pub fn field(&self) -> OptionField {
        match self {
            Self::OutputSide { field, .. } => *field,
            Self::Steps(_) => OptionField::Steps,
            Self::UnknownDType(_) => OptionField::DType,
            Self::UnknownDevice(_) => OptionField::Device,
            Self::UnknownKvCache(_) => OptionField::KvCache,
        }
    }
}

/// The names a user may give for a dtype (`LoadOmniGen`'s `dtype`, `--dtype`).
impl DTypeChoice {
    /// Parses `auto`, `f32`/`float32`/`fp32`, `bf16`/`bfloat16`, `f16`/`float16`/`fp16`.
    pub fn parse(s: &str) -> std::result::Result<Self, OptionError> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "default" => Self::Auto,
            "f32" | "float32" | "fp32" => Self::F32,
            "bf16" | "bfloat16" => Self::BF16,
            "f16" | "float16" | "fp16" | "half" => Self::F16,
            other => return Err(OptionError::UnknownDType(other.to_string())),
        })
    }
}

/// The names a user may give for a device.
impl DeviceChoice {
    /// Parses `auto`, `cpu`, `cuda`, `cuda:N`, `metal`, `metal:N`.
    pub fn parse(s: &str) -> std::result::Result<Self, OptionError> {
        let s = s.trim().to_ascii_lowercase();
        let index = |rest: &str| -> std::result::Result<usize, OptionError> {
            if rest.is_empty() {
                return Ok(0);
            }
            rest.strip_prefix(':')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| OptionError::UnknownDevice(s.clone()))
        };
        if s == "auto" {
            Ok(Self::Auto)
        } else if s == "cpu" {
            Ok(Self::Cpu)
        } else if let Some(rest) = s.strip_prefix("cuda") {
            Ok(Self::Cuda(index(rest)?))
        } else if let Some(rest) = s.strip_prefix("metal") {
            Ok(Self::Metal(index(rest)?))
        } else {
            Err(OptionError::UnknownDevice(s))
        }
    }
}

/// Checks an output side (width or height): a multiple of 16 in `16..=3072`.
pub fn check_output_side(field: OptionField, value: usize) -> Result<(), OptionError> {
    if (OUTPUT_SIDE_MULTIPLE..=MAX_OUTPUT_SIDE).contains(&value)
        && value.is_multiple_of(OUTPUT_SIDE_MULTIPLE)
    {
        Ok(())
    } else {
        Err(OptionError::OutputSide { field, value })
    }
}

/// KV-cache behaviour of the sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvCacheMode {
    /// The official default (`use_kv_cache=True`), including its first-step behaviour: on step 0 the
    /// time and image tokens attend only to the condition tokens.
    #[default]
    Reference,
    /// Cached, but numerically equal to running without a cache.
    Exact,
    /// No cache: every step recomputes the condition tokens (`use_kv_cache=False`).
    Off,
}

/// How the CFG branches are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CfgMode {
    /// One forward per branch (official default `separate_cfg_infer=True`); t is rounded to the model dtype.
    #[default]
    Separate,
    /// All branches in one padded batch; they share one LongRoPE factor set.
    Batched,
}

impl KvCacheMode {
    /// The names [`KvCacheMode::parse`] accepts, in the order of the variants.
    pub const NAMES: [&'static str; 3] = ["reference", "exact", "off"];

    /// Parses `reference`, `exact` or `off`.
    pub fn parse(text: &str) -> Result<Self, OptionError> {
        match text {
            "reference" => Ok(Self::Reference),
            "exact" => Ok(Self::Exact),
            "off" => Ok(Self::Off),
            other => Err(OptionError::UnknownKvCache(other.to_string())),
        }
    }
}

/// Options of [`crate::OmniGen::load`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Compute dtype.
    pub dtype: DTypeChoice,
    /// How the decoder's linear weights are stored (full precision, 8 or 4 bits).
    pub weights: WeightFormat,
    /// Device.
    pub device: DeviceChoice,
    /// Keep the decoder layers in host memory and stream them to the device one at a time
    /// (`offload_model`; [`crate::offload`]).
    pub offload_model: bool,
}

impl LoadOptions {
    /// Reads a precision name as `LoadOmniGen`'s `dtype` takes it: a compute dtype (`auto`, `f32`,
    /// `bf16`, …), or `q8`/`q4` for quantized decoder weights with the automatic compute dtype.
    pub fn set_precision(&mut self, text: &str) -> std::result::Result<(), OptionError> {
        if let Some(format) = WeightFormat::parse_quantized(text) {
            self.dtype = DTypeChoice::Auto;
            self.weights = format;
        } else {
            self.dtype = DTypeChoice::parse(text)?;
            self.weights = WeightFormat::Full;
        }
        Ok(())
    }

    /// Refuses float16 before anything is opened ([`crate::Error::F16Unsupported`]).
    pub fn validate(&self) -> crate::Result<()> {
        if self.dtype == DTypeChoice::F16 {
            return Err(crate::Error::F16Unsupported);
        }
        Ok(())
    }
}

/// Options of [`crate::OmniGen::sample`] (defaults = the official pipeline's code defaults, 1024², 50 steps).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOptions {
    /// Output width in pixels (multiple of 16, at most [`MAX_OUTPUT_SIDE`]).
    pub width: usize,
    /// Output height in pixels (multiple of 16, at most [`MAX_OUTPUT_SIDE`]).
    pub height: usize,
    /// Denoising steps (at least 1).
    pub steps: usize,
    /// Text guidance scale (official code default 3.0; docs use 2.5).
    pub guidance_scale: f64,
    /// Image guidance scale (1.6).
    pub img_guidance_scale: f64,
    /// Seed of the initial noise (the crate's generator).
    pub seed: u64,
    /// KV-cache mode.
    pub kv_cache: KvCacheMode,
    /// CFG mode.
    pub cfg: CfgMode,
    /// Keep the condition KV cache in host memory, copied to the device layer by layer
    /// (`offload_kv_cache`).
    pub offload_kv_cache: bool,
    /// Output size = processed size of a condition image ([`crate::Instruction::size_image`], by default
    /// the image at the first placeholder); `width` and `height` are then not used.
    pub use_input_image_size_as_output: bool,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            width: 1024,
            height: 1024,
            steps: 50,
            guidance_scale: 3.0,
            img_guidance_scale: 1.6,
            seed: 0,
            kv_cache: KvCacheMode::Reference,
            cfg: CfgMode::Separate,
            offload_kv_cache: false,
            use_input_image_size_as_output: false,
        }
    }
}

impl SampleOptions {
    /// Checks every option: sizes (unless the output takes an input image's size) and steps. The first
    /// fault is returned.
    pub fn validate(&self) -> Result<(), OptionError> {
        if !self.use_input_image_size_as_output {
            check_output_side(OptionField::Width, self.width)?;
            check_output_side(OptionField::Height, self.height)?;
        }
        if self.steps == 0 {
            return Err(OptionError::Steps(self.steps));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_cache_modes_parse() {
        assert_eq!(KvCacheMode::parse("reference"), Ok(KvCacheMode::Reference));
        assert_eq!(KvCacheMode::parse("off"), Ok(KvCacheMode::Off));
        let err = KvCacheMode::parse("fast").unwrap_err();
        assert_eq!(err.field(), OptionField::KvCache);
        assert_eq!(
            err.to_string(),
            "kv_cache 'fast' is not one of reference, exact, off"
        );
    }

    #[test]
    fn sizes_must_be_multiples_of_16_up_to_3072() {
        assert!(check_output_side(OptionField::Width, 1024).is_ok());
        assert!(check_output_side(OptionField::Width, 3072).is_ok());
        let err = check_output_side(OptionField::Width, 1000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "width 1000 must be a multiple of 16 between 16 and 3072"
        );
        assert_eq!(err.field(), OptionField::Width);
        assert!(check_output_side(OptionField::Height, 3088).is_err());
        assert!(check_output_side(OptionField::Height, 0).is_err());
    }

    #[test]
    fn sample_options_name_the_field_at_fault() {
        assert_eq!(SampleOptions::default().validate(), Ok(()));
        let steps = SampleOptions {
            steps: 0,
            ..SampleOptions::default()
        };
        assert_eq!(steps.validate().unwrap_err().field(), OptionField::Steps);
        let height = SampleOptions {
            height: 1000,
            ..SampleOptions::default()
        };
        assert_eq!(height.validate().unwrap_err().field(), OptionField::Height);
        // The size of an input image is used instead: width/height are not looked at.
        let from_image = SampleOptions {
            width: 0,
            use_input_image_size_as_output: true,
            ..SampleOptions::default()
        };
        assert_eq!(from_image.validate(), Ok(()));
    }
}
