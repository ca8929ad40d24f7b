//! The SQLite queue: one table of jobs whose `state` column is the truth. WAL mode, so a crash of the
//! process never loses a committed change (`synchronous = NORMAL`: a power loss may roll back the last
//! commits, which at worst runs a prompt again). The file is locked to one process.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use omnigen_engine::now_ms;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::{json, Value as Json};

use super::{
    HistoryLimits, HistoryPage, Job, JobPage, JobQuery, JobResult, JobSort, JobState, NewJob,
    Priority, Queue, QueueError, QueueResult, Recovery,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    number      REAL NOT NULL,
    state       TEXT NOT NULL,
    prompt      TEXT NOT NULL,
    extra_data  TEXT NOT NULL,
    outputs     TEXT NOT NULL,
    client_id   TEXT,
    targets     TEXT,
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0,
    ui_outputs  TEXT NOT NULL DEFAULT '{}',
    messages    TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, number, seq);
CREATE INDEX IF NOT EXISTS jobs_by_finish ON jobs (finished_at, seq);
";

const COLUMNS: &str =
    "id, number, state, prompt, extra_data, outputs, client_id, targets, created_at, \
                       started_at, finished_at, attempts, ui_outputs, messages";

/// States that count as history (what `/history` lists). Cancelled jobs are kept for `/jobs` only.
const HISTORY_STATES: &str = "('completed', 'failed', 'interrupted')";

/// How many times a job may be claimed: once, plus one re-queue after a crash.
const MAX_ATTEMPTS: u32 = 2;

/// A queue stored in one SQLite file.
pub struct SqliteQueue {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteQueue").finish_non_exhaustive()
    }
}

impl SqliteQueue {
    /// Opens (or creates) the queue database at `path`.
    pub fn open(path: &Path) -> QueueResult<Self> {
        let open_error = |e: rusqlite::Error| QueueError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let conn = Connection::open(path).map_err(open_error)?;
        // One process per database: a second server on the same data dir would take the first one's
        // running prompt for a crashed one and run it again. The exclusive lock is held until the
        // connection closes, and the kernel drops it when a process dies, so a crash never blocks
        // the restart. The busy timeout lets a server restarted in the same process wait for the
        // previous one to let go.
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_error)?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(open_error)?;
        let locked = conn
            .pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;"));
        if let Err(e) = locked {
            return Err(match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                    QueueError::Open {
                        path: path.display().to_string(),
                        reason: "another server is using it (one `omnigen serve` per data dir)"
                            .into(),
                    }
                }
                _ => open_error(e),
            });
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_error)?;
        conn.execute_batch(SCHEMA).map_err(open_error)?;
        Ok(SqliteQueue {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll back).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn select(&self, filter: &str, args: &[&dyn rusqlite::ToSql]) -> QueueResult<Vec<Job>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM jobs {filter}"))?;
        let rows = stmt.query_map(args, read_row)?;
        let mut jobs = Vec::new();
        for row in rows {
            jobs.push(row??);
        }
        Ok(jobs)
    }
}

type RowResult = Result<Job, QueueError>;

fn read_row(row: &Row<'_>) -> rusqlite::Result<RowResult> {
    let id: String = row.get(0)?;
    let state: String = row.get(2)?;
    let texts: [Option<String>; 5] = [
        Some(row.get(3)?),
        Some(row.get(4)?),
        Some(row.get(5)?),
        row.get(7)?,
        Some(row.get(12)?),
    ];
    let messages: String = row.get(13)?;
    let number: f64 = row.get(1)?;
    let client_id: Option<String> = row.get(6)?;
    let created_at: i64 = row.get(8)?;
    let started_at: Option<i64> = row.get(9)?;
    let finished_at: Option<i64> = row.get(10)?;
    let attempts: i64 = row.get(11)?;
    Ok(build_job(
        id,
        number,
        &state,
        texts,
        &messages,
        client_id,
        [Some(created_at), started_at, finished_at],
        attempts,
    ))
}

