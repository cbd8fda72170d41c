//! The daemon: waits for schedule ticks, polls every target concurrently (bounded and
//! jittered), and stores each poll as soon as it completes. [`Daemon::tick_once`] is the
//! one-step function under the loop; tests and `poll-once` call it directly.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::advise::Recommendation;
use crate::clock::{Clock, Stopwatch};
use crate::config::{Config, FileError, Target};
use crate::metrics::{Metrics, SkipReason};
use crate::model::{PollRecord, PollResult};
use crate::notify::delivery::DeliveryWorker;
use crate::notify::send::{ConsoleOut, SendBuildError, Sender};
use crate::notify::{Notifier, StepReport};
use crate::poll::{ClientBuildError, PollDecision, Poller, VastClient};
use crate::rules::{
    AlertChange, AlertRecord, Engine, Evaluation, RuleSet, TargetInfo, TargetVars, Transition,
};
use crate::schedule::Ticker;
use crate::store::AttemptRecord;
use crate::store::{
    BACKLOG_LIMIT, Deleted, HistoryFilter, RetentionCutoffs, Store, StoreError, TargetSpec,
};
use crate::time::Timestamp;

/// How long shutdown waits, in all, for in-flight polls, writes and deliveries before
/// abandoning them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(7);
/// How often old samples are deleted.
const RETENTION_EVERY: Duration = Duration::from_secs(600);
/// Most polls written in one transaction.
const WRITE_BATCH: usize = 2_000;

/// Why the daemon could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Client(#[from] ClientBuildError),
    #[error(transparent)]
    Sender(#[from] SendBuildError),
}

/// Hooks for callers that want to see the daemon's progress (the demo prints it).
pub trait Observer: Send + Sync {
    /// A poll, successful or failed, was stored.
    fn poll_stored(&self, record: &PollRecord) {
        let _ = record;
    }

    /// An alert instance changed state; the change is stored.
    fn alert_changed(&self, alert: &AlertRecord, transition: &Transition) {
        let _ = (alert, transition);
    }

    /// A target's recommended action or desired count changed; the row is stored.
    fn recommendation_changed(&self, target: &str, at: Timestamp, recommendation: &Recommendation) {
        let _ = (target, at, recommendation);
    }
}

/// Loads the rule files a config names, checked against its targets and their vars.
pub fn load_rules(config: &Config) -> Result<RuleSet, FileError> {
    load_rule_files(config, &config.rule_files)
}

/// Loads other rule files against a config's targets (`replay --rules`).
pub fn load_rule_files(
    config: &Config,
    files: &[std::path::PathBuf],
) -> Result<RuleSet, FileError> {
    let targets: Vec<TargetVars> = config
        .targets
        .iter()
        .map(|target| TargetVars {
            name: target.name.clone(),
            vars: target.vars.keys().cloned().collect(),
        })
        .collect();
    RuleSet::load(files, &crate::rules::identifiers(), &targets)
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {}

/// Counters of what the daemon did since it started.
#[derive(Debug, Default)]
pub struct DaemonStats {
    pub ticks: AtomicU64,
    pub missed_ticks: AtomicU64,
    pub skipped_in_flight: AtomicU64,
    pub skipped_backing_off: AtomicU64,
    pub polls_stored: AtomicU64,
    pub store_errors: AtomicU64,
}

/// What one tick did.
#[derive(Debug, Default)]
pub struct TickReport {
    /// Polls stored during this tick, in the order they were written: this tick's, after
    /// any that waited in the write backlog.
    pub stored: Vec<PollRecord>,
    /// Targets whose previous poll was still running.
    pub skipped_in_flight: Vec<String>,
    /// Targets backing off after a 429.
    pub skipped_backing_off: Vec<String>,
    /// Polls this tick tried to write and could not; they wait in the store's write
    /// backlog.
    pub unstored: Vec<PollRecord>,
}

/// A running vastwatch: config, store, poller, rule engine and clock.
pub struct Daemon {
    config: Arc<Config>,
    store: Store,
    poller: Arc<Poller>,
    engine: std::sync::Mutex<Engine>,
    clock: Clock,
    semaphore: Arc<Semaphore>,
    stats: Arc<DaemonStats>,
    observer: Arc<dyn Observer>,
    notifier: Arc<Notifier>,
    sender: Sender,
    metrics: Arc<Metrics>,
    /// What this daemon does of the work of replicas sharing its database.
    duties: Duties,
    /// Held while the write backlog is being written, so batches go out in order.
    writing: tokio::sync::Mutex<()>,
}

/// A daemon's share of the work when several replicas share one database (`ha:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duties {
    /// The targets it polls and evaluates; `None` for every configured target.
    pub targets: Option<BTreeSet<String>>,
    /// Whether it queues notifications (groups marks into the outbox), delivers, and
    /// applies retention: the leader's work.
    pub lead: bool,
}

