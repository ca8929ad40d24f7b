//! Watching a graph file (or a folder of them) and re-running it on every save.
//!
//! [`GraphWatcher::spawn`] watches the file's parent folder (so editors that save by writing a temporary
//! file and renaming it over the original are seen), debounces bursts of events, skips saves that did not
//! change the content, and re-parses and re-validates. A broken save is reported and the last good graph
//! kept. Each [`WatchEvent::Changed`] carries the instant the first file event of its burst arrived, so the
//! latency from the write to `execution_start` is measurable ([`drive`] reports it).
//!
//! [`drive_with`] is the one watch loop (the `omnigen watch` command runs it through [`WatchHooks`]);
//! its cancellation rule is documented there.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::execute::{Executor, RunOptions, RunReport};
use crate::graph::{parse_json, ParseError, PromptRequest};
use crate::node::Dirs;
use crate::registry::Registry;
use crate::validate::{validate, ValidatedPrompt, ValidationReport};
use crate::workflow::{into_api_document, WorkflowError};

/// Watcher settings.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Quiet time after the last file event before a burst is processed.
    pub debounce: Duration,
    /// Folders handed to custom validation.
    pub dirs: Arc<Dirs>,
}

/// How often the watcher checks whether the registry changed (node types registered, replaced or removed,
/// e.g. by the plugin host); on a change every watched file is re-validated and, if valid, reported as
/// changed even though its content is the same.
pub const REGISTRY_POLL: Duration = Duration::from_millis(250);

/// Longest a save is held back by a file that keeps being rewritten without a quiet gap.
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(2);

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            debounce: Duration::from_millis(30),
            dirs: Arc::new(Dirs::default()),
        }
    }
}

/// Why a saved graph was rejected.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WatchProblem {
    /// The file could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// The file is not a valid prompt (syntax errors carry line and column).
    #[error("{0}")]
    Parse(ParseError),
    /// The file is an editor workflow (UI format) that cannot be converted to a prompt.
    #[error("{0}")]
    Workflow(WorkflowError),
    /// The prompt failed validation (ComfyUI's error JSON via [`ValidationReport::to_json`]).
    #[error("{}", .0.to_text())]
    Validation(Box<ValidationReport>),
}

/// Reads a watched file the way `omnigen run` reads one: an API graph, a `{"prompt": …}` body, or an
/// editor workflow converted with the catalogue (which then travels in `extra_pnginfo.workflow`).
fn read_request(text: &str, registry: &Registry) -> Result<PromptRequest, WatchProblem> {
    let doc = parse_json(text).map_err(WatchProblem::Parse)?;
    let (_, doc) = into_api_document(doc, registry).map_err(WatchProblem::Workflow)?;
    PromptRequest::from_json(doc).map_err(WatchProblem::Parse)
}

/// What the watcher reports.
#[derive(Debug, Clone)]
pub enum WatchEvent {
    /// A graph file has new, valid content (also sent once per file at start).
    Changed {
        /// The file.
        path: PathBuf,
        /// The parsed request.
        request: Arc<PromptRequest>,
        /// Its validation result.
        validated: Arc<ValidatedPrompt>,
        /// When the first file event of this save arrived (start of the latency measurement).
        detected_at: Instant,
    },
    /// A save was rejected; the last good graph (if any) stays in force.
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        problem: WatchProblem,
        /// The graph still in force.
        last_good: Option<Arc<PromptRequest>>,
    },
    /// A watched graph file disappeared.
    Removed {
        /// The file.
        path: PathBuf,
    },
    /// The file watcher itself reported an error.
    Error(String),
}

/// Errors starting a watcher.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The target does not exist or its folder cannot be watched.
    #[error("cannot watch {path}: {message}")]
    Setup {
        /// What was to be watched.
        path: PathBuf,
        /// Why not.
        message: String,
    },
}

