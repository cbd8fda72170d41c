//! Rule unit tests (SPEC §6.6), in the shape of `promtool test rules`: a target, worker
//! series in promtool notation, and the alerts expected to be firing at chosen times. The
//! engine under test is the daemon's own, fed in memory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::engine::{Engine, TargetInfo};
use super::expr::Identifiers;
use super::file::{RuleSet, TargetVars};
use super::labels::LabelSet;
use super::lifecycle::AlertState;
use crate::advise::ScalingConfig;
use crate::config::{FileError, RESERVED_LABELS, file_text};
use crate::model::{
    FailureKind, Field, PollFailure, PollRecord, PollResult, TargetKind, WorkerSample,
};
use crate::time::{Timestamp, format_duration, parse_duration};

/// Series longer than this are refused, so a typo like `1x99999999` cannot exhaust memory.
pub const MAX_SERIES_LEN: usize = 100_000;
/// Most worker snapshots one test may describe (each worker's longest series, added up), so
/// a short file of many long series cannot exhaust memory either.
pub const MAX_TEST_WORKER_SNAPSHOTS: usize = 1_000_000;

/// The scenario time origin of every rule test: 2026-01-01T00:00:00Z.
const TEST_EPOCH: Timestamp = Timestamp::from_unix_millis(1_767_225_600_000);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestFile {
    rule_files: Vec<String>,
    tests: Vec<Spanned<RawTest>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: String,
    target: RawTarget,
    interval: Option<Spanned<String>>,
    #[serde(default)]
    workers: Vec<Spanned<RawWorker>>,
    /// `ok`/`fail` words per interval (default: every poll succeeds).
    polls: Option<Spanned<String>>,
    expect: Vec<Spanned<RawExpect>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: String,
    endpoint: Option<i64>,
    worker_group: Option<i64>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    vars: BTreeMap<String, f64>,
}

/// Unknown keys are caught by validating `fields` against the API's field names (serde
/// cannot deny unknown fields next to `flatten`).
#[derive(Debug, Deserialize)]
struct RawWorker {
    id: i64,
    status: Option<Spanned<String>>,
    #[serde(flatten)]
    fields: BTreeMap<String, Spanned<SeriesText>>,
}

/// A series written as a YAML number (`100`) or string (`100x40`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SeriesText {
    Number(f64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    at: Spanned<String>,
    firing: Option<Vec<BTreeMap<String, String>>>,
    pending: Option<Vec<BTreeMap<String, String>>>,
    /// Keys of the target's recommendation that must have these values.
    recommendation: Option<serde_json::Map<String, serde_json::Value>>,
}

/// One expectation: the alerts in a state at a time, by label subset.
#[derive(Debug, Clone, PartialEq)]
struct Expectation {
    at: Duration,
    check: Check,
}

/// What an expectation asserts.
#[derive(Debug, Clone, PartialEq)]
enum Check {
    /// The alerts in a state, by label subset, one to one.
    Alerts {
        state: AlertState,
        alerts: Vec<LabelSet>,
    },
    /// A subset of the target's recommendation object (SPEC §7 keys).
    Recommendation(serde_json::Map<String, serde_json::Value>),
}

/// One worker's series as written: its statuses and numeric fields per snapshot.
#[derive(Debug)]
struct WorkerSeries {
    id: i64,
    statuses: Vec<Option<String>>,
    fields: Vec<(Field, Vec<Option<f64>>)>,
}

impl WorkerSeries {
    /// How many snapshots the worker is present in: its longest series.
    fn len(&self) -> usize {
        self.fields
            .iter()
            .map(|(_, values)| values.len())
            .chain([self.statuses.len()])
            .max()
            .unwrap_or(0)
    }
}

/// One parsed test case.
#[derive(Debug)]
struct TestCase {
    name: String,
    target: TargetInfo,
    interval: Duration,
    /// Per snapshot index: the workers present.
    snapshots: Vec<Vec<WorkerSample>>,
    /// Per snapshot index: whether the poll failed.
    failed: Vec<bool>,
    expectations: Vec<Expectation>,
}

/// The outcome of running test files.
#[derive(Debug, Default)]
pub struct TestReport {
    pub passed: usize,
    pub failed: usize,
    /// Human output: one line per test, with expected against actual for failures.
    pub output: String,
}