impl Duties {
    /// Everything: a process alone on its database, or the leader in `leader` mode.
    pub fn all() -> Duties {
        Duties {
            targets: None,
            lead: true,
        }
    }

    /// Nothing but the API: a standby.
    pub fn standby() -> Duties {
        Duties {
            targets: Some(BTreeSet::new()),
            lead: false,
        }
    }

    /// Whether `target` is polled under these duties.
    pub fn polls(&self, target: &str) -> bool {
        self.targets
            .as_ref()
            .is_none_or(|targets| targets.contains(target))
    }

    fn is_idle(&self) -> bool {
        !self.lead && self.targets.as_ref().is_some_and(BTreeSet::is_empty)
    }
}

impl Daemon {
    /// Opens the store (applying migrations), records the configured targets, builds the
    /// HTTP client, and resumes the rule engine from stored history and alert state. It
    /// records into metrics of its own until [`Daemon::with_metrics`] gives it the
    /// process's.
    pub async fn start(
        config: Config,
        rules: RuleSet,
        clock: Clock,
    ) -> Result<Daemon, DaemonError> {
        let store = Store::open(&config.database).await?;
        Daemon::start_with_store(store, config, rules, clock).await
    }

    /// [`Daemon::start`] on a store that is already open: a reload hands the running
    /// daemon's store to its successor, so readers never see it closed.
    pub async fn start_with_store(
        store: Store,
        config: Config,
        rules: RuleSet,
        clock: Clock,
    ) -> Result<Daemon, DaemonError> {
        Daemon::start_with_duties(store, config, rules, clock, Duties::all()).await
    }

    /// A daemon that does its share of the work of replicas sharing one database
    /// (`ha:`): it polls and evaluates `duties.targets` only, resuming their alert state
    /// from the database, and queues notifications and applies retention only when it
    /// leads. A standby (no targets, not leading) writes nothing and serves the API.
    pub async fn start_with_duties(
        store: Store,
        config: Config,
        rules: RuleSet,
        clock: Clock,
        duties: Duties,
    ) -> Result<Daemon, DaemonError> {
        let configured: BTreeSet<String> = config
            .targets
            .iter()
            .map(|target| target.name.clone())
            .collect();
        if duties.lead {
            let specs: Vec<TargetSpec> = config.targets.iter().map(target_spec).collect();
            store.sync_targets(&specs).await?;
        }
        let mut config = config;
        if let Some(owned) = &duties.targets {
            config.targets.retain(|target| owned.contains(&target.name));
        }
        let (engine, orphans) = resume_engine(&config, rules, &store, clock.now()).await?;
        // An alert whose rule is gone is retired by whoever polls its target; one whose
        // target is gone from the config, by the leader.
        let orphans: Vec<AlertRecord> = orphans
            .into_iter()
            .filter(|alert| {
                duties.polls(&alert.target) || (duties.lead && !configured.contains(&alert.target))
            })
            .collect();
        retire(&store, &orphans, clock.now()).await?;
        match &config.ha {
            // Alone on its database: any claim is a previous run's, cut short.
            None if duties.lead => {
                store.release_claims(|_| true).await?;
            }
            // This replica's claims are its previous daemon's, stopped mid-send.
            Some(ha) => {
                store
                    .release_claims(|claimant| claimant == ha.replica_id)
                    .await?;
            }
            None => {}
        }
        Daemon::assemble(store, config, engine, clock, duties).await
    }

