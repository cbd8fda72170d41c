//! Writing: target upserts and the batched ingest of poll records.
//!
//! A batch of polls is stored in one transaction: on SQLite with a handful of multi-row
//! INSERTs per table (see [`super::batch`]), on PostgreSQL with one COPY per table (see
//! [`super::ingest_postgres`]). Poll ids are assigned first, so the samples of every poll
//! can go in the same batches without a round trip per poll. On PostgreSQL a large batch
//! may instead be written as a few parts at once, one transaction each
//! ([`Store::record_evaluated_polls_in_parts`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, LazyLock};

use futures_util::future::join_all;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, Sqlite, Transaction};
use tokio::sync::oneshot;

use super::Store;
use super::alerts::write_evaluations;
use super::backend::{Backend, StoreRow, WriteTx, on_tx};
use super::batch::BatchInsert;
use super::error::{StoreError, query_error};
use super::rows::TargetSpec;
use crate::model::{Field, FleetSummary, PollRecord, PollResult, WorkerSample};
use crate::rules::Evaluation;

/// Rows per full sample INSERT (17 parameters each, 17,408 in all; the limit is 32,766).
/// In `benches/ingest.rs` a 50,000-sample tick took 127 ms with 1,024-row chunks and
/// 137 ms with 256-row chunks, within noise of each other: past a few hundred rows the
/// per-statement overhead is gone and SQLite's own b-tree work dominates.
pub(super) const SAMPLE_CHUNK_ROWS: usize = 1024;

const POLL_COLUMNS: usize = 8;
static INSERT_POLLS: LazyLock<BatchInsert> = LazyLock::new(|| {
    BatchInsert::new(
        "INSERT INTO polls (id, target_id, started_at, duration_ms, outcome, error, \
         http_status, worker_count)",
        POLL_COLUMNS,
        512,
    )
});

const FLEET_COLUMNS: usize = 13;
static INSERT_FLEET_TOTALS: LazyLock<BatchInsert> = LazyLock::new(|| {
    BatchInsert::new(
        "INSERT INTO fleet_totals (poll_id, workers, ready, starting, inactive, failed, load, \
         new_load, load_rolling, perf, cur_perf, measured_perf, reqs_working)",
        FLEET_COLUMNS,
        512,
    )
});

/// poll_id, target_id, worker_id, polled_at, status, the API fields, extra.
const SAMPLE_COLUMNS: usize = 5 + Field::ALL.len() + 1;
static INSERT_SAMPLES: LazyLock<BatchInsert> = LazyLock::new(|| {
    let fields: Vec<&str> = Field::ALL.iter().map(|field| field.name()).collect();
    BatchInsert::new(
        &format!(
            "INSERT INTO worker_samples (poll_id, target_id, worker_id, polled_at, status, {}, \
             extra)",
            fields.join(", ")
        ),
        SAMPLE_COLUMNS,
        SAMPLE_CHUNK_ROWS,
    )
});

impl Store {
    /// Stores the configured targets, matched by name: a new name gets a row, a known one
    /// takes the new kind and id. Targets no longer configured keep their row and history.
    pub async fn sync_targets(&self, targets: &[TargetSpec]) -> Result<(), StoreError> {
        const OPERATION: &str = "storing targets";
        let mut transaction = WriteTx::begin(&self.backend, OPERATION).await?;
        on_tx!(&mut transaction, |connection, dialect| {
            for target in targets {
                sqlx::query(dialect.sql(
                    "INSERT INTO targets (name, kind, vast_id) VALUES (?, ?, ?) \
                     ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, \
                     vast_id = excluded.vast_id",
                ))
                .bind(target.name.as_str())
                .bind(target.kind.as_str())
                .bind(target.vast_id)
                .execute(&mut *connection)
                .await
                .map_err(query_error(OPERATION))?;
            }
        });
        transaction.commit(OPERATION).await
    }

    /// Stores poll attempts with their worker samples and fleet sums, all or nothing.
    ///
    /// Within one poll, worker rows are stored in id order; a worker id listed twice keeps
    /// its last entry, a status is lower-cased and a non-finite number is stored as NULL
    /// (its text kept in `extra`), so the stored fleet sums always match the stored rows.
    /// A record naming a target that [`Store::sync_targets`] never stored fails the whole
    /// call with [`StoreError::UnknownTarget`].
    pub async fn record_polls(&self, records: &[PollRecord]) -> Result<(), StoreError> {
        self.record_evaluated_polls(records, &[]).await
    }

