//! Reading: stored targets, and fleet, worker and poll history in time order.

use std::collections::HashMap;
use std::time::Duration;

use super::Store;
use super::backend::{AnyRow, Backend, StoreRow, bind_present, with_pool};
use super::bulk_read::{self, Polls};
use super::bulk_read_postgres;
use super::error::{StoreError, query_error};
use super::rows::{
    FleetHistoryRow, FleetRow, FleetValues, HistoryFilter, PollRow, Resolution, TargetRow,
    WorkerRow,
};
use crate::model::{
    CompactPoll, FailureKind, Field, FleetSummary, PollFailure, PollRecord, PollResult, TargetKind,
    WorkerSample,
};
use crate::time::Timestamp;

/// The `SELECT ... FROM` of fleet rows, which [`fleet_row`] reads; shared with the
/// paged reads in `pages.rs`.
macro_rules! fleet_select {
    () => {
        "SELECT p.id AS poll_id, t.name AS target, p.started_at AS polled_at, \
         f.workers, f.ready, f.starting, f.inactive, f.failed, f.load, f.new_load, \
         f.load_rolling, f.perf, f.cur_perf, f.measured_perf, f.reqs_working \
         FROM polls AS p \
         JOIN fleet_totals AS f ON f.poll_id = p.id \
         JOIN targets AS t ON t.id = p.target_id"
    };
}
pub(super) use fleet_select;

/// The `SELECT ... FROM` of worker rows, which [`worker_row`] reads.
macro_rules! worker_select {
    () => {
        "SELECT s.poll_id, t.name AS target, s.polled_at, s.worker_id, s.status, \
         s.cur_load, s.new_load, s.cur_load_rolling_avg, s.cur_perf, s.measured_perf, \
         s.perf, s.reliability, s.dlperf, s.reqs_working, s.disk_usage, s.loaded_at, \
         s.extra \
         FROM worker_samples AS s \
         JOIN targets AS t ON t.id = s.target_id"
    };
}
pub(super) use worker_select;

/// Builds one history query in its two shapes: for one target (which the
/// `(target_id, ...)`-led indexes serve) and for all targets.
macro_rules! history_query {
    (
        select: $select:expr,
        where: $condition:expr,
        time: $time:literal,
        target: $target:literal,
        order: $order:literal
    ) => {
        (
            concat!(
                $select,
                " WHERE ",
                $condition,
                $target,
                " = ? AND ",
                $time,
                " BETWEEN ? AND ? ORDER BY ",
                $order,
                " LIMIT ?"
            ),
            concat!(
                $select,
                " WHERE ",
                $condition,
                $time,
                " BETWEEN ? AND ? ORDER BY ",
                $order,
                " LIMIT ?"
            ),
        )
    };
}

pub(super) const FLEET_HISTORY: (&str, &str) = history_query!(
    select: fleet_select!(),
    where: "",
    time: "p.started_at",
    target: "p.target_id",
    order: "p.started_at DESC, p.id DESC"
);

/// Rollups of a target older than its oldest stored poll: where raw samples exist they
/// are read instead, since they are finer.
/// The `SELECT ... FROM` of rollup rows, which [`rollup_row`] reads.
macro_rules! rollup_select {
    () => {
        "SELECT t.name AS target, r.* \
         FROM fleet_rollups AS r \
         JOIN targets AS t ON t.id = r.target_id"
    };
}
pub(super) use rollup_select;

/// Rollups only where raw samples have expired: older than the target's oldest poll, so
/// no time is shown twice.
macro_rules! rollup_only_where_expired {
    () => {
        "r.bucket < coalesce((SELECT min(p.started_at) FROM polls AS p \
         WHERE p.target_id = r.target_id), 1e308) AND "
    };
}
pub(super) use rollup_only_where_expired;

pub(super) const ROLLUP_HISTORY: (&str, &str) = history_query!(
    select: rollup_select!(),
    where: rollup_only_where_expired!(),
    time: "r.bucket",
    target: "r.target_id",
    order: "r.bucket DESC, r.target_id DESC"
);

