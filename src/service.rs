//! The long-running service around the daemon (`vastwatch run`): starts it, replaces it
//! with one built from the new config on reload (SIGHUP, `POST /-/reload`, changed files),
//! and stops it on shutdown. The daemon itself knows nothing about reloads.
//!
//! A reload loads and validates the whole new config and every rule file first. Only when
//! that succeeds is the running daemon stopped (its in-flight poll, evaluation and writes
//! finish) and a new one started on the same open store; the new daemon resumes alert
//! timers, history windows and the outbox from the store exactly as after a restart, so the
//! state of unchanged rules carries over and nothing fires twice.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::config::{Config, Environment, FileError, glob_files, is_glob};
use crate::daemon::{Daemon, DaemonError, load_rules};
use crate::rules::RuleSet;
use crate::store::{Lease, Role, Store};
use crate::time::Timestamp;

/// A reload request: the requester gets the outcome, `Err` carrying the message to show.
pub type ReloadReply = oneshot::Sender<Result<(), String>>;

/// Why a reload was asked for, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadCause {
    Signal,
    Request,
    FileChange,
}

impl ReloadCause {
    fn as_str(self) -> &'static str {
        match self {
            ReloadCause::Signal => "SIGHUP",
            ReloadCause::Request => "POST /-/reload",
            ReloadCause::FileChange => "a changed file",
        }
    }
}

/// Told about every reload attempt (the metrics record them).
pub trait ReloadObserver: Send + Sync {
    fn reloaded(&self, ok: bool);
}

impl ReloadObserver for () {
    fn reloaded(&self, _ok: bool) {}
}

/// Loads a config and its rules, the way `run` and a reload do.
pub trait ConfigSource: Send + Sync {
    fn load(&self) -> Result<(Config, RuleSet), FileError>;
}

/// The config file at a path, with secrets from an environment.
pub struct FileSource {
    pub path: PathBuf,
    pub env: Box<dyn Environment + Send + Sync>,
}

impl ConfigSource for FileSource {
    fn load(&self) -> Result<(Config, RuleSet), FileError> {
        let config = Config::load(&self.path, self.env.as_ref())?;
        let rules = load_rules(&config)?;
        Ok((config, rules))
    }
}

/// This replica's part among replicas sharing one database, for `/api/v1/status`,
/// `/readyz` and `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaState {
    /// The replica id (`ha.replica_id`); `None` without `ha:`, where this process alone
    /// uses its database and always leads.
    pub replica: Option<String>,
    pub role: Role,
    /// The last renewal that reached the database.
    pub renewed_at: Option<Timestamp>,
    /// `ha.failover`, when `ha:` is set.
    pub failover: Option<Duration>,
}

impl ReplicaState {
    /// A process without `ha:`: it alone uses its database, and leads.
    pub fn single() -> ReplicaState {
        ReplicaState {
            replica: None,
            role: Role::Leader,
            renewed_at: None,
            failover: None,
        }
    }
}

/// The running service: the current daemon and the ways to reload it.
pub struct Service {
    source: Box<dyn ConfigSource>,
    clock: Clock,
    current: watch::Sender<Arc<Daemon>>,
    requests: mpsc::Receiver<ReloadReply>,
    request_sender: mpsc::Sender<ReloadReply>,
    observer: Arc<dyn ReloadObserver>,
    /// Applied to every daemon the service starts (the first and each reload's).
    prepare: Box<dyn Fn(Daemon) -> Daemon + Send + Sync>,
    /// The leader lease with `ha:`; without it this process always leads.
    lease: Option<Lease>,
    replica: watch::Sender<ReplicaState>,
    /// Whether the last renewal failed, so a database outage is logged once, not at
    /// every renewal.
    lease_failing: bool,
    /// Renewals as a standby since its daemon last re-read the shared state.
    standby_renewals: u32,
}

