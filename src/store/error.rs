//! The store's error type: every failure names the database path or the operation.

use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("cannot open database `{path}`: {reason}")]
    Open {
        path: PathBuf,
        reason: String,
        #[source]
        source: sqlx::Error,
    },

    /// The schema could not be brought up to date.
    #[error("cannot migrate database `{path}`: {source}")]
    Migrate {
        path: PathBuf,
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
