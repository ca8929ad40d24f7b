//! `GET /view`, `POST /upload/image` and `POST /upload/mask`: the input, output and temp folders, always
//! through [`crate::paths::resolve`]. The pixel work is in [`super::imaging`].

use std::path::{Path, PathBuf};

use axum::extract::{Multipart, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value as Json_};

use super::{imaging, Shared};
use crate::error::{ApiError, ApiResult};
use crate::paths::{self, Access};

/// Types served inline would run script in the server's origin: they always download.
const ACTIVE_CONTENT: [&str; 8] = ["html", "htm", "xhtml", "xml", "svg", "js", "mjs", "css"];

/// What an upload may be, checked by extension and by the file's own first bytes (then decoded). GIF is
/// not among them: LoadImage cannot read it.
const IMAGE_KINDS: [(&str, &[u8]); 4] = [
    ("png", b"\x89PNG\r\n\x1a\n"),
    ("jpg", b"\xff\xd8\xff"),
    ("jpeg", b"\xff\xd8\xff"),
    ("webp", b"RIFF"),
];

/// `?filename=&subfolder=&type=&preview=&channel=`.
#[derive(Debug, Deserialize)]
pub struct ViewQuery {
    filename: String,
    #[serde(default)]
    subfolder: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    preview: Option<String>,
    channel: Option<String>,
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

/// `GET /internal/files/{type}`: the names of the input, output or temp folder's files, newest first (the
/// editor's assets panel lists the input folder with it after an upload, as ComfyUI answers it).
pub async fn list_folder(
    State(state): State<Shared>,
    axum::extract::Path(kind): axum::extract::Path<String>,
) -> ApiResult<Json<Json_>> {
    let dir = folder(&state, Some(&kind), "input")?.to_path_buf();
    let names = tokio::task::spawn_blocking(move || newest_first(&dir))
        .await
        .map_err(|e| ApiError::Internal(format!("listing failed: {e}")))?;
    Ok(Json(json!(names)))
}

/// A folder's regular files (top level, UTF-8 names, no hidden ones), newest first; none if it is missing.
fn newest_first(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let meta = e.metadata().ok().filter(|m| m.is_file())?;
            let name = e
                .file_name()
                .into_string()
                .ok()
                .filter(|n| !n.starts_with('.'))?;
            Some((meta.modified().unwrap_or(std::time::UNIX_EPOCH), name))
        })
        .collect();
    files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    files.into_iter().map(|(_, name)| name).collect()
}

/// ComfyUI's annotated name, `x.png [output]`, as a shorthand for the type (an explicit type wins).
fn annotated(filename: &str, kind: Option<&str>) -> (String, Option<String>) {
    match filename.rsplit_once(" [") {
        Some((name, tag)) if tag.ends_with(']') && kind.is_none() => (
            name.to_string(),
            Some(tag.trim_end_matches(']').to_string()),
        ),
        _ => (filename.to_string(), kind.map(String::from)),
    }
}

/// `GET /view`: a file from the input, output or temp folder; with `preview=webp;90` or `jpeg;80` a
/// re-encoded preview, with `channel=rgb` or `a` a PNG of those channels (see [`imaging::preview`]).
pub async fn view(State(state): State<Shared>, Query(q): Query<ViewQuery>) -> ApiResult<Response> {
    let (filename, kind) = annotated(&q.filename, q.kind.as_deref());
    let root = folder(&state, kind.as_deref(), "output")?;
    let path = paths::resolve(root, &q.subfolder, &filename, Access::Read)?;
    if !path.is_file() {
        return Err(ApiError::NotFound(format!("{filename:?} is not a file")));
    }
    let channel = q.channel.as_deref().filter(|c| !c.is_empty());
    let picked = channel.map(imaging::Channel::parse).transpose()?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot read {filename:?}: {e}")))?;
    let preview = q.preview.clone().filter(|p| !p.is_empty());
    if preview.is_none() && matches!(picked, None | Some(imaging::Channel::Rgba)) {
        return Ok(file_response(&path, bytes));
    }
    let max = state.config.max_image_size;
    let channel = channel.map(String::from);
    let what = format!("{filename:?}");
    let encoded = blocking(move || {
        let image = imaging::decode(&what, &bytes, max)?;
        match preview {
            Some(spec) => imaging::preview(&image, &spec, channel.as_deref()),
            None => imaging::channel_png(&image, picked.unwrap_or(imaging::Channel::Rgba)),
        }
    })
    .await?;
    Ok(encoded_response(&path, encoded))
}

