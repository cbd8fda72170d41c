//! The store against real SQLite files and a real PostgreSQL server (each test runs on
//! both, see [`store_tests!`]): what goes in comes out, the public tables agree with each
//! other, and retention and reopening keep them consistent.

use std::path::PathBuf;
use std::time::Duration;

use sqlx::{Column, Row};
use tempfile::TempDir;

use super::backend::{AnyRow, StoreRow, with_pool};
use super::ingest::SAMPLE_CHUNK_ROWS;
use super::migrations::SQLITE_MIGRATIONS;
use super::test_db::{self, TestDb, sqlite_pools, store_tests};
use super::*;
use crate::model::{
    CompactPoll, FailureKind, Field, FleetSummary, HistSample, PollFailure, PollRecord, PollResult,
    StateClass, TargetKind, WorkerSample,
};
use crate::time::Timestamp;

/// A store in `db`, with targets `prod` (an endpoint) and `group` (a worker group).
struct Fixture {
    store: Store,
    database: Database,
}

async fn fixture(db: &TestDb) -> Fixture {
    let database = db.database();
    let store = Store::open(&database).await.expect("store opens");
    store
        .sync_targets(&[
            target("prod", TargetKind::Endpoint, 1),
            target("group", TargetKind::WorkerGroup, 2),
        ])
        .await
        .expect("targets stored");
    Fixture { store, database }
}

impl Fixture {
    /// The SQLite file, for tests about SQLite itself.
    fn path(&self) -> PathBuf {
        self.database
            .sqlite_path()
            .expect("a SQLite fixture")
            .to_path_buf()
    }
}

fn target(name: &str, kind: TargetKind, vast_id: i64) -> TargetSpec {
    TargetSpec {
        name: name.to_string(),
        kind,
        vast_id,
    }
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_millis(secs * 1000)
}

/// A worker with every field present, each value distinct and derived from the id.
fn worker(id: i64, status: &str) -> WorkerSample {
    let mut worker = WorkerSample::new(id);
    worker.status = Some(status.to_string());
    for field in Field::ALL {
        let value = if field.is_integer() {
            (id % 5) as f64
        } else {
            id as f64 / 7.0 + field.index() as f64
        };
        worker.set(field, Some(value));
    }
    worker
}

fn snapshot(target: &str, secs: i64, workers: Vec<WorkerSample>) -> PollRecord {
    PollRecord {
        target: target.to_string(),
        started_at: at(secs),
        duration: Duration::from_millis(120),
        result: PollResult::Snapshot {
            workers,
            notes: Vec::new(),
        },
    }
}

fn failure(target: &str, secs: i64, kind: FailureKind, http_status: Option<u16>) -> PollRecord {
    PollRecord {
        target: target.to_string(),
        started_at: at(secs),
        duration: Duration::from_millis(10_000),
        result: PollResult::Failed(PollFailure {
            kind,
            message: format!("{kind} happened"),
            http_status,
        }),
    }
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    with_pool!(store, readers, |pool, dialect| {
        sqlx::query_scalar(dialect.sql(sql))
            .fetch_one(pool)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
    })
}

/// The rows of a query, on either backend.
async fn rows(store: &Store, sql: impl Into<String>) -> Vec<AnyRow> {
    let sql = sql.into();
    with_pool!(store, readers, |pool, dialect| {
        sqlx::query(dialect.owned(sql.clone()))
            .fetch_all(pool)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
            .into_iter()
            .map(AnyRow::from)
            .collect()
    })
}

/// The value of `column` in `row`.
fn get<T: super::backend::Column>(row: &AnyRow, column: &str) -> T {
    row.value(column)
        .unwrap_or_else(|error| panic!("{column}: {error}"))
}

/// One column of every row of a query.
async fn values<T: super::backend::Column>(store: &Store, sql: &str, column: &str) -> Vec<T> {
    rows(store, sql)
        .await
        .iter()
        .map(|row| get(row, column))
        .collect()
}

/// A history filter with times in seconds.
fn filter(
    target: Option<&str>,
    since: Option<i64>,
    until: Option<i64>,
    limit: Option<u32>,
) -> HistoryFilter {
    HistoryFilter {
        target: target.map(str::to_string),
        since: since.map(at),
        until: until.map(at),
        limit,
    }
}

/// Retention of samples at `secs`: rolls up and deletes the polls before it.
async fn roll_up_before(store: &Store, secs: i64) -> Deleted {
    store
        .delete_samples_before(at(secs))
        .await
        .expect("retention")
}

fn all_history() -> HistoryFilter {
    HistoryFilter::default()
}

store_tests! {
    async fn samples_round_trip_with_every_field_nulls_and_extra(db: TestDb) {
        let fixture = fixture(&db).await;
        let full = worker(101, "running");
        let mut sparse = WorkerSample::new(102);
        sparse.set(Field::Perf, Some(0.0));
        let mut with_extra = worker(103, "loading");
        with_extra.set(Field::Reliability, None);
        with_extra.extra = Some(
            serde_json::json!({"loop_lag_max": 0.25, "warnings": ["disk"], "perf": "n/a"})
                .as_object()
                .cloned()
                .expect("an object"),
        );
        let workers = vec![full, sparse, with_extra];
        fixture
            .store
            .record_polls(&[snapshot("prod", 1_000, workers.clone())])
            .await
            .expect("stored");

        let rows = fixture
            .store
            .fleet_history(&all_history())
            .await
            .expect("fleet history");
        assert_eq!(rows.len(), 1);
        let poll_id = rows[0].poll_id;
        let mut stored = Vec::new();
        for worker in &workers {
            let history = fixture
                .store
                .worker_history(&all_history(), worker.worker_id)
                .await
                .expect("worker history");
            assert_eq!(history.len(), 1, "worker {}", worker.worker_id);
            assert_eq!(history[0].poll_id, poll_id);
            assert_eq!(history[0].target, "prod");
            assert_eq!(history[0].polled_at, at(1_000));
            stored.push(history[0].sample.clone());
        }
        assert_eq!(stored, workers);

        let null_columns: Vec<i64> = values(
            &fixture.store,
            "SELECT CAST(status IS NULL AS INTEGER) + CAST(cur_load IS NULL AS INTEGER) \
             + CAST(reliability IS NULL AS INTEGER) + CAST(extra IS NULL AS INTEGER) AS nulls \
             FROM worker_samples WHERE worker_id = 102",
            "nulls",
        )
        .await;
        assert_eq!(null_columns, [4], "absent values are NULL, never 0");
        if fixture.database.sqlite_path().is_some() {
            let reqs_type: Vec<String> = values(
                &fixture.store,
                "SELECT typeof(reqs_working) AS type FROM worker_samples WHERE worker_id = 101",
                "type",
            )
            .await;
            assert_eq!(reqs_type, ["integer"]);
        }
    }
}

store_tests! {
    async fn failed_polls_keep_their_kind_message_and_status(db: TestDb) {
        let fixture = fixture(&db).await;
        let cases: Vec<(FailureKind, Option<u16>)> = FailureKind::ALL
            .into_iter()
            .map(|kind| {
                let status = match kind {
                    FailureKind::HttpStatus => Some(503),
                    FailureKind::RateLimited => Some(429),
                    FailureKind::ApiError => Some(401),
                    _ => None,
                };
                (kind, status)
            })
            .collect();
        let records: Vec<PollRecord> = cases
            .iter()
            .enumerate()
            .map(|(index, &(kind, status))| failure("prod", 100 + index as i64, kind, status))
            .collect();
        fixture.store.record_polls(&records).await.expect("stored");

        let polls = fixture
            .store
            .poll_history(&all_history())
            .await
            .expect("poll history");
        assert_eq!(polls.len(), cases.len());
        for (poll, &(kind, status)) in polls.iter().zip(&cases) {
            assert_eq!(poll.outcome, kind.as_str());
            assert_eq!(
                poll.error.as_deref(),
                Some(format!("{kind} happened").as_str())
            );
            assert_eq!(poll.http_status, status);
            assert_eq!(poll.worker_count, None);
            assert_eq!(poll.duration, Duration::from_secs(10));
            assert!(!poll.is_ok());
        }
        assert_eq!(
            count(&fixture.store, "SELECT count(*) FROM fleet_samples").await,
            0
        );
        assert_eq!(
            count(&fixture.store, "SELECT count(*) FROM worker_samples").await,
            0
        );
    }
}

