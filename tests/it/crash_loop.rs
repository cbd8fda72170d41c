//! The crash loop (issue 9): the real `vastwatch run` against the built-in `surge` and
//! `flaky-worker` scenarios, with a receiver that fails every third request, killed with
//! SIGKILL at random moments and restarted on the same database. After every kill the
//! database must be intact, every alert's transitions must form an unbroken chain, every
//! transition that notifies must be in the outbox or still marked, and no firing
//! notification may go out under two ids. `VASTWATCH_CRASH_KILLS` sets the number of
//! kills (default 5); `scripts/crash-loop.sh` runs 50.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use rand::Rng;
use sqlx::{Row, SqlitePool};
use vastwatch::clock::Clock;
use vastwatch::sim::Scenario;

use crate::helpers::*;
use crate::receiver::{Answer, Receiver};

/// Scenario time per real second: surge's 30 minutes pass in a minute, so workers join,
/// load and leave while the loop runs.
const SPEED: f64 = 30.0;

/// In the final run, a mark or an undelivered message older than this is stuck.
pub(crate) const STALE_AFTER_SECS: f64 = 10.0;

/// Rules without `for:` that fire and resolve often: joining and failing workers, the
/// flaky worker's reliability, and the simulator's load noise around each worker's
/// rolling average.
pub(crate) const RULES: &str = r#"
rules:
  - alert: WorkerNotReady
    scope: worker
    expr: class != "ready"
    severity: warning
  - alert: WorkerUnreliable
    scope: worker
    expr: reliability < 0.9
    severity: warning
  - alert: WorkerAboveAverage
    scope: worker
    expr: cur_load > cur_load_rolling_avg
    severity: info
"#;

pub(crate) const TARGETS: &str = "  - name: surge\n    endpoint: 201\n  - name: surge-group\n    worker_group: 1201\n  \
     - name: flaky\n    endpoint: 301\n  - name: flaky-group\n    worker_group: 1301\n";

/// `surge` and `flaky-worker` as one scenario (their fleet ids differ), without an end, so
/// the load noise keeps moving after surge's 30 minutes.
pub(crate) fn scenario() -> Scenario {
    let surge = Scenario::builtin_yaml("surge").expect("surge is built in");
    let flaky = Scenario::builtin_yaml("flaky-worker").expect("flaky-worker is built in");
    let surge: String = surge
        .lines()
        .filter(|line| !line.starts_with("duration:"))
        .map(|line| format!("{line}\n"))
        .collect();
    let (_, flaky_fleets) = flaky
        .split_once("fleets:\n")
        .expect("flaky-worker has fleets");
    Scenario::from_yaml(&format!("{surge}{flaky_fleets}"), "surge + flaky-worker")
        .expect("the combined scenario is valid")
}

/// Sends SIGTERM and waits for a clean exit.
fn stop(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("reaped");
    assert!(exit.success(), "a clean stop: {exit}");
}

async fn count(pool: &SqlitePool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count")
}

/// What one check of the database found.
#[derive(Debug, Default)]
struct Counts {
    polls: i64,
    transitions: i64,
    notifications: i64,
}

