//! What a node may ask of the host while it runs: logging, progress and cancellation.

use std::sync::Once;

use crate::bindings::omnigen::plugin::host;
use crate::LogLevel;

/// The host's services during one `run` call.
#[derive(Debug, Default)]
pub struct Context {
    _private: (),
}

impl Context {
    pub(crate) fn new() -> Self {
        Context { _private: () }
    }

    /// Logs a message through the host (which truncates long messages and caps their number).
    pub fn log(&self, level: LogLevel, message: &str) {
        host::log(level, message);
    }

    /// Reports progress in `[0, 1]`. Returns `false` when the run was cancelled: the node should
    /// then return [`crate::NodeError::Cancelled`] promptly.
    pub fn progress(&self, fraction: f32) -> bool {
        host::progress(fraction.clamp(0.0, 1.0))
    }

    /// Reports progress and turns a cancellation into an error, for use with `?` in loops.
    pub fn checkpoint(&self, fraction: f32) -> Result<(), crate::NodeError> {
        if self.progress(fraction) {
            Ok(())
        } else {
            Err(crate::NodeError::Cancelled)
        }
    }
}

/// Sends panic messages to the host log instead of stderr (which the sandbox does not provide),
/// so the host can say why a plugin crashed.
pub fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            host::log(LogLevel::Error, &format!("panic: {info}"));
        }));
    });
}
