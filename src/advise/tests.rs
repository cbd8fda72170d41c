//! Table tests of the advisor: one test per rule of docs/advisor.md, each asserting the
//! action, the counts, the exact sentence and the exact commands.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::demand::workers_for;
use super::reason::number;
use super::*;
use crate::model::{Field, TargetKind, WorkerSample};
use crate::rules::expr::Snapshot;
use crate::time::Timestamp;

const START: Timestamp = Timestamp::from_unix_millis(1_767_225_600_000);
const INTERVAL: Duration = Duration::from_secs(10);
const ENDPOINT_ID: i64 = 123;

/// A worker as the API reports it: perf = measured_perf × reliability.
fn worker(id: i64, status: &str, measured_perf: f64, reliability: f64, load: f64) -> WorkerSample {
    WorkerSample {
        status: Some(status.to_string()),
        ..WorkerSample::new(id)
    }
    .with(Field::MeasuredPerf, measured_perf)
    .with(Field::Reliability, reliability)
    .with(Field::Perf, measured_perf * reliability)
    .with(Field::Dlperf, measured_perf * 1.1)
    .with(Field::CurLoadRollingAvg, load)
    .with(Field::CurLoad, load)
}

/// `ready` running workers (ids 1..) with perf 100 sharing `demand`, and `starting`
/// loading ones (ids 501..) with no load.
fn fleet(ready: i64, starting: i64, demand: f64) -> Vec<WorkerSample> {
    let share = demand / ready.max(1) as f64;
    (1..=ready)
        .map(|id| worker(id, "running", 100.0, 1.0, share))
        .chain((501..501 + starting).map(|id| worker(id, "loading", 100.0, 1.0, 0.0)))
        .collect()
}

/// One snapshot every 10 s from minute 0 to `minutes` inclusive; `at_minute` gives the
/// workers at each.
fn history(
    minutes: f64,
    mut at_minute: impl FnMut(f64) -> Vec<WorkerSample>,
) -> VecDeque<Arc<Snapshot>> {
    let polls = (minutes * 6.0).round() as i64;
    (0..=polls)
        .map(|poll| {
            let at = START.saturating_add(INTERVAL.saturating_mul(poll as u32));
            Arc::new(Snapshot::new(at, &at_minute(poll as f64 / 6.0), Vec::new()))
        })
        .collect()
}

/// The latest poll succeeded just now.
fn fresh(history: &VecDeque<Arc<Snapshot>>) -> AdvisorInput<'_> {
    let now = history.back().map_or(START, |snapshot| snapshot.at);
    AdvisorInput {
        history,
        last_poll: Some(LastPoll { at: now, ok: true }),
        interval: INTERVAL,
        kind: TargetKind::Endpoint,
        vast_id: ENDPOINT_ID,
        now,
    }
}

fn advise_default(history: &VecDeque<Arc<Snapshot>>) -> Recommendation {
    advise(&fresh(history), &ScalingConfig::default())
}

/// What a test expects of a recommendation.
struct Expected<'a> {
    action: Action,
    ready: u32,
    starting: u32,
    desired: u32,
    reason: &'a str,
    replace: &'a [&'a str],
    commands: &'a [&'a str],
}

fn check(recommendation: &Recommendation, expected: Expected) {
    let current = expected.ready + expected.starting;
    let actual = (
        recommendation.action,
        recommendation.ready_workers,
        recommendation.starting_workers,
        recommendation.current_workers,
        recommendation.desired_workers,
        recommendation.delta,
        recommendation.reason.as_str(),
        recommendation.replace.clone(),
        recommendation.commands.clone(),
    );
    let wanted = (
        expected.action,
        expected.ready,
        expected.starting,
        current,
        expected.desired,
        i64::from(expected.desired) - i64::from(current),
        expected.reason,
        expected.replace.iter().map(|s| s.to_string()).collect(),
        expected.commands.iter().map(|s| s.to_string()).collect(),
    );
    assert_eq!(actual, wanted, "\nevidence: {:?}", recommendation.evidence);
}

/// Whether a reported number is `expected`, give or take float rounding.
fn close(actual: Option<f64>, expected: f64) -> bool {
    actual.is_some_and(|actual| (actual - expected).abs() < 1e-6)
}

fn cold_workers(count: u32) -> String {
    format!("vastai update endpoint {ENDPOINT_ID} --cold_workers {count}")
}

// Capacity, demand and tolerance.

