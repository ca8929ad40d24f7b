//! Diagnostics on stderr through `tracing`: plugin log lines, cache and reload warnings.
//!
//! The level comes from `OMNIGEN_LOG` (an `EnvFilter` directive such as `info` or `omnigen_plugins=debug`);
//! the default, `warn`, shows what a user must act on (a plugin's errors, a corrupt cache entry) without
//! letting a chatty plugin scroll the progress display away. Plugin text is already cleaned to one bounded
//! line by the host, so it is written as is.

use tracing_subscriber::EnvFilter;

/// The variable that sets the log filter.
pub const LOG_ENV: &str = "OMNIGEN_LOG";

/// Installs the stderr subscriber once, before any command runs. A bad `OMNIGEN_LOG` falls back to the
/// default and says so, rather than silencing everything.
pub fn install() {
    let (filter, bad) = match std::env::var(LOG_ENV) {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new("warn"), Some(format!("{spec:?}: {e}"))),
        },
        _ => (EnvFilter::new("warn"), None),
    };
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init()
        .is_ok();
    if let (true, Some(problem)) = (installed, bad) {
        tracing::warn!("ignoring {LOG_ENV} {problem}; logging warnings only");
    }
}
