//! Hot reload: a good change takes effect, a broken file keeps the old config running,
//! alert state of unchanged rules survives, removed targets stop being polled but keep
//! their history, and changed files are noticed when `reload.watch` is on. The service
//! runs on a manual clock against the simulator; one test drives the real binary with
//! SIGHUP.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::Row;
use tokio::sync::{mpsc, oneshot, watch};
use vastwatch::clock::Clock;
use vastwatch::config::Config;
use vastwatch::daemon::{Daemon, load_rules};
use vastwatch::service::{FileSource, ReloadObserver, ReloadReply, Service};
use vastwatch::sim::RunningSimulator;

use crate::helpers::*;

/// Worker 101 turns unreliable at 1m10s; the load stays at 100 throughout.
const SCENARIO: &str = r#"
name: reload
fleets:
  - endpoint: 1
    load: 100
    workers:
      - {id: 101, perf: 200, reliability: {0s: 0.99, 1m: 0.99, 1m10s: 0.5}}
      - {id: 102, perf: 200}
  - endpoint: 2
    load: 10
    workers:
      - {id: 201, perf: 100}
"#;

const UNRELIABLE: &str = "  - alert: Unreliable\n    scope: worker\n    expr: reliability < 0.9\n";

fn rules_with(extra: &str) -> String {
    format!("rules:\n{UNRELIABLE}{extra}")
}

const OVERLOADED_300: &str = "  - alert: Overloaded\n    scope: fleet\n    expr: load > 300\n";
const OVERLOADED_50: &str = "  - alert: Overloaded\n    scope: fleet\n    expr: load > 50\n";

const BOTH_TARGETS: &str = "  - name: t\n    endpoint: 1\n  - name: u\n    endpoint: 2\n";

/// Counts reload outcomes, as the metrics would.
#[derive(Default)]
struct Outcomes {
    ok: AtomicU32,
    failed: AtomicU32,
}

