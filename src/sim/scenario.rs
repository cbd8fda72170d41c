//! Scenario files: the YAML format, its validation into domain types, and the built-in
//! scenarios embedded in the binary. `docs/scenarios.md` documents the format for users.
//!
//! Parsing is two steps: serde reads raw structs (`deny_unknown_fields`, every key's
//! position kept), then `validate` turns them into [`Scenario`], so the pure response code
//! in `respond.rs` never re-checks anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::curve::{
    Curve, CurveRaw, FRACTION, NON_NEGATIVE, StepCurve, StepCurveRaw, validate_curve,
    validate_step_curve,
};
use crate::model::{Field, TargetKind};
use crate::time::parse_duration;

/// The built-in scenarios: name and YAML text.
const BUILTINS: &[(&str, &str)] = &[
    ("steady", include_str!("scenarios/steady.yaml")),
    ("surge", include_str!("scenarios/surge.yaml")),
    ("flaky-worker", include_str!("scenarios/flaky-worker.yaml")),
    ("saturated", include_str!("scenarios/saturated.yaml")),
    ("outage", include_str!("scenarios/outage.yaml")),
    ("tour", include_str!("scenarios/tour.yaml")),
];

const BUILTIN_NAMES: &[&str] = &[
    "steady",
    "surge",
    "flaky-worker",
    "saturated",
    "outage",
    "tour",
];

/// Whether `name` is a field of the worker-list API, which the simulator derives itself.
/// `extra` may not set one (that is what `fields` is for).
fn is_api_field(name: &str) -> bool {
    name == "id" || name == "status" || Field::from_name(name).is_some()
}

const DEFAULT_MAX_REQS: u32 = 4;
const DEFAULT_RELIABILITY: f64 = 0.99;
const DEFAULT_DISK_USAGE_GB: f64 = 30.0;
const DEFAULT_STATUS: &str = "running";
const DEFAULT_TIMEOUT_HOLD: Duration = Duration::from_secs(30);

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(
        "`{name}` is neither a built-in scenario ({builtins}) nor a readable file",
        builtins = BUILTIN_NAMES.join(", ")
    )]
    NotFound { name: String },
    #[error("cannot read scenario file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The text is not a valid scenario. `line` and `column` are 1-based; 0 when unknown.
    #[error("{origin}:{line}:{column}: {}{message}", key.as_deref().map(|key| format!("`{key}`: ")).unwrap_or_default())]
    Invalid {
        /// The file path, or `builtin:NAME`.
        origin: String,
        line: u64,
        column: u64,
        /// The key at fault, as a path such as `fleets[0].workers[2].leave`, when known.
        key: Option<String>,
        message: String,
    },
}

/// A validation problem before the origin is known.
#[derive(Debug)]
pub(super) struct Problem {
    line: u64,
    column: u64,
    key: String,
    message: String,
}

