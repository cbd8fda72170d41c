//! Retention: rolling expired polls up into five-minute `fleet_rollups` and deleting them,
//! and deleting whatever else is past its `retention:` age, in small transactions with a
//! yield between, so that a large cleanup never holds the write lock long enough to delay
//! a tick.

use std::sync::LazyLock;

use super::Store;
use super::backend::{Dialect, StoreRow, WriteTx, on_tx, with_pool};
use super::error::{StoreError, query_error};
use super::rows::{Deleted, RetentionCutoffs};
use crate::time::Timestamp;

/// Length of a rollup bucket in seconds. Buckets start at multiples of it (unix time).
pub const ROLLUP_SECS: i64 = 300;

/// Worker samples deleted per transaction. A target's bucket is never split (its rollup
/// and the deletion of its polls are one transaction), so a batch can exceed this by one
/// target's five minutes of samples.
const BATCH_SAMPLES: i64 = 5_000;
/// Rows deleted per statement from the other tables.
const BATCH_ROWS: i64 = 2_000;

/// The numbers a rollup aggregates, as `fleet_rollups` names them, and how each is read
/// from a poll's `fleet_totals` row `f` (the `fleet_samples` view's definitions).
pub(super) const ROLLUP_METRICS: [(&str, &str); 10] = [
    ("workers", "f.workers"),
    ("ready", "f.ready"),
    ("starting", "f.starting"),
    ("inactive", "f.inactive"),
    ("failed", "f.failed"),
    ("load", "f.load"),
    ("load_rolling", "f.load_rolling"),
    ("perf", "f.perf"),
    ("reqs_working", "f.reqs_working"),
    (
        "utilization",
        "CASE WHEN f.perf <> 0 THEN f.load_rolling / f.perf END",
    ),
];

/// Rolls up chosen targets' polls in one bucket: `?1` JSON array of target ids, `?2`..`?3`
/// the bucket's time range (its start is the bucket). A bucket that already has a row (polls
/// stored after their bucket was rolled up, which the daemon itself never does) is merged,
/// averages weighted by polls, so nothing is counted twice or lost.
static ROLL_UP: LazyLock<String> = LazyLock::new(|| roll_up_sql(Dialect::Sqlite));
static ROLL_UP_POSTGRES: LazyLock<String> = LazyLock::new(|| roll_up_sql(Dialect::Postgres));

/// The targets of a batch, from `?1`, a JSON array of ids.
fn batch_targets(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "SELECT value FROM json_each(?1)",
        Dialect::Postgres => {
            "SELECT CAST(value AS BIGINT) FROM json_array_elements_text(CAST(?1 AS json))"
        }
    }
}

/// [`ROLL_UP`] in `dialect`. The existing row's columns are named with the table, which
/// PostgreSQL requires beside `excluded`.
fn roll_up_sql(dialect: Dialect) -> String {
    let (least, greatest) = match dialect {
        Dialect::Sqlite => ("min", "max"),
        Dialect::Postgres => ("least", "greatest"),
    };
    let mut columns = Vec::new();
    let mut aggregates = Vec::new();
    let mut merges = vec!["polls = fleet_rollups.polls + excluded.polls".to_string()];
    for (name, expression) in ROLLUP_METRICS {
        columns.push(format!("{name}_avg, {name}_min, {name}_max"));
        aggregates.push(format!(
            "avg({expression}), min({expression}), max({expression})"
        ));
        let old = |column: &str| format!("fleet_rollups.{name}_{column}");
        let (avg, polls) = (old("avg"), "fleet_rollups.polls");
        merges.push(format!(
            "{name}_avg = CASE WHEN {avg} IS NULL THEN excluded.{name}_avg \
             WHEN excluded.{name}_avg IS NULL THEN {avg} \
             ELSE ({avg} * {polls} + excluded.{name}_avg * excluded.polls) \
             / ({polls} + excluded.polls) END"
        ));
        for (extreme, function) in [("min", least), ("max", greatest)] {
            let existing = old(extreme);
            merges.push(format!(
                "{name}_{extreme} = {function}(coalesce({existing}, excluded.{name}_{extreme}), \
                 coalesce(excluded.{name}_{extreme}, {existing}))"
            ));
        }
    }
    format!(
        "INSERT INTO fleet_rollups (target_id, bucket, polls, {}) \
         SELECT p.target_id, CAST(?2 AS BIGINT), count(*), {} \
         FROM polls AS p JOIN fleet_totals AS f ON f.poll_id = p.id \
         WHERE p.target_id IN ({}) \
         AND p.started_at >= ?2 AND p.started_at < ?3 \
         GROUP BY p.target_id \
         ON CONFLICT (target_id, bucket) DO UPDATE SET {}",
        columns.join(", "),
        aggregates.join(", "),
        batch_targets(dialect),
        merges.join(", ")
    )
}

