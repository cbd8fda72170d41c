//! Bulk reads of worker samples on PostgreSQL: the same results as [`super::bulk_read`]
//! gives on SQLite, read through sqlx's rows (PostgreSQL sends binary values, so there is
//! no C API to step through).

use std::collections::HashMap;

use sqlx::PgPool;
use sqlx::postgres::PgRow;

use super::backend::StoreRow;
use super::bulk_read::{COLUMNS, Polls, bad};
use super::error::{StoreError, query_error};
use crate::model::{CompactPoll, FailureKind, Field, HistSample, WorkerSample};
use crate::time::Timestamp;

const OPERATION: &str = "reading worker samples";

/// The worker samples of the selected polls, by poll id, each poll's in worker id order.
pub(super) async fn samples_of(
    pool: &PgPool,
    polls: Polls<'_>,
) -> Result<HashMap<i64, Vec<WorkerSample>>, StoreError> {
    let rows = match polls {
        Polls::Range(first, last) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM worker_samples WHERE poll_id BETWEEN $1 AND $2 \
                 ORDER BY poll_id, worker_id"
            )))
            .bind(first)
            .bind(last)
            .fetch_all(pool)
            .await
        }
        Polls::Ids(ids) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM worker_samples WHERE poll_id = ANY($1) \
                 ORDER BY poll_id, worker_id"
            )))
            .bind(ids)
            .fetch_all(pool)
            .await
        }
    }
    .map_err(query_error(OPERATION))?;
    let mut samples: HashMap<i64, Vec<WorkerSample>> = HashMap::new();
    for row in &rows {
        let (poll_id, sample) = decode_row(row)?;
        samples.entry(poll_id).or_default().push(sample);
    }
    Ok(samples)
}

/// Every poll that started in `[since, until]`, in time order, each successful one with
/// its workers in compact form: what replay evaluates.
pub(super) async fn compact_polls(
    pool: &PgPool,
    since: Timestamp,
    until: Timestamp,
) -> Result<Vec<CompactPoll>, StoreError> {
    let rows: Vec<(i64, String, f64, String)> = sqlx::query_as(
        "SELECT p.id, t.name, p.started_at, p.outcome FROM polls AS p \
         JOIN targets AS t ON t.id = p.target_id \
         WHERE p.started_at BETWEEN $1 AND $2 ORDER BY p.started_at, p.id",
    )
    .bind(since.unix_secs_f64())
    .bind(until.unix_secs_f64())
    .fetch_all(pool)
    .await
    .map_err(query_error(OPERATION))?;
    let mut ok_ids = Vec::new();
    for (id, _, _, outcome) in &rows {
        if outcome == "ok" {
            ok_ids.push(*id);
        } else if FailureKind::parse(outcome).is_none() {
            return Err(bad(format!("poll {id} has unknown outcome `{outcome}`")));
        }
    }
    let mut samples = match (ok_ids.iter().min(), ok_ids.iter().max()) {
        (Some(first), Some(last)) => samples_of(pool, Polls::Range(*first, *last)).await?,
        _ => HashMap::new(),
    };
    Ok(rows
        .into_iter()
        .map(|(id, target, started_at, outcome)| CompactPoll {
            target,
            started_at: Timestamp::from_unix_secs_f64(started_at),
            workers: (outcome == "ok").then(|| {
                samples
                    .remove(&id)
                    .unwrap_or_default()
                    .iter()
                    .map(HistSample::from_sample)
                    .collect()
            }),
        })
        .collect())
}

/// Reads one row of [`COLUMNS`].
fn decode_row(row: &PgRow) -> Result<(i64, WorkerSample), StoreError> {
    let read = || -> Result<(i64, WorkerSample, Option<String>), sqlx::Error> {
        let poll_id: i64 = row.value("poll_id")?;
        let mut sample = WorkerSample::new(row.value("worker_id")?);
        sample.status = row.value("status")?;
        for field in Field::ALL {
            sample.set(field, row.value(field.name())?);
        }
        Ok((poll_id, sample, row.value("extra")?))
    };
    let (poll_id, mut sample, extra) = read().map_err(query_error(OPERATION))?;
    if let Some(extra) = extra {
        sample.extra = Some(serde_json::from_str(&extra).map_err(|error| {
            bad(format!(
                "`extra` of worker {} in poll {poll_id} is not a JSON object: {error}",
                sample.worker_id
            ))
        })?);
    }
    Ok((poll_id, sample))
}
