//! The two backends behind [`Store`](super::Store): what differs between SQLite and
//! PostgreSQL in connections, transactions, SQL text and row decoding, so that each store
//! method is written once.
//!
//! A method body that runs SQL is written once inside [`with_pool!`] or [`on_tx!`], which
//! expand it for each backend with a pool (or connection) of that backend's type and its
//! [`Dialect`]. Statements are written in SQLite's syntax (`?` and `?N` parameters) and
//! passed through [`Dialect::sql`], which hands SQLite the text unchanged and rewrites it
//! for PostgreSQL (see [`postgres_sql`]). Where the two disagree beyond that, the method
//! picks a statement by dialect. Rows are read through [`StoreRow`], implemented for both.

use std::borrow::Cow;

use sqlx::postgres::{PgPool, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, Postgres, Row, Sqlite, Transaction, TypeInfo, ValueRef};

use super::error::{StoreError, query_error};

/// The connections of one store.
#[derive(Debug, Clone)]
pub(super) enum Backend {
    Sqlite(SqliteBackend),
    Postgres(PostgresBackend),
}

/// One writer connection and a pool of readers (WAL lets them read during a write).
#[derive(Debug, Clone)]
pub(super) struct SqliteBackend {
    pub(super) writer: SqlitePool,
    pub(super) readers: SqlitePool,
}

/// One pool for reads and writes: the server orders concurrent writers itself. Code that
/// needs a connection of its own (a session that holds an advisory lock, for instance)
/// opens it with `pool.connect_options()`.
#[derive(Debug, Clone)]
pub(super) struct PostgresBackend {
    pub(super) pool: PgPool,
}

/// Which SQL a statement must be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A fixed statement, as this backend takes it.
    pub(super) fn sql(self, sql: &'static str) -> AssertSqlSafe<Cow<'static, str>> {
        match self {
            Dialect::Sqlite => AssertSqlSafe(Cow::Borrowed(sql)),
            Dialect::Postgres => AssertSqlSafe(Cow::Owned(postgres_sql(sql))),
        }
    }

    /// A statement assembled at run time from fixed parts (values are always bound).
    pub(super) fn owned(self, sql: String) -> AssertSqlSafe<Cow<'static, str>> {
        match self {
            Dialect::Sqlite => AssertSqlSafe(Cow::Owned(sql)),
            Dialect::Postgres => AssertSqlSafe(Cow::Owned(postgres_sql(&sql))),
        }
    }

    /// The statement that opens a write transaction: SQLite's takes the write lock at
    /// once, so a transaction never fails halfway upgrading a read lock.
    fn begin(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }
}

/// Rewrites a statement in SQLite's parameter syntax for PostgreSQL: `?N` becomes `$N`, a
/// bare `?` the next number (as SQLite numbers them), and `LIMIT ?` becomes
/// `LIMIT NULLIF($N, -1)`, since SQLite's "no limit" is -1 and PostgreSQL's is NULL.
/// Quoted strings and identifiers are copied as they are.
pub(super) fn postgres_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + sql.len() / 8);
    let mut highest = 0u32;
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(open) = quote {
            out.push(c);
            if c == open {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                out.push(c);
            }
            '?' => {
                let mut digits = String::new();
                while let Some(digit) = chars.next_if(char::is_ascii_digit) {
                    digits.push(digit);
                }
                let number = match digits.parse::<u32>() {
                    Ok(number) => number,
                    Err(_) => highest + 1,
                };
                highest = highest.max(number);
                let before = out.trim_end().as_bytes();
                let after_limit =
                    before.len() >= 5 && before[before.len() - 5..].eq_ignore_ascii_case(b"LIMIT");
                if after_limit {
                    out.push_str(&format!("NULLIF(${number}, -1)"));
                } else {
                    out.push_str(&format!("${number}"));
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Binds each of `values` that is present, in order: the optional leading parameters of
/// a query that comes in a shape with them and one without.
pub(super) fn bind_present<'q, DB: sqlx::Database>(
    mut query: Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    values: [Option<i64>; 2],
) -> Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for value in values.into_iter().flatten() {
        query = query.bind(value);
    }
    query
}

/// A write transaction on either backend; [`on_tx!`] runs SQL in it.
pub(super) enum WriteTx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl WriteTx {
    pub(super) async fn begin(
        backend: &Backend,
        operation: &'static str,
    ) -> Result<WriteTx, StoreError> {
        Ok(match backend {
            Backend::Sqlite(sqlite) => WriteTx::Sqlite(
                sqlite
                    .writer
                    .begin_with(Dialect::Sqlite.begin())
                    .await
                    .map_err(query_error(operation))?,
            ),
            Backend::Postgres(postgres) => WriteTx::Postgres(
                postgres
                    .pool
                    .begin_with(Dialect::Postgres.begin())
                    .await
                    .map_err(query_error(operation))?,
            ),
        })
    }

    pub(super) async fn commit(self, operation: &'static str) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(transaction) => transaction.commit().await,
            WriteTx::Postgres(transaction) => transaction.commit().await,
        }
        .map_err(query_error(operation))
    }
}