#[allow(clippy::too_many_arguments)]
fn build_job(
    id: String,
    number: f64,
    state: &str,
    texts: [Option<String>; 5],
    messages: &str,
    client_id: Option<String>,
    times: [Option<i64>; 3],
    attempts: i64,
) -> RowResult {
    let corrupt = |problem: String| QueueError::Corrupt {
        id: id.clone(),
        problem,
    };
    let parse = |what: &str, text: &str| -> Result<Json, QueueError> {
        serde_json::from_str(text).map_err(|e| corrupt(format!("{what}: {e}")))
    };
    let state =
        JobState::parse(state).ok_or_else(|| corrupt(format!("unknown state {state:?}")))?;
    let [prompt, extra_data, outputs, targets, ui_outputs] = texts;
    let prompt = parse("prompt", prompt.as_deref().unwrap_or("null"))?;
    let extra_data = parse("extra_data", extra_data.as_deref().unwrap_or("{}"))?;
    let outputs: Vec<String> = serde_json::from_str(outputs.as_deref().unwrap_or("[]"))
        .map_err(|e| corrupt(format!("outputs: {e}")))?;
    let targets: Option<Vec<String>> = match targets {
        Some(t) => Some(serde_json::from_str(&t).map_err(|e| corrupt(format!("targets: {e}")))?),
        None => None,
    };
    let result = JobResult {
        outputs: parse("ui_outputs", ui_outputs.as_deref().unwrap_or("{}"))?,
        messages: parse("messages", messages)?,
    };
    let time = |t: Option<i64>| t.map(|t| t.max(0) as u64);
    Ok(Job {
        number,
        state,
        prompt,
        extra_data,
        outputs,
        client_id,
        targets,
        created_at: time(times[0]).unwrap_or(0),
        started_at: time(times[1]),
        finished_at: time(times[2]),
        attempts: attempts.clamp(0, i64::from(u32::MAX)) as u32,
        result,
        id,
    })
}

