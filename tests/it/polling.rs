//! Polling against the simulator: every decoding case and every failure kind ends up in
//! `polls`, and stored samples equal what was served.

use std::net::TcpListener;

use serde_json::{Value, json};
use sqlx::Row;
use vastwatch::clock::Clock;
use vastwatch::config::Config;
use vastwatch::daemon::Daemon;
use vastwatch::model::TargetKind;

use crate::helpers::*;

/// A healthy fleet whose API misbehaves in a different way each minute.
const FAULTY: &str = r#"
name: faulty
fleets:
  - endpoint: 1
    load: 100
    workers:
      - {id: 11, perf: 100, reliability: 0.99}
      - {id: 12, perf: 100, reliability: 0.98}
    faults:
      - {at: 1m, for: 30s, kind: http_status, status: 503}
      - {at: 2m, for: 30s, kind: rate_limit}
      - {at: 3m, for: 30s, kind: error_msg, message: "workers are still loading"}
      - {at: 4m, for: 30s, kind: unauthorized}
      - {at: 5m, for: 30s, kind: html}
      - {at: 6m, for: 30s, kind: truncated}
      - {at: 7m, for: 30s, kind: raw, status: 200, body: '{"workers": "not a list"}'}
      - {at: 8m, for: 30s, kind: raw, status: 302, body: '', content_type: text/plain}
      - {at: 9m, for: 30s, kind: timeout, hold: 10s}
"#;

#[tokio::test]
async fn every_failure_kind_is_stored_in_polls_with_its_reason() {
    let app = TestApp::spawn(FAULTY, "  timeout: 500ms\n").await;
    for minute in 0..=9 {
        app.tick_at(secs(minute * 60)).await;
    }
    let rows = poll_rows(&app.sql().await).await;
    let summary: Vec<(String, Option<i64>, Option<i64>)> = rows
        .iter()
        .map(|row| (row.outcome.clone(), row.http_status, row.worker_count))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("ok".to_string(), None, Some(2)),
            ("http_status".to_string(), Some(503), None),
            ("rate_limited".to_string(), Some(429), None),
            ("api_error".to_string(), Some(200), None),
            ("api_error".to_string(), Some(401), None),
            ("decode".to_string(), Some(200), None),
            ("decode".to_string(), Some(200), None),
            ("decode".to_string(), Some(200), None),
            ("http_status".to_string(), Some(302), None),
            ("timeout".to_string(), None, None),
        ]
    );
    let errors: Vec<String> = rows
        .iter()
        .map(|row| row.error.clone().unwrap_or_default())
        .collect();
    assert_eq!(errors[0], "");
    assert!(errors[1].starts_with("HTTP 503"), "{}", errors[1]);
    assert!(
        errors[2].contains("API requests too frequent"),
        "{}",
        errors[2]
    );
    assert_eq!(errors[3], "API error: workers are still loading");
    assert!(errors[4].starts_with("HTTP 401: "), "{}", errors[4]);
    assert!(errors[5].starts_with("body is not JSON"), "{}", errors[5]);
    assert!(errors[6].starts_with("body is not JSON"), "{}", errors[6]);
    assert!(
        errors[7].starts_with("JSON object is not a worker list"),
        "{}",
        errors[7]
    );
    assert!(errors[8].contains("not followed"), "{}", errors[8]);
    assert!(!errors[9].is_empty());
}

#[tokio::test]
async fn an_unreachable_api_is_a_connect_failure() {
    let closed_port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let dir = tempfile::TempDir::new().expect("temp dir");
    let config_path = write_config(
        dir.path(),
        &format!("http://127.0.0.1:{closed_port}"),
        "",
        "  - name: t\n    endpoint: 1\n",
        "",
    );
    let clock = Clock::manual(T0);
    let config = Config::load(&config_path, &test_env()).expect("config");
    let daemon = Daemon::start(config, vastwatch::rules::RuleSet::empty(), clock)
        .await
        .expect("daemon");
    let (_sender, stop) = tokio::sync::watch::channel(false);
    daemon.tick_once(T0, &stop).await;
    let rows = poll_rows(&open_database(&dir.path().join("vastwatch.db")).await).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome, "connect");
    assert_eq!(rows[0].http_status, None);
}

