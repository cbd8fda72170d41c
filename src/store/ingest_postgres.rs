//! PostgreSQL ingest: a tick's polls, fleet sums and worker samples each go in with one
//! `COPY ... FROM STDIN` in PostgreSQL's binary format, inside the tick's transaction. COPY
//! skips per-statement parsing and parameter limits, and the binary format spares the
//! server parsing numbers from text (in `benches/ingest.rs` text COPY stored a 50,000-sample
//! tick at about 85,000 samples/s); the rows are encoded here. Every column is BIGINT,
//! DOUBLE PRECISION or TEXT, whose binary forms are 8-byte big-endian integers, IEEE 754
//! doubles and UTF-8 bytes.

use sqlx::{Postgres, Transaction};

use super::error::{StoreError, query_error};
use super::ingest::{PollIds, PreparedPoll, extra_column, samples};
use crate::model::Field;

const OPERATION: &str = "storing polls";

/// Rendered bytes sent per COPY message.
const SEND_BYTES: usize = 1 << 20;

pub(super) async fn copy_polls(
    transaction: &mut Transaction<'static, Postgres>,
    polls: &[PreparedPoll<'_>],
    ids: &[PollIds],
) -> Result<(), StoreError> {
    let mut rows = CopyRows::default();
    for (poll, ids) in polls.iter().zip(ids) {
        let (error, http_status, worker_count) = poll.outcome_columns();
        rows.start_row(8);
        rows.int(ids.poll_id);
        rows.int(ids.target_id);
        rows.real(Some(poll.record.started_at.unix_secs_f64()));
        rows.int(poll.duration_ms());
        rows.text(Some(poll.record.result.outcome()));
        rows.text(error.as_deref());
        rows.opt_int(http_status);
        rows.opt_int(worker_count);
    }
    copy(
        transaction,
        "COPY polls (id, target_id, started_at, duration_ms, outcome, error, http_status, \
         worker_count) FROM STDIN (FORMAT binary)",
        rows,
    )
    .await?;

    let mut rows = CopyRows::default();
    for (summary, ids) in polls
        .iter()
        .zip(ids)
        .filter_map(|(poll, ids)| Some((poll.summary.as_ref()?, ids)))
    {
        rows.start_row(13);
        rows.int(ids.poll_id);
        for count in [
            summary.workers,
            summary.ready,
            summary.starting,
            summary.inactive,
            summary.failed,
        ] {
            rows.int(i64::from(count));
        }
        for value in [
            summary.load,
            summary.new_load,
            summary.load_rolling,
            summary.perf,
            summary.cur_perf,
            summary.measured_perf,
            summary.reqs_working,
        ] {
            rows.real(value);
        }
    }
    copy(
        transaction,
        "COPY fleet_totals (poll_id, workers, ready, starting, inactive, failed, load, \
         new_load, load_rolling, perf, cur_perf, measured_perf, reqs_working) \
         FROM STDIN (FORMAT binary)",
        rows,
    )
    .await?;

    let fields: Vec<&str> = Field::ALL.iter().map(|field| field.name()).collect();
    let statement = format!(
        "COPY worker_samples (poll_id, target_id, worker_id, polled_at, status, {}, extra) \
         FROM STDIN (FORMAT binary)",
        fields.join(", ")
    );
    let mut rows = CopyRows::default();
    for (worker, ids, polled_at) in samples(polls, ids) {
        rows.start_row(6 + Field::ALL.len());
        rows.int(ids.poll_id);
        rows.int(ids.target_id);
        rows.int(worker.worker_id);
        rows.real(Some(polled_at));
        rows.text(worker.status.as_deref());
        for value in worker.values {
            rows.real(value);
        }
        let extra = extra_column(worker).map_err(|error| StoreError::BadRow {
            operation: OPERATION,
            detail: format!("`extra` of worker {}: {error}", worker.worker_id),
        })?;
        rows.text(extra.as_deref());
    }
    copy(transaction, &statement, rows).await
}

/// Sends encoded rows through one COPY.
async fn copy(
    transaction: &mut Transaction<'static, Postgres>,
    statement: &str,
    rows: CopyRows,
) -> Result<(), StoreError> {
    let Some(bytes) = rows.finish() else {
        return Ok(());
    };
    let mut copy = transaction
        .copy_in_raw(statement)
        .await
        .map_err(query_error(OPERATION))?;
    for chunk in bytes.chunks(SEND_BYTES) {
        if let Err(source) = copy.send(chunk).await {
            // The connection must leave COPY mode before it is used again.
            let _ = copy.abort("vastwatch could not send the rows").await;
            return Err(StoreError::Query {
                operation: OPERATION,
                source,
            });
        }
    }
    copy.finish().await.map_err(query_error(OPERATION))?;
    Ok(())
}

/// The binary COPY format's signature, flags and header extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Rows in COPY's binary format: the header, then per row its field count and each field
/// as a length (-1 for NULL) and its bytes, then -1 as the trailer.
#[derive(Default)]
struct CopyRows {
    buffer: Vec<u8>,
}

impl CopyRows {
    fn start_row(&mut self, fields: usize) {
        if self.buffer.is_empty() {
            self.buffer.extend_from_slice(HEADER);
        }
        self.buffer
            .extend_from_slice(&i16::try_from(fields).unwrap_or(i16::MAX).to_be_bytes());
    }

    fn field(&mut self, bytes: &[u8]) {
        let length = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
        self.buffer.extend_from_slice(&length.to_be_bytes());
        self.buffer.extend_from_slice(bytes);
    }

    fn null(&mut self) {
        self.buffer.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn int(&mut self, value: i64) {
        self.field(&value.to_be_bytes());
    }

    fn opt_int(&mut self, value: Option<i64>) {
        match value {
            Some(value) => self.int(value),
            None => self.null(),
        }
    }

    /// A finite number; the store repairs the others to NULL before this.
    fn real(&mut self, value: Option<f64>) {
        match value {
            Some(value) if value.is_finite() => self.field(&value.to_be_bytes()),
            _ => self.null(),
        }
    }

    fn text(&mut self, value: Option<&str>) {
        match value {
            Some(value) => self.field(value.as_bytes()),
            None => self.null(),
        }
    }

    /// The whole COPY stream, or `None` when no row was added.
    fn finish(mut self) -> Option<Vec<u8>> {
        if self.buffer.is_empty() {
            return None;
        }
        self.buffer.extend_from_slice(&(-1i16).to_be_bytes());
        Some(self.buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_encode_in_copy_binary_format() {
        let mut rows = CopyRows::default();
        rows.start_row(4);
        rows.int(1);
        rows.text(Some("é"));
        rows.real(None);
        rows.real(Some(f64::NAN));
        let mut expected = HEADER.to_vec();
        expected.extend_from_slice(&[0, 4]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0, 0, 0, 2, 0xc3, 0xa9]);
        expected.extend_from_slice(&[0xff; 8]);
        expected.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(rows.finish(), Some(expected));
        assert_eq!(CopyRows::default().finish(), None);
    }
}
