//! Bulk reads of worker samples through SQLite's C API.
//!
//! Start-up fills every target's history window and `replay` reads days of samples; through
//! sqlx's row API that costs several microseconds a row (each value copied into an owned
//! row and sent across a channel), which made replay read-bound at about 150,000 samples a
//! second. Here one prepared statement is stepped on sqlx's own connection, locked from its
//! worker thread for the duration, and each row is decoded straight into a `WorkerSample`,
//! or for replay into the compact `HistSample` the rule engine keeps (no status `String`
//! per row, no second copy). The unsafe code is confined to this file and every statement
//! is finalized on every path.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ffi::{CStr, CString, c_int};
use std::ptr;
use std::sync::Arc;

use libsqlite3_sys as ffi;
use sqlx::SqlitePool;

use super::error::StoreError;
use crate::model::{
    CompactPoll, FailureKind, Field, HistSample, StateClass, WorkerSample, intern_status,
};
use crate::time::Timestamp;

const OPERATION: &str = "reading worker samples";

/// Columns in the order [`decode_row`] reads them.
pub(super) const COLUMNS: &str = "poll_id, worker_id, status, cur_load, new_load, cur_load_rolling_avg, \
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
    let (sql, binds) = samples_query(polls)?;
    let mut connection = acquire(pool).await?;
    let mut handle = lock(&mut connection).await?;
    let db = handle.as_raw_handle().as_ptr();
    let mut last_status = None;
    // SAFETY: the locked handle keeps sqlx's worker thread off this connection until it is
    // dropped, after `read` returns; `read` finalizes its statement on every path, and
    // `decode_row` is called only on its current row.
    unsafe {
        read(db, &sql, &binds, |statement| {
            decode_row(statement, &mut last_status)
        })
    }
}

/// Every poll that started in `[since, until]`, in time order, each successful one with
/// its workers in compact form: what replay evaluates. Two statements on one connection:
/// the polls, then the samples of the range of their ids.
pub(super) async fn compact_polls(
    pool: &SqlitePool,
    since: Timestamp,
    until: Timestamp,
) -> Result<Vec<CompactPoll>, StoreError> {
    let polls_sql = CString::new(
        "SELECT p.id, t.name, p.started_at, p.outcome FROM polls AS p \
         JOIN targets AS t ON t.id = p.target_id \
         WHERE p.started_at BETWEEN ?1 AND ?2 ORDER BY p.started_at, p.id",
    )
    .map_err(|_| bad("the query holds a NUL byte".to_string()))?;
    let mut connection = acquire(pool).await?;
    let mut handle = lock(&mut connection).await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: as in `samples_of`: the connection is locked until both reads return.
    let polls = unsafe {
        read_all(
            db,
            &polls_sql,
            &[
                Bind::Real(since.unix_secs_f64()),
                Bind::Real(until.unix_secs_f64()),
            ],
            |statement| decode_poll(statement),
        )?
    };
    let ok_ids = polls.iter().filter(|(_, ok, _)| *ok).map(|(id, _, _)| *id);
    let (Some(first), Some(last)) = (ok_ids.clone().min(), ok_ids.max()) else {
        return Ok(polls.into_iter().map(|(_, _, poll)| poll).collect());
    };
    let (sql, binds) = samples_query(Polls::Range(first, last))?;
    let mut last_status = None;
    // SAFETY: as above.
    let mut samples = unsafe {
        read(db, &sql, &binds, |statement| {
            decode_compact_row(statement, &mut last_status)
        })?
    };
    Ok(polls
        .into_iter()
        .map(|(id, ok, mut poll)| {
            if ok {
                poll.workers = Some(samples.remove(&id).unwrap_or_default());
            }
            poll
        })
        .collect())
}

/// The statement that reads the selected polls' samples, and its parameters.
fn samples_query(polls: Polls<'_>) -> Result<(CString, Vec<Bind>), StoreError> {
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
    Ok((sql, binds.into_iter().map(Bind::Integer).collect()))
}

