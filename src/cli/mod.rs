//! The command line: clap definitions, and one function per command. Commands return
//! typed errors carrying their exit code; only `main` prints them.

mod advise;
mod db;
mod demo;
mod generate;
mod health;
mod history;
mod notify;
mod output;
mod report;
mod rules;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::clock::Clock;
use crate::config::{Config, OfflineEnvironment, ProcessEnvironment};
use crate::daemon::{Daemon, DaemonError, load_rules};
use crate::metrics::{Metrics, ReloadRecorder};
use crate::model::PollResult;
use crate::rules::RuleSet;
use crate::service::{FileSource, Service};
use crate::store::{AttemptRecord, StoreError};

pub use output::Format;

/// Exit codes (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success = 0,
    /// A check found problems (a failing test, `check --strict` warnings).
    ProblemsFound = 1,
    /// Bad input: config, rules, arguments.
    BadInput = 2,
    /// Runtime failure: the database cannot be opened, a port is taken.
    Runtime = 3,
}

/// An error that ends a command, with the exit status it maps to.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub status: ExitStatus,
    pub message: String,
}

impl CliError {
    pub fn bad_input(message: impl Into<String>) -> Self {
        CliError {
            status: ExitStatus::BadInput,
            message: message.into(),
        }
    }

    pub fn runtime(message: impl Into<String>) -> Self {
        CliError {
            status: ExitStatus::Runtime,
            message: message.into(),
        }
    }
}

impl From<StoreError> for CliError {
    fn from(error: StoreError) -> Self {
        CliError::runtime(error.to_string())
    }
}

impl From<DaemonError> for CliError {
    fn from(error: DaemonError) -> Self {
        CliError::runtime(error.to_string())
    }
}

/// Watches Vast.ai serverless fleets: polls worker lists, stores every snapshot in SQLite,
/// and reports on them.
#[derive(Debug, Parser)]
#[command(name = "vastwatch", version = version_line(), about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub logging: LoggingArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Logging flags shared by every command.
#[derive(Debug, Args)]
pub struct LoggingArgs {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "VASTWATCH_LOG_FORMAT",
        default_value = "human"
    )]
    pub log_format: LogFormat,
    /// Log level or filter (e.g. `debug`, `vastwatch=debug`); overrides RUST_LOG.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Where the config file is.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Config file.
    #[arg(
        long,
        short = 'c',
        env = "VASTWATCH_CONFIG",
        default_value = "vastwatch.yaml"
    )]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: poll on schedule and store every snapshot, until SIGINT/SIGTERM.
    Run(ConfigArg),
    /// Load and validate the config; print what was loaded. Exit 0 if valid, 2 if not.
    Check(CheckArgs),
    /// Poll every target once, store the results, and exit.
    PollOnce(ConfigArg),
    /// Print stored samples: fleet rows (five-minute rollups where raw samples expired), or
    /// one worker's rows with --worker.
    History(history::HistoryArgs),
    /// Run rule unit tests. Exit 0 if all pass, 1 if one fails, 2 on bad input.
    Test(rules::TestArgs),
    /// Print stored alert instances.
    Alerts(rules::AlertsArgs),
    /// Evaluate rules over stored history and print what would have fired. Writes and
    /// sends nothing.
    Replay(rules::ReplayArgs),
    /// Print each target's current scaling recommendation, from stored data.
    Advise(advise::AdviseArgs),
    /// Serve a simulated Vast worker-list API from a scenario.
    Simulate(demo::SimulateArgs),
    /// Run the simulator and the daemon together and print what happens.
    Demo(demo::DemoArgs),
    /// List notifications in the outbox: pending, delivered, failed.
    Notifications(notify::NotificationsArgs),
    /// Mute notifications by label matchers for a time.
    #[command(subcommand)]
    Silence(notify::SilenceCommand),
    /// Notification tools.
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// Ask a running vastwatch's /healthz. Exit 0 if it answers 200, else 3.
    Health(health::HealthArgs),
    /// Database tools: `db stats` prints rows and size per table, `db backup` copies it.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Write the status page's charts, workers and alerts for one target as one
    /// self-contained HTML file.
    Report(report::ReportArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(generate::CompletionsArgs),
    /// Print the man page in roff (`vastwatch man | man -l -`), or write a page per
    /// command with --dir.
    Man(generate::ManArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Exit 1 on warnings as well as errors.
    #[arg(long)]
    pub strict: bool,
}

/// `--version` output: the version and the build it came from.
pub fn version_line() -> &'static str {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (build ",
        env!("VASTWATCH_BUILD"),
        ")"
    )
}

