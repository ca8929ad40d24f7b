//! `omnigen convert`: print any graph file (UI workflow, API graph, `POST /prompt` body, PNG) as the
//! API-format prompt the engine runs.

use crate::catalogue::{self, io_config};
use crate::cli::ConvertArgs;
use crate::graph_file::{api_document, read_document};
use crate::outcome::Failure;
use crate::session;

/// Prints the API graph, pretty-printed, on stdout.
pub fn run(args: ConvertArgs) -> Result<(), Failure> {
    let catalogue = catalogue::build(&args.catalogue, io_config(None)).map_err(Failure::Usage)?;
    let loaded = read_document(&args.graph)
        .and_then(|raw| api_document(raw, &catalogue.registry))
        .map_err(|e| session::load_failure(e.at(&args.graph), false))?;
    // A body (or a converted workflow) carries the graph in `prompt`; a bare graph is the graph.
    let graph = match loaded.get("prompt") {
        Some(prompt) if prompt.is_object() && prompt.get("class_type").is_none() => prompt,
        _ => &loaded,
    };
    let text = serde_json::to_string_pretty(graph)
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot print the graph: {e}")))?;
    println!("{text}");
    Ok(())
}
