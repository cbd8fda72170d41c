//! Reads for the HTTP API: history in pages that resume after a cursor, each target's
//! latest poll, and the write probe behind `/readyz`.

use sqlx::Executor;

use super::Store;
use super::error::{StoreError, query_error};
use super::history::{fleet_row, poll_row, worker_row};
use super::rows::{FleetRow, HistoryFilter, PollRow, WorkerRow};
use crate::time::Timestamp;

/// Where a page of history ends: the last row's time and poll id. The next page starts
/// strictly after it, so every row is returned once however many rows share a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor {
    pub at: Timestamp,
    pub poll_id: i64,
}

/// Builds a paged history query for one target or for all of them, so the
/// `(target_id, time)` indexes serve the one-target case.
macro_rules! page_query {
    (select: $select:literal, where: $condition:literal, time: $time:literal, id: $id:literal, target: $target:literal) => {
        (
            concat!(
                $select,
                " WHERE ",
                $condition,
                $target,
                " = ? AND ",
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
            ),
            concat!(
                $select,
                " WHERE ",
                $condition,
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
            ),
        )
    };
}

const FLEET_PAGE: (&str, &str) = page_query!(
    select: "SELECT p.id AS poll_id, t.name AS target, p.started_at AS polled_at, \
             f.workers, f.ready, f.starting, f.inactive, f.failed, f.load, f.new_load, \
             f.load_rolling, f.perf, f.cur_perf, f.measured_perf, f.reqs_working \
             FROM polls AS p \
             JOIN fleet_totals AS f ON f.poll_id = p.id \
             JOIN targets AS t ON t.id = p.target_id",
    where: "",
    time: "p.started_at",
    id: "p.id",
    target: "p.target_id"
);

const WORKER_PAGE: (&str, &str) = page_query!(
    select: "SELECT s.poll_id, t.name AS target, s.polled_at, s.worker_id, s.status, \
             s.cur_load, s.new_load, s.cur_load_rolling_avg, s.cur_perf, s.measured_perf, \
             s.perf, s.reliability, s.dlperf, s.reqs_working, s.disk_usage, s.loaded_at, \
             s.extra \
             FROM worker_samples AS s \
             JOIN targets AS t ON t.id = s.target_id",
    where: "s.worker_id = ? AND ",
    time: "s.polled_at",
    id: "s.poll_id",
    target: "s.target_id"
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
            .page(OPERATION, FLEET_PAGE, filter, after, sqlx::query)
            .await?;
        rows.iter()
            .map(|row| fleet_row(row).map_err(query_error(OPERATION)))
            .collect()
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
            .page(OPERATION, WORKER_PAGE, filter, after, |sql| {
                sqlx::query(sql).bind(worker_id)
            })
            .await?;
        rows.iter().map(|row| worker_row(row, OPERATION)).collect()
    }

    async fn page(
        &self,
        operation: &'static str,
        (for_target, for_all): (&'static str, &'static str),
        filter: &HistoryFilter,
        after: Option<HistoryCursor>,
        start: impl FnOnce(
            &'static str,
        )
            -> sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> Result<Vec<sqlx::sqlite::SqliteRow>, StoreError> {
        let mut query = match &filter.target {
            Some(name) => start(for_target).bind(self.target_id(name, operation).await?),
            None => start(for_all),
        };
        query = query
            .bind(filter.since.map_or(f64::MIN, Timestamp::unix_secs_f64))
            .bind(filter.until.map_or(f64::MAX, Timestamp::unix_secs_f64))
            .bind(after.map_or(f64::MIN, |cursor| cursor.at.unix_secs_f64()))
            .bind(after.map_or(i64::MIN, |cursor| cursor.poll_id))
            .bind(filter.limit.map_or(-1, i64::from));
        query
            .fetch_all(&self.readers)
            .await
            .map_err(query_error(operation))
    }

    /// The latest poll attempt of every stored target that has one, by target name.
    pub async fn latest_polls(&self) -> Result<Vec<PollRow>, StoreError> {
        const OPERATION: &str = "reading the latest polls";
        let rows = sqlx::query(LATEST_POLLS)
            .fetch_all(&self.readers)
            .await
            .map_err(query_error(OPERATION))?;
        rows.iter()
            .map(|row| poll_row(row).map_err(query_error(OPERATION)))
            .collect()
    }

    /// Proves the database takes writes: takes the write lock and gives it back at once,
    /// writing nothing. Fails when the file is read-only, the disk is gone, or another
    /// process holds the lock past the busy timeout.
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        const OPERATION: &str = "probing that the database is writable";
        let mut connection = self
            .writer
            .acquire()
            .await
            .map_err(query_error(OPERATION))?;
        connection
            .execute("BEGIN IMMEDIATE")
            .await
            .map_err(query_error(OPERATION))?;
        connection
            .execute("ROLLBACK")
            .await
            .map_err(query_error(OPERATION))?;
        Ok(())
    }
}
