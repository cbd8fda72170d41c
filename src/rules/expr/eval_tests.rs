//! Evaluator tests: every identifier, operator and function, the three-valued truth
//! tables, windows (absent workers, 0 and 1 points), aggregates, vars, `extra` and `value`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde_json::json;

use super::{EvalContext, Identifiers, Scope, Snapshot, Value, compile};
use crate::model::{Field, WorkerSample};
use crate::time::Timestamp;

/// The current snapshot is at this time; test snapshots are placed in seconds from it.
const NOW_MS: i64 = 1_700_000_000_000;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_millis(NOW_MS + seconds * 1000)
}

fn worker(id: i64, status: Option<&str>, values: &[(Field, f64)]) -> WorkerSample {
    let mut sample = WorkerSample {
        status: status.map(String::from),
        ..WorkerSample::new(id)
    };
    for (field, value) in values {
        sample.set(*field, Some(*value));
    }
    sample
}

fn identifiers() -> Identifiers {
    Identifiers::standard()
        .with_fleet_number("desired_workers")
        .with_fleet_number("scale_delta")
}

type History = VecDeque<Arc<Snapshot>>;

/// Snapshots at the given seconds from now (oldest first); each fleet's `desired_workers`
/// is its worker count plus one.
fn history(snapshots: Vec<(i64, Vec<WorkerSample>)>) -> History {
    snapshots
        .into_iter()
        .map(|(seconds, workers)| {
            let desired = Some(workers.len() as f64 + 1.0);
            Arc::new(Snapshot::new(at(seconds), &workers, vec![desired]))
        })
        .collect()
}

fn vars() -> BTreeMap<String, f64> {
    BTreeMap::from([
        ("max_reqs".to_string(), 4.0),
        ("target_util".to_string(), 0.8),
    ])
}

/// Where an expression is evaluated: the fleet, or the worker with this id.
#[derive(Debug, Clone, Copy)]
enum On {
    Fleet,
    Worker(i64),
}

use On::{Fleet, Worker};

fn num(value: f64) -> Value {
    Value::Number(value)
}

fn text(value: &str) -> Value {
    Value::Str(Arc::from(value))
}

const TRUE: Value = Value::Bool(true);
const FALSE: Value = Value::Bool(false);
const MISSING: Value = Value::Missing;

fn known_vars() -> BTreeSet<String> {
    ["max_reqs", "target_util", "missing_var"]
        .into_iter()
        .map(String::from)
        .chain((0..12).map(|index| format!("v{index}")))
        .collect()
}

/// Evaluates each expression at the last snapshot of `history` and compares (numbers to
/// 1e-9, relatively).
#[track_caller]
fn check(history: &History, vars: &BTreeMap<String, f64>, cases: &[(On, &str, Value)]) {
    let identifiers = identifiers();
    let known = known_vars();
    let ctx = EvalContext { history, vars };
    for (on, expr, expected) in cases {
        let scope = match on {
            Fleet => Scope::Fleet,
            Worker(_) => Scope::Worker,
        };
        let compiled = compile(expr, scope, &identifiers, &known)
            .unwrap_or_else(|error| panic!("{expr:?} does not compile: {error}"));
        let actual = match on {
            Fleet => compiled.eval_fleet(&ctx),
            Worker(id) => compiled.eval_worker(&ctx, index_of(history, *id)),
        };
        assert!(
            same(&actual, expected),
            "{expr:?} on {on:?}: expected {expected:?}, got {actual:?}"
        );
    }
}

fn index_of(history: &History, id: i64) -> usize {
    let current = history.back().expect("a current snapshot");
    current
        .workers
        .iter()
        .position(|sample| sample.worker_id == id)
        .unwrap_or_else(|| panic!("worker {id} is not in the current snapshot"))
}

fn same(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Number(a), Value::Number(b)) => {
            a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
        }
        _ => actual == expected,
    }
}

