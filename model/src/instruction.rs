//! [`Instruction`]: OmniGen's interleaved text-and-images prompt, what [`crate::OmniGen::sample`] takes.

use crate::latent::Latent;
use crate::processor::DEFAULT_NEGATIVE_PROMPT;

/// An instruction with `<img><|image_k|></img>` placeholders, its condition images as latents
/// (`images[k-1]` fills `<|image_k|>`), the negative prompt and whether image guidance is used.
#[derive(Debug, Clone)]
pub struct Instruction {
    /// The instruction text.
    pub text: String,
    /// Condition-image latents (from [`crate::Vae::encode`]).
    pub images: Vec<Latent>,
    /// Negative prompt of the uncond branch; `None` = OmniGen's default ([`DEFAULT_NEGATIVE_PROMPT`]).
    pub negative_prompt: Option<String>,
    /// Add the image-only guidance branch when there are images (official default: true).
    pub use_img_guidance: bool,
    /// The image whose size the output takes under
    /// [`crate::SampleOptions::use_input_image_size_as_output`]: `None` = the image at the first
    /// placeholder (the reference's rule), `Some(i)` = `images[i]` (e.g. a few-shot query's own first
    /// picture, after the examples' images).
    pub size_image: Option<usize>,
}

impl Instruction {
    /// A text-only instruction with defaults.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            images: Vec::new(),
            negative_prompt: None,
            use_img_guidance: true,
            size_image: None,
        }
    }

    /// Sets the condition images.
    pub fn with_images(mut self, images: Vec<Latent>) -> Self {
        self.images = images;
        self
    }

    /// Sets the negative prompt.
    pub fn with_negative_prompt(mut self, negative: impl Into<String>) -> Self {
        self.negative_prompt = Some(negative.into());
        self
    }

    /// Switches image guidance.
    pub fn with_img_guidance(mut self, on: bool) -> Self {
        self.use_img_guidance = on;
        self
    }

    /// Sets the image whose size the output takes (see [`Instruction::size_image`]).
    pub fn with_size_image(mut self, index: usize) -> Self {
        self.size_image = Some(index);
        self
    }

    /// The negative prompt in effect.
    pub fn negative(&self) -> &str {
        self.negative_prompt
            .as_deref()
            .unwrap_or(DEFAULT_NEGATIVE_PROMPT)
    }
}
