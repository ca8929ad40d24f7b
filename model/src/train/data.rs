//! Training data in the official JSONL format (`DatasetFromJson` of `omnigen==1.0.3`): one object per line
//! with `instruction` (placeholders `<img><|image_N|></img>`), `input_images` (paths, relative to the JSONL
//! file's folder) and `output_image`. Images go through the inference processor's resampling: `crop_arr`
//! with `keep_raw_resolution` (the official `--keep_raw_resolution`), else the official trainer's ADM-style
//! `center_crop_arr` to a `max_image_size` square.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use image::RgbImage;
use serde::Deserialize;

use crate::error::Result;
use crate::processor::{check_placeholders, preprocess_rgb, resize, to_normalized_tensor, Filter};

/// What is wrong with one line of a dataset.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataFault {
    /// The line is not a JSON object with the three fields.
    #[error("unreadable line: {0}")]
    Unreadable(String),
    /// An image file is missing or cannot be decoded.
    #[error("image `{path}`: {reason}")]
    Image {
        /// The path as resolved.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The instruction's placeholders do not match `input_images`.
    #[error("{images} input image(s) do not match the instruction's placeholders: {reason}")]
    Placeholders {
        /// `input_images.len()`.
        images: usize,
        /// The placeholder rule broken.
        reason: String,
    },
}

/// An unusable example: the file, its 1-based line number, and the fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}:{line}: {fault}", .file.display())]
pub struct DataError {
    /// The JSONL file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub fault: DataFault,
}

/// What to do with a bad example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadData {
    /// Stop with the example's [`DataError`] (default).
    #[default]
    Fail,
    /// Leave the example out; the error is returned as a warning.
    Skip,
}

/// How images are prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImagePrep {
    /// `--max_image_size`.
    pub max_image_size: u32,
    /// `--keep_raw_resolution`: keep the aspect ratio (`crop_arr`, as inference), else a centre-cropped
    /// `max_image_size` square (`center_crop_arr`).
    pub keep_raw_resolution: bool,
}

/// One usable example.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// 1-based line number in the file.
    pub line: usize,
    /// The instruction with its placeholders.
    pub instruction: String,
    /// Resolved input image paths (`input_images[k-1]` fills `<|image_k|>`).
    pub input_images: Vec<PathBuf>,
    /// Resolved output image path.
    pub output_image: PathBuf,
}

#[derive(Deserialize)]
struct Line {
    instruction: String,
    #[serde(default)]
    input_images: Option<Vec<String>>,
    output_image: String,
}

/// A parsed and checked dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    file: PathBuf,
    examples: Vec<Example>,
}

impl Dataset {
    /// Reads `file`, checks every line (JSON, fields, placeholders against `input_images`, every image file
    /// readable as an image) and returns the dataset and the skipped lines' errors (with [`BadData::Skip`]);
    /// with [`BadData::Fail`] the first bad line is the error. Blank lines are ignored.
    pub fn open(file: &Path, on_bad: BadData) -> Result<(Self, Vec<DataError>)> {
        let text = std::fs::read_to_string(file).map_err(|e| crate::Error::io(file, e))?;
        let base = file.parent().unwrap_or(Path::new("."));
        let mut examples = Vec::new();
        let mut skipped = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            let line = i + 1;
            match parse_line(raw, base) {
                Ok(mut ex) => {
                    ex.line = line;
                    examples.push(ex);
                }
                Err(fault) => {
                    let err = DataError {
                        file: file.to_path_buf(),
                        line,
                        fault,
                    };
                    match on_bad {
                        BadData::Fail => return Err(err.into()),
                        BadData::Skip => skipped.push(err),
                    }
                }
            }
        }
        Ok((
            Self {
                file: file.to_path_buf(),
                examples,
            },
            skipped,
        ))
    }

    /// The JSONL file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The usable examples, in file order.
    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    /// Number of usable examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether no example is usable.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// An error about `example`'s image `path` (for faults found when the image is decoded).
    pub fn image_error(&self, example: &Example, path: &Path, reason: String) -> DataError {
        DataError {
            file: self.file.clone(),
            line: example.line,
            fault: DataFault::Image {
                path: path.to_path_buf(),
                reason,
            },
        }
    }
}

