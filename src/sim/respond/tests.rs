//! The pure response core: derived fields, worker lifecycles, shapes, overrides and faults,
//! each answered at a chosen scenario time.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::*;
use crate::time::parse_duration;

/// When the scenarios in these tests start.
const START_MILLIS: i64 = 1_800_000_000_000;

fn scenario(yaml: &str) -> Scenario {
    Scenario::from_yaml(yaml, "test.yaml").unwrap_or_else(|err| panic!("{err}"))
}

fn elapsed(at: &str) -> Duration {
    parse_duration(at).expect("test duration")
}

/// The answer `at` into the scenario, with the clock reading start + `at`.
fn answer(scenario: &Scenario, kind: TargetKind, id: i64, at: &str) -> SimResponse {
    let elapsed = elapsed(at);
    let now = Timestamp::from_unix_millis(START_MILLIS).saturating_add(elapsed);
    scenario.respond(kind, id, elapsed, now)
}

/// The worker objects of endpoint 1 `at` into the scenario, from a healthy bare list.
fn workers(scenario: &Scenario, at: &str) -> Vec<Map<String, Value>> {
    let response = answer(scenario, TargetKind::Endpoint, 1, at);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.content_type, "application/json");
    let body: Value = serde_json::from_str(&response.body).expect("JSON body");
    let Value::Array(list) = body else {
        panic!("expected a bare list, got {body}");
    };
    list.into_iter()
        .map(|worker| match worker {
            Value::Object(object) => object,
            other => panic!("expected an object, got {other}"),
        })
        .collect()
}

fn worker(list: &[Map<String, Value>], id: i64) -> &Map<String, Value> {
    list.iter()
        .find(|object| object["id"] == json!(id))
        .unwrap_or_else(|| panic!("worker {id} is not listed: {list:?}"))
}

/// Checks fields of workers at scenario times: `(at, worker id, field, expected)`, where a
/// number is compared within 1e-6 and `Value::Null` in `expected` means "absent".
fn check(yaml: &str, expected: &[(&str, i64, &str, Value)]) {
    let scenario = scenario(yaml);
    for (at, id, field, value) in expected {
        let list = workers(&scenario, at);
        let object = worker(&list, *id);
        let got = object.get(*field);
        let context = format!("worker {id} `{field}` at {at}: {object:?}");
        match (value, got) {
            (Value::Null, None) => {}
            (Value::Null, Some(got)) => panic!("expected no field, got {got}; {context}"),
            (Value::Number(expected), Some(Value::Number(got))) => {
                let (expected, got) = (expected.as_f64().unwrap_or(f64::NAN), got.as_f64());
                assert!(
                    got.is_some_and(|got| (got - expected).abs() < 1e-6),
                    "expected {expected}; {context}"
                );
            }
            (expected, got) => assert_eq!(Some(expected), got, "{context}"),
        }
    }
}

fn listed_ids(scenario: &Scenario, at: &str) -> Vec<i64> {
    workers(scenario, at)
        .iter()
        .map(|object| object["id"].as_i64().expect("integer id"))
        .collect()
}

#[test]
fn demand_is_split_across_ready_workers_in_proportion_to_perf() {
    check(
        "
name: split
fleets:
  - endpoint: 1
    load: 300
    workers:
      - {id: 1, perf: 100}
      - {id: 2, perf: 200}
      - {id: 3, perf: 100, status: loading}
",
        &[
            ("1m", 1, "cur_load", json!(100.0)),
            ("1m", 2, "cur_load", json!(200.0)),
            ("1m", 3, "cur_load", json!(0.0)),
            ("1m", 1, "cur_perf", json!(100.0)),
            ("1m", 2, "cur_perf", json!(200.0)),
            ("1m", 1, "new_load", json!(100.0)),
            ("1m", 2, "cur_load_rolling_avg", json!(200.0)),
            ("1m", 3, "cur_load_rolling_avg", json!(0.0)),
            ("1m", 1, "reqs_working", json!(4)),
            ("1m", 3, "reqs_working", json!(0)),
        ],
    );
}

