//! Ingest speed of one large tick: 1,000 targets × 50 workers stored through
//! `Store::record_polls` into a fresh file, against the ceiling of a bare SQLite bulk
//! insert of the same rows (one transaction, one prepared statement per table, through
//! the raw connection handle). Also prints the bytes each stored sample costs on disk.
//!
//! The same tick goes into PostgreSQL too, each time into a fresh schema on the server
//! `VASTWATCH_TEST_POSTGRES` names (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! without a server those cases are skipped with a note. There the tick is stored as the
//! daemon stores a batch, `Store::record_evaluated_polls_in_parts` (several transactions
//! at once), and, for comparison, in one transaction (`..._one_transaction`).
//!
//! Run: `cargo bench --bench ingest -- --sample-size 10`

use std::ffi::{CString, c_int};
use std::path::Path;
use std::ptr::{self, NonNull};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use libsqlite3_sys as ffi;
use sqlx::sqlite::{SqliteConnectOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};
use tempfile::TempDir;
use tokio::runtime::Runtime;

use sqlx::PgPool;
use vastwatch::config::{Database, PostgresUrl};
use vastwatch::model::{Field, PollRecord, PollResult, TargetKind, WorkerSample};
use vastwatch::store::{Store, TargetSpec};
use vastwatch::time::Timestamp;

const TARGETS: usize = 1_000;
const WORKERS_PER_TARGET: usize = 50;
const SAMPLES: usize = TARGETS * WORKERS_PER_TARGET;
/// Ticks already stored before the steady-state benchmark starts (one million samples).
const HISTORY_TICKS: usize = 20;

fn target_name(index: usize) -> String {
    format!("fleet-{index:04}")
}

fn target_specs() -> Vec<TargetSpec> {
    (0..TARGETS)
        .map(|index| TargetSpec {
            name: target_name(index),
            kind: if index % 4 == 0 {
                TargetKind::WorkerGroup
            } else {
                TargetKind::Endpoint
            },
            vast_id: 10_000 + index as i64,
        })
        .collect()
}

/// A small deterministic generator, so every run stores the same bytes.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One tick as the poller would hand it over: mostly running workers with fractional
/// loads, a few starting, stopped or failed, some missing values and some extra fields.
fn tick(started_at: Timestamp) -> Vec<PollRecord> {
    let mut noise = Noise(0x5eed_cafe_f00d_1234);
    (0..TARGETS)
        .map(|target| {
            let workers = (0..WORKERS_PER_TARGET)
                .map(|slot| {
                    let id = 20_000_000 + (target * WORKERS_PER_TARGET + slot) as i64 * 7;
                    let roll = noise.next();
                    let status = match roll {
                        r if r < 0.85 => "running",
                        r if r < 0.90 => "idle",
                        r if r < 0.95 => "loading",
                        r if r < 0.98 => "stopped",
                        _ => "error",
                    };
                    let reliability = 0.9 + 0.1 * noise.next();
                    let measured = 80.0 + 40.0 * noise.next();
                    let load = 150.0 * noise.next();
                    let mut worker = WorkerSample::new(id)
                        .with(Field::CurLoad, load)
                        .with(Field::NewLoad, load * noise.next())
                        .with(Field::CurLoadRollingAvg, load * (0.8 + 0.4 * noise.next()))
                        .with(Field::CurPerf, measured * noise.next())
                        .with(Field::MeasuredPerf, measured)
                        .with(Field::Perf, measured * reliability)
                        .with(Field::Reliability, reliability)
                        .with(Field::Dlperf, measured)
                        .with(Field::ReqsWorking, (4.0 * noise.next()).floor())
                        .with(Field::DiskUsage, 20.0 + 30.0 * noise.next())
                        .with(Field::LoadedAt, 1_724_275_993.997 - 3600.0 * noise.next());
                    worker.status = Some(status.to_string());
                    if status == "loading" {
                        worker.set(Field::CurPerf, None);
                        worker.set(Field::MeasuredPerf, None);
                    }
                    if slot % 10 == 0 {
                        worker.extra = Some(
                            serde_json::json!({
                                "started_at": 1_724_270_000.5,
                                "deployment_version_id": 42,
                            })
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                        );
                    }
                    worker
                })
                .collect();
            PollRecord {
                target: target_name(target),
                started_at,
                duration: Duration::from_millis(180),
                result: PollResult::Snapshot {
                    workers,
                    notes: Vec::new(),
                },
            }
        })
        .collect()
}

