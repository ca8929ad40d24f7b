//! Loading errors of the other checkpoint shapes: the diffusers layout's split q/k/v, LoRA adapters, and
//! files that are not safetensors. Each error names the file or the tensor.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::*;

use omnigen_model::{Error, OmniGen};

/// Copies the files of `src` into `dst`, recursively.
fn copy_dir(src: &Path, dst: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let to = dst.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &to)?;
        } else {
            std::fs::copy(entry.path(), to)?;
        }
    }
    Ok(())
}

/// Rewrites the safetensors file `path` as `edit(tensors)`.
fn edit_file(path: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) -> anyhow::Result<()> {
    let mut w = candle_core::safetensors::load(path, &Device::Cpu)?;
    edit(&mut w);
    candle_core::safetensors::save(&w, path)?;
    Ok(())
}

#[test]
fn diffusers_missing_k_block_names_it_and_the_fused_tensor() -> TestResult {
    let dir = tempfile::tempdir()?;
    copy_dir(&fixtures().join("tiny-diffusers"), dir.path())?;
    let weights = dir
        .path()
        .join("transformer")
        .join("diffusion_pytorch_model.safetensors");
    edit_file(&weights, |w| {
        w.remove("layers.1.self_attn.to_k.weight");
    })?;
    let err = OmniGen::load_on(dir.path(), DType::F32, &Device::Cpu).expect_err("must fail");
    let msg = err.to_string();
    assert!(matches!(err, Error::MissingTensor { .. }), "{msg}");
    assert!(
        msg.contains("`layers.1.self_attn.to_k.weight` for `layers.1.self_attn.qkv_proj.weight`")
            && msg.contains("[32, 32]")
            && msg.contains("diffusion_pytorch_model.safetensors"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn diffusers_renamed_tensor_shape_is_checked() -> TestResult {
    let dir = tempfile::tempdir()?;
    copy_dir(&fixtures().join("tiny-diffusers"), dir.path())?;
    let weights = dir
        .path()
        .join("transformer")
        .join("diffusion_pytorch_model.safetensors");
    edit_file(&weights, |w| {
        let t = Tensor::zeros((31, 32), DType::F32, &Device::Cpu).expect("alloc");
        w.insert("layers.0.self_attn.to_out.0.weight".into(), t);
    })?;
    let err = OmniGen::load_on(dir.path(), DType::F32, &Device::Cpu).expect_err("must fail");
    let msg = err.to_string();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{msg}");
    assert!(
        msg.contains("layers.0.self_attn.to_out.0.weight") && msg.contains("[31, 32]"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn lora_with_a_misshaped_factor_names_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    copy_dir(&fixtures().join("lora"), dir.path())?;
    let name = "base_model.model.llm.layers.1.self_attn.qkv_proj.lora_B.weight";
    edit_file(&dir.path().join("adapter_model.safetensors"), |w| {
        let t = Tensor::zeros((95, 4), DType::F32, &Device::Cpu).expect("alloc");
        w.insert(name.into(), t);
    })?;
    let mut model = tiny(DType::F32)?;
    let err = model.merge_lora(dir.path(), 1.0).expect_err("must fail");
    let msg = err.to_string();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{msg}");
    assert!(
        msg.contains(name) && msg.contains("[95, 4]") && msg.contains("[96, 4]"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn lora_without_a_b_factor_names_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    copy_dir(&fixtures().join("lora"), dir.path())?;
    let name = "base_model.model.llm.layers.0.self_attn.o_proj.lora_B.weight";
    edit_file(&dir.path().join("adapter_model.safetensors"), |w| {
        w.remove(name);
    })?;
    let err = tiny(DType::F32)?
        .merge_lora(dir.path(), 1.0)
        .expect_err("must fail");
    let msg = err.to_string();
    assert!(matches!(err, Error::MissingTensor { .. }), "{msg}");
    assert!(
        msg.contains(name) && msg.contains("adapter_model.safetensors"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn a_file_that_is_not_safetensors_is_named() -> TestResult {
    let dir = tempfile::tempdir()?;
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(fixtures().join("tiny").join(f), dir.path().join(f))?;
    }
    let path = dir.path().join("model.safetensors");
    std::fs::write(&path, b"\x10\0\0\0\0\0\0\0not json at all!")?;
    let err = OmniGen::load_on(dir.path(), DType::F32, &Device::Cpu).expect_err("must fail");
    let msg = err.to_string();
    assert!(
        matches!(&err, Error::Safetensors { path: p, .. } if *p == path),
        "{msg}"
    );
    assert!(msg.contains("JSON"), "{msg}");
    Ok(())
}
