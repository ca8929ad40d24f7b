//! A checkpoint's `.safetensors` files, memory-mapped by candle (`MmapedSafetensors`, one per shard), as
//! a backend of candle's `VarBuilder`.
//!
//! Candle's own backend for these files copies a tensor before checking its shape, reports a missing
//! tensor without the files searched, cannot assemble a tensor that a layout stores in row blocks, and
//! leaves every copied tensor's pages mapped: resident memory then grows to the weights *plus* the file
//! (measured ~2x the weight bytes). This backend does those four things by hand.

use std::path::{Path, PathBuf};

use candle_core::safetensors::{Load, MmapedSafetensors};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use super::diagnose;
use crate::error::{into_candle, Error, Result};

/// A tensor stored as row blocks that the model reads as one: the tensor named `<p><fused>` is the
/// concatenation along dim 0 of the stored tensors `<p><part>`, in the order of `parts`.
#[derive(Debug)]
pub(crate) struct RowFusion {
    /// The name suffix the model asks for.
    pub fused: &'static str,
    /// The name suffixes of the stored blocks.
    pub parts: &'static [&'static str],
}

/// One mapped file.
struct Shard {
    path: PathBuf,
    tensors: MmapedSafetensors,
}

/// All files of one checkpoint (a single file, or the shards of a sharded one).
pub(crate) struct Checkpoint {
    shards: Vec<Shard>,
    fusions: &'static [RowFusion],
}

impl Checkpoint {
    /// Maps `paths` and validates their headers (every tensor's bytes inside its file) now, so that a
    /// corrupt or truncated file is reported before anything is built.
    pub fn open(paths: &[PathBuf], fusions: &'static [RowFusion]) -> Result<Self> {
        let shards = paths
            .iter()
            .map(|path| {
                // SAFETY: the file is mapped read-only and never written by this process; a concurrent
                // external truncation is the documented hazard of any memory map and is outside our control.
                let tensors =
                    unsafe { MmapedSafetensors::new(path) }.map_err(|e| refused(path, e))?;
                Ok(Shard {
                    path: path.clone(),
                    tensors,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { shards, fusions })
    }

    /// The names of all stored tensors.
    pub fn names(&self) -> Vec<String> {
        self.shards
            .iter()
            .flat_map(|s| s.tensors.tensors().into_iter().map(|(name, _)| name))
            .collect()
    }

    /// A `VarBuilder` reading this checkpoint as `dtype` on `device`.
    pub fn into_var_builder(self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self), dtype, device.clone())
    }

    /// The shard storing `name`; the first one when several do.
    fn find(&self, name: &str) -> Option<&Shard> {
        self.shards.iter().find(|s| s.tensors.get(name).is_ok())
    }

    /// The fusion rule producing `name`, with the name's prefix.
    fn fusion_of<'n>(&self, name: &'n str) -> Option<(&'static RowFusion, &'n str)> {
        self.fusions
            .iter()
            .find_map(|f| name.strip_suffix(f.fused).map(|prefix| (f, prefix)))
    }

    fn describe(&self) -> String {
        let names: Vec<String> = self
            .shards
            .iter()
            .map(|s| format!("`{}`", s.path.display()))
            .collect();
        names.join(", ")
    }

    /// Copies tensor `name` onto `device` as `dtype`, first checking that it has shape `expected` (if given).
    fn load(
        &self,
        name: &str,
        expected: Option<&[usize]>,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        if let Some(shard) = self.find(name) {
            return shard.load(name, expected, dtype, device);
        }
        if let Some((fusion, prefix)) = self.fusion_of(name) {
            return self.load_fused(name, fusion, prefix, expected, dtype, device);
        }
        Err(Error::MissingTensor {
            name: name.to_string(),
            expected: expected.map(<[usize]>::to_vec).unwrap_or_default(),
            source_desc: self.describe(),
        })
    }

    fn load_fused(
        &self,
        name: &str,
        fusion: &RowFusion,
        prefix: &str,
        expected: Option<&[usize]>,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        // Each block holds an equal share of the rows.
        let part_shape = expected.map(|shape| {
            let mut s = shape.to_vec();
            if let Some(rows) = s.first_mut() {
                *rows /= fusion.parts.len();
            }
            s
        });
        let parts = fusion
            .parts
            .iter()
            .map(|part| {
                let stored = format!("{prefix}{part}");
                self.load(&stored, part_shape.as_deref(), dtype, device)
                    .map_err(|e| match e {
                        Error::MissingTensor {
                            expected,
                            source_desc,
                            ..
                        } => Error::MissingTensor {
                            name: format!("{stored}` for `{name}"),
                            expected,
                            source_desc,
                        },
                        e => e,
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&parts, 0)?)
    }

    fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
            || self.fusion_of(name).is_some_and(|(fusion, prefix)| {
                fusion
                    .parts
                    .iter()
                    .all(|part| self.find(&format!("{prefix}{part}")).is_some())
            })
    }
}

impl Shard {
    fn load(
        &self,
        name: &str,
        expected: Option<&[usize]>,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let bad = |message: String| Error::Safetensors {
            path: self.path.clone(),
            message,
        };
        let view = self
            .tensors
            .get(name)
            .map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        if let Some(expected) = expected {
            if view.shape() != expected {
                return Err(Error::ShapeMismatch {
                    name: name.to_string(),
                    expected: expected.to_vec(),
                    found: view.shape().to_vec(),
                });
            }
        }
        // Candle's conversion: one copy out of the map (straight to the device), then the dtype cast there.
        let tensor = view
            .load(device)
            .map_err(|e| bad(format!("tensor `{name}`: {e}")))?
            .to_dtype(dtype)?;
        release_pages(view.data());
        Ok(tensor)
    }
}

impl SimpleBackend for Checkpoint {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        self.load(name, Some(shape.dims()), dtype, device)
            .map_err(into_candle)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        self.load(name, None, dtype, device).map_err(into_candle)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.contains(name)
    }
}

