//! The SQLite store: schema migrations, batched ingest of polls, history queries and
//! retention. Every SQL statement in vastwatch lives in this module.
//!
//! The rest of the program sees [`Store`], the row and filter types in [`rows`], and
//! [`StoreError`]; no sqlx type crosses the boundary except as an error source, so a
//! PostgreSQL backend can slot in behind the same methods. Times come from the caller:
//! the store never reads the clock.
//!
//! Writes go through one connection (SQLite allows one writer at a time anyway, and a
//! single in-process writer never waits on itself); reads use a small pool beside it, which
//! WAL mode lets run while a write is in progress.

mod alerts;
mod batch;
mod bulk_read;
mod error;
mod health;
mod history;
mod ingest;
mod migrations;
mod notify;
mod pages;
mod retention;
pub mod rows;
mod series;
mod stats;

#[cfg(test)]
mod queries_doc_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Executor, SqlitePool};

pub use alerts::{AlertEventRow, AlertFilter, RecommendationRow};
pub use error::StoreError;
pub use health::{BACKLOG_LIMIT, DatabaseHealth, WriteBacklog};
pub use notify::{
    AttemptRecord, FlushWrite, NewNotification, NotificationFilter, NotificationRow,
    NotificationStatus,
};
pub use pages::HistoryCursor;
pub use retention::ROLLUP_SECS;
pub use rows::{
    DbStats, Deleted, FleetHistoryRow, FleetRow, FleetValues, HistoryFilter, PollRow, Resolution,
    RetentionCutoffs, TableSize, TargetRow, TargetSpec, WorkerRow,
};
pub use series::{AlertInterval, LatestWorkers, MAX_SERIES_POINTS, SeriesBucket, series_step};

use error::query_error;

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Page cache of the writer, in KiB when negative (SQLite's convention). A tick appends
/// to the end of `worker_samples`, but each worker's entry in the per-worker index lands
/// in its own place; with a deep history a large tick dirties thousands of index pages,
/// and re-reading them from disk doubled the tick's time in `benches/ingest.rs`.
const WRITER_CACHE_SIZE: &str = "-65536";
/// Page cache of each reader: history reads are mostly sequential.
const READER_CACHE_SIZE: &str = "-16384";

/// How to open a store. [`Store::open`] uses the defaults.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The database file; created with its schema when missing. Its folder must exist.
    pub path: PathBuf,
    /// Connections for history reads, beside the one writer.
    pub readers: u32,
    /// Open without creating, migrating or writing anything (`replay`, `alerts`).
    pub read_only: bool,
}

impl StoreOptions {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreOptions {
            path: path.into(),
            readers: 4,
            read_only: false,
        }
    }

    /// Options for commands that only read: every write fails, the file is not created
    /// and no migration runs.
    pub fn read_only(path: impl Into<PathBuf>) -> Self {
        StoreOptions {
            read_only: true,
            ..StoreOptions::new(path)
        }
    }
}

/// The vastwatch database. Cheap to clone: clones share the connections.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    writer: SqlitePool,
    readers: SqlitePool,
    read_only: bool,
    health: Arc<DatabaseHealth>,
}

impl Store {
    /// Opens (or creates) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(StoreOptions::new(path)).await
    }

    pub async fn open_with(options: StoreOptions) -> Result<Store, StoreError> {
        let path = options.path;
        let connect = SqliteConnectOptions::new()
            .filename(&path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .pragma("cache_size", READER_CACHE_SIZE)
            .pragma("temp_store", "memory");
        let open_error = |source: sqlx::Error| StoreError::Open {
            reason: open_failure_reason(&path, &source),
            path: path.clone(),
            source,
        };
        if options.read_only {
            let connect = SqliteConnectOptions::new()
                .filename(&path)
                .read_only(true)
                .busy_timeout(BUSY_TIMEOUT)
                .pragma("cache_size", READER_CACHE_SIZE);
            let readers = SqlitePoolOptions::new()
                .max_connections(options.readers.max(1))
                .before_acquire(health::check_reader)
                .connect_with(connect)
                .await
                .map_err(open_error)?;
            return Ok(Store {
                path,
                writer: readers.clone(),
                readers,
                read_only: true,
                health: Arc::default(),
            });
        }
        let health = Arc::<DatabaseHealth>::default();
        let writer = SqlitePoolOptions::new()
            .before_acquire(health::check_writer(path.clone(), Arc::clone(&health)))
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(
                connect
                    .clone()
                    .pragma("cache_size", WRITER_CACHE_SIZE)
                    .create_if_missing(true),
            )
            .await
            .map_err(open_error)?;
        migrations::sqlite_migrator()
            .run(&writer)
            .await
            .map_err(|source| StoreError::Migrate {
                path: path.clone(),
                source,
            })?;
        let readers = SqlitePoolOptions::new()
            .max_connections(options.readers.max(1))
            .before_acquire(health::check_reader)
            .connect_lazy_with(connect);
        Ok(Store {
            path,
            writer,
            readers,
            read_only: false,
            health,
        })
    }

    /// The database file this store writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Folds the write-ahead log into the database file and closes every connection.
    /// Other clones of this store can no longer be used afterwards.
    pub async fn close(self) -> Result<(), StoreError> {
        self.readers.close().await;
        if self.read_only {
            return Ok(());
        }
        self.writer
            .execute("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .map_err(query_error("checkpointing the write-ahead log"))?;
        self.writer.close().await;
        Ok(())
    }
}

/// A sentence for the common ways opening fails, so the operator need not decode
/// SQLite's "unable to open database file".
fn open_failure_reason(path: &Path, source: &sqlx::Error) -> String {
    let folder = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty());
    match folder {
        Some(folder) if !folder.is_dir() => {
            format!("folder `{}` does not exist", folder.display())
        }
        _ if path.is_dir() => "it is a folder, not a file".to_string(),
        _ => source.to_string(),
    }
}