/// Runs every test in `files`. Bad input (a file that does not parse, a rule file that
/// does not load) is an error; failing tests are counted in the report.
pub fn run_test_files(
    files: &[PathBuf],
    identifiers: &Identifiers,
) -> Result<TestReport, FileError> {
    let mut report = TestReport::default();
    for file in files {
        run_test_file(file, identifiers, &mut report)?;
    }
    let _ = writeln!(
        report.output,
        "{} passed, {} failed",
        report.passed, report.failed
    );
    Ok(report)
}

fn run_test_file(
    file: &Path,
    identifiers: &Identifiers,
    report: &mut TestReport,
) -> Result<(), FileError> {
    let bytes = std::fs::read(file)
        .map_err(|error| FileError::whole_file(file, format!("cannot read test file: {error}")))?;
    let TestFile { rule_files, cases } = parse_test_file(file, &bytes)?;
    let _ = writeln!(report.output, "{}", file.display());
    for case in cases {
        let target_vars = TargetVars {
            name: case.target.name.clone(),
            vars: case.target.vars.keys().cloned().collect(),
        };
        let rules = RuleSet::load_for_tests(&rule_files, identifiers, &[target_vars])?;
        let failures = run_case(&case, Arc::new(rules), identifiers);
        if failures.is_empty() {
            report.passed += 1;
            let _ = writeln!(report.output, "  PASS {}", case.name);
        } else {
            report.failed += 1;
            let _ = writeln!(report.output, "  FAIL {}", case.name);
            for failure in failures {
                let _ = writeln!(report.output, "{failure}");
            }
        }
    }
    Ok(())
}

/// A parsed test file: the rule files it tests (relative to the test file's folder) and
/// its cases, their series expanded.
#[derive(Debug)]
pub struct TestFile {
    pub rule_files: Vec<PathBuf>,
    cases: Vec<TestCase>,
}

/// Parses the bytes of the test file at `file`; reads no other file.
pub fn parse_test_file(file: &Path, bytes: &[u8]) -> Result<TestFile, FileError> {
    let text = file_text(file, bytes)?;
    let raw: RawTestFile =
        serde_saphyr::from_str(text).map_err(|e| FileError::from_yaml(file, text, &e))?;
    let base = file.parent().unwrap_or(Path::new("."));
    let cases = raw
        .tests
        .iter()
        .map(|raw_test| parse_case(file, text, raw_test))
        .collect::<Result<_, _>>()?;
    Ok(TestFile {
        rule_files: raw.rule_files.iter().map(|path| base.join(path)).collect(),
        cases,
    })
}

