//! `omnigen`: run ComfyUI-format graphs from the command line. See `docs/cli.md`.
//!
//! This file only wires things: parse arguments, start the runtime, dispatch to a command module,
//! turn the result into an exit code (see [`outcome`]).

mod alloc;
mod catalogue;
mod cli;
mod convert_cmd;
mod demo_cmd;
mod events_jsonl;
mod frontend_cmd;
mod graph_file;
mod interrupt;
mod logging;
mod nodes_cmd;
mod outcome;
mod overrides;
mod plugins;
mod progress;
mod quantize_cmd;
mod reporter;
mod run_cmd;
mod serve_cmd;
mod session;
mod terminal_text;
mod test_nodes;
mod train_cmd;
mod train_vae_cmd;
mod validate_cmd;
mod watch_cmd;
mod worker_cmd;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::interrupt::Interrupt;
use crate::outcome::Failure;

fn main() -> ExitCode {
    // Before any thread starts: images, latents and plugin buffers of a few MiB are reused, not re-faulted.
    alloc::tune_for_large_buffers();
    logging::install();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(outcome::EXIT_EXECUTION_FAILED);
        }
    };
    outcome::finish(runtime.block_on(dispatch(cli.command)))
}

async fn dispatch(command: Command) -> Result<(), Failure> {
    match command {
        Command::Run(args) => run_cmd::run(args, Interrupt::install()).await,
        Command::Validate(args) => validate_cmd::run(args),
        Command::Nodes(args) => nodes_cmd::run(args),
        Command::Watch(args) => watch_cmd::run(args, Interrupt::install()).await,
        Command::Serve(args) => serve_cmd::run(args).await,
        Command::Convert(args) => convert_cmd::run(args),
        Command::Frontend(args) => frontend_cmd::run(args),
        Command::Quantize(args) => quantize_cmd::run(args),
        Command::Train(args) => train_cmd::run(args, Interrupt::install()).await,
        Command::Worker(args) => worker_cmd::run(args).await,
        Command::DemoData(args) => demo_cmd::data(args),
        Command::DemoEval(args) => demo_cmd::eval(args),
        Command::TrainVae(args) => train_vae_cmd::run(args),
    }
}
