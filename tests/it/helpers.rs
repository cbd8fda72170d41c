//! `TestApp`: a simulator and a daemon sharing a manual clock, with a fresh database.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Row, SqlitePool};
use tempfile::TempDir;
use tokio::sync::watch;
use vastwatch::clock::Clock;
use vastwatch::config::Config;
use vastwatch::daemon::{Daemon, TickReport};
use vastwatch::sim::{RunningSimulator, Scenario, SimOptions, Simulator};
use vastwatch::time::Timestamp;

/// The scenario epoch of every test: 2026-01-01T00:00:00Z, a multiple of any interval.
pub const T0: Timestamp = Timestamp::from_unix_millis(1_767_225_600_000);
pub const TEST_KEY: &str = "test-key-4f1c9a";

pub fn at(offset: Duration) -> Timestamp {
    T0.saturating_add(offset)
}

pub fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// Starts the simulator with `scenario_yaml` on 127.0.0.1:0, reading time from `clock`.
pub async fn start_simulator(
    scenario_yaml: &str,
    clock: &Clock,
    api_key: &str,
) -> RunningSimulator {
    let scenario = Scenario::from_yaml(scenario_yaml, "test scenario").expect("valid scenario");
    Simulator::new(
        scenario,
        SimOptions {
            api_key: Some(api_key.to_string()),
            clock: clock.clone(),
            start: T0,
        },
    )
    .serve(SocketAddr::from(([127, 0, 0, 1], 0)))
    .await
    .expect("simulator binds port 0")
}

/// Starts the simulator with `scenario` on 127.0.0.1:0, its time starting at `clock`'s
/// now, for tests of the real binary on real (or accelerated) time.
pub async fn start_simulator_now(scenario: Scenario, clock: Clock) -> RunningSimulator {
    Simulator::new(
        scenario,
        SimOptions {
            api_key: Some(TEST_KEY.to_string()),
            ..SimOptions::starting_now(clock)
        },
    )
    .serve(SocketAddr::from(([127, 0, 0, 1], 0)))
    .await
    .expect("simulator binds port 0")
}

/// Rows in `polls` of the database at `database`; 0 while it or its schema does not exist
/// yet (a daemon may be creating them).
pub async fn count_polls(database: &Path) -> i64 {
    if !database.exists() {
        return 0;
    }
    let pool = open_database(database).await;
    let count = sqlx::query("SELECT count(*) AS n FROM polls")
        .fetch_one(&pool)
        .await
        .map(|row| row.get::<i64, _>("n"))
        .unwrap_or(0);
    pool.close().await;
    count
}

/// Writes a config file into `dir` that polls `base_url` and serves the HTTP API on a free
/// loopback port; `extra` adds YAML at the top level (it may override nothing that is
/// already set here).
pub fn write_config(dir: &Path, base_url: &str, api: &str, targets: &str, extra: &str) -> PathBuf {
    let path = dir.join("vastwatch.yaml");
    let yaml = format!(
        "database: vastwatch.db\nlisten: 127.0.0.1:0\napi:\n  base_url: {base_url}\n  api_key_env: TEST_VAST_KEY\n{api}\
         schedule: 10s\njitter: 0s\ntargets:\n{targets}{extra}"
    );
    std::fs::write(&path, yaml).expect("write config");
    path
}

/// Writes `rules` to `rules.yaml` in `dir` and a config that loads it, with one endpoint
/// target `t` (id 1) polled every 10 s; `extra` adds YAML at the top level.
pub fn write_config_with_rules(dir: &Path, base_url: &str, rules: &str, extra: &str) -> PathBuf {
    std::fs::write(dir.join("rules.yaml"), rules).expect("rules file");
    write_config(
        dir,
        base_url,
        "",
        "  - name: t\n    endpoint: 1\n",
        &format!("rules: [rules.yaml]\n{extra}"),
    )
}

/// Loads the config at `path` (reading `env` for its variables) and its rule files, and
/// starts a daemon on `clock`.
pub async fn start_daemon(path: &Path, env: &BTreeMap<String, String>, clock: &Clock) -> Daemon {
    let config = Config::load(path, env).expect("config");
    let rules = vastwatch::daemon::load_rules(&config).expect("rules");
    Daemon::start(config, rules, clock.clone())
        .await
        .expect("daemon starts")
}

pub fn test_env() -> BTreeMap<String, String> {
    BTreeMap::from([("TEST_VAST_KEY".to_string(), TEST_KEY.to_string())])
}

/// A daemon and a simulator on one manual clock.
pub struct TestApp {
    pub dir: TempDir,
    pub clock: Clock,
    pub simulator: RunningSimulator,
    pub daemon: Daemon,
    pub stop: watch::Receiver<bool>,
    _stop_sender: watch::Sender<bool>,
}

impl TestApp {
    /// One endpoint target `t` (id 1) polled every 10 s; `api` holds extra `api:` keys
    /// (each line indented by two spaces).
    pub async fn spawn(scenario_yaml: &str, api: &str) -> TestApp {
        TestApp::spawn_with_targets(scenario_yaml, api, "  - name: t\n    endpoint: 1\n").await
    }

