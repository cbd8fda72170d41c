//! Replay: the rule engine driven over stored polls in time order, reading the history a
//! chunk at a time so a long range never sits in memory whole. It reads the store and
//! returns transitions; it writes and sends nothing.
//!
//! Evaluating a poll reads and changes only its own target's state, so the engine is split
//! by target into lanes that evaluate a chunk's polls on their own threads, while the next
//! chunk is read. Each lane's results carry the poll's place in the chunk and are merged
//! back in that order: the report is the same as one engine's in one thread.

use std::num::NonZeroUsize;
use std::time::Duration;

use foldhash::HashMap;

use crate::advise::Recommendation;
use crate::model::CompactPoll;
use crate::rules::{AlertRecord, Engine, Transition};
use crate::store::{Store, StoreError};
use crate::time::Timestamp;

/// How much history is read at a time.
pub const CHUNK: Duration = Duration::from_secs(3_600);

/// What replaying a range did.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Every transition, in time order, with the instance as it was after it.
    pub transitions: Vec<(AlertRecord, Transition)>,
    /// Every change of a target's recommendation, in time order.
    pub recommendations: Vec<(String, Timestamp, Recommendation)>,
    pub polls: u64,
    pub samples: u64,
}

/// Feeds every stored poll in `[from, to]` through `engine`, oldest first, with one lane
/// per core. `progress` is called after each chunk with the time replayed up to.
pub async fn replay(
    store: &Store,
    engine: &mut Engine,
    from: Timestamp,
    to: Timestamp,
    progress: impl FnMut(Timestamp),
) -> Result<ReplayReport, StoreError> {
    let lanes = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    replay_in_lanes(store, engine, from, to, lanes, progress).await
}

/// [`replay`] with the targets spread over `lanes` threads (at most one per target; 1
/// evaluates everything on the calling thread).
pub async fn replay_in_lanes(
    store: &Store,
    engine: &mut Engine,
    from: Timestamp,
    to: Timestamp,
    lanes: usize,
    progress: impl FnMut(Timestamp),
) -> Result<ReplayReport, StoreError> {
    let names: Vec<String> = engine.target_names().map(str::to_string).collect();
    let lanes = lanes.clamp(1, names.len().max(1));
    // Target i goes to lane i % lanes; lane 0 stays in `engine`.
    let lane_of: HashMap<String, usize> = names
        .iter()
        .enumerate()
        .map(|(index, name)| (name.clone(), index % lanes))
        .collect();
    let mut others: Vec<Engine> = (1..lanes)
        .map(|lane| {
            let mine: Vec<String> = names.iter().skip(lane).step_by(lanes).cloned().collect();
            engine.split_off(&mine)
        })
        .collect();
    let result = replay_lanes(store, engine, &mut others, &lane_of, from, to, progress).await;
    for other in others {
        engine.absorb(other);
    }
    result
}

async fn replay_lanes(
    store: &Store,
    engine: &mut Engine,
    others: &mut [Engine],
    lane_of: &HashMap<String, usize>,
    from: Timestamp,
    to: Timestamp,
    mut progress: impl FnMut(Timestamp),
) -> Result<ReplayReport, StoreError> {
    let mut report = ReplayReport::default();
    let mut chunk_start = from;
    let mut reading = read_chunk(store, chunk_start, to);
    loop {
        let chunk_end = chunk_start.saturating_add(CHUNK).min(to);
        let last_chunk = chunk_end >= to;
        let polls = reading
            .await
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))?;
        // The next chunk is read while this one is evaluated.
        let next = (!last_chunk).then(|| read_chunk(store, chunk_end, to));
        // Each lane gets its own polls, with their places in the chunk. `since` and
        // `until` are both inclusive: a poll on the boundary belongs to the later chunk,
        // except at the very end of the range. A target no lane knows goes to lane 0,
        // which skips it as the engine would.
        let mut lanes: Vec<Vec<(usize, CompactPoll)>> =
            (0..=others.len()).map(|_| Vec::new()).collect();
        let polls = polls
            .into_iter()
            .filter(|poll| poll.started_at < chunk_end || last_chunk);
        for (index, poll) in polls.enumerate() {
            report.polls += 1;
            report.samples += poll.workers.as_ref().map_or(0, |w| w.len() as u64);
            let lane = lane_of.get(&poll.target).copied().unwrap_or(0);
            lanes[lane].push((index, poll));
        }
        let mut engines: Vec<&mut Engine> = std::iter::once(&mut *engine)
            .chain(others.iter_mut())
            .collect();
        for outcome in evaluate_chunk(&mut engines, lanes) {
            report.recommendations.extend(outcome.recommendation);
            report.transitions.extend(outcome.transitions);
        }
        progress(chunk_end);
        let Some(next) = next else {
            return Ok(report);
        };
        reading = next;
        chunk_start = chunk_end;
    }
}

