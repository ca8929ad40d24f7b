//! Writing a split as OmniGen training data: PNGs, `SPLIT.jsonl` in the official format (one object a line:
//! `instruction`, `input_images`, `output_image`; paths relative to the JSONL) and `SPLIT.scenes.jsonl`
//! (the same lines' task and scenes, for evaluation).

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Error;
use crate::tasks::{Sample, Split, Task};

/// What to write.
#[derive(Debug, Clone)]
pub struct DatasetSpec {
    /// The seed of the sample family.
    pub seed: u64,
    /// How many samples.
    pub count: usize,
    /// The tasks, taken in turn (sample `i` has task `tasks[i % len]`).
    pub tasks: Vec<Task>,
    /// The split.
    pub split: Split,
    /// The picture side in pixels (a multiple of 16, OmniGen's crop unit).
    pub size: u32,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// The training-format JSONL.
    pub jsonl: PathBuf,
    /// The scene records, line for line.
    pub scenes: PathBuf,
    /// Samples written.
    pub samples: usize,
    /// Pictures written.
    pub images: usize,
}

/// One line of the official training format.
#[derive(Debug, Serialize)]
struct Line<'a> {
    instruction: &'a str,
    input_images: Vec<String>,
    output_image: String,
}

impl DatasetSpec {
    /// The samples of this spec, in order.
    pub fn samples(&self) -> impl Iterator<Item = Sample> + '_ {
        (0..self.count).map(|i| {
            let task = self.tasks[i % self.tasks.len()];
            Sample::generate(self.seed, i as u64, task, self.split)
        })
    }

    fn check(&self) -> Result<(), Error> {
        if self.tasks.is_empty() {
            return Err(Error::Spec("no task to draw samples from".into()));
        }
        if self.size < 32 || !self.size.is_multiple_of(16) {
            return Err(Error::Spec(format!(
                "picture size {} must be a multiple of 16 of at least 32",
                self.size
            )));
        }
        Ok(())
    }
}

/// Writes the split into `dir` (created if needed): `dir/SPLIT.jsonl`, `dir/SPLIT.scenes.jsonl` and the
/// pictures in `dir/SPLIT/`.
pub fn write_dataset(spec: &DatasetSpec, dir: &Path) -> Result<Written, Error> {
    spec.check()?;
    let name = spec.split.name();
    let images_dir = dir.join(name);
    fs::create_dir_all(&images_dir).map_err(|e| Error::io(&images_dir, e))?;
    let jsonl = dir.join(format!("{name}.jsonl"));
    let scenes = dir.join(format!("{name}.scenes.jsonl"));
    let mut data = create(&jsonl)?;
    let mut records = create(&scenes)?;
    let mut images = 0;
    for (i, sample) in spec.samples().enumerate() {
        let (inputs, output) = sample.render(spec.size);
        let mut input_images = Vec::new();
        for (k, img) in inputs.iter().enumerate() {
            let rel = format!("{name}/{i:06}_in{}.png", k + 1);
            save(img, &dir.join(&rel))?;
            input_images.push(rel);
        }
        let output_image = format!("{name}/{i:06}.png");
        save(&output, &dir.join(&output_image))?;
        images += inputs.len() + 1;
        let line = Line {
            instruction: &sample.instruction,
            input_images,
            output_image,
        };
        write_line(&mut data, &jsonl, &line)?;
        write_line(&mut records, &scenes, &sample)?;
    }
    for (w, path) in [(&mut data, &jsonl), (&mut records, &scenes)] {
        w.flush().map_err(|e| Error::io(path, e))?;
    }
    Ok(Written {
        jsonl,
        scenes,
        samples: spec.count,
        images,
    })
}

fn create(path: &Path) -> Result<BufWriter<fs::File>, Error> {
    Ok(BufWriter::new(
        fs::File::create(path).map_err(|e| Error::io(path, e))?,
    ))
}

fn save(img: &image::RgbImage, path: &Path) -> Result<(), Error> {
    img.save(path).map_err(|source| Error::Image {
        path: path.to_path_buf(),
        source,
    })
}

fn write_line(w: &mut impl Write, path: &Path, value: &impl Serialize) -> Result<(), Error> {
    let text = serde_json::to_string(value).map_err(|e| Error::Spec(e.to_string()))?;
    writeln!(w, "{text}").map_err(|e| Error::io(path, e))
}

/// Reads `SPLIT.scenes.jsonl` back.
pub fn read_scenes(path: &Path) -> Result<Vec<Sample>, Error> {
    let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::Spec(format!("{}:{}: {e}", path.display(), n + 1)))
        })
        .collect()
}
