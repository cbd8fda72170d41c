//! Delivery workers: one per receiver, so a slow or dead receiver never holds up another,
//! nor polling and evaluation. Each takes due rows from the outbox, attempts them, and
//! records every outcome; retries back off exponentially with jitter until `max_age`.
//!
//! Rows of one group go out in order: a row waits while an older row of its group and
//! receiver is still pending, so a receiver never hears "resolved" before "firing".

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::message::Message;
use super::notifier::NotifyStats;
use super::receiver::Receiver;
use super::send::{Outcome, Sender};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::store::{AttemptRecord, NotificationRow, Store};
use crate::time::Timestamp;

/// Rows taken per round; at most one per group, sent concurrently.
const BATCH: u32 = 64;
/// How long a claim on an outbox row outlasts the receiver's timeout: a replica that dies
/// mid-send leaves its rows to the others after this (sooner when the leader sees it gone).
const CLAIM_MARGIN: Duration = Duration::from_secs(30);
/// How often a worker looks for rows that another replica queued (`ha:`): it hears of
/// its own process's rows at once.
const SHARED_OUTBOX_EVERY: Duration = Duration::from_secs(1);
/// How long the worker waits after a database error.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);

/// The delay before attempt `attempt + 1`, after `attempt` failed attempts (SPEC §8.3:
/// about 5s, 30s, 2m, 10m, 30m, then hourly), before jitter.
pub fn backoff(attempts: u32) -> Duration {
    const STEPS: [u64; 5] = [5, 30, 120, 600, 1800];
    let index = attempts.saturating_sub(1) as usize;
    Duration::from_secs(STEPS.get(index).copied().unwrap_or(3600))
}

/// `delay` moved by up to ±20 %, so receivers that come back are not hit by every
/// sender at once.
fn jittered(delay: Duration) -> Duration {
    let factor = rand::rng().random_range(0.8..=1.2);
    delay.mul_f64(factor)
}

/// What to record after an attempt.
pub fn settle(
    row: &NotificationRow,
    outcome: Outcome,
    now: Timestamp,
    max_age: Duration,
) -> AttemptRecord {
    let id = row.id.clone();
    match outcome {
        Outcome::Delivered { .. } => AttemptRecord::Delivered { id, at: now },
        Outcome::Failed { error } => AttemptRecord::Failed { id, error },
        Outcome::Retry { error, retry_after } => {
            let attempts = row.attempts + 1;
            let delay = jittered(backoff(attempts)).max(retry_after.unwrap_or_default());
            let next = now.saturating_add(delay);
            let give_up_at = row.created_at.saturating_add(max_age);
            if next > give_up_at {
                AttemptRecord::Failed {
                    id,
                    error: format!(
                        "gave up after {attempts} attempts (max_age {}): {error}",
                        crate::time::format_duration(max_age)
                    ),
                }
            } else {
                AttemptRecord::Retry {
                    id,
                    error,
                    next_attempt_at: next,
                }
            }
        }
    }
}

/// Delivers one receiver's outbox rows.
pub struct DeliveryWorker {
    pub store: Store,
    pub clock: Clock,
    pub sender: Sender,
    pub receiver: Arc<Receiver>,
    pub max_age: Duration,
    pub wake: Arc<Notify>,
    pub stats: Arc<NotifyStats>,
    pub metrics: Arc<Metrics>,
    /// Who claims the rows it sends: this replica's id, or `vastwatch` for a process alone.
    pub claimant: String,
    /// Whether other replicas queue rows too, so the outbox must be looked at regularly.
    pub shared: bool,
}

