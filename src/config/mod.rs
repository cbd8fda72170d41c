//! Configuration: the YAML file becomes validated types once, at load; downstream code
//! never re-checks. Secrets come only from environment variables named by `*_env` keys.

mod database;
mod error;
mod notify;
mod raw;
mod secret;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::Spanned;

pub use database::{Database, PostgresUrl, is_postgres_url};
pub use error::{FileError, file_text, suggest, unknown_key_message};
pub use secret::Secret;

use crate::advise::ScalingConfig;
use crate::model::TargetKind;
use crate::notify::NotifyConfig;
use crate::schedule::Schedule;
use crate::time::{format_duration, parse_duration};
use raw::{RawApi, RawConfig, RawRetention, RawScaling, RawTarget};

/// Labels that vastwatch sets itself; a target or rule may not set them.
pub const RESERVED_LABELS: [&str; 4] = ["alertname", "target", "severity", "worker_id"];

const DEFAULT_BASE_URL: &str = "https://run.vast.ai";
const DEFAULT_API_KEY_ENV: &str = "VAST_API_KEY";
const DEFAULT_MAX_BODY: u64 = 16 * 1024 * 1024;
/// How long replicas may go without a leader unless `ha.failover` says otherwise.
const HA_FAILOVER: Duration = Duration::from_secs(15);
/// Below this, renewals (a third of the bound) would race the network's own delays.
const MIN_HA_FAILOVER: Duration = Duration::from_secs(1);
/// Most targets one config may list: the largest fleet the tick benchmark measures
/// (docs/benchmarks.md, 1,000 targets × 50 workers).
pub const MAX_TARGETS: usize = 1_000;
/// Where the HTTP API listens unless `listen` says otherwise (SPEC §3).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9469";

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// The SQLite file (resolved against the config file's folder) or PostgreSQL server.
    pub database: Database,
    pub api: ApiConfig,
    pub schedule: Schedule,
    pub jitter: Duration,
    pub targets: Vec<Target>,
    /// Failed polls in a row that fire `VastwatchTargetDown`.
    pub target_down_after: u32,
    /// Rule files matched by the `rules` globs, in order, without duplicates.
    pub rule_files: Vec<PathBuf>,
    /// The `rules` entries resolved against the config file's folder, globs unexpanded:
    /// the reload watcher expands them again to notice new files.
    pub rule_patterns: Vec<PathBuf>,
    /// Hot reload settings.
    pub reload: ReloadConfig,
    pub retention: Retention,
    /// Receivers, routes, grouping and inhibition (SPEC §8).
    pub notify: NotifyConfig,
    /// The HTTP API (SPEC §11).
    pub http: HttpConfig,
    pub metrics: MetricsConfig,
    /// Replicas and failover; `None` runs one process that always leads.
    pub ha: Option<HaConfig>,
}

/// `ha:`: how replicas sharing one PostgreSQL database elect the one that polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaConfig {
    pub mode: HaMode,
    /// The longest the replicas go without a leader when the leader dies or loses its
    /// connection; renewals and takeover attempts come three times as often.
    pub failover: Duration,
    /// This replica's id; unique among the replicas of one database.
    pub replica_id: String,
}

/// What the replicas split between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaMode {
    /// One replica polls, evaluates and enqueues; the others serve the API and deliver.
    Leader,
    /// The live replicas split the targets between them, each target polled by one; the
    /// leader also queues notifications and applies retention.
    Shard,
}

impl HaMode {
    pub fn as_str(self) -> &'static str {
        match self {
            HaMode::Leader => "leader",
            HaMode::Shard => "shard",
        }
    }
}

/// The HTTP API's address and bearer token.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where to listen; `None` when `listen: null` turned the server off.
    pub listen: Option<SocketAddr>,
    /// The bearer token from `listen_token_env`. When set, every path but the health
    /// probes requires it, on loopback too; a non-loopback `listen` cannot go without it.
    pub token: Option<Secret>,
}

/// What `/metrics` exposes beyond the per-target and internal series.
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    /// Series per worker of the latest poll, labelled `worker_id`. Default off.
    pub per_worker: bool,
}

/// How to reach the Vast API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Without a trailing slash.
    pub base_url: String,
    pub timeout: Duration,
    pub concurrency: usize,
    pub max_body: u64,
}

