//! `vastwatch db copy`: every stored row from one store into another, either backend to
//! either: targets and history (polls, fleet sums, worker samples, rollups), alert state
//! (alerts, their events, pending notification marks), recommendations, the outbox, the
//! notification log and silences.
//!
//! Each table is read a page at a time in key order and written with multi-row INSERTs,
//! all in one transaction on the destination: a copy that fails leaves it as it was. Ids
//! are kept, and each id sequence continues where the source's did, so no id is ever
//! reused. The destination must hold no history.

use super::Store;
use super::backend::{Backend, Dialect, StoreRow, WriteTx, on_tx, with_pool};
use super::batch::BatchInsert;
use super::error::{StoreError, query_error};

const OPERATION: &str = "copying the database";

/// Rows read from the source per query.
const PAGE_ROWS: i64 = 5_000;

/// How a column is read and written.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Integer,
    Real,
    Text,
}

use Kind::{Integer as I, Real as R, Text as T};

/// A table to copy, in an order that satisfies every foreign key.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    /// The columns the pages are read in order of; unique together.
    key: &'static [(&'static str, Kind)],
    /// The column an id sequence fills, if any.
    sequence: Option<&'static str>,
}

const ROLLUP_COLUMNS: &[(&str, Kind)] = &[
    ("target_id", I),
    ("bucket", I),
    ("polls", I),
    ("workers_avg", R),
    ("workers_min", R),
    ("workers_max", R),
    ("ready_avg", R),
    ("ready_min", R),
    ("ready_max", R),
    ("starting_avg", R),
    ("starting_min", R),
    ("starting_max", R),
    ("inactive_avg", R),
    ("inactive_min", R),
    ("inactive_max", R),
    ("failed_avg", R),
    ("failed_min", R),
    ("failed_max", R),
    ("load_avg", R),
    ("load_min", R),
    ("load_max", R),
    ("load_rolling_avg", R),
    ("load_rolling_min", R),
    ("load_rolling_max", R),
    ("perf_avg", R),
    ("perf_min", R),
    ("perf_max", R),
    ("reqs_working_avg", R),
    ("reqs_working_min", R),
    ("reqs_working_max", R),
    ("utilization_avg", R),
    ("utilization_min", R),
    ("utilization_max", R),
];

