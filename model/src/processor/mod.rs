//! Prompt processing: chat template, placeholders, tokenization, image preprocessing, CFG branches, collation.
//!
//! This is a port of the official `OmniGenProcessor` / `OmniGenCollator` (`omnigen==1.0.3`, spec §6) that
//! produces identical ids, masks, positions and preprocessed pixels (checked by `tests/processor_parity.rs`
//! against fixtures from the official code).
//!
//! # Use
//!
//! ```no_run
//! use candle_core::Device;
//! use omnigen_model::processor::{preprocess_image, Processor, InstructionInput, BatchRequest};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let processor = Processor::from_tokenizer_file("OmniGen-v1/tokenizer.json")?;
//! // 1. Condition images -> [1,3,H,W] pixels in [-1,1] (H, W multiples of 16), Pillow-exact.
//! let img = image::open("cat.png")?.to_rgb8();
//! let pixels = preprocess_image(&img, 1024, &Device::Cpu)?;
//! let (h, w) = (pixels.dim(2)?, pixels.dim(3)?);
//! // 2. Prompts -> per-branch model inputs.
//! let batch = processor.process(&BatchRequest {
//!     prompts: vec![InstructionInput::new("<img><|image_1|></img> Remove the cup.", vec![(h, w)])],
//!     negative_prompt: None,            // None = OmniGen's default negative prompt
//!     use_img_guidance: true,
//!     separate_cfg: true,               // official default: one forward per CFG branch
//!     height: 1024,
//!     width: 1024,
//!     use_input_image_size_as_output: false,
//! }, &Device::Cpu)?;
//! for branch in &batch.batches {
//!     // branch.collated: input_ids / attention_mask / position_ids / image_spans. branch.image_refs says which
//!     // (prompt, image) fills each span; `gather` orders per-prompt items (e.g. VAE latents) to match.
//!     let latents = branch.gather(&[vec![pixels.clone()]])?; // stand-in for the encoded latents
//!     let _ = (&branch.collated.input_ids, latents);
//! }
//! # Ok(()) }
//! ```
//!
//! # Semantics (as the reference)
//!
//! - Every instruction is wrapped in the chat template ([`apply_chat_template`]); the templated text is split at
//!   `<|image_N|>`, each chunk is tokenized on its own with special tokens (BOS), and the leading BOS (id 1) of
//!   chunks 2.. is dropped. Placeholder `N` expands to `(H_N/16)*(W_N/16)` zeros. The distinct placeholder numbers
//!   must be exactly `1..=K` with `K` images; a number may repeat (the image is then used twice).
//! - Branches: `cond` (instruction + images), `uncond` (negative prompt, no images) and, with image guidance,
//!   `img_cond` (`"<img><|image_1|></img> <img><|image_2|></img> ..."` + the images; a prompt without images uses
//!   the uncond row instead). Image guidance is switched off when no prompt has images (as the pipeline does).
//! - Collation ([`collate`]): left padding with id 2, positions `0..` after the padding, mask of spec §6.7.
//!
//! Deviations and limits, on purpose:
//! - A placeholder in a prompt without images (or in the negative prompt) is an error here; the reference only
//!   rejects the literal `<img><|image_1|></img>` and tokenizes other placeholders as text.
//! - Image guidance is decided by "does any prompt have images". The reference keys it on `input_images is None`,
//!   so a Python call with empty image lists (`[[]]`) gets a third branch identical to uncond; the guided
//!   velocity is the same up to rounding.
//! - Placeholder numbers are ASCII digits (Python's `\d` also matches other Unicode digits).
//! - Pixel parity starts from decoded 8-bit RGB: callers pass `DynamicImage::to_rgb8()`, which matches
//!   `PIL.Image.convert('RGB')` for RGB, RGBA (alpha dropped) and 8-bit grayscale PNGs (tested). 16-bit images
//!   and JPEG decoding may differ from Pillow by a grey level.
//! - All prompts of one request must share the output size (the collator's padded-output-image path is
//!   training-only).

