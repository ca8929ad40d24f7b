//! `POST /api/omnigen/convert`: any graph document as the API graph the engine runs. The raw body is an
//! API graph, a `POST /prompt` body, the editor's UI workflow, or a PNG made by omnigen or ComfyUI; the
//! rule is the engine's ([`document_from_bytes`], [`Engine::api_document`]), the same as `omnigen
//! convert`'s. The answer is `{"prompt": {API graph}, "workflow": {UI workflow} | null}`, so the app page
//! can show the graph's inputs and send the workflow back in `extra_pnginfo`.
//!
//! [`Engine::api_document`]: crate::engine_adapter::Engine::api_document

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use omnigen_engine::workflow::{document_from_bytes, DocumentKind, SourceError};
use omnigen_engine::Graph;
use serde_json::{json, Value as Json_};

use super::{imaging, Shared};
use crate::error::{ApiError, ApiResult};

/// Converts the body; a body that is no graph is a 400 in ComfyUI's error shape naming the problem (and
/// the node, for a workflow that does not convert).
pub async fn convert(
    State(state): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Json_>> {
    let body = body.map_err(|e| ApiError::body_rejected(e, state.config.max_body_bytes))?;
    if body.is_empty() {
        return Err(ApiError::invalid_prompt(
            "Empty body",
            "send an API graph, a {\"prompt\": …} body, a UI workflow or a PNG".into(),
        ));
    }
    let doc = document_from_bytes(&body, imaging::read_text_chunks).map_err(source_error)?;
    let (kind, doc) = state
        .engine
        .api_document(doc)
        .map_err(ApiError::InvalidPrompt)?;
    let (prompt, workflow) = split(kind, doc);
    // The graph must at least be one the engine can read; validation against the catalogue is left to
    // `POST /prompt`, where the values the user picks are known.
    let graph =
        Graph::from_json(prompt.clone()).map_err(|e| ApiError::InvalidPrompt(e.to_comfy_json()))?;
    if graph.nodes().len() == 0 {
        return Err(ApiError::invalid_prompt(
            "The graph has no nodes",
            String::new(),
        ));
    }
    Ok(Json(json!({"prompt": prompt, "workflow": workflow})))
}

/// The API graph and the UI workflow it came with, if any.
fn split(kind: DocumentKind, mut doc: Json_) -> (Json_, Json_) {
    match kind {
        DocumentKind::ApiGraph => (doc, Json_::Null),
        DocumentKind::UiWorkflow | DocumentKind::PromptBody => {
            let workflow = doc
                .pointer_mut("/extra_data/extra_pnginfo/workflow")
                .map(Json_::take)
                .unwrap_or(Json_::Null);
            let prompt = doc.get_mut("prompt").map(Json_::take).unwrap_or_default();
            (prompt, workflow)
        }
    }
}

fn source_error(e: SourceError) -> ApiError {
    match e {
        SourceError::Json(parse) => ApiError::InvalidPrompt(parse.to_comfy_json()),
        other => ApiError::invalid_prompt("Not a graph", other.to_string()),
    }
}