impl Problem {
    pub(super) fn at<T>(spanned: &Spanned<T>, key: &str, message: impl Into<String>) -> Self {
        Problem {
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn into_error(self, origin: &str) -> ScenarioError {
        ScenarioError::Invalid {
            origin: origin.to_string(),
            line: self.line,
            column: self.column,
            key: Some(self.key),
            message: self.message,
        }
    }
}

/// Parses a scenario time such as `90s` or `2m` into seconds.
pub(super) fn parse_time(text: &Spanned<String>, key: &str) -> Result<f64, Problem> {
    parse_duration(&text.value)
        .map(|duration| duration.as_secs_f64())
        .map_err(|err| Problem::at(text, key, err.to_string()))
}

fn parse_span(text: &Spanned<String>, key: &str) -> Result<Duration, Problem> {
    parse_duration(&text.value).map_err(|err| Problem::at(text, key, err.to_string()))
}

// ---------------------------------------------------------------------------------------
// Raw YAML form.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioRaw {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    duration: Option<Spanned<String>>,
    #[serde(default)]
    faults: Vec<Spanned<FaultRaw>>,
    fleets: Spanned<Vec<Spanned<FleetRaw>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetRaw {
    #[serde(default)]
    endpoint: Option<Spanned<i64>>,
    #[serde(default)]
    worker_group: Option<Spanned<i64>>,
    #[serde(default)]
    name: Option<Spanned<String>>,
    #[serde(default)]
    load: Option<Spanned<CurveRaw>>,
    #[serde(default)]
    noise: Option<Spanned<f64>>,
    #[serde(default)]
    response: ResponseShape,
    #[serde(default)]
    workers: Vec<Spanned<WorkerRaw>>,
    #[serde(default)]
    faults: Vec<Spanned<FaultRaw>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkerRaw {
    id: Spanned<i64>,
    perf: Spanned<CurveRaw>,
    #[serde(default)]
    reliability: Option<Spanned<CurveRaw>>,
    #[serde(default)]
    max_reqs: Option<Spanned<u32>>,
    #[serde(default)]
    join: Option<Spanned<String>>,
    #[serde(default)]
    leave: Option<Spanned<String>>,
    #[serde(default)]
    status: Option<Spanned<StepCurveRaw>>,
    #[serde(default)]
    dlperf: Option<Spanned<CurveRaw>>,
    #[serde(default)]
    disk_usage: Option<Spanned<CurveRaw>>,
    #[serde(default)]
    extra: BTreeMap<String, Spanned<serde_json::Value>>,
    #[serde(default)]
    fields: BTreeMap<String, Spanned<serde_json::Value>>,
    #[serde(default)]
    omit: Vec<Spanned<String>>,
    #[serde(default)]
    duplicate: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRaw {
    at: Spanned<String>,
    #[serde(default, rename = "for")]
    lasts: Option<Spanned<String>>,
    kind: Spanned<String>,
    #[serde(default)]
    status: Option<Spanned<u16>>,
    #[serde(default)]
    body: Option<Spanned<String>>,
    #[serde(default)]
    content_type: Option<Spanned<String>>,
    #[serde(default)]
    message: Option<Spanned<String>>,
    #[serde(default)]
    hold: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------------------
// Validated domain form.

/// A validated scenario: fleets whose workers change over scenario time, and API faults.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub(super) name: String,
    pub(super) description: String,
    pub(super) seed: u64,
    /// After this much scenario time every value holds still.
    pub(super) duration: Option<Duration>,
    pub(super) fleets: Vec<Fleet>,
    /// Faults that apply to every fleet; a fleet's own faults come first.
    pub(super) faults: Vec<Fault>,
}

/// How a fleet's worker list is wrapped on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseShape {
    /// A bare JSON array, as the real API answers in practice.
    #[default]
    List,
    /// `{"workers": [...]}`, as one API reference variant shows.
    Wrapped,
}

/// One simulated Endpoint or Worker Group.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub(super) kind: TargetKind,
    pub(super) vast_id: i64,
    pub(super) name: String,
    /// Total demand across the fleet, in perf units.
    pub(super) load: Curve,
    /// Relative amplitude of the deterministic jitter on `cur_load`.
    pub(super) noise: f64,
    pub(super) response: ResponseShape,
    pub(super) workers: Vec<Worker>,
    pub(super) faults: Vec<Fault>,
}

impl Fleet {
    pub fn kind(&self) -> TargetKind {
        self.kind
    }

    /// The Endpoint or Worker Group id the fleet answers to.
    pub fn vast_id(&self) -> i64 {
        self.vast_id
    }

    /// The fleet's name: as written, or `endpoint-ID` / `worker-group-ID`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many worker entries the scenario declares (present or not at any one time).
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    pub fn response_shape(&self) -> ResponseShape {
        self.response
    }
}

/// One worker entry. Times are scenario seconds.
#[derive(Debug, Clone)]
pub(super) struct Worker {
    pub(super) id: i64,
    /// Measured perf.
    pub(super) perf: Curve,
    pub(super) reliability: Curve,
    pub(super) max_reqs: u32,
    pub(super) join: f64,
    pub(super) leave: Option<f64>,
    pub(super) status: StepCurve,
    pub(super) dlperf: Option<Curve>,
    pub(super) disk_usage: Curve,
    pub(super) extra: serde_json::Map<String, serde_json::Value>,
    pub(super) fields: serde_json::Map<String, serde_json::Value>,
    pub(super) omit: Vec<String>,
}

/// A fault active from `start` (inclusive) to `end` (exclusive; forever when `None`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Fault {
    pub(super) start: f64,
    pub(super) end: Option<f64>,
    pub(super) kind: FaultKind,
}

/// What the API does wrong while a fault is active.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum FaultKind {
    HttpStatus {
        status: u16,
        body: Option<String>,
        content_type: Option<String>,
    },
    RateLimit,
    Timeout {
        hold: Duration,
    },
    ErrorMsg {
        message: String,
    },
    Unauthorized {
        message: String,
    },
    Html {
        body: Option<String>,
    },
    Truncated,
    Raw {
        status: u16,
        body: String,
        content_type: String,
    },
}

