//! `POST /prompt` (queue a graph) and `GET /prompt` (how much is queued).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Map, Value as Json_};

use super::Shared;
use crate::engine_adapter::{new_prompt_id, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::queue::nats::Front;
use crate::queue::{JobResult, JobState, NewJob, Priority};
use crate::shapes;

/// `GET /prompt`: `{"exec_info": {"queue_remaining": N}}`.
pub async fn status(State(state): State<Shared>) -> ApiResult<Json<Json_>> {
    let remaining = state.queue.remaining()?;
    Ok(Json(json!({"exec_info": {"queue_remaining": remaining}})))
}

/// `POST /prompt`: the body is JSON whatever its Content-Type (the frontend sends application/json,
/// ComfyUI's example script x-www-form-urlencoded, some clients none).
pub async fn submit(
    State(state): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Json_>> {
    let body = body.map_err(|e| ApiError::body_rejected(e, state.config.max_body_bytes))?;
    let mut body: Json_ = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid_prompt(
            "Invalid JSON body",
            format!("line {}, column {}: {e}", e.line(), e.column()),
        )
    })?;
    let Some(fields) = body.as_object_mut() else {
        return Err(ApiError::invalid_prompt(
            "The body must be a JSON object",
            String::new(),
        ));
    };
    if !fields.contains_key("prompt") {
        return Err(ApiError::InvalidPrompt(json!({
            "error": {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided", "extra_info": {}},
            "node_errors": {}
        })));
    }
    let priority = priority(fields)?;
    if let Some(Json_::Object(extra)) = fields.get_mut("extra_data") {
        strip_secrets(extra);
    }
    // A UI workflow as `prompt` runs as the editor would send it (and is kept as extra_pnginfo).
    let (_, body) = state
        .engine
        .api_document(body)
        .map_err(ApiError::InvalidPrompt)?;

    let accepted = state.engine.accept(body).map_err(ApiError::InvalidPrompt)?;
    let id = match &accepted.prompt_id {
        Some(id) if is_uuid(id) => id.clone(),
        Some(id) => {
            return Err(ApiError::invalid_prompt(
                "Invalid prompt_id",
                format!("{id:?} is not a canonical UUID (8-4-4-4-12 hex digits)"),
            ))
        }
        None => new_prompt_id(),
    };
    let number = state.queue.enqueue(NewJob {
        id: id.clone(),
        priority,
        prompt: accepted.prompt,
        extra_data: accepted.extra_data,
        outputs: accepted.outputs,
        client_id: accepted.client_id,
        targets: accepted.targets,
    })?;
    if let Some(front) = &state.remote {
        publish(&state, front, &id).await?;
    }
    state.wake.notify_one();
    state.broadcast_status();
    Ok(Json(json!({
        "prompt_id": id,
        "number": shapes::number(number),
        "node_errors": accepted.node_errors,
    })))
}

/// Hands a queued job to the workers. If NATS does not take it, it is recorded failed (it would
/// never run) and the client gets 503.
async fn publish(state: &Shared, front: &Front, id: &str) -> ApiResult<()> {
    let Some(job) = state.queue.job(id)? else {
        return Err(ApiError::Internal(format!(
            "prompt {id} vanished from the queue"
        )));
    };
    let Err(e) = front.publish(&job, &state.config.folders.input).await else {
        return Ok(());
    };
    tracing::error!(prompt_id = %id, error = %e, "cannot hand a prompt to the workers");
    let message = json!(["execution_error", {"prompt_id": id, "node_id": "", "node_type": "",
        "exception_message": e.to_string(), "exception_type": "dispatch", "traceback": [],
        "executed": [], "current_inputs": {}, "current_outputs": [], "timestamp": now_ms()}]);
    let result = JobResult {
        outputs: json!({}),
        messages: json!([message]),
    };
    state.queue.finish(id, JobState::Failed, &result)?;
    Err(ApiError::Unavailable(e.to_string()))
}

/// `number` (a float priority) or `front: true`, else the back of the queue.
fn priority(fields: &Map<String, Json_>) -> ApiResult<Priority> {
    if let Some(n) = fields.get("number").filter(|n| !n.is_null()) {
        return match n.as_f64() {
            Some(n) if n.is_finite() => Ok(Priority::Number(n)),
            _ => Err(ApiError::invalid_prompt(
                "Invalid number",
                format!("number must be a finite number, found {n}"),
            )),
        };
    }
    match fields.get("front") {
        None | Some(Json_::Null) | Some(Json_::Bool(false)) => Ok(Priority::Back),
        Some(Json_::Bool(true)) => Ok(Priority::Front),
        Some(other) => Err(ApiError::invalid_prompt(
            "Invalid front",
            format!("front must be a boolean, found {other}"),
        )),
    }
}

/// ComfyUI strips API credentials from `extra_data` before it is stored or shown.
fn strip_secrets(extra: &mut Map<String, Json_>) {
    extra.retain(|k, _| !(k.starts_with("auth_token") || k.starts_with("api_key")));
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        assert!(is_uuid("7abe13ca-1234-4abc-8def-0123456789ab"));
        assert!(!is_uuid("7abe13ca"));
        assert!(!is_uuid("../../etc-1234-4abc-8def-0123456789ab"));
    }

    #[test]
    fn priorities() {
        let p = |v: Json_| priority(v.as_object().unwrap());
        assert_eq!(p(json!({})).unwrap(), Priority::Back);
        assert_eq!(p(json!({"front": true})).unwrap(), Priority::Front);
        assert_eq!(
            p(json!({"number": 2.5, "front": true})).unwrap(),
            Priority::Number(2.5)
        );
        assert!(p(json!({"front": "yes"})).is_err());
        assert!(p(json!({"number": "1"})).is_err());
    }

    #[test]
    fn secrets_are_stripped() {
        let mut m =
            json!({"auth_token_comfy_org": "x", "api_key_comfy_org": "y", "extra_pnginfo": {}})
                .as_object()
                .unwrap()
                .clone();
        strip_secrets(&mut m);
        assert_eq!(Json_::Object(m), json!({"extra_pnginfo": {}}));
    }
}
