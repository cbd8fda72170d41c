//! `vastwatch simulate` and `vastwatch demo`: the simulator on its own, and the simulator
//! plus the daemon on one accelerated clock, printing what happens.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Args;

use super::{CliError, ExitStatus, shutdown_signal};
use crate::advise::Recommendation;
use crate::clock::Clock;
use crate::config::{Config, Database};
use crate::daemon::{Daemon, Observer};
use crate::model::{FleetSummary, PollRecord, PollResult, TargetKind};
use crate::rules::{AlertRecord, AlertState, Transition};
use crate::sim::{Scenario, SimOptions, Simulator};
use crate::time::{Timestamp, parse_duration};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// A built-in scenario (steady, surge, flaky-worker, saturated, outage) or a YAML file.
    #[arg(long, default_value = "steady")]
    pub scenario: String,
    /// The key clients must send; any key is accepted when not given.
    #[arg(long, env = "VASTWATCH_SIM_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Scenario seconds per wall-clock second (60 plays a scenario minute per second).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// A built-in scenario or a YAML file.
    #[arg(long, default_value = "tour")]
    pub scenario: String,
    /// Scenario seconds per wall-clock second.
    #[arg(long, default_value_t = 30.0)]
    pub speed: f64,
    /// How long the demo runs, in wall-clock time.
    #[arg(long, default_value = "60s", value_parser = parse_wall_duration)]
    pub duration: Duration,
    /// Folder for the demo's database and config (default: a new temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Where to serve the HTTP API and the status page while the demo runs (port 0 picks
    /// a free one).
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
}

fn parse_wall_duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|error| error.to_string())
}

fn load_scenario(name_or_path: &str) -> Result<Scenario, CliError> {
    Scenario::load(name_or_path).map_err(|error| CliError::bad_input(error.to_string()))
}

fn check_speed(speed: f64) -> Result<(), CliError> {
    if speed.is_finite() && speed > 0.0 && speed <= 10_000.0 {
        Ok(())
    } else {
        Err(CliError::bad_input(format!(
            "--speed {speed}: must be a number above 0 and at most 10000"
        )))
    }
}

pub async fn simulate(args: SimulateArgs) -> Result<ExitStatus, CliError> {
    check_speed(args.speed)?;
    let scenario = load_scenario(&args.scenario)?;
    let clock = Clock::accelerated(Clock::real().now(), args.speed);
    let options = SimOptions {
        api_key: args.api_key.clone(),
        ..SimOptions::starting_now(clock)
    };
    let running = Simulator::new(scenario, options)
        .serve(args.listen)
        .await
        .map_err(|error| CliError::runtime(format!("cannot listen on {}: {error}", args.listen)))?;
    println!(
        "Serving scenario `{}` on {} at {}x speed; Ctrl-C stops.",
        args.scenario,
        running.base_url(),
        args.speed
    );
    for fleet in running.scenario().fleets() {
        println!(
            "  {} {} ({}, {} workers)",
            fleet.kind().as_str(),
            fleet.vast_id(),
            fleet.name(),
            fleet.worker_count()
        );
    }
    shutdown_signal().await;
    running
        .shutdown()
        .await
        .map_err(|error| CliError::runtime(format!("simulator shutdown: {error}")))?;
    Ok(ExitStatus::Success)
}

/// The demo's config file: one target per scenario fleet, a 10 s schedule in scenario time,
/// and notifications to the console and to the demo's own webhook sink.
fn demo_config_yaml(scenario: &Scenario, base_url: &str, sink_url: &str) -> String {
    let mut yaml = String::new();
    let _ = writeln!(
        yaml,
        "# Written by `vastwatch demo` for scenario `{}`.",
        scenario.name()
    );
    let _ = writeln!(yaml, "database: vastwatch.db");
    let _ = writeln!(
        yaml,
        "api:\n  base_url: {base_url}\n  api_key_env: VASTWATCH_DEMO_KEY\n  timeout: 2s"
    );
    let _ = writeln!(
        yaml,
        "schedule: 10s\njitter: 1s\nrules: [rules/*.yaml]\ntargets:"
    );
    for fleet in scenario.fleets() {
        let key = match fleet.kind() {
            TargetKind::Endpoint => "endpoint",
            TargetKind::WorkerGroup => "worker_group",
        };
        let _ = writeln!(
            yaml,
            "  - name: {}\n    {key}: {}",
            fleet.name(),
            fleet.vast_id()
        );
    }
    let _ = writeln!(
        yaml,
        "notify:\n  group_wait: 30s\n  group_interval: 2m\n  repeat_interval: 4h\n  receivers:\n    \
         - name: console\n      console: {{}}\n    - name: sink\n      webhook: {{url: \"{sink_url}\"}}"
    );
    yaml
}

