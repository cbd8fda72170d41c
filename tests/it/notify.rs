//! Notifications end to end on a manual clock: the daemon polls the simulator, rules fire,
//! and grouped messages reach a real HTTP receiver on loopback, through the outbox.

use std::path::Path;

use serde_json::Value;
use sqlx::Row;
use tokio::sync::watch;
use vastwatch::clock::Clock;
use vastwatch::config::Config;
use vastwatch::daemon::{Daemon, load_rules};
use vastwatch::notify::Silence;
use vastwatch::notify::matcher::Matcher;
use vastwatch::sim::RunningSimulator;
use vastwatch::store::{AttemptRecord, NotificationFilter, NotificationStatus};

use crate::helpers::*;
use crate::receiver::{Answer, Receiver};

/// Workers 101, 102 and 103 turn unreliable 10 s apart from 1m10s; 101 recovers at 3m10s.
/// Load jumps past 300 from 2m10s to 4m10s.
const SCENARIO: &str = r#"
name: notify
fleets:
  - endpoint: 1
    load: {0s: 100, 2m: 100, 2m10s: 500, 4m: 500, 4m10s: 100}
    workers:
      - {id: 101, perf: 200, reliability: {0s: 0.99, 1m: 0.99, 1m10s: 0.5, 3m: 0.5, 3m10s: 0.99}}
      - {id: 102, perf: 200, reliability: {0s: 0.99, 1m10s: 0.99, 1m20s: 0.5}}
      - {id: 103, perf: 200, reliability: {0s: 0.99, 1m20s: 0.99, 1m30s: 0.5}}
"#;

const RULES: &str = r#"
rules:
  - alert: Unreliable
    scope: worker
    expr: reliability < 0.9
    severity: warning
    annotations:
      summary: "Worker {{ worker_id }} reliability {{ reliability }}"
  - alert: Overloaded
    scope: fleet
    expr: load > 300
    severity: critical
    annotations:
      summary: "Load {{ load }}"
"#;

pub(crate) struct App {
    dir: tempfile::TempDir,
    clock: Clock,
    simulator: RunningSimulator,
    daemon: Daemon,
    stop: watch::Receiver<bool>,
    _stop_sender: watch::Sender<bool>,
}

fn write_files(dir: &Path, base_url: &str, notify: &str) -> std::path::PathBuf {
    write_config_with_rules(dir, base_url, RULES, &format!("notify:\n{notify}"))
}

async fn daemon_for(path: &Path, clock: &Clock) -> Daemon {
    let config = Config::load(path, &test_env()).expect("valid config");
    let rules = load_rules(&config).expect("rules load");
    Daemon::start(config, rules, clock.clone())
        .await
        .expect("daemon starts")
}

impl App {
    pub(crate) async fn spawn(notify: &str) -> App {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let clock = Clock::manual(T0);
        let simulator = start_simulator(SCENARIO, &clock, TEST_KEY).await;
        let path = write_files(dir.path(), &simulator.base_url(), notify);
        let daemon = daemon_for(&path, &clock).await;
        let (stop_sender, stop) = watch::channel(false);
        App {
            dir,
            clock,
            simulator,
            daemon,
            stop,
            _stop_sender: stop_sender,
        }
    }

    /// Ticks every 10 s from `from` to `to` seconds, each followed by a notifier and
    /// delivery pass; returns every attempt recorded.
    pub(crate) async fn run(&self, from: u64, to: u64) -> Vec<AttemptRecord> {
        let mut attempts = Vec::new();
        for second in (from..=to).step_by(10) {
            self.clock.set(at(secs(second)));
            self.daemon.tick_once(at(secs(second)), &self.stop).await;
            let (_, recorded) = self.daemon.notify_pass(false).await.expect("notify pass");
            attempts.extend(recorded);
        }
        attempts
    }

    async fn sql(&self) -> sqlx::SqlitePool {
        open_database(&self.dir.path().join("vastwatch.db")).await
    }

    pub(crate) async fn notifications(&self) -> Vec<vastwatch::store::NotificationRow> {
        let mut rows = self
            .daemon
            .store()
            .notifications(&NotificationFilter::default())
            .await
            .expect("notifications");
        rows.reverse();
        rows
    }
}

pub(crate) fn webhook(name: &str, url: &str) -> String {
    format!("    - name: {name}\n      webhook: {{url: \"{url}\"}}\n")
}