impl ReloadObserver for Outcomes {
    fn reloaded(&self, ok: bool) {
        let counter = if ok { &self.ok } else { &self.failed };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

struct Running {
    dir: tempfile::TempDir,
    config: PathBuf,
    clock: Clock,
    second: u64,
    daemon: watch::Receiver<Arc<Daemon>>,
    reload: mpsc::Sender<ReloadReply>,
    outcomes: Arc<Outcomes>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    _simulator: RunningSimulator,
}

impl Running {
    async fn start(targets: &str, extra: &str) -> Running {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let clock = Clock::manual(T0);
        let simulator = start_simulator(SCENARIO, &clock, TEST_KEY).await;
        std::fs::write(dir.path().join("rules.yaml"), rules_with(OVERLOADED_300)).expect("rules");
        let config = write_config(
            dir.path(),
            &simulator.base_url(),
            "",
            targets,
            &format!("rules: [rules.yaml]\n{extra}"),
        );
        let loaded = Config::load(&config, &test_env()).expect("valid config");
        let rules = load_rules(&loaded).expect("rules load");
        let source = FileSource {
            path: config.clone(),
            env: Box::new(test_env()),
        };
        let outcomes = Arc::new(Outcomes::default());
        let service = Service::start(
            Box::new(source),
            loaded,
            rules,
            clock.clone(),
            Box::new(|daemon| daemon),
        )
        .await
        .expect("service starts")
        .with_observer(Arc::clone(&outcomes) as Arc<dyn ReloadObserver>);
        let daemon = service.daemon();
        let reload = service.reload_sender();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            service
                .run(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("service runs");
        });
        Running {
            dir,
            config,
            clock,
            second: 0,
            daemon,
            reload,
            outcomes,
            stop,
            task,
            _simulator: simulator,
        }
    }

    /// Moves the clock on `step` seconds at a time until `condition` holds over the
    /// database (or a minute of real time passes on a very busy machine).
    async fn advance_until(&mut self, step: u64, query: &str) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if self.count(query).await > 0 {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            self.second += step;
            self.clock.set(at(secs(self.second)));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn count(&self, query: &str) -> i64 {
        count_in(&self.dir.path().join("vastwatch.db"), query).await
    }

    async fn reload(&self) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.reload.send(reply).await.expect("service listens");
        answer.await.expect("service answers")
    }

    fn write_rules(&self, text: &str) {
        write_atomically(&self.dir.path().join("rules.yaml"), text);
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("service task");
    }
}

/// A count over the database at `path`, 0 while it does not exist yet.
async fn count_in(path: &Path, query: &str) -> i64 {
    if !path.exists() {
        return 0;
    }
    let pool = open_database(path).await;
    let found = sqlx::query(sqlx::AssertSqlSafe(query.to_string()))
        .fetch_one(&pool)
        .await
        .map(|row| row.get::<i64, _>(0))
        .unwrap_or(0);
    pool.close().await;
    found
}

/// Saves the way editors do: a new file renamed over the old one.
fn write_atomically(path: &Path, text: &str) {
    let temporary = path.with_extension("swp");
    std::fs::write(&temporary, text).expect("write");
    std::fs::rename(&temporary, path).expect("rename");
}

const UNRELIABLE_FIRING: &str =
    "SELECT COUNT(*) FROM alerts WHERE alertname = 'Unreliable' AND state = 'firing'";
const OVERLOADED_FIRING: &str =
    "SELECT COUNT(*) FROM alerts WHERE alertname = 'Overloaded' AND state = 'firing'";

#[tokio::test(flavor = "multi_thread")]
async fn a_good_change_takes_effect_and_unchanged_rules_keep_their_state() {
    let mut app = Running::start("  - name: t\n    endpoint: 1\n", "").await;
    assert!(app.advance_until(10, UNRELIABLE_FIRING).await);
    let fired_at: f64 = app
        .count("SELECT CAST(fired_at * 1000 AS INTEGER) FROM alerts WHERE alertname = 'Unreliable'")
        .await as f64;
    let before = Arc::clone(&app.daemon.borrow());

    app.write_rules(&rules_with(OVERLOADED_50));
    app.reload().await.expect("the new rules load");
    assert!(
        !Arc::ptr_eq(&before, &app.daemon.borrow()),
        "a new daemon runs"
    );
    assert!(
        app.advance_until(10, OVERLOADED_FIRING).await,
        "the changed rule fires under the new threshold"
    );

    // The unchanged rule carried its instance over: one firing transition, same start.
    let firings = app
        .count("SELECT COUNT(*) FROM alert_events e JOIN alerts a USING (fingerprint) WHERE a.alertname = 'Unreliable' AND e.to_state = 'firing'")
        .await;
    assert_eq!(
        firings, 1,
        "Unreliable fired once, before and after the reload"
    );
    let fired_after = app
        .count("SELECT CAST(fired_at * 1000 AS INTEGER) FROM alerts WHERE alertname = 'Unreliable'")
        .await as f64;
    assert_eq!(fired_at, fired_after);
    assert_eq!(app.count(UNRELIABLE_FIRING).await, 1);
    assert_eq!(app.outcomes.ok.load(Ordering::SeqCst), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_file_keeps_the_old_config_running() {
    let mut app = Running::start("  - name: t\n    endpoint: 1\n", "").await;
    assert!(app.advance_until(10, "SELECT COUNT(*) FROM polls").await);
    let before = Arc::clone(&app.daemon.borrow());

    // A misspelt identifier: the error names the file, line and column, and suggests.
    app.write_rules(&rules_with(
        "  - alert: Overloaded\n    scope: fleet\n    expr: lod > 50\n",
    ));
    let error = app.reload().await.expect_err("the broken rule is refused");
    assert!(error.contains("rules.yaml:7:11:"), "{error}");
    assert!(error.contains("did you mean `load`?"), "{error}");
    assert!(
        Arc::ptr_eq(&before, &app.daemon.borrow()),
        "the old daemon runs on"
    );

    // A broken config file is refused the same way.
    app.write_rules(&rules_with(OVERLOADED_300));
    let config = std::fs::read_to_string(&app.config).expect("config");
    write_atomically(&app.config, &config.replace("jitter: 0s", "jitter: soon"));
    let error = app
        .reload()
        .await
        .expect_err("the broken config is refused");
    assert!(error.contains("vastwatch.yaml:"), "{error}");
    assert!(error.contains("jitter"), "{error}");
    // The database cannot move under a running daemon.
    write_atomically(
        &app.config,
        &config.replace("database: vastwatch.db", "database: other.db"),
    );
    let error = app.reload().await.expect_err("a new database is refused");
    assert!(error.contains("key `database`"), "{error}");
    assert_eq!(app.outcomes.failed.load(Ordering::SeqCst), 3);
    assert_eq!(app.outcomes.ok.load(Ordering::SeqCst), 0);

    // The old rules still evaluate: Unreliable fires on schedule.
    assert!(app.advance_until(10, UNRELIABLE_FIRING).await);
    assert_eq!(app.count(OVERLOADED_FIRING).await, 0);
    assert!(Arc::ptr_eq(&before, &app.daemon.borrow()));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_target_stops_being_polled_and_keeps_its_history() {
    let mut app = Running::start(BOTH_TARGETS, "").await;
    const U_POLLS: &str =
        "SELECT COUNT(*) FROM polls p JOIN targets t ON t.id = p.target_id WHERE t.name = 'u'";
    assert!(
        app.advance_until(10, &format!("SELECT ({U_POLLS}) >= 3"))
            .await
    );
    let config = std::fs::read_to_string(&app.config).expect("config");
    write_atomically(
        &app.config,
        &config.replace("  - name: u\n    endpoint: 2\n", ""),
    );
    app.reload().await.expect("one target fewer is fine");
    let kept = app.count(U_POLLS).await;
    let t_polls =
        "SELECT COUNT(*) FROM polls p JOIN targets t ON t.id = p.target_id WHERE t.name = 't'";
    let t_before = app.count(t_polls).await;
    assert!(
        app.advance_until(10, &format!("SELECT ({t_polls}) >= {}", t_before + 5))
            .await
    );
    assert_eq!(app.count(U_POLLS).await, kept, "u is no longer polled");
    assert!(kept >= 3, "u's history stays");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM worker_samples WHERE worker_id = 201")
            .await,
        kept
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_rule_file_is_reloaded_when_watching() {
    let mut app = Running::start(
        "  - name: t\n    endpoint: 1\n",
        "reload: {watch: true, watch_interval: 1s}\n",
    )
    .await;
    assert!(app.advance_until(1, "SELECT COUNT(*) FROM polls").await);
    let before = Arc::clone(&app.daemon.borrow());
    app.write_rules(&rules_with(OVERLOADED_50));
    assert!(
        app.advance_until(1, OVERLOADED_FIRING).await,
        "the saved file was picked up"
    );
    assert!(!Arc::ptr_eq(&before, &app.daemon.borrow()));
    assert_eq!(app.outcomes.ok.load(Ordering::SeqCst), 1);

    // A broken save is tried once, refused, and not retried until the file changes.
    app.write_rules("rules: [");
    let attempts = || app.outcomes.failed.load(Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while attempts() == 0 && std::time::Instant::now() < deadline {
        app.second += 1;
        app.clock.set(at(secs(app.second)));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(attempts(), 1);
    for _ in 0..10 {
        app.second += 1;
        app.clock.set(at(secs(app.second)));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(attempts(), 1, "an unchanged broken file is not retried");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_running_binary_reloads_on_sighup_and_on_post_reload() {
    let clock = Clock::real();
    let simulator = start_simulator(SCENARIO, &clock, TEST_KEY).await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    std::fs::write(dir.path().join("rules.yaml"), rules_with(OVERLOADED_300)).expect("rules");
    let config = write_config(
        dir.path(),
        &simulator.base_url(),
        "",
        "  - name: t\n    endpoint: 1\n",
        "rules: [rules.yaml]\n",
    );
    poll_every_second(&config);
    let mut child = spawn_run(&config);
    let stderr = StderrLines::collect(&mut child);
    let address = stderr
        .api_address()
        .await
        .expect("the API address is logged");
    let database = dir.path().join("vastwatch.db");
    assert!(
        wait_until(Duration::from_secs(30), || async {
            count_in(&database, "SELECT COUNT(*) FROM polls").await > 0
        })
        .await,
        "the daemon stored no polls"
    );
    write_atomically(&dir.path().join("rules.yaml"), &rules_with(OVERLOADED_50));
    let hangup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(hangup.success());
    let fired = wait_until(Duration::from_secs(30), || async {
        count_in(&database, OVERLOADED_FIRING).await > 0
    })
    .await;

    // Over HTTP: a broken file answers 400 with where the mistake is; the old rules stay.
    write_atomically(&dir.path().join("rules.yaml"), "rules: [\n");
    vastwatch::poll::install_tls_provider();
    let client = reqwest::Client::new();
    let refused = client
        .post(format!("http://{address}/-/reload"))
        .send()
        .await
        .expect("reload request");
    let refused_status = refused.status().as_u16();
    let refused_body = refused.text().await.expect("body");
    let scrape = || async {
        client
            .get(format!("http://{address}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    };
    let after_refusal = scrape().await;
    write_atomically(&dir.path().join("rules.yaml"), &rules_with(OVERLOADED_50));
    let accepted = client
        .post(format!("http://{address}/-/reload"))
        .send()
        .await
        .expect("reload request")
        .status()
        .as_u16();
    let healthy = client
        .get(format!("http://{address}/healthz"))
        .send()
        .await
        .expect("healthz")
        .status()
        .as_u16();

    let after_success = scrape().await;

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait");
    let log = stderr.finish();
    assert!(
        after_refusal.contains("vastwatch_config_last_reload_successful 0"),
        "{after_refusal}"
    );
    assert!(
        after_success.contains("vastwatch_config_last_reload_successful 1"),
        "{after_success}"
    );
    assert!(fired, "the reloaded rule fired: {log}");
    assert_eq!(refused_status, 400, "{refused_body}");
    assert!(refused_body.contains("rules.yaml:"), "{refused_body}");
    assert_eq!(accepted, 200);
    assert_eq!(healthy, 200);
    assert_eq!(log.matches("Config reloaded.").count(), 2, "{log}");
    assert!(log.contains("Reload failed"), "{log}");
    assert_eq!(status.code(), Some(0), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_rule_resolves_its_firing_alerts() {
    let mut app = Running::start("  - name: t\n    endpoint: 1\n", "").await;
    assert!(app.advance_until(10, UNRELIABLE_FIRING).await);
    app.write_rules(&format!("rules:\n{OVERLOADED_300}"));
    app.reload().await.expect("fewer rules load");
    // Nothing produces the instance any more: it resolves instead of firing forever.
    assert_eq!(app.count(UNRELIABLE_FIRING).await, 0);
    let resolved = app
        .count("SELECT COUNT(*) FROM alert_events e JOIN alerts a USING (fingerprint) WHERE a.alertname = 'Unreliable' AND e.from_state = 'firing' AND e.to_state = 'resolved'")
        .await;
    assert_eq!(resolved, 1);
    // Polling goes on under the new rules, and the ended alert stays ended.
    let polls = app.count("SELECT COUNT(*) FROM polls").await;
    assert!(
        app.advance_until(10, &format!("SELECT COUNT(*) >= {} FROM polls", polls + 3))
            .await
    );
    assert_eq!(app.count(UNRELIABLE_FIRING).await, 0);
    app.stop().await;
}
