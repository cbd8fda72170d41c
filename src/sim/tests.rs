//! The built-in scenarios: every one answers at any time with bodies the reference doc
//! describes, and each shows what `docs/scenarios.md` says it shows.

use std::time::Duration;

use serde_json::{Map, Value};

use super::{Scenario, SimResponse};
use crate::model::{StateClass, TargetKind};
use crate::time::{Timestamp, parse_duration};

const START_MILLIS: i64 = 1_800_000_000_000;

/// Numeric fields of the reference doc's table; `reqs_working` is an integer.
const NUMERIC_FIELDS: &[&str] = &[
    "cur_load",
    "new_load",
    "cur_load_rolling_avg",
    "cur_perf",
    "measured_perf",
    "perf",
    "reliability",
    "dlperf",
    "disk_usage",
    "loaded_at",
];

/// Reads a worker-list body as `reference/vast-worker-list.md` describes it: a bare array
/// or `{"workers": [...]}` of objects with an integer `id`, a string `status`, and numbers
/// (or null, or absent) for the numeric fields.
fn decode_reference(body: &str) -> Result<Vec<Map<String, Value>>, String> {
    let value: Value = serde_json::from_str(body).map_err(|err| format!("not JSON: {err}"))?;
    let list = match value {
        Value::Array(list) => list,
        Value::Object(mut object) => match object.remove("workers") {
            Some(Value::Array(list)) => list,
            _ => return Err(format!("an object without a worker list: {object:?}")),
        },
        other => return Err(format!("neither a list nor an object: {other}")),
    };
    list.into_iter()
        .map(|entry| {
            let Value::Object(worker) = entry else {
                return Err(format!("a list entry is not an object: {entry}"));
            };
            if !worker.get("id").is_some_and(Value::is_i64) {
                return Err(format!("no integer id: {worker:?}"));
            }
            if !worker.get("status").is_some_and(Value::is_string) {
                return Err(format!("no string status: {worker:?}"));
            }
            for field in NUMERIC_FIELDS {
                if let Some(value) = worker.get(*field)
                    && !(value.is_number() || value.is_null())
                {
                    return Err(format!("`{field}` is not a number: {worker:?}"));
                }
            }
            if let Some(value) = worker.get("reqs_working")
                && !(value.is_u64() || value.is_null())
            {
                return Err(format!("`reqs_working` is not an integer: {worker:?}"));
            }
            Ok(worker)
        })
        .collect()
}

fn builtin(name: &str) -> Scenario {
    Scenario::builtin(name).unwrap_or_else(|| panic!("no built-in {name}"))
}

fn at(scenario: &Scenario, kind: TargetKind, id: i64, time: &str) -> SimResponse {
    let elapsed = parse_duration(time).expect("test duration");
    let now = Timestamp::from_unix_millis(START_MILLIS).saturating_add(elapsed);
    scenario.respond(kind, id, elapsed, now)
}

fn snapshot(scenario: &Scenario, kind: TargetKind, id: i64, time: &str) -> Vec<Map<String, Value>> {
    let elapsed = parse_duration(time).expect("test duration");
    let now = Timestamp::from_unix_millis(START_MILLIS).saturating_add(elapsed);
    let list = scenario
        .snapshot(kind, id, elapsed, now)
        .expect("known fleet");
    decode_reference(&Value::Array(list).to_string()).expect("snapshot decodes")
}

fn number(worker: &Map<String, Value>, field: &str) -> f64 {
    worker[field]
        .as_f64()
        .unwrap_or_else(|| panic!("`{field}` in {worker:?}"))
}

fn find(list: &[Map<String, Value>], id: i64) -> Option<&Map<String, Value>> {
    list.iter().find(|worker| worker["id"].as_i64() == Some(id))
}

fn class(worker: &Map<String, Value>) -> StateClass {
    StateClass::of(worker["status"].as_str().map(str::to_lowercase).as_deref())
}

/// `(sum of cur_load_rolling_avg, sum of perf over ready workers)` of a snapshot.
fn rolling_load_and_ready_perf(list: &[Map<String, Value>]) -> (f64, f64) {
    let load = list.iter().map(|w| number(w, "cur_load_rolling_avg")).sum();
    let perf = list
        .iter()
        .filter(|w| class(w) == StateClass::Ready)
        .map(|w| number(w, "perf"))
        .sum();
    (load, perf)
}