impl Service {
    /// Starts the first daemon from an already loaded config. `prepare` is applied to it
    /// and to every daemon a reload starts (to attach metrics, say).
    pub async fn start(
        source: Box<dyn ConfigSource>,
        config: Config,
        rules: RuleSet,
        clock: Clock,
        prepare: Box<dyn Fn(Daemon) -> Daemon + Send + Sync>,
    ) -> Result<Service, DaemonError> {
        let store = Store::open(&config.database).await?;
        let mut state = ReplicaState::single();
        let mut lease = None;
        if let Some(ha) = &config.ha {
            let mut replica_lease = store.lease(&ha.replica_id, ha.failover, clock.now());
            let now = clock.now();
            let renewed = replica_lease.renew(now).await;
            if let Err(lease_error) = &renewed {
                warn!(error = %lease_error, "Cannot reach the leader lease; starting as a standby.");
            }
            state = ReplicaState {
                replica: Some(ha.replica_id.clone()),
                role: role_of(renewed.as_ref().is_ok_and(|held| *held)),
                renewed_at: renewed.is_ok().then_some(now),
                failover: Some(ha.failover),
            };
            lease = Some(replica_lease);
        }
        let daemon = start_daemon(store, config, rules, clock.clone(), state.role).await?;
        let (current, _) = watch::channel(Arc::new(prepare(daemon)));
        let (request_sender, requests) = mpsc::channel(8);
        let (replica, _) = watch::channel(state);
        Ok(Service {
            source,
            clock,
            current,
            requests,
            request_sender,
            observer: Arc::new(()),
            prepare,
            lease,
            replica,
            lease_failing: false,
            standby_renewals: 0,
        })
    }

    pub fn with_observer(mut self, observer: Arc<dyn ReloadObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// The daemon now running; it changes on every successful reload.
    pub fn daemon(&self) -> watch::Receiver<Arc<Daemon>> {
        self.current.subscribe()
    }

    /// This replica's role and last renewal; changes at every renewal.
    pub fn replica(&self) -> watch::Receiver<ReplicaState> {
        self.replica.subscribe()
    }

    /// Where `POST /-/reload` sends its requests.
    pub fn reload_sender(&self) -> mpsc::Sender<ReloadReply> {
        self.request_sender.clone()
    }

    /// Runs the current daemon until `shutdown`, reloading it on request, on SIGHUP and,
    /// when `reload.watch` is set, when a config or rule file changes. On shutdown the
    /// daemon finishes its in-flight work and the store is closed.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        tokio::pin!(shutdown);
        let mut hangups = hangup_signals();
        let (changes_sender, mut changes) = mpsc::channel::<()>(1);
        let watcher = tokio::spawn(watch_files(
            self.current.subscribe(),
            self.clock.clone(),
            changes_sender,
        ));
        let mut running = self.spawn_current();
        loop {
            let renew_every = self.renew_every();
            tokio::select! {
                _ = &mut shutdown => break,
                _ = &mut running.task => {
                    warn!("The daemon stopped by itself (its schedule has no further ticks).");
                    break;
                }
                Some(reply) = self.requests.recv() => {
                    let outcome = self.reload(&mut running, ReloadCause::Request).await;
                    let _ = reply.send(outcome);
                }
                Some(()) = recv_hangup(&mut hangups) => {
                    let _ = self.reload(&mut running, ReloadCause::Signal).await;
                }
                Some(()) = changes.recv() => {
                    let _ = self.reload(&mut running, ReloadCause::FileChange).await;
                }
                _ = self.clock.sleep(renew_every), if self.lease.is_some() => {
                    self.renew(&mut running).await;
                }
            }
        }
        watcher.abort();
        running.stop().await;
        if let Some(lease) = self.lease.as_mut() {
            lease.release().await;
        }
        let daemon = Arc::clone(&self.current.borrow());
        if let Err(store_error) = daemon.store().clone().close().await {
            warn!(error = %store_error, "Closing the database failed.");
        }
        info!("Stopped.");
        Ok(())
    }

    fn spawn_current(&self) -> Running {
        let daemon = Arc::clone(&self.current.borrow());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(daemon.run_until(async move {
            let _ = stopped.await;
        }));
        Running { stop, task }
    }

    /// One reload: validate the new config, then swap daemons. On any failure the old
    /// config keeps running (or runs again) and the error is returned.
    async fn reload(&mut self, running: &mut Running, cause: ReloadCause) -> Result<(), String> {
        info!(cause = cause.as_str(), "Reloading the config.");
        let outcome = self.try_reload(running).await;
        match &outcome {
            Ok(()) => info!(cause = cause.as_str(), "Config reloaded."),
            Err(message) => {
                error!(cause = cause.as_str(), error = %message, "Reload failed; the previous config keeps running.")
            }
        }
        self.observer.reloaded(outcome.is_ok());
        outcome
    }