/// A fresh database with the schema and the 1,000 targets, closed again.
fn fresh_database(runtime: &Runtime, folder: &Path) -> std::path::PathBuf {
    let path = folder.join("vastwatch.db");
    runtime.block_on(async {
        let store = Store::open(&path).await.expect("store opens");
        store
            .sync_targets(&target_specs())
            .await
            .expect("targets stored");
        store.close().await.expect("store closes");
    });
    path
}

fn file_bytes(path: &Path) -> u64 {
    let wal = path.with_file_name(format!(
        "{}-wal",
        path.file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("")
    ));
    [path.to_path_buf(), wal]
        .iter()
        .map(|file| std::fs::metadata(file).map_or(0, |metadata| metadata.len()))
        .sum()
}

/// Stores one tick through the store and returns the time `record_polls` took.
fn store_tick(runtime: &Runtime, records: &[PollRecord]) -> (Duration, u64) {
    let folder = TempDir::new().expect("temporary folder");
    let path = fresh_database(runtime, folder.path());
    let empty_bytes = file_bytes(&path);
    runtime.block_on(async {
        let store = Store::open(&path).await.expect("store opens");
        let started = Instant::now();
        store.record_polls(records).await.expect("tick stored");
        let elapsed = started.elapsed();
        store.close().await.expect("store closes");
        (elapsed, file_bytes(&path) - empty_bytes)
    })
}

/// The PostgreSQL server for the benchmark, if one answers.
fn postgres_server(runtime: &Runtime) -> Option<(String, PgPool)> {
    let server = std::env::var("VASTWATCH_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let pool = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(3), PgPool::connect(&server)).await
    });
    match pool {
        Ok(Ok(pool)) => Some((server, pool)),
        _ => {
            println!("skipping PostgreSQL: no server answers (set VASTWATCH_TEST_POSTGRES)");
            None
        }
    }
}

