//! The database's health, shared by every clone of a [`Store`] so that it outlives config
//! reloads (docs/reliability.md, "Database faults"):
//!
//! - whether writes are failing, and why (the daemon reports each write's outcome);
//! - the write backlog: polls taken while the database could not be written, kept in
//!   memory up to a bound and written, oldest first, when it takes writes again;
//! - the recovery of a database file deleted while open. SQLite in WAL mode goes on
//!   writing an unlinked file without complaint, so before the writer connection is handed
//!   out, [`check_writer`] asks SQLite whether its file still has its name; if not, it
//!   copies the open (deleted) database, everything committed included, back to its path
//!   with `VACUUM INTO` and has the pool open a fresh connection to the copy. Readers of
//!   a moved file are simply replaced.
//!
//! The writer hook also replaces a connection that sqlx wrongly believes to be inside a
//! transaction after a failed COMMIT; without that, the first write that failed on a full
//! disk would make every later one fail too.
//!
//! The store never reads the clock and never logs the outcome of a write; the daemon does.

use std::collections::{HashSet, VecDeque};
use std::ffi::{c_int, c_void};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use libsqlite3_sys as ffi;
use sqlx::pool::PoolConnectionMetadata;
use sqlx::{Connection, SqliteConnection};
use tracing::{error, info};

use super::Store;
use crate::model::PollRecord;

/// Most polls the backlog holds; past it the oldest are dropped (and counted). Ten
/// targets polled every 10 s fill it in about 17 minutes; at 200 workers a poll it holds
/// about 60 MB.
pub const BACKLOG_LIMIT: usize = 1_000;

/// What a pool's `before_acquire` hook returns: whether to hand out the connection.
type HookFuture<'c> = Pin<Box<dyn Future<Output = Result<bool, sqlx::Error>> + Send + 'c>>;

/// The database's health, as the daemon and the store's own checks have seen it.
#[derive(Debug)]
pub struct DatabaseHealth {
    /// Why the last write failed; `None` once one succeeds.
    write_fault: Mutex<Option<String>>,
    /// Why the database file, deleted while open, could not be recreated yet.
    file_fault: Mutex<Option<String>>,
    recreated: AtomicU64,
    backlog: Mutex<WriteBacklog>,
}

impl Default for DatabaseHealth {
    fn default() -> Self {
        DatabaseHealth::with_backlog_limit(BACKLOG_LIMIT)
    }
}

impl DatabaseHealth {
    pub fn with_backlog_limit(limit: usize) -> DatabaseHealth {
        DatabaseHealth {
            write_fault: Mutex::new(None),
            file_fault: Mutex::new(None),
            recreated: AtomicU64::new(0),
            backlog: Mutex::new(WriteBacklog::new(limit)),
        }
    }

    /// Why the database is not taking writes, or `None` while it is.
    pub fn fault(&self) -> Option<String> {
        lock(&self.file_fault)
            .clone()
            .or_else(|| lock(&self.write_fault).clone())
    }

    pub fn is_up(&self) -> bool {
        self.fault().is_none()
    }

    /// A write failed with `error`. True when this starts a fault (the previous write
    /// succeeded), so the caller logs one line per fault rather than one per write.
    pub fn write_failed(&self, error: &impl std::fmt::Display) -> bool {
        lock(&self.write_fault).replace(error.to_string()).is_none()
    }

    /// A write succeeded. True when this clears a fault.
    pub fn write_succeeded(&self) -> bool {
        lock(&self.write_fault).take().is_some()
    }

    /// Times the database file was found deleted and recreated from the open connection.
    pub fn recreated(&self) -> u64 {
        self.recreated.load(Ordering::Relaxed)
    }

    /// The polls waiting to be written.
    pub fn backlog(&self) -> MutexGuard<'_, WriteBacklog> {
        lock(&self.backlog)
    }
}

/// Polls taken but not written yet, oldest first, at most `limit` of them.
#[derive(Debug)]
pub struct WriteBacklog {
    polls: VecDeque<PollRecord>,
    limit: usize,
    dropped: u64,
    /// Polls dropped since a write last succeeded.
    dropped_unwritten: u64,
}

impl WriteBacklog {
    pub fn new(limit: usize) -> WriteBacklog {
        WriteBacklog {
            polls: VecDeque::new(),
            limit: limit.max(1),
            dropped: 0,
            dropped_unwritten: 0,
        }
    }

