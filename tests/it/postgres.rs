//! The real binary on PostgreSQL: `poll-once` with `database_env` stores a tick that the
//! tables and `history` show, and the URL's password appears in no output or error.
//!
//! The server is `VASTWATCH_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test works in a schema of its own
//! and drops it. Without a server the test says so on one line and passes.

use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPool};
use vastwatch::clock::Clock;

use crate::helpers::*;

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Put into the URL when the server's URL has no password of its own; the test server
/// trusts local connections, so it is never asked for.
const FAKE_PASSWORD: &str = "pgpass-SECRET-51c0de";

const TWO_WORKERS: &str = r#"
name: two
fleets:
  - endpoint: 1
    load: 40
    workers:
      - {id: 101, perf: 100, reliability: 0.99}
      - {id: 102, perf: 100, reliability: 0.97, status: {0s: loading}}
"#;

/// A schema of its own on the test server.
pub(crate) struct Schema {
    /// On the server's default search path, to drop the schema.
    pool: PgPool,
    /// With the schema as search path, to read the tables.
    pub(crate) tables: PgPool,
    name: String,
    /// The URL the binary gets: the server, a password, and the schema as search path.
    pub(crate) url: String,
    password: String,
}

pub(crate) async fn schema() -> Option<Schema> {
    let server = std::env::var("VASTWATCH_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_SERVER.to_string());
    let connecting = PgPool::connect(&server);
    let Ok(Ok(pool)) = tokio::time::timeout(secs(3), connecting).await else {
        println!("skipping: no PostgreSQL at {DEFAULT_SERVER} (set VASTWATCH_TEST_POSTGRES)");
        return None;
    };
    let name = format!("vw_it_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
        .execute(&pool)
        .await
        .expect("create schema");
    let options: PgConnectOptions = server.parse().expect("the server URL parses");
    let tables = PgPool::connect_with(options.options([("search_path", name.as_str())]))
        .await
        .expect("connect to the schema");
    let mut url = reqwest::Url::parse(&server).expect("the server URL parses");
    let password = match url.password() {
        Some(password) => password.to_string(),
        None => {
            url.set_password(Some(FAKE_PASSWORD)).expect("a password");
            FAKE_PASSWORD.to_string()
        }
    };
    let separator = if url.query().is_some() { '&' } else { '?' };
    let url = format!("{url}{separator}options[search_path]={name}");
    Some(Schema {
        pool,
        tables,
        name,
        url,
        password,
    })
}

impl Schema {
    async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&self.tables)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
    }

    pub(crate) async fn drop(self) {
        self.tables.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.name
        )))
        .execute(&self.pool)
        .await
        .expect("drop schema");
        self.pool.close().await;
    }
}

/// A config whose database is the URL in `VASTWATCH_DATABASE_URL`.
fn write_postgres_config(dir: &std::path::Path, base_url: &str) -> String {
    let path = write_config(dir, base_url, "", "  - name: t\n    endpoint: 1\n", "");
    let yaml = std::fs::read_to_string(&path).expect("config");
    let yaml = yaml.replace(
        "database: vastwatch.db\n",
        "database_env: VASTWATCH_DATABASE_URL\n",
    );
    std::fs::write(&path, yaml).expect("config");
    path.to_str().expect("utf-8").to_string()
}

