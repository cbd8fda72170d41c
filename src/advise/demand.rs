//! Demand, capacity and per-worker perf of a snapshot; the demand trend; and the sizing
//! decision (scale up, scale down or hold) before limits are applied.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::{PerfSource, ScalingConfig};
use crate::model::{Field, StateClass};
use crate::rules::expr::{FleetNumber, Snapshot};

/// Slack for float comparisons: `1.1` computed as a ratio is `1.1000000000000001`.
const EPSILON: f64 = 1e-9;
/// The fewest demand samples a trend is estimated from (two in each newest quarter).
const MIN_TREND_POINTS: usize = 8;
/// How many standard errors from zero a slope must be to count as a trend, not noise.
const SIGNIFICANCE: f64 = 2.0;

/// Workers by state class in the latest snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub ready: u32,
    pub starting: u32,
}

/// The perf one worker is expected to deliver, and where that number came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PerWorker {
    pub perf: f64,
    pub source: PerfSource,
}

/// What one snapshot says about demand and capacity. Each snapshot keeps its own once
/// computed ([`View::of_snapshot`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct View {
    pub counts: Counts,
    /// Sum of `cur_load_rolling_avg` over all workers; `None` when no worker reports it.
    pub demand: Option<f64>,
    /// Sum of ready workers' `perf`; a ready worker without one counts at the per-worker
    /// perf.
    pub capacity: f64,
    pub per_worker: Option<PerWorker>,
}

impl View {
    /// The snapshot's view, computed on the first call and kept with the snapshot.
    pub fn of_snapshot(snapshot: &Snapshot) -> View {
        *snapshot
            .advisor_view
            .get_or_init(|| View::of(snapshot, &mut Vec::new()))
    }

    fn of(snapshot: &Snapshot, scratch: &mut Vec<f64>) -> View {
        let mut counts = Counts::default();
        let mut ready_without_perf = 0u32;
        scratch.clear();
        for worker in &snapshot.workers {
            match worker.class {
                StateClass::Ready => {
                    counts.ready += 1;
                    match worker.get(Field::Perf) {
                        Some(perf) => scratch.push(perf),
                        None => ready_without_perf += 1,
                    }
                }
                StateClass::Starting => counts.starting += 1,
                StateClass::Inactive | StateClass::Failed | StateClass::Unknown => {}
            }
        }
        let ready_perf: f64 = scratch.iter().sum();
        let per_worker = positive_median(scratch)
            .map(|perf| PerWorker {
                perf,
                source: PerfSource::Perf,
            })
            .or_else(|| fallback_perf(snapshot, Field::MeasuredPerf, scratch))
            .or_else(|| fallback_perf(snapshot, Field::Dlperf, scratch));
        let imputed = per_worker.map_or(0.0, |p| p.perf * f64::from(ready_without_perf));
        View {
            counts,
            demand: snapshot.fleet.get(FleetNumber::LoadRolling),
            capacity: ready_perf + imputed,
            per_worker,
        }
    }
}

/// With no ready worker: the median of `field` over every worker that reports it.
fn fallback_perf(snapshot: &Snapshot, field: Field, scratch: &mut Vec<f64>) -> Option<PerWorker> {
    scratch.clear();
    scratch.extend(snapshot.workers.iter().filter_map(|w| w.get(field)));
    let source = match field {
        Field::MeasuredPerf => PerfSource::MeasuredPerf,
        _ => PerfSource::Dlperf,
    };
    positive_median(scratch).map(|perf| PerWorker { perf, source })
}

/// The median of the positive values (a worker with perf 0 says nothing about what a
/// new worker would deliver). Reorders `values`.
fn positive_median(values: &mut Vec<f64>) -> Option<f64> {
    values.retain(|value| *value > 0.0);
    if values.is_empty() {
        return None;
    }
    let odd = values.len() % 2 == 1;
    let middle = values.len() / 2;
    let (lower, upper, _) = values.select_nth_unstable_by(middle, f64::total_cmp);
    let upper = *upper;
    Some(if odd {
        upper
    } else {
        // The lower middle value is the largest of the values below the upper one.
        let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (below + upper) / 2.0
    })
}