#[test]
fn demand_within_the_tolerance_of_the_target_load_holds() {
    let history = history(11.0, |_| fleet(12, 0, 1000.0));
    check(
        &advise_default(&history),
        Expected {
            action: Action::Hold,
            ready: 12,
            starting: 0,
            desired: 12,
            reason: "Demand 1000 is 92.6% of the target load of 1080 (1200 ready capacity at \
                     90%), within the 10% tolerance, so hold at 12 workers.",
            replace: &[],
            commands: &[],
        },
    );
}

#[test]
fn demand_above_the_tolerance_scales_up_to_demand_over_target_util_over_per_worker_perf() {
    let history = history(11.0, |_| fleet(10, 0, 1500.0));
    let recommendation = advise_default(&history);
    check(
        &recommendation,
        Expected {
            action: Action::ScaleUp,
            ready: 10,
            starting: 0,
            desired: 17,
            reason: "Demand 1500 needs 17 workers of 100 perf at 90% target utilization and \
                     there are 10 (10 ready, 0 starting), so add 7 workers (to 17).",
            replace: &[],
            commands: &[&cold_workers(17)],
        },
    );
    let evidence = &recommendation.evidence;
    assert_eq!(evidence.demand, Some(1500.0));
    assert_eq!(evidence.capacity, Some(1000.0));
    assert_eq!(evidence.utilization, Some(1.5));
    assert_eq!(evidence.per_worker_perf, Some(100.0));
    assert_eq!(evidence.per_worker_perf_source, Some(PerfSource::Perf));
    assert_eq!(evidence.unclamped_desired, 17);
    assert_eq!(evidence.clamped_by, None);
    assert_eq!(evidence.data_age_s, Some(0.0));
}

#[test]
fn an_exact_fit_is_not_rounded_up_by_float_noise() {
    // 900 / 0.9 / 100 is 10.000000000000002 in floating point.
    assert_eq!(workers_for(900.0, 0.9, 100.0), 10);
    assert_eq!(workers_for(2340.0, 0.9, 100.0), 26);
    assert_eq!(workers_for(901.0, 0.9, 100.0), 11);
    assert_eq!(workers_for(0.0, 0.9, 100.0), 0);
}

#[test]
fn per_worker_perf_is_the_median_of_ready_workers_and_capacity_counts_a_ready_worker_without_perf()
{
    let history = history(11.0, |_| {
        let mut workers = vec![
            worker(1, "running", 80.0, 1.0, 300.0),
            worker(2, "running", 100.0, 1.0, 300.0),
            worker(3, "running", 120.0, 1.0, 300.0),
        ];
        let mut unknown = worker(4, "running", 100.0, 1.0, 100.0);
        unknown.set(Field::Perf, None);
        workers.push(unknown);
        workers
    });
    let recommendation = advise_default(&history);
    assert_eq!(recommendation.evidence.per_worker_perf, Some(100.0));
    assert_eq!(recommendation.evidence.capacity, Some(400.0));
    assert_eq!(recommendation.evidence.demand, Some(1000.0));
}

#[test]
fn with_no_ready_worker_per_worker_perf_falls_back_to_measured_perf() {
    let history = history(5.0, |_| {
        (1..=3)
            .map(|id| worker(id, "model_loading", 110.0, 1.0, 100.0))
            .collect()
    });
    let recommendation = advise_default(&history);
    assert_eq!(recommendation.evidence.per_worker_perf, Some(110.0));
    assert_eq!(
        recommendation.evidence.per_worker_perf_source,
        Some(PerfSource::MeasuredPerf)
    );
    check(
        &recommendation,
        Expected {
            action: Action::Hold,
            ready: 0,
            starting: 3,
            desired: 3,
            reason: "Demand 300 is 101% of the target load of 297 (0 ready + 330 starting \
                     capacity at 90%), within the 10% tolerance, so hold at 3 workers.",
            replace: &[],
            commands: &[],
        },
    );
}

#[test]
fn with_no_ready_or_benchmarked_worker_per_worker_perf_falls_back_to_dlperf() {
    let history = history(5.0, |_| {
        (1..=3)
            .map(|id| {
                let mut sample = worker(id, "loading", 110.0, 1.0, 0.0);
                sample.set(Field::MeasuredPerf, None);
                sample
            })
            .collect()
    });
    let recommendation = advise_default(&history);
    assert!(close(recommendation.evidence.per_worker_perf, 121.0));
    assert_eq!(
        recommendation.evidence.per_worker_perf_source,
        Some(PerfSource::Dlperf)
    );
}

