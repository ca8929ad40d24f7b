//! `omnigen train` on the tiny test model with a tiny dataset written by the test: LoRA and full runs
//! write their checkpoints and loss log, the adapter loads through `LoadOmniGen`'s `lora` input, a
//! resumed run ends with the same weights as a straight one, and bad data is reported with its line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};

use crate::support::*;

fn tiny_model() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("model/tests/fixtures/tiny")
        .display()
        .to_string()
}

/// Three examples (text-to-image, an edit, a two-image one) with 48x32 and 32x32 pictures.
fn write_dataset(ws: &Workspace) -> PathBuf {
    let dir = ws.path("data");
    std::fs::create_dir_all(dir.join("img")).expect("mkdir");
    for (name, w, h, r) in [
        ("a.png", 48, 32, 200u8),
        ("b.png", 32, 32, 40),
        ("c.png", 48, 32, 120),
    ] {
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([r, (x * 5) as u8, (y * 7) as u8]))
            .save(dir.join("img").join(name))
            .expect("save");
    }
    let lines = [
        json!({"instruction": "a red square", "input_images": [], "output_image": "img/a.png"}),
        json!({"instruction": "<img><|image_1|></img> make it blue", "input_images": ["img/a.png"], "output_image": "img/b.png"}),
        json!({"instruction": "<img><|image_1|></img> and <img><|image_2|></img> together", "input_images": ["img/b.png", "img/c.png"], "output_image": "img/c.png"}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let path = dir.join("train.jsonl");
    std::fs::write(&path, text).expect("write jsonl");
    path
}

fn train(ws: &Workspace, data: &Path, out: &str, extra: &[&str]) -> std::process::Output {
    let model = tiny_model();
    let mut args = vec![
        "train",
        "--data",
        data.to_str().expect("utf8"),
        "--model",
        &model,
        "--output",
        out,
        "--device",
        "cpu",
        "--max-image-size",
        "64",
        "--keep-raw-resolution",
        "--batch-size",
        "2",
        "--condition-dropout",
        "0.3",
        "--seed",
        "7",
        "--quiet",
    ];
    if !extra.contains(&"--lr") {
        args.extend_from_slice(&["--lr", "1e-2"]);
    }
    args.extend_from_slice(extra);
    ws.run(&args)
}

fn tensors(path: &Path) -> HashMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).expect("read safetensors");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let v = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name, v)
        })
        .collect()
}

fn loss_rows(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).expect("loss.csv");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("step,epoch,loss,grad_norm,lr,elapsed_s"));
    lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// A text-to-image graph on the tiny model with `lora` (64x48, 2 steps), saved under `prefix`.
