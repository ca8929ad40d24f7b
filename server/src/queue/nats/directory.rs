//! The front's list of live workers: each [`Announcement`] kept until its own `ttl_ms` passes without
//! a newer one (a dead worker disappears by itself), or until the worker says it is leaving.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::protocol::Announcement;

/// Live workers by id.
#[derive(Debug, Default)]
pub struct Directory {
    workers: Mutex<HashMap<String, (Announcement, Instant)>>,
}

impl Directory {
    /// Records an announcement heard at `now` (a leaving worker is removed).
    pub fn note(&self, announcement: Announcement, now: Instant) {
        let mut workers = self.lock();
        if announcement.leaving {
            workers.remove(&announcement.id);
        } else {
            workers.insert(announcement.id.clone(), (announcement, now));
        }
    }

    /// The workers heard from within their TTL at `now`, by name then id; forgets the others.
    pub fn live(&self, now: Instant) -> Vec<Announcement> {
        let mut workers = self.lock();
        workers.retain(|_, (a, heard)| {
            now.saturating_duration_since(*heard) <= Duration::from_millis(a.ttl_ms)
        });
        let mut live: Vec<Announcement> = workers.values().map(|(a, _)| a.clone()).collect();
        live.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        live
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Announcement, Instant)>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announcement(id: &str, ttl_ms: u64) -> Announcement {
        Announcement {
            id: id.into(),
            name: id.into(),
            device: "cpu".into(),
            ram_free: None,
            ram_total: None,
            vram_free: None,
            models: vec![],
            plugins: vec![],
            running: None,
            every_ms: ttl_ms / 3,
            ttl_ms,
            leaving: false,
        }
    }

    #[test]
    fn a_silent_worker_expires_and_a_leaving_one_goes_at_once() {
        let directory = Directory::default();
        let t0 = Instant::now();
        directory.note(announcement("a", 3000), t0);
        directory.note(announcement("b", 9000), t0);
        let names = |at| {
            directory
                .live(at)
                .into_iter()
                .map(|a| a.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(t0 + Duration::from_secs(2)), ["a", "b"]);
        assert_eq!(names(t0 + Duration::from_secs(4)), ["b"]);
        let mut leaving = announcement("b", 9000);
        leaving.leaving = true;
        directory.note(leaving, t0 + Duration::from_secs(5));
        assert!(names(t0 + Duration::from_secs(5)).is_empty());
    }
}
