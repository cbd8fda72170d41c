//! Replay throughput (issue 3's goal: ≥ 1,000,000 worker-samples/s): 7 days of 10 fleets ×
//! 20 workers at 10-second polls, replayed from the database through the shipped rules
//! (rules/vast.yaml) and the advisor, with fresh engine state each run.
//!
//! `cargo bench --bench replay`. Filling the database takes a few minutes, so the filled
//! file is kept in cargo's target tmp folder and reused by later runs. Each run prints its
//! time; the best and the median follow. `REPLAY_RUNS` sets the number of runs (default 5),
//! `REPLAY_DAYS` the length of history (default 7; a shorter one suits profiling).
//! A digest of the transitions and recommendation changes is printed so that a change
//! meant to be only faster can be checked to replay the same thing.

mod support;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::Instant;

use support::fleet::{EPOCH, INTERVAL_MS, engine, fill_store, names};
use vastwatch::replay::ReplayReport;
use vastwatch::store::Store;
use vastwatch::time::Timestamp;

const TARGETS: usize = 10;
const WORKERS: usize = 20;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// A digest of everything replay reports, in order.
fn digest(report: &ReplayReport) -> u64 {
    let mut hasher = DefaultHasher::new();
    format!("{:?}", report.transitions).hash(&mut hasher);
    format!("{:?}", report.recommendations).hash(&mut hasher);
    hasher.finish()
}

/// CPU seconds (user + system) this process has used, from /proc on Linux; `None`
/// elsewhere. Beside wall time it shows how much of a run was lost to other load on the
/// machine.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn main() {
    let runs = env_number("REPLAY_RUNS", 5).max(1);
    let days = env_number("REPLAY_DAYS", 7).max(1) as i64;
    let ticks = days * 86_400 / (INTERVAL_MS / 1_000);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("replay-{days}d.db"));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let names = names(TARGETS);
        let complete = path.with_extension("complete");
        if !complete.exists() {
            // A partial file from an interrupted fill is thrown away.
            for stale in [
                path.clone(),
                path.with_extension("db-wal"),
                path.with_extension("db-shm"),
            ] {
                let _ = std::fs::remove_file(stale);
            }
            println!("filling {} ({ticks} ticks)...", path.display());
            let store = Store::open(&path).await.expect("store");
            fill_store(&store, &names, WORKERS, ticks).await;
            store.close().await.expect("close");
            std::fs::write(&complete, b"").expect("marker");
        }
        let store = Store::open(&path).await.expect("store");
        let from = EPOCH;
        let to = Timestamp::from_unix_millis(EPOCH.unix_millis() + ticks * INTERVAL_MS);
        let mut rates = Vec::new();
        for run in 1..=runs {
            let mut replay_engine = engine(&names);
            let started = Instant::now();
            let cpu_started = cpu_seconds();
            let report = vastwatch::replay::replay(&store, &mut replay_engine, from, to, |_| {})
                .await
                .expect("replay");
            let took = started.elapsed();
            let cpu = cpu_seconds()
                .zip(cpu_started)
                .map_or(String::new(), |(end, start)| format!(", {:.2} s CPU", end - start));
            let rate = report.samples as f64 / took.as_secs_f64();
            println!(
                "replay run {run}: {} polls, {} worker samples in {:.2} s{cpu} ({rate:.0} samples/s), \
                 {} transitions, {} recommendation changes, digest {:016x}",
                report.polls,
                report.samples,
                took.as_secs_f64(),
                report.transitions.len(),
                report.recommendations.len(),
                digest(&report),
            );
            rates.push(rate);
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "replay over {days} days of {TARGETS} fleets x {WORKERS} workers, {runs} runs: \
             best {:.0} samples/s, median {:.0} samples/s",
            rates[rates.len() - 1],
            rates[rates.len() / 2],
        );
        store.close().await.expect("close");
    });
}
