//! Memory-mapped safetensors reading with shape checks, checkpoint layouts and a small `VarBuilder`-like
//! view (`Vb`) whose `pp` prefixes mirror the checkpoint's tensor names.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;

use crate::error::{Error, Result};

/// Where one tensor lives inside a mapped file.
#[derive(Debug, Clone)]
pub(crate) struct TensorInfo {
    /// Stored dtype.
    pub dtype: DType,
    /// Stored shape.
    pub shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// One memory-mapped `.safetensors` file with its parsed header.
pub(crate) struct SafetensorsFile {
    path: PathBuf,
    mmap: Mmap,
    data_start: usize,
    tensors: HashMap<String, TensorInfo>,
}

fn parse_dtype(s: &str) -> Option<DType> {
    Some(match s {
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "F64" => DType::F64,
        "I64" => DType::I64,
        "U32" => DType::U32,
        "U8" => DType::U8,
        _ => return None,
    })
}

impl SafetensorsFile {
    /// Maps `path` and validates that every tensor's bytes lie inside the file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the file is opened read-only and never written by this process; a concurrent external
        // truncation is the documented hazard of any memory map and is outside our control.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let bad = |message: String| Error::Safetensors {
            path: path.to_path_buf(),
            message,
        };
        if mmap.len() < 8 {
            return Err(bad(format!(
                "file is {} bytes, too short for a header",
                mmap.len()
            )));
        }
        let mut n = [0u8; 8];
        n.copy_from_slice(&mmap[..8]);
        let header_len = u64::from_le_bytes(n) as usize;
        let data_start = header_len
            .checked_add(8)
            .filter(|&e| e <= mmap.len())
            .ok_or_else(|| {
                bad(format!(
                    "header length {header_len} exceeds the file size {}",
                    mmap.len()
                ))
            })?;
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&mmap[8..data_start])
                .map_err(|e| bad(format!("header is not a JSON object: {e}")))?;
        let data_len = mmap.len() - data_start;
        let mut tensors = HashMap::new();
        for (name, v) in header {
            if name == "__metadata__" {
                continue;
            }
            let field = |k: &str| {
                v.get(k)
                    .ok_or_else(|| bad(format!("tensor `{name}` lacks `{k}`")))
            };
            let dtype_s = field("dtype")?.as_str().unwrap_or_default().to_string();
            let dtype = parse_dtype(&dtype_s)
                .ok_or_else(|| bad(format!("tensor `{name}` has unsupported dtype `{dtype_s}`")))?;
            let as_usizes = |k: &str| -> Result<Vec<usize>> {
                field(k)?
                    .as_array()
                    .and_then(|a| a.iter().map(|x| x.as_u64().map(|x| x as usize)).collect())
                    .ok_or_else(|| bad(format!("tensor `{name}` has a malformed `{k}`")))
            };
            let shape = as_usizes("shape")?;
            let offsets = as_usizes("data_offsets")?;
            let (start, end) = match offsets[..] {
                [s, e] if s <= e => (s, e),
                _ => {
                    return Err(bad(format!(
                        "tensor `{name}` has malformed data_offsets {offsets:?}"
                    )))
                }
            };
            if end > data_len {
                return Err(bad(format!(
                    "tensor `{name}` (shape {shape:?}) ends at data byte {end} but the file holds only {data_len} \
                     data bytes: the file is truncated"
                )));
            }
            let want = shape.iter().product::<usize>() * dtype.size_in_bytes();
            if want != end - start {
                return Err(bad(format!(
                    "tensor `{name}` (shape {shape:?}, {dtype_s}) needs {want} bytes but spans {}",
                    end - start
                )));
            }
            tensors.insert(
                name,
                TensorInfo {
                    dtype,
                    shape,
                    start,
                    end,
                },
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            data_start,
            tensors,
        })
    }

    /// The header entry of `name`.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    /// All tensor names in the file.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys()
    }

    /// Copies tensor `name` out of the map, converted to `dtype` on `device`.
    pub fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Option<Tensor>> {
        let Some(info) = self.tensors.get(name) else {
            return Ok(None);
        };
        let (a, b) = (self.data_start + info.start, self.data_start + info.end);
        let t = Tensor::from_raw_buffer(&self.mmap[a..b], info.dtype, &info.shape, &Device::Cpu)?;
        let t = t.to_dtype(dtype)?.to_device(device)?;
        // Drop the mapped pages we just copied so that resident memory stays ~1x the weights while loading.
        // SAFETY: read-only file mapping with no outstanding borrows; dropped pages are re-read on demand.
        #[cfg(unix)]
        unsafe {
            let _ = self
                .mmap
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, a, b - a);
        }
        Ok(Some(t))
    }

    /// The file path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// How official tensor names map onto the names stored in a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Names as in the official `model.safetensors` (`llm.layers.N...`, `x_embedder.proj...`).
    Official,
    /// Names of diffusers' `OmniGenTransformer2DModel` (spec §3.4); q/k/v are stored split.
    Diffusers,
}

/// Where an official tensor comes from in a given layout.
enum Source {
    One(String),
    /// Rows concatenated along dim 0 (diffusers stores qkv_proj as to_q/to_k/to_v).
    ConcatRows(Vec<String>),
}

