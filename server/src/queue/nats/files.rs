//! Files between machines. Outputs: a worker puts what its nodes wrote into the object store; the
//! server takes each into its own folder (through `paths::resolve`, written atomically) so `/view`
//! serves it, then deletes the object. Inputs: the server puts each file of its input folder a graph
//! names into a content-addressed bucket; a worker whose own input folder lacks that content takes
//! it from there before the run.

use std::path::{Path, PathBuf};

use async_nats::jetstream::object_store::ObjectStore;
use omnigen_engine::{SavedFile, SavedKind};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::protocol::{InputFile, StoredFile};
use super::{routing, NatsError};
use crate::config::Folders;
use crate::engine_adapter::Dirs;
use crate::paths::{self, Access};

/// Puts every saved file of `prompt_id` into `bucket`; returns their records.
pub async fn store(
    bucket: &ObjectStore,
    prompt_id: &str,
    dirs: &Dirs,
    saved: &[SavedFile],
) -> Result<Vec<StoredFile>, NatsError> {
    let mut stored = Vec::with_capacity(saved.len());
    for file in saved {
        let root = match file.kind {
            SavedKind::Output => &dirs.output,
            SavedKind::Temp => &dirs.temp,
        };
        let record = record(file);
        let path = paths::resolve(root, &file.subfolder, &file.filename, Access::Read)
            .map_err(|e| NatsError::new(format!("find saved file {}", file.filename), e))?;
        let mut reader = tokio::fs::File::open(&path)
            .await
            .map_err(|e| NatsError::new(format!("open {}", path.display()), e))?;
        let name = record.object_name(prompt_id);
        bucket
            .put(name.as_str(), &mut reader)
            .await
            .map_err(|e| NatsError::new(format!("store {name}"), e))?;
        stored.push(record);
    }
    Ok(stored)
}

/// The record of a saved file.
pub fn record(file: &SavedFile) -> StoredFile {
    StoredFile {
        kind: file.kind.as_str().to_string(),
        subfolder: file.subfolder.clone(),
        filename: file.filename.clone(),
    }
}

/// Takes every file of `prompt_id` from `bucket` into `folders` and deletes the objects.
pub async fn fetch(
    bucket: &ObjectStore,
    prompt_id: &str,
    folders: &Folders,
    files: &[StoredFile],
) -> Result<(), NatsError> {
    for file in files {
        let root: &Path = match file.kind.as_str() {
            "output" => &folders.output,
            "temp" => &folders.temp,
            other => {
                return Err(NatsError::new(
                    format!("fetch {}", file.filename),
                    format!("unknown folder kind {other:?}"),
                ))
            }
        };
        let name = file.object_name(prompt_id);
        let mut object = bucket
            .get(name.as_str())
            .await
            .map_err(|e| NatsError::new(format!("fetch {name}"), e))?;
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| NatsError::new(format!("read {name}"), e))?;
        let path = paths::resolve(root, &file.subfolder, &file.filename, Access::Write)
            .map_err(|e| NatsError::new(format!("place {name}"), e))?;
        tokio::task::spawn_blocking(move || paths::write_atomically(&path, &bytes))
            .await
            .map_err(|e| NatsError::new(format!("write {name}"), e))?
            .map_err(|e| NatsError::new(format!("write {name}"), e))?;
        if let Err(e) = bucket.delete(name.as_str()).await {
            tracing::warn!(object = %name, error = %e, "cannot delete a fetched file from the object store");
        }
    }
    Ok(())
}

/// The files of `input_dir` that `prompt` names (a constant string input that is the name of a file
/// there, optionally with ComfyUI's ` [input]` suffix), with their content hashes.
pub fn inputs_of(prompt: &Json, input_dir: &Path) -> Vec<(InputFile, PathBuf)> {
    let mut found = Vec::new();
    for value in routing::string_inputs(prompt) {
        let name = value.strip_suffix(" [input]").unwrap_or(&value).trim();
        if name.is_empty() || name.contains(" [") {
            continue;
        }
        let (subfolder, filename) = name.rsplit_once('/').unwrap_or(("", name));
        let Ok(path) = paths::resolve(input_dir, subfolder, filename, Access::Read) else {
            continue;
        };
        if !path.is_file() {
            continue;
        }
        match std::fs::read(&path) {
            Ok(bytes) => found.push((
                InputFile {
                    name: name.to_string(),
                    sha256: sha256_hex(&bytes),
                },
                path,
            )),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read an input file")
            }
        }
    }
    found
}

