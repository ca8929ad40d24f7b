//! Errors of the prompt processor: every failure names what is wrong and where.

use std::path::PathBuf;

/// Result alias of the processor.
pub type ProcessorResult<T> = std::result::Result<T, ProcessorError>;

/// Everything that can go wrong while turning prompts and images into model inputs.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// `tokenizer.json` could not be read or parsed.
    #[error("cannot load tokenizer `{path}`: {message}")]
    TokenizerLoad {
        /// The file.
        path: PathBuf,
        /// What the tokenizers library said.
        message: String,
    },
    /// The tokenizer failed on a piece of text.
    #[error("tokenizer failed on {what}: {message}")]
    Tokenize {
        /// Which text (e.g. "prompt 0, chunk 2").
        what: String,
        /// What the tokenizers library said.
        message: String,
    },
    /// The placeholder ids of a prompt are not exactly `1..=K`.
    #[error(
        "prompt {prompt}: image placeholders must be numbered 1..K without gaps \
         (`<img><|image_1|></img>`, `<|image_2|>`, ...), found ids {found:?}"
    )]
    PlaceholderIds {
        /// Prompt index in the request.
        prompt: usize,
        /// The distinct ids found, sorted.
        found: Vec<u64>,
    },
    /// A placeholder number does not fit in an integer.
    #[error("prompt {prompt}: image placeholder number `{text}` is too large")]
    PlaceholderTooLarge {
        /// Prompt index in the request.
        prompt: usize,
        /// The digits.
        text: String,
    },
    /// The number of distinct placeholders differs from the number of images given.
    #[error(
        "prompt {prompt}: {placeholders} distinct image placeholder(s) but {images} image(s) given"
    )]
    ImageCountMismatch {
        /// Prompt index in the request.
        prompt: usize,
        /// Distinct placeholder ids in the prompt.
        placeholders: usize,
        /// Images given for it.
        images: usize,
    },
    /// A processed image size is not a positive multiple of 16.
    #[error("prompt {prompt}, image {image}: processed size {height}x{width} (HxW) is not a positive multiple of 16")]
    BadImageSize {
        /// Prompt index.
        prompt: usize,
        /// Image index (0-based, i.e. placeholder id - 1).
        image: usize,
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
    },
    /// The requested output size is not a multiple of 16 in `16..=3072` ([`crate::options::check_output_side`]).
    #[error("output size {height}x{width} (HxW) must be multiples of 16 between 16 and 3072")]
    BadOutputSize {
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
    },
    /// `use_input_image_size_as_output` was asked for a prompt without (that) image.
    #[error("prompt {prompt}: use_input_image_size_as_output needs the input image whose size the output takes")]
    InputSizeNeedsImage {
        /// Prompt index.
        prompt: usize,
    },
    /// Prompts of one batch would produce different output sizes.
    #[error(
        "all prompts of a batch must share one output size, got {first:?} and {other:?} (HxW)"
    )]
    MixedOutputSizes {
        /// Size of prompt 0.
        first: (usize, usize),
        /// A different size.
        other: (usize, usize),
    },
    /// `ProcessedBranch::gather` was given no item for an image a span needs.
    #[error("no item given for prompt {prompt}, image {image}")]
    MissingImage {
        /// Prompt index.
        prompt: usize,
        /// Image index (0-based).
        image: usize,
    },
    /// The request holds no prompt.
    #[error("the request holds no prompt")]
    EmptyRequest,
    /// An input image cannot be preprocessed (empty, or so thin that a side would shrink to 0 pixels).
    #[error("image of {width}x{height} (WxH) cannot be preprocessed with max_input_image_size {max_size}: {reason}")]
    BadImage {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The limit used.
        max_size: u32,
        /// Why.
        reason: String,
    },
    /// `max_input_image_size` must be at least 16.
    #[error("max_input_image_size must be at least 16, got {0}")]
    BadMaxImageSize(u32),
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}
