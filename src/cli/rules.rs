//! `vastwatch test`, `vastwatch alerts` and `vastwatch replay`: rule unit tests, stored
//! alert instances, and the timeline rules would have produced over stored history.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use super::output::{Format, Rows};
use super::{CliError, ConfigArg, ExitStatus, load_config_offline};
use crate::clock::Clock;
use crate::daemon::{load_rule_files, load_rules, new_engine};
use crate::rules::unittest::run_test_files;
use crate::rules::{AlertRecord, AlertState};
use crate::store::{AlertFilter, Store, StoreOptions};
use crate::time::{Timestamp, parse_time_or_ago};

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Rule test files (promtool-style; see docs/rules.md).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn test(args: TestArgs) -> Result<ExitStatus, CliError> {
    let report = run_test_files(&args.files, &crate::rules::identifiers())
        .map_err(|error| CliError::bad_input(error.to_string()))?;
    print!("{}", report.output);
    Ok(if report.failed == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::ProblemsFound
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    Firing,
    Pending,
    Resolved,
    Inactive,
    All,
}

#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Which alert instances to list.
    #[arg(long, value_enum, default_value = "all")]
    pub state: StateArg,
    /// Only instances evaluated since: RFC 3339, or an age such as 1h.
    #[arg(long)]
    pub since: Option<String>,
    /// Only this target's alerts.
    #[arg(long)]
    pub target: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub(super) fn parse_time(
    text: Option<&str>,
    flag: &str,
    now: Timestamp,
) -> Result<Option<Timestamp>, CliError> {
    text.map(|text| parse_time_or_ago(text, now))
        .transpose()
        .map_err(|message| CliError::bad_input(format!("{flag}: {message}")))
}

pub(super) async fn open_existing(config: &crate::config::Config) -> Result<Store, CliError> {
    if config.database.is_missing() {
        return Err(CliError::runtime(format!(
            "database `{}` does not exist yet; run `vastwatch run` or `vastwatch poll-once` first",
            config.database
        )));
    }
    Ok(Store::open_with(StoreOptions::read_only(&config.database)).await?)
}

pub async fn alerts(args: AlertsArgs) -> Result<ExitStatus, CliError> {
    let config = load_config_offline(&args.config)?;
    let now = Clock::real().now();
    let filter = AlertFilter {
        state: match args.state {
            StateArg::Firing => Some(AlertState::Firing),
            StateArg::Pending => Some(AlertState::Pending),
            StateArg::Resolved => Some(AlertState::Resolved),
            StateArg::Inactive => Some(AlertState::Inactive),
            StateArg::All => None,
        },
        since: parse_time(args.since.as_deref(), "--since", now)?,
        target: args.target.clone(),
    };
    let store = open_existing(&config).await?;
    let alerts = store.alerts(&filter).await?;
    store.close().await?;
    print!("{}", alert_rows(&alerts, args.format).render(args.format));
    Ok(ExitStatus::Success)
}

fn time(value: Option<Timestamp>) -> Value {
    value.map_or(Value::Null, |t| json!(t.to_rfc3339()))
}

/// Alert instances as rows; JSON carries labels and annotations whole, the table and CSV
/// the summary only.
pub fn alert_rows(alerts: &[AlertRecord], format: Format) -> Rows {
    let mut columns = vec![
        "fingerprint",
        "alertname",
        "target",
        "worker_id",
        "severity",
        "state",
        "active_at",
        "fired_at",
        "resolved_at",
        "value",
    ];
    if format == Format::Json {
        columns.extend(["labels", "annotations"]);
    } else {
        columns.push("summary");
    }
    let mut rows = Rows::new(columns);
    for alert in alerts {
        let mut cells = vec![
            json!(alert.fingerprint),
            json!(alert.alertname),
            json!(alert.target),
            alert
                .worker_id
                .map_or(Value::Null, |id| json!(id.to_string())),
            json!(alert.severity.as_str()),
            json!(alert.lifecycle.state.as_str()),
            time(alert.lifecycle.active_at),
            time(alert.lifecycle.fired_at),
            time(alert.lifecycle.resolved_at),
            alert.value.map_or(Value::Null, |v| json!(v)),
        ];
        if format == Format::Json {
            cells.push(json!(alert.labels));
            cells.push(json!(alert.annotations));
        } else {
            cells.push(
                alert
                    .annotations
                    .get("summary")
                    .map_or(Value::Null, |summary| json!(summary)),
            );
        }
        rows.push(cells);
    }
    rows
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Start: RFC 3339, or an age such as 24h. Default: the oldest stored poll.
    #[arg(long)]
    pub from: Option<String>,
    /// End: RFC 3339, or an age. Default: now.
    #[arg(long)]
    pub to: Option<String>,
    /// Rule files to replay instead of the config's `rules`.
    #[arg(long, num_args = 1..)]
    pub rules: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub async fn replay(args: ReplayArgs) -> Result<ExitStatus, CliError> {
    let config = load_config_offline(&args.config)?;
    let rules = if args.rules.is_empty() {
        load_rules(&config)
    } else {
        load_rule_files(&config, &args.rules)
    }
    .map_err(|error| CliError::bad_input(error.to_string()))?;
    let now = Clock::real().now();
    let store = open_existing(&config).await?;
    let from = match parse_time(args.from.as_deref(), "--from", now)? {
        Some(from) => from,
        None => store.oldest_poll().await?.unwrap_or(now),
    };
    let to = parse_time(args.to.as_deref(), "--to", now)?.unwrap_or(now);
    let mut engine = new_engine(&config, rules, now);
    let progress = progress_bar(from, to);
    let report = crate::replay::replay(&store, &mut engine, from, to, |reached| {
        if let Some(progress) = &progress {
            progress.set_position(reached.duration_since(from).as_secs());
        }
    })
    .await?;
    if let Some(progress) = progress {
        progress.finish_and_clear();
    }
    // One timeline: alert transitions and recommendation changes, in time order.
    let mut rows = Rows::new(vec![
        "at",
        "event",
        "target",
        "alertname",
        "worker_id",
        "from",
        "to",
        "value",
        "detail",
    ]);
    let mut events: Vec<(Timestamp, Vec<Value>)> = Vec::new();
    for (alert, transition) in &report.transitions {
        events.push((
            transition.at,
            vec![
                json!(transition.at.to_rfc3339()),
                json!("alert"),
                json!(alert.target),
                json!(alert.alertname),
                alert
                    .worker_id
                    .map_or(Value::Null, |id| json!(id.to_string())),
                json!(transition.from.as_str()),
                json!(transition.to.as_str()),
                alert.value.map_or(Value::Null, |v| json!(v)),
                alert
                    .annotations
                    .get("summary")
                    .map_or(Value::Null, |s| json!(s)),
            ],
        ));
    }
    for (target, at, recommendation) in &report.recommendations {
        events.push((
            *at,
            vec![
                json!(at.to_rfc3339()),
                json!("recommendation"),
                json!(target),
                Value::Null,
                Value::Null,
                Value::Null,
                json!(recommendation.action.as_str()),
                json!(recommendation.desired_workers),
                json!(recommendation.reason),
            ],
        ));
    }
    // Stable: an alert and a recommendation at the same poll keep alert first.
    events.sort_by_key(|(at, _)| *at);
    for (_, row) in events {
        rows.push(row);
    }
    store.close().await?;
    print!("{}", rows.render(args.format));
    Ok(ExitStatus::Success)
}

/// A progress bar on stderr when it is a terminal; none when piped.
fn progress_bar(from: Timestamp, to: Timestamp) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(to.duration_since(from).as_secs().max(1));
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "replaying {bar:40} {percent}% of the range ({eta} left)",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}
