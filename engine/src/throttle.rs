//! Progress coalescing: a node reports progress as often as it likes, but at most one `progress`
//! event per [`PROGRESS_INTERVAL`] leaves it, plus always the last one.
//!
//! A tight loop calling `ctx.progress` (a plugin, or a fast built-in node) would otherwise turn every
//! call into an event, a flushed JSON line and a WebSocket frame. Rules, per node:
//! - the first report goes out at once;
//! - a report that completes the node (`value == max`) goes out at once, unless it repeats the last
//!   one sent;
//! - any other report goes out if [`PROGRESS_INTERVAL`] passed since the last event, and is held
//!   back otherwise, replacing the report held before it;
//! - a held-back preview image is never lost while it is the newest: it rides on the next event
//!   that has none;
//! - whatever is still held back when the node's context goes away is sent then, so the last
//!   report always arrives.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::event::{Event, EventSink};
use crate::value::Image;

/// The shortest time between two `progress` events of one node (the final one excepted).
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(50);

/// One progress report of a node.
#[derive(Debug, Clone)]
struct Report {
    value: u64,
    max: u64,
    preview: Option<Arc<Image>>,
}

/// What the throttle remembers between reports.
#[derive(Debug, Default)]
struct State {
    /// When the last event went out, and its `(value, max)`.
    last_sent: Option<(Instant, u64, u64)>,
    /// The newest report not sent yet.
    held: Option<Report>,
}

impl State {
    /// Decides about `report` arriving at `now`: returns what to send now, if anything.
    fn admit(&mut self, now: Instant, mut report: Report) -> Option<Report> {
        if report.preview.is_none() {
            // The newest preview not yet sent travels with the newest report.
            report.preview = self.held.take().and_then(|held| held.preview);
        }
        let due = match self.last_sent {
            None => true,
            Some((at, value, max)) => {
                let is_final = report.max > 0 && report.value >= report.max;
                let repeat = (value, max) == (report.value, report.max);
                (is_final && !repeat) || now.duration_since(at) >= PROGRESS_INTERVAL
            }
        };
        if due {
            self.held = None;
            self.last_sent = Some((now, report.value, report.max));
            Some(report)
        } else {
            let repeat = self
                .last_sent
                .is_some_and(|(_, v, m)| (v, m) == (report.value, report.max));
            // Holding back an exact repeat of what was sent, without a new preview, would only
            // send it twice later.
            if !(repeat && report.preview.is_none()) {
                self.held = Some(report);
            }
            None
        }
    }
}

/// The progress reporter of one node run: coalesces reports into events (see the module docs).
#[derive(Debug)]
pub(crate) struct ProgressThrottle {
    events: EventSink,
    prompt_id: String,
    node_id: String,
    state: Mutex<State>,
}

impl ProgressThrottle {
    /// A throttle sending `progress` events of node `node_id` of prompt `prompt_id` to `events`.
    pub(crate) fn new(events: EventSink, prompt_id: String, node_id: String) -> Self {
        ProgressThrottle {
            events,
            prompt_id,
            node_id,
            state: Mutex::new(State::default()),
        }
    }

    /// Reports progress now; sends an event if the rules allow.
    pub(crate) fn report(&self, value: u64, max: u64, preview: Option<Arc<Image>>) {
        self.report_at(Instant::now(), value, max, preview);
    }

    fn report_at(&self, now: Instant, value: u64, max: u64, preview: Option<Arc<Image>>) {
        let report = Report {
            value,
            max,
            preview,
        };
        let due = self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(now, report);
        // Sent outside the lock: a sink may take its time.
        if let Some(report) = due {
            self.send(report);
        }
    }

    fn send(&self, report: Report) {
        self.events.send(Event::Progress {
            value: report.value,
            max: report.max,
            prompt_id: self.prompt_id.clone(),
            node: self.node_id.clone(),
            preview: report.preview,
        });
    }
}

impl Drop for ProgressThrottle {
    fn drop(&mut self) {
        let held = self
            .state
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .held
            .take();
        if let Some(report) = held {
            self.send(report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Sent = Arc<Mutex<Vec<(u64, u64, bool)>>>;

    fn throttle() -> (ProgressThrottle, Sent) {
        let sent: Sent = Arc::default();
        let sink = {
            let sent = Arc::clone(&sent);
            EventSink::from_fn(move |e| {
                if let Event::Progress {
                    value,
                    max,
                    preview,
                    ..
                } = e
                {
                    sent.lock().unwrap().push((value, max, preview.is_some()));
                }
            })
        };
        (ProgressThrottle::new(sink, "p".into(), "7".into()), sent)
    }

    fn preview() -> Option<Arc<Image>> {
        Some(Arc::new(Image::filled(1, 1, 1, &[0.5, 0.5, 0.5]).unwrap()))
    }

    #[test]
    fn a_flood_becomes_the_first_and_the_last_event() {
        let (t, sent) = throttle();
        let start = Instant::now();
        for i in 0..=100_000u64 {
            t.report_at(start + Duration::from_nanos(i), i, 100_000, None);
        }
        drop(t);
        assert_eq!(
            *sent.lock().unwrap(),
            [(0, 100_000, false), (100_000, 100_000, false)]
        );
    }

    #[test]
    fn one_event_per_interval_and_the_held_back_last_report_on_drop() {
        let (t, sent) = throttle();
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        t.report_at(ms(0), 1, 10, None); // first: sent
        t.report_at(ms(10), 2, 10, None); // held
        t.report_at(ms(49), 3, 10, None); // held, replaces 2
        t.report_at(ms(50), 4, 10, None); // interval passed: sent
        t.report_at(ms(60), 5, 10, None); // held until the end
        assert_eq!(sent.lock().unwrap().len(), 2);
        drop(t);
        assert_eq!(
            *sent.lock().unwrap(),
            [(1, 10, false), (4, 10, false), (5, 10, false)]
        );
    }

    #[test]
    fn the_newest_preview_rides_on_the_next_event() {
        let (t, sent) = throttle();
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        t.report_at(ms(0), 1, 3, None);
        t.report_at(ms(1), 2, 3, preview()); // held back with its preview
        t.report_at(ms(2), 3, 3, None); // final: sent, carrying the preview
        drop(t);
        assert_eq!(*sent.lock().unwrap(), [(1, 3, false), (3, 3, true)]);
    }

    #[test]
    fn a_last_preview_is_sent_when_the_node_ends() {
        let (t, sent) = throttle();
        let start = Instant::now();
        t.report_at(start, 3, 3, None);
        t.report_at(start + Duration::from_millis(1), 3, 3, preview()); // repeat, new preview
        drop(t);
        assert_eq!(*sent.lock().unwrap(), [(3, 3, false), (3, 3, true)]);
    }

    #[test]
    fn repeated_final_reports_are_coalesced() {
        let (t, sent) = throttle();
        let start = Instant::now();
        for i in 0..10_000u64 {
            t.report_at(start + Duration::from_micros(i), 1000, 1000, None);
        }
        drop(t);
        assert_eq!(*sent.lock().unwrap(), [(1000, 1000, false)]);
    }
}
