//! ComfyUI's editor served from disk (`--front-end-root DIR`): any path no API route answers is a file
//! of that folder, `/` its `index.html`; without an editor, `/` is our app page ([`super::app`]). The
//! editor is a separate, GPL-3.0 package; it is never built into the binary. Files are found through
//! [`crate::paths::resolve`] like every other file.

use axum::extract::State;
use axum::http::{header, HeaderValue, Uri};
use axum::response::Response;

use super::{app, files, Shared};
use crate::error::{ApiError, ApiResult};
use crate::paths::{self, Access, PathError};

/// Answers a request no API route matched.
pub async fn serve(State(state): State<Shared>, uri: Uri) -> ApiResult<Response> {
    let Some(root) = state.config.front_end_root.as_deref() else {
        // Without the editor, `/` is our app page, which says how to install it.
        if uri.path() == "/" {
            return Ok(app::page(&state));
        }
        return Err(ApiError::NotFound(format!("no route for {}", uri.path())));
    };
    let relative = uri.path().trim_start_matches('/');
    let relative = if relative.is_empty() || relative.ends_with('/') {
        format!("{relative}index.html")
    } else {
        relative.to_string()
    };
    let (subfolder, filename) = relative.rsplit_once('/').unwrap_or(("", &relative));
    let path = paths::resolve(root, subfolder, filename, Access::Read).map_err(|e| match e {
        PathError::NotFound(_) => ApiError::NotFound(format!("{} not found", uri.path())),
        PathError::Io(message) => ApiError::Internal(message),
        other => ApiError::Forbidden(other.to_string()),
    })?;
    if !path.is_file() {
        return Err(ApiError::NotFound(format!("{} not found", uri.path())));
    }
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot read {relative}: {e}")))?;
    let ext = files::extension(&path);
    let mut response = files::served(bytes, web_type(&ext), None);
    if ext == "html" {
        // A new frontend version must be picked up on reload (its assets have hashed names).
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    Ok(response)
}

/// The type of a web asset. Scripts must be labelled as such: the editor loads them as ES modules.
fn web_type(ext: &str) -> &'static str {
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::web_type;

    #[test]
    fn scripts_and_styles_have_their_web_types() {
        assert_eq!(web_type("js"), "text/javascript; charset=utf-8");
        assert_eq!(web_type("css"), "text/css; charset=utf-8");
        assert_eq!(web_type("exe"), "application/octet-stream");
    }
}