/// A running watcher. Dropping it stops watching and closes the event channel.
pub struct GraphWatcher {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GraphWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum Target {
    File(PathBuf),
    Folder(PathBuf),
}

impl Target {
    fn wants(&self, path: &Path) -> bool {
        match self {
            Target::File(f) => path.file_name() == f.file_name(),
            Target::Folder(_) => path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json")),
        }
    }
}

impl GraphWatcher {
    /// Watches `target` (a graph file, or a folder whose `*.json` files are graphs), validating against
    /// `registry`. Must be called inside a tokio runtime.
    pub fn spawn(
        target: impl Into<PathBuf>,
        registry: Arc<Registry>,
        config: WatchConfig,
    ) -> Result<(GraphWatcher, mpsc::UnboundedReceiver<WatchEvent>), WatchError> {
        let target = target.into();
        let setup = |e: &dyn std::fmt::Display| WatchError::Setup {
            path: target.clone(),
            message: e.to_string(),
        };
        let absolute = std::path::absolute(&target).map_err(|e| setup(&e))?;
        let (kind, folder) = if absolute.is_dir() {
            (Target::Folder(absolute.clone()), absolute.clone())
        } else {
            let parent = absolute
                .parent()
                .filter(|p| p.is_dir())
                .ok_or_else(|| setup(&"its folder does not exist"))?
                .to_path_buf();
            (Target::File(absolute.clone()), parent)
        };

        let (raw_tx, raw_rx) = mpsc::unbounded_channel::<notify::Result<notify::Event>>();
        let mut watcher = notify::recommended_watcher(move |res| {
            let _ = raw_tx.send(res);
        })
        .map_err(|e| setup(&e))?;
        watcher
            .watch(&folder, RecursiveMode::NonRecursive)
            .map_err(|e| setup(&e))?;

        let (tx, rx) = mpsc::unbounded_channel();
        let mut state = WatchState {
            target: kind,
            generation: registry.generation(),
            registry,
            config,
            tx,
            seen: HashMap::new(),
            last_good: HashMap::new(),
        };
        let task = tokio::spawn(async move {
            state.initial_scan();
            state.run(raw_rx).await;
        });
        Ok((
            GraphWatcher {
                _watcher: watcher,
                task,
            },
            rx,
        ))
    }
}

struct WatchState {
    target: Target,
    registry: Arc<Registry>,
    config: WatchConfig,
    tx: mpsc::UnboundedSender<WatchEvent>,
    /// Content hash last processed per file (saves that change nothing are skipped).
    seen: HashMap<PathBuf, [u8; 32]>,
    last_good: HashMap<PathBuf, Arc<PromptRequest>>,
    /// Registry generation the files were last validated against.
    generation: u64,
}

impl WatchState {
    fn initial_scan(&mut self) {
        self.generation = self.registry.generation();
        let now = Instant::now();
        match &self.target {
            Target::File(f) => {
                let f = f.clone();
                self.process(&f, now);
            }
            Target::Folder(dir) => {
                let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                    .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                    .unwrap_or_default();
                files.retain(|p| p.is_file() && self.target.wants(p));
                files.sort();
                for f in files {
                    self.process(&f, now);
                }
            }
        }
    }

    async fn run(&mut self, mut raw: mpsc::UnboundedReceiver<notify::Result<notify::Event>>) {
        loop {
            let first = match tokio::time::timeout(REGISTRY_POLL, raw.recv()).await {
                Ok(ev) => ev,
                Err(_) => {
                    self.recheck_if_catalogue_changed();
                    continue;
                }
            };
            let Some(first) = first else { return };
            let detected_at = Instant::now();
            let mut paths: Vec<PathBuf> = Vec::new();
            if !self.collect(first, &mut paths) {
                // Reads, other files, editors' lock files: nothing to debounce.
                self.recheck_if_catalogue_changed();
                continue;
            }
            // Debounce: keep collecting until the watched files have been quiet for `debounce`. Only
            // events about watched files extend the quiet period (a busy folder must not hold a save
            // back), and a file rewritten without pause is still picked up after `MAX_DEBOUNCE`.
            let hard_deadline = tokio::time::Instant::now() + MAX_DEBOUNCE;
            let mut deadline = tokio::time::Instant::now() + self.config.debounce;
            loop {
                match tokio::time::timeout_at(deadline.min(hard_deadline), raw.recv()).await {
                    Ok(Some(ev)) => {
                        if self.collect(ev, &mut paths) {
                            deadline = tokio::time::Instant::now() + self.config.debounce;
                        }
                    }
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            for p in paths {
                self.process(&p, detected_at);
            }
            // Busy folders may never let the poll timeout fire; check the catalogue here too.
            self.recheck_if_catalogue_changed();
        }
    }

    /// Node types were registered, replaced or removed: validate every known file again, even if its
    /// content is unchanged (a graph that needed a plugin may now be valid, or the reverse).
    fn recheck_if_catalogue_changed(&mut self) {
        let generation = self.registry.generation();
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        let mut files: Vec<PathBuf> = self.seen.keys().cloned().collect();
        files.sort();
        self.seen.clear();
        let now = Instant::now();
        for f in files {
            self.process(&f, now);
        }
    }

    /// Adds the watched files an event touches to `paths`; returns whether it touched any.
    fn collect(&self, ev: notify::Result<notify::Event>, paths: &mut Vec<PathBuf>) -> bool {
        match ev {
            Ok(ev) => {
                if ev.kind.is_access() {
                    return false;
                }
                let mut relevant = false;
                for p in ev.paths {
                    let p = match &self.target {
                        Target::File(f) if self.target.wants(&p) => f.clone(),
                        Target::Folder(_) if self.target.wants(&p) => p,
                        _ => continue,
                    };
                    relevant = true;
                    if !paths.contains(&p) {
                        paths.push(p);
                    }
                }
                relevant
            }
            Err(e) => {
                let _ = self.tx.send(WatchEvent::Error(e.to_string()));
                false
            }
        }
    }

    fn process(&mut self, path: &Path, detected_at: Instant) {
        let text = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.seen.remove(path).is_some() {
                    self.last_good.remove(path);
                    let _ = self.tx.send(WatchEvent::Removed {
                        path: path.to_path_buf(),
                    });
                }
                return;
            }
            Err(e) => {
                self.reject(
                    path,
                    WatchProblem::Io {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    },
                );
                return;
            }
        };
        let hash: [u8; 32] = Sha256::digest(&text).into();
        if self.seen.insert(path.to_path_buf(), hash) == Some(hash) {
            return;
        }
        let text = String::from_utf8_lossy(&text);
        let request = match read_request(&text, &self.registry) {
            Ok(r) => r,
            Err(problem) => return self.reject(path, problem),
        };
        match validate(&request, &self.registry, &self.config.dirs) {
            Ok(validated) => {
                let request = Arc::new(request);
                self.last_good
                    .insert(path.to_path_buf(), Arc::clone(&request));
                let _ = self.tx.send(WatchEvent::Changed {
                    path: path.to_path_buf(),
                    request,
                    validated: Arc::new(validated),
                    detected_at,
                });
            }
            Err(report) => self.reject(path, WatchProblem::Validation(Box::new(report))),
        }
    }