#[tokio::test]
async fn a_body_over_max_body_is_a_decode_failure() {
    let workers: String = (1..=50)
        .map(|id| format!("      - {{id: {id}, perf: 100}}\n"))
        .collect();
    let scenario =
        format!("name: big\nfleets:\n  - endpoint: 1\n    load: 100\n    workers:\n{workers}");
    let app = TestApp::spawn(&scenario, "  max_body: 1KiB\n").await;
    app.tick_at(secs(0)).await;
    let rows = poll_rows(&app.sql().await).await;
    assert_eq!(rows[0].outcome, "decode");
    assert!(
        rows[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("exceeds the limit of 1024 bytes"),
        "{:?}",
        rows[0].error
    );
}

#[tokio::test]
async fn a_429_backs_the_target_off_for_two_intervals_then_doubling() {
    let scenario = r#"
name: limited
fleets:
  - endpoint: 1
    load: 10
    workers: [{id: 1, perf: 100}]
    faults: [{at: 0s, for: 10m, kind: rate_limit}]
"#;
    let app = TestApp::spawn(scenario, "").await;
    let polled_at = ticks_that_polled(&app, 120).await;
    // 429 at 0 s: skip two intervals (10, 20); 429 at 30 s: skip 40 s (to 70); at 80 s:
    // skip 80 s more.
    assert_eq!(polled_at, vec![0, 30, 80]);
    assert_eq!(app.simulator.requests_for(TargetKind::Endpoint, 1), 3);
}

#[tokio::test]
async fn a_slow_target_never_overlaps_its_own_ticks() {
    let scenario = r#"
name: slow
fleets:
  - endpoint: 1
    load: 10
    workers: [{id: 1, perf: 100}]
    faults: [{at: 0s, for: 1m, kind: timeout, hold: 30s}]
"#;
    let app = std::sync::Arc::new(TestApp::spawn(scenario, "  timeout: 2s\n").await);
    let first = {
        let app = std::sync::Arc::clone(&app);
        tokio::spawn(async move { app.daemon.tick_once(T0, &app.stop).await })
    };
    // Wait until the first poll is really in flight at the simulator.
    assert!(
        wait_until(secs(5), || async {
            app.simulator.requests_for(TargetKind::Endpoint, 1) == 1
        })
        .await
    );
    let second = app.daemon.tick_once(at(secs(10)), &app.stop).await;
    assert_eq!(second.skipped_in_flight, vec!["t".to_string()]);
    assert!(second.stored.is_empty());
    let first = first.await.expect("first tick");
    assert_eq!(first.stored.len(), 1);
    assert_eq!(first.stored[0].result.outcome(), "timeout");
    assert_eq!(app.simulator.requests_for(TargetKind::Endpoint, 1), 1);
}

/// Served verbatim at 0 s: nulls, wrong types, NaN, unknown fields, an upper-case and an
/// unknown status, and a duplicated id whose last entry must win.
const ODD_BODY: &str = r#"[
 {"id": 1, "status": "RUNNING", "cur_load": 150, "new_load": 50, "cur_load_rolling_avg": 50,
  "cur_perf": 80, "disk_usage": 30, "dlperf": 105.87, "loaded_at": 1724275993.997,
  "measured_perf": 105.87, "perf": 100.57, "reliability": 0.95, "reqs_working": 2},
 {"id": 2, "status": "loading", "perf": null, "reliability": "high", "reqs_working": 1.5,
  "cur_load": NaN, "started_at": 1724275000, "warnings": ["slow disk"]},
 {"id": 3, "status": "Teleporting", "cur_load_rolling_avg": 5},
 {"id": 1, "status": "running", "cur_load": 10, "cur_load_rolling_avg": 20, "perf": 90,
  "reliability": 0.9, "reqs_working": 3},
 {"id": 4, "status": "error"},
 {"id": 5, "status": "exited", "cur_load_rolling_avg": 1}
]"#;

