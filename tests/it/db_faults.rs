//! Database faults (docs/reliability.md, "Database faults"): the real `vastwatch run`
//! against a real SQLite file that another writer locks, that hits a file size limit
//! (`RLIMIT_FSIZE`, standing in for a full disk), or that is deleted while open. In each
//! case polling goes on, the fault is reported once in the log, in `/readyz` and in
//! `/metrics`, the daemon recovers without a restart, and the stored history is whole.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, Executor};
use tempfile::TempDir;
use tokio::sync::watch;
use vastwatch::clock::Clock;
use vastwatch::sim::RunningSimulator;

use crate::alerts::transitions;
use crate::exposition;
use crate::helpers::*;

const FAULT_STARTS: &str = "Database writes are failing";
const FAULT_CLEARS: &str = "Database writes succeed again";

/// A rule that fires on the first poll and stays firing: its one transition must be
/// stored exactly once however often the write that carries it is retried.
const RULES: &str = "rules:\n  - alert: Up\n    scope: fleet\n    expr: workers > 0\n";

/// A daemon under test: the child process, its log, its HTTP API and its database.
struct Running {
    child: Child,
    log: StderrLines,
    api: String,
    database: std::path::PathBuf,
    _simulator: RunningSimulator,
    dir: TempDir,
}

/// Starts `vastwatch run` polling one fleet of `workers` workers every second;
/// `limit_file_size` runs it under that `RLIMIT_FSIZE`.
async fn start(workers: usize, limit_file_size: Option<u64>) -> Running {
    vastwatch::poll::install_tls_provider();
    let clock = Clock::real();
    let list: Vec<String> = (1..=workers)
        .map(|id| format!("{{id: {id}, perf: 100}}"))
        .collect();
    let scenario = format!(
        "name: db\nfleets:\n  - endpoint: 1\n    load: 10\n    workers: [{}]\n",
        list.join(", ")
    );
    let simulator = start_simulator(&scenario, &clock, TEST_KEY).await;
    let dir = TempDir::new().expect("temp dir");
    let config = write_config_with_rules(dir.path(), &simulator.base_url(), RULES, "");
    poll_every_second(&config);
    let mut command = run_command(&config);
    if let Some(bytes) = limit_file_size {
        // SAFETY: setrlimit is async-signal-safe and touches only the child's limits.
        unsafe {
            command.pre_exec(move || set_file_size_limit(0, bytes));
        }
    }
    let mut child = command.spawn().expect("spawn vastwatch run");
    let log = StderrLines::collect(&mut child);
    let api = log.api_address().await.expect("the API address is logged");
    Running {
        child,
        log,
        api: format!("http://{api}"),
        database: dir.path().join("vastwatch.db"),
        _simulator: simulator,
        dir,
    }
}

/// Sets `RLIMIT_FSIZE` of process `pid` (0: the calling process) to `bytes`.
fn set_file_size_limit(pid: libc::pid_t, bytes: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `limit` is a valid rlimit for the call, and the old value is not asked for.
    let code = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
    if code == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Running {
    /// `/readyz`: the status, the `database` check's reason (`None` when it passed), and
    /// the names of the checks that failed.
    async fn readyz(&self) -> (u16, Option<String>, Vec<String>) {
        let response = reqwest::get(format!("{}/readyz", self.api))
            .await
            .expect("readyz answers");
        let status = response.status().as_u16();
        let body: Value =
            serde_json::from_str(&response.text().await.expect("readyz body")).expect("JSON");
        let checks = body["checks"].as_array().expect("readyz lists its checks");
        let database = checks
            .iter()
            .find(|check| check["check"] == "database")
            .expect("readyz names the database check");
        let failing = checks
            .iter()
            .filter(|check| check["ok"] == false)
            .map(|check| check["check"].as_str().unwrap_or_default().to_string())
            .collect();
        (
            status,
            database["reason"].as_str().map(str::to_string),
            failing,
        )
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.api))
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text");
        exposition::parse(&text)
            .value(name, &[])
            .unwrap_or_else(|| panic!("{name} is exposed"))
    }

    fn child_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    async fn wait_for_log(&self, text: &str, limit: Duration) {
        assert!(
            wait_until(limit, || async { self.log.count(text) > 0 }).await,
            "no `{text}` in the log within {limit:?}:\n{}",
            self.log.text_so_far()
        );
    }

    async fn wait_until_ready(&self) {
        assert!(
            wait_until(Duration::from_secs(30), || async {
                self.readyz().await.0 == 200
            })
            .await,
            "never ready: {:?}",
            self.readyz().await
        );
    }

    /// Waits until two more polls are stored.
    async fn polls_go_on(&self) {
        let stored = count_polls(&self.database).await;
        wait_for_polls(&self.database, stored + 2).await;
    }

    /// Checks that the daemon recreated its deleted database file for the `times`th time:
    /// it is ready, polls are stored in the new file, and the new file holds what the
    /// first one did from its first poll on.
    async fn assert_recreated(&self, times: f64, first_poll: f64) {
        self.wait_until_ready().await;
        assert_eq!(
            self.metric("vastwatch_database_recreated_total").await,
            times
        );
        self.polls_go_on().await;
        assert_eq!(first_poll_at(&self.database).await, first_poll);
    }

    /// Stops the daemon with SIGTERM and returns its whole log, and the folder that holds
    /// the database.
    fn stop(mut self) -> (String, TempDir) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = self.child.wait().expect("wait");
        let log = self.log.finish();
        assert_eq!(exit.code(), Some(0), "{log}");
        (log, self.dir)
    }
}

