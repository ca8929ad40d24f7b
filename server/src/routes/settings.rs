//! `GET/POST /settings` and `GET/POST /settings/{id}`: the editor's settings, one JSON object in
//! `user/default/comfy.settings.json` under the data dir (ComfyUI's file), written atomically.

use std::path::PathBuf;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{Map, Value as Json_};

use super::queue::json_body;
use super::{userdata, Shared};
use crate::error::{ApiError, ApiResult};
use crate::paths::{self, Access};

/// ComfyUI's settings file name, inside the user's folder.
pub const SETTINGS_FILE: &str = "comfy.settings.json";

/// Serialises read-modify-write of settings files: the frontend writes several settings at once, and
/// two merges must not lose each other's keys. One lock for the process is enough (writes are rare).
static WRITING: Mutex<()> = Mutex::new(());

/// `GET /settings`: every setting (`{}` before the first write).
pub async fn all(State(state): State<Shared>) -> ApiResult<Json<Json_>> {
    Ok(Json(Json_::Object(read(&file(&state)?)?)))
}

/// `GET /settings/{id}`: one value, or `null`.
pub async fn one(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<Json_>> {
    let mut settings = read(&file(&state)?)?;
    Ok(Json(settings.remove(&id).unwrap_or(Json_::Null)))
}

/// `POST /settings`: merges an object into the settings.
pub async fn merge(State(state): State<Shared>, body: Bytes) -> ApiResult<()> {
    let Json_::Object(changes) = json_body(&body)? else {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    };
    update(&state, |settings| settings.extend(changes))
}

/// `POST /settings/{id}`: the body (any JSON value) becomes that setting.
pub async fn set(
    State(state): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<()> {
    let value: Json_ = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("setting {id:?}: the body is not JSON: {e}")))?;
    update(&state, |settings| {
        settings.insert(id, value);
    })
}

fn update(state: &Shared, change: impl FnOnce(&mut Map<String, Json_>)) -> ApiResult<()> {
    let path = file(state)?;
    let _writing = WRITING.lock().unwrap_or_else(|p| p.into_inner());
    let mut settings = read(&path)?;
    change(&mut settings);
    let text = serde_json::to_vec_pretty(&Json_::Object(settings))
        .map_err(|e| ApiError::Internal(format!("cannot encode the settings: {e}")))?;
    paths::write_atomically(&path, &text)
        .map_err(|e| ApiError::Internal(format!("cannot write {SETTINGS_FILE}: {e}")))
}

fn file(state: &Shared) -> ApiResult<PathBuf> {
    let root = userdata::user_root(state)?;
    Ok(paths::resolve(&root, "", SETTINGS_FILE, Access::Write)?)
}

/// The stored settings; a missing file is `{}`, a damaged one an error naming it (overwriting it would
/// lose the user's settings).
fn read(path: &std::path::Path) -> ApiResult<Map<String, Json_>> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => {
            return Err(ApiError::Internal(format!(
                "cannot read {SETTINGS_FILE}: {e}"
            )))
        }
    };
    match serde_json::from_slice(&text) {
        Ok(Json_::Object(settings)) => Ok(settings),
        Ok(_) => Err(ApiError::Internal(format!(
            "{SETTINGS_FILE} does not hold a JSON object: fix or remove it"
        ))),
        Err(e) => Err(ApiError::Internal(format!(
            "{SETTINGS_FILE} is not valid JSON ({e}): fix or remove it"
        ))),
    }
}
