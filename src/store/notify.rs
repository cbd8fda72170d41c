//! The notification tables: marks (written with the transitions that cause them), the
//! outbox, the per-receiver notification log, and silences.

use std::collections::{BTreeMap, BTreeSet};

use super::Store;
use super::backend::{Dialect, StoreRow, WriteTx, on_tx, with_pool};
use super::error::{StoreError, query_error};
use crate::notify::{AlertSnapshot, LogEntry, Silence};
use crate::rules::AlertChange;
use crate::time::Timestamp;

/// Rows per multi-row INSERT: well under SQLite's parameter limit at 8 columns.
const ROWS_PER_STATEMENT: usize = 200;

/// `head (row), (row), ... tail` with `rows` copies of `row`. Only placeholders are
/// formatted in; every value is bound.
fn rows_sql(head: &str, row: &str, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + rows * (row.len() + 2) + tail.len());
    sql.push_str(head);
    for index in 0..rows {
        if index > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql.push_str(tail);
    sql
}

macro_rules! select_notification {
    ($($rest:literal),*) => {
        concat!("SELECT ", notification_columns!(), " FROM notifications ", $($rest),*)
    };
}

/// The columns [`notification_row`] reads.
macro_rules! notification_columns {
    () => {
        "id, receiver, group_key, status, attempts, next_attempt_at, last_error, \
         created_at, delivered_at, payload"
    };
}

/// Where a notification is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationStatus {
    Pending,
    Delivered,
    Failed,
}

impl NotificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::Pending => "pending",
            NotificationStatus::Delivered => "delivered",
            NotificationStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            NotificationStatus::Pending,
            NotificationStatus::Delivered,
            NotificationStatus::Failed,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// One `notifications` row.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRow {
    pub id: String,
    pub receiver: String,
    pub group_key: String,
    pub status: NotificationStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    /// The message as JSON.
    pub payload: String,
}

/// A new outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub id: String,
    pub receiver: String,
    pub group_key: String,
    /// The message as JSON.
    pub payload: String,
}

/// What one flush of one group writes, in one transaction with the rest of its batch.
#[derive(Debug, Clone, Default)]
pub struct FlushWrite {
    pub group_key: String,
    pub notifications: Vec<NewNotification>,
    pub log: Vec<(String, LogEntry)>,
    pub consumed_marks: Vec<i64>,
    pub closed: bool,
}

/// The result of one delivery attempt, to record.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptRecord {
    Delivered {
        id: String,
        at: Timestamp,
    },
    /// Try again at `next_attempt_at`.
    Retry {
        id: String,
        error: String,
        next_attempt_at: Timestamp,
    },
    Failed {
        id: String,
        error: String,
    },
}

/// Which notifications `vastwatch notifications` lists.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub status: Option<NotificationStatus>,
    pub receiver: Option<String>,
    pub since: Option<Timestamp>,
    pub limit: Option<u32>,
}

/// Inserts the marks that an evaluation's transitions call for, inside the transaction
/// that stores the transitions themselves.
pub(super) async fn write_marks(
    transaction: &mut WriteTx,
    changes: &[AlertChange],
) -> Result<(), StoreError> {
    let marks: Vec<(AlertSnapshot, f64)> = changes
        .iter()
        .filter_map(|change| {
            let transition = change.transition.as_ref()?;
            let snapshot = AlertSnapshot::of_transition(&change.record, transition)?;
            Some((snapshot, transition.at.unix_secs_f64()))
        })
        .collect();
    on_tx!(transaction, |connection, dialect| {
        for chunk in marks.chunks(ROWS_PER_STATEMENT) {
            let sql = rows_sql(
                "INSERT INTO notification_marks (fingerprint, at, status, alert) VALUES ",
                "(?, ?, ?, ?)",
                chunk.len(),
                "",
            );
            let mut query = sqlx::query(dialect.owned(sql));
            for (snapshot, at) in chunk {
                let alert = serde_json::to_string(snapshot).unwrap_or_else(|_| "{}".to_string());
                query = query
                    .bind(snapshot.fingerprint.as_str())
                    .bind(*at)
                    .bind(snapshot.status.as_str())
                    .bind(alert);
            }
            query
                .execute(&mut *connection)
                .await
                .map_err(query_error("storing notification marks"))?;
        }
    });
    Ok(())
}