/// ceil(demand / target_util / per_worker_perf), robust to float noise (900 / 0.9 / 100
/// is 10.000000000000002, which must need 10 workers, not 11).
pub(super) fn workers_for(demand: f64, target_util: f64, per_worker_perf: f64) -> u32 {
    let exact = demand / target_util / per_worker_perf;
    if !exact.is_finite() || exact <= 0.0 {
        return 0;
    }
    let rounded = (exact - EPSILON * exact.max(1.0)).ceil();
    if rounded >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        rounded as u32
    }
}

/// Everything the sizing decision needs, computed from the latest snapshot and the
/// trend window; the scale-down window is read only when a scale-down is in question.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sizing {
    latest: View,
    interval: Duration,
    pub demand: Option<f64>,
    pub capacity: f64,
    pub per_worker: Option<PerWorker>,
    /// The demand trend per minute (see `DemandSeries::trend_at`).
    pub trend_per_min: Option<f64>,
}

/// Why the advisor keeps the current count although demand is outside the tolerance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Hold {
    /// Demand is within `tolerance` of the target load on ready plus starting capacity.
    WithinTolerance { ratio: f64 },
    /// Rounding to whole workers lands on the current count.
    SameCount { need: u32 },
    /// Demand needs fewer workers, but the history does not show that for the whole
    /// scale-down window yet (too short, or demand unknown somewhere in it).
    WindowNotCovered { need: u32 },
    /// Demand needs fewer workers now, but the desired count reached `window_max` within
    /// the window.
    NeededInWindow { need: u32, window_max: u32 },
}

/// What the numbers alone say, before `min_workers`/`max_workers`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Decision {
    /// No decision: the data is stale or missing (the action is `investigate`).
    Unchanged,
    /// Demand is unknown: no worker reports `cur_load_rolling_avg`.
    DemandUnknown,
    /// Per-worker perf is unknown: no worker reports perf, measured_perf or dlperf.
    PerfUnknown,
    ScaleUp {
        need: u32,
    },
    /// Demand needs `need` now and the desired count was at most `to` (≥ `need`) across
    /// the scale-down window: scale down to `to`.
    ScaleDown {
        need: u32,
        to: u32,
    },
    Hold(Hold),
}

impl Decision {
    /// The desired count before clamping.
    pub fn count(&self, current: u32) -> u32 {
        match *self {
            Decision::ScaleUp { need } => need,
            Decision::ScaleDown { to, .. } => to,
            Decision::Unchanged
            | Decision::DemandUnknown
            | Decision::PerfUnknown
            | Decision::Hold(_) => current,
        }
    }
}

impl Sizing {
    pub fn of(
        history: &VecDeque<Arc<Snapshot>>,
        latest: &Snapshot,
        interval: Duration,
        config: &ScalingConfig,
    ) -> Sizing {
        let view = View::of_snapshot(latest);
        let series = DemandSeries::of(history, latest, config.lookback);
        Sizing {
            latest: view,
            interval,
            demand: view.demand,
            capacity: view.capacity,
            per_worker: view.per_worker,
            trend_per_min: series.trend_at(series.len().checked_sub(1), config.lookback),
        }
    }

    pub fn counts(&self) -> Counts {
        self.latest.counts
    }

    pub fn current(&self) -> u32 {
        self.latest.counts.ready + self.latest.counts.starting
    }

    pub fn utilization(&self) -> Option<f64> {
        let demand = self.demand?;
        (self.capacity > 0.0).then(|| demand / self.capacity)
    }

    /// Demand `cold_start` ahead when the trend rises; the demand itself otherwise. A
    /// falling trend is never used: a forecast never drives a scale-down.
    pub fn forecast_demand(&self, config: &ScalingConfig) -> Option<f64> {
        Some(forecast(
            self.demand?,
            self.trend_per_min,
            config.cold_start,
        ))
    }

