//! Errors of loading a plugin and of running one of its nodes. Every message names the plugin
//! (and the node, for runs).

use std::path::PathBuf;
use std::time::Duration;

/// Why a plugin could not be loaded. The previous version of the plugin, if any, stays in use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// The manifest is malformed.
    #[error("plugin manifest {}: {message}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The component's hash differs from the manifest's.
    #[error("plugin `{plugin}`: {wasm} has sha256 {actual}, but the manifest says {expected}")]
    HashMismatch {
        /// Plugin name.
        plugin: String,
        /// Component file.
        wasm: String,
        /// Hash in the manifest.
        expected: String,
        /// Hash of the file.
        actual: String,
    },
    /// The component is not valid, does not compile, or does not match the interface.
    #[error("plugin `{plugin}`: {message}")]
    Invalid {
        /// Plugin name.
        plugin: String,
        /// What is wrong.
        message: String,
    },
}

/// How a node run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunFailure {
    /// An input given to the node does not fit its declaration (checked before the call).
    InvalidInput(String),
    /// A parameter is out of range or of the wrong type (checked before the call).
    InvalidParams(String),
    /// The call ran past its wall-clock limit.
    Timeout(Duration),
    /// The run was cancelled by the host.
    Cancelled,
    /// The plugin tried to grow its memory past the limit.
    OutOfMemory(u64),
    /// The plugin overflowed its stack (deep recursion).
    StackOverflow,
    /// The plugin called an import the sandbox does not provide (filesystem, network, …).
    Forbidden(String),
    /// The plugin called the log import more often than allowed.
    LogFlood(u64),
    /// One crossing from the plugin to the host (the call's result, or one log message) held
    /// more bytes than the copy budget.
    CopyBudget(u64),
    /// The plugin trapped (panic, `unreachable`, bad memory access, …).
    Crashed(String),
    /// The plugin returned values that do not match its declared outputs.
    InvalidOutput(String),
    /// The plugin reported an error itself.
    Reported(String),
    /// Every instance slot is in use.
    Busy,
    /// The host could not set up the call (should not happen).
    Host(String),
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunFailure::InvalidInput(m) => write!(f, "invalid input: {m}"),
            RunFailure::InvalidParams(m) => write!(f, "invalid parameters: {m}"),
            RunFailure::Timeout(t) => write!(f, "timed out after {} ms (the plugin's wall-clock limit)", t.as_millis()),
            RunFailure::Cancelled => write!(f, "cancelled"),
            RunFailure::OutOfMemory(limit) => write!(f, "ran out of memory (limit {} MiB)", limit >> 20),
            RunFailure::StackOverflow => write!(f, "stack overflow (too deep recursion)"),
            RunFailure::Forbidden(import) => write!(
                f,
                "called `{import}`, which the sandbox does not provide (plugins get no filesystem, network, environment, clock or randomness)"
            ),
            RunFailure::LogFlood(n) => write!(f, "stopped after {n} log calls (log flood)"),
            RunFailure::CopyBudget(limit) => write!(
                f,
                "tried to copy more than {} MiB to the host in one go (the copy budget: the largest legal image plus {} MiB)",
                limit >> 20,
                crate::limits::COPY_SLACK_BYTES >> 20
            ),
            RunFailure::Crashed(m) => write!(f, "crashed: {m}"),
            RunFailure::InvalidOutput(m) => write!(f, "returned invalid output: {m}"),
            RunFailure::Reported(m) => write!(f, "{m}"),
            RunFailure::Busy => write!(f, "too many plugin calls at once; try again"),
            RunFailure::Host(m) => write!(f, "host error: {m}"),
        }
    }
}

/// A failed node run, naming the plugin and node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunError {
    /// Plugin name.
    pub plugin: String,
    /// Node id inside the plugin.
    pub node: String,
    /// What went wrong.
    pub failure: RunFailure,
    /// The last messages the plugin logged before failing (bounded).
    pub log_tail: Vec<String>,
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "plugin `{}` node `{}`: {}",
            self.plugin, self.node, self.failure
        )?;
        // A crash says little by itself; the plugin's last words (a panic message) say why.
        if matches!(self.failure, RunFailure::Crashed(_)) {
            if let Some(last) = self.log_tail.last() {
                write!(f, " (last log: {last})")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for RunError {}
