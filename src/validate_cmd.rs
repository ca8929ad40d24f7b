//! `omnigen validate`: check a graph against the catalogue without running anything.

use std::sync::Arc;

use omnigen_engine::validate;
use serde_json::json;

use crate::catalogue::{self, io_config};
use crate::cli::ValidateArgs;
use crate::graph_file::load_request;
use crate::outcome::Failure;
use crate::session;
use crate::terminal_text;

/// Validates; prints ComfyUI's error JSON with `--json`, a readable report otherwise.
pub fn run(args: ValidateArgs) -> Result<(), Failure> {
    let catalogue =
        catalogue::build(&args.catalogue, io_config(Some(&args.dirs))).map_err(Failure::Usage)?;
    let registry = &catalogue.registry;
    let request = load_request(&args.graph, &args.overrides, registry)
        .map_err(|e| session::load_failure(e, args.json))?;
    let dirs = Arc::new(session::dirs(&args.dirs));
    match validate(&request, registry, &dirs) {
        Err(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                eprintln!("{}: invalid", shown(&args.graph));
                eprintln!("{}", terminal_text::text(&report.to_text()));
            }
            Err(Failure::InvalidGraph)
        }
        Ok(validated) => {
            if args.json {
                // ComfyUI's HTTP-200 answer also carries the errors of outputs that were dropped.
                println!("{}", json!({"node_errors": validated.node_errors_json()}));
            } else {
                let outputs: Vec<&str> = validated.outputs.iter().map(|id| id.as_str()).collect();
                println!(
                    "{}: valid ({} node(s) will run; output node(s): {})",
                    shown(&args.graph),
                    validated.nodes.len(),
                    terminal_text::field(&outputs.join(", "))
                );
                for (id, errors) in &validated.node_errors {
                    for e in &errors.errors {
                        println!(
                            "  warning: node {} ({}) is skipped: {}: {}",
                            terminal_text::field(id.as_str()),
                            terminal_text::field(&errors.class_type),
                            terminal_text::text(&e.message),
                            terminal_text::text(&e.details)
                        );
                    }
                }
            }
            Ok(())
        }
    }
}

fn shown(path: &std::path::Path) -> String {
    terminal_text::field(&path.display().to_string())
}