    /// Appends polls after those already waiting; returns how many of the oldest were
    /// dropped to stay within the limit.
    pub fn push(&mut self, polls: impl IntoIterator<Item = PollRecord>) -> u64 {
        self.polls.extend(polls);
        self.trim()
    }

    /// Takes up to `max` polls from the front, stopping before a target's second poll: the
    /// rule engine evaluates a target's polls one at a time, each after the one before it
    /// is committed.
    pub fn take_batch(&mut self, max: usize) -> Vec<PollRecord> {
        let mut targets = HashSet::new();
        let mut batch = Vec::new();
        while batch.len() < max
            && let Some(next) = self.polls.front()
            && targets.insert(next.target.clone())
        {
            batch.extend(self.polls.pop_front());
        }
        batch
    }

    /// Returns a batch that could not be written to the front, in its order; returns how
    /// many of the oldest were dropped to stay within the limit.
    pub fn put_back(&mut self, batch: Vec<PollRecord>) -> u64 {
        for record in batch.into_iter().rev() {
            self.polls.push_front(record);
        }
        self.trim()
    }

    /// The waiting polls, oldest first.
    pub fn polls(&self) -> impl Iterator<Item = &PollRecord> {
        self.polls.iter()
    }

    pub fn len(&self) -> usize {
        self.polls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.polls.is_empty()
    }

    /// Polls dropped since the process started.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Polls dropped since a write last succeeded.
    pub fn dropped_unwritten(&self) -> u64 {
        self.dropped_unwritten
    }

    /// A write succeeded: returns the polls dropped since the one before it.
    pub fn written(&mut self) -> u64 {
        std::mem::take(&mut self.dropped_unwritten)
    }

    fn trim(&mut self) -> u64 {
        let excess = self.polls.len().saturating_sub(self.limit);
        self.polls.drain(..excess);
        self.dropped += excess as u64;
        self.dropped_unwritten += excess as u64;
        excess as u64
    }
}

impl Store {
    /// The database's health and write backlog, shared by every clone of this store.
    pub fn health(&self) -> &Arc<DatabaseHealth> {
        &self.health
    }
}

/// The writer pool's `before_acquire` hook: hands out the connection unless its file was
/// deleted, in which case the database is first copied back to `path` (see the module
/// docs). When the copy fails the connection is kept, so nothing committed is lost, the
/// fault is recorded, and the next acquire tries again.
pub(super) fn check_writer(
    path: PathBuf,
    health: Arc<DatabaseHealth>,
) -> impl for<'c> Fn(&'c mut SqliteConnection, PoolConnectionMetadata) -> HookFuture<'c>
+ Send
+ Sync
+ 'static {
    move |connection, _| {
        let path = path.clone();
        let health = Arc::clone(&health);
        Box::pin(async move {
            if !has_moved(connection).await? || path.exists() {
                // When a COMMIT fails (a full disk), SQLite rolls the transaction back, but
                // sqlx still counts it open, and refuses every later `begin` on the
                // connection. A pooled connection is never inside a transaction, so one that
                // seems to be is replaced.
                return Ok(!connection.is_in_transaction());
            }
            let first = lock(&health.file_fault).is_none();
            if first {
                error!(database = %path.display(), "The database file was deleted while open; recreating it from the open connection.");
            }
            match recreate(connection, &path).await {
                Ok(()) => {
                    lock(&health.file_fault).take();
                    health.recreated.fetch_add(1, Ordering::Relaxed);
                    info!(database = %path.display(), "The database file is recreated with everything it held; writes go to it again.");
                    // A fresh connection opens the copy.
                    Ok(false)
                }
                Err(source) => {
                    let reason = format!(
                        "the database file was deleted and cannot be recreated yet: {source}"
                    );
                    if first {
                        error!(database = %path.display(), error = %source, "Cannot recreate the database file yet; writes go to the open copy until it can be.");
                    }
                    lock(&health.file_fault).replace(reason);
                    Ok(true)
                }
            }
        })
    }
}

/// The reader pools' `before_acquire` hook: a connection whose file was deleted or
/// replaced is closed, so the pool opens one to whatever the path names now.
pub(super) fn check_reader(
    connection: &mut SqliteConnection,
    _: PoolConnectionMetadata,
) -> HookFuture<'_> {
    Box::pin(async move { Ok(!has_moved(connection).await?) })
}