#[test]
fn without_any_perf_or_any_load_the_advisor_holds_and_says_what_is_missing() {
    let no_perf = history(5.0, |_| {
        (1..=3)
            .map(|id| WorkerSample {
                status: Some("loading".into()),
                ..WorkerSample::new(id)
            })
            .collect()
    });
    check(
        &advise_default(&no_perf),
        Expected {
            action: Action::Hold,
            ready: 0,
            starting: 3,
            desired: 3,
            reason: "Per-worker perf is unknown (no worker reports perf, measured_perf or \
                     dlperf) and there are 3 (0 ready, 3 starting), so hold at 3 workers.",
            replace: &[],
            commands: &[],
        },
    );
    let no_load = history(5.0, |_| {
        let mut workers = fleet(12, 0, 0.0);
        for sample in &mut workers {
            sample.set(Field::CurLoadRollingAvg, None);
        }
        workers
    });
    check(
        &advise_default(&no_load),
        Expected {
            action: Action::Hold,
            ready: 12,
            starting: 0,
            desired: 12,
            reason: "Demand is unknown (no worker reports cur_load_rolling_avg) and there are \
                     12 (12 ready, 0 starting), so hold at 12 workers.",
            replace: &[],
            commands: &[],
        },
    );
}

// Starting workers are capacity on the way.

#[test]
fn starting_workers_that_cover_the_gap_prevent_a_second_scale_up() {
    let history = history(11.0, |_| fleet(10, 7, 1500.0));
    check(
        &advise_default(&history),
        Expected {
            action: Action::Hold,
            ready: 10,
            starting: 7,
            desired: 17,
            reason: "Demand 1500 is 98% of the target load of 1530 (1000 ready + 700 starting \
                     capacity at 90%), within the 10% tolerance, so hold at 17 workers.",
            replace: &[],
            commands: &[],
        },
    );
}

#[test]
fn starting_workers_count_toward_a_gap_they_only_partly_cover() {
    let history = history(11.0, |_| fleet(10, 3, 1500.0));
    check(
        &advise_default(&history),
        Expected {
            action: Action::ScaleUp,
            ready: 10,
            starting: 3,
            desired: 17,
            reason: "Demand 1500 needs 17 workers of 100 perf at 90% target utilization and \
                     there are 13 (10 ready, 3 starting), so add 4 workers (to 17).",
            replace: &[],
            commands: &[&cold_workers(17)],
        },
    );
}

// The trend forecast.

#[test]
fn rising_demand_is_sized_for_the_demand_forecast_cold_start_ahead() {
    // 1000 rising to 1500 over 10 minutes: 50/min, so 1750 in 5 minutes.
    let history = history(10.0, |minute| fleet(12, 0, 1000.0 + 50.0 * minute));
    let recommendation = advise_default(&history);
    check(
        &recommendation,
        Expected {
            action: Action::ScaleUp,
            ready: 12,
            starting: 0,
            desired: 20,
            reason: "Demand 1500, rising 50/min toward 1750 in 5m, needs 20 workers of 100 perf \
                     at 90% target utilization and there are 12 (12 ready, 0 starting), so add \
                     8 workers (to 20).",
            replace: &[],
            commands: &[&cold_workers(20)],
        },
    );
    let evidence = &recommendation.evidence;
    assert!(close(evidence.trend_per_min, 50.0), "{evidence:?}");
    assert!(close(evidence.forecast_demand, 1750.0), "{evidence:?}");
}

#[test]
fn a_falling_trend_never_drives_a_scale_down() {
    // 1400 falling to 1000: within the tolerance now; 800 forecast would be outside it.
    let history = history(10.0, |minute| fleet(12, 0, 1400.0 - 40.0 * minute));
    let recommendation = advise_default(&history);
    check(
        &recommendation,
        Expected {
            action: Action::Hold,
            ready: 12,
            starting: 0,
            desired: 12,
            reason: "Demand 1000 is 92.6% of the target load of 1080 (1200 ready capacity at \
                     90%), within the 10% tolerance, so hold at 12 workers.",
            replace: &[],
            commands: &[],
        },
    );
    assert!(close(recommendation.evidence.trend_per_min, -40.0));
    let evidence = &recommendation.evidence;
    assert_eq!(evidence.forecast_demand, evidence.demand);
    assert!(close(evidence.forecast_demand, 1000.0));
}