fn parse_line(raw: &str, base: &Path) -> std::result::Result<Example, DataFault> {
    let parsed: Line =
        serde_json::from_str(raw).map_err(|e| DataFault::Unreadable(e.to_string()))?;
    let inputs = parsed.input_images.unwrap_or_default();
    let numbers: Vec<usize> = (1..=inputs.len()).collect();
    check_placeholders(&parsed.instruction, &numbers, inputs.len().max(1)).map_err(|e| {
        DataFault::Placeholders {
            images: inputs.len(),
            reason: e.to_string(),
        }
    })?;
    let resolve = |p: &str| base.join(p);
    let input_images: Vec<PathBuf> = inputs.iter().map(|p| resolve(p)).collect();
    let output_image = resolve(&parsed.output_image);
    for path in input_images.iter().chain(std::iter::once(&output_image)) {
        image::image_dimensions(path).map_err(|e| DataFault::Image {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    }
    Ok(Example {
        line: 0,
        instruction: parsed.instruction,
        input_images,
        output_image,
    })
}

/// ADM's `center_crop_arr` as the official trainer uses it without `--keep_raw_resolution`: BOX-halve while
/// the short side is at least `2·size`, BICUBIC-resize the short side to `size` (Python rounding), then crop
/// the centre `size`×`size`.
pub fn center_crop_arr(img: &RgbImage, size: u32) -> RgbImage {
    let mut cur = img.clone();
    while cur.width().min(cur.height()) >= 2 * size {
        let (w, h) = (cur.width() / 2, cur.height() / 2);
        cur = resize(&cur, w, h, Filter::Box);
    }
    let scale = f64::from(size) / f64::from(cur.width().min(cur.height()));
    let side = |x: u32| ((f64::from(x) * scale).round_ties_even() as u32).max(size);
    let (w, h) = (side(cur.width()), side(cur.height()));
    cur = resize(&cur, w, h, Filter::Bicubic);
    let (x, y) = ((w - size) / 2, (h - size) / 2);
    image::imageops::crop_imm(&cur, x, y, size, size).to_image()
}

/// Decodes and prepares one image as `[1,3,H,W]` in [-1, 1] (H, W multiples of 16 with
/// `keep_raw_resolution`; `max_image_size` square otherwise).
pub fn load_image(
    path: &Path,
    prep: ImagePrep,
    device: &Device,
) -> std::result::Result<Tensor, String> {
    let img = image::open(path).map_err(|e| e.to_string())?.to_rgb8();
    let img = if prep.keep_raw_resolution {
        preprocess_rgb(&img, prep.max_image_size).map_err(|e| e.to_string())?
    } else {
        if !prep.max_image_size.is_multiple_of(16) {
            return Err(format!(
                "--max-image-size {} must be a multiple of 16 without --keep-raw-resolution",
                prep.max_image_size
            ));
        }
        center_crop_arr(&img, prep.max_image_size)
    };
    to_normalized_tensor(&img, device).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn bad_lines_are_named_by_line_and_skipped_or_fatal() {
        let dir = tempfile::tempdir().unwrap();
        RgbImage::new(40, 24)
            .save(dir.path().join("a.png"))
            .unwrap();
        let jsonl = write(
            dir.path(),
            "d.jsonl",
            concat!(
                r#"{"instruction": "a cat", "input_images": [], "output_image": "a.png"}"#,
                "\n\n",
                "not json\n",
                r#"{"instruction": "<img><|image_1|></img> edit", "input_images": ["a.png"], "output_image": "gone.png"}"#,
                "\n",
                r#"{"instruction": "<img><|image_2|></img> x", "input_images": ["a.png"], "output_image": "a.png"}"#,
                "\n",
                r#"{"instruction": "<img><|image_1|></img> x", "input_images": ["a.png"], "output_image": "a.png"}"#,
                "\n",
            ),
        );
        let (ds, skipped) = Dataset::open(&jsonl, BadData::Skip).unwrap();
        assert_eq!(ds.len(), 2);
        assert_eq!(ds.examples()[1].line, 6);
        assert_eq!(
            ds.examples()[1].input_images,
            vec![dir.path().join("a.png")]
        );
        let lines: Vec<usize> = skipped.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5]);
        assert!(matches!(skipped[0].fault, DataFault::Unreadable(_)));
        assert!(matches!(skipped[1].fault, DataFault::Image { .. }));
        assert!(matches!(skipped[2].fault, DataFault::Placeholders { .. }));
        assert!(skipped[1].to_string().contains("d.jsonl:4: image"));
        match Dataset::open(&jsonl, BadData::Fail) {
            Err(crate::Error::Data(e)) => assert_eq!(e.line, 3),
            other => panic!("expected a data error, got {other:?}"),
        }
    }

    #[test]
    fn center_crop_gives_the_square_and_raw_resolution_keeps_the_aspect() {
        let img = RgbImage::from_fn(100, 60, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let sq = center_crop_arr(&img, 32);
        assert_eq!(sq.dimensions(), (32, 32));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("i.png");
        img.save(&p).unwrap();
        let raw = ImagePrep {
            max_image_size: 64,
            keep_raw_resolution: true,
        };
        let t = load_image(&p, raw, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[1, 3, 32, 64]);
        let square = ImagePrep {
            keep_raw_resolution: false,
            ..raw
        };
        assert_eq!(
            load_image(&p, square, &Device::Cpu).unwrap().dims(),
            &[1, 3, 64, 64]
        );
    }
}