/// One snapshot with five workers of every kind:
/// 1 running with every field, 2 loading (no `loaded_at`, has `extra`), 3 error with no
/// values, 4 without a status (perf 0), 5 idle.
fn one_snapshot() -> History {
    use Field::*;
    history(vec![(
        0,
        vec![
            worker(
                5,
                Some("idle"),
                &[
                    (Perf, 50.0),
                    (CurPerf, 40.0),
                    (MeasuredPerf, 60.0),
                    (Reliability, 0.9),
                    (CurLoadRollingAvg, 10.0),
                    (CurLoad, 1.0),
                    (ReqsWorking, 1.0),
                ],
            ),
            worker(
                1,
                Some("running"),
                &[
                    (CurLoad, 10.0),
                    (NewLoad, 5.0),
                    (CurLoadRollingAvg, 8.0),
                    (CurPerf, 9.0),
                    (MeasuredPerf, 100.0),
                    (Perf, 95.0),
                    (Reliability, 0.95),
                    (Dlperf, 105.0),
                    (ReqsWorking, 2.0),
                    (DiskUsage, 30.0),
                    (LoadedAt, at(-600).unix_secs_f64()),
                ],
            ),
            WorkerSample {
                extra: json!({"loop_lag_max": 0.25, "note": "slow", "warnings": null})
                    .as_object()
                    .cloned(),
                ..worker(
                    2,
                    Some("loading"),
                    &[
                        (CurLoad, 4.0),
                        (NewLoad, 1.0),
                        (CurLoadRollingAvg, 2.0),
                        (Perf, 80.0),
                        (Reliability, 0.5),
                        (ReqsWorking, 0.0),
                    ],
                )
            },
            worker(3, Some("error"), &[]),
            worker(
                4,
                None,
                &[(Perf, 0.0), (CurLoadRollingAvg, 3.0), (Reliability, 0.99)],
            ),
        ],
    )])
}

#[test]
fn worker_identifiers_read_the_workers_own_values() {
    check(
        &one_snapshot(),
        &vars(),
        &[
            (Worker(1), "cur_load", num(10.0)),
            (Worker(1), "new_load", num(5.0)),
            (Worker(1), "cur_load_rolling_avg", num(8.0)),
            (Worker(1), "cur_perf", num(9.0)),
            (Worker(1), "measured_perf", num(100.0)),
            (Worker(1), "perf", num(95.0)),
            (Worker(1), "reliability", num(0.95)),
            (Worker(1), "dlperf", num(105.0)),
            (Worker(1), "reqs_working", num(2.0)),
            (Worker(1), "disk_usage", num(30.0)),
            (Worker(1), "loaded_at", num(at(-600).unix_secs_f64())),
            (Worker(1), "status", text("running")),
            (Worker(1), "age", num(600.0)),
            (Worker(1), "utilization", num(8.0 / 95.0)),
            // A value the API did not send is missing, never zero.
            (Worker(3), "perf", MISSING),
            (Worker(3), "age", MISSING),
            (Worker(2), "age", MISSING),
            (Worker(4), "status", MISSING),
            // Zero perf: utilization is missing rather than infinite.
            (Worker(4), "utilization", MISSING),
            (Worker(2), "extra(\"loop_lag_max\")", num(0.25)),
            (Worker(2), "extra(\"note\")", MISSING),
            (Worker(2), "extra(\"warnings\")", MISSING),
            (Worker(2), "extra(\"absent\")", MISSING),
            (Worker(1), "extra(\"loop_lag_max\")", MISSING),
            (Worker(1), "max_reqs", num(4.0)),
            (Worker(1), "missing_var", MISSING),
        ],
    );
}

#[test]
fn fleet_identifiers_sum_and_count_the_snapshot() {
    let fleet_cases = [
        ("workers", num(5.0)),
        ("ready", num(2.0)),
        ("starting", num(1.0)),
        ("inactive", num(0.0)),
        ("failed", num(1.0)),
        ("load", num(15.0)),
        ("new_load", num(6.0)),
        ("load_rolling", num(23.0)),
        ("perf", num(145.0)),
        ("cur_perf", num(49.0)),
        ("measured_perf", num(160.0)),
        ("reqs_working", num(3.0)),
        ("utilization", num(23.0 / 145.0)),
        ("desired_workers", num(6.0)),
        // Registered but not filled for this snapshot.
        ("scale_delta", MISSING),
    ];
    let mut cases = Vec::new();
    let dotted: Vec<String> = fleet_cases
        .iter()
        .map(|(name, _)| format!("fleet.{name}"))
        .collect();
    for ((name, expected), dotted) in fleet_cases.iter().zip(&dotted) {
        cases.push((Fleet, *name, expected.clone()));
        cases.push((Fleet, dotted.as_str(), expected.clone()));
        // Every worker sees the same fleet values.
        cases.push((Worker(3), dotted.as_str(), expected.clone()));
    }
    cases.push((Fleet, "max_reqs", num(4.0)));
    cases.push((Fleet, "missing_var", MISSING));
    check(&one_snapshot(), &vars(), &cases);
}

