//! `LoadImage`: reads an image file from the input directory into an IMAGE and a MASK.
//!
//! ComfyUI semantics: the image is RGB; the mask is `1 - alpha` (opaque = 0, "keep"), and an image
//! without alpha yields a 64×64 zero mask, exactly as ComfyUI does, so graphs behave the same.
//! The node re-runs when the file's *content* changes: its fingerprint is the file's sha256.

use std::path::PathBuf;
use std::sync::Arc;

use omnigen_engine::{
    BoxFuture, CheckContext, Dirs, Fingerprint, Image, InputSpec, Inputs, Mask, NodeContext,
    NodeError, NodeOutput, NodeSchema, NodeType, Value,
};
use sha2::{Digest, Sha256};

use super::config::IoConfig;
use super::decode::{decode_image_file, DecodedImage};
use super::paths::{resolve_in_dir, split_annotation, DirKind};

/// The extensions the editor's file list offers: the formats [`decode_image_file`] reads.
const IMAGE_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "webp"];

/// Side of the empty mask ComfyUI returns for images without alpha.
const EMPTY_MASK_SIDE: usize = 64;

/// The `LoadImage` node type.
#[derive(Debug, Clone, Default)]
pub struct LoadImage {
    config: IoConfig,
}

impl LoadImage {
    /// A `LoadImage` with the given path and size policy.
    pub fn new(config: IoConfig) -> Self {
        Self { config }
    }

    /// Resolves a file name to a path, refusing escapes from the directory.
    /// `"name.png [output]"` reads from the output directory, as in ComfyUI.
    fn resolve(&self, dirs: &Dirs, name: &str) -> Result<PathBuf, NodeError> {
        let (name, kind) = split_annotation(name, DirKind::Input);
        let base = match kind {
            DirKind::Input => &dirs.input,
            DirKind::Output => &dirs.output,
            DirKind::Temp => &dirs.temp,
        };
        resolve_in_dir(base, name, self.config.allow_absolute_paths)
            .map_err(|e| NodeError::input("image", e))
    }
}

/// `LoadImage`'s inputs, parsed once for `validate`, `fingerprint` and `run`: the file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadImageArgs {
    /// The existing file the `image` input names.
    pub path: PathBuf,
}

impl LoadImageArgs {
    /// Reads the `image` input: a name inside the folders of `dirs` (see [`LoadImage`]) that exists.
    pub fn parse(node: &LoadImage, dirs: &Dirs, inputs: &Inputs) -> Result<Self, NodeError> {
        let path = node.resolve(dirs, inputs.get_str("image")?)?;
        if !path.is_file() {
            return Err(NodeError::input(
                "image",
                format!("Invalid image file: {} does not exist", path.display()),
            ));
        }
        Ok(LoadImageArgs { path })
    }
}

impl NodeType for LoadImage {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("LoadImage")
            .display_name("Load Image")
            .category("image")
            .python_module("nodes")
            .description("Loads a PNG, JPEG or WebP image from the input directory.")
            .required(
                InputSpec::input_file("image", IMAGE_EXTENSIONS)
                    .option("image_upload", true)
                    .tooltip(
                        "An image of the input directory, or any path relative to it \
                         (\"name.png [output]\" reads the output directory).",
                    ),
            )
            .output("IMAGE")
            .output("MASK")
    }

    fn validate(&self, inputs: &Inputs, ctx: &CheckContext) -> Result<(), NodeError> {
        if ctx.is_linked("image") {
            return Ok(());
        }
        LoadImageArgs::parse(self, &ctx.dirs, inputs).map(drop)
    }

    fn fingerprint(&self, inputs: &Inputs, ctx: &CheckContext) -> Result<Fingerprint, NodeError> {
        let path = LoadImageArgs::parse(self, &ctx.dirs, inputs)?.path;
        let bytes = std::fs::read(&path).map_err(|e| {
            NodeError::input("image", format!("cannot read {}: {e}", path.display()))
        })?;
        Ok(Fingerprint::Value(hex::encode(Sha256::digest(&bytes))))
    }

    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let path = LoadImageArgs::parse(self, ctx.dirs(), &inputs)?.path;
            let limits = self.config.decode_limits;
            let decoded = ctx
                .run_blocking(move |_| {
                    decode_image_file(&path, limits)
                        .map_err(|e| NodeError::from_error(&e).with_kind("ImageError"))
                })
                .await?;
            let (image, mask) = to_values(decoded)?;
            Ok(NodeOutput::new(vec![image, mask]))
        })
    }
}