    async fn assemble(
        store: Store,
        config: Config,
        engine: Engine,
        clock: Clock,
        duties: Duties,
    ) -> Result<Daemon, DaemonError> {
        let client = VastClient::new(&config.api)?;
        let semaphore = Arc::new(Semaphore::new(config.api.concurrency));
        let recommendations = config
            .targets
            .iter()
            .filter_map(|target| {
                let recommendation = engine.recommendation(&target.name)?;
                Some((target.name.clone(), recommendation.clone()))
            })
            .collect();
        let metrics = Arc::new(Metrics::new(clock.now()));
        metrics.prepare(&config);
        let notifier = Notifier::start(
            store.clone(),
            Arc::new(config.notify.clone()),
            clock.clone(),
            recommendations,
            Arc::clone(&metrics),
        )
        .await?;
        Ok(Daemon {
            poller: Arc::new(Poller::new(client, clock.clone())),
            config: Arc::new(config),
            store,
            engine: std::sync::Mutex::new(engine),
            clock,
            semaphore,
            stats: Arc::new(DaemonStats::default()),
            observer: Arc::new(Silent),
            notifier: Arc::new(notifier),
            sender: Sender::new(ConsoleOut::Stdout)?,
            metrics,
            duties,
            writing: tokio::sync::Mutex::new(()),
        })
    }

