//! The synthetic fleets the rule-engine benchmarks (`rules`, `replay`) share: realistic
//! workers, their polls, an engine over the shipped rules, and a database filled with them.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use vastwatch::model::{Field, PollRecord, PollResult, TargetKind, WorkerSample};
use vastwatch::rules::{Engine, RuleSet, TargetInfo, TargetVars};
use vastwatch::store::{Store, TargetSpec};
use vastwatch::time::Timestamp;

pub const EPOCH: Timestamp = Timestamp::from_unix_millis(1_767_225_600_000);
pub const INTERVAL_MS: i64 = 10_000;

pub fn rules(targets: &[String]) -> Arc<RuleSet> {
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

pub fn names(count: usize) -> Vec<String> {
    (0..count)
        .map(|index| format!("fleet-{index:04}"))
        .collect()
}

/// A realistic worker: mostly healthy, a few unreliable or loading, load wobbling.
pub fn worker(target: usize, index: usize, tick: i64) -> WorkerSample {
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

pub fn record(target: &str, target_index: usize, workers: usize, tick: i64) -> PollRecord {
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

pub fn engine(names: &[String]) -> Engine {
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

pub async fn fill_store(store: &Store, names: &[String], workers: usize, ticks: i64) {
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
