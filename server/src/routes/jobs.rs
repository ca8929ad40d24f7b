//! The 1.5x frontend's queue and history panels: `GET /jobs`, `GET /jobs/{id}`, `POST /jobs/{id}/cancel`
//! and `POST /jobs/cancel`, in the shapes its `jobTypes.ts` schema reads (errors are `{"error": "…"}`,
//! as ComfyUI answers on these routes).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json_};

use super::queue::json_body;
use super::Shared;
use crate::error::ApiResult;
use crate::queue::{Job, JobQuery, JobSort, JobState};
use crate::shapes;

/// The status names `/jobs` speaks, and the stored states each stands for. An interrupted prompt is
/// `cancelled` (the user stopped it), as is one deleted before it ran.
const STATUSES: [(&str, &[JobState]); 5] = [
    ("pending", &[JobState::Pending]),
    ("in_progress", &[JobState::Running]),
    ("completed", &[JobState::Completed]),
    ("failed", &[JobState::Failed]),
    ("cancelled", &[JobState::Interrupted, JobState::Cancelled]),
];

/// How many milliseconds a cancel waits for a just-claimed job's cancel token to appear.
const CLAIM_WAITS: usize = 100;

/// Output kinds the frontend can preview.
const PREVIEWABLE: [&str; 3] = ["images", "video", "audio"];

/// 3D files the frontend previews although no media type says so.
const THREE_D: [&str; 4] = [".obj", ".fbx", ".gltf", ".glb"];

/// `?status=&workflow_id=&sort_by=&sort_order=&limit=&offset=`, read as text so that a bad value gets
/// a message naming it.
#[derive(Debug, Deserialize)]
pub struct JobsQuery {
    status: Option<String>,
    workflow_id: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

/// `GET /jobs`: `{"jobs": [item…], "pagination": {offset, limit, total, has_more}}`.
pub async fn list(State(state): State<Shared>, Query(q): Query<JobsQuery>) -> Response {
    let query = match parse_query(&q) {
        Ok(query) => query,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let unlimited = query.limit == usize::MAX;
    let page = match state.queue.list_jobs(&query) {
        Ok(page) => page,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let items: Vec<Json_> = page.jobs.iter().map(|j| Json_::Object(item(j))).collect();
    let has_more = query.offset.saturating_add(items.len()) < page.total;
    let limit = if unlimited { page.total } else { query.limit };
    Json(json!({
        "jobs": items,
        "pagination": {"offset": query.offset, "limit": limit, "total": page.total, "has_more": has_more},
    }))
    .into_response()
}

/// `GET /jobs/{id}`: the item plus `outputs`, `execution_status` and `workflow: {prompt, extra_data}`;
/// 404 `{"error": "Job not found"}`.
pub async fn one(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    let Some(job) = state.queue.job(&id)? else {
        return Ok(error(StatusCode::NOT_FOUND, "Job not found"));
    };
    let mut detail = item(&job);
    if job.state.is_final() {
        detail.insert("outputs".into(), job.result.outputs.clone());
        let entry = shapes::history_entry(&job);
        detail.insert("execution_status".into(), entry["status"].clone());
    }
    detail.insert(
        "workflow".into(),
        json!({"prompt": job.prompt, "extra_data": job.extra_data}),
    );
    Ok(Json(Json_::Object(detail)).into_response())
}

/// `POST /jobs/{id}/cancel`: a pending job is taken out of the queue, a running one interrupted.
/// `{"cancelled": true}` also when it already was (idempotent); `false` when it had finished.
pub async fn cancel_one(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let answer = match cancel(&state, &id).await? {
        Some(cancelled) => Json(json!({"cancelled": cancelled})).into_response(),
        None => error(StatusCode::NOT_FOUND, "Job not found"),
    };
    state.broadcast_status();
    Ok(answer)
}

/// `POST /jobs/cancel` with `{"job_ids": [...]}`: `{"cancelled": true}` when every one of them is now
/// cancelled (or being interrupted).
pub async fn cancel_many(State(state): State<Shared>, body: Bytes) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let Some(ids) = body.get("job_ids").and_then(Json_::as_array) else {
        return Ok(error(
            StatusCode::BAD_REQUEST,
            "job_ids must be a list of job id strings",
        ));
    };
    let mut all = true;
    for id in ids {
        let Some(id) = id.as_str() else {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "job_ids must be a list of job id strings",
            ));
        };
        all &= cancel(&state, id).await?.unwrap_or(false);
    }
    state.broadcast_status();
    Ok(Json(json!({"cancelled": all})).into_response())
}