pub async fn demo(args: DemoArgs) -> Result<ExitStatus, CliError> {
    check_speed(args.speed)?;
    let scenario = load_scenario(&args.scenario)?;
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|error| {
                CliError::runtime(format!("cannot create {}: {error}", dir.display()))
            })?;
            dir.clone()
        }
        None => tempfile::Builder::new()
            .prefix("vastwatch-demo-")
            .tempdir()
            .map_err(|error| {
                CliError::runtime(format!("cannot create a temporary folder: {error}"))
            })?
            .keep(),
    };
    let clock = Clock::accelerated(Clock::real().now(), args.speed);
    let demo_key = format!("demo-{:016x}", rand::random::<u64>());
    let simulator = Simulator::new(
        scenario.clone(),
        SimOptions {
            api_key: Some(demo_key.clone()),
            ..SimOptions::starting_now(clock.clone())
        },
    )
    .serve(SocketAddr::from(([127, 0, 0, 1], 0)))
    .await
    .map_err(|error| CliError::runtime(format!("cannot start the simulator: {error}")))?;

    let sink = WebhookSink::start()
        .await
        .map_err(|error| CliError::runtime(format!("cannot start the webhook sink: {error}")))?;
    write_shipped_rules(&dir.join("rules"))?;
    let config_path = dir.join("vastwatch.yaml");
    let yaml = demo_config_yaml(&scenario, &simulator.base_url(), &sink.url);
    std::fs::write(&config_path, &yaml).map_err(|error| {
        CliError::runtime(format!("cannot write {}: {error}", config_path.display()))
    })?;
    let environment = BTreeMap::from([("VASTWATCH_DEMO_KEY".to_string(), demo_key)]);
    let config = Config::parse(&config_path, &yaml, &environment)
        .map_err(|error| CliError::bad_input(error.to_string()))?;
    let database = config.database.clone();
    // Bound before anything prints, so a taken port fails the demo at once.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|error| CliError::runtime(format!("cannot listen on {}: {error}", args.listen)))?;
    let page_url = format!(
        "http://{}/",
        listener
            .local_addr()
            .map_err(|error| CliError::runtime(error.to_string()))?
    );

    println!(
        "vastwatch demo: scenario `{}` at {}x speed for {} (Ctrl-C stops early)",
        scenario.name(),
        args.speed,
        crate::time::format_duration(args.duration)
    );
    println!("  {}", scenario.description().trim());
    println!(
        "  simulator: {}   database: {}",
        simulator.base_url(),
        database
    );
    println!("  status page: {page_url}   (open it while the demo runs)");
    println!();

    let printer = Arc::new(PollPrinter {
        start: clock.now(),
        polls: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        alert_changes: AtomicU64::new(0),
        last_line: std::sync::Mutex::new(BTreeMap::new()),
    });
    let rules = super::load_rules_of(&config)?;
    let daemon = Arc::new(
        Daemon::start(config, rules, clock.clone())
            .await?
            .with_observer(printer.clone()),
    );
    // The demo never reloads: the reload channel's receiver is dropped, so
    // `POST /-/reload` answers 503.
    let (_, daemon_watch) = tokio::sync::watch::channel(Arc::clone(&daemon));
    let state = crate::api::ApiState::new(daemon_watch, tokio::sync::mpsc::channel(1).0);
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::api::serve(listener, state, async move {
        let _ = server_stopped.await;
    }));
    let wall_duration = args.duration;
    Arc::clone(&daemon)
        .run(async move {
            tokio::select! {
                _ = tokio::time::sleep(wall_duration) => {}
                _ = shutdown_signal() => {}
            }
        })
        .await?;
    let _ = stop_server.send(());
    let _ = server.await;
    simulator
        .shutdown()
        .await
        .map_err(|error| CliError::runtime(format!("simulator shutdown: {error}")))?;

    let stats = daemon.notifier().stats();
    let payloads = sink.payloads();
    if let Some(payload) = pick_payload(&payloads) {
        println!();
        println!(
            "One notification as a webhook receiver got it ({} received in all; Alertmanager's v4 format plus `vastwatch`):",
            payloads.len()
        );
        println!(
            "{}",
            serde_json::to_string_pretty(payload).unwrap_or_default()
        );
    }
    print!(
        "{}",
        demo_summary(
            &database,
            &config_path,
            DemoCounts {
                polls: printer.polls.load(Ordering::Relaxed),
                failures: printer.failures.load(Ordering::Relaxed),
                alert_changes: printer.alert_changes.load(Ordering::Relaxed),
                notifications: stats.delivered.load(Ordering::Relaxed),
            },
        )
    );
    Ok(ExitStatus::Success)
}

