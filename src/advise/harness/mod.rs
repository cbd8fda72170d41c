//! The evaluation harness (docs/advisor.md, "Evidence"): replays a [`Scenario`] of
//! simulated traffic through a [`Policy`] on simulated time and measures what a fleet
//! following it would have gone through.
//!
//! The simulated fleet: every worker has perf 100 once ready; workers a policy adds are
//! `loading` for [`COLD_START`] (5 min) and then `running`; workers it removes go at once
//! (starting ones first, newest first). The offered load is split evenly over the ready
//! workers and reported as their `cur_load` and `cur_load_rolling_avg`. Each poll builds a
//! [`Snapshot`] in memory, exactly as the daemon would, and the policy's desired count is
//! applied right away.

mod baselines;
mod scenario;

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

pub use scenario::{COLD_START, NOISY_SEED, PER_WORKER_PERF, STEP, Scenario, TARGET_UTIL};

use super::demand::workers_for;
use super::{AdvisorInput, LastPoll, ScalingConfig, advise};
use crate::model::{Field, TargetKind, WorkerSample};
use crate::rules::expr::Snapshot;
use crate::time::Timestamp;

/// A way of choosing the worker count at every poll.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// [`advise`] with this config; the fleet follows `desired_workers`.
    Advisor(ScalingConfig),
    /// ceil(demand / target_util / per-worker perf) at every poll.
    Reactive { target_util: f64 },
    /// The Kubernetes HPA: ceil(current × utilization / target) with a tolerance and a
    /// scale-down stabilization window.
    Hpa {
        target_util: f64,
        tolerance: f64,
        stabilization: Duration,
    },
}

impl Policy {
    /// The advisor with its defaults and a floor of one worker (as the baselines have).
    pub fn advisor() -> Policy {
        Policy::Advisor(ScalingConfig {
            min_workers: Some(1),
            ..ScalingConfig::default()
        })
    }

    pub fn reactive() -> Policy {
        Policy::Reactive {
            target_util: TARGET_UTIL,
        }
    }

    /// The HPA with Kubernetes' defaults: 10 % tolerance, 5 min scale-down stabilization.
    pub fn hpa() -> Policy {
        Policy::Hpa {
            target_util: TARGET_UTIL,
            tolerance: 0.1,
            stabilization: Duration::from_secs(5 * 60),
        }
    }

    /// The three policies of the results table.
    pub fn all() -> Vec<Policy> {
        vec![Policy::advisor(), Policy::reactive(), Policy::hpa()]
    }

    pub fn name(&self) -> &'static str {
        match self {
            Policy::Advisor(_) => "advisor",
            Policy::Reactive { .. } => "reactive",
            Policy::Hpa { .. } => "HPA",
        }
    }
}

/// When the first scale-up came, against the moment demand first exceeded the starting
/// fleet's capacity (when the fleet would have saturated had nobody acted).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LeadTime {
    /// Demand never exceeded the starting fleet's capacity.
    NoSaturation,
    /// Demand exceeded it, and the policy never scaled up.
    NoScaleUp,
    /// Minutes from the first scale-up to saturation; negative when it came after.
    Minutes(f64),
}

/// What a fleet following a policy went through in a scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// Minutes with demand above ready capacity.
    pub under_capacity_min: f64,
    /// Sum over time of workers (ready + starting, both billed) beyond the count demand
    /// needs at the target utilization, in worker-minutes.
    pub over_provisioned_worker_min: f64,
    /// How often the desired count changed, per hour (flapping).
    pub changes_per_hour: f64,
    pub lead_time: LeadTime,
}

/// One simulated worker: ready from `ready_at` on.
struct SimWorker {
    id: i64,
    ready_at: Timestamp,
}

/// The policy's memory between polls.
enum Chooser {
    Advisor {
        config: ScalingConfig,
        history: VecDeque<Arc<Snapshot>>,
        keep: Duration,
    },
    Reactive {
        target_util: f64,
    },
    Hpa(baselines::Hpa),
}

impl Chooser {
    fn new(policy: &Policy) -> Chooser {
        match policy {
            Policy::Advisor(config) => Chooser::Advisor {
                config: config.clone(),
                history: VecDeque::new(),
                keep: config.history_needed() + Duration::from_secs(60),
            },
            Policy::Reactive { target_util } => Chooser::Reactive {
                target_util: *target_util,
            },
            Policy::Hpa {
                target_util,
                tolerance,
                stabilization,
            } => Chooser::Hpa(baselines::Hpa::new(
                *target_util,
                *tolerance,
                *stabilization,
            )),
        }
    }