impl DeliveryWorker {
    /// Attempts every row due now once; returns what was recorded.
    pub async fn deliver_due(&self) -> Result<Vec<AttemptRecord>, crate::store::StoreError> {
        let now = self.clock.now();
        let until = now.saturating_add(self.receiver.attempt_timeout() + CLAIM_MARGIN);
        let rows = self
            .store
            .claim_due_notifications(&self.receiver.name, now, BATCH, &self.claimant, until)
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut attempts = JoinSet::new();
        for row in rows {
            let sender = self.sender.clone();
            let receiver = Arc::clone(&self.receiver);
            let clock = self.clock.clone();
            let max_age = self.max_age;
            attempts.spawn(async move {
                let outcome = match serde_json::from_str::<Message>(&row.payload) {
                    Ok(message) => sender.send(&receiver, &row.id, &message, clock.now()).await,
                    Err(error) => Outcome::Failed {
                        error: format!("the stored payload cannot be read: {error}"),
                    },
                };
                let record = settle(&row, outcome, clock.now(), max_age);
                log_attempt(&receiver.name, &row, &record);
                record
            });
        }
        let mut records = Vec::with_capacity(attempts.len());
        while let Some(joined) = attempts.join_next().await {
            if let Ok(record) = joined {
                records.push(record);
            }
        }
        self.store.record_attempts(&records).await?;
        for record in &records {
            let counter = match record {
                AttemptRecord::Delivered { .. } => &self.stats.delivered,
                AttemptRecord::Retry { .. } => &self.stats.retried,
                AttemptRecord::Failed { .. } => &self.stats.failed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            self.metrics
                .notification_attempted(&self.receiver.name, record);
        }
        Ok(records)
    }

    /// Delivers until `stop` turns true, sleeping until the next row is due or new rows
    /// arrive.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            // Shutdown does not wait for a slow receiver: the attempt is dropped, its row
            // stays pending, and the next start sends it again under the same id.
            let delivered = tokio::select! {
                delivered = self.deliver_due() => delivered,
                _ = stop.wait_for(|stopping| *stopping) => return,
            };
            let wait_until = match delivered {
                Ok(records) if !records.is_empty() => continue,
                Ok(_) => match self.store.next_attempt_at(&self.receiver.name).await {
                    Ok(next) => next,
                    Err(store_error) => {
                        warn!(receiver = %self.receiver.name, error = %store_error, "Could not read the outbox.");
                        Some(self.clock.now().saturating_add(RETRY_AFTER_ERROR))
                    }
                },
                Err(store_error) => {
                    warn!(receiver = %self.receiver.name, error = %store_error, "Could not deliver; will retry.");
                    Some(self.clock.now().saturating_add(RETRY_AFTER_ERROR))
                }
            };
            let wait_until = match (self.shared, wait_until) {
                (false, wait_until) => wait_until,
                (true, wait_until) => {
                    let soon = self.clock.now().saturating_add(SHARED_OUTBOX_EVERY);
                    Some(wait_until.map_or(soon, |at| at.min(soon)))
                }
            };
            let sleep = async {
                match wait_until {
                    Some(at) => self.clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = sleep => {}
                _ = stop.wait_for(|stopping| *stopping) => return,
            }
        }
    }
}

fn log_attempt(receiver: &str, row: &NotificationRow, record: &AttemptRecord) {
    let attempt = row.attempts + 1;
    match record {
        AttemptRecord::Delivered { .. } => {
            info!(receiver, id = %row.id, attempt, "Notification delivered.");
        }
        AttemptRecord::Retry {
            error,
            next_attempt_at,
            ..
        } => {
            warn!(receiver, id = %row.id, attempt, error = %error, next_attempt_at = %next_attempt_at, "Notification not delivered; will retry.");
        }
        AttemptRecord::Failed { error, .. } => {
            warn!(receiver, id = %row.id, attempt, error = %error, "Notification failed; giving up.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NotificationStatus;

    fn row(attempts: u32, created_at: i64) -> NotificationRow {
        NotificationRow {
            id: "n-1".into(),
            receiver: "ops".into(),
            group_key: "g".into(),
            status: NotificationStatus::Pending,
            attempts,
            next_attempt_at: None,
            last_error: None,
            created_at: Timestamp::from_unix_millis(created_at * 1000),
            delivered_at: None,
            payload: "{}".into(),
        }
    }

    #[test]
    fn backoff_follows_the_documented_ladder() {
        let secs: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, vec![5, 30, 120, 600, 1800, 3600, 3600, 3600]);
    }

    #[test]
    fn retries_are_jittered_within_a_fifth_and_respect_retry_after() {
        let now = Timestamp::from_unix_millis(0);
        let day = Duration::from_secs(86_400);
        for _ in 0..100 {
            let retry = Outcome::Retry {
                error: "HTTP 503".into(),
                retry_after: None,
            };
            let AttemptRecord::Retry {
                next_attempt_at, ..
            } = settle(&row(1, 0), retry, now, day)
            else {
                panic!("a 503 within max_age is retried");
            };
            let delay = next_attempt_at.unix_millis();
            assert!((24_000..=36_000).contains(&delay), "{delay}");
        }
        let throttled = Outcome::Retry {
            error: "HTTP 429".into(),
            retry_after: Some(Duration::from_secs(900)),
        };
        let AttemptRecord::Retry {
            next_attempt_at, ..
        } = settle(&row(0, 0), throttled, now, day)
        else {
            panic!("a 429 is retried");
        };
        assert_eq!(next_attempt_at.unix_millis(), 900_000);
    }

    #[test]
    fn a_retry_past_max_age_fails_and_says_why() {
        let now = Timestamp::from_unix_millis(3_500 * 1000);
        let outcome = Outcome::Retry {
            error: "connection refused".into(),
            retry_after: None,
        };
        let record = settle(&row(5, 0), outcome, now, Duration::from_secs(3_600));
        let AttemptRecord::Failed { error, .. } = record else {
            panic!("past max_age: {record:?}");
        };
        assert!(error.contains("gave up after 6 attempts"), "{error}");
        assert!(error.contains("connection refused"), "{error}");
        let delivered = settle(
            &row(0, 0),
            Outcome::Delivered {
                detail: "HTTP 200".into(),
            },
            now,
            Duration::from_secs(1),
        );
        assert!(matches!(delivered, AttemptRecord::Delivered { .. }));
    }
}