/// One watched fleet.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub kind: TargetKind,
    pub vast_id: i64,
    pub labels: BTreeMap<String, String>,
    pub vars: BTreeMap<String, f64>,
    /// The key used for this target: its own `api_key_env`, else `api.api_key_env`.
    pub api_key: Secret,
    /// The advisor's settings for this target.
    pub scaling: ScalingConfig,
}

/// `reload:`: how changes to the config and rule files are noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadConfig {
    /// Reload when the config file or a rule file changes (besides SIGHUP and
    /// `POST /-/reload`, which always work).
    pub watch: bool,
    /// How often the files are read and compared.
    pub watch_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct Retention {
    /// Polls, worker samples and fleet sums older than this are rolled up and deleted.
    pub samples: Duration,
    /// Delivered and failed notifications older than this are deleted.
    pub notifications: Duration,
    /// Silences that ended longer ago than this are deleted.
    pub silences: Duration,
    /// Alert events and resolved alert instances older than this are deleted.
    pub alerts: Duration,
    /// Recommendations older than this are deleted, except each target's latest.
    pub recommendations: Duration,
    /// Five-minute fleet rollups older than this are deleted.
    pub rollups: Duration,
}

/// Where secrets come from; the process environment in production, a map in tests.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;

    /// The variable `database_env` names. Offline commands need the real database even
    /// where they stand in for other secrets.
    fn database_var(&self, name: &str) -> Option<String> {
        self.var(name)
    }
}

/// The process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// For commands that only read the database (`history`, ...): every secret variable
/// reads as a placeholder, so they work where the API key is not set. The placeholder is
/// never sent anywhere because these commands never call the API.
pub struct OfflineEnvironment;

impl Environment for OfflineEnvironment {
    fn var(&self, _name: &str) -> Option<String> {
        Some("(not loaded by an offline command)".to_string())
    }

    fn database_var(&self, name: &str) -> Option<String> {
        ProcessEnvironment.var(name)
    }
}

impl Environment for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Config {
    /// Reads, parses and validates the config file at `path`.
    pub fn load(path: &Path, env: &dyn Environment) -> Result<Config, FileError> {
        let bytes = std::fs::read(path).map_err(|error| {
            let message = if error.kind() == std::io::ErrorKind::NotFound {
                "config file not found; pass --config FILE or set VASTWATCH_CONFIG".to_string()
            } else {
                format!("cannot read config file: {error}")
            };
            FileError::whole_file(path, message)
        })?;
        Config::from_bytes(path, &bytes, env, &FileSystem)
    }

    /// Parses and validates config text that was read from `path`.
    pub fn parse(path: &Path, text: &str, env: &dyn Environment) -> Result<Config, FileError> {
        Config::parse_text(path, text, env, &FileSystem)
    }

    /// Parses and validates the bytes of the config file at `path`, resolving `rules:`
    /// through `files`: everything [`Config::load`] does after reading the file.
    pub fn from_bytes(
        path: &Path,
        bytes: &[u8],
        env: &dyn Environment,
        files: &dyn Files,
    ) -> Result<Config, FileError> {
        Config::parse_text(path, file_text(path, bytes)?, env, files)
    }

    fn parse_text(
        path: &Path,
        text: &str,
        env: &dyn Environment,
        files: &dyn Files,
    ) -> Result<Config, FileError> {
        let raw: RawConfig =
            serde_saphyr::from_str(text).map_err(|e| FileError::from_yaml(path, text, &e))?;
        Validator { path, env, files }.config(raw)
    }