#[test]
fn a_step_that_has_already_arrived_is_not_taken_for_a_trend() {
    let history = history(10.0, |minute| {
        fleet(12, 0, if minute < 8.0 { 1000.0 } else { 1300.0 })
    });
    let recommendation = advise_default(&history);
    assert_eq!(recommendation.evidence.trend_per_min, Some(0.0));
    check(
        &recommendation,
        Expected {
            action: Action::ScaleUp,
            ready: 12,
            starting: 0,
            desired: 15,
            reason: "Demand 1300 needs 15 workers of 100 perf at 90% target utilization and \
                     there are 12 (12 ready, 0 starting), so add 3 workers (to 15).",
            replace: &[],
            commands: &[&cold_workers(15)],
        },
    );
}

#[test]
fn a_rise_lost_in_noise_is_not_a_trend() {
    // A slight rise (1/min) under ±100 of deterministic jitter: not two standard errors.
    let history = history(10.0, |minute| {
        let jitter = 100.0 * (minute * 37.0).sin();
        fleet(12, 0, 1000.0 + minute + jitter)
    });
    assert_eq!(advise_default(&history).evidence.trend_per_min, Some(0.0));
}

#[test]
fn too_few_samples_give_no_trend() {
    let history = history(1.0, |minute| fleet(12, 0, 1000.0 + minute));
    assert_eq!(history.len(), 7);
    let recommendation = advise_default(&history);
    assert_eq!(recommendation.evidence.trend_per_min, None);
    assert!(close(recommendation.evidence.forecast_demand, 1001.0));
}

// Scaling down.

#[test]
fn low_demand_across_the_window_scales_down_to_the_highest_desired_in_it() {
    let history = history(11.0, |minute| {
        fleet(12, 0, if minute < 5.0 { 800.0 } else { 500.0 })
    });
    check(
        &advise_default(&history),
        Expected {
            action: Action::ScaleDown,
            ready: 12,
            starting: 0,
            desired: 9,
            reason: "Demand 500 needs 6 workers of 100 perf at 90% target utilization, desired \
                     was at most 9 over the last 10m and there are 12 (12 ready, 0 starting), \
                     so remove 3 workers (to 9).",
            replace: &[],
            commands: &[&cold_workers(9)],
        },
    );
}

#[test]
fn scale_down_waits_until_the_history_covers_the_window() {
    let history = history(5.0, |_| fleet(12, 0, 500.0));
    check(
        &advise_default(&history),
        Expected {
            action: Action::Hold,
            ready: 12,
            starting: 0,
            desired: 12,
            reason: "Demand 500 needs 6 workers of 100 perf at 90% target utilization and there \
                     are 12 (12 ready, 0 starting), but the history does not yet show that for \
                     the whole 10m scale-down window, so hold at 12 workers.",
            replace: &[],
            commands: &[],
        },
    );
}

#[test]
fn a_snapshot_within_the_tolerance_in_the_window_desired_the_current_count() {
    // Demand 1000 on 12 workers was within the tolerance until minute 4: desired 12.
    let history = history(11.0, |minute| {
        fleet(12, 0, if minute < 4.0 { 1000.0 } else { 500.0 })
    });
    check(
        &advise_default(&history),
        Expected {
            action: Action::Hold,
            ready: 12,
            starting: 0,
            desired: 12,
            reason: "Demand 500 needs 6 workers of 100 perf at 90% target utilization and there \
                     are 12 (12 ready, 0 starting), but desired was 12 within the last 10m, so \
                     hold at 12 workers.",
            replace: &[],
            commands: &[],
        },
    );
}

#[test]
fn the_window_remembers_the_forecast_not_only_the_demand() {
    // 500 rising 50/min to 1000 at minute 10 (forecast 1250: 14 workers, where the demand
    // alone needed 12), then 300.
    let history = history(14.0, |minute| {
        fleet(
            20,
            0,
            if minute <= 10.0 {
                500.0 + 50.0 * minute
            } else {
                300.0
            },
        )
    });
    check(
        &advise_default(&history),
        Expected {
            action: Action::ScaleDown,
            ready: 20,
            starting: 0,
            desired: 14,
            reason: "Demand 300 needs 4 workers of 100 perf at 90% target utilization, desired \
                     was at most 14 over the last 10m and there are 20 (20 ready, 0 starting), \
                     so remove 6 workers (to 14).",
            replace: &[],
            commands: &[&cold_workers(14)],
        },
    );
}