#[test]
fn operators_follow_precedence_and_missing_values_propagate() {
    check(
        &one_snapshot(),
        &vars(),
        &[
            (Fleet, "1 + 2 * 3", num(7.0)),
            (Fleet, "(1 + 2) * 3", num(9.0)),
            (Fleet, "10 - 4 - 3", num(3.0)),
            (Fleet, "12 / 3 / 2", num(2.0)),
            (Fleet, "-2 * -3", num(6.0)),
            (Fleet, "- -2", num(2.0)),
            (Fleet, "1e3 + .5", num(1000.5)),
            (Fleet, "10m", num(600.0)),
            (Fleet, "1h30m == 5400", TRUE),
            (Fleet, "500ms * 2", num(1.0)),
            (Worker(1), "age > 5m", TRUE),
            (Worker(1), "age >= 10m && age <= 600 && age == 10m", TRUE),
            (Worker(1), "age < 10m || age != 600", FALSE),
            (Worker(1), "perf / 0", MISSING),
            (Worker(1), "0 / 0", MISSING),
            (Worker(1), "perf / (perf - perf)", MISSING),
            (Worker(3), "perf + 1", MISSING),
            (Worker(3), "1 - perf", MISSING),
            (Worker(3), "perf * 0", MISSING),
            (Worker(3), "-perf", MISSING),
            (Worker(3), "perf > 1", MISSING),
            (Worker(3), "perf == perf", MISSING),
            (Fleet, "1e300 * 1e300", num(f64::INFINITY)),
            (Fleet, "1e300 * 1e300 - 1e300 * 1e300", MISSING),
            (Worker(1), "status == \"running\"", TRUE),
            (Worker(1), "status != 'running'", FALSE),
            (Worker(3), "status == \"running\"", FALSE),
            (Worker(4), "status == \"running\"", MISSING),
            (Worker(4), "status != \"running\"", MISSING),
            (Worker(1), "class", text("ready")),
            (Worker(5), "class == \"ready\"", TRUE),
            (Worker(4), "class", text("unknown")),
            (Fleet, "count(class == \"ready\")", num(2.0)),
            (Fleet, "(1 < 2) == true", TRUE),
            (Fleet, "(1 < 2) != (2 < 1)", TRUE),
            (Fleet, "\"a\" == \"a\"", TRUE),
        ],
    );
}

#[test]
fn logic_follows_sql_three_valued_truth_tables() {
    // T is true, F false, U unknown (a comparison with a missing var).
    let truth_table = [
        ("true && missing_var > 0", MISSING),
        ("false && missing_var > 0", FALSE),
        ("missing_var > 0 && true", MISSING),
        ("missing_var > 0 && false", FALSE),
        ("missing_var > 0 && missing_var > 0", MISSING),
        ("true || missing_var > 0", TRUE),
        ("false || missing_var > 0", MISSING),
        ("missing_var > 0 || true", TRUE),
        ("missing_var > 0 || false", MISSING),
        ("missing_var > 0 || missing_var > 0", MISSING),
        ("true and true", TRUE),
        ("true and false", FALSE),
        ("false or false", FALSE),
        ("false or true", TRUE),
        ("!(missing_var > 0)", MISSING),
        ("not true", FALSE),
        ("!false", TRUE),
        ("(missing_var > 0) == true", MISSING),
        ("(missing_var > 0) != false", MISSING),
    ];
    let cases: Vec<_> = truth_table
        .iter()
        .map(|(expr, expected)| (Fleet, *expr, expected.clone()))
        .collect();
    check(&one_snapshot(), &vars(), &cases);
}