    /// The human summary `vastwatch check` prints.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "config:    {}", self.path.display());
        let _ = writeln!(out, "database:  {}", self.database);
        let _ = writeln!(
            out,
            "api:       {} (timeout {}, {} polls at once, bodies up to {} bytes)",
            self.api.base_url,
            format_duration(self.api.timeout),
            self.api.concurrency,
            self.api.max_body
        );
        let _ = writeln!(
            out,
            "schedule:  {} (jitter {})",
            self.schedule,
            format_duration(self.jitter)
        );
        let _ = writeln!(
            out,
            "retention: samples {}, rollups {}, alerts {}, recommendations {}, notifications {}, silences {}",
            format_duration(self.retention.samples),
            format_duration(self.retention.rollups),
            format_duration(self.retention.alerts),
            format_duration(self.retention.recommendations),
            format_duration(self.retention.notifications),
            format_duration(self.retention.silences)
        );
        if self.reload.watch {
            let _ = writeln!(
                out,
                "reload:    on SIGHUP, POST /-/reload, and file changes (checked every {})",
                format_duration(self.reload.watch_interval)
            );
        } else {
            let _ = writeln!(out, "reload:    on SIGHUP and POST /-/reload");
        }
        let _ = writeln!(
            out,
            "alerts:    VastwatchTargetDown after {} failed polls in a row",
            self.target_down_after
        );
        let _ = match (self.http.listen, self.http.token.is_some()) {
            (None, _) => writeln!(out, "http:      off (listen: null)"),
            (Some(listen), true) => writeln!(out, "http:      {listen}, bearer token required"),
            (Some(listen), false) => writeln!(out, "http:      {listen}, no token"),
        };
        let _ = writeln!(
            out,
            "metrics:   per-worker series {}",
            if self.metrics.per_worker { "on" } else { "off" }
        );
        if let Some(ha) = &self.ha {
            let _ = writeln!(
                out,
                "ha:        {} mode as replica `{}` (failover within {})",
                ha.mode.as_str(),
                ha.replica_id,
                format_duration(ha.failover)
            );
        }
        let _ = writeln!(out, "targets:   {}", self.targets.len());
        for target in &self.targets {
            let _ = write!(
                out,
                "  - {} ({} {})",
                target.name,
                target.kind.as_str(),
                target.vast_id
            );
            if !target.labels.is_empty() {
                let labels: Vec<String> = target
                    .labels
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect();
                let _ = write!(out, " labels {{{}}}", labels.join(", "));
            }
            if !target.vars.is_empty() {
                let vars: Vec<String> = target
                    .vars
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect();
                let _ = write!(out, " vars {{{}}}", vars.join(", "));
            }
            out.push('\n');
        }
        self.notify_summary(&mut out);
        out
    }

    fn notify_summary(&self, out: &mut String) {
        let notify = &self.notify;
        let _ = writeln!(out, "receivers: {}", notify.receivers.len());
        for receiver in &notify.receivers {
            let _ = write!(out, "  - {} ({}", receiver.name, receiver.kind.as_str());
            match &receiver.kind {
                crate::notify::ReceiverKind::Webhook(webhook) => {
                    let format = match webhook.format {
                        crate::notify::WebhookFormat::Alertmanager => "alertmanager",
                        crate::notify::WebhookFormat::Slack => "slack",
                    };
                    let signed = if webhook.secret.is_some() {
                        ", signed"
                    } else {
                        ""
                    };
                    let _ = write!(out, " {format} to {}{signed}", redacted_url(&webhook.url));
                }
                crate::notify::ReceiverKind::Email(email) => {
                    let _ = write!(
                        out,
                        " via {}:{} to {}",
                        email.host,
                        email.port,
                        email.to.join(", ")
                    );
                }
                crate::notify::ReceiverKind::Alertmanager(alertmanager) => {
                    let _ = write!(out, " at {}", redacted_url(&alertmanager.url));
                }
                crate::notify::ReceiverKind::Console => {}
            }
            let resolved = if receiver.send_resolved {
                ""
            } else {
                ", no resolved"
            };
            let _ = writeln!(out, "{resolved})");
        }
        let _ = writeln!(out, "routes:    {}", notify.routes.len());
        for route in &notify.routes {
            let matchers: Vec<String> = route.matchers.iter().map(ToString::to_string).collect();
            let matched = if matchers.is_empty() {
                "everything".to_string()
            } else {
                matchers.join(", ")
            };
            let group_by = match &route.group_by {
                crate::notify::GroupBy::All => "...".to_string(),
                crate::notify::GroupBy::Labels(names) => names.join(", "),
            };
            let _ = writeln!(
                out,
                "  - {matched} -> {}{} (group by [{group_by}], wait {}, interval {}, repeat {})",
                route.receivers.join(", "),
                if route.continue_ { ", continue" } else { "" },
                format_duration(route.timing.group_wait),
                format_duration(route.timing.group_interval),
                format_duration(route.timing.repeat_interval),
            );
        }
        if !notify.inhibit.is_empty() {
            let _ = writeln!(out, "inhibit:   {} rules", notify.inhibit.len());
        }
    }
}

