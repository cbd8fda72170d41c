//! Measures how fast the database grows: writes simulated days of 10-second polls through
//! the real store, then reports rows and bytes per table (SQLite's `dbstat`) per worker
//! and per target per day, before and after the samples are rolled up. The figures in
//! docs/operations.md ("Database growth") come from this.
//!
//! `cargo run --example db_growth -- --targets 2 --workers 25 --days 3`

use std::time::{Duration, Instant};

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vastwatch::model::{Field, PollRecord, PollResult, TargetKind, WorkerSample};
use vastwatch::store::{DbStats, Store, TargetSpec};
use vastwatch::time::Timestamp;

#[derive(Debug, Parser)]
struct Args {
    /// Targets polled, each with its own fleet.
    #[arg(long, default_value_t = 2)]
    targets: u32,
    /// Workers in each target's fleet.
    #[arg(long, default_value_t = 25)]
    workers: u32,
    /// Days of polls to write.
    #[arg(long, default_value_t = 3)]
    days: u32,
    /// Seconds between polls.
    #[arg(long, default_value_t = 10)]
    interval: u32,
}

/// 2026-01-01T00:00:00Z.
const START: Timestamp = Timestamp::from_unix_millis(1_767_225_600_000);
const DAY_SECS: u64 = 86_400;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let folder = tempfile::TempDir::new()?;
    let store = Store::open(&folder.path().join("growth.db")).await?;
    let names: Vec<String> = (0..args.targets).map(|n| format!("target-{n}")).collect();
    store
        .sync_targets(
            &names
                .iter()
                .zip(1..)
                .map(|(name, vast_id)| TargetSpec {
                    name: name.clone(),
                    kind: TargetKind::Endpoint,
                    vast_id,
                })
                .collect::<Vec<_>>(),
        )
        .await?;

    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(7);
    let ticks = u64::from(args.days) * DAY_SECS / u64::from(args.interval);
    for tick in 0..ticks {
        let at = START.saturating_add(Duration::from_secs(tick * u64::from(args.interval)));
        // One transaction per tick, as the daemon's group commit writes a quiet tick.
        let records: Vec<PollRecord> = names
            .iter()
            .enumerate()
            .map(|(target, name)| PollRecord {
                target: name.clone(),
                started_at: at,
                duration: Duration::from_millis(rng.random_range(80..400)),
                result: PollResult::Snapshot {
                    workers: (0..args.workers)
                        .map(|worker| sample(&mut rng, target, worker, at))
                        .collect(),
                    notes: Vec::new(),
                },
            })
            .collect();
        store.record_polls(&records).await?;
    }
    eprintln!(
        "wrote {ticks} ticks of {} targets x {} workers in {:.1?}",
        args.targets,
        args.workers,
        started.elapsed()
    );

    let raw = store.db_stats().await?;
    let end = START.saturating_add(Duration::from_secs(u64::from(args.days) * DAY_SECS));
    let deleted = store.delete_samples_before(end).await?;
    let rolled = store.db_stats().await?;
    store.close().await?;

    let worker_days = f64::from(args.targets * args.workers * args.days);
    let target_days = f64::from(args.targets * args.days);
    println!(
        "{} targets x {} workers, a poll every {} s, {} days ({} polls, {} samples)\n",
        args.targets, args.workers, args.interval, args.days, deleted.polls, deleted.samples
    );
    println!(
        "| table or index | rows | bytes | bytes per worker per day | bytes per target per day |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for table in raw
        .tables
        .iter()
        .filter(|table| table.bytes.unwrap_or(0) > 4096)
    {
        let bytes = table.bytes.unwrap_or(0) as f64;
        println!(
            "| `{}` | {} | {} | {:.0} | {:.0} |",
            table.name,
            table.rows.map_or("-".to_string(), |rows| rows.to_string()),
            bytes,
            bytes / worker_days,
            bytes / target_days
        );
    }
    println!(
        "| whole file | | {} | {:.0} | {:.0} |\n",
        raw.file_bytes,
        raw.file_bytes as f64 / worker_days,
        raw.file_bytes as f64 / target_days
    );
    let rollups = bytes_of(&rolled, "fleet_rollups") + bytes_of(&rolled, "fleet_rollups_by_bucket");
    println!(
        "After rolling every poll up: {} rollup rows, {} bytes with their index, {:.0} bytes \
         per target per day.",
        deleted.rolled_up,
        rollups,
        rollups as f64 / target_days
    );
    Ok(())
}

fn bytes_of(stats: &DbStats, name: &str) -> u64 {
    stats
        .tables
        .iter()
        .find(|table| table.name == name)
        .and_then(|table| table.bytes)
        .unwrap_or(0)
}

/// A worker as the Vast API reports a busy one: every numeric field present, values that
/// move between polls, a stable id in the range real instance ids use.
fn sample(rng: &mut StdRng, target: usize, worker: u32, at: Timestamp) -> WorkerSample {
    let mut sample = WorkerSample::new(20_000_000 + target as i64 * 1_000 + i64::from(worker));
    sample.status = Some(
        if rng.random_bool(0.95) {
            "running"
        } else {
            "loading"
        }
        .to_string(),
    );
    for field in Field::ALL {
        let value = match field {
            Field::ReqsWorking => f64::from(rng.random_range(0..8)),
            Field::Reliability => rng.random_range(0.9..1.0),
            Field::LoadedAt => at.unix_secs_f64() - 3600.0,
            _ => rng.random_range(0.0..500.0),
        };
        sample.set(field, Some(value));
    }
    sample
}
