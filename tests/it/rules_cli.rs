//! The rule commands as a user runs them: `test`, `check --strict`, `alerts`, `replay`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use vastwatch::clock::Clock;
use vastwatch::config::Config;
use vastwatch::daemon::{Daemon, load_rules};

use crate::helpers::*;

fn vastwatch(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_vastwatch"))
        .args(args)
        .env_remove("RUST_LOG")
        .env("TEST_VAST_KEY", TEST_KEY)
        .output()
        .expect("vastwatch runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn shipped(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_shipped_rule_tests_pass() {
    let (code, stdout, stderr) = vastwatch(&["test", &shipped("rules/tests/vast_test.yaml")]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.trim_end().ends_with("16 passed, 0 failed"),
        "{stdout}"
    );
}

#[test]
fn a_failing_rule_test_exits_1_and_shows_expected_against_actual() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let file = dir.path().join("wrong_test.yaml");
    std::fs::write(
        &file,
        format!(
            "rule_files: [{}]\ntests:\n  - name: expects the wrong worker\n    target: {{name: p, endpoint: 1}}\n    \
             interval: 1m\n    workers:\n      - {{id: 1, status: error x5}}\n    expect:\n      - at: 4m\n        \
             firing: [{{alertname: WorkerFailed, worker_id: \"2\"}}]\n",
            shipped("rules/vast.yaml")
        ),
    )
    .expect("write");
    let (code, stdout, _) = vastwatch(&["test", file.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("  FAIL expects the wrong worker"),
        "{stdout}"
    );
    assert!(stdout.contains("at 4m: firing alerts differ"), "{stdout}");
    assert!(
        stdout.contains("missing:  {alertname=\"WorkerFailed\", worker_id=\"2\"}"),
        "{stdout}"
    );
    assert!(stdout.contains("extra:    {alertname=\"WorkerFailed\", severity=\"warning\", target=\"p\", worker_id=\"1\"}"), "{stdout}");
    assert!(
        stdout.trim_end().ends_with("0 passed, 1 failed"),
        "{stdout}"
    );
}

#[test]
fn bad_rule_test_input_exits_2_with_file_line_and_column() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let file = dir.path().join("bad_test.yaml");
    std::fs::write(
        &file,
        "rule_files: []\ntests:\n  - name: x\n    target: {name: p, endpoint: 1}\n    workers:\n      - {id: 1, relability: 0.5}\n    expect: []\n",
    )
    .expect("write");
    let (code, _, stderr) = vastwatch(&["test", file.to_str().expect("utf-8")]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr.trim(),
        format!(
            "error: {}:6:17: unknown key `relability`: not a worker field; did you mean `reliability`?",
            file.display()
        )
    );
}

#[test]
fn check_lists_rules_and_strict_fails_on_warnings() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    std::fs::write(
        dir.path().join("extra.yaml"),
        "rules:\n  - alert: UsesUnsetVar\n    scope: fleet\n    expr: ready < min_ready\n    targets: [t]\n",
    )
    .expect("write");
    let extra = format!("rules: [{}, extra.yaml]\n", shipped("rules/vast.yaml"));
    let targets =
        "  - name: t\n    endpoint: 1\n    vars: {min_ready: 2}\n  - name: u\n    endpoint: 2\n";
    let config = write_config(dir.path(), "http://127.0.0.1:9", "", targets, &extra);
    let config = config.to_str().expect("utf-8");
    let (code, stdout, stderr) = vastwatch(&["check", "--config", config]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("rules:     10 in 2 files"), "{stdout}");
    assert!(
        stdout.contains("(9 rules)") && stdout.contains("extra.yaml (1 rules)"),
        "{stdout}"
    );

    // Target `u` does not define `min_ready`, but the rule is limited to `t`: no warning.
    assert!(!stdout.contains("warning:"), "{stdout}");
    std::fs::write(
        dir.path().join("extra.yaml"),
        "rules:\n  - alert: UsesUnsetVar\n    scope: fleet\n    expr: ready < min_ready\n",
    )
    .expect("write");
    let (code, stdout, _) = vastwatch(&["check", "--config", config, "--strict"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("rule `UsesUnsetVar` uses var `min_ready`, which target `u` lacks"),
        "{stdout}"
    );
}

