//! Scenario parsing and validation: what loads, and how a bad file is reported.

use super::*;

const MINIMAL: &str = "
name: minimal
fleets:
  - endpoint: 7
    workers:
      - {id: 1, perf: 100}
";

fn parse(yaml: &str) -> Scenario {
    Scenario::from_yaml(yaml, "test.yaml").unwrap_or_else(|err| panic!("{err}"))
}

/// Checks that `yaml` is rejected at `line`:`column`, naming `key`, with a message that
/// contains `message`.
fn check_error(yaml: &str, line: u64, column: u64, key: &str, message: &str) {
    let err = match Scenario::from_yaml(yaml, "test.yaml") {
        Ok(_) => panic!("expected an error naming `{key}`, but it loaded:\n{yaml}"),
        Err(err) => err,
    };
    let text = err.to_string();
    let ScenarioError::Invalid {
        origin,
        line: got_line,
        column: got_column,
        key: got_key,
        message: got_message,
    } = err
    else {
        panic!("expected an Invalid error, got {text}");
    };
    assert_eq!(origin, "test.yaml", "{text}");
    assert_eq!((got_line, got_column), (line, column), "{text}");
    assert_eq!(got_key.as_deref(), Some(key), "{text}");
    assert!(got_message.contains(message), "{text}");
    assert!(
        text.starts_with(&format!("test.yaml:{line}:{column}: `{key}`: ")),
        "{text}"
    );
}

#[test]
fn a_minimal_scenario_gets_the_documented_defaults() {
    let scenario = parse(MINIMAL);
    assert_eq!(scenario.name(), "minimal");
    assert_eq!(scenario.description(), "");
    assert_eq!(scenario.seed(), 0);
    assert_eq!(scenario.duration(), None);
    let fleet = &scenario.fleets()[0];
    assert_eq!(fleet.kind(), TargetKind::Endpoint);
    assert_eq!(fleet.vast_id(), 7);
    assert_eq!(fleet.name(), "endpoint-7");
    assert_eq!(fleet.response_shape(), ResponseShape::List);
    assert_eq!(fleet.load, Curve::Constant(0.0));
    assert_eq!(fleet.noise, 0.0);
    let worker = &fleet.workers[0];
    assert_eq!(worker.max_reqs, DEFAULT_MAX_REQS);
    assert_eq!(worker.reliability, Curve::Constant(DEFAULT_RELIABILITY));
    assert_eq!(worker.status, StepCurve::constant("running"));
    assert_eq!(worker.disk_usage, Curve::Constant(DEFAULT_DISK_USAGE_GB));
    assert_eq!((worker.join, worker.leave), (0.0, None));
    assert!(worker.dlperf.is_none());
}

