//! Resource limits for one plugin call, and the host-wide configuration they are drawn from.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The smallest memory budget granted: a Rust guest starts with about 1.1 MiB of linear memory.
pub const MIN_MEMORY_BYTES: u64 = 16 << 20;

/// What a call may copy out besides its largest legal image: names, text and JSON values, the
/// result's own structure (see [`Limits::copy_budget_bytes`]).
pub const COPY_SLACK_BYTES: u64 = 16 << 20;

/// Bytes per pixel of the widest image format (RGBA).
const MAX_BYTES_PER_PIXEL: u64 = 4;

/// Limits applied to every call of one plugin. Defaults are safe for image work on a desktop.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Linear-memory budget of one call (all memories of the instance together).
    pub memory_bytes: u64,
    /// Wall-clock limit of one call, instantiation included.
    pub timeout: Duration,
    /// Log messages kept per call; further messages are counted and dropped.
    pub max_log_messages: usize,
    /// Longest kept log message in bytes; longer ones are truncated.
    pub max_log_message_bytes: usize,
    /// Bytes of log text kept per call, all messages together; further messages are dropped.
    pub max_log_bytes: usize,
    /// Calls to the log import after which the call is stopped as a log flood.
    pub log_flood_calls: u64,
    /// Largest text or JSON value a plugin may return, in bytes.
    pub max_text_bytes: usize,
    /// Largest image or mask a plugin may receive or return, in pixels.
    pub max_output_pixels: u64,
}

impl Limits {
    /// The most bytes one crossing from the plugin to the host may copy: a call's result, or the
    /// arguments of one `log` call. It is wasmtime's per-call "hostcall fuel", derived from the
    /// image limit so that the largest legal image (RGBA, [`Limits::max_output_pixels`]) fits,
    /// plus [`COPY_SLACK_BYTES`] for everything else.
    pub fn copy_budget_bytes(&self) -> u64 {
        self.max_output_pixels
            .saturating_mul(MAX_BYTES_PER_PIXEL)
            .saturating_add(COPY_SLACK_BYTES)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 512 << 20,
            timeout: Duration::from_secs(30),
            max_log_messages: 200,
            max_log_message_bytes: 4096,
            max_log_bytes: 64 << 10,
            log_flood_calls: 10_000,
            max_text_bytes: 1 << 20,
            max_output_pixels: 64 << 20,
        }
    }
}

/// What a plugin's manifest may ask for, within the host's caps ([`PluginConfig`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitRequest {
    /// Memory budget per call in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Wall-clock limit per call in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// Host-wide plugin configuration.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// Limits for plugins whose manifest asks for nothing.
    pub default_limits: Limits,
    /// The most memory a manifest may ask for (also the pooling allocator's slot size).
    pub max_memory_bytes: u64,
    /// The longest timeout a manifest may ask for.
    pub max_timeout: Duration,
    /// Where compiled components are cached (by content hash); `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Plugin calls that may run at the same time (pool slots).
    pub max_concurrent_calls: u32,
    /// Largest component file loaded; larger ones are refused before they are read.
    pub max_wasm_bytes: u64,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            default_limits: Limits::default(),
            max_memory_bytes: 2 << 30,
            max_timeout: Duration::from_secs(600),
            cache_dir: None,
            max_concurrent_calls: 16,
            max_wasm_bytes: 64 << 20,
        }
    }
}

impl PluginConfig {
    /// How many plugins load at the same time: a plugin whose `describe()` hangs then costs one
    /// timeout, not one per plugin after it. Leaves half the pool slots to running graphs.
    pub fn concurrent_loads(&self) -> usize {
        (self.max_concurrent_calls / 2).clamp(1, 8) as usize
    }

    /// The limits for a plugin that asks for `request`, clamped to this configuration's caps.
    pub fn limits_for(&self, request: &LimitRequest) -> Limits {
        let mut limits = self.default_limits.clone();
        if let Some(mib) = request.memory_mib {
            limits.memory_bytes = mib.saturating_mul(1 << 20);
        }
        if let Some(ms) = request.timeout_ms {
            limits.timeout = Duration::from_millis(ms);
        }
        limits.memory_bytes = limits
            .memory_bytes
            .clamp(MIN_MEMORY_BYTES, self.max_memory_bytes);
        limits.timeout = limits
            .timeout
            .clamp(Duration::from_millis(10), self.max_timeout);
        limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_clamped_to_the_host_caps() {
        let config = PluginConfig::default();
        let huge = LimitRequest {
            memory_mib: Some(u64::MAX),
            timeout_ms: Some(u64::MAX),
        };
        let limits = config.limits_for(&huge);
        assert_eq!(limits.memory_bytes, config.max_memory_bytes);
        assert_eq!(limits.timeout, config.max_timeout);

        let tiny = LimitRequest {
            memory_mib: Some(0),
            timeout_ms: Some(0),
        };
        let limits = config.limits_for(&tiny);
        assert_eq!(limits.memory_bytes, MIN_MEMORY_BYTES);
        assert_eq!(limits.timeout, Duration::from_millis(10));

        let none = config.limits_for(&LimitRequest::default());
        assert_eq!(none, config.default_limits);
    }
}
