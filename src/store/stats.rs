//! `vastwatch db`: rows and bytes per table and index, the file size and the span of
//! stored samples (`db stats`), and online backups of SQLite files (`db backup`).

use std::collections::HashMap;
use std::path::Path;

use sqlx::{PgPool, SqlitePool};

use super::Store;
use super::backend::{Backend, StoreRow, with_pool};
use super::error::{StoreError, query_error};
use super::rows::{DbStats, TableSize};
use crate::time::Timestamp;

impl Store {
    /// Counts every table's rows and measures every table's and index's pages. Counting
    /// reads each table once, so on a large database this takes a while; it never writes.
    pub async fn db_stats(&self) -> Result<DbStats, StoreError> {
        let (objects, file_bytes) = match &self.backend {
            Backend::Sqlite(sqlite) => sqlite_objects(&sqlite.readers).await?,
            Backend::Postgres(postgres) => postgres_objects(&postgres.pool).await?,
        };
        let mut tables = Vec::new();
        for object in objects {
            let rows = if object.is_table {
                // The name comes from the catalogue and is quoted as an identifier.
                let sql = format!(
                    "SELECT count(*) FROM \"{}\"",
                    object.name.replace('"', "\"\"")
                );
                let rows: i64 = with_pool!(self, readers, |pool, dialect| {
                    sqlx::query_scalar(dialect.owned(sql))
                        .fetch_one(pool)
                        .await
                        .map_err(query_error(OPERATION))?
                });
                Some(rows.unsigned_abs())
            } else {
                None
            };
            tables.push(TableSize {
                name: object.name,
                table: object.table,
                rows,
                bytes: object.bytes,
            });
        }
        tables.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
        let (oldest, newest, oldest_rollup): (Option<f64>, Option<f64>, Option<f64>) =
            with_pool!(self, readers, |pool, dialect| {
                let row = sqlx::query(dialect.sql(
                    "SELECT (SELECT min(started_at) FROM polls WHERE outcome = 'ok') AS oldest, \
                     (SELECT max(started_at) FROM polls WHERE outcome = 'ok') AS newest, \
                     (SELECT min(bucket) FROM fleet_rollups) AS oldest_rollup",
                ))
                .fetch_one(pool)
                .await
                .map_err(query_error(OPERATION))?;
                let time = |column| row.value(column).map_err(query_error(OPERATION));
                (time("oldest")?, time("newest")?, time("oldest_rollup")?)
            });
        let time = |secs: Option<f64>| secs.map(Timestamp::from_unix_secs_f64);
        Ok(DbStats {
            tables,
            file_bytes,
            oldest_sample: time(oldest),
            newest_sample: time(newest),
            oldest_rollup: time(oldest_rollup),
        })
    }

    /// Writes a consistent, compacted copy of the database to `target` with SQLite's
    /// `VACUUM INTO`, on a read connection, so the daemon keeps writing meanwhile. Fails
    /// when `target` already exists rather than overwrite it. A PostgreSQL database is
    /// backed up with the server's own tools.
    pub async fn backup_to(&self, target: &Path) -> Result<(), StoreError> {
        let readers = match &self.backend {
            Backend::Sqlite(sqlite) => &sqlite.readers,
            Backend::Postgres(_) => {
                return Err(StoreError::NotOnPostgres {
                    operation: "`db backup`",
                    hint: "back up a PostgreSQL database with `pg_dump` (or the server's \
                           continuous archiving), which copies it consistently while \
                           vastwatch runs",
                });
            }
        };
        let refuse = |reason| StoreError::BackupTarget {
            path: target.to_path_buf(),
            reason,
        };
        if target.exists() {
            return Err(refuse("it already exists; choose a new file"));
        }
        let path = target
            .to_str()
            .ok_or_else(|| refuse("the path is not UTF-8"))?;
        sqlx::query("VACUUM INTO ?")
            .bind(path)
            .execute(readers)
            .await
            .map_err(query_error("backing up the database"))?;
        Ok(())
    }
}

/// A table or index as the catalogue lists it.
struct StoredObject {
    name: String,
    table: String,
    is_table: bool,
    bytes: Option<u64>,
}

const OPERATION: &str = "measuring the database";

/// Tables and indexes from `sqlite_schema`, sized by `dbstat` where SQLite has it, and the
/// file's size.
async fn sqlite_objects(pool: &SqlitePool) -> Result<(Vec<StoredObject>, u64), StoreError> {
    let objects: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT type, name, tbl_name FROM sqlite_schema \
         WHERE type IN ('table', 'index') AND rootpage > 0 ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .map_err(query_error(OPERATION))?;
    // dbstat is a compile-time option of SQLite; without it sizes stay unknown.
    let sizes: Option<HashMap<String, i64>> =
        sqlx::query_as("SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name")
            .fetch_all(pool)
            .await
            .ok()
            .map(|rows: Vec<(String, i64)>| rows.into_iter().collect());
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(pool)
        .await
        .map_err(query_error(OPERATION))?;
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(pool)
        .await
        .map_err(query_error(OPERATION))?;
    let objects = objects
        .into_iter()
        .map(|(kind, name, table)| StoredObject {
            bytes: sizes
                .as_ref()
                .map(|sizes| sizes.get(&name).copied().unwrap_or(0).unsigned_abs()),
            is_table: kind == "table",
            name,
            table,
        })
        .collect();
    Ok((objects, (pages * page_size).unsigned_abs()))
}

/// Tables and indexes of the current schema with their sizes on disk (a table's TOAST
/// included, its indexes apart), and the sum of them all.
async fn postgres_objects(pool: &PgPool) -> Result<(Vec<StoredObject>, u64), StoreError> {
    let rows: Vec<(String, String, bool, i64)> = sqlx::query_as(
        "SELECT c.relname::text, coalesce(t.relname, c.relname)::text, c.relkind = 'r', \
         CASE WHEN c.relkind = 'r' THEN pg_table_size(c.oid) ELSE pg_relation_size(c.oid) END \
         FROM pg_class AS c \
         JOIN pg_namespace AS n ON n.oid = c.relnamespace \
         LEFT JOIN pg_index AS i ON i.indexrelid = c.oid \
         LEFT JOIN pg_class AS t ON t.oid = i.indrelid \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i') \
         ORDER BY c.relname",
    )
    .fetch_all(pool)
    .await
    .map_err(query_error(OPERATION))?;
    let total = rows.iter().map(|row| row.3.unsigned_abs()).sum();
    let objects = rows
        .into_iter()
        .map(|(name, table, is_table, bytes)| StoredObject {
            name,
            table,
            is_table,
            bytes: Some(bytes.unsigned_abs()),
        })
        .collect();
    Ok((objects, total))
}
