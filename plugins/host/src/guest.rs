//! Development helper: builds the repository's guest plugins (SDK examples and test fixtures in
//! `plugins/guest`) for `wasm32-wasip2`. Used by this crate's tests and benchmarks, and by
//! anyone who wants the example plugins without typing the cargo command.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest workspace of this source tree (`plugins/guest`).
pub fn guest_workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("guest")
}

/// The crate names of the guest plugins, as `(package, wasm file stem)`.
pub const GUEST_PLUGINS: &[(&str, &str)] = &[
    ("omnigen-plugin-color", "omnigen_plugin_color"),
    ("omnigen-plugin-geometry", "omnigen_plugin_geometry"),
    ("omnigen-plugin-edges", "omnigen_plugin_edges"),
    ("omnigen-plugin-prompt", "omnigen_plugin_prompt"),
    ("omnigen-plugin-hostile", "omnigen_plugin_hostile"),
    ("omnigen-plugin-probe", "omnigen_plugin_probe"),
];

/// Builds every guest plugin in release mode into `target_dir` and returns the directory
/// holding the `.wasm` files. Cargo makes repeated calls cheap (nothing to rebuild).
pub fn build_guests(target_dir: &Path) -> Result<PathBuf, String> {
    let workspace = guest_workspace();
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(&workspace)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--workspace",
        ])
        .env("CARGO_TARGET_DIR", target_dir)
        // The outer build's flags are for the host, not for wasm.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run cargo in {}: {e}", workspace.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("wasm32-wasip2")
            && (stderr.contains("target may not be installed")
                || stderr.contains("can't find crate for `core`")
                || stderr.contains("can't find crate for `std`"))
        {
            "\nhint: run `rustup target add wasm32-wasip2`"
        } else {
            ""
        };
        let tail: String = stderr
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        return Err(format!("building the guest plugins failed:\n{tail}{hint}"));
    }
    let dir = target_dir.join("wasm32-wasip2").join("release");
    for (_, stem) in GUEST_PLUGINS {
        let wasm = dir.join(format!("{stem}.wasm"));
        if !wasm.is_file() {
            return Err(format!(
                "the guest build did not produce {}",
                wasm.display()
            ));
        }
    }
    Ok(dir)
}