mod collate;
mod error;
mod image_prep;
mod placeholder;
mod resample;
mod template;

use std::path::Path;

use candle_core::Device;
use tokenizers::Tokenizer;

use crate::options::{check_output_side, OptionField};

pub use collate::{collate, Collated, TokenRow, PAD_TOKEN_ID};
pub use error::{ProcessorError, ProcessorResult};
pub use image_prep::{
    crop_geometry, preprocess_image, preprocess_rgb, to_normalized_tensor, Geometry, ResizeStep,
};
pub use placeholder::{
    check_placeholders, image_tag, referenced_images, shift_placeholders, split_placeholders,
    validate_ids, PlaceholderError, SplitPrompt,
};
pub use resample::{resize, Filter};
pub use template::{apply_chat_template, image_only_prompt, DEFAULT_NEGATIVE_PROMPT};

/// The BOS id that the processor strips from the second and later chunks.
pub const BOS_TOKEN_ID: u32 = 1;

/// One instruction of a batch: its text and the processed pixel size `(height, width)` of each of its
/// images (index `i` is placeholder `<|image_{i+1}|>`; sizes are multiples of 16, e.g. from
/// [`preprocess_image`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstructionInput {
    /// The user instruction, with `<img><|image_N|></img>` placeholders.
    pub instruction: String,
    /// Processed pixel size `(height, width)` per input image.
    pub image_sizes: Vec<(usize, usize)>,
    /// The image whose size the output takes under `use_input_image_size_as_output`: `None` = the image
    /// at the first placeholder (the reference), `Some(i)` = image `i`.
    pub size_image: Option<usize>,
}

impl InstructionInput {
    /// An instruction with the given images' processed sizes `(height, width)`.
    pub fn new(instruction: impl Into<String>, image_sizes: Vec<(usize, usize)>) -> Self {
        Self {
            instruction: instruction.into(),
            image_sizes,
            size_image: None,
        }
    }
}

/// Everything `OmniGenProcessor.__call__` takes (images by processed size only): one batch of
/// instructions and its guidance settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRequest {
    /// One or more prompts (a batch).
    pub prompts: Vec<InstructionInput>,
    /// Negative prompt of the uncond branch; `None` = [`DEFAULT_NEGATIVE_PROMPT`].
    pub negative_prompt: Option<String>,
    /// Add the image-only guidance branch (forced off when no prompt has images).
    pub use_img_guidance: bool,
    /// One collated batch per branch (`true`, the official default) or one batch with all branches as rows.
    pub separate_cfg: bool,
    /// Output height in pixels (multiple of 16); ignored with `use_input_image_size_as_output`.
    pub height: usize,
    /// Output width in pixels (multiple of 16); ignored with `use_input_image_size_as_output`.
    pub width: usize,
    /// Output size = processed size of each instruction's [`InstructionInput::size_image`] (by default the
    /// image at its first placeholder).
    pub use_input_image_size_as_output: bool,
}

/// A CFG branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchKind {
    /// Instruction and images.
    Cond,
    /// Negative prompt only.
    Uncond,
    /// Images only (image guidance).
    ImgCond,
}

/// Which input image fills a span: prompt index and image index (0-based, placeholder number - 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRef {
    /// Prompt index in the request.
    pub prompt: usize,
    /// Image index within that prompt.
    pub image: usize,
}

/// One collated batch plus the images for its spans.
#[derive(Debug, Clone)]
pub struct ProcessedBranch {
    /// Separate mode: the branch of this batch. Batched mode: `None` (rows are `[cond.., uncond.., img..]`).
    pub kind: Option<BranchKind>,
    /// Ids, mask, positions and spans.
    pub collated: Collated,
    /// The image of each entry of `collated.image_spans`, same order.
    pub image_refs: Vec<ImageRef>,
}

