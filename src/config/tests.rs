//! Config loading: every error names the file, line, column and key.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;

fn env() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("VAST_API_KEY".to_string(), "key-default".to_string()),
        ("OTHER_KEY".to_string(), "key-other".to_string()),
        ("EMPTY_KEY".to_string(), String::new()),
    ])
}

fn load(text: &str) -> Result<Config, String> {
    Config::parse(Path::new("/etc/vastwatch/vastwatch.yaml"), text, &env())
        .map_err(|e| e.to_string())
}

const FULL: &str = r#"
database: data/vastwatch.db
api:
  base_url: http://127.0.0.1:8080/
  api_key_env: VAST_API_KEY
  timeout: 5s
  concurrency: 4
  max_body: 1MiB
schedule: "*/10 * * * * *"
jitter: 500ms
targets:
  - name: llama-prod
    endpoint: 123
    labels: {team: ml}
    vars: {max_reqs: 4}
    scaling:
      target_util: 0.8
      min_workers: 2
      max_workers: 20
      cold_start: 3m
  - name: llama-group
    worker_group: 1001
    api_key_env: OTHER_KEY
retention:
  samples: 7d
  rollups: 730d
  alerts: 60d
  recommendations: 45d
"#;

#[test]
fn a_full_config_loads_into_validated_types() {
    let config = load(FULL).expect("valid config");
    assert_eq!(
        config.database.sqlite_path(),
        Some(Path::new("/etc/vastwatch/data/vastwatch.db"))
    );
    assert_eq!(config.api.base_url, "http://127.0.0.1:8080");
    assert_eq!(config.api.timeout, Duration::from_secs(5));
    assert_eq!(config.api.concurrency, 4);
    assert_eq!(config.api.max_body, 1024 * 1024);
    assert_eq!(config.jitter, Duration::from_millis(500));
    assert_eq!(config.retention.samples, Duration::from_secs(7 * 86_400));
    assert_eq!(config.retention.rollups, Duration::from_secs(730 * 86_400));
    assert_eq!(config.retention.alerts, Duration::from_secs(60 * 86_400));
    assert_eq!(
        config.retention.recommendations,
        Duration::from_secs(45 * 86_400)
    );
    assert_eq!(config.schedule.to_string(), "cron \"*/10 * * * * *\" (UTC)");

    let prod = &config.targets[0];
    assert_eq!(prod.kind, TargetKind::Endpoint);
    assert_eq!(prod.vast_id, 123);
    assert_eq!(prod.labels["team"], "ml");
    assert_eq!(prod.vars["max_reqs"], 4.0);
    assert_eq!(prod.api_key.expose(), "key-default");
    assert_eq!(prod.scaling.target_util, 0.8);
    assert_eq!(prod.scaling.min_workers, Some(2));
    assert_eq!(prod.scaling.max_workers, Some(20));
    assert_eq!(prod.scaling.cold_start, Duration::from_secs(180));
    assert_eq!(
        prod.scaling.tolerance, 0.1,
        "unset keys keep their defaults"
    );

    let group = &config.targets[1];
    assert_eq!(group.kind, TargetKind::WorkerGroup);
    assert_eq!(group.api_key.expose(), "key-other");
}

#[test]
fn defaults_apply_when_keys_are_left_out() {
    let config = load("targets:\n  - name: a\n    endpoint: 1\n").expect("valid config");
    assert_eq!(
        config.database.sqlite_path(),
        Some(Path::new("/etc/vastwatch/vastwatch.db"))
    );
    assert_eq!(config.api.base_url, "https://run.vast.ai");
    assert_eq!(config.api.timeout, Duration::from_secs(10));
    assert_eq!(config.api.concurrency, 16);
    assert_eq!(config.api.max_body, 16 * 1024 * 1024);
    assert_eq!(config.schedule.to_string(), "every 10s");
    assert_eq!(config.jitter, Duration::from_secs(2));
    let day = |days: u64| Duration::from_secs(days * 86_400);
    let retention = &config.retention;
    assert_eq!(
        [
            retention.samples,
            retention.rollups,
            retention.alerts,
            retention.recommendations,
            retention.notifications,
            retention.silences
        ],
        [day(14), day(400), day(90), day(90), day(30), day(30)]
    );
    assert_eq!(config.targets[0].api_key.expose(), "key-default");
}

