//! `GET/POST /queue`, `POST /interrupt`, `POST /free`.

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value as Json_};

use super::Shared;
use crate::error::{ApiError, ApiResult};
use crate::queue::nats::protocol::Control;
use crate::shapes;

/// `GET /queue`: `{"queue_running": [[number, id, prompt, extra_data, outputs]], "queue_pending": […]}`.
pub async fn list(State(state): State<Shared>) -> ApiResult<Json<Json_>> {
    let running: Vec<_> = state
        .queue
        .running()?
        .iter()
        .map(shapes::queue_item)
        .collect();
    let pending: Vec<_> = state
        .queue
        .pending()?
        .iter()
        .map(shapes::queue_item)
        .collect();
    Ok(Json(
        json!({"queue_running": running, "queue_pending": pending}),
    ))
}

/// `POST /queue`: `{"clear": true}` and/or `{"delete": [prompt_id, …]}` (pending jobs only).
pub async fn change(State(state): State<Shared>, body: Bytes) -> ApiResult<()> {
    let body = json_body(&body)?;
    if body.get("clear").and_then(Json_::as_bool) == Some(true) {
        state.queue.clear_pending()?;
    }
    if let Some(ids) = body.get("delete") {
        state.queue.delete_pending(&id_list(ids, "delete")?)?;
    }
    state.broadcast_status();
    Ok(())
}

/// `POST /interrupt`: stops the running prompt; with `{"prompt_id"}`, only if that one is running.
pub async fn interrupt(State(state): State<Shared>, body: Bytes) -> ApiResult<()> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        json_body(&body)?
    };
    let wanted = body.get("prompt_id").and_then(Json_::as_str);
    state.interrupt(wanted).await;
    Ok(())
}

/// `POST /free`: `{"free_memory": true}` drops the output cache. (Models are unloaded by the nodes that
/// own them; this server knows of no models.)
pub async fn free(State(state): State<Shared>, body: Bytes) -> ApiResult<()> {
    let body = json_body(&body)?;
    let flag = |k: &str| body.get(k).and_then(Json_::as_bool) == Some(true);
    if flag("free_memory") || flag("unload_models") {
        state.engine.free_memory();
        if let Some(front) = &state.remote {
            front.control(&Control::FreeMemory).await;
        }
    }
    Ok(())
}

/// A JSON object body.
pub(super) fn json_body(body: &[u8]) -> ApiResult<Json_> {
    let value: Json_ = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ))
    }
}

/// A list of prompt ids (`"delete": [...]`).
pub(super) fn id_list(value: &Json_, field: &str) -> ApiResult<Vec<String>> {
    value
        .as_array()
        .and_then(|items| items.iter().map(|v| v.as_str().map(String::from)).collect())
        .ok_or_else(|| ApiError::BadRequest(format!("{field} must be a list of prompt id strings")))
}