fn odd_scenario(shape_prefix: &str, shape_suffix: &str) -> String {
    let body = format!("{shape_prefix}{ODD_BODY}{shape_suffix}").replace('\n', " ");
    format!(
        "name: odd\nfleets:\n  - endpoint: 1\n    load: 1\n    workers: [{{id: 99, perf: 1}}]\n    \
         faults: [{{at: 0s, for: 1m, kind: raw, status: 200, body: '{body}'}}]\n"
    )
}

pub(crate) async fn stored_samples(pool: &sqlx::SqlitePool) -> Vec<Value> {
    sqlx::query(
        "SELECT worker_id, status, cur_load, new_load, cur_load_rolling_avg, cur_perf, measured_perf,
                perf, reliability, dlperf, reqs_working, disk_usage, loaded_at, extra
         FROM worker_samples ORDER BY worker_id",
    )
    .fetch_all(pool)
    .await
    .expect("query samples")
    .iter()
    .map(|row| {
        let real = |name: &str| row.get::<Option<f64>, _>(name).map_or(Value::Null, |v| json!(v));
        json!({
            "id": row.get::<i64, _>("worker_id"),
            "status": row.get::<Option<String>, _>("status"),
            "cur_load": real("cur_load"), "new_load": real("new_load"),
            "cur_load_rolling_avg": real("cur_load_rolling_avg"), "cur_perf": real("cur_perf"),
            "measured_perf": real("measured_perf"), "perf": real("perf"),
            "reliability": real("reliability"), "dlperf": real("dlperf"),
            "reqs_working": row.get::<Option<i64>, _>("reqs_working"),
            "disk_usage": real("disk_usage"), "loaded_at": real("loaded_at"),
            "extra": row.get::<Option<String>, _>("extra")
                .map(|text| serde_json::from_str::<Value>(&text).expect("extra is JSON")),
        })
    })
    .collect()
}