    /// Records into `metrics` from now on: the process's one [`Metrics`], which outlives
    /// the daemons a reload rebuilds, so counters carry on across reloads.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        metrics.prepare(&self.config);
        self.notifier.set_metrics(Arc::clone(&metrics));
        self.metrics = metrics;
        self
    }

    /// Sends console notifications somewhere other than stdout (tests, the demo).
    pub fn with_console(mut self, console: ConsoleOut) -> Result<Self, DaemonError> {
        self.sender = Sender::new(console)?;
        Ok(self)
    }

    pub fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    /// One delivery worker per receiver.
    fn delivery_workers(&self) -> Vec<DeliveryWorker> {
        self.config
            .notify
            .receivers
            .iter()
            .map(|receiver| DeliveryWorker {
                store: self.store.clone(),
                clock: self.clock.clone(),
                sender: self.sender.clone(),
                receiver: Arc::new(receiver.clone()),
                max_age: self.config.notify.max_age,
                wake: self
                    .notifier
                    .delivery_wake(&receiver.name)
                    .unwrap_or_default(),
                stats: Arc::clone(self.notifier.stats()),
                metrics: Arc::clone(&self.metrics),
                claimant: self
                    .config
                    .ha
                    .as_ref()
                    .map_or_else(|| "vastwatch".to_string(), |ha| ha.replica_id.clone()),
                shared: self.config.ha.is_some(),
            })
            .collect()
    }

    /// Queues notifications for every group now, ignoring group timers, then attempts
    /// each due notification once (`poll-once`). What is not delivered stays queued.
    pub async fn notify_now(&self) -> Result<(StepReport, Vec<AttemptRecord>), StoreError> {
        self.notify_pass(true).await
    }

    /// One pass of the notifier and of every delivery worker at the clock's time, as
    /// their loops in [`Daemon::run`] make it; `flush_all` ignores group timers.
    pub async fn notify_pass(
        &self,
        flush_all: bool,
    ) -> Result<(StepReport, Vec<AttemptRecord>), StoreError> {
        let report = self.notifier.step(flush_all).await?;
        let mut attempts = Vec::new();
        for worker in self.delivery_workers() {
            attempts.extend(worker.deliver_due().await?);
        }
        Ok((report, attempts))
    }

    pub(crate) fn engine(&self) -> std::sync::MutexGuard<'_, Engine> {
        self.engine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Pending and firing alerts as the engine holds them now.
    pub fn active_alerts(&self) -> Vec<AlertRecord> {
        self.engine().active_alerts().cloned().collect()
    }

    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// This daemon's share of the work (`ha:`).
    pub fn duties(&self) -> &Duties {
        &self.duties
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn stats(&self) -> &DaemonStats {
        &self.stats
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// A target's current recommendation, as the last evaluation left it.
    pub fn recommendation(&self, target: &str) -> Option<Recommendation> {
        self.engine().recommendation(target).cloned()
    }

    /// Whether a target is backing off after a 429 at `at` (readiness allows it).
    pub fn is_backing_off(&self, target: &str, at: Timestamp) -> bool {
        self.poller.is_backing_off(target, at)
    }

    /// The metrics this daemon records into; `render` them for `GET /metrics`.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Polls every target that is due at `at` and stores the results. Returns once every
    /// started poll has been stored, handed to a write already in progress, or (while the
    /// database takes no writes) left in the write backlog. Polls stop early (unstored)
    /// when `stop` turns true.
    pub async fn tick_once(&self, at: Timestamp, stop: &watch::Receiver<bool>) -> TickReport {
        self.stats.ticks.fetch_add(1, Ordering::Relaxed);
        let mut report = TickReport::default();
        let interval = self.config.schedule.interval_at(at);
        let (sender, mut receiver) = mpsc::channel::<PollRecord>(self.config.targets.len().max(1));
        let mut polls = JoinSet::new();
        for target in &self.config.targets {
            match self.poller.begin(&target.name, at) {
                PollDecision::Poll => {
                    polls.spawn(self.poll_task(
                        target.clone(),
                        interval,
                        sender.clone(),
                        stop.clone(),
                    ));
                }
                PollDecision::SkipInFlight => {
                    self.stats.skipped_in_flight.fetch_add(1, Ordering::Relaxed);
                    self.metrics
                        .poll_skipped(&target.name, SkipReason::InFlight);
                    self.stats.missed_ticks.fetch_add(1, Ordering::Relaxed);
                    warn!(target = %target.name, tick = %at, "Previous poll still running; this tick is missed for the target.");
                    report.skipped_in_flight.push(target.name.clone());
                }
                PollDecision::SkipBackingOff { until } => {
                    self.stats
                        .skipped_backing_off
                        .fetch_add(1, Ordering::Relaxed);
                    self.metrics
                        .poll_skipped(&target.name, SkipReason::BackingOff);
                    debug!(target = %target.name, until = %until, "Backing off after a 429; poll skipped.");
                    report.skipped_backing_off.push(target.name.clone());
                }
            }
        }
        drop(sender);
        // Group commit: write whatever has completed in one transaction, then wait for more.
        while let Some(first) = receiver.recv().await {
            let mut batch = vec![first];
            while batch.len() < WRITE_BATCH {
                match receiver.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
            self.write_batch(batch, &mut report).await;
        }
        while polls.join_next().await.is_some() {}
        report
    }

    fn poll_task(
        &self,
        target: Target,
        interval: Duration,
        sender: mpsc::Sender<PollRecord>,
        mut stop: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let poller = Arc::clone(&self.poller);
        let semaphore = Arc::clone(&self.semaphore);
        let clock = self.clock.clone();
        let jitter = self.config.jitter;
        let span = info_span!("poll", target = %target.name);
        async move {
            let work = async {
                let delay = random_delay(jitter);
                clock.sleep(delay).await;
                let _permit = semaphore.acquire().await.ok()?;
                Some(poller.poll_target_once(&target, interval).await)
            };
            let record = tokio::select! {
                record = work => record,
                _ = stop.wait_for(|stopping| *stopping) => None,
            };
            match record {
                Some(record) => {
                    log_poll(&record);
                    let _ = sender.send(record).await;
                }
                None => poller.finish(&target.name),
            }
        }
        .instrument(span)
    }

    /// Hands completed polls to the store's write backlog, then writes what waits there,
    /// oldest first, until it is empty or a write fails (docs/reliability.md, "Database
    /// faults"). While the database is down a write may wait out the busy timeout, so
    /// polls that arrive meanwhile are left in the backlog for the write in progress, or
    /// the next tick, instead of queueing behind it.
    async fn write_batch(&self, batch: Vec<PollRecord>, report: &mut TickReport) {
        for record in &batch {
            self.metrics.poll_completed(record);
            self.poller.finish(&record.target);
        }
        let health = self.store.health();
        let dropped = health.backlog().push(batch);
        self.log_dropped(dropped);
        let _writing = if health.is_up() {
            self.writing.lock().await
        } else {
            match self.writing.try_lock() {
                Ok(writing) => writing,
                Err(_) => return,
            }
        };
        loop {
            let batch = health.backlog().take_batch(WRITE_BATCH);
            if batch.is_empty() {
                break;
            }
            if let Err(batch) = self.write_evaluated(batch, report).await {
                report.unstored.extend(batch.iter().cloned());
                let dropped = health.backlog().put_back(batch);
                self.log_dropped(dropped);
                break;
            }
        }
    }

    /// Logs the first polls dropped from a full backlog since a write last succeeded.
    fn log_dropped(&self, dropped: u64) {
        if dropped > 0 && self.store.health().backlog().dropped_unwritten() == dropped {
            warn!(
                limit = BACKLOG_LIMIT,
                "The write backlog is full: the oldest polls are dropped, and counted, until the database takes writes again."
            );
        }
    }

    /// Evaluates the batch's polls (one per target), stores polls and alert changes
    /// together ([`Store::record_evaluated_polls_in_parts`]: one transaction, or on
    /// PostgreSQL several at once for a large batch, each atomic with its evaluations),
    /// and only then commits the stored parts' evaluations to the engine, so memory never
    /// runs ahead of disk. The evaluations of a part whose write failed are discarded and
    /// its polls returned, to be evaluated again when they are retried; polls that no
    /// retry could store (a target the database does not know) are dropped instead.
    async fn write_evaluated(
        &self,
        batch: Vec<PollRecord>,
        report: &mut TickReport,
    ) -> Result<(), Vec<PollRecord>> {
        let evaluations: Vec<_> = {
            let mut engine = self.engine();
            batch
                .iter()
                .map(|record| {
                    let stopwatch = Stopwatch::start();
                    let evaluation = engine.evaluate(record);
                    self.metrics.evaluation_took(stopwatch.elapsed());
                    evaluation
                })
                .collect()
        };
        let parts = self
            .store
            .record_evaluated_polls_in_parts(&batch, &evaluations)
            .await;
        let health = self.store.health();
        let mut records = batch.into_iter();
        let mut evaluations = evaluations.into_iter();
        let mut stored = Vec::new();
        let mut failed = Vec::new();
        let mut failure = None;
        for part in parts {
            let count = part.records.len();
            let part_records: Vec<PollRecord> = records.by_ref().take(count).collect();
            let part_evaluations: Vec<Evaluation> = evaluations.by_ref().take(count).collect();
            match part.result {
                Ok(()) => stored.push((part_records, part_evaluations)),
                Err(store_error) => {
                    self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    self.metrics.store_write_failed();
                    let mut engine = self.engine();
                    for evaluation in part_evaluations {
                        engine.discard(evaluation);
                    }
                    drop(engine);
                    if let StoreError::UnknownTarget { .. } = store_error {
                        // No retry can store these, and waiting for one would hold up every
                        // poll behind them.
                        error!(error = %store_error, polls = part_records.len(), "Could not store polls; they are dropped.");
                        report.unstored.extend(part_records);
                        continue;
                    }
                    failed.extend(part_records);
                    failure.get_or_insert(store_error);
                }
            }
        }
        if failure.is_none() && !stored.is_empty() && health.write_succeeded() {
            let dropped = health.backlog().written();
            info!(
                waiting = health.backlog().len(),
                dropped, "Database writes succeed again; the polls that waited are being written."
            );
        }
        for (records, evaluations) in stored {
            self.apply_stored(records, evaluations, report);
        }
        let Some(store_error) = failure else {
            return Ok(());
        };
        if health.write_failed(&store_error) {
            error!(
                error = %store_error,
                limit = BACKLOG_LIMIT,
                "Database writes are failing: polls go on and wait in memory until they can be written."
            );
        } else {
            debug!(error = %store_error, polls = failed.len(), "Database write failed again.");
        }
        Err(failed)
    }

    /// Reports stored polls and their evaluations, then commits the evaluations to the
    /// engine and wakes the notifier.
    fn apply_stored(
        &self,
        records: Vec<PollRecord>,
        evaluations: Vec<Evaluation>,
        report: &mut TickReport,
    ) {
        self.stats
            .polls_stored
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        for record in &records {
            self.observer.poll_stored(record);
        }
        for evaluation in &evaluations {
            if evaluation.recommendation_changed {
                let recommendation = &evaluation.recommendation;
                info!(
                    target = %evaluation.target,
                    action = recommendation.action.as_str(),
                    current = recommendation.current_workers,
                    desired = recommendation.desired_workers,
                    reason = %recommendation.reason,
                    "Recommendation changed."
                );
                self.observer.recommendation_changed(
                    &evaluation.target,
                    evaluation.at,
                    recommendation,
                );
            }
            for (alert, transition) in evaluation.transitions() {
                info!(
                    alertname = %alert.alertname,
                    target = %alert.target,
                    worker_id = alert.worker_id,
                    from = %transition.from,
                    to = %transition.to,
                    "Alert changed state."
                );
                self.observer.alert_changed(alert, transition);
            }
        }
        for evaluation in &evaluations {
            self.notifier
                .set_recommendation(&evaluation.target, &evaluation.recommendation);
        }
        let mut engine = self.engine();
        for evaluation in evaluations {
            engine.apply(evaluation);
        }
        drop(engine);
        self.notifier.poke();
        report.stored.extend(records);
    }

    /// Applies every `retention:` age: rolls up and deletes old samples, and deletes old
    /// rollups, alert history, recommendations, notifications and silences.
    pub async fn retention_once(&self) -> Result<Deleted, StoreError> {
        let now = self.clock.now();
        let retention = &self.config.retention;
        let cutoffs = RetentionCutoffs {
            samples: now.saturating_sub(retention.samples),
            rollups: now.saturating_sub(retention.rollups),
            alerts: now.saturating_sub(retention.alerts),
            recommendations: now.saturating_sub(retention.recommendations),
            notifications: now.saturating_sub(retention.notifications),
            silences: now.saturating_sub(retention.silences),
        };
        let deleted = self.store.apply_retention(&cutoffs).await?;
        if deleted != Deleted::default() {
            info!(
                polls = deleted.polls,
                samples = deleted.samples,
                rolled_up = deleted.rolled_up,
                rollups = deleted.rollups,
                alert_events = deleted.alert_events,
                alerts = deleted.alerts,
                recommendations = deleted.recommendations,
                notifications = deleted.notifications,
                notification_log = deleted.notification_log,
                silences = deleted.silences,
                "Deleted data past retention."
            );
        }
        Ok(deleted)
    }

    /// Runs until `shutdown` completes: ticks, polls, stores and applies retention. On
    /// shutdown it stops scheduling, lets in-flight writes finish (cancelling polls still
    /// waiting on the network) and closes the store.
    pub async fn run(
        self: Arc<Self>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), DaemonError> {
        Arc::clone(&self).run_until(shutdown).await;
        close_store(&self.store).await;
        Ok(())
    }

    /// [`Daemon::run`] without closing the store, so that a successor can take it over
    /// (reload). Returns when `shutdown` completes and in-flight work has finished, or when
    /// the schedule has no further ticks.
    pub async fn run_until(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let polls = self
            .duties
            .targets
            .as_ref()
            .is_none_or(|targets| !targets.is_empty());
        if self.duties.is_idle() {
            info!(
                database = %self.config.database,
                "vastwatch stands by: another replica leads."
            );
        }
        let (stop_sender, stop) = watch::channel(false);
        let mut ticker = Ticker::new(self.config.schedule.clone(), self.clock.clone());
        let mut ticks = JoinSet::new();
        let mut notify_tasks = JoinSet::new();
        // Every replica delivers (claims keep them from sending a row twice); only the
        // leader queues.
        if self.duties.lead || self.config.ha.is_some() {
            for worker in self.delivery_workers() {
                notify_tasks.spawn(worker.run(stop.clone()));
            }
        }
        let retention = if self.duties.lead {
            notify_tasks.spawn(Arc::clone(&self.notifier).run(stop.clone()));
            tokio::spawn(Arc::clone(&self).retention_loop(stop.clone()))
        } else {
            tokio::spawn(async {})
        };
        info!(
            targets = self.config.targets.len(),
            leads = self.duties.lead,
            schedule = %self.config.schedule,
            database = %self.config.database,
            "vastwatch is running."
        );
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                tick = ticker.next_tick(), if polls => {
                    let Some(tick) = tick else {
                        warn!("The schedule has no further ticks; stopping.");
                        break;
                    };
                    if tick.missed > 0 {
                        self.stats.missed_ticks.fetch_add(tick.missed, Ordering::Relaxed);
                        warn!(missed = tick.missed, tick = %tick.at, "Ticks were missed while the daemon was busy; they are skipped, not queued.");
                    }
                    let daemon = Arc::clone(&self);
                    let stop = stop.clone();
                    ticks.spawn(async move {
                        daemon.tick_once(tick.at, &stop).await;
                    }.instrument(info_span!("tick", at = %tick.at)));
                }
                Some(_) = ticks.join_next(), if !ticks.is_empty() => {}
            }
        }
        info!("Stopping: finishing in-flight polls, evaluations and writes.");
        let _ = stop_sender.send(true);
        // One budget for everything, so that shutdown stays well inside the 10 s that
        // service managers allow before SIGKILL.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        let drained = tokio::time::timeout_at(deadline, async {
            while ticks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!("In-flight work did not finish within the grace period; abandoning it.");
            ticks.abort_all();
        }
        // Retention deletes in small transactions; abandoning one rolls it back whole.
        let retention_abort = retention.abort_handle();
        if tokio::time::timeout_at(deadline, retention).await.is_err() {
            retention_abort.abort();
        }
        // Delivery stops here; whatever is still pending stays in the outbox for the next
        // start.
        if tokio::time::timeout_at(deadline, async {
            while notify_tasks.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            notify_tasks.abort_all();
        }
        while ticks.join_next().await.is_some() {}
        while notify_tasks.join_next().await.is_some() {}
    }

    async fn retention_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(store_error) = self.retention_once().await {
                warn!(error = %store_error, "Retention failed; will retry.");
            }
            tokio::select! {
                _ = self.clock.sleep(RETENTION_EVERY) => {}
                _ = stop.wait_for(|stopping| *stopping) => return,
            }
        }
    }
}