    pub async fn spawn_with_targets(scenario_yaml: &str, api: &str, targets: &str) -> TestApp {
        let dir = TempDir::new().expect("temp dir");
        let clock = Clock::manual(T0);
        let simulator = start_simulator(scenario_yaml, &clock, TEST_KEY).await;
        let config_path = write_config(dir.path(), &simulator.base_url(), api, targets, "");
        let config = Config::load(&config_path, &test_env()).expect("valid config");
        let daemon = Daemon::start(config, vastwatch::rules::RuleSet::empty(), clock.clone())
            .await
            .expect("daemon starts");
        let (stop_sender, stop) = watch::channel(false);
        TestApp {
            dir,
            clock,
            simulator,
            daemon,
            stop,
            _stop_sender: stop_sender,
        }
    }

    /// Moves the clock to T0 + `offset` and runs one tick there.
    pub async fn tick_at(&self, offset: Duration) -> TickReport {
        self.clock.set(at(offset));
        self.daemon.tick_once(at(offset), &self.stop).await
    }

    pub fn database(&self) -> PathBuf {
        self.dir.path().join("vastwatch.db")
    }

    /// A separate read connection to the database file, as an operator's sqlite3 would be.
    pub async fn sql(&self) -> SqlitePool {
        open_database(&self.database()).await
    }
}

/// Ticks every 10 s from 0 to `last` seconds; returns the seconds at which target `t` was
/// polled, and checks that every other tick skipped it for a 429 back-off.
pub async fn ticks_that_polled(app: &TestApp, last: u64) -> Vec<u64> {
    let mut polled_at = Vec::new();
    for second in (0..=last).step_by(10) {
        let report = app.tick_at(secs(second)).await;
        if report.stored.is_empty() {
            assert_eq!(
                report.skipped_backing_off,
                vec!["t".to_string()],
                "at {second}s"
            );
        } else {
            polled_at.push(second);
        }
    }
    polled_at
}

pub async fn open_database(path: &Path) -> SqlitePool {
    SqlitePool::connect_with(SqliteConnectOptions::new().filename(path).read_only(true))
        .await
        .expect("open database")
}

/// One `polls` row, as the tests compare it.
#[derive(Debug, Clone, PartialEq)]
pub struct PollRow {
    pub outcome: String,
    pub http_status: Option<i64>,
    pub error: Option<String>,
    pub worker_count: Option<i64>,
}

pub async fn poll_rows(pool: &SqlitePool) -> Vec<PollRow> {
    sqlx::query(
        "SELECT outcome, http_status, error, worker_count FROM polls ORDER BY started_at, id",
    )
    .fetch_all(pool)
    .await
    .expect("query polls")
    .iter()
    .map(|row| PollRow {
        outcome: row.get("outcome"),
        http_status: row.get("http_status"),
        error: row.get("error"),
        worker_count: row.get("worker_count"),
    })
    .collect()
}

/// Waits (on real time, polling a condition) until `condition` holds or `limit` passes.
pub async fn wait_until<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        if condition().await {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Makes a config written by [`write_config`] poll every second, for tests on real time.
pub fn poll_every_second(config: &Path) {
    let yaml = std::fs::read_to_string(config)
        .expect("read config")
        .replace("schedule: 10s", "schedule: 1s");
    std::fs::write(config, yaml).expect("write config");
}

/// Starts the real `vastwatch run` on `config` with the test key, stderr captured.
pub fn spawn_run(config: &Path) -> std::process::Child {
    run_command(config).spawn().expect("spawn vastwatch run")
}

/// `vastwatch run` on `config` with the test key, stdout discarded and stderr piped, for
/// callers that add arguments or environment before spawning.
pub fn run_command(config: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vastwatch"));
    command
        .args(["run", "--config", config.to_str().expect("utf-8 path")])
        .env("TEST_VAST_KEY", TEST_KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    command
}

/// The stderr lines of a child process, collected by a thread as they arrive.
pub struct StderrLines {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl StderrLines {
    /// Takes the child's piped stderr and starts collecting it.
    pub fn collect(child: &mut std::process::Child) -> StderrLines {
        use std::io::BufRead;
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lines").push(line);
            }
        });
        StderrLines { lines, reader }
    }

    /// Everything the child wrote so far.
    pub fn text_so_far(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    /// How many lines so far contain `text`.
    pub fn count(&self, text: &str) -> usize {
        let lines = self.lines.lock().expect("lines");
        lines.iter().filter(|line| line.contains(text)).count()
    }

    /// Everything the child wrote, once it has exited and its stderr is read to the end.
    pub fn finish(self) -> String {
        let _ = self.reader.join();
        self.lines.lock().expect("lines").join("\n")
    }

    /// The address `vastwatch run` logged as its HTTP API's, once it has.
    pub async fn api_address(&self) -> Option<String> {
        self.logged_field("HTTP API listening.", "address=").await
    }

    /// The value after `field` (`addr=`) on the first line logging `message`, once there is
    /// one (within 30 s).
    pub async fn logged_field(&self, message: &str, field: &str) -> Option<String> {
        let mut found = None;
        wait_until(Duration::from_secs(30), || {
            found = self
                .lines
                .lock()
                .expect("lines")
                .iter()
                .find(|line| line.contains(message))
                .and_then(|line| line.split(field).nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_string);
            let done = found.is_some();
            async move { done }
        })
        .await;
        found
    }
}

/// The `vastwatch` binary with `args`, in a clean environment but for the test API key.
pub fn vastwatch(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vastwatch"));
    command
        .args(args)
        .env_remove("VASTWATCH_CONFIG")
        .env_remove("RUST_LOG")
        .env("TEST_VAST_KEY", TEST_KEY);
    command
}

/// Runs a command to the end: exit code, stdout, stderr.
pub fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("vastwatch runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}