fn parse_case(file: &Path, source: &str, raw: &Spanned<RawTest>) -> Result<TestCase, FileError> {
    let test = &raw.value;
    let at = |spanned_line: u64, spanned_column: u64| Some((spanned_line, spanned_column));
    let error =
        |line: u64, column: u64, message: String| FileError::at(file, at(line, column), message);
    let test_location = (raw.referenced.line(), raw.referenced.column());
    let interval = match &test.interval {
        None => Duration::from_secs(30),
        Some(text) => parse_duration(&text.value)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                error(
                    text.referenced.line(),
                    text.referenced.column(),
                    format!(
                        "key `interval`: `{}` is not a positive duration",
                        text.value
                    ),
                )
            })?,
    };
    if test.target.endpoint.is_some() == test.target.worker_group.is_some() {
        return Err(error(
            test_location.0,
            test_location.1,
            format!(
                "test `{}`: the target needs `endpoint: ID` or `worker_group: ID`",
                test.name
            ),
        ));
    }
    for label in test.target.labels.keys() {
        if RESERVED_LABELS.contains(&label.as_str()) {
            return Err(error(
                test_location.0,
                test_location.1,
                format!("test `{}`: label `{label}` is reserved", test.name),
            ));
        }
    }
    let mut per_worker: Vec<WorkerSeries> = Vec::new();
    let mut worker_snapshots: usize = 0;
    for worker in &test.workers {
        let statuses = match &worker.value.status {
            None => Vec::new(),
            Some(text) => expand_words(&text.value).map_err(|message| {
                error(
                    text.referenced.line(),
                    text.referenced.column(),
                    format!("key `status`: {message}"),
                )
            })?,
        };
        let mut fields = Vec::new();
        for (name, series) in &worker.value.fields {
            // Values inside a flattened map carry no position; find the key's value in the
            // source from the worker's line instead.
            let worker_at = (worker.referenced.line(), worker.referenced.column());
            let found = find_key(source, worker.referenced.line(), name);
            let key_at = found.map_or(worker_at, |(line, key, _)| (line, key));
            let (line, column) = if series.referenced.line() > 0 {
                (series.referenced.line(), series.referenced.column())
            } else {
                found.map_or(worker_at, |(line, _, value)| (line, value))
            };
            let Some(field) = Field::from_name(name) else {
                let known: Vec<&str> = Field::ALL
                    .iter()
                    .map(|f| f.name())
                    .chain(["status"])
                    .collect();
                let hint = crate::config::suggest(name, &known)
                    .map(|nearest| format!("; did you mean `{nearest}`?"))
                    .unwrap_or_default();
                return Err(error(
                    key_at.0,
                    key_at.1,
                    format!("unknown key `{name}`: not a worker field{hint}"),
                ));
            };
            let values = match &series.value {
                SeriesText::Number(number) => vec![Some(*number)],
                SeriesText::Text(text) => expand_numbers(text)
                    .map_err(|message| error(line, column, format!("key `{name}`: {message}")))?,
            };
            fields.push((field, values));
        }
        let series = WorkerSeries {
            id: worker.value.id,
            statuses,
            fields,
        };
        worker_snapshots = worker_snapshots.saturating_add(series.len());
        if worker_snapshots > MAX_TEST_WORKER_SNAPSHOTS {
            return Err(error(
                worker.referenced.line(),
                worker.referenced.column(),
                format!(
                    "test `{}`: more than {MAX_TEST_WORKER_SNAPSHOTS} worker snapshots \
                     (each worker's longest series, added up); shorten the series",
                    test.name
                ),
            ));
        }
        per_worker.push(series);
    }
    let failed: Vec<bool> = match &test.polls {
        None => Vec::new(),
        Some(text) => expand_words(&text.value)
            .and_then(|words| {
                words
                    .into_iter()
                    .map(|word| match word.as_deref() {
                        Some("ok") => Ok(false),
                        Some("fail") => Ok(true),
                        _ => Err("poll words are `ok` or `fail`".to_string()),
                    })
                    .collect()
            })
            .map_err(|message| {
                error(
                    text.referenced.line(),
                    text.referenced.column(),
                    format!("key `polls`: {message}"),
                )
            })?,
    };
    let length = per_worker
        .iter()
        .map(WorkerSeries::len)
        .chain([failed.len()])
        .max()
        .unwrap_or(0);
    let mut snapshots = vec![Vec::new(); length];
    for series in &per_worker {
        let WorkerSeries {
            id,
            statuses,
            fields,
        } = series;
        for (index, snapshot) in snapshots.iter_mut().enumerate().take(series.len()) {
            let mut sample = WorkerSample::new(*id);
            sample.status = statuses
                .get(index)
                .or(statuses.last())
                .cloned()
                .flatten()
                .or_else(|| statuses.is_empty().then(|| "running".to_string()));
            for (field, values) in fields {
                let value = values
                    .get(index)
                    .copied()
                    .unwrap_or_else(|| values.last().copied().flatten());
                sample.set(*field, value);
            }
            snapshot.push(sample);
        }
    }
    for snapshot in &mut snapshots {
        snapshot.sort_by_key(|worker| worker.worker_id);
    }
    let mut expectations = Vec::new();
    for expect in &test.expect {
        let at_time = parse_duration(&expect.value.at.value).map_err(|e| {
            error(
                expect.value.at.referenced.line(),
                expect.value.at.referenced.column(),
                format!("key `at`: {e}"),
            )
        })?;
        if expect.value.firing.is_none()
            && expect.value.pending.is_none()
            && expect.value.recommendation.is_none()
        {
            return Err(error(
                expect.referenced.line(),
                expect.referenced.column(),
                "an expectation needs `firing:` or `pending:` (an empty list means none)"
                    .to_string(),
            ));
        }
        for (state, alerts) in [
            (AlertState::Firing, &expect.value.firing),
            (AlertState::Pending, &expect.value.pending),
        ] {
            if let Some(alerts) = alerts {
                expectations.push(Expectation {
                    at: at_time,
                    check: Check::Alerts {
                        state,
                        alerts: alerts.clone(),
                    },
                });
            }
        }
        if let Some(recommendation) = &expect.value.recommendation {
            expectations.push(Expectation {
                at: at_time,
                check: Check::Recommendation(recommendation.clone()),
            });
        }
    }
    Ok(TestCase {
        name: test.name.clone(),
        target: TargetInfo {
            name: test.target.name.clone(),
            kind: if test.target.worker_group.is_some() {
                TargetKind::WorkerGroup
            } else {
                TargetKind::Endpoint
            },
            vast_id: test
                .target
                .endpoint
                .or(test.target.worker_group)
                .unwrap_or(0),
            labels: test.target.labels.clone(),
            vars: test.target.vars.clone(),
            scaling: ScalingConfig::default(),
        },
        interval,
        snapshots,
        failed,
        expectations,
    })
}

