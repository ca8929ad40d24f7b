//! One rule for reading a graph document out of a file's bytes, shared by the CLI and the server: JSON
//! text, or a PNG made by omnigen or ComfyUI, whose `prompt` text chunk is the graph (with the other
//! chunks, the editor's `workflow` among them, as `extra_pnginfo`), else whose `workflow` chunk is.
//! Reading the PNG's chunks is left to the caller (the engine decodes no images).

use serde_json::{json, Map, Value as Json};

use crate::graph::{parse_json, ParseError};

/// The eight bytes every PNG file starts with.
pub const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Why some bytes are not a graph document.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// Neither a PNG nor UTF-8 text.
    #[error(
        "not a graph: neither UTF-8 JSON text nor a PNG (invalid UTF-8 at byte {valid_up_to})"
    )]
    NotText {
        /// Where the first invalid byte is.
        valid_up_to: usize,
    },
    /// UTF-8 text that is not JSON.
    #[error("{0}")]
    Json(ParseError),
    /// A PNG whose text chunks could not be read.
    #[error("cannot read the PNG's text chunks: {0}")]
    PngChunks(String),
    /// A PNG whose `prompt` chunk is not JSON.
    #[error("the PNG's `{keyword}` chunk is not JSON: {source}")]
    ChunkJson {
        /// The chunk's keyword.
        keyword: String,
        /// What is wrong with it.
        source: ParseError,
    },
    /// A PNG without a graph.
    #[error(
        "the PNG carries no graph: it has neither a `prompt` nor a `workflow` text chunk (only images \
         saved by omnigen or ComfyUI do)"
    )]
    NoGraph,
}

/// Whether `bytes` start like a PNG file.
pub fn is_png(bytes: &[u8]) -> bool {
    bytes.starts_with(PNG_SIGNATURE)
}

/// The graph document in `bytes`: a PNG's (see [`document_from_png_chunks`]), its text chunks read by
/// `text_chunks`, or JSON text. The result is any of [`super::DocumentKind`]'s documents.
pub fn document_from_bytes<E: std::fmt::Display>(
    bytes: &[u8],
    text_chunks: impl FnOnce(&[u8]) -> Result<Vec<(String, String)>, E>,
) -> Result<Json, SourceError> {
    if is_png(bytes) {
        let chunks = text_chunks(bytes).map_err(|e| SourceError::PngChunks(e.to_string()))?;
        return document_from_png_chunks(&chunks);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| SourceError::NotText {
        valid_up_to: e.valid_up_to(),
    })?;
    parse_json(text).map_err(SourceError::Json)
}

/// The graph document a PNG's text chunks carry: `{"prompt": …, "extra_data": {"extra_pnginfo": {the
/// other JSON chunks}}}` when there is a `prompt` chunk (so a re-save keeps the workflow), else the
/// `workflow` chunk (a UI workflow, converted later).
pub fn document_from_png_chunks(chunks: &[(String, String)]) -> Result<Json, SourceError> {
    let mut prompt = None;
    let mut extra_pnginfo = Map::new();
    for (keyword, text) in chunks {
        if keyword == "prompt" {
            let value = parse_json(text).map_err(|source| SourceError::ChunkJson {
                keyword: keyword.clone(),
                source,
            })?;
            prompt = Some(value);
        } else if let Ok(value) = parse_json(text) {
            // ComfyUI writes each `extra_pnginfo` entry as a chunk of its own; non-JSON chunks (a
            // camera's comment, say) are not part of the graph.
            extra_pnginfo.insert(keyword.clone(), value);
        }
    }
    match (prompt, extra_pnginfo.remove("workflow")) {
        (Some(prompt), workflow) => {
            if let Some(workflow) = workflow {
                extra_pnginfo.insert("workflow".into(), workflow);
            }
            Ok(json!({"prompt": prompt, "extra_data": {"extra_pnginfo": extra_pnginfo}}))
        }
        (None, Some(workflow)) => Ok(workflow),
        (None, None) => Err(SourceError::NoGraph),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_prompt_chunk_wins_and_the_others_become_extra_pnginfo() {
        let doc = document_from_png_chunks(&chunks(&[
            ("workflow", r#"{"nodes": []}"#),
            ("prompt", r#"{"1": {"class_type": "X", "inputs": {}}}"#),
            ("Comment", "not json"),
        ]))
        .expect("a graph");
        assert_eq!(
            doc,
            json!({"prompt": {"1": {"class_type": "X", "inputs": {}}},
                   "extra_data": {"extra_pnginfo": {"workflow": {"nodes": []}}}})
        );
    }

    #[test]
    fn the_workflow_chunk_is_the_fallback() {
        let doc = document_from_png_chunks(&chunks(&[("workflow", r#"{"nodes": []}"#)]));
        assert_eq!(doc, Ok(json!({"nodes": []})));
        assert_eq!(
            document_from_png_chunks(&chunks(&[("Comment", "hi")])),
            Err(SourceError::NoGraph)
        );
        let bad = document_from_png_chunks(&chunks(&[("prompt", "{")])).expect_err("bad");
        assert!(
            bad.to_string().contains("`prompt` chunk is not JSON"),
            "{bad}"
        );
    }

    #[test]
    fn bytes_are_png_or_json_text() {
        let never = |_: &[u8]| -> Result<Vec<(String, String)>, String> { unreachable!() };
        assert_eq!(
            document_from_bytes(b"{\"a\": 1}", never),
            Ok(json!({"a": 1}))
        );
        assert_eq!(
            document_from_bytes(b"{\xff", never),
            Err(SourceError::NotText { valid_up_to: 1 })
        );
        let failing = |_: &[u8]| Err("truncated");
        let err = document_from_bytes(b"\x89PNG\r\n\x1a\nrest", failing).expect_err("bad png");
        assert_eq!(err, SourceError::PngChunks("truncated".into()));
    }
}
