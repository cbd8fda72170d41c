//! The `vastwatch` binary: parse the command line, set up logging, run the command, and
//! turn its outcome into an exit code. Everything else lives in the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use vastwatch::cli::{self, Cli, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own story on stdout; only warnings belong beside it by default.
    let default_level = match cli.command {
        cli::Command::Demo(_) => "warn",
        _ => "info",
    };
    init_logging(
        cli.logging.log_format,
        cli.logging.log_level.as_deref(),
        default_level,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(cli::ExitStatus::Runtime as u8);
        }
    };
    match runtime.block_on(cli::execute(cli)) {
        Ok(status) => ExitCode::from(status as u8),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.status as u8)
        }
    }
}

fn init_logging(format: LogFormat, level: Option<&str>, default_level: &str) {
    let filter = match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
    };
    // Colours only on a terminal: journald, Docker and log files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