/// Closes the store at shutdown, saying how many polls the database never took.
pub async fn close_store(store: &Store) {
    let unwritten = store.health().backlog().len();
    if unwritten > 0 {
        warn!(
            polls = unwritten,
            "Stopping while the database takes no writes: polls waiting in memory are lost."
        );
    }
    if let Err(store_error) = store.clone().close().await {
        warn!(error = %store_error, "Closing the database failed.");
    }
    info!("Stopped.");
}

/// A fresh rule engine for a config's targets, with no history or alert state.
pub fn new_engine(config: &Config, rules: RuleSet, now: Timestamp) -> Engine {
    let targets = config.targets.iter().map(target_info).collect();
    Engine::new(
        Arc::new(rules),
        &crate::rules::identifiers(),
        targets,
        config.target_down_after,
        config.schedule.interval_at(now),
    )
}

/// Builds the rule engine and resumes it: alert timers from `alerts`, history windows and
/// runs of failed polls from `polls`. Also returns the stored active instances it did not
/// take back, because no configured rule or target produces them any more.
pub(crate) async fn resume_engine(
    config: &Config,
    rules: RuleSet,
    store: &Store,
    now: Timestamp,
) -> Result<(Engine, Vec<AlertRecord>), StoreError> {
    let mut engine = new_engine(config, rules, now);
    let orphans = engine.restore_alerts(store.active_alerts().await?);
    for row in store.latest_recommendations().await? {
        engine.restore_recommendation(&row.target, row.recommendation);
    }
    let since = now.saturating_sub(engine.history_window());
    for target in &config.targets {
        let records = store
            .poll_records(&HistoryFilter {
                target: Some(target.name.clone()),
                since: Some(since),
                until: None,
                limit: None,
            })
            .await?;
        let recent = store
            .poll_history(&HistoryFilter {
                target: Some(target.name.clone()),
                since: None,
                until: None,
                limit: Some(config.target_down_after),
            })
            .await?;
        let failures_in_a_row = recent.iter().rev().take_while(|poll| !poll.is_ok()).count() as u32;
        engine.restore_history(&target.name, &records, failures_in_a_row);
    }
    Ok((engine, orphans))
}