    async fn try_reload(&mut self, running: &mut Running) -> Result<(), String> {
        let (config, rules) = self.source.load().map_err(|error| error.to_string())?;
        let old = Arc::clone(&self.current.borrow());
        if config.database != old.config().database {
            return Err(format!(
                "{}: key `database`: the database cannot change on reload (from {} to {}); restart vastwatch instead",
                config.path.display(),
                old.config().database.display(),
                config.database.display()
            ));
        }
        if config.http.listen != old.config().http.listen {
            warn!(
                listening = ?old.config().http.listen,
                configured = ?config.http.listen,
                "`listen` changes take effect at the next restart; the HTTP API stays where it is."
            );
        }
        let previous = std::mem::replace(running, Running::finished());
        previous.stop().await;
        let store = old.store().clone();
        let role = self.replica.borrow().role;
        match start_daemon(store, config, rules, self.clock.clone(), role).await {
            Ok(daemon) => {
                self.current.send_replace(Arc::new((self.prepare)(daemon)));
                *running = self.spawn_current();
                Ok(())
            }
            Err(start_error) => {
                // The old daemon's config was valid a moment ago; run it again.
                *running = self.spawn_current();
                Err(format!("the new config could not start: {start_error}"))
            }
        }
    }
}

impl Service {
    /// Renewals and takeover attempts come three times per failover bound.
    fn renew_every(&self) -> Duration {
        let failover = self
            .replica
            .borrow()
            .failover
            .unwrap_or(Duration::from_secs(15));
        failover / 3
    }

    /// One renewal of the leader lease; starts leading or stops, as it says.
    async fn renew(&mut self, running: &mut Running) {
        let Some(lease) = self.lease.as_mut() else {
            return;
        };
        let now = self.clock.now();
        let was_leading = self.replica.borrow().role == Role::Leader;
        let leads = match lease.renew(now).await {
            Ok(held) => {
                if self.lease_failing {
                    info!("The leader lease answers again.");
                    self.lease_failing = false;
                }
                self.replica
                    .send_modify(|state| state.renewed_at = Some(now));
                held
            }
            Err(lease_error) => {
                if was_leading {
                    error!(error = %lease_error, "Lost the leader lease; stopping polling at once.");
                } else if !self.lease_failing {
                    warn!(error = %lease_error, "Cannot reach the leader lease; standing by.");
                }
                self.lease_failing = true;
                false
            }
        };
        if leads == was_leading {
            if !leads {
                self.refresh_standby(running).await;
            }
            return;
        }
        if leads {
            info!("This replica leads now: resuming the shared state and polling.");
        }
        if let Err(message) = self.switch_role(running, role_of(leads)).await {
            error!(error = %message, "Cannot change role; standing by.");
            if leads && let Some(lease) = self.lease.as_mut() {
                lease.release().await;
            }
        }
    }

    /// Stops the current daemon and starts one in `role` from the config files as they
    /// are now. A leader that lost its lease is cut short rather than waited for: another
    /// replica may already lead.
    async fn switch_role(&mut self, running: &mut Running, role: Role) -> Result<(), String> {
        let (config, rules) = self.source.load().map_err(|error| error.to_string())?;
        let previous = std::mem::replace(running, Running::finished());
        if role == Role::Leader {
            previous.stop().await;
        } else {
            previous.abort().await;
        }
        self.replica.send_modify(|state| state.role = Role::Standby);
        let store = self.current.borrow().store().clone();
        let outcome = start_daemon(store, config, rules, self.clock.clone(), role).await;
        let result = match outcome {
            Ok(daemon) => {
                self.current.send_replace(Arc::new((self.prepare)(daemon)));
                self.replica.send_modify(|state| state.role = role);
                Ok(())
            }
            Err(start_error) => Err(format!("the daemon could not start: {start_error}")),
        };
        self.standby_renewals = 0;
        *running = self.spawn_current();
        result
    }

