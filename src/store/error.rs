//! The store's error type: every failure names the database or the operation. A
//! PostgreSQL database is named as `postgres://user@host:port/db`, never with its password.

use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created, or the server not reached.
    #[error("cannot open database `{location}`: {reason}")]
    Open {
        location: String,
        reason: String,
        #[source]
        source: sqlx::Error,
    },

    /// The schema could not be brought up to date.
    #[error("cannot migrate database `{location}`: {source}")]
    Migrate {
        location: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// A poll or a history filter names a target that was never stored.
    #[error("unknown target `{name}`; targets are stored when the config is loaded")]
    UnknownTarget { name: String },

    /// A statement failed while doing `operation`.
    #[error("database error while {operation}: {source}")]
    Query {
        operation: &'static str,
        #[source]
        source: sqlx::Error,
    },

    /// A backup cannot be written where it was asked for.
    #[error("cannot back up to `{path}`: {reason}")]
    BackupTarget { path: PathBuf, reason: &'static str },

    /// The leader lease's connection did not answer a renewal in time; leadership is
    /// treated as lost.
    #[error("the leader lease was not renewed within {} (treated as lost)", crate::time::format_duration(*limit))]
    LeaseTimeout { limit: std::time::Duration },

    /// Another process already runs with this replica id on the database.
    #[error(
        "another replica with id `{replica}` is running on this database; give each replica its own `ha.replica_id`"
    )]
    ReplicaTaken { replica: String },

    /// The lease's connection is gone; the next renewal reconnects.
    #[error("the lease's connection is gone")]
    LeaseLost,

    /// `db copy` found rows in a destination that must be empty of history.
    #[error(
        "cannot copy into `{location}`: its table `{table}` has rows; copy into a new, empty database"
    )]
    CopyDestination {
        location: String,
        table: &'static str,
    },

    /// The operation exists for the other backend only.
    #[error("{operation} is not available on PostgreSQL: {hint}")]
    NotOnPostgres {
        operation: &'static str,
        hint: &'static str,
    },

    /// A stored row holds a value the current code cannot read.
    #[error("unreadable row while {operation}: {detail}")]
    BadRow {
        operation: &'static str,
        detail: String,
    },
}

/// Wraps a sqlx error with the operation it interrupted, for `map_err`.
pub(super) fn query_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { operation, source }
}
