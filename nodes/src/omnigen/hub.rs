//! Where `LoadOmniGen`'s `model` input points: a local folder, or a Hugging Face repo id such as
//! `Shitao/OmniGen-v1` that is fetched into the usual Hugging Face cache (`$HF_HOME/hub`, by default
//! `~/.cache/huggingface/hub`) with a progress bar.
//!
//! Downloads fail on machines without internet access. Then the error must tell the user exactly which
//! files to fetch, where to put them and how to point the graph at them; [`missing_model_help`] writes it.

use std::path::{Path, PathBuf};

use omnigen_model::{Error as ModelError, ModelFiles, OFFICIAL_FILES};

/// The repo the example graphs name.
pub const DEFAULT_REPO: &str = "Shitao/OmniGen-v1";

/// Set to `1` to never touch the network (the same switch as Python's `huggingface_hub`).
const OFFLINE_ENV: &str = "HF_HUB_OFFLINE";

/// What a `model` string names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// An existing local folder.
    Folder(PathBuf),
    /// A Hugging Face repo id (`owner/name`).
    Hub(String),
}

/// A `model` input that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// Empty string.
    #[error("no model given: set it to a local OmniGen folder or a Hugging Face repo id such as {DEFAULT_REPO}")]
    Empty,
    /// A path-like string that does not exist.
    #[error("model folder '{0}' does not exist (and it is not a Hugging Face repo id of the form owner/name)")]
    FolderNotFound(String),
    /// The folder exists but lacks files.
    #[error("model folder '{folder}' is missing {}: an OmniGen v1 folder needs {}", .missing.join(", "), OFFICIAL_FILES.join(", "))]
    MissingFiles {
        /// The folder.
        folder: String,
        /// Files not found, relative to the folder.
        missing: Vec<String>,
    },
    /// The folder cannot be listed or read.
    #[error("model folder '{folder}' cannot be read: {reason}")]
    Unreadable {
        /// The folder.
        folder: String,
        /// Why.
        reason: String,
    },
}

/// Decides whether `model` is a local folder or a hub repo id. A folder that exists wins over a repo id
/// of the same spelling.
pub fn classify(model: &str) -> Result<ModelSource, SourceError> {
    let model = model.trim();
    if model.is_empty() {
        return Err(SourceError::Empty);
    }
    let path = Path::new(model);
    if path.is_dir() {
        return Ok(ModelSource::Folder(path.to_path_buf()));
    }
    if looks_like_repo_id(model) {
        return Ok(ModelSource::Hub(model.to_string()));
    }
    Err(SourceError::FolderNotFound(model.to_string()))
}

/// `owner/name` with the characters the hub allows, and no path-only forms (`./x`, `/x`, `a/b/c`).
pub fn looks_like_repo_id(s: &str) -> bool {
    let mut parts = s.split('/');
    let (Some(owner), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '-'])
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    ok(owner) && ok(name)
}

/// Checks a local folder has every file the loader needs, transformer and VAE, in either layout (the
/// model's rule: [`ModelFiles::discover_with_vae`]).
pub fn check_folder(folder: &Path) -> Result<(), SourceError> {
    match ModelFiles::discover_with_vae(folder) {
        Ok(_) => Ok(()),
        Err(ModelError::Layout { missing, .. }) => Err(SourceError::MissingFiles {
            folder: folder.display().to_string(),
            missing,
        }),
        Err(other) => Err(SourceError::Unreadable {
            folder: folder.display().to_string(),
            reason: other.to_string(),
        }),
    }
}

/// Where the Hugging Face cache lives, and whether the network may be used.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// The cache root (`$HF_HOME/hub` or `~/.cache/huggingface/hub`).
    pub cache_dir: PathBuf,
    /// `HF_ENDPOINT`, when set (mirrors, tests).
    pub endpoint: Option<String>,
    /// `HF_HUB_OFFLINE=1`: use the cache only.
    pub offline: bool,
}

