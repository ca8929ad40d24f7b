//! One rule for what a graph document is: a UI workflow, a bare API graph, or a `POST /prompt` body.

use serde_json::{json, Map, Value as Json};

use super::error::WorkflowError;
use super::model::looks_like_ui_workflow;
use super::to_api;
use crate::registry::Registry;

/// What kind of graph document a JSON value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// The editor's saved workflow (`nodes` array); converted before it runs.
    UiWorkflow,
    /// A bare API-format prompt (`{id: {class_type, inputs}}`).
    ApiGraph,
    /// A `POST /prompt` body (`{"prompt": …, "extra_data": …}`).
    PromptBody,
}

impl DocumentKind {
    /// Classifies a document. A wrapper is recognised as the engine does: its `prompt` member is an
    /// object without a `class_type` (so a node whose id is `"prompt"` is still read as a node).
    pub fn of(doc: &Json) -> Self {
        if looks_like_ui_workflow(doc) {
            DocumentKind::UiWorkflow
        } else if doc
            .get("prompt")
            .is_some_and(|p| p.is_object() && p.get("class_type").is_none())
        {
            DocumentKind::PromptBody
        } else {
            DocumentKind::ApiGraph
        }
    }
}

/// Turns any graph document into an API-format one ([`PromptRequest::from_json`] reads the result).
/// A UI workflow becomes a body `{"prompt": <converted>, "extra_data": {"extra_pnginfo": {"workflow":
/// <the workflow>}}}`, so saved PNGs carry it as the editor's own runs do; a body whose `prompt` is a UI
/// workflow is converted the same way. API graphs and bodies pass unchanged.
///
/// [`PromptRequest::from_json`]: crate::PromptRequest::from_json
pub fn into_api_document(
    doc: Json,
    registry: &Registry,
) -> Result<(DocumentKind, Json), WorkflowError> {
    let kind = DocumentKind::of(&doc);
    match kind {
        DocumentKind::UiWorkflow => {
            let prompt = to_api(&doc, registry)?;
            Ok((
                kind,
                json!({"prompt": prompt, "extra_data": {"extra_pnginfo": {"workflow": doc}}}),
            ))
        }
        DocumentKind::PromptBody => {
            let Json::Object(mut body) = doc else {
                return Ok((kind, doc));
            };
            let workflow = body
                .get("prompt")
                .filter(|p| looks_like_ui_workflow(p))
                .cloned();
            let Some(workflow) = workflow else {
                return Ok((kind, Json::Object(body)));
            };
            body.insert("prompt".into(), to_api(&workflow, registry)?);
            let extra = body
                .entry("extra_data")
                .or_insert_with(|| Json::Object(Map::new()));
            if let Json::Object(extra) = extra {
                let info = extra
                    .entry("extra_pnginfo")
                    .or_insert_with(|| Json::Object(Map::new()));
                if let Json::Object(info) = info {
                    info.entry("workflow").or_insert(workflow);
                }
            }
            Ok((kind, Json::Object(body)))
        }
        DocumentKind::ApiGraph => Ok((kind, doc)),
    }
}
