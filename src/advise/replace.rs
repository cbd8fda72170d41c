//! Which workers to replace: those whose reliability stayed below `replace_below` across
//! the lookback window, and those failed or starting for at least `stuck_after`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::ScalingConfig;
use crate::model::{Field, StateClass};
use crate::rules::expr::{HistSample, Snapshot};

/// A worker to replace and why.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Replacement {
    pub worker_id: i64,
    pub why: Why,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Why {
    /// Failed (`error`, `unavail`, `destroying`) in every snapshot for `for_`.
    Failed { status: String, for_: Duration },
    /// Starting in every snapshot for `for_`: stuck loading.
    StuckStarting { status: String, for_: Duration },
    /// Reliability below `replace_below` in every snapshot of the lookback window;
    /// `latest` is its value now.
    LowReliability { latest: f64 },
}

/// The workers of the latest snapshot to replace, by id. Windows end at the latest
/// snapshot; a window counts as observed when its first sample is within one `interval`
/// of its start, so a worker is never replaced on less history than the window asks.
pub(super) fn candidates(
    history: &VecDeque<Arc<Snapshot>>,
    latest: &Snapshot,
    interval: Duration,
    config: &ScalingConfig,
) -> Vec<Replacement> {
    latest
        .workers
        .iter()
        .enumerate()
        .filter_map(|(position, worker)| {
            let why = stuck(history, latest, position, worker, config.stuck_after)
                .or_else(|| unreliable(history, latest, position, worker, interval, config))?;
            Some(Replacement {
                worker_id: worker.worker_id,
                why,
            })
        })
        .collect()
}

/// Failed or starting since at least `stuck_after` before the latest snapshot.
fn stuck(
    history: &VecDeque<Arc<Snapshot>>,
    latest: &Snapshot,
    position: usize,
    worker: &HistSample,
    stuck_after: Duration,
) -> Option<Why> {
    let class = worker.class;
    if !matches!(class, StateClass::Failed | StateClass::Starting) {
        return None;
    }
    let mut since = latest.at;
    for snapshot in history.iter().rev() {
        let Some(past) = snapshot
            .position_of(worker.worker_id, position)
            .map(|index| &snapshot.workers[index])
        else {
            break;
        };
        if past.class != class {
            break;
        }
        since = since.min(snapshot.at);
    }
    let for_ = latest.at.duration_since(since);
    if for_ < stuck_after {
        return None;
    }
    let status = worker.status.as_deref().unwrap_or_default().to_string();
    Some(match class {
        StateClass::Failed => Why::Failed { status, for_ },
        _ => Why::StuckStarting { status, for_ },
    })
}

/// Reliability below `replace_below` in every sample across the lookback window, and the
/// worker observed from the window's start.
fn unreliable(
    history: &VecDeque<Arc<Snapshot>>,
    latest: &Snapshot,
    position: usize,
    worker: &HistSample,
    interval: Duration,
    config: &ScalingConfig,
) -> Option<Why> {
    let latest_reliability = worker.get(Field::Reliability)?;
    if latest_reliability >= config.replace_below {
        return None;
    }
    let start = latest.at.saturating_sub(config.lookback);
    let mut first_seen = latest.at;
    for snapshot in history.iter().rev() {
        if snapshot.at < start {
            break;
        }
        let Some(index) = snapshot.position_of(worker.worker_id, position) else {
            continue;
        };
        if let Some(reliability) = snapshot.workers[index].get(Field::Reliability) {
            if reliability >= config.replace_below {
                return None;
            }
            first_seen = snapshot.at;
        }
    }
    (first_seen <= start.saturating_add(interval)).then_some(Why::LowReliability {
        latest: latest_reliability,
    })
}