#[tokio::test]
async fn stored_samples_equal_what_was_served_in_both_response_shapes() {
    for (prefix, suffix) in [("", ""), (r#"{"workers": "#, "}")] {
        let app = TestApp::spawn(&odd_scenario(prefix, suffix), "").await;
        app.tick_at(secs(0)).await;
        let pool = app.sql().await;
        let polls = poll_rows(&pool).await;
        assert_eq!(polls.len(), 1);
        assert_eq!(polls[0].outcome, "ok", "{prefix}: {:?}", polls[0]);
        assert_eq!(polls[0].worker_count, Some(5));
        assert_eq!(
            polls[0].error.as_deref(),
            Some("worker 1 appears more than once; the last entry was kept")
        );
        let samples = stored_samples(&pool).await;
        assert_eq!(
            samples,
            vec![
                json!({"id": 1, "status": "running", "cur_load": 10.0, "new_load": null,
                       "cur_load_rolling_avg": 20.0, "cur_perf": null, "measured_perf": null,
                       "perf": 90.0, "reliability": 0.9, "dlperf": null, "reqs_working": 3,
                       "disk_usage": null, "loaded_at": null, "extra": null}),
                json!({"id": 2, "status": "loading", "cur_load": null, "new_load": null,
                       "cur_load_rolling_avg": null, "cur_perf": null, "measured_perf": null,
                       "perf": null, "reliability": null, "dlperf": null, "reqs_working": null,
                       "disk_usage": null, "loaded_at": null,
                       "extra": {"reliability": "high", "reqs_working": 1.5, "cur_load": "NaN",
                                 "started_at": 1724275000, "warnings": ["slow disk"]}}),
                json!({"id": 3, "status": "teleporting", "cur_load": null, "new_load": null,
                       "cur_load_rolling_avg": 5.0, "cur_perf": null, "measured_perf": null,
                       "perf": null, "reliability": null, "dlperf": null, "reqs_working": null,
                       "disk_usage": null, "loaded_at": null, "extra": null}),
                json!({"id": 4, "status": "error", "cur_load": null, "new_load": null,
                       "cur_load_rolling_avg": null, "cur_perf": null, "measured_perf": null,
                       "perf": null, "reliability": null, "dlperf": null, "reqs_working": null,
                       "disk_usage": null, "loaded_at": null, "extra": null}),
                json!({"id": 5, "status": "exited", "cur_load": null, "new_load": null,
                       "cur_load_rolling_avg": 1.0, "cur_perf": null, "measured_perf": null,
                       "perf": null, "reliability": null, "dlperf": null, "reqs_working": null,
                       "disk_usage": null, "loaded_at": null, "extra": null}),
            ]
        );
    }
}

#[tokio::test]
async fn the_reference_example_round_trips_every_field() {
    let body = r#"[{"cur_load": 150, "new_load": 50, "cur_load_rolling_avg": 50, "cur_perf": 80, "disk_usage": 30, "dlperf": 105.87, "id": 123456, "loaded_at": 1724275993.997, "measured_perf": 105.87, "perf": 100.57, "reliability": 0.95, "reqs_working": 2, "status": "running"}]"#;
    let scenario = format!(
        "name: ref\nfleets:\n  - endpoint: 1\n    load: 1\n    workers: [{{id: 9, perf: 1}}]\n    \
         faults: [{{at: 0s, for: 1m, kind: raw, status: 200, body: '{body}'}}]\n"
    );
    let app = TestApp::spawn(&scenario, "").await;
    app.tick_at(secs(0)).await;
    let samples = stored_samples(&app.sql().await).await;
    assert_eq!(
        samples,
        vec![
            json!({"id": 123456, "status": "running", "cur_load": 150.0, "new_load": 50.0,
                    "cur_load_rolling_avg": 50.0, "cur_perf": 80.0, "measured_perf": 105.87,
                    "perf": 100.57, "reliability": 0.95, "dlperf": 105.87, "reqs_working": 2,
                    "disk_usage": 30.0, "loaded_at": 1724275993.997, "extra": null})
        ]
    );
}

#[tokio::test]
async fn fleet_samples_sums_follow_the_state_classes() {
    let app = TestApp::spawn(&odd_scenario("", ""), "").await;
    app.tick_at(secs(0)).await;
    let pool = app.sql().await;
    let row = sqlx::query(
        "SELECT target, polled_at, workers, ready, starting, inactive, failed, load, load_rolling,
                perf, reqs_working, utilization FROM fleet_samples",
    )
    .fetch_one(&pool)
    .await
    .expect("one fleet row");
    assert_eq!(row.get::<String, _>("target"), "t");
    assert_eq!(row.get::<f64, _>("polled_at"), T0.unix_secs_f64());
    assert_eq!(row.get::<i64, _>("workers"), 5);
    assert_eq!(row.get::<i64, _>("ready"), 1); // worker 1 (running)
    assert_eq!(row.get::<i64, _>("starting"), 1); // worker 2 (loading)
    assert_eq!(row.get::<i64, _>("inactive"), 1); // worker 5 (exited)
    assert_eq!(row.get::<i64, _>("failed"), 1); // worker 4 (error); 3 is unknown
    assert_eq!(row.get::<Option<f64>, _>("load"), Some(10.0));
    assert_eq!(row.get::<Option<f64>, _>("load_rolling"), Some(26.0)); // 20 + 5 + 1
    assert_eq!(row.get::<Option<f64>, _>("perf"), Some(90.0)); // ready workers only
    assert_eq!(row.get::<Option<f64>, _>("reqs_working"), Some(3.0));
    let utilization: f64 = row.get("utilization");
    assert!((utilization - 26.0 / 90.0).abs() < 1e-12);
}

#[tokio::test]
async fn both_target_kinds_poll_their_own_path() {
    let scenario = r#"
name: two
fleets:
  - endpoint: 7
    load: 50
    workers: [{id: 1, perf: 100}, {id: 2, perf: 100}]
  - worker_group: 8
    response: wrapped
    load: 30
    workers: [{id: 3, perf: 100, status: {0s: loading, 1m: running}}]
"#;
    let targets = "  - name: ep\n    endpoint: 7\n  - name: wg\n    worker_group: 8\n";
    let app = TestApp::spawn_with_targets(scenario, "", targets).await;
    app.tick_at(secs(0)).await;
    app.tick_at(secs(60)).await;
    assert_eq!(app.simulator.requests_for(TargetKind::Endpoint, 7), 2);
    assert_eq!(app.simulator.requests_for(TargetKind::WorkerGroup, 8), 2);
    let rows =
        sqlx::query("SELECT target, ready, starting FROM fleet_samples ORDER BY polled_at, target")
            .fetch_all(&app.sql().await)
            .await
            .expect("fleet rows");
    let seen: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|row| (row.get("target"), row.get("ready"), row.get("starting")))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("ep".to_string(), 2, 0),
            ("wg".to_string(), 0, 1),
            ("ep".to_string(), 2, 0),
            ("wg".to_string(), 1, 0),
        ]
    );
}

