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

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::config::{Config, Environment, FileError, glob_files, is_glob};
use crate::daemon::{Daemon, DaemonError, load_rules};
use crate::rules::RuleSet;
use crate::store::{Lease, Store};

mod replicas;

pub use replicas::ReplicaState;

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
    /// The config and rules the current daemon runs: a change of role or of owned
    /// targets starts the next daemon from them.
    loaded: (Config, RuleSet),
    /// The lease with `ha:`; without it this process does all the work.
    lease: Option<Lease>,
    replica: watch::Sender<ReplicaState>,
    /// Whether the last renewal failed, so a database outage is logged once, not at
    /// every renewal.
    lease_failing: bool,
    /// Renewals as a standby since its daemon last re-read the shared state.
    standby_renewals: u32,
    /// No daemon runs: not even a standby could start after a change of duties.
    idle: bool,
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
        let mut lease = config
            .ha
            .as_ref()
            .map(|ha| store.lease(&ha.replica_id, ha.failover, clock.now()));
        let (state, duties) = replicas::first_duties(lease.as_mut(), &store, &config, &clock).await;
        let daemon =
            Daemon::start_with_duties(store, config.clone(), rules.clone(), clock.clone(), duties)
                .await?;
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
            loaded: (config, rules),
            lease,
            replica,
            lease_failing: false,
            standby_renewals: 0,
            idle: false,
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
        crate::daemon::close_store(daemon.store()).await;
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
                old.config().database,
                config.database
            ));
        }
        if config.ha != self.loaded.0.ha {
            return Err(format!(
                "{}: key `ha`: replication settings cannot change on reload; restart vastwatch instead",
                config.path.display()
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
        let duties = if self.idle {
            crate::daemon::Duties::standby()
        } else {
            old.duties().clone()
        };
        let started = Daemon::start_with_duties(
            store,
            config.clone(),
            rules.clone(),
            self.clock.clone(),
            duties,
        )
        .await;
        match started {
            Ok(daemon) => {
                self.current.send_replace(Arc::new((self.prepare)(daemon)));
                self.loaded = (config, rules);
                self.idle = false;
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

/// The running daemon's task and the way to stop it.
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Nothing running, until stopped.
    fn idle() -> Running {
        let (stop, stopped) = oneshot::channel::<()>();
        Running {
            stop,
            task: tokio::spawn(async move {
                let _ = stopped.await;
            }),
        }
    }

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