/// `(reason, status, alertname, [worker_id:status])` of a payload.
fn summary(payload: &Value) -> (String, String, String, Vec<String>) {
    let alerts = payload["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|alert| {
            format!(
                "{}:{}",
                alert["labels"]["worker_id"].as_str().unwrap_or("-"),
                alert["status"].as_str().unwrap()
            )
        })
        .collect();
    (
        payload["vastwatch"]["reason"].as_str().unwrap().to_string(),
        payload["status"].as_str().unwrap().to_string(),
        payload["groupLabels"]["alertname"]
            .as_str()
            .unwrap()
            .to_string(),
        alerts,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn grouped_and_routed_notifications_reach_real_webhooks() {
    let ops = Receiver::start().await;
    let pager = Receiver::start().await;
    let notify = format!(
        "  group_wait: 30s\n  group_interval: 1m\n  repeat_interval: 4h\n  receivers:\n{}{}  routes:\n    - match: {{severity: critical}}\n      receivers: [pager]\n      continue: true\n    - receivers: [ops]\n",
        webhook("ops", &ops.url()),
        webhook("pager", &pager.url())
    );
    let app = App::spawn(&notify).await;
    app.run(0, 330).await;

    let ops_sent: Vec<_> = ops.accepted().iter().map(|r| summary(&r.json())).collect();
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        ops_sent,
        vec![
            // Three workers turned unreliable within group_wait: one notification.
            (
                "first notification".into(),
                "firing".into(),
                "Unreliable".into(),
                s(&["101:firing", "102:firing", "103:firing"])
            ),
            (
                "first notification".into(),
                "firing".into(),
                "Overloaded".into(),
                s(&["-:firing"])
            ),
            (
                "resolved".into(),
                "firing".into(),
                "Unreliable".into(),
                s(&["102:firing", "103:firing", "101:resolved"])
            ),
            (
                "resolved".into(),
                "resolved".into(),
                "Overloaded".into(),
                s(&["-:resolved"])
            ),
        ],
    );
    // The critical route continued: the pager heard only the critical alert.
    let pager_sent: Vec<_> = pager
        .accepted()
        .iter()
        .map(|r| summary(&r.json()))
        .collect();
    assert_eq!(
        pager_sent,
        vec![
            (
                "first notification".into(),
                "firing".into(),
                "Overloaded".into(),
                s(&["-:firing"])
            ),
            (
                "resolved".into(),
                "resolved".into(),
                "Overloaded".into(),
                s(&["-:resolved"])
            ),
        ]
    );
    // Every request names its outbox row; every row is delivered once.
    let rows = app.notifications().await;
    assert_eq!(rows.len(), 6);
    for request in ops.accepted().iter().chain(pager.accepted().iter()) {
        let id = request.header("webhook-id").expect("webhook-id");
        let row = rows
            .iter()
            .find(|row| row.id == id)
            .expect("a row per request");
        assert_eq!(row.status, NotificationStatus::Delivered);
        assert_eq!(row.attempts, 1);
        assert_eq!(
            serde_json::from_str::<Value>(&row.payload).unwrap(),
            request.json()
        );
        assert!(request.header("webhook-timestamp").is_some());
        assert_eq!(request.path, "/hook");
    }
    // The payload carries the target's recommendation.
    let first = ops.accepted()[0].json();
    assert_eq!(first["version"], "4");
    assert!(
        first["vastwatch"]["recommendations"]["t"]["action"].is_string(),
        "{first}"
    );
    // Marks were all consumed.
    let pool = app.sql().await;
    let marks: i64 = sqlx::query("SELECT COUNT(*) FROM notification_marks")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(marks, 0);
    drop(app.simulator);
    drop(app.dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_delays_but_never_loses_a_transition() {
    let mut ops = Receiver::start().await;
    let notify = format!(
        "  group_wait: 10s\n  group_interval: 30s\n  receivers:\n{}  routes:\n    - match: {{alertname: Overloaded}}\n      receivers: [ops]\n",
        webhook("ops", &ops.url())
    );
    let app = App::spawn(&notify).await;
    app.run(0, 100).await;
    // Down before the alert fires (2m10s) and through its resolution (4m10s).
    ops.down().await;
    let attempts = app.run(110, 300).await;
    assert!(
        attempts
            .iter()
            .any(|a| matches!(a, AttemptRecord::Retry { error, .. } if error.contains("connect"))),
        "{attempts:?}"
    );
    assert!(ops.received().is_empty());
    // Half-way back: the receiver answers 503 for a while.
    ops.up().await;
    ops.answer(Answer::Status(503));
    // The first attempt went out near 140s; with +20% jitter the fourth retry
    // (5s + 30s + 2m + 10m later) lands by about 1,090s, and the fifth (another
    // 30m) no sooner than 2,180s, so this stretch holds exactly the 10-minute retry.
    app.run(310, 1_300).await;
    assert!(ops.received().iter().all(|r| r.answered == 503));
    assert!(!ops.received().is_empty(), "a retry met the 503s");
    ops.answer(Answer::Status(200));
    // Backoff is at 30 minutes by now; run the clock past it (and its jitter).
    app.run(1_310, 4_500).await;
    let sent: Vec<_> = ops.accepted().iter().map(|r| summary(&r.json())).collect();
    let expected: Vec<(String, String, String, Vec<String>)> = vec![
        (
            "first notification".into(),
            "firing".into(),
            "Overloaded".into(),
            vec!["-:firing".into()],
        ),
        (
            "resolved".into(),
            "resolved".into(),
            "Overloaded".into(),
            vec!["-:resolved".into()],
        ),
    ];
    assert_eq!(sent, expected, "firing first, then resolved, each once");
    // Retries of the firing message reused its id.
    let firing_id = ops.accepted()[0].header("webhook-id").unwrap();
    let tries: Vec<_> = ops
        .received()
        .into_iter()
        .filter(|r| r.header("webhook-id").as_deref() == Some(firing_id.as_str()))
        .collect();
    assert!(tries.len() >= 2, "503s, then a 200, under one id");
    assert!(tries[..tries.len() - 1].iter().all(|r| r.answered == 503));
    let rows = app.notifications().await;
    assert!(
        rows.iter()
            .all(|row| row.status == NotificationStatus::Delivered)
    );
    assert!(rows[0].attempts as usize >= tries.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn silenced_alerts_change_state_but_are_not_sent() {
    let ops = Receiver::start().await;
    let notify = format!(
        "  group_wait: 10s\n  group_interval: 30s\n  receivers:\n{}",
        webhook("ops", &ops.url())
    );
    let app = App::spawn(&notify).await;
    let silence = Silence {
        id: "a1f3".into(),
        matchers: vec![Matcher::parse("alertname=Unreliable").unwrap()],
        starts_at: T0,
        ends_at: at(secs(600)),
        comment: "known bad hosts".into(),
        created_by: "test".into(),
    };
    app.daemon
        .store()
        .insert_silence(&silence, T0)
        .await
        .unwrap();
    app.run(0, 200).await;
    let names: Vec<String> = ops
        .accepted()
        .iter()
        .map(|r| {
            r.json()["groupLabels"]["alertname"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names, vec!["Overloaded"], "Unreliable is silenced");
    // The muted alerts still fired and were stored.
    let pool = app.sql().await;
    let fired: i64 = sqlx::query(
        "SELECT COUNT(*) FROM alerts WHERE alertname = 'Unreliable' AND fired_at IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap()
    .get(0);
    assert_eq!(fired, 3);
    // Expired early: the workers still failing are news at the next interval.
    assert!(
        app.daemon
            .store()
            .expire_silence("a1f3", at(secs(200)))
            .await
            .unwrap()
    );
    app.run(210, 260).await;
    let unreliable: Vec<Value> = ops
        .accepted()
        .iter()
        .map(|r| r.json())
        .filter(|payload| payload["groupLabels"]["alertname"] == "Unreliable")
        .collect();
    assert_eq!(unreliable.len(), 1);
    let last = &unreliable[0];
    assert_eq!(last["vastwatch"]["reason"], "first notification");
    // 101 recovered at 3m10s, while silenced: only the two still firing are sent.
    assert_eq!(
        summary(last).3,
        vec!["102:firing".to_string(), "103:firing".to_string()]
    );
}

async fn tick(daemon: &Daemon, clock: &Clock, stop: &watch::Receiver<bool>, second: u64) {
    clock.set(at(secs(second)));
    daemon.tick_once(at(secs(second)), stop).await;
    daemon.notify_pass(false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_neither_repeats_within_repeat_interval_nor_forgets() {
    let ops = Receiver::start().await;
    let notify = format!(
        "  group_wait: 10s\n  group_interval: 30s\n  repeat_interval: 20m\n  receivers:\n{}  routes:\n    - match: {{alertname: Unreliable}}\n      receivers: [ops]\n",
        webhook("ops", &ops.url())
    );
    let dir = tempfile::TempDir::new().unwrap();
    let clock = Clock::manual(T0);
    // Worker 102 and 103 stay unreliable for good.
    let simulator = start_simulator(SCENARIO, &clock, TEST_KEY).await;
    let path = write_files(dir.path(), &simulator.base_url(), &notify);
    let (_stop_sender, stop) = watch::channel(false);
    let first = daemon_for(&path, &clock).await;
    for second in (0..=120).step_by(10) {
        tick(&first, &clock, &stop, second).await;
    }
    // 101 at 70 s, then 102 and 103 in the next batch.
    assert_eq!(ops.accepted().len(), 2);
    first.store().clone().close().await.unwrap();
    drop(first);

    let second = daemon_for(&path, &clock).await;
    // 101 recovers at 3m10s: a resolution is news, sent once.
    for s in (130..=600).step_by(10) {
        tick(&second, &clock, &stop, s).await;
    }
    let reasons: Vec<String> = ops
        .accepted()
        .iter()
        .map(|r| {
            r.json()["vastwatch"]["reason"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        reasons,
        vec!["first notification", "new alerts", "resolved"]
    );
    // The repeat comes 20 minutes after the last send, not earlier, and once.
    let resolved_at = ops.accepted()[2]
        .header("webhook-timestamp")
        .unwrap()
        .parse::<i64>()
        .unwrap();
    for s in (610..=2_400).step_by(10) {
        tick(&second, &clock, &stop, s).await;
    }
    let accepted = ops.accepted();
    assert_eq!(accepted.len(), 4, "one repeat");
    assert_eq!(accepted[3].json()["vastwatch"]["reason"], "repeat");
    let repeat_at = accepted[3]
        .header("webhook-timestamp")
        .unwrap()
        .parse::<i64>()
        .unwrap();
    let gap = repeat_at - resolved_at;
    assert!(
        (20 * 60..=20 * 60 + 30).contains(&gap),
        "repeat after {gap}s"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gone_receiver_fails_at_once_and_a_redirect_names_its_location() {
    let gone = Receiver::start().await;
    gone.answer(Answer::Status(410));
    let moved = Receiver::start().await;
    moved.answer(Answer::Redirect("https://elsewhere.example/hook".into()));
    let notify = format!(
        "  group_wait: 10s\n  receivers:\n{}{}",
        webhook("gone", &gone.url()),
        webhook("moved", &moved.url())
    );
    let app = App::spawn(&notify).await;
    app.run(0, 120).await;
    assert_eq!(gone.received().len(), 1, "a 410 is not retried");
    assert_eq!(
        moved.received().len(),
        1,
        "a 301 is neither followed nor retried"
    );
    let failed = app
        .daemon
        .store()
        .notifications(&NotificationFilter {
            status: Some(NotificationStatus::Failed),
            ..NotificationFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 2);
    let error_of = |receiver: &str| {
        failed
            .iter()
            .find(|row| row.receiver == receiver)
            .and_then(|row| row.last_error.clone())
            .unwrap()
    };
    assert!(error_of("gone").contains("410"), "{}", error_of("gone"));
    assert!(
        error_of("moved").contains("redirect to https://elsewhere.example/… not followed"),
        "{}",
        error_of("moved")
    );
    assert!(
        app.daemon
            .notifier()
            .stats()
            .failed
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_receiver_delays_neither_the_others_nor_polling() {
    let hung = Receiver::start().await;
    hung.answer(Answer::Hang);
    let ops = Receiver::start().await;
    let notify = format!(
        "  group_wait: 10s\n  group_interval: 30s\n  receivers:\n    - name: hung\n      webhook: {{url: \"{}\", timeout: 1h}}\n{}",
        hung.url(),
        webhook("ops", &ops.url())
    );
    let app = App::spawn(&notify).await;
    let App {
        dir,
        clock,
        simulator,
        daemon,
        ..
    } = app;
    let daemon = std::sync::Arc::new(daemon);
    let (stop_sender, stop) = watch::channel(false);
    let running = tokio::spawn(std::sync::Arc::clone(&daemon).run(async move {
        let mut stop = stop;
        let _ = stop.wait_for(|stopping| *stopping).await;
    }));
    // Walk the manual clock through the scenario, 5 s per 50 ms of real time, until ops
    // has heard of both alerts (or 60 s of real time pass on a very busy machine).
    let mut second = 0;
    let delivered = wait_until(std::time::Duration::from_secs(60), || {
        second += 5;
        clock.set(at(secs(second)));
        let heard = ops.accepted().len();
        async move { heard >= 2 }
    })
    .await;
    assert!(delivered, "ops got {} messages", ops.accepted().len());
    // The hung receiver holds one request per group open; nothing else waited for it.
    assert!(!hung.received().is_empty());
    let polls: i64 = sqlx::query("SELECT COUNT(*) FROM polls")
        .fetch_one(&open_database(&dir.path().join("vastwatch.db")).await)
        .await
        .unwrap()
        .get(0);
    assert!(polls >= 5, "polling went on: {polls} polls");
    let _ = stop_sender.send(true);
    running.await.expect("run task").expect("run");
    drop(simulator);
}
