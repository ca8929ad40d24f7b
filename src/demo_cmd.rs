//! `omnigen demo-data` (writes the demo world's training data, model/demo) and `omnigen demo-eval` (reads a
//! VAE's reconstructions of demo pictures with the demo evaluator).

use anyhow::{anyhow, Context};
use omnigen_demo::eval::{judge, Expectation};
use omnigen_demo::{read_scenes, write_dataset, DatasetSpec, Split, Task};
use omnigen_model::train::vae::reconstruct_picture;
use omnigen_model::{DeviceChoice, Vae};

use crate::cli::{DemoDataArgs, DemoEvalArgs};
use crate::outcome::Failure;

/// Writes a split and says what it wrote.
pub fn data(args: DemoDataArgs) -> Result<(), Failure> {
    let tasks = args
        .tasks
        .iter()
        .map(|t| {
            Task::from_name(t.trim()).ok_or_else(|| {
                anyhow!("unknown task '{t}': use t2i, edit, subject or outline (comma-separated)")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(Failure::Usage)?;
    let spec = DatasetSpec {
        seed: args.seed,
        count: args.count,
        tasks,
        split: split(&args.split)?,
        size: args.size,
    };
    let written = write_dataset(&spec, &args.out)
        .with_context(|| format!("cannot write the demo data into '{}'", args.out.display()))
        .map_err(Failure::Usage)?;
    println!("{}", written.jsonl.display());
    eprintln!(
        "wrote {} samples ({} pictures) and their scenes in '{}'",
        written.samples,
        written.images,
        written.scenes.display()
    );
    Ok(())
}

/// Encodes and decodes every output picture of a split and judges the reconstruction against the scene
/// it shows.
pub fn eval(args: DemoEvalArgs) -> Result<(), Failure> {
    let split = split(&args.split)?;
    let scenes_path = args.data.join(format!("{}.scenes.jsonl", split.name()));
    let samples = read_scenes(&scenes_path).map_err(|e| Failure::Usage(e.into()))?;
    let device = DeviceChoice::Cpu
        .open()
        .map_err(|e| Failure::Runtime(e.into()))?;
    let vae = Vae::load(&args.vae, &device)
        .with_context(|| format!("cannot load the VAE '{}'", args.vae.display()))
        .map_err(Failure::Usage)?;
    if let Some(dir) = &args.save {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create '{}'", dir.display()))
            .map_err(Failure::Runtime)?;
    }
    let limit = args.limit.unwrap_or(usize::MAX).min(samples.len());
    let (mut correct, mut attrs) = (0usize, [0usize; 4]);
    for (i, sample) in samples.iter().take(limit).enumerate() {
        let path = args.data.join(split.name()).join(format!("{i:06}.png"));
        let picture = image::open(&path)
            .with_context(|| format!("cannot read '{}'", path.display()))
            .map_err(Failure::Usage)?
            .to_rgb8();
        let rebuilt =
            reconstruct_picture(&vae, &picture).map_err(|e| Failure::Runtime(e.into()))?;
        if let Some(dir) = &args.save {
            let out = dir.join(format!("{i:06}.png"));
            rebuilt
                .save(&out)
                .with_context(|| format!("cannot write '{}'", out.display()))
                .map_err(Failure::Runtime)?;
        }
        let v = judge(&Expectation::scene(&sample.target), &rebuilt);
        correct += v.fully_correct() as usize;
        for (n, ok) in [v.shape, v.colour, v.position, v.background]
            .iter()
            .enumerate()
        {
            attrs[n] += ok.unwrap_or(true) as usize;
        }
    }
    let pct = |n: usize| 100.0 * n as f64 / limit.max(1) as f64;
    println!(
        "{correct}/{limit} reconstructions fully correct ({:.1}%): shape {:.1}%, colour {:.1}%, position \
         {:.1}%, background {:.1}% ({} split)",
        pct(correct),
        pct(attrs[0]),
        pct(attrs[1]),
        pct(attrs[2]),
        pct(attrs[3]),
        split.name()
    );
    Ok(())
}

fn split(name: &str) -> Result<Split, Failure> {
    Split::from_name(name)
        .ok_or_else(|| Failure::Usage(anyhow!("unknown split '{name}': use train or heldout")))
}
