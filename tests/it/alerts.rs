//! Rules against the simulator through the daemon: alert rows and transitions land in
//! `alerts` and `alert_events`, and a daemon killed mid-scenario and restarted neither
//! repeats nor loses a transition.

use std::path::Path;

use sqlx::Row;
use vastwatch::clock::Clock;
use vastwatch::config::Config;
use vastwatch::daemon::{Daemon, load_rules};

use crate::helpers::*;

/// One worker turns unreliable at 3 minutes; another saturates from 10 to 20 minutes.
const SCENARIO: &str = r#"
name: alerting
fleets:
  - endpoint: 1
    load: {0s: 100, 10m: 100, 11m: 520, 20m: 520, 21m: 100}
    workers:
      - {id: 101, perf: 100, reliability: {0s: 0.99, 3m: 0.99, 4m: 0.8}}
      - {id: 102, perf: 100, reliability: 0.99, max_reqs: 4}
      - {id: 103, perf: 100, reliability: 0.99, max_reqs: 4}
"#;

fn shipped_rules() -> String {
    format!("rules: [{}/rules/vast.yaml]\n", env!("CARGO_MANIFEST_DIR"))
}

async fn start_daemon(dir: &Path, base_url: &str, clock: &Clock) -> Daemon {
    let path = write_config(
        dir,
        base_url,
        "",
        "  - name: t\n    endpoint: 1\n",
        &shipped_rules(),
    );
    let config = Config::load(&path, &test_env()).expect("config");
    let rules = load_rules(&config).expect("shipped rules load");
    Daemon::start(config, rules, clock.clone())
        .await
        .expect("daemon")
}

/// `(at offset s, alertname, worker_id, from, to)` of every stored transition.
pub async fn transitions(database: &Path) -> Vec<(i64, String, Option<i64>, String, String)> {
    let pool = open_database(database).await;
    let rows = sqlx::query(
        "SELECT e.at, a.alertname, a.worker_id, e.from_state, e.to_state \
         FROM alert_events e JOIN alerts a USING (fingerprint) ORDER BY e.at, a.alertname, a.worker_id",
    )
    .fetch_all(&pool)
    .await
    .expect("alert events");
    pool.close().await;
    rows.iter()
        .map(|row| {
            let at: f64 = row.get(0);
            (
                (at - T0.unix_secs_f64()).round() as i64,
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
            )
        })
        .collect()
}

const TICKS: u64 = 30 * 6; // 30 minutes at 10 s