    fn desire(&mut self, snapshot: Snapshot) -> u32 {
        match self {
            Chooser::Advisor {
                config,
                history,
                keep,
            } => {
                let now = snapshot.at;
                history.push_back(Arc::new(snapshot));
                let oldest = now.saturating_sub(*keep);
                while history.front().is_some_and(|s| s.at < oldest) {
                    history.pop_front();
                }
                let input = AdvisorInput {
                    history,
                    last_poll: Some(LastPoll { at: now, ok: true }),
                    interval: STEP,
                    kind: TargetKind::Endpoint,
                    vast_id: 1,
                    now,
                };
                advise(&input, config).desired_workers
            }
            Chooser::Reactive { target_util } => {
                baselines::reactive(&snapshot, *target_util).max(1)
            }
            Chooser::Hpa(hpa) => hpa.desire(&snapshot).max(1),
        }
    }
}

/// Replays `scenario` through `policy`. The fleet starts all ready, at the size the
/// scenario's initial load needs.
pub fn run(scenario: &Scenario, policy: &Policy) -> Metrics {
    let start = Timestamp::from_unix_millis(1_767_225_600_000);
    let step_min = STEP.as_secs_f64() / 60.0;
    let needed = |demand: f64| workers_for(demand, TARGET_UTIL, PER_WORKER_PERF).max(1);
    let initial = needed(scenario.initial_load);
    let mut fleet: Vec<SimWorker> = (0..initial)
        .map(|index| SimWorker {
            id: 1000 + i64::from(index),
            ready_at: start.saturating_sub(COLD_START),
        })
        .collect();
    let mut next_id = 1000 + i64::from(initial);
    let mut chooser = Chooser::new(policy);
    let mut previous_desired = initial;
    let mut metrics = Metrics {
        under_capacity_min: 0.0,
        over_provisioned_worker_min: 0.0,
        changes_per_hour: 0.0,
        lead_time: LeadTime::NoSaturation,
    };
    let mut changes = 0u32;
    let mut saturated_at = None;
    let mut first_scale_up = None;

    for (step, &demand) in scenario.demand.iter().enumerate() {
        let now = start.saturating_add(STEP.saturating_mul(step as u32));
        let ready = fleet.iter().filter(|w| w.ready_at <= now).count() as u32;
        let total = fleet.len() as u32;
        if demand > f64::from(ready) * PER_WORKER_PERF {
            metrics.under_capacity_min += step_min;
        }
        metrics.over_provisioned_worker_min +=
            f64::from(total.saturating_sub(needed(demand))) * step_min;
        if saturated_at.is_none() && demand > f64::from(initial) * PER_WORKER_PERF {
            saturated_at = Some(now);
        }

        let desired = chooser.desire(snapshot(now, &fleet, demand));
        if desired != previous_desired {
            changes += 1;
            previous_desired = desired;
        }
        if desired > total {
            first_scale_up.get_or_insert(now);
            for _ in total..desired {
                fleet.push(SimWorker {
                    id: next_id,
                    ready_at: now.saturating_add(COLD_START),
                });
                next_id += 1;
            }
        } else if desired < total {
            // Starting workers go first, then ready ones; newest first within each.
            fleet.sort_by_key(|w| (w.ready_at <= now, std::cmp::Reverse(w.id)));
            fleet.drain(..(total - desired) as usize);
            fleet.sort_by_key(|w| w.id);
        }
    }

    let hours = scenario.duration().as_secs_f64() / 3600.0;
    metrics.changes_per_hour = f64::from(changes) / hours;
    metrics.lead_time = match (saturated_at, first_scale_up) {
        (None, _) => LeadTime::NoSaturation,
        (Some(_), None) => LeadTime::NoScaleUp,
        (Some(saturated), Some(scaled)) => {
            LeadTime::Minutes((saturated.unix_millis() - scaled.unix_millis()) as f64 / 60_000.0)
        }
    };
    metrics
}

