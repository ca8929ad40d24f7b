//! How a command ends: the documented exit codes and the error kinds that map onto them.

use std::process::ExitCode;

/// Exit code: everything worked.
pub const EXIT_OK: u8 = 0;
/// Exit code: the graph was valid but a node failed while running (or another runtime error).
pub const EXIT_EXECUTION_FAILED: u8 = 1;
/// Exit code: bad command line (unknown flag, unreadable file, bad `--set`). clap uses 2 as well.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the graph is not a valid prompt (bad JSON, unknown node type, failed validation).
pub const EXIT_INVALID_GRAPH: u8 = 3;
/// Exit code: interrupted by Ctrl-C (128 + SIGINT, the shell convention).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Why a command did not succeed. The message has already been printed unless noted.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad arguments or unreadable input files (message not yet printed).
    #[error("{0:#}")]
    Usage(anyhow::Error),
    /// The graph failed to parse or validate (already reported).
    #[error("graph is invalid")]
    InvalidGraph,
    /// A node failed while running (already reported).
    #[error("execution failed")]
    ExecutionFailed,
    /// A runtime error outside any node, e.g. the output directory cannot be created (message not
    /// yet printed).
    #[error("{0:#}")]
    Runtime(anyhow::Error),
    /// Ctrl-C (already reported).
    #[error("interrupted")]
    Interrupted,
}

impl Failure {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => EXIT_USAGE,
            Failure::InvalidGraph => EXIT_INVALID_GRAPH,
            Failure::ExecutionFailed | Failure::Runtime(_) => EXIT_EXECUTION_FAILED,
            Failure::Interrupted => EXIT_INTERRUPTED,
        }
    }

    /// Whether the message still has to be printed.
    pub fn needs_printing(&self) -> bool {
        matches!(self, Failure::Usage(_) | Failure::Runtime(_))
    }
}

/// Turns a command's result into the process exit code, printing what is left to print.
pub fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(failure) => {
            if failure.needs_printing() {
                // May quote a plugin's or a file's text.
                eprintln!(
                    "error: {}",
                    crate::terminal_text::text(&failure.to_string())
                );
            }
            ExitCode::from(failure.exit_code())
        }
    }
}