/// A URL for display: scheme, host and port only. Webhook paths often carry a token
/// (Slack's do), so they are never printed.
pub fn redacted_url(url: &reqwest::Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    if url.path() != "/" || url.query().is_some() {
        shown.push_str("/…");
    }
    shown
}

struct Validator<'a> {
    path: &'a Path,
    env: &'a dyn Environment,
    files: &'a dyn Files,
}

fn location<T>(spanned: &Spanned<T>) -> Option<(u64, u64)> {
    Some((spanned.referenced.line(), spanned.referenced.column()))
}

impl Validator<'_> {
    fn error<T>(&self, at: &Spanned<T>, message: impl Into<String>) -> FileError {
        FileError::at(self.path, location(at), message)
    }

    fn config(&self, raw: RawConfig) -> Result<Config, FileError> {
        let base_dir = self
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let database = self.database(&raw, &base_dir)?;
        let schedule = match &raw.schedule {
            Some(text) => Schedule::parse(&text.value)
                .map_err(|message| self.error(text, format!("key `schedule`: {message}")))?,
            None => Schedule::Every(Duration::from_secs(10)),
        };
        let jitter = self.duration(raw.jitter.as_ref(), "jitter", Duration::from_secs(2))?;
        let (api, default_key_env) = self.api(raw.api.as_ref())?;
        let raw_retention = raw.retention.as_ref();
        let retention_age =
            |key: &str, pick: fn(&RawRetention) -> Option<&Spanned<String>>, days: u64| {
                self.duration(
                    raw_retention.and_then(pick),
                    &format!("retention.{key}"),
                    Duration::from_secs(days * 86_400),
                )
            };
        let retention = Retention {
            samples: retention_age("samples", |r| r.samples.as_ref(), 14)?,
            notifications: retention_age("notifications", |r| r.notifications.as_ref(), 30)?,
            silences: retention_age("silences", |r| r.silences.as_ref(), 30)?,
            alerts: retention_age("alerts", |r| r.alerts.as_ref(), 90)?,
            recommendations: retention_age("recommendations", |r| r.recommendations.as_ref(), 90)?,
            rollups: retention_age("rollups", |r| r.rollups.as_ref(), 400)?,
        };
        let target_down_after = match &raw.target_down_after {
            Some(count) if count.value == 0 => {
                return Err(self.error(count, "key `target_down_after`: must be at least 1"));
            }
            Some(count) => count.value,
            None => 3,
        };
        let rule_files = self.rule_files(&raw.rules, &base_dir)?;
        let rule_patterns = raw
            .rules
            .iter()
            .map(|pattern| base_dir.join(&pattern.value))
            .collect();
        let reload = self.reload(raw.reload.as_ref())?;
        let ha = self.ha(raw.ha.as_ref())?;
        if let (Some(_), Some(raw_ha)) = (&ha, &raw.ha)
            && database.sqlite_path().is_some()
        {
            return Err(self.error(
                raw_ha,
                "key `ha`: replicas share a PostgreSQL database (`database: postgres://...` or \
                 `database_env`); a SQLite file has one process",
            ));
        }
        let http = self.http(&raw)?;
        let mut notify = self.notify(raw.notify.as_ref(), raw.external_url.as_ref(), &base_dir)?;
        if let (None, Some(listen)) = (&raw.external_url, http.listen) {
            notify.external_url = format!("http://{listen}");
        }
        if let Some(extra) = raw.targets.value.get(MAX_TARGETS) {
            return Err(self.error(
                extra,
                format!(
                    "key `targets`: more than {MAX_TARGETS} targets; split them across instances"
                ),
            ));
        }
        let mut names = HashSet::new();
        let mut targets = Vec::with_capacity(raw.targets.value.len());
        for raw_target in &raw.targets.value {
            let target = self.target(raw_target, &default_key_env)?;
            if !names.insert(target.name.clone()) {
                return Err(self.error(
                    &raw_target.value.name,
                    format!(
                        "key `name`: target `{}` is defined twice; names must be unique",
                        target.name
                    ),
                ));
            }
            targets.push(target);
        }
        Ok(Config {
            path: self.path.to_path_buf(),
            database,
            api,
            schedule,
            jitter,
            targets,
            target_down_after,
            rule_files,
            rule_patterns,
            reload,
            retention,
            notify,
            http,
            metrics: MetricsConfig {
                per_worker: raw
                    .metrics
                    .and_then(|metrics| metrics.per_worker)
                    .unwrap_or(false),
            },
            ha,
        })
    }

    fn ha(&self, raw: Option<&Spanned<raw::RawHa>>) -> Result<Option<HaConfig>, FileError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let mode = match &raw.value.mode {
            None => HaMode::Leader,
            Some(mode) if mode.value == "leader" => HaMode::Leader,
            Some(mode) if mode.value == "shard" => HaMode::Shard,
            Some(mode) => {
                return Err(self.error(
                    mode,
                    format!(
                        "key `ha.mode`: unknown mode `{}`; expected `leader` or `shard`",
                        mode.value
                    ),
                ));
            }
        };
        let failover = self.duration(raw.value.failover.as_ref(), "ha.failover", HA_FAILOVER)?;
        if let Some(failover_key) = raw.value.failover.as_ref()
            && failover < MIN_HA_FAILOVER
        {
            return Err(self.error(
                failover_key,
                format!(
                    "key `ha.failover`: must be at least {}",
                    format_duration(MIN_HA_FAILOVER)
                ),
            ));
        }
        let replica_id = match &raw.value.replica_id {
            Some(id) if id.value.trim().is_empty() || id.value.chars().any(char::is_control) => {
                return Err(self.error(id, "key `ha.replica_id`: must be a non-empty line of text"));
            }
            Some(id) => id.value.clone(),
            None => default_replica_id(self.env),
        };
        Ok(Some(HaConfig {
            mode,
            failover,
            replica_id,
        }))
    }

    fn reload(&self, raw: Option<&Spanned<raw::RawReload>>) -> Result<ReloadConfig, FileError> {
        let watch = raw
            .and_then(|reload| reload.value.watch.as_ref())
            .is_some_and(|watch| watch.value);
        let interval = raw.and_then(|reload| reload.value.watch_interval.as_ref());
        let watch_interval =
            self.duration(interval, "reload.watch_interval", Duration::from_secs(2))?;
        if let Some(interval) = interval.filter(|_| watch_interval.is_zero()) {
            return Err(self.error(interval, "key `reload.watch_interval`: must be above 0"));
        }
        Ok(ReloadConfig {
            watch,
            watch_interval,
        })
    }

    /// `listen` and `listen_token_env`: a missing `listen` is the default address, `null`
    /// turns the server off, and a non-loopback address needs a token.
    fn http(&self, raw: &RawConfig) -> Result<HttpConfig, FileError> {
        let token = match &raw.listen_token_env {
            Some(variable) => Some(self.secret(variable, "listen_token_env")?),
            None => None,
        };
        let listen = match &raw.listen {
            None => Some(DEFAULT_LISTEN.parse().expect("the default address parses")),
            Some(None) => None,
            Some(Some(text)) => {
                let address: SocketAddr = text.value.trim().parse().map_err(|_| {
                    self.error(
                        text,
                        format!(
                            "key `listen`: `{}` is not a socket address; write e.g. \
                             127.0.0.1:9469, [::1]:9469 or 0.0.0.0:9469 (or null to turn the \
                             HTTP API off)",
                            text.value
                        ),
                    )
                })?;
                if !address.ip().is_loopback() && token.is_none() {
                    return Err(self.error(
                        text,
                        format!(
                            "key `listen`: {address} is not a loopback address, so the HTTP API \
                             needs a bearer token; set `listen_token_env` to the environment \
                             variable that holds it"
                        ),
                    ));
                }
                Some(address)
            }
        };
        Ok(HttpConfig { listen, token })
    }

    /// Resolves `rules:` globs against the config file's folder. A plain path that does not
    /// exist is an error; a glob that matches nothing is allowed (the folder may be empty).
    fn rule_files(
        &self,
        patterns: &[Spanned<String>],
        base_dir: &Path,
    ) -> Result<Vec<PathBuf>, FileError> {
        let mut files = Vec::new();
        for pattern in patterns {
            let joined = base_dir.join(&pattern.value);
            let text = joined.to_string_lossy().into_owned();
            if !is_glob(&pattern.value) {
                if !self.files.is_file(&joined) {
                    return Err(self.error(
                        pattern,
                        format!(
                            "key `rules`: rule file `{}` does not exist",
                            joined.display()
                        ),
                    ));
                }
                if !files.contains(&joined) {
                    files.push(joined);
                }
                continue;
            }
            let matched = self.files.glob(&text).map_err(|error| {
                self.error(
                    pattern,
                    format!("key `rules`: bad glob `{}`: {error}", pattern.value),
                )
            })?;
            for file in matched {
                if !files.contains(&file) {
                    files.push(file);
                }
            }
        }
        Ok(files)
    }

    fn api(
        &self,
        raw: Option<&Spanned<RawApi>>,
    ) -> Result<(ApiConfig, Option<Spanned<String>>), FileError> {
        let empty = RawApi {
            base_url: None,
            api_key_env: None,
            timeout: None,
            concurrency: None,
            max_body: None,
        };
        let api = raw.map(|spanned| &spanned.value).unwrap_or(&empty);
        let base_url = match &api.base_url {
            Some(url) => {
                let parsed = reqwest::Url::parse(&url.value)
                    .map_err(|e| self.error(url, format!("key `api.base_url`: not a URL ({e})")))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(self.error(url, "key `api.base_url`: must be http:// or https://"));
                }
                url.value.trim_end_matches('/').to_string()
            }
            None => DEFAULT_BASE_URL.to_string(),
        };
        let concurrency = match &api.concurrency {
            Some(value) if value.value == 0 => {
                return Err(self.error(value, "key `api.concurrency`: must be at least 1"));
            }
            Some(value) => value.value as usize,
            None => 16,
        };
        let max_body = match &api.max_body {
            Some(text) => parse_size(&text.value)
                .map_err(|message| self.error(text, format!("key `api.max_body`: {message}")))?,
            None => DEFAULT_MAX_BODY,
        };
        let timeout =
            self.duration(api.timeout.as_ref(), "api.timeout", Duration::from_secs(10))?;
        if timeout.is_zero() {
            let at = api.timeout.as_ref().expect("a zero timeout was written");
            return Err(self.error(at, "key `api.timeout`: must be longer than 0s"));
        }
        let config = ApiConfig {
            base_url,
            timeout,
            concurrency,
            max_body,
        };
        Ok((config, api.api_key_env.clone()))
    }

    fn target(
        &self,
        raw: &Spanned<RawTarget>,
        default_key_env: &Option<Spanned<String>>,
    ) -> Result<Target, FileError> {
        let target = &raw.value;
        let name = target.name.value.trim().to_string();
        if name.is_empty() {
            return Err(self.error(&target.name, "key `name`: a target needs a name"));
        }
        let (kind, vast_id) = match (&target.endpoint, &target.worker_group) {
            (Some(id), None) => (TargetKind::Endpoint, id),
            (None, Some(id)) => (TargetKind::WorkerGroup, id),
            (Some(_), Some(id)) => {
                return Err(self.error(
                    id,
                    format!("target `{name}`: give `endpoint` or `worker_group`, not both"),
                ));
            }
            (None, None) => {
                return Err(self.error(
                    raw,
                    format!("target `{name}`: needs `endpoint: ID` or `worker_group: ID`"),
                ));
            }
        };
        if vast_id.value <= 0 {
            return Err(self.error(
                vast_id,
                format!("target `{name}`: the id must be a positive number"),
            ));
        }
        for label in target.labels.keys() {
            if RESERVED_LABELS.contains(&label.as_str()) {
                return Err(self.error(
                    raw,
                    format!(
                        "target `{name}`: label `{label}` is reserved; vastwatch sets it itself"
                    ),
                ));
            }
            if !is_identifier(label) {
                return Err(self.error(
                    raw,
                    format!(
                        "target `{name}`: label name `{label}` must match [a-zA-Z_][a-zA-Z0-9_]*"
                    ),
                ));
            }
        }
        for (var, value) in &target.vars {
            if !is_identifier(var) {
                return Err(self.error(
                    raw,
                    format!("target `{name}`: var name `{var}` must match [a-zA-Z_][a-zA-Z0-9_]*"),
                ));
            }
            if !value.is_finite() {
                return Err(self.error(
                    raw,
                    format!("target `{name}`: var `{var}` must be a finite number"),
                ));
            }
        }
        let api_key = match (&target.api_key_env, default_key_env) {
            (Some(own), _) => self.secret(own, &format!("targets[{name}].api_key_env"))?,
            (None, Some(default)) => self.secret(default, "api.api_key_env")?,
            (None, None) => match self.env.var(DEFAULT_API_KEY_ENV) {
                Some(value) if !value.is_empty() => Secret::new(value),
                _ => {
                    return Err(FileError::whole_file(
                        self.path,
                        format!(
                            "environment variable `{DEFAULT_API_KEY_ENV}` is not set; it holds the \
                             Vast API key (the default of `api.api_key_env`)"
                        ),
                    ));
                }
            },
        };
        let scaling = match &target.scaling {
            Some(scaling) => self.scaling(&name, scaling)?,
            None => ScalingConfig::default(),
        };
        Ok(Target {
            name,
            kind,
            vast_id: vast_id.value,
            labels: target.labels.clone(),
            vars: target.vars.clone(),
            api_key,
            scaling,
        })
    }

    fn scaling(&self, target: &str, raw: &Spanned<RawScaling>) -> Result<ScalingConfig, FileError> {
        let scaling = &raw.value;
        let defaults = ScalingConfig::default();
        let fraction =
            |value: &Option<Spanned<f64>>, key: &str, default: f64, zero_ok: bool| match value {
                None => Ok(default),
                Some(value)
                    if value.value.is_finite()
                        && value.value <= 1.0
                        && (value.value > 0.0 || (zero_ok && value.value == 0.0)) =>
                {
                    Ok(value.value)
                }
                Some(value) => Err(self.error(
                    value,
                    format!(
                        "key `scaling.{key}` of target `{target}`: must be a number {}",
                        if zero_ok {
                            "from 0 to 1"
                        } else {
                            "above 0, at most 1"
                        }
                    ),
                )),
            };
        let config = ScalingConfig {
            target_util: fraction(
                &scaling.target_util,
                "target_util",
                defaults.target_util,
                false,
            )?,
            min_workers: scaling.min_workers.as_ref().map(|v| v.value),
            max_workers: scaling.max_workers.as_ref().map(|v| v.value),
            cold_start: self.duration(
                scaling.cold_start.as_ref(),
                "scaling.cold_start",
                defaults.cold_start,
            )?,
            tolerance: fraction(&scaling.tolerance, "tolerance", defaults.tolerance, true)?,
            lookback: self.duration(
                scaling.lookback.as_ref(),
                "scaling.lookback",
                defaults.lookback,
            )?,
            scale_down_window: self.duration(
                scaling.scale_down_window.as_ref(),
                "scaling.scale_down_window",
                defaults.scale_down_window,
            )?,
            replace_below: fraction(
                &scaling.replace_below,
                "replace_below",
                defaults.replace_below,
                true,
            )?,
            stuck_after: self.duration(
                scaling.stuck_after.as_ref(),
                "scaling.stuck_after",
                defaults.stuck_after,
            )?,
        };
        if let (Some(min), Some(max)) = (config.min_workers, config.max_workers)
            && min > max
        {
            return Err(self.error(
                raw,
                format!("target `{target}`: scaling.min_workers ({min}) is above scaling.max_workers ({max})"),
            ));
        }
        Ok(config)
    }

    /// `database` or `database_env` (not both). A password may come only from the
    /// environment, and no error repeats a URL.
    fn database(&self, raw: &RawConfig, base_dir: &Path) -> Result<Database, FileError> {
        match (&raw.database, &raw.database_env) {
            (Some(_), Some(variable)) => Err(self.error(
                variable,
                "key `database_env`: set either `database` or `database_env`, not both",
            )),
            (Some(database), None) => {
                let parsed = Database::parse(&database.value, base_dir).map_err(|message| {
                    self.error(database, format!("key `database`: {message}"))
                })?;
                match &parsed {
                    Database::Postgres(url) if url.has_password() => Err(self.error(
                        database,
                        "key `database`: the URL carries a password, which must not be written                          in the config file; put the URL in an environment variable and name it                          with `database_env` (for example `database_env: VASTWATCH_DATABASE_URL`)",
                    )),
                    _ => Ok(parsed),
                }
            }
            (None, Some(variable)) => {
                let name = variable.value.trim();
                if name.is_empty() {
                    return Err(
                        self.error(variable, "key `database_env`: name an environment variable")
                    );
                }
                let value = match self.env.database_var(name) {
                    Some(value) if !value.trim().is_empty() => value,
                    Some(_) => {
                        return Err(self.error(
                            variable,
                            format!("key `database_env`: environment variable `{name}` is empty"),
                        ));
                    }
                    None => {
                        return Err(self.error(
                            variable,
                            format!("key `database_env`: environment variable `{name}` is not set"),
                        ));
                    }
                };
                Database::parse(&value, base_dir).map_err(|message| {
                    self.error(
                        variable,
                        format!("key `database_env`: the value of `{name}` {message}"),
                    )
                })
            }
            (None, None) => Ok(Database::Sqlite(base_dir.join("vastwatch.db"))),
        }
    }

    fn secret(&self, env_key: &Spanned<String>, key: &str) -> Result<Secret, FileError> {
        let variable = env_key.value.trim();
        if variable.is_empty() {
            return Err(self.error(
                env_key,
                format!("key `{key}`: name an environment variable"),
            ));
        }
        let value = self.env.var(variable);
        if value.is_none() && !looks_like_variable_name(variable) {
            // Likely the secret itself, pasted where its variable's name belongs: the
            // message must not repeat it into logs.
            return Err(self.error(
                env_key,
                format!(
                    "key `{key}`: takes the name of an environment variable (such as \
                     `VAST_API_KEY`), and no variable of this name is set; if this is the \
                     secret itself, move it into a variable (it is not repeated here)"
                ),
            ));
        }
        match value {
            Some(value) if !value.is_empty() => Ok(Secret::new(value)),
            Some(_) => Err(self.error(
                env_key,
                format!("key `{key}`: environment variable `{variable}` is empty"),
            )),
            None => Err(self.error(
                env_key,
                format!("key `{key}`: environment variable `{variable}` is not set"),
            )),
        }
    }

    fn duration(
        &self,
        raw: Option<&Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, FileError> {
        match raw {
            Some(text) => parse_duration(&text.value)
                .map_err(|e| self.error(text, format!("key `{key}`: {e}"))),
            None => Ok(default),
        }
    }
}

