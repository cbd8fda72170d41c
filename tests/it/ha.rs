//! Replicas on one PostgreSQL database (issue 8): the real `vastwatch run`, two or three
//! at once with one config, against the simulator.
//!
//! - Leader mode: the leader is SIGKILLed mid-scenario; a standby takes over within
//!   `ha.failover` (2 s here), polling never pauses longer than the bound, no transition
//!   is lost and no alert is delivered under two notification ids.
//! - Shard mode: every target is polled exactly once per tick across the replicas, before
//!   and after one of them leaves.
//!
//! Each test works in a schema of its own on `VASTWATCH_TEST_POSTGRES` (the lease's locks
//! are keyed by schema) and skips, saying so, when no server answers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgPool;
use vastwatch::clock::Clock;
use vastwatch::sim::Scenario;

use crate::crash_loop::{RULES, STALE_AFTER_SECS, TARGETS, check_no_duplicates, scenario};
use crate::helpers::*;
use crate::postgres::{Schema, schema};
use crate::receiver::{Answer, Receiver};

/// `ha.failover` in these tests.
const FAILOVER: Duration = Duration::from_secs(2);
/// The schedule's interval.
const INTERVAL: Duration = Duration::from_secs(1);

/// One `vastwatch run` replica, its log and its API.
struct Replica {
    child: Child,
    log: StderrLines,
    api: String,
}

impl Replica {
    async fn start(config: &Path, database: &Schema) -> Replica {
        let mut child = run_command(config)
            .env("VASTWATCH_DATABASE_URL", &database.url)
            .spawn()
            .expect("spawn vastwatch run");
        let log = StderrLines::collect(&mut child);
        let Some(address) = log.api_address().await else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the replica never listened:\n{}", log.finish());
        };
        Replica {
            child,
            log,
            api: format!("http://{address}"),
        }
    }

    /// `/api/v1/status`, or `None` while it does not answer.
    async fn status(&self) -> Option<Value> {
        // reqwest's TLS needs a crypto provider even for plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let response = reqwest::get(format!("{}/api/v1/status", self.api))
            .await
            .ok()?;
        serde_json::from_slice(&response.bytes().await.ok()?).ok()
    }

    async fn role(&self) -> Option<String> {
        Some(self.status().await?["role"].as_str()?.to_string())
    }

    fn kill(mut self) -> String {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
        self.log.finish()
    }

    /// SIGTERM, and a clean exit.
    fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = self.child.wait().expect("reaped");
        let log = self.log.finish();
        assert!(exit.success(), "a clean stop: {exit}\n{log}");
        log
    }
}

/// The index of the one replica that leads, once exactly one does.
async fn leader_of(replicas: &[Replica], limit: Duration) -> Option<usize> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let mut leaders = Vec::new();
        for (index, replica) in replicas.iter().enumerate() {
            if replica.role().await.as_deref() == Some("leader") {
                leaders.push(index);
            }
        }
        if let [leader] = leaders[..] {
            return Some(leader);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Per target, the start times of its polls in order.
async fn poll_times(pool: &PgPool) -> BTreeMap<String, Vec<f64>> {
    let mut times: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for row in sqlx::query(
        "SELECT t.name, p.started_at FROM polls AS p JOIN targets AS t ON t.id = p.target_id \
         ORDER BY p.started_at",
    )
    .fetch_all(pool)
    .await
    .expect("polls")
    {
        times
            .entry(row.get("name"))
            .or_default()
            .push(row.get("started_at"));
    }
    times
}

/// Every alert's events form one unbroken chain that ends in its current state.
async fn check_transitions(pool: &PgPool) -> usize {
    let events = sqlx::query(
        "SELECT fingerprint, from_state, to_state FROM alert_events ORDER BY fingerprint, id",
    )
    .fetch_all(pool)
    .await
    .expect("alert_events");
    let mut chain: BTreeMap<String, String> = BTreeMap::new();
    for event in &events {
        let fingerprint: String = event.get("fingerprint");
        let from: String = event.get("from_state");
        let previous = chain.get(&fingerprint).map_or("inactive", String::as_str);
        let at_rest = |state: &str| state == "inactive" || state == "resolved";
        assert!(
            from == previous || (at_rest(&from) && at_rest(previous)),
            "alert {fingerprint} went from {from} after {previous}: a transition is missing"
        );
        chain.insert(fingerprint, event.get("to_state"));
    }
    for alert in sqlx::query("SELECT fingerprint, state FROM alerts")
        .fetch_all(pool)
        .await
        .expect("alerts")
    {
        let fingerprint: String = alert.get("fingerprint");
        let state: String = alert.get("state");
        assert_eq!(
            Some(&state),
            chain.get(&fingerprint).or(Some(&"inactive".to_string())),
            "alert {fingerprint}'s state and events agree"
        );
    }
    events.len()
}

fn write_ha_config(dir: &Path, base_url: &str, targets: &str, extra: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("rules.yaml"), RULES).expect("rules file");
    let config = write_config(
        dir,
        base_url,
        "",
        targets,
        &format!(
            "database_env: VASTWATCH_DATABASE_URL\nrules: [rules.yaml]\n\
             ha: {{failover: {}s{extra}}}\n",
            FAILOVER.as_secs()
        ),
    );
    // The replicas share the database named by the environment, not a file.
    let yaml = std::fs::read_to_string(&config)
        .expect("read config")
        .replace("database: vastwatch.db\n", "");
    std::fs::write(&config, yaml).expect("write config");
    poll_every_second(&config);
    config
}

