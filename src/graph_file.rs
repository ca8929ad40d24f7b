//! Reading a graph file and applying `--set` overrides before the engine sees it.

use std::path::{Path, PathBuf};

use omnigen_engine::graph::parse_json;
use omnigen_engine::{ParseError, PromptRequest, Registry};
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
    /// A `--set` argument names something the graph lacks (a usage problem).
    #[error(transparent)]
    Override(#[from] OverrideError),
}

/// Reads `path` (a bare API graph or a `{"prompt": …, "extra_data": …}` wrapper), applies the
/// `--set` overrides to its graph, and parses the result.
pub fn load_request(
    path: &Path,
    overrides: &[Override],
    registry: &Registry,
) -> Result<PromptRequest, GraphLoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| GraphLoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    request_from_text(&text, overrides, registry).map_err(|e| match e {
        GraphLoadError::Parse { source, .. } => GraphLoadError::Parse {
            path: path.to_path_buf(),
            source,
        },
        other => other,
    })
}

/// Like [`load_request`] for text already read (the watcher hands us parsed requests).
pub fn request_from_text(
    text: &str,
    overrides: &[Override],
    registry: &Registry,
) -> Result<PromptRequest, GraphLoadError> {
    let parse = |source| GraphLoadError::Parse {
        path: PathBuf::new(),
        source,
    };
    let mut raw = parse_json(text).map_err(parse)?;
    apply_to_document(&mut raw, overrides, registry)?;
    PromptRequest::from_json(raw).map_err(parse)
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
