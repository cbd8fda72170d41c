//! Reads for the HTTP API: history in pages that resume after a cursor, each target's
//! latest poll, and the write probe behind `/readyz`.

use sqlx::Executor;

use super::Store;
use super::backend::{AnyRow, Backend, StoreRow, with_pool};
use super::error::{StoreError, query_error};
use super::history::{
    fleet_row, fleet_select, poll_row, rollup_only_where_expired, rollup_row, rollup_select,
    worker_row, worker_select,
};
use super::rows::{FleetHistoryRow, FleetRow, HistoryFilter, PollRow, WorkerRow};
use crate::time::Timestamp;

/// Where a page of history ends: the last row's time and poll id. The next page starts
/// strictly after it, so every row is returned once however many rows share a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor {
    pub at: Timestamp,
    pub poll_id: i64,
}

/// Builds a paged history query for one target (`$target` names its column, so the
/// `(target_id, time)` indexes serve it) or, with `$target` empty, for all of them.
macro_rules! page_query {
    (select: $select:expr, where: $condition:expr, time: $time:literal, id: $id:literal, target: $target:literal) => {
        concat!(
            $select,
            " WHERE ",
            $condition,
            $target,
            $time,
            " BETWEEN ? AND ? AND (",
            $time,
            ", ",
            $id,
            ") > (?, ?) ORDER BY ",
            $time,
            ", ",
            $id,
            " LIMIT ?"
        )
    };
}

const FLEET_PAGE: (&str, &str) = (
    page_query!(select: fleet_select!(), where: "", time: "p.started_at", id: "p.id",
        target: "p.target_id = ? AND "),
    page_query!(select: fleet_select!(), where: "", time: "p.started_at", id: "p.id", target: ""),
);

const WORKER_PAGE: (&str, &str) = (
    page_query!(select: worker_select!(), where: "s.worker_id = ? AND ", time: "s.polled_at",
        id: "s.poll_id", target: "s.target_id = ? AND "),
    page_query!(select: worker_select!(), where: "s.worker_id = ? AND ", time: "s.polled_at",
        id: "s.poll_id", target: ""),
);

/// Five-minute rollups older than each target's oldest raw poll (where raw samples have
/// expired), by bucket and target id; the cursor's `poll_id` holds the target id.
const ROLLUP_PAGE: (&str, &str) = (
    page_query!(select: rollup_select!(), where: rollup_only_where_expired!(), time: "r.bucket",
        id: "r.target_id", target: "r.target_id = ? AND "),
    page_query!(select: rollup_select!(), where: rollup_only_where_expired!(), time: "r.bucket",
        id: "r.target_id", target: ""),
);

/// The latest poll attempt of each stored target.
const LATEST_POLLS: &str = "SELECT p.id, t.name AS target, p.started_at, p.duration_ms, \
     p.outcome, p.error, p.http_status, p.worker_count \
     FROM targets AS t \
     JOIN polls AS p ON p.id = (SELECT id FROM polls WHERE target_id = t.id \
                                ORDER BY started_at DESC, id DESC LIMIT 1) \
     ORDER BY t.name";

impl Store {
    /// Fleet rows oldest first, starting after `after`, at most `filter.limit` of them.
    pub async fn fleet_page(
        &self,
        filter: &HistoryFilter,
        after: Option<HistoryCursor>,
    ) -> Result<Vec<FleetRow>, StoreError> {
        const OPERATION: &str = "reading a page of fleet history";
        let rows = self
            .page(OPERATION, FLEET_PAGE, filter, after, None)
            .await?;
        rows.iter()
            .map(|row| fleet_row(row).map_err(query_error(OPERATION)))
            .collect()
    }

