//! Storage as an operator meets it: the daemon's retention rolls old polls up, `history`
//! prints the rollups, `db stats` measures a real file, and the completion scripts and
//! man page cover every command.

use clap::CommandFactory;
use serde_json::Value;
use sqlx::Row;
use vastwatch::cli::Cli;

use crate::helpers::*;

const STEADY: &str = r#"
name: steady
fleets:
  - endpoint: 1
    load: 150
    workers:
      - {id: 101, perf: 100, reliability: 0.99}
      - {id: 102, perf: 100, reliability: 0.97}
"#;

/// Two buckets of polls (T0 to T0 + 9m50s), then the clock moves past retention.samples
/// (14 days by default) for the first bucket only.
async fn app_with_rolled_up_first_bucket() -> TestApp {
    let app = TestApp::spawn(STEADY, "").await;
    for tick in 0..60 {
        app.tick_at(secs(tick * 10)).await;
    }
    app.clock.set(at(secs(14 * 86_400 + 300)));
    let deleted = app.daemon.retention_once().await.expect("retention");
    assert_eq!(
        (deleted.polls, deleted.samples, deleted.rolled_up),
        (30, 60, 1),
        "the first five minutes (30 polls of 2 workers) become one rollup"
    );
    app
}

async fn table_rows(pool: &sqlx::SqlitePool, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {table}");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_rolls_expired_polls_up_and_history_reads_them_where_raw_is_gone() {
    let app = app_with_rolled_up_first_bucket().await;
    let pool = app.sql().await;
    let rollup =
        sqlx::query("SELECT bucket, polls, workers_avg, load_avg, load_max FROM fleet_rollups")
            .fetch_one(&pool)
            .await
            .expect("one rollup");
    assert_eq!(rollup.get::<i64, _>("bucket"), T0.unix_millis() / 1000);
    assert_eq!(rollup.get::<i64, _>("polls"), 30);
    assert_eq!(rollup.get::<f64, _>("workers_avg"), 2.0);
    let load: f64 = sqlx::query_scalar("SELECT avg(load) FROM fleet_samples")
        .fetch_one(&pool)
        .await
        .expect("raw load");
    assert!(load > 0.0);
    assert_eq!(
        (
            rollup.get::<f64, _>("load_avg"),
            rollup.get::<f64, _>("load_max")
        ),
        (load, load),
        "a steady load averages to itself"
    );

    let config = app.dir.path().join("vastwatch.yaml");
    let (code, stdout, stderr) = run(&mut vastwatch(&[
        "history",
        "--config",
        config.to_str().expect("utf-8"),
        "--format",
        "json",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let rows: Value = serde_json::from_str(&stdout).expect("json");
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 1 + 30, "one rollup, then the raw polls");
    assert_eq!(rows[0]["resolution"], "5m");
    assert_eq!(rows[0]["polls"], 30);
    assert_eq!(rows[0]["polled_at"], T0.to_rfc3339());
    assert_eq!(rows[0]["workers"], 2);
    assert!(
        rows[1..]
            .iter()
            .all(|row| row["resolution"] == "raw" && row["polls"] == 1)
    );
    assert_eq!(rows[1]["polled_at"], at(secs(300)).to_rfc3339());
}

#[tokio::test(flavor = "multi_thread")]
async fn db_stats_prints_rows_and_sizes_per_table_and_the_span_of_samples() {
    let app = app_with_rolled_up_first_bucket().await;
    let config = app.dir.path().join("vastwatch.yaml");
    let config = config.to_str().expect("utf-8");
    let (code, stdout, stderr) =
        run(
            vastwatch(&["db", "stats", "--config", config, "--format", "json"])
                .env_remove("TEST_VAST_KEY"),
        );
    assert_eq!(code, 0, "db stats needs no API key: {stderr}");
    let stats: Value = serde_json::from_str(&stdout).expect("json");
    let table = |name: &str| -> Value {
        stats["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|table| table["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` in {stats:#}"))
            .clone()
    };
    let pool = app.sql().await;
    for name in [
        "polls",
        "worker_samples",
        "fleet_totals",
        "fleet_rollups",
        "targets",
    ] {
        assert_eq!(table(name)["rows"], table_rows(&pool, name).await, "{name}");
        assert_eq!(table(name)["kind"], "table");
        assert!(
            table(name)["bytes"].as_u64().expect("bytes") >= 4096,
            "{name}"
        );
    }
    assert_eq!(table("worker_samples")["rows"], 60);
    assert_eq!(table("polls_by_time")["kind"], "index");
    assert_eq!(table("polls_by_time")["table"], "polls");
    assert_eq!(table("polls_by_time")["rows"], Value::Null);
    let measured: u64 = stats["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|table| table["bytes"].as_u64().expect("bytes"))
        .sum();
    let file_bytes = stats["file_bytes"].as_u64().expect("file_bytes");
    assert!(
        measured > 0 && measured <= file_bytes && file_bytes.is_multiple_of(4096),
        "tables {measured} bytes, file {file_bytes}"
    );
    assert_eq!(stats["oldest_sample"], at(secs(300)).to_rfc3339());
    assert_eq!(stats["newest_sample"], at(secs(590)).to_rfc3339());
    assert_eq!(stats["oldest_rollup"], T0.to_rfc3339());

    let (code, stdout, stderr) = run(&mut vastwatch(&["db", "stats", "--config", config]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("name "), "{stdout}");
    assert!(
        stdout.contains(&format!("oldest sample:  {}", at(secs(300)).to_rfc3339())),
        "{stdout}"
    );
}

#[test]
fn db_stats_without_a_database_is_exit_3_naming_it() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let config = write_config(
        dir.path(),
        "http://127.0.0.1:9",
        "",
        "  - name: t\n    endpoint: 1\n",
        "",
    );
    let (code, _, stderr) = run(&mut vastwatch(&[
        "db",
        "stats",
        "--config",
        config.to_str().expect("utf-8"),
    ]));
    assert_eq!(code, 3);
    assert!(
        stderr.contains("vastwatch.db` does not exist yet"),
        "{stderr}"
    );
}

/// Every subcommand name, nested ones included (`silence add`, `db stats`).
fn subcommand_names() -> Vec<String> {
    let command = Cli::command();
    let mut names = Vec::new();
    for subcommand in command.get_subcommands() {
        names.push(subcommand.get_name().to_string());
        for nested in subcommand.get_subcommands() {
            names.push(nested.get_name().to_string());
        }
    }
    names
}

#[test]
fn completion_scripts_name_every_subcommand_for_each_shell() {
    let names = subcommand_names();
    assert!(names.contains(&"completions".to_string()));
    assert!(names.contains(&"stats".to_string()));
    for shell in ["bash", "zsh", "fish"] {
        let (code, script, stderr) = run(&mut vastwatch(&["completions", shell]));
        assert_eq!(code, 0, "{shell}: {stderr}");
        assert!(script.contains("vastwatch"), "{shell}");
        for name in &names {
            assert!(
                script.contains(name.as_str()),
                "{shell} script lacks `{name}`"
            );
        }
    }
    let (code, _, stderr) = run(&mut vastwatch(&["completions", "tcsh"]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("bash"),
        "the error lists the shells: {stderr}"
    );
}

#[test]
fn the_man_page_is_roff_and_names_every_subcommand() {
    let (code, page, stderr) = run(&mut vastwatch(&["man"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq"),
        "{}",
        &page[..80.min(page.len())]
    );
    assert!(page.contains(".TH vastwatch 1"), "{page}");
    // roff escapes hyphens: poll-once is written poll\-once.
    for subcommand in Cli::command().get_subcommands() {
        let name = subcommand.get_name().replace('-', "\\-");
        assert!(
            page.contains(&format!("vastwatch\\-{name}(1)")),
            "man page lacks `{name}`"
        );
    }
}

#[test]
fn man_with_a_folder_writes_a_page_for_every_command() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let (code, _, stderr) = run(&mut vastwatch(&[
        "man",
        "--dir",
        dir.path().to_str().expect("utf-8"),
    ]));
    assert_eq!(code, 0, "{stderr}");
    let mut expected = vec!["vastwatch.1".to_string()];
    for subcommand in Cli::command().get_subcommands() {
        expected.push(format!("vastwatch-{}.1", subcommand.get_name()));
        for nested in subcommand.get_subcommands() {
            expected.push(format!(
                "vastwatch-{}-{}.1",
                subcommand.get_name(),
                nested.get_name()
            ));
        }
    }
    for page in &expected {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|error| panic!("{page}: {error}"));
        assert!(text.contains(".SH SYNOPSIS"), "{page}");
    }
    assert!(
        std::fs::read_to_string(dir.path().join("vastwatch-db-stats.1"))
            .expect("db stats page")
            .contains("\\-\\-format")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn db_backup_copies_the_live_database_and_never_overwrites() {
    let app = app_with_rolled_up_first_bucket().await;
    let config = app.dir.path().join("vastwatch.yaml");
    let config = config.to_str().expect("utf-8");
    let backup = app.dir.path().join("backup.db");
    let backup_arg = backup.to_str().expect("utf-8");
    let (code, stdout, stderr) = run(&mut vastwatch(&[
        "db", "backup", "--config", config, backup_arg,
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), format!("backed up to {backup_arg}"));

    let live = app.sql().await;
    let copy = open_database(&backup).await;
    for table in [
        "polls",
        "worker_samples",
        "fleet_rollups",
        "alerts",
        "targets",
    ] {
        assert_eq!(
            table_rows(&copy, table).await,
            table_rows(&live, table).await,
            "{table}"
        );
    }
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&copy)
        .await
        .expect("integrity check");
    assert_eq!(integrity, "ok");

    let (code, _, stderr) = run(&mut vastwatch(&[
        "db", "backup", "--config", config, backup_arg,
    ]));
    assert_eq!(code, 3);
    assert_eq!(
        stderr.trim(),
        format!("error: cannot back up to `{backup_arg}`: it already exists; choose a new file")
    );
}
