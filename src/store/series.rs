//! Reads for the status page: a target's fleet history averaged into fixed-width buckets
//! (raw polls and, where they have expired, five-minute rollups, in one query), the
//! intervals its alerts were firing, and the workers of its latest successful poll.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use super::Store;
use super::backend::{Dialect, StoreRow, with_pool};
use super::bulk_read::Polls;
use super::error::{StoreError, query_error};
use super::history::fleet_values;
use super::retention::ROLLUP_METRICS as METRICS;
use super::rows::FleetValues;
use crate::model::WorkerSample;
use crate::rules::{AlertState, Severity};
use crate::time::Timestamp;

/// Raw polls and expired rollups of one target in `[?2, ?3]`, grouped into buckets of ?4
/// seconds counted from ?2; a raw poll's metrics are computed as retention computes them
/// for a rollup (`ROLLUP_METRICS`). A rollup weighs as many polls as it holds, so a bucket's
/// average is the average over its polls whichever way they are stored; a missing value
/// weighs nothing. Rollups are read only before the target's oldest raw poll, so no time
/// is counted twice.
static SERIES_SQL: LazyLock<String> =
    LazyLock::new(|| series_sql("CAST((at - ?2) / ?4 AS INTEGER)"));

/// [`SERIES_SQL`] for PostgreSQL, whose CAST rounds where SQLite's truncates.
static SERIES_SQL_POSTGRES: LazyLock<String> =
    LazyLock::new(|| series_sql("CAST(floor((at - ?2) / ?4) AS BIGINT)"));

fn series_sql(slot: &str) -> String {
    let raw: Vec<String> = METRICS
        .iter()
        .map(|(name, expr)| format!("{expr} AS {name}_avg, {expr} AS {name}_max"))
        .collect();
    let rollup: Vec<String> = METRICS
        .iter()
        .map(|(name, _)| format!("r.{name}_avg, r.{name}_max"))
        .collect();
    let grouped: Vec<String> = METRICS
        .iter()
        .map(|(name, _)| {
            format!(
                "sum({name}_avg * polls) / sum(CASE WHEN {name}_avg IS NOT NULL THEN polls END) \
                 AS {name}_avg, max({name}_max) AS {name}_max"
            )
        })
        .collect();
    format!(
        "WITH rows AS (\
           SELECT p.started_at AS at, 1 AS polls, {raw} \
           FROM polls AS p JOIN fleet_totals AS f ON f.poll_id = p.id \
           WHERE p.target_id = ?1 AND p.started_at BETWEEN ?2 AND ?3 \
           UNION ALL \
           SELECT r.bucket AS at, r.polls AS polls, {rollup} \
           FROM fleet_rollups AS r \
           WHERE r.target_id = ?1 AND r.bucket BETWEEN ?2 AND ?3 \
             AND r.bucket < coalesce((SELECT min(started_at) FROM polls WHERE target_id = ?1), 1e308)\
         ) \
         SELECT {slot} AS slot, CAST(sum(polls) AS BIGINT) AS polls, {grouped} \
         FROM rows GROUP BY slot ORDER BY slot",
        raw = raw.join(", "),
        rollup = rollup.join(", "),
        grouped = grouped.join(", "),
    )
}

/// The most buckets a series holds: a chart is rarely wider than this many pixels, so
/// finer data would be drawn over itself.
pub const MAX_SERIES_POINTS: u32 = 2_000;

/// Buckets a series has when no step is asked for: about one per two pixels of a chart.
const DEFAULT_SERIES_POINTS: u32 = 720;

/// The bucket width for a series over `[since, until]`: `requested` (or about
/// [`DEFAULT_SERIES_POINTS`] buckets' worth), widened so the range never needs more than
/// [`MAX_SERIES_POINTS`], in whole seconds and at least one.
pub fn series_step(since: Timestamp, until: Timestamp, requested: Option<Duration>) -> Duration {
    let range = until.duration_since(since).as_secs_f64();
    // Slots run from 0 to range / step, both ends included.
    let widest_needed = (range / f64::from(MAX_SERIES_POINTS - 1)).ceil();
    let wanted = requested.map_or(range / f64::from(DEFAULT_SERIES_POINTS), |step| {
        step.as_secs_f64()
    });
    Duration::from_secs(wanted.ceil().max(widest_needed).max(1.0) as u64)
}

/// One bucket of [`Store::fleet_series`]: the polls that started in
/// `[start, start + step)`.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesBucket {
    pub start: Timestamp,
    /// Successful polls in the bucket, rolled up ones included.
    pub polls: u32,
    pub avg: FleetValues,
    pub max: FleetValues,
}

/// One episode of an alert firing. `end` is `None` while it still fires.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertInterval {
    pub fingerprint: String,
    pub alertname: String,
    pub worker_id: Option<i64>,
    pub severity: Severity,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
}

/// The workers of a target's latest successful poll.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestWorkers {
    pub polled_at: Timestamp,
    pub workers: Vec<WorkerSample>,
}