#[test]
fn default_and_present_handle_missing_values_on_purpose() {
    check(
        &one_snapshot(),
        &vars(),
        &[
            (Worker(3), "default(perf, 7)", num(7.0)),
            (Worker(1), "default(perf, 7)", num(95.0)),
            (Worker(3), "default(perf, missing_var)", MISSING),
            (Worker(4), "default(status, \"none\")", text("none")),
            (Worker(1), "default(status, \"none\")", text("running")),
            (Worker(3), "default(perf > 1, true)", TRUE),
            (Worker(1), "default(perf > 1000, true)", FALSE),
            (Worker(3), "present(perf)", FALSE),
            (Worker(1), "present(perf)", TRUE),
            (Worker(4), "present(status)", FALSE),
            (Worker(3), "present(perf > 1)", FALSE),
            (Worker(1), "present(perf > 1000)", TRUE),
            (Fleet, "present(missing_var)", FALSE),
            (Fleet, "reqs_working >= default(max_reqs, 4)", FALSE),
            (Fleet, "reqs_working >= default(missing_var, 3)", TRUE),
        ],
    );
}

#[test]
fn scalar_functions_propagate_missing_values() {
    check(
        &one_snapshot(),
        &vars(),
        &[
            (Fleet, "abs(-2.5)", num(2.5)),
            (Fleet, "least(3, 2)", num(2.0)),
            (Fleet, "greatest(3, 2)", num(3.0)),
            (Fleet, "least(1m, 90)", num(60.0)),
            (Worker(3), "abs(perf)", MISSING),
            (Worker(3), "least(perf, 1)", MISSING),
            (Worker(3), "greatest(1, perf)", MISSING),
        ],
    );
}

#[test]
fn aggregates_skip_missing_values() {
    check(
        &one_snapshot(),
        &vars(),
        &[
            (Fleet, "count(true)", num(5.0)),
            // Worker 3's reliability is missing: unknown is not counted.
            (Fleet, "count(reliability > 0.9)", num(2.0)),
            (Fleet, "count(status == \"loading\")", num(1.0)),
            (Fleet, "sum(perf)", num(225.0)),
            (Fleet, "avg(perf)", num(56.25)),
            (Fleet, "min(perf)", num(0.0)),
            (Fleet, "max(perf)", num(95.0)),
            (Fleet, "median(perf)", num(65.0)),
            (Fleet, "quantile(0.9, perf)", num(90.5)),
            (Fleet, "quantile(0, perf)", num(0.0)),
            (Fleet, "quantile(1, perf)", num(95.0)),
            (Fleet, "sum(perf / fleet.perf)", num(225.0 / 145.0)),
            (Fleet, "max(age)", num(600.0)),
            (Fleet, "avg(extra(\"loop_lag_max\"))", num(0.25)),
            (Fleet, "sum(max_reqs)", num(20.0)),
            (Fleet, "sum(dlperf) == 105", TRUE),
            // Nothing present: missing, except `count`.
            (Fleet, "sum(missing_var)", MISSING),
            (Fleet, "min(extra(\"absent\"))", MISSING),
            (Fleet, "median(extra(\"absent\"))", MISSING),
            (Fleet, "count(missing_var > 0)", num(0.0)),
            // The stuck-loading trap the docs warn about: a loading worker has no
            // `loaded_at`, so its age is missing and this finds nothing.
            (
                Fleet,
                "count(status == \"loading\" && age > 10m) > 0",
                FALSE,
            ),
        ],
    );
}

#[test]
fn an_empty_fleet_has_counts_of_zero_and_missing_sums() {
    check(
        &history(vec![(0, vec![])]),
        &vars(),
        &[
            (Fleet, "workers", num(0.0)),
            (Fleet, "ready", num(0.0)),
            (Fleet, "failed", num(0.0)),
            (Fleet, "load", MISSING),
            (Fleet, "perf", MISSING),
            (Fleet, "utilization", MISSING),
            (Fleet, "count(true)", num(0.0)),
            (Fleet, "sum(perf)", MISSING),
            (Fleet, "avg(perf)", MISSING),
            (Fleet, "min(perf)", MISSING),
            (Fleet, "max(perf)", MISSING),
            (Fleet, "quantile(0.5, perf)", MISSING),
            (Fleet, "desired_workers", num(1.0)),
            (Fleet, "avg_over(workers, 1h)", num(0.0)),
        ],
    );
}

