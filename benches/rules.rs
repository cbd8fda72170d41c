//! The rule engine at scale, with the shipped rules (rules/vast.yaml):
//!
//! 1. one warm evaluation tick over 1,000 fleets × 50 workers with 15-minute windows of
//!    10-second polls (90 snapshots), on one core;
//! 2. the start-up fill of those windows from the database.
//!
//! `cargo bench --bench rules`. Criterion measures (1); (2) is a one-off timing printed to
//! stdout, as it needs minutes of setup. Replay throughput has its own bench, `replay`.
//! Figures go in docs/benchmarks.md.

mod support;

use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use support::fleet::{EPOCH, INTERVAL_MS, engine, fill_store, names, record};
use vastwatch::model::PollRecord;
use vastwatch::store::{HistoryFilter, Store};
use vastwatch::time::Timestamp;

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
    });
}

criterion_group!(benches, warm_tick, one_off_timings);
criterion_main!(benches);