    fn reject(&mut self, path: &Path, problem: WatchProblem) {
        let _ = self.tx.send(WatchEvent::Invalid {
            path: path.to_path_buf(),
            problem,
            last_good: self.last_good.get(path).cloned(),
        });
    }
}

/// What [`drive`] did with one watch event.
#[derive(Debug)]
pub enum WatchOutcome {
    /// The graph ran.
    Ran {
        /// The file.
        path: PathBuf,
        /// The run's report.
        report: Box<RunReport>,
        /// From the first file event of the save to `execution_start`.
        latency: Duration,
        /// A newer save of the same file arrived during the run, and the run was cancelled for it (the
        /// report says `Interrupted` unless it finished first); the newer graph runs next.
        superseded: bool,
    },
    /// A save was rejected (the last good graph stays; it is not re-run).
    Rejected {
        /// The file.
        path: PathBuf,
        /// Why.
        problem: WatchProblem,
        /// Whether an earlier good version of the file exists (it stays in force).
        kept_last_good: bool,
    },
    /// A graph file disappeared.
    Removed {
        /// The file.
        path: PathBuf,
    },
    /// The watcher reported an error.
    WatcherError(String),
}

/// A valid graph about to run: what the watcher parsed and validated, or what [`WatchHooks::prepare`]
/// made of it.
#[derive(Debug, Clone)]
pub struct WatchedGraph {
    /// The request to run.
    pub request: Arc<PromptRequest>,
    /// Its validation result.
    pub validated: Arc<ValidatedPrompt>,
}

/// What a host does around the runs of [`drive_with`]: adjust each graph, make each run's options, and
/// hear every outcome.
pub trait WatchHooks {
    /// Called before a changed graph of `path` runs. Returns the graph to run (e.g. with command-line
    /// overrides applied and validated again), or `None` to skip this save (the hook reports why).
    fn prepare(&mut self, path: &Path, graph: WatchedGraph) -> Option<WatchedGraph> {
        let _ = path;
        Some(graph)
    }

    /// The options of one run of `path`: its event sink, and a cancellation token the host may cancel
    /// (e.g. on Ctrl-C). [`drive_with`] runs under a child of that token, which it cancels on its own
    /// when the run is superseded.
    fn run_options(&mut self, path: &Path) -> RunOptions;

    /// Hears what happened with every watch event, in order. `Break` ends [`drive_with`].
    fn on_outcome(&mut self, outcome: WatchOutcome) -> ControlFlow<()>;
}

/// Why [`drive_with`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveEnd {
    /// The watcher's channel closed (the [`GraphWatcher`] was dropped or failed).
    WatcherClosed,
    /// The `stop` future completed while no run was going.
    Stopped,
    /// [`WatchHooks::on_outcome`] returned `Break`.
    Halted,
}

/// [`drive_with`] for closures: `options` makes the run options of each run, `on_outcome` hears about
/// every event. Returns when the watcher's channel closes.
pub async fn drive(
    executor: &Executor,
    events: &mut mpsc::UnboundedReceiver<WatchEvent>,
    options: impl FnMut(&Path) -> RunOptions,
    on_outcome: impl FnMut(WatchOutcome),
) {
    let mut hooks = ClosureHooks {
        options,
        on_outcome,
    };
    drive_with(executor, events, &mut hooks, std::future::pending()).await;
}

