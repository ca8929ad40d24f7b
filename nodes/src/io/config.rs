//! Settings the image IO nodes take from whoever registers them (the CLI's flags).

use super::decode::DecodeLimits;

/// How the IO nodes treat user-supplied paths and image sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoConfig {
    /// Whether `LoadImage` may read an absolute path outside the input directory. Off by default:
    /// a graph from elsewhere must not read arbitrary files.
    pub allow_absolute_paths: bool,
    /// Decoding limits (largest accepted width/height).
    pub decode_limits: DecodeLimits,
}
