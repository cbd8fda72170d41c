//! The real binary on real time with second-scale settings: `vastwatch run` is killed
//! while a notification is in flight, restarted, and the notification is delivered once,
//! under its id.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::Row;
use vastwatch::clock::Clock;
use vastwatch::sim::Scenario;

use crate::helpers::*;
use crate::receiver::{Answer, Receiver};

const SCENARIO: &str = r#"
name: one-bad-worker
fleets:
  - endpoint: 1
    load: 100
    workers:
      - {id: 101, perf: 200, reliability: 0.5}
      - {id: 102, perf: 200, reliability: 0.99}
"#;

const RULES: &str = r#"
rules:
  - alert: Unreliable
    scope: worker
    expr: reliability < 0.9
    severity: warning
"#;

fn start_daemon(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vastwatch"))
        .args(["run", "--config", config.to_str().expect("utf-8")])
        .env_remove("RUST_LOG")
        .env("TEST_VAST_KEY", TEST_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("vastwatch run starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_notification_in_flight_when_the_daemon_is_killed_is_delivered_once_after_restart() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let clock = Clock::real();
    let simulator = start_simulator_now(
        Scenario::from_yaml(SCENARIO, "test").expect("scenario"),
        clock,
    )
    .await;
    let receiver = Receiver::start().await;
    // The first attempt hangs: the daemon dies with it in flight.
    receiver.answer(Answer::Hang);
    let config_path = write_config_with_rules(
        dir.path(),
        &simulator.base_url(),
        RULES,
        &format!(
            "notify:\n  group_wait: 1s\n  group_interval: 2s\n  receivers:\n    \
             - name: ops\n      webhook: {{url: \"{}\", timeout: 60s}}\n",
            receiver.url()
        ),
    );
    let yaml = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(&config_path, yaml.replace("schedule: 10s", "schedule: 1s")).unwrap();

    let mut first = start_daemon(&config_path);
    let in_flight = wait_until(Duration::from_secs(60), || async {
        !receiver.received().is_empty()
    })
    .await;
    assert!(in_flight, "the notification reached the receiver");
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let id = receiver.received()[0]
        .header("webhook-id")
        .expect("webhook-id");

    receiver.answer(Answer::Status(200));
    let mut second = start_daemon(&config_path);
    let delivered = wait_until(Duration::from_secs(60), || async {
        !receiver.accepted().is_empty()
    })
    .await;
    assert!(delivered, "delivered after the restart");
    // Give a duplicate every chance to show up: several group intervals.
    tokio::time::sleep(Duration::from_secs(6)).await;
    second.kill().expect("SIGKILL");
    second.wait().expect("reaped");

    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1, "delivered once");
    assert_eq!(
        accepted[0].header("webhook-id"),
        Some(id.clone()),
        "under the same id"
    );
    let pool = open_database(&dir.path().join("vastwatch.db")).await;
    let rows = sqlx::query("SELECT id, status, attempts FROM notifications")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one outbox row");
    assert_eq!(rows[0].get::<String, _>("id"), id);
    assert_eq!(rows[0].get::<String, _>("status"), "delivered");
    simulator.shutdown().await.expect("shutdown");
}
