//! Bulk reads of worker samples through SQLite's C API.
//!
//! Start-up fills every target's history window and `replay` reads days of samples; through
//! sqlx's row API that costs several microseconds a row (each value copied into an owned
//! row and sent across a channel), which made replay read-bound at about 150,000 samples a
//! second. Here one prepared statement is stepped on sqlx's own connection, locked from its
//! worker thread for the duration, and each row is decoded straight into a `WorkerSample`.
//! The unsafe code is confined to this file and every statement is finalized on every path.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_int};
use std::ptr;

use libsqlite3_sys as ffi;
use sqlx::SqlitePool;

use super::error::StoreError;
use crate::model::{Field, WorkerSample};

const OPERATION: &str = "reading worker samples";

/// Columns in the order [`decode_row`] reads them.
const COLUMNS: &str = "poll_id, worker_id, status, cur_load, new_load, cur_load_rolling_avg, \
     cur_perf, measured_perf, perf, reliability, dlperf, reqs_working, disk_usage, loaded_at, \
     extra";

/// Which polls' samples to read.
pub(super) enum Polls<'a> {
    /// Every sample whose poll id is in `first..=last`.
    Range(i64, i64),
    /// The samples of exactly these polls.
    Ids(&'a [i64]),
}

/// The worker samples of the selected polls, by poll id, each poll's in worker id order.
pub(super) async fn samples_of(
    pool: &SqlitePool,
    polls: Polls<'_>,
) -> Result<HashMap<i64, Vec<WorkerSample>>, StoreError> {
    let (sql, binds): (String, Vec<i64>) = match polls {
        Polls::Range(first, last) => (
            format!(
                "SELECT {COLUMNS} FROM worker_samples WHERE poll_id BETWEEN ?1 AND ?2 \
                 ORDER BY poll_id, worker_id"
            ),
            vec![first, last],
        ),
        Polls::Ids(ids) => (
            format!(
                "SELECT {COLUMNS} FROM worker_samples WHERE poll_id IN ({}) \
                 ORDER BY poll_id, worker_id",
                vec!["?"; ids.len()].join(", ")
            ),
            ids.to_vec(),
        ),
    };
    let sql = CString::new(sql).map_err(|_| bad("the query holds a NUL byte".to_string()))?;
    let mut connection = pool.acquire().await.map_err(|source| StoreError::Query {
        operation: OPERATION,
        source,
    })?;
    let mut handle = connection
        .lock_handle()
        .await
        .map_err(|source| StoreError::Query {
            operation: OPERATION,
            source,
        })?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: the locked handle keeps sqlx's worker thread off this connection until it is
    // dropped, after `read` returns; `read` finalizes its statement on every path.
    unsafe { read(db, &sql, &binds) }
}

fn bad(detail: String) -> StoreError {
    StoreError::BadRow {
        operation: OPERATION,
        detail,
    }
}

/// A prepared statement that is finalized when dropped.
struct Statement(*mut ffi::sqlite3_stmt);

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: the pointer came from sqlite3_prepare_v2 and is finalized exactly once.
        unsafe {
            ffi::sqlite3_finalize(self.0);
        }
    }
}

/// The connection's last error message.
///
/// # Safety
/// `db` must be a valid, open connection.
unsafe fn error_message(db: *mut ffi::sqlite3) -> String {
    // SAFETY: sqlite3_errmsg returns a NUL-terminated string owned by the connection, valid
    // until the next call on it; it is copied at once.
    unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) }
        .to_string_lossy()
        .into_owned()
}