fn sample_graph(lora: &str, prefix: &str) -> Json {
    json!({
        "1": {"class_type": "LoadOmniGen", "inputs": {"model": tiny_model(), "dtype": "f32", "device": "cpu",
              "lora": lora, "lora_scale": 1.0}},
        "2": {"class_type": "BuildPrompt", "inputs": {"instruction": "a red square", "negative_prompt": omnigen_model::processor::DEFAULT_NEGATIVE_PROMPT, "use_img_guidance": true}},
        "3": {"class_type": "OmniGenSample", "inputs": {"model": ["1", 0], "prompt": ["2", 0], "width": 64,
              "height": 48, "use_input_image_size_as_output": false, "steps": 2, "guidance_scale": 2.5,
              "img_guidance_scale": 1.6, "seed": 0, "kv_cache": "reference", "separate_cfg": true}},
        "4": {"class_type": "DecodeVAE", "inputs": {"vae": ["1", 1], "latent": ["3", 0]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": prefix}}
    })
}

#[test]
fn lora_training_writes_a_peft_adapter_that_a_graph_loads_and_a_loss_log() {
    let ws = Workspace::new();
    let data = write_dataset(&ws);
    let out = train(
        &ws,
        &data,
        "run",
        &["--steps", "3", "--checkpoint-every", "2"],
    );
    assert_exit(&out, 0);
    assert_eq!(stdout(&out).trim(), "run/checkpoint-000003");
    assert!(stderr(&out).contains("step 3/3 loss"), "{}", stderr(&out));
    for f in [
        "loss.csv",
        "loss.png",
        "checkpoint-000002",
        "checkpoint-000003",
    ] {
        assert!(ws.path("run").join(f).exists(), "missing {f}");
    }
    let ck = ws.path("run/checkpoint-000003");
    for f in [
        "adapter_config.json",
        "adapter_model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ] {
        assert!(ck.join(f).is_file(), "checkpoint lacks {f}");
    }
    let cfg: Json =
        serde_json::from_str(&std::fs::read_to_string(ck.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(
        (cfg["r"].as_u64(), cfg["lora_alpha"].as_u64()),
        (Some(8), Some(8))
    );
    // Two layers x (qkv_proj, o_proj) x (A, B); B moved away from its zero init.
    let adapter = tensors(&ck.join("adapter_model.safetensors"));
    assert_eq!(adapter.len(), 8);
    let b = &adapter["base_model.model.llm.layers.0.self_attn.qkv_proj.lora_B.weight"];
    assert!(b.iter().any(|v| v.abs() > 1e-4), "lora_B still zero");

    let rows = loss_rows(&ws.path("run/loss.csv"));
    assert_eq!(rows.len(), 3);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0], (i + 1).to_string());
        let loss: f64 = r[2].parse().expect("loss");
        assert!(loss.is_finite() && loss > 0.0, "row {i}: {r:?}");
    }
    let png = image::open(ws.path("run/loss.png"))
        .expect("loss.png")
        .to_rgb8();
    assert_eq!(png.dimensions(), (640, 400));

    // The adapter loads through LoadOmniGen's lora input and changes the picture.
    ws.write_json("with.json", &sample_graph(ck.to_str().unwrap(), "with"));
    ws.write_json("without.json", &sample_graph("", "without"));
    let with = ws.run(&["run", "with.json"]);
    assert_exit(&with, 0);
    let without = ws.run(&["run", "without.json"]);
    assert_exit(&without, 0);
    let a = image::open(ws.path(stdout(&with).trim()))
        .expect("with png")
        .to_rgb8();
    let b = image::open(ws.path(stdout(&without).trim()))
        .expect("without png")
        .to_rgb8();
    assert_eq!(a.dimensions(), (64, 48));
    assert_ne!(
        a.as_raw(),
        b.as_raw(),
        "the adapter did not change the sample"
    );
}

#[test]
fn a_resumed_run_ends_with_the_weights_of_a_straight_run() {
    let ws = Workspace::new();
    let data = write_dataset(&ws);
    // grad accumulation 2 over a 1-batch epoch: steps cross epochs; EMA is kept and resumed too.
    let common = ["--grad-accum", "2", "--ema", "0.9"];
    let straight = train(
        &ws,
        &data,
        "straight",
        &[&["--steps", "4"][..], &common[..]].concat(),
    );
    assert_exit(&straight, 0);
    let first = train(
        &ws,
        &data,
        "part",
        &[&["--steps", "2"][..], &common[..]].concat(),
    );
    assert_exit(&first, 0);
    let ck = ws.path("part/checkpoint-000002");
    let resumed = train(
        &ws,
        &data,
        "resumed",
        &[
            &["--steps", "4", "--resume", ck.to_str().unwrap()][..],
            &common[..],
        ]
        .concat(),
    );
    assert_exit(&resumed, 0);
    for file in [
        "adapter_model.safetensors",
        "optimizer.safetensors",
        "ema/adapter_model.safetensors",
    ] {
        let a = tensors(&ws.path("straight/checkpoint-000004").join(file));
        let b = tensors(&ws.path("resumed/checkpoint-000004").join(file));
        assert_eq!(a.len(), b.len(), "{file}");
        for (k, v) in &a {
            assert_eq!(v, &b[k], "{file}: {k} differs after resume");
        }
    }
    // The resumed log continues the checkpoint's rows: the same losses as the straight run.
    let s = loss_rows(&ws.path("straight/loss.csv"));
    let r = loss_rows(&ws.path("resumed/loss.csv"));
    assert_eq!(r.len(), 4);
    for (a, b) in s.iter().zip(&r) {
        assert_eq!(a[..4], b[..4]);
    }
    // A resume with another seed is refused.
    let other = train(
        &ws,
        &data,
        "bad",
        &[
            "--steps",
            "4",
            "--seed",
            "8",
            "--resume",
            ck.to_str().unwrap(),
        ],
    );
    assert_exit(&other, 2);
    assert!(stderr(&other).contains("seed"), "{}", stderr(&other));
}

#[test]
fn full_fine_tuning_writes_a_model_folder_the_loader_reads() {
    let ws = Workspace::new();
    let data = write_dataset(&ws);
    let out = train(
        &ws,
        &data,
        "full",
        &["--full", "--steps", "2", "--lr", "1e-3"],
    );
    assert_exit(&out, 0);
    let ck = ws.path("full/checkpoint-000002");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "vae/config.json",
        "optimizer.safetensors",
    ] {
        assert!(ck.join(f).is_file(), "checkpoint lacks {f}");
    }
    let before = tensors(&PathBuf::from(tiny_model()).join("model.safetensors"));
    let after = tensors(&ck.join("model.safetensors"));
    assert_eq!(before.len(), after.len());
    let w = "llm.layers.1.mlp.down_proj.weight";
    assert_ne!(before[w], after[w], "{w} was not trained");
    assert_eq!(
        before["pos_embed"], after["pos_embed"],
        "pos_embed is a buffer"
    );
    assert_eq!(loss_rows(&ws.path("full/loss.csv")).len(), 2);
    // The checkpoint is a model: a graph samples from it.
    let mut graph = sample_graph("", "full");
    graph["1"]["inputs"]["model"] = json!(ck.to_str().unwrap());
    ws.write_json("full.json", &graph);
    assert_exit(&ws.run(&["run", "full.json"]), 0);
    // And training resumes from it.
    let more = train(
        &ws,
        &data,
        "full",
        &[
            "--full",
            "--steps",
            "3",
            "--lr",
            "1e-3",
            "--resume",
            ck.to_str().unwrap(),
        ],
    );
    assert_exit(&more, 0);
    assert_eq!(loss_rows(&ws.path("full/loss.csv")).len(), 3);
}

