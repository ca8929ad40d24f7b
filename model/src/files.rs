//! The layout of a model folder: which files the loader reads, in the official layout (`config.json`,
//! `model.safetensors`, `tokenizer.json`, `vae/`) or the diffusers one (`transformer/`, `tokenizer/`, `vae/`).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::vae::{Vae, VAE_CONFIG_FILE, VAE_WEIGHT_FILES};

/// Every file of an official-layout OmniGen-v1 folder, relative to it (what a download must fetch).
pub const OFFICIAL_FILES: [&str; 5] = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
];

/// The VAE's subfolder in both layouts.
const VAE_DIR: &str = "vae";

/// The files of a model folder.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// Transformer config.
    pub config: PathBuf,
    /// Transformer weight files.
    pub weights: Vec<PathBuf>,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// The VAE folder (may be absent on disk unless found by [`ModelFiles::discover_with_vae`]).
    pub vae_dir: PathBuf,
    /// Whether the folder uses diffusers' names.
    pub diffusers: bool,
    /// The quantized decoder weights of a pre-quantized folder (`omnigen quantize`), when present.
    pub quantized: Option<PathBuf>,
}

fn safetensors_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    Ok(files)
}

impl ModelFiles {
    /// Finds the transformer's and tokenizer's files of `dir`. A folder with `transformer/config.json` is
    /// read in the diffusers layout, any other in the official one. Every missing file is named in one
    /// [`Error::Layout`].
    pub fn discover(dir: &Path) -> Result<Self> {
        Self::find(dir, false)
    }

    /// [`ModelFiles::discover`], also requiring the VAE's config and weights in `vae/`.
    pub fn discover_with_vae(dir: &Path) -> Result<Self> {
        Self::find(dir, true)
    }

    fn find(dir: &Path, with_vae: bool) -> Result<Self> {
        let diffusers = dir.join("transformer").join("config.json").is_file();
        let (base, tokenizer, weights_name) = if diffusers {
            (
                dir.join("transformer"),
                PathBuf::from("tokenizer").join("tokenizer.json"),
                "transformer/diffusion_pytorch_model.safetensors",
            )
        } else {
            (
                dir.to_path_buf(),
                PathBuf::from("tokenizer.json"),
                OFFICIAL_FILES[1],
            )
        };
        let mut missing = Vec::new();
        let config = base.join("config.json");
        if !config.is_file() {
            missing.push(OFFICIAL_FILES[0].to_string());
        }
        let single = base.join("model.safetensors");
        let weights = if !diffusers && single.is_file() {
            vec![single]
        } else {
            safetensors_in(&base)?
        };
        if weights.is_empty() {
            missing.push(weights_name.to_string());
        }
        if !dir.join(&tokenizer).is_file() {
            missing.push(tokenizer.display().to_string());
        }
        let vae_dir = dir.join(VAE_DIR);
        if with_vae {
            if !vae_dir.join(VAE_CONFIG_FILE).is_file() {
                missing.push(format!("{VAE_DIR}/{VAE_CONFIG_FILE}"));
            }
            if Vae::weights_file(&vae_dir).is_none() {
                missing.push(format!("{VAE_DIR}/{}", VAE_WEIGHT_FILES[0]));
            }
        }
        if !missing.is_empty() {
            return Err(Error::Layout {
                path: dir.to_path_buf(),
                missing,
            });
        }
        Ok(Self {
            config,
            weights,
            tokenizer: dir.join(tokenizer),
            vae_dir,
            diffusers,
            quantized: Some(base.join(crate::quant::PREQUANTIZED_FILE)).filter(|p| p.is_file()),
        })
    }

    /// The VAE's weight file, when present.
    pub fn vae_weights(&self) -> Option<PathBuf> {
        Vae::weights_file(&self.vae_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str) {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, "x").expect("write");
    }

    #[test]
    fn the_official_files_make_a_complete_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in OFFICIAL_FILES {
            write(dir.path(), f);
        }
        let files = ModelFiles::discover_with_vae(dir.path()).expect("complete");
        assert!(!files.diffusers);
        assert_eq!(files.weights, vec![dir.path().join("model.safetensors")]);
        assert!(files.vae_weights().is_some());
    }

    #[test]
    fn every_missing_file_is_named_by_its_official_name() {
        for absent in OFFICIAL_FILES {
            let dir = tempfile::tempdir().expect("tempdir");
            for f in OFFICIAL_FILES.iter().filter(|f| **f != absent) {
                write(dir.path(), f);
            }
            let err = ModelFiles::discover_with_vae(dir.path()).expect_err(absent);
            let Error::Layout { missing, .. } = &err else {
                panic!("{err}")
            };
            assert_eq!(missing, &[absent.to_string()], "{err}");
        }
    }

    #[test]
    fn all_missing_files_are_listed_and_the_vae_is_optional_without_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "config.json");
        write(dir.path(), "vae/config.json");
        let err = ModelFiles::discover_with_vae(dir.path()).expect_err("incomplete");
        let Error::Layout { missing, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(
            missing,
            &[
                "model.safetensors",
                "tokenizer.json",
                "vae/diffusion_pytorch_model.safetensors"
            ]
        );
        assert!(err
            .to_string()
            .contains("missing model.safetensors, tokenizer.json"));
        write(dir.path(), "model.safetensors");
        write(dir.path(), "tokenizer.json");
        assert!(ModelFiles::discover(dir.path()).is_ok());
    }

    #[test]
    fn diffusers_folders_are_recognised() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "transformer/config.json");
        let err = ModelFiles::discover(dir.path()).expect_err("no weights");
        let Error::Layout { missing, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(
            missing,
            &[
                "transformer/diffusion_pytorch_model.safetensors",
                "tokenizer/tokenizer.json"
            ]
        );
        write(
            dir.path(),
            "transformer/diffusion_pytorch_model.safetensors",
        );
        write(dir.path(), "tokenizer/tokenizer.json");
        assert!(ModelFiles::discover(dir.path()).expect("found").diffusers);
    }
}