#[tokio::test]
async fn retention_deletes_samples_older_than_retention_samples_and_keeps_newer_ones() {
    let scenario = "name: r\nfleets:\n  - endpoint: 1\n    load: 10\n    workers: [{id: 1, perf: 100}, {id: 2, perf: 100}]\n";
    let dir = tempfile::TempDir::new().expect("temp dir");
    let clock = Clock::manual(T0);
    let simulator = start_simulator(scenario, &clock, TEST_KEY).await;
    let config_path = write_config(
        dir.path(),
        &simulator.base_url(),
        "",
        "  - name: t\n    endpoint: 1\n",
        "retention:\n  samples: 1h\n",
    );
    let config = Config::load(&config_path, &test_env()).expect("config");
    let daemon = Daemon::start(config, vastwatch::rules::RuleSet::empty(), clock.clone())
        .await
        .expect("daemon");
    let (_sender, stop) = tokio::sync::watch::channel(false);
    // Two hours of polls, one every 10 minutes.
    for tick in 0..=12 {
        clock.set(at(secs(tick * 600)));
        daemon.tick_once(clock.now(), &stop).await;
    }
    let deleted = daemon.retention_once().await.expect("retention");
    // Polls at 0..=50 minutes are older than the hour before 2h.
    assert_eq!(deleted.polls, 6);
    assert_eq!(deleted.samples, 12);
    let pool = open_database(&dir.path().join("vastwatch.db")).await;
    let oldest: f64 = sqlx::query_scalar("SELECT min(polled_at) FROM worker_samples")
        .fetch_one(&pool)
        .await
        .expect("oldest sample");
    assert_eq!(oldest, at(secs(3600)).unix_secs_f64());
    let remaining: i64 = sqlx::query_scalar("SELECT count(*) FROM polls")
        .fetch_one(&pool)
        .await
        .expect("polls");
    assert_eq!(remaining, 7);
    simulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn api_concurrency_bounds_the_polls_in_flight() {
    let scenario = r#"
name: hung
fleets:
  - endpoint: 1
    load: 10
    workers: [{id: 1, perf: 100}]
    faults: [{at: 0s, for: 1m, kind: timeout, hold: 30s}]
  - endpoint: 2
    load: 10
    workers: [{id: 2, perf: 100}]
    faults: [{at: 0s, for: 1m, kind: timeout, hold: 30s}]
"#;
    let targets = "  - name: a\n    endpoint: 1\n  - name: b\n    endpoint: 2\n";
    let app = std::sync::Arc::new(
        TestApp::spawn_with_targets(scenario, "  timeout: 1s\n  concurrency: 1\n", targets).await,
    );
    let tick = {
        let app = std::sync::Arc::clone(&app);
        tokio::spawn(async move { app.daemon.tick_once(T0, &app.stop).await })
    };
    let in_flight = || {
        app.simulator.requests_for(TargetKind::Endpoint, 1)
            + app.simulator.requests_for(TargetKind::Endpoint, 2)
    };
    assert!(wait_until(secs(5), || async { in_flight() == 1 }).await);
    // The first poll holds the only permit until it times out after 1 s; the second
    // request may reach the simulator only after that.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        in_flight(),
        1,
        "a second poll started while the first held the permit"
    );
    let report = tick.await.expect("tick");
    assert_eq!(in_flight(), 2);
    let outcomes: Vec<&str> = report.stored.iter().map(|r| r.result.outcome()).collect();
    assert_eq!(outcomes, vec!["timeout", "timeout"]);
}
