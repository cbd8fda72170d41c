//! `vastwatch db`: database tools. `db stats` prints rows and bytes per table and index,
//! the file size, and the span of stored samples and rollups; `db backup` writes an online
//! copy.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::output::{Format, Rows};
use super::{CliError, ConfigArg, ExitStatus, load_config_offline};
use crate::store::{DbStats, Store};
use crate::time::Timestamp;

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Rows and size of every table and index, and the oldest and newest sample.
    Stats(StatsArgs),
    /// Write a consistent copy of the database (SQLite's VACUUM INTO) while the daemon
    /// runs.
    Backup(BackupArgs),
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The new file to write; it must not exist yet.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub async fn db(command: DbCommand) -> Result<ExitStatus, CliError> {
    match command {
        DbCommand::Stats(args) => stats(args).await,
        DbCommand::Backup(args) => backup(args).await,
    }
}

async fn backup(args: BackupArgs) -> Result<ExitStatus, CliError> {
    let store = open_database(&args.config).await?;
    store.backup_to(&args.file).await?;
    store.close().await?;
    println!("backed up to {}", args.file.display());
    Ok(ExitStatus::Success)
}

/// Opens the config's database, which must exist. Opened for writing so an older file
/// gains the newest tables first; the commands here write nothing else.
async fn open_database(config: &ConfigArg) -> Result<Store, CliError> {
    let config = load_config_offline(config)?;
    if config.database.is_missing() {
        return Err(CliError::runtime(format!(
            "database `{}` does not exist yet; run `vastwatch run` or `vastwatch poll-once` first",
            config.database
        )));
    }
    Ok(Store::open(&config.database).await?)
}

async fn stats(args: StatsArgs) -> Result<ExitStatus, CliError> {
    let store = open_database(&args.config).await?;
    let stats = store.db_stats().await?;
    store.close().await?;
    print!("{}", render(&stats, args.format));
    Ok(ExitStatus::Success)
}

fn render(stats: &DbStats, format: Format) -> String {
    let mut rows = Rows::new(vec!["name", "table", "kind", "rows", "bytes"]);
    for table in &stats.tables {
        let kind = if table.rows.is_some() {
            "table"
        } else {
            "index"
        };
        rows.push(vec![
            json!(table.name),
            json!(table.table),
            json!(kind),
            table.rows.map_or(Value::Null, |rows| json!(rows)),
            table.bytes.map_or(Value::Null, |bytes| json!(bytes)),
        ]);
    }
    let time = |at: Option<Timestamp>| at.map_or(Value::Null, |at| json!(at.to_rfc3339()));
    match format {
        Format::Json => {
            let tables: Value = serde_json::from_str(&rows.render(Format::Json))
                .unwrap_or_else(|_| Value::Array(Vec::new()));
            let mut out = serde_json::to_string_pretty(&json!({
                "file_bytes": stats.file_bytes,
                "oldest_sample": time(stats.oldest_sample),
                "newest_sample": time(stats.newest_sample),
                "oldest_rollup": time(stats.oldest_rollup),
                "tables": tables,
            }))
            .unwrap_or_default();
            out.push('\n');
            out
        }
        Format::Csv => rows.render(Format::Csv),
        Format::Table => {
            let mut out = rows.render(Format::Table);
            let shown = |at: Option<Timestamp>| at.map_or("-".to_string(), |at| at.to_rfc3339());
            out.push_str(&format!(
                "\nfile:           {} bytes\noldest sample:  {}\nnewest sample:  {}\noldest rollup:  {}\n",
                stats.file_bytes,
                shown(stats.oldest_sample),
                shown(stats.newest_sample),
                shown(stats.oldest_rollup)
            ));
            out
        }
    }
}
