//! Notifications under load: 10,000 alert transitions in one tick, turned into 10,000
//! outbox rows (every alert its own group, the worst case), then delivered to a local
//! webhook receiver. Reports the time to enqueue and the delivery rate, and how long a
//! tick takes while delivery runs.
//!
//! `cargo bench --bench notify`; figures go in docs/benchmarks.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vastwatch::clock::Clock;
use vastwatch::config::Config;
use vastwatch::daemon::{Daemon, load_rules};
use vastwatch::sim::{Scenario, SimOptions, Simulator};
use vastwatch::time::Timestamp;

const TARGETS: usize = 100;
const WORKERS: usize = 100;
const RUNS: usize = 3;

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
                "      - {{id: {}, perf: 100, reliability: {{0s: 0.99, 15s: 0.99, 16s: 0.5}}}}",
                target * WORKERS + worker + 1
            );
        }
    }
    yaml
}

fn config_yaml(base_url: &str, hook: &str) -> String {
    let mut yaml = format!(
        "database: bench.db\napi:\n  base_url: {base_url}\n  api_key_env: BENCH_KEY\n  \
         concurrency: 16\nschedule: 10s\njitter: 0s\nrules: [rules.yaml]\n\
         notify:\n  group_by: [\"...\"]\n  group_wait: 0s\n  receivers:\n    \
         - name: hook\n      webhook: {{url: \"{hook}\", secret_env: BENCH_SECRET}}\ntargets:\n"
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

const RULES: &str =
    "rules:\n  - alert: Unreliable\n    scope: worker\n    expr: reliability < 0.9\n";

async fn receiver(count: Arc<AtomicU64>) -> String {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let count = Arc::clone(&count);
            async move {
                count.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

struct Figures {
    quiet_tick: Duration,
    transition_tick: Duration,
    enqueue: Duration,
    queued: usize,
    delivery: Duration,
    delivered: u64,
    tick_during_delivery: Duration,
    tick_after_delivery: Duration,
}

async fn run_once() -> Figures {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let clock = Clock::manual(Timestamp::from_unix_millis(1_767_225_600_000));
    let scenario = Scenario::from_yaml(&scenario_yaml(), "bench").expect("scenario");
    let simulator = Simulator::new(scenario, SimOptions::starting_now(clock.clone()))
        .serve(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator");
    let received = Arc::new(AtomicU64::new(0));
    let hook = receiver(Arc::clone(&received)).await;
    std::fs::write(dir.path().join("rules.yaml"), RULES).expect("rules");
    let config_path = dir.path().join("vastwatch.yaml");
    let yaml = config_yaml(&simulator.base_url(), &hook);
    std::fs::write(&config_path, &yaml).expect("config");
    let environment = BTreeMap::from([
        ("BENCH_KEY".to_string(), "k".to_string()),
        (
            "BENCH_SECRET".to_string(),
            "whsec_c2VjcmV0LWtleS1mb3ItYmVuY2g=".to_string(),
        ),
    ]);
    let config = Config::parse(&config_path, &yaml, &environment).expect("config");
    let rules = load_rules(&config).expect("rules");
    let start = clock.now();
    let daemon = Daemon::start(config, rules, clock.clone())
        .await
        .expect("daemon");
    let (_stop_sender, stop) = tokio::sync::watch::channel(false);
    let at = |secs: u64| start.saturating_add(Duration::from_secs(secs));

    daemon.tick_once(at(0), &stop).await;
    clock.set(at(10));
    let began = Instant::now();
    daemon.tick_once(at(10), &stop).await;
    let quiet_tick = began.elapsed();

    // Every worker turns unreliable: 10,000 transitions, each with its mark.
    clock.set(at(20));
    let began = Instant::now();
    daemon.tick_once(at(20), &stop).await;
    let transition_tick = began.elapsed();
    let began = Instant::now();
    let (report, _) = daemon
        .notifier()
        .step(true)
        .await
        .map(|r| (r, ()))
        .expect("step");
    let enqueue = began.elapsed();

    // Delivery, with a tick in the middle of it.
    let began = Instant::now();
    let mut tick_during_delivery = Duration::ZERO;
    let mut passes = 0;
    loop {
        let (_, attempts) = daemon.notify_pass(false).await.expect("pass");
        passes += 1;
        if passes == 20 {
            clock.set(at(30));
            let tick = Instant::now();
            daemon.tick_once(at(30), &stop).await;
            tick_during_delivery = tick.elapsed();
        }
        if attempts.is_empty() {
            break;
        }
    }
    let delivery = began.elapsed() - tick_during_delivery;
    // The same tick (10,000 alerts firing) with delivery idle, for comparison.
    clock.set(at(40));
    let tick = Instant::now();
    daemon.tick_once(at(40), &stop).await;
    let tick_after_delivery = tick.elapsed();
    let figures = Figures {
        quiet_tick,
        transition_tick,
        enqueue,
        queued: report.queued.len(),
        delivery,
        delivered: received.load(Ordering::Relaxed),
        tick_during_delivery,
        tick_after_delivery,
    };
    simulator.shutdown().await.expect("shutdown");
    figures
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent; do nothing then.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut runs: Vec<Figures> = (0..RUNS).map(|_| runtime.block_on(run_once())).collect();
    runs.sort_by_key(|figures| figures.enqueue);
    println!("notify: {TARGETS} targets x {WORKERS} workers, {RUNS} runs (median by enqueue time)");
    for (index, figures) in runs.iter().enumerate() {
        let marker = if index == RUNS / 2 { " <- median" } else { "" };
        println!(
            "  quiet tick {:>7.1} ms | tick with 10k transitions {:>7.1} ms | enqueue {} messages {:>7.1} ms | \
             delivered {} in {:>6.2} s = {:>6.0}/s | tick with 10k firing: during delivery {:>7.1} ms, after {:>7.1} ms{marker}",
            figures.quiet_tick.as_secs_f64() * 1e3,
            figures.transition_tick.as_secs_f64() * 1e3,
            figures.queued,
            figures.enqueue.as_secs_f64() * 1e3,
            figures.delivered,
            figures.delivery.as_secs_f64(),
            figures.delivered as f64 / figures.delivery.as_secs_f64(),
            figures.tick_during_delivery.as_secs_f64() * 1e3,
            figures.tick_after_delivery.as_secs_f64() * 1e3,
        );
    }
}