const WORKER_HISTORY: (&str, &str) = history_query!(
    select: worker_select!(),
    where: "s.worker_id = ? AND ",
    time: "s.polled_at",
    target: "s.target_id",
    order: "s.polled_at DESC, s.poll_id DESC"
);

const POLL_HISTORY: (&str, &str) = history_query!(
    select: "SELECT p.id, t.name AS target, p.started_at, p.duration_ms, p.outcome, p.error, \
             p.http_status, p.worker_count \
             FROM polls AS p \
             JOIN targets AS t ON t.id = p.target_id",
    where: "",
    time: "p.started_at",
    target: "p.target_id",
    order: "p.started_at DESC, p.id DESC"
);

impl Store {
    /// Every stored target, configured now or in the past, by name.
    pub async fn targets(&self) -> Result<Vec<TargetRow>, StoreError> {
        const OPERATION: &str = "reading targets";
        let rows: Vec<(i64, String, String, i64)> = with_pool!(self, readers, |pool, dialect| {
            sqlx::query_as(dialect.sql("SELECT id, name, kind, vast_id FROM targets ORDER BY name"))
                .fetch_all(pool)
                .await
                .map_err(query_error(OPERATION))?
        });
        rows.into_iter()
            .map(|(id, name, kind, vast_id)| {
                Ok(TargetRow {
                    id,
                    name,
                    kind: TargetKind::parse(&kind).ok_or_else(|| StoreError::BadRow {
                        operation: OPERATION,
                        detail: format!(
                            "target kind `{kind}` is neither endpoint nor worker_group"
                        ),
                    })?,
                    vast_id,
                })
            })
            .collect()
    }

    /// Fleet numbers of successful polls (the `fleet_samples` view), oldest first.
    pub async fn fleet_history(&self, filter: &HistoryFilter) -> Result<Vec<FleetRow>, StoreError> {
        const OPERATION: &str = "reading fleet history";
        let rows = self.history(OPERATION, FLEET_HISTORY, filter, None).await?;
        rows.iter()
            .map(|row| fleet_row(row).map_err(query_error(OPERATION)))
            .collect()
    }