#[test]
fn no_demand_scales_to_zero_when_no_minimum_is_set() {
    let history = history(11.0, |_| fleet(3, 0, 0.0));
    check(
        &advise_default(&history),
        Expected {
            action: Action::ScaleDown,
            ready: 3,
            starting: 0,
            desired: 0,
            reason: "Demand 0 needs 0 workers of 100 perf at 90% target utilization, desired was \
                     at most 0 over the last 10m and there are 3 (3 ready, 0 starting), so \
                     remove 3 workers (to 0).",
            replace: &[],
            commands: &[&cold_workers(0)],
        },
    );
}

// Limits.

fn limits(min_workers: Option<u32>, max_workers: Option<u32>) -> ScalingConfig {
    ScalingConfig {
        min_workers,
        max_workers,
        ..ScalingConfig::default()
    }
}

#[test]
fn max_workers_caps_a_scale_up_and_the_command_raises_the_cap() {
    let history = history(11.0, |_| fleet(18, 0, 2340.0));
    let recommendation = advise(&fresh(&history), &limits(None, Some(20)));
    check(
        &recommendation,
        Expected {
            action: Action::ScaleUp,
            ready: 18,
            starting: 0,
            desired: 20,
            reason: "Demand 2340 needs 26 workers of 100 perf at 90% target utilization and \
                     there are 18 (18 ready, 0 starting), but max_workers is 20, so add 2 \
                     workers (to 20).",
            replace: &[],
            commands: &[
                "vastai update endpoint 123 --max_workers 26",
                &cold_workers(20),
            ],
        },
    );
    assert_eq!(recommendation.evidence.unclamped_desired, 26);
    assert_eq!(recommendation.evidence.clamped_by, Some(Clamp::MaxWorkers));
}

#[test]
fn at_max_workers_the_advisor_holds_and_advises_raising_the_cap() {
    let history = history(11.0, |_| fleet(20, 0, 2340.0));
    check(
        &advise(&fresh(&history), &limits(None, Some(20))),
        Expected {
            action: Action::Hold,
            ready: 20,
            starting: 0,
            desired: 20,
            reason: "Demand 2340 needs 26 workers of 100 perf at 90% target utilization and \
                     there are 20 (20 ready, 0 starting), but max_workers is 20, so hold at 20 \
                     workers.",
            replace: &[],
            commands: &["vastai update endpoint 123 --max_workers 26"],
        },
    );
}

#[test]
fn a_fleet_above_max_workers_is_brought_down_to_it() {
    let history = history(11.0, |_| fleet(22, 0, 1900.0));
    let recommendation = advise(&fresh(&history), &limits(None, Some(20)));
    check(
        &recommendation,
        Expected {
            action: Action::ScaleDown,
            ready: 22,
            starting: 0,
            desired: 20,
            reason: "Demand 1900 is 96% of the target load of 1980 (2200 ready capacity at 90%), \
                     within the 10% tolerance, but max_workers is 20, so remove 2 workers (to \
                     20).",
            replace: &[],
            commands: &[&cold_workers(20)],
        },
    );
    assert_eq!(recommendation.evidence.unclamped_desired, 22);
    assert_eq!(recommendation.evidence.clamped_by, Some(Clamp::MaxWorkers));
}

#[test]
fn min_workers_floors_a_scale_down() {
    let history = history(11.0, |_| fleet(12, 0, 100.0));
    let recommendation = advise(&fresh(&history), &limits(Some(3), None));
    check(
        &recommendation,
        Expected {
            action: Action::ScaleDown,
            ready: 12,
            starting: 0,
            desired: 3,
            reason: "Demand 100 needs 2 workers of 100 perf at 90% target utilization, desired \
                     was at most 2 over the last 10m and there are 12 (12 ready, 0 starting), \
                     but min_workers is 3, so remove 9 workers (to 3).",
            replace: &[],
            commands: &[&cold_workers(3)],
        },
    );
    assert_eq!(recommendation.evidence.unclamped_desired, 2);
    assert_eq!(recommendation.evidence.clamped_by, Some(Clamp::MinWorkers));
}