/// A run with alerts to look at: the shipped rules over the alerting scenario.
async fn database_with_alerts(dir: &Path) -> Vec<(String, Option<i64>, String, String)> {
    let clock = Clock::manual(T0);
    let scenario = "name: s\nfleets:\n  - endpoint: 1\n    load: 100\n    workers:\n      - {id: 101, perf: 100, reliability: {0s: 0.99, 2m: 0.99, 3m: 0.7}}\n      - {id: 102, perf: 100, reliability: 0.99}\n";
    let simulator = start_simulator(scenario, &clock, TEST_KEY).await;
    let path = write_config(
        dir,
        &simulator.base_url(),
        "",
        "  - name: t\n    endpoint: 1\n",
        &format!("rules: [{}]\n", shipped("rules/vast.yaml")),
    );
    let config = Config::load(&path, &test_env()).expect("config");
    let rules = load_rules(&config).expect("rules");
    let daemon = Daemon::start(config, rules, clock.clone())
        .await
        .expect("daemon");
    let (_sender, stop) = tokio::sync::watch::channel(false);
    for tick in 0..=90 {
        clock.set(at(secs(tick * 10)));
        daemon.tick_once(clock.now(), &stop).await;
    }
    let events = daemon
        .store()
        .alert_events(None, None)
        .await
        .expect("events");
    daemon.store().clone().close().await.expect("close");
    simulator.shutdown().await.expect("shutdown");
    events
        .into_iter()
        .map(|e| {
            (
                e.alertname,
                e.worker_id,
                e.from_state.to_string(),
                e.to_state.to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_lists_instances_and_replay_reproduces_the_stored_timeline_without_writing() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let stored = database_with_alerts(dir.path()).await;
    assert!(
        stored.contains(&(
            "WorkerLowReliability".into(),
            Some(101),
            "pending".into(),
            "firing".into()
        )),
        "{stored:?}"
    );
    let config = dir.path().join("vastwatch.yaml");
    let config = config.to_str().expect("utf-8");

    let (code, stdout, stderr) = vastwatch(&[
        "alerts", "--config", config, "--state", "firing", "--format", "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let alerts: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(alerts.as_array().map(Vec::len), Some(1), "{stdout}");
    assert_eq!(alerts[0]["alertname"], "WorkerLowReliability");
    assert_eq!(alerts[0]["worker_id"], "101");
    assert_eq!(alerts[0]["labels"]["target"], "t");
    assert_eq!(alerts[0]["fingerprint"].as_str().map(str::len), Some(16));
    assert!(
        alerts[0]["annotations"]["summary"]
            .as_str()
            .unwrap_or("")
            .contains("Worker 101 on t")
    );

    let (code, stdout, _) = vastwatch(&["alerts", "--config", config, "--state", "pending"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim_end().lines().last(), Some("(no rows)"));

    // The stored polls are from the test epoch, long before now: the advice from them is
    // to investigate, never a scale change on stale data.
    let (code, stdout, stderr) = vastwatch(&["advise", "--config", config, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let advice: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(advice[0]["target"], "t");
    assert_eq!(
        advice[0]["recommendation"]["action"], "investigate",
        "{stdout}"
    );
    assert_eq!(advice[0]["recommendation"]["delta"], 0);
    let (code, stdout, _) = vastwatch(&["advise", "--config", config]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("target  action"), "{stdout}");
    assert!(stdout.contains("t       investigate"), "{stdout}");

    let database = dir.path().join("vastwatch.db");
    let before = std::fs::read(&database).expect("db bytes");
    let (code, stdout, stderr) = vastwatch(&["replay", "--config", config, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let replayed: Value = serde_json::from_str(&stdout).expect("json");
    let rows = replayed.as_array().expect("array");
    assert!(
        rows.iter()
            .any(|row| row["event"] == "recommendation" && row["target"] == "t"),
        "replay prints recommendation changes too: {stdout}"
    );
    let replayed: Vec<(String, Option<i64>, String, String)> = rows
        .iter()
        .filter(|row| row["event"] == "alert")
        .map(|row| {
            (
                row["alertname"].as_str().unwrap_or("").to_string(),
                row["worker_id"].as_str().and_then(|id| id.parse().ok()),
                row["from"].as_str().unwrap_or("").to_string(),
                row["to"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(replayed, stored, "replay must reproduce the live timeline");
    assert_eq!(
        std::fs::read(&database).expect("db bytes"),
        before,
        "replay wrote to the database"
    );
    assert!(
        !dir.path().join("vastwatch.db-wal").exists()
            || std::fs::metadata(dir.path().join("vastwatch.db-wal"))
                .map(|m| m.len())
                .unwrap_or(0)
                == 0
    );
}
