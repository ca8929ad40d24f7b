//! A real third-party ComfyUI client against a real `omnigen serve`: PyPI's `comfy-api-simplified`
//! (pinned in `tests/clients/requirements.txt`), installed by this test into a fresh venv in a temp
//! dir, uploads an image, queues `LoadImage -> SaveImage`, waits on the WebSocket and downloads the
//! result through `/view` (`tests/clients/comfy_api_simplified_client.py`). The downloaded bytes must
//! equal the file the server saved and decode to the uploaded picture.
//!
//! It needs `python3` with `venv` and a reachable package index. Without the index the test fails and
//! says so; `OMNIGEN_SKIP_PYPI=1` skips it explicitly (README, docs/server.md).

mod serve_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serve_support::Served;

/// Set to `1` to skip this test (no network, or no Python).
const SKIP_ENV: &str = "OMNIGEN_SKIP_PYPI";

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A venv with the pinned client installed; its Python.
fn venv_with_client(dir: &Path) -> PathBuf {
    let venv = dir.join("venv");
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): this test needs Python 3 with venv; {SKIP_ENV}=1 skips it")
        });
    assert!(
        made.status.success(),
        "python3 -m venv failed (is the venv module installed?); {SKIP_ENV}=1 skips this test\n{}",
        text(&made)
    );
    let python = if cfg!(windows) {
        venv.join("Scripts/python.exe")
    } else {
        venv.join("bin/python")
    };
    let installed = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "-r",
        ])
        .arg(clients_dir().join("requirements.txt"))
        .output()
        .expect("run pip");
    assert!(
        installed.status.success(),
        "pip could not install comfy-api-simplified from the package index (is it reachable from \
         here?); set {SKIP_ENV}=1 to skip this test\n{}",
        text(&installed)
    );
    python
}

#[test]
fn comfy_api_simplified_queues_a_graph_and_downloads_the_saved_image() {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        eprintln!("skipped: {SKIP_ENV}=1");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let python = venv_with_client(dir.path());

    let data = dir.path().join("data");
    let picture = dir.path().join("cat.png");
    serve_support::write_png(&picture, 7, 5);
    let server = Served::start(dir.path(), &data, &[]);
    let downloads = dir.path().join("downloads");
    let ran = Command::new(&python)
        .arg(clients_dir().join("comfy_api_simplified_client.py"))
        .arg(format!("http://127.0.0.1:{}", server.port))
        .arg(&picture)
        .arg(&downloads)
        .output()
        .expect("run the client script");
    assert!(
        ran.status.success(),
        "the client failed\n{}\nserver log:\n{}",
        text(&ran),
        server.log()
    );
    let report: serde_json::Value = serde_json::from_slice(&ran.stdout)
        .unwrap_or_else(|e| panic!("the client printed no JSON report ({e})\n{}", text(&ran)));

    // The upload went through /upload/image into the input folder, byte for byte.
    let uploaded = &report["uploaded"];
    let stored = data
        .join("input")
        .join(uploaded["subfolder"].as_str().unwrap_or_default())
        .join(uploaded["name"].as_str().expect("an uploaded name"));
    assert_eq!(std::fs::read(&stored).ok(), std::fs::read(&picture).ok());

    // What it downloaded is exactly what the server saved, and it is the uploaded picture.
    let names: Vec<&str> = report["images"]
        .as_array()
        .expect("a list of images")
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert_eq!(names, ["third_party_00001_.png"], "{report}");
    let downloaded = std::fs::read(downloads.join(names[0])).expect("the downloaded image");
    let saved = std::fs::read(data.join("output").join(names[0])).expect("the saved output");
    assert!(
        downloaded == saved,
        "the download differs from the saved file"
    );
    let image = image::load_from_memory(&downloaded).expect("the download decodes");
    let original = image::open(&picture).expect("the input decodes");
    assert_eq!(image.to_rgb8(), original.to_rgb8());
}
