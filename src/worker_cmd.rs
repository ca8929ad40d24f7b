//! `omnigen worker`: runs prompts that `omnigen serve --queue nats://…` hands out, with the same
//! catalogue `run` and `serve` build. See docs/scale-out.md.

use anyhow::Context;
use omnigen_server::{Dirs, WorkerConfig};

use crate::catalogue::{self, io_config};
use crate::cli::WorkerArgs;
use crate::outcome::Failure;

/// Works until Ctrl-C (a prompt running then is redelivered to another worker).
pub async fn run(args: WorkerArgs) -> Result<(), Failure> {
    let mut catalogue =
        catalogue::build(&args.catalogue, io_config(Some(&args.dirs))).map_err(Failure::Usage)?;
    catalogue
        .plugins
        .watch(std::sync::Arc::clone(&catalogue.registry))
        .map_err(Failure::Usage)?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("worker-{}", std::process::id()));
    let config = WorkerConfig {
        settings: args.nats.settings(&args.queue),
        name: name.clone(),
        dirs: Dirs {
            input: args.dirs.input_dir.clone(),
            output: args.dirs.output_dir.clone(),
            temp: args.dirs.temp_dir.clone(),
        },
    };
    eprintln!(
        "worker {name}: {} node types, taking prompts from {} (Ctrl-C to stop)",
        catalogue.registry.len(),
        args.queue
    );
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    omnigen_server::run_worker(config, std::sync::Arc::clone(&catalogue.registry), stop)
        .await
        .context("the worker stopped")
        .map_err(Failure::Usage)?;
    Ok(())
}
