//! The advisor at fleet scale: 100 targets × 50 workers with 90-snapshot windows (15 min at
//! 10 s, the default `history_needed`), in the two costs it has: a fleet within the
//! tolerance (the cheap path) and an idle fleet, where every call recomputes the desired
//! count at each snapshot of the scale-down window (the dear one). Every target also has
//! an unreliable worker and a stuck one, so the replacement scan walks the full windows.
//! The daemon runs it once per target per tick; ×10 gives the cost of 1,000 targets.
//!
//! `cargo bench --bench advise`

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vastwatch::advise::{AdvisorInput, LastPoll, ScalingConfig, advise};
use vastwatch::model::{Field, TargetKind, WorkerSample};
use vastwatch::rules::expr::Snapshot;
use vastwatch::time::Timestamp;

const TARGETS: usize = 100;
const WORKERS: i64 = 50;
const SNAPSHOTS: i64 = 90;
const INTERVAL: Duration = Duration::from_secs(10);

/// One target's history: 45 running workers, 4 loading, 1 in error; worker 1 unreliable.
fn history(target: usize, load_per_worker: f64) -> VecDeque<Arc<Snapshot>> {
    (0..SNAPSHOTS)
        .map(|snapshot| {
            let workers: Vec<WorkerSample> = (0..WORKERS)
                .map(|worker| {
                    let status = match worker {
                        0..45 => "running",
                        45..49 => "loading",
                        _ => "error",
                    };
                    let reliability = if worker == 1 { 0.8 } else { 0.99 };
                    let jitter = ((worker * 7 + snapshot * 13) % 11) as f64;
                    WorkerSample {
                        status: Some(status.to_string()),
                        ..WorkerSample::new(target as i64 * 1000 + worker)
                    }
                    .with(Field::MeasuredPerf, 100.0 + jitter)
                    .with(Field::Reliability, reliability)
                    .with(Field::Perf, (100.0 + jitter) * reliability)
                    .with(Field::Dlperf, 110.0)
                    .with(Field::CurLoadRollingAvg, load_per_worker + jitter)
                })
                .collect();
            let at = Timestamp::from_unix_millis(1_700_000_000_000 + snapshot * 10_000);
            Arc::new(Snapshot::new(at, &workers, Vec::new()))
        })
        .collect()
}

fn advise_all(histories: &[VecDeque<Arc<Snapshot>>], config: &ScalingConfig) -> i64 {
    let mut total = 0;
    for history in histories {
        let now = history
            .back()
            .map_or(Timestamp::EPOCH, |snapshot| snapshot.at);
        let input = AdvisorInput {
            history,
            last_poll: Some(LastPoll { at: now, ok: true }),
            interval: INTERVAL,
            kind: TargetKind::Endpoint,
            vast_id: 1,
            now,
        };
        total += advise(&input, config).delta;
    }
    total
}

fn bench(c: &mut Criterion) {
    let config = ScalingConfig::default();
    let mut group = c.benchmark_group("advise");
    group.throughput(Throughput::Elements(TARGETS as u64));
    group.sample_size(20);
    for (name, load_per_worker) in [
        ("100 targets within the tolerance", 80.0),
        ("100 idle targets (scale-down window)", 10.0),
    ] {
        let histories: Vec<_> = (0..TARGETS)
            .map(|target| history(target, load_per_worker))
            .collect();
        group.bench_function(name, |bencher| {
            bencher.iter(|| black_box(advise_all(&histories, &config)));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