store_tests! {
    async fn a_snapshot_stores_its_worker_count_and_notes(db: TestDb) {
        let fixture = fixture(&db).await;
        let mut with_notes = snapshot("prod", 10, vec![worker(1, "running"), worker(2, "idle")]);
        if let PollResult::Snapshot { notes, .. } = &mut with_notes.result {
            notes.push("worker 3: perf is not a number".to_string());
            notes.push("worker 4: dropped, no id".to_string());
        }
        let records = [with_notes, snapshot("prod", 20, Vec::new())];
        fixture.store.record_polls(&records).await.expect("stored");

        let polls = fixture
            .store
            .poll_history(&all_history())
            .await
            .expect("polls");
        let summary: Vec<(&str, Option<&str>, Option<u32>)> = polls
            .iter()
            .map(|poll| {
                (
                    poll.outcome.as_str(),
                    poll.error.as_deref(),
                    poll.worker_count,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "ok",
                    Some("worker 3: perf is not a number; worker 4: dropped, no id"),
                    Some(2)
                ),
                ("ok", None, Some(0)),
            ]
        );
    }
}

/// `CASE` over the reference doc's status lists, to recount classes from raw rows.
fn class_sql(statuses: &[&str]) -> String {
    let quoted: Vec<String> = statuses
        .iter()
        .map(|status| format!("'{status}'"))
        .collect();
    format!(
        "count(CASE WHEN status IN ({}) THEN 1 END)",
        quoted.join(", ")
    )
}