#[test]
fn min_workers_raises_a_fleet_below_it_and_the_command_holds_the_warm_floor() {
    let history = history(11.0, |_| fleet(2, 0, 150.0));
    check(
        &advise(&fresh(&history), &limits(Some(3), Some(20))),
        Expected {
            action: Action::ScaleUp,
            ready: 2,
            starting: 0,
            desired: 3,
            reason: "Demand 150 needs 2 workers of 100 perf at 90% target utilization and there \
                     are 2 (2 ready, 0 starting), but min_workers is 3, so add 1 worker (to 3).",
            replace: &[],
            commands: &[&cold_workers(3)],
        },
    );
}

#[test]
fn limits_that_do_not_bind_are_not_mentioned() {
    let history = history(11.0, |_| fleet(10, 0, 1500.0));
    let recommendation = advise(&fresh(&history), &limits(Some(1), Some(30)));
    assert_eq!(recommendation.desired_workers, 17);
    assert_eq!(recommendation.evidence.clamped_by, None);
    assert!(!recommendation.reason.contains("_workers is"));
}

// Stale data.

#[test]
fn a_failed_latest_poll_means_investigate_never_a_scale_change() {
    let history = history(11.0, |_| fleet(10, 0, 1500.0));
    let latest = history.back().map(|s| s.at).unwrap_or(START);
    let now = latest.saturating_add(Duration::from_secs(40));
    let input = AdvisorInput {
        last_poll: Some(LastPoll { at: now, ok: false }),
        now,
        ..fresh(&history)
    };
    let recommendation = advise(&input, &ScalingConfig::default());
    check(
        &recommendation,
        Expected {
            action: Action::Investigate,
            ready: 10,
            starting: 0,
            desired: 10,
            reason: "The latest poll failed and the last good data is 40s old, so investigate \
                     before scaling.",
            replace: &[],
            commands: &["vastai show endpoints"],
        },
    );
    assert_eq!(recommendation.evidence.data_age_s, Some(40.0));
    assert_eq!(recommendation.evidence.demand, Some(1500.0));
}

#[test]
fn data_older_than_three_intervals_means_investigate() {
    let history = history(11.0, |_| fleet(10, 0, 1500.0));
    let latest = history.back().map(|s| s.at).unwrap_or(START);
    for (age_s, action) in [(30, Action::ScaleUp), (31, Action::Investigate)] {
        let input = AdvisorInput {
            now: latest.saturating_add(Duration::from_secs(age_s)),
            ..fresh(&history)
        };
        let recommendation = advise(&input, &ScalingConfig::default());
        assert_eq!(recommendation.action, action, "data {age_s}s old");
        if action == Action::Investigate {
            assert_eq!(
                recommendation.reason,
                "The latest data is 31s old, more than 3 poll intervals of 10s, so investigate \
                 before scaling."
            );
            assert_eq!(recommendation.delta, 0);
        }
    }
}

#[test]
fn no_successful_poll_means_investigate_with_empty_evidence_even_below_min_workers() {
    let history = VecDeque::new();
    let input = AdvisorInput {
        last_poll: Some(LastPoll {
            at: START,
            ok: false,
        }),
        kind: TargetKind::WorkerGroup,
        ..fresh(&history)
    };
    let recommendation = advise(&input, &limits(Some(2), None));
    check(
        &recommendation,
        Expected {
            action: Action::Investigate,
            ready: 0,
            starting: 0,
            desired: 0,
            reason: "No successful poll of this target is on record, so investigate before \
                     scaling.",
            replace: &[],
            commands: &["vastai show workergroups"],
        },
    );
    assert_eq!(recommendation.evidence.demand, None);
    assert_eq!(recommendation.evidence.data_age_s, None);
}

#[test]
fn stale_data_recommends_no_replacement_either() {
    let history = history(20.0, |_| {
        let mut workers = fleet(12, 0, 1000.0);
        workers.push(worker(13, "error", 100.0, 1.0, 0.0));
        workers
    });
    let latest = history.back().map(|s| s.at).unwrap_or(START);
    let input = AdvisorInput {
        last_poll: Some(LastPoll {
            at: latest.saturating_add(INTERVAL),
            ok: false,
        }),
        now: latest.saturating_add(INTERVAL),
        ..fresh(&history)
    };
    let recommendation = advise(&input, &ScalingConfig::default());
    assert_eq!(recommendation.action, Action::Investigate);
    assert!(recommendation.replace.is_empty());
}

// Replacing workers.

