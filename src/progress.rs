//! Human-readable progress on standard error: one line per node as it starts, a bar for nodes
//! that report steps, and a closing summary. Bars are drawn only on a terminal; elsewhere (logs,
//! CI, tests) the same information is printed as plain lines.

use std::collections::HashMap;
use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use omnigen_engine::{Event, RunReport, RunStatus};

use crate::terminal_text;

/// Renders events for one or more runs.
pub struct ProgressView {
    multi: MultiProgress,
    interactive: bool,
    quiet: bool,
    /// node id → class_type of the graph being run.
    class_types: HashMap<String, String>,
    bars: HashMap<String, ProgressBar>,
}

impl ProgressView {
    /// A view drawing on stderr; `quiet` suppresses per-node lines and bars.
    pub fn new(quiet: bool) -> Self {
        let interactive = std::io::stderr().is_terminal();
        let target = if interactive && !quiet {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
            interactive,
            quiet,
            class_types: HashMap::new(),
            bars: HashMap::new(),
        }
    }

    /// Sets the node id → class_type map used in messages (call before each run).
    pub fn set_graph(&mut self, class_types: HashMap<String, String>) {
        self.class_types = class_types;
    }

    /// A line above the bars (or on stderr when there are none).
    pub fn line(&self, text: &str) {
        if self.interactive && !self.quiet {
            // println only fails when the draw target is hidden; fall back to stderr then.
            if self.multi.println(text).is_ok() {
                return;
            }
        }
        eprintln!("{text}");
    }

    fn label(&self, node: &str) -> String {
        let id = terminal_text::field(node);
        match self.class_types.get(node) {
            Some(class) => format!("node {id} ({})", terminal_text::field(class)),
            None => format!("node {id}"),
        }
    }

    /// Updates the display for one event.
    pub fn on_event(&mut self, event: &Event) {
        if self.quiet {
            return;
        }
        match event {
            Event::ExecutionCached { nodes, .. } if !nodes.is_empty() => {
                self.line(&format!(
                    "cached: {}",
                    terminal_text::field(&nodes.join(", "))
                ));
            }
            Event::Executing {
                node: Some(node), ..
            } => self.line(&format!("running {}", self.label(node))),
            Event::Progress {
                value, max, node, ..
            } => self.on_progress(node, *value, *max),
            _ => {}
        }
    }

    fn on_progress(&mut self, node: &str, value: u64, max: u64) {
        if !self.interactive {
            return;
        }
        let label = self.label(node);
        let bar = self.bars.entry(node.to_string()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(max));
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed_precise}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label);
            bar
        });
        bar.set_length(max);
        bar.set_position(value);
        if value >= max {
            bar.finish_and_clear();
            self.bars.remove(node);
        }
    }

    /// Clears any bar left over (a run ended early).
    pub fn clear(&mut self) {
        for (_, bar) in self.bars.drain() {
            bar.finish_and_clear();
        }
    }

    /// One line saying how the run went.
    pub fn summary(&mut self, report: &RunReport) {
        self.clear();
        let took = report
            .finished_at
            .saturating_duration_since(report.started_at);
        let status = match &report.status {
            RunStatus::Success => "done".to_string(),
            RunStatus::Failed(err) => format!(
                "failed in node {} ({})",
                terminal_text::field(&err.node_id),
                terminal_text::field(&err.node_type)
            ),
            RunStatus::Interrupted { .. } => "interrupted".to_string(),
        };
        self.line(&format!(
            "{status}: {} node(s) executed, {} cached, {:.2}s",
            report.executed.len(),
            report.cached.len(),
            took.as_secs_f64()
        ));
    }
}
