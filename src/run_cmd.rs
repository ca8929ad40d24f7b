//! `omnigen run`: validate and execute a graph once.

use std::sync::Arc;

use omnigen_engine::{Executor, ExecutorConfig, RunOptions, RunReport, RunStatus};

use crate::catalogue::{self, io_config};
use crate::cli::{EventOutput, RunArgs};
use crate::events_jsonl::JsonlWriter;
use crate::graph_file::load_request;
use crate::interrupt::Interrupt;
use crate::outcome::Failure;
use crate::progress::ProgressView;
use crate::reporter::SharedReporter;
use crate::session;
use crate::terminal_text;

/// Runs the graph; see [`crate::outcome`] for the exit codes.
pub async fn run(args: RunArgs, interrupt: Interrupt) -> Result<(), Failure> {
    let catalogue =
        catalogue::build(&args.catalogue, io_config(Some(&args.dirs))).map_err(Failure::Usage)?;
    let registry = &catalogue.registry;
    let request = load_request(&args.graph, &args.overrides, registry)
        .map_err(|e| session::load_failure(e, false))?;
    let jsonl = args
        .events
        .as_ref()
        .map(JsonlWriter::open)
        .transpose()
        .map_err(Failure::Usage)?;
    let dirs = session::dirs(&args.dirs);
    let executor = Executor::new(
        Arc::clone(registry),
        ExecutorConfig {
            dirs: dirs.clone(),
            ..ExecutorConfig::default()
        },
    );
    let reporter = SharedReporter::new(ProgressView::new(args.quiet), jsonl);
    reporter
        .lock()
        .view
        .set_graph(session::class_types(&request));

    let options = RunOptions::new(reporter.sink()).cancel(interrupt.token_for_run());
    let report = match executor.run(&request, options).await {
        Ok(report) => report,
        Err(validation) => {
            eprintln!(
                "error: {}: {}",
                terminal_text::field(&args.graph.display().to_string()),
                terminal_text::text(&validation.to_text())
            );
            return Err(Failure::InvalidGraph);
        }
    };
    let mut reporter = reporter.lock();
    reporter.view.summary(&report);
    print_written(&report, &dirs, args.events == Some(EventOutput::Stdout));
    outcome_of(&report)
}

/// Lists the files the run saved: on stdout (one path per line, for scripts) unless stdout carries
/// the event stream, then on stderr.
pub fn print_written(report: &RunReport, dirs: &omnigen_engine::Dirs, stdout_taken: bool) {
    for path in session::written_files(report, dirs) {
        // File names come from nodes: one line each, whatever they contain.
        let path = terminal_text::field(&path.display().to_string());
        if stdout_taken {
            eprintln!("wrote {path}");
        } else {
            println!("{path}");
        }
    }
}

/// Maps how a run ended onto the command's outcome, printing what went wrong.
pub fn outcome_of(report: &RunReport) -> Result<(), Failure> {
    match &report.status {
        RunStatus::Success => Ok(()),
        RunStatus::Failed(err) => {
            eprintln!(
                "error: node {} ({}) failed: {} [{}]",
                terminal_text::field(&err.node_id),
                terminal_text::field(&err.node_type),
                terminal_text::text(&err.exception_message),
                terminal_text::field(&err.exception_type)
            );
            for line in &err.traceback {
                eprintln!("  {}", terminal_text::text(line));
            }
            Err(Failure::ExecutionFailed)
        }
        RunStatus::Interrupted { node_id } => {
            let at = node_id
                .as_ref()
                .map(|id| format!(" at node {}", terminal_text::field(id.as_str())))
                .unwrap_or_default();
            eprintln!("interrupted{at}; outputs already written are kept");
            Err(Failure::Interrupted)
        }
    }
}
