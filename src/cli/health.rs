//! `vastwatch health`: asks a running vastwatch's `/healthz`; the Docker HEALTHCHECK, so
//! the image needs no curl.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use super::{CliError, ConfigArg, ExitStatus, load_config_offline};

/// A health check must answer quickly: the orchestrator's own timeout is short.
const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Base URL of the vastwatch to ask (e.g. http://127.0.0.1:9469); default the
    /// config's `listen` address. With it, no config file is read.
    #[arg(long)]
    pub url: Option<String>,
}

/// Exit 0 when `/healthz` answers 200, else 3. Reads the config without its secrets
/// (`listen` is all it needs), so the API key need not be set where the check runs.
pub async fn health(args: HealthArgs) -> Result<ExitStatus, CliError> {
    let base = match args.url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let config = load_config_offline(&args.config)?;
            let listen = config.http.listen.ok_or_else(|| {
                CliError::bad_input(format!(
                    "{}: the HTTP API is off (`listen: null`), so there is nothing to check",
                    config.path.display()
                ))
            })?;
            format!("http://{}", connectable(listen))
        }
    };
    let url = format!("{base}/healthz");
    crate::poll::install_tls_provider();
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| CliError::runtime(format!("cannot build an HTTP client: {error}")))?;
    match client.get(&url).send().await {
        Ok(response) if response.status() == reqwest::StatusCode::OK => {
            println!("healthy: {url} answered 200");
            Ok(ExitStatus::Success)
        }
        Ok(response) => Err(CliError::runtime(format!(
            "unhealthy: {url} answered {}",
            response.status()
        ))),
        Err(error) => Err(CliError::runtime(format!(
            "unhealthy: {url} did not answer: {}",
            crate::poll::error_chain(&error)
        ))),
    }
}

/// Where to connect to reach a server listening on `listen`: a wildcard address is
/// reached through loopback.
fn connectable(listen: SocketAddr) -> SocketAddr {
    match listen {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], v4.port()))
        }
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, v6.port()))
        }
        other => other,
    }
}