#[test]
fn bad_data_names_the_line_and_is_fatal_unless_skipped() {
    let ws = Workspace::new();
    let data = write_dataset(&ws);
    let mut text = std::fs::read_to_string(&data).unwrap();
    text.push_str("{\"instruction\": \"<img><|image_1|></img> x\", \"input_images\": [], \"output_image\": \"img/a.png\"}\n");
    text.push_str(
        "{\"instruction\": \"y\", \"input_images\": [], \"output_image\": \"img/missing.png\"}\n",
    );
    text.push_str("{not json\n");
    std::fs::write(&data, text).unwrap();
    let fatal = train(&ws, &data, "fatal", &["--steps", "1"]);
    assert_exit(&fatal, 2);
    assert!(
        stderr(&fatal).contains("train.jsonl:4:"),
        "{}",
        stderr(&fatal)
    );
    assert!(!stderr(&fatal).contains("panicked"));
    let skipped = train(&ws, &data, "skip", &["--steps", "1", "--skip-bad-data"]);
    assert_exit(&skipped, 0);
    let err = stderr(&skipped);
    for line in ["train.jsonl:4:", "train.jsonl:5:", "train.jsonl:6:"] {
        assert!(err.contains(line), "no warning for {line}: {err}");
    }
    assert!(err.contains("training on 3 example(s)"), "{err}");
}

#[cfg(unix)]
#[test]
fn ctrl_c_writes_a_checkpoint_that_resumes() {
    let ws = Workspace::new();
    let data = write_dataset(&ws);
    let model = tiny_model();
    let child = ws
        .omnigen()
        .args([
            "train",
            "--data",
            data.to_str().unwrap(),
            "--model",
            &model,
            "--output",
            "run",
            "--device",
            "cpu",
            "--max-image-size",
            "64",
            "--keep-raw-resolution",
            "--steps",
            "100000",
            "--quiet",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start train");
    wait_for_file(&ws.path("run/loss.csv"), "two loss rows", |t| {
        t.lines().count() >= 3
    });
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("send SIGINT");
    assert!(status.success());
    let output = child.wait_with_output().expect("wait");
    assert_exit(&output, 130);
    let err = stderr(&output);
    let ck = err
        .lines()
        .find_map(|l| l.split("--resume ").nth(1))
        .unwrap_or_else(|| panic!("no resume hint: {err}"))
        .trim()
        .to_string();
    let state: Json = serde_json::from_str(
        &std::fs::read_to_string(ws.path(&ck).join("trainer_state.json")).unwrap(),
    )
    .unwrap();
    let step = state["step"].as_u64().expect("step") as usize;
    assert!((2..100000).contains(&step), "{state}");
    assert_eq!(loss_rows(&ws.path("run/loss.csv")).len(), step);
    let more = (step + 1).to_string();
    let resumed = ws.run(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--model",
        &model,
        "--output",
        "run",
        "--device",
        "cpu",
        "--max-image-size",
        "64",
        "--keep-raw-resolution",
        "--steps",
        &more,
        "--resume",
        &ck,
        "--quiet",
    ]);
    assert_exit(&resumed, 0);
    assert_eq!(loss_rows(&ws.path("run/loss.csv")).len(), step + 1);
}
