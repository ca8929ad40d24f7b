//! Per-call store state: the host imports (log, progress), the memory limiter, and the epoch
//! callback that enforces the wall-clock limit and cancellation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use wasmtime::{ResourceLimiter, Store, UpdateDeadline};

use crate::bindings::v0_1::omnigen::plugin::{host, types};
use crate::limits::Limits;
use crate::text;

/// A log line a plugin wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Severity.
    pub level: LogLevel,
    /// Message: truncated to the plugin's limit, control characters escaped.
    pub message: String,
}

/// Severity of a plugin log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Finest detail.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal information.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// Called with progress in `[0, 1]`; returns `false` to ask the node to stop.
pub type ProgressFn = Arc<dyn Fn(f32) -> bool + Send + Sync>;

/// A flag the host sets to stop a running call (cooperatively through `progress`, and by
/// interrupting the wasm at the next epoch tick otherwise). It may also follow an outside
/// signal, such as the engine's cancellation token.
#[derive(Clone, Default)]
pub struct CancelFlag {
    own: Arc<AtomicBool>,
    linked: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

impl std::fmt::Debug for CancelFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelFlag")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl CancelFlag {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }
    /// A flag that is also set whenever `outside` returns true.
    pub fn linked(outside: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        CancelFlag {
            own: Arc::default(),
            linked: Some(Arc::new(outside)),
        }
    }
    /// Asks the call to stop.
    pub fn cancel(&self) {
        self.own.store(true, Ordering::SeqCst);
    }
    /// Whether the call was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.own.load(Ordering::SeqCst) || self.linked.as_ref().is_some_and(|f| f())
    }
}

/// Why the host stopped a call; travels inside the wasmtime error so it can be classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HostStop {
    #[error("wall-clock limit reached")]
    Timeout,
    #[error("cancelled by the host")]
    Cancelled,
    #[error("memory limit reached")]
    OutOfMemory,
    #[error("log flood")]
    LogFlood,
}

/// The data of one call's store.
pub struct RunState {
    limits: Limits,
    memory_used: u64,
    log: Vec<LogLine>,
    log_bytes: usize,
    log_calls: u64,
    dropped_logs: u64,
    progress: Option<ProgressFn>,
    cancel: CancelFlag,
    started: Instant,
    plugin: Arc<str>,
}

impl RunState {
    fn new(
        plugin: Arc<str>,
        limits: Limits,
        progress: Option<ProgressFn>,
        cancel: CancelFlag,
    ) -> Self {
        RunState {
            limits,
            memory_used: 0,
            log: Vec::new(),
            log_bytes: 0,
            log_calls: 0,
            dropped_logs: 0,
            progress,
            cancel,
            started: Instant::now(),
            plugin,
        }
    }

    /// The log lines kept so far.
    pub fn log_lines(&self) -> &[LogLine] {
        &self.log
    }

    /// Log lines dropped because of the per-call cap.
    pub fn dropped_logs(&self) -> u64 {
        self.dropped_logs
    }

    pub(crate) fn take_log(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.log)
    }
}

/// Creates a store for one call: limits installed, deadline armed *before* instantiation
/// (a new store's epoch deadline is 0, which would interrupt instantiation itself).
pub(crate) fn new_store(
    engine: &wasmtime::Engine,
    plugin: Arc<str>,
    limits: Limits,
    progress: Option<ProgressFn>,
    cancel: CancelFlag,
) -> Store<RunState> {
    let copy_budget = usize::try_from(limits.copy_budget_bytes()).unwrap_or(usize::MAX);
    let mut store = Store::new(engine, RunState::new(plugin, limits, progress, cancel));
    store.limiter(|s: &mut RunState| s as &mut dyn ResourceLimiter);
    // What one result or one `log` call may copy out of the plugin: set from the image limit, so
    // the largest legal image passes and a bigger result is reported as this limit.
    store.set_hostcall_fuel(copy_budget);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|ctx| {
        let state = ctx.data();
        if state.cancel.is_cancelled() {
            return Err(HostStop::Cancelled.into());
        }
        if state.started.elapsed() >= state.limits.timeout {
            return Err(HostStop::Timeout.into());
        }
        Ok(UpdateDeadline::Continue(1))
    });
    store
}

impl ResourceLimiter for RunState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grow = desired.saturating_sub(current) as u64;
        let total = self.memory_used.saturating_add(grow);
        if total > self.limits.memory_bytes {
            return Err(HostStop::OutOfMemory.into());
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

impl types::Host for RunState {}

impl host::Host for RunState {
    fn log(&mut self, level: host::LogLevel, message: String) -> wasmtime::Result<()> {
        self.log_calls += 1;
        if self.log_calls > self.limits.log_flood_calls {
            return Err(HostStop::LogFlood.into());
        }
        if self.log.len() >= self.limits.max_log_messages
            || self.log_bytes >= self.limits.max_log_bytes
        {
            self.dropped_logs += 1;
            return Ok(());
        }
        let level = match level {
            host::LogLevel::Trace => LogLevel::Trace,
            host::LogLevel::Debug => LogLevel::Debug,
            host::LogLevel::Info => LogLevel::Info,
            host::LogLevel::Warn => LogLevel::Warn,
            host::LogLevel::Error => LogLevel::Error,
        };
        // A fresh, right-sized copy: the plugin's (possibly huge) string is freed right here.
        let room = self.limits.max_log_bytes - self.log_bytes;
        let message = text::one_line(&message, self.limits.max_log_message_bytes.min(room));
        self.log_bytes += message.len();
        match level {
            LogLevel::Error => tracing::warn!(plugin = %self.plugin, "{message}"),
            LogLevel::Warn | LogLevel::Info => tracing::info!(plugin = %self.plugin, "{message}"),
            LogLevel::Debug | LogLevel::Trace => {
                tracing::debug!(plugin = %self.plugin, "{message}")
            }
        }
        self.log.push(LogLine { level, message });
        Ok(())
    }

    fn progress(&mut self, fraction: f32) -> wasmtime::Result<bool> {
        if self.cancel.is_cancelled() {
            return Ok(false);
        }
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let go_on = match &self.progress {
            Some(report) => report(fraction),
            None => true,
        };
        if !go_on {
            self.cancel.cancel();
        }
        Ok(go_on)
    }
}