/// The invariants that must hold whenever the daemon is not running. `daemon_log` is the
/// daemon's stderr so far, quoted when an episode was not sent.
async fn check_database(database: &Path, when: &str, daemon_log: &str) -> Counts {
    let pool = open_database(database).await;
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .expect("integrity_check");
    assert_eq!(integrity, "ok", "{when}: integrity_check");

    // Every alert's events form one chain from `inactive`: a lost transition breaks it.
    let events = sqlx::query(
        "SELECT fingerprint, at, from_state, to_state FROM alert_events ORDER BY fingerprint, id",
    )
    .fetch_all(&pool)
    .await
    .expect("alert_events");
    let mut chain: BTreeMap<String, String> = BTreeMap::new();
    let mut should_notify: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut latest: BTreeMap<String, (String, f64)> = BTreeMap::new();
    for event in &events {
        let fingerprint: String = event.get("fingerprint");
        let from: String = event.get("from_state");
        let to: String = event.get("to_state");
        let previous = chain.get(&fingerprint).map_or("inactive", String::as_str);
        // The engine forgets an instance once it is at rest, so an episode after a
        // resolved one starts from `inactive`: both are the rest state (SPEC §6.4).
        let at_rest = |state: &str| state == "inactive" || state == "resolved";
        assert!(
            from == previous || (at_rest(&from) && at_rest(previous)),
            "{when}: alert {fingerprint} went {from} -> {to} after {previous}: a transition is missing"
        );
        if to == "firing" || to == "resolved" {
            *should_notify
                .entry((fingerprint.clone(), to.clone()))
                .or_default() += 1;
        }
        let at: f64 = event.get("at");
        latest.insert(fingerprint.clone(), (to.clone(), at));
        chain.insert(fingerprint, to);
    }
    let current = sqlx::query("SELECT fingerprint, state FROM alerts")
        .fetch_all(&pool)
        .await
        .expect("alerts");
    for alert in &current {
        let fingerprint: String = alert.get("fingerprint");
        let state: String = alert.get("state");
        let last = chain.get(&fingerprint).map_or("inactive", String::as_str);
        assert_eq!(
            state, last,
            "{when}: alert {fingerprint} is {state} but its last event went to {last}"
        );
    }

    // Every alert's latest firing or resolved transition is still marked or is what the
    // last message about the alert says: what a crash could lose between the transition
    // and the outbox.
    let mut marked: BTreeMap<(String, String), usize> = BTreeMap::new();
    for mark in sqlx::query("SELECT fingerprint, status FROM notification_marks")
        .fetch_all(&pool)
        .await
        .expect("marks")
    {
        *marked
            .entry((mark.get("fingerprint"), mark.get("status")))
            .or_default() += 1;
    }
    // fingerprint -> (when, status) of the last message holding it; and the episodes sent
    // per (fingerprint, status).
    let mut last_message: BTreeMap<String, (f64, String)> = BTreeMap::new();
    let mut episodes: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    // fingerprint -> each message holding it: when, its status there, startsAt, reason.
    let mut messages: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in sqlx::query("SELECT created_at, payload FROM notifications")
        .fetch_all(&pool)
        .await
        .expect("notifications")
    {
        let created_at: f64 = row.get("created_at");
        let payload: serde_json::Value =
            serde_json::from_str(&row.get::<String, _>("payload")).expect("payload is JSON");
        for alert in payload["alerts"].as_array().expect("alerts") {
            let fingerprint = alert["fingerprint"]
                .as_str()
                .expect("fingerprint")
                .to_string();
            let status = alert["status"].as_str().expect("status").to_string();
            let starts_at = alert["startsAt"].as_str().expect("startsAt").to_string();
            messages
                .entry(fingerprint.clone())
                .or_default()
                .push(format!(
                    "{created_at:.3} {status} since {starts_at} ({})",
                    payload["vastwatch"]["reason"]
                ));
            // An alert that fired and resolved within one batch is sent once, as
            // resolved: that message covers its firing too.
            if status == "resolved" {
                episodes
                    .entry((fingerprint.clone(), "firing".to_string()))
                    .or_default()
                    .insert(starts_at.clone());
            }
            episodes
                .entry((fingerprint.clone(), status.clone()))
                .or_default()
                .insert(starts_at);
            let last = last_message
                .entry(fingerprint)
                .or_insert((created_at, status.clone()));
            if created_at >= last.0 {
                *last = (created_at, status);
            }
        }
    }
    for (fingerprint, (to, at)) in &latest {
        if to != "firing" && to != "resolved" {
            continue;
        }
        let key = (fingerprint.clone(), to.clone());
        let last_sent = last_message
            .get(fingerprint)
            .map(|(_, status)| status.as_str());
        assert!(
            last_sent == Some(to.as_str()) || marked.contains_key(&key),
            "{when}: alert {fingerprint} went {to} at {at}, but no mark waits and the last \
             message about it says {last_sent:?}: a notification was lost"
        );
    }
    // Every episode's firing and resolution reached a message or waits as a mark. The
    // config mutes nothing (no silences; no target goes down, so the built-in inhibition
    // never acts) and its one route sends everything to `ops`, with `send_resolved`: so
    // every `firing` and `resolved` transition must be sent. An unsent one is reported
    // with what the database and the daemon's log say about its alert.
    let mut unsent = Vec::new();
    for ((fingerprint, status), transitions) in &should_notify {
        let key = (fingerprint.clone(), status.clone());
        let sent = episodes.get(&key).map_or(0, BTreeSet::len);
        let waiting = marked.get(&key).copied().unwrap_or(0);
        if *transitions <= sent + waiting {
            continue;
        }
        let history: Vec<String> = events
            .iter()
            .filter(|event| event.get::<String, _>("fingerprint") == *fingerprint)
            .map(|event| {
                format!(
                    "{:.3} {} -> {}",
                    event.get::<f64, _>("at"),
                    event.get::<String, _>("from_state"),
                    event.get::<String, _>("to_state")
                )
            })
            .collect();
        let log: Vec<&str> = daemon_log
            .lines()
            .filter(|line| line.contains(fingerprint.as_str()))
            .collect();
        unsent.push(format!(
            "alert {fingerprint} made {transitions} {status} transitions, but {sent} \
             reached a message and {waiting} wait as marks (route: the default one, receiver \
             `ops`, send_resolved true).\nevents:\n  {}\nmessages:\n  {}\nlog lines naming \
             it (mutes):\n  {}",
            history.join("\n  "),
            messages
                .get(fingerprint)
                .map_or(String::new(), |m| m.join("\n  ")),
            log.join("\n  ")
        ));
    }
    assert!(
        unsent.is_empty(),
        "{when}: {} alerts have transitions that were never sent:\n{}",
        unsent.len(),
        unsent.join("\n")
    );

    let counts = Counts {
        polls: count(&pool, "SELECT count(*) FROM polls").await,
        transitions: events.len() as i64,
        notifications: count(&pool, "SELECT count(*) FROM notifications").await,
    };
    pool.close().await;
    counts
}