/// Cancels one job: `None` if unknown, else whether it is now cancelled or being interrupted.
async fn cancel(state: &Shared, id: &str) -> ApiResult<Option<bool>> {
    if state.queue.job(id)?.is_none() {
        return Ok(None);
    }
    if state.queue.delete_pending(&[id.to_string()])? == 1 {
        return Ok(Some(true));
    }
    if state.remote.is_some() {
        // A remote worker runs it (or is about to): every worker is told.
        return Ok(Some(match state.queue.job(id)?.map(|j| j.state) {
            Some(JobState::Running) => {
                state.interrupt(Some(id)).await;
                true
            }
            Some(JobState::Cancelled | JobState::Interrupted) => true,
            _ => false,
        }));
    }
    // Not pending (any more). The worker marks a job running in storage a moment before it publishes
    // the job's cancel token: give it that moment.
    for _ in 0..CLAIM_WAITS {
        if let Some(current) = state.current().filter(|c| c.id == id) {
            current.cancel.cancel();
            return Ok(Some(true));
        }
        match state.queue.job(id)?.map(|j| j.state) {
            Some(JobState::Running) => tokio::time::sleep(Duration::from_millis(1)).await,
            Some(JobState::Cancelled | JobState::Interrupted) => return Ok(Some(true)),
            _ => return Ok(Some(false)),
        }
    }
    Ok(Some(false))
}

fn parse_query(q: &JobsQuery) -> Result<JobQuery, String> {
    let states = match q.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => STATUSES
            .iter()
            .flat_map(|(_, s)| s.iter().copied())
            .collect(),
        Some(list) => {
            let mut states = Vec::new();
            for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let name = name.to_ascii_lowercase();
                let Some((_, these)) = STATUSES.iter().find(|(n, _)| *n == name) else {
                    let valid: Vec<&str> = STATUSES.iter().map(|(n, _)| *n).collect();
                    return Err(format!(
                        "Invalid status value {name:?}. Valid values: {}",
                        valid.join(", ")
                    ));
                };
                states.extend_from_slice(these);
            }
            states
        }
    };
    let sort = match q.sort_by.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("created_at") => JobSort::Created,
        Some("execution_duration") => JobSort::Duration,
        Some(other) => {
            return Err(format!(
                "Invalid sort_by {other:?}. Valid values: created_at, execution_duration"
            ))
        }
    };
    let descending = match q
        .sort_order
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => {
            return Err(format!(
                "Invalid sort_order {other:?}. Valid values: asc, desc"
            ))
        }
    };
    let limit = match q.limit.as_deref() {
        None => usize::MAX,
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("limit must be a positive integer, found {text:?}")),
        },
    };
    let offset = match q.offset.as_deref() {
        None => 0,
        Some(text) => text
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("offset must be a non-negative integer, found {text:?}"))?,
    };
    Ok(JobQuery {
        states,
        workflow_id: q.workflow_id.clone().filter(|w| !w.is_empty()),
        sort,
        descending,
        offset,
        limit,
    })
}

/// One list item. Absent values are left out, as ComfyUI prunes them.
fn item(job: &Job) -> Map<String, Json_> {
    let status = STATUSES
        .iter()
        .find(|(_, states)| states.contains(&job.state))
        .map_or("failed", |(name, _)| name);
    let mut m = Map::new();
    m.insert("id".into(), json!(job.id));
    m.insert("status".into(), json!(status));
    m.insert("priority".into(), shapes::number(job.number));
    m.insert("create_time".into(), json!(job.created_at));
    if let Some(start) = job.started_at {
        m.insert("execution_start_time".into(), json!(start));
    }
    if let (true, Some(end)) = (job.state.is_final(), job.finished_at) {
        m.insert("execution_end_time".into(), json!(end));
    }
    if let Some(failure) = last_message(job, "execution_error") {
        m.insert("execution_error".into(), failure.clone());
    }
    let summary = outputs_summary(&job.result.outputs);
    m.insert("outputs_count".into(), json!(summary.count));
    m.insert(
        "previewable_outputs_count".into(),
        json!(summary.previewable),
    );
    if let Some(preview) = summary.preview {
        m.insert("preview_output".into(), preview);
    }
    if let Some(workflow) = job.extra_data["extra_pnginfo"]["workflow"]["id"].as_str() {
        m.insert("workflow_id".into(), json!(workflow));
    }
    m
}

