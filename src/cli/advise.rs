//! `vastwatch advise`: each target's current recommendation, worked out from stored data.

use clap::Args;
use serde_json::{Value, json};

use super::output::{Format, Rows};
use super::rules::open_existing;
use super::{CliError, ConfigArg, ExitStatus, load_config_offline};
use crate::clock::Clock;
use crate::daemon::resume_engine;
use crate::rules::RuleSet;

#[derive(Debug, Args)]
pub struct AdviseArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only this target.
    #[arg(long)]
    pub target: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub async fn advise(args: AdviseArgs) -> Result<ExitStatus, CliError> {
    let config = load_config_offline(&args.config)?;
    let store = open_existing(&config).await?;
    let now = Clock::real().now();
    // Without rules every stored alert is an orphan; a reader leaves them alone.
    let (engine, _) = resume_engine(&config, RuleSet::empty(), &store, now).await?;
    store.close().await?;
    let mut rows = match args.format {
        Format::Json => Rows::new(vec!["target", "recommendation"]),
        Format::Table | Format::Csv => Rows::new(vec![
            "target", "action", "current", "desired", "delta", "replace", "reason",
        ]),
    };
    for target in &config.targets {
        if args
            .target
            .as_ref()
            .is_some_and(|only| only != &target.name)
        {
            continue;
        }
        let Some(recommendation) = engine.advise_now(&target.name, now) else {
            continue;
        };
        rows.push(match args.format {
            Format::Json => vec![json!(target.name), json!(recommendation)],
            Format::Table | Format::Csv => vec![
                json!(target.name),
                json!(recommendation.action.as_str()),
                json!(recommendation.current_workers),
                json!(recommendation.desired_workers),
                json!(recommendation.delta),
                if recommendation.replace.is_empty() {
                    Value::Null
                } else {
                    json!(recommendation.replace.join(" "))
                },
                json!(recommendation.reason),
            ],
        });
    }
    print!("{}", rows.render(args.format));
    if args.format == Format::Table {
        for target in &config.targets {
            if let Some(recommendation) = engine.advise_now(&target.name, now)
                && !recommendation.commands.is_empty()
            {
                println!("{}:", target.name);
                for command in &recommendation.commands {
                    println!("  {command}");
                }
            }
        }
    }
    Ok(ExitStatus::Success)
}