/// Where `key:` is written on or after `from_line`: its line, the key's column and the
/// value's column (1-based).
fn find_key(source: &str, from_line: u64, key: &str) -> Option<(u64, u64, u64)> {
    let needle = format!("{key}:");
    source
        .lines()
        .enumerate()
        .skip(from_line.saturating_sub(1) as usize)
        .find_map(|(index, line)| {
            let byte = line.find(&needle)?;
            let after = &line[byte + needle.len()..];
            let spaces = after.chars().take_while(|c| *c == ' ').count();
            let key_column = line[..byte].chars().count() + 1;
            let value_column = key_column + needle.chars().count() + spaces;
            Some((index as u64 + 1, key_column as u64, value_column as u64))
        })
}

/// Plays the case through a fresh engine and returns one message per unmet expectation.
fn run_case(case: &TestCase, rules: Arc<RuleSet>, identifiers: &Identifiers) -> Vec<String> {
    let mut engine = Engine::new(
        rules,
        identifiers,
        vec![case.target.clone()],
        3,
        case.interval,
    );
    let mut expectations = case.expectations.clone();
    expectations.sort_by_key(|expectation| expectation.at);
    let mut pending = expectations.into_iter().peekable();
    let mut failures = Vec::new();
    let steps = case.snapshots.len().max(case.failed.len());
    for index in 0..steps {
        let offset = case.interval.saturating_mul(index as u32);
        while let Some(expectation) = pending.next_if(|e| e.at < offset) {
            check(&engine, &case.target.name, &expectation, &mut failures);
        }
        let failed = case.failed.get(index).copied().unwrap_or(false);
        let result = if failed {
            PollResult::Failed(PollFailure {
                kind: FailureKind::HttpStatus,
                message: "HTTP 503 (test)".to_string(),
                http_status: Some(503),
            })
        } else {
            PollResult::Snapshot {
                workers: case.snapshots.get(index).cloned().unwrap_or_default(),
                notes: Vec::new(),
            }
        };
        let record = PollRecord {
            target: case.target.name.clone(),
            started_at: TEST_EPOCH.saturating_add(offset),
            duration: Duration::ZERO,
            result,
        };
        let evaluation = engine.evaluate(&record);
        engine.apply(evaluation);
    }
    for expectation in pending {
        check(&engine, &case.target.name, &expectation, &mut failures);
    }
    failures
}

fn check(engine: &Engine, target: &str, expectation: &Expectation, failures: &mut Vec<String>) {
    let (state, alerts) = match &expectation.check {
        Check::Alerts { state, alerts } => (*state, alerts),
        Check::Recommendation(expected) => {
            check_recommendation(engine, target, expectation.at, expected, failures);
            return;
        }
    };
    let mut actual: Vec<LabelSet> = engine
        .active_alerts()
        .filter(|record| record.lifecycle.state == state)
        .map(|record| record.labels.clone())
        .collect();
    actual.sort();
    let mut unmatched_actual = actual.clone();
    let mut missing = Vec::new();
    for expected in alerts {
        match unmatched_actual
            .iter()
            .position(|labels| is_subset(expected, labels))
        {
            Some(position) => {
                unmatched_actual.remove(position);
            }
            None => missing.push(expected.clone()),
        }
    }
    if missing.is_empty() && unmatched_actual.is_empty() {
        return;
    }
    let mut message = format!(
        "    at {}: {} alerts differ\n      expected: {}\n      actual:   {}",
        format_duration(expectation.at),
        state,
        show_all(alerts),
        show_all(&actual)
    );
    for labels in &missing {
        let _ = write!(message, "\n      missing:  {}", show(labels));
    }
    for labels in &unmatched_actual {
        let _ = write!(message, "\n      extra:    {}", show(labels));
    }
    failures.push(message);
}

