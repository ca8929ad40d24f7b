//! Why a `.safetensors` file was refused, in words that name the tensor at fault. Only read after candle
//! (the `safetensors` crate) has refused the file: its own error for a truncated file says only "file not
//! fully covered".

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The `safetensors` crate's limit on the JSON header: a longer one is not read for a diagnosis.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Explains a file whose tensors do not cover its data exactly: the first tensor cut off by a truncation,
/// or the number of bytes past the last tensor. `None` when the header cannot be read or matches the
/// file's length (the caller then reports candle's own message).
pub(super) fn size_mismatch(path: &Path) -> Option<String> {
    let mut file = File::open(path).ok()?;
    let file_len = file.metadata().ok()?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len).ok()?;
    let header_len = u64::from_le_bytes(len);
    if header_len > MAX_HEADER_BYTES {
        return None;
    }
    let data_len = file_len.checked_sub(8)?.checked_sub(header_len)?;
    let mut header = vec![0u8; usize::try_from(header_len).ok()?];
    file.read_exact(&mut header).ok()?;
    let meta: safetensors::tensor::Metadata = serde_json::from_slice(&header).ok()?;
    let tensors = meta.tensors();
    let end_of = |info: &safetensors::tensor::TensorInfo| info.data_offsets.1 as u64;
    let cut = tensors
        .iter()
        .filter(|(_, info)| end_of(info) > data_len)
        .min_by_key(|(_, info)| info.data_offsets.0);
    if let Some((name, info)) = cut {
        return Some(format!(
            "tensor `{name}` (shape {:?}) ends at data byte {} but the file holds only {data_len} data bytes: \
             the file is truncated",
            info.shape,
            end_of(info)
        ));
    }
    let end = tensors.values().map(|info| end_of(info)).max().unwrap_or(0);
    (end < data_len).then(|| {
        format!(
            "the tensors end at data byte {end} but the file holds {data_len} data bytes: {} bytes follow the \
             last tensor",
            data_len - end
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut f, bytes).expect("write");
        f
    }

    fn two_tensors() -> Vec<u8> {
        let mut w = std::collections::HashMap::new();
        let dev = candle_core::Device::Cpu;
        for (name, n) in [("a", 4usize), ("b", 8)] {
            let t = candle_core::Tensor::zeros(n, candle_core::DType::F32, &dev).expect("zeros");
            w.insert(name.to_string(), t);
        }
        let f = tempfile::NamedTempFile::new().expect("temp file");
        candle_core::safetensors::save(&w, f.path()).expect("save");
        std::fs::read(f.path()).expect("read")
    }

    #[test]
    fn names_the_truncated_tensor() {
        let bytes = two_tensors();
        let f = file_with(&bytes[..bytes.len() - 4]);
        let msg = size_mismatch(f.path()).expect("a diagnosis");
        assert!(
            msg.contains("tensor `b` (shape [8]) ends at data byte 48")
                && msg.contains("truncated"),
            "{msg}"
        );
    }

    #[test]
    fn counts_trailing_bytes() {
        let mut bytes = two_tensors();
        bytes.extend_from_slice(&[0; 5]);
        let msg = size_mismatch(file_with(&bytes).path()).expect("a diagnosis");
        assert!(msg.contains("5 bytes follow the last tensor"), "{msg}");
    }

    #[test]
    fn a_consistent_or_unreadable_file_has_no_diagnosis() {
        assert_eq!(size_mismatch(file_with(&two_tensors()).path()), None);
        assert_eq!(
            size_mismatch(file_with(b"\x05\0\0\0\0\0\0\0{oops").path()),
            None
        );
    }
}
