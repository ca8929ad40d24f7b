//! The 2-D sin-cos position table (`pos_embed`, spec §4.2), center-cropped per image.
//!
//! The checkpoint stores it as a `[1, M·M, C]` buffer (113 M values for the real model: 226 MB in bf16,
//! 453 MB in f32), but every value is the official formula's. When the stored table is exactly the
//! formula (as computed, or rounded to bf16 as the official pipeline does), only the per-axis values
//! (`M × C/2`) are kept and crops are assembled from them; any other table is kept as stored.

use candle_core::{DType, Device, Tensor, D};

use crate::error::{Error, Result};
use candle_nn::VarBuilder;

/// `base_size` of the official `get_2d_sincos_pos_embed` call: positions are `i / (M / 64)`.
const BASE_SIZE: usize = 64;

/// Rows for a `gh × gw` token grid, cropped around the center of the `M × M` table.
#[derive(Debug, Clone)]
pub struct PosEmbed {
    source: Source,
    max_size: usize,
    dtype: DType,
}

#[derive(Debug, Clone)]
enum Source {
    /// The stored `[M, M, C]` table (it is not the formula's).
    Table(Tensor),
    /// The formula's per-axis embedding `[M, C/2]` in f32; `bf16` when the table was the bf16-rounded one.
    Formula { axis: Tensor, bf16: bool },
}

impl PosEmbed {
    pub(crate) fn new(max_size: usize, hidden: usize, vb: &VarBuilder) -> Result<Self> {
        let stored = vb.get(&[1, max_size * max_size, hidden], "pos_embed")?;
        let stored = stored.reshape((max_size, max_size, hidden))?;
        let dtype = stored.dtype();
        let source = match axis_embedding(max_size, hidden, stored.device()) {
            Some(axis) => match formula_match(&stored, &axis)? {
                Some(bf16) => Source::Formula { axis, bf16 },
                None => Source::Table(stored),
            },
            None => Source::Table(stored),
        };
        Ok(Self {
            source,
            max_size,
            dtype,
        })
    }

    /// True when the table is rebuilt from the formula rather than held as stored.
    pub fn is_formula(&self) -> bool {
        matches!(self.source, Source::Formula { .. })
    }

    /// Position rows for a token grid of `gh × gw` (center crop), as `[gh·gw, C]`.
    pub fn crop(&self, gh: usize, gw: usize) -> Result<Tensor> {
        if gh > self.max_size || gw > self.max_size {
            return Err(Error::Input(format!(
                "a {gh}x{gw} token grid exceeds the {m}x{m} position table (max {px} px per side)",
                m = self.max_size,
                px = self.max_size * 16
            )));
        }
        let top = (self.max_size - gh) / 2;
        let left = (self.max_size - gw) / 2;
        match &self.source {
            Source::Table(table) => {
                let c = table.dim(2)?;
                Ok(table
                    .narrow(0, top, gh)?
                    .narrow(1, left, gw)?
                    .reshape((gh * gw, c))?)
            }
            Source::Formula { axis, bf16 } => {
                let rows = grid(axis, top..top + gh, left..left + gw)?;
                let rows = if *bf16 {
                    rows.to_dtype(DType::BF16)?
                } else {
                    rows
                };
                let c = rows.dim(2)?;
                Ok(rows.to_dtype(self.dtype)?.reshape((gh * gw, c))?)
            }
        }
    }
}

/// The whole `[1, M·M, C]` f32 table the formula gives (what a checkpoint stores), for weights made
/// without a checkpoint. `None` when `C` is not a multiple of 4.
pub(crate) fn formula_table(
    max_size: usize,
    hidden: usize,
    device: &Device,
) -> Result<Option<Tensor>> {
    let Some(axis) = axis_embedding(max_size, hidden, device) else {
        return Ok(None);
    };
    let table = grid(&axis, 0..max_size, 0..max_size)?;
    Ok(Some(table.reshape((1, max_size * max_size, hidden))?))
}

/// `get_1d_sincos_pos_embed_from_grid(C/2, i / (M/64))` for every `i < M`, as `[M, C/2]` f32: positions
/// rounded to f32 as numpy's float32 `arange` gives them, sin and cos in f64, then rounded to f32.
/// `None` when `C` is not a multiple of 4 (no such table exists).
fn axis_embedding(max_size: usize, hidden: usize, device: &Device) -> Option<Tensor> {
    if !hidden.is_multiple_of(4) {
        return None;
    }
    let half = hidden / 2; // one axis
    let quarter = half / 2; // its sin (or cos) part
    let step = (max_size as f64 / BASE_SIZE as f64) as f32;
    let omega: Vec<f64> = (0..quarter)
        .map(|k| 1.0 / 10000f64.powf(k as f64 / quarter as f64))
        .collect();
    let mut values = Vec::with_capacity(max_size * half);
    for i in 0..max_size {
        let pos = f64::from(i as f32 / step);
        values.extend(omega.iter().map(|w| (pos * w).sin() as f32));
        values.extend(omega.iter().map(|w| (pos * w).cos() as f32));
    }
    Tensor::from_vec(values, (max_size, half), device).ok()
}

/// Rows `rows × cols` of the table the formula gives: `[column's axis embedding | row's]` (the first half
/// encodes x), `[rows, cols, C]` f32.
fn grid(
    axis: &Tensor,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) -> Result<Tensor> {
    let half = axis.dim(1)?;
    let (h, w) = (rows.len(), cols.len());
    let x = axis
        .narrow(0, cols.start, w)?
        .unsqueeze(0)?
        .broadcast_as((h, w, half))?;
    let y = axis
        .narrow(0, rows.start, h)?
        .unsqueeze(1)?
        .broadcast_as((h, w, half))?;
    Ok(Tensor::cat(&[&x, &y], D::Minus1)?)
}

/// Whether `stored` `[M, M, C]` is the formula's table: `Some(false)` as computed, `Some(true)` rounded
/// to bf16, `None` otherwise. Compared one table row at a time, so no second full table is built.
fn formula_match(stored: &Tensor, axis: &Tensor) -> Result<Option<bool>> {
    let max_size = stored.dim(0)?;
    let mut candidates = vec![false, true];
    for r in 0..max_size {
        let want = stored.narrow(0, r, 1)?.to_dtype(DType::F32)?;
        let row = grid(axis, r..r + 1, 0..max_size)?;
        candidates.retain(|&bf16| {
            let got = if bf16 {
                row.to_dtype(DType::BF16)
            } else {
                Ok(row.clone())
            };
            let same = got
                .and_then(|g| g.to_dtype(stored.dtype()))
                .and_then(|g| g.to_dtype(DType::F32))
                .and_then(|g| (g - &want)?.abs()?.max_all()?.to_scalar::<f32>());
            matches!(same, Ok(d) if d == 0.0)
        });
        if candidates.is_empty() {
            return Ok(None);
        }
    }
    Ok(candidates.first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_formula_is_the_official_table_layout() {
        // Row (r, c) = [x = column c | y = row r]; position i is i / (M / 64).
        let axis = axis_embedding(192, 8, &Device::Cpu).expect("hidden 8");
        let rows = grid(&axis, 5..6, 7..8).expect("grid");
        let v = rows.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (x, y) = (7f32 / 3.0, 5f32 / 3.0);
        let want = [
            x.sin(),
            (x / 100.0).sin(),
            x.cos(),
            (x / 100.0).cos(),
            y.sin(),
            (y / 100.0).sin(),
            y.cos(),
            (y / 100.0).cos(),
        ];
        for (g, w) in v.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{v:?} vs {want:?}");
        }
    }
}
