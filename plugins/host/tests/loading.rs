//! Loading: manifests, hashes, interface checks, the disk cache, directories, reload and pins.

mod common;

use std::path::Path;
use std::sync::Arc;

use omnigen_engine::{CheckContext, Inputs, Registry, Value};
use omnigen_plugins::{
    install, register_dir, LimitRequest, LoadError, LoadedPlugin, Manifest, PluginConfig,
    PluginHost, PluginRuntime, PIN_INPUT,
};

fn load_bytes(name: &str, bytes: &[u8]) -> Result<LoadedPlugin, LoadError> {
    LoadedPlugin::from_bytes(
        common::runtime(),
        common::manifest_for(name, bytes, LimitRequest::default()),
        Path::new("x.plugin.json"),
        bytes,
    )
}

fn check_ctx() -> CheckContext {
    CheckContext::new("1", Default::default())
}

#[test]
fn hash_and_name_must_match_the_manifest() {
    let bytes = common::wasm("omnigen_plugin_color");
    let mut manifest = common::manifest_for("color", &bytes, LimitRequest::default());
    manifest.sha256 = "00".repeat(32);
    let err =
        LoadedPlugin::from_bytes(common::runtime(), manifest, Path::new("x"), &bytes).unwrap_err();
    assert!(matches!(err, LoadError::HashMismatch { .. }));
    assert!(
        err.to_string()
            .starts_with("plugin `color`: color.wasm has sha256 "),
        "{err}"
    );

    let err = load_bytes("colour", &bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `colour`: describes itself as `color`; the manifest says `colour`"
    );
}

#[test]
fn broken_components_are_rejected_with_the_plugin_name() {
    let bytes = common::wasm("omnigen_plugin_color");
    let err = load_bytes("color", &bytes[..bytes.len() / 2]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("plugin `color`: not a valid component"),
        "{err}"
    );

    let core_module = wat::parse_str("(module)").unwrap();
    let err = load_bytes("core", &core_module).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("plugin `core`: not a valid component"),
        "{err}"
    );

    let empty = wat::parse_str("(component)").unwrap();
    let err = load_bytes("empty", &empty).unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `empty`: does not export omnigen:plugin/node@0.1.0 (exports: nothing)"
    );
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let cache = tempfile::tempdir().unwrap();
    let config = PluginConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..common::test_config()
    };
    let runtime = PluginRuntime::new(config).unwrap();
    let bytes = common::wasm("omnigen_plugin_prompt");
    let manifest = common::manifest_for("prompt", &bytes, LimitRequest::default());
    LoadedPlugin::from_bytes(&runtime, manifest.clone(), Path::new("x"), &bytes).unwrap();

    let artifacts: Vec<_> = walk(cache.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(artifacts.len(), 1);
    assert!(artifacts[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with(&manifest.sha256));

    // A corrupt artifact is ignored (its digest no longer matches) and rewritten.
    let good = std::fs::read(&artifacts[0]).unwrap();
    std::fs::write(&artifacts[0], b"garbage").unwrap();
    let plugin = LoadedPlugin::from_bytes(&runtime, manifest, Path::new("x"), &bytes).unwrap();
    assert_eq!(plugin.info().name, "prompt");
    assert_eq!(std::fs::read(&artifacts[0]).unwrap().len(), good.len());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_directory_registers_namespaced_nodes_in_the_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    common::install_into(dir.path(), "edges", "omnigen_plugin_edges");
    common::install_into(dir.path(), "prompt", "omnigen_plugin_prompt");
    std::fs::write(dir.path().join("broken.plugin.json"), "{not json").unwrap();
    let registry = Registry::new();
    let (host, report) = register_dir(&registry, dir.path(), &common::test_config()).unwrap();
    assert_eq!(report.added, vec!["edges", "prompt"]);
    assert_eq!(report.failed.len(), 1);
    assert!(
        report.failed[0].to_string().contains("broken.plugin.json"),
        "{}",
        report.failed[0]
    );
    assert_eq!(
        registry.class_types(),
        vec!["edges/canny", "edges/sobel", "prompt/template"]
    );
    assert_eq!(host.plugin_names(), vec!["edges", "prompt"]);

    let info = registry.object_info(&omnigen_engine::Dirs::default());
    let canny = &info["edges/canny"];
    assert_eq!(canny["input"]["required"]["image"][0], "IMAGE");
    assert_eq!(canny["input"]["required"]["low_threshold"][0], "FLOAT");
    assert_eq!(
        canny["input"]["required"]["low_threshold"][1]["default"],
        50.0
    );
    assert_eq!(canny["input"]["optional"][PIN_INPUT][0], "STRING");
    assert_eq!(canny["output"][0], "IMAGE");
    assert_eq!(canny["output_name"][0], "edges");
    assert_eq!(canny["category"], "image/edges");
    assert_eq!(canny["python_module"], "custom_nodes.edges");
    let template = &info["prompt/template"];
    assert_eq!(template["input"]["optional"]["a"][0], "STRING");
    assert_eq!(template["input"]["optional"]["a"][1]["forceInput"], true);
    assert_eq!(template["output"][0], "STRING");
}

#[test]
fn pins_and_fingerprints_follow_the_installed_build() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = common::install_into(dir.path(), "edges", "omnigen_plugin_edges");
    let registry = Registry::new();
    let (_host, _) = register_dir(&registry, dir.path(), &common::test_config()).unwrap();
    let node = registry.get("edges/sobel").unwrap().node;

    let pinned = |pin: &str| {
        node.validate(
            &Inputs::new().with(PIN_INPUT, Value::String(pin.into())),
            &check_ctx(),
        )
    };
    assert_eq!(pinned(""), Ok(()));
    assert_eq!(pinned(&manifest.sha256), Ok(()));
    assert_eq!(pinned(&manifest.sha256[..12]), Ok(()));
    let err = pinned(&"f".repeat(64)).unwrap_err().message;
    assert!(
        err.starts_with("plugin `edges` is pinned to sha256 ffff"),
        "{err}"
    );
    assert!(err.contains(&manifest.sha256), "{err}");

    let fp = node.fingerprint(&Inputs::new(), &check_ctx()).unwrap();
    assert_eq!(
        fp,
        omnigen_engine::Fingerprint::Value(manifest.sha256.clone())
    );
}