/// Five snapshots, a minute apart. Worker 1 is absent at -120 s, worker 2 appears only at
/// 0 s, worker 3 is always there but reports reliability only at -60 s.
fn five_minutes() -> History {
    use Field::*;
    let loaded_at = at(-300).unix_secs_f64();
    let one = |reliability: f64, load: f64| {
        worker(
            1,
            Some("running"),
            &[
                (Reliability, reliability),
                (CurLoad, load),
                (LoadedAt, loaded_at),
            ],
        )
    };
    let three = |reliability: Option<f64>| {
        let values: Vec<(Field, f64)> = reliability.map(|r| (Reliability, r)).into_iter().collect();
        worker(3, Some("loading"), &values)
    };
    history(vec![
        (-240, vec![one(0.99, 10.0), three(None)]),
        (-180, vec![one(0.97, 20.0), three(None)]),
        (-120, vec![three(None)]),
        (-60, vec![one(0.93, 40.0), three(Some(0.8))]),
        (
            0,
            vec![
                one(0.91, 50.0),
                worker(2, Some("running"), &[(Reliability, 0.5), (CurLoad, 5.0)]),
                three(None),
            ],
        ),
    ])
}

#[test]
fn worker_windows_skip_snapshots_where_the_worker_is_absent() {
    check(
        &five_minutes(),
        &vars(),
        &[
            // The window includes a snapshot exactly `d` old.
            (Worker(1), "avg_over(reliability, 4m)", num(0.95)),
            (
                Worker(1),
                "avg_over(reliability, 3m)",
                num((0.97 + 0.93 + 0.91) / 3.0),
            ),
            (Worker(1), "avg_over(reliability, 0s)", num(0.91)),
            (Worker(1), "min_over(reliability, 10m)", num(0.91)),
            (Worker(1), "max_over(reliability, 10m)", num(0.99)),
            (Worker(1), "count_over(reliability < 0.95, 10m)", num(2.0)),
            (Worker(1), "count_over(true, 10m)", num(4.0)),
            (Worker(1), "delta(reliability, 4m)", num(0.91 - 0.99)),
            (
                Worker(1),
                "rate(reliability, 4m)",
                num((0.91 - 0.99) / 240.0),
            ),
            (Worker(1), "delta(cur_load, 1m)", num(10.0)),
            (Worker(1), "rate(cur_load, 10m)", num(40.0 / 240.0)),
            (Worker(1), "slope(reliability, 4m)", num(-1.0 / 3000.0)),
            (Worker(1), "predict(reliability, 4m, 10m)", num(0.71)),
            (Worker(1), "predict(reliability, 4m, 600)", num(0.71)),
            (Worker(1), "predict(cur_load, 10m, 0s)", num(50.0)),
            (Worker(1), "predict(reliability, 4m, missing_var)", MISSING),
            // A snapshot's own data is used at each point of the window.
            (Worker(1), "min_over(age, 4m)", num(60.0)),
            (Worker(1), "max_over(age, 4m)", num(300.0)),
            (Worker(1), "avg_over(fleet.workers, 4m)", num(2.25)),
            (Worker(3), "avg_over(fleet.workers, 4m)", num(2.0)),
            // One point: averages work, differences need two.
            (Worker(2), "avg_over(reliability, 10m)", num(0.5)),
            (Worker(2), "count_over(true, 10m)", num(1.0)),
            (Worker(2), "delta(reliability, 10m)", MISSING),
            (Worker(2), "rate(reliability, 10m)", MISSING),
            (Worker(2), "slope(reliability, 10m)", MISSING),
            (Worker(2), "predict(reliability, 10m, 1h)", MISSING),
            // Missing values are skipped like absences; none present is missing.
            (Worker(3), "avg_over(reliability, 10m)", num(0.8)),
            (Worker(3), "delta(reliability, 10m)", MISSING),
            (Worker(3), "avg_over(reliability, 30s)", MISSING),
            (Worker(3), "max_over(reliability, 0s)", MISSING),
            (Worker(3), "count_over(reliability > 0, 10m)", num(1.0)),
            // Windows of windows: the inner one looks back from each point of the outer.
            (
                Worker(1),
                "max_over(delta(reliability, 1m), 4m)",
                num(-0.02),
            ),
            (
                Worker(1),
                "count_over(present(delta(reliability, 1m)), 4m)",
                num(2.0),
            ),
        ],
    );
}