/// Starts reading the polls of the chunk that begins at `start`.
fn read_chunk(
    store: &Store,
    start: Timestamp,
    to: Timestamp,
) -> tokio::task::JoinHandle<Result<Vec<CompactPoll>, StoreError>> {
    let store = store.clone();
    let end = start.saturating_add(CHUNK).min(to);
    tokio::spawn(async move { store.compact_polls(start, end).await })
}

/// What one poll added to the report, with its place in the chunk.
struct Outcome {
    index: usize,
    recommendation: Option<(String, Timestamp, Recommendation)>,
    transitions: Vec<(AlertRecord, Transition)>,
}

/// Evaluates a chunk, each lane's polls (`lanes[i]` for `engines[i]`) by its own engine,
/// and returns what they added in the order of the chunk.
fn evaluate_chunk(
    engines: &mut [&mut Engine],
    lanes: Vec<Vec<(usize, CompactPoll)>>,
) -> Vec<Outcome> {
    let mut lanes = lanes.into_iter();
    let mut outcomes: Vec<Outcome> = match engines {
        [] => Vec::new(),
        [engine] => evaluate_lane(engine, lanes.next().unwrap_or_default()),
        [first, rest @ ..] => {
            let mine = lanes.next().unwrap_or_default();
            std::thread::scope(|scope| {
                let handles: Vec<_> = rest
                    .iter_mut()
                    .zip(lanes)
                    .map(|(engine, polls)| scope.spawn(move || evaluate_lane(engine, polls)))
                    .collect();
                let mut outcomes = evaluate_lane(first, mine);
                for handle in handles {
                    outcomes.extend(
                        handle
                            .join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                    );
                }
                outcomes
            })
        }
    };
    // Indices are unique, so this is the order of the polls.
    outcomes.sort_unstable_by_key(|outcome| outcome.index);
    outcomes
}