/// 12 ready workers carrying 1000 for `minutes`, plus whatever `extra` adds.
fn with_extra(minutes: f64, extra: impl Fn(f64) -> Vec<WorkerSample>) -> Recommendation {
    let history = history(minutes, |minute| {
        let mut workers = fleet(12, 0, 1000.0);
        workers.extend(extra(minute));
        workers
    });
    advise_default(&history)
}

#[test]
fn a_worker_unreliable_across_the_lookback_is_replaced() {
    let history = history(11.0, |_| {
        let mut workers = fleet(12, 0, 1000.0);
        workers[4] = worker(5, "running", 100.0, 0.8, 1000.0 / 12.0);
        workers
    });
    check(
        &advise_default(&history),
        Expected {
            action: Action::Replace,
            ready: 12,
            starting: 0,
            desired: 12,
            reason: "Demand 1000 is 94.2% of the target load of 1062 (1180 ready capacity at \
                     90%), within the 10% tolerance, so hold at 12 workers; replace worker 5 \
                     (reliability 0.8, below 0.9 for 10m).",
            replace: &["5"],
            commands: &["vastai destroy instance 5"],
        },
    );
}

#[test]
fn a_reliability_dip_shorter_than_the_lookback_is_not_replaced() {
    let history = history(11.0, |minute| {
        let mut workers = fleet(12, 0, 1000.0);
        let reliability = if minute < 6.0 { 0.99 } else { 0.8 };
        workers[4] = worker(5, "running", 100.0, reliability, 1000.0 / 12.0);
        workers
    });
    assert!(advise_default(&history).replace.is_empty());
}

#[test]
fn one_good_reliability_sample_in_the_lookback_keeps_a_worker() {
    let history = history(11.0, |minute| {
        let mut workers = fleet(12, 0, 1000.0);
        let reliability = if (6.0..6.1).contains(&minute) {
            0.95
        } else {
            0.8
        };
        workers[4] = worker(5, "running", 100.0, reliability, 1000.0 / 12.0);
        workers
    });
    assert!(advise_default(&history).replace.is_empty());
}

#[test]
fn a_worker_that_joined_within_the_lookback_is_not_judged_on_reliability_yet() {
    let recommendation = with_extra(11.0, |minute| {
        if minute < 5.0 {
            Vec::new()
        } else {
            vec![worker(13, "running", 100.0, 0.5, 0.0)]
        }
    });
    assert!(recommendation.replace.is_empty());
}

#[test]
fn a_worker_failed_for_stuck_after_is_replaced_and_a_newer_failure_is_not() {
    let recommendation = with_extra(16.0, |minute| {
        let mut extra = vec![worker(13, "error", 100.0, 1.0, 0.0)];
        if minute >= 6.0 {
            extra.push(worker(14, "unavail", 100.0, 1.0, 0.0));
        }
        extra
    });
    check(
        &recommendation,
        Expected {
            action: Action::Replace,
            ready: 12,
            starting: 0,
            desired: 12,
            reason: "Demand 1000 is 92.6% of the target load of 1080 (1200 ready capacity at \
                     90%), within the 10% tolerance, so hold at 12 workers; replace worker 13 \
                     (error for 16m).",
            replace: &["13"],
            commands: &["vastai destroy instance 13"],
        },
    );
}

#[test]
fn a_worker_stuck_starting_is_replaced_and_replace_outranks_scale_down() {
    let history = history(16.0, |_| fleet(12, 1, 1000.0));
    check(
        &advise_default(&history),
        Expected {
            action: Action::Replace,
            ready: 12,
            starting: 1,
            desired: 12,
            reason: "Demand 1000 needs 12 workers of 100 perf at 90% target utilization, desired \
                     was at most 12 over the last 10m and there are 13 (12 ready, 1 starting), \
                     so remove 1 worker (to 12); replace worker 501 (stuck loading for 16m).",
            replace: &["501"],
            commands: &[&cold_workers(12), "vastai destroy instance 501"],
        },
    );
}

#[test]
fn scale_up_outranks_replace_and_replace_is_still_listed() {
    let history = history(11.0, |_| {
        let mut workers = fleet(10, 0, 1500.0);
        workers[2] = worker(3, "running", 100.0, 0.8, 150.0);
        workers
    });
    check(
        &advise_default(&history),
        Expected {
            action: Action::ScaleUp,
            ready: 10,
            starting: 0,
            desired: 17,
            reason: "Demand 1500 needs 17 workers of 100 perf at 90% target utilization and \
                     there are 10 (10 ready, 0 starting), so add 7 workers (to 17); replace \
                     worker 3 (reliability 0.8, below 0.9 for 10m).",
            replace: &["3"],
            commands: &[&cold_workers(17), "vastai destroy instance 3"],
        },
    );
}

