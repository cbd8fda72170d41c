//! `vastwatch db`: rows and bytes per table and index, the file size and the span of
//! stored samples (`db stats`), and online backups (`db backup`).

use std::collections::HashMap;
use std::path::Path;

use sqlx::Row;

use super::Store;
use super::error::{StoreError, query_error};
use super::rows::{DbStats, TableSize};
use crate::time::Timestamp;

impl Store {
    /// Counts every table's rows and measures every table's and index's pages. Counting
    /// reads each table once, so on a large database this takes a while; it never writes.
    pub async fn db_stats(&self) -> Result<DbStats, StoreError> {
        const OPERATION: &str = "measuring the database";
        let objects = sqlx::query(
            "SELECT type, name, tbl_name FROM sqlite_schema \
             WHERE type IN ('table', 'index') AND rootpage > 0 ORDER BY name",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(query_error(OPERATION))?;
        // dbstat is a compile-time option of SQLite; without it sizes stay unknown.
        let sizes: Option<HashMap<String, i64>> =
            sqlx::query("SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name")
                .fetch_all(&self.readers)
                .await
                .ok()
                .map(|rows| {
                    rows.iter()
                        .filter_map(|row| {
                            Some((row.try_get("name").ok()?, row.try_get("bytes").ok()?))
                        })
                        .collect()
                });
        let mut tables = Vec::new();
        for object in &objects {
            let kind: String = object.try_get("type").map_err(query_error(OPERATION))?;
            let name: String = object.try_get("name").map_err(query_error(OPERATION))?;
            let table: String = object.try_get("tbl_name").map_err(query_error(OPERATION))?;
            let rows = if kind == "table" {
                // The name comes from sqlite_schema and is quoted as an identifier.
                let sql = format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\""));
                let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&self.readers)
                    .await
                    .map_err(query_error(OPERATION))?;
                Some(rows.unsigned_abs())
            } else {
                None
            };
            let bytes = sizes
                .as_ref()
                .map(|sizes| sizes.get(&name).copied().unwrap_or(0).unsigned_abs());
            tables.push(TableSize {
                name,
                table,
                rows,
                bytes,
            });
        }
        tables.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&self.readers)
            .await
            .map_err(query_error(OPERATION))?;
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&self.readers)
            .await
            .map_err(query_error(OPERATION))?;
        let span = sqlx::query(
            "SELECT (SELECT min(started_at) FROM polls WHERE outcome = 'ok') AS oldest, \
             (SELECT max(started_at) FROM polls WHERE outcome = 'ok') AS newest, \
             (SELECT min(bucket) FROM fleet_rollups) AS oldest_rollup",
        )
        .fetch_one(&self.readers)
        .await
        .map_err(query_error(OPERATION))?;
        let time = |column: &str| -> Result<Option<Timestamp>, StoreError> {
            let secs: Option<f64> = span
                .try_get_unchecked(column)
                .map_err(query_error(OPERATION))?;
            Ok(secs.map(Timestamp::from_unix_secs_f64))
        };
        Ok(DbStats {
            tables,
            file_bytes: (pages * page_size).unsigned_abs(),
            oldest_sample: time("oldest")?,
            newest_sample: time("newest")?,
            oldest_rollup: time("oldest_rollup")?,
        })
    }

    /// Writes a consistent, compacted copy of the database to `target` with SQLite's
    /// `VACUUM INTO`, on a read connection, so the daemon keeps writing meanwhile. Fails
    /// when `target` already exists rather than overwrite it.
    pub async fn backup_to(&self, target: &Path) -> Result<(), StoreError> {
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
            .execute(&self.readers)
            .await
            .map_err(query_error("backing up the database"))?;
        Ok(())
    }
}
