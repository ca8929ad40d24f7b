//! Shared helpers: a scratch working directory, test images, running the binary, reading events.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

/// Longest we wait for something a background `omnigen` process should do. It guards against a
/// hang; it is not a speed assertion.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A temporary directory used as the working directory of `omnigen`.
pub struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    /// A fresh workspace with an empty `input/` folder.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("create temp dir");
        std::fs::create_dir(dir.path().join("input")).expect("create input dir");
        Self { dir }
    }

    /// A path inside the workspace.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a graph (or any JSON) file and returns its path.
    pub fn write_json(&self, rel: &str, json: &Json) -> PathBuf {
        let path = self.path(rel);
        std::fs::write(&path, serde_json::to_string_pretty(json).expect("json")).expect("write");
        path
    }

    /// Writes an RGBA PNG into `input/` where pixel (x, y) = (x*10, y*20, 200, alpha).
    pub fn write_input_png(&self, name: &str, width: u32, height: u32, alpha: u8) -> PathBuf {
        let image = image::RgbaImage::from_fn(width, height, |x, y| {
            image::Rgba([(x * 10) as u8, (y * 20) as u8, 200, alpha])
        });
        let path = self.path("input").join(name);
        image.save(&path).expect("save test png");
        path
    }

    /// The `omnigen` command, running in the workspace.
    pub fn omnigen(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_omnigen"));
        command.current_dir(self.dir.path());
        command
    }

    /// Runs `omnigen ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.omnigen().args(args).output().expect("run omnigen")
    }

    /// Names of the files in a workspace folder, sorted (empty if it does not exist).
    pub fn files_in(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(rel))
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the exit code, showing the output when it differs.
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

/// Parses JSON lines (blank lines skipped).
pub fn json_lines(text: &str) -> Vec<Json> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// The `type` of each event.
pub fn event_types(events: &[Json]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The node ids of `executing` events (excluding the final `node: null`).
pub fn executed_nodes(events: &[Json]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "executing")
        .filter_map(|e| e["data"]["node"].as_str().map(str::to_string))
        .collect()
}

/// Waits until `ready(contents of path)` holds; panics with the last contents after [`PATIENCE`].
pub fn wait_for_file(path: &Path, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if ready(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}; {} contains:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The text chunks of a PNG file.
pub fn png_text_chunks(path: &Path) -> Vec<(String, String)> {
    let bytes = std::fs::read(path).expect("read png");
    omnigen_nodes::io::png_write::read_png_text_chunks(&bytes).expect("png text chunks")
}

/// The graph `LoadImage(image) -> SaveImage(prefix)`.
pub fn load_save_graph(image: &str, prefix: &str) -> Json {
    serde_json::json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}
    })
}