    /// Capacity of the starting workers: capacity on the way.
    pub fn incoming(&self) -> f64 {
        self.per_worker
            .map_or(0.0, |p| p.perf * f64::from(self.latest.counts.starting))
    }

    /// The forecast demand over the load that ready plus starting capacity serves at
    /// `target_util`; 1 is exactly on target.
    pub fn ratio(&self, config: &ScalingConfig) -> Option<f64> {
        let demand = self.forecast_demand(config)?;
        let target_load = (self.capacity + self.incoming()) * config.target_util;
        Some(demand / target_load)
    }

    /// The decision; `history` is the one the sizing was made from.
    pub fn decide(&self, history: &VecDeque<Arc<Snapshot>>, config: &ScalingConfig) -> Decision {
        let Some(per_worker) = self.per_worker else {
            return Decision::PerfUnknown;
        };
        let (Some(demand), Some(ratio)) = (self.forecast_demand(config), self.ratio(config)) else {
            return Decision::DemandUnknown;
        };
        let current = self.current();
        if within_tolerance(ratio, config) {
            return Decision::Hold(Hold::WithinTolerance { ratio });
        }
        let need = workers_for(demand, config.target_util, per_worker.perf);
        if need > current {
            return Decision::ScaleUp { need };
        }
        if need == current || ratio >= 1.0 {
            return Decision::Hold(Hold::SameCount { need });
        }
        match self.window_max(history, config) {
            None => Decision::Hold(Hold::WindowNotCovered { need }),
            Some(window_max) if window_max.max(need) < current => Decision::ScaleDown {
                need,
                to: window_max.max(need),
            },
            Some(window_max) => Decision::Hold(Hold::NeededInWindow { need, window_max }),
        }
    }

    /// The highest desired count at any snapshot of the scale-down window, as the
    /// Kubernetes HPA's scale-down stabilization takes the highest of its
    /// recommendations: a snapshot within the tolerance desired its own current count,
    /// any other the count its demand (forecast included) needed. `None` unless the
    /// history covers the whole window with known demand and perf.
    fn window_max(&self, history: &VecDeque<Arc<Snapshot>>, config: &ScalingConfig) -> Option<u32> {
        let latest = history.back()?;
        let start = latest.at.saturating_sub(config.scale_down_window);
        if history.front()?.at > start.saturating_add(self.interval) {
            return None;
        }
        let in_window = history.iter().rev().take_while(|s| s.at >= start);
        let series = DemandSeries::of(history, latest, config.scale_down_window + config.lookback);
        let mut highest = 0;
        let mut point = series.len();
        for snapshot in in_window {
            // Every snapshot in the window has a demand, so points match them one to one.
            point = point.checked_sub(1)?;
            let view = View::of_snapshot(snapshot);
            let per_worker = view.per_worker?.perf;
            let demand = forecast(
                view.demand?,
                series.rise_at(point, config.lookback),
                config.cold_start,
            );
            let current = view.counts.ready + view.counts.starting;
            let capacity = view.capacity + per_worker * f64::from(view.counts.starting);
            let desired = if within_tolerance(demand / (capacity * config.target_util), config) {
                current
            } else {
                workers_for(demand, config.target_util, per_worker)
            };
            highest = highest.max(desired);
        }
        Some(highest)
    }
}

/// Whether demand over the target load is within the tolerance: no change.
fn within_tolerance(ratio: f64, config: &ScalingConfig) -> bool {
    ratio.is_finite() && (ratio - 1.0).abs() <= config.tolerance + EPSILON
}

/// `demand` plus the rising part of `trend_per_min` over `cold_start`.
fn forecast(demand: f64, trend_per_min: Option<f64>, cold_start: Duration) -> f64 {
    let rise = trend_per_min.unwrap_or(0.0).max(0.0);
    demand + rise * cold_start.as_secs_f64() / 60.0
}