#[test]
fn reload_swaps_good_builds_and_keeps_the_old_one_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    // Start with the color plugin installed under the name "color".
    common::install_into(dir.path(), "color", "omnigen_plugin_color");
    let registry = Registry::new();
    let host = PluginHost::new(common::runtime().clone(), vec![dir.path().to_path_buf()]);
    let first = host.reload(&registry);
    assert_eq!(first.added, vec!["color"]);
    let old_sha = host.plugins()["color"].sha256().to_string();

    // Nothing changed: nothing happens.
    assert!(host.reload(&registry).is_empty());

    // A new build (same code, one extra custom section → new hash) is picked up.
    let mut bytes = common::wasm("omnigen_plugin_color");
    bytes.extend_from_slice(&[0, 6, 5, b'b', b'u', b'i', b'l', b'd']);
    let manifest = common::manifest_for("color", &bytes, LimitRequest::default());
    std::fs::write(dir.path().join("color.wasm"), &bytes).unwrap();
    std::fs::write(dir.path().join("color.plugin.json"), manifest.to_json()).unwrap();
    let second = host.reload(&registry);
    assert_eq!(second.reloaded, vec!["color"]);
    assert!(second.failed.is_empty(), "{:?}", second.failed);
    let new_sha = host.plugins()["color"].sha256().to_string();
    assert_ne!(new_sha, old_sha);
    let fp = registry
        .get("color/invert")
        .unwrap()
        .node
        .fingerprint(&Inputs::new(), &check_ctx())
        .unwrap();
    assert_eq!(fp, omnigen_engine::Fingerprint::Value(new_sha.clone()));

    // A broken replacement (truncated .wasm) is reported and the previous build stays.
    std::fs::write(dir.path().join("color.wasm"), &bytes[..100]).unwrap();
    let third = host.reload(&registry);
    assert_eq!(third.failed.len(), 1);
    assert!(
        third.failed[0]
            .to_string()
            .starts_with("plugin `color`: color.wasm has sha256"),
        "{}",
        third.failed[0]
    );
    assert_eq!(host.plugins()["color"].sha256(), new_sha);
    assert!(registry.contains("color/invert"));

    // Removing the manifest unregisters the nodes.
    std::fs::remove_file(dir.path().join("color.plugin.json")).unwrap();
    let fourth = host.reload(&registry);
    assert_eq!(fourth.removed, vec!["color"]);
    assert!(!registry.contains("color/invert"));
}

#[test]
fn install_writes_component_and_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let src = common::wasm_dir().join("omnigen_plugin_geometry.wasm");
    let manifest = install(
        common::runtime(),
        &src,
        dir.path(),
        LimitRequest {
            memory_mib: Some(128),
            timeout_ms: None,
        },
    )
    .unwrap();
    assert_eq!(manifest.name, "geometry");
    assert_eq!(manifest.wasm, "geometry.wasm");
    let read = Manifest::read(&dir.path().join("geometry.plugin.json")).unwrap();
    assert_eq!(read, manifest);
    let plugin =
        LoadedPlugin::load(common::runtime(), &dir.path().join("geometry.plugin.json")).unwrap();
    assert_eq!(plugin.limits().memory_bytes, 128 << 20);
    let _ = Arc::new(plugin);
}