/// No firing or resolved alert was accepted under two notification ids; returns the
/// number of accepted deliveries.
pub(crate) fn check_no_duplicates(receiver: &Receiver) -> usize {
    let accepted = receiver.accepted();
    let mut ids: BTreeMap<(String, String, String), BTreeSet<String>> = BTreeMap::new();
    for request in &accepted {
        let id = request.header("webhook-id").expect("webhook-id");
        let payload = request.json();
        for alert in payload["alerts"].as_array().expect("alerts") {
            let key = (
                alert["fingerprint"]
                    .as_str()
                    .expect("fingerprint")
                    .to_string(),
                alert["status"].as_str().expect("status").to_string(),
                alert["startsAt"].as_str().expect("startsAt").to_string(),
            );
            ids.entry(key).or_default().insert(id.clone());
        }
    }
    for ((fingerprint, status, starts_at), ids) in &ids {
        assert_eq!(
            ids.len(),
            1,
            "alert {fingerprint} {status} since {starts_at} was delivered under ids {ids:?}"
        );
    }
    accepted.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let kills: usize = std::env::var("VASTWATCH_CRASH_KILLS")
        .ok()
        .map(|value| value.parse().expect("VASTWATCH_CRASH_KILLS is a number"))
        .unwrap_or(5);
    let dir = tempfile::TempDir::new().expect("temp dir");
    let clock = Clock::accelerated(Clock::real().now(), SPEED);
    let simulator = start_simulator_now(scenario(), clock).await;
    let receiver = Receiver::start().await;
    receiver.answer(Answer::FailEvery(3));
    std::fs::write(dir.path().join("rules.yaml"), RULES).expect("rules file");
    // Every alert is its own group, and nothing repeats within the run: then each
    // (alert, status, episode) is sent in exactly one message.
    let config = write_config(
        dir.path(),
        &simulator.base_url(),
        "",
        TARGETS,
        &format!(
            "rules: [rules.yaml]\nnotify:\n  group_by: [...]\n  group_wait: 1s\n  \
             group_interval: 1s\n  repeat_interval: 24h\n  receivers:\n    \
             - name: ops\n      webhook: {{url: \"{}\", timeout: 5s}}\n",
            receiver.url()
        ),
    );
    poll_every_second(&config);
    let database = dir.path().join("vastwatch.db");

    let mut rng = rand::rng();
    let mut daemon_log = String::new();
    for kill in 1..=kills {
        let polls_before = count_polls(&database).await;
        let mut daemon = spawn_run(&config);
        let stderr = StderrLines::collect(&mut daemon);
        // Each run polls at least once, so the loop makes progress however slow the
        // machine is; the kill then comes at a random moment after that.
        let polled = wait_until(Duration::from_secs(120), || async {
            count_polls(&database).await > polls_before
        })
        .await;
        if !polled {
            let _ = daemon.kill();
            let _ = daemon.wait();
            panic!("run {kill} never polled:\n{}", stderr.finish());
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..=2000))).await;
        daemon.kill().expect("SIGKILL");
        daemon.wait().expect("reaped");
        daemon_log.push_str(&stderr.finish());
        daemon_log.push('\n');
        check_database(&database, &format!("after kill {kill}"), &daemon_log).await;
        check_no_duplicates(&receiver);
    }

    // A final clean run with a receiver that accepts everything: the outbox drains. The
    // load noise keeps alerts flapping, so every tick adds marks (which wait `group_wait`)
    // and messages: drained means nothing older than a few seconds still waits, which a
    // stuck mark or an undeliverable message would break.
    receiver.answer(Answer::Status(200));
    let polls_before = count_polls(&database).await;
    let mut daemon = spawn_run(&config);
    let stderr = StderrLines::collect(&mut daemon);
    let drained = wait_until(Duration::from_secs(300), || async {
        // The run has started (and handles SIGTERM) once it has polled.
        if count_polls(&database).await <= polls_before {
            return false;
        }
        let pool = open_database(&database).await;
        let cutoff = Clock::real().now().unix_secs_f64() - STALE_AFTER_SECS;
        let stale: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM notification_marks WHERE at < ?1) \
             + (SELECT count(*) FROM notifications WHERE status != 'delivered' \
                AND created_at < ?1)",
        )
        .bind(cutoff)
        .fetch_one(&pool)
        .await
        .expect("count what waits");
        pool.close().await;
        stale == 0
    })
    .await;
    stop(&mut daemon);
    daemon_log.push_str(&stderr.finish());
    assert!(
        drained,
        "marks or messages older than {STALE_AFTER_SECS} s kept waiting:\n{daemon_log}"
    );
    let end = check_database(&database, "at the end", &daemon_log).await;
    let deliveries = check_no_duplicates(&receiver);
    let requests = receiver.received();
    let ids: BTreeSet<String> = requests
        .iter()
        .filter_map(|request| request.header("webhook-id"))
        .collect();
    assert!(
        end.transitions > 0 && end.notifications > 0,
        "alerts fired: {end:?}"
    );

    println!(
        "crash loop: {kills} kills, {} polls, {} transitions, {} notifications, {deliveries} \
         deliveries, {} retries (requests beyond the first for an id), no transition unsent",
        end.polls,
        end.transitions,
        end.notifications,
        requests.len() - ids.len(),
    );
    simulator.shutdown().await.expect("shutdown");
}
