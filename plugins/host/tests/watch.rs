//! Hot reload through the file watcher: replacing a plugin's files reloads it off the
//! execution path; a broken replacement is reported and the previous build stays.

mod common;

use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::Duration;

use omnigen_engine::Registry;
use omnigen_plugins::{LimitRequest, PluginHost, PluginWatcher};

/// Generous: the watcher debounces, then compiles on a loaded CI machine.
const WAIT: Duration = Duration::from_secs(60);

#[test]
fn replacing_the_wasm_reloads_and_a_broken_build_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    common::install_into(dir.path(), "prompt", "omnigen_plugin_prompt");
    let registry = Arc::new(Registry::new());
    let host = Arc::new(PluginHost::new(
        common::runtime().clone(),
        vec![dir.path().to_path_buf()],
    ));
    assert_eq!(host.reload(&registry).added, vec!["prompt"]);
    let first_sha = host.plugins()["prompt"].sha256().to_string();

    let (tx, rx) = channel();
    let _watcher = PluginWatcher::start(Arc::clone(&host), Arc::clone(&registry), move |report| {
        let _ = tx.send(report);
    })
    .unwrap();

    // A new build: the same component with an extra custom section, written with its manifest.
    let mut bytes = common::wasm("omnigen_plugin_prompt");
    bytes.extend_from_slice(&[0, 4, 3, b'v', b'2', b'!']);
    let manifest = common::manifest_for("prompt", &bytes, LimitRequest::default());
    omnigen_plugins::write_atomic(&dir.path().join("prompt.wasm"), &bytes).unwrap();
    omnigen_plugins::write_atomic(
        &dir.path().join("prompt.plugin.json"),
        manifest.to_json().as_bytes(),
    )
    .unwrap();
    let report = loop {
        let r = rx.recv_timeout(WAIT).expect("a reload report");
        // If the watcher saw the new .wasm before the new manifest, it first reports a mismatch.
        if !r.reloaded.is_empty() {
            break r;
        }
    };
    assert_eq!(report.reloaded, vec!["prompt"], "{report:?}");
    assert_eq!(host.plugins()["prompt"].sha256(), manifest.sha256);
    assert_ne!(manifest.sha256, first_sha);

    // A broken build with a matching manifest: reported, previous build kept.
    let broken = b"\0asm\x0d\0\x01\0garbage".to_vec();
    let bad_manifest = common::manifest_for("prompt", &broken, LimitRequest::default());
    omnigen_plugins::write_atomic(&dir.path().join("prompt.wasm"), &broken).unwrap();
    omnigen_plugins::write_atomic(
        &dir.path().join("prompt.plugin.json"),
        bad_manifest.to_json().as_bytes(),
    )
    .unwrap();
    let report = loop {
        let r = rx.recv_timeout(WAIT).expect("a failure report");
        // An intermediate state (new wasm, old manifest) may be reported first as a hash mismatch.
        if r.failed
            .iter()
            .any(|e| e.to_string().contains("not a valid component"))
        {
            break r;
        }
    };
    assert!(
        report.failed[0].to_string().starts_with("plugin `prompt`"),
        "{report:?}"
    );
    assert_eq!(host.plugins()["prompt"].sha256(), manifest.sha256);
    assert!(registry.contains("prompt/template"));
}
