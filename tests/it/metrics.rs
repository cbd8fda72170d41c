//! `/metrics` end to end: a daemon polls the simulator on a manual clock, rules fire,
//! a webhook receives, and the rendered page must be valid Prometheus text whose values
//! match what was stored. The shipped dashboard and alert rules may only use metrics the
//! page exposes.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::watch;
use vastwatch::clock::Clock;
use vastwatch::config::Config;
use vastwatch::daemon::{Daemon, load_rules};
use vastwatch::metrics::{CONTENT_TYPE, Metrics, ReloadRecorder};
use vastwatch::notify::Silence;
use vastwatch::notify::matcher::Matcher;
use vastwatch::service::{FileSource, ReloadReply, ReplicaState, Service};
use vastwatch::sim::RunningSimulator;
use vastwatch::store::HistoryFilter;

use crate::exposition::{Exposition, parse};
use crate::helpers::*;
use crate::receiver::{Answer, Receiver};

/// Two ready workers (101, 103), one loading until 30s (102), one in error (104); 103
/// leaves at 35s; the API answers 503 from 20s to 30s.
const SCENARIO: &str = r#"
name: metrics
fleets:
  - endpoint: 1
    load: 300
    workers:
      - {id: 101, perf: 200}
      - {id: 102, perf: 200, status: {0s: loading, 30s: running}}
      - {id: 103, perf: 200, leave: 35s}
      - {id: 104, perf: 100, status: error}
    faults:
      - {at: 20s, for: 10s, kind: http_status, status: 503}
"#;

const RULES: &str = r#"
rules:
  - alert: WorkerBroken
    scope: worker
    expr: class == "failed"
    severity: warning
  - alert: FleetBusy
    scope: fleet
    expr: load > 100
    for: 10m
    severity: warning
  - alert: FleetServing
    scope: fleet
    expr: ready > 0
    severity: info
"#;

/// A config and rules in a fresh folder, polling a simulator on a manual clock, with two
/// webhook receivers.
struct Files {
    _dir: tempfile::TempDir,
    config_path: std::path::PathBuf,
    clock: Clock,
    _simulator: RunningSimulator,
    /// Receives every alert; `quiet` receives them too (the default route goes to both).
    ops: Receiver,
    quiet: Receiver,
}

impl Files {
    /// `extra` is added to the config's top level.
    async fn write(extra: &str) -> Files {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let clock = Clock::manual(T0);
        let simulator = start_simulator(SCENARIO, &clock, TEST_KEY).await;
        let ops = Receiver::start().await;
        let quiet = Receiver::start().await;
        let config_path = write_config_with_rules(
            dir.path(),
            &simulator.base_url(),
            RULES,
            &format!(
                "notify:\n  group_wait: 10s\n  receivers:\n    - name: ops\n      webhook: {{url: \"{}\"}}\n    - name: quiet\n      webhook: {{url: \"{}\"}}\n{extra}",
                ops.url(),
                quiet.url()
            ),
        );
        Files {
            _dir: dir,
            config_path,
            clock,
            _simulator: simulator,
            ops,
            quiet,
        }
    }
}

/// A daemon on [`Files`], stepped by hand.
struct App {
    files: Files,
    daemon: Daemon,
    stop: watch::Receiver<bool>,
    _stop_sender: watch::Sender<bool>,
}

async fn start_daemon(path: &Path, clock: &Clock, metrics: Arc<Metrics>) -> Daemon {
    let config = Config::load(path, &test_env()).expect("valid config");
    let rules = load_rules(&config).expect("rules load");
    Daemon::start(config, rules, clock.clone())
        .await
        .expect("daemon starts")
        .with_metrics(metrics)
}

impl App {
    /// `extra` is added to the config's top level.
    async fn spawn(extra: &str) -> App {
        let files = Files::write(extra).await;
        let daemon =
            start_daemon(&files.config_path, &files.clock, Arc::new(Metrics::new(T0))).await;
        let (stop_sender, stop) = watch::channel(false);
        App {
            files,
            daemon,
            stop,
            _stop_sender: stop_sender,
        }
    }

    async fn tick(&self, second: u64) {
        self.files.clock.set(at(secs(second)));
        self.daemon.tick_once(at(secs(second)), &self.stop).await;
    }

    async fn scrape(&self) -> Exposition {
        let text = self
            .daemon
            .metrics()
            .render(&self.daemon, &ReplicaState::single())
            .await
            .expect("metrics render");
        parse(&text)
    }
}

