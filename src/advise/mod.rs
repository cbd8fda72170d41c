//! The scaling advisor (SPEC §7, docs/advisor.md): from one target's recent snapshots, how
//! many workers it should have, which workers to replace, and the `vastai` lines that get
//! there.
//!
//! [`advise`] reads the same in-memory history window the rule engine keeps. The stages:
//! `demand` (per-snapshot demand, capacity and per-worker perf; the trend; the sizing
//! decision), `replace` (workers to replace), `reason` (the sentence and the commands).
//! `harness` replays simulated traffic through the advisor and two baselines.
//! **Invariant: pure — a function of history, config and `now`; no I/O, clock, async or
//! SQL, and it never panics on any history.**

mod demand;
pub mod harness;
mod reason;
mod replace;

#[cfg(test)]
mod property_tests;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::TargetKind;
use crate::rules::expr::Snapshot;
use crate::time::Timestamp;

pub(crate) use demand::View as SnapshotView;
use demand::{Decision, Sizing};

/// Per-target advisor settings (config key `scaling:`), all optional with these defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingConfig {
    /// The utilization to size for: desired capacity = demand / `target_util` (Vast's
    /// default, 0.9).
    pub target_util: f64,
    /// The fewest workers the advisor recommends; `None` = no floor.
    pub min_workers: Option<u32>,
    /// The most workers the advisor recommends; `None` = no cap.
    pub max_workers: Option<u32>,
    /// How long a new worker takes to become ready; the trend forecast looks this far ahead.
    pub cold_start: Duration,
    /// No change while demand is within this fraction of the target load.
    pub tolerance: f64,
    /// The window of the demand trend and of the reliability check.
    pub lookback: Duration,
    /// Desired must stay below current for this long before a scale-down.
    pub scale_down_window: Duration,
    /// Replace a worker whose reliability stayed below this across `lookback`.
    pub replace_below: f64,
    /// Replace a worker failed or starting for at least this long.
    pub stuck_after: Duration,
}

impl Default for ScalingConfig {
    fn default() -> Self {
        ScalingConfig {
            target_util: 0.9,
            min_workers: None,
            max_workers: None,
            cold_start: Duration::from_secs(5 * 60),
            tolerance: 0.1,
            lookback: Duration::from_secs(10 * 60),
            scale_down_window: Duration::from_secs(10 * 60),
            replace_below: 0.9,
            stuck_after: Duration::from_secs(15 * 60),
        }
    }
}

impl ScalingConfig {
    /// How far back the history handed to [`advise`] must reach for every window the
    /// advisor looks at to be full: the longest of `lookback`, `scale_down_window` and
    /// `stuck_after`. The engine keeps at least this much (plus a poll of slack).
    pub fn history_needed(&self) -> Duration {
        self.lookback
            .max(self.scale_down_window)
            .max(self.stuck_after)
    }
}

/// What the advisor knows about the target besides its history.
#[derive(Debug, Clone, Copy)]
pub struct AdvisorInput<'a> {
    /// Successful polls, oldest first (may be empty).
    pub history: &'a VecDeque<Arc<Snapshot>>,
    /// The latest poll attempt, success or not.
    pub last_poll: Option<LastPoll>,
    /// The schedule's interval.
    pub interval: Duration,
    /// For `vastai` commands.
    pub kind: TargetKind,
    pub vast_id: i64,
    pub now: Timestamp,
}

/// The latest poll attempt of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastPoll {
    pub at: Timestamp,
    pub ok: bool,
}

/// The primary action, in priority order: the first that applies wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Investigate,
    ScaleUp,
    Replace,
    ScaleDown,
    Hold,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Investigate => "investigate",
            Action::ScaleUp => "scale_up",
            Action::Replace => "replace",
            Action::ScaleDown => "scale_down",
            Action::Hold => "hold",
        }
    }
}

/// One recommendation for one target: serialises to exactly the SPEC §7 keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub action: Action,
    /// Ready + starting.
    pub current_workers: u32,
    pub ready_workers: u32,
    pub starting_workers: u32,
    /// After clamping to `min_workers`/`max_workers`.
    pub desired_workers: u32,
    /// `desired_workers - current_workers`.
    pub delta: i64,
    /// One plain sentence with the numbers.
    pub reason: String,
    /// Worker ids to replace, as strings; may be non-empty whatever the action.
    pub replace: Vec<String>,
    /// Ready-to-run `vastai` lines.
    pub commands: Vec<String>,
    pub evidence: Evidence,
}

/// The numbers behind a recommendation. A value the data does not give is `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Rolling load: the sum of `cur_load_rolling_avg` over all workers.
    pub demand: Option<f64>,
    /// The perf of ready workers.
    pub capacity: Option<f64>,
    /// `demand / capacity`.
    pub utilization: Option<f64>,
    pub target_util: f64,
    /// The demand trend over `lookback`, per minute (see docs/advisor.md).
    pub trend_per_min: Option<f64>,
    /// Demand predicted `cold_start` ahead when it rises; else the demand.
    pub forecast_demand: Option<f64>,
    pub per_worker_perf: Option<f64>,
    pub per_worker_perf_source: Option<PerfSource>,
    /// The desired count before clamping.
    pub unclamped_desired: u32,
    pub clamped_by: Option<Clamp>,
    /// Seconds from the latest successful poll to `now`.
    pub data_age_s: Option<f64>,
}

/// Where the per-worker perf came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerfSource {
    /// The median `perf` of the ready workers.
    Perf,
    /// No worker is ready: the median `measured_perf` of all workers.
    MeasuredPerf,
    /// No worker is ready or benchmarked: the median `dlperf` of all workers.
    Dlperf,
}

