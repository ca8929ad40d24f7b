//! What `run`, `validate` and `watch` share: folders, loading the graph, reporting load errors,
//! and listing the files a run wrote.

use std::collections::HashMap;
use std::path::PathBuf;

use omnigen_engine::{Dirs, PromptRequest, RunReport};
use serde_json::Value as Json;

use crate::cli::DirArgs;
use crate::graph_file::GraphLoadError;
use crate::outcome::Failure;

/// The folders handed to nodes.
pub fn dirs(args: &DirArgs) -> Dirs {
    Dirs {
        input: args.input_dir.clone(),
        output: args.output_dir.clone(),
        temp: args.temp_dir.clone(),
    }
}

/// Reports a graph that could not be loaded and classifies the failure: unreadable files and bad
/// `--set` arguments are usage errors; an unparseable graph is an invalid graph. With `json`, a
/// parse error is printed as ComfyUI's error JSON on stdout.
pub fn load_failure(error: GraphLoadError, json: bool) -> Failure {
    match error {
        GraphLoadError::Parse { path, source } => {
            if json {
                println!("{}", source.to_comfy_json());
            } else {
                eprintln!("error: {}: {source}", path.display());
            }
            Failure::InvalidGraph
        }
        other => Failure::Usage(other.into()),
    }
}

/// node id → class_type, for messages.
pub fn class_types(request: &PromptRequest) -> HashMap<String, String> {
    request
        .prompt
        .nodes()
        .map(|n| (n.id.as_str().to_string(), n.class_type.clone()))
        .collect()
}

/// The files listed in a run's UI outputs (`{"images":[{filename, subfolder, type}]}`), resolved
/// against the folders.
pub fn written_files(report: &RunReport, dirs: &Dirs) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for ui in report.ui_outputs.values() {
        let Some(Json::Array(images)) = ui.get("images") else {
            continue;
        };
        for image in images {
            let field = |name: &str| image.get(name).and_then(Json::as_str).unwrap_or_default();
            let base = match field("type") {
                "temp" => &dirs.temp,
                "input" => &dirs.input,
                _ => &dirs.output,
            };
            let mut path = base.clone();
            if !field("subfolder").is_empty() {
                path.push(field("subfolder"));
            }
            path.push(field("filename"));
            files.push(path);
        }
    }
    files
}
