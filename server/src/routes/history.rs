//! `GET /history[?max_items=&offset=]`, `GET /history/{id}`, `POST /history`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value as Json_};

use super::queue::{id_list, json_body};
use super::Shared;
use crate::error::ApiResult;
use crate::queue::{HistoryPage, JobState};
use crate::shapes;

/// `?max_items=&offset=`.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    max_items: Option<usize>,
    offset: Option<usize>,
}

/// `GET /history`: `{prompt_id: entry, …}` in the order prompts finished.
pub async fn list(
    State(state): State<Shared>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Json_>> {
    let jobs = state.queue.history(HistoryPage {
        max_items: q.max_items,
        offset: q.offset,
    })?;
    Ok(Json(shapes::history_map(&jobs)))
}

/// `GET /history/{id}`: `{prompt_id: entry}`, or `{}` while it is queued or unknown.
pub async fn one(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<Json_>> {
    let job = state.queue.job(&id)?.filter(|j| {
        matches!(
            j.state,
            JobState::Completed | JobState::Failed | JobState::Interrupted
        )
    });
    Ok(Json(match job {
        Some(job) => shapes::history_map([&job]),
        None => json!({}),
    }))
}

/// `POST /history`: `{"clear": true}` and/or `{"delete": [ids]}`.
pub async fn change(State(state): State<Shared>, body: Bytes) -> ApiResult<()> {
    let body = json_body(&body)?;
    if body.get("clear").and_then(Json_::as_bool) == Some(true) {
        state.queue.clear_history()?;
    }
    if let Some(ids) = body.get("delete") {
        state.queue.delete_history(&id_list(ids, "delete")?)?;
    }
    Ok(())
}
