//! Reading a graph file (an API graph, a `POST /prompt` body, the editor's UI workflow, or a PNG made by
//! omnigen or ComfyUI) and applying `--set` overrides before the engine sees it.

use std::path::{Path, PathBuf};

use omnigen_engine::workflow::{
    document_from_bytes, into_api_document, SourceError, WorkflowError,
};
use omnigen_engine::{ParseError, PromptRequest, Registry};
use omnigen_nodes::io::png_write::read_png_text_chunks;
use serde_json::Value as Json;

use crate::overrides::{apply_overrides, Override, OverrideError};

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

/// Reads a graph file as JSON, by the engine's one rule ([`document_from_bytes`]): a PNG yields its
/// `prompt` text chunk (with the other chunks, the editor's `workflow` among them, as `extra_pnginfo`,
/// so a re-save keeps them), else its `workflow` chunk; any other file is JSON text.
pub fn read_document(path: &Path) -> Result<Json, GraphLoadError> {
    let bytes = std::fs::read(path).map_err(|source| GraphLoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let path = path.to_path_buf();
    document_from_bytes(&bytes, read_png_text_chunks).map_err(|e| match e {
        SourceError::Json(source) => GraphLoadError::Parse { path, source },
        other => GraphLoadError::Format {
            path,
            problem: other.to_string(),
        },
    })
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