/// The snapshot a poll at `now` would return: ready workers `running` with the load split
/// evenly, starting ones `loading` with none (unless nothing is ready).
fn snapshot(now: Timestamp, fleet: &[SimWorker], demand: f64) -> Snapshot {
    let ready = fleet.iter().filter(|w| w.ready_at <= now).count();
    let carriers = if ready > 0 { ready } else { fleet.len() };
    let share = demand / carriers.max(1) as f64;
    let workers: Vec<WorkerSample> = fleet
        .iter()
        .map(|worker| {
            let is_ready = worker.ready_at <= now;
            let load = if is_ready || ready == 0 { share } else { 0.0 };
            let mut sample = WorkerSample {
                status: Some(if is_ready { "running" } else { "loading" }.to_string()),
                ..WorkerSample::new(worker.id)
            }
            .with(Field::Reliability, 1.0)
            .with(Field::Dlperf, PER_WORKER_PERF * 1.1)
            .with(Field::CurLoad, load)
            .with(Field::CurLoadRollingAvg, load);
            // Until benchmarked, measured_perf equals dlperf (reference doc).
            let measured = if is_ready {
                PER_WORKER_PERF
            } else {
                PER_WORKER_PERF * 1.1
            };
            sample.set(Field::MeasuredPerf, Some(measured));
            sample.set(Field::Perf, Some(measured));
            sample
        })
        .collect();
    Snapshot::new(now, &workers, Vec::new())
}

/// One row of the results table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub scenario: &'static str,
    pub description: &'static str,
    pub policy: &'static str,
    pub metrics: Metrics,
}

/// Every scenario through every policy.
pub fn run_all() -> Vec<Row> {
    let mut rows = Vec::new();
    for scenario in Scenario::all() {
        for policy in Policy::all() {
            rows.push(Row {
                scenario: scenario.name,
                description: scenario.description,
                policy: policy.name(),
                metrics: run(&scenario, &policy),
            });
        }
    }
    rows
}

/// The results table in Markdown, as docs/advisor.md shows it.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | policy | under capacity (min) | over-provisioned (worker-min) | \
         changes / h | lead time (min) |\n| --- | --- | ---: | ---: | ---: | ---: |\n",
    );
    for row in rows {
        let lead = match row.metrics.lead_time {
            LeadTime::NoSaturation => "n/a".to_string(),
            LeadTime::NoScaleUp => "none".to_string(),
            LeadTime::Minutes(minutes) => format!("{minutes:+.1}"),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {:.0} | {:.1} | {lead} |",
            row.scenario,
            row.policy,
            row.metrics.under_capacity_min,
            row.metrics.over_provisioned_worker_min,
            row.metrics.changes_per_hour,
        );
    }
    out
}

/// The noisy scenario replayed with many noise seeds: one seed's handful of scale events
/// is too few to rank policies on flapping, so this shows the spread.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedSummary {
    pub seeds: u64,
    /// Per policy: mean under-capacity minutes, over-provisioned worker-minutes and
    /// changes per hour.
    pub means: Vec<(&'static str, [f64; 3])>,
    /// Seeds where the advisor had fewer, as many and more changes than the HPA.
    pub changes_vs_hpa: [u32; 3],
    /// Seeds where the advisor had less, as much and more under-capacity than the HPA.
    pub under_capacity_vs_hpa: [u32; 3],
}

/// Replays [`Scenario::noisy_seeded`] with seeds `1..=seeds` through every policy.
pub fn noisy_over_seeds(seeds: u64) -> SeedSummary {
    let policies = Policy::all();
    let mut sums = vec![[0.0; 3]; policies.len()];
    let mut changes_vs_hpa = [0; 3];
    let mut under_capacity_vs_hpa = [0; 3];
    for seed in 1..=seeds {
        let scenario = Scenario::noisy_seeded(seed);
        let results: Vec<Metrics> = policies.iter().map(|p| run(&scenario, p)).collect();
        for (sum, metrics) in sums.iter_mut().zip(&results) {
            sum[0] += metrics.under_capacity_min;
            sum[1] += metrics.over_provisioned_worker_min;
            sum[2] += metrics.changes_per_hour;
        }
        let (advisor, hpa) = (&results[0], &results[2]);
        changes_vs_hpa[rank(advisor.changes_per_hour, hpa.changes_per_hour)] += 1;
        under_capacity_vs_hpa[rank(advisor.under_capacity_min, hpa.under_capacity_min)] += 1;
    }
    SeedSummary {
        seeds,
        means: policies
            .iter()
            .zip(sums)
            .map(|(policy, sum)| (policy.name(), sum.map(|total| total / seeds as f64)))
            .collect(),
        changes_vs_hpa,
        under_capacity_vs_hpa,
    }
}