    /// Stores poll attempts together with what their evaluation produced (alert changes,
    /// changed recommendations), in one transaction: a transition is stored if and only if
    /// its poll is.
    pub async fn record_evaluated_polls(
        &self,
        records: &[PollRecord],
        evaluations: &[Evaluation],
    ) -> Result<(), StoreError> {
        let polls: Vec<PreparedPoll<'_>> = records.iter().map(PreparedPoll::new).collect();
        self.write_in_one(&polls, evaluations).await
    }

    /// [`Store::record_evaluated_polls`] for polls already prepared.
    async fn write_in_one(
        &self,
        polls: &[PreparedPoll<'_>],
        evaluations: &[Evaluation],
    ) -> Result<(), StoreError> {
        if polls.is_empty() && evaluations.is_empty() {
            return Ok(());
        }
        let mut transaction = WriteTx::begin(&self.backend, STORING_POLLS).await?;
        let ids = assign_ids(&mut transaction, polls).await?;
        write_polls(&mut transaction, polls, &ids).await?;
        write_evaluations(&mut transaction, evaluations).await?;
        transaction.commit(STORING_POLLS).await
    }

    /// Stores a batch of polls, at most one per target, with their evaluations
    /// (`evaluations[i]` belongs to `records[i]`; none at all is allowed too), and says
    /// which records were stored.
    ///
    /// On SQLite, and for a batch under `2 × MIN_PART_SAMPLES` samples, this is
    /// [`Store::record_evaluated_polls`]: one transaction, one part. On PostgreSQL a larger
    /// batch is cut into up to [`MAX_WRITE_PARTS`] runs of consecutive records with about
    /// equal sample counts, each written in a transaction of its own on its own
    /// connection at the same time, so the server's COPY work runs on several cores
    /// (docs/benchmarks.md, "On PostgreSQL"). Each part is atomic with its records'
    /// evaluations; the parts commit one after another in order, and each writes its
    /// evaluations only after the part before it committed, so ids (polls, notification
    /// marks) still become visible in increasing order. A part that fails leaves the
    /// others stored: the caller retries only its records, which are whole polls of
    /// targets no other part holds. Poll ids and targets are resolved once for the whole
    /// batch first, so an unknown target fails the whole batch, as it would in one
    /// transaction.
    pub async fn record_evaluated_polls_in_parts(
        &self,
        records: &[PollRecord],
        evaluations: &[Evaluation],
    ) -> Vec<WrittenPart> {
        let polls: Vec<PreparedPoll<'_>> = records.iter().map(PreparedPoll::new).collect();
        let aligned = evaluations.is_empty() || evaluations.len() == records.len();
        let parts = match &self.backend {
            Backend::Postgres(_) if aligned => plan_parts(&polls, MAX_WRITE_PARTS),
            _ => Vec::new(),
        };
        let whole = |result| {
            vec![WrittenPart {
                records: 0..records.len(),
                result,
            }]
        };
        if parts.len() < 2 {
            return whole(self.write_in_one(&polls, evaluations).await);
        }
        let mut first = match WriteTx::begin(&self.backend, STORING_POLLS).await {
            Ok(transaction) => transaction,
            Err(error) => return whole(Err(error)),
        };
        let ids = match assign_ids(&mut first, &polls).await {
            Ok(ids) => ids,
            Err(error) => return whole(Err(error)),
        };

        // Part n begins its transaction once part n - 1 holds a connection, so a pool
        // smaller than the part count makes parts wait in order instead of deadlocking;
        // it writes its evaluations and commits once part n - 1 has finished. Each part
        // signals by dropping its sender, whether it succeeded, failed or was cancelled.
        let mut first = Some(first);
        let mut begun_before: Option<oneshot::Receiver<()>> = None;
        let mut finished_before: Option<oneshot::Receiver<()>> = None;
        let writes = parts.iter().map(|range| {
            let (begun, begun_after) = oneshot::channel::<()>();
            let (finished, finished_after) = oneshot::channel::<()>();
            let wait_begun = begun_before.replace(begun_after);
            let wait_finished = finished_before.replace(finished_after);
            let transaction = first.take();
            let polls = &polls[range.clone()];
            let ids = &ids[range.clone()];
            let evaluations = evaluations.get(range.clone()).unwrap_or_default();
            async move {
                let mut transaction = match transaction {
                    Some(transaction) => transaction,
                    None => {
                        if let Some(wait) = wait_begun {
                            let _ = wait.await;
                        }
                        WriteTx::begin(&self.backend, STORING_POLLS).await?
                    }
                };
                drop(begun);
                write_polls(&mut transaction, polls, ids).await?;
                if let Some(wait) = wait_finished {
                    let _ = wait.await;
                }
                write_evaluations(&mut transaction, evaluations).await?;
                let committed = transaction.commit(STORING_POLLS).await;
                drop(finished);
                committed
            }
        });
        let results = join_all(writes).await;
        parts
            .into_iter()
            .zip(results)
            .map(|(records, result)| WrittenPart { records, result })
            .collect()
    }
}

const STORING_POLLS: &str = "storing polls";

/// Samples per part of a batch written in parts: a smaller batch goes in one transaction.
/// A part's own cost (a connection, BEGIN, the ids' round trip, a COMMIT's WAL flush) is a
/// few milliseconds against about 80 ms of COPY for 10,000 samples.
pub(super) const MIN_PART_SAMPLES: usize = 10_000;

/// The most transactions one batch is written in at once on PostgreSQL. Each keeps one
/// server process busy; see docs/benchmarks.md, "On PostgreSQL", for the measurements
/// behind the number.
pub const MAX_WRITE_PARTS: usize = 2;

/// The records one transaction of [`Store::record_evaluated_polls_in_parts`] covered, as
/// indexes into the batch, and whether it stored them.
#[derive(Debug)]
pub struct WrittenPart {
    pub records: Range<usize>,
    pub result: Result<(), StoreError>,
}

/// Cuts `polls` into consecutive runs with about equal sample counts (a poll counts its
/// samples plus one for its own row): one run per [`MIN_PART_SAMPLES`] samples, at most
/// `max_parts`, none empty.
pub(super) fn plan_parts(polls: &[PreparedPoll<'_>], max_parts: usize) -> Vec<Range<usize>> {
    let weights: Vec<usize> = polls.iter().map(|poll| poll.workers.len() + 1).collect();
    let total: usize = weights.iter().sum();
    let count = (total / MIN_PART_SAMPLES).clamp(1, max_parts.max(1));
    let mut parts = Vec::with_capacity(count);
    let mut start = 0;
    let mut cumulative = 0;
    for (index, weight) in weights.iter().enumerate() {
        cumulative += weight;
        let boundary = total * (parts.len() + 1) / count;
        if parts.len() + 1 < count && cumulative >= boundary && index + 1 < polls.len() {
            parts.push(start..index + 1);
            start = index + 1;
        }
    }
    parts.push(start..polls.len());
    parts
}

/// Resolves the batch's target ids and takes a new poll id for each poll.
async fn assign_ids(
    transaction: &mut WriteTx,
    polls: &[PreparedPoll<'_>],
) -> Result<Vec<PollIds>, StoreError> {
    let target_ids = target_ids(transaction).await?;
    let poll_ids = poll_ids(transaction, polls.len()).await?;
    polls
        .iter()
        .zip(poll_ids)
        .map(|(poll, poll_id)| {
            let target_id = *target_ids.get(poll.record.target.as_str()).ok_or_else(|| {
                StoreError::UnknownTarget {
                    name: poll.record.target.clone(),
                }
            })?;
            Ok(PollIds { poll_id, target_id })
        })
        .collect()
}

/// Writes the polls' rows, fleet sums and samples in the transaction.
async fn write_polls(
    transaction: &mut WriteTx,
    polls: &[PreparedPoll<'_>],
    ids: &[PollIds],
) -> Result<(), StoreError> {
    match transaction {
        WriteTx::Sqlite(transaction) => insert_polls(transaction, polls, ids).await,
        WriteTx::Postgres(transaction) => {
            super::ingest_postgres::copy_polls(transaction, polls, ids).await
        }
    }
}

/// Inserts the polls, their fleet sums and their samples with multi-row INSERTs.
async fn insert_polls(
    transaction: &mut Transaction<'static, Sqlite>,
    polls: &[PreparedPoll<'_>],
    ids: &[PollIds],
) -> Result<(), StoreError> {
    insert_rows(
        transaction,
        &INSERT_POLLS,
        polls.len(),
        polls.iter().zip(ids),
        POLL_COLUMNS,
        |args, (poll, ids)| bind_poll(args, poll, ids),
    )
    .await?;
    insert_rows(
        transaction,
        &INSERT_FLEET_TOTALS,
        polls.iter().filter(|poll| poll.summary.is_some()).count(),
        polls
            .iter()
            .zip(ids)
            .filter_map(|(poll, ids)| Some((poll.summary.as_ref()?, ids.poll_id))),
        FLEET_COLUMNS,
        |args, (summary, poll_id)| bind_fleet_totals(args, summary, poll_id),
    )
    .await?;
    let mut statuses = StatusInterner::default();
    // Collected before the await: a lazy iterator of closures here makes the future's
    // lifetimes too general for tokio::spawn to prove it Send.
    let samples: Vec<(&WorkerSample, &PollIds, f64)> = samples(polls, ids).collect();
    insert_rows(
        transaction,
        &INSERT_SAMPLES,
        samples.len(),
        samples.into_iter(),
        SAMPLE_COLUMNS,
        |args, (worker, ids, polled_at)| bind_sample(args, worker, ids, polled_at, &mut statuses),
    )
    .await
}

/// Every worker sample of `polls`, with its poll's ids and time.
pub(super) fn samples<'a>(
    polls: &'a [PreparedPoll<'_>],
    ids: &'a [PollIds],
) -> impl Iterator<Item = (&'a WorkerSample, &'a PollIds, f64)> {
    polls.iter().zip(ids).flat_map(|(poll, ids)| {
        let polled_at = poll.record.started_at.unix_secs_f64();
        poll.workers
            .iter()
            .map(move |worker| (worker.as_ref(), ids, polled_at))
    })
}

/// Ids for `count` new polls, in order. SQLite's are taken under the write lock from
/// sqlite_sequence, which remembers the largest id ever used; PostgreSQL's from the
/// `polls` id sequence, which other writers share.
async fn poll_ids(transaction: &mut WriteTx, count: usize) -> Result<Vec<i64>, StoreError> {
    const OPERATION: &str = "storing polls";
    match transaction {
        WriteTx::Sqlite(transaction) => {
            let first: i64 = sqlx::query_scalar(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'polls'), 0) + 1",
            )
            .fetch_one(&mut **transaction)
            .await
            .map_err(query_error(OPERATION))?;
            Ok((first..).take(count).collect())
        }
        WriteTx::Postgres(transaction) => {
            let mut ids: Vec<i64> = sqlx::query_scalar(
                "SELECT nextval(pg_get_serial_sequence('polls', 'id')) \
                 FROM generate_series(1, $1)",
            )
            .bind(count as i64)
            .fetch_all(&mut **transaction)
            .await
            .map_err(query_error(OPERATION))?;
            ids.sort_unstable();
            Ok(ids)
        }
    }
}

async fn target_ids(transaction: &mut WriteTx) -> Result<HashMap<String, i64>, StoreError> {
    const OPERATION: &str = "reading targets";
    on_tx!(transaction, |connection, dialect| {
        let rows = sqlx::query(dialect.sql("SELECT id, name FROM targets"))
            .fetch_all(&mut *connection)
            .await
            .map_err(query_error(OPERATION))?;
        rows.iter()
            .map(|row| Ok((row.value("name")?, row.value("id")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(query_error(OPERATION))
    })
}

/// Inserts the `row_count` rows of `rows` with as few statements as [`BatchInsert::plan`]
/// allows.
async fn insert_rows<T>(
    transaction: &mut Transaction<'static, Sqlite>,
    insert: &'static BatchInsert,
    row_count: usize,
    mut rows: impl Iterator<Item = T>,
    columns: usize,
    mut bind: impl FnMut(&mut SqliteArguments, T) -> Result<(), sqlx::error::BoxDynError>,
) -> Result<(), StoreError> {
    const OPERATION: &str = "storing polls";
    for (size, sql) in insert.plan(row_count) {
        let mut args = SqliteArguments::default();
        args.reserve(size * columns, 0);
        for row in rows.by_ref().take(size) {
            bind(&mut args, row).map_err(|source| StoreError::Query {
                operation: OPERATION,
                source: sqlx::Error::Encode(source),
            })?;
        }
        sqlx::query_with(sql, args)
            .execute(&mut **transaction)
            .await
            .map_err(query_error(OPERATION))?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
pub(super) struct PollIds {
    pub(super) poll_id: i64,
    pub(super) target_id: i64,
}

/// A poll record made ready for storage.
pub(super) struct PreparedPoll<'a> {
    pub(super) record: &'a PollRecord,
    /// Sorted by worker id, one entry per id, repaired where needed.
    pub(super) workers: Vec<Cow<'a, WorkerSample>>,
    /// The fleet sums of `workers`; `None` for a failed poll.
    pub(super) summary: Option<FleetSummary>,
}

impl<'a> PreparedPoll<'a> {
    pub(super) fn new(record: &'a PollRecord) -> Self {
        let PollResult::Snapshot { workers, .. } = &record.result else {
            return PreparedPoll {
                record,
                workers: Vec::new(),
                summary: None,
            };
        };
        let mut by_id: Vec<&WorkerSample> = workers.iter().collect();
        // Stable, so among entries with the same id the last one listed stays last.
        by_id.sort_by_key(|worker| worker.worker_id);
        let mut changed = false;
        let mut kept: Vec<Cow<'a, WorkerSample>> = Vec::with_capacity(by_id.len());
        for (index, worker) in by_id.iter().enumerate() {
            let superseded = by_id
                .get(index + 1)
                .is_some_and(|next| next.worker_id == worker.worker_id);
            if superseded {
                changed = true;
                continue;
            }
            if needs_repair(worker) {
                changed = true;
                kept.push(Cow::Owned(repaired(worker)));
            } else {
                kept.push(Cow::Borrowed(*worker));
            }
        }
        if kept.len() < workers.len() {
            tracing::warn!(
                target = %record.target,
                listed = workers.len(),
                stored = kept.len(),
                "Worker ids repeat in one poll; stored the last entry of each."
            );
        }
        let summary = if changed {
            let stored: Vec<WorkerSample> =
                kept.iter().map(|worker| worker.as_ref().clone()).collect();
            FleetSummary::of(&stored)
        } else {
            FleetSummary::of(workers)
        };
        PreparedPoll {
            record,
            workers: kept,
            summary: Some(summary),
        }
    }
}

fn needs_repair(worker: &WorkerSample) -> bool {
    worker
        .values
        .iter()
        .flatten()
        .any(|value| !value.is_finite())
        || worker
            .status
            .as_deref()
            .is_some_and(|status| status.chars().any(char::is_uppercase))
}

/// The poller normally does this already (SPEC section 4); the store repeats it so that
/// what it stores is consistent whoever calls it.
fn repaired(worker: &WorkerSample) -> WorkerSample {
    let mut worker = worker.clone();
    if let Some(status) = &mut worker.status {
        *status = status.to_lowercase();
    }
    for field in Field::ALL {
        if let Some(value) = worker.get(field).filter(|value| !value.is_finite()) {
            worker.set(field, None);
            worker
                .extra
                .get_or_insert_with(serde_json::Map::new)
                .entry(field.name())
                .or_insert_with(|| serde_json::Value::String(value.to_string()));
        }
    }
    worker
}

impl PreparedPoll<'_> {
    /// The `error`, `http_status` and `worker_count` columns of its `polls` row.
    pub(super) fn outcome_columns(&self) -> (Option<String>, Option<i64>, Option<i64>) {
        match &self.record.result {
            PollResult::Snapshot { notes, .. } => {
                let notes = (!notes.is_empty()).then(|| notes.join("; "));
                (notes, None, Some(self.workers.len() as i64))
            }
            PollResult::Failed(failure) => (
                Some(failure.message.clone()),
                failure.http_status.map(i64::from),
                None,
            ),
        }
    }

    pub(super) fn duration_ms(&self) -> i64 {
        i64::try_from(self.record.duration.as_millis()).unwrap_or(i64::MAX)
    }
}

fn bind_poll(
    args: &mut SqliteArguments,
    poll: &PreparedPoll<'_>,
    ids: &PollIds,
) -> Result<(), sqlx::error::BoxDynError> {
    let record = poll.record;
    let (error, http_status, worker_count) = poll.outcome_columns();
    args.add(ids.poll_id)?;
    args.add(ids.target_id)?;
    args.add(record.started_at.unix_secs_f64())?;
    args.add(poll.duration_ms())?;
    args.add(record.result.outcome())?;
    args.add(error)?;
    args.add(http_status)?;
    args.add(worker_count)?;
    Ok(())
}

fn bind_fleet_totals(
    args: &mut SqliteArguments,
    summary: &FleetSummary,
    poll_id: i64,
) -> Result<(), sqlx::error::BoxDynError> {
    args.add(poll_id)?;
    args.add(i64::from(summary.workers))?;
    args.add(i64::from(summary.ready))?;
    args.add(i64::from(summary.starting))?;
    args.add(i64::from(summary.inactive))?;
    args.add(i64::from(summary.failed))?;
    args.add(summary.load)?;
    args.add(summary.new_load)?;
    args.add(summary.load_rolling)?;
    args.add(summary.perf)?;
    args.add(summary.cur_perf)?;
    args.add(summary.measured_perf)?;
    args.add(summary.reqs_working)?;
    Ok(())
}

fn bind_sample(
    args: &mut SqliteArguments,
    worker: &WorkerSample,
    ids: &PollIds,
    polled_at: f64,
    statuses: &mut StatusInterner,
) -> Result<(), sqlx::error::BoxDynError> {
    args.add(ids.poll_id)?;
    args.add(ids.target_id)?;
    args.add(worker.worker_id)?;
    args.add(polled_at)?;
    args.add(worker.status.as_deref().map(|status| statuses.get(status)))?;
    for value in worker.values {
        args.add(value)?;
    }
    args.add(extra_column(worker)?)?;
    Ok(())
}

/// The `extra` column of a sample: its unknown fields as a JSON object, or NULL.
pub(super) fn extra_column(worker: &WorkerSample) -> Result<Option<String>, serde_json::Error> {
    match &worker.extra {
        Some(extra) if !extra.is_empty() => serde_json::to_string(extra).map(Some),
        _ => Ok(None),
    }
}

/// Shares one allocation per distinct status across a batch: a tick repeats a dozen
/// statuses tens of thousands of times.
#[derive(Default)]
struct StatusInterner {
    seen: HashMap<String, Arc<str>>,
}

impl StatusInterner {
    fn get(&mut self, status: &str) -> Arc<str> {
        if let Some(shared) = self.seen.get(status) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(status);
        self.seen.insert(status.to_string(), shared.clone());
        shared
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{FailureKind, PollFailure};
    use crate::time::Timestamp;

    fn poll(workers: usize) -> PollRecord {
        PollRecord {
            target: "t".to_string(),
            started_at: Timestamp::from_unix_millis(0),
            duration: Duration::ZERO,
            result: PollResult::Snapshot {
                workers: (0..workers as i64).map(WorkerSample::new).collect(),
                notes: Vec::new(),
            },
        }
    }

    fn failed() -> PollRecord {
        PollRecord {
            result: PollResult::Failed(PollFailure {
                kind: FailureKind::Timeout,
                message: "timed out".to_string(),
                http_status: None,
            }),
            ..poll(0)
        }
    }

    fn plan(records: &[PollRecord], max_parts: usize) -> Vec<Range<usize>> {
        let polls: Vec<PreparedPoll<'_>> = records.iter().map(PreparedPoll::new).collect();
        plan_parts(&polls, max_parts)
    }

    #[test]
    fn a_batch_under_two_parts_worth_of_samples_stays_whole() {
        assert_eq!(plan(&[], 2), vec![0..0]);
        assert_eq!(plan(&[poll(50), failed()], 2), vec![0..2]);
        let just_under: Vec<PollRecord> = (0..19).map(|_| poll(1_000)).collect();
        assert_eq!(plan(&just_under, 2), vec![0..19]);
        let large: Vec<PollRecord> = (0..1_000).map(|_| poll(50)).collect();
        assert_eq!(plan(&large, 1), vec![0..1_000]);
    }

    #[test]
    fn a_large_batch_is_cut_into_consecutive_parts_of_about_equal_samples() {
        let tick: Vec<PollRecord> = (0..1_000).map(|_| poll(50)).collect();
        assert_eq!(plan(&tick, 2), vec![0..500, 500..1_000]);
        assert_eq!(plan(&tick, 4), vec![0..250, 250..500, 500..750, 750..1_000]);

        // Uneven fleets: the cut falls after the poll that brings the first part to half
        // the samples (15,001 + 101 of 30,152 weighed, counting one per poll row).
        let mut uneven: Vec<PollRecord> = vec![poll(15_000)];
        uneven.extend((0..150).map(|_| poll(100)));
        uneven.push(failed());
        assert_eq!(plan(&uneven, 2), vec![0..2, 2..uneven.len()]);
    }

    #[test]
    fn no_part_is_empty_even_when_one_poll_outweighs_the_rest() {
        let mut records: Vec<PollRecord> = (0..3).map(|_| poll(1)).collect();
        records.push(poll(40_000));
        let parts = plan(&records, 4);
        assert!(parts.iter().all(|part| !part.is_empty()), "{parts:?}");
        assert_eq!(parts.first().map(|part| part.start), Some(0));
        assert_eq!(parts.last().map(|part| part.end), Some(records.len()));
        assert!(parts.windows(2).all(|pair| pair[0].end == pair[1].start));
    }
}