/// Runs `$body` with `$pool` the store's pool for `$role` (`readers` or `writer`; a
/// PostgreSQL store has one pool for both) and `$dialect` its [`Dialect`]. The body is
/// compiled once per backend.
macro_rules! with_pool {
    ($store:expr, $role:ident, |$pool:ident, $dialect:ident| $body:expr) => {
        match &$store.backend {
            $crate::store::backend::Backend::Sqlite(sqlite) => {
                let $pool = &sqlite.$role;
                let $dialect = $crate::store::backend::Dialect::Sqlite;
                $body
            }
            $crate::store::backend::Backend::Postgres(postgres) => {
                let $pool = &postgres.pool;
                let $dialect = $crate::store::backend::Dialect::Postgres;
                $body
            }
        }
    };
}
pub(super) use with_pool;

/// Runs `$body` with `$connection` the connection of the write transaction `$tx` (a
/// `&mut WriteTx`) and `$dialect` its [`Dialect`]. The body is compiled once per backend.
macro_rules! on_tx {
    ($tx:expr, |$connection:ident, $dialect:ident| $body:expr) => {
        match $tx {
            $crate::store::backend::WriteTx::Sqlite(transaction) => {
                let $connection: &mut sqlx::SqliteConnection = &mut *transaction;
                let $dialect = $crate::store::backend::Dialect::Sqlite;
                $body
            }
            $crate::store::backend::WriteTx::Postgres(transaction) => {
                let $connection: &mut sqlx::PgConnection = &mut *transaction;
                let $dialect = $crate::store::backend::Dialect::Postgres;
                $body
            }
        }
    };
}
pub(super) use on_tx;

/// A value the store reads from a row of either backend.
pub(super) trait Column: Sized {
    fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, sqlx::Error>;
    fn from_postgres(row: &PgRow, column: &str) -> Result<Self, sqlx::Error>;
}

macro_rules! plain_column {
    ($($type:ty),*) => {$(
        impl Column for $type {
            fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, sqlx::Error> {
                row.try_get(column)
            }
            fn from_postgres(row: &PgRow, column: &str) -> Result<Self, sqlx::Error> {
                row.try_get(column)
            }
        }
    )*};
}
plain_column!(String, Option<String>, bool);

/// Integers: PostgreSQL's `count(*)` and BIGINT columns are INT8, but a computed value may
/// come back narrower.
impl Column for Option<i64> {
    fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, sqlx::Error> {
        row.try_get(column)
    }
    fn from_postgres(row: &PgRow, column: &str) -> Result<Self, sqlx::Error> {
        match postgres_type(row, column)?.as_str() {
            "INT4" => Ok(row.try_get::<Option<i32>, _>(column)?.map(i64::from)),
            "INT2" => Ok(row.try_get::<Option<i16>, _>(column)?.map(i64::from)),
            "NUMERIC" => Ok(numeric(row, column)?.map(|value| value as i64)),
            _ => row.try_get(column),
        }
    }
}

/// Numbers whatever their storage: SQLite keeps integral REALs as integers on disk (and an
/// operator's hand-written row may hold either); in PostgreSQL an aggregate of integers
/// is an integer.
impl Column for Option<f64> {
    fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, sqlx::Error> {
        row.try_get_unchecked(column)
    }
    fn from_postgres(row: &PgRow, column: &str) -> Result<Self, sqlx::Error> {
        match postgres_type(row, column)?.as_str() {
            "INT8" | "INT4" | "INT2" => {
                Ok(<Option<i64>>::from_postgres(row, column)?.map(|value| value as f64))
            }
            "FLOAT4" => Ok(row.try_get::<Option<f32>, _>(column)?.map(f64::from)),
            "NUMERIC" => numeric(row, column),
            _ => row.try_get(column),
        }
    }
}