/// 0 when `a < b`, 1 when equal (to 1e-9), 2 when `a > b`.
fn rank(a: f64, b: f64) -> usize {
    if (a - b).abs() <= 1e-9 {
        1
    } else if a < b {
        0
    } else {
        2
    }
}

/// The seed summary in Markdown, as docs/advisor.md shows it.
pub fn markdown_seeds(summary: &SeedSummary) -> String {
    let mut out = format!(
        "| noisy, seeds 1..={} (mean) | under capacity (min) | over-provisioned \
         (worker-min) | changes / h |\n| --- | ---: | ---: | ---: |\n",
        summary.seeds
    );
    for (policy, [under, over, changes]) in &summary.means {
        let _ = writeln!(out, "| {policy} | {under:.2} | {over:.0} | {changes:.2} |");
    }
    let [fewer, same, more] = summary.changes_vs_hpa;
    let [less, equal, worse] = summary.under_capacity_vs_hpa;
    let _ = writeln!(
        out,
        "\nAgainst the HPA, seed by seed: fewer changes in {fewer}, as many in {same}, more \
         in {more}; less under-capacity in {less}, as much in {equal}, more in {worse}."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The goal: less under-capacity than both baselines, and no more flapping
    /// than the HPA.
    fn assert_goal(scenario: &str, advisor: [f64; 2], reactive: [f64; 2], hpa: [f64; 2]) {
        let [under, changes] = advisor;
        assert!(
            under < reactive[0] && under < hpa[0],
            "{scenario}: advisor {under} min under capacity, reactive {}, HPA {}",
            reactive[0],
            hpa[0]
        );
        assert!(
            changes <= hpa[1],
            "{scenario}: advisor {changes} changes/h, HPA {}",
            hpa[1]
        );
    }

    fn totals(scenarios: &[Scenario], policy: &Policy) -> [f64; 2] {
        scenarios
            .iter()
            .fold([0.0, 0.0], |[under, changes], scenario| {
                let metrics = run(scenario, policy);
                [
                    under + metrics.under_capacity_min,
                    changes + metrics.changes_per_hour,
                ]
            })
    }

    #[test]
    fn the_advisor_meets_the_goal_on_the_ramp_and_on_noise() {
        let ramp = [Scenario::ramp().truncated(Duration::from_secs(90 * 60))];
        // One seed gives a handful of scale events; five make a fairer comparison.
        let noisy: Vec<Scenario> = (1..=5)
            .map(|seed| Scenario::noisy_seeded(seed).truncated(Duration::from_secs(3600)))
            .collect();
        for (name, scenarios) in [("ramp", &ramp[..]), ("noisy", &noisy[..])] {
            assert_goal(
                name,
                totals(scenarios, &Policy::advisor()),
                totals(scenarios, &Policy::reactive()),
                totals(scenarios, &Policy::hpa()),
            );
        }
    }

    #[test]
    fn a_steady_load_needs_no_change_from_any_policy() {
        let steady = Scenario::steady().truncated(Duration::from_secs(20 * 60));
        for policy in Policy::all() {
            let metrics = run(&steady, &policy);
            assert_eq!(metrics.under_capacity_min, 0.0, "{}", policy.name());
            assert_eq!(metrics.changes_per_hour, 0.0, "{}", policy.name());
            assert_eq!(metrics.lead_time, LeadTime::NoSaturation);
        }
    }

    #[test]
    fn a_spike_leaves_every_policy_short_for_one_cold_start() {
        let spike = Scenario::spike().truncated(Duration::from_secs(45 * 60));
        for policy in Policy::all() {
            let metrics = run(&spike, &policy);
            let under = metrics.under_capacity_min;
            assert!((under - 5.0).abs() < 1e-9, "{}: {under}", policy.name());
            assert_eq!(
                metrics.lead_time,
                LeadTime::Minutes(0.0),
                "{}",
                policy.name()
            );
        }
    }
}