/// The demand samples of a stretch of history, oldest first, with running sums so the
/// least-squares fit of any run of them costs O(1): the scale-down window needs the trend
/// as it stood at each of its snapshots.
struct DemandSeries {
    /// Minutes before the latest snapshot (≤ 0), one per snapshot that has a demand.
    minutes: Vec<f64>,
    /// `sums[i]` = (Σx, Σy, Σxx, Σxy, Σyy) over the first `i` points; y is demand minus
    /// the first point's demand, which keeps the sums small.
    sums: Vec<[f64; 5]>,
}

/// A least-squares line through a run of demand samples.
#[derive(Debug, Clone, Copy)]
struct Fit {
    slope: f64,
    /// The slope's standard error; 0 when the points lie on the line.
    standard_error: f64,
}

impl DemandSeries {
    fn of(history: &VecDeque<Arc<Snapshot>>, latest: &Snapshot, span: Duration) -> DemandSeries {
        let start = latest.at.saturating_sub(span);
        let first = history.partition_point(|snapshot| snapshot.at < start);
        // Sized once: growing them point by point reallocated each several times a poll.
        let points = history.len() - first;
        let mut minutes = Vec::with_capacity(points);
        let mut sums = Vec::with_capacity(points + 1);
        sums.push([0.0; 5]);
        let mut reference = None;
        for snapshot in history.range(first..) {
            let Some(demand) = snapshot.fleet.get(FleetNumber::LoadRolling) else {
                continue;
            };
            let x = (snapshot.at.unix_millis() - latest.at.unix_millis()) as f64 / 60_000.0;
            let y = demand - *reference.get_or_insert(demand);
            let [sx, sy, sxx, sxy, syy] = sums[sums.len() - 1];
            sums.push([sx + x, sy + y, sxx + x * x, sxy + x * y, syy + y * y]);
            minutes.push(x);
        }
        DemandSeries { minutes, sums }
    }

    fn len(&self) -> usize {
        self.minutes.len()
    }

    /// The trend per minute over the `lookback` ending at point `end`: the slopes over the
    /// whole window and over each of its two newest quarters must agree in sign, and the
    /// whole window's must be at least [`SIGNIFICANCE`] standard errors from zero; the
    /// trend is then the slope closest to zero, else 0. A step (a spike that has already
    /// arrived) lies within one quarter, the other being flat, and noise is not
    /// significant, so neither is taken for a rise that will go on. `None` with fewer
    /// than [`MIN_TREND_POINTS`] points.
    fn trend_at(&self, end: Option<usize>, lookback: Duration) -> Option<f64> {
        let (first, end, whole) = self.whole_window(end?, lookback)?;
        self.trend_of(first, end, whole)
    }

    /// [`DemandSeries::trend_at`] where the trend raises a [`forecast`], and else `None`
    /// or a trend that does not (`forecast` reads only a rise). Without a significant
    /// rise over the whole window the trend cannot be one, so the quarters' fits are
    /// skipped: the scale-down window asks this for every one of its snapshots.
    fn rise_at(&self, end: usize, lookback: Duration) -> Option<f64> {
        let (first, end, whole) = self.whole_window(end, lookback)?;
        if whole.slope <= 0.0 || whole.slope.abs() < SIGNIFICANCE * whole.standard_error {
            return None;
        }
        self.trend_of(first, end, whole)
    }

    /// The first point of the `lookback` ending at point `end`, `end`, and the fit over
    /// them; `None` with fewer than [`MIN_TREND_POINTS`] points.
    fn whole_window(&self, end: usize, lookback: Duration) -> Option<(usize, usize, Fit)> {
        let from = self.minutes[end] - lookback.as_secs_f64() / 60.0;
        let first = self.minutes[..=end].partition_point(|x| *x < from - EPSILON);
        if end + 1 - first < MIN_TREND_POINTS {
            return None;
        }
        Some((first, end, self.fit(first, end + 1)?))
    }

