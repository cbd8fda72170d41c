//! `vastwatch completions` and `vastwatch man`: a shell completion script and the man
//! page, generated from the clap definitions so they never drift from the real options.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, CliError, ExitStatus};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Writes the completion script for `args.shell` to stdout.
pub fn completions(args: CompletionsArgs) -> Result<ExitStatus, CliError> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "vastwatch", &mut script);
    write_stdout(&script)
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write a page per command into this folder (`vastwatch.1`, `vastwatch-history.1`,
    /// ...) instead of printing the main page.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Prints the main man page (roff), or writes every command's page into `args.dir`.
pub fn man(args: ManArgs) -> Result<ExitStatus, CliError> {
    if let Some(dir) = args.dir {
        clap_mangen::generate_to(Cli::command(), &dir).map_err(|error| {
            CliError::runtime(format!(
                "cannot write man pages into `{}`: {error}",
                dir.display()
            ))
        })?;
        return Ok(ExitStatus::Success);
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|error| CliError::runtime(format!("cannot render the man page: {error}")))?;
    write_stdout(&page)
}

fn write_stdout(bytes: &[u8]) -> Result<ExitStatus, CliError> {
    std::io::stdout()
        .write_all(bytes)
        .map_err(|error| CliError::runtime(format!("cannot write to stdout: {error}")))?;
    Ok(ExitStatus::Success)
}
