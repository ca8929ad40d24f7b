//! Hot reload: watch the plugin directories and reload changed plugins off the execution path.

use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use omnigen_engine::Registry;

use crate::host::{PluginHost, ReloadReport};

/// How long the directory must be quiet before a reload (editors and cargo write in steps).
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// Watches a [`PluginHost`]'s directories; dropping it stops the watch.
pub struct PluginWatcher {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for PluginWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginWatcher").finish_non_exhaustive()
    }
}

impl PluginWatcher {
    /// Starts watching. On every settled change, a background thread reloads the plugins into
    /// `registry` and, if anything changed or failed, calls `on_reload` with the report (for
    /// example to print errors and re-run the graph: the reloaded nodes' cache fingerprints
    /// changed, so exactly they and their dependents run again).
    pub fn start(
        host: Arc<PluginHost>,
        registry: Arc<Registry>,
        on_reload: impl Fn(ReloadReport) + Send + 'static,
    ) -> Result<Self, String> {
        let (tx, rx) = channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
                    let _ = tx.send(());
                }
            })
            .map_err(|e| format!("cannot watch plugin directories: {e}"))?;
        for dir in host.dirs() {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        }
        thread::Builder::new()
            .name("plugin-reload".into())
            .spawn(move || {
                // Ends when the watcher (and with it the sender) is dropped.
                while rx.recv().is_ok() {
                    loop {
                        match rx.recv_timeout(DEBOUNCE) {
                            Ok(()) => continue,
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    let report = host.reload(&registry);
                    if !report.is_empty() {
                        on_reload(report);
                    }
                }
            })
            .map_err(|e| format!("cannot start the reload thread: {e}"))?;
        Ok(PluginWatcher { _watcher: watcher })
    }
}
