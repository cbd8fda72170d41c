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

/// The times before which each kind of row is past retention (`retention:` ages
/// subtracted from now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionCutoffs {
    /// Polls (rolled up into five-minute buckets first), samples and fleet sums.
    pub samples: Timestamp,
    /// Five-minute rollups.
    pub rollups: Timestamp,
    /// Alert events and resolved alert instances.
    pub alerts: Timestamp,
    /// Recommendations, except each target's latest.
    pub recommendations: Timestamp,
    /// Delivered and failed notifications.
    pub notifications: Timestamp,
    /// Silences that ended.
    pub silences: Timestamp,
}

/// What one retention pass removed, table by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Poll attempts, failed ones included.
    pub polls: u64,
    /// Worker samples of those polls.
    pub samples: u64,
    /// Five-minute rollups written (or extended) from those polls before they went.
    pub rolled_up: u64,
    /// Rollups past `retention.rollups`.
    pub rollups: u64,
    /// Alert events, and resolved or inactive alert instances with no event left.
    pub alert_events: u64,
    pub alerts: u64,
    /// Recommendations, never a target's latest.
    pub recommendations: u64,
    /// Delivered and failed notifications, and notification log entries of groups with
    /// nothing firing.
    pub notifications: u64,
    pub notification_log: u64,
    /// Silences that ended.
    pub silences: u64,
}

/// How fine a fleet history row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// One successful poll (a `fleet_samples` row).
    Raw,
    /// A five-minute `fleet_rollups` bucket, read where raw samples have expired.
    FiveMinutes,
}

impl Resolution {
    /// `raw` or `5m`, as `history` and the HTTP API print it.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Raw => "raw",
            Resolution::FiveMinutes => "5m",
        }
    }
}

/// The `fleet_samples` numbers of one poll, or one statistic of them over a bucket.
/// Counts are floats because a bucket's average of them is.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FleetValues {
    pub workers: Option<f64>,
    pub ready: Option<f64>,
    pub starting: Option<f64>,
    pub inactive: Option<f64>,
    pub failed: Option<f64>,
    pub load: Option<f64>,
    pub load_rolling: Option<f64>,
    pub perf: Option<f64>,
    pub reqs_working: Option<f64>,
    pub utilization: Option<f64>,
}

/// One row of [`Store::fleet_timeline`](super::Store::fleet_timeline): a raw poll, or a
/// five-minute rollup where the raw samples have expired.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetHistoryRow {
    /// The poll of a raw row (a stable cursor for paging); `None` for a rollup.
    pub poll_id: Option<i64>,
    pub target: String,
    /// When the poll started, or when the bucket starts.
    pub at: Timestamp,
    pub resolution: Resolution,
    /// Successful polls in the row: 1 for a raw row.
    pub polls: u32,
    /// The poll's numbers, or the bucket's averages.
    pub avg: FleetValues,
    /// The bucket's minimums and maximums; equal to `avg` for a raw row.
    pub min: FleetValues,
    pub max: FleetValues,
}

/// Rows and bytes of one table or index, for `vastwatch db stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSize {
    pub name: String,
    /// The table an index belongs to; the table itself for a table.
    pub table: String,
    /// Rows of a table; `None` for an index.
    pub rows: Option<u64>,
    /// Bytes of its pages, from SQLite's `dbstat` table; `None` when this SQLite was built
    /// without it.
    pub bytes: Option<u64>,
}

/// What `vastwatch db stats` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct DbStats {
    /// Tables and their indexes, largest first (by name without `dbstat`).
    pub tables: Vec<TableSize>,
    /// The whole file: page count times page size.
    pub file_bytes: u64,
    /// Oldest and newest successful poll still stored raw, and the oldest rollup bucket.
    pub oldest_sample: Option<Timestamp>,
    pub newest_sample: Option<Timestamp>,
    pub oldest_rollup: Option<Timestamp>,
}