/// Turns a decoded file into the node's IMAGE `[1,H,W,3]` and MASK outputs.
fn to_values(decoded: DecodedImage) -> Result<(Value, Value), NodeError> {
    let (w, h) = (decoded.width as usize, decoded.height as usize);
    let mask = match decoded.alpha {
        Some(alpha) => Mask::new(1, h, w, alpha.into_iter().map(|a| 1.0 - a).collect())?,
        None => Mask::new(
            1,
            EMPTY_MASK_SIDE,
            EMPTY_MASK_SIDE,
            vec![0.0; EMPTY_MASK_SIDE * EMPTY_MASK_SIDE],
        )?,
    };
    let image = Image::new(1, h, w, 3, decoded.rgb)?;
    Ok((Value::Image(Arc::new(image)), Value::Mask(Arc::new(mask))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_becomes_inverted_mask_and_no_alpha_an_empty_64_mask() {
        let with_alpha = DecodedImage {
            width: 2,
            height: 1,
            rgb: vec![0.0; 6],
            alpha: Some(vec![1.0, 0.25]),
        };
        let (image, mask) = to_values(with_alpha).expect("values");
        let Value::Mask(mask) = mask else {
            panic!("mask")
        };
        assert_eq!(mask.dims(), (1, 1, 2));
        assert_eq!(mask.data(), &[0.0, 0.75]);
        let Value::Image(image) = image else {
            panic!("image")
        };
        assert_eq!(image.dims(), (1, 1, 2, 3));

        let opaque = DecodedImage {
            width: 2,
            height: 1,
            rgb: vec![0.0; 6],
            alpha: None,
        };
        let (_, mask) = to_values(opaque).expect("values");
        let Value::Mask(mask) = mask else {
            panic!("mask")
        };
        assert_eq!(mask.dims(), (1, 64, 64));
        assert!(mask.data().iter().all(|v| *v == 0.0));
    }

    #[test]
    fn escapes_and_absolute_paths_are_refused_by_default() {
        let dirs = Dirs {
            input: PathBuf::from("in"),
            output: PathBuf::from("out"),
            temp: PathBuf::from("tmp"),
        };
        let node = LoadImage::default();
        assert!(node.resolve(&dirs, "../secret.png").is_err());
        assert!(node.resolve(&dirs, "/etc/passwd").is_err());
        assert_eq!(
            node.resolve(&dirs, "a.png [output]").expect("annotated"),
            PathBuf::from("out/a.png")
        );
        let permissive = LoadImage::new(IoConfig {
            allow_absolute_paths: true,
            ..IoConfig::default()
        });
        assert_eq!(
            permissive.resolve(&dirs, "/abs/a.png").expect("allowed"),
            PathBuf::from("/abs/a.png")
        );
    }

    /// The editor's list (the input folder's images, read when the catalogue is rendered) offers files;
    /// it does not limit what a graph may name: a subfolder path and an `[output]` file validate too.
    #[test]
    fn the_image_combo_lists_input_images_and_accepts_any_existing_relative_path() {
        let root = tempfile::tempdir().expect("tempdir");
        let dirs = Dirs {
            input: root.path().join("in"),
            output: root.path().join("out"),
            temp: root.path().join("tmp"),
        };
        for dir in [dirs.input.join("sub"), dirs.output.clone()] {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        for path in [
            dirs.input.join("cat.png"),
            dirs.input.join("dog.JPG"),
            dirs.input.join("readme.txt"),
            dirs.input.join("sub/deep.png"),
            dirs.output.join("made.png"),
        ] {
            std::fs::write(path, b"x").expect("write");
        }
        let registry = omnigen_engine::Registry::new();
        super::super::register(&registry, IoConfig::default());
        let info = registry.object_info(&dirs);
        assert_eq!(
            info["LoadImage"]["input"]["required"]["image"][0],
            serde_json::json!(["cat.png", "dog.JPG"])
        );
        assert_eq!(
            info["LoadImage"]["input"]["required"]["image"][1]["image_upload"],
            true
        );

        let dirs = Arc::new(dirs);
        let check = |name: &str| {
            let graph = serde_json::json!({
                "1": {"class_type": "LoadImage", "inputs": {"image": name}},
                "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
            });
            let graph = omnigen_engine::Graph::from_json(graph).expect("graph");
            omnigen_engine::validate::validate_graph(&graph, &registry, None, &dirs)
        };
        for ok in ["cat.png", "sub/deep.png", "made.png [output]"] {
            if let Err(report) = check(ok) {
                panic!("{ok}: {}", report.to_json());
            }
        }
        let text = check("missing.png")
            .expect_err("missing")
            .to_json()
            .to_string();
        assert!(
            text.contains("custom_validation_failed") && text.contains("missing.png"),
            "{text}"
        );
    }
}
