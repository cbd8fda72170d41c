//! The advisor through the daemon against the built-in scenarios: a surge yields a stored
//! `scale_up` that alerts carry, and a flaky worker is named for replacement.

use std::path::Path;

use serde_json::Value;
use sqlx::Row;
use vastwatch::clock::Clock;
use vastwatch::config::Config;
use vastwatch::daemon::{Daemon, load_rules};
use vastwatch::sim::Scenario;

use crate::helpers::*;

/// Runs the shipped rules over a built-in scenario for `minutes`, one poll every 10 s.
async fn run_scenario(dir: &Path, scenario: &str, targets: &str, minutes: u64) {
    let clock = Clock::manual(T0);
    let yaml = Scenario::builtin_yaml(scenario).expect("built-in scenario");
    let simulator = start_simulator(yaml, &clock, TEST_KEY).await;
    let rules = format!("rules: [{}/rules/vast.yaml]\n", env!("CARGO_MANIFEST_DIR"));
    let path = write_config(dir, &simulator.base_url(), "", targets, &rules);
    let config = Config::load(&path, &test_env()).expect("config");
    let rules = load_rules(&config).expect("rules");
    let daemon = Daemon::start(config, rules, clock.clone())
        .await
        .expect("daemon");
    let (_sender, stop) = tokio::sync::watch::channel(false);
    for tick in 0..=minutes * 6 {
        clock.set(at(secs(tick * 10)));
        daemon.tick_once(clock.now(), &stop).await;
    }
    daemon.store().clone().close().await.expect("close");
    simulator.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_surge_yields_a_stored_scale_up_that_the_alert_carries() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    run_scenario(
        dir.path(),
        "surge",
        "  - name: surge\n    endpoint: 201\n",
        20,
    )
    .await;
    let pool = open_database(&dir.path().join("vastwatch.db")).await;

    let rows = sqlx::query(
        "SELECT action, current_workers, desired_workers, detail FROM recommendations \
         WHERE target = 'surge' ORDER BY at",
    )
    .fetch_all(&pool)
    .await
    .expect("recommendations");
    let first_scale_up = rows
        .iter()
        .find(|row| row.get::<String, _>("action") == "scale_up")
        .expect("a scale_up row");
    assert!(
        first_scale_up.get::<i64, _>("desired_workers")
            > first_scale_up.get::<i64, _>("current_workers")
    );
    let detail: Value = serde_json::from_str(first_scale_up.get("detail")).expect("detail json");
    let keys: Vec<&String> = detail.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        vec![
            "action",
            "current_workers",
            "ready_workers",
            "starting_workers",
            "desired_workers",
            "delta",
            "reason",
            "replace",
            "commands",
            "evidence"
        ]
    );
    assert!(
        detail["commands"][0].as_str().is_some_and(
            |command| command.starts_with("vastai update endpoint 201 --cold_workers ")
        ),
        "{detail}"
    );
    // Consecutive rows differ: a row is written only when the advice changes.
    for pair in rows.windows(2) {
        let (a, b): (Value, Value) = (
            serde_json::from_str(pair[0].get("detail")).expect("json"),
            serde_json::from_str(pair[1].get("detail")).expect("json"),
        );
        assert!(
            a["action"] != b["action"]
                || a["desired_workers"] != b["desired_workers"]
                || a["replace"] != b["replace"]
                || a["commands"] != b["commands"],
            "an unchanged recommendation was stored twice"
        );
    }

    let alert = sqlx::query(
        "SELECT annotations, recommendation FROM alerts \
         WHERE alertname = 'FleetOverTargetUtilization' AND target = 'surge'",
    )
    .fetch_one(&pool)
    .await
    .expect("the scale-up alert fired");
    let recommendation: Value =
        serde_json::from_str(alert.get("recommendation")).expect("stored recommendation");
    assert_eq!(recommendation["action"], "scale_up");
    let annotations: Value = serde_json::from_str(alert.get("annotations")).expect("json");
    let summary = annotations["summary"].as_str().expect("summary");
    assert!(summary.contains("scale to"), "{summary}");
    let description = annotations["description"].as_str().expect("description");
    assert!(
        description.contains("Run: `vastai update endpoint 201 --cold_workers"),
        "{description}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flaky_worker_is_recommended_for_replacement_by_id() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    run_scenario(
        dir.path(),
        "flaky-worker",
        "  - name: flaky\n    endpoint: 301\n",
        20,
    )
    .await;
    let pool = open_database(&dir.path().join("vastwatch.db")).await;
    let rows = sqlx::query("SELECT detail FROM recommendations WHERE target = 'flaky' ORDER BY at")
        .fetch_all(&pool)
        .await
        .expect("recommendations");
    let replacing: Vec<Value> = rows
        .iter()
        .map(|row| serde_json::from_str::<Value>(row.get("detail")).expect("json"))
        .filter(|detail| detail["action"] == "replace")
        .collect();
    let first = replacing.first().expect("a replace recommendation");
    assert_eq!(first["replace"], serde_json::json!(["3010003"]));
    assert!(
        first["commands"]
            .as_array()
            .expect("commands")
            .contains(&serde_json::json!("vastai destroy instance 3010003")),
        "{first}"
    );
}