#[test]
fn new_load_and_the_rolling_average_follow_the_share_over_one_and_five_minutes() {
    // Worker 2 joins at 5m and halves worker 1's share from 60 to 30.
    check(
        "
name: windows
fleets:
  - endpoint: 1
    load: 60
    workers:
      - {id: 1, perf: 100}
      - {id: 2, perf: 100, join: 5m}
",
        &[
            ("5m", 1, "cur_load", json!(30.0)),
            ("5m", 1, "new_load", json!(60.0)),
            ("5m", 1, "cur_load_rolling_avg", json!(60.0)),
            ("6m", 1, "new_load", json!(30.0)),
            ("6m", 1, "cur_load_rolling_avg", json!(54.0)),
            ("6m", 2, "new_load", json!(30.0)),
            ("6m", 2, "cur_load_rolling_avg", json!(6.0)),
            ("10m", 1, "cur_load_rolling_avg", json!(30.0)),
        ],
    );
}

#[test]
fn an_overloaded_worker_sits_at_its_concurrency_and_serves_at_its_perf() {
    check(
        "
name: overload
fleets:
  - endpoint: 1
    load: {0s: 50, 10m: 50, 11m: 250}
    workers:
      - {id: 1, perf: 100, max_reqs: 8}
",
        &[
            ("0s", 1, "reqs_working", json!(4)),
            ("0s", 1, "cur_perf", json!(50.0)),
            ("11m", 1, "cur_load", json!(250.0)),
            ("11m", 1, "cur_perf", json!(100.0)),
            ("11m", 1, "reqs_working", json!(8)),
        ],
    );
}

#[test]
fn perf_is_measured_perf_times_reliability_and_dlperf_defaults_to_measured_perf() {
    check(
        "
name: perf
fleets:
  - endpoint: 1
    workers:
      - {id: 1, perf: 105.87, reliability: 0.95}
      - {id: 2, perf: 100, reliability: {0s: 0.99, 10m: 0.79}, dlperf: 120, disk_usage: {0s: 10, 10m: 30}}
",
        &[
            ("0s", 1, "measured_perf", json!(105.87)),
            ("0s", 1, "perf", json!(105.87 * 0.95)),
            ("0s", 1, "reliability", json!(0.95)),
            ("0s", 1, "dlperf", json!(105.87)),
            ("0s", 1, "disk_usage", json!(30.0)),
            ("5m", 2, "reliability", json!(0.89)),
            ("5m", 2, "perf", json!(89.0)),
            ("5m", 2, "dlperf", json!(120.0)),
            ("5m", 2, "disk_usage", json!(20.0)),
        ],
    );
}

#[test]
fn statuses_step_over_time_and_loaded_at_marks_the_latest_ready_stretch() {
    let start = START_MILLIS as f64 / 1000.0;
    check(
        "
name: lifecycle
fleets:
  - endpoint: 1
    load: 100
    workers:
      - {id: 1, perf: 100}
      - id: 2
        perf: 100
        status: {0s: creating, 1m: loading, 3m: running, 5m: error, 6m: RUNNING}
",
        &[
            ("30s", 2, "status", json!("creating")),
            ("30s", 2, "loaded_at", Value::Null),
            ("2m", 2, "status", json!("loading")),
            ("2m", 2, "cur_load", json!(0.0)),
            ("2m", 1, "cur_load", json!(100.0)),
            ("2m", 1, "loaded_at", json!(start)),
            ("4m", 2, "status", json!("running")),
            ("4m", 2, "cur_load", json!(50.0)),
            ("4m", 2, "loaded_at", json!(start + 180.0)),
            ("5m30s", 2, "status", json!("error")),
            ("5m30s", 2, "cur_load", json!(0.0)),
            ("5m30s", 2, "loaded_at", json!(start + 180.0)),
            // Upper-case statuses are sent as written and still count as ready.
            ("7m", 2, "status", json!("RUNNING")),
            ("7m", 2, "cur_load", json!(50.0)),
            ("7m", 2, "loaded_at", json!(start + 360.0)),
        ],
    );
}

