//! `omnigen frontend install`: puts ComfyUI's editor (PyPI `comfyui-frontend-package`, GPL-3.0, never
//! built into this binary) into the data dir, where `omnigen serve` finds it.
//!
//! The wheel comes from `pip download --no-deps` (so the user's own index settings apply) or from a file
//! the user already has; its sha256 must match the pin in `omnigen_server::config`. Only `static/` is
//! unpacked, without the `.map` source maps (78 MB of the 123 MB), into a fresh folder that then replaces
//! the previous install in one rename.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use omnigen_server::config::{FRONTEND_DIR, FRONTEND_VERSION, FRONTEND_WHEEL_SHA256};
use sha2::{Digest, Sha256};

use crate::cli::{FrontendArgs, FrontendCommand, FrontendInstallArgs};
use crate::outcome::Failure;

/// The wheel's folder that holds the ready-to-serve build.
const STATIC_PREFIX: &str = "comfyui_frontend_package/static/";

/// Runs a `frontend` subcommand.
pub fn run(args: FrontendArgs) -> Result<(), Failure> {
    match args.command {
        FrontendCommand::Install(install_args) => install(&install_args).map_err(Failure::Usage),
    }
}

fn install(args: &FrontendInstallArgs) -> anyhow::Result<()> {
    let version = args.version.as_deref().unwrap_or(FRONTEND_VERSION);
    let expected = match (&args.sha256, version == FRONTEND_VERSION) {
        (Some(hash), _) => hash.to_ascii_lowercase(),
        (None, true) => FRONTEND_WHEEL_SHA256.to_string(),
        (None, false) => bail!(
            "only frontend {FRONTEND_VERSION} is pinned (with its sha256); to install {version}, pass the \
             wheel's sha256 with --sha256"
        ),
    };
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix(".frontend-install-")
        .tempdir_in(&args.data_dir)
        .context("cannot create a scratch folder in the data dir")?;
    let wheel = match &args.wheel {
        Some(file) => file.clone(),
        None => pip_download(version, scratch.path())?,
    };
    let bytes =
        std::fs::read(&wheel).with_context(|| format!("cannot read {}", wheel.display()))?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != expected {
        bail!(
            "{}: sha256 is {actual}, expected {expected} for frontend {version}; not installing",
            wheel.display()
        );
    }
    let staged = scratch.path().join("static");
    let files = unpack_static(&bytes, &staged)
        .with_context(|| format!("cannot unpack {}", wheel.display()))?;
    let target = args.data_dir.join(FRONTEND_DIR);
    replace_dir(&staged, &target, scratch.path())?;
    println!("{}", target.display());
    eprintln!(
        "installed ComfyUI frontend {version} ({files} files); `omnigen serve --data-dir {}` serves it",
        args.data_dir.display()
    );
    Ok(())
}

/// `pip download --no-deps comfyui-frontend-package==VERSION` into `dir`; the wheel's path.
fn pip_download(version: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let status = Command::new("pip")
        .args(["download", "--no-deps", "--only-binary", ":all:", "--dest"])
        .arg(dir)
        .arg(format!("comfyui-frontend-package=={version}"))
        .status()
        .context("cannot run pip (install it, or pass a wheel you have with --wheel FILE)")?;
    if !status.success() {
        bail!("pip download of comfyui-frontend-package=={version} failed ({status})");
    }
    std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("pip download finished but left no wheel")
}

/// Writes the wheel's `static/` files, except source maps, under `dest`; returns how many.
fn unpack_static(wheel: &[u8], dest: &Path) -> anyhow::Result<usize> {
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(wheel)).context("not a zip file")?;
    let mut written = 0;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        // `enclosed_name` refuses absolute names and `..`, so no entry lands outside `dest`.
        let Some(name) = entry.enclosed_name() else {
            bail!("the wheel has an unsafe entry name {:?}", entry.name());
        };
        let Ok(relative) = name.strip_prefix(STATIC_PREFIX) else {
            continue;
        };
        if entry.is_dir() || relative.extension().is_some_and(|e| e == "map") {
            continue;
        }
        let path = dest.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        written += 1;
    }
    if !dest.join("index.html").is_file() {
        bail!("the wheel has no {STATIC_PREFIX}index.html: is it comfyui-frontend-package?");
    }
    Ok(written)
}

/// Puts `staged` at `target`: the old install is moved aside (inside `scratch`, removed with it) and the
/// new one renamed into place, so `target` is never half-written.
fn replace_dir(staged: &Path, target: &Path, scratch: &Path) -> anyhow::Result<()> {
    if target.exists() {
        std::fs::rename(target, scratch.join("previous"))
            .with_context(|| format!("cannot move the previous {} aside", target.display()))?;
    }
    std::fs::rename(staged, target).with_context(|| format!("cannot create {}", target.display()))
}
