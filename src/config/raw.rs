//! The config file exactly as written: serde structs that reject unknown keys. They carry
//! source locations so that validation in `super` can point at the offending line.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// Top level of `vastwatch.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// SQLite file (relative to the config file's folder) or `sqlite:` URL, or a
    /// `postgres://` URL without a password. Default `vastwatch.db`.
    pub database: Option<Spanned<String>>,
    /// Environment variable holding the database URL (for a PostgreSQL password).
    pub database_env: Option<Spanned<String>>,
    /// How to reach the Vast API.
    pub api: Option<Spanned<RawApi>>,
    /// Cron with a seconds field (UTC), or a duration meaning "every". Default `10s`.
    pub schedule: Option<Spanned<String>>,
    /// Each target's poll starts a random 0..jitter after the tick. Default `2s`.
    pub jitter: Option<Spanned<String>>,
    /// Failed polls in a row that fire VastwatchTargetDown. Default 3.
    pub target_down_after: Option<Spanned<u32>>,
    /// The fleets to watch.
    pub targets: Spanned<Vec<Spanned<RawTarget>>>,
    /// Rule files: paths or globs, relative to the config file's folder.
    #[serde(default)]
    pub rules: Vec<Spanned<String>>,
    /// How long stored data is kept.
    pub retention: Option<RawRetention>,
    /// Base of links in notification payloads. Default `http://<listen>`.
    pub external_url: Option<Spanned<String>>,
    /// Address of the HTTP API, `host:port`. Default `127.0.0.1:9469`; `listen: null`
    /// turns the server off, so a missing key and a null one differ (outer `None`: missing).
    #[serde(default, deserialize_with = "present")]
    pub listen: Option<Option<Spanned<String>>>,
    /// Environment variable holding the HTTP API's bearer token.
    pub listen_token_env: Option<Spanned<String>>,
    /// Receivers, routes, grouping, inhibition (SPEC §8).
    pub notify: Option<Spanned<RawNotify>>,
    /// Hot reload: whether to watch the config and rule files for changes.
    pub reload: Option<Spanned<RawReload>>,
    /// What `/metrics` exposes.
    pub metrics: Option<RawMetrics>,
    /// Several replicas on one PostgreSQL database: leader election and failover.
    pub ha: Option<Spanned<RawHa>>,
}

/// `ha:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHa {
    /// `leader` (one replica polls, the others stand by). Default `leader`.
    pub mode: Option<Spanned<String>>,
    /// How long the replicas may be without a leader before one takes over. Default `15s`.
    pub failover: Option<Spanned<String>>,
    /// This replica's id in `/api/v1/status` and `replicas`. Default `HOSTNAME-PID`.
    pub replica_id: Option<Spanned<String>>,
}

/// `reload:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReload {
    /// Reload when the config file or a rule file changes. Default false.
    pub watch: Option<Spanned<bool>>,
    /// How often the files are checked. Default `2s`.
    pub watch_interval: Option<Spanned<String>>,
}

/// Marks a key that is present: its value, `null` included, becomes `Some(value)`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// `metrics:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// Per-worker series (reliability, perf, reqs_working, load, status), one set per
    /// worker in the latest poll. Off by default: a large fleet makes many series.
    pub per_worker: Option<bool>,
}

/// `api:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// Default `https://run.vast.ai`.
    pub base_url: Option<Spanned<String>>,
    /// Environment variable holding the API key. Default `VAST_API_KEY`.
    pub api_key_env: Option<Spanned<String>>,
    /// Per-request timeout. Default `10s`.
    pub timeout: Option<Spanned<String>>,
    /// Polls in flight at once. Default 16.
    pub concurrency: Option<Spanned<u32>>,
    /// Largest accepted response body, e.g. `16MiB`. Default 16 MiB.
    pub max_body: Option<Spanned<String>>,
}

/// One entry of `targets:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// Unique; becomes the `target` label.
    pub name: Spanned<String>,
    /// An Endpoint id (polls `/get_endpoint_workers/`).
    pub endpoint: Option<Spanned<i64>>,
    /// A Worker Group id (polls `/get_autogroup_workers/`).
    pub worker_group: Option<Spanned<i64>>,
    /// Added to every alert of this target.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Numbers usable by name in rule expressions.
    #[serde(default)]
    pub vars: BTreeMap<String, f64>,
    /// Overrides `api.api_key_env` for this target.
    pub api_key_env: Option<Spanned<String>>,
    /// The advisor's inputs; every key optional.
    pub scaling: Option<Spanned<RawScaling>>,
}

