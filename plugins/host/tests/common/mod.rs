//! Shared test fixtures: the guest plugins (built once per test binary) and a shared runtime.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use omnigen_plugins::{
    guest, sha256_hex, LimitRequest, Limits, LoadedPlugin, Manifest, PluginConfig, PluginRuntime,
    ABI_VERSION,
};

/// Where the guest plugins are built: `OMNIGEN_GUEST_TARGET_DIR` if set (to share a build),
/// else inside this target directory.
fn guest_target() -> PathBuf {
    std::env::var_os("OMNIGEN_GUEST_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("guest-target"))
}

/// The directory of built guest `.wasm` files; builds them on first use.
pub fn wasm_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| guest::build_guests(&guest_target()).unwrap_or_else(|e| panic!("{e}")))
}

/// The bytes of guest plugin `stem` (e.g. `"omnigen_plugin_edges"`).
pub fn wasm(stem: &str) -> Vec<u8> {
    std::fs::read(wasm_dir().join(format!("{stem}.wasm"))).expect("guest wasm exists")
}

/// Test limits: small and quick, so hostile plugins fail fast.
pub fn test_config() -> PluginConfig {
    PluginConfig {
        default_limits: Limits {
            memory_bytes: 64 << 20,
            timeout: Duration::from_millis(500),
            ..Limits::default()
        },
        max_memory_bytes: 256 << 20,
        max_concurrent_calls: 8,
        ..PluginConfig::default()
    }
}

/// One runtime for the whole test binary (one engine and pool, as in production).
pub fn runtime() -> &'static PluginRuntime {
    static RT: OnceLock<PluginRuntime> = OnceLock::new();
    RT.get_or_init(|| PluginRuntime::new(test_config()).expect("runtime starts"))
}

/// A manifest for `bytes` named `name`.
pub fn manifest_for(name: &str, bytes: &[u8], limits: LimitRequest) -> Manifest {
    Manifest {
        name: name.into(),
        version: "0.1.0".into(),
        abi: ABI_VERSION.into(),
        wasm: format!("{name}.wasm"),
        sha256: sha256_hex(bytes),
        limits,
    }
}

/// Loads guest plugin `stem` under `name` with the test runtime.
pub fn load(name: &str, stem: &str) -> LoadedPlugin {
    load_with(runtime(), name, stem, LimitRequest::default())
}

/// Loads guest plugin `stem` under `name` with `runtime`, asking for `limits`.
pub fn load_with(
    runtime: &PluginRuntime,
    name: &str,
    stem: &str,
    limits: LimitRequest,
) -> LoadedPlugin {
    let bytes = wasm(stem);
    LoadedPlugin::from_bytes(
        runtime,
        manifest_for(name, &bytes, limits),
        Path::new("test.plugin.json"),
        &bytes,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Writes `stem` into `dir` as plugin `name` (component + manifest).
pub fn install_into(dir: &Path, name: &str, stem: &str) -> Manifest {
    let bytes = wasm(stem);
    let manifest = manifest_for(name, &bytes, LimitRequest::default());
    std::fs::write(dir.join(&manifest.wasm), &bytes).unwrap();
    std::fs::write(dir.join(format!("{name}.plugin.json")), manifest.to_json()).unwrap();
    manifest
}