async fn acquire(
    pool: &SqlitePool,
) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, StoreError> {
    pool.acquire().await.map_err(|source| StoreError::Query {
        operation: OPERATION,
        source,
    })
}

async fn lock(
    connection: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>,
) -> Result<sqlx::sqlite::LockedSqliteHandle<'_>, StoreError> {
    connection
        .lock_handle()
        .await
        .map_err(|source| StoreError::Query {
            operation: OPERATION,
            source,
        })
}

/// A statement parameter.
#[derive(Debug, Clone, Copy)]
enum Bind {
    Integer(i64),
    Real(f64),
}

pub(super) fn bad(detail: String) -> StoreError {
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

/// Prepares `sql`, binds `binds` (numbered from 1) and calls `decode` on each row.
///
/// # Safety
/// `db` must be a valid connection that nothing else uses until this returns, and `decode`
/// may only read the current row of the statement it is given.
unsafe fn each_row(
    db: *mut ffi::sqlite3,
    sql: &CStr,
    binds: &[Bind],
    mut decode: impl FnMut(*mut ffi::sqlite3_stmt) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
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
        let position = index as c_int + 1;
        // SAFETY: the statement is live; parameters are numbered from 1.
        match *value {
            Bind::Integer(value) => unsafe {
                ffi::sqlite3_bind_int64(statement.0, position, value);
            },
            Bind::Real(value) => unsafe {
                ffi::sqlite3_bind_double(statement.0, position, value);
            },
        }
    }
    loop {
        // SAFETY: the statement is live and bound.
        match unsafe { ffi::sqlite3_step(statement.0) } {
            ffi::SQLITE_ROW => decode(statement.0)?,
            ffi::SQLITE_DONE => return Ok(()),
            _ => {
                return Err(bad(format!("cannot read: {}", unsafe {
                    error_message(db)
                })));
            }
        }
    }
}

/// Every row, decoded, in order.
///
/// # Safety
/// As [`each_row`].
unsafe fn read_all<T>(
    db: *mut ffi::sqlite3,
    sql: &CStr,
    binds: &[Bind],
    mut decode: impl FnMut(*mut ffi::sqlite3_stmt) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut rows = Vec::new();
    // SAFETY: per the contract.
    unsafe {
        each_row(db, sql, binds, |statement| {
            rows.push(decode(statement)?);
            Ok(())
        })?;
    }
    Ok(rows)
}

/// Rows of samples, decoded, gathered by poll id.
///
/// # Safety
/// As [`each_row`].
unsafe fn read<T>(
    db: *mut ffi::sqlite3,
    sql: &CStr,
    binds: &[Bind],
    mut decode: impl FnMut(*mut ffi::sqlite3_stmt) -> Result<(i64, T), StoreError>,
) -> Result<HashMap<i64, Vec<T>>, StoreError> {
    let mut samples: HashMap<i64, Vec<T>> = HashMap::new();
    // Rows come in poll id order: a poll's samples are gathered here and enter the map
    // once, rather than each row hashing its way in. A poll usually has as many workers
    // as the one before, so its list starts that large.
    let mut current: Option<(i64, Vec<T>)> = None;
    let mut last_len = 0;
    // SAFETY: per the contract.
    unsafe {
        each_row(db, sql, binds, |statement| {
            let (poll_id, sample) = decode(statement)?;
            match &mut current {
                Some((id, workers)) if *id == poll_id => workers.push(sample),
                _ => {
                    let mut workers = Vec::with_capacity(last_len.max(1));
                    workers.push(sample);
                    if let Some((id, workers)) = current.replace((poll_id, workers)) {
                        last_len = workers.len();
                        gather(&mut samples, id, workers);
                    }
                }
            }
            Ok(())
        })?;
    }
    if let Some((id, workers)) = current {
        gather(&mut samples, id, workers);
    }
    Ok(samples)
}

