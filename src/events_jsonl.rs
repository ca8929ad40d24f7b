//! `--events`: the engine's event stream as JSON lines, one ComfyUI WebSocket message per line.

use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::Context;
use omnigen_engine::Event;

use crate::cli::EventOutput;

/// Where JSON lines go. Each line is flushed at once so a reader (or a test) sees events live.
pub enum JsonlWriter {
    /// Standard output.
    Stdout,
    /// A file, created (truncated) when the command starts.
    File(BufWriter<File>),
}

impl JsonlWriter {
    /// Opens the output chosen by `--events`.
    pub fn open(output: &EventOutput) -> anyhow::Result<Self> {
        Ok(match output {
            EventOutput::Stdout => JsonlWriter::Stdout,
            EventOutput::File(path) => {
                let file = File::create(path)
                    .with_context(|| format!("cannot create events file {}", path.display()))?;
                JsonlWriter::File(BufWriter::new(file))
            }
        })
    }

    /// Writes one event as a line. A failing sink (closed pipe, full disk) must not stop the run,
    /// so errors are reported once by the caller's next write failing too, and otherwise ignored.
    pub fn write(&mut self, event: &Event) -> std::io::Result<()> {
        let line = event.to_json().to_string();
        match self {
            JsonlWriter::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}")?;
                out.flush()
            }
            JsonlWriter::File(file) => {
                writeln!(file, "{line}")?;
                file.flush()
            }
        }
    }
}