impl ProcessedBranch {
    /// Picks, for every span in order, the item of its image from `per_prompt[prompt][image]` (e.g. the
    /// encoded condition latents): the list the transformer expects as `condition_latents`.
    pub fn gather<T: Clone>(&self, per_prompt: &[Vec<T>]) -> ProcessorResult<Vec<T>> {
        self.image_refs
            .iter()
            .map(|r| {
                per_prompt
                    .get(r.prompt)
                    .and_then(|images| images.get(r.image))
                    .cloned()
                    .ok_or(ProcessorError::MissingImage {
                        prompt: r.prompt,
                        image: r.image,
                    })
            })
            .collect()
    }
}

/// The processor's output for a request.
#[derive(Debug, Clone)]
pub struct ProcessedBatch {
    /// Separate mode: one per branch in the order cond, uncond, (img_cond). Batched mode: exactly one.
    pub batches: Vec<ProcessedBranch>,
    /// Number of CFG branches: 2 (text guidance) or 3 (text + image guidance).
    pub num_branches: usize,
    /// Whether `batches` holds one batch per branch.
    pub separate_cfg: bool,
    /// Output size `(height, width)` in pixels.
    pub output_size: (usize, usize),
}

/// One tokenized prompt: its row and the image of each span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedPrompt {
    /// Ids and spans.
    pub row: TokenRow,
    /// Image index (0-based) of each span, in text order (placeholder number - 1).
    pub images: Vec<usize>,
}

/// Tokenizer plus OmniGen's prompt rules.
#[derive(Debug, Clone)]
pub struct Processor {
    tokenizer: Tokenizer,
}

impl Processor {
    /// Loads a `tokenizer.json` (Hugging Face `tokenizers` format).
    pub fn from_tokenizer_file(path: impl AsRef<Path>) -> ProcessorResult<Self> {
        let path = path.as_ref();
        let tokenizer = Tokenizer::from_file(path).map_err(|e| ProcessorError::TokenizerLoad {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Self { tokenizer })
    }

    /// Wraps an already loaded tokenizer.
    pub fn from_tokenizer(tokenizer: Tokenizer) -> Self {
        Self { tokenizer }
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// `tokenizer(text).input_ids`: ids with special tokens (BOS) added.
    pub fn encode(&self, text: &str, what: &str) -> ProcessorResult<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| ProcessorError::Tokenize {
                what: what.to_string(),
                message: e.to_string(),
            })?;
        Ok(enc.get_ids().to_vec())
    }

    /// `process_multi_modal_prompt`: template, split, tokenize, expand placeholders. `image_sizes` are the
    /// processed `(height, width)` of the prompt's images; `prompt` labels errors.
    pub fn tokenize_prompt(
        &self,
        instruction: &str,
        image_sizes: &[(usize, usize)],
        prompt: usize,
    ) -> ProcessorResult<TokenizedPrompt> {
        let text = apply_chat_template(instruction);
        let split = split_placeholders(&text, prompt)?;
        validate_ids(&split.ids, image_sizes.len(), prompt)?;
        for (image, &(height, width)) in image_sizes.iter().enumerate() {
            if height == 0 || width == 0 || height % 16 != 0 || width % 16 != 0 {
                return Err(ProcessorError::BadImageSize {
                    prompt,
                    image,
                    height,
                    width,
                });
            }
        }
        if split.ids.is_empty() {
            let ids = self.encode(&text, &format!("prompt {prompt}"))?;
            return Ok(TokenizedPrompt {
                row: TokenRow { ids, spans: vec![] },
                images: vec![],
            });
        }
        let mut ids = Vec::new();
        let mut spans = Vec::new();
        let mut images = Vec::new();
        for (i, chunk) in split.chunks.iter().enumerate() {
            let mut chunk_ids = self.encode(chunk, &format!("prompt {prompt}, chunk {i}"))?;
            if i > 0 && chunk_ids.first() == Some(&BOS_TOKEN_ID) {
                chunk_ids.remove(0);
            }
            ids.extend(chunk_ids);
            if let Some(&id) = split.ids.get(i) {
                // validate_ids guarantees 1 <= id <= image_sizes.len().
                let image = (id - 1) as usize;
                let (h, w) = image_sizes[image];
                let n = h * w / 256;
                spans.push((ids.len(), ids.len() + n));
                ids.extend(std::iter::repeat_n(0u32, n));
                images.push(image);
            }
        }
        Ok(TokenizedPrompt {
            row: TokenRow { ids, spans },
            images,
        })
    }