fn ms(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

impl Queue for SqliteQueue {
    fn recover(&self) -> QueueResult<Recovery> {
        let running = self.select("WHERE state = 'running' ORDER BY seq", &[])?;
        let mut recovery = Recovery::default();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for job in running {
            let mut messages = match job.result.messages {
                Json::Array(m) => m,
                _ => Vec::new(),
            };
            let requeue = job.attempts < MAX_ATTEMPTS;
            messages.push(json!(["execution_interrupted", {
                "prompt_id": job.id,
                "reason": "the server stopped while this prompt ran",
                "requeued": requeue,
                "timestamp": now_ms(),
            }]));
            let messages = Json::Array(messages).to_string();
            if requeue {
                tx.execute(
                    "UPDATE jobs SET state = 'pending', messages = ?2 WHERE id = ?1",
                    params![job.id, messages],
                )?;
                recovery.requeued.push(job.id);
            } else {
                tx.execute(
                    "UPDATE jobs SET state = 'interrupted', messages = ?2, finished_at = ?3 WHERE id = ?1",
                    params![job.id, messages, ms(now_ms())],
                )?;
                recovery.interrupted.push(job.id);
            }
        }
        tx.commit()?;
        Ok(recovery)
    }

    fn enqueue(&self, job: NewJob) -> QueueResult<f64> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists: Option<i64> = tx
            .query_row("SELECT seq FROM jobs WHERE id = ?1", [&job.id], |r| {
                r.get(0)
            })
            .optional()?;
        if exists.is_some() {
            return Err(QueueError::Duplicate(job.id));
        }
        let targets = job.targets.as_ref().map(|t| json!(t).to_string());
        tx.execute(
            "INSERT INTO jobs (id, number, state, prompt, extra_data, outputs, client_id, targets, created_at)
             VALUES (?1, 0, 'pending', ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                job.id,
                job.prompt.to_string(),
                job.extra_data.to_string(),
                json!(job.outputs).to_string(),
                job.client_id,
                targets,
                ms(now_ms()),
            ],
        )?;
        let seq = tx.last_insert_rowid() as f64;
        let number = match job.priority {
            Priority::Back => seq,
            Priority::Front => -seq,
            Priority::Number(n) => n,
        };
        tx.execute(
            "UPDATE jobs SET number = ?2 WHERE id = ?1",
            params![job.id, number],
        )?;
        tx.commit()?;
        Ok(number)
    }

    fn delete_pending(&self, ids: &[String]) -> QueueResult<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE state = 'pending' AND id IN ({})",
            placeholders(ids.len())
        );
        let now = ms(now_ms());
        let mut args: Vec<&dyn rusqlite::ToSql> = vec![&now];
        args.extend(ids.iter().map(|i| i as &dyn rusqlite::ToSql));
        Ok(self.conn().execute(&sql, args.as_slice())?)
    }

    fn clear_pending(&self) -> QueueResult<usize> {
        Ok(self.conn().execute(
            "UPDATE jobs SET state = 'cancelled', finished_at = ?1 WHERE state = 'pending'",
            [ms(now_ms())],
        )?)
    }

    fn claim_next(&self) -> QueueResult<Option<Job>> {
        let next = self.select("WHERE state = 'pending' ORDER BY number, seq LIMIT 1", &[])?;
        let Some(mut job) = next.into_iter().next() else {
            return Ok(None);
        };
        let now = now_ms();
        let changed = self.conn().execute(
            "UPDATE jobs SET state = 'running', started_at = ?2, attempts = attempts + 1
             WHERE id = ?1 AND state = 'pending'",
            params![job.id, ms(now)],
        )?;
        if changed == 0 {
            // Deleted between the two statements: try the next one.
            return self.claim_next();
        }
        job.state = JobState::Running;
        job.started_at = Some(now);
        job.attempts += 1;
        Ok(Some(job))
    }

    fn claim(&self, id: &str) -> QueueResult<Option<Job>> {
        let changed = self.conn().execute(
            "UPDATE jobs SET state = 'running', started_at = ?2, attempts = attempts + 1
             WHERE id = ?1 AND state IN ('pending', 'running')",
            params![id, ms(now_ms())],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        self.job(id)
    }

    fn release(&self, id: &str) -> QueueResult<bool> {
        let changed = self.conn().execute(
            "UPDATE jobs SET state = 'pending', started_at = NULL WHERE id = ?1 AND state = 'running'",
            [id],
        )?;
        Ok(changed > 0)
    }

    fn finish(&self, id: &str, state: JobState, result: &JobResult) -> QueueResult<()> {
        debug_assert!(state.is_final());
        let conn = self.conn();
        // Keep the messages recorded before this run (a crash re-queue) in front of the new ones.
        let before: Option<String> = conn
            .query_row("SELECT messages FROM jobs WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        let mut messages: Vec<Json> = before
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        if let Json::Array(new) = &result.messages {
            messages.extend(new.iter().cloned());
        }
        conn.execute(
            "UPDATE jobs SET state = ?2, finished_at = ?3, ui_outputs = ?4, messages = ?5 WHERE id = ?1",
            params![
                id,
                state.as_str(),
                ms(now_ms()),
                result.outputs.to_string(),
                Json::Array(messages).to_string()
            ],
        )?;
        Ok(())
    }

    fn pending(&self) -> QueueResult<Vec<Job>> {
        self.select("WHERE state = 'pending' ORDER BY number, seq", &[])
    }

    fn running(&self) -> QueueResult<Vec<Job>> {
        self.select("WHERE state = 'running' ORDER BY seq", &[])
    }

    fn remaining(&self) -> QueueResult<usize> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM jobs WHERE state IN ('pending', 'running')",
            [],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as usize)
    }

    fn job(&self, id: &str) -> QueueResult<Option<Job>> {
        Ok(self.select("WHERE id = ?1", &[&id])?.into_iter().next())
    }

    fn history(&self, page: HistoryPage) -> QueueResult<Vec<Job>> {
        let total: i64 = self.conn().query_row(
            &format!("SELECT COUNT(*) FROM jobs WHERE state IN {HISTORY_STATES}"),
            [],
            |r| r.get(0),
        )?;
        let total = total.max(0) as usize;
        // ComfyUI: max_items alone gives the newest N; an offset counts from the oldest.
        let offset = match (page.offset, page.max_items) {
            (Some(o), _) => o,
            (None, Some(n)) => total.saturating_sub(n),
            (None, None) => 0,
        };
        let limit = page
            .max_items
            .map_or(-1, |n| n.min(i64::MAX as usize) as i64);
        let offset = offset.min(i64::MAX as usize) as i64;
        self.select(
            &format!(
                "WHERE state IN {HISTORY_STATES} ORDER BY finished_at, seq LIMIT ?1 OFFSET ?2"
            ),
            &[&limit, &offset],
        )
    }

    fn delete_history(&self, ids: &[String]) -> QueueResult<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "DELETE FROM jobs WHERE state IN {HISTORY_STATES} AND id IN ({})",
            placeholders(ids.len())
        );
        let args: Vec<&dyn rusqlite::ToSql> =
            ids.iter().map(|i| i as &dyn rusqlite::ToSql).collect();
        Ok(self.conn().execute(&sql, args.as_slice())?)
    }

    fn clear_history(&self) -> QueueResult<usize> {
        Ok(self.conn().execute(
            &format!("DELETE FROM jobs WHERE state IN {HISTORY_STATES}"),
            [],
        )?)
    }

    fn prune(&self, limits: HistoryLimits, now_ms: u64) -> QueueResult<usize> {
        let cutoff = ms(now_ms.saturating_sub(limits.max_age_ms));
        let keep = i64::try_from(limits.max_entries).unwrap_or(i64::MAX);
        let conn = self.conn();
        let old = conn.execute(
            "DELETE FROM jobs WHERE state NOT IN ('pending', 'running') AND finished_at < ?1",
            [cutoff],
        )?;
        let over = conn.execute(
            "DELETE FROM jobs WHERE seq IN (
                SELECT seq FROM jobs WHERE state NOT IN ('pending', 'running')
                ORDER BY finished_at DESC, seq DESC LIMIT -1 OFFSET ?1)",
            [keep],
        )?;
        Ok(old + over)
    }

    fn list_jobs(&self, query: &JobQuery) -> QueueResult<JobPage> {
        if query.states.is_empty() {
            return Ok(JobPage::default());
        }
        let states: Vec<&str> = query.states.iter().map(|s| s.as_str()).collect();
        let mut filter = format!("WHERE state IN ({})", placeholders(states.len()));
        let mut args: Vec<&dyn rusqlite::ToSql> =
            states.iter().map(|s| s as &dyn rusqlite::ToSql).collect();
        if let Some(workflow) = &query.workflow_id {
            filter.push_str(" AND json_extract(extra_data, '$.extra_pnginfo.workflow.id') = ?");
            args.push(workflow);
        }
        let total: i64 = self.conn().query_row(
            &format!("SELECT COUNT(*) FROM jobs {filter}"),
            args.as_slice(),
            |r| r.get(0),
        )?;
        let key = match query.sort {
            JobSort::Created => "created_at",
            JobSort::Duration => "COALESCE(finished_at - started_at, 0)",
        };
        let direction = if query.descending { "DESC" } else { "ASC" };
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        args.push(&limit);
        args.push(&offset);
        let jobs = self.select(
            &format!("{filter} ORDER BY {key} {direction}, seq {direction} LIMIT ? OFFSET ?"),
            args.as_slice(),
        )?;
        Ok(JobPage {
            jobs,
            total: total.max(0) as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_job(id: &str, priority: Priority) -> NewJob {
        NewJob {
            id: id.into(),
            priority,
            prompt: json!({"1": {"class_type": "Const", "inputs": {"value": 12345678901234567890u64}}}),
            extra_data: json!({"client_id": "c1"}),
            outputs: vec!["1".into()],
            client_id: Some("c1".into()),
            targets: None,
        }
    }

    fn ids(jobs: &[Job]) -> Vec<&str> {
        jobs.iter().map(|j| j.id.as_str()).collect()
    }

    fn open(dir: &tempfile::TempDir) -> SqliteQueue {
        SqliteQueue::open(&dir.path().join("queue.sqlite3")).unwrap()
    }

    #[test]
    fn order_follows_number_then_insertion() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(&dir);
        assert_eq!(q.enqueue(new_job("a", Priority::Back)).unwrap(), 1.0);
        assert_eq!(q.enqueue(new_job("b", Priority::Back)).unwrap(), 2.0);
        assert_eq!(q.enqueue(new_job("c", Priority::Front)).unwrap(), -3.0);
        q.enqueue(new_job("d", Priority::Number(1.5))).unwrap();
        assert_eq!(ids(&q.pending().unwrap()), ["c", "a", "d", "b"]);
        assert!(matches!(
            q.enqueue(new_job("a", Priority::Back)),
            Err(QueueError::Duplicate(_))
        ));
        let job = q.claim_next().unwrap().unwrap();
        assert_eq!(job.id, "c");
        assert_eq!(job.state, JobState::Running);
        assert_eq!(job.attempts, 1);
        assert_eq!(ids(&q.running().unwrap()), ["c"]);
        assert_eq!(q.remaining().unwrap(), 4);
        // Big integers survive storage exactly.
        assert_eq!(
            job.prompt["1"]["inputs"]["value"].to_string(),
            "12345678901234567890"
        );
    }

    #[test]
    fn claim_by_id_takes_pending_or_redelivered_jobs_only() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(&dir);
        for id in ["a", "b", "c"] {
            q.enqueue(new_job(id, Priority::Back)).unwrap();
        }
        // Any pending job, not only the next one.
        let b = q.claim("b").unwrap().unwrap();
        assert_eq!((b.state, b.attempts), (JobState::Running, 1));
        // Delivered again after its worker died: still runnable, one more attempt.
        assert_eq!(q.claim("b").unwrap().unwrap().attempts, 2);
        q.finish("b", JobState::Completed, &JobResult::default())
            .unwrap();
        assert_eq!(q.claim("b").unwrap(), None, "finished");
        q.delete_pending(&["c".into()]).unwrap();
        assert_eq!(q.claim("c").unwrap(), None, "cancelled");
        assert_eq!(q.claim("zz").unwrap(), None, "unknown");
        assert_eq!(ids(&q.pending().unwrap()), ["a"]);
    }

    #[test]
    fn delete_and_clear_cancel_pending_only() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(&dir);
        for id in ["a", "b", "c", "d"] {
            q.enqueue(new_job(id, Priority::Back)).unwrap();
        }
        q.claim_next().unwrap();
        assert_eq!(q.delete_pending(&["a".into(), "b".into()]).unwrap(), 1);
        assert_eq!(ids(&q.pending().unwrap()), ["c", "d"]);
        assert_eq!(q.clear_pending().unwrap(), 2);
        assert!(q.pending().unwrap().is_empty());
        assert_eq!(q.job("b").unwrap().unwrap().state, JobState::Cancelled);
        assert_eq!(q.job("a").unwrap().unwrap().state, JobState::Running);
        // Cancelled jobs are not history.
        assert!(q.history(HistoryPage::default()).unwrap().is_empty());
    }

    #[test]
    fn history_pages_like_comfyui() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(&dir);
        for id in ["a", "b", "c", "d"] {
            q.enqueue(new_job(id, Priority::Back)).unwrap();
            let job = q.claim_next().unwrap().unwrap();
            let result = JobResult {
                outputs: json!({"1": {"value": [id]}}),
                messages: json!([["execution_success", {"prompt_id": id}]]),
            };
            q.finish(&job.id, JobState::Completed, &result).unwrap();
        }
        let all = q.history(HistoryPage::default()).unwrap();
        assert_eq!(ids(&all), ["a", "b", "c", "d"]);
        assert_eq!(all[0].result.outputs["1"]["value"][0], "a");
        let last = q
            .history(HistoryPage {
                max_items: Some(2),
                offset: None,
            })
            .unwrap();
        assert_eq!(ids(&last), ["c", "d"]);
        let page = q
            .history(HistoryPage {
                max_items: Some(2),
                offset: Some(1),
            })
            .unwrap();
        assert_eq!(ids(&page), ["b", "c"]);
        assert_eq!(q.delete_history(&["b".into()]).unwrap(), 1);
        assert_eq!(
            ids(&q.history(HistoryPage::default()).unwrap()),
            ["a", "c", "d"]
        );
        assert_eq!(q.clear_history().unwrap(), 3);
        assert!(q.history(HistoryPage::default()).unwrap().is_empty());
    }

    #[test]
    fn list_jobs_filters_sorts_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(&dir);
        for id in ["a", "b", "c"] {
            q.enqueue(new_job(id, Priority::Back)).unwrap();
            let job = q.claim_next().unwrap().unwrap();
            q.finish(&job.id, JobState::Completed, &JobResult::default())
                .unwrap();
        }
        let mut tagged = new_job("w", Priority::Back);
        tagged.extra_data = json!({"extra_pnginfo": {"workflow": {"id": "wf-1"}}});
        q.enqueue(tagged).unwrap();
        q.enqueue(new_job("p", Priority::Back)).unwrap();
        q.delete_pending(&["p".into()]).unwrap();

        let query = |states: &[JobState], descending, offset, limit| JobQuery {
            states: states.to_vec(),
            workflow_id: None,
            sort: JobSort::Created,
            descending,
            offset,
            limit,
        };
        let page = q
            .list_jobs(&query(&[JobState::Completed], true, 0, 2))
            .unwrap();
        assert_eq!(page.total, 3);
        assert_eq!(ids(&page.jobs), ["c", "b"]);
        let page = q
            .list_jobs(&query(&[JobState::Completed], false, 1, 10))
            .unwrap();
        assert_eq!(ids(&page.jobs), ["b", "c"]);
        let page = q
            .list_jobs(&query(
                &[JobState::Pending, JobState::Cancelled],
                false,
                0,
                10,
            ))
            .unwrap();
        assert_eq!(ids(&page.jobs), ["w", "p"]);
        let mut by_workflow = query(&[JobState::Pending, JobState::Completed], true, 0, 10);
        by_workflow.workflow_id = Some("wf-1".into());
        assert_eq!(ids(&q.list_jobs(&by_workflow).unwrap().jobs), ["w"]);
        assert_eq!(q.list_jobs(&query(&[], true, 0, 10)).unwrap().total, 0);
    }

    #[test]
    fn prune_bounds_count_and_age() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(&dir);
        for id in ["a", "b", "c", "d", "e"] {
            q.enqueue(new_job(id, Priority::Back)).unwrap();
            let job = q.claim_next().unwrap().unwrap();
            q.finish(&job.id, JobState::Failed, &JobResult::default())
                .unwrap();
        }
        q.enqueue(new_job("waiting", Priority::Back)).unwrap();
        let limits = HistoryLimits {
            max_entries: 3,
            max_age_ms: u64::MAX,
        };
        assert_eq!(q.prune(limits, now_ms()).unwrap(), 2);
        assert_eq!(
            ids(&q.history(HistoryPage::default()).unwrap()),
            ["c", "d", "e"]
        );
        // Everything finished is older than an hour, an hour from now; pending jobs stay.
        let limits = HistoryLimits {
            max_entries: 100,
            max_age_ms: 3_600_000,
        };
        assert_eq!(q.prune(limits, now_ms() + 2 * 3_600_000).unwrap(), 3);
        assert!(q.history(HistoryPage::default()).unwrap().is_empty());
        assert_eq!(ids(&q.pending().unwrap()), ["waiting"]);
    }

    #[test]
    fn reopen_after_drop_keeps_everything_and_requeues_a_crashed_job_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = open(&dir);
            q.enqueue(new_job("done", Priority::Back)).unwrap();
            let job = q.claim_next().unwrap().unwrap();
            q.finish(&job.id, JobState::Completed, &JobResult::default())
                .unwrap();
            q.enqueue(new_job("crashed", Priority::Back)).unwrap();
            q.enqueue(new_job("waiting", Priority::Back)).unwrap();
            assert_eq!(q.claim_next().unwrap().unwrap().id, "crashed");
            // Dropped with "crashed" running: the process died.
        }
        let q = open(&dir);
        assert_eq!(ids(&q.history(HistoryPage::default()).unwrap()), ["done"]);
        let recovery = q.recover().unwrap();
        assert_eq!(recovery.requeued, ["crashed"]);
        assert!(recovery.interrupted.is_empty());
        assert_eq!(ids(&q.pending().unwrap()), ["crashed", "waiting"]);
        let crashed = q.job("crashed").unwrap().unwrap();
        assert_eq!(crashed.result.messages[0][0], "execution_interrupted");
        assert_eq!(crashed.result.messages[0][1]["requeued"], true);

        // It dies again on its second attempt: recorded interrupted, not re-queued a second time.
        assert_eq!(q.claim_next().unwrap().unwrap().attempts, 2);
        drop(q);
        let q = open(&dir);
        let recovery = q.recover().unwrap();
        assert_eq!(recovery.interrupted, ["crashed"]);
        assert_eq!(ids(&q.pending().unwrap()), ["waiting"]);
        let history = q.history(HistoryPage::default()).unwrap();
        assert_eq!(ids(&history), ["done", "crashed"]);
        assert_eq!(history[1].state, JobState::Interrupted);
        assert_eq!(history[1].result.messages.as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_job_requeued_after_a_crash_is_one_history_entry_with_both_runs_messages() {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = open(&dir);
            q.enqueue(new_job("crashed", Priority::Back)).unwrap();
            q.claim_next().unwrap();
        }
        let q = open(&dir);
        assert_eq!(q.recover().unwrap().requeued, ["crashed"]);
        let job = q.claim_next().unwrap().unwrap();
        assert_eq!((job.id.as_str(), job.attempts), ("crashed", 2));
        let result = JobResult {
            outputs: json!({"1": {"value": ["ok"]}}),
            messages: json!([["execution_success", {"prompt_id": "crashed"}]]),
        };
        q.finish("crashed", JobState::Completed, &result).unwrap();
        let history = q.history(HistoryPage::default()).unwrap();
        assert_eq!(ids(&history), ["crashed"]);
        let kinds: Vec<&str> = history[0]
            .result
            .messages
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m[0].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["execution_interrupted", "execution_success"]);
        assert_eq!(history[0].state, JobState::Completed);
        // Nothing is left to recover.
        drop(q);
        assert_eq!(open(&dir).recover().unwrap(), Recovery::default());
    }

    #[test]
    fn a_second_process_on_the_same_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(&dir);
        first.enqueue(new_job("a", Priority::Back)).unwrap();
        let second = SqliteQueue::open(&dir.path().join("queue.sqlite3"));
        let err = second.expect_err("the second open is refused").to_string();
        assert!(err.contains("another server"), "{err}");
        // The first one is unaffected, and once it closes the file opens again.
        assert_eq!(ids(&first.pending().unwrap()), ["a"]);
        drop(first);
        assert_eq!(ids(&open(&dir).pending().unwrap()), ["a"]);
    }
}
