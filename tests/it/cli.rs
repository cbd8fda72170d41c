//! The binary as a user runs it: exit codes, `check`, `--version`, `poll-once`, `history`
//! and the demo.

use serde_json::Value;
use vastwatch::clock::Clock;

use crate::helpers::*;

#[test]
fn version_prints_the_version_and_build() {
    let (code, stdout, _) = run(&mut vastwatch(&["--version"]));
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with(&format!("vastwatch {} (build ", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
}

#[test]
fn check_accepts_the_shipped_example_and_summarises_it() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/vastwatch.yaml");
    let (code, stdout, stderr) = run(vastwatch(&["check", "--config", example])
        .env("VAST_API_KEY", "k1")
        .env("OTHER_ACCOUNT_KEY", "k2"));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("  - llama-prod (endpoint 123) labels {team=ml} vars {max_reqs=4}"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  - llama-prod-group (worker_group 1001)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("metrics:   per-worker series off"),
        "{stdout}"
    );
    assert!(stdout.contains("config is valid"));
}

#[test]
fn check_exits_2_naming_file_line_and_column() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "targets:\n  - name: a\n    endpont: 1\n").expect("write");
    let (code, stdout, stderr) = run(&mut vastwatch(&[
        "check",
        "--config",
        path.to_str().expect("utf-8"),
    ]));
    assert_eq!(code, 2, "{stdout}");
    assert_eq!(
        stderr.trim(),
        format!(
            "error: {}:3:5: unknown key `endpont`; did you mean `endpoint`?",
            path.display()
        )
    );
}

#[test]
fn a_missing_config_or_secret_is_exit_2() {
    let (code, _, stderr) = run(&mut vastwatch(&[
        "check",
        "--config",
        "/nonexistent/v.yaml",
    ]));
    assert_eq!(code, 2);
    assert!(stderr.contains("config file not found"), "{stderr}");

    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, "targets:\n  - name: a\n    endpoint: 1\n").expect("write");
    let (code, _, stderr) = run(
        vastwatch(&["check", "--config", path.to_str().expect("utf-8")]).env_remove("VAST_API_KEY"),
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("`VAST_API_KEY` is not set"), "{stderr}");
}

#[test]
fn an_unopenable_database_is_exit_3() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = write_config(
        dir.path(),
        "http://127.0.0.1:9",
        "",
        "  - name: t\n    endpoint: 1\n",
        "",
    );
    let yaml = std::fs::read_to_string(&path)
        .expect("read")
        .replace("database: vastwatch.db", "database: no/such/folder/v.db");
    std::fs::write(&path, yaml).expect("write");
    let (code, _, stderr) = run(&mut vastwatch(&[
        "poll-once",
        "--config",
        path.to_str().expect("utf-8"),
    ]));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
}

const STEADY_PAIR: &str = r#"
name: pair
fleets:
  - endpoint: 1
    load: 100
    workers:
      - {id: 101, perf: 100, reliability: 0.99}
      - {id: 102, perf: 100, reliability: 0.97, status: {0s: loading}}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn poll_once_stores_a_tick_that_history_prints_in_every_format() {
    let clock = Clock::manual(T0);
    let simulator = start_simulator(STEADY_PAIR, &clock, TEST_KEY).await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    let config = write_config(
        dir.path(),
        &simulator.base_url(),
        "",
        "  - name: t\n    endpoint: 1\n",
        "",
    );
    let config = config.to_str().expect("utf-8").to_string();

    let (code, stdout, stderr) = run(&mut vastwatch(&["poll-once", "--config", &config]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), "t: ok, 2 workers");

    let (code, stdout, stderr) =
        run(
            vastwatch(&["history", "--config", &config, "--format", "json"])
                .env_remove("TEST_VAST_KEY"),
        );
    assert_eq!(code, 0, "history needs no API key: {stderr}");
    let rows: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(1));
    assert_eq!(rows[0]["target"], "t");
    assert_eq!(rows[0]["workers"], 2);
    assert_eq!(rows[0]["ready"], 1);
    assert_eq!(rows[0]["starting"], 1);

    let (code, stdout, _) = run(&mut vastwatch(&[
        "history", "--config", &config, "--worker", "102", "--format", "csv",
    ]));
    assert_eq!(code, 0);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "polled_at,target,worker_id,status,cur_load,new_load,cur_load_rolling_avg,cur_perf,\
         measured_perf,perf,reliability,dlperf,reqs_working,disk_usage,loaded_at,extra"
    );
    assert_eq!(lines.len(), 2);
    assert!(lines[1].contains(",t,102,loading,"), "{}", lines[1]);

    let (code, stdout, _) = run(&mut vastwatch(&[
        "history", "--config", &config, "--since", "1h",
    ]));
    assert_eq!(code, 0);
    assert!(stdout.starts_with("polled_at"), "{stdout}");

    let (code, _, stderr) = run(&mut vastwatch(&[
        "history", "--config", &config, "--since", "soon",
    ]));
    assert_eq!(code, 2);
    assert!(stderr.contains("--since"), "{stderr}");
    simulator.shutdown().await.expect("shutdown");
}

#[test]
fn the_demo_runs_with_no_setup_and_leaves_a_database_to_query() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let (code, stdout, stderr) = run(&mut vastwatch(&[
        "demo",
        "--duration",
        "4s",
        "--speed",
        "60",
        "--dir",
        dir.path().to_str().expect("utf-8"),
        "--listen",
        "127.0.0.1:0",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("vastwatch demo: scenario `tour`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("status page: http://127.0.0.1:"),
        "the page's URL: {stdout}"
    );
    assert!(stdout.contains("workers"), "no poll lines: {stdout}");
    assert!(stdout.contains("Demo finished:"), "{stdout}");
    assert!(stdout.contains("SELECT target"), "{stdout}");
    assert!(dir.path().join("vastwatch.db").exists());
}
