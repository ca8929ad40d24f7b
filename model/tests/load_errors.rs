//! Loading failures give errors that name the tensor and shapes; f16 is refused; both LongRoPE spellings
//! load.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::*;
use omnigen_model::{DTypeChoice, Error, LoadOptions, OmniGen};

/// A copy of `tiny/` (without the VAE) whose weights are `edit(weights)`.
fn tiny_copy(edit: impl FnOnce(&mut HashMap<String, Tensor>)) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let src = fixtures().join("tiny");
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.path().join(f))?;
    }
    let mut w = candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu)?;
    edit(&mut w);
    candle_core::safetensors::save(&w, dir.path().join("model.safetensors"))?;
    Ok(dir)
}

fn load(dir: &Path) -> Result<OmniGen, Error> {
    OmniGen::load_on(dir, DType::F32, &Device::Cpu)
}

#[test]
fn missing_tensor_is_named() -> TestResult {
    let dir = tiny_copy(|w| {
        w.remove("llm.layers.1.mlp.down_proj.weight");
    })?;
    let err = load(dir.path()).expect_err("must fail");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, Error::MissingTensor { .. }));
    assert!(
        msg.contains("llm.layers.1.mlp.down_proj.weight") && msg.contains("[32, 64]"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn misnamed_tensor_is_reported_as_missing() -> TestResult {
    let dir = tiny_copy(|w| {
        if let Some(t) = w.remove("final_layer.linear.bias") {
            w.insert("final_layer.linear.biass".into(), t);
        }
    })?;
    let msg = load(dir.path()).expect_err("must fail").to_string();
    assert!(
        msg.contains("final_layer.linear.bias`") && msg.contains("missing"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn misshaped_tensor_names_expected_and_found_shapes() -> TestResult {
    let dir = tiny_copy(|w| {
        w.insert(
            "llm.layers.0.self_attn.qkv_proj.weight".into(),
            Tensor::zeros((95, 32), DType::F32, &Device::Cpu).expect("alloc"),
        );
    })?;
    let err = load(dir.path()).expect_err("must fail");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, Error::ShapeMismatch { .. }));
    assert!(
        msg.contains("llm.layers.0.self_attn.qkv_proj.weight")
            && msg.contains("[95, 32]")
            && msg.contains("[96, 32]"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn truncated_file_names_a_tensor() -> TestResult {
    let dir = tiny_copy(|_| {})?;
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path)?;
    std::fs::write(&path, &bytes[..bytes.len() - 1000])?;
    let err = load(dir.path()).expect_err("must fail");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, Error::Safetensors { .. }));
    assert!(
        msg.contains("truncated") && msg.contains("tensor `"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn f16_is_refused_with_an_explanation() -> TestResult {
    let dir = fixtures().join("tiny");
    let err = OmniGen::load_on(&dir, DType::F16, &Device::Cpu).expect_err("f16 must be refused");
    assert!(err.to_string().contains("black images"), "{err}");
    let opts = LoadOptions {
        dtype: DTypeChoice::F16,
        ..LoadOptions::default()
    };
    assert!(matches!(
        OmniGen::load(&dir, &opts),
        Err(Error::F16Unsupported)
    ));
    Ok(())
}

#[test]
fn longrope_spelling_loads_like_su() -> TestResult {
    let dir = tiny_copy(|_| {})?;
    let cfg = std::fs::read_to_string(dir.path().join("config.json"))?;
    assert!(cfg.contains("\"su\""));
    std::fs::write(
        dir.path().join("config.json"),
        cfg.replace("\"su\"", "\"longrope\""),
    )?;
    let a = load(dir.path())?;
    let b = tiny(DType::F32)?;
    assert_eq!(
        a.transformer()
            .config()
            .rope_scaling
            .as_ref()
            .map(|r| r.kind.as_str()),
        Some("longrope")
    );
    assert_eq!(
        a.transformer()
            .config()
            .rope_scaling
            .as_ref()
            .map(|r| &r.long_factor),
        b.transformer()
            .config()
            .rope_scaling
            .as_ref()
            .map(|r| &r.long_factor)
    );
    std::fs::write(
        dir.path().join("config.json"),
        cfg.replace("\"su\"", "\"yarn\""),
    )?;
    let msg = load(dir.path())
        .expect_err("yarn is not LongRoPE")
        .to_string();
    assert!(msg.contains("yarn"), "{msg}");
    Ok(())
}

#[test]
fn folder_without_model_is_a_layout_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let err = load(dir.path()).expect_err("empty folder");
    assert!(matches!(err, Error::Layout { .. }), "{err}");
    Ok(())
}
