//! Our example workflows as the editor's templates, and the editor extension that opens the first one.
//!
//! `GET /workflow_templates` lists them in ComfyUI's shape for custom-node templates (`{"omnigen":
//! [names]}`); the editor then fetches `/workflow_templates/omnigen/NAME.json` (the UI workflow,
//! generated from `graphs/NAME.json` by `ui/oracle/templates.mjs`) and `NAME.jpg` (its card's picture).
//! ComfyUI's own core templates (`/templates/index.json`, served beside its editor) need nodes we do
//! not have, so that index is empty. Everything here is built into the binary.

use axum::extract::Path;
use axum::Json;
use serde_json::{json, Value as Json_};

use super::files;
use crate::error::{ApiError, ApiResult};
use axum::response::Response;

/// The module name the editor shows the templates under.
pub const MODULE: &str = "omnigen";

/// One template: its name (the example graph's), its UI workflow and its thumbnail.
struct Template {
    name: &'static str,
    workflow: &'static str,
    thumbnail: &'static [u8],
}

macro_rules! template {
    ($name:literal) => {
        Template {
            name: $name,
            workflow: include_str!(concat!("../../../graphs/workflows/", $name, ".json")),
            thumbnail: include_bytes!(concat!("../../../graphs/workflows/", $name, ".jpg")),
        }
    };
}

/// Every file of graphs/workflows (a test checks that none is missing), in the order shown.
const TEMPLATES: [Template; 8] = [
    template!("text_to_image"),
    template!("instruction_edit"),
    template!("text_to_image_then_edit"),
    template!("subject_driven"),
    template!("identity_preserving"),
    template!("few_shot"),
    template!("visual_conditional"),
    template!("derain"),
];

/// The templates' names, in the order the editor shows them.
pub fn names() -> Vec<&'static str> {
    TEMPLATES.iter().map(|t| t.name).collect()
}

/// `GET /workflow_templates`.
pub async fn list() -> Json<Json_> {
    Json(json!({ MODULE: names() }))
}

/// `GET /workflow_templates/{module}/{file}`: `NAME.json` or `NAME.jpg` of one of ours.
pub async fn one(Path((module, file)): Path<(String, String)>) -> ApiResult<Response> {
    let missing = || ApiError::NotFound(format!("no template {module}/{file}"));
    if module != MODULE {
        return Err(missing());
    }
    let (name, ext) = file.rsplit_once('.').ok_or_else(missing)?;
    let template = TEMPLATES
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(missing)?;
    match ext {
        "json" => Ok(files::served(
            template.workflow.as_bytes().to_vec(),
            "application/json",
            None,
        )),
        "jpg" => Ok(files::served(
            template.thumbnail.to_vec(),
            "image/jpeg",
            None,
        )),
        _ => Err(missing()),
    }
}

/// `GET /templates/{file}` beside the editor: ComfyUI's core template indexes (`index.json`,
/// `index.LOCALE.json`, `index_logo.json`), empty here; anything else is not found.
pub async fn core_index(Path(file): Path<String>) -> ApiResult<Json<Json_>> {
    let is_index = file == "index.json"
        || file
            .strip_prefix("index.")
            .and_then(|rest| rest.strip_suffix(".json"))
            .is_some_and(|locale| {
                !locale.is_empty()
                    && locale
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
    match file.as_str() {
        "index_logo.json" => Ok(Json(json!({}))),
        _ if is_index => Ok(Json(json!([]))),
        _ => Err(ApiError::NotFound(format!("no core template {file}"))),
    }
}

/// The editor extension that makes our text-to-image template its default graph.
const DEFAULT_WORKFLOW_JS: &str = include_str!("../../../ui/editor/default_workflow.js");

/// Its URL, listed by `GET /extensions`.
pub const EXTENSION_URL: &str = "/extensions/omnigen/default_workflow.js";

/// `GET /extensions/omnigen/{file}`.
pub async fn extension(Path(file): Path<String>) -> ApiResult<Response> {
    if Some(file.as_str()) != EXTENSION_URL.rsplit('/').next() {
        return Err(ApiError::NotFound(format!("no extension {file}")));
    }
    Ok(files::served(
        DEFAULT_WORKFLOW_JS.as_bytes().to_vec(),
        "text/javascript; charset=utf-8",
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed workflow is served, each with its thumbnail.
    #[test]
    fn every_committed_workflow_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../graphs/workflows");
        let mut committed: Vec<String> = std::fs::read_dir(&dir)
            .expect("graphs/workflows")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|f| f.strip_suffix(".json").map(str::to_string))
            .collect();
        committed.sort();
        let mut embedded: Vec<String> = names().iter().map(|n| n.to_string()).collect();
        embedded.sort();
        assert_eq!(committed, embedded);
        for t in &TEMPLATES {
            assert!(
                t.thumbnail.starts_with(&[0xff, 0xd8]),
                "{} thumbnail is a JPEG",
                t.name
            );
            let workflow: Json_ = serde_json::from_str(t.workflow).expect("JSON");
            assert!(workflow["nodes"].is_array(), "{} is a UI workflow", t.name);
        }
    }
}
