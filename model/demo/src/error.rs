//! The crate's failures.

use std::fmt;
use std::path::PathBuf;

/// What went wrong, with the file or text involved.
#[derive(Debug)]
pub enum Error {
    /// A prompt that is not a text-to-image prompt of the demo world.
    Prompt(String),
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A picture could not be encoded or decoded.
    Image {
        /// The file.
        path: PathBuf,
        /// Why.
        source: image::ImageError,
    },
    /// Arguments that cannot make a data set.
    Spec(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Prompt(p) => write!(
                f,
                "'{p}' is not a demo text-to-image prompt (like 'a red circle on the left, gray background')"
            ),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Image { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Spec(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Image { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
