//! The downsampled series on both backends: bucket counts and boundaries, averages and
//! maximums, raw polls and rollups weighed alike, and a week at 10 s fitting on a screen.

use std::time::Duration;

use crate::model::{Field, PollFailure, PollRecord, PollResult, TargetKind, WorkerSample};
use crate::store::test_db::{TestDb, execute, store_tests};
use crate::store::{MAX_SERIES_POINTS, Store, TargetSpec, series_step};
use crate::time::Timestamp;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_millis(secs * 1000)
}

async fn store(db: &TestDb) -> Store {
    let store = Store::open(db.database()).await.expect("store opens");
    store
        .sync_targets(&[TargetSpec {
            name: "prod".to_string(),
            kind: TargetKind::Endpoint,
            vast_id: 1,
        }])
        .await
        .expect("target stored");
    store
}

/// Poll `i` (at `10 i` s) has one ready worker with rolling load `i` and perf 100, and
/// one starting worker; a failed poll sits between each pair, which no bucket counts.
async fn sixty_polls(store: &Store) {
    let mut records = Vec::new();
    for i in 0..60 {
        let mut ready = WorkerSample::new(1);
        ready.status = Some("running".to_string());
        ready.set(Field::CurLoadRollingAvg, Some(i as f64));
        ready.set(Field::Perf, Some(100.0));
        let mut starting = WorkerSample::new(2);
        starting.status = Some("loading".to_string());
        records.push(PollRecord {
            target: "prod".to_string(),
            started_at: at(10 * i),
            duration: Duration::from_millis(50),
            result: PollResult::Snapshot {
                workers: vec![ready, starting],
                notes: Vec::new(),
            },
        });
        records.push(PollRecord {
            target: "prod".to_string(),
            started_at: at(10 * i + 5),
            duration: Duration::from_millis(50),
            result: PollResult::Failed(PollFailure {
                kind: crate::model::FailureKind::Timeout,
                message: "timed out".to_string(),
                http_status: None,
            }),
        });
    }
    store.record_polls(&records).await.expect("polls stored");
}