#[test]
fn every_key_of_the_format_loads() {
    let scenario = parse(
        "
name: full
description: every key
seed: 42
duration: 10m
faults:
  - {at: 9m, kind: http_status, status: 502, body: 'bad gateway', content_type: text/plain}
fleets:
  - worker_group: 9
    name: group
    load: {sine: {mean: 100, amplitude: 50, period: 1h, phase: 15m}}
    noise: 0.1
    response: wrapped
    workers:
      - id: 1
        perf: {0s: 100, 5m: 80}
        reliability: 0.9
        max_reqs: 8
        join: 30s
        leave: 9m
        status: {30s: loading, 2m: RUNNING}
        dlperf: 120
        disk_usage: {0s: 10, 10m: 20}
        extra: {started_at: 1724275000.5, warnings: [low disk]}
        fields: {perf: null, reliability: high}
        omit: [loaded_at]
      - {id: 1, perf: 50, duplicate: true}
    faults:
      - {at: 0s, for: 1m, kind: rate_limit}
      - {at: 1m, for: 1m, kind: timeout, hold: 2s}
      - {at: 2m, for: 1m, kind: error_msg, message: loading}
      - {at: 3m, for: 1m, kind: unauthorized, message: nope}
      - {at: 4m, for: 1m, kind: html, body: '<p>hi</p>'}
      - {at: 5m, for: 1m, kind: truncated}
      - {at: 6m, for: 1m, kind: raw, status: 200, body: '[{\"id\": 1, \"perf\": NaN}]'}
",
    );
    assert_eq!(scenario.seed(), 42);
    assert_eq!(scenario.duration(), Some(Duration::from_secs(600)));
    assert_eq!(scenario.faults.len(), 1);
    let fleet = &scenario.fleets()[0];
    assert_eq!(fleet.kind(), TargetKind::WorkerGroup);
    assert_eq!(fleet.name(), "group");
    assert_eq!(fleet.response_shape(), ResponseShape::Wrapped);
    assert_eq!(
        fleet.load,
        Curve::Sine {
            mean: 100.0,
            amplitude: 50.0,
            period: 3600.0,
            phase: 900.0
        }
    );
    assert_eq!(fleet.worker_count(), 2);
    let worker = &fleet.workers[0];
    assert_eq!((worker.join, worker.leave), (30.0, Some(540.0)));
    assert_eq!(worker.status.at(200.0), "RUNNING");
    assert_eq!(worker.fields["perf"], serde_json::Value::Null);
    assert_eq!(worker.fields["reliability"], serde_json::json!("high"));
    assert_eq!(worker.extra["warnings"], serde_json::json!(["low disk"]));
    assert_eq!(worker.omit, vec!["loaded_at".to_string()]);
    let kinds: Vec<&FaultKind> = fleet.faults.iter().map(|fault| &fault.kind).collect();
    assert_eq!(
        kinds,
        [
            &FaultKind::RateLimit,
            &FaultKind::Timeout {
                hold: Duration::from_secs(2)
            },
            &FaultKind::ErrorMsg {
                message: "loading".into()
            },
            &FaultKind::Unauthorized {
                message: "nope".into()
            },
            &FaultKind::Html {
                body: Some("<p>hi</p>".into())
            },
            &FaultKind::Truncated,
            &FaultKind::Raw {
                status: 200,
                body: "[{\"id\": 1, \"perf\": NaN}]".into(),
                content_type: "application/json".into()
            },
        ]
    );
    assert_eq!(
        scenario.faults[0],
        Fault {
            start: 540.0,
            end: None,
            kind: FaultKind::HttpStatus {
                status: 502,
                body: Some("bad gateway".into()),
                content_type: Some("text/plain".into())
            }
        }
    );
}

#[test]
fn yaml_errors_name_the_file_position_and_key() {
    // An unknown key is named, with the keys that would be valid.
    check_error(
        "name: x\nfleets:\n  - endpoint: 1\n    wokers: []\n",
        4,
        5,
        "wokers",
        "unknown field `wokers`",
    );
    // A value of the wrong type.
    check_error(
        "name: x\nfleets:\n  - endpoint: 1\n    workers:\n      - {id: one, perf: 1}\n",
        5,
        14,
        "id",
        "invalid",
    );
    // A curve that is neither a number, a map nor a sine.
    check_error(
        "name: x\nfleets:\n  - endpoint: 1\n    load: lots\n",
        4,
        5,
        "load",
        "expected a number, a map of times to numbers",
    );
    check_error(
        "name: x\nfleets:\n  - endpoint: 1\n    response: both\n",
        4,
        15,
        "response",
        "unknown variant `both`",
    );
    check_error("fleets: []\n", 1, 1, "fleets", "missing field `name`");
}