/// Ends stored active instances that no configured rule or target produces any more (a
/// rule or target was removed, or its labels changed): they resolve, and notify, instead
/// of firing forever.
async fn retire(store: &Store, orphans: &[AlertRecord], now: Timestamp) -> Result<(), StoreError> {
    let retired: Vec<AlertChange> = orphans
        .iter()
        .filter_map(|alert| AlertChange::retire(alert, now))
        .collect();
    store.record_alert_changes(&retired).await?;
    for change in &retired {
        info!(
            alertname = %change.record.alertname,
            target = %change.record.target,
            worker_id = change.record.worker_id,
            to = %change.record.lifecycle.state,
            "Alert ended: no configured rule or target produces it any more."
        );
    }
    Ok(())
}

/// A configured target as the rule engine sees it.
pub fn target_info(target: &Target) -> TargetInfo {
    TargetInfo {
        name: target.name.clone(),
        kind: target.kind,
        vast_id: target.vast_id,
        labels: target.labels.clone(),
        vars: target.vars.clone(),
        scaling: target.scaling.clone(),
    }
}

fn target_spec(target: &Target) -> TargetSpec {
    TargetSpec {
        name: target.name.clone(),
        kind: target.kind,
        vast_id: target.vast_id,
    }
}

fn random_delay(jitter: Duration) -> Duration {
    let max = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
    if max == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::rng().random_range(0..=max))
}

fn log_poll(record: &PollRecord) {
    let duration_ms = record.duration.as_millis() as u64;
    match &record.result {
        PollResult::Snapshot { workers, notes } => {
            debug!(workers = workers.len(), duration_ms, "Poll succeeded.");
            for note in notes {
                warn!(note = %note, "Worker list needed repair.");
            }
        }
        PollResult::Failed(failure) => {
            warn!(outcome = %failure.kind, error = %failure.message, http_status = failure.http_status, duration_ms, "Poll failed.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_delays_stay_within_the_configured_bound() {
        assert_eq!(random_delay(Duration::ZERO), Duration::ZERO);
        let bound = Duration::from_millis(250);
        let delays: Vec<Duration> = (0..200).map(|_| random_delay(bound)).collect();
        assert!(delays.iter().all(|delay| *delay <= bound));
        // Spread, not a constant: 200 draws from 251 values are not all equal.
        assert!(delays.iter().any(|delay| *delay != delays[0]));
    }
}