const TABLES: &[Table] = &[
    Table {
        name: "targets",
        columns: &[("id", I), ("name", T), ("kind", T), ("vast_id", I)],
        key: &[("id", I)],
        sequence: Some("id"),
    },
    Table {
        name: "polls",
        columns: &[
            ("id", I),
            ("target_id", I),
            ("started_at", R),
            ("duration_ms", I),
            ("outcome", T),
            ("error", T),
            ("http_status", I),
            ("worker_count", I),
        ],
        key: &[("id", I)],
        sequence: Some("id"),
    },
    Table {
        name: "fleet_totals",
        columns: &[
            ("poll_id", I),
            ("workers", I),
            ("ready", I),
            ("starting", I),
            ("inactive", I),
            ("failed", I),
            ("load", R),
            ("new_load", R),
            ("load_rolling", R),
            ("perf", R),
            ("cur_perf", R),
            ("measured_perf", R),
            ("reqs_working", R),
        ],
        key: &[("poll_id", I)],
        sequence: None,
    },
    Table {
        name: "worker_samples",
        columns: &[
            ("poll_id", I),
            ("target_id", I),
            ("worker_id", I),
            ("polled_at", R),
            ("status", T),
            ("cur_load", R),
            ("new_load", R),
            ("cur_load_rolling_avg", R),
            ("cur_perf", R),
            ("measured_perf", R),
            ("perf", R),
            ("reliability", R),
            ("dlperf", R),
            ("reqs_working", R),
            ("disk_usage", R),
            ("loaded_at", R),
            ("extra", T),
        ],
        key: &[("poll_id", I), ("worker_id", I)],
        sequence: None,
    },
    Table {
        name: "fleet_rollups",
        columns: ROLLUP_COLUMNS,
        key: &[("target_id", I), ("bucket", I)],
        sequence: None,
    },
    Table {
        name: "alerts",
        columns: &[
            ("fingerprint", T),
            ("alertname", T),
            ("target", T),
            ("worker_id", I),
            ("severity", T),
            ("state", T),
            ("labels", T),
            ("annotations", T),
            ("recommendation", T),
            ("active_at", R),
            ("fired_at", R),
            ("resolved_at", R),
            ("resolving_since", R),
            ("last_eval_at", R),
            ("value", R),
        ],
        key: &[("fingerprint", T)],
        sequence: None,
    },
    Table {
        name: "alert_events",
        columns: &[
            ("id", I),
            ("fingerprint", T),
            ("at", R),
            ("from_state", T),
            ("to_state", T),
            ("value", R),
        ],
        key: &[("id", I)],
        sequence: Some("id"),
    },
    Table {
        name: "recommendations",
        columns: &[
            ("id", I),
            ("target", T),
            ("at", R),
            ("action", T),
            ("current_workers", I),
            ("desired_workers", I),
            ("detail", T),
        ],
        key: &[("id", I)],
        sequence: Some("id"),
    },
    // In insertion order (`rowid` on both backends), which delivery order follows.
    Table {
        name: "notifications",
        columns: &[
            ("id", T),
            ("receiver", T),
            ("group_key", T),
            ("status", T),
            ("attempts", I),
            ("next_attempt_at", R),
            ("last_error", T),
            ("created_at", R),
            ("delivered_at", R),
            ("payload", T),
        ],
        key: &[("rowid", I)],
        sequence: None,
    },
    Table {
        name: "notification_marks",
        columns: &[
            ("id", I),
            ("fingerprint", T),
            ("at", R),
            ("status", T),
            ("alert", T),
        ],
        key: &[("id", I)],
        sequence: Some("id"),
    },
    Table {
        name: "notification_log",
        columns: &[
            ("group_key", T),
            ("receiver", T),
            ("sent_at", R),
            ("firing", T),
            ("resolved", T),
        ],
        key: &[("group_key", T), ("receiver", T)],
        sequence: None,
    },
    Table {
        name: "silences",
        columns: &[
            ("id", T),
            ("matchers", T),
            ("starts_at", R),
            ("ends_at", R),
            ("comment", T),
            ("created_by", T),
            ("created_at", R),
        ],
        key: &[("id", T)],
        sequence: None,
    },
];

/// The tables whose rows mean the destination already holds something worth keeping.
const HISTORY_TABLES: [&str; 7] = [
    "polls",
    "fleet_rollups",
    "alerts",
    "recommendations",
    "notifications",
    "notification_marks",
    "silences",
];

/// Where a copy is: `copied` of `total` rows of `table` so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyProgress {
    pub table: &'static str,
    pub copied: u64,
    pub total: u64,
}

/// What a copy moved: rows per table, in copy order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub tables: Vec<(&'static str, u64)>,
}

/// One value of a column of [`Kind`].
enum Value {
    Integer(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
}

impl Value {
    fn read(row: &impl StoreRow, column: &str, kind: Kind) -> Result<Value, sqlx::Error> {
        Ok(match kind {
            Kind::Integer => Value::Integer(row.value(column)?),
            Kind::Real => Value::Real(row.value(column)?),
            Kind::Text => Value::Text(row.value(column)?),
        })
    }
}

/// Binds values in order, on whichever backend's query.
macro_rules! bind_values {
    ($query:expr, $values:expr) => {{
        let mut query = $query;
        for value in $values {
            query = match value {
                Value::Integer(value) => query.bind(value),
                Value::Real(value) => query.bind(value),
                Value::Text(value) => query.bind(value),
            };
        }
        query
    }};
}

impl Store {
    /// Copies every row of this store into `destination`, which must hold no history,
    /// reporting progress after each page. All or nothing: on failure `destination` is
    /// left as it was.
    pub async fn copy_to(
        &self,
        destination: &Store,
        mut progress: impl FnMut(CopyProgress),
    ) -> Result<CopyReport, StoreError> {
        for table in HISTORY_TABLES {
            if destination.row_count(table).await? > 0 {
                return Err(StoreError::CopyDestination {
                    location: destination.database().to_string(),
                    table,
                });
            }
        }
        let mut transaction = WriteTx::begin(&destination.backend, OPERATION).await?;
        // Targets stored when the destination was opened give way to the source's.
        on_tx!(&mut transaction, |connection, dialect| {
            sqlx::query(dialect.sql("DELETE FROM targets"))
                .execute(&mut *connection)
                .await
                .map_err(query_error(OPERATION))?;
        });
        let mut report = CopyReport::default();
        for table in TABLES {
            let total = self.row_count(table.name).await?;
            let mut copied = 0u64;
            progress(CopyProgress {
                table: table.name,
                copied,
                total,
            });
            let mut after: Option<Vec<Value>> = None;
            loop {
                let (rows, last_key) = self.read_page(table, after.take()).await?;
                if rows.is_empty() {
                    break;
                }
                copied += rows.len() as u64;
                insert_page(&mut transaction, table, rows).await?;
                progress(CopyProgress {
                    table: table.name,
                    copied,
                    total,
                });
                after = Some(last_key);
            }
            if let Some(column) = table.sequence {
                let next = self.sequence_value(table.name, column).await?;
                continue_sequence(&mut transaction, table.name, column, next).await?;
            }
            report.tables.push((table.name, copied));
        }
        transaction.commit(OPERATION).await?;
        Ok(report)
    }

