//! Property tests: `advise` never panics on any history (missing and extreme values,
//! unknown statuses, workers that come and go, polls out of order, any config), and its
//! output always keeps the invariants the engine and the rules rely on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::{Action, AdvisorInput, LastPoll, ScalingConfig, advise};
use crate::model::{Field, TargetKind, WorkerSample};
use crate::rules::expr::Snapshot;
use crate::time::Timestamp;

fn arb_number() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        4 => (0.0..3000.0f64).prop_map(Some),
        2 => Just(None),
        1 => prop::sample::select(vec![0.0, -5.0, 1.0, 1e300, f64::MIN_POSITIVE]).prop_map(Some),
    ]
}

fn arb_worker() -> impl Strategy<Value = WorkerSample> {
    let status = prop::option::of(prop::sample::select(vec![
        "running",
        "idle",
        "loading",
        "creating",
        "error",
        "unavail",
        "stopped",
        "teleporting",
    ]));
    (
        0i64..12,
        status,
        prop::collection::vec(arb_number(), Field::ALL.len()),
    )
        .prop_map(|(id, status, values)| {
            let mut sample = WorkerSample {
                status: status.map(String::from),
                ..WorkerSample::new(id)
            };
            for (field, value) in Field::ALL.into_iter().zip(values) {
                sample.set(field, value);
            }
            sample
        })
}

/// Snapshots a few seconds to a few minutes apart, occasionally out of order.
fn arb_history() -> impl Strategy<Value = VecDeque<Arc<Snapshot>>> {
    prop::collection::vec(
        (
            -30_000i64..240_000,
            prop::collection::vec(arb_worker(), 0..8),
        ),
        0..40,
    )
    .prop_map(|polls| {
        let mut at = 1_767_225_600_000i64;
        polls
            .into_iter()
            .map(|(step, mut workers)| {
                at += step;
                workers.sort_by_key(|w| w.worker_id);
                workers.dedup_by_key(|w| w.worker_id);
                Arc::new(Snapshot::new(
                    Timestamp::from_unix_millis(at),
                    &workers,
                    Vec::new(),
                ))
            })
            .collect()
    })
}

fn arb_config() -> impl Strategy<Value = ScalingConfig> {
    let minutes = |max: u64| (0..max).prop_map(|m| Duration::from_secs(m * 60));
    (
        prop::sample::select(vec![0.5, 0.9, 1.0]),
        prop::option::of(0u32..5),
        prop::option::of(3u32..30),
        minutes(10),
        prop::sample::select(vec![0.0, 0.1, 0.5]),
        (minutes(20), minutes(20), minutes(30)),
    )
        .prop_map(
            |(
                target_util,
                min_workers,
                max_workers,
                cold_start,
                tolerance,
                (lookback, scale_down_window, stuck_after),
            )| ScalingConfig {
                target_util,
                min_workers,
                max_workers: max_workers.map(|max| max.max(min_workers.unwrap_or(0))),
                cold_start,
                tolerance,
                lookback,
                scale_down_window,
                replace_below: 0.9,
                stuck_after,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn advise_never_panics_and_keeps_its_invariants(
        history in arb_history(),
        config in arb_config(),
        last_ok in prop::option::of(any::<bool>()),
        late_ms in 0i64..120_000,
        worker_group in any::<bool>(),
    ) {
        let latest = history.back().map_or(Timestamp::EPOCH, |s| s.at);
        let now = Timestamp::from_unix_millis(latest.unix_millis() + late_ms);
        let input = AdvisorInput {
            history: &history,
            last_poll: last_ok.map(|ok| LastPoll { at: now, ok }),
            interval: Duration::from_secs(10),
            kind: if worker_group { TargetKind::WorkerGroup } else { TargetKind::Endpoint },
            vast_id: 42,
            now,
        };
        let recommendation = advise(&input, &config);

        prop_assert_eq!(
            recommendation.current_workers,
            recommendation.ready_workers + recommendation.starting_workers
        );
        prop_assert_eq!(
            recommendation.delta,
            i64::from(recommendation.desired_workers) - i64::from(recommendation.current_workers)
        );
        match recommendation.action {
            Action::Investigate => {
                prop_assert_eq!(recommendation.delta, 0);
                prop_assert!(recommendation.replace.is_empty());
            }
            Action::ScaleUp => prop_assert!(recommendation.delta > 0),
            Action::Replace => {
                prop_assert!(recommendation.delta <= 0);
                prop_assert!(!recommendation.replace.is_empty());
            }
            Action::ScaleDown => prop_assert!(recommendation.delta < 0),
            Action::Hold => {
                prop_assert_eq!(recommendation.delta, 0);
                prop_assert!(recommendation.replace.is_empty());
            }
        }
        if recommendation.action != Action::Investigate {
            if let Some(max) = config.max_workers {
                prop_assert!(recommendation.desired_workers <= max);
            }
            if let Some(min) = config.min_workers {
                prop_assert!(recommendation.desired_workers >= min);
            }
        }
        prop_assert!(recommendation.reason.ends_with('.'));
        prop_assert!(!recommendation.reason.contains("NaN"));
        prop_assert!(recommendation.commands.iter().all(|c| c.starts_with("vastai ")));
        prop_assert!(serde_json::to_string(&recommendation).is_ok());
    }
}
