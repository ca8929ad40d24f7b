//! Output files between machines: a worker puts what its nodes wrote into the object store; the
//! server takes each into its own folder (through `paths::resolve`, written atomically) so `/view`
//! serves it, then deletes the object.

use std::path::Path;

use async_nats::jetstream::object_store::ObjectStore;
use omnigen_engine::{SavedFile, SavedKind};
use tokio::io::AsyncReadExt;

use super::protocol::StoredFile;
use super::NatsError;
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
        let record = StoredFile {
            kind: file.kind.as_str().to_string(),
            subfolder: file.subfolder.clone(),
            filename: file.filename.clone(),
        };
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
