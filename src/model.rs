//! Domain types shared by every stage: targets, workers, state classes and poll results.
//!
//! These are the validated, in-memory forms. Wire formats (the Vast API's JSON, database
//! rows, HTTP responses) have their own types at the edges and convert to these.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::time::Timestamp;

/// Which worker-list API a target polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// `POST /get_endpoint_workers/`
    Endpoint,
    /// `POST /get_autogroup_workers/`
    WorkerGroup,
}

impl TargetKind {
    /// The name stored in `targets.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Endpoint => "endpoint",
            TargetKind::WorkerGroup => "worker_group",
        }
    }

    /// The API path polled for this kind.
    pub fn api_path(self) -> &'static str {
        match self {
            TargetKind::Endpoint => "/get_endpoint_workers/",
            TargetKind::WorkerGroup => "/get_autogroup_workers/",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "endpoint" => Some(TargetKind::Endpoint),
            "worker_group" => Some(TargetKind::WorkerGroup),
            _ => None,
        }
    }
}

/// The class a worker status belongs to (reference doc, "Worker states").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StateClass {
    Ready,
    Starting,
    Inactive,
    Failed,
    Unknown,
}

impl StateClass {
    pub const READY: &'static [&'static str] = &["idle", "ready", "running"];
    pub const STARTING: &'static [&'static str] = &[
        "creating",
        "created",
        "pending",
        "loading",
        "model_loading",
        "starting",
        "rebooting",
        "update_ready",
        "update_rebooting",
        "update_starting",
        "updating",
    ];
    pub const INACTIVE: &'static [&'static str] = &["stopped", "stopping", "exited", "inactive"];
    pub const FAILED: &'static [&'static str] = &["error", "unavail", "destroying"];

    /// Classifies a status string, which must already be lower-cased.
    pub fn of(status: Option<&str>) -> StateClass {
        let Some(status) = status else {
            return StateClass::Unknown;
        };
        if Self::READY.contains(&status) {
            StateClass::Ready
        } else if Self::STARTING.contains(&status) {
            StateClass::Starting
        } else if Self::INACTIVE.contains(&status) {
            StateClass::Inactive
        } else if Self::FAILED.contains(&status) {
            StateClass::Failed
        } else {
            StateClass::Unknown
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StateClass::Ready => "ready",
            StateClass::Starting => "starting",
            StateClass::Inactive => "inactive",
            StateClass::Failed => "failed",
            StateClass::Unknown => "unknown",
        }
    }
}

/// A numeric field of the worker-list API. The order here is the column order in
/// `worker_samples`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    CurLoad,
    NewLoad,
    CurLoadRollingAvg,
    CurPerf,
    MeasuredPerf,
    Perf,
    Reliability,
    Dlperf,
    ReqsWorking,
    DiskUsage,
    LoadedAt,
}

impl Field {
    pub const ALL: [Field; 11] = [
        Field::CurLoad,
        Field::NewLoad,
        Field::CurLoadRollingAvg,
        Field::CurPerf,
        Field::MeasuredPerf,
        Field::Perf,
        Field::Reliability,
        Field::Dlperf,
        Field::ReqsWorking,
        Field::DiskUsage,
        Field::LoadedAt,
    ];