impl HubSettings {
    /// Settings from the environment, as the Python `huggingface_hub` reads them.
    pub fn from_env() -> Self {
        HubSettings {
            cache_dir: hf_hub::Cache::from_env().path().clone(),
            endpoint: std::env::var("HF_ENDPOINT").ok().filter(|s| !s.is_empty()),
            offline: std::env::var(OFFLINE_ENV)
                .is_ok_and(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "yes")),
        }
    }

    /// The cached snapshot folder of `repo` if every model file is in the cache.
    pub fn cached_folder(&self, repo: &str) -> Option<PathBuf> {
        let cache = hf_hub::Cache::new(self.cache_dir.clone()).model(repo.to_string());
        let mut folder = None;
        for file in OFFICIAL_FILES {
            let path = cache.get(file)?;
            if file == "config.json" {
                folder = path.parent().map(Path::to_path_buf);
            }
        }
        folder
    }

    /// The files of `repo` not yet in the cache.
    pub fn missing_from_cache(&self, repo: &str) -> Vec<String> {
        let cache = hf_hub::Cache::new(self.cache_dir.clone()).model(repo.to_string());
        OFFICIAL_FILES
            .iter()
            .filter(|f| cache.get(f).is_none())
            .map(|f| f.to_string())
            .collect()
    }

    /// The cache folder of one repo (`models--owner--name`).
    pub fn repo_cache_dir(&self, repo: &str) -> PathBuf {
        self.cache_dir
            .join(hf_hub::Repo::model(repo.to_string()).folder_name())
    }

    /// Resolves `repo` to a folder with every model file, downloading what the cache lacks (with a
    /// progress bar on stderr). `node_id` is used in the help text of the error.
    pub fn fetch(&self, repo: &str, node_id: &str) -> Result<PathBuf, String> {
        if let Some(folder) = self.cached_folder(repo) {
            return Ok(folder);
        }
        if self.offline {
            return Err(missing_model_help(
                self,
                repo,
                node_id,
                &format!("{OFFLINE_ENV} is set, so nothing is downloaded"),
            ));
        }
        let mut builder =
            hf_hub::api::sync::ApiBuilder::from_cache(hf_hub::Cache::new(self.cache_dir.clone()))
                .with_progress(true);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        let api = builder.build().map_err(|e| {
            missing_model_help(
                self,
                repo,
                node_id,
                &format!("the download client could not start: {e}"),
            )
        })?;
        let remote = api.model(repo.to_string());
        let mut folder = None;
        for file in OFFICIAL_FILES {
            let path = remote.get(file).map_err(|e| {
                missing_model_help(
                    self,
                    repo,
                    node_id,
                    &format!("downloading {file} failed: {e}"),
                )
            })?;
            if file == "config.json" {
                folder = path.parent().map(Path::to_path_buf);
            }
        }
        folder
            .ok_or_else(|| missing_model_help(self, repo, node_id, "the cache returned no folder"))
    }
}

