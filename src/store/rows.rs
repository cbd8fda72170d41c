//! The types that cross the store's boundary: what callers hand in (target specs, history
//! filters) and the rows they get back. Rows are not the domain types (STYLE rule 6) but
//! carry them, so callers convert with a field access, not a mapping.

use std::time::Duration;

use crate::model::{FleetSummary, TargetKind, WorkerSample};
use crate::time::Timestamp;

/// A configured target as [`Store::sync_targets`](super::Store::sync_targets) stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub name: String,
    pub kind: TargetKind,
    pub vast_id: i64,
}

/// A stored target, configured now or in the past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRow {
    pub id: i64,
    pub name: String,
    pub kind: TargetKind,
    pub vast_id: i64,
}

/// Which stored rows a history read returns. Every field narrows; the default returns
/// everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryFilter {
    /// Only this target's rows.
    pub target: Option<String>,
    /// Only rows polled at or after this time.
    pub since: Option<Timestamp>,
    /// Only rows polled at or before this time.
    pub until: Option<Timestamp>,
    /// Only the latest this many rows (still returned oldest first).
    pub limit: Option<u32>,
}

/// One successful poll's fleet numbers: a row of the `fleet_samples` view plus the sums
/// the view leaves out (`new_load`, `cur_perf`, `measured_perf`).
#[derive(Debug, Clone, PartialEq)]
pub struct FleetRow {
    pub poll_id: i64,
    pub target: String,
    pub polled_at: Timestamp,
    pub summary: FleetSummary,
    /// `load_rolling / perf`, missing when either is missing or perf is zero.
    pub utilization: Option<f64>,
}

/// One worker in one successful poll: a row of `worker_samples`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    pub poll_id: i64,
    pub target: String,
    pub polled_at: Timestamp,
    pub sample: WorkerSample,
}

/// One poll attempt: a row of `polls`.
#[derive(Debug, Clone, PartialEq)]
pub struct PollRow {
    pub id: i64,
    pub target: String,
    pub started_at: Timestamp,
    pub duration: Duration,
    /// `ok` or the failure kind (see [`crate::model::FailureKind::as_str`]).
    pub outcome: String,
    /// The failure message, or the notes of a successful poll.
    pub error: Option<String>,
    pub http_status: Option<u16>,
    /// Workers stored for a successful poll; `None` for a failed one.
    pub worker_count: Option<u32>,
}

impl PollRow {
    pub fn is_ok(&self) -> bool {
        self.outcome == "ok"
    }
}

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Poll attempts, failed ones included.
    pub polls: u64,
    /// Worker samples of those polls.
    pub samples: u64,
}
