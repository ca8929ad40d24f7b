//! `/userdata`: the editor's own files (saved workflows, subgraph blueprints, `user.css` …) in
//! `user/default/` under the data dir, as ComfyUI lays them out. Every path goes through
//! [`crate::paths::resolve`]; writes are atomic; bodies are bounded by the server's body limit.
//!
//! A file is named by one URL-encoded path segment (`workflows%2Fa.json`), decoded once by the router;
//! a `%` left after that is refused, so double-encoded traversal cannot get through.

use std::path::{Path as FsPath, PathBuf};
use std::time::UNIX_EPOCH;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value as Json_};

use super::{files, Shared};
use crate::error::{ApiError, ApiResult};
use crate::paths::{self, Access, PathError};

/// The one file served inline: the user's stylesheet, which the frontend's page links.
const USER_CSS: &str = "user.css";

/// The user's folder, created on first use, canonical (so resolved paths can be made relative to it).
pub(super) fn user_root(state: &Shared) -> ApiResult<PathBuf> {
    let root = state.config.user_dir();
    std::fs::create_dir_all(&root)
        .and_then(|()| root.canonicalize())
        .map_err(|e| ApiError::Internal(format!("user folder {}: {e}", root.display())))
}

/// `?dir=&recurse=&full_info=&split=`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    dir: Option<String>,
    recurse: Option<String>,
    full_info: Option<String>,
    split: Option<String>,
}

/// `?overwrite=&full_info=` of a write or a move.
#[derive(Debug, Deserialize)]
pub struct WriteQuery {
    overwrite: Option<String>,
    full_info: Option<String>,
}

fn is_true(flag: &Option<String>) -> bool {
    flag.as_deref()
        .is_some_and(|f| f.eq_ignore_ascii_case("true"))
}

/// Overwriting is the default; only `overwrite=false` refuses an existing file.
fn may_overwrite(flag: &Option<String>) -> bool {
    flag.as_deref() != Some("false")
}

/// `GET /userdata?dir=workflows`: the files in that folder (hidden files and symlinks left out), sorted;
/// relative paths, `[path, …components]` with `split=true`, or `{path, size, modified, created}` with
/// `full_info=true`. 404 when the folder does not exist (the frontend reads it as empty).
pub async fn list(
    State(state): State<Shared>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Json_>> {
    let dir = q.dir.as_deref().unwrap_or("").trim_end_matches('/');
    if dir.is_empty() {
        return Err(ApiError::BadRequest("the dir parameter is required".into()));
    }
    let root = user_root(&state)?;
    let (parent, name) = split(dir);
    let folder = paths::resolve(&root, parent, name, Access::Read)?;
    if !folder.is_dir() {
        return Err(ApiError::NotFound(format!("{dir:?} is not a folder")));
    }
    let mut found = Vec::new();
    walk(&folder, "", is_true(&q.recurse), &mut found)
        .map_err(|e| ApiError::Internal(format!("cannot list {dir:?}: {e}")))?;
    found.sort();
    let full_info = is_true(&q.full_info);
    let split_paths = is_true(&q.split);
    let entries = found
        .into_iter()
        .map(|rel| {
            if full_info {
                file_info(&folder.join(&rel), &rel)
            } else if split_paths {
                let mut parts = vec![json!(rel)];
                parts.extend(rel.split('/').map(|p| json!(p)));
                Json_::Array(parts)
            } else {
                json!(rel)
            }
        })
        .collect();
    Ok(Json(Json_::Array(entries)))
}

/// Relative paths (`/`-separated) of the plain files under `dir`. Names starting with `.` are skipped
/// (as ComfyUI's glob does; temporary files of atomic writes are among them), and so are symlinks, so a
/// listing never leaves the folder or loops.
fn walk(dir: &FsPath, prefix: &str, recurse: bool, found: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_file() {
            found.push(rel);
        } else if kind.is_dir() && recurse {
            walk(&entry.path(), &rel, true, found)?;
        }
    }
    Ok(())
}

/// `GET /userdata/{file}`: the raw file, always as a download (`user.css` excepted) with `nosniff`.
pub async fn read(State(state): State<Shared>, Path(file): Path<String>) -> ApiResult<Response> {
    let root = user_root(&state)?;
    let path = existing_file(&root, &file)?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot read {file:?}: {e}")))?;
    let (content_type, disposition) = if file == USER_CSS {
        ("text/css; charset=utf-8", "inline")
    } else {
        (files::content_type(&files::extension(&path)), "attachment")
    };
    Ok(files::served(bytes, content_type, Some(disposition)))
}