impl Store {
    /// Marks with an id above `after`, oldest first, at most `limit`.
    pub async fn notification_marks(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, AlertSnapshot)>, StoreError> {
        const OPERATION: &str = "reading notification marks";
        let rows: Vec<(i64, String)> =
            with_pool!(self, writer, |pool, dialect| {
                sqlx::query_as(dialect.sql(
                    "SELECT id, alert FROM notification_marks WHERE id > ? ORDER BY id LIMIT ?",
                ))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(query_error(OPERATION))?
            });
        let mut marks = Vec::with_capacity(rows.len());
        for (id, alert) in rows {
            match serde_json::from_str::<AlertSnapshot>(&alert) {
                Ok(snapshot) => marks.push((id, snapshot)),
                // A mark this version cannot read is kept out of the way, not fatal.
                Err(error) => {
                    tracing::warn!(mark = id, %error, "Skipping an unreadable notification mark.")
                }
            }
        }
        Ok(marks)
    }

    /// Every receiver's log entry for every group.
    pub async fn notification_log(&self) -> Result<Vec<(String, String, LogEntry)>, StoreError> {
        const OPERATION: &str = "reading the notification log";
        let rows: Vec<(String, String, f64, String, String)> =
            with_pool!(self, writer, |pool, dialect| {
                sqlx::query_as(dialect.sql(
                    "SELECT group_key, receiver, sent_at, firing, resolved FROM notification_log",
                ))
                .fetch_all(pool)
                .await
                .map_err(query_error(OPERATION))?
            });
        let fingerprints =
            |text: &str| -> BTreeSet<String> { serde_json::from_str(text).unwrap_or_default() };
        Ok(rows
            .into_iter()
            .map(|(group_key, receiver, sent_at, firing, resolved)| {
                let entry = LogEntry {
                    sent_at: Timestamp::from_unix_secs_f64(sent_at),
                    firing: fingerprints(&firing),
                    resolved: fingerprints(&resolved),
                };
                (group_key, receiver, entry)
            })
            .collect())
    }