    async fn row_count(&self, table: &'static str) -> Result<u64, StoreError> {
        let sql = format!("SELECT count(*) FROM {table}");
        let rows: i64 = with_pool!(self, readers, |pool, dialect| {
            sqlx::query_scalar(dialect.owned(sql))
                .fetch_one(pool)
                .await
                .map_err(query_error(OPERATION))?
        });
        Ok(rows.unsigned_abs())
    }

    /// One page of `table` in key order after the key `after`: the rows' values, and the
    /// last row's key.
    async fn read_page(
        &self,
        table: &Table,
        after: Option<Vec<Value>>,
    ) -> Result<(Vec<Vec<Value>>, Vec<Value>), StoreError> {
        let names = |columns: &[(&str, Kind)]| {
            columns
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let key_aliases: Vec<String> = (0..table.key.len()).map(|i| format!("key_{i}")).collect();
        let key_select: Vec<String> = table
            .key
            .iter()
            .zip(&key_aliases)
            .map(|((name, _), alias)| format!("{name} AS {alias}"))
            .collect();
        let condition = match after {
            Some(_) => format!(
                "WHERE ({}) > ({}) ",
                names(table.key),
                vec!["?"; table.key.len()].join(", ")
            ),
            None => String::new(),
        };
        let sql = format!(
            "SELECT {}, {} FROM {} {condition}ORDER BY {} LIMIT {PAGE_ROWS}",
            names(table.columns),
            key_select.join(", "),
            table.name,
            names(table.key),
        );
        let rows = with_pool!(self, readers, |pool, dialect| {
            let query = sqlx::query(dialect.owned(sql));
            bind_values!(query, after.into_iter().flatten())
                .fetch_all(pool)
                .await
                .map_err(query_error(OPERATION))?
                .into_iter()
                .map(super::backend::AnyRow::from)
                .collect::<Vec<_>>()
        });
        let read = |row: &super::backend::AnyRow| -> Result<(Vec<Value>, Vec<Value>), sqlx::Error> {
            let values = table
                .columns
                .iter()
                .map(|(name, kind)| Value::read(row, name, *kind))
                .collect::<Result<_, _>>()?;
            let key = table
                .key
                .iter()
                .zip(&key_aliases)
                .map(|((_, kind), alias)| Value::read(row, alias, *kind))
                .collect::<Result<_, _>>()?;
            Ok((values, key))
        };
        let mut values = Vec::with_capacity(rows.len());
        let mut last_key = Vec::new();
        for row in &rows {
            let (row_values, key) = read(row).map_err(query_error(OPERATION))?;
            values.push(row_values);
            last_key = key;
        }
        Ok((values, last_key))
    }

    /// The last id `table`'s sequence handed out (at least its largest id).
    async fn sequence_value(
        &self,
        table: &'static str,
        column: &'static str,
    ) -> Result<i64, StoreError> {
        let largest = format!("SELECT COALESCE(max({column}), 0) FROM {table}");
        let largest: i64 = with_pool!(self, readers, |pool, dialect| {
            sqlx::query_scalar(dialect.owned(largest))
                .fetch_one(pool)
                .await
                .map_err(query_error(OPERATION))?
        });
        let issued: Option<i64> = match &self.backend {
            Backend::Sqlite(sqlite) => {
                sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = ?")
                    .bind(table)
                    .fetch_optional(&sqlite.readers)
                    .await
                    .map_err(query_error(OPERATION))?
            }
            Backend::Postgres(postgres) => sqlx::query_scalar(
                "SELECT pg_sequence_last_value(CAST(pg_get_serial_sequence($1, $2) AS regclass))",
            )
            .bind(table)
            .bind(column)
            .fetch_one(&postgres.pool)
            .await
            .map_err(query_error(OPERATION))?,
        };
        Ok(largest.max(issued.unwrap_or(0)))
    }
}

/// Inserts one page of rows into `table`.
async fn insert_page(
    transaction: &mut WriteTx,
    table: &Table,
    rows: Vec<Vec<Value>>,
) -> Result<(), StoreError> {
    let columns: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
    let insert = BatchInsert::new(
        &format!("INSERT INTO {} ({})", table.name, columns.join(", ")),
        columns.len(),
        PAGE_ROWS as usize,
    );
    let mut rows = rows.into_iter();
    for (size, sql) in insert.plan(rows.len()) {
        let values: Vec<Value> = rows.by_ref().take(size).flatten().collect();
        on_tx!(&mut *transaction, |connection, dialect| {
            let query = sqlx::query(dialect.owned(sql.to_string()));
            bind_values!(query, values)
                .execute(&mut *connection)
                .await
                .map_err(query_error(OPERATION))?;
        });
    }
    Ok(())
}

/// Makes `table`'s id sequence continue after `last`.
async fn continue_sequence(
    transaction: &mut WriteTx,
    table: &'static str,
    column: &'static str,
    last: i64,
) -> Result<(), StoreError> {
    on_tx!(transaction, |connection, dialect| {
        let query = match dialect {
            // Only AUTOINCREMENT tables are in sqlite_sequence; the others need nothing.
            Dialect::Sqlite => sqlx::query(
                dialect.sql("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?"),
            )
            .bind(last)
            .bind(table),
            Dialect::Postgres => sqlx::query(
                dialect.sql("SELECT setval(pg_get_serial_sequence(?, ?), greatest(?3, 1), ?3 > 0)"),
            )
            .bind(table)
            .bind(column)
            .bind(last),
        };
        query
            .execute(&mut *connection)
            .await
            .map_err(query_error(OPERATION))?;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{Field, PollRecord, PollResult, TargetKind, WorkerSample};
    use crate::store::TargetSpec;
    use crate::store::test_db::{TestDb, execute, finish_dropping};
    use crate::time::Timestamp;

    fn poll(target: &str, secs: i64, workers: &[i64]) -> PollRecord {
        let workers = workers
            .iter()
            .map(|&id| {
                let mut worker = WorkerSample::new(id)
                    .with(Field::Perf, id as f64 / 3.0)
                    .with(Field::ReqsWorking, 2.0);
                worker.status = Some("running".to_string());
                if id % 2 == 0 {
                    worker.extra = serde_json::json!({"note": "tab\there"})
                        .as_object()
                        .cloned();
                }
                worker
            })
            .collect();
        PollRecord {
            target: target.to_string(),
            started_at: Timestamp::from_unix_millis(secs * 1000),
            duration: Duration::from_millis(25),
            result: PollResult::Snapshot {
                workers,
                notes: Vec::new(),
            },
        }
    }

    /// A store with a row in every table, and polls already deleted by retention so that
    /// the id sequence runs ahead of the largest id.
    async fn filled(db: &TestDb) -> Store {
        let store = Store::open(db.database()).await.expect("store opens");
        let target = |name: &str, kind, vast_id| TargetSpec {
            name: name.to_string(),
            kind,
            vast_id,
        };
        store
            .sync_targets(&[
                target("prod", TargetKind::Endpoint, 1),
                target("group", TargetKind::WorkerGroup, 2),
            ])
            .await
            .expect("targets");
        let polls: Vec<PollRecord> = (0..12)
            .map(|tick| poll(["prod", "group"][tick % 2], 100 * tick as i64, &[1, 2, 3]))
            .collect();
        store.record_polls(&polls).await.expect("polls");
        store
            .delete_samples_before(Timestamp::from_unix_millis(600_000))
            .await
            .expect("rolled up");
        for statement in [
            "INSERT INTO alerts (fingerprint, alertname, target, worker_id, severity, state, \
             labels, annotations, active_at, fired_at, last_eval_at, value) VALUES \
             ('f1', 'Slow', 'prod', 7, 'critical', 'firing', '{\"a\":\"b\"}', '{}', 10, 20, 30, \
             0.5), ('f2', 'Down', 'group', NULL, 'warning', 'resolved', '{}', '{}', 1, 2, 3, NULL)",
            "INSERT INTO alert_events (fingerprint, at, from_state, to_state, value) VALUES \
             ('f1', 10, 'inactive', 'pending', 0.1), ('f1', 20, 'pending', 'firing', 0.5)",
            "INSERT INTO recommendations (target, at, action, current_workers, desired_workers, \
             detail) VALUES ('prod', 10, 'hold', 1, 1, '{}'), ('prod', 20, 'scale_up', 1, 2, '{}')",
            "INSERT INTO notifications (id, receiver, group_key, status, attempts, \
             next_attempt_at, created_at, payload) VALUES \
             ('n2', 'r', 'g', 'pending', 1, 50, 40, '{}'), ('n1', 'r', 'g', 'pending', 0, 40, 41, '{}')",
            "INSERT INTO notification_marks (fingerprint, at, status, alert) VALUES \
             ('f1', 20, 'firing', '{}')",
            "INSERT INTO notification_log (group_key, receiver, sent_at, firing, resolved) \
             VALUES ('g', 'r', 10, '[\"f1\"]', '[]')",
            "INSERT INTO silences (id, matchers, starts_at, ends_at, comment, created_by, \
             created_at) VALUES ('s1', '[]', 0, 5000, 'maintenance', 'ops', 0)",
        ] {
            execute(&store, statement).await;
        }
        store
    }

    fn json(value: &Value) -> serde_json::Value {
        match value {
            Value::Integer(value) => serde_json::json!(value),
            Value::Real(value) => serde_json::json!(value),
            Value::Text(value) => serde_json::json!(value),
        }
    }

    /// Every row of every table, in key order.
    async fn contents(store: &Store) -> Vec<(&'static str, Vec<Vec<serde_json::Value>>)> {
        let mut tables = Vec::new();
        for table in TABLES {
            let (rows, _) = store.read_page(table, None).await.expect("rows");
            let rows = rows
                .iter()
                .map(|row| row.iter().map(json).collect())
                .collect();
            tables.push((table.name, rows));
        }
        tables
    }

    #[tokio::test]
    async fn sqlite_to_postgres_and_back_keeps_every_row_and_id_sequence() {
        let Some(postgres) = TestDb::postgres().await else {
            return;
        };
        let (first, last) = (TestDb::sqlite(), TestDb::sqlite());
        let original = filled(&first).await;
        let expected = contents(&original).await;
        assert!(
            expected.iter().all(|(_, rows)| !rows.is_empty()),
            "{expected:?}"
        );

        let middle = Store::open(postgres.database()).await.expect("opens");
        let report = original.copy_to(&middle, |_| {}).await.expect("copied");
        assert_eq!(report.tables.len(), TABLES.len());
        let copied_back = Store::open(last.database()).await.expect("opens");
        let mut seen = Vec::new();
        middle
            .copy_to(&copied_back, |progress| seen.push(progress))
            .await
            .expect("copied back");
        assert_eq!(contents(&copied_back).await, expected);
        let samples = seen
            .iter()
            .rfind(|progress| progress.table == "worker_samples")
            .expect("progress");
        assert_eq!((samples.copied, samples.total), (18, 18));

        // Retention deleted polls 1 to 6; neither copy hands their ids out again.
        for store in [&middle, &copied_back] {
            store
                .record_polls(&[poll("prod", 5_000, &[9])])
                .await
                .expect("a new poll");
            let newest = store.latest_polls().await.expect("latest");
            let ids: Vec<i64> = newest.iter().map(|poll| poll.id).collect();
            assert!(ids.contains(&13), "{} gave ids {ids:?}", store.database());
        }

        let refused = original
            .copy_to(&middle, |_| {})
            .await
            .expect_err("the destination has history");
        assert!(refused.to_string().contains("has rows"), "{refused}");
        middle.close().await.expect("closed");
        drop(postgres);
        finish_dropping().await;
    }
}