#[test]
fn every_builtin_answers_at_the_start_midway_and_past_the_end() {
    for name in Scenario::builtin_names() {
        let scenario = builtin(name);
        let end = scenario.duration().expect("built-ins have a duration");
        for fleet in scenario.fleets() {
            for elapsed in [
                Duration::ZERO,
                end / 2,
                end,
                end + Duration::from_secs(3600),
            ] {
                let time = format!("{}ms", elapsed.as_millis());
                let context = format!("{name}/{} at {time}", fleet.name());
                let response = at(&scenario, fleet.kind(), fleet.vast_id(), &time);
                assert!((200..600).contains(&response.status), "{context}");
                let is_error_msg = response.body.contains("\"error_msg\"");
                if response.status == 200
                    && response.content_type == "application/json"
                    && !is_error_msg
                    && serde_json::from_str::<Value>(&response.body).is_ok()
                {
                    decode_reference(&response.body)
                        .unwrap_or_else(|err| panic!("{context}: {err}"));
                }
                // Without faults, every moment is a valid worker list.
                snapshot(&scenario, fleet.kind(), fleet.vast_id(), &time);
            }
        }
    }
}

#[test]
fn every_builtin_snapshot_keeps_the_reference_invariants_throughout() {
    for name in Scenario::builtin_names() {
        let scenario = builtin(name);
        let end = scenario.duration().expect("duration").as_secs();
        for fleet in scenario.fleets() {
            for second in (0..=end).step_by(30) {
                let time = format!("{second}s");
                for worker in snapshot(&scenario, fleet.kind(), fleet.vast_id(), &time) {
                    let context = format!("{name}/{} at {time}: {worker:?}", fleet.name());
                    if let (Some(measured), Some(reliability), Some(perf)) = (
                        worker["measured_perf"].as_f64(),
                        worker["reliability"].as_f64(),
                        worker["perf"].as_f64(),
                    ) {
                        assert!((perf - measured * reliability).abs() < 1e-9, "{context}");
                        assert!(number(&worker, "cur_perf") <= measured + 1e-9, "{context}");
                    }
                    if class(&worker) != StateClass::Ready {
                        assert_eq!(number(&worker, "cur_load"), 0.0, "{context}");
                        assert_eq!(worker["reqs_working"], 0, "{context}");
                        assert!(
                            worker.get("loaded_at").is_none()
                                || class(&worker) == StateClass::Failed,
                            "{context}"
                        );
                    } else {
                        assert!(worker["loaded_at"].is_number(), "{context}");
                    }
                }
            }
        }
    }
}

#[test]
fn steady_stays_healthy_and_moderately_used() {
    let scenario = builtin("steady");
    for fleet in scenario.fleets() {
        for minute in 0..=20 {
            let list = snapshot(
                &scenario,
                fleet.kind(),
                fleet.vast_id(),
                &format!("{minute}m"),
            );
            assert!(list.iter().all(|w| class(w) == StateClass::Ready));
            assert!(list.iter().all(|w| number(w, "reliability") >= 0.98));
            let (load, perf) = rolling_load_and_ready_perf(&list);
            let utilization = load / perf;
            assert!(
                (0.6..=0.9).contains(&utilization),
                "{} at {minute}m: {utilization}",
                fleet.name()
            );
        }
    }
}

#[test]
fn surge_triples_demand_and_brings_late_workers_one_of_which_never_loads() {
    let scenario = builtin("surge");
    let endpoint = |time: &str| snapshot(&scenario, TargetKind::Endpoint, 201, time);
    let (before, _) = rolling_load_and_ready_perf(&endpoint("0s"));
    let (peak, peak_perf) = rolling_load_and_ready_perf(&endpoint("15m"));
    assert!(peak >= 2.5 * before, "{before} -> {peak}");
    assert!(peak > peak_perf, "the surge should exceed ready perf");

    assert_eq!(endpoint("0s").len(), 3);
    let joining = endpoint("10m30s");
    assert_eq!(
        find(&joining, 2010004).map(|w| &w["status"]),
        Some(&"creating".into())
    );
    let loading = endpoint("12m");
    assert_eq!(
        find(&loading, 2010004).map(|w| &w["status"]),
        Some(&"loading".into())
    );
    let serving = endpoint("16m");
    assert!(find(&serving, 2010004).is_some_and(|w| class(w) == StateClass::Ready));
    let finished = endpoint("30m");
    assert!(
        find(&finished, 2010005).is_none(),
        "2010005 leaves after the surge"
    );
    assert_eq!(
        find(&finished, 2010006).map(|w| &w["status"]),
        Some(&"model_loading".into()),
        "2010006 is stuck loading"
    );
    let group = snapshot(&scenario, TargetKind::WorkerGroup, 1201, "20m");
    assert_eq!(group.len(), 3);
}