    /// Stores flushed groups in one transaction: new outbox rows, log entries, consumed
    /// marks deleted, and `unrouted` marks (no route took them) deleted too.
    pub async fn record_flushes(
        &self,
        flushes: &[FlushWrite],
        unrouted: &[i64],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        const OPERATION: &str = "storing notifications";
        let mut transaction = WriteTx::begin(&self.backend, OPERATION).await?;
        let now_secs = now.unix_secs_f64();
        // Multi-row statements: a flush of thousands of groups is a few dozen statements.
        let notifications: Vec<&NewNotification> = flushes
            .iter()
            .flat_map(|flush| &flush.notifications)
            .collect();
        let log: Vec<(&str, &str, &LogEntry)> = flushes
            .iter()
            .filter(|flush| !flush.closed)
            .flat_map(|flush| {
                flush
                    .log
                    .iter()
                    .map(|(receiver, entry)| (flush.group_key.as_str(), receiver.as_str(), entry))
            })
            .collect();
        let closed: Vec<&str> = flushes
            .iter()
            .filter(|flush| flush.closed)
            .map(|flush| flush.group_key.as_str())
            .collect();
        on_tx!(&mut transaction, |connection, dialect| {
            for chunk in notifications.chunks(ROWS_PER_STATEMENT) {
                let sql = rows_sql(
                    "INSERT INTO notifications (id, receiver, group_key, status, attempts, \
                     next_attempt_at, created_at, payload) VALUES ",
                    "(?, ?, ?, 'pending', 0, ?, ?, ?)",
                    chunk.len(),
                    "",
                );
                let mut query = sqlx::query(dialect.owned(sql));
                for notification in chunk {
                    query = query
                        .bind(notification.id.as_str())
                        .bind(notification.receiver.as_str())
                        .bind(notification.group_key.as_str())
                        .bind(now_secs)
                        .bind(now_secs)
                        .bind(notification.payload.as_str());
                }
                query
                    .execute(&mut *connection)
                    .await
                    .map_err(query_error(OPERATION))?;
            }
            for chunk in log.chunks(ROWS_PER_STATEMENT) {
                let sql = rows_sql(
                    "INSERT INTO notification_log (group_key, receiver, sent_at, firing, resolved) VALUES ",
                    "(?, ?, ?, ?, ?)",
                    chunk.len(),
                    " ON CONFLICT (group_key, receiver) DO UPDATE SET sent_at = excluded.sent_at, \
                     firing = excluded.firing, resolved = excluded.resolved",
                );
                let mut query = sqlx::query(dialect.owned(sql));
                for (group_key, receiver, entry) in chunk {
                    query = query
                        .bind(*group_key)
                        .bind(*receiver)
                        .bind(entry.sent_at.unix_secs_f64())
                        .bind(serde_json::to_string(&entry.firing).unwrap_or_else(|_| "[]".into()))
                        .bind(
                            serde_json::to_string(&entry.resolved).unwrap_or_else(|_| "[]".into()),
                        );
                }
                query
                    .execute(&mut *connection)
                    .await
                    .map_err(query_error(OPERATION))?;
            }
            for chunk in closed.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "DELETE FROM notification_log WHERE group_key IN ({})",
                    vec!["?"; chunk.len()].join(", ")
                );
                let mut query = sqlx::query(dialect.owned(sql));
                for group_key in chunk {
                    query = query.bind(*group_key);
                }
                query
                    .execute(&mut *connection)
                    .await
                    .map_err(query_error(OPERATION))?;
            }
        });
        let consumed: Vec<i64> = flushes
            .iter()
            .flat_map(|flush| flush.consumed_marks.iter().copied())
            .chain(unrouted.iter().copied())
            .collect();
        delete_marks(&mut transaction, &consumed).await?;
        transaction.commit(OPERATION).await?;
        Ok(())
    }

    /// Inserts one outbox row on its own (`vastwatch notify test`).
    pub async fn insert_notification(
        &self,
        notification: &NewNotification,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.record_flushes(
            &[FlushWrite {
                group_key: notification.group_key.clone(),
                notifications: vec![notification.clone()],
                log: Vec::new(),
                consumed_marks: Vec::new(),
                closed: false,
            }],
            &[],
            now,
        )
        .await
    }

    /// Claims for `claimant` until `until` the pending notifications of `receiver` due at
    /// `now` that no live claim holds, oldest first, at most one per group (a row waits
    /// while an older row of its group is pending, so each group's messages arrive in
    /// order), and returns them. On PostgreSQL, rows another replica is claiming at this
    /// moment are skipped (`FOR UPDATE SKIP LOCKED`), so replicas that deliver at once
    /// never take the same row; SQLite has one writer.
    pub async fn claim_due_notifications(
        &self,
        receiver: &str,
        now: Timestamp,
        limit: u32,
        claimant: &str,
        until: Timestamp,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        const OPERATION: &str = "claiming due notifications";
        with_pool!(self, writer, |pool, dialect| {
            let skip_locked = match dialect {
                Dialect::Sqlite => "",
                Dialect::Postgres => " FOR UPDATE OF n SKIP LOCKED",
            };
            let sql = format!(
                "UPDATE notifications SET claimed_by = ?4, claimed_until = ?5 WHERE rowid IN \
                 (SELECT n.rowid FROM notifications AS n WHERE n.receiver = ?1 \
                 AND n.status = 'pending' AND n.next_attempt_at <= ?2 \
                 AND (n.claimed_until IS NULL OR n.claimed_until <= ?2) \
                 AND NOT EXISTS (SELECT 1 FROM notifications AS o WHERE o.receiver = ?1 \
                 AND o.group_key = n.group_key AND o.status = 'pending' AND o.rowid < n.rowid) \
                 ORDER BY n.next_attempt_at, n.rowid LIMIT ?3{skip_locked}) \
                 RETURNING {}",
                notification_columns!()
            );
            let rows = sqlx::query(dialect.owned(sql))
                .bind(receiver)
                .bind(now.unix_secs_f64())
                .bind(i64::from(limit))
                .bind(claimant)
                .bind(until.unix_secs_f64())
                .fetch_all(pool)
                .await
                .map_err(query_error(OPERATION))?;
            let mut rows: Vec<NotificationRow> = rows
                .iter()
                .map(notification_row)
                .collect::<Result<_, _>>()?;
            rows.sort_by_key(|row| row.next_attempt_at);
            Ok(rows)
        })
    }

    /// Ends the claims of every claimant `ended` picks (replicas that died while sending,
    /// or this replica's own earlier daemon), so their rows are sent again, under the same
    /// ids, without waiting for the claims to run out. Returns how many rows were freed.
    pub async fn release_claims(&self, ended: impl Fn(&str) -> bool) -> Result<u64, StoreError> {
        const OPERATION: &str = "releasing delivery claims";
        let claimants: Vec<String> = with_pool!(self, writer, |pool, dialect| {
            sqlx::query_scalar(dialect.sql(
                "SELECT DISTINCT claimed_by FROM notifications \
                 WHERE status = 'pending' AND claimed_by IS NOT NULL",
            ))
            .fetch_all(pool)
            .await
            .map_err(query_error(OPERATION))?
        });
        let mut freed = 0;
        for claimant in claimants.iter().filter(|claimant| ended(claimant)) {
            freed += with_pool!(self, writer, |pool, dialect| {
                sqlx::query(dialect.sql(
                    "UPDATE notifications SET claimed_by = NULL, claimed_until = NULL \
                     WHERE status = 'pending' AND claimed_by = ?",
                ))
                .bind(claimant.as_str())
                .execute(pool)
                .await
                .map_err(query_error(OPERATION))?
                .rows_affected()
            });
        }
        Ok(freed)
    }

    /// How many notifications wait in each receiver's outbox. Reads only the pending rows
    /// (through `notifications_by_status`), so it stays cheap however long history is.
    pub async fn pending_notifications(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let rows: Vec<(String, i64)> = with_pool!(self, readers, |pool, dialect| {
            sqlx::query_as(dialect.sql(
                "SELECT receiver, COUNT(*) FROM notifications WHERE status = 'pending' \
                 GROUP BY receiver",
            ))
            .fetch_all(pool)
            .await
            .map_err(query_error("counting pending notifications"))?
        });
        Ok(rows
            .into_iter()
            .map(|(receiver, count)| (receiver, u64::try_from(count).unwrap_or(0)))
            .collect())
    }

    /// When `receiver`'s next pending notification that is first in its group is due.
    pub async fn next_attempt_at(&self, receiver: &str) -> Result<Option<Timestamp>, StoreError> {
        let next: Option<f64> = with_pool!(self, writer, |pool, dialect| {
            sqlx::query_scalar(dialect.sql(
                "SELECT MIN(next_attempt_at) FROM notifications AS n WHERE receiver = ?1 \
                 AND status = 'pending' AND NOT EXISTS (SELECT 1 FROM notifications AS o \
                 WHERE o.receiver = ?1 AND o.group_key = n.group_key AND o.status = 'pending' \
                 AND o.rowid < n.rowid)",
            ))
            .bind(receiver)
            .fetch_one(pool)
            .await
            .map_err(query_error("reading the next attempt"))?
        });
        Ok(next.map(Timestamp::from_unix_secs_f64))
    }

    /// Records delivery attempts in one transaction.
    pub async fn record_attempts(&self, attempts: &[AttemptRecord]) -> Result<(), StoreError> {
        const OPERATION: &str = "recording delivery attempts";
        if attempts.is_empty() {
            return Ok(());
        }
        let mut transaction = WriteTx::begin(&self.backend, OPERATION).await?;
        on_tx!(&mut transaction, |connection, dialect| {
            for attempt in attempts {
                let query = match attempt {
                    AttemptRecord::Delivered { id, at } => sqlx::query(dialect.sql(
                        "UPDATE notifications SET claimed_by = NULL, claimed_until = NULL, status = 'delivered', attempts = attempts + 1, \
                         next_attempt_at = NULL, delivered_at = ? WHERE id = ?",
                    ))
                    .bind(at.unix_secs_f64())
                    .bind(id.as_str()),
                    AttemptRecord::Retry {
                        id,
                        error,
                        next_attempt_at,
                    } => sqlx::query(dialect.sql(
                        "UPDATE notifications SET claimed_by = NULL, claimed_until = NULL, attempts = attempts + 1, last_error = ?, \
                         next_attempt_at = ? WHERE id = ?",
                    ))
                    .bind(error.as_str())
                    .bind(next_attempt_at.unix_secs_f64())
                    .bind(id.as_str()),
                    AttemptRecord::Failed { id, error } => sqlx::query(dialect.sql(
                        "UPDATE notifications SET claimed_by = NULL, claimed_until = NULL, status = 'failed', attempts = attempts + 1, \
                         last_error = ?, next_attempt_at = NULL WHERE id = ?",
                    ))
                    .bind(error.as_str())
                    .bind(id.as_str()),
                };
                query
                    .execute(&mut *connection)
                    .await
                    .map_err(query_error(OPERATION))?;
            }
        });
        transaction.commit(OPERATION).await
    }

    /// Outbox rows, newest first.
    pub async fn notifications(
        &self,
        filter: &NotificationFilter,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        with_pool!(self, readers, |pool, dialect| {
            let rows = sqlx::query(dialect.sql(select_notification!(
                "WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR receiver = ?2) ",
                "AND created_at >= ?3 ORDER BY created_at DESC, id DESC LIMIT ?4"
            )))
            .bind(filter.status.map(NotificationStatus::as_str))
            .bind(filter.receiver.as_deref())
            .bind(filter.since.map_or(f64::MIN, Timestamp::unix_secs_f64))
            .bind(filter.limit.map_or(-1, i64::from))
            .fetch_all(pool)
            .await
            .map_err(query_error("reading notifications"))?;
            rows.iter().map(notification_row).collect()
        })
    }

    pub async fn insert_silence(
        &self,
        silence: &Silence,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        with_pool!(self, writer, |pool, dialect| {
            sqlx::query(dialect.sql(
                "INSERT INTO silences (id, matchers, starts_at, ends_at, comment, created_by, \
                 created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            ))
            .bind(silence.id.as_str())
            .bind(serde_json::to_string(&silence.matchers).unwrap_or_else(|_| "[]".into()))
            .bind(silence.starts_at.unix_secs_f64())
            .bind(silence.ends_at.unix_secs_f64())
            .bind(silence.comment.as_str())
            .bind(silence.created_by.as_str())
            .bind(now.unix_secs_f64())
            .execute(pool)
            .await
            .map_err(query_error("storing a silence"))?;
        });
        Ok(())
    }

    /// Silences, newest first; only those not yet ended at `now` unless `all`.
    pub async fn silences(&self, now: Timestamp, all: bool) -> Result<Vec<Silence>, StoreError> {
        const OPERATION: &str = "reading silences";
        let rows: Vec<(String, String, f64, f64, String, String)> =
            with_pool!(self, writer, |pool, dialect| {
                sqlx::query_as(dialect.sql(
                    "SELECT id, matchers, starts_at, ends_at, comment, created_by FROM silences \
                     WHERE ?1 OR ends_at > ?2 ORDER BY starts_at DESC, id",
                ))
                .bind(all)
                .bind(now.unix_secs_f64())
                .fetch_all(pool)
                .await
                .map_err(query_error(OPERATION))?
            });
        let mut silences = Vec::with_capacity(rows.len());
        for (id, matchers, starts_at, ends_at, comment, created_by) in rows {
            let Ok(matchers) = serde_json::from_str(&matchers) else {
                tracing::warn!(silence = %id, "Skipping a silence whose matchers cannot be read.");
                continue;
            };
            silences.push(Silence {
                id,
                matchers,
                starts_at: Timestamp::from_unix_secs_f64(starts_at),
                ends_at: Timestamp::from_unix_secs_f64(ends_at),
                comment,
                created_by,
            });
        }
        Ok(silences)
    }

    /// Ends a silence at `now`. Returns false when no silence has that id or it had
    /// already ended.
    pub async fn expire_silence(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let affected = with_pool!(self, writer, |pool, dialect| {
            sqlx::query(dialect.sql("UPDATE silences SET ends_at = ? WHERE id = ? AND ends_at > ?"))
                .bind(now.unix_secs_f64())
                .bind(id)
                .bind(now.unix_secs_f64())
                .execute(pool)
                .await
                .map_err(query_error("expiring a silence"))?
                .rows_affected()
        });
        Ok(affected > 0)
    }
}

async fn delete_marks(transaction: &mut WriteTx, marks: &[i64]) -> Result<(), StoreError> {
    on_tx!(transaction, |connection, dialect| {
        for chunk in marks.chunks(500) {
            let placeholders = vec!["?"; chunk.len()].join(", ");
            let sql = format!("DELETE FROM notification_marks WHERE id IN ({placeholders})");
            // Only `?` placeholders are formatted in; the ids are bound.
            let mut query = sqlx::query(dialect.owned(sql));
            for mark in chunk {
                query = query.bind(*mark);
            }
            query
                .execute(&mut *connection)
                .await
                .map_err(query_error("deleting notification marks"))?;
        }
    });
    Ok(())
}

fn notification_row(row: &impl StoreRow) -> Result<NotificationRow, StoreError> {
    const OPERATION: &str = "reading notifications";
    let get_time = |column: &str| -> Result<Option<Timestamp>, StoreError> {
        let value: Option<f64> = row.value(column).map_err(query_error(OPERATION))?;
        Ok(value.map(Timestamp::from_unix_secs_f64))
    };
    let status: String = row.value("status").map_err(query_error(OPERATION))?;
    let attempts: i64 = row.value("attempts").map_err(query_error(OPERATION))?;
    Ok(NotificationRow {
        id: row.value("id").map_err(query_error(OPERATION))?,
        receiver: row.value("receiver").map_err(query_error(OPERATION))?,
        group_key: row.value("group_key").map_err(query_error(OPERATION))?,
        status: NotificationStatus::parse(&status).unwrap_or(NotificationStatus::Failed),
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt_at: get_time("next_attempt_at")?,
        last_error: row.value("last_error").map_err(query_error(OPERATION))?,
        created_at: get_time("created_at")?.unwrap_or_default(),
        delivered_at: get_time("delivered_at")?,
        payload: row.value("payload").map_err(query_error(OPERATION))?,
    })
}