/// (since, until, step) in seconds; then per bucket (start, polls, avg load, max load).
type Case = ((i64, i64, u64), &'static [(i64, u32, f64, f64)]);

const CASES: [Case; 5] = [
    // One bucket over everything.
    ((0, 600, 600), &[(0, 60, 29.5, 59.0)]),
    // Buckets of a minute: six polls each, the poll at 60 s opening the second.
    (
        (0, 590, 60),
        &[
            (0, 6, 2.5, 5.0),
            (60, 6, 8.5, 11.0),
            (120, 6, 14.5, 17.0),
            (180, 6, 20.5, 23.0),
            (240, 6, 26.5, 29.0),
            (300, 6, 32.5, 35.0),
            (360, 6, 38.5, 41.0),
            (420, 6, 44.5, 47.0),
            (480, 6, 50.5, 53.0),
            (540, 6, 56.5, 59.0),
        ],
    ),
    // Buckets count from `since`, not from the epoch; `until` is included.
    (
        (5, 185, 60),
        &[(5, 6, 3.5, 6.0), (65, 6, 9.5, 12.0), (125, 6, 15.5, 18.0)],
    ),
    // A bucket holding only failed polls is left out, not shown as zero.
    ((595, 599, 1), &[]),
    // A step finer than the polls gives one bucket per poll.
    (
        (0, 30, 1),
        &[
            (0, 1, 0.0, 0.0),
            (10, 1, 1.0, 1.0),
            (20, 1, 2.0, 2.0),
            (30, 1, 3.0, 3.0),
        ],
    ),
];

store_tests! {
    async fn buckets_hold_the_average_and_maximum_of_their_polls(db: TestDb) {
        let store = store(&db).await;
        sixty_polls(&store).await;
        for ((since, until, step), expected) in CASES {
            let buckets = store
                .fleet_series("prod", at(since), at(until), Duration::from_secs(step))
                .await
                .expect("series");
            let got: Vec<_> = buckets
                .iter()
                .map(|bucket| {
                    (
                        bucket.start.unix_millis() / 1000,
                        bucket.polls,
                        bucket.avg.load_rolling.unwrap(),
                        bucket.max.load_rolling.unwrap(),
                    )
                })
                .collect();
            assert_eq!(got, expected, "since {since} until {until} step {step}");
            for bucket in &buckets {
                // Every poll has one ready and one starting worker, whatever the averaging.
                assert_eq!(bucket.avg.ready, Some(1.0));
                assert_eq!(bucket.max.starting, Some(1.0));
                assert_eq!(bucket.avg.workers, Some(2.0));
                assert_eq!(bucket.avg.perf, Some(100.0));
            }
        }
    }
}

store_tests! {
    async fn rolled_up_polls_weigh_as_much_as_raw_ones(db: TestDb) {
        let store = store(&db).await;
        sixty_polls(&store).await;
        let before = store
            .fleet_series("prod", at(0), at(600), Duration::from_secs(600))
            .await
            .unwrap();
        // The first five minutes become one rollup row of 30 polls; the rest stay raw.
        store
            .delete_samples_before(at(300))
            .await
            .expect("retention");
        let after = store
            .fleet_series("prod", at(0), at(600), Duration::from_secs(600))
            .await
            .unwrap();
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-9;
        assert_eq!((before.len(), after.len()), (1, 1));
        assert_eq!((before[0].polls, after[0].polls), (60, 60));
        for bucket in [&before[0], &after[0]] {
            assert!(close(bucket.avg.load_rolling, 29.5), "{bucket:?}");
            assert!(close(bucket.max.load_rolling, 59.0), "{bucket:?}");
            assert!(close(bucket.avg.utilization, 0.295), "{bucket:?}");
            assert!(close(bucket.avg.ready, 1.0), "{bucket:?}");
        }
        // Finer than a rollup, the rolled-up part shows as one bucket at its start.
        let minutes = store
            .fleet_series("prod", at(0), at(590), Duration::from_secs(60))
            .await
            .unwrap();
        let starts: Vec<_> = minutes
            .iter()
            .map(|bucket| (bucket.start.unix_millis() / 1000, bucket.polls))
            .collect();
        assert_eq!(
            starts,
            [(0, 30), (300, 6), (360, 6), (420, 6), (480, 6), (540, 6)]
        );
    }
}

/// (range, requested step) in seconds, and the step chosen.
const STEPS: [((i64, Option<u64>), u64); 6] = [
    ((3_600, Some(10)), 10),
    ((3_600, None), 5),
    ((86_400, Some(60)), 60),
    // A week at 10 s would be 60 480 points: the step widens to fit the cap.
    ((604_800, Some(10)), 303),
    ((604_800, None), 840),
    // Never below a second, even for an empty range.
    ((0, Some(0)), 1),
];

#[test]
fn a_step_is_widened_to_keep_a_series_within_the_cap() {
    for ((range, requested), expected) in STEPS {
        let step = series_step(at(0), at(range), requested.map(Duration::from_secs));
        assert_eq!(
            step,
            Duration::from_secs(expected),
            "{range} s, {requested:?}"
        );
        let slots = range as u64 / step.as_secs() + 1;
        assert!(slots <= u64::from(MAX_SERIES_POINTS), "{range} s: {slots}");
    }
}

store_tests! {
    async fn a_week_at_ten_seconds_reaches_the_page_as_at_most_the_cap(db: TestDb) {
        let store = store(&db).await;
        const WEEK: i64 = 7 * 86_400;
        // 60 480 polls written in one statement: going through ingest would test ingest.
        execute(
            &store,
            format!(
                "WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n < {}) \
                 INSERT INTO polls (id, target_id, started_at, duration_ms, outcome, \
                 worker_count) SELECT n + 1, 1, n * 10.0, 50, 'ok', 3 FROM i",
                WEEK / 10 - 1
            ),
        )
        .await;
        execute(
            &store,
            "INSERT INTO fleet_totals (poll_id, workers, ready, starting, inactive, failed, \
             load_rolling, perf) SELECT id, 3, 2, 1, 0, 0, id % 100, 200 FROM polls",
        )
        .await;
        let step = series_step(at(0), at(WEEK), Some(Duration::from_secs(10)));
        let buckets = store
            .fleet_series("prod", at(0), at(WEEK), step)
            .await
            .unwrap();
        assert!(
            buckets.len() <= MAX_SERIES_POINTS as usize && buckets.len() > 1_900,
            "{} buckets",
            buckets.len()
        );
        let polls: u32 = buckets.iter().map(|bucket| bucket.polls).sum();
        assert_eq!(polls, 60_480, "every poll is in exactly one bucket");
        assert!(
            buckets
                .iter()
                .all(|bucket| bucket.avg.ready == Some(2.0) && bucket.max.workers == Some(3.0))
        );
    }
}

store_tests! {
    async fn alert_intervals_pair_each_firing_with_its_end(db: TestDb) {
        let store = store(&db).await;
        execute(
            &store,
            "INSERT INTO alerts (fingerprint, alertname, target, worker_id, severity, state, \
             labels, last_eval_at) VALUES \
             ('a1', 'Slow', 'prod', 7, 'critical', 'firing', '{}', 90), \
             ('b2', 'Other', 'elsewhere', NULL, 'info', 'firing', '{}', 90)",
        )
        .await;
        execute(
            &store,
            "INSERT INTO alert_events (fingerprint, at, from_state, to_state) VALUES \
             ('a1', 10, 'inactive', 'pending'), ('a1', 20, 'pending', 'firing'), \
             ('a1', 50, 'firing', 'resolved'), ('a1', 60, 'resolved', 'pending'), \
             ('a1', 70, 'pending', 'firing'), ('b2', 5, 'pending', 'firing')",
        )
        .await;
        let spans = |since: i64, until: i64| {
            let store = &store;
            async move {
                store
                    .alert_intervals("prod", at(since), at(until))
                    .await
                    .unwrap()
                    .iter()
                    .map(|i| {
                        (
                            i.start.unix_millis() / 1000,
                            i.end.map(|end| end.unix_millis() / 1000),
                        )
                    })
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(spans(0, 100).await, [(20, Some(50)), (70, None)]);
        // An episode over before `since` is left out; one starting after `until` too.
        assert_eq!(spans(55, 100).await, [(70, None)]);
        assert_eq!(spans(0, 40).await, [(20, None)], "still firing at `until`");
        assert_eq!(spans(0, 15).await, []);
        let first = &store.alert_intervals("prod", at(0), at(100)).await.unwrap()[0];
        assert_eq!(
            (first.alertname.as_str(), first.worker_id, first.severity),
            ("Slow", Some(7), crate::rules::Severity::Critical)
        );
    }
}
