//! The scheduler keeps firing on a busy machine: a one-second cron schedule run for a
//! minute while every core spins must tick at least 55 times. This is the one test that
//! runs on real time, because the property under test is real-time behaviour.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::Row;
use vastwatch::clock::Clock;
use vastwatch::config::Config;
use vastwatch::daemon::Daemon;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_second_schedule_fires_at_least_55_times_a_minute_under_load() {
    let clock = Clock::real();
    let scenario =
        "name: s\nfleets:\n  - endpoint: 1\n    load: 10\n    workers: [{id: 1, perf: 100}]\n";
    let simulator = start_simulator(scenario, &clock, TEST_KEY).await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    let config_path = write_config(
        dir.path(),
        &simulator.base_url(),
        "",
        "  - name: t\n    endpoint: 1\n",
        "",
    );
    let yaml = std::fs::read_to_string(&config_path)
        .expect("read")
        .replace("schedule: 10s", "schedule: \"* * * * * *\"");
    std::fs::write(&config_path, yaml).expect("write");
    let config = Config::load(&config_path, &test_env()).expect("config");
    let daemon = Arc::new(
        Daemon::start(config, vastwatch::rules::RuleSet::empty(), clock)
            .await
            .expect("daemon"),
    );

    let spinning = Arc::new(AtomicBool::new(true));
    let burners: Vec<_> = (0..std::thread::available_parallelism().map_or(2, |n| n.get()))
        .map(|_| {
            let spinning = Arc::clone(&spinning);
            std::thread::spawn(move || {
                let mut x: u64 = 1;
                while spinning.load(Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    std::hint::black_box(x);
                }
            })
        })
        .collect();
    let run = tokio::spawn(Arc::clone(&daemon).run(tokio::time::sleep(Duration::from_secs(60))));
    run.await.expect("run task").expect("daemon ran");
    spinning.store(false, Ordering::Relaxed);
    for burner in burners {
        burner.join().expect("burner");
    }

    let pool = open_database(&dir.path().join("vastwatch.db")).await;
    let polls: i64 = sqlx::query("SELECT count(*) FROM polls WHERE outcome = 'ok'")
        .fetch_one(&pool)
        .await
        .expect("count")
        .get(0);
    let ticks = daemon.stats().ticks.load(Ordering::Relaxed);
    assert!(ticks >= 55, "only {ticks} ticks in a minute");
    assert!(polls >= 55, "only {polls} polls stored in a minute");
    simulator.shutdown().await.expect("shutdown");
}