fn check_recommendation(
    engine: &Engine,
    target: &str,
    at: Duration,
    expected: &serde_json::Map<String, serde_json::Value>,
    failures: &mut Vec<String>,
) {
    let actual = engine
        .recommendation(target)
        .and_then(|recommendation| serde_json::to_value(recommendation).ok())
        .unwrap_or(serde_json::Value::Null);
    let differing: Vec<String> = expected
        .iter()
        .filter(|(key, value)| !json_equal(value, &actual[key.as_str()]))
        .map(|(key, value)| format!("{key}: expected {value}, actual {}", actual[key.as_str()]))
        .collect();
    if !differing.is_empty() {
        failures.push(format!(
            "    at {}: recommendation differs\n      {}\n      reason:   {}",
            format_duration(at),
            differing.join("\n      "),
            actual["reason"].as_str().unwrap_or("(none)")
        ));
    }
}

/// JSON equality where numbers compare by value (`3` equals `3.0`).
fn json_equal(expected: &serde_json::Value, actual: &serde_json::Value) -> bool {
    match (expected.as_f64(), actual.as_f64()) {
        (Some(expected), Some(actual)) => expected == actual,
        _ => expected == actual,
    }
}

fn is_subset(expected: &LabelSet, actual: &LabelSet) -> bool {
    expected
        .iter()
        .all(|(name, value)| actual.get(name) == Some(value))
}

fn show(labels: &LabelSet) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

fn show_all(alerts: &[LabelSet]) -> String {
    if alerts.is_empty() {
        return "(none)".to_string();
    }
    alerts.iter().map(show).collect::<Vec<_>>().join(" ")
}

/// Expands promtool series notation: `a+bxn` is a, a+b, …, a+n·b (n+1 values); `a-bxn`
/// likewise; `axn` repeats a n+1 times; `_` is missing and `_xn` is n missing values.
pub fn expand_numbers(text: &str) -> Result<Vec<Option<f64>>, String> {
    let mut values = Vec::new();
    for token in text.split_whitespace() {
        if token == "_" {
            values.push(None);
        } else if let Some(count) = token.strip_prefix("_x") {
            let count: usize = count
                .parse()
                .map_err(|_| format!("`{token}`: expected `_xN` with a whole number N"))?;
            check_length(values.len().saturating_add(count))?;
            values.extend(std::iter::repeat_n(None, count));
        } else {
            let (head, count) = match token.rsplit_once('x') {
                Some((head, count)) => (
                    head,
                    count.parse::<usize>().map_err(|_| {
                        format!("`{token}`: expected `a+bxN` with a whole number N")
                    })?,
                ),
                None => (token, 0),
            };
            let (start, step) = split_start_step(head)
                .ok_or_else(|| format!("`{token}` is not a number or `a+bxN` series"))?;
            check_length(values.len().saturating_add(count).saturating_add(1))?;
            values.extend((0..=count).map(|i| Some(start + step * i as f64)));
        }
    }
    Ok(values)
}

/// Splits `a+b` / `a-b` / `a` (where a may carry a sign or exponent) into start and step.
fn split_start_step(text: &str) -> Option<(f64, f64)> {
    if let Ok(start) = text.parse::<f64>() {
        return start.is_finite().then_some((start, 0.0));
    }
    let bytes = text.as_bytes();
    for index in (1..text.len()).rev() {
        let sign = bytes[index];
        if (sign == b'+' || sign == b'-') && !matches!(bytes[index - 1], b'e' | b'E') {
            let start: f64 = text[..index].parse().ok()?;
            let step: f64 = text[index + 1..].parse().ok()?;
            let step = if sign == b'-' { -step } else { step };
            return (start.is_finite() && step.is_finite()).then_some((start, step));
        }
    }
    None
}

