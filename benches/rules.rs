//! The rule engine at scale, with the shipped rules (rules/vast.yaml):
//!
//! 1. one warm evaluation tick over 1,000 fleets × 50 workers with 15-minute windows of
//!    10-second polls (90 snapshots), on one core;
//! 2. the start-up fill of those windows from the database;
//! 3. replay throughput over 7 days of 10 fleets × 20 workers.
//!
//! `cargo bench --bench rules`. Criterion measures (1); (2) and (3) are one-off timings
//! printed to stdout, as each needs minutes of setup. Figures go in docs/benchmarks.md.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vastwatch::model::{Field, PollRecord, PollResult, TargetKind, WorkerSample};
use vastwatch::rules::{Engine, RuleSet, TargetInfo, TargetVars};
use vastwatch::store::{HistoryFilter, Store, TargetSpec};
use vastwatch::time::Timestamp;

const EPOCH: Timestamp = Timestamp::from_unix_millis(1_767_225_600_000);
const INTERVAL_MS: i64 = 10_000;

fn rules(targets: &[String]) -> Arc<RuleSet> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/vast.yaml");
    let targets: Vec<TargetVars> = targets
        .iter()
        .map(|name| TargetVars {
            name: name.clone(),
            vars: BTreeSet::new(),
        })
        .collect();
    Arc::new(
        RuleSet::load(&[file], &vastwatch::rules::identifiers(), &targets).expect("shipped rules"),
    )
}

fn names(count: usize) -> Vec<String> {
    (0..count)
        .map(|index| format!("fleet-{index:04}"))
        .collect()
}

/// A realistic worker: mostly healthy, a few unreliable or loading, load wobbling.
fn worker(target: usize, index: usize, tick: i64) -> WorkerSample {
    let id = (target * 1_000 + index) as i64;
    let wobble = ((tick as f64 / 7.0) + index as f64).sin();
    let mut sample = WorkerSample::new(id)
        .with(Field::Perf, 100.0)
        .with(Field::MeasuredPerf, 101.0)
        .with(Field::CurPerf, 80.0)
        .with(
            Field::Reliability,
            if index.is_multiple_of(17) { 0.85 } else { 0.99 },
        )
        .with(Field::CurLoad, 70.0 + 10.0 * wobble)
        .with(Field::NewLoad, 70.0)
        .with(Field::CurLoadRollingAvg, 70.0 + 5.0 * wobble)
        .with(Field::ReqsWorking, (index % 5) as f64)
        .with(Field::DiskUsage, 30.0)
        .with(Field::LoadedAt, EPOCH.unix_secs_f64() - 3_600.0);
    sample.status = Some(
        if index.is_multiple_of(23) {
            "loading"
        } else {
            "running"
        }
        .to_string(),
    );
    sample
}

fn record(target: &str, target_index: usize, workers: usize, tick: i64) -> PollRecord {
    PollRecord {
        target: target.to_string(),
        started_at: Timestamp::from_unix_millis(EPOCH.unix_millis() + tick * INTERVAL_MS),
        duration: Duration::from_millis(50),
        result: PollResult::Snapshot {
            workers: (0..workers)
                .map(|i| worker(target_index, i, tick))
                .collect(),
            notes: Vec::new(),
        },
    }
}

fn engine(names: &[String]) -> Engine {
    let targets = names
        .iter()
        .enumerate()
        .map(|(index, name)| TargetInfo {
            name: name.clone(),
            kind: TargetKind::Endpoint,
            vast_id: index as i64 + 1,
            labels: Default::default(),
            vars: Default::default(),
            scaling: Default::default(),
        })
        .collect();
    Engine::new(
        rules(names),
        &vastwatch::rules::identifiers(),
        targets,
        3,
        Duration::from_secs(10),
    )
}