#[test]
fn flaky_worker_loses_reliability_and_the_group_replaces_a_failed_worker() {
    let scenario = builtin("flaky-worker");
    let reliability = |time: &str| {
        let list = snapshot(&scenario, TargetKind::Endpoint, 301, time);
        number(find(&list, 3010003).expect("flaky worker"), "reliability")
    };
    assert!((reliability("0s") - 0.99).abs() < 1e-9);
    assert!((reliability("10m") - 0.8).abs() < 1e-9);
    assert!((reliability("20m") - 0.8).abs() < 1e-9);

    let group = |time: &str| snapshot(&scenario, TargetKind::WorkerGroup, 1301, time);
    assert_eq!(
        find(&group("7m"), 13010002).map(|w| &w["status"]),
        Some(&"error".into())
    );
    assert!(find(&group("7m"), 13010004).is_none());
    assert!(find(&group("13m"), 13010004).is_some_and(|w| class(w) == StateClass::Ready));
    assert!(find(&group("16m"), 13010002).is_none());
}

#[test]
fn saturated_workers_sit_at_their_concurrency() {
    let scenario = builtin("saturated");
    for time in ["0s", "5m", "15m"] {
        let list = snapshot(&scenario, TargetKind::Endpoint, 401, time);
        let ready: Vec<_> = list
            .iter()
            .filter(|w| class(w) == StateClass::Ready)
            .collect();
        assert_eq!(ready.len(), 4);
        for worker in ready {
            assert_eq!(worker["reqs_working"], 4, "{worker:?}");
            assert_eq!(number(worker, "cur_perf"), number(worker, "measured_perf"));
            assert!(number(worker, "cur_load") > number(worker, "measured_perf"));
        }
        let stuck = find(&list, 4010005).expect("loading worker");
        assert_eq!(stuck["status"], "loading");
    }
    let early = snapshot(&scenario, TargetKind::WorkerGroup, 1401, "1m");
    assert!(early.iter().all(|w| w["reqs_working"].as_u64() < Some(8)));
    let late = snapshot(&scenario, TargetKind::WorkerGroup, 1401, "10m");
    assert!(late.iter().all(|w| w["reqs_working"] == 8));
}

#[test]
fn outage_scripts_each_api_failure() {
    let scenario = builtin("outage");
    let endpoint = |time: &str| at(&scenario, TargetKind::Endpoint, 501, time);
    let group = |time: &str| at(&scenario, TargetKind::WorkerGroup, 1501, time);

    assert_eq!(endpoint("1m").status, 200);
    decode_reference(&endpoint("1m").body).expect("healthy endpoint");
    let wrapped = decode_reference(&group("1m").body).expect("healthy wrapped group");
    assert!(group("1m").body.starts_with("{\"workers\":"));
    assert!(wrapped.iter().all(|w| w["status"] == "RUNNING"));
    let without_perf = find(&wrapped, 15010003).expect("worker without perf");
    assert!(without_perf["perf"].is_null());
    assert!(!without_perf.contains_key("dlperf"));

    assert_eq!(endpoint("2m30s").status, 503);
    assert_eq!(endpoint("4m30s").status, 429);
    assert_eq!(endpoint("6m30s").hold, Some(Duration::from_secs(30)));
    assert!(endpoint("8m30s").body.contains("error_msg"));
    assert!(serde_json::from_str::<Value>(&endpoint("10m30s").body).is_err());
    assert!(endpoint("12m30s").content_type.starts_with("text/html"));
    assert_eq!(endpoint("15m").status, 502);
    assert_eq!(endpoint("17m30s").status, 401);
    assert!(group("3m30s").body.contains("NaN"));
    assert!(decode_reference(&group("9m30s").body).is_err());
    assert_eq!(group("12m").status, 500);
    assert_eq!(endpoint("19m15s").status, 504);
    assert_eq!(group("19m15s").status, 504);
}