async fn fail_over(replica_count: usize, kills: usize) {
    let Some(database) = schema().await else {
        return;
    };
    let dir = tempfile::TempDir::new().expect("temp dir");
    let clock = Clock::accelerated(Clock::real().now(), 30.0);
    let simulator = start_simulator_now(scenario(), clock).await;
    let receiver = Receiver::start().await;
    receiver.answer(Answer::Status(200));
    let notify = format!(
        "notify:\n  group_by: [...]\n  group_wait: 1s\n  group_interval: 1s\n  \
         repeat_interval: 24h\n  receivers:\n    - name: ops\n      webhook: {{url: \"{}\", timeout: 5s}}\n",
        receiver.url()
    );
    let config = write_ha_config(dir.path(), &simulator.base_url(), TARGETS, "");
    let mut yaml = std::fs::read_to_string(&config).expect("read config");
    yaml.push_str(&notify);
    std::fs::write(&config, yaml).expect("write config");

    let mut replicas = Vec::new();
    for _ in 0..replica_count {
        replicas.push(Replica::start(&config, &database).await);
    }
    let pool = database.tables.clone();
    let mut takeovers = Vec::new();
    for kill in 1..=kills {
        let leader = leader_of(&replicas, Duration::from_secs(30))
            .await
            .expect("one replica leads");
        // Let the leader poll and alert for a while, then kill it mid-scenario.
        tokio::time::sleep(Duration::from_millis(2500 + 700 * kill as u64)).await;
        let killed = replicas.remove(leader);
        let killed_at = Instant::now();
        let _ = killed.kill();
        let next = leader_of(&replicas, Duration::from_secs(30))
            .await
            .expect("a standby takes over");
        takeovers.push(killed_at.elapsed());
        let status = replicas[next].status().await.expect("status");
        assert_eq!(status["role"], "leader");
        assert_eq!(status["leader"], status["replica"]);
        // A new replica replaces the dead one, as a supervisor would restart it.
        replicas.push(Replica::start(&config, &database).await);
    }
    // The last leader polls on for a while, then the outbox drains. The load noise keeps
    // alerts flapping, so every tick adds marks and messages: drained means nothing older
    // than a few seconds still waits, which a stuck mark or an undeliverable message would
    // break.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let drained = wait_until(Duration::from_secs(120), || async {
        let cutoff = unix_now() - STALE_AFTER_SECS;
        let stale: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM notification_marks WHERE at < $1) \
             + (SELECT count(*) FROM notifications WHERE status != 'delivered' \
             AND created_at < $1)",
        )
        .bind(cutoff)
        .fetch_one(&pool)
        .await
        .expect("outbox");
        stale == 0
    })
    .await;
    for replica in replicas {
        replica.stop();
    }
    assert!(
        drained,
        "marks or messages older than {STALE_AFTER_SECS} s kept waiting after the failovers"
    );

    for took in &takeovers {
        assert!(
            *took <= FAILOVER,
            "a standby took over {took:?} after the leader died; the bound is {FAILOVER:?}"
        );
    }
    // No pause in polling longer than the bound, beyond the interval itself.
    for (target, times) in poll_times(&pool).await {
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap <= (INTERVAL + FAILOVER).as_secs_f64(),
                "{target} went {gap:.2}s without a poll"
            );
        }
    }
    let transitions = check_transitions(&pool).await;
    assert!(transitions > 0, "alerts fired and resolved");
    let deliveries = check_no_duplicates(&receiver);
    assert!(deliveries > 0, "notifications were delivered");
    let mut sorted = takeovers.clone();
    sorted.sort();
    println!(
        "failover: {replica_count} replicas, {kills} leader kills, takeover median {:?}, \
         max {:?}; {transitions} transitions, {deliveries} deliveries",
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );
    simulator.shutdown().await.expect("shutdown");
    database.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_two_replicas_a_standby_takes_over_when_the_leader_is_killed() {
    fail_over(2, 1).await;
}