#[test]
fn the_sentence_names_three_replacements_and_counts_the_rest() {
    let recommendation = with_extra(16.0, |_| {
        (21..=25)
            .map(|id| worker(id, "error", 100.0, 1.0, 0.0))
            .collect()
    });
    assert_eq!(recommendation.replace, ["21", "22", "23", "24", "25"]);
    assert!(
        recommendation.reason.ends_with(
            "; replace worker 21 (error for 16m), worker 22 (error for 16m), worker 23 (error \
             for 16m) and 2 more."
        ),
        "{}",
        recommendation.reason
    );
    assert_eq!(recommendation.commands.len(), 5);
}

// Worker groups.

#[test]
fn worker_groups_get_workergroup_commands_and_no_max_workers_line() {
    let history = history(11.0, |_| fleet(18, 0, 2340.0));
    let input = AdvisorInput {
        kind: TargetKind::WorkerGroup,
        vast_id: 77,
        ..fresh(&history)
    };
    let recommendation = advise(&input, &limits(None, Some(20)));
    assert_eq!(
        recommendation.commands,
        ["vastai update workergroup 77 --cold_workers 20"]
    );
    assert!(recommendation.reason.contains("max_workers is 20"));
}

// The output.

#[test]
fn the_json_has_exactly_the_spec_keys() {
    let history = history(11.0, |_| fleet(18, 0, 2340.0));
    let recommendation = advise(&fresh(&history), &limits(None, Some(20)));
    let json = serde_json::to_value(&recommendation).unwrap_or_default();
    let keys: Vec<&str> = json
        .as_object()
        .map(|object| object.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        [
            "action",
            "current_workers",
            "ready_workers",
            "starting_workers",
            "desired_workers",
            "delta",
            "reason",
            "replace",
            "commands",
            "evidence"
        ]
    );
    let evidence_keys: Vec<&str> = json["evidence"]
        .as_object()
        .map(|object| object.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        evidence_keys,
        [
            "demand",
            "capacity",
            "utilization",
            "target_util",
            "trend_per_min",
            "forecast_demand",
            "per_worker_perf",
            "per_worker_perf_source",
            "unclamped_desired",
            "clamped_by",
            "data_age_s"
        ]
    );
    assert_eq!(json["action"], "scale_up");
    assert_eq!(json["delta"], 2);
    assert_eq!(json["evidence"]["clamped_by"], "max_workers");
    assert_eq!(json["evidence"]["per_worker_perf_source"], "perf");
    let round_trip: Recommendation = serde_json::from_value(json).unwrap_or_else(|error| {
        panic!("the JSON reads back: {error}");
    });
    assert_eq!(round_trip, recommendation);
}

#[test]
fn unknown_evidence_is_null_in_the_json() {
    let history = VecDeque::new();
    let recommendation = advise(&fresh(&history), &ScalingConfig::default());
    let json = serde_json::to_value(&recommendation).unwrap_or_default();
    for key in [
        "demand",
        "capacity",
        "trend_per_min",
        "clamped_by",
        "data_age_s",
    ] {
        assert!(json["evidence"][key].is_null(), "{key}");
    }
    assert_eq!(json["action"], "investigate");
}

#[test]
fn the_history_needed_is_the_longest_window() {
    assert_eq!(
        ScalingConfig::default().history_needed(),
        Duration::from_secs(15 * 60)
    );
    let config = ScalingConfig {
        scale_down_window: Duration::from_secs(30 * 60),
        ..ScalingConfig::default()
    };
    assert_eq!(config.history_needed(), Duration::from_secs(30 * 60));
}

#[test]
fn numbers_read_as_an_operator_writes_them() {
    for (value, text) in [
        (1234.56, "1235"),
        (1500.0, "1500"),
        (45.26, "45.3"),
        (50.000000001, "50"),
        (3.0, "3"),
        (0.5, "0.5"),
        (0.8, "0.8"),
        (-0.001, "0"),
        (-40.0, "-40"),
    ] {
        assert_eq!(number(value), text, "{value}");
    }
}
