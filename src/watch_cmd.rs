//! `omnigen watch`: re-run a graph on every save, re-executing only what changed.
//!
//! The loop is the engine's [`drive_with`] (its cancellation rule: a save of the graph being run cancels
//! and restarts it; a change of another watched graph waits its turn). This module only supplies the
//! [`WatchHooks`]: `--set` overrides before each run, the progress view and event stream, Ctrl-C, and the
//! messages. One executor lives for the whole session, so its cache makes a re-run execute only the nodes
//! whose inputs changed. Replacing a plugin's files reloads it into the registry; the engine's watcher
//! sees the registry change and re-runs the graphs.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use omnigen_engine::{
    drive_with, DriveEnd, Executor, ExecutorConfig, GraphWatcher, PromptRequest, Registry,
    RunOptions, RunStatus, WatchConfig, WatchHooks, WatchOutcome, WatchedGraph,
};

use crate::catalogue::{self, io_config};
use crate::cli::{EventOutput, WatchArgs};
use crate::events_jsonl::JsonlWriter;
use crate::graph_file::apply_to_document;
use crate::interrupt::Interrupt;
use crate::outcome::Failure;
use crate::overrides::Override;
use crate::progress::ProgressView;
use crate::reporter::SharedReporter;
use crate::run_cmd::{outcome_of, print_written};
use crate::session;
use crate::terminal_text;

/// Watches until Ctrl-C (exit code 130) or until the watcher fails.
pub async fn run(args: WatchArgs, interrupt: Interrupt) -> Result<(), Failure> {
    let mut catalogue =
        catalogue::build(&args.catalogue, io_config(Some(&args.dirs))).map_err(Failure::Usage)?;
    // Replacing a plugin's .wasm reloads it; the graph watcher then re-runs what used it.
    catalogue
        .plugins
        .watch(Arc::clone(&catalogue.registry))
        .map_err(Failure::Usage)?;
    let registry = &catalogue.registry;
    let jsonl = args
        .events
        .as_ref()
        .map(JsonlWriter::open)
        .transpose()
        .map_err(Failure::Usage)?;
    let dirs = session::dirs(&args.dirs);
    let config = WatchConfig {
        debounce: Duration::from_millis(args.debounce_ms),
        dirs: Arc::new(dirs.clone()),
    };
    let (_watcher, mut changes) = GraphWatcher::spawn(&args.target, Arc::clone(registry), config)
        .map_err(|e| Failure::Usage(e.into()))?;
    let executor = Executor::new(
        Arc::clone(registry),
        ExecutorConfig {
            dirs,
            ..ExecutorConfig::default()
        },
    );
    let reporter = SharedReporter::new(ProgressView::new(args.quiet), jsonl);
    reporter.lock().view.line(&format!(
        "watching {} (Ctrl-C to stop)",
        terminal_text::field(&args.target.display().to_string())
    ));
    let mut hooks = CliHooks {
        overrides: &args.overrides,
        stdout_taken: args.events == Some(EventOutput::Stdout),
        executor: &executor,
        reporter,
        interrupt: interrupt.clone(),
        ended: None,
    };
    let end = drive_with(&executor, &mut changes, &mut hooks, interrupt.pressed()).await;
    match end {
        DriveEnd::Stopped => {
            hooks.log("stopped watching");
            Err(Failure::Interrupted)
        }
        DriveEnd::Halted => hooks.ended.unwrap_or(Err(Failure::Interrupted)),
        DriveEnd::WatcherClosed => Err(Failure::Runtime(anyhow::anyhow!(
            "the file watcher stopped"
        ))),
    }
}

/// What the CLI does around the engine's watch loop.
struct CliHooks<'a> {
    overrides: &'a [Override],
    /// Whether stdout carries the event stream (then written files are listed on stderr).
    stdout_taken: bool,
    executor: &'a Executor,
    reporter: SharedReporter,
    interrupt: Interrupt,
    /// How the session ends when a hook breaks the loop (a run stopped by Ctrl-C).
    ended: Option<Result<(), Failure>>,
}