#[test]
fn workers_are_listed_only_between_join_and_leave() {
    let scenario = scenario(
        "
name: join-leave
fleets:
  - endpoint: 1
    workers:
      - {id: 1, perf: 100}
      - {id: 2, perf: 100, join: 2m, leave: 4m}
      - {id: 3, perf: 100, leave: 3m}
",
    );
    for (at, expected) in [
        ("0s", vec![1, 3]),
        ("1m59s", vec![1, 3]),
        ("2m", vec![1, 2, 3]),
        ("3m", vec![1, 2]),
        ("4m", vec![1]),
    ] {
        assert_eq!(listed_ids(&scenario, at), expected, "at {at}");
    }
}

#[test]
fn after_the_duration_every_value_holds() {
    let scenario = scenario(
        "
name: hold
duration: 10m
fleets:
  - endpoint: 1
    load: {0s: 0, 20m: 200}
    noise: 0.1
    workers:
      - {id: 1, perf: 100, status: {0s: loading, 9m: running, 15m: error}}
      - {id: 2, perf: 100, join: 12m}
",
    );
    let at_end = answer(&scenario, TargetKind::Endpoint, 1, "10m");
    for later in ["10m1s", "30m", "5h"] {
        assert_eq!(
            answer(&scenario, TargetKind::Endpoint, 1, later),
            at_end,
            "at {later}"
        );
    }
    let list = workers(&scenario, "1h");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], json!("running"));
}

#[test]
fn bare_lists_are_the_default_and_wrapped_fleets_answer_an_object() {
    let scenario = scenario(
        "
name: shapes
fleets:
  - {endpoint: 1, workers: [{id: 1, perf: 1}]}
  - {worker_group: 1, response: wrapped, workers: [{id: 2, perf: 1}]}
  - {worker_group: 2, response: wrapped}
",
    );
    let bare: Value =
        serde_json::from_str(&answer(&scenario, TargetKind::Endpoint, 1, "0s").body).expect("JSON");
    assert_eq!(bare[0]["id"], json!(1));
    let wrapped: Value =
        serde_json::from_str(&answer(&scenario, TargetKind::WorkerGroup, 1, "0s").body)
            .expect("JSON");
    assert_eq!(wrapped["workers"][0]["id"], json!(2));
    assert_eq!(
        answer(&scenario, TargetKind::WorkerGroup, 2, "0s").body,
        r#"{"workers":[]}"#
    );
}

#[test]
fn fields_force_values_omit_drops_them_and_extra_passes_through() {
    let scenario = scenario(
        "
name: overrides
fleets:
  - endpoint: 1
    workers:
      - id: 1
        perf: 100
        extra: {started_at: 1724275000.5, deployment_version_id: 7, warnings: [slow disk]}
        fields: {perf: null, reliability: high, reqs_working: 2.5, status: null}
        omit: [loaded_at, dlperf]
",
    );
    let list = workers(&scenario, "1m");
    let object = &list[0];
    assert_eq!(object["perf"], Value::Null);
    assert_eq!(object["reliability"], json!("high"));
    assert_eq!(object["reqs_working"], json!(2.5));
    assert_eq!(object["status"], Value::Null);
    assert!(!object.contains_key("loaded_at"));
    assert!(!object.contains_key("dlperf"));
    assert_eq!(object["started_at"], json!(1724275000.5));
    assert_eq!(object["deployment_version_id"], json!(7));
    assert_eq!(object["warnings"], json!(["slow disk"]));
    assert_eq!(object["measured_perf"], json!(100.0));
}

#[test]
fn a_duplicate_entry_lists_the_same_id_twice_in_order() {
    let scenario = scenario(
        "
name: duplicates
fleets:
  - endpoint: 1
    workers:
      - {id: 5, perf: 100, status: loading}
      - {id: 5, perf: 100, duplicate: true}
",
    );
    let list = workers(&scenario, "0s");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["status"], json!("loading"));
    assert_eq!(list[1]["status"], json!("running"));
}

