//! Helpers shared by the parity tests: fixture paths, reference tensors, comparisons.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use omnigen_model::{ImageSpan, OmniGen, WeightFormat};

pub type TestResult = anyhow::Result<()>;

/// `model/tests/fixtures`.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// All tensors of `reference/<name>.safetensors`.
pub fn reference(name: &str) -> anyhow::Result<HashMap<String, Tensor>> {
    let path = fixtures()
        .join("reference")
        .join(format!("{name}.safetensors"));
    Ok(candle_core::safetensors::load(&path, &Device::Cpu)?)
}

/// One tensor by key, with a helpful error.
pub fn get(map: &HashMap<String, Tensor>, key: &str) -> anyhow::Result<Tensor> {
    map.get(key)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("reference tensor `{key}` missing from the fixtures"))
}

/// `max |a - b|` over all elements (both cast to f32).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> anyhow::Result<f32> {
    anyhow::ensure!(
        a.dims() == b.dims(),
        "shape {:?} vs {:?}",
        a.dims(),
        b.dims()
    );
    let d = (a.to_dtype(DType::F32)? - b.to_dtype(DType::F32)?)?.abs()?;
    Ok(d.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

/// `‖a − b‖ / ‖b‖` over all elements (both cast to f32): the relative error of `a` against `b`.
pub fn relative_error(a: &Tensor, b: &Tensor) -> anyhow::Result<f32> {
    anyhow::ensure!(
        a.dims() == b.dims(),
        "shape {:?} vs {:?}",
        a.dims(),
        b.dims()
    );
    let (a, b) = (a.to_dtype(DType::F32)?, b.to_dtype(DType::F32)?);
    let norm =
        |t: &Tensor| -> anyhow::Result<f32> { Ok(t.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?) };
    Ok(norm(&(a - &b)?)? / norm(&b)?)
}

/// The tiny official-layout model in f32 on CPU with its decoder weights stored in `format`.
pub fn tiny_in(format: WeightFormat) -> anyhow::Result<OmniGen> {
    Ok(OmniGen::load_in(
        &fixtures().join("tiny"),
        DType::F32,
        format,
        &Device::Cpu,
    )?)
}

/// Asserts `max |a - b| <= tol` and returns the error for reporting.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f32) -> anyhow::Result<f32> {
    let err = max_abs_diff(got, want)?;
    eprintln!("{what}: max abs error {err:.3e} (tolerance {tol:.0e})");
    anyhow::ensure!(err <= tol, "{what}: max abs error {err} exceeds {tol}");
    Ok(err)
}

/// Spans from an int64 `[n,3]` `(row, start, end)` tensor.
pub fn spans(t: &Tensor) -> anyhow::Result<Vec<ImageSpan>> {
    let rows = t.to_dtype(DType::I64)?.to_vec2::<i64>()?;
    Ok(rows
        .into_iter()
        .map(|r| ImageSpan {
            row: r[0] as usize,
            start: r[1] as usize,
            end: r[2] as usize,
        })
        .collect())
}

/// The tiny official-layout model in f32 on CPU.
pub fn tiny(dtype: DType) -> anyhow::Result<OmniGen> {
    Ok(OmniGen::load_on(
        &fixtures().join("tiny"),
        dtype,
        &Device::Cpu,
    )?)
}

/// `cases.json`.
pub fn cases() -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(fixtures().join("cases.json"))?;
    Ok(serde_json::from_str(&text)?)
}