/// A fresh schema with the 1,000 targets, and the store on it.
fn fresh_postgres(runtime: &Runtime, server: &str, admin: &PgPool, name: &str) -> Store {
    runtime.block_on(async {
        for statement in [
            format!("DROP SCHEMA IF EXISTS {name} CASCADE"),
            format!("CREATE SCHEMA {name}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(admin)
                .await
                .expect("fresh schema");
        }
        let separator = if server.contains('?') { '&' } else { '?' };
        let url = PostgresUrl::parse(&format!("{server}{separator}options[search_path]={name}"))
            .expect("the server URL parses");
        let store = Store::open(Database::Postgres(url))
            .await
            .expect("store opens");
        store
            .sync_targets(&target_specs())
            .await
            .expect("targets stored");
        store
    })
}

fn drop_schema(runtime: &Runtime, admin: &PgPool, name: &str) {
    runtime
        .block_on(
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {name} CASCADE"))).execute(admin),
        )
        .expect("schema dropped");
}

/// Stores the same rows with nothing between the data and SQLite: one transaction, one
/// prepared single-row statement per table, values bound straight from the records.
fn bare_tick(runtime: &Runtime, records: &[PollRecord]) -> (Duration, u64) {
    let folder = TempDir::new().expect("temporary folder");
    let path = fresh_database(runtime, folder.path());
    let empty_bytes = file_bytes(&path);
    runtime.block_on(async {
        let mut connection = SqliteConnectOptions::new()
            .filename(&path)
            .synchronous(SqliteSynchronous::Normal)
            .pragma("cache_size", "-65536")
            .connect()
            .await
            .expect("bare connection");
        let elapsed = {
            let mut handle = connection.lock_handle().await.expect("raw handle");
            let db = handle.as_raw_handle();
            let started = Instant::now();
            // SAFETY: the locked handle keeps sqlx's worker thread off this connection
            // until it is dropped, and every statement is finalized before that.
            unsafe { bare_insert(db, records) };
            started.elapsed()
        };
        connection.close().await.expect("bare connection closes");
        (elapsed, file_bytes(&path) - empty_bytes)
    })
}

unsafe fn exec(db: *mut ffi::sqlite3, sql: &str) {
    let sql = CString::new(sql).expect("no NUL");
    let code =
        unsafe { ffi::sqlite3_exec(db, sql.as_ptr(), None, ptr::null_mut(), ptr::null_mut()) };
    assert_eq!(code, ffi::SQLITE_OK, "{sql:?}");
}

unsafe fn prepare(db: *mut ffi::sqlite3, sql: &str) -> *mut ffi::sqlite3_stmt {
    let sql = CString::new(sql).expect("no NUL");
    let mut statement = ptr::null_mut();
    let code =
        unsafe { ffi::sqlite3_prepare_v2(db, sql.as_ptr(), -1, &mut statement, ptr::null_mut()) };
    assert_eq!(code, ffi::SQLITE_OK, "{sql:?}");
    statement
}

unsafe fn bind_text(statement: *mut ffi::sqlite3_stmt, index: c_int, text: Option<&str>) {
    unsafe {
        match text {
            // SQLITE_TRANSIENT: SQLite copies the text, as it must for any caller that
            // does not keep the buffer alive until the next reset.
            Some(text) => ffi::sqlite3_bind_text(
                statement,
                index,
                text.as_ptr().cast(),
                text.len() as c_int,
                ffi::SQLITE_TRANSIENT(),
            ),
            None => ffi::sqlite3_bind_null(statement, index),
        };
    }
}

unsafe fn bind_real(statement: *mut ffi::sqlite3_stmt, index: c_int, value: Option<f64>) {
    unsafe {
        match value {
            Some(value) => ffi::sqlite3_bind_double(statement, index, value),
            None => ffi::sqlite3_bind_null(statement, index),
        };
    }
}

unsafe fn step(statement: *mut ffi::sqlite3_stmt) {
    unsafe {
        assert_eq!(ffi::sqlite3_step(statement), ffi::SQLITE_DONE);
        ffi::sqlite3_reset(statement);
    }
}

unsafe fn bare_insert(db: NonNull<ffi::sqlite3>, records: &[PollRecord]) {
    let db = db.as_ptr();
    unsafe {
        exec(db, "BEGIN IMMEDIATE");
        let polls = prepare(
            db,
            "INSERT INTO polls (id, target_id, started_at, duration_ms, outcome, error, \
             http_status, worker_count) VALUES (?, ?, ?, ?, ?, NULL, NULL, ?)",
        );
        let fields: Vec<&str> = Field::ALL.iter().map(|field| field.name()).collect();
        let samples = prepare(
            db,
            &format!(
                "INSERT INTO worker_samples (poll_id, target_id, worker_id, polled_at, status, \
                 {}, extra) VALUES ({})",
                fields.join(", "),
                vec!["?"; 6 + Field::ALL.len()].join(", ")
            ),
        );
        for (index, record) in records.iter().enumerate() {
            let poll_id = index as i64 + 1;
            // fresh_database stores the targets in order, so target n has id n + 1.
            let target_id = index as i64 + 1;
            let polled_at = record.started_at.unix_secs_f64();
            let workers = record.result.workers().unwrap_or_default();
            ffi::sqlite3_bind_int64(polls, 1, poll_id);
            ffi::sqlite3_bind_int64(polls, 2, target_id);
            ffi::sqlite3_bind_double(polls, 3, polled_at);
            ffi::sqlite3_bind_int64(polls, 4, record.duration.as_millis() as i64);
            bind_text(polls, 5, Some(record.result.outcome()));
            ffi::sqlite3_bind_int64(polls, 6, workers.len() as i64);
            step(polls);
            for worker in workers {
                ffi::sqlite3_bind_int64(samples, 1, poll_id);
                ffi::sqlite3_bind_int64(samples, 2, target_id);
                ffi::sqlite3_bind_int64(samples, 3, worker.worker_id);
                ffi::sqlite3_bind_double(samples, 4, polled_at);
                bind_text(samples, 5, worker.status.as_deref());
                for (offset, value) in worker.values.iter().enumerate() {
                    bind_real(samples, 6 + offset as c_int, *value);
                }
                let extra = worker
                    .extra
                    .as_ref()
                    .map(|extra| serde_json::to_string(extra).expect("JSON"));
                bind_text(samples, 6 + Field::ALL.len() as c_int, extra.as_deref());
                step(samples);
            }
        }
        ffi::sqlite3_finalize(polls);
        ffi::sqlite3_finalize(samples);
        exec(db, "COMMIT");
    }
}

fn ingest(criterion: &mut Criterion) {
    let runtime = Runtime::new().expect("tokio runtime");
    let records = tick(Timestamp::from_unix_millis(1_724_276_000_000));

    let (store_time, store_bytes) = store_tick(&runtime, &records);
    let (bare_time, bare_bytes) = bare_tick(&runtime, &records);
    println!(
        "one tick of {SAMPLES} samples: record_polls {store_time:?}, bare insert {bare_time:?}"
    );
    println!(
        "on disk after checkpoint: record_polls {:.1} bytes/sample, bare insert {:.1} bytes/sample",
        store_bytes as f64 / SAMPLES as f64,
        bare_bytes as f64 / SAMPLES as f64,
    );

    let mut group = criterion.benchmark_group("ingest_tick_1000x50");
    group.throughput(Throughput::Elements(SAMPLES as u64));
    group.bench_function("record_polls", |bencher| {
        bencher.iter_custom(|iterations| {
            (0..iterations)
                .map(|_| store_tick(&runtime, &records).0)
                .sum()
        })
    });
    // The daemon's steady state: the same tick appended to a store that already holds
    // history, so the indexes are deep and the file larger than the page cache.
    let folder = TempDir::new().expect("temporary folder");
    let path = fresh_database(&runtime, folder.path());
    let store = runtime.block_on(Store::open(&path)).expect("store opens");
    let tick_at = |tick: u64| -> Vec<PollRecord> {
        let started_at = Timestamp::from_unix_millis(1_724_276_000_000 + tick as i64 * 10_000);
        records
            .iter()
            .map(|record| PollRecord {
                started_at,
                ..record.clone()
            })
            .collect()
    };
    bench_onto_history(
        &mut group,
        "record_polls_onto_history",
        &runtime,
        &store,
        &tick_at,
        Write::OneTransaction,
    );
    runtime.block_on(store.close()).expect("store closes");
    drop(folder);

    group.bench_function("bare_sqlite_prepared_insert", |bencher| {
        bencher.iter_custom(|iterations| {
            (0..iterations)
                .map(|_| bare_tick(&runtime, &records).0)
                .sum()
        })
    });

    if let Some((server, admin)) = postgres_server(&runtime) {
        let schema = "vastwatch_bench_ingest";
        for write in [Write::InParts, Write::OneTransaction] {
            group.bench_function(
                format!("record_polls_postgres{}", write.suffix()),
                |bencher| {
                    bencher.iter_custom(|iterations| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iterations {
                            let store = fresh_postgres(&runtime, &server, &admin, schema);
                            let started = Instant::now();
                            runtime.block_on(write.store(&store, &records));
                            total += started.elapsed();
                            runtime.block_on(store.close()).expect("store closes");
                        }
                        total
                    })
                },
            );
        }
        for write in [Write::InParts, Write::OneTransaction] {
            let store = fresh_postgres(&runtime, &server, &admin, schema);
            bench_onto_history(
                &mut group,
                &format!("record_polls_postgres_onto_history{}", write.suffix()),
                &runtime,
                &store,
                &tick_at,
                write,
            );
            runtime.block_on(store.close()).expect("store closes");
        }
        drop_schema(&runtime, &admin, schema);
    }
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);

