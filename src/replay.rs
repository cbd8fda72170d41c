//! Replay: the rule engine driven over stored polls in time order, reading the history a
//! chunk at a time so a long range never sits in memory whole. It reads the store and
//! returns transitions; it writes and sends nothing.

use std::time::Duration;

use crate::advise::Recommendation;
use crate::rules::{AlertRecord, Engine, Transition};
use crate::store::{HistoryFilter, Store, StoreError};
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

/// Feeds every stored poll in `[from, to]` through `engine`, oldest first. `progress` is
/// called after each chunk with the time replayed up to.
pub async fn replay(
    store: &Store,
    engine: &mut Engine,
    from: Timestamp,
    to: Timestamp,
    mut progress: impl FnMut(Timestamp),
) -> Result<ReplayReport, StoreError> {
    let mut report = ReplayReport::default();
    let mut chunk_start = from;
    loop {
        let chunk_end = chunk_start.saturating_add(CHUNK).min(to);
        let last_chunk = chunk_end >= to;
        let records = store
            .poll_records(&HistoryFilter {
                target: None,
                since: Some(chunk_start),
                until: Some(chunk_end),
                limit: None,
            })
            .await?;
        // `since` and `until` are both inclusive: a poll on the boundary belongs to the
        // later chunk, except at the very end of the range.
        for record in records
            .iter()
            .filter(|record| record.started_at < chunk_end || last_chunk)
        {
            report.polls += 1;
            report.samples += record.result.workers().map_or(0, |w| w.len() as u64);
            let evaluation = engine.evaluate_for_replay(record);
            if evaluation.recommendation_changed {
                report.recommendations.push((
                    evaluation.target.clone(),
                    evaluation.at,
                    evaluation.recommendation.clone(),
                ));
            }
            report.transitions.extend(
                evaluation
                    .transitions()
                    .map(|(alert, transition)| (alert.clone(), *transition)),
            );
            engine.apply(evaluation);
        }
        progress(chunk_end);
        if last_chunk {
            return Ok(report);
        }
        chunk_start = chunk_end;
    }
}