const FAULT_KINDS: &[&str] = &[
    "http_status",
    "rate_limit",
    "timeout",
    "error_msg",
    "unauthorized",
    "html",
    "truncated",
    "raw",
];

impl Scenario {
    /// The built-in scenario of that name, if there is one.
    pub fn builtin(name: &str) -> Option<Scenario> {
        let (name, text) = BUILTINS.iter().find(|(builtin, _)| *builtin == name)?;
        let origin = format!("builtin:{name}");
        // The built-ins are part of the program and a test parses every one of them.
        Some(Scenario::from_yaml(text, &origin).unwrap_or_else(|err| panic!("{err}")))
    }

    /// Names of the built-in scenarios.
    pub fn builtin_names() -> &'static [&'static str] {
        BUILTIN_NAMES
    }

    /// The YAML text of a built-in scenario, to print or copy as a starting point.
    pub fn builtin_yaml(name: &str) -> Option<&'static str> {
        BUILTINS
            .iter()
            .find(|(builtin, _)| *builtin == name)
            .map(|(_, text)| *text)
    }

    /// A built-in scenario by name, or else a scenario file by path.
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        if let Some(scenario) = Scenario::builtin(name_or_path) {
            return Ok(scenario);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(ScenarioError::NotFound {
                name: name_or_path.to_string(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: name_or_path.to_string(),
            source,
        })?;
        Scenario::from_yaml(&text, name_or_path)
    }

    /// Parses and validates scenario YAML. `origin` names the text in errors (a path, or
    /// `builtin:NAME`).
    pub fn from_yaml(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        // Generated load-test scenarios describe tens of thousands of workers, past the YAML
        // reader's default budget of 250,000 nodes; the budget still bounds hostile input.
        let mut budget = serde_saphyr::Budget::default();
        budget.max_nodes = MAX_SCENARIO_NODES;
        budget.max_events = 2 * MAX_SCENARIO_NODES;
        let mut options = serde_saphyr::Options::default();
        options.budget = Some(budget);
        let raw: ScenarioRaw = serde_saphyr::from_str_with_options(text, options)
            .map_err(|err| yaml_error(&err, text, origin))?;
        validate(raw).map_err(|problem| problem.into_error(origin))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// How long the scenario plays; after it, every value holds at its last point.
    pub fn duration(&self) -> Option<Duration> {
        self.duration
    }

    pub fn fleets(&self) -> &[Fleet] {
        &self.fleets
    }

    pub fn fleet(&self, kind: TargetKind, vast_id: i64) -> Option<&Fleet> {
        self.fleets
            .iter()
            .find(|fleet| fleet.kind == kind && fleet.vast_id == vast_id)
    }
}

/// Turns a serde-saphyr error into a [`ScenarioError`] that names the key when the
/// position points at one.
/// The most YAML nodes a scenario may have: room for a 1,000-fleet × 50-worker load test.
const MAX_SCENARIO_NODES: usize = 2_000_000;

fn yaml_error(err: &serde_saphyr::Error, text: &str, origin: &str) -> ScenarioError {
    let err = err.without_snippet();
    let location = err.location();
    let (line, column) = location.map_or((0, 0), |l| (l.line(), l.column()));
    let mut message = err.to_string();
    let suffix = format!(" at line {line}, column {column}");
    if let Some(stripped) = message.strip_suffix(&suffix) {
        message = stripped.to_string();
    }
    ScenarioError::Invalid {
        origin: origin.to_string(),
        line,
        column,
        key: key_at(text, line, column),
        message,
    }
}

/// The YAML key whose value (or own name) sits at `line`:`column`, read from the text.
/// For `  - id: hello` with the column on `hello` this is `id`.
fn key_at(text: &str, line: u64, column: u64) -> Option<String> {
    let source_line = text.lines().nth(line.checked_sub(1)? as usize)?;
    let chars: Vec<char> = source_line.chars().collect();
    let column = (column.checked_sub(1)? as usize).min(chars.len());
    let is_key_char = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    // The position is on a key itself (an unknown field, say).
    let own_end = chars[column..]
        .iter()
        .position(|c| !is_key_char(*c))
        .map_or(chars.len(), |offset| column + offset);
    if own_end > column && chars.get(own_end) == Some(&':') {
        return Some(chars[column..own_end].iter().collect());
    }
    // Otherwise take the nearest `key:` before the position.
    let colon = chars[..column].iter().rposition(|c| *c == ':')?;
    let before = &chars[..colon];
    let start = before
        .iter()
        .rposition(|c| !is_key_char(*c))
        .map_or(0, |i| i + 1);
    (start < colon).then(|| before[start..].iter().collect())
}

fn validate(raw: ScenarioRaw) -> Result<Scenario, Problem> {
    let duration = raw
        .duration
        .as_ref()
        .map(|text| {
            let duration = parse_span(text, "duration")?;
            if duration.is_zero() {
                return Err(Problem::at(text, "duration", "must be longer than 0s"));
            }
            Ok(duration)
        })
        .transpose()?;
    if raw.name.value.trim().is_empty() {
        return Err(Problem::at(&raw.name, "name", "must not be empty"));
    }
    let faults = validate_faults(&raw.faults, "faults")?;
    if raw.fleets.value.is_empty() {
        return Err(Problem::at(
            &raw.fleets,
            "fleets",
            "a scenario needs at least one fleet",
        ));
    }
    let mut fleets = Vec::with_capacity(raw.fleets.value.len());
    let mut seen_targets = BTreeSet::new();
    let mut seen_names = BTreeSet::new();
    for (index, fleet) in raw.fleets.value.iter().enumerate() {
        let key = format!("fleets[{index}]");
        let fleet = validate_fleet(fleet, &key)?;
        let raw_fleet = &raw.fleets.value[index];
        if !seen_targets.insert((fleet.kind.as_str(), fleet.vast_id)) {
            return Err(Problem::at(
                raw_fleet,
                &key,
                format!(
                    "another fleet already is {} {}",
                    fleet.kind.as_str(),
                    fleet.vast_id
                ),
            ));
        }
        if !seen_names.insert(fleet.name.clone()) {
            return Err(Problem::at(
                raw_fleet,
                &format!("{key}.name"),
                format!("another fleet already is named `{}`", fleet.name),
            ));
        }
        fleets.push(fleet);
    }
    Ok(Scenario {
        name: raw.name.value,
        description: raw.description.unwrap_or_default(),
        seed: raw.seed.unwrap_or(0),
        duration,
        fleets,
        faults,
    })
}

fn validate_fleet(raw: &Spanned<FleetRaw>, key: &str) -> Result<Fleet, Problem> {
    let fleet = &raw.value;
    let (kind, vast_id) = match (&fleet.endpoint, &fleet.worker_group) {
        (Some(id), None) => (TargetKind::Endpoint, id),
        (None, Some(id)) => (TargetKind::WorkerGroup, id),
        _ => {
            return Err(Problem::at(
                raw,
                key,
                "a fleet needs exactly one of `endpoint: ID` or `worker_group: ID`",
            ));
        }
    };
    if vast_id.value < 0 {
        return Err(Problem::at(
            vast_id,
            &format!("{key}.{}", kind.as_str()),
            "ids are 0 or more",
        ));
    }
    let name = match &fleet.name {
        Some(name) if name.value.trim().is_empty() => {
            return Err(Problem::at(
                name,
                &format!("{key}.name"),
                "must not be empty",
            ));
        }
        Some(name) => name.value.clone(),
        None => match kind {
            TargetKind::Endpoint => format!("endpoint-{}", vast_id.value),
            TargetKind::WorkerGroup => format!("worker-group-{}", vast_id.value),
        },
    };
    let load = match &fleet.load {
        Some(load) => validate_curve(load, &format!("{key}.load"), NON_NEGATIVE)?,
        None => Curve::Constant(0.0),
    };
    let noise = match &fleet.noise {
        Some(noise) if !(0.0..=1.0).contains(&noise.value) => {
            return Err(Problem::at(
                noise,
                &format!("{key}.noise"),
                "a relative amplitude between 0 and 1 (0.05 is ±5%)",
            ));
        }
        Some(noise) => noise.value,
        None => 0.0,
    };
    let mut workers = Vec::with_capacity(fleet.workers.len());
    let mut seen_ids = BTreeSet::new();
    for (index, worker) in fleet.workers.iter().enumerate() {
        let worker_key = format!("{key}.workers[{index}]");
        let validated = validate_worker(worker, &worker_key)?;
        if !seen_ids.insert(validated.id) && !worker.value.duplicate {
            return Err(Problem::at(
                &worker.value.id,
                &format!("{worker_key}.id"),
                format!(
                    "worker {} is listed twice; add `duplicate: true` to the later entry if the list should really repeat it",
                    validated.id
                ),
            ));
        }
        workers.push(validated);
    }
    Ok(Fleet {
        kind,
        vast_id: vast_id.value,
        name,
        load,
        noise,
        response: fleet.response,
        workers,
        faults: validate_faults(&fleet.faults, &format!("{key}.faults"))?,
    })
}

fn validate_worker(raw: &Spanned<WorkerRaw>, key: &str) -> Result<Worker, Problem> {
    let worker = &raw.value;
    let sub = |name: &str| format!("{key}.{name}");
    let join = match &worker.join {
        Some(join) => parse_time(join, &sub("join"))?,
        None => 0.0,
    };
    let leave = match &worker.leave {
        Some(leave) => {
            let at = parse_time(leave, &sub("leave"))?;
            if at <= join {
                return Err(Problem::at(
                    leave,
                    &sub("leave"),
                    "a worker must leave after it joins",
                ));
            }
            Some(at)
        }
        None => None,
    };
    let max_reqs = match &worker.max_reqs {
        Some(max) if max.value == 0 => {
            return Err(Problem::at(max, &sub("max_reqs"), "must be 1 or more"));
        }
        Some(max) => max.value,
        None => DEFAULT_MAX_REQS,
    };
    let optional_curve = |curve: &Option<Spanned<CurveRaw>>, name: &str| {
        curve
            .as_ref()
            .map(|curve| validate_curve(curve, &sub(name), NON_NEGATIVE))
            .transpose()
    };
    let status = match &worker.status {
        Some(status) => validate_step_curve(status, &sub("status"))?,
        None => StepCurve::constant(DEFAULT_STATUS),
    };
    let mut extra = serde_json::Map::new();
    for (name, value) in &worker.extra {
        if is_api_field(name) {
            return Err(Problem::at(
                value,
                &sub(&format!("extra.{name}")),
                format!("`{name}` is a field the simulator derives; set it under `fields` instead"),
            ));
        }
        extra.insert(name.clone(), value.value.clone());
    }
    let fields = worker
        .fields
        .iter()
        .map(|(name, value)| (name.clone(), value.value.clone()))
        .collect();
    Ok(Worker {
        id: worker.id.value,
        perf: validate_curve(&worker.perf, &sub("perf"), NON_NEGATIVE)?,
        reliability: match &worker.reliability {
            Some(curve) => validate_curve(curve, &sub("reliability"), FRACTION)?,
            None => Curve::Constant(DEFAULT_RELIABILITY),
        },
        max_reqs,
        join,
        leave,
        status,
        dlperf: optional_curve(&worker.dlperf, "dlperf")?,
        disk_usage: optional_curve(&worker.disk_usage, "disk_usage")?
            .unwrap_or(Curve::Constant(DEFAULT_DISK_USAGE_GB)),
        extra,
        fields,
        omit: worker.omit.iter().map(|name| name.value.clone()).collect(),
    })
}

fn validate_faults(raw: &[Spanned<FaultRaw>], key: &str) -> Result<Vec<Fault>, Problem> {
    raw.iter()
        .enumerate()
        .map(|(index, fault)| validate_fault(fault, &format!("{key}[{index}]")))
        .collect()
}

fn validate_fault(raw: &Spanned<FaultRaw>, key: &str) -> Result<Fault, Problem> {
    let fault = &raw.value;
    let sub = |name: &str| format!("{key}.{name}");
    let start = parse_time(&fault.at, &sub("at"))?;
    let end = match &fault.lasts {
        Some(lasts) => {
            let span = parse_time(lasts, &sub("for"))?;
            if span <= 0.0 {
                return Err(Problem::at(lasts, &sub("for"), "must be longer than 0s"));
            }
            Some(start + span)
        }
        None => None,
    };
    let kind_name = fault.kind.value.as_str();
    // Which optional keys each kind takes; any other is a mistake worth reporting.
    let allowed: &[&str] = match kind_name {
        "http_status" => &["status", "body", "content_type"],
        "timeout" => &["hold"],
        "error_msg" | "unauthorized" => &["message"],
        "html" => &["body"],
        "raw" => &["status", "body", "content_type"],
        "rate_limit" | "truncated" => &[],
        other => {
            return Err(Problem::at(
                &fault.kind,
                &sub("kind"),
                format!(
                    "unknown fault kind `{other}`; use one of {}",
                    FAULT_KINDS.join(", ")
                ),
            ));
        }
    };
    let given = [
        ("status", fault.status.as_ref().map(|s| s.referenced)),
        ("body", fault.body.as_ref().map(|s| s.referenced)),
        (
            "content_type",
            fault.content_type.as_ref().map(|s| s.referenced),
        ),
        ("message", fault.message.as_ref().map(|s| s.referenced)),
        ("hold", fault.hold.as_ref().map(|s| s.referenced)),
    ];
    for (name, location) in given {
        if let Some(location) = location
            && !allowed.contains(&name)
        {
            return Err(Problem {
                line: location.line(),
                column: location.column(),
                key: sub(name),
                message: format!("a `{kind_name}` fault takes no `{name}`"),
            });
        }
    }
    let text = |value: &Option<Spanned<String>>| value.as_ref().map(|v| v.value.clone());
    let kind = match kind_name {
        "http_status" => {
            let status = match &fault.status {
                Some(status) if !(300..=599).contains(&status.value) || status.value == 429 => {
                    return Err(Problem::at(
                        status,
                        &sub("status"),
                        "an http_status fault answers 300..599 (use `rate_limit` for 429 and `raw` for anything else)",
                    ));
                }
                Some(status) => status.value,
                None => 503,
            };
            FaultKind::HttpStatus {
                status,
                body: text(&fault.body),
                content_type: text(&fault.content_type),
            }
        }
        "rate_limit" => FaultKind::RateLimit,
        "timeout" => FaultKind::Timeout {
            hold: match &fault.hold {
                Some(hold) => parse_span(hold, &sub("hold"))?,
                None => DEFAULT_TIMEOUT_HOLD,
            },
        },
        "error_msg" => FaultKind::ErrorMsg {
            message: text(&fault.message)
                .unwrap_or_else(|| "Endpoint workers are still loading, try again later".into()),
        },
        "unauthorized" => FaultKind::Unauthorized {
            message: text(&fault.message).unwrap_or_else(|| "Invalid or expired API key".into()),
        },
        "html" => FaultKind::Html {
            body: text(&fault.body),
        },
        "truncated" => FaultKind::Truncated,
        _ => {
            let Some(status) = &fault.status else {
                return Err(Problem::at(raw, key, "a `raw` fault needs `status`"));
            };
            if !(200..=599).contains(&status.value) {
                return Err(Problem::at(
                    status,
                    &sub("status"),
                    "a final HTTP status is 200..599",
                ));
            }
            let Some(body) = text(&fault.body) else {
                return Err(Problem::at(raw, key, "a `raw` fault needs `body`"));
            };
            FaultKind::Raw {
                status: status.value,
                body,
                content_type: text(&fault.content_type)
                    .unwrap_or_else(|| "application/json".into()),
            }
        }
    };
    Ok(Fault { start, end, kind })
}

#[cfg(test)]
mod tests;
