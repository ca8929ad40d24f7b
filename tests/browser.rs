//! Browser tests: ComfyUI's real editor (the pinned frontend) and our app page in Debian's Chromium,
//! driven by playwright-core against a real `omnigen serve` on the tiny model. Each test runs one
//! scenario, `ui/browser/tests/NAME.test.mjs`, through `node ui/browser/run.mjs`; screenshots land in
//! `target/browser-output/`.
//!
//! The first test installs what the scenarios need and caches it: `npm install` of playwright-core in
//! ui/ (pinned in ui/package.json) and `omnigen frontend install` of the pinned frontend under
//! `target/browser/`. They need `node`, `npm`, `pip` and Chromium (`/usr/bin/chromium`, or
//! `OMNIGEN_CHROMIUM`); `OMNIGEN_SKIP_BROWSER=1` skips them where those are missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use omnigen_server::config::{FRONTEND_DIR, FRONTEND_VERSION};

const SKIP: &str = "OMNIGEN_SKIP_BROWSER";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/`, found from the binary under test (it honours CARGO_TARGET_DIR).
fn target_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_omnigen"));
    bin.ancestors()
        .nth(2)
        .expect("the binary lives in target/PROFILE/")
        .to_path_buf()
}

/// Installs playwright-core and the frontend once per test process; the frontend's static folder.
fn prepared() -> &'static Result<PathBuf, String> {
    static PREPARED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PREPARED.get_or_init(|| {
        if !repo().join("ui/node_modules/playwright-core").exists() {
            run(Command::new("npm")
                .args([
                    "install",
                    "--no-package-lock",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                ])
                .arg(repo().join("ui")))?;
        }
        // Cached per pinned version, so bumping the pin installs the new one.
        let data_dir = target_dir().join("browser").join(FRONTEND_VERSION);
        let frontend = data_dir.join(FRONTEND_DIR);
        if !frontend.join("index.html").exists() {
            run(Command::new(env!("CARGO_BIN_EXE_omnigen"))
                .args(["frontend", "install", "--data-dir"])
                .arg(&data_dir))?;
        }
        Ok(frontend)
    })
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .map_err(|err| format!("cannot run {shown}: {err} (set {SKIP}=1 to skip browser tests)"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Runs one scenario; panics with its output when it fails.
fn scenario(name: &str) {
    if std::env::var_os(SKIP).is_some_and(|v| v == "1") {
        eprintln!("{SKIP}=1: skipping browser scenario {name}");
        return;
    }
    // One scenario at a time: each starts Chromium and a server, and the editor's boot is CPU-heavy.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let frontend = match prepared() {
        Ok(dir) => dir,
        Err(why) => panic!("browser tests cannot start: {why}"),
    };
    let output = Command::new("node")
        .current_dir(repo())
        .arg("ui/browser/run.mjs")
        .arg("--omnigen")
        .arg(env!("CARGO_BIN_EXE_omnigen"))
        .arg("--frontend")
        .arg(frontend)
        .arg("--out")
        .arg(target_dir().join("browser-output"))
        .arg(name)
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run node: {err} (set {SKIP}=1 to skip browser tests)")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("ok {name}")),
        "browser scenario {name} failed ({}):\n{stdout}{stderr}",
        output.status
    );
}

macro_rules! browser_test {
    ($name:ident) => {
        #[test]
        fn $name() {
            scenario(stringify!($name));
        }
    };
}

browser_test!(editor_loads);
browser_test!(editor_text_to_image);
browser_test!(editor_upload_edit);
browser_test!(editor_png_drop);
browser_test!(editor_wide_graph);
browser_test!(app_page);
