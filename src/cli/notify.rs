//! `vastwatch notifications`, `vastwatch silence add|list|expire` and
//! `vastwatch notify test`.

use std::collections::BTreeMap;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::output::{Format, Rows};
use super::rules::{open_existing, parse_time};
use super::{CliError, ConfigArg, ExitStatus, load_config, load_config_offline};
use crate::clock::Clock;
use crate::notify::group::message_alert;
use crate::notify::notifier::new_id;
use crate::notify::send::{ConsoleOut, Outcome, Sender};
use crate::notify::silence::{SilenceField, SilenceRequest};
use crate::notify::{AlertSnapshot, AlertStatus, Extra, Message, Reason, Silence};
use crate::store::{AttemptRecord, NewNotification, NotificationFilter, NotificationStatus, Store};
use crate::time::Timestamp;

#[derive(Debug, Args)]
pub struct NotificationsArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[arg(long, value_enum, default_value = "all")]
    pub status: StatusArg,
    /// Only this receiver's notifications.
    #[arg(long)]
    pub receiver: Option<String>,
    /// Only notifications created since: RFC 3339 or an age such as `1h`.
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many rows, newest first.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Print each notification's payload (JSON format only).
    #[arg(long)]
    pub payload: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    Pending,
    Delivered,
    Failed,
    All,
}

pub async fn notifications(args: NotificationsArgs) -> Result<ExitStatus, CliError> {
    let config = load_config_offline(&args.config)?;
    let now = Clock::real().now();
    let filter = NotificationFilter {
        status: match args.status {
            StatusArg::Pending => Some(NotificationStatus::Pending),
            StatusArg::Delivered => Some(NotificationStatus::Delivered),
            StatusArg::Failed => Some(NotificationStatus::Failed),
            StatusArg::All => None,
        },
        receiver: args.receiver.clone(),
        since: parse_time(args.since.as_deref(), "--since", now)?,
        limit: Some(args.limit),
    };
    let store = open_existing(&config).await?;
    let rows = store.notifications(&filter).await?;
    store.close().await?;
    let mut columns = vec![
        "id",
        "receiver",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "delivered_at",
        "reason",
        "alerts",
        "last_error",
        "group_key",
    ];
    if args.payload && args.format == Format::Json {
        columns.push("payload");
    }
    let mut out = Rows::new(columns);
    for row in rows {
        let message: Option<Message> = serde_json::from_str(&row.payload).ok();
        let time = |at: Option<Timestamp>| at.map_or(Value::Null, |at| json!(at.to_rfc3339()));
        let mut cells = vec![
            json!(row.id),
            json!(row.receiver),
            json!(row.status.as_str()),
            json!(row.attempts),
            time(Some(row.created_at)),
            time(row.next_attempt_at),
            time(row.delivered_at),
            message
                .as_ref()
                .map_or(Value::Null, |m| json!(m.vastwatch.reason.as_str())),
            message.as_ref().map_or(Value::Null, |m| json!(m.title())),
            row.last_error.map_or(Value::Null, Value::String),
            json!(row.group_key),
        ];
        if args.payload && args.format == Format::Json {
            cells.push(serde_json::from_str(&row.payload).unwrap_or(Value::Null));
        }
        out.push(cells);
    }
    print!("{}", out.render(args.format));
    Ok(ExitStatus::Success)
}

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Mute notifications of alerts matching every --match for a time. Prints the id.
    Add(SilenceAddArgs),
    /// List silences that have not ended (all with --all).
    List(SilenceListArgs),
    /// End a silence now.
    Expire(SilenceExpireArgs),
}

#[derive(Debug, Args)]
pub struct SilenceAddArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// A label matcher: name=value, name!=value, name=~regex or name!~regex. Repeatable.
    #[arg(long = "match", required = true)]
    pub matchers: Vec<String>,
    /// How long the silence lasts, e.g. `2h`.
    #[arg(long = "for")]
    pub duration: String,
    /// Why.
    #[arg(long, default_value = "")]
    pub comment: String,
    /// When it starts: RFC 3339; default now.
    #[arg(long)]
    pub start: Option<String>,
    /// Who made it; default $USER.
    #[arg(long, env = "USER", default_value = "unknown")]
    pub author: String,
}

#[derive(Debug, Args)]
pub struct SilenceListArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Include expired silences.
    #[arg(long)]
    pub all: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct SilenceExpireArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The silence's id.
    pub id: String,
}