/// The payload to show: the first that carries a recommendation with commands, else the
/// first.
fn pick_payload(payloads: &[serde_json::Value]) -> Option<&serde_json::Value> {
    payloads
        .iter()
        .find(|payload| {
            payload["vastwatch"]["recommendations"]
                .as_object()
                .is_some_and(|map| {
                    map.values()
                        .any(|r| r["commands"].as_array().is_some_and(|c| !c.is_empty()))
                })
        })
        .or_else(|| payloads.first())
}

/// A webhook receiver inside the demo, so it can show what a receiver gets.
struct WebhookSink {
    url: String,
    received: Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

impl WebhookSink {
    async fn start() -> std::io::Result<WebhookSink> {
        use axum::extract::State;
        use axum::routing::post;
        let received: Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Arc::default();
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let app = axum::Router::new()
            .route(
                "/hook",
                post(
                    |State(received): State<Arc<std::sync::Mutex<Vec<serde_json::Value>>>>,
                     body: axum::body::Bytes| async move {
                        if let Ok(payload) = serde_json::from_slice(&body) {
                            received
                                .lock()
                                .unwrap_or_else(|poisoned| poisoned.into_inner())
                                .push(payload);
                        }
                        axum::http::StatusCode::OK
                    },
                ),
            )
            .with_state(Arc::clone(&received));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(WebhookSink { url, received })
    }