/// # Safety
/// `db` must be a valid connection that nothing else uses until this returns.
unsafe fn read(
    db: *mut ffi::sqlite3,
    sql: &CStr,
    binds: &[i64],
) -> Result<HashMap<i64, Vec<WorkerSample>>, StoreError> {
    let mut raw = ptr::null_mut();
    // SAFETY: `db` is valid per the contract; `sql` is NUL-terminated.
    let code = unsafe { ffi::sqlite3_prepare_v2(db, sql.as_ptr(), -1, &mut raw, ptr::null_mut()) };
    if code != ffi::SQLITE_OK {
        return Err(bad(format!("cannot prepare: {}", unsafe {
            error_message(db)
        })));
    }
    let statement = Statement(raw);
    for (index, value) in binds.iter().enumerate() {
        // SAFETY: the statement is live; parameters are numbered from 1.
        unsafe { ffi::sqlite3_bind_int64(statement.0, index as c_int + 1, *value) };
    }
    let mut samples: HashMap<i64, Vec<WorkerSample>> = HashMap::new();
    // Rows come in poll id order: a poll's samples are gathered here and enter the map
    // once, rather than each row hashing its way in.
    let mut current: Option<(i64, Vec<WorkerSample>)> = None;
    let mut last_status: Option<String> = None;
    loop {
        // SAFETY: the statement is live and bound.
        match unsafe { ffi::sqlite3_step(statement.0) } {
            ffi::SQLITE_ROW => {
                // SAFETY: the statement has a current row.
                let (poll_id, sample) = unsafe { decode_row(statement.0, &mut last_status)? };
                match &mut current {
                    Some((id, workers)) if *id == poll_id => workers.push(sample),
                    _ => {
                        if let Some((id, workers)) = current.replace((poll_id, vec![sample])) {
                            samples.entry(id).or_default().extend(workers);
                        }
                    }
                }
            }
            ffi::SQLITE_DONE => {
                if let Some((id, workers)) = current {
                    samples.entry(id).or_default().extend(workers);
                }
                return Ok(samples);
            }
            _ => {
                return Err(bad(format!("cannot read: {}", unsafe {
                    error_message(db)
                })));
            }
        }
    }
}

/// Reads one row of [`COLUMNS`].
///
/// # Safety
/// `statement` must be a live statement positioned on a row of [`COLUMNS`].
unsafe fn decode_row(
    statement: *mut ffi::sqlite3_stmt,
    last_status: &mut Option<String>,
) -> Result<(i64, WorkerSample), StoreError> {
    // SAFETY (whole body): columns are read by index within COLUMNS' width while the row is
    // current; text pointers are copied before the next step.
    unsafe {
        let poll_id = ffi::sqlite3_column_int64(statement, 0);
        let mut sample = WorkerSample::new(ffi::sqlite3_column_int64(statement, 1));
        if let Some(status) = text(statement, 2) {
            // Consecutive rows usually share a status; reuse its allocation's contents.
            match last_status {
                Some(previous) if previous.as_str() == status => {
                    sample.status = Some(previous.clone());
                }
                _ => {
                    let owned = status.to_string();
                    *last_status = Some(owned.clone());
                    sample.status = Some(owned);
                }
            }
        }
        for (offset, field) in Field::ALL.into_iter().enumerate() {
            let column = 3 + offset as c_int;
            if ffi::sqlite3_column_type(statement, column) != ffi::SQLITE_NULL {
                sample.set(field, Some(ffi::sqlite3_column_double(statement, column)));
            }
        }
        let extra_column = 3 + Field::ALL.len() as c_int;
        if let Some(extra) = text(statement, extra_column) {
            let parsed = serde_json::from_str(extra).map_err(|error| {
                bad(format!(
                    "`extra` of worker {} in poll {poll_id} is not a JSON object: {error}",
                    sample.worker_id
                ))
            })?;
            sample.extra = Some(parsed);
        }
        Ok((poll_id, sample))
    }
}

/// A text column, or `None` for NULL (and for text that is not UTF-8, which vastwatch
/// never writes).
///
/// # Safety
/// `statement` must be positioned on a row; the result is valid until the next step.
unsafe fn text<'a>(statement: *mut ffi::sqlite3_stmt, column: c_int) -> Option<&'a str> {
    // SAFETY: per the contract; SQLite returns NULL for a NULL column.
    unsafe {
        let pointer = ffi::sqlite3_column_text(statement, column);
        if pointer.is_null() {
            return None;
        }
        let length = ffi::sqlite3_column_bytes(statement, column) as usize;
        std::str::from_utf8(std::slice::from_raw_parts(pointer, length)).ok()
    }
}