impl Layout {
    fn source(self, official: &str) -> Source {
        if self == Layout::Official {
            return Source::One(official.to_string());
        }
        let fixed = [
            ("pos_embed", "patch_embedding.pos_embed"),
            ("x_embedder.proj.", "patch_embedding.output_image_proj."),
            (
                "input_x_embedder.proj.",
                "patch_embedding.input_image_proj.",
            ),
            ("time_token.mlp.0.", "time_token.linear_1."),
            ("time_token.mlp.2.", "time_token.linear_2."),
            ("t_embedder.mlp.0.", "t_embedder.linear_1."),
            ("t_embedder.mlp.2.", "t_embedder.linear_2."),
            ("final_layer.adaLN_modulation.1.", "norm_out.linear."),
            ("final_layer.linear.", "proj_out."),
        ];
        for (from, to) in fixed {
            if let Some(rest) = official.strip_prefix(from) {
                return Source::One(format!("{to}{rest}"));
            }
        }
        let Some(rest) = official.strip_prefix("llm.") else {
            return Source::One(official.to_string());
        };
        if let Some(layer) = rest.strip_suffix(".self_attn.qkv_proj.weight") {
            return Source::ConcatRows(
                ["to_q", "to_k", "to_v"]
                    .iter()
                    .map(|p| format!("{layer}.self_attn.{p}.weight"))
                    .collect(),
            );
        }
        if let Some(layer) = rest.strip_suffix(".self_attn.o_proj.weight") {
            return Source::One(format!("{layer}.self_attn.to_out.0.weight"));
        }
        Source::One(rest.to_string())
    }
}

/// A set of mapped checkpoint files read in one layout, dtype and device.
pub(crate) struct Weights {
    files: Vec<SafetensorsFile>,
    layout: Layout,
    dtype: DType,
    device: Device,
}

impl Weights {
    /// Maps `paths` (validated eagerly) for reading as `dtype` on `device`.
    pub fn open(paths: &[PathBuf], layout: Layout, dtype: DType, device: &Device) -> Result<Self> {
        let files = paths
            .iter()
            .map(|p| SafetensorsFile::open(p))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            files,
            layout,
            dtype,
            device: device.clone(),
        })
    }

    fn describe(&self) -> String {
        let names: Vec<String> = self
            .files
            .iter()
            .map(|f| format!("`{}`", f.path().display()))
            .collect();
        names.join(", ")
    }

    fn find(&self, stored: &str) -> Option<&SafetensorsFile> {
        self.files.iter().find(|f| f.info(stored).is_some())
    }

    fn load_stored(
        &self,
        official: &str,
        stored: &str,
        expected: &[usize],
        dtype: DType,
    ) -> Result<Tensor> {
        let file = self.find(stored).ok_or_else(|| Error::MissingTensor {
            name: if stored == official {
                official.to_string()
            } else {
                format!("{official}` (stored as `{stored}")
            },
            expected: expected.to_vec(),
            source_desc: self.describe(),
        })?;
        let found = &file.info(stored).expect("found above").shape;
        if found.as_slice() != expected {
            return Err(Error::ShapeMismatch {
                name: stored.to_string(),
                expected: expected.to_vec(),
                found: found.clone(),
            });
        }
        Ok(file
            .load(stored, dtype, &self.device)?
            .expect("found above"))
    }

    /// Loads the tensor with official name `name`, checking it has exactly `shape`.
    pub fn get_as(&self, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        match self.layout.source(name) {
            Source::One(stored) => self.load_stored(name, &stored, shape, dtype),
            Source::ConcatRows(parts) => {
                let rows = shape.first().copied().unwrap_or(0) / parts.len().max(1);
                let mut part_shape = shape.to_vec();
                if let Some(r) = part_shape.first_mut() {
                    *r = rows;
                }
                let ts = parts
                    .iter()
                    .map(|p| self.load_stored(name, p, &part_shape, dtype))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Tensor::cat(&ts, 0)?)
            }
        }
    }

    /// Whether a tensor with official name `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        match self.layout.source(name) {
            Source::One(s) => self.find(&s).is_some(),
            Source::ConcatRows(ps) => ps.iter().all(|p| self.find(p).is_some()),
        }
    }

    /// Compute dtype of this set.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Target device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Root view.
    pub fn root(&self) -> Vb<'_> {
        Vb {
            weights: self,
            prefix: String::new(),
        }
    }
}

/// A prefixed view into [`Weights`], like candle's `VarBuilder`: `vb.pp("llm").pp("norm").get(..)`.
#[derive(Clone)]
pub(crate) struct Vb<'a> {
    weights: &'a Weights,
    prefix: String,
}

impl<'a> Vb<'a> {
    /// A sub-view with `name` appended to the prefix.
    pub fn pp(&self, name: impl std::fmt::Display) -> Vb<'a> {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        };
        Vb {
            weights: self.weights,
            prefix,
        }
    }

    fn full(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// Loads `name` in the compute dtype, checking its shape.
    pub fn get(&self, shape: &[usize], name: &str) -> Result<Tensor> {
        self.weights
            .get_as(&self.full(name), shape, self.weights.dtype)
    }

    /// Whether `name` exists under this prefix.
    pub fn contains(&self, name: &str) -> bool {
        self.weights.contains(&self.full(name))
    }

    /// Compute dtype.
    pub fn dtype(&self) -> DType {
        self.weights.dtype()
    }

    /// Target device.
    pub fn device(&self) -> &Device {
        self.weights.device()
    }
}
