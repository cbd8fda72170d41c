//! The store, on SQLite or PostgreSQL: schema migrations, batched ingest of polls, history
//! queries and retention. Every SQL statement in vastwatch lives in this module.
//!
//! The rest of the program sees [`Store`], the row and filter types in [`rows`], and
//! [`StoreError`]; no sqlx type crosses the boundary except as an error source, and no
//! caller knows which backend runs (see [`backend`] for how one body serves both). Times
//! come from the caller: the store never reads the clock.
//!
//! On SQLite, writes go through one connection (SQLite allows one writer at a time anyway,
//! and a single in-process writer never waits on itself); reads use a small pool beside
//! it, which WAL mode lets run while a write is in progress. On PostgreSQL one pool serves
//! both.

mod alerts;
mod backend;
mod batch;
mod bulk_read;
mod bulk_read_postgres;
mod copy;
mod error;
mod health;
mod history;
mod ingest;
mod ingest_postgres;
mod lease;
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
pub(crate) mod test_db;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Executor;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use alerts::{AlertEventRow, AlertFilter, RecommendationRow};
pub use error::StoreError;
pub use health::{BACKLOG_LIMIT, DatabaseHealth, WriteBacklog};
pub use ingest::{MAX_WRITE_PARTS, WrittenPart};
pub use lease::{Lease, ReplicaRow, Role};
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

pub use copy::{CopyProgress, CopyReport};

use crate::config::{Database, PostgresUrl};
use backend::{Backend, PostgresBackend, SqliteBackend};
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

/// How long opening a PostgreSQL store (or taking a connection later) waits for the server.
const POSTGRES_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to open a store. [`Store::open`] uses the defaults.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The database: a SQLite file (created with its schema when missing; its folder must
    /// exist) or a PostgreSQL database (its schema created when missing).
    pub database: Database,
    /// Connections for history reads, beside the one writer.
    pub readers: u32,
    /// Open without creating, migrating or writing anything (`replay`, `alerts`).
    pub read_only: bool,
}

impl StoreOptions {
    pub fn new(database: impl Into<Database>) -> Self {
        StoreOptions {
            database: database.into(),
            readers: 4,
            read_only: false,
        }
    }

    /// Options for commands that only read: every write fails, the file is not created
    /// and no migration runs.
    pub fn read_only(database: impl Into<Database>) -> Self {
        StoreOptions {
            read_only: true,
            ..StoreOptions::new(database)
        }
    }
}

/// The vastwatch database. Cheap to clone: clones share the connections.
#[derive(Debug, Clone)]
pub struct Store {
    database: Database,
    backend: Backend,
    read_only: bool,
    health: Arc<DatabaseHealth>,
}

impl Store {
    /// Opens (or creates) the database and brings its schema up to date.
    pub async fn open(database: impl Into<Database>) -> Result<Store, StoreError> {
        Store::open_with(StoreOptions::new(database)).await
    }

    pub async fn open_with(options: StoreOptions) -> Result<Store, StoreError> {
        let health = Arc::<DatabaseHealth>::default();
        let backend = match &options.database {
            Database::Sqlite(path) => Backend::Sqlite(open_sqlite(path, &options, &health).await?),
            Database::Postgres(url) => Backend::Postgres(open_postgres(url, &options).await?),
        };
        Ok(Store {
            database: options.database,
            backend,
            read_only: options.read_only,
            health,
        })
    }

    /// The database this store opened, for messages (a PostgreSQL URL shows without its
    /// password).
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Folds the write-ahead log into the database file (SQLite) and closes every
    /// connection. Other clones of this store can no longer be used afterwards.
    pub async fn close(self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite(sqlite) => {
                sqlite.readers.close().await;
                if self.read_only {
                    return Ok(());
                }
                sqlite
                    .writer
                    .execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    .await
                    .map_err(query_error("checkpointing the write-ahead log"))?;
                sqlite.writer.close().await;
            }
            Backend::Postgres(postgres) => postgres.pool.close().await,
        }
        Ok(())
    }
}

async fn open_sqlite(
    path: &Path,
    options: &StoreOptions,
    health: &Arc<DatabaseHealth>,
) -> Result<SqliteBackend, StoreError> {
    let connect = SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
        .pragma("cache_size", READER_CACHE_SIZE)
        .pragma("temp_store", "memory");
    let open_error = |source: sqlx::Error| StoreError::Open {
        location: path.display().to_string(),
        reason: open_failure_reason(path, &source),
        source,
    };
    if options.read_only {
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("cache_size", READER_CACHE_SIZE);
        let readers = SqlitePoolOptions::new()
            .max_connections(options.readers.max(1))
            .before_acquire(health::check_reader)
            .connect_with(connect)
            .await
            .map_err(open_error)?;
        return Ok(SqliteBackend {
            writer: readers.clone(),
            readers,
        });
    }
    let writer = SqlitePoolOptions::new()
        .before_acquire(health::check_writer(path.to_path_buf(), Arc::clone(health)))
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
            location: path.display().to_string(),
            source,
        })?;
    let readers = SqlitePoolOptions::new()
        .max_connections(options.readers.max(1))
        .before_acquire(health::check_reader)
        .connect_lazy_with(connect);
    Ok(SqliteBackend { writer, readers })
}

/// Connects to PostgreSQL and creates or updates the schema. The pool has a connection
/// per reader plus one for writes. Read-only stores open read-only sessions.
async fn open_postgres(
    url: &PostgresUrl,
    options: &StoreOptions,
) -> Result<PostgresBackend, StoreError> {
    let open_error = |source: sqlx::Error| StoreError::Open {
        location: url.to_string(),
        reason: source.to_string(),
        source,
    };
    let mut connect = PgConnectOptions::from_str(url.expose()).map_err(open_error)?;
    if options.read_only {
        connect = connect.options([("default_transaction_read_only", "on")]);
    }
    let pool = PgPoolOptions::new()
        .max_connections(options.readers.max(1) + 1)
        .acquire_timeout(POSTGRES_CONNECT_TIMEOUT)
        .connect_with(connect)
        .await
        .map_err(open_error)?;
    if !options.read_only {
        migrations::postgres_migrator()
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                location: url.to_string(),
                source,
            })?;
    }
    Ok(PostgresBackend { pool })
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