fn warm_tick(c: &mut Criterion) {
    const TARGETS: usize = 1_000;
    const WORKERS: usize = 50;
    const HISTORY: i64 = 90;
    let names = names(TARGETS);
    let mut engine = engine(&names);
    for (index, name) in names.iter().enumerate() {
        let records: Vec<PollRecord> = (0..HISTORY)
            .map(|tick| record(name, index, WORKERS, tick))
            .collect();
        engine.restore_history(name, &records, 0);
    }
    let next: Vec<PollRecord> = names
        .iter()
        .enumerate()
        .map(|(index, name)| record(name, index, WORKERS, HISTORY))
        .collect();
    let mut group = c.benchmark_group("rules");
    group.sample_size(10);
    group.throughput(Throughput::Elements((TARGETS * WORKERS) as u64));
    group.bench_function(
        "warm tick, 1000 fleets x 50 workers, 90 snapshots",
        |bencher| {
            bencher.iter(|| {
                let mut changes = 0;
                for record in &next {
                    let evaluation = engine.evaluate(record);
                    changes += evaluation.changes.len();
                    engine.discard(evaluation);
                }
                std::hint::black_box(changes)
            });
        },
    );
    group.finish();
}

async fn fill_store(store: &Store, names: &[String], workers: usize, ticks: i64) {
    let specs: Vec<TargetSpec> = names
        .iter()
        .enumerate()
        .map(|(index, name)| TargetSpec {
            name: name.clone(),
            kind: TargetKind::Endpoint,
            vast_id: index as i64 + 1,
        })
        .collect();
    store.sync_targets(&specs).await.expect("targets");
    // Several ticks per transaction: the setup is not what is measured.
    let ticks_per_batch = (50_000 / (names.len() * workers)).max(1) as i64;
    let mut tick = 0;
    while tick < ticks {
        let batch: Vec<PollRecord> = (tick..(tick + ticks_per_batch).min(ticks))
            .flat_map(|tick| {
                names
                    .iter()
                    .enumerate()
                    .map(move |(index, name)| record(name, index, workers, tick))
            })
            .collect();
        store.record_polls(&batch).await.expect("store ticks");
        tick += ticks_per_batch;
    }
}

fn one_off_timings(_: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        // Start-up fill: 90 ticks of 1,000 × 50 in the database, read back into windows.
        let dir = tempfile::TempDir::new().expect("temp dir");
        let store = Store::open(&dir.path().join("fill.db"))
            .await
            .expect("store");
        let fill_names = names(1_000);
        fill_store(&store, &fill_names, 50, 90).await;
        let mut fill_engine = engine(&fill_names);
        let since = Timestamp::from_unix_millis(EPOCH.unix_millis() + 90 * INTERVAL_MS)
            .saturating_sub(fill_engine.history_window());
        let started = Instant::now();
        let mut samples = 0;
        for name in &fill_names {
            let records = store
                .poll_records(&HistoryFilter {
                    target: Some(name.clone()),
                    since: Some(since),
                    until: None,
                    limit: None,
                })
                .await
                .expect("records");
            samples += records
                .iter()
                .map(|r| r.result.workers().map_or(0, |w| w.len()))
                .sum::<usize>();
            fill_engine.restore_history(name, &records, 0);
        }
        let took = started.elapsed();
        println!(
            "start-up fill: {samples} samples of 1000 targets in {:.2} s ({:.0} samples/s)",
            took.as_secs_f64(),
            samples as f64 / took.as_secs_f64()
        );
        store.close().await.expect("close");

        // Replay: 7 days of 10 fleets × 20 workers at 10 s.
        let store = Store::open(&dir.path().join("replay.db"))
            .await
            .expect("store");
        let replay_names = names(10);
        let ticks = 7 * 86_400 / 10;
        fill_store(&store, &replay_names, 20, ticks).await;
        let mut replay_engine = engine(&replay_names);
        let from = EPOCH;
        let to = Timestamp::from_unix_millis(EPOCH.unix_millis() + ticks * INTERVAL_MS);
        let started = Instant::now();
        let report = vastwatch::replay::replay(&store, &mut replay_engine, from, to, |_| {})
            .await
            .expect("replay");
        let took = started.elapsed();
        println!(
            "replay: {} polls, {} worker samples in {:.2} s ({:.0} samples/s), {} transitions",
            report.polls,
            report.samples,
            took.as_secs_f64(),
            report.samples as f64 / took.as_secs_f64(),
            report.transitions.len()
        );
        store.close().await.expect("close");
    });
}

criterion_group!(benches, warm_tick, one_off_timings);
criterion_main!(benches);