#[test]
fn mistakes_name_the_file_line_column_and_key() {
    const FILE: &str = "/etc/vastwatch/vastwatch.yaml";
    let mut mismatches = Vec::new();
    for (text, expected) in [
        (
            "api:\n  timeot: 10s\ntargets: []\n",
            "2:3: unknown key `timeot`; did you mean `timeout`?",
        ),
        (
            "targets:\n  - name: a\n    endpont: 1\n",
            "3:5: unknown key `endpont`; did you mean `endpoint`?",
        ),
        (
            "targts: []\n",
            "1:1: unknown key `targts`; did you mean `targets`?",
        ),
        (
            "api:\n  concurrency: lots\ntargets: []\n",
            "2:16: key `concurrency`: invalid u32",
        ),
        (
            "api:\n  timeout: 10\ntargets: []\n",
            "2:12: key `api.timeout`: `10` is not a duration; write a number and a unit: ms, s, m, h or d (e.g. 30s)",
        ),
        (
            "schedule: every minute\ntargets: []\n",
            "1:11: key `schedule`: `every minute` has 2 fields; write a cron expression with a seconds field (6 fields, e.g. \"*/10 * * * * *\") or a duration such as 10s",
        ),
        (
            "api:\n  max_body: 16 parsecs\ntargets: []\n",
            "2:13: key `api.max_body`: `parsecs` is not a size unit; use B, KiB, MiB, GiB, KB, MB or GB",
        ),
        (
            "retention:\n  rollups: forever\ntargets: []\n",
            "2:12: key `retention.rollups`: `forever` is not a duration; write a number and a unit: ms, s, m, h or d (e.g. 30s)",
        ),
        (
            "api:\n  base_url: ftp://x\ntargets: []\n",
            "2:13: key `api.base_url`: must be http:// or https://",
        ),
        (
            "targets:\n  - name: a\n",
            "2:5: target `a`: needs `endpoint: ID` or `worker_group: ID`",
        ),
        (
            "targets:\n  - name: a\n    endpoint: 1\n    worker_group: 2\n",
            "4:19: target `a`: give `endpoint` or `worker_group`, not both",
        ),
        (
            "targets:\n  - name: a\n    endpoint: -4\n",
            "3:15: target `a`: the id must be a positive number",
        ),
        (
            "targets:\n  - name: a\n    endpoint: 1\n  - name: a\n    endpoint: 2\n",
            "4:11: key `name`: target `a` is defined twice; names must be unique",
        ),
        (
            "targets:\n  - name: a\n    endpoint: 1\n    labels: {severity: high}\n",
            "2:5: target `a`: label `severity` is reserved; vastwatch sets it itself",
        ),
        (
            "targets:\n  - name: a\n    endpoint: 1\n    labels: {team-name: x}\n",
            "2:5: target `a`: label name `team-name` must match [a-zA-Z_][a-zA-Z0-9_]*",
        ),
        (
            "targets:\n  - name: a\n    endpoint: 1\n    api_key_env: MISSING_KEY\n",
            "4:18: key `targets[a].api_key_env`: environment variable `MISSING_KEY` is not set",
        ),
        (
            // A pasted key is not repeated into the error (and so into logs).
            "api:\n  api_key_env: 3f9c2b7e1d4a\ntargets:\n  - name: a\n    endpoint: 1\n",
            "2:16: key `api.api_key_env`: takes the name of an environment variable (such as \
             `VAST_API_KEY`), and no variable of this name is set; if this is the secret itself, \
             move it into a variable (it is not repeated here)",
        ),
        (
            "api:\n  api_key_env: EMPTY_KEY\ntargets:\n  - name: a\n    endpoint: 1\n",
            "2:16: key `api.api_key_env`: environment variable `EMPTY_KEY` is empty",
        ),
        ("database: x\n", "1:1: missing key `targets`"),
        (
            "ha: {}\ntargets:\n  - name: a\n    endpoint: 1\n",
            "1:5: key `ha`: replicas share a PostgreSQL database (`database: postgres://...` or `database_env`); a SQLite file has one process",
        ),
        (
            "ha: {mode: shards}\ntargets:\n  - name: a\n    endpoint: 1\n",
            "1:12: key `ha.mode`: unknown mode `shards`; expected `leader` or `shard`",
        ),
        (
            "ha: {failover: 500ms}\ntargets:\n  - name: a\n    endpoint: 1\n",
            "1:16: key `ha.failover`: must be at least 1s",
        ),
        (
            "ha: {replica_id: ' '}\ntargets:\n  - name: a\n    endpoint: 1\n",
            "1:18: key `ha.replica_id`: must be a non-empty line of text",
        ),
        (
            "targets:\n  - name: a\n    endpoint: 1\n    scaling: {min_workers: 5, max_workers: 2}\n",
            "4:14: target `a`: scaling.min_workers (5) is above scaling.max_workers (2)",
        ),
        (
            "targets:\n  - name: a\n    endpoint: 1\n    scaling: {target_util: 1.5}\n",
            "4:28: key `scaling.target_util` of target `a`: must be a number above 0, at most 1",
        ),
        (
            "targets:\n  - name: a\n    endpoint: 1\n    scaling: {cold_strat: 5m}\n",
            "4:15: unknown key `cold_strat`; did you mean `cold_start`?",
        ),
        (
            "metrics:\n  per_workers: true\ntargets: []\n",
            "2:3: unknown key `per_workers`; did you mean `per_worker`?",
        ),
        (
            "metrics:\n  per_worker: sometimes\ntargets: []\n",
            "2:15: key `per_worker`: invalid boolean",
        ),
    ] {
        let actual = load(text).err().unwrap_or_else(|| "loaded".to_string());
        if actual != format!("{FILE}:{expected}") {
            mismatches.push(format!(
                "for {text:?}\n  expected {FILE}:{expected}\n  actual   {actual}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn a_missing_default_key_variable_is_reported_at_load() {
    let error = Config::parse(
        Path::new("c.yaml"),
        "targets:\n  - name: a\n    endpoint: 1\n",
        &BTreeMap::new(),
    )
    .expect_err("no key in the environment");
    assert_eq!(
        error.to_string(),
        "c.yaml: environment variable `VAST_API_KEY` is not set; it holds the Vast API key (the \
         default of `api.api_key_env`)"
    );
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let error =
        Config::load(Path::new("/nonexistent/vastwatch.yaml"), &env()).expect_err("missing file");
    assert_eq!(
        error.to_string(),
        "/nonexistent/vastwatch.yaml: config file not found; pass --config FILE or set VASTWATCH_CONFIG"
    );
}

#[test]
fn the_summary_lists_targets_without_secrets() {
    let config = load(FULL).expect("valid config");
    let summary = config.summary();
    assert!(summary.contains("  - llama-prod (endpoint 123) labels {team=ml} vars {max_reqs=4}"));
    assert!(summary.contains("  - llama-group (worker_group 1001)"));
    assert!(
        summary.contains(
            "retention: samples 7d, rollups 730d, alerts 60d, recommendations 45d, \
             notifications 30d, silences 30d"
        ),
        "{summary}"
    );
    assert!(!summary.contains("key-default") && !summary.contains("key-other"));
    assert!(!format!("{config:?}").contains("key-default"));
}

#[test]
fn per_worker_metrics_are_off_unless_asked_for_and_the_summary_says_which() {
    let off = load("targets:\n  - name: a\n    endpoint: 1\n").expect("valid config");
    assert!(!off.metrics.per_worker);
    assert!(off.summary().contains("metrics:   per-worker series off\n"));
    let on = load("metrics: {per_worker: true}\ntargets:\n  - name: a\n    endpoint: 1\n")
        .expect("valid config");
    assert!(on.metrics.per_worker);
    assert!(on.summary().contains("metrics:   per-worker series on\n"));
}

#[test]
fn sizes_parse_in_binary_and_decimal_units() {
    assert_eq!(parse_size("16MiB"), Ok(16 * 1024 * 1024));
    assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
    assert_eq!(parse_size("1MB"), Ok(1_000_000));
    assert_eq!(parse_size("1000"), Ok(1000));
    assert!(parse_size("0").is_err());
    assert!(parse_size("lots").is_err());
}

#[test]
fn database_takes_a_file_a_sqlite_url_or_a_postgres_url_without_password() {
    let database = |text: &str| load(&format!("{text}targets: []\n")).map(|c| c.database);
    assert_eq!(
        database("database: sqlite:data/v.db\n").unwrap(),
        Database::Sqlite("/etc/vastwatch/data/v.db".into())
    );
    let postgres = database("database: postgres://vw@db.internal/watch\n").unwrap();
    assert_eq!(postgres.to_string(), "postgres://vw@db.internal:5432/watch");
    assert!(postgres.sqlite_path().is_none() && !postgres.is_missing());

    let error = database("database: postgres://vw:hunter2@db.internal/watch\n").unwrap_err();
    assert!(
        error.starts_with("/etc/vastwatch/vastwatch.yaml:1:")
            && error.contains("key `database`")
            && error.contains("database_env"),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
}

#[test]
fn database_env_reads_the_url_from_the_environment_and_never_shows_the_password() {
    let url = "postgres://vw:hunter2@db.internal:6432/watch";
    let env = BTreeMap::from([("DB_URL".to_string(), url.to_string())]);
    let parse = |text: &str| {
        Config::parse(Path::new("/etc/vastwatch/vastwatch.yaml"), text, &env)
            .map_err(|e| e.to_string())
    };
    let config = parse("database_env: DB_URL\ntargets: []\n").expect("valid config");
    let Database::Postgres(postgres) = &config.database else {
        panic!("DB_URL holds a PostgreSQL URL");
    };
    assert_eq!(postgres.expose(), url);
    let shown = "postgres://vw@db.internal:6432/watch";
    assert!(config.summary().contains(&format!("database:  {shown}")));
    assert!(!config.summary().contains("hunter2"));
    assert!(!format!("{config:?}").contains("hunter2"));

    for (text, expected) in [
        (
            "database_env: NOPE\ntargets: []\n",
            "1:15: key `database_env`: environment variable `NOPE` is not set",
        ),
        (
            "database: a.db\ndatabase_env: DB_URL\ntargets: []\n",
            "2:15: key `database_env`: set either `database` or `database_env`, not both",
        ),
    ] {
        let error = parse(text).unwrap_err();
        assert!(error.ends_with(expected), "{error}");
    }
}

#[test]
fn ha_defaults_to_leader_mode_with_a_15s_failover_and_a_host_pid_id() {
    let config = load("targets:\n  - name: a\n    endpoint: 1\n").expect("valid config");
    assert_eq!(config.ha, None, "without `ha:` one process leads alone");

    let mut env = env();
    env.insert("HOSTNAME".to_string(), "node-7".to_string());
    env.insert(
        "DB_URL".to_string(),
        "postgres://vw:pw@db.internal/watch".to_string(),
    );
    let text = "database_env: DB_URL\nha: {}\ntargets:\n  - name: a\n    endpoint: 1\n";
    let config = Config::parse(Path::new("/etc/vastwatch/vastwatch.yaml"), text, &env)
        .expect("valid config");
    let ha = config.ha.expect("ha set");
    assert_eq!(ha.mode, HaMode::Leader);
    assert_eq!(ha.failover, Duration::from_secs(15));
    assert_eq!(ha.replica_id, format!("node-7-{}", std::process::id()));

    let text = "database: postgres://vw@db/watch\nha: {failover: 2s, replica_id: b}\n\
                targets:\n  - name: a\n    endpoint: 1\n";
    let ha = load(text).expect("valid config").ha.expect("ha set");
    assert_eq!(
        (ha.failover, ha.replica_id.as_str()),
        (Duration::from_secs(2), "b")
    );
}

#[test]
fn a_config_lists_at_most_the_target_limit() {
    let with_targets = |count: usize| {
        let mut text = String::from("targets:\n");
        for index in 0..count {
            text.push_str(&format!(
                "  - {{name: t{index}, endpoint: {}}}\n",
                index + 1
            ));
        }
        load(&text)
    };
    let config = with_targets(MAX_TARGETS).expect("at the limit");
    assert_eq!(config.targets.len(), MAX_TARGETS);
    assert_eq!(
        with_targets(MAX_TARGETS + 1).map(|config| config.targets.len()),
        Err(format!(
            "/etc/vastwatch/vastwatch.yaml:{}:5: key `targets`: more than 1000 targets; split them across instances",
            MAX_TARGETS + 2
        ))
    );
}

#[test]
fn a_config_that_is_not_utf8_names_the_line_and_column_of_the_bad_byte() {
    let bytes = b"targets:\n  - name: caf\xe9\n";
    assert_eq!(
        Config::from_bytes(Path::new("vastwatch.yaml"), bytes, &env(), &FileSystem)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err("vastwatch.yaml:2:14: not UTF-8 text; save the file as UTF-8".to_string())
    );
}