/// Runs a parsed command line.
pub async fn execute(cli: Cli) -> Result<ExitStatus, CliError> {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Check(args) => check(args),
        Command::PollOnce(args) => poll_once(args).await,
        Command::History(args) => history::history(args).await,
        Command::Test(args) => rules::test(args),
        Command::Alerts(args) => rules::alerts(args).await,
        Command::Replay(args) => rules::replay(args).await,
        Command::Advise(args) => advise::advise(args).await,
        Command::Simulate(args) => demo::simulate(args).await,
        Command::Demo(args) => demo::demo(args).await,
        Command::Notifications(args) => notify::notifications(args).await,
        Command::Silence(command) => notify::silence(command).await,
        Command::Notify(command) => notify::notify(command).await,
        Command::Health(args) => health::health(args).await,
        Command::Db(command) => db::db(command).await,
        Command::Report(args) => report::report(args).await,
        Command::Completions(args) => generate::completions(args),
        Command::Man(args) => generate::man(args),
    }
}

/// Loads the config from the environment's variables, mapping errors to exit code 2.
pub fn load_config(args: &ConfigArg) -> Result<Config, CliError> {
    Config::load(&args.config, &ProcessEnvironment).map_err(|e| CliError::bad_input(e.to_string()))
}

/// Loads the config for a command that never calls the Vast API, so secrets need not be set.
pub fn load_config_offline(args: &ConfigArg) -> Result<Config, CliError> {
    Config::load(&args.config, &OfflineEnvironment).map_err(|e| CliError::bad_input(e.to_string()))
}

/// Loads the rule files the config names; a mistake in one is bad input (exit 2).
pub fn load_rules_of(config: &Config) -> Result<RuleSet, CliError> {
    load_rules(config).map_err(|e| CliError::bad_input(e.to_string()))
}

fn check(args: CheckArgs) -> Result<ExitStatus, CliError> {
    let config = load_config(&args.config)?;
    let rules = load_rules_of(&config)?;
    print!("{}", config.summary());
    println!(
        "rules:     {} in {} files",
        rules.rules.len(),
        rules.files.len()
    );
    for (file, count) in &rules.files {
        println!("  - {} ({count} rules)", file.display());
    }
    let warnings = check_warnings(&config, &rules);
    for warning in &warnings {
        println!("warning: {warning}");
    }
    if args.strict && !warnings.is_empty() {
        println!(
            "config is valid, with {} warnings (--strict)",
            warnings.len()
        );
        return Ok(ExitStatus::ProblemsFound);
    }
    println!("config is valid");
    Ok(ExitStatus::Success)
}

/// What `check --strict` fails on: rules that apply to no target, vars a rule reads
/// that a target it applies to lacks, and receivers no route uses.
pub fn check_warnings(config: &Config, rules: &RuleSet) -> Vec<String> {
    let mut warnings = Vec::new();
    for receiver in &config.notify.receivers {
        let used = config
            .notify
            .routes
            .iter()
            .any(|route| route.receivers.contains(&receiver.name));
        if !used {
            warnings.push(format!(
                "{}: receiver `{}` is used by no route, so it is never sent anything",
                config.path.display(),
                receiver.name
            ));
        }
    }
    for rule in &rules.rules {
        let targets: Vec<_> = config
            .targets
            .iter()
            .filter(|target| rule.applies_to(&target.name))
            .collect();
        if targets.is_empty() {
            warnings.push(format!(
                "{}:{}: rule `{}` applies to no target",
                rule.file.display(),
                rule.line,
                rule.name
            ));
        }
        for target in targets {
            for var in &rule.vars_used {
                if !target.vars.contains_key(var) && !rule.var_defaults.contains_key(var) {
                    warnings.push(format!(
                        "{}:{}: rule `{}` uses var `{var}`, which target `{}` lacks (it reads as missing there)",
                        rule.file.display(),
                        rule.line,
                        rule.name,
                        target.name
                    ));
                }
            }
        }
    }
    warnings
}