    /// Fleet history at the finest resolution stored, oldest first: raw polls (the
    /// `fleet_samples` view) where they are kept, and five-minute `fleet_rollups` rows for
    /// the older part of the range, where raw samples have expired. `history` and the
    /// HTTP API's history endpoint read this. A rollup is in range when its bucket start
    /// is; with a limit, the latest rows of both kinds together are kept.
    pub async fn fleet_timeline(
        &self,
        filter: &HistoryFilter,
    ) -> Result<Vec<FleetHistoryRow>, StoreError> {
        const OPERATION: &str = "reading fleet history with rollups";
        let rollups = self
            .history(OPERATION, ROLLUP_HISTORY, filter, None)
            .await?;
        let raw = self.history(OPERATION, FLEET_HISTORY, filter, None).await?;
        let mut rows = rollups
            .iter()
            .map(rollup_row)
            .chain(raw.iter().map(|row| fleet_row(row).map(raw_history_row)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(query_error(OPERATION))?;
        // Stable: at equal times rollups (older data) stay before raw rows.
        rows.sort_by_key(|row| row.at);
        if let Some(limit) = filter.limit {
            rows.drain(..rows.len().saturating_sub(limit as usize));
        }
        Ok(rows)
    }

    /// One worker's samples (the `worker_samples` table), oldest first. Without a target
    /// in the filter, the worker's samples under every target are returned.
    pub async fn worker_history(
        &self,
        filter: &HistoryFilter,
        worker_id: i64,
    ) -> Result<Vec<WorkerRow>, StoreError> {
        const OPERATION: &str = "reading worker history";
        let rows = self
            .history(OPERATION, WORKER_HISTORY, filter, Some(worker_id))
            .await?;
        rows.iter().map(|row| worker_row(row, OPERATION)).collect()
    }

    /// Poll attempts, failed ones included (the `polls` table), oldest first. With a
    /// target and a limit this is "the last N polls of a target".
    pub async fn poll_history(&self, filter: &HistoryFilter) -> Result<Vec<PollRow>, StoreError> {
        const OPERATION: &str = "reading poll history";
        let rows = self.history(OPERATION, POLL_HISTORY, filter, None).await?;
        rows.iter()
            .map(|row| poll_row(row).map_err(query_error(OPERATION)))
            .collect()
    }

    /// Runs one of the `history_query!` pairs: `first` binds the parameter that comes
    /// before the filter's, if any, then target, time range and limit follow. Rows come back
    /// newest first from SQL (so LIMIT keeps the latest) and are returned oldest first.
    async fn history(
        &self,
        operation: &'static str,
        queries: (&'static str, &'static str),
        filter: &HistoryFilter,
        first: Option<i64>,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let mut rows = self
            .filtered_rows(operation, queries, filter, first, None)
            .await?;
        rows.reverse();
        Ok(rows)
    }

    /// Runs the `(for_target, for_all)` query the filter calls for, binding in order:
    /// `first` if any, the filter's target id if it names one, its time range, the cursor
    /// (time, id) if the query pages, and the limit.
    pub(super) async fn filtered_rows(
        &self,
        operation: &'static str,
        (for_target, for_all): (&'static str, &'static str),
        filter: &HistoryFilter,
        first: Option<i64>,
        cursor: Option<(f64, i64)>,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let target_id = match &filter.target {
            Some(name) => Some(self.target_id(name, operation).await?),
            None => None,
        };
        let sql = match target_id {
            Some(_) => for_target,
            None => for_all,
        };
        Ok(with_pool!(self, readers, |pool, dialect| {
            let query = bind_present(sqlx::query(dialect.sql(sql)), [first, target_id])
                .bind(filter.since.map_or(f64::MIN, Timestamp::unix_secs_f64))
                .bind(filter.until.map_or(f64::MAX, Timestamp::unix_secs_f64));
            let query = match cursor {
                Some((at, id)) => query.bind(at).bind(id),
                None => query,
            };
            query
                .bind(filter.limit.map_or(-1, i64::from))
                .fetch_all(pool)
                .await
                .map_err(query_error(operation))?
                .into_iter()
                .map(AnyRow::from)
                .collect()
        }))
    }

    pub(super) async fn target_id(
        &self,
        name: &str,
        operation: &'static str,
    ) -> Result<i64, StoreError> {
        let id: Option<i64> = with_pool!(self, readers, |pool, dialect| {
            sqlx::query_scalar(dialect.sql("SELECT id FROM targets WHERE name = ?"))
                .bind(name)
                .fetch_optional(pool)
                .await
                .map_err(query_error(operation))?
        });
        id.ok_or_else(|| StoreError::UnknownTarget {
            name: name.to_string(),
        })
    }
}

/// Reads a number whatever its storage class (see [`super::backend::Column`]).
fn number(row: &impl StoreRow, column: &str) -> Result<Option<f64>, sqlx::Error> {
    row.value(column)
}

fn timestamp(row: &impl StoreRow, column: &str) -> Result<Timestamp, sqlx::Error> {
    let secs: f64 = row.value(column)?;
    Ok(Timestamp::from_unix_secs_f64(secs))
}

fn count(row: &impl StoreRow, column: &str) -> Result<u32, sqlx::Error> {
    let value: i64 = row.value(column)?;
    Ok(u32::try_from(value).unwrap_or(0))
}

pub(super) fn fleet_row(row: &impl StoreRow) -> Result<FleetRow, sqlx::Error> {
    let summary = FleetSummary {
        workers: count(row, "workers")?,
        ready: count(row, "ready")?,
        starting: count(row, "starting")?,
        inactive: count(row, "inactive")?,
        failed: count(row, "failed")?,
        load: number(row, "load")?,
        new_load: number(row, "new_load")?,
        load_rolling: number(row, "load_rolling")?,
        perf: number(row, "perf")?,
        cur_perf: number(row, "cur_perf")?,
        measured_perf: number(row, "measured_perf")?,
        reqs_working: number(row, "reqs_working")?,
    };
    Ok(FleetRow {
        poll_id: row.value("poll_id")?,
        target: row.value("target")?,
        polled_at: timestamp(row, "polled_at")?,
        utilization: summary.utilization(),
        summary,
    })
}

/// A raw poll as a timeline row: one poll, so its average, minimum and maximum agree.
fn raw_history_row(row: FleetRow) -> FleetHistoryRow {
    let summary = &row.summary;
    let count = |value: u32| Some(f64::from(value));
    let values = FleetValues {
        workers: count(summary.workers),
        ready: count(summary.ready),
        starting: count(summary.starting),
        inactive: count(summary.inactive),
        failed: count(summary.failed),
        load: summary.load,
        load_rolling: summary.load_rolling,
        perf: summary.perf,
        reqs_working: summary.reqs_working,
        utilization: row.utilization,
    };
    FleetHistoryRow {
        poll_id: Some(row.poll_id),
        target: row.target,
        at: row.polled_at,
        resolution: Resolution::Raw,
        polls: 1,
        avg: values,
        min: values,
        max: values,
    }
}

/// One statistic (`avg`, `min`, `max`) of every metric, from columns named as
/// `fleet_rollups` names them (`load_avg`, ...).
pub(super) fn fleet_values(
    row: &impl StoreRow,
    statistic: &str,
) -> Result<FleetValues, sqlx::Error> {
    let get = |metric: &str| number(row, &format!("{metric}_{statistic}"));
    Ok(FleetValues {
        workers: get("workers")?,
        ready: get("ready")?,
        starting: get("starting")?,
        inactive: get("inactive")?,
        failed: get("failed")?,
        load: get("load")?,
        load_rolling: get("load_rolling")?,
        perf: get("perf")?,
        reqs_working: get("reqs_working")?,
        utilization: get("utilization")?,
    })
}

pub(super) fn rollup_row(row: &impl StoreRow) -> Result<FleetHistoryRow, sqlx::Error> {
    let values = |statistic: &str| fleet_values(row, statistic);
    Ok(FleetHistoryRow {
        poll_id: None,
        target: row.value("target")?,
        at: timestamp(row, "bucket")?,
        resolution: Resolution::FiveMinutes,
        polls: count(row, "polls")?,
        avg: values("avg")?,
        min: values("min")?,
        max: values("max")?,
    })
}

pub(super) fn worker_row(
    row: &impl StoreRow,
    operation: &'static str,
) -> Result<WorkerRow, StoreError> {
    let read = || -> Result<(WorkerRow, Option<String>), sqlx::Error> {
        let mut sample = WorkerSample::new(row.value("worker_id")?);
        sample.status = row.value("status")?;
        for field in Field::ALL {
            sample.set(field, number(row, field.name())?);
        }
        let worker_row = WorkerRow {
            poll_id: row.value("poll_id")?,
            target: row.value("target")?,
            polled_at: timestamp(row, "polled_at")?,
            sample,
        };
        Ok((worker_row, row.value("extra")?))
    };
    let (mut worker_row, extra) = read().map_err(query_error(operation))?;
    if let Some(extra) = extra {
        let parsed = serde_json::from_str(&extra).map_err(|error| StoreError::BadRow {
            operation,
            detail: format!(
                "`extra` of worker {} in poll {} is not a JSON object: {error}",
                worker_row.sample.worker_id, worker_row.poll_id
            ),
        })?;
        worker_row.sample.extra = Some(parsed);
    }
    Ok(worker_row)
}

pub(super) fn poll_row(row: &impl StoreRow) -> Result<PollRow, sqlx::Error> {
    let duration_ms: i64 = row.value("duration_ms")?;
    let http_status: Option<i64> = row.value("http_status")?;
    let worker_count: Option<i64> = row.value("worker_count")?;
    Ok(PollRow {
        id: row.value("id")?,
        target: row.value("target")?,
        started_at: timestamp(row, "started_at")?,
        duration: Duration::from_millis(u64::try_from(duration_ms).unwrap_or(0)),
        outcome: row.value("outcome")?,
        error: row.value("error")?,
        http_status: http_status.and_then(|status| u16::try_from(status).ok()),
        worker_count: worker_count.map(|count| u32::try_from(count).unwrap_or(0)),
    })
}

/// Poll ids bound in one `IN (...)` list.
const POLL_IDS_PER_QUERY: usize = 500;

impl Store {
    /// Poll attempts in time order as the records that were stored: snapshots with their
    /// worker samples, failures with their reason. Feeds the rule engine's history at
    /// start and `vastwatch replay`.
    pub async fn poll_records(
        &self,
        filter: &HistoryFilter,
    ) -> Result<Vec<PollRecord>, StoreError> {
        const OPERATION: &str = "reading poll records";
        let polls = self.poll_history(filter).await?;
        let ok_ids: Vec<i64> = polls
            .iter()
            .filter(|poll| poll.is_ok())
            .map(|poll| poll.id)
            .collect();
        let mut samples: HashMap<i64, Vec<WorkerSample>> = HashMap::new();
        if filter.target.is_some() {
            // One target's polls are interleaved with every other target's, so a poll-id
            // range would read them all: look its polls up by key instead.
            for ids in ok_ids.chunks(POLL_IDS_PER_QUERY) {
                samples.extend(self.samples_of(Polls::Ids(ids)).await?);
            }
        } else if let (Some(first), Some(last)) = (ok_ids.iter().min(), ok_ids.iter().max()) {
            samples = self.samples_of(Polls::Range(*first, *last)).await?;
        }
        polls
            .into_iter()
            .map(|poll| {
                let result = if poll.is_ok() {
                    PollResult::Snapshot {
                        workers: samples.remove(&poll.id).unwrap_or_default(),
                        notes: Vec::new(),
                    }
                } else {
                    let kind =
                        FailureKind::parse(&poll.outcome).ok_or_else(|| StoreError::BadRow {
                            operation: OPERATION,
                            detail: format!(
                                "poll {} has unknown outcome `{}`",
                                poll.id, poll.outcome
                            ),
                        })?;
                    PollResult::Failed(PollFailure {
                        kind,
                        message: poll.error.clone().unwrap_or_default(),
                        http_status: poll.http_status,
                    })
                };
                Ok(PollRecord {
                    target: poll.target,
                    started_at: poll.started_at,
                    duration: poll.duration,
                    result,
                })
            })
            .collect()
    }
}

impl Store {
    /// The polls that started in `[since, until]`, oldest first, in the compact form the
    /// rule engine keeps: what `vastwatch replay` evaluates. The same polls as
    /// [`Store::poll_records`] over that range, read without the per-row copies.
    pub async fn compact_polls(
        &self,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<CompactPoll>, StoreError> {
        match &self.backend {
            Backend::Sqlite(sqlite) => {
                bulk_read::compact_polls(&sqlite.readers, since, until).await
            }
            Backend::Postgres(postgres) => {
                bulk_read_postgres::compact_polls(&postgres.pool, since, until).await
            }
        }
    }

    /// The worker samples of the selected polls, by poll id, each poll's in worker id order.
    pub(super) async fn samples_of(
        &self,
        polls: Polls<'_>,
    ) -> Result<HashMap<i64, Vec<WorkerSample>>, StoreError> {
        match &self.backend {
            Backend::Sqlite(sqlite) => bulk_read::samples_of(&sqlite.readers, polls).await,
            Backend::Postgres(postgres) => {
                bulk_read_postgres::samples_of(&postgres.pool, polls).await
            }
        }
    }

    /// When the oldest stored poll started, if any poll is stored.
    pub async fn oldest_poll(&self) -> Result<Option<Timestamp>, StoreError> {
        let oldest: Option<f64> = with_pool!(self, readers, |pool, dialect| {
            sqlx::query_scalar(dialect.sql("SELECT min(started_at) FROM polls"))
                .fetch_one(pool)
                .await
                .map_err(query_error("reading the oldest poll"))?
        });
        Ok(oldest.map(Timestamp::from_unix_secs_f64))
    }
}