    /// Five-minute rollup rows where raw samples have expired, by bucket then target,
    /// starting after `after` (whose `poll_id` is a target id), at most `filter.limit`;
    /// each with its target's id for the next cursor.
    pub async fn rollup_page(
        &self,
        filter: &HistoryFilter,
        after: Option<HistoryCursor>,
    ) -> Result<Vec<(i64, FleetHistoryRow)>, StoreError> {
        const OPERATION: &str = "reading a page of fleet rollups";
        let rows = self
            .page(OPERATION, ROLLUP_PAGE, filter, after, None)
            .await?;
        rows.iter()
            .map(|row| Ok((row.value("target_id")?, rollup_row(row)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(query_error(OPERATION))
    }

    /// One worker's rows oldest first, starting after `after`, at most `filter.limit`.
    pub async fn worker_page(
        &self,
        filter: &HistoryFilter,
        worker_id: i64,
        after: Option<HistoryCursor>,
    ) -> Result<Vec<WorkerRow>, StoreError> {
        const OPERATION: &str = "reading a page of worker history";
        let rows = self
            .page(OPERATION, WORKER_PAGE, filter, after, Some(worker_id))
            .await?;
        rows.iter().map(|row| worker_row(row, OPERATION)).collect()
    }

    /// Runs one of the paged queries; `first` binds the parameter before the filter's.
    async fn page(
        &self,
        operation: &'static str,
        queries: (&'static str, &'static str),
        filter: &HistoryFilter,
        after: Option<HistoryCursor>,
        first: Option<i64>,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let cursor = match after {
            Some(cursor) => (cursor.at.unix_secs_f64(), cursor.poll_id),
            None => (f64::MIN, i64::MIN),
        };
        self.filtered_rows(operation, queries, filter, first, Some(cursor))
            .await
    }

    /// The latest poll attempt of every stored target that has one, by target name.
    pub async fn latest_polls(&self) -> Result<Vec<PollRow>, StoreError> {
        const OPERATION: &str = "reading the latest polls";
        with_pool!(self, readers, |pool, dialect| {
            let rows = sqlx::query(dialect.sql(LATEST_POLLS))
                .fetch_all(pool)
                .await
                .map_err(query_error(OPERATION))?;
            rows.iter()
                .map(|row| poll_row(row).map_err(query_error(OPERATION)))
                .collect()
        })
    }

    /// Proves the database takes writes: takes the write lock, creates a table and rolls
    /// it all back, so nothing is written. Fails when the file or connection is read-only,
    /// or another process holds the lock past the busy timeout.
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        const OPERATION: &str = "probing that the database is writable";
        match &self.backend {
            Backend::Sqlite(sqlite) => {
                let mut connection = sqlite
                    .writer
                    .acquire()
                    .await
                    .map_err(query_error(OPERATION))?;
                connection
                    .execute("BEGIN IMMEDIATE")
                    .await
                    .map_err(query_error(OPERATION))?;
                // Taking the lock alone succeeds on a read-only file; a schema change does not.
                let written = connection
                    .execute("CREATE TABLE vastwatch_write_probe (x)")
                    .await;
                // Roll back whatever happened, so the writer never goes back to the pool
                // inside a transaction.
                let rolled_back = connection.execute("ROLLBACK").await;
                written.map_err(query_error(OPERATION))?;
                rolled_back.map_err(query_error(OPERATION))?;
            }
            Backend::Postgres(postgres) => {
                // A read-only session or a standby refuses the table; the rollback (when
                // the transaction is dropped) leaves nothing behind either way.
                let mut transaction = postgres
                    .pool
                    .begin()
                    .await
                    .map_err(query_error(OPERATION))?;
                sqlx::query("CREATE TABLE vastwatch_write_probe (x BIGINT)")
                    .execute(&mut *transaction)
                    .await
                    .map_err(query_error(OPERATION))?;
                transaction
                    .rollback()
                    .await
                    .map_err(query_error(OPERATION))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;
    use crate::store::test_db::store_tests;

    store_tests! {
        async fn the_write_probe_passes_on_a_writable_store_and_fails_on_a_read_only_one(
            db: TestDb
        ) {
            let store = Store::open(db.database()).await.unwrap();
            store
                .probe_write()
                .await
                .expect("a fresh store takes writes");
            // The probe leaves nothing behind: its table would make a second probe fail.
            store.probe_write().await.expect("the probe rolled back");
            let read_only = Store::open_with(StoreOptions::read_only(db.database()))
                .await
                .unwrap();
            let error = read_only.probe_write().await.expect_err("read-only");
            assert!(
                error
                    .to_string()
                    .contains("probing that the database is writable"),
                "{error}"
            );
        }
    }
}