fn assert_hidden(password: &str, transcript: &[(i32, String, String)]) {
    for (_, stdout, stderr) in transcript {
        assert!(
            !stdout.contains(password) && !stderr.contains(password),
            "the password leaked:\n{stdout}\n{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn poll_once_with_database_env_stores_the_tick_in_postgres() {
    let Some(schema) = schema().await else {
        return;
    };
    let clock = Clock::manual(T0);
    let simulator = start_simulator(TWO_WORKERS, &clock, TEST_KEY).await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    let config = write_postgres_config(dir.path(), &simulator.base_url());
    let with_url = |args: &[&str]| {
        let mut command = vastwatch(args);
        command.env("VASTWATCH_DATABASE_URL", &schema.url);
        run(&mut command)
    };

    let mut transcript = Vec::new();
    let polled = with_url(&["poll-once", "--config", &config]);
    assert_eq!(polled.0, 0, "{}", polled.2);
    assert_eq!(polled.1.trim(), "t: ok, 2 workers");
    transcript.push(polled);

    assert_eq!(schema.scalar("SELECT count(*) FROM polls").await, 1);
    assert_eq!(
        schema
            .scalar("SELECT count(*) FROM worker_samples WHERE worker_id IN (101, 102)")
            .await,
        2
    );
    assert_eq!(
        schema
            .scalar("SELECT workers + 10 * ready + 100 * starting FROM fleet_samples")
            .await,
        2 + 10 + 100,
        "two workers, one ready, one starting"
    );
    assert!(
        !std::fs::exists(dir.path().join("vastwatch.db")).expect("stat"),
        "no SQLite file is created"
    );

    let history = with_url(&["history", "--config", &config, "--format", "json"]);
    assert_eq!(history.0, 0, "{}", history.2);
    let rows: Value = serde_json::from_str(&history.1).expect("json");
    assert_eq!(rows[0]["workers"], 2);
    transcript.push(history);

    let shown = "database:  postgres://postgres@127.0.0.1:5432/postgres";
    let check = with_url(&["check", "--config", &config]);
    assert_eq!(check.0, 0, "{}", check.2);
    assert!(check.1.contains(shown), "{}", check.1);
    transcript.push(check);

    let stats = with_url(&["db", "stats", "--config", &config]);
    assert_eq!(stats.0, 0, "{}", stats.2);
    assert!(stats.1.contains("worker_samples"), "{}", stats.1);
    transcript.push(stats);

    let backup_file = dir.path().join("backup.db");
    let backup = with_url(&[
        "db",
        "backup",
        "--config",
        &config,
        backup_file.to_str().expect("utf-8"),
    ]);
    assert_ne!(backup.0, 0);
    assert!(backup.2.contains("pg_dump"), "{}", backup.2);
    transcript.push(backup);

    assert_hidden(&schema.password, &transcript);
    schema.drop().await;
}

#[test]
fn a_database_password_appears_in_no_error() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let config = write_postgres_config(dir.path(), "http://127.0.0.1:9");
    let with_password = format!("postgres://vw:{FAKE_PASSWORD}@127.0.0.1:9/watch");
    let mut transcript = Vec::new();

    // In the file: refused, pointing at the line and at `database_env`.
    let yaml = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        yaml.replace(
            "database_env: VASTWATCH_DATABASE_URL\n",
            &format!("database: {with_password}\n"),
        ),
    )
    .expect("config");
    let refused = run(&mut vastwatch(&["check", "--config", &config]));
    assert_ne!(refused.0, 0);
    assert!(
        refused.2.contains("vastwatch.yaml:1:") && refused.2.contains("database_env"),
        "{}",
        refused.2
    );
    transcript.push(refused);

    // From the environment, for a server that does not answer: the error names it without
    // the password.
    std::fs::write(&config, yaml).expect("config");
    let unreachable = run(vastwatch(&["poll-once", "--config", &config])
        .env("VASTWATCH_DATABASE_URL", &with_password));
    assert_ne!(unreachable.0, 0);
    assert!(
        unreachable.2.contains("postgres://vw@127.0.0.1:9/watch"),
        "{}",
        unreachable.2
    );
    transcript.push(unreachable);

    assert_hidden(FAKE_PASSWORD, &transcript);
}

