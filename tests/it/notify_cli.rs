//! `vastwatch silence`, `notifications` and `notify test` as a user runs them.

use std::process::{Command, Output};

use serde_json::Value;

use crate::helpers::*;
use crate::receiver::{Answer, Receiver};

fn vastwatch(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_vastwatch"))
        .args(args)
        .args(["--config", config.to_str().expect("utf-8")])
        .env_remove("RUST_LOG")
        .env("TEST_VAST_KEY", TEST_KEY)
        .env("HOOK_SECRET", "whsec_dGVzdC1zZWNyZXQ=")
        .output()
        .expect("vastwatch runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn config_with(dir: &std::path::Path, receivers: &str) -> std::path::PathBuf {
    write_config(
        dir,
        "http://127.0.0.1:9",
        "",
        "  - name: t\n    endpoint: 1\n",
        &format!("notify:\n  receivers:\n{receivers}"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn silences_are_added_listed_and_expired() {
    let dir = tempfile::TempDir::new().unwrap();
    let config = config_with(dir.path(), "    - name: ops\n      console: {}\n");
    let (code, stdout, stderr) = vastwatch(
        &config,
        &[
            "silence",
            "add",
            "--match",
            "alertname=WorkerLowReliability",
            "--match",
            "target=~prod.*",
            "--for",
            "2h",
            "--comment",
            "known bad host",
            "--author",
            "ana",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let id = stdout.trim().to_string();
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "prints a UUID: {stdout}"
    );

    let (code, stdout, _) = vastwatch(&config, &["silence", "list", "--format", "json"]);
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["state"], "active");
    assert_eq!(listed[0]["created_by"], "ana");
    assert_eq!(listed[0]["comment"], "known bad host");
    assert_eq!(listed[0]["matchers"][1]["op"], "=~");

    let (code, _, _) = vastwatch(&config, &["silence", "expire", &id]);
    assert_eq!(code, 0);
    let (_, stdout, _) = vastwatch(&config, &["silence", "list"]);
    assert!(
        !stdout.contains(&id),
        "an expired silence is not listed: {stdout}"
    );
    let (_, stdout, _) = vastwatch(&config, &["silence", "list", "--all"]);
    assert!(
        stdout.contains(&id) && stdout.contains("expired"),
        "{stdout}"
    );
    // Expiring it again, or a made-up id, is bad input.
    assert_eq!(vastwatch(&config, &["silence", "expire", &id]).0, 2);
    // A malformed matcher names itself.
    let (code, _, stderr) = vastwatch(
        &config,
        &["silence", "add", "--match", "team", "--for", "1h"],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--match") && stderr.contains("team"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_test_reports_the_receivers_answer_and_lists_the_result() {
    let good = Receiver::start().await;
    let gone = Receiver::start().await;
    gone.answer(Answer::Status(410));
    let dir = tempfile::TempDir::new().unwrap();
    let config = config_with(
        dir.path(),
        &format!(
            "    - name: good\n      webhook: {{url: \"{}\", secret_env: HOOK_SECRET}}\n    - name: gone\n      webhook: {{url: \"{}\"}}\n",
            good.url(),
            gone.url()
        ),
    );
    let (code, stdout, stderr) = vastwatch(&config, &["notify", "test", "good"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("delivered") && stdout.contains("200"),
        "{stdout}"
    );
    let request = &good.accepted()[0];
    assert_eq!(
        request.json()["alerts"][0]["labels"]["alertname"],
        "VastwatchTest"
    );
    assert!(
        request
            .header("webhook-signature")
            .unwrap()
            .starts_with("v1,")
    );
    assert!(!stdout.contains("whsec_") && !stderr.contains("whsec_"));

    let (code, stdout, _) = vastwatch(&config, &["notify", "test", "gone"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("410"), "{stdout}");
    let (code, _, stderr) = vastwatch(&config, &["notify", "test", "nobody"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("good, gone"), "{stderr}");

    let (code, stdout, _) = vastwatch(
        &config,
        &["notifications", "--status", "failed", "--format", "json"],
    );
    assert_eq!(code, 0);
    let failed: Value = serde_json::from_str(&stdout).unwrap();
    let failed = failed.as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["receiver"], "gone");
    assert!(failed[0]["last_error"].as_str().unwrap().contains("410"));
    let (_, stdout, _) = vastwatch(&config, &["notifications"]);
    assert!(
        stdout.contains("delivered") && stdout.contains("failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[FIRING:1] VastwatchTest vastwatch"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_strict_warns_about_a_receiver_no_route_uses() {
    let dir = tempfile::TempDir::new().unwrap();
    let config = config_with(
        dir.path(),
        "    - name: ops\n      console: {}\n    - name: spare\n      console: {}\n  routes:\n    - receivers: [ops]\n",
    );
    let (code, stdout, _) = vastwatch(&config, &["check", "--strict"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("receiver `spare` is used by no route"),
        "{stdout}"
    );
    assert!(stdout.contains("receivers: 2"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn poll_once_queues_and_attempts_notifications_before_it_exits() {
    let clock = vastwatch::clock::Clock::real();
    let scenario = "name: s\nfleets:\n  - endpoint: 1\n    load: 10\n    workers: [{id: 1, perf: 100, reliability: 0.5}]\n";
    let simulator = start_simulator(scenario, &clock, TEST_KEY).await;
    let hook = Receiver::start().await;
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("rules.yaml"),
        "rules:\n  - alert: Unreliable\n    scope: worker\n    expr: reliability < 0.9\n",
    )
    .unwrap();
    let config = write_config(
        dir.path(),
        &simulator.base_url(),
        "",
        "  - name: t\n    endpoint: 1\n",
        &format!(
            "rules: [rules.yaml]\nnotify:\n  receivers:\n    - name: ops\n      webhook: {{url: \"{}\"}}\n",
            hook.url()
        ),
    );
    let (code, stdout, stderr) = vastwatch(&config, &["poll-once"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("notifications: 1 queued, 1 delivered, 0 to retry, 0 failed"),
        "{stdout}"
    );
    let accepted = hook.accepted();
    assert_eq!(accepted.len(), 1, "group_wait does not hold poll-once back");
    assert_eq!(accepted[0].json()["alerts"][0]["labels"]["worker_id"], "1");
    simulator.shutdown().await.expect("shutdown");
}