#[test]
fn noise_is_deterministic_bounded_and_only_moves_cur_load() {
    let yaml = |seed: u64| {
        format!(
            "
name: noise
seed: {seed}
fleets:
  - endpoint: 1
    load: 200
    noise: 0.1
    workers:
      - {{id: 1, perf: 100}}
      - {{id: 2, perf: 100}}
"
        )
    };
    let first = scenario(&yaml(1));
    let again = scenario(&yaml(1));
    let other_seed = scenario(&yaml(2));
    let mut differs_from_other_seed = false;
    for second in (0..600).step_by(7) {
        let at = format!("{second}s");
        let list = workers(&first, &at);
        assert_eq!(list, workers(&again, &at), "same seed, same answer at {at}");
        differs_from_other_seed |= list != workers(&other_seed, &at);
        for object in &list {
            let cur_load = object["cur_load"].as_f64().expect("number");
            assert!((90.0..=110.0).contains(&cur_load), "{cur_load} at {at}");
            assert_eq!(object["new_load"], json!(100.0));
            assert_eq!(object["cur_load_rolling_avg"], json!(100.0));
        }
    }
    assert!(differs_from_other_seed, "the seed should change the noise");
}

#[test]
fn an_unknown_id_answers_200_with_error_msg() {
    let scenario = scenario("name: x\nfleets: [{endpoint: 1}]\n");
    for (kind, id, message) in [
        (TargetKind::Endpoint, 2, "No endpoint found with id 2"),
        (
            TargetKind::WorkerGroup,
            1,
            "No worker group found with id 1",
        ),
    ] {
        let response = answer(&scenario, kind, id, "0s");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, json!({ "error_msg": message }).to_string());
    }
}

/// What a fault's response must look like.
struct Expect {
    status: u16,
    content_type: &'static str,
    body: BodyCheck,
    hold: Option<Duration>,
}

