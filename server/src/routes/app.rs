//! Our own app page (`/app`, and `/` when no editor is installed): plain HTML, CSS and JavaScript files
//! of `server/src/app/`, built into the binary. Every response carries a Content-Security-Policy that
//! allows only this origin's own scripts (no inline script, no other hosts), so data the page shows can
//! never run as code.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};

use super::{files, Shared};
use crate::error::{ApiError, ApiResult};

/// The policy: own scripts, styles and fetches; images from here and the previews the page decodes
/// (`blob:`); no plugins, frames, base rewriting or foreign form targets.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob:; connect-src 'self'; form-action 'none'; base-uri 'none'; \
     frame-ancestors 'none'";

/// The page's files: name, type, content.
const ASSETS: [(&str, &str, &str); 6] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../app/index.html"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../app/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../app/app.js"),
    ),
    (
        "form.js",
        "text/javascript; charset=utf-8",
        include_str!("../app/form.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../app/api.js"),
    ),
    ("icon.svg", "image/svg+xml", include_str!("../app/icon.svg")),
];

/// Where the page says whether the editor is installed (it shows a link to it, or how to install it).
const EDITOR_MARK: &str = "data-editor=\"missing\"";

/// `GET /app`: the page.
pub async fn index(State(state): State<Shared>) -> Response {
    page(&state)
}

/// `GET /app/`: the page's links are relative to `/app`, so the slash form redirects there.
pub async fn slash() -> Redirect {
    Redirect::permanent("../app")
}

/// `GET /app/{file}`: one of the page's scripts or styles.
pub async fn asset(Path(file): Path<String>) -> ApiResult<Response> {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, text)) => Ok(with_policy(files::served(
            text.as_bytes().to_vec(),
            content_type,
            None,
        ))),
        None => Err(ApiError::NotFound(format!("/app/{file} not found"))),
    }
}

/// The page itself, for `/app` and for `/` without an editor.
pub fn page(state: &Shared) -> Response {
    let (_, content_type, text) = ASSETS[0];
    let text = match state.config.front_end_root {
        Some(_) => text.replacen(EDITOR_MARK, "data-editor=\"installed\"", 1),
        None => text.to_string(),
    };
    with_policy(files::served(text.into_bytes(), content_type, None))
}

fn with_policy(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    // A new binary's page must be picked up on reload.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response.into_response()
}
