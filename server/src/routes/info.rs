//! The catalogue and the small informational routes the frontend reads at boot.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value as Json_};

use super::Shared;

/// The frontend version this server is tested with (the frontend warns when it is older).
pub const REQUIRED_FRONTEND_VERSION: &str = crate::config::FRONTEND_VERSION;

/// `GET /object_info`.
pub async fn object_info(State(state): State<Shared>) -> Json<Json_> {
    Json(state.engine.object_info())
}

/// `GET /object_info/{class}` (`{}` when unknown, as ComfyUI answers).
pub async fn object_info_for(
    State(state): State<Shared>,
    Path(class): Path<String>,
) -> Json<Json_> {
    Json(state.engine.object_info_for(&class))
}

/// `GET /system_stats`: versions, memory, and the devices the server was started with (`[]` on a CPU
/// build: the server itself knows no devices).
pub async fn system_stats(State(state): State<Shared>) -> Json<Json_> {
    let (total, free) = memory();
    let mut stats = json!({
        "system": {
            "os": std::env::consts::OS,
            "ram_total": total,
            "ram_free": free,
            "comfyui_version": env!("CARGO_PKG_VERSION"),
            "required_frontend_version": REQUIRED_FRONTEND_VERSION,
            "python_version": "",
            "pytorch_version": "",
            "embedded_python": false,
            "argv": [],
        },
        "devices": state.config.devices,
    });
    // Ours, with `--queue nats://…`: the live workers (docs/scale-out.md, "Workers").
    if let Some(front) = &state.remote {
        stats["omnigen_workers"] = json!(front.workers());
    }
    Json(stats)
}

/// `GET /features`: the server's feature flags (also the reply to a socket's `feature_flags`).
pub async fn features(State(state): State<Shared>) -> Json<Json_> {
    Json(feature_flags(&state))
}

/// The flag map.
pub fn feature_flags(state: &Shared) -> Json_ {
    json!({
        "supports_preview_metadata": true,
        "max_upload_size": state.config.max_body_bytes,
    })
}

/// `GET /embeddings`: none.
pub async fn embeddings() -> Json<Json_> {
    Json(json!([]))
}

/// `GET /extensions`: the editor extension that opens our text-to-image template by default.
pub async fn extensions() -> Json<Json_> {
    Json(json!([super::templates::EXTENSION_URL]))
}

/// `GET /users`: single-user (no `users` key, or the frontend shows a user picker).
pub async fn users() -> Json<Json_> {
    Json(json!({"storage": "server", "migrated": true}))
}

/// Total and available RAM in bytes (Linux `/proc/meminfo`; zeros elsewhere).
pub(crate) fn memory() -> (u64, u64) {
    let Ok(info) = std::fs::read_to_string("/proc/meminfo") else {
        return (0, 0);
    };
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}
