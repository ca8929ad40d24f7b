//! `omnigen demo-data`, `train-vae` and `demo-eval` end to end: the demo world's training data in the
//! official format, a VAE trained a few steps on it, and its reconstructions judged.

#[path = "cli/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeSet;

use omnigen_demo::eval::{judge, Expectation};
use omnigen_demo::{read_scenes, Sample};
use serde_json::Value as Json;
use support::*;

fn lines(path: &std::path::Path) -> Vec<Json> {
    json_lines(&std::fs::read_to_string(path).expect("jsonl"))
}

#[test]
fn demo_data_writes_the_official_training_format() {
    let ws = Workspace::new();
    let out = ws.path("demo");
    let dir = out.to_str().unwrap();
    let train = ws.run(&["demo-data", "--out", dir, "--count", "12", "--seed", "3"]);
    assert_exit(&train, 0);
    assert!(
        stdout(&train).trim().ends_with("train.jsonl"),
        "{}",
        stdout(&train)
    );
    let held = ws.run(&[
        "demo-data",
        "--out",
        dir,
        "--count",
        "8",
        "--split",
        "heldout",
        "--tasks",
        "t2i,edit",
    ]);
    assert_exit(&held, 0);

    for (split, count) in [("train", 12), ("heldout", 8)] {
        let data = lines(&out.join(format!("{split}.jsonl")));
        let scenes: Vec<Sample> =
            read_scenes(&out.join(format!("{split}.scenes.jsonl"))).expect("scenes");
        assert_eq!((data.len(), scenes.len()), (count, count));
        for (line, sample) in data.iter().zip(&scenes) {
            let keys: BTreeSet<&str> = line
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                BTreeSet::from(["input_images", "instruction", "output_image"])
            );
            assert_eq!(line["instruction"], sample.instruction.as_str());
            let inputs = line["input_images"].as_array().unwrap();
            assert_eq!(inputs.len(), sample.inputs.len());
            assert_eq!(
                sample.instruction.matches("<img><|image_1|></img>").count(),
                inputs.len()
            );
            // Paths are relative to the JSONL and the pictures are 64x64.
            for rel in inputs.iter().chain([&line["output_image"]]) {
                let img = image::open(out.join(rel.as_str().unwrap())).expect("picture");
                assert_eq!((img.width(), img.height()), (64, 64));
            }
            let output = image::open(out.join(line["output_image"].as_str().unwrap()))
                .unwrap()
                .to_rgb8();
            let verdict = judge(&Expectation::scene(&sample.target), &output);
            assert!(verdict.fully_correct(), "{}: {verdict}", sample.instruction);
            let held_out = sample.scenes().any(|s| s.is_held_out());
            assert_eq!(held_out, split == "heldout", "{sample:?}");
        }
    }
    // Train tasks in turn; the held-out split with the two tasks asked for.
    let tasks: Vec<String> = read_scenes(&out.join("heldout.scenes.jsonl"))
        .unwrap()
        .iter()
        .map(|s| s.task.name().to_string())
        .collect();
    assert_eq!(tasks[..4], ["t2i", "edit", "t2i", "edit"]);
}

#[test]
fn bad_demo_arguments_are_usage_errors() {
    let ws = Workspace::new();
    let dir = ws.path("d");
    let d = dir.to_str().unwrap();
    let task = ws.run(&["demo-data", "--out", d, "--tasks", "t2i,paint"]);
    assert_exit(&task, 2);
    assert!(
        stderr(&task).contains("unknown task 'paint'"),
        "{}",
        stderr(&task)
    );
    let split = ws.run(&["demo-data", "--out", d, "--split", "test"]);
    assert_exit(&split, 2);
    let size = ws.run(&["demo-data", "--out", d, "--size", "50"]);
    assert_exit(&size, 2);
    assert!(
        stderr(&size).contains("multiple of 16"),
        "{}",
        stderr(&size)
    );
}

#[test]
fn train_vae_writes_a_vae_that_demo_eval_reads() {
    let ws = Workspace::new();
    let data = ws.path("demo");
    let vae = ws.path("vae");
    let (d, v) = (data.to_str().unwrap(), vae.to_str().unwrap());
    assert_exit(&ws.run(&["demo-data", "--out", d, "--count", "6"]), 0);
    assert_exit(
        &ws.run(&[
            "demo-data",
            "--out",
            d,
            "--count",
            "4",
            "--split",
            "heldout",
        ]),
        0,
    );
    let jsonl = data.join("train.jsonl");
    let trained = ws.run(&[
        "train-vae",
        "--data",
        jsonl.to_str().unwrap(),
        "--output",
        v,
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--channels",
        "8,8,8,8",
        "--norm-groups",
        "4",
        "--log-every",
        "1",
    ]);
    assert_exit(&trained, 0);
    assert!(
        stderr(&trained).contains("step      3"),
        "{}",
        stderr(&trained)
    );
    for f in [
        "config.json",
        "diffusion_pytorch_model.safetensors",
        "loss.csv",
    ] {
        assert!(vae.join(f).is_file(), "{f}");
    }
    let csv = std::fs::read_to_string(vae.join("loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let eval = ws.run(&[
        "demo-eval",
        "--vae",
        v,
        "--data",
        d,
        "--save",
        ws.path("rec").to_str().unwrap(),
    ]);
    assert_exit(&eval, 0);
    assert!(
        stdout(&eval).contains("/4 reconstructions fully correct"),
        "{}",
        stdout(&eval)
    );
    assert_eq!(ws.files_in("rec").len(), 4);
    // A missing data file is a usage error naming it.
    let missing = ws.run(&["train-vae", "--data", "nope.jsonl", "--output", v]);
    assert_exit(&missing, 2);
    assert!(
        stderr(&missing).contains("nope.jsonl"),
        "{}",
        stderr(&missing)
    );
}