/// `POST /userdata/{file}?overwrite=&full_info=`: stores the body atomically; 409 when the file exists
/// and `overwrite=false`. Answers the path relative to the user folder, or its file info.
pub async fn write(
    State(state): State<Shared>,
    Path(file): Path<String>,
    Query(q): Query<WriteQuery>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(|e| ApiError::body_rejected(e, state.config.max_body_bytes))?;
    let root = user_root(&state)?;
    let (parent, name) = split(&file);
    let path = paths::resolve(&root, parent, name, Access::Write)?;
    if path.is_dir() {
        return Err(ApiError::BadRequest(format!("{file:?} is a folder")));
    }
    if !may_overwrite(&q.overwrite) && path.exists() {
        return Ok(conflict(&file));
    }
    paths::write_atomically(&path, &body)
        .map_err(|e| ApiError::Internal(format!("cannot store {file:?}: {e}")))?;
    Ok(Json(answer(&root, &path, is_true(&q.full_info))).into_response())
}

/// `DELETE /userdata/{file}`: 204.
pub async fn delete(
    State(state): State<Shared>,
    Path(file): Path<String>,
) -> ApiResult<StatusCode> {
    let root = user_root(&state)?;
    let path = existing_file(&root, &file)?;
    std::fs::remove_file(&path)
        .map_err(|e| ApiError::Internal(format!("cannot delete {file:?}: {e}")))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /userdata/{file}/move/{dest}?overwrite=&full_info=`: renames within the user folder; 409 when
/// the destination exists and `overwrite=false`.
pub async fn rename(
    State(state): State<Shared>,
    Path((file, dest)): Path<(String, String)>,
    Query(q): Query<WriteQuery>,
) -> ApiResult<Response> {
    let root = user_root(&state)?;
    let source = existing_file(&root, &file)?;
    let (parent, name) = split(&dest);
    let target = paths::resolve(&root, parent, name, Access::Write)?;
    if target.is_dir() {
        return Err(ApiError::BadRequest(format!("{dest:?} is a folder")));
    }
    if !may_overwrite(&q.overwrite) && target.exists() {
        return Ok(conflict(&dest));
    }
    std::fs::rename(&source, &target)
        .map_err(|e| ApiError::Internal(format!("cannot move {file:?} to {dest:?}: {e}")))?;
    Ok(Json(answer(&root, &target, is_true(&q.full_info))).into_response())
}

/// `a/b/c.json` as (`a/b`, `c.json`).
fn split(file: &str) -> (&str, &str) {
    file.rsplit_once('/').unwrap_or(("", file))
}

/// An existing plain file (404 for a folder or nothing).
fn existing_file(root: &FsPath, file: &str) -> ApiResult<PathBuf> {
    let (parent, name) = split(file);
    let path = paths::resolve(root, parent, name, Access::Read)?;
    if path.is_file() {
        Ok(path)
    } else {
        Err(PathError::NotFound(file.to_string()).into())
    }
}

/// The relative path (a JSON string) or the file info of a stored file.
fn answer(root: &FsPath, path: &FsPath, full_info: bool) -> Json_ {
    let rel = path
        .strip_prefix(root)
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default();
    if full_info {
        file_info(path, &rel)
    } else {
        json!(rel)
    }
}

/// ComfyUI's `FileInfo`: `{path, size, modified, created}`, times in milliseconds.
fn file_info(path: &FsPath, rel: &str) -> Json_ {
    let meta = std::fs::metadata(path).ok();
    let ms = |t: std::io::Result<std::time::SystemTime>| {
        t.ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    };
    let modified = meta.as_ref().map_or(0, |m| ms(m.modified()));
    // Not every file system records a birth time: fall back to the modification time.
    let created = meta
        .as_ref()
        .map(|m| ms(m.created()))
        .filter(|t| *t > 0)
        .unwrap_or(modified);
    json!({
        "path": rel,
        "size": meta.as_ref().map_or(0, |m| m.len()),
        "modified": modified,
        "created": created,
    })
}

fn conflict(file: &str) -> Response {
    let error = ApiError::BadRequest(format!("{file:?} already exists (overwrite=false)"));
    (StatusCode::CONFLICT, Json(error.body())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_skips_hidden_files_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub/deeper")).unwrap();
        std::fs::write(dir.path().join("a.json"), b"{}").unwrap();
        std::fs::write(dir.path().join(".index.json"), b"{}").unwrap();
        std::fs::write(dir.path().join("sub/deeper/b.json"), b"{}").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/", dir.path().join("root")).unwrap();
        let mut flat = Vec::new();
        walk(dir.path(), "", false, &mut flat).unwrap();
        assert_eq!(flat, ["a.json"]);
        let mut deep = Vec::new();
        walk(dir.path(), "", true, &mut deep).unwrap();
        deep.sort();
        assert_eq!(deep, ["a.json", "sub/deeper/b.json"]);
    }

    #[test]
    fn names_split_at_the_last_slash() {
        assert_eq!(split("workflows/a.json"), ("workflows", "a.json"));
        assert_eq!(split("a/b/c"), ("a/b", "c"));
        assert_eq!(split("user.css"), ("", "user.css"));
    }
}