pub async fn silence(command: SilenceCommand) -> Result<ExitStatus, CliError> {
    let now = Clock::real().now();
    match command {
        SilenceCommand::Add(args) => {
            let config = load_config_offline(&args.config)?;
            let silence = new_silence(&args, now)?;
            let store = Store::open(&config.database).await?;
            store.insert_silence(&silence, now).await?;
            store.close().await?;
            println!("{}", silence.id);
            Ok(ExitStatus::Success)
        }
        SilenceCommand::List(args) => {
            let config = load_config_offline(&args.config)?;
            let store = open_existing(&config).await?;
            let silences = store.silences(now, args.all).await?;
            store.close().await?;
            let mut rows = Rows::new(vec![
                "id",
                "state",
                "matchers",
                "starts_at",
                "ends_at",
                "created_by",
                "comment",
            ]);
            for silence in silences {
                let matchers: Vec<String> =
                    silence.matchers.iter().map(ToString::to_string).collect();
                rows.push(vec![
                    json!(silence.id),
                    json!(silence.state(now)),
                    match args.format {
                        Format::Json => json!(silence.matchers),
                        Format::Table | Format::Csv => json!(matchers.join(", ")),
                    },
                    json!(silence.starts_at.to_rfc3339()),
                    json!(silence.ends_at.to_rfc3339()),
                    json!(silence.created_by),
                    json!(silence.comment),
                ]);
            }
            print!("{}", rows.render(args.format));
            Ok(ExitStatus::Success)
        }
        SilenceCommand::Expire(args) => {
            let config = load_config_offline(&args.config)?;
            let store = Store::open(&config.database).await?;
            let expired = store.expire_silence(&args.id, now).await?;
            store.close().await?;
            if expired {
                println!("silence {} expired", args.id);
                Ok(ExitStatus::Success)
            } else {
                Err(CliError::bad_input(format!(
                    "no silence `{}` is in force (`vastwatch silence list --all` shows them all)",
                    args.id
                )))
            }
        }
    }
}

/// A silence from `silence add` arguments, checked as the HTTP API checks its body.
fn new_silence(args: &SilenceAddArgs, now: Timestamp) -> Result<Silence, CliError> {
    let request = SilenceRequest {
        matchers: args.matchers.clone(),
        duration: Some(args.duration.clone()),
        ends_at: None,
        starts_at: args.start.clone(),
        comment: args.comment.clone(),
        created_by: args.author.clone(),
    };
    request.build(now).map_err(|(field, message)| {
        let flag = match field {
            SilenceField::Matchers => "--match",
            SilenceField::Duration | SilenceField::EndsAt => "--for",
            SilenceField::StartsAt => "--start",
        };
        CliError::bad_input(format!("{flag}: {message}"))
    })
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a test notification to one receiver through the real delivery path and
    /// report its answer. Exit 0 if delivered, 1 if not.
    Test(NotifyTestArgs),
}

#[derive(Debug, Args)]
pub struct NotifyTestArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The receiver's name.
    pub receiver: String,
}

pub async fn notify(command: NotifyCommand) -> Result<ExitStatus, CliError> {
    let NotifyCommand::Test(args) = command;
    let config = load_config(&args.config)?;
    let Some(receiver) = config.notify.receiver(&args.receiver).cloned() else {
        let names: Vec<&str> = config
            .notify
            .receivers
            .iter()
            .map(|receiver| receiver.name.as_str())
            .collect();
        return Err(CliError::bad_input(format!(
            "no receiver is named `{}`; the config has: {}",
            args.receiver,
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    };
    let now = Clock::real().now();
    let message = test_message(&receiver.name, &config.notify.external_url, now);
    let id = new_id(now);
    let store = Store::open(&config.database).await?;
    store
        .insert_notification(
            &NewNotification {
                id: id.clone(),
                receiver: receiver.name.clone(),
                group_key: message.group_key.clone(),
                payload: serde_json::to_string(&message).unwrap_or_default(),
            },
            now,
        )
        .await?;
    let sender = Sender::new(ConsoleOut::Stdout).map_err(|e| CliError::runtime(e.to_string()))?;
    let outcome = sender.send(&receiver, &id, &message, now).await;
    // A test is tried once: a retryable failure is recorded as failed, not left queued.
    let (record, status, answer) = match &outcome {
        Outcome::Delivered { detail } => (
            AttemptRecord::Delivered {
                id: id.clone(),
                at: Clock::real().now(),
            },
            ExitStatus::Success,
            format!("delivered: {detail}"),
        ),
        Outcome::Retry { error, .. } => (
            AttemptRecord::Failed {
                id: id.clone(),
                error: error.clone(),
            },
            ExitStatus::ProblemsFound,
            format!("not delivered (would be retried): {error}"),
        ),
        Outcome::Failed { error } => (
            AttemptRecord::Failed {
                id: id.clone(),
                error: error.clone(),
            },
            ExitStatus::ProblemsFound,
            format!("not delivered (permanent): {error}"),
        ),
    };
    store.record_attempts(&[record]).await?;
    store.close().await?;
    println!(
        "{} ({}), notification {id}: {answer}",
        receiver.name,
        receiver.kind.as_str()
    );
    Ok(status)
}

/// The message `notify test` sends: one firing alert that says what it is.
pub fn test_message(receiver: &str, external_url: &str, now: Timestamp) -> Message {
    let labels: BTreeMap<String, String> = [
        ("alertname", "VastwatchTest"),
        ("target", "vastwatch"),
        ("severity", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let snapshot = AlertSnapshot {
        fingerprint: crate::rules::labels::fingerprint(&labels),
        status: AlertStatus::Firing,
        labels: labels.clone(),
        annotations: [(
            "summary".to_string(),
            format!("A test notification from `vastwatch notify test {receiver}`."),
        )]
        .into(),
        starts_at: now,
        ends_at: None,
    };
    Message {
        version: "4".to_string(),
        group_key: "vastwatch:test".to_string(),
        truncated_alerts: 0,
        status: AlertStatus::Firing,
        receiver: receiver.to_string(),
        group_labels: labels.clone(),
        common_labels: labels,
        common_annotations: snapshot.annotations.clone(),
        external_url: external_url.to_string(),
        alerts: vec![message_alert(&snapshot, external_url)],
        vastwatch: Extra {
            reason: Reason::Test,
            recommendations: BTreeMap::new(),
        },
    }
}