impl PerfSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PerfSource::Perf => "perf",
            PerfSource::MeasuredPerf => "measured_perf",
            PerfSource::Dlperf => "dlperf",
        }
    }
}

/// Which limit changed the desired count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clamp {
    MinWorkers,
    MaxWorkers,
}

impl Clamp {
    pub fn as_str(self) -> &'static str {
        match self {
            Clamp::MinWorkers => "min_workers",
            Clamp::MaxWorkers => "max_workers",
        }
    }
}

/// A poll is stale once the latest data is older than this many intervals.
const STALE_AFTER_INTERVALS: u32 = 3;

/// Computes the recommendation for one target. Cheap enough to run for every target on
/// every tick: one pass over the windows it needs, no allocation per snapshot.
pub fn advise(input: &AdvisorInput, config: &ScalingConfig) -> Recommendation {
    let (recommendation, reason) = assess(input, config);
    Recommendation {
        reason: reason.sentence(config),
        ..recommendation
    }
}

/// The reason sentence of a recommendation, not written yet. Writing it was a twentieth of
/// replay's time, and replay shows it only for the recommendations that change.
#[derive(Debug, Clone)]
pub struct Reason(reason::Outcome);

impl Reason {
    /// The sentence; `config` is the one the recommendation was made with.
    pub fn sentence(&self, config: &ScalingConfig) -> String {
        self.0.sentence(config)
    }
}

/// [`advise`] without writing the reason: the recommendation with its `reason` empty, and
/// what writes it.
pub fn assess(input: &AdvisorInput, config: &ScalingConfig) -> (Recommendation, Reason) {
    let latest = input.history.back().map(Arc::as_ref);
    let data_age = latest.map(|snapshot| input.now.duration_since(snapshot.at));
    let staleness = staleness(input, data_age);
    let sizing = latest.map(|latest| Sizing::of(input.history, latest, input.interval, config));
    let counts = sizing.as_ref().map(|s| s.counts()).unwrap_or_default();
    let current = counts.ready + counts.starting;

    let (decision, replacements) = match (&staleness, &sizing, latest) {
        (None, Some(sizing), Some(latest)) => (
            sizing.decide(input.history, config),
            replace::candidates(input.history, latest, input.interval, config),
        ),
        _ => (Decision::Unchanged, Vec::new()),
    };
    let unclamped = decision.count(current);
    // Stale data changes nothing, not even to honour a limit.
    let (desired, clamped_by) = match staleness {
        Some(_) => (current, None),
        None => clamp(unclamped, config),
    };
    let delta = i64::from(desired) - i64::from(current);

    let action = if staleness.is_some() {
        Action::Investigate
    } else if delta > 0 {
        Action::ScaleUp
    } else if !replacements.is_empty() {
        Action::Replace
    } else if delta < 0 {
        Action::ScaleDown
    } else {
        Action::Hold
    };

    let evidence = Evidence {
        demand: sizing.as_ref().and_then(|s| s.demand),
        capacity: sizing.as_ref().map(|s| s.capacity),
        utilization: sizing.as_ref().and_then(|s| s.utilization()),
        target_util: config.target_util,
        trend_per_min: sizing.as_ref().and_then(|s| s.trend_per_min),
        forecast_demand: sizing.as_ref().and_then(|s| s.forecast_demand(config)),
        per_worker_perf: sizing.as_ref().and_then(|s| s.per_worker.map(|p| p.perf)),
        per_worker_perf_source: sizing.as_ref().and_then(|s| s.per_worker.map(|p| p.source)),
        unclamped_desired: unclamped,
        clamped_by,
        data_age_s: data_age.map(|age| age.as_secs_f64()),
    };
    let outcome = reason::Outcome {
        staleness,
        sizing,
        decision,
        current,
        desired,
        unclamped,
        clamped_by,
        replacements,
        interval: input.interval,
        data_age,
    };
    let recommendation = Recommendation {
        action,
        current_workers: current,
        ready_workers: counts.ready,
        starting_workers: counts.starting,
        desired_workers: desired,
        delta,
        reason: String::new(),
        replace: outcome
            .replacements
            .iter()
            .map(|replacement| replacement.worker_id.to_string())
            .collect(),
        commands: reason::commands(&outcome, input.kind, input.vast_id),
        evidence,
    };
    (recommendation, Reason(outcome))
}

/// Why the data cannot be trusted for a scale change.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Staleness {
    /// No poll of the target has succeeded (within the history kept).
    NoData,
    /// The latest poll attempt failed.
    LastPollFailed,
    /// The latest data is older than [`STALE_AFTER_INTERVALS`] intervals.
    TooOld,
}

fn staleness(input: &AdvisorInput, data_age: Option<Duration>) -> Option<Staleness> {
    let Some(data_age) = data_age else {
        return Some(Staleness::NoData);
    };
    if input.last_poll.is_some_and(|poll| !poll.ok) {
        return Some(Staleness::LastPollFailed);
    }
    let limit = input.interval.saturating_mul(STALE_AFTER_INTERVALS);
    let poll_age = input
        .last_poll
        .map_or(data_age, |poll| input.now.duration_since(poll.at));
    (data_age > limit || poll_age > limit).then_some(Staleness::TooOld)
}

fn clamp(unclamped: u32, config: &ScalingConfig) -> (u32, Option<Clamp>) {
    if let Some(max) = config.max_workers
        && unclamped > max
    {
        return (max, Some(Clamp::MaxWorkers));
    }
    if let Some(min) = config.min_workers
        && unclamped < min
    {
        return (min, Some(Clamp::MinWorkers));
    }
    (unclamped, None)
}