fn target(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut labels = vec![("target", "t")];
    labels.extend_from_slice(extra);
    labels
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_report_fleets_alerts_polls_and_notifications_and_survive_a_reload() {
    let app = App::spawn("").await;
    for second in [0, 10, 20] {
        app.tick(second).await;
    }
    app.files.clock.set(at(secs(25)));
    let page = app.scrape().await;
    let value = |name: &str, labels: &[(&str, &str)]| {
        page.value(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
    };

    let t = |extra: &[(&'static str, &'static str)]| target(extra);
    for (name, labels, expected) in [
        // Polls by outcome: two answers, then the 503.
        ("vastwatch_polls_total", t(&[("outcome", "ok")]), 2.0),
        (
            "vastwatch_polls_total",
            t(&[("outcome", "http_status")]),
            1.0,
        ),
        // Outcomes and skips that never happened read 0 rather than being absent.
        ("vastwatch_polls_total", t(&[("outcome", "timeout")]), 0.0),
        (
            "vastwatch_polls_skipped_total",
            t(&[("reason", "in_flight")]),
            0.0,
        ),
        ("vastwatch_poll_duration_seconds_count", t(&[]), 3.0),
        ("vastwatch_evaluation_duration_seconds_count", vec![], 3.0),
        ("vastwatch_store_write_failures_total", vec![], 0.0),
        // The last success started at 10s; the clock reads 25s.
        ("vastwatch_last_successful_poll_age_seconds", t(&[]), 15.0),
        // Workers by class, as the last successful poll (at 10s) saw them.
        ("vastwatch_fleet_workers", t(&[("class", "ready")]), 2.0),
        ("vastwatch_fleet_workers", t(&[("class", "starting")]), 1.0),
        ("vastwatch_fleet_workers", t(&[("class", "inactive")]), 0.0),
        ("vastwatch_fleet_workers", t(&[("class", "failed")]), 1.0),
        ("vastwatch_fleet_workers", t(&[("class", "unknown")]), 0.0),
    ] {
        assert_eq!(value(name, &labels), expected, "{name} {labels:?}");
    }

    // Fleet sums are those of the last successful poll, as stored.
    let stored = app
        .daemon
        .store()
        .fleet_history(&HistoryFilter {
            target: Some("t".into()),
            since: None,
            until: None,
            limit: None,
        })
        .await
        .expect("fleet history");
    let last = stored.last().expect("a stored fleet row");
    assert_eq!(last.polled_at, at(secs(10)));
    for (name, stored_value) in [
        ("vastwatch_fleet_load", last.summary.load),
        ("vastwatch_fleet_load_rolling", last.summary.load_rolling),
        ("vastwatch_fleet_perf", last.summary.perf),
        ("vastwatch_fleet_utilization_ratio", last.utilization),
    ] {
        let stored_value = stored_value.expect("the simulator sends every field");
        let exposed = value(name, &target(&[]));
        assert!(
            (exposed - stored_value).abs() < 1e-9,
            "{name}: {exposed} exposed, {stored_value} stored"
        );
    }
    assert!(value("vastwatch_fleet_perf", &target(&[])) > 0.0);
    let recommendation = app
        .daemon
        .store()
        .latest_recommendations()
        .await
        .expect("recommendations")
        .into_iter()
        .find(|row| row.target == "t")
        .expect("a recommendation for t");
    assert_eq!(
        value("vastwatch_fleet_desired_workers", &target(&[])),
        f64::from(recommendation.recommendation.desired_workers)
    );

    // Alerts by name and state, zeros included.
    for (alertname, state, expected) in [
        ("WorkerBroken", "firing", 1.0),
        ("WorkerBroken", "pending", 0.0),
        ("FleetBusy", "pending", 1.0),
        ("FleetBusy", "firing", 0.0),
        ("FleetServing", "firing", 1.0),
        ("VastwatchTargetDown", "firing", 0.0),
    ] {
        assert_eq!(
            value(
                "vastwatch_alerts",
                &[("alertname", alertname), ("state", state)]
            ),
            expected,
            "{alertname} {state}"
        );
    }

    // Static series.
    let build = page.series("vastwatch_build_info");
    assert_eq!(build.len(), 1);
    assert_eq!(build[0].value, 1.0);
    assert_eq!(build[0].labels["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(value("vastwatch_config_last_reload_successful", &[]), 1.0);
    assert_eq!(
        value(
            "vastwatch_config_last_reload_success_timestamp_seconds",
            &[]
        ),
        T0.unix_secs_f64()
    );
    assert!(page.series("vastwatch_worker_reliability").is_empty());

    // The firing alerts go to the outbox, one group each, then to the receivers.
    app.daemon
        .notifier()
        .step(true)
        .await
        .expect("notifier step");
    let queued = app.scrape().await;
    let receiver = [("receiver", "ops")];
    assert_eq!(
        queued.value("vastwatch_outbox_pending_notifications", &receiver),
        Some(2.0)
    );
    assert_eq!(
        queued.value("vastwatch_notifications_queued_total", &receiver),
        Some(2.0)
    );
    app.daemon.notify_pass(false).await.expect("delivery");
    assert_eq!(app.files.ops.accepted().len(), 2);
    let delivered = app.scrape().await;
    assert_eq!(
        delivered.value("vastwatch_outbox_pending_notifications", &receiver),
        Some(0.0)
    );
    for (outcome, expected) in [
        ("delivered", 2.0),
        ("retried", 0.0),
        ("failed", 0.0),
        ("muted", 0.0),
    ] {
        assert_eq!(
            delivered.value(
                "vastwatch_notifications_total",
                &[("receiver", "ops"), ("outcome", outcome)]
            ),
            Some(expected),
            "{outcome}"
        );
    }

    // A rejected reload shows 0 and keeps the last success's time; a good one moves it.
    let metrics = Arc::clone(app.daemon.metrics());
    metrics.reload_result(false, at(secs(26)));
    let rejected = app.scrape().await;
    assert_eq!(
        rejected.value("vastwatch_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert_eq!(
        rejected.value(
            "vastwatch_config_last_reload_success_timestamp_seconds",
            &[]
        ),
        Some(T0.unix_secs_f64())
    );
    metrics.reload_result(true, at(secs(27)));

    // A daemon rebuilt on the same metrics, as a reload does, carries the counters on.
    let App {
        files,
        daemon,
        stop,
        _stop_sender,
    } = app;
    drop(daemon);
    let (config_path, clock) = (&files.config_path, &files.clock);
    let reloaded = start_daemon(config_path, clock, metrics).await;
    clock.set(at(secs(30)));
    reloaded.tick_once(at(secs(30)), &stop).await;
    let after = parse(
        &reloaded
            .metrics()
            .render(&reloaded, &ReplicaState::single())
            .await
            .expect("metrics render"),
    );
    assert_eq!(
        after.value("vastwatch_polls_total", &target(&[("outcome", "ok")])),
        Some(3.0)
    );
    assert_eq!(
        after.value(
            "vastwatch_notifications_total",
            &[("receiver", "ops"), ("outcome", "delivered")]
        ),
        Some(2.0)
    );
    assert_eq!(
        after.value(
            "vastwatch_config_last_reload_success_timestamp_seconds",
            &[]
        ),
        Some(at(secs(27)).unix_secs_f64())
    );
    assert_eq!(
        after.value("vastwatch_config_last_reload_successful", &[]),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn notification_outcomes_are_counted_per_receiver() {
    let app = App::spawn("").await;
    app.files.ops.answer(Answer::Status(503));
    let silence = Silence {
        id: "s1".into(),
        matchers: vec![Matcher::parse("alertname=FleetServing").expect("matcher")],
        starts_at: T0,
        ends_at: at(secs(3600)),
        comment: "serving is not news".into(),
        created_by: "test".into(),
    };
    app.daemon
        .store()
        .insert_silence(&silence, T0)
        .await
        .expect("silence");
    app.tick(0).await;
    app.daemon.notify_now().await.expect("notify");
    assert_eq!(app.files.quiet.accepted().len(), 1);
    let page = app.scrape().await;
    let count = |receiver: &str, outcome: &str| {
        page.value(
            "vastwatch_notifications_total",
            &[("receiver", receiver), ("outcome", outcome)],
        )
    };
    // WorkerBroken went to both receivers; ops answered 503 and will be retried.
    assert_eq!(count("ops", "retried"), Some(1.0));
    assert_eq!(count("ops", "delivered"), Some(0.0));
    assert_eq!(count("quiet", "delivered"), Some(1.0));
    // FleetServing was silenced on the route to both.
    assert_eq!(count("ops", "muted"), Some(1.0));
    assert_eq!(count("quiet", "muted"), Some(1.0));
    let outbox = |receiver| {
        page.value(
            "vastwatch_outbox_pending_notifications",
            &[("receiver", receiver)],
        )
    };
    assert_eq!(outbox("ops"), Some(1.0), "the retry waits in the outbox");
    assert_eq!(outbox("quiet"), Some(0.0));
}

/// Asks `service` for a reload, as `POST /-/reload` does, and returns its outcome.
async fn request_reload(reload: &tokio::sync::mpsc::Sender<ReloadReply>) -> Result<(), String> {
    let (reply, outcome) = tokio::sync::oneshot::channel();
    reload
        .send(reply)
        .await
        .expect("the service takes requests");
    outcome.await.expect("the service answers")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_keeps_one_metrics_across_reloads_and_shows_a_rejected_one() {
    let files = Files::write("").await;
    let clock = files.clock.clone();
    let metrics = Arc::new(Metrics::new(T0));
    let loaded = Config::load(&files.config_path, &test_env()).expect("valid config");
    let rules = load_rules(&loaded).expect("rules load");
    let for_each_daemon = Arc::clone(&metrics);
    let service = Service::start(
        Box::new(FileSource {
            path: files.config_path.clone(),
            env: Box::new(test_env()),
        }),
        loaded,
        rules,
        clock.clone(),
        Box::new(move |daemon| daemon.with_metrics(Arc::clone(&for_each_daemon))),
    )
    .await
    .expect("service starts")
    .with_observer(Arc::new(ReloadRecorder::new(
        Arc::clone(&metrics),
        clock.clone(),
    )));
    let daemons = service.daemon();
    let reload = service.reload_sender();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(service.run(async move {
        let _ = stopped.await;
    }));
    let scrape = || async {
        let daemon = Arc::clone(&daemons.borrow());
        assert!(Arc::ptr_eq(daemon.metrics(), &metrics));
        parse(
            &metrics
                .render(&daemon, &ReplicaState::single())
                .await
                .expect("metrics render"),
        )
    };
    let status = |page: &Exposition| {
        (
            page.value("vastwatch_config_last_reload_successful", &[]),
            page.value(
                "vastwatch_config_last_reload_success_timestamp_seconds",
                &[],
            ),
        )
    };
    assert_eq!(
        status(&scrape().await),
        (Some(1.0), Some(T0.unix_secs_f64()))
    );

    let good = std::fs::read_to_string(&files.config_path).expect("config");
    std::fs::write(&files.config_path, format!("{good}shedule: 5s\n")).expect("break config");
    clock.set(at(secs(30)));
    assert!(request_reload(&reload).await.is_err());
    assert_eq!(
        status(&scrape().await),
        (Some(0.0), Some(T0.unix_secs_f64()))
    );

    let with_u = good.replace("targets:\n", "targets:\n  - name: u\n    endpoint: 1\n");
    std::fs::write(&files.config_path, with_u).expect("fix config");
    clock.set(at(secs(60)));
    request_reload(&reload)
        .await
        .expect("the fixed config loads");
    let page = scrape().await;
    assert_eq!(
        status(&page),
        (Some(1.0), Some(at(secs(60)).unix_secs_f64()))
    );
    // The new daemon records into the same metrics, with the new target's series ready.
    assert_eq!(
        page.value(
            "vastwatch_polls_total",
            &[("target", "u"), ("outcome", "ok")]
        ),
        Some(0.0)
    );
    let _ = stop.send(());
    task.await
        .expect("service task")
        .expect("service stops cleanly");
}

/// `(worker_id, status)` of every `vastwatch_worker_status` series.
fn worker_statuses(page: &Exposition) -> Vec<(String, String)> {
    let mut statuses: Vec<(String, String)> = page
        .series("vastwatch_worker_status")
        .iter()
        .map(|sample| {
            (
                sample.labels["worker_id"].clone(),
                sample.labels["status"].clone(),
            )
        })
        .collect();
    statuses.sort();
    statuses
}

#[tokio::test(flavor = "multi_thread")]
async fn per_worker_series_appear_only_when_enabled_and_vanish_when_a_worker_leaves() {
    let off = App::spawn("").await;
    off.tick(0).await;
    let page = off.scrape().await;
    let per_worker: Vec<&String> = page
        .types
        .keys()
        .filter(|name| name.starts_with("vastwatch_worker_"))
        .collect();
    assert!(per_worker.is_empty(), "{per_worker:?}");

    let on = App::spawn("metrics: {per_worker: true}\n").await;
    on.tick(0).await;
    let page = on.scrape().await;
    let pair = |id: &str, status: &str| (id.to_string(), status.to_string());
    assert_eq!(
        worker_statuses(&page),
        vec![
            pair("101", "running"),
            pair("102", "loading"),
            pair("103", "running"),
            pair("104", "error"),
        ]
    );
    let worker = |id| vec![("target", "t"), ("worker_id", id)];
    assert_eq!(
        page.value("vastwatch_worker_reliability", &worker("101")),
        Some(0.99)
    );
    assert_eq!(
        page.value("vastwatch_worker_perf", &worker("101")),
        Some(200.0 * 0.99)
    );
    assert!(page.value("vastwatch_worker_load", &worker("101")).unwrap() > 0.0);
    assert!(
        page.value("vastwatch_worker_reqs_working", &worker("101"))
            .is_some()
    );
    let class = page
        .series("vastwatch_worker_status")
        .into_iter()
        .find(|sample| sample.labels["worker_id"] == "104")
        .map(|sample| sample.labels["class"].clone());
    assert_eq!(class.as_deref(), Some("failed"));

    // 103 left at 35s and 102 finished loading: old series are gone, not left behind.
    on.tick(40).await;
    let page = on.scrape().await;
    assert_eq!(
        worker_statuses(&page),
        vec![
            pair("101", "running"),
            pair("102", "running"),
            pair("104", "error"),
        ]
    );
    for name in [
        "vastwatch_worker_reliability",
        "vastwatch_worker_perf",
        "vastwatch_worker_reqs_working",
        "vastwatch_worker_load",
    ] {
        assert_eq!(page.value(name, &worker("103")), None, "{name}");
        assert!(page.value(name, &worker("101")).is_some(), "{name}");
    }
}

#[test]
fn the_content_type_is_the_prometheus_text_format() {
    assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
}

/// Every `vastwatch_*` name in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let pattern = regex::Regex::new(r"\bvastwatch_[a-zA-Z0-9_]+").expect("valid regex");
    pattern
        .find_iter(expr)
        .map(|found| found.as_str().to_string())
        .collect()
}

/// The strings under every key named `key`, anywhere in `value`.
fn strings_under(value: &Value, key: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (name, inner) in map {
                match inner {
                    Value::String(text) if name == key => found.push(text.clone()),
                    _ => strings_under(inner, key, found),
                }
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| strings_under(item, key, found)),
        _ => {}
    }
}

/// The string `key` of each item of the array `list`.
fn field_of_each<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap_or_else(|| panic!("an array of items with `{key}`"))
        .iter()
        .filter_map(|item| item[key].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_dashboard_and_the_example_alerts_use_is_exposed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana-dashboard.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut dashboard_exprs = Vec::new();
    strings_under(&dashboard["panels"], "expr", &mut dashboard_exprs);
    strings_under(&dashboard["templating"], "query", &mut dashboard_exprs);
    let variables = field_of_each(&dashboard["templating"]["list"], "name");
    assert!(variables.contains(&"target"), "{variables:?}");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "{} panels", panels.len());

    let rules: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root.join("deploy/prometheus-rules.yaml")).expect("rules"),
    )
    .expect("the rules are YAML");
    let mut alert_exprs = Vec::new();
    strings_under(&rules, "expr", &mut alert_exprs);
    let alerts = field_of_each(&rules["groups"][0]["rules"], "alert");
    assert!(alerts.contains(&"VastwatchDown"), "{alerts:?}");

    let app = App::spawn("metrics: {per_worker: true}\n").await;
    app.tick(0).await;
    let page = app.scrape().await;
    let mut missing = Vec::new();
    let mut used = 0;
    for expr in dashboard_exprs.iter().chain(&alert_exprs) {
        for name in metric_names(expr) {
            used += 1;
            if !page.exposes(&name) {
                missing.push(format!("{name} (in `{expr}`)"));
            }
        }
    }
    assert!(
        used > 20,
        "only {used} metric uses found; is the extraction broken?"
    );
    assert!(missing.is_empty(), "not exposed:\n{}", missing.join("\n"));
}
