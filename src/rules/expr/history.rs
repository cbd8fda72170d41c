//! The data expressions are evaluated over: compact snapshots of one target's polls, kept
//! oldest first by the engine, and the target's vars.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, OnceLock};

pub use crate::model::HistSample;

use super::identifiers::FleetNumber;
use crate::model::{FleetSummary, WorkerSample};
use crate::time::Timestamp;

/// One successful poll of one target, as the evaluator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub at: Timestamp,
    /// Sorted by `worker_id` (binary search finds a worker's past samples).
    pub workers: Vec<HistSample>,
    pub fleet: FleetValues,
    /// What the advisor derives from this snapshot alone, computed on first use: every
    /// poll's advice reads the last half hour of snapshots, and recomputing each one's
    /// figures every poll was a fifth of replay's time.
    pub(crate) advisor_view: Derived<crate::advise::SnapshotView>,
}

impl Snapshot {
    /// Builds the compact samples (sorted by id) and the fleet values. `extras` fills the
    /// engine-registered fleet numbers by slot; a slot it lacks is missing.
    pub fn new(at: Timestamp, workers: &[WorkerSample], extras: Vec<Option<f64>>) -> Snapshot {
        let summary = FleetSummary::of(workers);
        let mut compact: Vec<HistSample> = workers.iter().map(HistSample::from_sample).collect();
        compact.sort_by_key(|sample| sample.worker_id);
        Snapshot {
            at,
            workers: compact,
            fleet: FleetValues::from_summary(&summary, extras),
            advisor_view: Derived::default(),
        }
    }

    /// [`Snapshot::new`] for samples that are compact already (replay reads them so from
    /// the database): the same snapshot, without a second copy of every sample.
    pub fn from_compact(
        at: Timestamp,
        mut workers: Vec<HistSample>,
        extras: Vec<Option<f64>>,
    ) -> Snapshot {
        let summary = FleetSummary::of(&workers);
        if !workers.is_sorted_by_key(|sample| sample.worker_id) {
            workers.sort_by_key(|sample| sample.worker_id);
        }
        Snapshot {
            at,
            workers,
            fleet: FleetValues::from_summary(&summary, extras),
            advisor_view: Derived::default(),
        }
    }

    /// The position of a worker in `workers`, trying `hint` first (a worker usually keeps
    /// its position from one snapshot to the next).
    pub fn position_of(&self, worker_id: i64, hint: usize) -> Option<usize> {
        if self
            .workers
            .get(hint)
            .is_some_and(|sample| sample.worker_id == worker_id)
        {
            return Some(hint);
        }
        self.workers
            .binary_search_by_key(&worker_id, |sample| sample.worker_id)
            .ok()
    }
}

/// A value derived from the data it sits beside, computed on first use and kept. It
/// takes no part in equality (it follows from the data) and prints as `..`.
#[derive(Clone)]
pub struct Derived<T>(OnceLock<T>);

impl<T> Default for Derived<T> {
    fn default() -> Self {
        Derived(OnceLock::new())
    }
}

impl<T> Derived<T> {
    pub fn get_or_init(&self, derive: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(derive)
    }
}

impl<T> PartialEq for Derived<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> fmt::Debug for Derived<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("..")
    }
}

/// The fleet identifiers of one snapshot, computed once when the snapshot is built, plus
/// the engine-registered numbers by slot. NaN marks a missing value.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetValues {
    standard: [f64; FleetNumber::ALL.len()],
    extras: Vec<f64>,
}

impl FleetValues {
    pub fn from_summary(summary: &FleetSummary, extras: Vec<Option<f64>>) -> FleetValues {
        let mut standard = [f64::NAN; FleetNumber::ALL.len()];
        for number in FleetNumber::ALL {
            let value = match number {
                FleetNumber::Workers => Some(f64::from(summary.workers)),
                FleetNumber::Ready => Some(f64::from(summary.ready)),
                FleetNumber::Starting => Some(f64::from(summary.starting)),
                FleetNumber::Inactive => Some(f64::from(summary.inactive)),
                FleetNumber::Failed => Some(f64::from(summary.failed)),
                FleetNumber::Load => summary.load,
                FleetNumber::NewLoad => summary.new_load,
                FleetNumber::LoadRolling => summary.load_rolling,
                FleetNumber::Perf => summary.perf,
                FleetNumber::CurPerf => summary.cur_perf,
                FleetNumber::MeasuredPerf => summary.measured_perf,
                FleetNumber::ReqsWorking => summary.reqs_working,
                FleetNumber::Utilization => summary.utilization(),
            };
            standard[number.index()] = value.unwrap_or(f64::NAN);
        }
        FleetValues {
            standard,
            extras: extras
                .into_iter()
                .map(|value| value.unwrap_or(f64::NAN))
                .collect(),
        }
    }

    pub fn get(&self, number: FleetNumber) -> Option<f64> {
        present(self.standard[number.index()])
    }

    /// An engine-registered number by its slot ([`super::Identifiers::fleet_extra_slot`]).
    pub fn extra(&self, slot: usize) -> Option<f64> {
        self.extras.get(slot).copied().and_then(present)
    }

    /// Fills an engine-registered number, e.g. once the advisor has run for this snapshot.
    pub fn set_extra(&mut self, slot: usize, value: Option<f64>) {
        if self.extras.len() <= slot {
            self.extras.resize(slot + 1, f64::NAN);
        }
        self.extras[slot] = value.unwrap_or(f64::NAN);
    }

    pub(crate) fn standard_raw(&self, number: FleetNumber) -> f64 {
        self.standard[number.index()]
    }

    pub(crate) fn extra_raw(&self, slot: usize) -> f64 {
        self.extras.get(slot).copied().unwrap_or(f64::NAN)
    }
}

/// What one evaluation reads: the target's history and vars.
#[derive(Debug, Clone, Copy)]
pub struct EvalContext<'a> {
    /// Oldest first, sorted by `at`; `back()` is the current snapshot.
    pub history: &'a VecDeque<Arc<Snapshot>>,
    /// The target's vars; a name it lacks is a missing value.
    pub vars: &'a BTreeMap<String, f64>,
}

fn present(value: f64) -> Option<f64> {
    (!value.is_nan()).then_some(value)
}