/// The polls of a rolled-up batch: `?1` JSON array of target ids, `?2`..`?3` time range.
fn batch_polls(dialect: Dialect) -> String {
    format!(
        "SELECT id FROM polls WHERE target_id IN ({}) AND started_at >= ?2 AND started_at < ?3",
        batch_targets(dialect)
    )
}

/// The single-statement deletes, each taking `?1` the cutoff (unix seconds) and `?2` the
/// batch size, and each filtering on an indexed time column.
pub(super) const PRUNE_ROLLUPS: &str = "DELETE FROM fleet_rollups WHERE (target_id, bucket) IN \
     (SELECT target_id, bucket FROM fleet_rollups WHERE bucket < ?1 LIMIT ?2)";
/// Events of alerts that are not pending or firing: an active alert keeps its episode.
pub(super) const PRUNE_ALERT_EVENTS: &str = "DELETE FROM alert_events WHERE id IN \
     (SELECT e.id FROM alert_events AS e JOIN alerts AS a ON a.fingerprint = e.fingerprint \
      WHERE e.at < ?1 AND a.state NOT IN ('pending', 'firing') LIMIT ?2)";
/// Resolved (or never fired) instances last evaluated before the cutoff, once no event
/// refers to them. `last_eval_at` is never older than the last event.
pub(super) const PRUNE_ALERTS: &str = "DELETE FROM alerts WHERE fingerprint IN \
     (SELECT a.fingerprint FROM alerts AS a \
      WHERE a.state IN ('inactive', 'resolved') AND a.last_eval_at < ?1 \
      AND NOT EXISTS (SELECT 1 FROM alert_events AS e WHERE e.fingerprint = a.fingerprint) \
      LIMIT ?2)";
/// Every recommendation before the cutoff except each target's latest, which the engine
/// resumes from (the latest as `latest_recommendations` orders them).
pub(super) const PRUNE_RECOMMENDATIONS: &str = "DELETE FROM recommendations WHERE id IN \
     (SELECT r.id FROM recommendations AS r WHERE r.at < ?1 \
      AND r.id <> (SELECT l.id FROM recommendations AS l WHERE l.target = r.target \
                   ORDER BY l.at DESC, l.id DESC LIMIT 1) \
      LIMIT ?2)";
/// Delivered and failed messages; pending ones wait for delivery however old.
pub(super) const PRUNE_NOTIFICATIONS: &str = "DELETE FROM notifications WHERE id IN \
     (SELECT id FROM notifications WHERE status IN ('delivered', 'failed') \
      AND created_at < ?1 LIMIT ?2)";
/// What a receiver was last sent for a group with nothing firing (`firing` is the empty
/// JSON array the store writes): forgetting it changes nothing, since a new firing alert
/// is news either way.
pub(super) const PRUNE_NOTIFICATION_LOG: &str = "DELETE FROM notification_log \
     WHERE (group_key, receiver) IN \
     (SELECT group_key, receiver FROM notification_log \
      WHERE sent_at < ?1 AND firing = '[]' LIMIT ?2)";
/// Silences that ended.
pub(super) const PRUNE_SILENCES: &str = "DELETE FROM silences WHERE id IN \
     (SELECT id FROM silences WHERE ends_at < ?1 LIMIT ?2)";

/// The statements a roll-up batch runs, named, for the query-plan test.
#[cfg(test)]
pub(super) fn roll_up_statements() -> Vec<(&'static str, String)> {
    vec![
        ("oldest poll", OLDEST_POLL.to_string()),
        ("targets of a bucket", BUCKET_TARGETS.to_string()),
        ("roll up", ROLL_UP.clone()),
        ("polls of a batch", batch_polls(Dialect::Sqlite)),
    ]
}

const OLDEST_POLL: &str = "SELECT min(started_at) FROM polls WHERE started_at < ?";
const BUCKET_TARGETS: &str = "SELECT target_id, CAST(sum(coalesce(worker_count, 0)) AS BIGINT) \
     AS samples FROM polls WHERE started_at >= ? AND started_at < ? \
     GROUP BY target_id ORDER BY target_id";

impl Store {
    /// Applies every retention age: rolls up and deletes old polls (see
    /// [`Store::delete_samples_before`]), then deletes old rollups, alert history,
    /// recommendations, notifications and silences. Reports what went, table by table.
    pub async fn apply_retention(&self, cutoffs: &RetentionCutoffs) -> Result<Deleted, StoreError> {
        let mut deleted = self.delete_samples_before(cutoffs.samples).await?;
        deleted.rollups = self.prune(PRUNE_ROLLUPS, cutoffs.rollups).await?;
        deleted.alert_events = self.prune(PRUNE_ALERT_EVENTS, cutoffs.alerts).await?;
        deleted.alerts = self.prune(PRUNE_ALERTS, cutoffs.alerts).await?;
        deleted.recommendations = self
            .prune(PRUNE_RECOMMENDATIONS, cutoffs.recommendations)
            .await?;
        deleted.notifications = self
            .prune(PRUNE_NOTIFICATIONS, cutoffs.notifications)
            .await?;
        deleted.notification_log = self
            .prune(PRUNE_NOTIFICATION_LOG, cutoffs.notifications)
            .await?;
        deleted.silences = self.prune(PRUNE_SILENCES, cutoffs.silences).await?;
        Ok(deleted)
    }