/// What loading a config asks of the file system: whether a `rules:` path is a file, and
/// which files a `rules:` glob matches. [`FileSystem`] answers from the real one.
pub trait Files {
    fn is_file(&self, path: &Path) -> bool;
    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, glob::PatternError>;
}

/// The real file system.
pub struct FileSystem;

impl Files for FileSystem {
    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }

    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, glob::PatternError> {
        glob_files(pattern)
    }
}

/// Whether a `rules` entry is a glob rather than a plain path.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// The files a `rules` glob matches now, sorted: what a load reads, and what the reload
/// watcher compares.
pub fn glob_files(pattern: &str) -> Result<Vec<PathBuf>, glob::PatternError> {
    let mut files: Vec<PathBuf> = glob::glob(pattern)?
        .filter_map(Result::ok)
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// An environment variable's name as people write them: upper-case letters, digits and `_`,
/// not starting with a digit. Anything else in a `*_env` key may be a pasted secret.
fn looks_like_variable_name(name: &str) -> bool {
    is_identifier(name) && !name.bytes().any(|byte| byte.is_ascii_lowercase())
}

/// Whether `name` is a valid label, var or identifier name.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `16MiB`, `512KiB`, `1GB`, `1000` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{trimmed}` is not a size; write e.g. 16MiB, 512KiB or 1000000"))?;
    let multiplier: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "`{other}` is not a size unit; use B, KiB, MiB, GiB, KB, MB or GB"
            ));
        }
    };
    let bytes = number * multiplier;
    if !(1.0..=1e12).contains(&bytes) {
        return Err(format!("`{trimmed}` is out of range (1 byte to 1 TB)"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod notify_tests;

#[cfg(test)]
mod http_tests;

/// `HOSTNAME-PID`: unique among replicas on different hosts and among processes on one.
fn default_replica_id(env: &dyn Environment) -> String {
    let host = env
        .var("HOSTNAME")
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "vastwatch".to_string());
    format!("{host}-{}", std::process::id())
}
