//! Error values of the crate: every failure says what went wrong and where.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while loading or running OmniGen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file (config, adapter config) is malformed or lacks a field.
    #[error("invalid JSON in `{path}`: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A model (or VAE) folder lacks files of the layout it must have.
    #[error("`{path}` is not a complete OmniGen model folder: missing {}", .missing.join(", "))]
    Layout {
        /// The folder.
        path: PathBuf,
        /// The files not found, relative to `path`, in the order the loader needs them.
        missing: Vec<String>,
    },
    /// A safetensors file is malformed (bad header, unknown dtype, data past the end of the file).
    #[error("invalid safetensors file `{path}`: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong (names the tensor when one is at fault).
        message: String,
    },
    /// A tensor the model needs is absent from the checkpoint.
    #[error("tensor `{name}` (expected shape {expected:?}) is missing from {source_desc}")]
    MissingTensor {
        /// Name the model asked for (official naming).
        name: String,
        /// The shape it expected.
        expected: Vec<usize>,
        /// Which files were searched.
        source_desc: String,
    },
    /// A tensor has a different shape than the model configuration implies.
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?} (from the model config)")]
    ShapeMismatch {
        /// Tensor name.
        name: String,
        /// Expected shape.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// float16 was requested.
    #[error(
        "float16 is not supported: OmniGen overflows in f16 and produces black images \
         (upstream issue #108); use bf16 (GPU) or f32"
    )]
    F16Unsupported,
    /// A device could not be opened.
    #[error("device `{device}` is not available: {message}")]
    Device {
        /// The requested device.
        device: String,
        /// Why.
        message: String,
    },
    /// An option of loading or sampling is out of its range ([`crate::OptionError::field`] names it).
    #[error(transparent)]
    InvalidOption(#[from] crate::options::OptionError),
    /// The noise given to [`crate::OmniGen::sample`] does not have the output's latent shape.
    #[error("noise has shape {found:?}, the {height}x{width} (HxW) output needs {expected:?}")]
    NoiseShape {
        /// The noise's shape.
        found: Vec<usize>,
        /// The latent shape of the output ([`crate::OmniGen::latent_shape`]).
        expected: Vec<usize>,
        /// Output height in pixels.
        height: usize,
        /// Output width in pixels.
        width: usize,
    },
    /// Invalid input tensors or values (shapes the model cannot take).
    #[error("invalid input: {0}")]
    Input(String),
    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The progress callback asked to stop.
    #[error("sampling cancelled at step {step}")]
    Cancelled {
        /// Steps completed before cancellation.
        step: usize,
    },
    /// Prompt processing failed (template, placeholders, tokenizer, image preprocessing).
    #[error(transparent)]
    Processor(#[from] crate::processor::ProcessorError),
    /// A training example is unusable (bad JSON line, missing image, placeholder/image mismatch).
    #[error(transparent)]
    Data(#[from] crate::train::DataError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(candle_core::Error),
}

impl From<candle_core::Error> for Error {
    /// A loading error that travelled through candle's `VarBuilder` comes back as itself
    /// (`MissingTensor`, `ShapeMismatch`, ...); any other candle error becomes `Error::Candle`.
    fn from(e: candle_core::Error) -> Self {
        from_candle(e)
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

// Carrying the crate's typed loading errors through candle's `VarBuilder`, whose backends must return
// `candle_core::Error`: the error travels boxed inside candle's `WrappedContext` and is unboxed again
// when it re-enters the crate (`From<candle_core::Error> for Error`), so callers still see
// `Error::MissingTensor`, `Error::ShapeMismatch`, ... naming the file and the tensor.

/// What is written as context of a boxed loading error (only seen if it escapes the crate unconverted).
const CONTEXT: &str = "omnigen-model weight loading";

/// Boxes `e` into a candle error for a `VarBuilder` backend.
pub(crate) fn into_candle(e: Error) -> candle_core::Error {
    match e {
        // Already a candle error: no need to box it.
        Error::Candle(inner) => inner,
        e => candle_core::Error::WrappedContext {
            wrapped: Box::new(e),
            context: CONTEXT.to_string(),
        },
    }
}

/// A candle error as the crate's error: a boxed loading error comes back as itself, any other error as
/// `Error::Candle`.
pub(crate) fn from_candle(e: candle_core::Error) -> Error {
    match e {
        candle_core::Error::WrappedContext { wrapped, context } => {
            match wrapped.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(wrapped) => {
                    Error::Candle(candle_core::Error::WrappedContext { wrapped, context })
                }
            }
        }
        candle_core::Error::WithBacktrace { inner, backtrace } => match from_candle(*inner) {
            Error::Candle(inner) => Error::Candle(candle_core::Error::WithBacktrace {
                inner: Box::new(inner),
                backtrace,
            }),
            ours => ours,
        },
        other => Error::Candle(other),
    }
}

#[cfg(test)]
mod candle_carrier_tests {
    use super::*;

    #[test]
    fn a_loading_error_survives_the_round_trip() {
        let e = Error::ShapeMismatch {
            name: "w".into(),
            expected: vec![2],
            found: vec![3],
        };
        let back = from_candle(into_candle(e));
        assert!(
            matches!(&back, Error::ShapeMismatch { name, .. } if name == "w"),
            "{back}"
        );
    }

    #[test]
    fn other_candle_errors_stay_candle_errors() {
        let back = from_candle(candle_core::Error::Msg("boom".into()));
        assert!(matches!(back, Error::Candle(_)), "{back}");
        assert_eq!(back.to_string(), "boom");
    }
}
