//! End to end: one tick of 1,000 targets × 50 workers served by the in-process simulator
//! over loopback HTTP, decoded and stored. Reports stored worker samples per second.
//!
//! `cargo bench --bench tick`; figures go in docs/benchmarks.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vastwatch::clock::Clock;
use vastwatch::config::Config;
use vastwatch::daemon::Daemon;
use vastwatch::sim::{Scenario, SimOptions, Simulator};
use vastwatch::time::Timestamp;

const TARGETS: usize = 1_000;
const WORKERS: usize = 50;

fn scenario_yaml() -> String {
    let mut yaml = String::from("name: bench\nfleets:\n");
    for target in 0..TARGETS {
        let _ = writeln!(
            yaml,
            "  - endpoint: {}\n    load: 2500\n    workers:",
            target + 1
        );
        for worker in 0..WORKERS {
            let _ = writeln!(
                yaml,
                "      - {{id: {}, perf: 100, reliability: 0.99}}",
                target * WORKERS + worker + 1
            );
        }
    }
    yaml
}

fn config_yaml(base_url: &str) -> String {
    let mut yaml = format!(
        "database: bench.db\napi:\n  base_url: {base_url}\n  api_key_env: BENCH_KEY\n  \
         concurrency: 16\nschedule: 10s\njitter: 0s\ntargets:\n"
    );
    for target in 0..TARGETS {
        let _ = writeln!(
            yaml,
            "  - name: t{}\n    endpoint: {}",
            target + 1,
            target + 1
        );
    }
    yaml
}

fn tick_of_50k_workers(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::TempDir::new().expect("temp dir");
    let clock = Clock::manual(Timestamp::from_unix_millis(1_767_225_600_000));
    let scenario = Scenario::from_yaml(&scenario_yaml(), "bench").expect("scenario");
    let (simulator, daemon) = runtime.block_on(async {
        let simulator = Simulator::new(scenario, SimOptions::starting_now(clock.clone()))
            .serve(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("simulator");
        let config_path = dir.path().join("vastwatch.yaml");
        let yaml = config_yaml(&simulator.base_url());
        std::fs::write(&config_path, &yaml).expect("config");
        let environment = BTreeMap::from([("BENCH_KEY".to_string(), "k".to_string())]);
        let config = Config::parse(&config_path, &yaml, &environment).expect("config");
        let daemon = Daemon::start(config, vastwatch::rules::RuleSet::empty(), clock.clone())
            .await
            .expect("daemon");
        (simulator, daemon)
    });
    let (_stop_sender, stop) = tokio::sync::watch::channel(false);

    let mut group = c.benchmark_group("tick");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(60));
    group.throughput(Throughput::Elements((TARGETS * WORKERS) as u64));
    group.bench_function("1000 targets x 50 workers via simulator", |bencher| {
        bencher.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                clock.advance(Duration::from_secs(10));
                let started = Instant::now();
                let report = runtime.block_on(daemon.tick_once(clock.now(), &stop));
                total += started.elapsed();
                assert_eq!(report.stored.len(), TARGETS, "every target stored");
            }
            total
        });
    });
    group.finish();

    let database = dir.path().join("bench.db");
    runtime.block_on(async {
        daemon.store().clone().close().await.expect("close");
        simulator.shutdown().await.expect("shutdown");
    });
    let bytes: u64 = std::fs::metadata(&database).map(|m| m.len()).unwrap_or(0);
    println!("database after the run: {bytes} bytes");
}

criterion_group!(benches, tick_of_50k_workers);
criterion_main!(benches);
