//! The small manifest that sits next to each plugin's `.wasm`: `<anything>.plugin.json`.
//!
//! ```json
//! { "name": "edges", "version": "0.1.0", "abi": "0.1.0", "wasm": "edges.wasm",
//!   "sha256": "…64 hex digits…", "limits": { "memory_mib": 256, "timeout_ms": 10000 } }
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bindings::ABI_VERSION;
use crate::error::LoadError;
use crate::files;
use crate::limits::LimitRequest;

/// The file-name suffix that marks a manifest in a plugins directory.
pub const MANIFEST_SUFFIX: &str = ".plugin.json";

/// A parsed, checked plugin manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name: the namespace of its nodes' class_type (`<name>/<node id>`).
    pub name: String,
    /// The plugin's own version (informational).
    pub version: String,
    /// The plugin interface version it targets, e.g. `"0.1.0"`.
    pub abi: String,
    /// The component file, relative to the manifest.
    pub wasm: String,
    /// sha256 of the component file, lowercase hex.
    pub sha256: String,
    /// Limits the plugin asks for (clamped to the host's caps).
    #[serde(default, skip_serializing_if = "is_default")]
    pub limits: LimitRequest,
}

fn is_default(l: &LimitRequest) -> bool {
    *l == LimitRequest::default()
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `name` is a valid plugin name: 1–64 of `a-z`, `0-9`, `_`, `-`, starting with a letter.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 64
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
}

/// Whether a plugin built against interface `abi` runs on this host (same major.minor for 0.x).
pub fn abi_compatible(abi: &str) -> bool {
    let want: Vec<&str> = ABI_VERSION.split('.').collect();
    let got: Vec<&str> = abi.split('.').collect();
    got.len() == 3 && got[..2] == want[..2] && got[2].parse::<u32>().is_ok()
}

impl Manifest {
    /// Reads and checks the manifest at `path` (a regular file inside its folder, at most 64 KiB).
    pub fn read(path: &Path) -> Result<Manifest, LoadError> {
        Self::parse(path, &Self::read_bytes(path)?)
    }

    /// The bytes of the manifest at `path`: a regular file inside its folder once symlinks are
    /// resolved, at most 64 KiB, refused before reading otherwise.
    pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, LoadError> {
        files::read_in_folder(files::folder_of(path), path, files::MAX_MANIFEST_BYTES).map_err(
            |e| LoadError::Io {
                path: path.to_path_buf(),
                message: e.to_string(),
            },
        )
    }

    /// Parses and checks the manifest `bytes` read from `path`.
    pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Manifest, LoadError> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| LoadError::Manifest {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        manifest.check().map_err(|message| LoadError::Manifest {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(manifest)
    }

    /// Reads this (checked) manifest's component, for a manifest at `manifest_path`: a regular
    /// file inside the manifest's folder once symlinks are resolved, at most `max_bytes` long,
    /// refused before reading otherwise.
    pub fn read_wasm(&self, manifest_path: &Path, max_bytes: u64) -> Result<Vec<u8>, LoadError> {
        let path = self.wasm_path(manifest_path);
        files::read_in_folder(files::folder_of(manifest_path), &path, max_bytes).map_err(|e| {
            LoadError::Invalid {
                plugin: self.name.clone(),
                message: format!("component {}: {e}", path.display()),
            }
        })
    }

    /// Checks the fields that need more than their type.
    pub fn check(&self) -> Result<(), String> {
        if !is_valid_name(&self.name) {
            return Err(format!(
                "name {:?} must be 1-64 characters of a-z, 0-9, _ and -, starting with a letter",
                self.name
            ));
        }
        if !abi_compatible(&self.abi) {
            return Err(format!(
                "plugin `{}` targets interface {}, this host serves {ABI_VERSION}",
                self.name, self.abi
            ));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("sha256 {:?} is not 64 hex digits", self.sha256));
        }
        let wasm = Path::new(&self.wasm);
        if wasm.is_absolute() || wasm.components().count() != 1 || !self.wasm.ends_with(".wasm") {
            return Err(format!(
                "wasm {:?} must be a `.wasm` file name in the manifest's directory",
                self.wasm
            ));
        }
        Ok(())
    }

    /// The path of the component file for a manifest at `manifest_path`.
    pub fn wasm_path(&self, manifest_path: &Path) -> PathBuf {
        files::folder_of(manifest_path).join(&self.wasm)
    }

    /// Serializes the manifest (pretty JSON, trailing newline).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            name: "edges".into(),
            version: "1.0.0".into(),
            abi: "0.1.0".into(),
            wasm: "edges.wasm".into(),
            sha256: "ab".repeat(32),
            limits: LimitRequest::default(),
        }
    }

    #[test]
    fn a_good_manifest_round_trips() {
        let m = manifest();
        assert_eq!(m.check(), Ok(()));
        let back: Manifest = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn bad_fields_are_named() {
        type Breakage = fn(&mut Manifest);
        let cases: [(Breakage, &str); 5] = [
            (|m| m.name = "Edges!".into(), "name"),
            (|m| m.abi = "0.2.0".into(), "interface 0.2.0"),
            (|m| m.abi = "1.0".into(), "interface 1.0"),
            (|m| m.sha256 = "xyz".into(), "sha256"),
            (|m| m.wasm = "../evil.wasm".into(), "wasm"),
        ];
        for (break_it, expected) in cases {
            let mut m = manifest();
            break_it(&mut m);
            let err = m.check().unwrap_err();
            assert!(err.contains(expected), "{err:?} should mention {expected}");
        }
    }

    #[test]
    fn abi_patch_versions_are_compatible() {
        assert!(abi_compatible("0.1.0"));
        assert!(abi_compatible("0.1.7"));
        assert!(!abi_compatible("0.2.0"));
        assert!(!abi_compatible("0.1"));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let text = manifest()
            .to_json()
            .replace("\"name\"", "\"grant_fs\": true, \"name\"");
        assert!(serde_json::from_str::<Manifest>(&text).is_err());
    }
}
