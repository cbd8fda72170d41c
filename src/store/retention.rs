//! Retention: deleting old polls with their samples and fleet sums in small transactions,
//! so that a large cleanup never holds the write lock long enough to delay a tick.

use sqlx::Row;

use super::Store;
use super::error::{StoreError, query_error};
use super::ingest::begin_write;
use super::rows::Deleted;
use crate::time::Timestamp;

/// Worker samples deleted per transaction (a poll's samples are never split, so a batch
/// can exceed this by one poll's worth).
const BATCH_SAMPLES: i64 = 5_000;
/// Polls considered per transaction, which bounds a batch of failed or empty polls.
const BATCH_POLLS: i64 = 1_000;

impl Store {
    /// Deletes every poll that started before `cutoff`, failed or not, with its worker
    /// samples and fleet sums, a few thousand rows per transaction with a yield between,
    /// and reports how much went.
    pub async fn delete_samples_before(&self, cutoff: Timestamp) -> Result<Deleted, StoreError> {
        let mut total = Deleted::default();
        loop {
            let batch = self.delete_batch_before(cutoff).await?;
            if batch.polls == 0 {
                return Ok(total);
            }
            total.polls += batch.polls;
            total.samples += batch.samples;
            tokio::task::yield_now().await;
        }
    }

    async fn delete_batch_before(&self, cutoff: Timestamp) -> Result<Deleted, StoreError> {
        const OPERATION: &str = "deleting old samples";
        let mut transaction = begin_write(&self.writer, OPERATION).await?;
        let candidates = sqlx::query(
            "SELECT id, COALESCE(worker_count, 0) AS samples FROM polls \
             WHERE started_at < ? ORDER BY started_at, id LIMIT ?",
        )
        .bind(cutoff.unix_secs_f64())
        .bind(BATCH_POLLS)
        .fetch_all(&mut *transaction)
        .await
        .map_err(query_error(OPERATION))?;
        let mut poll_ids = Vec::new();
        let mut samples = 0i64;
        for row in &candidates {
            if !poll_ids.is_empty() && samples >= BATCH_SAMPLES {
                break;
            }
            let id: i64 = row.try_get("id").map_err(query_error(OPERATION))?;
            let count: i64 = row.try_get("samples").map_err(query_error(OPERATION))?;
            poll_ids.push(id);
            samples += count;
        }
        if poll_ids.is_empty() {
            return Ok(Deleted::default());
        }
        let ids = serde_json::to_string(&poll_ids).map_err(|error| StoreError::BadRow {
            operation: OPERATION,
            detail: error.to_string(),
        })?;
        let mut deleted = Deleted::default();
        for (sql, counter) in [
            (
                "DELETE FROM worker_samples WHERE poll_id IN (SELECT value FROM json_each(?))",
                Some(&mut deleted.samples),
            ),
            (
                "DELETE FROM fleet_totals WHERE poll_id IN (SELECT value FROM json_each(?))",
                None,
            ),
            (
                "DELETE FROM polls WHERE id IN (SELECT value FROM json_each(?))",
                Some(&mut deleted.polls),
            ),
        ] {
            let result = sqlx::query(sql)
                .bind(ids.as_str())
                .execute(&mut *transaction)
                .await
                .map_err(query_error(OPERATION))?;
            if let Some(counter) = counter {
                *counter = result.rows_affected();
            }
        }
        transaction.commit().await.map_err(query_error(OPERATION))?;
        Ok(deleted)
    }
}