    /// The full processor: all CFG branches of all prompts, collated. Tensors are created on `device`.
    pub fn process(&self, req: &BatchRequest, device: &Device) -> ProcessorResult<ProcessedBatch> {
        if req.prompts.is_empty() {
            return Err(ProcessorError::EmptyRequest);
        }
        let any_images = req.prompts.iter().any(|p| !p.image_sizes.is_empty());
        let use_img_cfg = req.use_img_guidance && any_images;
        let negative = req
            .negative_prompt
            .as_deref()
            .unwrap_or(DEFAULT_NEGATIVE_PROMPT);

        let mut cond = Vec::new();
        let mut uncond = Vec::new();
        let mut img_cond = Vec::new();
        let mut sizes = Vec::new();
        for (p, input) in req.prompts.iter().enumerate() {
            let c = self.tokenize_prompt(&input.instruction, &input.image_sizes, p)?;
            let u = self.tokenize_prompt(negative, &[], p)?;
            if use_img_cfg {
                img_cond.push(if input.image_sizes.is_empty() {
                    (p, u.clone())
                } else {
                    (
                        p,
                        self.tokenize_prompt(
                            &image_only_prompt(input.image_sizes.len()),
                            &input.image_sizes,
                            p,
                        )?,
                    )
                });
            }
            sizes.push(if req.use_input_image_size_as_output {
                input
                    .size_image
                    .or_else(|| c.images.first().copied())
                    .and_then(|image| input.image_sizes.get(image).copied())
                    .ok_or(ProcessorError::InputSizeNeedsImage { prompt: p })?
            } else {
                (req.height, req.width)
            });
            cond.push((p, c));
            uncond.push((p, u));
        }
        let output_size = sizes[0];
        if let Some(&other) = sizes.iter().find(|&&s| s != output_size) {
            return Err(ProcessorError::MixedOutputSizes {
                first: output_size,
                other,
            });
        }
        let (height, width) = output_size;
        if check_output_side(OptionField::Height, height).is_err()
            || check_output_side(OptionField::Width, width).is_err()
        {
            return Err(ProcessorError::BadOutputSize { height, width });
        }
        let n_out = height * width / 256;

        let mut groups = vec![(BranchKind::Cond, cond), (BranchKind::Uncond, uncond)];
        if use_img_cfg {
            groups.push((BranchKind::ImgCond, img_cond));
        }
        let num_branches = groups.len();
        let batches = if req.separate_cfg {
            groups
                .into_iter()
                .map(|(kind, rows)| collate_branch(Some(kind), &rows, n_out, device))
                .collect::<ProcessorResult<Vec<_>>>()?
        } else {
            let rows: Vec<_> = groups.into_iter().flat_map(|(_, rows)| rows).collect();
            vec![collate_branch(None, &rows, n_out, device)?]
        };
        Ok(ProcessedBatch {
            batches,
            num_branches,
            separate_cfg: req.separate_cfg,
            output_size,
        })
    }
}

/// Collates `(prompt index, tokenized prompt)` rows and records the image of every span.
fn collate_branch(
    kind: Option<BranchKind>,
    rows: &[(usize, TokenizedPrompt)],
    n_out: usize,
    device: &Device,
) -> ProcessorResult<ProcessedBranch> {
    let token_rows: Vec<TokenRow> = rows.iter().map(|(_, t)| t.row.clone()).collect();
    let collated = collate(&token_rows, n_out, device)?;
    let image_refs = rows
        .iter()
        .flat_map(|(p, t)| {
            t.images
                .iter()
                .map(move |&image| ImageRef { prompt: *p, image })
        })
        .collect();
    Ok(ProcessedBranch {
        kind,
        collated,
        image_refs,
    })
}