enum BodyCheck {
    Exactly(&'static str),
    Json(Value),
    Contains(&'static str),
    /// A strict prefix of the healthy body, which is therefore not valid JSON.
    TruncatedHealthy,
    Healthy,
}

#[test]
fn each_fault_kind_answers_like_the_real_api_misbehaves() {
    let healthy_yaml = "name: x\nfleets:\n  - endpoint: 1\n    load: 100\n    workers: [{id: 1, perf: 100}, {id: 2, perf: 100}]\n";
    let healthy = answer(&scenario(healthy_yaml), TargetKind::Endpoint, 1, "1m30s");
    let cases: &[(&str, Expect)] = &[
        (
            "{kind: http_status, status: 503}",
            Expect {
                status: 503,
                content_type: "text/html",
                body: BodyCheck::Contains("<h1>503 Service Temporarily Unavailable</h1>"),
                hold: None,
            },
        ),
        (
            "{kind: http_status, status: 500, body: oops}",
            Expect {
                status: 500,
                content_type: "text/plain",
                body: BodyCheck::Exactly("oops"),
                hold: None,
            },
        ),
        (
            "{kind: rate_limit}",
            Expect {
                status: 429,
                content_type: "text/plain; charset=utf-8",
                body: BodyCheck::Exactly("API requests too frequent, please wait"),
                hold: None,
            },
        ),
        (
            "{kind: timeout}",
            Expect {
                status: 200,
                content_type: "application/json",
                body: BodyCheck::Healthy,
                hold: Some(Duration::from_secs(30)),
            },
        ),
        (
            "{kind: timeout, hold: 2s}",
            Expect {
                status: 200,
                content_type: "application/json",
                body: BodyCheck::Healthy,
                hold: Some(Duration::from_secs(2)),
            },
        ),
        (
            "{kind: error_msg, message: still loading}",
            Expect {
                status: 200,
                content_type: "application/json",
                body: BodyCheck::Json(json!({"error_msg": "still loading"})),
                hold: None,
            },
        ),
        (
            "{kind: unauthorized}",
            Expect {
                status: 401,
                content_type: "application/json",
                body: BodyCheck::Json(json!({
                    "success": false,
                    "error": "invalid_api_key",
                    "msg": "Invalid or expired API key"
                })),
                hold: None,
            },
        ),
        (
            "{kind: html}",
            Expect {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body: BodyCheck::Contains("<!DOCTYPE html>"),
                hold: None,
            },
        ),
        (
            "{kind: truncated}",
            Expect {
                status: 200,
                content_type: "application/json",
                body: BodyCheck::TruncatedHealthy,
                hold: None,
            },
        ),
        (
            r#"{kind: raw, status: 200, body: '[{"id": 1, "reliability": NaN}]'}"#,
            Expect {
                status: 200,
                content_type: "application/json",
                body: BodyCheck::Exactly(r#"[{"id": 1, "reliability": NaN}]"#),
                hold: None,
            },
        ),
        (
            "{kind: raw, status: 502, body: '', content_type: text/plain}",
            Expect {
                status: 502,
                content_type: "text/plain",
                body: BodyCheck::Exactly(""),
                hold: None,
            },
        ),
    ];
    for (fault, expected) in cases {
        let yaml = format!(
            "{healthy_yaml}    faults:\n      - {{at: 1m, for: 1m, {}\n",
            fault.trim_start_matches('{')
        );
        let scenario = scenario(&yaml);
        let response = answer(&scenario, TargetKind::Endpoint, 1, "1m30s");
        assert_eq!(response.status, expected.status, "{fault}");
        assert_eq!(response.content_type, expected.content_type, "{fault}");
        assert_eq!(response.hold, expected.hold, "{fault}");
        match &expected.body {
            BodyCheck::Exactly(body) => assert_eq!(response.body, *body, "{fault}"),
            BodyCheck::Json(body) => assert_eq!(
                serde_json::from_str::<Value>(&response.body).expect("JSON"),
                *body,
                "{fault}"
            ),
            BodyCheck::Contains(text) => {
                assert!(response.body.contains(text), "{fault}: {}", response.body)
            }
            BodyCheck::TruncatedHealthy => {
                assert!(response.body.len() < healthy.body.len(), "{fault}");
                assert!(healthy.body.starts_with(&response.body), "{fault}");
                assert!(
                    serde_json::from_str::<Value>(&response.body).is_err(),
                    "{fault}"
                );
            }
            BodyCheck::Healthy => assert_eq!(response.body, healthy.body, "{fault}"),
        }
        // Outside its window the fault is gone.
        for at in ["59s", "2m"] {
            assert_eq!(
                answer(&scenario, TargetKind::Endpoint, 1, at),
                answer(&self::scenario(healthy_yaml), TargetKind::Endpoint, 1, at),
                "{fault} at {at}"
            );
        }
    }
}

#[test]
fn fleet_faults_come_before_scenario_faults_which_reach_every_fleet() {
    let scenario = scenario(
        "
name: layered
faults:
  - {at: 1m, for: 2m, kind: http_status, status: 502}
  - {at: 10m, kind: rate_limit}
fleets:
  - endpoint: 1
    faults: [{at: 2m, for: 30s, kind: error_msg}]
  - worker_group: 1
    response: wrapped
",
    );
    for (kind, at, status) in [
        (TargetKind::Endpoint, "0s", 200),
        (TargetKind::Endpoint, "1m", 502),
        (TargetKind::Endpoint, "2m", 200),
        (TargetKind::Endpoint, "2m30s", 502),
        (TargetKind::Endpoint, "3m", 200),
        (TargetKind::WorkerGroup, "2m", 502),
        (TargetKind::WorkerGroup, "3m", 200),
        // A fault without `for` lasts to the end.
        (TargetKind::WorkerGroup, "10m", 429),
        (TargetKind::Endpoint, "10h", 429),
    ] {
        let response = answer(&scenario, kind, 1, at);
        assert_eq!(
            response.status, status,
            "{kind:?} at {at}: {}",
            response.body
        );
    }
    let during_error = answer(&scenario, TargetKind::Endpoint, 1, "2m10s");
    assert!(
        during_error.body.contains("error_msg"),
        "{}",
        during_error.body
    );
}

#[test]
fn truncation_never_leaves_valid_json_even_for_an_empty_list() {
    let scenario = scenario(
        "name: x\nfleets:\n  - {endpoint: 1, faults: [{at: 0s, kind: truncated}]}\n  - {worker_group: 1, response: wrapped, faults: [{at: 0s, kind: truncated}]}\n",
    );
    assert_eq!(answer(&scenario, TargetKind::Endpoint, 1, "0s").body, "[");
    let wrapped = answer(&scenario, TargetKind::WorkerGroup, 1, "0s").body;
    assert!(
        serde_json::from_str::<Value>(&wrapped).is_err(),
        "{wrapped}"
    );
}