#[test]
fn validation_errors_name_the_key_path() {
    let cases: &[(&str, u64, u64, &str, &str)] = &[
        (
            "name: x\nduration: 10\nfleets: [{endpoint: 1}]\n",
            2,
            11,
            "duration",
            "not a duration",
        ),
        (
            "name: x\nfleets: []\n",
            2,
            9,
            "fleets",
            "at least one fleet",
        ),
        (
            "name: x\nfleets:\n  - {endpoint: 1, worker_group: 2}\n",
            3,
            5,
            "fleets[0]",
            "exactly one of",
        ),
        (
            "name: x\nfleets:\n  - {name: a}\n",
            3,
            5,
            "fleets[0]",
            "exactly one of",
        ),
        (
            "name: x\nfleets:\n  - endpoint: 1\n  - endpoint: 1\n",
            4,
            5,
            "fleets[1]",
            "another fleet already is endpoint 1",
        ),
        (
            "name: x\nfleets:\n  - {endpoint: 1, name: a}\n  - {worker_group: 1, name: a}\n",
            4,
            5,
            "fleets[1].name",
            "already is named `a`",
        ),
        (
            "name: x\nfleets:\n  - endpoint: 1\n    noise: 2\n",
            4,
            12,
            "fleets[0].noise",
            "between 0 and 1",
        ),
        (
            "name: x\nfleets:\n  - endpoint: 1\n    load: -5\n",
            4,
            11,
            "fleets[0].load",
            "0 or more",
        ),
        (
            "name: x\nfleets:\n  - endpoint: 1\n    workers:\n      - {id: 1, perf: 1, reliability: {0s: 0.9, 1m: 1.2}}\n",
            5,
            39,
            "fleets[0].workers[0].reliability",
            "between 0 and 1",
        ),
        (
            "name: x\nfleets:\n  - endpoint: 1\n    workers:\n      - {id: 1, perf: {0s: 1, 60s: 2, 1m: 3}}\n",
            5,
            23,
            "fleets[0].workers[0].perf",
            "same time",
        ),
        (
            "name: x\nfleets:\n  - endpoint: 1\n    workers:\n      - {id: 1, perf: {0s: 1, 5y: 3}}\n",
            5,
            31,
            "fleets[0].workers[0].perf",
            "unknown unit `y`",
        ),
        (
            "name: x\nfleets:\n  - endpoint: 1\n    workers:\n      - {id: 1, perf: 1, join: 5m, leave: 2m}\n",
            5,
            43,
            "fleets[0].workers[0].leave",
            "leave after it joins",
        ),
        (
            "name: x\nfleets:\n  - endpoint: 1\n    workers:\n      - {id: 1, perf: 1, max_reqs: 0}\n",
            5,
            36,
            "fleets[0].workers[0].max_reqs",
            "1 or more",
        ),
        (
            "name: x\nfleets:\n  - endpoint: 1\n    workers:\n      - {id: 1, perf: 1}\n      - {id: 1, perf: 1}\n",
            6,
            14,
            "fleets[0].workers[1].id",
            "`duplicate: true`",
        ),
        (
            "name: x\nfleets:\n  - endpoint: 1\n    workers:\n      - {id: 1, perf: 1, extra: {perf: 3}}\n",
            5,
            40,
            "fleets[0].workers[0].extra.perf",
            "under `fields`",
        ),
        (
            "name: x\nfleets:\n  - endpoint: 1\n    faults: [{at: 1m, kind: explode}]\n",
            4,
            29,
            "fleets[0].faults[0].kind",
            "unknown fault kind `explode`",
        ),
        (
            "name: x\nfleets:\n  - endpoint: 1\n    faults: [{at: 1m, kind: rate_limit, status: 500}]\n",
            4,
            49,
            "fleets[0].faults[0].status",
            "takes no `status`",
        ),
        (
            "name: x\nfleets:\n  - endpoint: 1\n    faults: [{at: 1m, kind: http_status, status: 429}]\n",
            4,
            50,
            "fleets[0].faults[0].status",
            "use `rate_limit` for 429",
        ),
        (
            "name: x\nfleets:\n  - endpoint: 1\n    faults: [{at: 1m, kind: raw, body: x}]\n",
            4,
            14,
            "fleets[0].faults[0]",
            "needs `status`",
        ),
        (
            "name: x\nfaults: [{at: 1m, for: 0s, kind: truncated}]\nfleets: [{endpoint: 1}]\n",
            2,
            24,
            "faults[0].for",
            "longer than 0s",
        ),
        (
            "name: x\nfleets:\n  - endpoint: 1\n    load: {sine: {mean: 5, amplitude: 1, period: 0s}}\n",
            4,
            50,
            "fleets[0].load.sine.period",
            "longer than 0s",
        ),
    ];
    for (yaml, line, column, key, message) in cases {
        check_error(yaml, *line, *column, key, message);
    }
}