#[tokio::test(flavor = "multi_thread")]
async fn shipped_rules_fire_and_resolve_against_the_simulator() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let clock = Clock::manual(T0);
    let simulator = start_simulator(SCENARIO, &clock, TEST_KEY).await;
    let daemon = start_daemon(dir.path(), &simulator.base_url(), &clock).await;
    let (_stop_sender, stop) = tokio::sync::watch::channel(false);
    for tick in 0..=TICKS {
        clock.set(at(secs(tick * 10)));
        daemon.tick_once(clock.now(), &stop).await;
    }
    daemon.store().clone().close().await.expect("close");
    let events = transitions(&dir.path().join("vastwatch.db")).await;
    let fired: Vec<(String, Option<i64>)> = events
        .iter()
        .filter(|(_, _, _, _, to)| to == "firing")
        .map(|(_, name, worker, _, _)| (name.clone(), *worker))
        .collect();
    assert!(
        fired.contains(&("WorkerLowReliability".to_string(), Some(101))),
        "{events:#?}"
    );
    assert!(
        fired.iter().any(|(name, _)| name == "FleetSaturated"),
        "{events:#?}"
    );
    assert!(
        !fired.contains(&("WorkerLowReliability".to_string(), Some(102))),
        "a healthy worker must not fire: {events:#?}"
    );
    // The saturation ended at 21 minutes: it resolved.
    assert!(
        events
            .iter()
            .any(|(_, name, _, from, to)| name == "FleetSaturated"
                && from == "firing"
                && to == "resolved"),
        "{events:#?}"
    );
    // Every firing was preceded by a pending (all these rules have `for`).
    for (at, name, worker, from, to) in &events {
        if to == "firing" {
            assert_eq!(from, "pending", "{name} {worker:?} at {at}");
        }
    }
    let pool = open_database(&dir.path().join("vastwatch.db")).await;
    let row = sqlx::query(
        "SELECT state, labels, annotations, fired_at, severity FROM alerts \
         WHERE alertname = 'WorkerLowReliability' AND worker_id = 101",
    )
    .fetch_one(&pool)
    .await
    .expect("alert row");
    let labels: serde_json::Value = serde_json::from_str(row.get("labels")).expect("labels json");
    assert_eq!(
        labels,
        serde_json::json!({"alertname": "WorkerLowReliability", "severity": "warning",
                           "target": "t", "worker_id": "101"})
    );
    let annotations: serde_json::Value =
        serde_json::from_str(row.get("annotations")).expect("json");
    assert_eq!(
        annotations["summary"], "Worker 101 on t: reliability 0.8",
        "{annotations}"
    );
    assert_eq!(row.get::<String, _>("state"), "firing");
    simulator.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_killed_and_restarted_repeats_and_loses_no_transition() {
    // Reference: one uninterrupted run.
    let reference_dir = tempfile::TempDir::new().expect("temp dir");
    {
        let clock = Clock::manual(T0);
        let simulator = start_simulator(SCENARIO, &clock, TEST_KEY).await;
        let daemon = start_daemon(reference_dir.path(), &simulator.base_url(), &clock).await;
        let (_sender, stop) = tokio::sync::watch::channel(false);
        for tick in 0..=TICKS {
            clock.set(at(secs(tick * 10)));
            daemon.tick_once(clock.now(), &stop).await;
        }
        daemon.store().clone().close().await.expect("close");
        simulator.shutdown().await.expect("shutdown");
    }
    let reference = transitions(&reference_dir.path().join("vastwatch.db")).await;
    assert!(
        reference.len() >= 4,
        "the scenario must produce transitions: {reference:?}"
    );

    // The same scenario, with the daemon killed five times: dropped without shutdown,
    // once in the middle of a tick whose poll is still in flight.
    let dir = tempfile::TempDir::new().expect("temp dir");
    let clock = Clock::manual(T0);
    let simulator = start_simulator(SCENARIO, &clock, TEST_KEY).await;
    let kills = [23_u64, 41, 77, 102, 150];
    let mut daemon = Some(start_daemon(dir.path(), &simulator.base_url(), &clock).await);
    let (_sender, stop) = tokio::sync::watch::channel(false);
    for tick in 0..=TICKS {
        clock.set(at(secs(tick * 10)));
        if kills.contains(&tick) {
            let running = daemon.take().expect("daemon");
            if tick == 77 {
                // Kill mid-tick: abort the tick while its work is under way.
                let running = std::sync::Arc::new(running);
                let task = {
                    let running = std::sync::Arc::clone(&running);
                    let stop = stop.clone();
                    let now = clock.now();
                    tokio::spawn(async move { running.tick_once(now, &stop).await })
                };
                tokio::task::yield_now().await;
                task.abort();
                let _ = task.await;
                drop(running);
            } else {
                drop(running);
            }
            daemon = Some(start_daemon(dir.path(), &simulator.base_url(), &clock).await);
        }
        let current = daemon.as_ref().expect("daemon");
        current.tick_once(clock.now(), &stop).await;
    }
    daemon
        .take()
        .expect("daemon")
        .store()
        .clone()
        .close()
        .await
        .expect("close");
    let restarted = transitions(&dir.path().join("vastwatch.db")).await;
    assert_eq!(restarted, reference);
    simulator.shutdown().await.expect("shutdown");
}