/// Evaluates and applies, in order, one lane's polls.
fn evaluate_lane(engine: &mut Engine, polls: Vec<(usize, CompactPoll)>) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for (index, poll) in polls {
        let evaluation = engine.evaluate_for_replay(poll);
        let recommendation = evaluation.recommendation_changed.then(|| {
            (
                evaluation.target.clone(),
                evaluation.at,
                evaluation.recommendation.clone(),
            )
        });
        let transitions: Vec<(AlertRecord, Transition)> = evaluation
            .transitions()
            .map(|(alert, transition)| (alert.clone(), *transition))
            .collect();
        if recommendation.is_some() || !transitions.is_empty() {
            outcomes.push(Outcome {
                index,
                recommendation,
                transitions,
            });
        }
        engine.apply(evaluation);
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::model::{Field, PollRecord, PollResult, TargetKind, WorkerSample};
    use crate::rules::{RuleSet, TargetInfo, TargetVars};
    use crate::store::{HistoryFilter, TargetSpec};

    const TARGETS: usize = 5;
    const POLLS: i64 = 2 * 360 + 7;
    const EPOCH_MS: i64 = 1_767_225_600_000;

    /// Workers that make the shipped rules and the advisor move: reliability dips, a
    /// worker stuck loading, another that fails, workers that come and go, load swings.
    fn worker(target: usize, index: usize, tick: i64) -> WorkerSample {
        let phase = (tick as f64 / (20.0 + target as f64)).sin();
        let status = match (index, tick / 90 % 3) {
            (0, _) if target.is_multiple_of(2) => "loading",
            (1, 1) => "error",
            _ => "running",
        };
        let mut sample = WorkerSample::new((target * 100 + index) as i64)
            .with(Field::Perf, 100.0)
            .with(Field::MeasuredPerf, 100.0)
            .with(
                Field::Reliability,
                if (tick / 60 + index as i64) % 4 == 0 {
                    0.8
                } else {
                    0.99
                },
            )
            .with(Field::CurLoad, 80.0 + 60.0 * phase)
            .with(Field::CurLoadRollingAvg, 80.0 + 60.0 * phase)
            .with(Field::ReqsWorking, (index as i64 + tick / 30) as f64 % 6.0)
            .with(Field::DiskUsage, if tick > 300 { 95.0 } else { 20.0 })
            .with(Field::LoadedAt, (EPOCH_MS / 1000) as f64);
        sample.status = Some(status.to_string());
        sample
    }

    fn record(name: &str, target: usize, tick: i64) -> PollRecord {
        let workers = 3 + (tick / 120 + target as i64) as usize % 4;
        let result = if (tick + target as i64) % 97 < 4 {
            PollResult::Failed(crate::model::PollFailure {
                kind: crate::model::FailureKind::Timeout,
                message: "timed out".to_string(),
                http_status: None,
            })
        } else {
            PollResult::Snapshot {
                workers: (0..workers).map(|i| worker(target, i, tick)).collect(),
                notes: Vec::new(),
            }
        };
        PollRecord {
            target: name.to_string(),
            started_at: Timestamp::from_unix_millis(EPOCH_MS + tick * 10_000),
            duration: Duration::from_millis(20),
            result,
        }
    }

    fn engine(names: &[String]) -> Engine {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/vast.yaml");
        let vars: Vec<TargetVars> = names
            .iter()
            .map(|name| TargetVars {
                name: name.clone(),
                vars: BTreeSet::new(),
            })
            .collect();
        let rules = RuleSet::load(&[file], &crate::rules::identifiers(), &vars).expect("rules");
        let targets = names
            .iter()
            .enumerate()
            .map(|(index, name)| TargetInfo {
                name: name.clone(),
                kind: TargetKind::Endpoint,
                vast_id: index as i64 + 1,
                labels: Default::default(),
                vars: Default::default(),
                scaling: Default::default(),
            })
            .collect();
        Engine::new(
            Arc::new(rules),
            &crate::rules::identifiers(),
            targets,
            3,
            Duration::from_secs(10),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replay_in_lanes_reports_what_one_engine_evaluating_every_poll_reports() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let store = Store::open(&dir.path().join("replay.db"))
            .await
            .expect("store");
        let names: Vec<String> = (0..TARGETS).map(|i| format!("fleet-{i}")).collect();
        let specs: Vec<TargetSpec> = names
            .iter()
            .enumerate()
            .map(|(index, name)| TargetSpec {
                name: name.clone(),
                kind: TargetKind::Endpoint,
                vast_id: index as i64 + 1,
            })
            .collect();
        store.sync_targets(&specs).await.expect("targets");
        let records: Vec<PollRecord> = (0..POLLS)
            .flat_map(|tick| {
                names
                    .iter()
                    .enumerate()
                    .map(move |(index, name)| record(name, index, tick))
            })
            .collect();
        store.record_polls(&records).await.expect("store polls");
        let from = Timestamp::from_unix_millis(EPOCH_MS);
        let to = Timestamp::from_unix_millis(EPOCH_MS + POLLS * 10_000);

        // The reference: every poll through Engine::evaluate, as the daemon does.
        let stored = store
            .poll_records(&HistoryFilter {
                target: None,
                since: Some(from),
                until: Some(to),
                limit: None,
            })
            .await
            .expect("records");
        let mut reference = engine(&names);
        let mut transitions = Vec::new();
        let mut recommendations = Vec::new();
        for record in &stored {
            let evaluation = reference.evaluate(record);
            if evaluation.recommendation_changed {
                recommendations.push((
                    evaluation.target.clone(),
                    evaluation.at,
                    evaluation.recommendation.clone(),
                ));
            }
            transitions.extend(
                evaluation
                    .transitions()
                    .map(|(alert, transition)| (alert.clone(), *transition)),
            );
            reference.apply(evaluation);
        }
        assert!(
            transitions.len() > 20 && recommendations.len() > 5,
            "the data must exercise rules and advisor: {} transitions, {} recommendations",
            transitions.len(),
            recommendations.len()
        );

        for lanes in [1, 2, 3, TARGETS + 4] {
            let mut replayed = engine(&names);
            let report = replay_in_lanes(&store, &mut replayed, from, to, lanes, |_| {})
                .await
                .expect("replay");
            assert_eq!(report.polls, stored.len() as u64, "{lanes} lanes");
            assert_eq!(report.transitions, transitions, "{lanes} lanes");
            assert_eq!(report.recommendations, recommendations, "{lanes} lanes");
            assert_eq!(
                replayed.target_names().count(),
                TARGETS,
                "the lanes' targets are joined back ({lanes} lanes)"
            );
            for name in &names {
                // Replay leaves an unchanged recommendation's reason unwritten until read.
                assert_eq!(
                    replayed.recommendation(name),
                    reference.recommendation(name),
                    "{name}'s latest recommendation ({lanes} lanes)"
                );
            }
        }
    }
}
