//! `omnigen watch`: re-run a graph on every save, re-executing only what changed.
//!
//! The engine's watcher debounces file events, skips saves that change nothing, and re-validates;
//! a broken save is reported and the last good graph stays in force. One executor lives for the
//! whole session, so its cache makes a re-run execute only the nodes whose inputs changed. Each run
//! logs the latency from the file event to `execution_start`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use omnigen_engine::{
    Executor, ExecutorConfig, GraphWatcher, PromptRequest, RunOptions, RunStatus, ValidatedPrompt,
    WatchConfig, WatchEvent,
};

use tokio::sync::mpsc::UnboundedReceiver;

use crate::catalogue::{self, io_config};
use crate::cli::{EventSink, WatchArgs};
use crate::events_jsonl::JsonlWriter;
use crate::graph_file::apply_to_document;
use crate::interrupt::Interrupt;
use crate::outcome::Failure;
use crate::progress::ProgressView;
use crate::reporter::SharedReporter;
use crate::session;

/// Everything one watch session keeps between runs.
struct Session {
    args: WatchArgs,
    executor: Executor,
    reporter: SharedReporter,
    interrupt: Interrupt,
    changes: UnboundedReceiver<WatchEvent>,
    /// Watch events that arrived while a run was going, not yet handled.
    pending: VecDeque<WatchEvent>,
    watcher_closed: bool,
}

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
    let (_watcher, changes) = GraphWatcher::spawn(&args.target, Arc::clone(registry), config)
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
        args.target.display()
    ));
    let mut session = Session {
        args,
        executor,
        reporter,
        interrupt,
        changes,
        pending: VecDeque::new(),
        watcher_closed: false,
    };

    loop {
        if session.pending.is_empty() {
            let next = tokio::select! {
                event = session.changes.recv() => event,
                () = session.interrupt.pressed() => {
                    session.log("stopped watching");
                    return Err(Failure::Interrupted);
                }
            };
            let Some(event) = next else {
                return Err(Failure::Runtime(anyhow::anyhow!(
                    "the file watcher stopped"
                )));
            };
            session.pending.push_back(event);
        }
        // Saves that queued up while a run was going: only the newest per file runs.
        while let Ok(more) = session.changes.try_recv() {
            session.pending.push_back(more);
        }
        let batch: Vec<WatchEvent> = session.pending.drain(..).collect();
        let newest = newest_change_per_file(&batch);
        for (index, event) in batch.into_iter().enumerate() {
            session.handle(event, newest.contains(&index)).await?;
        }
    }
}

/// Indexes (into `batch`) of the last `Changed` event of each file.
fn newest_change_per_file(batch: &[WatchEvent]) -> HashSet<usize> {
    let mut last: HashMap<&Path, usize> = HashMap::new();
    for (index, event) in batch.iter().enumerate() {
        if let WatchEvent::Changed { path, .. } = event {
            last.insert(path.as_path(), index);
        }
    }
    last.into_values().collect()
}

impl Session {
    fn log(&self, text: &str) {
        self.reporter.lock().view.line(&format!("[watch] {text}"));
    }

    async fn handle(&mut self, event: WatchEvent, is_newest: bool) -> Result<(), Failure> {
        match event {
            WatchEvent::Changed {
                path,
                request,
                validated,
                detected_at,
            } if is_newest => {
                let Some((request, validated)) = self.with_overrides(&path, request, validated)
                else {
                    return Ok(());
                };
                self.reporter
                    .lock()
                    .view
                    .set_graph(session::class_types(&request));
                let token = self.interrupt.token_for_run();
                let options = RunOptions::new(self.reporter.sink()).cancel(token.clone());
                let run = self.executor.run_validated(&request, validated, options);
                tokio::pin!(run);
                // A newer save of a graph cancels the run in progress: its result is already stale.
                let mut superseded = false;
                let report = loop {
                    tokio::select! {
                        report = &mut run => break report,
                        event = self.changes.recv(), if !self.watcher_closed => match event {
                            Some(event) => {
                                if matches!(event, WatchEvent::Changed { .. }) {
                                    superseded = true;
                                    token.cancel();
                                }
                                self.pending.push_back(event);
                            }
                            None => self.watcher_closed = true,
                        },
                    }
                };
                let latency = report.started_at.saturating_duration_since(detected_at);
                self.log(&format!(
                    "{}: file change -> execution start in {:.1} ms",
                    path.display(),
                    latency.as_secs_f64() * 1000.0
                ));
                self.reporter.lock().view.summary(&report);
                for file in session::written_files(&report, self.executor.dirs()) {
                    if self.args.events == Some(EventSink::Stdout) {
                        eprintln!("wrote {}", file.display());
                    } else {
                        println!("{}", file.display());
                    }
                }
                match report.status {
                    RunStatus::Interrupted { .. } if superseded && !self.interrupt.is_pressed() => {
                        self.log("run cancelled by a newer save; starting over");
                    }
                    RunStatus::Interrupted { .. } => {
                        crate::run_cmd::outcome_of(&report)?;
                    }
                    RunStatus::Failed(_) => {
                        // Report and keep watching: the next save may fix it.
                        let _ = crate::run_cmd::outcome_of(&report);
                    }
                    RunStatus::Success => {}
                }
            }
            WatchEvent::Changed { .. } => {}
            WatchEvent::Invalid {
                path,
                problem,
                last_good,
            } => {
                let keeping = if last_good.is_some() {
                    "keeping the last good graph"
                } else {
                    "no good version yet"
                };
                self.log(&format!(
                    "{}: save rejected ({keeping}), waiting for the next save:\n{problem}",
                    path.display()
                ));
            }
            WatchEvent::Removed { path } => self.log(&format!(
                "{} was removed; waiting for it to return",
                path.display()
            )),
            WatchEvent::Error(message) => self.log(&format!("watcher error: {message}")),
        }
        Ok(())
    }

    /// Applies `--set` to a freshly saved graph and re-validates; `None` (after reporting) when
    /// the overrides no longer fit the graph.
    fn with_overrides(
        &self,
        path: &Path,
        request: Arc<PromptRequest>,
        validated: Arc<ValidatedPrompt>,
    ) -> Option<(PromptRequest, ValidatedPrompt)> {
        if self.args.overrides.is_empty() {
            return Some(((*request).clone(), (*validated).clone()));
        }
        let mut raw = request.raw().clone();
        let registry = self.executor.registry();
        if let Err(e) = apply_to_document(&mut raw, &self.args.overrides, registry) {
            self.log(&format!("{}: {e}", path.display()));
            return None;
        }
        let request = match PromptRequest::from_json(raw) {
            Ok(request) => request,
            Err(e) => {
                self.log(&format!("{}: {e}", path.display()));
                return None;
            }
        };
        match self.executor.validate(&request) {
            Ok(validated) => Some((request, validated)),
            Err(report) => {
                self.log(&format!(
                    "{}: invalid with --set:\n{}",
                    path.display(),
                    report.to_text()
                ));
                None
            }
        }
    }
}