/// Puts each input file into `bucket` under its hash, unless an object of that name is there.
pub async fn ship_inputs(
    bucket: &ObjectStore,
    inputs: &[(InputFile, PathBuf)],
) -> Result<(), NatsError> {
    for (input, path) in inputs {
        if bucket.info(input.sha256.as_str()).await.is_ok() {
            continue;
        }
        let mut reader = tokio::fs::File::open(path)
            .await
            .map_err(|e| NatsError::new(format!("open {}", path.display()), e))?;
        bucket
            .put(input.sha256.as_str(), &mut reader)
            .await
            .map_err(|e| NatsError::new(format!("ship input {}", input.name), e))?;
    }
    Ok(())
}

/// Makes each input present in `input_dir` with its content: a file already there with the same hash
/// is kept; otherwise it is fetched from `bucket` and written atomically (replacing a different one:
/// the server's input folder is the truth).
pub async fn receive_inputs(
    bucket: &ObjectStore,
    input_dir: &Path,
    inputs: &[InputFile],
) -> Result<(), NatsError> {
    for input in inputs {
        let doing = format!("receive input {}", input.name);
        let (subfolder, filename) = input.name.rsplit_once('/').unwrap_or(("", &input.name));
        let path = paths::resolve(input_dir, subfolder, filename, Access::Write)
            .map_err(|e| NatsError::new(&doing, e))?;
        if std::fs::read(&path).is_ok_and(|b| sha256_hex(&b) == input.sha256) {
            continue;
        }
        let mut object = bucket
            .get(input.sha256.as_str())
            .await
            .map_err(|e| NatsError::new(&doing, e))?;
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| NatsError::new(&doing, e))?;
        if sha256_hex(&bytes) != input.sha256 {
            return Err(NatsError::new(
                &doing,
                "the content does not match its hash",
            ));
        }
        tokio::task::spawn_blocking(move || paths::write_atomically(&path, &bytes))
            .await
            .map_err(|e| NatsError::new(&doing, e))?
            .map_err(|e| NatsError::new(&doing, e))?;
    }
    Ok(())
}

/// Checks that each file of an in-place result (`--files shared`) is in the server's folders.
pub fn check_in_place(folders: &Folders, files: &[StoredFile]) -> Result<(), NatsError> {
    for file in files {
        let root: &Path = match file.kind.as_str() {
            "output" => &folders.output,
            "temp" => &folders.temp,
            other => {
                return Err(NatsError::new(
                    format!("find {}", file.filename),
                    format!("unknown folder kind {other:?}"),
                ))
            }
        };
        paths::resolve(root, &file.subfolder, &file.filename, Access::Read).map_err(|e| {
            NatsError::new(
                format!("find {} in the shared {} folder", file.filename, file.kind),
                format!("{e} (with --files shared the worker's folders must be the server's)"),
            )
        })?;
    }
    Ok(())
}

/// Lowercase hex sha256.
fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_graph_names_the_input_files_that_exist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a.png"), b"a").unwrap();
        std::fs::write(dir.path().join("sub/b.png"), b"b").unwrap();
        let prompt = json!({
            "1": {"class_type": "LoadImage", "inputs": {"image": "a.png [input]"}},
            "2": {"class_type": "LoadImage", "inputs": {"image": "sub/b.png"}},
            "3": {"class_type": "X", "inputs": {"text": "not a file", "other": "../a.png", "o": "a.png [output]"}}
        });
        let mut names: Vec<String> = inputs_of(&prompt, dir.path())
            .into_iter()
            .map(|(f, _)| f.name)
            .collect();
        names.sort();
        assert_eq!(names, ["a.png", "sub/b.png"]);
    }
}
