//! `SaveImage` and `PreviewImage`: write an IMAGE batch as PNG files with the graph embedded.
//!
//! Every PNG carries the executed API graph in a `prompt` chunk and each `extra_pnginfo` entry
//! (e.g. the editor's `workflow`) in its own chunk, as ComfyUI writes them. Files are named
//! `<prefix>_NNNNN_.png`, numbered after the highest existing counter, written atomically and never
//! overwritten. The UI output is ComfyUI's `{"images":[{"filename","subfolder","type"}]}`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};

use omnigen_engine::{
    BoxFuture, CheckContext, Image, InputSpec, Inputs, NodeContext, NodeError, NodeOutput,
    NodeSchema, NodeType,
};
use serde_json::{json, Value as Json};

use super::counter::write_numbered;
use super::paths::{split_filename_prefix, DirKind};
use super::png_write::encode_png;

/// Default `filename_prefix` of `SaveImage`.
pub const DEFAULT_PREFIX: &str = "omnigen";

/// The `SaveImage` node type: saves into the output directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct SaveImage;

/// The `PreviewImage` node type: saves into the temp directory under a random prefix.
#[derive(Debug, Clone, Copy, Default)]
pub struct PreviewImage;

impl NodeType for SaveImage {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("SaveImage")
            .display_name("Save Image")
            .category("image")
            .python_module("nodes")
            .description("Saves the input images to the output directory.")
            .output_node()
            .required(InputSpec::socket("images", "IMAGE").tooltip("The images to save."))
            .required(
                InputSpec::string("filename_prefix")
                    .default_value(DEFAULT_PREFIX)
                    .tooltip(
                        "File name prefix; may contain subfolders inside the output directory.",
                    ),
            )
            .hidden("prompt", "PROMPT")
            .hidden("extra_pnginfo", "EXTRA_PNGINFO")
    }

    fn validate(&self, inputs: &Inputs, _ctx: &CheckContext) -> Result<(), NodeError> {
        match inputs.opt_str("filename_prefix") {
            Ok(Some(prefix)) => split_filename_prefix(prefix)
                .map(|_| ())
                .map_err(|e| NodeError::new(format!("filename_prefix: {e}"))),
            _ => Ok(()),
        }
    }

    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let prefix = inputs
                .opt_str("filename_prefix")?
                .unwrap_or(DEFAULT_PREFIX)
                .to_string();
            save_batch(inputs, ctx, prefix, DirKind::Output).await
        })
    }
}

impl NodeType for PreviewImage {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("PreviewImage")
            .display_name("Preview Image")
            .category("image")
            .python_module("nodes")
            .description("Saves the input images to the temp directory for previewing.")
            .output_node()
            .required(InputSpec::socket("images", "IMAGE"))
            .hidden("prompt", "PROMPT")
            .hidden("extra_pnginfo", "EXTRA_PNGINFO")
    }

    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let prefix = format!("{DEFAULT_PREFIX}_temp_{}", random_suffix());
            save_batch(inputs, ctx, prefix, DirKind::Temp).await
        })
    }
}

/// Five random lowercase letters, like ComfyUI's preview prefix. Uniqueness of the final name is
/// guaranteed by the no-clobber write, not by this.
fn random_suffix() -> String {
    let mut bits = RandomState::new().hash_one(std::time::SystemTime::now());
    (0..5)
        .map(|_| {
            let letter = b'a' + (bits % 26) as u8;
            bits /= 26;
            letter as char
        })
        .collect()
}

/// Encodes and writes every image of the `images` batch; returns the UI output listing them.
async fn save_batch(
    inputs: Inputs,
    ctx: NodeContext,
    prefix: String,
    kind: DirKind,
) -> Result<NodeOutput, NodeError> {
    let images = inputs.get_image("images")?;
    let (subfolder, stem) =
        split_filename_prefix(&prefix).map_err(|e| NodeError::input("filename_prefix", e))?;
    let base = match kind {
        DirKind::Output => ctx.dirs().output.clone(),
        DirKind::Temp => ctx.dirs().temp.clone(),
        DirKind::Input => ctx.dirs().input.clone(),
    };
    let chunks = metadata_chunks(ctx.prompt(), ctx.extra_pnginfo());
    let written = ctx
        .run_blocking(move |ctx| {
            let dir = base.join(&subfolder);
            let mut written = Vec::with_capacity(images.batch());
            for index in 0..images.batch() {
                ctx.check_cancelled()?;
                let path = write_one(&images, index, &dir, &stem, &chunks)?;
                written.push(path);
            }
            Ok((written, subfolder))
        })
        .await?;
    let (paths, subfolder) = written;
    Ok(NodeOutput::ui(ui_listing(&paths, &subfolder, kind)))
}

fn write_one(
    images: &Image,
    index: usize,
    dir: &Path,
    stem: &str,
    chunks: &[(String, String)],
) -> Result<PathBuf, NodeError> {
    let (_, height, width, channels) = images.dims();
    let frame = images
        .frame(index)
        .ok_or_else(|| NodeError::new(format!("image {index} missing from batch")))?;
    let (width, height) = (to_u32(width)?, to_u32(height)?);
    let png = encode_png(width, height, channels, frame, chunks)
        .map_err(|e| NodeError::from_error(&e).with_kind("ImageError"))?;
    write_numbered(dir, stem, "png", &png).map_err(|e| {
        NodeError::new(format!("cannot write image into {}: {e}", dir.display()))
            .with_kind("IOError")
    })
}

fn to_u32(side: usize) -> Result<u32, NodeError> {
    u32::try_from(side).map_err(|_| NodeError::new(format!("image side {side} too large for PNG")))
}

/// `prompt` first, then each `extra_pnginfo` entry, all as compact JSON text.
fn metadata_chunks(prompt: &Json, extra_pnginfo: Option<&Json>) -> Vec<(String, String)> {
    let mut chunks = Vec::new();
    if !prompt.is_null() {
        chunks.push(("prompt".to_string(), prompt.to_string()));
    }
    if let Some(Json::Object(extra)) = extra_pnginfo {
        for (key, value) in extra {
            chunks.push((key.clone(), value.to_string()));
        }
    }
    chunks
}

fn ui_listing(paths: &[PathBuf], subfolder: &Path, kind: DirKind) -> Json {
    let subfolder = subfolder
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    let images: Vec<Json> = paths
        .iter()
        .map(|p| {
            json!({
                "filename": p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
                "subfolder": subfolder,
                "type": kind.as_str(),
            })
        })
        .collect();
    json!({ "images": images })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_has_prompt_then_extra_entries() {
        let prompt = json!({"1": {"class_type": "SaveImage"}});
        let extra = json!({"workflow": {"nodes": []}, "note": "x"});
        let chunks = metadata_chunks(&prompt, Some(&extra));
        let keys: Vec<_> = chunks.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["prompt", "workflow", "note"]);
        assert_eq!(chunks[0].1, r#"{"1":{"class_type":"SaveImage"}}"#);
    }

    #[test]
    fn ui_listing_uses_forward_slashes_and_the_type() {
        let ui = ui_listing(
            &[PathBuf::from("out/a/b/x_00001_.png")],
            Path::new("a/b"),
            DirKind::Temp,
        );
        assert_eq!(
            ui,
            json!({"images": [{"filename": "x_00001_.png", "subfolder": "a/b", "type": "temp"}]})
        );
    }

    #[test]
    fn random_suffix_is_five_lowercase_letters() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|b| b.is_ascii_lowercase()));
    }
}
