//! Reading a graph file (an API graph, a `POST /prompt` body, the editor's UI workflow, or a PNG made by
//! omnigen or ComfyUI) and applying `--set` overrides before the engine sees it.

use std::path::{Path, PathBuf};

use omnigen_engine::graph::parse_json;
use omnigen_engine::workflow::{into_api_document, WorkflowError};
use omnigen_engine::{ParseError, PromptRequest, Registry};
use omnigen_nodes::io::png_write::read_png_text_chunks;
use serde_json::{Map, Value as Json};

use crate::overrides::{apply_overrides, Override, OverrideError};

/// The eight bytes every PNG file starts with.
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Why a graph file could not be turned into a request.
#[derive(Debug, thiserror::Error)]
pub enum GraphLoadError {
    /// The file could not be read (a usage problem).
    #[error("cannot read graph file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a valid API-format prompt.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: ParseError,
    },
    /// The file is a UI workflow that cannot be converted to the API format.
    #[error("{path}: cannot convert the UI workflow: {source}")]
    Workflow {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the node.
        source: WorkflowError,
    },
    /// The file is in no graph format, or is a PNG without a graph.
    #[error("{path}: {problem}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A `--set` argument names something the graph lacks (a usage problem).
    #[error(transparent)]
    Override(#[from] OverrideError),
}

impl GraphLoadError {
    /// This error reported against `path`.
    pub fn at(self, path: &Path) -> Self {
        let path = path.to_path_buf();
        match self {
            GraphLoadError::Parse { source, .. } => GraphLoadError::Parse { path, source },
            GraphLoadError::Workflow { source, .. } => GraphLoadError::Workflow { path, source },
            GraphLoadError::Format { problem, .. } => GraphLoadError::Format { path, problem },
            other => other,
        }
    }
}

/// Reads `path` (any graph format, see [`read_document`]), converts a UI workflow with the catalogue,
/// applies the `--set` overrides to its graph, and parses the result.
pub fn load_request(
    path: &Path,
    overrides: &[Override],
    registry: &Registry,
) -> Result<PromptRequest, GraphLoadError> {
    let raw = read_document(path)?;
    request_from_document(raw, overrides, registry).map_err(|e| e.at(path))
}

/// Reads a graph file as JSON. A PNG yields its `prompt` text chunk (with the other chunks, the editor's
/// `workflow` among them, as `extra_pnginfo`, so a re-save keeps them), else its `workflow` chunk; any
/// other file is JSON text.
pub fn read_document(path: &Path) -> Result<Json, GraphLoadError> {
    let bytes = std::fs::read(path).map_err(|source| GraphLoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.starts_with(PNG_SIGNATURE) {
        return document_from_png(&bytes).map_err(|e| e.at(path));
    }
    let text = String::from_utf8(bytes).map_err(|e| GraphLoadError::Format {
        path: path.to_path_buf(),
        problem: format!(
            "not a graph: neither UTF-8 JSON text nor a PNG (invalid UTF-8 at byte {})",
            e.utf8_error().valid_up_to()
        ),
    })?;
    parse_json(&text).map_err(|source| GraphLoadError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

fn document_from_png(bytes: &[u8]) -> Result<Json, GraphLoadError> {
    let png = |problem: String| GraphLoadError::Format {
        path: PathBuf::new(),
        problem,
    };
    let chunks = read_png_text_chunks(bytes)
        .map_err(|e| png(format!("cannot read the PNG's text chunks: {e}")))?;
    let chunk_json = |keyword: &str, text: &str| {
        parse_json(text).map_err(|e| png(format!("the PNG's `{keyword}` chunk is not JSON: {e}")))
    };
    let mut prompt = None;
    let mut extra_pnginfo = Map::new();
    for (keyword, text) in &chunks {
        if keyword == "prompt" {
            prompt = Some(chunk_json(keyword, text)?);
        } else if let Ok(value) = parse_json(text) {
            // ComfyUI writes each `extra_pnginfo` entry as a chunk of its own; non-JSON chunks
            // (a camera's comment, say) are not part of the graph.
            extra_pnginfo.insert(keyword.clone(), value);
        }
    }
    match (prompt, extra_pnginfo.remove("workflow")) {
        (Some(prompt), workflow) => {
            if let Some(workflow) = workflow {
                extra_pnginfo.insert("workflow".into(), workflow);
            }
            Ok(serde_json::json!({"prompt": prompt, "extra_data": {"extra_pnginfo": extra_pnginfo}}))
        }
        (None, Some(workflow)) => Ok(workflow),
        (None, None) => Err(png(
            "the PNG carries no graph: it has neither a `prompt` nor a `workflow` text chunk (only \
             images saved by omnigen or ComfyUI do)"
                .into(),
        )),
    }
}

/// Converts, applies overrides and parses an already-read document.
fn request_from_document(
    raw: Json,
    overrides: &[Override],
    registry: &Registry,
) -> Result<PromptRequest, GraphLoadError> {
    let mut raw = api_document(raw, registry)?;
    apply_to_document(&mut raw, overrides, registry)?;
    PromptRequest::from_json(raw).map_err(|source| GraphLoadError::Parse {
        path: PathBuf::new(),
        source,
    })
}

/// Any graph document in the API format: a UI workflow is converted (and carried in
/// `extra_data.extra_pnginfo.workflow`); API graphs and bodies pass unchanged.
pub fn api_document(raw: Json, registry: &Registry) -> Result<Json, GraphLoadError> {
    into_api_document(raw, registry)
        .map(|(_, doc)| doc)
        .map_err(|source| GraphLoadError::Workflow {
            path: PathBuf::new(),
            source,
        })
}

/// Applies overrides to a parsed document (bare graph or wrapper).
pub fn apply_to_document(
    raw: &mut Json,
    overrides: &[Override],
    registry: &Registry,
) -> Result<(), OverrideError> {
    if overrides.is_empty() {
        return Ok(());
    }
    // Same rule as the engine: a wrapper's `prompt` is an object that is not itself a node.
    let is_wrapper = raw
        .get("prompt")
        .is_some_and(|p| p.is_object() && p.get("class_type").is_none());
    let declared = |class_type: &str| {
        let node = registry.get(class_type)?;
        let schema = &node.schema;
        Some(
            schema
                .required
                .iter()
                .chain(schema.optional.iter())
                .map(|input| input.name.clone())
                .collect(),
        )
    };
    if is_wrapper {
        if let Some(prompt) = raw.get_mut("prompt") {
            return apply_overrides(prompt, overrides, declared);
        }
    }
    apply_overrides(raw, overrides, declared)
}
