//! Hostile plugin folders: manifests pointing at devices, pipes, files outside the folder or huge
//! sparse components, and plugins whose `describe()` hangs. Startup must finish quickly with an
//! error naming each bad plugin, and the good plugins next to them must load.

mod common;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use omnigen_engine::Registry;
use omnigen_plugins::{register_dir, LoadError, PluginConfig, ReloadReport, ABI_VERSION};

/// Writes a manifest `<name>.plugin.json` whose component is `wasm` (any string).
fn write_manifest(dir: &Path, name: &str, wasm: &str) {
    let text = serde_json::json!({
        "name": name, "version": "0.1.0", "abi": ABI_VERSION, "wasm": wasm,
        "sha256": "00".repeat(32),
    });
    std::fs::write(dir.join(format!("{name}.plugin.json")), text.to_string()).unwrap();
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Loads `dir` on another thread and fails (instead of hanging) if that takes over `limit`.
fn load_within(dir: &Path, config: PluginConfig, limit: Duration) -> (ReloadReport, Duration) {
    let (tx, rx) = mpsc::channel();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let registry = Registry::new();
        let start = Instant::now();
        let (host, report) = register_dir(&registry, &dir, &config).unwrap();
        let _ = tx.send((report, start.elapsed()));
        drop(host);
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("loading did not finish within {limit:?}: it blocked"))
}

fn failure_of<'a>(report: &'a ReloadReport, needle: &str) -> &'a LoadError {
    report
        .failed
        .iter()
        .find(|e| e.to_string().contains(needle))
        .unwrap_or_else(|| panic!("no failure mentions {needle:?}: {:#?}", report.failed))
}

#[test]
fn devices_pipes_outside_files_and_huge_components_are_refused_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::install_into(d, "color", "omnigen_plugin_color");
    // Named directly, or climbing out of the folder: the manifest check refuses both.
    write_manifest(d, "zero_direct", "/dev/zero");
    write_manifest(d, "zero_climb", "../../../../../../dev/zero.wasm");
    // Through a symlink inside the folder: resolved, it lies outside.
    std::os::unix::fs::symlink("/dev/zero", d.join("zero_link.wasm")).unwrap();
    write_manifest(d, "zero_link", "zero_link.wasm");
    // A FIFO as the component, and a FIFO as the manifest: reading either would block forever.
    mkfifo(&d.join("pipe.wasm"));
    write_manifest(d, "pipe", "pipe.wasm");
    mkfifo(&d.join("pipe_manifest.plugin.json"));
    // A manifest that is a symlink to /dev/zero: reading it whole would never end.
    std::os::unix::fs::symlink("/dev/zero", d.join("endless.plugin.json")).unwrap();
    // An 8 GiB sparse component: refused by its size, before a byte is read.
    let big = std::fs::File::create(d.join("huge.wasm")).unwrap();
    big.set_len(8 << 30).unwrap();
    drop(big);
    write_manifest(d, "huge", "huge.wasm");

    let (report, took) = load_within(d, common::test_config(), Duration::from_secs(60));
    assert_eq!(report.added, vec!["color"], "{:#?}", report.failed);
    assert_eq!(report.failed.len(), 7, "{:#?}", report.failed);
    assert!(took < Duration::from_secs(30), "{took:?}");

    for name in ["zero_direct", "zero_climb"] {
        let err = failure_of(&report, &format!("{name}.plugin.json"));
        assert!(matches!(err, LoadError::Manifest { .. }), "{err}");
        assert!(err
            .to_string()
            .contains("must be a `.wasm` file name in the manifest's directory"));
    }
    let err = failure_of(&report, "plugin `zero_link`");
    assert!(
        err.to_string()
            .contains("resolves to /dev/zero, outside the plugin folder"),
        "{err}"
    );
    let err = failure_of(&report, "plugin `pipe`");
    assert!(
        err.to_string()
            .contains("is a named pipe (FIFO), not a regular file"),
        "{err}"
    );
    let err = failure_of(&report, "pipe_manifest.plugin.json");
    assert!(err.to_string().contains("named pipe (FIFO)"), "{err}");
    let err = failure_of(&report, "endless.plugin.json");
    assert!(
        err.to_string().contains("outside the plugin folder"),
        "{err}"
    );
    let err = failure_of(&report, "plugin `huge`");
    assert!(
        err.to_string()
            .contains("is 8589934592 bytes, more than the limit of 67108864 bytes (64 MiB)"),
        "{err}"
    );
}

#[test]
fn the_component_size_limit_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    common::install_into(dir.path(), "color", "omnigen_plugin_color");
    let config = PluginConfig {
        max_wasm_bytes: 1024,
        ..common::test_config()
    };
    let (report, _) = load_within(dir.path(), config, Duration::from_secs(60));
    assert!(report.added.is_empty());
    let err = failure_of(&report, "plugin `color`");
    assert!(
        err.to_string()
            .contains("more than the limit of 1024 bytes"),
        "{err}"
    );
}

#[test]
fn plugins_whose_describe_hangs_cost_one_timeout_together_not_one_each() {
    let cache = tempfile::tempdir().unwrap();
    let config = PluginConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..common::test_config()
    };
    let timeout = config.default_limits.timeout;
    let hangers = config.concurrent_loads();
    assert!(hangers >= 4, "{hangers}");

    // Warm the compile cache, so that the timing below is the describe timeouts alone.
    let warm = tempfile::tempdir().unwrap();
    common::install_into(warm.path(), "describe_hang", "omnigen_plugin_describe_hang");
    common::install_into(warm.path(), "prompt", "omnigen_plugin_prompt");
    let (report, _) = load_within(warm.path(), config.clone(), Duration::from_secs(120));
    let err = failure_of(&report, "plugin `describe_hang`");
    assert!(
        err.to_string()
            .contains("describe() failed: timed out after 500 ms"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    for i in 0..hangers {
        let name = format!("describe_hang{i}");
        let bytes = common::wasm("omnigen_plugin_describe_hang");
        let manifest = common::manifest_for(&name, &bytes, Default::default());
        std::fs::write(dir.path().join(&manifest.wasm), &bytes).unwrap();
        std::fs::write(
            dir.path().join(format!("{name}.plugin.json")),
            manifest.to_json(),
        )
        .unwrap();
    }
    common::install_into(dir.path(), "prompt", "omnigen_plugin_prompt");
    let (report, took) = load_within(dir.path(), config, Duration::from_secs(120));
    assert_eq!(report.added, vec!["prompt"]);
    assert_eq!(report.failed.len(), hangers, "{:#?}", report.failed);
    // One after another they would take `hangers` timeouts; together, about one.
    assert!(
        took < timeout * (hangers as u32) / 2,
        "{hangers} hanging plugins took {took:?} (timeout {timeout:?} each)"
    );
}
