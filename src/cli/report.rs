//! `vastwatch report`: the status page's charts, table and alerts for one target over a
//! range, written as one self-contained HTML file (data and assets inlined) to attach to
//! an incident.

use std::path::PathBuf;

use clap::Args;

use super::{CliError, ConfigArg, ExitStatus, load_config_offline};
use crate::clock::Clock;
use crate::store::{Store, StoreOptions};
use crate::time::parse_time_or_ago;

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The target to report on.
    #[arg(long)]
    pub target: String,
    /// Start: RFC 3339, or an age such as 24h.
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// End: RFC 3339, or an age such as 1h; now when absent.
    #[arg(long)]
    pub until: Option<String>,
    /// The HTML file to write.
    #[arg(long, default_value = "report.html")]
    pub out: PathBuf,
}

pub async fn report(args: ReportArgs) -> Result<ExitStatus, CliError> {
    let config = load_config_offline(&args.config)?;
    let now = Clock::real().now();
    let parse = |text: &str, flag: &str| {
        parse_time_or_ago(text, now)
            .map_err(|message| CliError::bad_input(format!("{flag}: {message}")))
    };
    let since = parse(&args.since, "--since")?;
    let until = args
        .until
        .as_deref()
        .map_or(Ok(now), |text| parse(text, "--until"))?;
    if since > until {
        return Err(CliError::bad_input("--since: is after --until"));
    }
    if !config
        .targets
        .iter()
        .any(|target| target.name == args.target)
    {
        let names: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
        return Err(CliError::bad_input(format!(
            "--target: `{}` is not a target of `{}`; its targets are {}",
            args.target,
            config.path.display(),
            names.join(", ")
        )));
    }
    if config.database.is_missing() {
        return Err(CliError::runtime(format!(
            "database `{}` does not exist yet; run `vastwatch run` or `vastwatch poll-once` first",
            config.database
        )));
    }
    // Read-only: a report may be taken while the daemon runs, and must not change a thing.
    let store = Store::open_with(StoreOptions::read_only(&config.database)).await?;
    let data = crate::api::report_data(&store, &config, &args.target, since, until).await;
    store.close().await?;
    let data = data.map_err(CliError::runtime)?;
    std::fs::write(&args.out, crate::api::report_html(&data))
        .map_err(|error| CliError::runtime(format!("writing `{}`: {error}", args.out.display())))?;
    println!("Wrote {}", args.out.display());
    Ok(ExitStatus::Success)
}