impl CliHooks<'_> {
    fn log(&self, text: &str) {
        self.reporter.lock().view.line(&format!("[watch] {text}"));
    }

    fn registry(&self) -> &Registry {
        self.executor.registry()
    }

    /// Applies `--set` to a freshly saved graph and validates it again; `None` (after reporting) when
    /// the overrides no longer fit the graph.
    fn with_overrides(&self, path: &Path, graph: WatchedGraph) -> Option<WatchedGraph> {
        if self.overrides.is_empty() {
            return Some(graph);
        }
        let file = shown_path(path);
        let mut raw = graph.request.raw().clone();
        if let Err(e) = apply_to_document(&mut raw, self.overrides, self.registry()) {
            self.log(&format!("{file}: {}", terminal_text::text(&e.to_string())));
            return None;
        }
        let request = match PromptRequest::from_json(raw) {
            Ok(request) => request,
            Err(e) => {
                self.log(&format!("{file}: {}", terminal_text::text(&e.to_string())));
                return None;
            }
        };
        match self.executor.validate(&request) {
            Ok(validated) => Some(WatchedGraph {
                request: Arc::new(request),
                validated: Arc::new(validated),
            }),
            Err(report) => {
                self.log(&format!(
                    "{file}: invalid with --set:\n{}",
                    terminal_text::text(&report.to_text())
                ));
                None
            }
        }
    }
}

impl WatchHooks for CliHooks<'_> {
    fn prepare(&mut self, path: &Path, graph: WatchedGraph) -> Option<WatchedGraph> {
        let graph = self.with_overrides(path, graph)?;
        self.reporter
            .lock()
            .view
            .set_graph(session::class_types(&graph.request));
        Some(graph)
    }

    fn run_options(&mut self, _path: &Path) -> RunOptions {
        RunOptions::new(self.reporter.sink()).cancel(self.interrupt.token_for_run())
    }

    fn on_outcome(&mut self, outcome: WatchOutcome) -> ControlFlow<()> {
        match outcome {
            WatchOutcome::Ran {
                path,
                report,
                latency,
                superseded,
            } => {
                self.log(&format!(
                    "{}: file change -> execution start in {:.1} ms",
                    shown_path(&path),
                    latency.as_secs_f64() * 1000.0
                ));
                self.reporter.lock().view.summary(&report);
                print_written(&report, self.executor.dirs(), self.stdout_taken);
                match report.status {
                    RunStatus::Interrupted { .. } if superseded && !self.interrupt.is_pressed() => {
                        self.log("run cancelled by a newer save; starting over");
                    }
                    RunStatus::Interrupted { .. } => {
                        // Ctrl-C during the run: report it and end the session.
                        self.ended = Some(outcome_of(&report));
                        return ControlFlow::Break(());
                    }
                    RunStatus::Failed(_) => {
                        // Report and keep watching: the next save may fix it.
                        let _ = outcome_of(&report);
                    }
                    RunStatus::Success => {}
                }
            }
            WatchOutcome::Rejected {
                path,
                problem,
                kept_last_good,
            } => {
                let keeping = if kept_last_good {
                    "keeping the last good graph"
                } else {
                    "no good version yet"
                };
                self.log(&format!(
                    "{}: save rejected ({keeping}), waiting for the next save:\n{}",
                    shown_path(&path),
                    terminal_text::text(&problem.to_string())
                ));
            }
            WatchOutcome::Removed { path } => self.log(&format!(
                "{} was removed; waiting for it to return",
                shown_path(&path)
            )),
            WatchOutcome::WatcherError(message) => {
                self.log(&format!("watcher error: {}", terminal_text::text(&message)))
            }
        }
        ControlFlow::Continue(())
    }
}

/// A watched file's path for messages (any `*.json` name in a watched folder can appear here).
fn shown_path(path: &Path) -> String {
    terminal_text::field(&path.display().to_string())
}