/// A re-encoded image, named like the file with the new extension.
fn encoded_response(path: &Path, encoded: imaging::Encoded) -> Response {
    let stem = path
        .file_stem()
        .map(|n| safe_header_name(&n.to_string_lossy()))
        .unwrap_or_default();
    let disposition = format!("inline; filename=\"{stem}.{}\"", encoded.extension);
    served(encoded.bytes, encoded.content_type, Some(&disposition))
}

/// A user file: typed by extension, never sniffed, active content as an attachment.
fn file_response(path: &Path, bytes: Vec<u8>) -> Response {
    let ext = extension(path);
    let name = path
        .file_name()
        .map(|n| safe_header_name(&n.to_string_lossy()))
        .unwrap_or_default();
    let disposition = if ACTIVE_CONTENT.contains(&ext.as_str()) {
        format!("attachment; filename=\"{name}\"")
    } else {
        format!("inline; filename=\"{name}\"")
    };
    served(bytes, content_type(&ext), Some(&disposition))
}

/// A file's name made safe inside a quoted header parameter.
fn safe_header_name(name: &str) -> String {
    name.replace(['"', '\r', '\n'], "_")
}

/// The one way a file leaves the server: its declared type, `nosniff` (a browser never guesses a
/// script or a page out of user bytes), and the disposition when one is given.
pub(super) fn served(
    bytes: Vec<u8>,
    content_type: &'static str,
    disposition: Option<&str>,
) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(value) = disposition.and_then(|d| HeaderValue::from_str(d).ok()) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// A path's extension, lower-cased (`""` when it has none).
pub(super) fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

pub(super) fn content_type(ext: &str) -> &'static str {
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

/// A parsed upload form (`/upload/image` and `/upload/mask`).
#[derive(Debug, Default)]
struct UploadForm {
    /// The file's base name and bytes.
    image: Option<(String, Vec<u8>)>,
    subfolder: String,
    kind: Option<String>,
    overwrite: bool,
    /// `/upload/mask`: the image the mask applies to, as JSON text.
    original_ref: Option<String>,
}

impl UploadForm {
    /// Reads the form; a body over `limit` bytes (the server's body limit) is 413, not 400.
    async fn read(mut form: Multipart, limit: usize) -> ApiResult<Self> {
        let bad = |e: axum::extract::multipart::MultipartError| match e.status().as_u16() {
            413 => ApiError::TooLarge { limit },
            _ => ApiError::BadRequest(format!("cannot read the upload: {e}")),
        };
        let mut upload = UploadForm::default();
        while let Some(field) = form.next_field().await.map_err(bad)? {
            let field_name = field.name().unwrap_or_default().to_string();
            match field_name.as_str() {
                "image" => {
                    let name = paths::base_name(field.file_name().unwrap_or_default()).to_string();
                    upload.image = Some((name, field.bytes().await.map_err(bad)?.to_vec()));
                }
                "subfolder" => upload.subfolder = field.text().await.map_err(bad)?,
                "type" => upload.kind = Some(field.text().await.map_err(bad)?),
                "overwrite" => {
                    upload.overwrite =
                        matches!(field.text().await.map_err(bad)?.as_str(), "true" | "1")
                }
                "original_ref" => upload.original_ref = Some(field.text().await.map_err(bad)?),
                _ => {}
            }
        }
        upload.kind = upload.kind.filter(|k| !k.is_empty());
        Ok(upload)
    }

    /// The uploaded file, checked by extension and first bytes, and its destination checked: a name or
    /// folder that may not be written is refused before any decoding work.
    fn image(&mut self, state: &Shared) -> ApiResult<(String, Vec<u8>)> {
        let (name, bytes) = self
            .image
            .take()
            .ok_or_else(|| ApiError::BadRequest("the form has no `image` file".into()))?;
        let root = folder(state, self.kind.as_deref(), "input")?;
        paths::resolve(root, &self.subfolder, &name, Access::Write)?;
        check_image(&name, &bytes)?;
        Ok((name, bytes))
    }

