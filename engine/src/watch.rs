//! Watching a graph file (or a folder of them) and re-running it on every save.
//!
//! [`GraphWatcher::spawn`] watches the file's parent folder (so editors that save by writing a temporary
//! file and renaming it over the original are seen), debounces bursts of events, skips saves that did not
//! change the content, and re-parses and re-validates. A broken save is reported and the last good graph
//! kept. Each [`WatchEvent::Changed`] carries the instant the first file event of its burst arrived, so the
//! latency from the write to `execution_start` is measurable ([`drive`] reports it).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::execute::{Executor, RunOptions, RunReport};
use crate::graph::{ParseError, PromptRequest};
use crate::node::Dirs;
use crate::registry::Registry;
use crate::validate::{validate, ValidatedPrompt, ValidationReport};

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
    /// The prompt failed validation (ComfyUI's error JSON via [`ValidationReport::to_json`]).
    #[error("{}", .0.to_text())]
    Validation(Box<ValidationReport>),
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
        let request = match PromptRequest::parse(&text) {
            Ok(r) => r,
            Err(e) => return self.reject(path, WatchProblem::Parse(e)),
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
    },
    /// A save was rejected (the last good graph stays; it is not re-run).
    Rejected {
        /// The file.
        path: PathBuf,
        /// Why.
        problem: WatchProblem,
    },
    /// A graph file disappeared.
    Removed {
        /// The file.
        path: PathBuf,
    },
    /// The watcher reported an error.
    WatcherError(String),
}

/// Runs the executor on every valid change until the watcher's channel closes. When several saves queue
/// up, only the newest per file runs; a save of the file whose graph is running interrupts that run (its
/// finished nodes stay cached), so the newest graph starts as soon as possible. `options` makes the run
/// options for each run (event sink, cancellation); `on_outcome` hears about every event.
pub async fn drive(
    executor: &Executor,
    events: &mut mpsc::UnboundedReceiver<WatchEvent>,
    mut options: impl FnMut(&Path) -> RunOptions,
    mut on_outcome: impl FnMut(WatchOutcome),
) {
    let mut pending: VecDeque<WatchEvent> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match events.recv().await {
                Some(ev) => pending.push_back(ev),
                None => return,
            }
        }
        while let Ok(more) = events.try_recv() {
            pending.push_back(more);
        }
        let batch: Vec<WatchEvent> = pending.drain(..).collect();
        // Keep only the newest change per file; report everything else in order.
        let mut newest: HashMap<PathBuf, usize> = HashMap::new();
        for (i, ev) in batch.iter().enumerate() {
            if let WatchEvent::Changed { path, .. } = ev {
                newest.insert(path.clone(), i);
            }
        }
        for (i, ev) in batch.into_iter().enumerate() {
            match ev {
                WatchEvent::Changed {
                    path,
                    request,
                    validated,
                    detected_at,
                } => {
                    if newest.get(&path) != Some(&i) {
                        continue;
                    }
                    let mut opts = options(&path);
                    let superseded = opts.cancel.child();
                    opts.cancel = superseded.clone();
                    let run = executor.run_validated(&request, (*validated).clone(), opts);
                    tokio::pin!(run);
                    // Keep listening while the graph runs: a newer save of the same file stops it.
                    let report = loop {
                        tokio::select! {
                            report = &mut run => break report,
                            ev = events.recv() => match ev {
                                Some(ev) => {
                                    if matches!(&ev, WatchEvent::Changed { path: p, .. } if *p == path) {
                                        superseded.cancel();
                                    }
                                    pending.push_back(ev);
                                }
                                None => break (&mut run).await,
                            },
                        }
                    };
                    let latency = report.started_at.saturating_duration_since(detected_at);
                    on_outcome(WatchOutcome::Ran {
                        path,
                        report: Box::new(report),
                        latency,
                    });
                }
                WatchEvent::Invalid { path, problem, .. } => {
                    on_outcome(WatchOutcome::Rejected { path, problem })
                }
                WatchEvent::Removed { path } => on_outcome(WatchOutcome::Removed { path }),
                WatchEvent::Error(e) => on_outcome(WatchOutcome::WatcherError(e)),
            }
        }
    }
}
