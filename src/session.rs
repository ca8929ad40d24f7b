//! What `run`, `validate` and `watch` share: folders, loading the graph, reporting load errors,
//! and listing the files a run saved.

use std::collections::HashMap;
use std::path::PathBuf;

use omnigen_engine::{Dirs, PromptRequest, RunReport};

use crate::cli::DirArgs;
use crate::graph_file::GraphLoadError;
use crate::outcome::Failure;
use crate::terminal_text;

/// The folders handed to nodes.
pub fn dirs(args: &DirArgs) -> Dirs {
    Dirs {
        input: args.input_dir.clone(),
        output: args.output_dir.clone(),
        temp: args.temp_dir.clone(),
    }
}

/// Reports a graph that could not be loaded and classifies the failure: unreadable files and bad
/// `--set` arguments are usage errors; an unparseable or unconvertible graph is an invalid graph. With `json`, a
/// parse error is printed as ComfyUI's error JSON on stdout.
pub fn load_failure(error: GraphLoadError, json: bool) -> Failure {
    match error {
        GraphLoadError::Parse { path, source } => {
            if json {
                println!("{}", source.to_comfy_json());
            } else {
                eprintln!(
                    "error: {}: {}",
                    terminal_text::field(&path.display().to_string()),
                    terminal_text::text(&source.to_string())
                );
            }
            Failure::InvalidGraph
        }
        GraphLoadError::Workflow { .. } | GraphLoadError::Format { .. } => {
            let message = error.to_string();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "error": {"type": "invalid_prompt", "message": "Invalid graph file", "details": message, "extra_info": {}},
                        "node_errors": {}
                    })
                );
            } else {
                eprintln!("error: {}", terminal_text::text(&message));
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

/// The files a run's output nodes saved (executed or cached), resolved against the folders.
pub fn written_files(report: &RunReport, dirs: &Dirs) -> Vec<PathBuf> {
    report
        .saved_files
        .values()
        .flatten()
        .map(|file| file.path_in(dirs))
        .collect()
}