async fn run(args: ConfigArg) -> Result<ExitStatus, CliError> {
    survive_file_size_limit();
    let config = load_config(&args)?;
    let rules = load_rules_of(&config)?;
    let listen = config.http.listen;
    // Bind before anything starts, so a taken port is exit 3 with nothing half-running.
    let listener =
        match listen {
            Some(address) => Some(tokio::net::TcpListener::bind(address).await.map_err(
                |error| {
                    CliError::runtime(format!("cannot listen on {address} (`listen`): {error}"))
                },
            )?),
            None => None,
        };
    let source = FileSource {
        path: args.config.clone(),
        env: Box::new(ProcessEnvironment),
    };
    let clock = Clock::real();
    // One set of metrics for the process: counters carry on across reloads.
    let metrics = Arc::new(Metrics::new(clock.now()));
    let each = Arc::clone(&metrics);
    let service = Service::start(
        Box::new(source),
        config,
        rules,
        clock.clone(),
        Box::new(move |daemon| daemon.with_metrics(Arc::clone(&each))),
    )
    .await?
    .with_observer(Arc::new(ReloadRecorder::new(metrics, clock)));
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let server = listener.map(|listener| {
        let state = crate::api::ApiState::new(service.daemon(), service.reload_sender())
            .with_replica(service.replica());
        let router = crate::api::router(state);
        match listener.local_addr() {
            Ok(address) => tracing::info!(
                address = %address,
                page = %format!("http://{address}/"),
                "HTTP API listening."
            ),
            Err(_) => tracing::info!(address = ?listen, "HTTP API listening."),
        }
        let mut stopped = stopped.clone();
        tokio::spawn(crate::api::serve_router(listener, router, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))
    });
    let outcome = service
        .run(async move {
            shutdown_signal().await;
            let _ = stopping.send(true);
        })
        .await;
    if let Some(server) = server {
        // Requests in progress get a moment to finish; idle connections close at once.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), server).await;
    }
    outcome?;
    Ok(ExitStatus::Success)
}

async fn poll_once(args: ConfigArg) -> Result<ExitStatus, CliError> {
    let config = load_config(&args)?;
    let clock = Clock::real();
    let rules = load_rules_of(&config)?;
    let daemon = Daemon::start(config, rules, clock.clone()).await?;
    let (_stop_sender, stop) = tokio::sync::watch::channel(false);
    let report = daemon.tick_once(clock.now(), &stop).await;
    for record in &report.stored {
        match &record.result {
            PollResult::Snapshot { workers, .. } => {
                println!("{}: ok, {} workers", record.target, workers.len())
            }
            PollResult::Failed(failure) => {
                println!("{}: {} ({})", record.target, failure.kind, failure.message)
            }
        }
    }
    for target in &report.skipped_backing_off {
        println!("{target}: skipped (backing off after a 429)");
    }
    let (queued, attempts) = daemon.notify_now().await?;
    if !queued.queued.is_empty() || !attempts.is_empty() {
        let count =
            |wanted: fn(&AttemptRecord) -> bool| attempts.iter().filter(|a| wanted(a)).count();
        println!(
            "notifications: {} queued, {} delivered, {} to retry, {} failed",
            queued.queued.len(),
            count(|a| matches!(a, AttemptRecord::Delivered { .. })),
            count(|a| matches!(a, AttemptRecord::Retry { .. })),
            count(|a| matches!(a, AttemptRecord::Failed { .. })),
        );
    }
    daemon.store().clone().close().await?;
    if !report.unstored.is_empty() {
        return Err(CliError::runtime(format!(
            "{} polls could not be stored",
            report.unstored.len()
        )));
    }
    Ok(ExitStatus::Success)
}

/// Keeps SIGXFSZ from killing the process: past a file size limit (`RLIMIT_FSIZE`, a
/// full quota) a write then fails with EFBIG, which the daemon reports as a failed
/// database write and retries, instead. tokio's handler stays installed when the stream
/// is dropped; it only records the signal.
fn survive_file_size_limit() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Err(error) = signal(SignalKind::from_raw(libc::SIGXFSZ)) {
            tracing::warn!(error = %error, "Cannot catch SIGXFSZ; exceeding a file size limit will end the process.");
        }
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
