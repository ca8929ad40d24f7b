//! Progress coalescing: a node reports progress as often as it likes, but beyond a burst of
//! [`PROGRESS_BURST`] events at most one `progress` event per [`PROGRESS_INTERVAL`] leaves it, plus
//! always the last one.
//!
//! A tight loop calling `ctx.progress` (a plugin, or a fast built-in node) would otherwise turn every
//! call into an event, a flushed JSON line and a WebSocket frame. An ordinary node (a sampler's 50
//! steps, each with its preview) is never thinned: the burst covers a short run, and a node slower
//! than one step per interval earns its credit back as fast as it spends it. Rules, per node (a
//! token bucket):
//! - the first report goes out at once;
//! - a report that completes the node (`value == max`) goes out at once, unless it repeats the last
//!   one sent;
//! - any other report goes out if the node has credit: it starts with [`PROGRESS_BURST`] events and
//!   earns one back per [`PROGRESS_INTERVAL`], up to the burst; otherwise it is held back, replacing
//!   the report held before it;
//! - a held-back preview image is never lost while it is the newest: it rides on the next event
//!   that has none;
//! - whatever is still held back when the node's context goes away is sent then, so the last
//!   report always arrives.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::event::{Event, EventSink};
use crate::value::Image;

/// Once a node's burst is spent, the shortest time between two of its `progress` events (the final
/// one excepted).
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(50);

/// How many `progress` events a node may send back to back before [`PROGRESS_INTERVAL`] applies.
pub const PROGRESS_BURST: u32 = 64;

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
    /// Events the node may still send at once, as of `last_sent` (a fraction is credit being earned).
    credit: f64,
    /// The newest report not sent yet.
    held: Option<Report>,
}

impl State {
    /// Decides about `report` arriving at `now`: returns what to send now, if anything.
    fn admit(&mut self, now: Instant, mut report: Report) -> Option<Report> {
        let repeats_last_sent = self
            .last_sent
            .is_some_and(|(_, v, m)| (v, m) == (report.value, report.max));
        if repeats_last_sent && report.preview.is_none() {
            // Nothing new to say (and what is held back stays held).
            return None;
        }
        if report.preview.is_none() {
            // The newest preview not yet sent travels with the newest report.
            report.preview = self.held.take().and_then(|held| held.preview);
        }
        let burst = f64::from(PROGRESS_BURST);
        let (due, credit) = match self.last_sent {
            None => (true, burst),
            Some((at, value, max)) => {
                let earned = now.duration_since(at).as_secs_f64() / PROGRESS_INTERVAL.as_secs_f64();
                let credit = (self.credit + earned).min(burst);
                let is_final = report.max > 0 && report.value >= report.max;
                // (A repeat reaching here brings a new preview.)
                let repeat = (value, max) == (report.value, report.max);
                ((is_final && !repeat) || credit >= 1.0, credit)
            }
        };
        if due {
            self.held = None;
            self.last_sent = Some((now, report.value, report.max));
            self.credit = (credit - 1.0).max(0.0);
            Some(report)
        } else {
            self.held = Some(report);
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

    /// Spends a fresh throttle's whole burst at `at` (reports `0..PROGRESS_BURST` of 1,000,000).
    fn spend_burst(t: &ProgressThrottle, at: Instant) {
        for i in 0..u64::from(PROGRESS_BURST) {
            t.report_at(at, i, 1_000_000, None);
        }
    }

    #[test]
    fn a_short_run_is_never_thinned() {
        let (t, sent) = throttle();
        let start = Instant::now();
        for i in 1..=50u64 {
            t.report_at(start + Duration::from_micros(i), i, 50, None);
        }
        drop(t);
        let want: Vec<_> = (1..=50u64).map(|i| (i, 50, false)).collect();
        assert_eq!(*sent.lock().unwrap(), want);
    }

    #[test]
    fn a_flood_becomes_the_burst_and_the_last_event() {
        let (t, sent) = throttle();
        let start = Instant::now();
        for i in 0..=100_000u64 {
            t.report_at(start + Duration::from_nanos(i), i, 100_000, None);
        }
        drop(t);
        let sent = sent.lock().unwrap();
        let mut want: Vec<_> = (0..u64::from(PROGRESS_BURST))
            .map(|i| (i, 100_000, false))
            .collect();
        want.push((100_000, 100_000, false));
        assert_eq!(*sent, want);
    }

    #[test]
    fn one_event_per_interval_and_the_held_back_last_report_on_drop() {
        let (t, sent) = throttle();
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        spend_burst(&t, ms(0));
        let burst = PROGRESS_BURST as usize;
        t.report_at(ms(10), 100, 1_000_000, None); // no credit: held
        t.report_at(ms(49), 101, 1_000_000, None); // held, replaces 100
        t.report_at(ms(50), 102, 1_000_000, None); // one interval earned one event: sent
        t.report_at(ms(60), 103, 1_000_000, None); // held until the end
        assert_eq!(sent.lock().unwrap().len(), burst + 1);
        drop(t);
        assert_eq!(
            sent.lock().unwrap()[burst..],
            [(102, 1_000_000, false), (103, 1_000_000, false)]
        );
    }

    #[test]
    fn credit_comes_back_with_time_up_to_the_burst() {
        let (t, sent) = throttle();
        let start = Instant::now();
        spend_burst(&t, start);
        // Ten intervals later, ten reports at once go out and the eleventh waits.
        let later = start + PROGRESS_INTERVAL * 10;
        for i in 0..11u64 {
            t.report_at(later, 1_000 + i, 1_000_000, None);
        }
        assert_eq!(sent.lock().unwrap().len(), PROGRESS_BURST as usize + 10);
        // A long pause refills the burst, never more.
        let much_later = later + PROGRESS_INTERVAL * 10 * PROGRESS_BURST;
        for i in 0..u64::from(PROGRESS_BURST) + 1 {
            t.report_at(much_later, 10_000 + i, 1_000_000, None);
        }
        assert_eq!(sent.lock().unwrap().len(), 2 * PROGRESS_BURST as usize + 10);
    }

    #[test]
    fn the_newest_preview_rides_on_the_next_event() {
        let (t, sent) = throttle();
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        spend_burst(&t, ms(0));
        t.report_at(ms(1), 500, 1_000_000, preview()); // no credit: held back with its preview
        t.report_at(ms(2), 1_000_000, 1_000_000, None); // final: sent, carrying the preview
        drop(t);
        let sent = sent.lock().unwrap();
        assert_eq!(sent.len(), PROGRESS_BURST as usize + 1);
        assert_eq!(sent.last(), Some(&(1_000_000, 1_000_000, true)));
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
