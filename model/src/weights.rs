//! Checkpoint loading through candle: each `.safetensors` file (or shard) is memory-mapped and its header
//! parsed by candle's `MmapedSafetensors`, and the model reads it through candle's `VarBuilder`, whose
//! `pp` prefixes mirror the official tensor names and whose `rename_f` hook maps them onto the diffusers
//! names.
//!
//! What candle does not do is kept here, in [`checkpoint`]: errors that name the file and the tensor,
//! checking a shape before copying, the row concatenation of diffusers' split q/k/v into `qkv_proj`, and
//! handing back each tensor's mapped pages once it is copied (the load peaks at ~1x the weight bytes
//! instead of ~2x).

mod checkpoint;
mod diagnose;
mod layout;

use std::path::PathBuf;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::error::Result;

pub(crate) use checkpoint::Checkpoint;
pub(crate) use layout::Layout;

/// Maps the checkpoint files `paths` (all shards of one model, validated now) and returns a `VarBuilder`
/// that reads them by official tensor name, as `dtype` on `device`. Dropping every clone of the builder
/// unmaps the files.
pub(crate) fn open(
    paths: &[PathBuf],
    layout: Layout,
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>> {
    let vb = Checkpoint::open(paths, layout.fusions())?.into_var_builder(dtype, device);
    Ok(match layout {
        Layout::Official => vb,
        Layout::Diffusers => vb.rename_f(move |official| layout.stored_name(official)),
    })
}