    /// A standby re-reads the leader's state (alerts, recommendations, history window)
    /// once per failover bound, so its API answers stay current.
    async fn refresh_standby(&mut self, running: &mut Running) {
        self.standby_renewals += 1;
        if self.standby_renewals < 3 {
            return;
        }
        if let Err(message) = self.switch_role(running, Role::Standby).await {
            warn!(error = %message, "Cannot refresh the standby's view of the shared state.");
        }
    }
}

fn role_of(leading: bool) -> Role {
    if leading { Role::Leader } else { Role::Standby }
}

/// A leading daemon (polls, evaluates, enqueues) or a standby one (serves the API).
async fn start_daemon(
    store: Store,
    config: Config,
    rules: RuleSet,
    clock: Clock,
    role: Role,
) -> Result<Daemon, DaemonError> {
    match role {
        Role::Leader => Daemon::start_with_store(store, config, rules, clock).await,
        Role::Standby => Daemon::start_standby(store, config, rules, clock).await,
    }
}

/// The running daemon's task and the way to stop it.
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// A placeholder for the moment between stopping one daemon and starting the next.
    fn finished() -> Running {
        let (stop, _) = oneshot::channel();
        Running {
            stop,
            task: tokio::spawn(async {}),
        }
    }

    /// Ends the daemon at once, in-flight writes rolled back: for a leader that lost its
    /// lease, whose writes must not land after another replica took over.
    async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(join_error) = self.task.await
            && join_error.is_panic()
        {
            error!("The daemon task panicked while stopping.");
        }
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

#[cfg(unix)]
fn hangup_signals() -> Hangups {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(signals) => Some(signals),
        Err(signal_error) => {
            warn!(error = %signal_error, "Cannot listen for SIGHUP; reload with POST /-/reload.");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signals() -> Hangups {}

#[cfg(unix)]
async fn recv_hangup(hangups: &mut Hangups) -> Option<()> {
    match hangups {
        Some(signals) => signals.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn recv_hangup(_hangups: &mut Hangups) -> Option<()> {
    std::future::pending().await
}

/// Watches the running config's files when `reload.watch` is set and sends on `changes`
/// when their content changed and then held still for one check (editors write in steps).
///
/// It reads the files rather than subscribing to filesystem events: a few small files
/// every couple of seconds cost nothing, and reading follows editors that save by
/// renaming, Kubernetes ConfigMaps that swap a symlink, and bind mounts where inotify
/// sees nothing.
async fn watch_files(
    mut current: watch::Receiver<Arc<Daemon>>,
    clock: Clock,
    changes: mpsc::Sender<()>,
) {
    let mut loaded = digest_of(current.borrow_and_update().config());
    let mut previous = loaded;
    loop {
        let (watching, interval) = {
            let daemon = current.borrow();
            let reload = &daemon.config().reload;
            (reload.watch, reload.watch_interval)
        };
        tokio::select! {
            _ = clock.sleep(interval) => {}
            changed = current.changed() => {
                if changed.is_err() {
                    return;
                }
                // A reload happened: what it loaded is the new baseline.
                loaded = digest_of(current.borrow_and_update().config());
                previous = loaded;
                continue;
            }
        }
        if !watching {
            continue;
        }
        let now = digest_of(current.borrow().config());
        if now != loaded && now == previous {
            // Do not retry a broken file until it changes again.
            loaded = now;
            if changes.send(()).await.is_err() {
                return;
            }
        }
        previous = now;
    }
}

/// A hash of the config file and every file its `rules` patterns match now.
fn digest_of(config: &Config) -> u64 {
    let mut hasher = DefaultHasher::new();
    hash_file(&config.path, &mut hasher);
    for pattern in &config.rule_patterns {
        for file in expand(pattern) {
            file.hash(&mut hasher);
            hash_file(&file, &mut hasher);
        }
    }
    hasher.finish()
}

fn hash_file(path: &Path, hasher: &mut DefaultHasher) {
    match std::fs::read(path) {
        Ok(bytes) => bytes.hash(hasher),
        Err(read_error) => read_error.kind().hash(hasher),
    }
}

/// The files a `rules` entry matches, as a load would resolve it.
fn expand(pattern: &Path) -> Vec<PathBuf> {
    let text = pattern.to_string_lossy();
    if !is_glob(&text) {
        return vec![pattern.to_path_buf()];
    }
    glob_files(&text).unwrap_or_default()
}