/// A target's `scaling:` (SPEC §7; docs/advisor.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScaling {
    /// Utilization the fleet is sized for. Default 0.9.
    pub target_util: Option<Spanned<f64>>,
    pub min_workers: Option<Spanned<u32>>,
    pub max_workers: Option<Spanned<u32>>,
    /// How long a new worker takes to become ready. Default 5m.
    pub cold_start: Option<Spanned<String>>,
    /// No change while demand is within this fraction of target. Default 0.1.
    pub tolerance: Option<Spanned<f64>>,
    /// Trend and reliability window. Default 10m.
    pub lookback: Option<Spanned<String>>,
    /// Desired must stay below current this long before a scale-down. Default 10m.
    pub scale_down_window: Option<Spanned<String>>,
    /// Replace workers whose reliability stays below this. Default 0.9.
    pub replace_below: Option<Spanned<f64>>,
    /// Replace workers failed or starting longer than this. Default 15m.
    pub stuck_after: Option<Spanned<String>>,
}

/// `retention:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Raw samples older than this are deleted. Default `14d`.
    pub samples: Option<Spanned<String>>,
    /// Delivered and failed notifications older than this are deleted. Default `30d`.
    pub notifications: Option<Spanned<String>>,
    /// Silences that ended longer ago than this are deleted. Default `30d`.
    pub silences: Option<Spanned<String>>,
    /// Alert events, and resolved alert instances, older than this are deleted. Default `90d`.
    pub alerts: Option<Spanned<String>>,
    /// Recommendations older than this are deleted, except each target's latest. Default `90d`.
    pub recommendations: Option<Spanned<String>>,
    /// Five-minute fleet rollups older than this are deleted. Default `400d`.
    pub rollups: Option<Spanned<String>>,
}

/// `notify:` (SPEC §8.1)
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub group_by: Option<Spanned<Vec<String>>>,
    pub group_wait: Option<Spanned<String>>,
    pub group_interval: Option<Spanned<String>>,
    pub repeat_interval: Option<Spanned<String>>,
    #[serde(default)]
    pub receivers: Vec<Spanned<RawReceiver>>,
    /// Absent: one default route to every receiver.
    pub routes: Option<Vec<Spanned<RawRoute>>>,
    #[serde(default)]
    pub inhibit: Vec<Spanned<RawInhibit>>,
    /// The built-in `VastwatchTargetDown` inhibit rule. Default true.
    pub inhibit_target_down: Option<bool>,
    /// Give up on a notification after this long. Default `24h`.
    pub max_age: Option<Spanned<String>>,
}

/// One entry of `notify.receivers`: a name and exactly one kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReceiver {
    pub name: Spanned<String>,
    pub send_resolved: Option<Spanned<bool>>,
    pub webhook: Option<Spanned<RawWebhook>>,
    pub email: Option<Spanned<RawEmail>>,
    pub alertmanager: Option<Spanned<RawAlertmanager>>,
    pub console: Option<Spanned<RawConsole>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub url: Spanned<String>,
    /// `alertmanager` (default) or `slack`.
    pub format: Option<Spanned<String>>,
    pub secret_env: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub send_resolved: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    /// `host:port`
    pub smtp: Spanned<String>,
    /// `starttls` (default), `tls` or `none`.
    pub tls: Option<Spanned<String>>,
    pub username_env: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub from: Spanned<String>,
    pub to: Spanned<Vec<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub send_resolved: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlertmanager {
    pub url: Spanned<String>,
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub send_resolved: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsole {
    pub send_resolved: Option<Spanned<bool>>,
}

/// One entry of `notify.routes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Label equality.
    #[serde(rename = "match", default)]
    pub match_: BTreeMap<String, String>,
    /// `name=value`, `name!=value`, `name=~regex`, `name!~regex`.
    #[serde(default)]
    pub matchers: Vec<Spanned<String>>,
    pub receivers: Spanned<Vec<Spanned<String>>>,
    #[serde(rename = "continue")]
    pub continue_: Option<bool>,
    pub group_by: Option<Spanned<Vec<String>>>,
    pub group_wait: Option<Spanned<String>>,
    pub group_interval: Option<Spanned<String>>,
    pub repeat_interval: Option<Spanned<String>>,
}

/// One entry of `notify.inhibit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInhibit {
    #[serde(default)]
    pub source: BTreeMap<String, String>,
    #[serde(default)]
    pub source_matchers: Vec<Spanned<String>>,
    #[serde(default)]
    pub target: BTreeMap<String, String>,
    #[serde(default)]
    pub target_matchers: Vec<Spanned<String>>,
    #[serde(default)]
    pub equal: Vec<String>,
}