/// The help printed when a hub model is neither cached nor downloadable: the repo, the files, the two
/// ways to provide them and the `--set` that points the graph at a folder.
pub fn missing_model_help(
    settings: &HubSettings,
    repo: &str,
    node_id: &str,
    cause: &str,
) -> String {
    let missing = settings.missing_from_cache(repo);
    let present: Vec<&str> = OFFICIAL_FILES
        .iter()
        .copied()
        .filter(|f| !missing.iter().any(|m| m == f))
        .collect();
    let short_name = repo.rsplit('/').next().unwrap_or(repo);
    let mut text = format!(
        "the OmniGen model '{repo}' is not available locally and could not be downloaded ({cause}).\n\
         \n\
         It needs these {} files from https://huggingface.co/{repo} (about 16 GB in all):\n",
        OFFICIAL_FILES.len()
    );
    for file in OFFICIAL_FILES {
        let state = if present.contains(&file) {
            "  (already cached)"
        } else {
            ""
        };
        text.push_str(&format!("    {file}{state}\n"));
    }
    text.push_str(&format!(
        "\nEither\n\
         \x20 1. download them on a machine with internet access into a folder, for example\n\
         \x20      huggingface-cli download {repo} {files} --local-dir {short_name}\n\
         \x20    copy that folder here and point the graph at it:\n\
         \x20      omnigen run <graph.json> --set {node_id}.model=/path/to/{short_name}\n\
         \x20 2. or run once with internet access: the files go to the Hugging Face cache at\n\
         \x20      {}\n\
         \x20    (move it with HF_HOME; set HF_HUB_OFFLINE=1 to use the cache without any network access).\n",
        settings.repo_cache_dir(repo).display(),
        files = OFFICIAL_FILES.join(" "),
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(cache: &Path) -> HubSettings {
        HubSettings {
            cache_dir: cache.to_path_buf(),
            // The discard port on loopback: refused at once, so the download fails quickly and offline.
            endpoint: Some("http://127.0.0.1:9".into()),
            offline: false,
        }
    }

    #[test]
    fn repo_ids_and_paths_are_told_apart() {
        assert!(looks_like_repo_id("Shitao/OmniGen-v1"));
        assert!(!looks_like_repo_id("./models/omnigen"));
        assert!(!looks_like_repo_id("/models/omnigen"));
        assert!(!looks_like_repo_id("a/b/c"));
        assert!(!looks_like_repo_id("omnigen"));
        assert_eq!(
            classify("Shitao/OmniGen-v1"),
            Ok(ModelSource::Hub("Shitao/OmniGen-v1".into()))
        );
        assert_eq!(classify(" "), Err(SourceError::Empty));
        assert!(matches!(
            classify("/no/such/omnigen/folder"),
            Err(SourceError::FolderNotFound(_))
        ));
    }

    #[test]
    fn folder_check_names_missing_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.json"), "{}").expect("write");
        std::fs::create_dir(dir.path().join("vae")).expect("mkdir");
        std::fs::write(dir.path().join("vae/config.json"), "{}").expect("write");
        assert_eq!(
            classify(dir.path().to_str().expect("utf8")),
            Ok(ModelSource::Folder(dir.path().into()))
        );
        let err = check_folder(dir.path()).unwrap_err();
        let SourceError::MissingFiles { missing, .. } = &err else {
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
    }

    #[test]
    fn offline_download_explains_what_to_fetch_and_where() {
        let cache = tempfile::tempdir().expect("tempdir");
        let err = settings(cache.path()).fetch(DEFAULT_REPO, "7").unwrap_err();
        assert!(
            err.contains("'Shitao/OmniGen-v1' is not available locally"),
            "{err}"
        );
        assert!(err.contains("downloading config.json failed"), "{err}");
        for file in OFFICIAL_FILES {
            assert!(err.contains(file), "{file} not named in:\n{err}");
        }
        assert!(err.contains("--set 7.model=/path/to/OmniGen-v1"), "{err}");
        assert!(
            err.contains(
                &cache
                    .path()
                    .join("models--Shitao--OmniGen-v1")
                    .display()
                    .to_string()
            ),
            "{err}"
        );
    }

    #[test]
    fn offline_switch_uses_the_cache_only() {
        let cache = tempfile::tempdir().expect("tempdir");
        let mut s = settings(cache.path());
        s.offline = true;
        let err = s.fetch(DEFAULT_REPO, "1").unwrap_err();
        assert!(err.contains("HF_HUB_OFFLINE is set"), "{err}");
    }

    #[test]
    fn a_complete_cache_snapshot_is_used_without_network() {
        let cache = tempfile::tempdir().expect("tempdir");
        let repo_dir = cache.path().join("models--Shitao--OmniGen-v1");
        let snapshot = repo_dir.join("snapshots").join("abc123");
        std::fs::create_dir_all(snapshot.join("vae")).expect("mkdir");
        std::fs::create_dir_all(repo_dir.join("refs")).expect("mkdir");
        std::fs::write(repo_dir.join("refs").join("main"), "abc123").expect("write");
        for f in OFFICIAL_FILES {
            std::fs::write(snapshot.join(f), "x").expect("write");
        }
        assert_eq!(
            settings(cache.path()).fetch(DEFAULT_REPO, "1"),
            Ok(snapshot)
        );
    }
}