/// Stores `HISTORY_TICKS` ticks, then measures the next ones: a tick appended to a store
/// that already holds history (deep indexes, a file larger than the cache).
fn bench_onto_history(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    runtime: &Runtime,
    store: &Store,
    tick_at: &dyn Fn(u64) -> Vec<PollRecord>,
    write: Write,
) {
    let mut next_tick = 0u64;
    for _ in 0..HISTORY_TICKS {
        let records = tick_at(next_tick);
        next_tick += 1;
        runtime.block_on(write.store(store, &records));
    }
    group.bench_function(name, |bencher| {
        bencher.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let records = tick_at(next_tick);
                next_tick += 1;
                let started = Instant::now();
                runtime.block_on(write.store(store, &records));
                total += started.elapsed();
            }
            total
        })
    });
}

/// How a benchmark stores a tick.
#[derive(Clone, Copy)]
enum Write {
    /// `Store::record_polls`: one transaction.
    OneTransaction,
    /// `Store::record_evaluated_polls_in_parts`, as the daemon writes a batch: on
    /// PostgreSQL a large batch goes in several transactions at once.
    InParts,
}

impl Write {
    fn suffix(self) -> &'static str {
        match self {
            Write::OneTransaction => "_one_transaction",
            Write::InParts => "",
        }
    }

    async fn store(self, store: &Store, records: &[PollRecord]) {
        match self {
            Write::OneTransaction => store.record_polls(records).await.expect("tick stored"),
            Write::InParts => {
                let parts = store.record_evaluated_polls_in_parts(records, &[]).await;
                for part in parts {
                    part.result.expect("tick stored");
                }
            }
        }
    }
}