impl Store {
    /// `target`'s fleet numbers from `since` to `until`, averaged (and maximised) over
    /// buckets of `step` starting at `since`; buckets without a successful poll are left
    /// out. Raw polls where they are kept, five-minute rollups before them.
    pub async fn fleet_series(
        &self,
        target: &str,
        since: Timestamp,
        until: Timestamp,
        step: Duration,
    ) -> Result<Vec<SeriesBucket>, StoreError> {
        const OPERATION: &str = "reading a fleet series";
        let target_id = self.target_id(target, OPERATION).await?;
        let step_secs = step.as_secs_f64().max(0.001);
        with_pool!(self, readers, |pool, dialect| {
            let sql = match dialect {
                Dialect::Sqlite => SERIES_SQL.as_str(),
                Dialect::Postgres => SERIES_SQL_POSTGRES.as_str(),
            };
            let rows = sqlx::query(dialect.owned(sql.to_string()))
                .bind(target_id)
                .bind(since.unix_secs_f64())
                .bind(until.unix_secs_f64())
                .bind(step_secs)
                .fetch_all(pool)
                .await
                .map_err(query_error(OPERATION))?;
            rows.iter()
                .map(|row| {
                    let slot: i64 = row.value("slot")?;
                    let polls: i64 = row.value("polls")?;
                    Ok(SeriesBucket {
                        start: Timestamp::from_unix_secs_f64(
                            since.unix_secs_f64() + slot as f64 * step_secs,
                        ),
                        polls: u32::try_from(polls).unwrap_or(0),
                        avg: fleet_values(row, "avg")?,
                        max: fleet_values(row, "max")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(query_error(OPERATION))
        })
    }

    /// The episodes in which `target`'s alerts fired that overlap `[since, until]`, by
    /// start. Read from `alert_events`, so retention bounds how far back they go.
    pub async fn alert_intervals(
        &self,
        target: &str,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<AlertInterval>, StoreError> {
        const OPERATION: &str = "reading alert intervals";
        let rows: Vec<(String, String, Option<i64>, String, f64, String)> =
            with_pool!(self, readers, |pool, dialect| {
                sqlx::query_as(dialect.sql(
                    "SELECT e.fingerprint, a.alertname, a.worker_id, a.severity, e.at, \
                     e.to_state FROM alert_events AS e JOIN alerts AS a USING (fingerprint) \
                     WHERE a.target = ?1 AND e.at <= ?2 \
                       AND (e.to_state = 'firing' OR e.from_state = 'firing') \
                     ORDER BY e.at, e.id",
                ))
                .bind(target)
                .bind(until.unix_secs_f64())
                .fetch_all(pool)
                .await
                .map_err(query_error(OPERATION))?
            });
        let mut open: HashMap<String, AlertInterval> = HashMap::new();
        let mut intervals = Vec::new();
        for (fingerprint, alertname, worker_id, severity, at, to_state) in rows {
            let at = Timestamp::from_unix_secs_f64(at);
            if AlertState::parse(&to_state) == Some(AlertState::Firing) {
                let interval = AlertInterval {
                    fingerprint: fingerprint.clone(),
                    alertname,
                    worker_id,
                    severity: Severity::parse(&severity).ok_or_else(|| StoreError::BadRow {
                        operation: OPERATION,
                        detail: format!("unknown severity `{severity}`"),
                    })?,
                    start: at,
                    end: None,
                };
                open.insert(fingerprint, interval);
            } else if let Some(mut interval) = open.remove(&fingerprint) {
                interval.end = Some(at);
                intervals.push(interval);
            }
        }
        intervals.extend(open.into_values());
        intervals.retain(|interval| interval.end.is_none_or(|end| end >= since));
        intervals.sort_by(|a, b| (a.start, &a.fingerprint).cmp(&(b.start, &b.fingerprint)));
        Ok(intervals)
    }

    /// The workers of `target`'s latest successful poll, by worker id; `None` before its
    /// first one.
    pub async fn latest_workers(&self, target: &str) -> Result<Option<LatestWorkers>, StoreError> {
        const OPERATION: &str = "reading the latest workers";
        let target_id = self.target_id(target, OPERATION).await?;
        let latest: Option<(i64, f64)> = with_pool!(self, readers, |pool, dialect| {
            sqlx::query_as(dialect.sql(
                "SELECT id, started_at FROM polls WHERE target_id = ? AND outcome = 'ok' \
                 ORDER BY started_at DESC, id DESC LIMIT 1",
            ))
            .bind(target_id)
            .fetch_optional(pool)
            .await
            .map_err(query_error(OPERATION))?
        });
        let Some((poll_id, started_at)) = latest else {
            return Ok(None);
        };
        let mut samples = self.samples_of(Polls::Ids(&[poll_id])).await?;
        let mut workers = samples.remove(&poll_id).unwrap_or_default();
        workers.sort_by_key(|worker| worker.worker_id);
        Ok(Some(LatestWorkers {
            polled_at: Timestamp::from_unix_secs_f64(started_at),
            workers,
        }))
    }
}

#[cfg(test)]
mod tests;