#[test]
fn builtins_are_listed_and_load_by_name() {
    assert_eq!(
        Scenario::builtin_names(),
        [
            "steady",
            "surge",
            "flaky-worker",
            "saturated",
            "outage",
            "tour"
        ]
    );
    let embedded: Vec<&str> = BUILTINS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        embedded, BUILTIN_NAMES,
        "every embedded file is listed, in order"
    );
    for name in Scenario::builtin_names() {
        let scenario = Scenario::load(name).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(scenario.name(), *name);
        assert!(
            !scenario.description().is_empty(),
            "{name} has no description"
        );
        assert!(Scenario::builtin_yaml(name).is_some());
    }
    assert!(Scenario::builtin("nope").is_none());
}

#[test]
fn builtins_have_both_kinds_of_fleet_and_last_ten_to_thirty_minutes() {
    for name in Scenario::builtin_names() {
        let scenario = Scenario::builtin(name).expect("built-in");
        let kinds: BTreeSet<&str> = scenario
            .fleets()
            .iter()
            .map(|f| f.kind().as_str())
            .collect();
        assert_eq!(
            kinds.len(),
            2,
            "{name} should have an endpoint and a worker group"
        );
        let minutes = scenario
            .duration()
            .expect("built-ins have a duration")
            .as_secs()
            / 60;
        assert!(
            (10..=30).contains(&minutes),
            "{name} lasts {minutes} minutes"
        );
    }
}

#[test]
fn load_reads_a_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, MINIMAL).expect("write");
    let scenario = Scenario::load(good.to_str().expect("utf-8 path")).expect("loads");
    assert_eq!(scenario.name(), "minimal");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "name: x\nfleets: 3\n").expect("write");
    let bad_path = bad.to_str().expect("utf-8 path");
    let err = Scenario::load(bad_path).expect_err("invalid");
    assert!(
        err.to_string()
            .starts_with(&format!("{bad_path}:2:9: `fleets`: ")),
        "{err}"
    );

    let err = Scenario::load("no-such-scenario").expect_err("missing");
    assert!(matches!(err, ScenarioError::NotFound { .. }));
    assert!(
        err.to_string().contains("steady, surge, flaky-worker"),
        "{err}"
    );
}

#[test]
fn the_key_under_an_error_position_is_read_from_the_line() {
    for (line, column, expected) in [
        ("    wokers: []", 5, Some("wokers")),
        ("  - id: hello", 9, Some("id")),
        ("      - {id: 1, perf: hello}", 23, Some("perf")),
        ("- 3", 3, None),
    ] {
        assert_eq!(
            key_at(line, 1, column).as_deref(),
            expected,
            "{line} at {column}"
        );
    }
}

#[test]
fn the_example_in_the_user_docs_loads() {
    let docs = include_str!("../../../docs/scenarios.md");
    let example = docs
        .split("## Example")
        .nth(1)
        .and_then(|section| section.split("```yaml\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("docs/scenarios.md has an example block");
    let scenario =
        Scenario::from_yaml(example, "docs/scenarios.md").unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(scenario.name(), "lunch-rush");
    assert_eq!(scenario.fleets().len(), 2);
}