/// Expands a word series: `loading x3 running x30` is loading four times, then running 31
/// times; `_` is missing.
pub fn expand_words(text: &str) -> Result<Vec<Option<String>>, String> {
    let mut words: Vec<Option<String>> = Vec::new();
    for token in text.split_whitespace() {
        match token.strip_prefix('x').map(str::parse::<usize>) {
            Some(Ok(count)) => {
                let Some(last) = words.last().cloned() else {
                    return Err(format!("`{token}` repeats nothing; write a word before it"));
                };
                check_length(words.len().saturating_add(count))?;
                words.extend(std::iter::repeat_n(last, count));
            }
            _ if token == "_" => words.push(None),
            _ => words.push(Some(token.to_lowercase())),
        }
    }
    Ok(words)
}

fn check_length(length: usize) -> Result<(), String> {
    if length > MAX_SERIES_LEN {
        Err(format!("series longer than {MAX_SERIES_LEN} values"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_series_expand_as_promtool_does() {
        for (text, expected) in [
            ("1+1x3", vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0)]),
            ("10-2x2", vec![Some(10.0), Some(8.0), Some(6.0)]),
            ("5x2", vec![Some(5.0), Some(5.0), Some(5.0)]),
            (
                "0.99 0.98 0.85x1",
                vec![Some(0.99), Some(0.98), Some(0.85), Some(0.85)],
            ),
            ("_ 1 _x2", vec![None, Some(1.0), None, None]),
            ("-1+1x1", vec![Some(-1.0), Some(0.0)]),
            ("1e2", vec![Some(100.0)]),
            ("1e-1+1e-1x1", vec![Some(0.1), Some(0.2)]),
        ] {
            assert_eq!(expand_numbers(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn malformed_series_are_errors() {
        assert_eq!(
            expand_numbers("abc"),
            Err("`abc` is not a number or `a+bxN` series".to_string())
        );
        assert_eq!(
            expand_numbers("1x"),
            Err("`1x`: expected `a+bxN` with a whole number N".to_string())
        );
        assert_eq!(
            expand_numbers("1x999999999"),
            Err(format!("series longer than {MAX_SERIES_LEN} values"))
        );
        assert_eq!(
            expand_words("x3"),
            Err("`x3` repeats nothing; write a word before it".to_string())
        );
    }

    #[test]
    fn a_repeat_count_near_the_largest_integer_is_too_long_not_an_overflow() {
        let too_long = format!("series longer than {MAX_SERIES_LEN} values");
        let largest = usize::MAX;
        for text in [
            format!("1 _x{largest}"),
            format!("1 1x{largest}"),
            format!("1x{largest}"),
        ] {
            assert_eq!(expand_numbers(&text), Err(too_long.clone()), "{text}");
        }
        assert_eq!(expand_words(&format!("ok ok x{largest}")), Err(too_long));
    }

    /// A test file of `workers` workers, each with a `perf` series of `length` values.
    fn test_file_with(workers: usize, length: usize) -> String {
        let mut text = String::from(
            "rule_files: []\ntests:\n  - name: big\n    target: {name: prod, endpoint: 1}\n    workers:\n",
        );
        for id in 1..=workers {
            text.push_str(&format!("      - {{id: {id}, perf: 1x{}}}\n", length - 1));
        }
        text.push_str("    expect:\n      - {at: 1m, firing: []}\n");
        text
    }

    #[test]
    fn a_test_describes_at_most_the_limit_of_worker_snapshots() {
        let file = Path::new("big_test.yaml");
        let workers = MAX_TEST_WORKER_SNAPSHOTS / MAX_SERIES_LEN;
        let parsed = parse_test_file(file, test_file_with(workers, MAX_SERIES_LEN).as_bytes())
            .expect("at the limit");
        assert_eq!(parsed.cases[0].snapshots.len(), MAX_SERIES_LEN);
        let past = test_file_with(workers + 1, MAX_SERIES_LEN);
        assert_eq!(
            parse_test_file(file, past.as_bytes())
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(format!(
                "big_test.yaml:{}:9: test `big`: more than 1000000 worker snapshots (each \
                 worker's longest series, added up); shorten the series",
                6 + workers
            ))
        );
    }

    #[test]
    fn word_series_repeat_the_previous_word() {
        let words = expand_words("LOADING x2 running _").expect("valid");
        assert_eq!(
            words,
            vec![
                Some("loading".to_string()),
                Some("loading".to_string()),
                Some("loading".to_string()),
                Some("running".to_string()),
                None
            ]
        );
    }
}