store_tests! {
    async fn fleet_samples_equal_the_sums_over_stored_worker_rows(db: TestDb) {
        let fixture = fixture(&db).await;
        let every_status: Vec<&str> = [
            StateClass::READY,
            StateClass::STARTING,
            StateClass::INACTIVE,
            StateClass::FAILED,
            &["mystery", "offline_soon"],
        ]
        .concat();
        let mut records = Vec::new();
        for poll in 0..6i64 {
            let mut workers: Vec<WorkerSample> = every_status
                .iter()
                .enumerate()
                .filter(|(index, _)| (*index as i64 + poll) % 3 != 0)
                .map(|(index, status)| worker(1_000 + index as i64 * 10 + poll, status))
                .collect();
            // Missing values must be skipped by the sums, not counted as zero.
            workers[0].set(Field::Perf, None);
            workers[1].set(Field::CurLoadRollingAvg, None);
            workers[1].status = None;
            records.push(snapshot("prod", 100 + poll * 30, workers));
        }
        records.push(snapshot("group", 500, Vec::new()));
        fixture.store.record_polls(&records).await.expect("stored");

        let recount = format!(
            "SELECT poll_id, count(*) AS workers, {} AS ready, {} AS starting, {} AS inactive, \
             {} AS failed, sum(cur_load) AS load, sum(cur_load_rolling_avg) AS load_rolling, \
             sum(CASE WHEN status IN ({}) THEN perf END) AS perf, \
             sum(reqs_working) AS reqs_working \
             FROM worker_samples GROUP BY poll_id ORDER BY poll_id",
            class_sql(StateClass::READY),
            class_sql(StateClass::STARTING),
            class_sql(StateClass::INACTIVE),
            class_sql(StateClass::FAILED),
            StateClass::READY
                .iter()
                .map(|status| format!("'{status}'"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let recounted = rows(&fixture.store, recount).await;
        let view = rows(&fixture.store, "SELECT * FROM fleet_samples ORDER BY poll_id").await;
        assert_eq!(view.len(), records.len(), "one row per successful poll");
        assert_eq!(
            recounted.len(),
            records.len() - 1,
            "the empty poll has no rows"
        );

        for (raw, row) in recounted.iter().zip(&view) {
            let poll_id: i64 = get(raw, "poll_id");
            assert_eq!(get::<i64>(row, "poll_id"), poll_id);
            assert_eq!(get::<String>(row, "target"), "prod");
            for column in ["workers", "ready", "starting", "inactive", "failed"] {
                assert_eq!(
                    get::<i64>(row, column),
                    get::<i64>(raw, column),
                    "{column} of poll {poll_id}"
                );
            }
            for column in ["load", "load_rolling", "perf", "reqs_working"] {
                let stored = get::<Option<f64>>(row, column).unwrap_or(0.0);
                let summed = get::<Option<f64>>(raw, column).unwrap_or(0.0);
                assert!(
                    (stored - summed).abs() <= 1e-9 * summed.abs().max(1.0),
                    "{column} of poll {poll_id}: view {stored}, rows {summed}"
                );
            }
            // NULL reads as 0, as SQLite's untyped read gave it.
            let number = |row: &AnyRow, column| get::<Option<f64>>(row, column).unwrap_or(0.0);
            let utilization = number(row, "utilization");
            let expected = number(raw, "load_rolling") / number(raw, "perf");
            assert!((utilization - expected).abs() <= 1e-9 * expected.abs());
        }

        let empty = view.last().expect("the empty poll's row");
        assert_eq!(get::<String>(empty, "target"), "group");
        assert_eq!(get::<i64>(empty, "workers"), 0);
        assert_eq!(get::<Option<f64>>(empty, "load"), None);
        assert_eq!(get::<Option<f64>>(empty, "utilization"), None);
    }
}

store_tests! {
    async fn class_counts_follow_the_reference_doc(db: TestDb) {
        // (statuses in one poll, expected [workers, ready, starting, inactive, failed])
        let cases: &[(&[Option<&str>], [u32; 5])] = &[
            (
                &[Some("idle"), Some("ready"), Some("running")],
                [3, 3, 0, 0, 0],
            ),
            (
                &[Some("model_loading"), Some("update_rebooting")],
                [2, 0, 2, 0, 0],
            ),
            (
                &[Some("stopped"), Some("exited"), Some("inactive")],
                [3, 0, 0, 3, 0],
            ),
            (
                &[Some("error"), Some("unavail"), Some("destroying")],
                [3, 0, 0, 0, 3],
            ),
            (&[Some("mystery"), None, Some("")], [3, 0, 0, 0, 0]),
            (&[Some("RUNNING"), Some("Loading")], [2, 1, 1, 0, 0]),
            (&[], [0, 0, 0, 0, 0]),
        ];
        let fixture = fixture(&db).await;
        let records: Vec<PollRecord> = cases
            .iter()
            .enumerate()
            .map(|(index, (statuses, _))| {
                let workers = statuses
                    .iter()
                    .enumerate()
                    .map(|(id, status)| {
                        let mut worker = worker(id as i64, "");
                        worker.status = status.map(str::to_string);
                        worker
                    })
                    .collect();
                snapshot("prod", index as i64, workers)
            })
            .collect();
        fixture.store.record_polls(&records).await.expect("stored");

        let rows = fixture
            .store
            .fleet_history(&all_history())
            .await
            .expect("history");
        assert_eq!(rows.len(), cases.len());
        for (row, (statuses, expected)) in rows.iter().zip(cases) {
            let summary = &row.summary;
            let actual = [
                summary.workers,
                summary.ready,
                summary.starting,
                summary.inactive,
                summary.failed,
            ];
            assert_eq!(&actual, expected, "statuses {statuses:?}");
        }
    }
}

store_tests! {
    async fn utilization_is_missing_when_perf_is_zero_or_missing(db: TestDb) {
        // (ready worker's perf, rolling load, expected utilization)
        let cases: &[(Option<f64>, Option<f64>, Option<f64>)] = &[
            (Some(100.0), Some(50.0), Some(0.5)),
            (Some(0.0), Some(50.0), None),
            (None, Some(50.0), None),
            (Some(100.0), None, None),
        ];
        let fixture = fixture(&db).await;
        let records: Vec<PollRecord> = cases
            .iter()
            .enumerate()
            .map(|(index, &(perf, load, _))| {
                let mut worker = WorkerSample::new(7);
                worker.status = Some("running".to_string());
                worker.set(Field::Perf, perf);
                worker.set(Field::CurLoadRollingAvg, load);
                snapshot("prod", index as i64, vec![worker])
            })
            .collect();
        fixture.store.record_polls(&records).await.expect("stored");

        let from_rows: Vec<Option<f64>> = fixture
            .store
            .fleet_history(&all_history())
            .await
            .expect("history")
            .iter()
            .map(|row| row.utilization)
            .collect();
        let from_view: Vec<Option<f64>> = values(
            &fixture.store,
            "SELECT utilization FROM fleet_samples ORDER BY polled_at",
            "utilization",
        )
        .await;
        let expected: Vec<Option<f64>> = cases.iter().map(|case| case.2).collect();
        assert_eq!(from_rows, expected);
        assert_eq!(from_view, expected);
    }
}

store_tests! {
    async fn reopening_applies_no_migration_twice_and_keeps_the_data(db: TestDb) {
        let fixture = fixture(&db).await;
        fixture
            .store
            .record_polls(&[snapshot("prod", 10, vec![worker(1, "running")])])
            .await
            .expect("stored");
        fixture.store.close().await.expect("closed");

        for _ in 0..2 {
            let store = Store::open(&fixture.database).await.expect("reopens");
            assert_eq!(
                count(&store, "SELECT count(*) FROM _sqlx_migrations").await,
                SQLITE_MIGRATIONS.len() as i64
            );
            assert_eq!(
                count(&store, "SELECT count(*) FROM worker_samples").await,
                1
            );
            assert_eq!(store.targets().await.expect("targets").len(), 2);
            store.close().await.expect("closed");
        }
    }
}

#[tokio::test]
async fn the_database_runs_in_wal_mode_and_close_folds_the_log_back() {
    let db = TestDb::sqlite();
    let fixture = fixture(&db).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(sqlite_pools(&fixture.store).1)
        .await
        .expect("journal mode");
    assert_eq!(mode, "wal");
    fixture
        .store
        .record_polls(&[snapshot("prod", 10, vec![worker(1, "running")])])
        .await
        .expect("stored");
    let wal = fixture.path().with_extension("db-wal");
    fixture.store.close().await.expect("closed");
    let wal_size = std::fs::metadata(&wal).map_or(0, |metadata| metadata.len());
    assert_eq!(wal_size, 0, "{} still holds pages", wal.display());
}

store_tests! {
    async fn sync_targets_upserts_by_name_and_keeps_removed_targets(db: TestDb) {
        let fixture = fixture(&db).await;
        fixture
            .store
            .record_polls(&[snapshot("group", 10, vec![worker(1, "running")])])
            .await
            .expect("stored");
        // `prod` changes kind and id, `group` leaves the config, `new` arrives.
        fixture
            .store
            .sync_targets(&[
                target("prod", TargetKind::WorkerGroup, 9),
                target("new", TargetKind::Endpoint, 3),
            ])
            .await
            .expect("synced");

        let targets: Vec<(String, TargetKind, i64)> = fixture
            .store
            .targets()
            .await
            .expect("targets")
            .into_iter()
            .map(|row| (row.name, row.kind, row.vast_id))
            .collect();
        assert_eq!(
            targets,
            [
                ("group".to_string(), TargetKind::WorkerGroup, 2),
                ("new".to_string(), TargetKind::Endpoint, 3),
                ("prod".to_string(), TargetKind::WorkerGroup, 9),
            ]
        );
        let group_history = HistoryFilter {
            target: Some("group".to_string()),
            ..HistoryFilter::default()
        };
        assert_eq!(
            fixture
                .store
                .fleet_history(&group_history)
                .await
                .expect("history")
                .len(),
            1,
            "a removed target keeps its history"
        );
    }
}

store_tests! {
    async fn an_unknown_target_fails_the_whole_batch_and_stores_nothing(db: TestDb) {
        let fixture = fixture(&db).await;
        let records = [
            snapshot("prod", 10, vec![worker(1, "running")]),
            snapshot("nobody", 10, vec![worker(2, "running")]),
        ];
        let error = fixture
            .store
            .record_polls(&records)
            .await
            .expect_err("unknown target");
        assert!(
            matches!(&error, StoreError::UnknownTarget { name } if name == "nobody"),
            "{error}"
        );
        assert_eq!(count(&fixture.store, "SELECT count(*) FROM polls").await, 0);
        assert_eq!(
            count(&fixture.store, "SELECT count(*) FROM worker_samples").await,
            0
        );
    }
}

store_tests! {
    async fn repeated_ids_keep_the_last_entry_and_bad_values_are_repaired(db: TestDb) {
        let fixture = fixture(&db).await;
        let first = worker(5, "loading");
        let last = worker(5, "running").with(Field::Perf, 42.0);
        let mut shouting = worker(6, "RUNNING");
        shouting.set(Field::Reliability, Some(f64::NAN));
        shouting.set(Field::CurLoad, Some(f64::INFINITY));
        fixture
            .store
            .record_polls(&[snapshot(
                "prod",
                10,
                vec![worker(9, "idle"), first, shouting, last],
            )])
            .await
            .expect("stored");

        let five = fixture
            .store
            .worker_history(&all_history(), 5)
            .await
            .expect("history");
        assert_eq!(five.len(), 1);
        assert_eq!(five[0].sample.status.as_deref(), Some("running"));
        assert_eq!(five[0].sample.get(Field::Perf), Some(42.0));

        let six = &fixture
            .store
            .worker_history(&all_history(), 6)
            .await
            .expect("history")[0]
            .sample;
        assert_eq!(six.status.as_deref(), Some("running"));
        assert_eq!(six.get(Field::Reliability), None);
        assert_eq!(six.get(Field::CurLoad), None);
        let extra = six.extra.as_ref().expect("raw values kept");
        assert_eq!(extra["reliability"], "NaN");
        assert_eq!(extra["cur_load"], "inf");

        let fleet = &fixture
            .store
            .fleet_history(&all_history())
            .await
            .expect("fleet")[0];
        assert_eq!((fleet.summary.workers, fleet.summary.ready), (3, 3));
        let stored_ids: Vec<i64> = values(
            &fixture.store,
            "SELECT worker_id FROM worker_samples ORDER BY worker_id",
            "worker_id",
        )
        .await;
        assert_eq!(stored_ids, [5, 6, 9]);
        let recorded: Vec<Option<i64>> =
            values(&fixture.store, "SELECT worker_count FROM polls", "worker_count").await;
        assert_eq!(recorded, [Some(3)]);
    }
}

store_tests! {
    async fn every_sample_is_stored_across_chunk_boundaries(db: TestDb) {
        let chunk = SAMPLE_CHUNK_ROWS as i64;
        // (workers per poll, polls)
        let cases: &[(i64, i64)] = &[
            (chunk - 1, 1),
            (chunk, 1),
            (chunk + 1, 1),
            (3 * chunk + 1, 1),
            (chunk / 2 + 3, 5),
            (0, 3),
        ];
        for &(per_poll, polls) in cases {
            let db = db.another().await;
            let fixture = fixture(&db).await;
            let records: Vec<PollRecord> = (0..polls)
                .map(|poll| {
                    let workers = (0..per_poll).map(|id| worker(id, "running")).collect();
                    snapshot(if poll % 2 == 0 { "prod" } else { "group" }, poll, workers)
                })
                .collect();
            fixture.store.record_polls(&records).await.expect("stored");

            let stored = &rows(
                &fixture.store,
                "SELECT count(*) AS samples, count(DISTINCT poll_id) AS polls, \
                 COALESCE(sum(worker_id), 0) AS id_sum FROM worker_samples",
            )
            .await[0];
            let label = format!("{polls} polls of {per_poll} workers");
            assert_eq!(get::<i64>(stored, "samples"), per_poll * polls, "{label}");
            assert_eq!(
                get::<i64>(stored, "polls"),
                if per_poll > 0 { polls } else { 0 },
                "{label}"
            );
            assert_eq!(
                get::<i64>(stored, "id_sum"),
                polls * per_poll * (per_poll - 1).max(0) / 2,
                "{label}"
            );
            assert_eq!(
                count(&fixture.store, "SELECT count(*) FROM fleet_samples").await,
                polls
            );
        }
    }
}

store_tests! {
    async fn consecutive_batches_get_fresh_poll_ids(db: TestDb) {
        let fixture = fixture(&db).await;
        for tick in 0..3 {
            fixture
                .store
                .record_polls(&[
                    snapshot("prod", tick * 10, vec![worker(1, "running")]),
                    failure("group", tick * 10, FailureKind::Timeout, None),
                ])
                .await
                .expect("stored");
        }
        let ids: Vec<i64> = fixture
            .store
            .poll_history(&all_history())
            .await
            .expect("polls")
            .iter()
            .map(|poll| poll.id)
            .collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    }
}

store_tests! {
    async fn poll_ids_are_never_reused_after_retention_empties_the_table(db: TestDb) {
        let fixture = fixture(&db).await;
        for secs in [10, 20] {
            fixture
                .store
                .record_polls(&[snapshot("prod", secs, vec![worker(1, "running")])])
                .await
                .expect("stored");
        }
        roll_up_before(&fixture.store, 300).await;
        fixture
            .store
            .record_polls(&[snapshot("prod", 400, vec![worker(1, "running")])])
            .await
            .expect("stored");
        let polls = fixture
            .store
            .poll_history(&all_history())
            .await
            .expect("polls");
        assert_eq!(polls.iter().map(|poll| poll.id).collect::<Vec<_>>(), [3]);
    }
}

store_tests! {
    async fn retention_deletes_only_polls_before_the_cutoff_rounded_down_to_a_bucket(db: TestDb) {
        let fixture = fixture(&db).await;
        fixture
            .store
            .record_polls(&[
                snapshot("prod", 100, vec![worker(1, "running"), worker(2, "idle")]),
                failure("prod", 150, FailureKind::Connect, None),
                snapshot("group", 180, Vec::new()),
                snapshot("prod", 300, vec![worker(1, "running")]),
                failure("group", 300, FailureKind::HttpStatus, Some(502)),
                snapshot("prod", 400, vec![worker(1, "running"), worker(3, "error")]),
            ])
            .await
            .expect("stored");

        let deleted = roll_up_before(&fixture.store, 420).await;
        assert_eq!(
            deleted,
            Deleted {
                polls: 3,
                samples: 2,
                rolled_up: 2,
                ..Deleted::default()
            },
            "the bucket from 300 s is not over at 420 s, so it stays whole"
        );

        let left: Vec<(i64, String)> = fixture
            .store
            .poll_history(&all_history())
            .await
            .expect("polls")
            .iter()
            .map(|poll| (poll.started_at.unix_millis() / 1000, poll.outcome.clone()))
            .collect();
        assert_eq!(
            left,
            [
                (300, "ok".to_string()),
                (300, "http_status".to_string()),
                (400, "ok".to_string())
            ]
        );
        assert_eq!(
            count(&fixture.store, "SELECT count(*) FROM worker_samples").await,
            3
        );
        assert_eq!(
            count(&fixture.store, "SELECT count(*) FROM fleet_samples").await,
            2
        );
        for orphans in [
            "SELECT count(*) FROM worker_samples WHERE poll_id NOT IN (SELECT id FROM polls)",
            "SELECT count(*) FROM fleet_totals WHERE poll_id NOT IN (SELECT id FROM polls)",
            "SELECT count(*) FROM polls p WHERE outcome = 'ok' \
             AND NOT EXISTS (SELECT 1 FROM fleet_totals f WHERE f.poll_id = p.id)",
        ] {
            assert_eq!(count(&fixture.store, orphans).await, 0, "{orphans}");
        }

        let again = roll_up_before(&fixture.store, 420).await;
        assert_eq!(again, Deleted::default(), "a second pass finds nothing");
    }
}

store_tests! {
    async fn retention_of_many_samples_runs_in_batches_and_misses_none(db: TestDb) {
        let fixture = fixture(&db).await;
        let records: Vec<PollRecord> = (0..40)
            .map(|poll| {
                let workers = (0..700).map(|id| worker(id, "running")).collect();
                snapshot("prod", poll * 10, workers)
            })
            .collect();
        fixture.store.record_polls(&records).await.expect("stored");

        let deleted = roll_up_before(&fixture.store, 300).await;
        assert_eq!(
            deleted,
            Deleted {
                polls: 30,
                samples: 30 * 700,
                rolled_up: 1,
                ..Deleted::default()
            }
        );
        assert_eq!(
            count(&fixture.store, "SELECT count(*) FROM worker_samples").await,
            10 * 700
        );
        assert_eq!(
            count(
                &fixture.store,
                "SELECT CAST(min(polled_at) AS BIGINT) FROM worker_samples"
            )
            .await,
            300
        );
    }
}

store_tests! {
    async fn history_narrows_by_target_time_and_limit(db: TestDb) {
        let fixture = fixture(&db).await;
        let mut records = Vec::new();
        for tick in 0..5 {
            let secs = 100 + tick * 10;
            records.push(snapshot(
                "prod",
                secs,
                vec![worker(1, "running"), worker(2, "idle")],
            ));
            records.push(snapshot("group", secs, vec![worker(1, "running")]));
            records.push(failure("group", secs + 1, FailureKind::Timeout, None));
        }
        fixture.store.record_polls(&records).await.expect("stored");

        // (filter, fleet rows as (target, secs), polls, samples of worker 1)
        type Case = (HistoryFilter, Vec<(&'static str, i64)>, usize, usize);
        let cases: Vec<Case> = vec![
            (
                filter(Some("prod"), Some(110), Some(130), None),
                vec![("prod", 110), ("prod", 120), ("prod", 130)],
                3,
                3,
            ),
            (
                filter(Some("group"), None, None, Some(2)),
                vec![("group", 130), ("group", 140)],
                2,
                2,
            ),
            (
                filter(None, Some(140), None, None),
                vec![("prod", 140), ("group", 140)],
                3,
                2,
            ),
            (filter(None, None, Some(99), None), vec![], 0, 0),
            (filter(None, None, None, Some(0)), vec![], 0, 0),
        ];
        for (filter, expected_fleet, expected_polls, expected_worker) in cases {
            let fleet: Vec<(String, i64)> = fixture
                .store
                .fleet_history(&filter)
                .await
                .expect("fleet")
                .into_iter()
                .map(|row| (row.target, row.polled_at.unix_millis() / 1000))
                .collect();
            let expected_fleet: Vec<(String, i64)> = expected_fleet
                .into_iter()
                .map(|(target, secs)| (target.to_string(), secs))
                .collect();
            assert_eq!(fleet, expected_fleet, "{filter:?}");
            let polls = fixture.store.poll_history(&filter).await.expect("polls");
            assert_eq!(polls.len(), expected_polls, "{filter:?}");
            assert!(
                polls
                    .windows(2)
                    .all(|pair| pair[0].started_at <= pair[1].started_at)
            );
            let worker = fixture
                .store
                .worker_history(&filter, 1)
                .await
                .expect("worker");
            assert_eq!(worker.len(), expected_worker, "{filter:?}");
            assert!(
                worker
                    .windows(2)
                    .all(|pair| pair[0].polled_at <= pair[1].polled_at)
            );
        }
    }
}

store_tests! {
    async fn history_of_an_unknown_target_is_an_error(db: TestDb) {
        let fixture = fixture(&db).await;
        let filter = HistoryFilter {
            target: Some("nobody".to_string()),
            ..HistoryFilter::default()
        };
        let error = fixture
            .store
            .fleet_history(&filter)
            .await
            .expect_err("unknown");
        assert!(matches!(error, StoreError::UnknownTarget { .. }), "{error}");
        let error = fixture
            .store
            .worker_history(&filter, 1)
            .await
            .expect_err("unknown");
        assert!(matches!(error, StoreError::UnknownTarget { .. }), "{error}");
    }
}

#[tokio::test]
async fn a_path_that_cannot_be_opened_is_named_in_the_error() {
    let folder = TempDir::new().expect("temporary folder");
    let missing_folder = folder.path().join("nowhere").join("vastwatch.db");
    // (path, words the message must contain)
    let cases: Vec<(PathBuf, &str)> = vec![
        (missing_folder, "does not exist"),
        (folder.path().to_path_buf(), "folder, not a file"),
    ];
    for (path, reason) in cases {
        let error = Store::open(&path).await.expect_err("cannot open");
        let message = error.to_string();
        assert!(matches!(error, StoreError::Open { .. }), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(reason), "{message}");
    }
}

store_tests! {
    async fn a_store_summary_matches_the_domain_summary(db: TestDb) {
        // The stored sums are FleetSummary::of over the stored workers, read back unchanged.
        let fixture = fixture(&db).await;
        let workers = vec![
            worker(1, "running"),
            worker(2, "loading"),
            worker(3, "stopped").with(Field::NewLoad, 3.5),
        ];
        fixture
            .store
            .record_polls(&[snapshot("prod", 10, workers.clone())])
            .await
            .expect("stored");
        let row = &fixture
            .store
            .fleet_history(&all_history())
            .await
            .expect("fleet")[0];
        assert_eq!(row.summary, FleetSummary::of(&workers));
        assert_eq!(row.utilization, FleetSummary::of(&workers).utilization());
    }
}

store_tests! {
    async fn poll_records_read_back_exactly_what_was_recorded_per_target_and_for_all(db: TestDb) {
        let fixture = fixture(&db).await;
        let records = vec![
            snapshot("prod", 10, vec![worker(1, "running"), worker(2, "loading")]),
            snapshot("group", 10, vec![worker(7, "running")]),
            failure("prod", 20, FailureKind::RateLimited, Some(429)),
            snapshot("group", 20, vec![]),
            snapshot("prod", 30, vec![worker(1, "running")]),
        ];
        fixture.store.record_polls(&records).await.expect("stored");

        let prod = fixture
            .store
            .poll_records(&HistoryFilter {
                target: Some("prod".to_string()),
                ..HistoryFilter::default()
            })
            .await
            .expect("prod records");
        let expected_prod: Vec<PollRecord> = records
            .iter()
            .filter(|record| record.target == "prod")
            .cloned()
            .collect();
        assert_eq!(prod.len(), 3);
        for (read, written) in prod.iter().zip(&expected_prod) {
            assert_eq!(read.target, written.target);
            assert_eq!(read.started_at, written.started_at);
            assert_eq!(read.result.outcome(), written.result.outcome());
            assert_eq!(read.result.workers(), written.result.workers());
        }
        match &prod[1].result {
            PollResult::Failed(failure) => {
                assert_eq!(failure.kind, FailureKind::RateLimited);
                assert_eq!(failure.http_status, Some(429));
                assert_eq!(failure.message, "rate_limited happened");
            }
            other => panic!("expected the failure, got {other:?}"),
        }

        let all = fixture
            .store
            .poll_records(&HistoryFilter {
                since: Some(at(15)),
                ..HistoryFilter::default()
            })
            .await
            .expect("all records");
        let seen: Vec<(String, i64, usize)> = all
            .iter()
            .map(|r| {
                (
                    r.target.clone(),
                    r.started_at.unix_millis() / 1000,
                    r.result.workers().map_or(0, <[WorkerSample]>::len),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("prod".to_string(), 20, 0),
                ("group".to_string(), 20, 0),
                ("prod".to_string(), 30, 1)
            ]
        );
    }
}

store_tests! {
    async fn compact_polls_are_the_poll_records_in_compact_form(db: TestDb) {
        let fixture = fixture(&db).await;
        let mut sparse = WorkerSample::new(5);
        sparse.set(Field::Perf, Some(0.0));
        let mut odd = worker(9, "mystery");
        odd.set(Field::Reliability, None);
        odd.extra = Some(
            serde_json::json!({"loop_lag_max": 0.25, "perf": "n/a"})
                .as_object()
                .cloned()
                .expect("an object"),
        );
        let records = vec![
            // Workers out of id order, a worker without status, an unknown status with extra.
            snapshot(
                "prod",
                10,
                vec![worker(2, "loading"), sparse, worker(1, "running")],
            ),
            snapshot("group", 10, vec![odd, worker(7, "error")]),
            failure("prod", 20, FailureKind::Timeout, None),
            snapshot("group", 20, vec![]),
            snapshot("prod", 30, vec![worker(1, "running")]),
            snapshot("prod", 40, vec![worker(1, "running")]),
        ];
        fixture.store.record_polls(&records).await.expect("stored");

        let expected: Vec<CompactPoll> = fixture
            .store
            .poll_records(&HistoryFilter {
                since: Some(at(10)),
                until: Some(at(30)),
                ..HistoryFilter::default()
            })
            .await
            .expect("records")
            .into_iter()
            .map(|record| CompactPoll {
                target: record.target,
                started_at: record.started_at,
                workers: record.result.workers().map(|workers| {
                    let mut compact: Vec<HistSample> =
                        workers.iter().map(HistSample::from_sample).collect();
                    compact.sort_by_key(|sample| sample.worker_id);
                    compact
                }),
            })
            .collect();
        let compact = fixture
            .store
            .compact_polls(at(10), at(30))
            .await
            .expect("compact polls");
        assert_eq!(expected.len(), 5, "both ends of the range are included");
        // HistSample's NaNs compare unequal: compare the printed forms, which show them.
        assert_eq!(format!("{compact:?}"), format!("{expected:?}"));
        let odd = &compact[1].workers.as_ref().expect("group's workers")[1];
        assert_eq!(
            (odd.worker_id, odd.class, odd.status.as_deref()),
            (9, StateClass::Unknown, Some("mystery"))
        );
        assert!(odd.get(Field::Reliability).is_none());
        assert_eq!(compact[2].workers, None, "the failed poll has no workers");
    }
}

/// Every rollup statistic, as `fleet_samples` gives it for the same polls before they go.
const ROLLUP_CHECK: &str = "SELECT t.id AS target_id, CAST(s.polled_at AS BIGINT) / 300 * 300 AS bucket, \
     count(*) AS polls, \
     avg(workers) AS workers_avg, min(workers) AS workers_min, max(workers) AS workers_max, \
     avg(ready) AS ready_avg, min(ready) AS ready_min, max(ready) AS ready_max, \
     avg(starting) AS starting_avg, min(starting) AS starting_min, max(starting) AS starting_max, \
     avg(inactive) AS inactive_avg, min(inactive) AS inactive_min, max(inactive) AS inactive_max, \
     avg(failed) AS failed_avg, min(failed) AS failed_min, max(failed) AS failed_max, \
     avg(load) AS load_avg, min(load) AS load_min, max(load) AS load_max, \
     avg(load_rolling) AS load_rolling_avg, min(load_rolling) AS load_rolling_min, \
     max(load_rolling) AS load_rolling_max, \
     avg(perf) AS perf_avg, min(perf) AS perf_min, max(perf) AS perf_max, \
     avg(reqs_working) AS reqs_working_avg, min(reqs_working) AS reqs_working_min, \
     max(reqs_working) AS reqs_working_max, \
     avg(utilization) AS utilization_avg, min(utilization) AS utilization_min, \
     max(utilization) AS utilization_max \
     FROM fleet_samples AS s JOIN targets AS t ON t.name = s.target \
     GROUP BY t.id, bucket ORDER BY t.id, bucket";

const ROLLUP_ROWS: &str = "SELECT * FROM fleet_rollups ORDER BY target_id, bucket";

/// Rows as JSON objects of their columns, numbers as floats, so two queries compare
/// whatever storage class SQLite picked.
async fn rows_as_json(store: &Store, sql: &'static str) -> Vec<serde_json::Value> {
    with_pool!(store, readers, |pool, dialect| {
        let rows = sqlx::query(dialect.sql(sql))
            .fetch_all(pool)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
        rows.iter()
            .map(|row| {
                let object = row
                    .columns()
                    .iter()
                    .map(|column| {
                        let value: Option<f64> =
                            row.value(column.name()).expect("a number or NULL");
                        (column.name().to_string(), serde_json::json!(value))
                    })
                    .collect();
                serde_json::Value::Object(object)
            })
            .collect()
    })
}

/// Polls of `prod` and `group` over two buckets, varied so every statistic differs.
fn two_buckets_of_polls() -> Vec<PollRecord> {
    let mut sparse = worker(7, "loading");
    sparse.set(Field::Perf, None);
    vec![
        snapshot("prod", 0, vec![worker(1, "running"), worker(2, "idle")]),
        snapshot(
            "prod",
            100,
            vec![worker(1, "running"), worker(3, "error"), sparse],
        ),
        failure("prod", 200, FailureKind::Timeout, None),
        snapshot("prod", 299, vec![worker(4, "running")]),
        snapshot("prod", 300, vec![worker(1, "running"), worker(5, "exited")]),
        snapshot("group", 50, Vec::new()),
        failure("group", 400, FailureKind::Connect, None),
    ]
}

async fn fixture_with_two_buckets(db: &TestDb) -> Fixture {
    let fixture = fixture(db).await;
    fixture
        .store
        .record_polls(&two_buckets_of_polls())
        .await
        .expect("stored");
    fixture
}

store_tests! {
    async fn retention_rolls_each_bucket_up_exactly_as_fleet_samples_had_it(db: TestDb) {
        let fixture = fixture_with_two_buckets(&db).await;
        let expected = rows_as_json(&fixture.store, ROLLUP_CHECK).await;
        assert_eq!(expected.len(), 3, "prod 0, prod 300, group 0");

        let deleted = roll_up_before(&fixture.store, 600).await;
        assert_eq!(deleted.polls, 7, "failed polls go too");
        assert_eq!(deleted.rolled_up, 3);
        assert_eq!(count(&fixture.store, "SELECT count(*) FROM polls").await, 0);
        assert_eq!(rows_as_json(&fixture.store, ROLLUP_ROWS).await, expected);
        let workers: Vec<(i64, i64, f64, f64, f64)> = rows(
            &fixture.store,
            "SELECT bucket, polls, workers_avg, workers_min, workers_max FROM fleet_rollups \
             WHERE target_id = (SELECT id FROM targets WHERE name = 'prod') ORDER BY bucket",
        )
        .await
        .iter()
        .map(|row| {
            (
                get(row, "bucket"),
                get(row, "polls"),
                get(row, "workers_avg"),
                get(row, "workers_min"),
                get(row, "workers_max"),
            )
        })
        .collect();
        assert_eq!(
            workers,
            [(0, 3, 2.0, 1.0, 3.0), (300, 1, 2.0, 2.0, 2.0)],
            "three successful polls of 2, 3 and 1 workers; the timeout is not a poll of 0"
        );

        // A restart runs retention again: nothing is left to roll up, nothing changes.
        fixture.store.clone().close().await.expect("closed");
        let reopened = Store::open(&fixture.database).await.expect("reopens");
        let again = reopened
            .delete_samples_before(at(600))
            .await
            .expect("retention");
        assert_eq!(again, Deleted::default());
        assert_eq!(rows_as_json(&reopened, ROLLUP_ROWS).await, expected);
    }
}

async fn record_and_roll_up(store: &Store, records: &[PollRecord]) {
    store.record_polls(records).await.expect("stored");
    roll_up_before(store, 600).await;
}

store_tests! {
    async fn polls_stored_into_a_rolled_up_bucket_merge_into_it_without_double_counting(db: TestDb) {
        let (first, late): (Vec<_>, Vec<_>) = two_buckets_of_polls()
            .into_iter()
            .partition(|record| record.started_at != at(100));
        let fixture = fixture(&db).await;
        record_and_roll_up(&fixture.store, &first).await;
        // The poll at 100 s arrives after its bucket was rolled up.
        record_and_roll_up(&fixture.store, &late).await;
        let other = db.another().await;
        let reference = self::fixture(&other).await;
        record_and_roll_up(&reference.store, &two_buckets_of_polls()).await;
        let merged = rows_as_json(&fixture.store, ROLLUP_ROWS).await;
        let whole = rows_as_json(&reference.store, ROLLUP_ROWS).await;
        assert_eq!(merged.len(), whole.len());
        for (merged, whole) in merged.iter().zip(&whole) {
            for (column, value) in whole.as_object().expect("object") {
                let (Some(expected), Some(actual)) = (value.as_f64(), merged[column].as_f64()) else {
                    assert_eq!(&merged[column], value, "{column}");
                    continue;
                };
                assert!(
                    (expected - actual).abs() < 1e-9,
                    "{column}: merged {actual}, whole {expected}"
                );
            }
        }
    }
}

store_tests! {
    async fn fleet_timeline_reads_rollups_only_where_raw_samples_expired(db: TestDb) {
        let fixture = fixture(&db).await;
        let records: Vec<PollRecord> = (0..12)
            .flat_map(|tick| {
                let secs = tick * 100;
                [
                    snapshot("prod", secs, vec![worker(1, "running")]),
                    snapshot("group", secs + 50, vec![worker(2, "running")]),
                ]
            })
            .collect();
        fixture.store.record_polls(&records).await.expect("stored");
        // Buckets 0 and 300 of both targets become rollups; raw rows from 600 s stay.
        roll_up_before(&fixture.store, 650).await;

        // (filter, rows as (target, secs, resolution, polls))
        type Case = (HistoryFilter, Vec<(&'static str, i64, &'static str, u32)>);
        let cases: Vec<Case> = vec![
            (
                filter(Some("prod"), None, Some(700), None),
                vec![
                    ("prod", 0, "5m", 3),
                    ("prod", 300, "5m", 3),
                    ("prod", 600, "raw", 1),
                    ("prod", 700, "raw", 1),
                ],
            ),
            (
                filter(None, Some(300), Some(650), None),
                vec![
                    ("group", 300, "5m", 3),
                    ("prod", 300, "5m", 3),
                    ("prod", 600, "raw", 1),
                    ("group", 650, "raw", 1),
                ],
            ),
            (filter(Some("group"), Some(1), Some(299), None), vec![]),
            (
                filter(None, None, Some(700), Some(3)),
                vec![
                    ("group", 650, "raw", 1),
                    ("prod", 700, "raw", 1),
                    ("prod", 600, "raw", 1),
                ],
            ),
            (
                filter(Some("prod"), None, None, Some(7)),
                vec![
                    ("prod", 300, "5m", 3),
                    ("prod", 600, "raw", 1),
                    ("prod", 700, "raw", 1),
                    ("prod", 800, "raw", 1),
                    ("prod", 900, "raw", 1),
                    ("prod", 1000, "raw", 1),
                    ("prod", 1100, "raw", 1),
                ],
            ),
        ];
        for (filter, expected) in cases {
            let mut rows: Vec<(String, i64, &str, u32)> = fixture
                .store
                .fleet_timeline(&filter)
                .await
                .expect("timeline")
                .into_iter()
                .map(|row| {
                    assert_eq!(
                        row.poll_id.is_some(),
                        row.resolution == Resolution::Raw,
                        "raw rows, and only they, name their poll"
                    );
                    (
                        row.target,
                        row.at.unix_millis() / 1000,
                        row.resolution.as_str(),
                        row.polls,
                    )
                })
                .collect();
            let times: Vec<i64> = rows.iter().map(|row| row.1).collect();
            assert!(times.is_sorted(), "{filter:?}: oldest first");
            rows.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
            let mut expected: Vec<(String, i64, &str, u32)> = expected
                .into_iter()
                .map(|(target, secs, resolution, polls)| (target.to_string(), secs, resolution, polls))
                .collect();
            expected.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
            assert_eq!(rows, expected, "{filter:?}");
        }
    }
}

/// The same cutoff, in seconds, for every kind of row.
fn every_cutoff_at(secs: i64) -> RetentionCutoffs {
    let cutoff = at(secs);
    RetentionCutoffs {
        samples: cutoff,
        rollups: cutoff,
        alerts: cutoff,
        recommendations: cutoff,
        notifications: cutoff,
        silences: cutoff,
    }
}

/// Runs fixture SQL on the writer.
async fn execute(store: &Store, statements: &[&'static str]) {
    for statement in statements {
        test_db::execute(store, *statement).await;
    }
}

async fn column(store: &Store, sql: &'static str) -> Vec<String> {
    with_pool!(store, readers, |pool, dialect| {
        sqlx::query_scalar(dialect.sql(sql))
            .fetch_all(pool)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
    })
}

store_tests! {
    async fn retention_bounds_every_table_but_keeps_what_is_still_needed(db: TestDb) {
        let fixture = fixture(&db).await;
        let store = &fixture.store;
        // Old and new rows of every kind, times in unix seconds; the cutoff is 1000 for all.
        execute(
            store,
            &[
                "INSERT INTO alerts (fingerprint, alertname, target, severity, state, labels, \
                 active_at, fired_at, resolved_at, last_eval_at) VALUES \
                 ('old-resolved', 'A', 'prod', 'warning', 'resolved', '{}', 10, 20, 30, 30), \
                 ('old-inactive', 'A', 'prod', 'warning', 'inactive', '{}', 10, NULL, NULL, 40), \
                 ('old-firing', 'A', 'prod', 'warning', 'firing', '{}', 10, 20, NULL, 50), \
                 ('old-pending', 'A', 'prod', 'warning', 'pending', '{}', 10, NULL, NULL, 60), \
                 ('new-resolved', 'A', 'prod', 'warning', 'resolved', '{}', 10, 20, 1500, 1500)",
                "INSERT INTO alert_events (fingerprint, at, from_state, to_state) VALUES \
                 ('old-resolved', 10, 'inactive', 'pending'), \
                 ('old-resolved', 30, 'firing', 'resolved'), \
                 ('old-firing', 20, 'pending', 'firing'), \
                 ('new-resolved', 20, 'pending', 'firing'), \
                 ('new-resolved', 1500, 'firing', 'resolved')",
                "INSERT INTO recommendations (target, at, action, current_workers, desired_workers, \
                 detail) VALUES \
                 ('prod', 10, 'hold', 1, 1, '{}'), ('prod', 20, 'scale_up', 1, 2, '{}'), \
                 ('prod', 1500, 'hold', 2, 2, '{}'), \
                 ('gone', 10, 'hold', 1, 1, '{}'), ('gone', 20, 'scale_down', 3, 1, '{}')",
                "INSERT INTO notifications (id, receiver, group_key, status, created_at, payload) \
                 VALUES ('old-delivered', 'r', 'g', 'delivered', 10, '{}'), \
                 ('old-failed', 'r', 'g', 'failed', 10, '{}'), \
                 ('old-pending', 'r', 'g', 'pending', 10, '{}'), \
                 ('new-delivered', 'r', 'g', 'delivered', 1500, '{}')",
                "INSERT INTO notification_log (group_key, receiver, sent_at, firing, resolved) \
                 VALUES ('quiet', 'r', 10, '[]', '[\"a\"]'), ('firing', 'r', 10, '[\"b\"]', '[]'), \
                 ('recent', 'r', 1500, '[]', '[]')",
                "INSERT INTO silences (id, matchers, starts_at, ends_at, created_at) VALUES \
                 ('ended', '[]', 0, 10, 0), ('running', '[]', 0, 5000, 0)",
                "INSERT INTO fleet_rollups (target_id, bucket, polls) VALUES (1, 600, 1), (1, 900, 1), \
                 (1, 1200, 1)",
            ],
        )
        .await;
        let deleted = store
            .apply_retention(&every_cutoff_at(1000))
            .await
            .expect("retention");
        assert_eq!(
            deleted,
            Deleted {
                rollups: 2,
                alert_events: 3,
                alerts: 2,
                recommendations: 3,
                notifications: 2,
                notification_log: 1,
                silences: 1,
                ..Deleted::default()
            }
        );
        let kept = [
            (
                "SELECT fingerprint FROM alerts ORDER BY fingerprint",
                vec!["new-resolved", "old-firing", "old-pending"],
            ),
            (
                "SELECT fingerprint || '@' || CAST(at AS BIGINT) FROM alert_events \
                 ORDER BY fingerprint, at",
                vec!["new-resolved@1500", "old-firing@20"],
            ),
            (
                // Each target's latest row stays, however old: the engine resumes from it.
                "SELECT target || '@' || CAST(at AS BIGINT) FROM recommendations \
                 ORDER BY target, at",
                vec!["gone@20", "prod@1500"],
            ),
            (
                "SELECT id FROM notifications ORDER BY id",
                vec!["new-delivered", "old-pending"],
            ),
            (
                "SELECT group_key FROM notification_log ORDER BY group_key",
                vec!["firing", "recent"],
            ),
            ("SELECT id FROM silences", vec!["running"]),
            (
                "SELECT CAST(bucket AS TEXT) FROM fleet_rollups ORDER BY bucket",
                vec!["1200"],
            ),
        ];
        for (sql, expected) in kept {
            let mut rows = column(store, sql).await;
            rows.sort();
            let mut expected: Vec<String> = expected.into_iter().map(str::to_string).collect();
            expected.sort();
            assert_eq!(rows, expected, "{sql}");
        }
    }
}

/// The steps of the plan SQLite picks for `sql`, parameters unbound.
async fn query_plan(store: &Store, sql: &str) -> Vec<String> {
    sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
        .fetch_all(sqlite_pools(store).1)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
        .iter()
        .map(|row| row.get::<String, _>("detail"))
        .collect()
}

/// Every statement retention runs, with the query plans SQLite picks for it: each table
/// it reads must be searched through an index, not scanned.
#[tokio::test]
async fn retention_filters_every_time_column_through_an_index() {
    let db = TestDb::sqlite();
    let fixture = fixture(&db).await;
    let statements: Vec<(&str, String)> = [
        ("rollups", super::retention::PRUNE_ROLLUPS),
        ("alert events", super::retention::PRUNE_ALERT_EVENTS),
        ("alerts", super::retention::PRUNE_ALERTS),
        ("recommendations", super::retention::PRUNE_RECOMMENDATIONS),
        ("notifications", super::retention::PRUNE_NOTIFICATIONS),
        ("notification log", super::retention::PRUNE_NOTIFICATION_LOG),
        ("silences", super::retention::PRUNE_SILENCES),
    ]
    .into_iter()
    .map(|(name, sql)| (name, sql.to_string()))
    .chain(super::retention::roll_up_statements())
    .collect();
    for (name, sql) in statements {
        let plan = query_plan(&fixture.store, &sql).await;
        for step in &plan {
            let scans_a_table = step.starts_with("SCAN ")
                && !step.contains("USING")
                && !step.contains("json_each")
                && !step.contains("CONSTANT ROW");
            assert!(!scans_a_table, "{name} scans a table: {plan:#?}");
        }
    }
}

/// Fleet history over raw polls and rollups, for one target and for all: every table is
/// searched through an index, the rollups' and polls' on their time.
#[tokio::test]
async fn fleet_history_reads_rollups_and_raw_polls_through_indexes() {
    let db = TestDb::sqlite();
    let fixture = fixture(&db).await;
    let (rollups_of_one, rollups_of_all) = super::history::ROLLUP_HISTORY;
    let (raw_of_one, raw_of_all) = super::history::FLEET_HISTORY;
    for sql in [rollups_of_one, rollups_of_all, raw_of_one, raw_of_all] {
        let plan = query_plan(&fixture.store, sql).await;
        for step in &plan {
            let scans = step.starts_with("SCAN ") && !step.contains("USING");
            assert!(!scans, "{sql} scans a table: {plan:#?}");
        }
    }
}

/// The backup docs/operations.md gives: `VACUUM INTO` on a read connection while the
/// store keeps writing produces a complete database that vastwatch opens as it is.
#[tokio::test]
async fn vacuum_into_backs_up_a_live_database_that_opens_with_every_row() {
    let db = TestDb::sqlite();
    let fixture = fixture_with_two_buckets(&db).await;
    let tables = [
        "SELECT count(*) FROM polls",
        "SELECT count(*) FROM worker_samples",
        "SELECT count(*) FROM fleet_samples",
    ];
    let mut before = Vec::new();
    for sql in tables {
        before.push(count(&fixture.store, sql).await);
    }
    let backup = fixture.path().with_file_name("backup.db");
    sqlx::query("VACUUM INTO ?")
        .bind(backup.to_str().expect("utf-8"))
        .execute(sqlite_pools(&fixture.store).1)
        .await
        .expect("backup");
    fixture
        .store
        .record_polls(&[snapshot("prod", 900, vec![worker(1, "running")])])
        .await
        .expect("the store writes on after the backup");

    let restored = Store::open(&backup).await.expect("the backup opens");
    let mut after = Vec::new();
    for sql in tables {
        after.push(count(&restored, sql).await);
    }
    assert_eq!(after, before);
    assert_eq!(after, [7, 8, 5], "polls, samples, successful polls");
}

store_tests! {
    /// A bucket too big for one transaction is split between targets, never inside one,
    /// and the rollups still equal what `fleet_samples` had.
    async fn a_bucket_larger_than_a_batch_is_rolled_up_target_by_target_exactly(db: TestDb) {
        let fixture = fixture(&db).await;
        let records: Vec<PollRecord> = (0..10)
            .flat_map(|tick| {
                ["prod", "group"].map(|target| {
                    let workers = (0..600)
                        .map(|id| worker(id, if id % 3 == 0 { "loading" } else { "running" }))
                        .collect();
                    snapshot(target, tick * 30, workers)
                })
            })
            .collect();
        fixture.store.record_polls(&records).await.expect("stored");
        let expected = rows_as_json(&fixture.store, ROLLUP_CHECK).await;

        let deleted = roll_up_before(&fixture.store, 300).await;
        assert_eq!(
            (deleted.polls, deleted.samples, deleted.rolled_up),
            (20, 12_000, 2)
        );
        assert_eq!(rows_as_json(&fixture.store, ROLLUP_ROWS).await, expected);
    }
}

store_tests! {
    async fn pruning_more_rows_than_a_batch_deletes_them_all(db: TestDb) {
        let fixture = fixture(&db).await;
        execute(
            &fixture.store,
            &[
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4500) \
               INSERT INTO notifications (id, receiver, group_key, status, created_at, payload) \
               SELECT 'n' || i, 'r', 'g', 'delivered', i % 100, '{}' FROM n",
            ],
        )
        .await;
        let deleted = fixture
            .store
            .apply_retention(&every_cutoff_at(1000))
            .await
            .expect("retention");
        assert_eq!(deleted.notifications, 4500);
        assert_eq!(
            count(&fixture.store, "SELECT count(*) FROM notifications").await,
            0
        );
    }
}

fn outbox_row(id: &str, group: &str) -> NewNotification {
    NewNotification {
        id: id.to_string(),
        receiver: "ops".to_string(),
        group_key: group.to_string(),
        payload: "{}".to_string(),
    }
}

store_tests! {
    async fn a_claimed_row_is_taken_once_until_its_claim_ends_or_its_claimant_is_gone(db: TestDb) {
        let fixture = fixture(&db).await;
        let store = &fixture.store;
        for (id, group) in [("n1", "g1"), ("n2", "g1"), ("n3", "g2")] {
            store.insert_notification(&outbox_row(id, group), at(10)).await.expect("queued");
        }
        let ids = |rows: Vec<NotificationRow>| -> Vec<String> {
            let mut ids: Vec<String> = rows.into_iter().map(|row| row.id).collect();
            ids.sort();
            ids
        };
        // a takes the first row of each group; b, at the same moment, finds nothing.
        let taken = store.claim_due_notifications("ops", at(11), 10, "a", at(50)).await.expect("claim");
        assert_eq!(ids(taken), ["n1", "n3"]);
        let taken = store.claim_due_notifications("ops", at(11), 10, "b", at(50)).await.expect("claim");
        assert!(taken.is_empty(), "claimed rows are not taken twice");

        // a delivers n1: n2, next in its group, is free to take; n3's claim holds.
        store
            .record_attempts(&[AttemptRecord::Delivered { id: "n1".into(), at: at(12) }])
            .await
            .expect("recorded");
        let taken = store.claim_due_notifications("ops", at(12), 10, "b", at(50)).await.expect("claim");
        assert_eq!(ids(taken), ["n2"]);

        // a dies holding n3. Its claim ends when the leader sees a gone ...
        assert_eq!(store.release_claims(|claimant| claimant != "a" && claimant != "b").await.expect("kept"), 0);
        assert_eq!(store.release_claims(|claimant| claimant != "b").await.expect("freed"), 1);
        let taken = store.claim_due_notifications("ops", at(13), 10, "b", at(50)).await.expect("claim");
        assert_eq!(ids(taken), ["n3"]);
        // ... or when it runs out.
        let taken = store.claim_due_notifications("ops", at(49), 10, "c", at(90)).await.expect("claim");
        assert!(taken.is_empty());
        let taken = store.claim_due_notifications("ops", at(50), 10, "c", at(90)).await.expect("claim");
        assert_eq!(ids(taken), ["n2", "n3"], "b's claims ran out");
    }
}

store_tests! {
    async fn replicas_claiming_at_once_never_take_the_same_row(db: TestDb) {
        let fixture = fixture(&db).await;
        let store = &fixture.store;
        for index in 0..200 {
            let id = format!("n{index:03}");
            store
                .insert_notification(&outbox_row(&id, &format!("g{index}")), at(10))
                .await
                .expect("queued");
        }
        let claimers = (0..8).map(|claimant| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut taken = Vec::new();
                loop {
                    let rows = store
                        .claim_due_notifications("ops", at(11), 7, &format!("r{claimant}"), at(60))
                        .await
                        .expect("claim");
                    if rows.is_empty() {
                        return taken;
                    }
                    taken.extend(rows.into_iter().map(|row| row.id));
                }
            })
        });
        let mut all = Vec::new();
        for claimer in claimers.collect::<Vec<_>>() {
            all.extend(claimer.await.expect("claimer"));
        }
        let distinct: std::collections::BTreeSet<&String> = all.iter().collect();
        assert_eq!(all.len(), 200, "every row taken once");
        assert_eq!(distinct.len(), 200, "no row taken twice");
    }
}

/// `count` targets `fleet-00`, `fleet-01`, …, stored, and an engine over them whose one
/// rule fires for every fleet at its first poll, so each evaluation writes an alert and a
/// notification mark.
async fn many_fleets(store: &Store, count: usize) -> (Vec<String>, crate::rules::Engine) {
    use crate::rules::{Engine, RuleSet, TargetInfo, TargetVars, identifiers};
    let names: Vec<String> = (0..count)
        .map(|index| format!("fleet-{index:02}"))
        .collect();
    let specs: Vec<TargetSpec> = names
        .iter()
        .zip(100..)
        .map(|(name, vast_id)| target(name, TargetKind::Endpoint, vast_id))
        .collect();
    store.sync_targets(&specs).await.expect("targets stored");
    let mut rules = RuleSet::empty();
    let vars: Vec<TargetVars> = names
        .iter()
        .map(|name| TargetVars {
            name: name.clone(),
            vars: Default::default(),
        })
        .collect();
    rules
        .parse_into(
            std::path::Path::new("parts.yaml"),
            "rules:\n  - alert: Busy\n    scope: fleet\n    expr: workers > 0\n",
            &identifiers(),
            &vars,
            true,
        )
        .expect("rule parses");
    let infos = names
        .iter()
        .zip(100..)
        .map(|(name, vast_id)| TargetInfo {
            name: name.clone(),
            kind: TargetKind::Endpoint,
            vast_id,
            labels: Default::default(),
            vars: Default::default(),
            scaling: Default::default(),
        })
        .collect();
    let engine = Engine::new(
        std::sync::Arc::new(rules),
        &identifiers(),
        infos,
        3,
        Duration::from_secs(10),
    );
    (names, engine)
}

/// One poll per fleet at `secs`, `workers` workers each, with its evaluation.
fn evaluated_tick(
    engine: &mut crate::rules::Engine,
    names: &[String],
    secs: i64,
    workers: i64,
) -> (Vec<PollRecord>, Vec<crate::rules::Evaluation>) {
    let records: Vec<PollRecord> = names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let first = index as i64 * 10_000;
            let fleet = (first..first + workers)
                .map(|id| worker(id, "running"))
                .collect();
            snapshot(name, secs, fleet)
        })
        .collect();
    let evaluations = records
        .iter()
        .map(|record| engine.evaluate(record))
        .collect();
    (records, evaluations)
}

store_tests! {
    async fn a_large_batch_written_in_parts_stores_every_poll_and_evaluation_once_in_order(
        db: TestDb
    ) {
        let fixture = fixture(&db).await;
        let store = &fixture.store;
        let (names, mut engine) = many_fleets(store, 40).await;
        // 40 × 600 = 24,000 samples: two parts on PostgreSQL, one transaction on SQLite.
        let (records, evaluations) = evaluated_tick(&mut engine, &names, 1_000, 600);
        assert!(evaluations.iter().all(|evaluation| !evaluation.changes.is_empty()));

        let parts = store
            .record_evaluated_polls_in_parts(&records, &evaluations)
            .await;

        let expected_parts = if fixture.database.sqlite_path().is_some() { 1 } else { 2 };
        assert_eq!(parts.len(), expected_parts);
        let mut next = 0;
        for part in &parts {
            assert_eq!(part.records.start, next, "parts are consecutive");
            assert!(!part.records.is_empty());
            assert!(part.result.is_ok(), "{:?}", part.result);
            next = part.records.end;
        }
        assert_eq!(next, records.len(), "the parts cover the batch");
        assert_eq!(count(store, "SELECT count(*) FROM polls").await, 40);
        assert_eq!(count(store, "SELECT count(*) FROM fleet_totals").await, 40);
        assert_eq!(count(store, "SELECT count(*) FROM worker_samples").await, 24_000);
        assert_eq!(
            count(store, "SELECT count(*) FROM (SELECT DISTINCT poll_id, worker_id \
                          FROM worker_samples) AS distinct_rows").await,
            24_000
        );
        assert_eq!(count(store, "SELECT count(*) FROM alerts").await, 40);
        assert_eq!(count(store, "SELECT count(*) FROM notification_marks").await, 40);
        // Poll ids and notification marks rise in batch order, as one transaction's would.
        let polls = store.latest_polls().await.expect("latest polls");
        let mut ids: Vec<(String, i64)> = polls
            .iter()
            .map(|poll| (poll.target.clone(), poll.id))
            .collect();
        ids.sort();
        assert!(ids.windows(2).all(|pair| pair[0].1 < pair[1].1), "{ids:?}");
        let marks = store.notification_marks(0, 100).await.expect("marks");
        let marked: Vec<&str> = marks
            .iter()
            .map(|(_, alert)| alert.labels.get("target").expect("a target label").as_str())
            .collect();
        let in_order: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(marked, in_order);
    }

    async fn a_part_that_fails_is_stored_not_at_all_and_the_other_parts_stay_stored(
        db: TestDb
    ) {
        let fixture = fixture(&db).await;
        let store = &fixture.store;
        let (names, mut engine) = many_fleets(store, 40).await;
        let (records, evaluations) = evaluated_tick(&mut engine, &names, 1_000, 600);
        // The server refuses the samples of the batch's last fleet.
        let refused = count(store, "SELECT id FROM targets WHERE name = 'fleet-39'").await;
        let sqlite = fixture.database.sqlite_path().is_some();
        if sqlite {
            test_db::execute(store, format!(
                "CREATE TRIGGER refuse BEFORE INSERT ON worker_samples \
                 WHEN NEW.target_id = {refused} BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )).await;
        } else {
            test_db::execute(store, format!(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.target_id = {refused} THEN RAISE EXCEPTION 'refused'; END IF; \
                 RETURN NEW; END $$"
            )).await;
            test_db::execute(store, "CREATE TRIGGER refuse BEFORE INSERT ON worker_samples \
                            FOR EACH ROW EXECUTE FUNCTION refuse()").await;
        }

        let parts = store
            .record_evaluated_polls_in_parts(&records, &evaluations)
            .await;

        let failed: Vec<_> = parts.iter().filter(|part| part.result.is_err()).collect();
        assert_eq!(failed.len(), 1, "only the part holding fleet-39 fails");
        let failed = failed[0].records.clone();
        assert!(failed.contains(&39));
        let stored = 40 - failed.len() as i64;
        if sqlite {
            assert_eq!(stored, 0, "SQLite writes a batch in one transaction");
        } else {
            assert_eq!(stored, 20, "the first of two parts is stored");
        }
        assert_eq!(count(store, "SELECT count(*) FROM polls").await, stored);
        assert_eq!(count(store, "SELECT count(*) FROM fleet_totals").await, stored);
        assert_eq!(count(store, "SELECT count(*) FROM worker_samples").await, stored * 600);
        assert_eq!(count(store, "SELECT count(*) FROM alerts").await, stored);
        assert_eq!(count(store, "SELECT count(*) FROM notification_marks").await, stored);

        // Retried once the server takes them, the failed part's polls are stored once.
        test_db::execute(store, "DROP TRIGGER refuse".to_string() + if sqlite { "" } else { " ON worker_samples" }).await;
        let retry = store
            .record_evaluated_polls_in_parts(&records[failed.clone()], &evaluations[failed])
            .await;
        assert!(retry.iter().all(|part| part.result.is_ok()));
        assert_eq!(count(store, "SELECT count(*) FROM polls").await, 40);
        assert_eq!(count(store, "SELECT count(*) FROM worker_samples").await, 24_000);
        assert_eq!(count(store, "SELECT count(*) FROM alerts").await, 40);
        assert_eq!(count(store, "SELECT count(*) FROM notification_marks").await, 40);
    }
}