/// The data of the last status message of this type.
fn last_message<'j>(job: &'j Job, kind: &str) -> Option<&'j Json_> {
    job.result
        .messages
        .as_array()?
        .iter()
        .rev()
        .find(|m| m[0] == kind)
        .map(|m| &m[1])
}

#[derive(Debug, Default, PartialEq)]
struct OutputsSummary {
    count: usize,
    previewable: usize,
    preview: Option<Json_>,
}

/// Counts a job's output files and picks the one the panel shows: the first previewable file of type
/// `output`, else the first previewable one.
fn outputs_summary(outputs: &Json_) -> OutputsSummary {
    let mut summary = OutputsSummary::default();
    let mut fallback = None;
    let Some(nodes) = outputs.as_object() else {
        return summary;
    };
    for (node_id, ui) in nodes {
        let Some(kinds) = ui.as_object() else {
            continue;
        };
        // `animated` is a flag list, not files.
        for (media, items) in kinds.iter().filter(|(k, _)| *k != "animated") {
            for file in items.as_array().into_iter().flatten() {
                let Some(fields) = file.as_object() else {
                    continue;
                };
                summary.count += 1;
                if !previewable(media, file) {
                    continue;
                }
                summary.previewable += 1;
                let mut enriched = fields.clone();
                enriched.insert("nodeId".into(), json!(node_id));
                enriched.insert("mediaType".into(), json!(media));
                if summary.preview.is_none() && file["type"] == "output" {
                    summary.preview = Some(Json_::Object(enriched));
                } else if fallback.is_none() {
                    fallback = Some(Json_::Object(enriched));
                }
            }
        }
    }
    if summary.preview.is_none() {
        summary.preview = fallback;
    }
    summary
}

fn previewable(media: &str, file: &Json_) -> bool {
    let format = file["format"].as_str().unwrap_or("");
    let name = file["filename"].as_str().unwrap_or("").to_ascii_lowercase();
    PREVIEWABLE.contains(&media)
        || format.starts_with("video/")
        || format.starts_with("audio/")
        || THREE_D.iter().any(|ext| name.ends_with(ext))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_counted_and_the_output_image_is_the_preview() {
        let outputs = json!({
            "3": {"images": [{"filename": "p.png", "subfolder": "", "type": "temp"}]},
            "9": {
                "images": [{"filename": "a.png", "subfolder": "", "type": "output"}],
                "animated": [false],
                "text": ["not a file"]
            },
            "10": {"gifs": [{"filename": "m.glb", "type": "output"}]}
        });
        let summary = outputs_summary(&outputs);
        assert_eq!(summary.count, 3);
        assert_eq!(summary.previewable, 3);
        let preview = summary.preview.unwrap();
        assert_eq!(preview["filename"], "a.png");
        assert_eq!(preview["nodeId"], "9");
        assert_eq!(preview["mediaType"], "images");
        assert_eq!(outputs_summary(&json!({})), OutputsSummary::default());
    }

    #[test]
    fn bad_queries_name_the_value() {
        let q = |status: Option<&str>, limit: Option<&str>, sort: Option<&str>| JobsQuery {
            status: status.map(String::from),
            workflow_id: None,
            sort_by: sort.map(String::from),
            sort_order: None,
            limit: limit.map(String::from),
            offset: None,
        };
        let all = parse_query(&q(None, None, None)).unwrap();
        assert_eq!(all.states.len(), 6);
        assert_eq!(all.limit, usize::MAX);
        let some = parse_query(&q(Some("completed, cancelled"), Some("5"), None)).unwrap();
        assert_eq!(
            some.states,
            [
                JobState::Completed,
                JobState::Interrupted,
                JobState::Cancelled
            ]
        );
        assert!(parse_query(&q(Some("done"), None, None))
            .unwrap_err()
            .contains("\"done\""));
        assert!(parse_query(&q(None, Some("0"), None))
            .unwrap_err()
            .contains("limit"));
        assert!(parse_query(&q(None, None, Some("name")))
            .unwrap_err()
            .contains("sort_by"));
    }
}