/// What the stored history must show after any fault: an intact file; at least `least`
/// polls taken before `cleared` (those stored before it, and those that waited in memory
/// while the fault lasted and were written after it); polls after it; and the alert's one
/// transition to firing stored once.
async fn assert_history_is_whole(database: &Path, cleared: f64, least: i64) {
    let pool = open_database(database).await;
    let integrity: String = sqlx::query("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .expect("integrity check")
        .get(0);
    assert_eq!(integrity, "ok");
    let times: Vec<f64> = sqlx::query("SELECT started_at FROM polls ORDER BY started_at")
        .fetch_all(&pool)
        .await
        .expect("polls")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let before = times.iter().filter(|at| **at < cleared).count() as i64;
    assert!(
        before >= least,
        "{before} polls stored from before the fault cleared at {cleared}, expected {least}: {times:?}"
    );
    assert!(
        times.iter().filter(|at| **at > cleared).count() >= 2,
        "polls after the fault are stored: {times:?}"
    );
    let firing: i64 = sqlx::query("SELECT count(*) FROM alert_events WHERE to_state = 'firing'")
        .fetch_one(&pool)
        .await
        .expect("alert events")
        .get(0);
    assert_eq!(firing, 1, "the alert fired once, and was stored once");
    let state: String = sqlx::query("SELECT state FROM alerts WHERE alertname = 'Up'")
        .fetch_one(&pool)
        .await
        .expect("the alert")
        .get(0);
    assert_eq!(state, "firing");
    pool.close().await;
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// Waits until the database holds `count` polls.
async fn wait_for_polls(database: &Path, count: i64) {
    assert!(
        wait_until(Duration::from_secs(30), || async {
            count_polls(database).await >= count
        })
        .await,
        "fewer than {count} polls stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_locked_past_the_busy_timeout_is_reported_and_its_polls_written_later() {
    let daemon = start(3, None).await;
    wait_for_polls(&daemon.database, 3).await;
    daemon.wait_until_ready().await;

    // Another writer holds the write lock for 12 s, well past the 5 s busy timeout.
    let other = lock(&daemon.database).await;
    let locked_at = now_secs();
    daemon
        .wait_for_log(FAULT_STARTS, Duration::from_secs(15))
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, reason, failing) = daemon.readyz().await;
    assert_eq!(status, 503);
    let reason = reason.expect("the database check failed");
    assert!(reason.contains("database is locked"), "{reason}");
    // Polls go on: past three intervals of the lock the target's check still passes.
    assert_eq!(failing, ["database"]);
    assert_eq!(daemon.metric("vastwatch_database_up").await, 0.0);
    assert!(daemon.metric("vastwatch_store_write_failures_total").await >= 1.0);
    tokio::time::sleep(
        Duration::from_secs(12).saturating_sub(Duration::from_secs_f64(now_secs() - locked_at)),
    )
    .await;
    // Polls went on and wait in memory: about twelve, fewer if a loaded machine missed
    // ticks.
    let waiting = daemon.metric("vastwatch_database_backlog_polls").await as i64;
    assert!(waiting >= 5, "{waiting} polls waiting");
    let stored = count_polls(&daemon.database).await;
    let released_at = now_secs();
    release(other).await;

    daemon
        .wait_for_log(FAULT_CLEARS, Duration::from_secs(15))
        .await;
    daemon.wait_until_ready().await;
    assert_eq!(daemon.metric("vastwatch_database_up").await, 1.0);
    assert!(
        wait_until(Duration::from_secs(10), || async {
            daemon.metric("vastwatch_database_backlog_polls").await == 0.0
        })
        .await
    );
    daemon.polls_go_on().await;
    let database = daemon.database.clone();
    let (log, _dir) = daemon.stop();
    assert_eq!(log.matches(FAULT_STARTS).count(), 1, "{log}");
    assert_eq!(log.matches(FAULT_CLEARS).count(), 1, "{log}");
    assert_history_is_whole(&database, released_at, stored + waiting).await;
}

/// Takes the database's write lock from a connection of the test's own, as another
/// process writing it would.
async fn lock(database: &Path) -> SqliteConnection {
    let mut other = SqliteConnectOptions::new()
        .filename(database)
        .connect()
        .await
        .expect("a second connection");
    other
        .execute("BEGIN IMMEDIATE")
        .await
        .expect("take the lock");
    other
}

async fn release(mut other: SqliteConnection) {
    other.execute("ROLLBACK").await.expect("release the lock");
    other.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_is_reported_and_cleared_when_the_limit_is_raised() {
    // 60 workers a poll: the database and its write-ahead log reach 1 MiB after about ten
    // polls.
    let mut daemon = start(60, Some(1024 * 1024)).await;
    daemon
        .wait_for_log(FAULT_STARTS, Duration::from_secs(120))
        .await;
    let (status, reason, _) = daemon.readyz().await;
    assert_eq!(status, 503);
    assert!(reason.is_some());
    assert_eq!(daemon.metric("vastwatch_database_up").await, 0.0);
    // Polling goes on; the polls wait in memory.
    assert!(
        wait_until(Duration::from_secs(10), || async {
            daemon.metric("vastwatch_database_backlog_polls").await >= 3.0
        })
        .await
    );
    assert!(daemon.child_alive(), "SIGXFSZ did not end the daemon");

    let waiting = daemon.metric("vastwatch_database_backlog_polls").await as i64;
    let stored = count_polls(&daemon.database).await;
    let raised_at = now_secs();
    set_file_size_limit(daemon.child.id() as libc::pid_t, libc::RLIM_INFINITY)
        .expect("raise the child's limit");
    daemon
        .wait_for_log(FAULT_CLEARS, Duration::from_secs(15))
        .await;
    daemon.wait_until_ready().await;
    assert_eq!(daemon.metric("vastwatch_database_up").await, 1.0);
    daemon.polls_go_on().await;
    let database = daemon.database.clone();
    let (log, _dir) = daemon.stop();
    assert_eq!(log.matches(FAULT_STARTS).count(), 1, "{log}");
    assert_eq!(log.matches(FAULT_CLEARS).count(), 1, "{log}");
    assert_history_is_whole(&database, raised_at, stored + waiting).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_deleted_while_running_is_recreated_with_everything_it_held() {
    let daemon = start(3, None).await;
    wait_for_polls(&daemon.database, 3).await;
    daemon.wait_until_ready().await;
    let first_poll = first_poll_at(&daemon.database).await;

    for suffix in ["", "-wal", "-shm"] {
        let mut path = daemon.database.clone().into_os_string();
        path.push(suffix);
        std::fs::remove_file(&path).expect("delete the database");
    }
    daemon
        .wait_for_log("The database file is recreated", Duration::from_secs(10))
        .await;
    daemon.assert_recreated(1.0, first_poll).await;

    // Deleted again while no file can be written: the daemon keeps writing the open copy
    // and reports the fault until it can recreate the file.
    set_file_size_limit(daemon.child.id() as libc::pid_t, 0).expect("lower the limit");
    let stored = count_polls(&daemon.database).await;
    std::fs::remove_file(&daemon.database).expect("delete the database again");
    assert!(
        wait_until(Duration::from_secs(10), || async {
            daemon.readyz().await.0 == 503
                && daemon.metric("vastwatch_database_backlog_polls").await >= 2.0
        })
        .await,
        "the fault is reported and polls wait in memory"
    );
    let (_, reason, _) = daemon.readyz().await;
    let reason = reason.expect("the database check failed");
    assert!(reason.contains("deleted"), "{reason}");
    assert_eq!(daemon.metric("vastwatch_database_up").await, 0.0);
    let waiting = daemon.metric("vastwatch_database_backlog_polls").await as i64;
    let raised_at = now_secs();
    set_file_size_limit(daemon.child.id() as libc::pid_t, libc::RLIM_INFINITY)
        .expect("raise the limit");
    daemon.assert_recreated(2.0, first_poll).await;

    let database = daemon.database.clone();
    let (log, _dir) = daemon.stop();
    assert_eq!(log.matches("deleted while open").count(), 2, "{log}");
    assert_eq!(
        log.matches("The database file is recreated").count(),
        2,
        "{log}"
    );
    // Everything stored before the second deletion, and the polls that waited in memory
    // until the file could be recreated, are in the recreated file.
    assert_history_is_whole(&database, raised_at, stored + waiting).await;
}

async fn first_poll_at(database: &Path) -> f64 {
    let pool = open_database(database).await;
    let first: f64 = sqlx::query("SELECT min(started_at) FROM polls")
        .fetch_one(&pool)
        .await
        .expect("first poll")
        .get(0);
    pool.close().await;
    first
}

/// In process, on a manual clock: polls that waited out a locked database are written
/// oldest first and evaluated then, each at its own time, so an alert whose `for:`
/// elapsed during the fault fires at the poll that completed it, once.
#[tokio::test(flavor = "multi_thread")]
async fn polls_that_waited_are_evaluated_in_order_at_their_own_times() {
    let dir = TempDir::new().expect("temp dir");
    let clock = Clock::manual(T0);
    let scenario =
        "name: s\nfleets:\n  - endpoint: 1\n    load: 10\n    workers: [{id: 1, perf: 100}]\n";
    let simulator = start_simulator(scenario, &clock, TEST_KEY).await;
    let rules = "rules:\n  - alert: Up\n    scope: fleet\n    expr: workers > 0\n    for: 20s\n";
    let path = write_config_with_rules(dir.path(), &simulator.base_url(), rules, "");
    let daemon = start_daemon(&path, &test_env(), &clock).await;
    let (_stopping, stop) = watch::channel(false);
    let tick = |second: u64| {
        clock.set(at(secs(second)));
        daemon.tick_once(at(secs(second)), &stop)
    };
    let database = dir.path().join("vastwatch.db");
    assert_eq!(tick(0).await.stored.len(), 1);

    // Locked through three ticks: each poll is taken, its write fails after the busy
    // timeout, and it waits in memory; the alert's `for: 20s` elapses meanwhile.
    let other = lock(&database).await;
    for second in [10, 20, 30] {
        let report = tick(second).await;
        assert!(report.stored.is_empty());
        // Each retry writes the oldest waiting poll first, and fails.
        let retried = &report.unstored;
        assert_eq!(retried.len(), 1, "at {second}s");
        assert_eq!(retried[0].started_at, at(secs(10)), "at {second}s");
    }
    assert!(!daemon.store().health().is_up());
    assert_eq!(daemon.store().health().backlog().len(), 3);
    release(other).await;

    let report = tick(40).await;
    let written: Vec<i64> = report
        .stored
        .iter()
        .map(|poll| (poll.started_at.unix_millis() - T0.unix_millis()) / 1000)
        .collect();
    assert_eq!(written, [10, 20, 30, 40], "oldest first, then this tick's");
    assert!(daemon.store().health().is_up());
    assert!(daemon.store().health().backlog().is_empty());
    // The alert fired at the poll that completed its `for:`, not when it was written,
    // and each transition is stored once.
    let up = |at: i64, from: &str, to: &str| {
        (at, "Up".to_string(), None, from.to_string(), to.to_string())
    };
    assert_eq!(
        transitions(&database).await,
        [up(0, "inactive", "pending"), up(20, "pending", "firing")]
    );
    assert_eq!(count_polls(&database).await, 5);
}

/// A write no retry could store (its target's row was deleted behind vastwatch's back) is
/// dropped, not kept: it would hold up every later poll and report the database down.
#[tokio::test]
async fn a_poll_no_retry_could_store_is_dropped_rather_than_held() {
    let app = TestApp::spawn(
        "name: s\nfleets:\n  - endpoint: 1\n    load: 10\n    workers: [{id: 1, perf: 100}]\n",
        "",
    )
    .await;
    let mut other = SqliteConnectOptions::new()
        .filename(app.database())
        .connect()
        .await
        .expect("a second connection");
    other
        .execute("DELETE FROM targets")
        .await
        .expect("delete the target");
    other.close().await.expect("close");
    let report = app.tick_at(secs(0)).await;
    assert_eq!(report.unstored.len(), 1);
    // Dropped, but still a failed write in the statistics.
    let errors = &app.daemon.stats().store_errors;
    assert_eq!(errors.load(std::sync::atomic::Ordering::Relaxed), 1);
    let health = app.daemon.store().health();
    assert!(health.is_up());
    assert!(health.backlog().is_empty());
}
