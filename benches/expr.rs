//! Rule expressions at fleet scale: nine rules, five of them per worker and four of them
//! over 45-minute windows (90 snapshots at 30 s), over 100 targets × 50 workers. The
//! budget is one core-second for 1,000 targets, so one iteration here should stay well
//! under 100 ms.
//!
//! `cargo bench --bench expr`

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vastwatch::model::{Field, WorkerSample};
use vastwatch::rules::expr::{Compiled, EvalContext, Identifiers, Scope, Snapshot, compile};
use vastwatch::time::Timestamp;

const TARGETS: usize = 100;
const WORKERS: i64 = 50;
const SNAPSHOTS: i64 = 90;

const WORKER_RULES: [&str; 5] = [
    "avg_over(reliability, 45m) < 0.92 && reliability < 0.9",
    "reqs_working >= default(max_reqs, 4)",
    "count_over(status == \"loading\", 45m) >= 20",
    "predict(disk_usage, 45m, 1h) > 100",
    "max_over(fleet.utilization - utilization, 45m) > 0.5",
];

const FLEET_RULES: [&str; 4] = [
    "utilization > 0.9",
    "slope(load_rolling, 10m) > slope(perf, 10m)",
    "count(status == \"loading\") > 0",
    "avg_over(utilization, 45m) < 0.2",
];

/// One target's history: every field set, a worker missing now and then (so windows must
/// search for it), one in ten loading.
fn history(target: usize) -> VecDeque<Arc<Snapshot>> {
    (0..SNAPSHOTS)
        .map(|snapshot| {
            let workers: Vec<WorkerSample> = (0..WORKERS)
                .filter(|worker| (worker + snapshot) % 97 != 0)
                .map(|worker| {
                    let status = if worker % 10 == 0 {
                        "loading"
                    } else {
                        "running"
                    };
                    let mut sample = WorkerSample {
                        status: Some(status.to_string()),
                        ..WorkerSample::new(target as i64 * 1000 + worker)
                    };
                    for field in Field::ALL {
                        sample.set(field, Some((worker * 7 + snapshot) as f64 / 100.0));
                    }
                    sample
                })
                .collect();
            let at = Timestamp::from_unix_millis(1_700_000_000_000 + snapshot * 30_000);
            Arc::new(Snapshot::new(at, &workers, vec![Some(3.0)]))
        })
        .collect()
}

fn compile_all(rules: &[&str], scope: Scope) -> Vec<Compiled> {
    let identifiers = Identifiers::standard().with_fleet_number("desired_workers");
    let vars = BTreeSet::from(["max_reqs".to_string()]);
    rules
        .iter()
        .map(|rule| compile(rule, scope, &identifiers, &vars).expect("bench rules compile"))
        .collect()
}

fn evaluate(c: &mut Criterion) {
    let worker_rules = compile_all(&WORKER_RULES, Scope::Worker);
    let fleet_rules = compile_all(&FLEET_RULES, Scope::Fleet);
    let histories: Vec<_> = (0..TARGETS).map(history).collect();
    let vars = BTreeMap::from([("max_reqs".to_string(), 4.0)]);

    let mut group = c.benchmark_group("expr");
    group.throughput(Throughput::Elements(TARGETS as u64));
    group.sample_size(10);
    group.bench_function("nine rules over 100 targets", |bencher| {
        bencher.iter(|| {
            let mut true_count = 0usize;
            for history in &histories {
                let ctx = EvalContext {
                    history,
                    vars: &vars,
                };
                let workers = history.back().map_or(0, |snapshot| snapshot.workers.len());
                for rule in &worker_rules {
                    for index in 0..workers {
                        true_count += usize::from(rule.eval_worker(&ctx, index).is_true());
                    }
                }
                for rule in &fleet_rules {
                    true_count += usize::from(rule.eval_fleet(&ctx).is_true());
                }
            }
            black_box(true_count)
        });
    });
    group.finish();
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