/// In process, on a manual clock, against PostgreSQL: a batch large enough to be written
/// in two transactions at once (two fleets of 12,000 workers, stored together after an
/// outage) where the server refuses one fleet's samples. The other fleet's part is stored
/// and its alert committed; the refused poll waits in memory and is evaluated and stored
/// once, in order, when the server takes it, so no poll and no transition is stored twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_written_in_parts_keeps_the_parts_that_succeed_and_retries_the_rest() {
    use tokio::sync::watch;

    let Some(schema) = schema().await else {
        return;
    };
    let dir = tempfile::TempDir::new().expect("temp dir");
    let clock = Clock::manual(T0);
    let fleet = |endpoint: u32| {
        let first = endpoint * 100_000;
        let workers: Vec<String> = (first..first + 12_000)
            .map(|id| format!("{{id: {id}, perf: 100}}"))
            .collect();
        let workers = workers.join(", ");
        format!("  - endpoint: {endpoint}\n    load: 10\n    workers: [{workers}]\n")
    };
    let scenario = format!("name: parts\nfleets:\n{}{}", fleet(1), fleet(2));
    let simulator = start_simulator(&scenario, &clock, TEST_KEY).await;
    std::fs::write(
        dir.path().join("rules.yaml"),
        "rules:\n  - alert: Up\n    scope: fleet\n    expr: workers > 0\n",
    )
    .expect("rules file");
    let path = write_config(
        dir.path(),
        &simulator.base_url(),
        "",
        "  - name: a\n    endpoint: 1\n  - name: b\n    endpoint: 2\n",
        "rules: [rules.yaml]\n",
    );
    let yaml = std::fs::read_to_string(&path).expect("config");
    let yaml = yaml.replace(
        "database: vastwatch.db\n",
        "database_env: VASTWATCH_DATABASE_URL\n",
    );
    std::fs::write(&path, yaml).expect("config");
    let mut env = test_env();
    env.insert("VASTWATCH_DATABASE_URL".to_string(), schema.url.clone());
    let daemon = start_daemon(&path, &env, &clock).await;
    let (_stopping, stop) = watch::channel(false);
    let tick = |second: u64| {
        clock.set(at(secs(second)));
        daemon.tick_once(at(secs(second)), &stop)
    };
    let refuse = |condition: String| {
        let tables = schema.tables.clone();
        async move {
            for statement in [
                "DROP TRIGGER IF EXISTS refuse ON worker_samples".to_string(),
                format!(
                    "CREATE OR REPLACE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN IF {condition} THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$"
                ),
                "CREATE TRIGGER refuse BEFORE INSERT ON worker_samples \
                 FOR EACH ROW EXECUTE FUNCTION refuse()"
                    .to_string(),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&tables)
                    .await
                    .expect("trigger");
            }
        }
    };
    // An outage: both fleets' first polls wait in memory.
    refuse("true".to_string()).await;
    let report = tick(0).await;
    assert!(report.stored.is_empty());
    assert_eq!(daemon.store().health().backlog().len(), 2);

    // Only fleet b's samples are refused: the waiting polls of a and b go in one batch of
    // 24,000 samples, written in two parts; a's is stored, b's waits again.
    let b = schema
        .scalar("SELECT id FROM targets WHERE name = 'b'")
        .await;
    refuse(format!("NEW.target_id = {b}")).await;
    let report = tick(10).await;
    let stored: Vec<(String, i64)> = report
        .stored
        .iter()
        .map(|poll| (poll.target.clone(), poll.started_at.unix_millis()))
        .collect();
    assert!(
        stored.contains(&("a".to_string(), at(secs(0)).unix_millis())),
        "{stored:?}"
    );
    assert!(stored.iter().all(|(target, _)| target == "a"), "{stored:?}");
    assert!(report.unstored.iter().any(|poll| poll.target == "b"));
    assert_eq!(
        schema
            .scalar("SELECT count(*) FROM alerts WHERE target = 'a'")
            .await,
        1
    );
    assert_eq!(
        schema
            .scalar("SELECT count(*) FROM alerts WHERE target = 'b'")
            .await,
        0
    );

    // The server takes everything again: b's polls are stored oldest first, once each.
    sqlx::query("DROP TRIGGER refuse ON worker_samples")
        .execute(&schema.tables)
        .await
        .expect("drop trigger");
    for second in [20, 30] {
        tick(second).await;
    }
    assert!(daemon.store().health().backlog().is_empty());
    for target in ["a", "b"] {
        let times: Vec<f64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT p.started_at FROM polls AS p JOIN targets AS t ON t.id = p.target_id \
             WHERE t.name = '{target}' ORDER BY p.id"
        )))
        .fetch_all(&schema.tables)
        .await
        .expect("polls");
        let expected: Vec<f64> = [0, 10, 20, 30]
            .iter()
            .map(|second| at(secs(*second)).unix_secs_f64())
            .collect();
        assert_eq!(times, expected, "fleet {target}: every poll once, in order");
    }
    assert_eq!(
        schema.scalar("SELECT count(*) FROM worker_samples").await,
        8 * 12_000
    );
    // Each fleet's alert fired once, at its first poll.
    let events: Vec<(String, f64)> = sqlx::query_as(
        "SELECT a.target, e.at FROM alert_events AS e JOIN alerts AS a \
         ON a.fingerprint = e.fingerprint ORDER BY a.target, e.id",
    )
    .fetch_all(&schema.tables)
    .await
    .expect("alert events");
    let first = at(secs(0)).unix_secs_f64();
    assert_eq!(
        events,
        [("a".to_string(), first), ("b".to_string(), first)],
        "one transition per fleet"
    );
    vastwatch::daemon::close_store(daemon.store()).await;
    drop(simulator);
    schema.drop().await;
}