/// Adds a poll's samples to the map, moving the list in whole when it is the poll's first.
fn gather<T>(samples: &mut HashMap<i64, Vec<T>>, id: i64, workers: Vec<T>) {
    match samples.entry(id) {
        Entry::Vacant(entry) => {
            entry.insert(workers);
        }
        Entry::Occupied(mut entry) => entry.get_mut().extend(workers),
    }
}

/// Reads one row of the polls statement in [`compact_polls`]: the poll id, whether it
/// succeeded, and the poll without its workers.
///
/// # Safety
/// `statement` must be positioned on a row of that statement.
unsafe fn decode_poll(
    statement: *mut ffi::sqlite3_stmt,
) -> Result<(i64, bool, CompactPoll), StoreError> {
    // SAFETY (whole body): columns are read by index within the statement's width while
    // the row is current; text is copied before the next step.
    unsafe {
        let id = ffi::sqlite3_column_int64(statement, 0);
        let target = text(statement, 1).unwrap_or_default().to_string();
        let started_at = Timestamp::from_unix_secs_f64(ffi::sqlite3_column_double(statement, 2));
        let outcome = text(statement, 3).unwrap_or_default();
        let ok = outcome == "ok";
        if !ok && FailureKind::parse(outcome).is_none() {
            return Err(bad(format!("poll {id} has unknown outcome `{outcome}`")));
        }
        let poll = CompactPoll {
            target,
            started_at,
            workers: None,
        };
        Ok((id, ok, poll))
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
        sample.extra = parse_extra(statement, poll_id, sample.worker_id)?;
        Ok((poll_id, sample))
    }
}

/// Reads one row of [`COLUMNS`] into the compact form.
///
/// # Safety
/// `statement` must be a live statement positioned on a row of [`COLUMNS`].
unsafe fn decode_compact_row(
    statement: *mut ffi::sqlite3_stmt,
    last_status: &mut Option<(Arc<str>, StateClass)>,
) -> Result<(i64, HistSample), StoreError> {
    // SAFETY (whole body): columns are read by index within COLUMNS' width while the row is
    // current; text pointers are used before the next step.
    unsafe {
        let poll_id = ffi::sqlite3_column_int64(statement, 0);
        let worker_id = ffi::sqlite3_column_int64(statement, 1);
        let (status, class) = match text(statement, 2) {
            None => (None, StateClass::Unknown),
            Some(status) => {
                // Consecutive rows usually share a status: compare before interning.
                if last_status
                    .as_ref()
                    .is_none_or(|(previous, _)| &**previous != status)
                {
                    *last_status = Some(intern_status(status));
                }
                match last_status {
                    Some((shared, class)) => (Some(Arc::clone(shared)), *class),
                    None => (None, StateClass::Unknown),
                }
            }
        };
        let mut values = [f64::NAN; Field::ALL.len()];
        for (offset, value) in values.iter_mut().enumerate() {
            let column = 3 + offset as c_int;
            if ffi::sqlite3_column_type(statement, column) != ffi::SQLITE_NULL {
                *value = ffi::sqlite3_column_double(statement, column);
            }
        }
        let extra = parse_extra(statement, poll_id, worker_id)?.map(Arc::new);
        let sample = HistSample {
            worker_id,
            values,
            status,
            class,
            extra,
        };
        Ok((poll_id, sample))
    }
}

/// The `extra` column of a row of [`COLUMNS`], parsed.
///
/// # Safety
/// `statement` must be a live statement positioned on a row of [`COLUMNS`].
unsafe fn parse_extra(
    statement: *mut ffi::sqlite3_stmt,
    poll_id: i64,
    worker_id: i64,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, StoreError> {
    let extra_column = 3 + Field::ALL.len() as c_int;
    // SAFETY: per the contract.
    let Some(extra) = (unsafe { text(statement, extra_column) }) else {
        return Ok(None);
    };
    serde_json::from_str(extra).map(Some).map_err(|error| {
        bad(format!(
            "`extra` of worker {worker_id} in poll {poll_id} is not a JSON object: {error}"
        ))
    })
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