    fn payloads(&self) -> Vec<serde_json::Value> {
        self.received
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Writes the shipped rule files (embedded in the binary) where the demo's config reads
/// them, so the demo needs nothing but the binary.
fn write_shipped_rules(folder: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(folder).map_err(|error| {
        CliError::runtime(format!("cannot create {}: {error}", folder.display()))
    })?;
    for (name, text) in crate::rules::SHIPPED_RULES {
        let path = folder.join(name);
        std::fs::write(&path, text).map_err(|error| {
            CliError::runtime(format!("cannot write {}: {error}", path.display()))
        })?;
    }
    Ok(())
}

struct DemoCounts {
    polls: u64,
    failures: u64,
    alert_changes: u64,
    notifications: u64,
}

fn demo_summary(database: &Database, config: &Path, counts: DemoCounts) -> String {
    let DemoCounts {
        polls,
        failures,
        alert_changes,
        notifications,
    } = counts;
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Demo finished: {polls} polls stored ({failures} failed), {alert_changes} alert state changes, \
         {notifications} notifications delivered."
    );
    let _ = writeln!(out, "  database: {}", database);
    let _ = writeln!(out, "  config:   {}", config.display());
    let _ = writeln!(out, "Try:");
    let _ = writeln!(
        out,
        "  vastwatch history --config {} --limit 5",
        config.display()
    );
    let _ = writeln!(out, "  vastwatch alerts --config {}", config.display());
    let _ = writeln!(
        out,
        "  vastwatch notifications --config {}",
        config.display()
    );
    let _ = writeln!(
        out,
        "  sqlite3 {} \"SELECT target, datetime(at, 'unixepoch') AS at, action, current_workers, \
         desired_workers FROM recommendations ORDER BY at\"",
        database
    );
    let _ = writeln!(
        out,
        "  vastwatch replay --config {} --format json",
        config.display()
    );
    let _ = writeln!(
        out,
        "  sqlite3 {} \"SELECT target, datetime(polled_at, 'unixepoch') AS at, ready, starting, \
         round(load_rolling, 1) AS load, round(perf, 1) AS perf, round(utilization, 2) AS util \
         FROM fleet_samples ORDER BY polled_at DESC LIMIT 10\"",
        database
    );
    out
}

/// Prints a target's fleet line once a scenario minute, every failed poll, and every
/// alert change.
struct PollPrinter {
    start: Timestamp,
    polls: AtomicU64,
    failures: AtomicU64,
    alert_changes: AtomicU64,
    /// The scenario minute of each target's last printed fleet line.
    last_line: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl PollPrinter {
    /// Scenario time as `hh:mm:ss` since the demo started.
    fn clock(&self, at: Timestamp) -> String {
        let elapsed = at.duration_since(self.start).as_secs();
        format!(
            "{:02}:{:02}:{:02}",
            elapsed / 3600,
            (elapsed / 60) % 60,
            elapsed % 60
        )
    }
}

impl Observer for PollPrinter {
    fn recommendation_changed(&self, target: &str, at: Timestamp, recommendation: &Recommendation) {
        println!(
            "[{}] ADVICE   {target}: {} ({} -> {} workers). {}",
            self.clock(at),
            recommendation.action.as_str(),
            recommendation.current_workers,
            recommendation.desired_workers,
            recommendation.reason
        );
        for command in &recommendation.commands {
            println!("           $ {command}");
        }
    }

    fn alert_changed(&self, alert: &AlertRecord, transition: &Transition) {
        self.alert_changes.fetch_add(1, Ordering::Relaxed);
        // A pending alert that clears never fired: stored, but not worth a line here.
        if transition.to == AlertState::Inactive {
            return;
        }
        let clock = self.clock(transition.at);
        let subject = match alert.worker_id {
            Some(worker_id) => format!("{} worker {worker_id}", alert.target),
            None => alert.target.clone(),
        };
        let summary = alert
            .annotations
            .get("summary")
            .map(|summary| format!(": {summary}"))
            .unwrap_or_default();
        println!(
            "[{clock}] {:<8} {} {subject}{summary}",
            transition.to.as_str().to_uppercase(),
            alert.alertname
        );
    }

    fn poll_stored(&self, record: &PollRecord) {
        self.polls.fetch_add(1, Ordering::Relaxed);
        let clock = self.clock(record.started_at);
        match &record.result {
            PollResult::Snapshot { workers, .. } => {
                let minute = record.started_at.duration_since(self.start).as_secs() / 60;
                let mut last = self
                    .last_line
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if last.get(&record.target) == Some(&minute) {
                    return;
                }
                last.insert(record.target.clone(), minute);
                println!(
                    "[{clock}] {}",
                    fleet_line(&record.target, &FleetSummary::of(workers))
                );
            }
            PollResult::Failed(failure) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                println!(
                    "[{clock}] {:<16} poll failed: {} ({})",
                    record.target, failure.kind, failure.message
                );
            }
        }
    }
}

/// "llama-prod  workers 5 (ready 3, starting 1, inactive 0, failed 1)  load 240  perf 300  util 0.8"
pub fn fleet_line(target: &str, summary: &FleetSummary) -> String {
    let show = |value: Option<f64>| value.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
    format!(
        "{target:<16} workers {:>2} (ready {}, starting {}, inactive {}, failed {})  load {:>7}  perf {:>7}  util {}",
        summary.workers,
        summary.ready,
        summary.starting,
        summary.inactive,
        summary.failed,
        show(summary.load_rolling),
        show(summary.perf),
        summary
            .utilization()
            .map_or_else(|| "-".to_string(), |u| format!("{u:.2}")),
    )
}