#[test]
fn fleet_windows_evaluate_aggregates_at_each_snapshot() {
    check(
        &five_minutes(),
        &vars(),
        &[
            (Fleet, "delta(workers, 4m)", num(1.0)),
            (Fleet, "avg_over(workers, 4m)", num(2.0)),
            (Fleet, "max_over(workers, 10m)", num(3.0)),
            (Fleet, "count_over(workers < 2, 10m)", num(1.0)),
            (Fleet, "avg_over(max(reliability), 4m)", num(0.95)),
            (Fleet, "delta(load, 4m)", num(55.0 - 10.0)),
            (Fleet, "avg_over(desired_workers, 1m)", num(3.5)),
            (Fleet, "slope(count(true), 4m) > 0", TRUE),
            (Fleet, "count(avg_over(reliability, 10m) < 0.9)", num(2.0)),
            (Fleet, "slope(load, 4m) > slope(perf, 4m)", MISSING),
            (Fleet, "slope(load, 4m) > slope(default(perf, 0), 4m)", TRUE),
        ],
    );
}

#[test]
fn value_is_the_left_operand_of_the_first_numeric_comparison() {
    let history = one_snapshot();
    let vars = vars();
    let ctx = EvalContext {
        history: &history,
        vars: &vars,
    };
    let identifiers = identifiers();
    let known = known_vars();
    let worker_one = index_of(&history, 1);
    let worker_three = index_of(&history, 3);
    let worker_two = index_of(&history, 2);
    let worker_cases: [(&str, usize, Option<f64>); 9] = [
        (
            "reliability < 0.9 && avg_over(reliability, 10m) < 0.92",
            worker_one,
            Some(0.95),
        ),
        (
            "avg_over(reliability, 10m) < 0.92 && reliability < 0.9",
            worker_one,
            Some(0.95),
        ),
        // String and boolean comparisons have no number to show: the next one counts.
        (
            "status == \"running\" && age > 10m",
            worker_one,
            Some(600.0),
        ),
        ("(0.5 > reliability)", worker_one, Some(0.5)),
        ("!(perf > 1)", worker_one, Some(95.0)),
        ("default(reliability, 1) < 0.9", worker_three, Some(1.0)),
        // Present but missing here.
        ("reliability < 0.9", worker_three, None),
        ("present(perf)", worker_one, None),
        // Comparisons inside function arguments do not count.
        (
            "count_over(age > 1m, 10m) > 0 || default(perf > 1, false)",
            worker_two,
            Some(0.0),
        ),
    ];
    for (expr, index, expected) in worker_cases {
        let compiled = compile(expr, Scope::Worker, &identifiers, &known).expect("compiles");
        assert_eq!(compiled.eval_value_worker(&ctx, index), expected, "{expr}");
    }
    let fleet = compile(
        "count(status == \"loading\") > 0 && utilization > 0.1",
        Scope::Fleet,
        &identifiers,
        &known,
    )
    .expect("compiles");
    assert_eq!(fleet.eval_value_fleet(&ctx), Some(1.0));
}

#[test]
fn evaluation_without_a_snapshot_or_worker_is_missing() {
    let identifiers = identifiers();
    let known = known_vars();
    let empty = History::new();
    let vars = vars();
    let ctx = EvalContext {
        history: &empty,
        vars: &vars,
    };
    let fleet = compile("workers > 0", Scope::Fleet, &identifiers, &known).expect("compiles");
    assert_eq!(fleet.eval_fleet(&ctx), Value::Missing);
    assert_eq!(fleet.eval_value_fleet(&ctx), None);

    let history = one_snapshot();
    let ctx = EvalContext {
        history: &history,
        vars: &vars,
    };
    let worker = compile("perf > 0", Scope::Worker, &identifiers, &known).expect("compiles");
    assert_eq!(worker.eval_worker(&ctx, 99), Value::Missing);
    assert_eq!(worker.eval_value_worker(&ctx, 99), None);
}

#[test]
fn many_vars_resolve_like_few() {
    let vars: BTreeMap<String, f64> = (0..12)
        .map(|index| (format!("v{index}"), index as f64))
        .collect();
    let sum = (0..12)
        .map(|index| format!("v{index}"))
        .collect::<Vec<_>>()
        .join(" + ");
    check(
        &one_snapshot(),
        &vars,
        &[
            (Fleet, sum.as_str(), num(66.0)),
            (Fleet, "v3 * v4", num(12.0)),
            (Fleet, "max_reqs", MISSING),
        ],
    );
}

#[test]
fn value_helpers_tell_truth_from_unknown() {
    assert!(TRUE.is_true());
    assert!(!FALSE.is_true());
    assert!(!MISSING.is_true());
    assert!(MISSING.is_missing());
    assert_eq!(num(2.0).as_number(), Some(2.0));
    assert_eq!(TRUE.as_number(), None);
}
