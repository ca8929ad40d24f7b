//! The HTTP routes, one small handler each, every one served both bare and under `/api` as ComfyUI does.

mod app;
mod convert;
mod files;
mod frontend;
mod history;
mod imaging;
pub(crate) mod info;
mod jobs;
mod prompt;
mod queue;
mod settings;
mod templates;
mod userdata;
mod ws;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, MethodRouter};
use axum::Router;

use crate::security::{self, Guard};
use crate::state::AppState;

type Shared = Arc<AppState>;

/// The whole application: routes, body limit and the security guard.
pub fn router(state: Shared, guard: Arc<Guard>) -> Router {
    let routes: [(&str, MethodRouter<Shared>); 32] = [
        ("/prompt", get(prompt::status).post(prompt::submit)),
        ("/queue", get(queue::list).post(queue::change)),
        ("/interrupt", post(queue::interrupt)),
        ("/free", post(queue::free)),
        ("/history", get(history::list).post(history::change)),
        ("/history/{prompt_id}", get(history::one)),
        ("/jobs", get(jobs::list)),
        ("/jobs/cancel", post(jobs::cancel_many)),
        ("/jobs/{job_id}", get(jobs::one)),
        ("/jobs/{job_id}/cancel", post(jobs::cancel_one)),
        ("/object_info", get(info::object_info)),
        ("/object_info/{class}", get(info::object_info_for)),
        ("/system_stats", get(info::system_stats)),
        ("/features", get(info::features)),
        ("/embeddings", get(info::embeddings)),
        ("/extensions", get(info::extensions)),
        ("/extensions/omnigen/{file}", get(templates::extension)),
        ("/workflow_templates", get(templates::list)),
        ("/workflow_templates/{module}/{file}", get(templates::one)),
        ("/templates/{file}", get(templates::core_index)),
        ("/users", get(info::users)),
        ("/settings", get(settings::all).post(settings::merge)),
        ("/settings/{id}", get(settings::one).post(settings::set)),
        ("/userdata", get(userdata::list)),
        (
            "/userdata/{file}",
            get(userdata::read)
                .post(userdata::write)
                .delete(userdata::delete),
        ),
        ("/userdata/{file}/move/{dest}", post(userdata::rename)),
        ("/view", get(files::view)),
        ("/upload/image", post(files::upload_image)),
        ("/internal/files/{kind}", get(files::list_folder)),
        ("/upload/mask", post(files::upload_mask)),
        ("/ws", get(ws::connect)),
        ("/omnigen/convert", post(convert::convert)),
    ];
    let mut router = Router::new();
    for (path, handler) in routes {
        router = router
            .route(path, handler.clone())
            .route(&format!("/api{path}"), handler);
    }
    // The app page is a page, not API: served only bare.
    router = router
        .route("/app", get(app::index))
        .route("/app/", get(app::slash))
        .route("/app/{file}", get(app::asset));
    let limit = state.config.max_body_bytes;
    router = router.fallback(frontend::serve);
    router
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(guard, security::guard))
}