/// Whether the connection's main database file no longer has the name it was opened by
/// (deleted, or renamed), by SQLite's own check (`SQLITE_FCNTL_HAS_MOVED`).
async fn has_moved(connection: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    let mut handle = connection.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    let mut moved: c_int = 0;
    // SAFETY: `db` is the open connection `handle` holds locked for this call; "main"
    // is a NUL-terminated literal, and HAS_MOVED writes one int through the pointer.
    let code = unsafe {
        ffi::sqlite3_file_control(
            db,
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_HAS_MOVED,
            (&raw mut moved).cast::<c_void>(),
        )
    };
    Ok(code == ffi::SQLITE_OK && moved != 0)
}

/// Writes the database `connection` has open to `path`: `VACUUM INTO` a file beside it,
/// then a rename, so a reader never opens half a copy.
async fn recreate(connection: &mut SqliteConnection, path: &Path) -> Result<(), String> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".recreating");
    let partial = PathBuf::from(partial);
    // A copy left by an earlier attempt would make VACUUM INTO refuse.
    let _ = std::fs::remove_file(&partial);
    let target = partial
        .to_str()
        .ok_or_else(|| "the path is not UTF-8".to_string())?;
    let copied = sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(&mut *connection)
        .await
        .map_err(|error| error.to_string())
        .and_then(|_| std::fs::rename(&partial, path).map_err(|error| error.to_string()));
    if copied.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    copied
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{FailureKind, PollFailure, PollResult};
    use crate::time::Timestamp;

    fn poll(target: &str, second: i64) -> PollRecord {
        PollRecord {
            target: target.to_string(),
            started_at: Timestamp::from_unix_millis(second * 1000),
            duration: Duration::from_millis(5),
            result: PollResult::Failed(PollFailure {
                kind: FailureKind::Timeout,
                message: "timed out".to_string(),
                http_status: None,
            }),
        }
    }

    fn names(polls: &[PollRecord]) -> Vec<(String, i64)> {
        polls
            .iter()
            .map(|poll| (poll.target.clone(), poll.started_at.unix_millis() / 1000))
            .collect()
    }

    #[test]
    fn a_batch_stops_before_a_targets_second_poll_and_keeps_the_order() {
        let mut backlog = WriteBacklog::new(10);
        backlog.push([poll("a", 0), poll("b", 0), poll("a", 10), poll("b", 10)]);
        assert_eq!(
            names(&backlog.take_batch(10)),
            [("a".to_string(), 0), ("b".to_string(), 0)]
        );
        let next = backlog.take_batch(1);
        assert_eq!(names(&next), [("a".to_string(), 10)]);
        backlog.put_back(next);
        assert_eq!(
            names(&backlog.take_batch(10)),
            [("a".to_string(), 10), ("b".to_string(), 10)]
        );
        assert!(backlog.is_empty());
    }

    #[test]
    fn past_the_limit_the_oldest_polls_are_dropped_and_counted() {
        let mut backlog = WriteBacklog::new(3);
        assert_eq!(backlog.push([poll("a", 0), poll("a", 10)]), 0);
        assert_eq!(backlog.push([poll("a", 20), poll("a", 30)]), 1);
        // A batch put back after a failed write counts against the limit too.
        let batch = backlog.take_batch(1);
        backlog.push([poll("a", 40)]);
        assert_eq!(backlog.put_back(batch), 1);
        assert_eq!(backlog.dropped(), 2);
        assert_eq!(backlog.written(), 2);
        assert_eq!(backlog.dropped_unwritten(), 0);
        let mut left = Vec::new();
        while !backlog.is_empty() {
            left.extend(names(&backlog.take_batch(10)));
        }
        let seconds: Vec<i64> = left.iter().map(|(_, second)| *second).collect();
        assert_eq!(seconds, [20, 30, 40]);
    }

    #[test]
    fn a_fault_starts_once_and_clears_once() {
        let health = DatabaseHealth::default();
        assert!(health.is_up());
        assert!(health.write_failed(&"database is locked"));
        assert!(!health.write_failed(&"database is locked"));
        assert_eq!(health.fault().as_deref(), Some("database is locked"));
        assert!(health.write_succeeded());
        assert!(!health.write_succeeded());
        assert!(health.is_up());
    }
}
