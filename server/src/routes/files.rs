//! `GET /view` and `POST /upload/image`: the only routes that touch user files, both through
//! [`crate::paths::resolve`].

use std::path::{Path, PathBuf};

use axum::extract::{Multipart, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value as Json_};

use super::Shared;
use crate::error::{ApiError, ApiResult};
use crate::paths::{self, Access};

/// Types served inline would run script in the server's origin: they always download.
const ACTIVE_CONTENT: [&str; 8] = ["html", "htm", "xhtml", "xml", "svg", "js", "mjs", "css"];

/// What an upload may be, checked by extension and by the file's own first bytes.
const IMAGE_KINDS: [(&str, &[u8]); 5] = [
    ("png", b"\x89PNG\r\n\x1a\n"),
    ("jpg", b"\xff\xd8\xff"),
    ("jpeg", b"\xff\xd8\xff"),
    ("webp", b"RIFF"),
    ("gif", b"GIF8"),
];

/// `?filename=&subfolder=&type=`.
#[derive(Debug, Deserialize)]
pub struct ViewQuery {
    filename: String,
    #[serde(default)]
    subfolder: String,
    #[serde(rename = "type")]
    kind: Option<String>,
}

fn folder<'s>(state: &'s Shared, kind: Option<&str>, default: &str) -> ApiResult<&'s Path> {
    let folders = &state.config.folders;
    match kind.unwrap_or(default) {
        "output" => Ok(&folders.output),
        "input" => Ok(&folders.input),
        "temp" => Ok(&folders.temp),
        other => Err(ApiError::BadRequest(format!(
            "type {other:?} is not one of input, output, temp"
        ))),
    }
}

/// `GET /view`: a file from the input, output or temp folder.
pub async fn view(State(state): State<Shared>, Query(q): Query<ViewQuery>) -> ApiResult<Response> {
    // ComfyUI accepts an annotated name, `x.png [output]`, as a shorthand for the type.
    let (filename, kind) = match q.filename.rsplit_once(" [") {
        Some((name, tag)) if tag.ends_with(']') && q.kind.is_none() => (
            name.to_string(),
            Some(tag.trim_end_matches(']').to_string()),
        ),
        _ => (q.filename.clone(), q.kind.clone()),
    };
    let root = folder(&state, kind.as_deref(), "output")?;
    let path = paths::resolve(root, &q.subfolder, &filename, Access::Read)?;
    if !path.is_file() {
        return Err(ApiError::NotFound(format!("{filename:?} is not a file")));
    }
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot read {filename:?}: {e}")))?;
    Ok(file_response(&path, bytes))
}

/// A user file: typed by extension, never sniffed, active content as an attachment.
fn file_response(path: &Path, bytes: Vec<u8>) -> Response {
    let ext = extension(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().replace(['"', '\r', '\n'], "_"))
        .unwrap_or_default();
    let disposition = if ACTIVE_CONTENT.contains(&ext.as_str()) {
        format!("attachment; filename=\"{name}\"")
    } else {
        format!("inline; filename=\"{name}\"")
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&ext)),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

fn content_type(ext: &str) -> &'static str {
    match ext {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        // Active content is labelled as bytes too: it is only ever downloaded.
        _ => "application/octet-stream",
    }
}

/// `POST /upload/image` (multipart: `image`, `subfolder`, `type`, `overwrite`): keeps the base name; a
/// name already taken by different bytes becomes `name (1).png`, as in ComfyUI.
pub async fn upload_image(
    State(state): State<Shared>,
    mut form: Multipart,
) -> ApiResult<Json<Json_>> {
    let mut image: Option<(String, Vec<u8>)> = None;
    let mut subfolder = String::new();
    let mut kind = None;
    let mut overwrite = false;
    let limit = state.config.max_body_bytes;
    let bad = |e: axum::extract::multipart::MultipartError| match e.status().as_u16() {
        413 => ApiError::TooLarge { limit },
        _ => ApiError::BadRequest(format!("cannot read the upload: {e}")),
    };
    while let Some(field) = form.next_field().await.map_err(bad)? {
        let field_name = field.name().unwrap_or_default().to_string();
        match field_name.as_str() {
            "image" => {
                let name = paths::base_name(field.file_name().unwrap_or_default()).to_string();
                image = Some((name, field.bytes().await.map_err(bad)?.to_vec()));
            }
            "subfolder" => subfolder = field.text().await.map_err(bad)?,
            "type" => kind = Some(field.text().await.map_err(bad)?),
            "overwrite" => {
                overwrite = matches!(field.text().await.map_err(bad)?.as_str(), "true" | "1")
            }
            _ => {}
        }
    }
    let (name, bytes) =
        image.ok_or_else(|| ApiError::BadRequest("the form has no `image` file".into()))?;
    check_image(&name, &bytes)?;
    let kind = kind.filter(|k| !k.is_empty());
    let root = folder(&state, kind.as_deref(), "input")?;
    let (path, name) = free_name(root, &subfolder, &name, &bytes, overwrite)?;
    tokio::task::spawn_blocking(move || paths::write_atomically(&path, &bytes))
        .await
        .map_err(std::io::Error::other)
        .and_then(|written| written)
        .map_err(|e| ApiError::Internal(format!("cannot store {name:?}: {e}")))?;
    Ok(Json(json!({
        "name": name,
        "subfolder": subfolder,
        "type": kind.as_deref().unwrap_or("input"),
    })))
}

/// Refuses anything that is not an image by both its extension and its first bytes.
fn check_image(name: &str, bytes: &[u8]) -> ApiResult<()> {
    let ext = extension(Path::new(name));
    let Some((_, magic)) = IMAGE_KINDS.iter().find(|(e, _)| *e == ext) else {
        return Err(ApiError::BadRequest(format!(
            "{name:?}: only png, jpg, webp and gif images can be uploaded"
        )));
    };
    let webp_ok = ext != "webp" || bytes.get(8..12) == Some(b"WEBP");
    if !bytes.starts_with(magic) || !webp_ok {
        return Err(ApiError::BadRequest(format!(
            "{name:?} is not a {ext} image (its content does not match)"
        )));
    }
    Ok(())
}

/// The path to write: the name itself, or `stem (n).ext` when it is taken by a different file.
fn free_name(
    root: &Path,
    subfolder: &str,
    name: &str,
    bytes: &[u8],
    overwrite: bool,
) -> ApiResult<(PathBuf, String)> {
    let path = paths::resolve(root, subfolder, name, Access::Write)?;
    if overwrite || !path.exists() || std::fs::read(&path).is_ok_and(|old| old == bytes) {
        return Ok((path, name.to_string()));
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) => (s, format!(".{e}")),
        None => (name, String::new()),
    };
    for n in 1..10_000 {
        let candidate = format!("{stem} ({n}){ext}");
        let path = paths::resolve(root, subfolder, &candidate, Access::Write)?;
        if !path.exists() {
            return Ok((path, candidate));
        }
    }
    Err(ApiError::BadRequest(format!(
        "too many files named like {name:?}"
    )))
}