    /// The trend from the whole window's fit and its two newest quarters'.
    fn trend_of(&self, first: usize, end: usize, whole: Fit) -> Option<f64> {
        let count = end + 1 - first;
        let third_quarter = first + count / 2;
        let fourth_quarter = first + count * 3 / 4;
        let slopes = [
            whole.slope,
            self.fit(third_quarter, fourth_quarter)?.slope,
            self.fit(fourth_quarter, end + 1)?.slope,
        ];
        let significant = whole.slope.abs() >= SIGNIFICANCE * whole.standard_error;
        Some(if !significant {
            0.0
        } else if slopes.iter().all(|s| *s > 0.0) {
            slopes.into_iter().fold(f64::INFINITY, f64::min)
        } else if slopes.iter().all(|s| *s < 0.0) {
            slopes.into_iter().fold(f64::NEG_INFINITY, f64::max)
        } else {
            0.0
        })
    }

    /// The least-squares fit of points `from..to`; `None` when every x is the same.
    fn fit(&self, from: usize, to: usize) -> Option<Fit> {
        let before = self.sums[from];
        let after = self.sums[to];
        let [sx, sy, sxx, sxy, syy] = std::array::from_fn(|i| after[i] - before[i]);
        let n = (to - from) as f64;
        let xx = sxx - sx * sx / n;
        if xx <= EPSILON * sxx.abs().max(1.0) {
            return None;
        }
        let xy = sxy - sx * sy / n;
        // A covariance at the level of rounding is a flat run, not a tiny trend.
        if xy.abs() <= EPSILON * sxy.abs().max((sx * sy / n).abs()) {
            return Some(Fit {
                slope: 0.0,
                standard_error: 0.0,
            });
        }
        let slope = xy / xx;
        let yy = syy - sy * sy / n;
        let residual = (yy - slope * xy).max(0.0);
        let standard_error = if n > 2.0 {
            (residual / (n - 2.0) / xx).sqrt()
        } else {
            0.0
        };
        Some(Fit {
            slope,
            standard_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::{Field, WorkerSample};
    use crate::time::Timestamp;

    /// Demand series that rise, fall, sit flat or jump, with gaps in time.
    fn arb_demands() -> impl Strategy<Value = Vec<(i64, f64)>> {
        prop::collection::vec(
            (
                prop::sample::select(vec![10_000i64, 10_000, 10_000, 20_000, 0]),
                prop_oneof![
                    Just(0.0),
                    -5.0..5.0f64,
                    (-50.0..50.0f64).prop_map(|step| step.round()),
                ],
            ),
            1..200,
        )
        .prop_map(|steps| {
            let mut at = 0;
            let mut demand = 500.0;
            steps
                .into_iter()
                .map(|(gap, change)| {
                    at += gap;
                    demand += change;
                    (at, demand)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn rise_at_moves_every_forecast_as_trend_at_does(demands in arb_demands()) {
            let history: VecDeque<Arc<Snapshot>> = demands
                .iter()
                .map(|(at, demand)| {
                    let worker = WorkerSample::new(1).with(Field::CurLoadRollingAvg, *demand);
                    Arc::new(Snapshot::new(
                        Timestamp::from_unix_millis(1_767_225_600_000 + at),
                        &[worker],
                        Vec::new(),
                    ))
                })
                .collect();
            let latest = history.back().expect("one snapshot at least");
            let lookback = Duration::from_secs(600);
            let cold_start = Duration::from_secs(300);
            let series = DemandSeries::of(&history, latest, Duration::from_secs(1_200));
            for point in 0..series.len() {
                let full = forecast(500.0, series.trend_at(Some(point), lookback), cold_start);
                let rise = forecast(500.0, series.rise_at(point, lookback), cold_start);
                prop_assert_eq!(full.to_bits(), rise.to_bits(), "point {}", point);
            }
        }
    }
}