macro_rules! required_column {
    ($($type:ty),*) => {$(
        impl Column for $type {
            fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, sqlx::Error> {
                required(column, Option::<$type>::from_sqlite(row, column)?)
            }
            fn from_postgres(row: &PgRow, column: &str) -> Result<Self, sqlx::Error> {
                required(column, Option::<$type>::from_postgres(row, column)?)
            }
        }
    )*};
}
required_column!(i64, f64);

fn required<T>(column: &str, value: Option<T>) -> Result<T, sqlx::Error> {
    value.ok_or_else(|| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: "unexpected NULL".into(),
    })
}

/// A NUMERIC value (what PostgreSQL's `sum` and `avg` of integers return) as the nearest
/// `f64`, from its binary form: digit count, weight, sign, scale, then base-10000 digits.
fn numeric(row: &PgRow, column: &str) -> Result<Option<f64>, sqlx::Error> {
    let value = row.try_get_raw(column)?;
    if value.is_null() {
        return Ok(None);
    }
    let bad = |detail: &str| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: detail.to_string().into(),
    };
    let bytes = value
        .as_bytes()
        .map_err(|_| bad("NUMERIC not in binary form"))?;
    let word = |index: usize| -> Result<i16, sqlx::Error> {
        bytes
            .get(index * 2..index * 2 + 2)
            .map(|pair| i16::from_be_bytes([pair[0], pair[1]]))
            .ok_or_else(|| bad("truncated NUMERIC"))
    };
    let (digits, weight, sign) = (word(0)?, word(1)?, word(2)? as u16);
    if sign == 0xC000 {
        return Ok(Some(f64::NAN));
    }
    // 0.DDDD... times 10^(4 * (weight + 1)), parsed so the result is correctly rounded.
    let mut text = String::from("0.");
    for index in 0..digits.max(0) as usize {
        text.push_str(&format!("{:04}", word(4 + index)?));
    }
    text.push_str(&format!("e{}", 4 * (i32::from(weight) + 1)));
    let number: f64 = text.parse().map_err(|_| bad("unreadable NUMERIC"))?;
    Ok(Some(if sign == 0x4000 { -number } else { number }))
}

fn postgres_type(row: &PgRow, column: &str) -> Result<String, sqlx::Error> {
    let value = row.try_get_raw(column)?;
    Ok(value.type_info().name().to_string())
}

/// A result row of either backend.
pub(super) trait StoreRow {
    /// The value of `column`, converted as [`Column`] converts it.
    fn value<T: Column>(&self, column: &str) -> Result<T, sqlx::Error>;
}

impl StoreRow for SqliteRow {
    fn value<T: Column>(&self, column: &str) -> Result<T, sqlx::Error> {
        T::from_sqlite(self, column)
    }
}

impl StoreRow for PgRow {
    fn value<T: Column>(&self, column: &str) -> Result<T, sqlx::Error> {
        T::from_postgres(self, column)
    }
}

/// A row of either backend, for code that collects rows in one place and reads them in
/// another.
pub(super) enum AnyRow {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl From<SqliteRow> for AnyRow {
    fn from(row: SqliteRow) -> Self {
        AnyRow::Sqlite(row)
    }
}

impl From<PgRow> for AnyRow {
    fn from(row: PgRow) -> Self {
        AnyRow::Postgres(row)
    }
}

impl StoreRow for AnyRow {
    fn value<T: Column>(&self, column: &str) -> Result<T, sqlx::Error> {
        match self {
            AnyRow::Sqlite(row) => row.value(column),
            AnyRow::Postgres(row) => row.value(column),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_parameters_become_numbered_ones() {
        for (sqlite, postgres) in [
            (
                "SELECT a FROM t WHERE b = ? AND c = ?",
                "SELECT a FROM t WHERE b = $1 AND c = $2",
            ),
            (
                "WHERE (?1 IS NULL OR x = ?1) AND y >= ?2",
                "WHERE ($1 IS NULL OR x = $1) AND y >= $2",
            ),
            ("VALUES (?3, ?, ?1)", "VALUES ($3, $4, $1)"),
            (
                "WHERE s = 'what?' AND t = ?",
                "WHERE s = 'what?' AND t = $1",
            ),
            ("ORDER BY at LIMIT ?", "ORDER BY at LIMIT NULLIF($1, -1)"),
            (
                "WHERE id > ? ORDER BY id LIMIT ?2",
                "WHERE id > $1 ORDER BY id LIMIT NULLIF($2, -1)",
            ),
        ] {
            assert_eq!(postgres_sql(sqlite), postgres, "{sqlite}");
        }
    }
}