/// Candle's refusal to map `path`, as an error naming the file (and the tensor when one is at fault).
fn refused(path: &Path, e: candle_core::Error) -> Error {
    let mut e = e;
    loop {
        e = match e {
            candle_core::Error::WithPath { inner, .. }
            | candle_core::Error::WithBacktrace { inner, .. }
            | candle_core::Error::Context { inner, .. } => *inner,
            candle_core::Error::Io(source) => return Error::io(path, source),
            other => {
                return Error::Safetensors {
                    path: path.to_path_buf(),
                    message: diagnose::size_mismatch(path).unwrap_or_else(|| other.to_string()),
                }
            }
        }
    }
}

/// Drops the mapped pages of `bytes` (a tensor just copied out of the map) from this process's resident
/// memory, so that the load peaks at the weights plus one tensor instead of the weights plus the whole
/// file. The pages stay in the page cache and are re-read on demand; neighbouring tensors sharing the
/// first or last page only fault it back in. Candle's `MmapedSafetensors` keeps its `Mmap` private, hence
/// the direct `madvise` on the tensor's address range.
#[cfg(unix)]
fn release_pages(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    // SAFETY: `sysconf` has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let start = bytes.as_ptr() as usize;
    let aligned = start - start % page.max(1);
    // SAFETY: the range lies inside candle's read-only shared file mapping (page-aligned at its start, so
    // rounding down stays inside it). MADV_DONTNEED on such a mapping only discards page-table entries: the
    // contents are unchanged and re-read from the file on the next access, so every outstanding `&[u8]`
    // into the map stays valid. A failure (the return value) only means the pages stay resident.
    unsafe {
        libc::madvise(
            aligned as *mut libc::c_void,
            bytes.len() + (start - aligned),
            libc::MADV_DONTNEED,
        );
    }
}

#[cfg(not(unix))]
fn release_pages(_bytes: &[u8]) {}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Writes `tensors` (name, rows, cols; values counting up from a per-tensor base) to `dir/file`.
    fn write(dir: &Path, file: &str, tensors: &[(&str, usize, usize)]) -> PathBuf {
        let mut w = HashMap::new();
        for (k, &(name, rows, cols)) in tensors.iter().enumerate() {
            let base = 1000.0 * k as f32;
            let v: Vec<f32> = (0..rows * cols).map(|i| base + i as f32).collect();
            let t = Tensor::from_vec(v, (rows, cols), &Device::Cpu).expect("tensor");
            w.insert(name.to_string(), t);
        }
        let path = dir.join(file);
        candle_core::safetensors::save(&w, &path).expect("save");
        path
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().and_then(|t| t.to_vec1()).expect("values")
    }

    #[test]
    fn tensors_read_again_after_their_pages_were_released() -> Result<()> {
        let dir = tempfile::tempdir().expect("temp dir");
        // Several pages each, and neighbours sharing pages.
        let path = write(
            dir.path(),
            "m.safetensors",
            &[("a", 3, 1001), ("b", 5, 999), ("c", 1, 7)],
        );
        let vb = Checkpoint::open(&[path], &[])?.into_var_builder(DType::F32, &Device::Cpu);
        let first: Vec<Vec<f32>> = ["a", "b", "c"]
            .iter()
            .zip([(3, 1001), (5, 999), (1, 7)])
            .map(|(n, s)| vb.get(s, n).map(|t| values(&t)))
            .collect::<candle_core::Result<_>>()?;
        for (n, s, v) in [
            ("c", (1, 7), &first[2]),
            ("a", (3, 1001), &first[0]),
            ("b", (5, 999), &first[1]),
        ] {
            assert_eq!(&values(&vb.get(s, n)?), v, "{n} read twice");
        }
        assert_eq!(first[1][..3], [1000.0, 1001.0, 1002.0]);
        Ok(())
    }

    #[test]
    fn shards_and_row_fusion() -> Result<()> {
        const QKV: &[RowFusion] = &[RowFusion {
            fused: ".qkv",
            parts: &[".q", ".k", ".v"],
        }];
        let dir = tempfile::tempdir().expect("temp dir");
        let p1 = write(dir.path(), "1.safetensors", &[("l.q", 2, 3), ("l.k", 2, 3)]);
        let p2 = write(dir.path(), "2.safetensors", &[("l.v", 2, 3)]);
        let vb = Checkpoint::open(&[p1, p2], QKV)?.into_var_builder(DType::F32, &Device::Cpu);
        assert!(vb.contains_tensor("l.qkv") && !vb.contains_tensor("m.qkv"));
        let qkv = vb.get((6, 3), "l.qkv")?;
        let rows: Vec<f32> = values(&qkv).into_iter().step_by(3).collect();
        assert_eq!(rows, [0.0, 3.0, 1000.0, 1003.0, 0.0, 3.0]);
        let err = Error::from(vb.get((6, 3), "m.qkv").expect_err("no blocks"));
        assert!(
            matches!(&err, Error::MissingTensor { name, .. } if name == "m.q` for `m.qkv"),
            "{err}"
        );
        assert!(err.to_string().contains("1.safetensors`, `"), "{err}");
        let err = Error::from(vb.get((9, 3), "l.qkv").expect_err("wrong rows"));
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
        Ok(())
    }

    #[test]
    fn a_missing_file_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("absent.safetensors");
        let err = Checkpoint::open(std::slice::from_ref(&path), &[])
            .err()
            .expect("absent file");
        assert!(
            matches!(&err, Error::Io { path: p, .. } if *p == path),
            "{err}"
        );
    }
}