    /// The API's name for the field, which is also the column name.
    pub fn name(self) -> &'static str {
        match self {
            Field::CurLoad => "cur_load",
            Field::NewLoad => "new_load",
            Field::CurLoadRollingAvg => "cur_load_rolling_avg",
            Field::CurPerf => "cur_perf",
            Field::MeasuredPerf => "measured_perf",
            Field::Perf => "perf",
            Field::Reliability => "reliability",
            Field::Dlperf => "dlperf",
            Field::ReqsWorking => "reqs_working",
            Field::DiskUsage => "disk_usage",
            Field::LoadedAt => "loaded_at",
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|field| field.name() == name)
    }

    /// Whether the API sends this field as an integer.
    pub fn is_integer(self) -> bool {
        matches!(self, Field::ReqsWorking)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One worker as one poll saw it. Missing or unusable values are `None`, never 0.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkerSample {
    pub worker_id: i64,
    /// Lower-cased status, kept even when it is not a known one.
    pub status: Option<String>,
    /// Indexed by [`Field::index`].
    pub values: [Option<f64>; Field::ALL.len()],
    /// Fields the API sent that have no column, and the raw form of values that could not
    /// be used (wrong type, NaN, infinite).
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

impl WorkerSample {
    pub fn new(worker_id: i64) -> Self {
        WorkerSample {
            worker_id,
            ..WorkerSample::default()
        }
    }

    pub fn get(&self, field: Field) -> Option<f64> {
        self.values[field.index()]
    }

    pub fn set(&mut self, field: Field, value: Option<f64>) {
        self.values[field.index()] = value;
    }

    pub fn with(mut self, field: Field, value: f64) -> Self {
        self.set(field, Some(value));
        self
    }

    pub fn class(&self) -> StateClass {
        StateClass::of(self.status.as_deref())
    }
}

/// One worker of one poll in the compact form rule windows and the advisor keep, and
/// replay reads straight from the database. NaN marks a missing value: the decoder never
/// stores the API's NaN as a value, so this is unambiguous.
#[derive(Debug, Clone, PartialEq)]
pub struct HistSample {
    pub worker_id: i64,
    /// Indexed by [`Field::index`].
    pub values: [f64; Field::ALL.len()],
    /// Lower-cased status; the known statuses share one allocation each.
    pub status: Option<Arc<str>>,
    /// The state class of `status`, classified once here rather than by every rule and
    /// advisor pass that asks.
    pub class: StateClass,
    pub extra: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
}

impl HistSample {
    pub fn from_sample(sample: &WorkerSample) -> HistSample {
        let (status, class) = match sample.status.as_deref() {
            Some(status) => {
                let (shared, class) = intern_status(status);
                (Some(shared), class)
            }
            None => (None, StateClass::Unknown),
        };
        HistSample {
            worker_id: sample.worker_id,
            values: sample.values.map(|value| value.unwrap_or(f64::NAN)),
            status,
            class,
            extra: sample.extra.clone().map(Arc::new),
        }
    }

    pub fn get(&self, field: Field) -> Option<f64> {
        let value = self.values[field.index()];
        (!value.is_nan()).then_some(value)
    }
}

/// A lower-cased status as a shared string, with its state class. The known statuses
/// share one allocation each, so that millions of samples do not each allocate theirs.
pub fn intern_status(status: &str) -> (Arc<str>, StateClass) {
    static KNOWN: OnceLock<Vec<(Arc<str>, StateClass)>> = OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        [
            StateClass::READY,
            StateClass::STARTING,
            StateClass::INACTIVE,
            StateClass::FAILED,
        ]
        .concat()
        .into_iter()
        .map(|name| (Arc::from(name), StateClass::of(Some(name))))
        .collect()
    });
    match known.iter().find(|(candidate, _)| &**candidate == status) {
        Some((shared, class)) => (Arc::clone(shared), *class),
        None => (Arc::from(status), StateClass::of(Some(status))),
    }
}

/// What [`FleetSummary::of`] reads of a worker, in either form.
pub trait SampleFields {
    fn class(&self) -> StateClass;
    fn get(&self, field: Field) -> Option<f64>;
}

impl SampleFields for WorkerSample {
    fn class(&self) -> StateClass {
        WorkerSample::class(self)
    }

    fn get(&self, field: Field) -> Option<f64> {
        WorkerSample::get(self, field)
    }
}

impl SampleFields for HistSample {
    fn class(&self) -> StateClass {
        self.class
    }

    fn get(&self, field: Field) -> Option<f64> {
        HistSample::get(self, field)
    }
}

/// Fleet-level aggregates of one snapshot (SPEC §6.3). Sums skip missing values; a sum
/// over no present value is `None`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FleetSummary {
    pub workers: u32,
    pub ready: u32,
    pub starting: u32,
    pub inactive: u32,
    pub failed: u32,
    pub load: Option<f64>,
    pub new_load: Option<f64>,
    pub load_rolling: Option<f64>,
    /// Sums of `perf`, `cur_perf` and `measured_perf` over ready workers.
    pub perf: Option<f64>,
    pub cur_perf: Option<f64>,
    pub measured_perf: Option<f64>,
    pub reqs_working: Option<f64>,
}

impl FleetSummary {
    pub fn of<S: SampleFields>(workers: &[S]) -> Self {
        let mut summary = FleetSummary {
            workers: workers.len() as u32,
            ..FleetSummary::default()
        };
        for worker in workers {
            let class = worker.class();
            match class {
                StateClass::Ready => summary.ready += 1,
                StateClass::Starting => summary.starting += 1,
                StateClass::Inactive => summary.inactive += 1,
                StateClass::Failed => summary.failed += 1,
                StateClass::Unknown => {}
            }
            add(&mut summary.load, worker.get(Field::CurLoad));
            add(&mut summary.new_load, worker.get(Field::NewLoad));
            add(
                &mut summary.load_rolling,
                worker.get(Field::CurLoadRollingAvg),
            );
            add(&mut summary.reqs_working, worker.get(Field::ReqsWorking));
            if class == StateClass::Ready {
                add(&mut summary.perf, worker.get(Field::Perf));
                add(&mut summary.cur_perf, worker.get(Field::CurPerf));
                add(&mut summary.measured_perf, worker.get(Field::MeasuredPerf));
            }
        }
        summary
    }

