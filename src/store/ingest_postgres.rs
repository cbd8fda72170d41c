//! PostgreSQL ingest: a tick's polls, fleet sums and worker samples each go in with one
//! `COPY ... FROM STDIN` in PostgreSQL's text format, inside the tick's transaction. COPY
//! skips per-statement parsing and parameter limits; the rows are rendered here.

use std::fmt::Write as _;

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
        rows.int(ids.poll_id);
        rows.int(ids.target_id);
        rows.real(Some(poll.record.started_at.unix_secs_f64()));
        rows.int(poll.duration_ms());
        rows.text(Some(poll.record.result.outcome()));
        rows.text(error.as_deref());
        rows.opt_int(http_status);
        rows.opt_int(worker_count);
        rows.end_row();
    }
    copy(
        transaction,
        "COPY polls (id, target_id, started_at, duration_ms, outcome, error, http_status, \
         worker_count) FROM STDIN",
        rows.buffer,
    )
    .await?;

    let mut rows = CopyRows::default();
    for (summary, ids) in polls
        .iter()
        .zip(ids)
        .filter_map(|(poll, ids)| Some((poll.summary.as_ref()?, ids)))
    {
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
        rows.end_row();
    }
    copy(
        transaction,
        "COPY fleet_totals (poll_id, workers, ready, starting, inactive, failed, load, \
         new_load, load_rolling, perf, cur_perf, measured_perf, reqs_working) FROM STDIN",
        rows.buffer,
    )
    .await?;

    let fields: Vec<&str> = Field::ALL.iter().map(|field| field.name()).collect();
    let statement = format!(
        "COPY worker_samples (poll_id, target_id, worker_id, polled_at, status, {}, extra) \
         FROM STDIN",
        fields.join(", ")
    );
    let mut rows = CopyRows::default();
    for (worker, ids, polled_at) in samples(polls, ids) {
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
        rows.end_row();
    }
    copy(transaction, &statement, rows.buffer).await
}

/// Sends rendered rows through one COPY.
async fn copy(
    transaction: &mut Transaction<'static, Postgres>,
    statement: &str,
    rows: String,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut copy = transaction
        .copy_in_raw(statement)
        .await
        .map_err(query_error(OPERATION))?;
    for chunk in rows.as_bytes().chunks(SEND_BYTES) {
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

/// Rows in COPY's text format: columns separated by tabs, rows ended by newlines, `\N` for
/// NULL, and backslash escapes in text.
#[derive(Default)]
struct CopyRows {
    buffer: String,
    /// Whether the current row has a column yet.
    in_row: bool,
}

impl CopyRows {
    /// Starts a column: a tab unless it is the row's first.
    fn separate(&mut self) {
        if self.in_row {
            self.buffer.push('\t');
        }
        self.in_row = true;
    }

    fn null(&mut self) {
        self.buffer.push_str("\\N");
    }

    fn int(&mut self, value: i64) {
        self.separate();
        let _ = write!(self.buffer, "{value}");
    }

    fn opt_int(&mut self, value: Option<i64>) {
        match value {
            Some(value) => self.int(value),
            None => {
                self.separate();
                self.null();
            }
        }
    }

    /// A finite number (the store repairs the others to NULL before this), written so
    /// that it parses back to the same `f64`.
    fn real(&mut self, value: Option<f64>) {
        self.separate();
        match value {
            Some(value) if value.is_finite() => {
                let _ = write!(self.buffer, "{value}");
            }
            _ => self.null(),
        }
    }

    fn text(&mut self, value: Option<&str>) {
        self.separate();
        let Some(value) = value else {
            self.null();
            return;
        };
        for c in value.chars() {
            match c {
                '\\' => self.buffer.push_str("\\\\"),
                '\t' => self.buffer.push_str("\\t"),
                '\n' => self.buffer.push_str("\\n"),
                '\r' => self.buffer.push_str("\\r"),
                c => self.buffer.push(c),
            }
        }
    }

    fn end_row(&mut self) {
        self.buffer.push('\n');
        self.in_row = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_render_in_copy_text_format() {
        let mut rows = CopyRows::default();
        rows.int(1);
        rows.text(Some("tab\there\\ and\nnewline"));
        rows.real(Some(0.1));
        rows.real(None);
        rows.opt_int(None);
        rows.end_row();
        rows.text(Some(""));
        rows.text(None);
        rows.real(Some(-2.5e-7));
        rows.end_row();
        assert_eq!(
            rows.buffer,
            "1\ttab\\there\\\\ and\\nnewline\t0.1\t\\N\t\\N\n\t\\N\t-0.00000025\n"
        );
    }
}
