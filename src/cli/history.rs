//! `vastwatch history`: stored fleet rows, or one worker's rows, as a table, JSON or CSV.

use clap::Args;
use serde_json::{Value, json};

use super::output::{Format, Rows};
use super::{CliError, ConfigArg, ExitStatus, load_config_offline};
use crate::clock::Clock;
use crate::model::Field;
use crate::store::{FleetHistoryRow, HistoryFilter, Store, WorkerRow};
use crate::time::{Timestamp, parse_time_or_ago};

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only this target.
    #[arg(long)]
    pub target: Option<String>,
    /// One worker's samples (worker_samples rows) instead of fleet rows.
    #[arg(long)]
    pub worker: Option<i64>,
    /// Start: RFC 3339, or an age such as 1h or 30m.
    #[arg(long)]
    pub since: Option<String>,
    /// End: RFC 3339, or an age such as 10m.
    #[arg(long)]
    pub until: Option<String>,
    /// Only the latest N rows.
    #[arg(long)]
    pub limit: Option<u32>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub async fn history(args: HistoryArgs) -> Result<ExitStatus, CliError> {
    let config = load_config_offline(&args.config)?;
    let now = Clock::real().now();
    let parse = |text: &Option<String>, flag: &str| -> Result<Option<Timestamp>, CliError> {
        text.as_deref()
            .map(|text| parse_time_or_ago(text, now))
            .transpose()
            .map_err(|message| CliError::bad_input(format!("{flag}: {message}")))
    };
    let filter = HistoryFilter {
        target: args.target.clone(),
        since: parse(&args.since, "--since")?,
        until: parse(&args.until, "--until")?,
        limit: args.limit,
    };
    if config.database.is_missing() {
        return Err(CliError::runtime(format!(
            "database `{}` does not exist yet; run `vastwatch run` or `vastwatch poll-once` first",
            config.database
        )));
    }
    let store = Store::open(&config.database).await?;
    let rows = match args.worker {
        Some(worker_id) => worker_rows(&store.worker_history(&filter, worker_id).await?),
        None => fleet_rows(&store.fleet_timeline(&filter).await?),
    };
    store.close().await?;
    print!("{}", rows.render(args.format));
    Ok(ExitStatus::Success)
}

fn number(value: Option<f64>) -> Value {
    value.map_or(Value::Null, |value| json!(value))
}

/// Fleet rows with the `fleet_samples` view's columns, then how fine each row is (`raw`,
/// or `5m` for a rollup, whose numbers are the bucket's averages) and how many polls it
/// stands for.
pub fn fleet_rows(rows: &[FleetHistoryRow]) -> Rows {
    let mut out = Rows::new(vec![
        "polled_at",
        "target",
        "workers",
        "ready",
        "starting",
        "inactive",
        "failed",
        "load",
        "load_rolling",
        "perf",
        "reqs_working",
        "utilization",
        "resolution",
        "polls",
    ]);
    for row in rows {
        let values = &row.avg;
        out.push(vec![
            json!(row.at.to_rfc3339()),
            json!(row.target),
            count(values.workers),
            count(values.ready),
            count(values.starting),
            count(values.inactive),
            count(values.failed),
            number(values.load),
            number(values.load_rolling),
            number(values.perf),
            number(values.reqs_working),
            number(values.utilization),
            json!(row.resolution.as_str()),
            json!(row.polls),
        ]);
    }
    out
}

/// A worker count: an integer in a raw row, a fraction only when a bucket averaged one.
fn count(value: Option<f64>) -> Value {
    match value {
        Some(value) if value.fract() == 0.0 && value.abs() < 1e15 => json!(value as i64),
        other => number(other),
    }
}

/// Worker rows with the `worker_samples` table's columns.
pub fn worker_rows(rows: &[WorkerRow]) -> Rows {
    let mut columns = vec!["polled_at", "target", "worker_id", "status"];
    columns.extend(Field::ALL.iter().map(|field| field.name()));
    columns.push("extra");
    let mut out = Rows::new(columns);
    for row in rows {
        let sample = &row.sample;
        let mut cells = vec![
            json!(row.polled_at.to_rfc3339()),
            json!(row.target),
            json!(sample.worker_id),
            sample.status.as_ref().map_or(Value::Null, |s| json!(s)),
        ];
        cells.extend(Field::ALL.iter().map(|field| number(sample.get(*field))));
        cells.push(sample.extra.as_ref().map_or(Value::Null, |extra| {
            json!(Value::Object(extra.clone()).to_string())
        }));
        out.push(cells);
    }
    out
}
