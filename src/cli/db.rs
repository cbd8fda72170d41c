//! `vastwatch db`: database tools. `db stats` prints rows and bytes per table and index,
//! the file size, and the span of stored samples and rollups; `db backup` writes an online
//! copy of a SQLite file; `db copy` moves everything from one database to another, SQLite
//! or PostgreSQL either way.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::output::{Format, Rows};
use super::{CliError, ConfigArg, ExitStatus, load_config_offline};
use crate::config::Database;
use crate::store::{CopyProgress, DbStats, Store};
use crate::time::Timestamp;

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Rows and size of every table and index, and the oldest and newest sample.
    Stats(StatsArgs),
    /// Write a consistent copy of the database (SQLite's VACUUM INTO) while the daemon
    /// runs.
    Backup(BackupArgs),
    /// Copy history, alert state, recommendations, notifications and silences from one
    /// database to another (SQLite or PostgreSQL, either way). Stop the daemon first.
    Copy(CopyArgs),
}

/// Each side is a SQLite file (or `sqlite:` URL) or a `postgres://` URL. A URL with a
/// password must come from the environment (`--from-env` / `--to-env`), never from argv.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The database to copy from.
    #[arg(
        long,
        required_unless_present = "from_env",
        conflicts_with = "from_env"
    )]
    pub from: Option<String>,
    /// An environment variable holding the database to copy from.
    #[arg(long, value_name = "VAR")]
    pub from_env: Option<String>,
    /// The database to copy into; it must hold no history yet (it is created if missing).
    #[arg(long, required_unless_present = "to_env", conflicts_with = "to_env")]
    pub to: Option<String>,
    /// An environment variable holding the database to copy into.
    #[arg(long, value_name = "VAR")]
    pub to_env: Option<String>,
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
        DbCommand::Copy(args) => copy(args).await,
    }
}

async fn copy(args: CopyArgs) -> Result<ExitStatus, CliError> {
    let from = copy_side("from", args.from.as_deref(), args.from_env.as_deref())?;
    let to = copy_side("to", args.to.as_deref(), args.to_env.as_deref())?;
    if from.is_missing() {
        return Err(CliError::bad_input(format!(
            "--from: database `{from}` does not exist"
        )));
    }
    let source = Store::open(&from).await?;
    let destination = Store::open(&to).await?;
    let bar = copy_progress_bar();
    let report = source
        .copy_to(&destination, |progress: CopyProgress| match &bar {
            Some(bar) => {
                bar.set_length(progress.total.max(1));
                bar.set_position(progress.copied);
                bar.set_message(progress.table);
            }
            None => eprintln!(
                "{}: {} of {} rows",
                progress.table, progress.copied, progress.total
            ),
        })
        .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = report?;
    source.close().await?;
    destination.close().await?;
    let rows: u64 = report.tables.iter().map(|(_, rows)| rows).sum();
    println!(
        "copied {rows} rows in {} tables from {from} to {to}",
        report.tables.len()
    );
    Ok(ExitStatus::Success)
}

/// One side of `db copy`, from its flag or from the variable its `-env` flag names.
fn copy_side(
    side: &str,
    value: Option<&str>,
    variable: Option<&str>,
) -> Result<Database, CliError> {
    let bad = |message: String| CliError::bad_input(message);
    let (text, from_env) = match (value, variable) {
        (Some(text), _) => (text.to_string(), false),
        (None, Some(variable)) => match std::env::var(variable) {
            Ok(text) if !text.trim().is_empty() => (text, true),
            _ => {
                return Err(bad(format!(
                    "--{side}-env: environment variable `{variable}` is not set"
                )));
            }
        },
        (None, None) => return Err(bad(format!("give --{side} or --{side}-env"))),
    };
    let database = Database::parse(&text, Path::new("")).map_err(|message| {
        bad(if from_env {
            format!("--{side}-env: the variable's value {message}")
        } else {
            format!("--{side}: {message}")
        })
    })?;
    if let Database::Postgres(url) = &database
        && url.has_password()
        && !from_env
    {
        return Err(bad(format!(
            "--{side}: the URL carries a password, which must not be on the command line; \
             put the URL in an environment variable and pass --{side}-env VAR"
        )));
    }
    Ok(database)
}

/// A progress bar on stderr when it is a terminal; none when piped.
fn copy_progress_bar() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(1);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("copying {msg:20} {bar:40} {pos}/{len} rows")
    {
        bar.set_style(style);
    }
    Some(bar)
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