    /// `load_rolling / perf`; missing when either is missing or perf is zero.
    pub fn utilization(&self) -> Option<f64> {
        match (self.load_rolling, self.perf) {
            (Some(load), Some(perf)) if perf != 0.0 => Some(load / perf),
            _ => None,
        }
    }
}

fn add(total: &mut Option<f64>, value: Option<f64>) {
    if let Some(value) = value {
        *total = Some(total.unwrap_or(0.0) + value);
    }
}

/// Why a poll failed (SPEC §4). The string forms are stored in `polls.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    HttpStatus,
    Timeout,
    Connect,
    Decode,
    ApiError,
    RateLimited,
}

impl FailureKind {
    pub const ALL: [FailureKind; 6] = [
        FailureKind::HttpStatus,
        FailureKind::Timeout,
        FailureKind::Connect,
        FailureKind::Decode,
        FailureKind::ApiError,
        FailureKind::RateLimited,
    ];

    pub fn parse(text: &str) -> Option<FailureKind> {
        FailureKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::HttpStatus => "http_status",
            FailureKind::Timeout => "timeout",
            FailureKind::Connect => "connect",
            FailureKind::Decode => "decode",
            FailureKind::ApiError => "api_error",
            FailureKind::RateLimited => "rate_limited",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed poll. `message` never contains a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct PollFailure {
    pub kind: FailureKind,
    pub message: String,
    pub http_status: Option<u16>,
}

/// What one poll of one target produced.
#[derive(Debug, Clone, PartialEq)]
pub enum PollResult {
    /// The worker list, plus notes about entries that were repaired or dropped.
    Snapshot {
        workers: Vec<WorkerSample>,
        notes: Vec<String>,
    },
    Failed(PollFailure),
}

impl PollResult {
    /// `ok` or the failure kind, as stored in `polls.outcome`.
    pub fn outcome(&self) -> &'static str {
        match self {
            PollResult::Snapshot { .. } => "ok",
            PollResult::Failed(failure) => failure.kind.as_str(),
        }
    }

    pub fn workers(&self) -> Option<&[WorkerSample]> {
        match self {
            PollResult::Snapshot { workers, .. } => Some(workers),
            PollResult::Failed(_) => None,
        }
    }
}

/// One poll attempt of one target, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PollRecord {
    pub target: String,
    pub started_at: Timestamp,
    pub duration: Duration,
    pub result: PollResult,
}

/// A stored poll as replay reads it: only what evaluating it needs, its workers already
/// compact and sorted by id.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactPoll {
    pub target: String,
    pub started_at: Timestamp,
    /// The workers of a successful poll; `None` for a failed one.
    pub workers: Option<Vec<HistSample>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_fall_into_the_reference_classes() {
        for (status, class) in [
            ("running", StateClass::Ready),
            ("idle", StateClass::Ready),
            ("model_loading", StateClass::Starting),
            ("update_rebooting", StateClass::Starting),
            ("exited", StateClass::Inactive),
            ("unavail", StateClass::Failed),
            ("destroying", StateClass::Failed),
            ("teleporting", StateClass::Unknown),
        ] {
            assert_eq!(StateClass::of(Some(status)), class, "{status}");
        }
        assert_eq!(StateClass::of(None), StateClass::Unknown);
    }

    #[test]
    fn fleet_sums_skip_missing_values_and_count_perf_only_when_ready() {
        let ready = WorkerSample {
            status: Some("running".into()),
            ..WorkerSample::new(1)
        }
        .with(Field::Perf, 100.0)
        .with(Field::CurLoadRollingAvg, 45.0)
        .with(Field::ReqsWorking, 2.0);
        let loading = WorkerSample {
            status: Some("loading".into()),
            ..WorkerSample::new(2)
        }
        .with(Field::Perf, 80.0)
        .with(Field::CurLoadRollingAvg, 0.0);
        let unknown_load = WorkerSample {
            status: Some("ready".into()),
            ..WorkerSample::new(3)
        }
        .with(Field::Perf, 50.0);

        let summary = FleetSummary::of(&[ready, loading, unknown_load]);
        assert_eq!(summary.workers, 3);
        assert_eq!(summary.ready, 2);
        assert_eq!(summary.starting, 1);
        assert_eq!(summary.perf, Some(150.0));
        assert_eq!(summary.load_rolling, Some(45.0));
        assert_eq!(summary.load, None);
        assert_eq!(summary.reqs_working, Some(2.0));
        assert_eq!(summary.utilization(), Some(0.3));
    }

    #[test]
    fn utilization_is_missing_without_ready_perf() {
        let summary = FleetSummary {
            load_rolling: Some(10.0),
            perf: Some(0.0),
            ..FleetSummary::default()
        };
        assert_eq!(summary.utilization(), None);
    }
}
