//! Compiled components cached on disk, keyed by the engine's compatibility hash and the
//! component's sha256, so a plugin compiles once (tens of ms) and later loads in well under 1 ms.
//!
//! Layout: `<cache_dir>/<engine key>/<sha256>.cwasm` plus `<sha256>.cwasm.sha256`, the digest of
//! the artifact, checked before the artifact is mapped. Loading an artifact runs native code,
//! so the cache directory must be as trusted as the host binary (it is created owner-only).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::component::Component;

use crate::manifest::sha256_hex;
use crate::runtime::PluginRuntime;

fn cache_paths(dir: &Path, runtime: &PluginRuntime, sha256: &str) -> (PathBuf, PathBuf) {
    let dir = dir.join(runtime.compatibility_key());
    (
        dir.join(format!("{sha256}.cwasm")),
        dir.join(format!("{sha256}.cwasm.sha256")),
    )
}

/// Loads the compiled component for `bytes` (whose sha256 is `sha256`) from the cache, or
/// compiles it and stores the result. A broken cache entry is ignored and rewritten.
pub fn load_or_compile(
    runtime: &PluginRuntime,
    sha256: &str,
    bytes: &[u8],
) -> Result<Component, String> {
    let Some(dir) = &runtime.config().cache_dir else {
        return compile(runtime, bytes);
    };
    let (artifact, digest) = cache_paths(dir, runtime, sha256);
    if let Some(component) = read_cached(runtime, &artifact, &digest) {
        return Ok(component);
    }
    let component = compile(runtime, bytes)?;
    if let Err(e) = write_cached(&component, &artifact, &digest) {
        tracing::warn!("cannot write plugin cache {}: {e}", artifact.display());
    }
    Ok(component)
}

fn compile(runtime: &PluginRuntime, bytes: &[u8]) -> Result<Component, String> {
    Component::new(runtime.engine(), bytes).map_err(|e| format!("not a valid component: {e:#}"))
}

fn read_cached(runtime: &PluginRuntime, artifact: &Path, digest: &Path) -> Option<Component> {
    let expected = fs::read_to_string(digest).ok()?;
    let bytes = fs::read(artifact).ok()?;
    if sha256_hex(&bytes) != expected.trim() {
        tracing::warn!("ignoring corrupt plugin cache entry {}", artifact.display());
        return None;
    }
    // SAFETY: the artifact was written by `write_cached` of a host with the same engine
    // configuration (the directory is keyed by the compatibility hash), and its digest matches,
    // so it is exactly what `Component::serialize` produced; the cache dir is owner-only.
    unsafe { Component::deserialize(runtime.engine(), &bytes) }.ok()
}

fn write_cached(component: &Component, artifact: &Path, digest: &Path) -> Result<(), String> {
    let bytes = component.serialize().map_err(|e| e.to_string())?;
    let dir = artifact.parent().ok_or("no cache directory")?;
    create_private_dir(dir).map_err(|e| e.to_string())?;
    write_atomic(artifact, &bytes).map_err(|e| e.to_string())?;
    write_atomic(digest, sha256_hex(&bytes).as_bytes()).map_err(|e| e.to_string())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}
