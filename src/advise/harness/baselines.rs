//! The two policies the advisor is measured against. Both read the same snapshots as the
//! advisor, and the same per-worker perf (the median perf of the ready workers).

use std::collections::VecDeque;
use std::time::Duration;

use crate::advise::demand::{View, workers_for};
use crate::rules::expr::Snapshot;
use crate::time::Timestamp;

/// Reactive: ceil(demand / target_util / per-worker perf) at every poll, with no forecast,
/// tolerance or stabilization.
pub(super) fn reactive(snapshot: &Snapshot, target_util: f64) -> u32 {
    let view = View::of_snapshot(snapshot);
    match (view.demand, view.per_worker) {
        (Some(demand), Some(per_worker)) => workers_for(demand, target_util, per_worker.perf),
        _ => view.counts.ready + view.counts.starting,
    }
}

/// The Kubernetes HPA's replica calculation for a utilization target
/// (`pkg/controller/podautoscaler/replica_calculator.go`): ratio = utilization / target,
/// no change within the tolerance, not-yet-ready pods counted at 0 % when scaling up, and
/// the highest recommendation of the stabilization window when scaling down. Not
/// modelled: the scale-up rate limits (they never bind below a doubling per 15 s).
pub(super) struct Hpa {
    pub target_util: f64,
    pub tolerance: f64,
    pub stabilization: Duration,
    recommendations: VecDeque<(Timestamp, u32)>,
}

impl Hpa {
    pub fn new(target_util: f64, tolerance: f64, stabilization: Duration) -> Hpa {
        Hpa {
            target_util,
            tolerance,
            stabilization,
            recommendations: VecDeque::new(),
        }
    }

    pub fn desire(&mut self, snapshot: &Snapshot) -> u32 {
        let view = View::of_snapshot(snapshot);
        let current = view.counts.ready + view.counts.starting;
        let recommendation = self.recommend(&view).unwrap_or(current);
        let now = snapshot.at;
        self.recommendations.push_back((now, recommendation));
        let oldest = now.saturating_sub(self.stabilization);
        while self
            .recommendations
            .front()
            .is_some_and(|(at, _)| *at < oldest)
        {
            self.recommendations.pop_front();
        }
        let highest = self
            .recommendations
            .iter()
            .map(|(_, count)| *count)
            .max()
            .unwrap_or(recommendation);
        // Scale up at once; scale down no lower than the window's highest recommendation.
        if recommendation > current {
            recommendation
        } else {
            current.min(highest)
        }
    }

    /// The unstabilized recommendation; `None` without metrics from a ready pod.
    fn recommend(&self, view: &View) -> Option<u32> {
        let current = view.counts.ready + view.counts.starting;
        let demand = view.demand?;
        let per_worker = view.per_worker?.perf;
        if view.counts.ready == 0 || view.capacity <= 0.0 {
            return None;
        }
        let ratio = demand / (view.capacity * self.target_util);
        if (ratio - 1.0).abs() <= self.tolerance {
            return Some(current);
        }
        if ratio > 1.0 && view.counts.starting > 0 {
            let with_starting = view.capacity + per_worker * f64::from(view.counts.starting);
            let ratio = demand / (with_starting * self.target_util);
            if ratio <= 1.0 + self.tolerance {
                return Some(current);
            }
            return Some(workers_for(ratio * f64::from(current), 1.0, 1.0));
        }
        Some(workers_for(ratio * f64::from(view.counts.ready), 1.0, 1.0))
    }
}
