//! Errors a route answers with, rendered as JSON in ComfyUI's shapes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value as Json_};

use crate::paths::PathError;
use crate::queue::QueueError;

/// What went wrong while answering a request. Each variant picks the status code; the body is JSON.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A prompt that cannot run: ComfyUI's `{"error": …, "node_errors": …}` body, answered with 400.
    #[error("invalid prompt")]
    InvalidPrompt(Json_),
    /// A malformed request (bad JSON, a missing field …).
    #[error("{0}")]
    BadRequest(String),
    /// A file path that is not allowed (traversal, absolute, symlink out …).
    #[error("{0}")]
    Forbidden(String),
    /// Missing or wrong credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Nothing there.
    #[error("{0}")]
    NotFound(String),
    /// The request body is larger than the server accepts.
    #[error("request body too large (limit {limit} bytes)")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The queue's storage failed.
    #[error("queue storage: {0}")]
    Queue(#[from] QueueError),
    /// Anything else on the server's side.
    #[error("{0}")]
    Internal(String),
    /// A service the server relies on (NATS, for remote workers) did not take the request: 503.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    /// A 400 `invalid_prompt` in ComfyUI's shape, for a request whose graph cannot be read.
    pub fn invalid_prompt(message: &str, details: String) -> Self {
        ApiError::InvalidPrompt(json!({
            "error": {"type": "invalid_prompt", "message": message, "details": details, "extra_info": {}},
            "node_errors": {}
        }))
    }

    /// A request body that could not be read: over the server's `limit` (413) or broken (400).
    pub fn body_rejected(e: axum::extract::rejection::BytesRejection, limit: usize) -> Self {
        match e.status().as_u16() {
            413 => ApiError::TooLarge { limit },
            _ => ApiError::BadRequest(format!("cannot read the request body: {e}")),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidPrompt(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Queue(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The JSON body: the prompt's own error JSON, or `{"error": {"type", "message", …}}` as ComfyUI
    /// shapes its other errors.
    pub fn body(&self) -> Json_ {
        match self {
            ApiError::InvalidPrompt(body) => body.clone(),
            other => json!({
                "error": {
                    "type": other.kind(),
                    "message": other.to_string(),
                    "details": "",
                    "extra_info": {}
                },
                "node_errors": {}
            }),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ApiError::InvalidPrompt(_) => "invalid_prompt",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::TooLarge { .. } => "payload_too_large",
            ApiError::Queue(_) | ApiError::Internal(_) => "server_error",
            ApiError::Unavailable(_) => "unavailable",
        }
    }
}

impl From<PathError> for ApiError {
    fn from(e: PathError) -> Self {
        match e {
            PathError::NotFound(_) => ApiError::NotFound(e.to_string()),
            PathError::Io(_) => ApiError::Internal(e.to_string()),
            _ => ApiError::Forbidden(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        (self.status(), Json(self.body())).into_response()
    }
}

/// What handlers return.
pub type ApiResult<T> = Result<T, ApiError>;