    /// Stores `bytes` under the form's type and subfolder, and answers `{"name","subfolder","type"}`.
    fn store(&self, state: &Shared, name: &str, bytes: &[u8]) -> ApiResult<Json<Json_>> {
        let root = folder(state, self.kind.as_deref(), "input")?;
        let (path, name) = free_name(root, &self.subfolder, name, bytes, self.overwrite)?;
        paths::write_atomically(&path, bytes)
            .map_err(|e| ApiError::Internal(format!("cannot store {name:?}: {e}")))?;
        Ok(Json(json!({
            "name": name,
            "subfolder": self.subfolder,
            "type": self.kind.as_deref().unwrap_or("input"),
        })))
    }
}

/// Runs image work on the blocking pool (decoding a large upload takes a while).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(format!("image work failed: {e}")))?
}

/// `POST /upload/image` (multipart: `image`, `subfolder`, `type`, `overwrite`): keeps the base name; a
/// name already taken by different bytes becomes `name (1).png`, as in ComfyUI. The image is decoded
/// under the image limits first: a corrupt or oversized one is refused and nothing is written.
pub async fn upload_image(State(state): State<Shared>, form: Multipart) -> ApiResult<Json<Json_>> {
    let mut form = UploadForm::read(form, state.config.max_body_bytes).await?;
    let (name, bytes) = form.image(&state)?;
    let max = state.config.max_image_size;
    let (name, bytes) = blocking(move || {
        imaging::decode(&format!("{name:?}"), &bytes, max)?;
        Ok((name, bytes))
    })
    .await?;
    form.store(&state, &name, &bytes)
}

/// `original_ref` of `/upload/mask`: the image the mask applies to.
#[derive(Debug, Deserialize)]
struct OriginalRef {
    filename: String,
    #[serde(default)]
    subfolder: String,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// `POST /upload/mask`: as `/upload/image`, plus `original_ref` (`{"filename","subfolder","type"}`,
/// type `output` by default). The mask's alpha channel is put onto the original image, and the result is
/// stored as a PNG (keeping the original's text chunks) under the mask's name. Both images are decoded
/// under the image limits and must be the same size.
pub async fn upload_mask(State(state): State<Shared>, form: Multipart) -> ApiResult<Json<Json_>> {
    let mut form = UploadForm::read(form, state.config.max_body_bytes).await?;
    let (name, mask) = form.image(&state)?;
    let reference = form
        .original_ref
        .as_deref()
        .ok_or_else(|| ApiError::BadRequest("the form has no `original_ref`".into()))?;
    let reference: OriginalRef = serde_json::from_str(reference).map_err(|e| {
        ApiError::BadRequest(format!(
            "original_ref must be JSON {{\"filename\", \"subfolder\", \"type\"}}: {e}"
        ))
    })?;
    let (filename, kind) = annotated(&reference.filename, reference.kind.as_deref());
    let root = folder(&state, kind.as_deref(), "output")?;
    let path = paths::resolve(root, &reference.subfolder, &filename, Access::Read)?;
    if !path.is_file() {
        return Err(ApiError::NotFound(format!(
            "the original image {filename:?} is not a file"
        )));
    }
    let original = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot read {filename:?}: {e}")))?;
    let max = state.config.max_image_size;
    let masked = blocking(move || {
        let mask_image = imaging::decode(&format!("the mask {name:?}"), &mask, max)?;
        let original_image =
            imaging::decode(&format!("the original {filename:?}"), &original, max)?;
        Ok((
            name,
            imaging::apply_mask(&original_image, &original, &mask_image)?,
        ))
    })
    .await?;
    let (name, bytes) = masked;
    form.store(&state, &name, &bytes)
}

/// Refuses anything that is not an image by both its extension and its first bytes.
fn check_image(name: &str, bytes: &[u8]) -> ApiResult<()> {
    let ext = extension(Path::new(name));
    let Some((_, magic)) = IMAGE_KINDS.iter().find(|(e, _)| *e == ext) else {
        return Err(ApiError::BadRequest(format!(
            "{name:?}: only png, jpg and webp images can be uploaded"
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