    /// Deletes every poll that started before `cutoff` rounded down to a five-minute
    /// bucket, failed or not, with its worker samples and fleet sums, after rolling its
    /// successful polls up into `fleet_rollups`. Each transaction rolls up whole buckets
    /// of whole targets and deletes exactly the polls it rolled up, so a crash leaves
    /// every bucket either rolled up and gone or untouched.
    pub async fn delete_samples_before(&self, cutoff: Timestamp) -> Result<Deleted, StoreError> {
        let cutoff = cutoff.unix_millis().div_euclid(1000 * ROLLUP_SECS) * ROLLUP_SECS;
        let mut total = Deleted::default();
        loop {
            let batch = self.roll_up_batch(cutoff).await?;
            if batch.polls == 0 {
                return Ok(total);
            }
            total.polls += batch.polls;
            total.samples += batch.samples;
            total.rolled_up += batch.rolled_up;
            tokio::task::yield_now().await;
        }
    }

    /// Rolls up and deletes the oldest bucket before `cutoff` (unix seconds, a bucket
    /// boundary) for as many of its targets as fit in one batch.
    async fn roll_up_batch(&self, cutoff: i64) -> Result<Deleted, StoreError> {
        const OPERATION: &str = "rolling up and deleting old samples";
        let mut transaction = WriteTx::begin(&self.backend, OPERATION).await?;
        let deleted = on_tx!(&mut transaction, |connection, dialect| {
            let oldest: Option<f64> = sqlx::query_scalar(dialect.sql(OLDEST_POLL))
                .bind(cutoff as f64)
                .fetch_one(&mut *connection)
                .await
                .map_err(query_error(OPERATION))?;
            let Some(oldest) = oldest else {
                return Ok(Deleted::default());
            };
            let bucket = (oldest.floor() as i64).div_euclid(ROLLUP_SECS) * ROLLUP_SECS;
            let range = (bucket as f64, (bucket + ROLLUP_SECS) as f64);
            let per_target = sqlx::query(dialect.sql(BUCKET_TARGETS))
                .bind(range.0)
                .bind(range.1)
                .fetch_all(&mut *connection)
                .await
                .map_err(query_error(OPERATION))?;
            let mut targets = Vec::new();
            let mut samples = 0i64;
            for row in &per_target {
                if !targets.is_empty() && samples >= BATCH_SAMPLES {
                    break;
                }
                targets.push(
                    row.value::<i64>("target_id")
                        .map_err(query_error(OPERATION))?,
                );
                samples += row
                    .value::<i64>("samples")
                    .map_err(query_error(OPERATION))?;
            }
            let targets = serde_json::to_string(&targets).map_err(|error| StoreError::BadRow {
                operation: OPERATION,
                detail: error.to_string(),
            })?;
            let roll_up = match dialect {
                Dialect::Sqlite => ROLL_UP.clone(),
                Dialect::Postgres => ROLL_UP_POSTGRES.clone(),
            };
            let in_batch = format!("IN ({})", batch_polls(dialect));
            let mut deleted = Deleted::default();
            for (sql, counter) in [
                (roll_up, Some(&mut deleted.rolled_up)),
                (
                    format!("DELETE FROM worker_samples WHERE poll_id {in_batch}"),
                    Some(&mut deleted.samples),
                ),
                (
                    format!("DELETE FROM fleet_totals WHERE poll_id {in_batch}"),
                    None,
                ),
                (
                    format!("DELETE FROM polls WHERE id {in_batch}"),
                    Some(&mut deleted.polls),
                ),
            ] {
                // Only fixed statements are formatted together; values are bound.
                let affected = sqlx::query(dialect.owned(sql))
                    .bind(targets.as_str())
                    .bind(range.0)
                    .bind(range.1)
                    .execute(&mut *connection)
                    .await
                    .map_err(query_error(OPERATION))?
                    .rows_affected();
                if let Some(counter) = counter {
                    *counter = affected;
                }
            }
            deleted
        });
        transaction.commit(OPERATION).await?;
        Ok(deleted)
    }

    /// Runs one of the `PRUNE_*` deletes until it finds no more rows, one batch per
    /// statement (each its own transaction) with a yield between.
    async fn prune(&self, sql: &'static str, cutoff: Timestamp) -> Result<u64, StoreError> {
        const OPERATION: &str = "deleting rows past retention";
        let mut total = 0;
        loop {
            let affected = with_pool!(self, writer, |pool, dialect| {
                sqlx::query(dialect.sql(sql))
                    .bind(cutoff.unix_secs_f64())
                    .bind(BATCH_ROWS)
                    .execute(pool)
                    .await
                    .map_err(query_error(OPERATION))?
                    .rows_affected()
            });
            total += affected;
            if affected < BATCH_ROWS as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}