/// `VASTWATCH_FAILOVER_KILLS` sets the number of kills (default 2);
/// `scripts/failover.sh` runs 20.
#[tokio::test(flavor = "multi_thread")]
async fn with_three_replicas_leadership_survives_leaders_killed_in_turn() {
    let kills = std::env::var("VASTWATCH_FAILOVER_KILLS")
        .ok()
        .map(|value| value.parse().expect("VASTWATCH_FAILOVER_KILLS is a number"))
        .unwrap_or(2);
    fail_over(3, kills).await;
}

/// Six endpoints, each its own fleet of two workers.
fn six_fleets() -> (Scenario, String) {
    let mut yaml = String::from("name: six\nseed: 1\nfleets:\n");
    let mut targets = String::new();
    for index in 0..6 {
        let id = 900 + index;
        yaml.push_str(&format!(
            "  - endpoint: {id}\n    load: 10\n    workers:\n      - {{id: {id}01, perf: 10}}\n      - {{id: {id}02, perf: 10}}\n"
        ));
        targets.push_str(&format!("  - name: fleet-{index}\n    endpoint: {id}\n"));
    }
    (
        Scenario::from_yaml(&yaml, "six fleets").expect("valid scenario"),
        targets,
    )
}

/// Waits until the live replicas' shares cover every target once.
async fn settled_shards(replicas: &[Replica], targets: usize) -> bool {
    wait_until(Duration::from_secs(30), || async {
        let mut all = BTreeSet::new();
        let mut total = 0;
        for replica in replicas {
            let Some(status) = replica.status().await else {
                return false;
            };
            let Some(share) = status["targets"].as_array() else {
                return false;
            };
            total += share.len();
            all.extend(share.iter().filter_map(Value::as_str).map(str::to_string));
        }
        all.len() == targets && total == targets
    })
    .await
}

/// Every target polled once per tick within `window`: never twice for one tick (two
/// polls of a target always at least half an interval apart — two owners would poll it
/// within milliseconds of each other at the same tick) and never left out (no gap longer
/// than two intervals: its owner polls it every tick, and the daemon may skip one tick it
/// cannot keep up with on a loaded machine, by design; an unowned target falls silent).
async fn check_once_per_tick(pool: &PgPool, window: (f64, f64), targets: usize, when: &str) {
    let times = poll_times(pool).await;
    assert_eq!(times.len(), targets, "{when}: every target was polled");
    let interval = INTERVAL.as_secs_f64();
    for (target, times) in &times {
        let inside: Vec<f64> = times
            .iter()
            .copied()
            .filter(|time| (window.0..=window.1).contains(time))
            .collect();
        let edges = [window.0]
            .into_iter()
            .chain(inside.iter().copied())
            .chain([window.1]);
        let points: Vec<f64> = edges.collect();
        for pair in points.windows(2) {
            assert!(
                pair[1] - pair[0] <= 2.0 * interval + 0.5,
                "{when}: {target} went unpolled from {:.2} to {:.2}",
                pair[0],
                pair[1]
            );
        }
        for pair in inside.windows(2) {
            assert!(
                pair[1] - pair[0] >= interval / 2.0,
                "{when}: {target} polled twice for one tick, at {:.3} and {:.3}",
                pair[0],
                pair[1]
            );
        }
    }
}

fn unix_now() -> f64 {
    Clock::real().now().unix_secs_f64()
}

#[tokio::test(flavor = "multi_thread")]
async fn in_shard_mode_every_target_is_polled_once_per_tick_before_and_after_a_replica_leaves() {
    let Some(database) = schema().await else {
        return;
    };
    let dir = tempfile::TempDir::new().expect("temp dir");
    let (scenario, targets) = six_fleets();
    let simulator = start_simulator_now(scenario, Clock::real()).await;
    let config = write_ha_config(dir.path(), &simulator.base_url(), &targets, ", mode: shard");
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Replica::start(&config, &database).await);
    }
    let pool = database.tables.clone();
    assert!(
        settled_shards(&replicas, 6).await,
        "three replicas share the targets"
    );
    let start = unix_now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    check_once_per_tick(&pool, (start, unix_now()), 6, "three replicas").await;

    let leaving = replicas.remove(1);
    leaving.stop();
    assert!(
        settled_shards(&replicas, 6).await,
        "two replicas share the targets"
    );
    let start = unix_now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    check_once_per_tick(&pool, (start, unix_now()), 6, "after one left").await;

    for replica in replicas {
        replica.stop();
    }
    simulator.shutdown().await.expect("shutdown");
    database.drop().await;
}