struct ClosureHooks<O, F> {
    options: O,
    on_outcome: F,
}

impl<O: FnMut(&Path) -> RunOptions, F: FnMut(WatchOutcome)> WatchHooks for ClosureHooks<O, F> {
    fn run_options(&mut self, path: &Path) -> RunOptions {
        (self.options)(path)
    }
    fn on_outcome(&mut self, outcome: WatchOutcome) -> ControlFlow<()> {
        (self.on_outcome)(outcome);
        ControlFlow::Continue(())
    }
}

/// The watch loop: runs the executor on every valid change until the watcher's channel closes, `stop`
/// completes while idle, or a hook says `Break`.
///
/// Cancellation rule: a save of the file whose graph is running cancels that run (its result would be
/// stale; finished nodes stay cached, so the restart is cheap) and the new version runs next. A change of
/// another watched file never cancels: it waits in the queue and runs after the current run, so one
/// graph's saves cannot starve the others. When several saves of a file are queued, only the newest runs.
/// Events are handled in arrival order; `stop` is only looked at between runs (a run is stopped through
/// the token of [`WatchHooks::run_options`], so it ends with its `execution_interrupted` event).
pub async fn drive_with(
    executor: &Executor,
    events: &mut mpsc::UnboundedReceiver<WatchEvent>,
    hooks: &mut impl WatchHooks,
    stop: impl Future<Output = ()>,
) -> DriveEnd {
    let mut pending: VecDeque<WatchEvent> = VecDeque::new();
    tokio::pin!(stop);
    loop {
        let event = match pending.pop_front() {
            Some(event) => {
                let stopped = tokio::select! {
                    biased;
                    () = &mut stop => true,
                    () = std::future::ready(()) => false,
                };
                if stopped {
                    return DriveEnd::Stopped;
                }
                event
            }
            None => tokio::select! {
                biased;
                () = &mut stop => return DriveEnd::Stopped,
                event = events.recv() => match event {
                    Some(event) => event,
                    None => return DriveEnd::WatcherClosed,
                },
            },
        };
        while let Ok(more) = events.try_recv() {
            pending.push_back(more);
        }
        let flow = match event {
            WatchEvent::Changed {
                path,
                request,
                validated,
                detected_at,
            } => {
                if pending.iter().any(|later| is_change_of(later, &path)) {
                    continue; // a newer save of this file is queued: run that one instead
                }
                let Some(graph) = hooks.prepare(&path, WatchedGraph { request, validated }) else {
                    continue;
                };
                let (report, superseded) =
                    run_until_superseded(executor, events, hooks, &path, graph, &mut pending).await;
                let latency = report.started_at.saturating_duration_since(detected_at);
                hooks.on_outcome(WatchOutcome::Ran {
                    path,
                    report: Box::new(report),
                    latency,
                    superseded,
                })
            }
            WatchEvent::Invalid {
                path,
                problem,
                last_good,
            } => hooks.on_outcome(WatchOutcome::Rejected {
                path,
                problem,
                kept_last_good: last_good.is_some(),
            }),
            WatchEvent::Removed { path } => hooks.on_outcome(WatchOutcome::Removed { path }),
            WatchEvent::Error(e) => hooks.on_outcome(WatchOutcome::WatcherError(e)),
        };
        if flow.is_break() {
            return DriveEnd::Halted;
        }
    }
}

/// Runs `graph` while still listening to the watcher: events are queued in `pending`, and a newer save
/// of `path` cancels the run. Returns the report and whether it was cancelled that way.
async fn run_until_superseded(
    executor: &Executor,
    events: &mut mpsc::UnboundedReceiver<WatchEvent>,
    hooks: &mut impl WatchHooks,
    path: &Path,
    graph: WatchedGraph,
    pending: &mut VecDeque<WatchEvent>,
) -> (RunReport, bool) {
    let mut options = hooks.run_options(path);
    let superseded = options.cancel.child();
    options.cancel = superseded.clone();
    let run = executor.run_validated(&graph.request, (*graph.validated).clone(), options);
    tokio::pin!(run);
    let mut watcher_open = true;
    let mut cancelled = false;
    let report = loop {
        tokio::select! {
            report = &mut run => break report,
            event = events.recv(), if watcher_open => match event {
                Some(event) => {
                    if is_change_of(&event, path) {
                        superseded.cancel();
                        cancelled = true;
                    }
                    pending.push_back(event);
                }
                None => watcher_open = false,
            },
        }
    };
    (report, cancelled)
}

fn is_change_of(event: &WatchEvent, path: &Path) -> bool {
    matches!(event, WatchEvent::Changed { path: p, .. } if p == path)
}
