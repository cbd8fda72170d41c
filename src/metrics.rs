//! Prometheus metrics (docs/metrics.md). One [`Metrics`] lives for the whole process, so
//! counters and histograms survive config reloads; the fleet, alert and outbox gauges are
//! read from the running daemon's memory when Prometheus scrapes, so they are never stale
//! and the series of a worker or target that left vanish with it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Metric, Registry};

use crate::clock::Clock;
use crate::config::Config;
use crate::daemon::Daemon;
use crate::model::{FailureKind, Field, PollRecord, StateClass};
use crate::rules::AlertState;
use crate::rules::expr::{FleetNumber, Snapshot};
use crate::service::ReloadObserver;
use crate::store::{AttemptRecord, StoreError};
use crate::time::Timestamp;

/// The `Content-Type` to answer `GET /metrics` with: Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Every metric name starts `vastwatch_`.
const PREFIX: &str = "vastwatch";

type FloatGauge = Gauge<f64, AtomicU64>;

/// The `outcome`s of `vastwatch_notifications_total`.
const DELIVERED: &str = "delivered";
const RETRIED: &str = "retried";
const FAILED: &str = "failed";
const MUTED: &str = "muted";
const NOTIFICATION_OUTCOMES: [&str; 4] = [DELIVERED, RETRIED, FAILED, MUTED];

/// Why `/metrics` could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not encode the metrics")]
    Encode(#[from] std::fmt::Error),
}

/// Why a due poll of a target did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The target's previous poll was still running.
    InFlight,
    /// The target is backing off after a 429.
    BackingOff,
}

impl SkipReason {
    fn as_str(self) -> &'static str {
        match self {
            SkipReason::InFlight => "in_flight",
            SkipReason::BackingOff => "backing_off",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PollLabels {
    target: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SkipLabels {
    target: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverLabels {
    receiver: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    receiver: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    target: String,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    alertname: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    target: String,
    worker_id: i64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerStatusLabels {
    target: String,
    worker_id: i64,
    status: String,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
    profile: &'static str,
}

/// Polls answer within the API timeout (10 s by default); the buckets reach past it.
fn poll_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.025, 2.0, 11))
}

/// Evaluating one poll's rules takes microseconds to milliseconds.
fn evaluation_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 4.0, 10))
}

/// What the daemon records as it works, and the renderer of `/metrics`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    polls: Family<PollLabels, Counter>,
    polls_skipped: Family<SkipLabels, Counter>,
    poll_duration: Family<TargetLabels, Histogram, fn() -> Histogram>,
    evaluation_duration: Histogram,
    store_write_failures: Counter,
    notifications: Family<NotificationLabels, Counter>,
    notifications_queued: Family<ReceiverLabels, Counter>,
    reload_successful: Gauge,
    reload_success_time: FloatGauge,
}

impl Metrics {
    /// Metrics of a process whose config loaded successfully at `config_loaded_at`.
    pub fn new(config_loaded_at: Timestamp) -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let polls = register(
            &mut registry,
            "polls",
            "Poll attempts by target and outcome (ok or the failure kind)",
            Family::default(),
        );
        let polls_skipped = register(
            &mut registry,
            "polls_skipped",
            "Due polls that did not start: the previous one was in flight, or the target was backing off after a 429",
            Family::default(),
        );
        let poll_duration = register(
            &mut registry,
            "poll_duration_seconds",
            "How long a poll of the Vast API took, by target",
            Family::new_with_constructor(poll_duration_histogram as fn() -> Histogram),
        );
        let evaluation_duration = register(
            &mut registry,
            "evaluation_duration_seconds",
            "How long evaluating the rules and the advisor over one poll took",
            evaluation_duration_histogram(),
        );
        let store_write_failures = register(
            &mut registry,
            "store_write_failures",
            "Transactions of polls and alert changes that could not be written; their evaluations were dropped",
            Counter::default(),
        );
        let notifications = register(
            &mut registry,
            "notifications",
            "Notification delivery attempts by receiver and outcome (delivered, retried, failed), and alert transitions a silence or inhibition muted",
            Family::default(),
        );
        let notifications_queued = register(
            &mut registry,
            "notifications_queued",
            "Notifications written to the outbox, by receiver",
            Family::default(),
        );
        let reload_successful = register(
            &mut registry,
            "config_last_reload_successful",
            "Whether the last attempt to load the config and rules succeeded (1) or kept the old ones (0)",
            Gauge::default(),
        );
        let reload_success_time = register(
            &mut registry,
            "config_last_reload_success_timestamp_seconds",
            "When the config and rules last loaded successfully, in unix seconds",
            FloatGauge::default(),
        );
        registry.register(
            "build",
            "The running build of vastwatch; the value is always 1",
            Info::new(build_labels()),
        );
        let metrics = Metrics {
            registry,
            polls,
            polls_skipped,
            poll_duration,
            evaluation_duration,
            store_write_failures,
            notifications,
            notifications_queued,
            reload_successful,
            reload_success_time,
        };
        metrics.reload_result(true, config_loaded_at);
        metrics
    }

    /// Creates at zero every counter series `config` can produce, so that Prometheus sees
    /// a counter's first increment (`increase()` misses the step from absent to 1) and a
    /// dashboard shows 0 rather than nothing. Series of targets and receivers that a later
    /// config drops stay until the process restarts, so their number stays bounded by
    /// what the process has been configured with.
    pub fn prepare(&self, config: &Config) {
        for target in &config.targets {
            let outcomes = std::iter::once("ok").chain(FailureKind::ALL.map(FailureKind::as_str));
            for outcome in outcomes {
                create(
                    &self.polls,
                    &PollLabels {
                        target: target.name.clone(),
                        outcome,
                    },
                );
            }
            for reason in [SkipReason::InFlight, SkipReason::BackingOff] {
                create(
                    &self.polls_skipped,
                    &SkipLabels {
                        target: target.name.clone(),
                        reason: reason.as_str(),
                    },
                );
            }
        }
        for receiver in &config.notify.receivers {
            for outcome in NOTIFICATION_OUTCOMES {
                create(
                    &self.notifications,
                    &NotificationLabels {
                        receiver: receiver.name.clone(),
                        outcome,
                    },
                );
            }
            create(
                &self.notifications_queued,
                &ReceiverLabels {
                    receiver: receiver.name.clone(),
                },
            );
        }
    }

    /// A poll finished, successfully or not.
    pub fn poll_completed(&self, record: &PollRecord) {
        let target = record.target.clone();
        self.poll_duration
            .get_or_create(&TargetLabels {
                target: target.clone(),
            })
            .observe(record.duration.as_secs_f64());
        self.polls
            .get_or_create(&PollLabels {
                target,
                outcome: record.result.outcome(),
            })
            .inc();
    }

    pub fn poll_skipped(&self, target: &str, reason: SkipReason) {
        self.polls_skipped
            .get_or_create(&SkipLabels {
                target: target.to_string(),
                reason: reason.as_str(),
            })
            .inc();
    }

    pub fn evaluation_took(&self, duration: Duration) {
        self.evaluation_duration.observe(duration.as_secs_f64());
    }

    pub fn store_write_failed(&self) {
        self.store_write_failures.inc();
    }

    pub fn notification_queued(&self, receiver: &str) {
        self.notifications_queued
            .get_or_create(&ReceiverLabels {
                receiver: receiver.to_string(),
            })
            .inc();
    }

    /// An alert transition to `receiver` was muted by a silence or an inhibit rule.
    pub fn notification_muted(&self, receiver: &str) {
        self.count_notification(receiver, MUTED);
    }

    /// A delivery attempt to `receiver` was recorded.
    pub fn notification_attempted(&self, receiver: &str, attempt: &AttemptRecord) {
        let outcome = match attempt {
            AttemptRecord::Delivered { .. } => DELIVERED,
            AttemptRecord::Retry { .. } => RETRIED,
            AttemptRecord::Failed { .. } => FAILED,
        };
        self.count_notification(receiver, outcome);
    }

    fn count_notification(&self, receiver: &str, outcome: &'static str) {
        self.notifications
            .get_or_create(&NotificationLabels {
                receiver: receiver.to_string(),
                outcome,
            })
            .inc();
    }

    /// A reload of the config and rules finished at `at`: `ok` when the new ones replaced
    /// the old, false when they were rejected and the old ones kept running.
    pub fn reload_result(&self, ok: bool, at: Timestamp) {
        self.reload_successful.set(i64::from(ok));
        if ok {
            self.reload_success_time.set(at.unix_secs_f64());
        }
    }

    /// The whole `/metrics` page: what was recorded, then the gauges read from `daemon`
    /// now. The only query is one count over the pending outbox rows.
    pub async fn render(&self, daemon: &Daemon) -> Result<String, MetricsError> {
        let pending = daemon.store().pending_notifications().await?;
        let scrape = scrape_registry(daemon, &pending);
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.registry)?;
        prometheus_text::encode(&mut text, &scrape)?;
        Ok(text)
    }
}

/// Records each reload's outcome in the process's metrics, at the clock's time: give it to
/// the service with `Service::with_observer`.
pub struct ReloadRecorder {
    metrics: Arc<Metrics>,
    clock: Clock,
}

impl ReloadRecorder {
    pub fn new(metrics: Arc<Metrics>, clock: Clock) -> ReloadRecorder {
        ReloadRecorder { metrics, clock }
    }
}

impl ReloadObserver for ReloadRecorder {
    fn reloaded(&self, ok: bool) {
        self.metrics.reload_result(ok, self.clock.now());
    }
}

/// Creates a family's series at its initial value, if it is not there yet.
fn create<L, M, C>(family: &Family<L, M, C>, labels: &L)
where
    L: Clone + std::hash::Hash + Eq,
    C: prometheus_client::metrics::family::MetricConstructor<M>,
{
    // The guard only holds the family's lock; dropping it at once releases the lock.
    drop(family.get_or_create(labels));
}

/// `VASTWATCH_BUILD` is `COMMIT PROFILE TARGET` (build.rs).
fn build_labels() -> BuildLabels {
    let mut parts = env!("VASTWATCH_BUILD").split(' ');
    BuildLabels {
        version: env!("CARGO_PKG_VERSION"),
        commit: parts.next().unwrap_or("unknown"),
        profile: parts.next().unwrap_or("unknown"),
    }
}

/// Registers `metric` under `name` and returns it; the registry keeps a clone, which
/// shares the values.
fn register<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// A family of float gauges registered in `registry`.
fn gauges<L>(registry: &mut Registry, name: &str, help: &str) -> Family<L, FloatGauge>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    register(registry, name, help, Family::default())
}

/// The classes a worker count is split into, with the fleet number of each (unknown is
/// what the others leave of the total).
const CLASSES: [(StateClass, Option<FleetNumber>); 5] = [
    (StateClass::Ready, Some(FleetNumber::Ready)),
    (StateClass::Starting, Some(FleetNumber::Starting)),
    (StateClass::Inactive, Some(FleetNumber::Inactive)),
    (StateClass::Failed, Some(FleetNumber::Failed)),
    (StateClass::Unknown, None),
];

/// What a scrape reads from the rule engine, copied out (snapshots by reference count) so
/// that the engine's lock, which polls wait on, is held only for the copy.
struct EngineView {
    /// Each configured target's latest snapshot and the advisor's desired count.
    fleets: Vec<(String, Option<Arc<Snapshot>>, Option<u32>)>,
    /// Active alert instances by alertname and state; every alertname the engine can
    /// raise has both states, 0 included, so a rule's alerts are never absent.
    alerts: BTreeMap<(String, &'static str), u64>,
}

fn engine_view(daemon: &Daemon) -> EngineView {
    let engine = daemon.engine();
    let fleets = daemon
        .config()
        .targets
        .iter()
        .map(|target| {
            (
                target.name.clone(),
                engine.latest_snapshot(&target.name).cloned(),
                engine
                    .recommendation(&target.name)
                    .map(|recommendation| recommendation.desired_workers),
            )
        })
        .collect();
    let mut alerts: BTreeMap<(String, &'static str), u64> = engine
        .alert_names()
        .into_iter()
        .flat_map(|name| [AlertState::Pending, AlertState::Firing].map(|state| (name, state)))
        .map(|(name, state)| ((name.to_string(), state.as_str()), 0))
        .collect();
    for alert in engine.active_alerts() {
        *alerts
            .entry((alert.alertname.clone(), alert.lifecycle.state.as_str()))
            .or_default() += 1;
    }
    EngineView { fleets, alerts }
}

/// Per-target fleet gauges, alert counts and outbox depth, read from the daemon as it is
/// now, and the per-worker series when the config asks for them.
fn scrape_registry(daemon: &Daemon, pending: &BTreeMap<String, u64>) -> Registry {
    let mut registry = Registry::with_prefix(PREFIX);
    let workers: Family<ClassLabels, FloatGauge> = gauges(
        &mut registry,
        "fleet_workers",
        "Workers in the latest successful poll, by state class",
    );
    let fleet_numbers: Vec<(FleetNumber, Family<TargetLabels, FloatGauge>)> = [
        (
            FleetNumber::Load,
            "fleet_load",
            "Sum of cur_load over the workers of the latest successful poll",
        ),
        (
            FleetNumber::LoadRolling,
            "fleet_load_rolling",
            "Sum of cur_load_rolling_avg over the workers of the latest successful poll",
        ),
        (
            FleetNumber::Perf,
            "fleet_perf",
            "Sum of perf over the ready workers of the latest successful poll",
        ),
        (
            FleetNumber::Utilization,
            "fleet_utilization_ratio",
            "Rolling load over ready perf in the latest successful poll",
        ),
    ]
    .into_iter()
    .map(|(number, name, help)| (number, gauges(&mut registry, name, help)))
    .collect();
    let desired: Family<TargetLabels, FloatGauge> = gauges(
        &mut registry,
        "fleet_desired_workers",
        "The advisor's recommended worker count",
    );
    let age: Family<TargetLabels, FloatGauge> = gauges(
        &mut registry,
        "last_successful_poll_age_seconds",
        "Seconds since the start of the latest successful poll held in memory",
    );
    let alerts: Family<AlertLabels, FloatGauge> = gauges(
        &mut registry,
        "alerts",
        "Alert instances by alertname and state (pending, firing)",
    );
    let outbox: Family<ReceiverLabels, FloatGauge> = gauges(
        &mut registry,
        "outbox_pending_notifications",
        "Notifications waiting in the outbox, by receiver",
    );

    let view = engine_view(daemon);
    let config = daemon.config();
    let now = daemon.clock().now();
    for (target, snapshot, desired_workers) in &view.fleets {
        let label = TargetLabels {
            target: target.clone(),
        };
        if let Some(desired_workers) = desired_workers {
            desired
                .get_or_create(&label)
                .set(f64::from(*desired_workers));
        }
        let Some(snapshot) = snapshot else {
            continue;
        };
        age.get_or_create(&label)
            .set(now.duration_since(snapshot.at).as_secs_f64());
        let mut classified = 0.0;
        for (class, number) in CLASSES {
            let count = match number {
                Some(number) => snapshot.fleet.get(number).unwrap_or(0.0),
                None => snapshot.fleet.get(FleetNumber::Workers).unwrap_or(0.0) - classified,
            };
            classified += count;
            workers
                .get_or_create(&ClassLabels {
                    target: target.clone(),
                    class: class.as_str(),
                })
                .set(count);
        }
        for (number, family) in &fleet_numbers {
            if let Some(value) = snapshot.fleet.get(*number) {
                family.get_or_create(&label).set(value);
            }
        }
    }

    for ((alertname, state), count) in &view.alerts {
        alerts
            .get_or_create(&AlertLabels {
                alertname: alertname.clone(),
                state,
            })
            .set(*count as f64);
    }

    let receivers = config
        .notify
        .receivers
        .iter()
        .map(|receiver| (receiver.name.as_str(), 0))
        .chain(pending.iter().map(|(name, count)| (name.as_str(), *count)));
    for (receiver, count) in receivers {
        outbox
            .get_or_create(&ReceiverLabels {
                receiver: receiver.to_string(),
            })
            .set(count as f64);
    }

    if config.metrics.per_worker {
        let snapshots = view.fleets.iter().filter_map(|(target, snapshot, _)| {
            snapshot
                .as_deref()
                .map(|snapshot| (target.as_str(), snapshot))
        });
        register_worker_series(&mut registry, snapshots);
    }
    registry
}

/// The opt-in series of every worker in each target's latest snapshot.
fn register_worker_series<'a>(
    registry: &mut Registry,
    snapshots: impl Iterator<Item = (&'a str, &'a Snapshot)>,
) {
    let fields: Vec<(Field, Family<WorkerLabels, FloatGauge>)> = [
        (
            Field::Reliability,
            "worker_reliability",
            "The worker's reliability (0 to 1) in the latest successful poll",
        ),
        (
            Field::Perf,
            "worker_perf",
            "The worker's perf in the latest successful poll",
        ),
        (
            Field::ReqsWorking,
            "worker_reqs_working",
            "Requests the worker was serving in the latest successful poll",
        ),
        (
            Field::CurLoad,
            "worker_load",
            "The worker's cur_load in the latest successful poll",
        ),
    ]
    .into_iter()
    .map(|(field, name, help)| (field, gauges(registry, name, help)))
    .collect();
    let status: Family<WorkerStatusLabels, FloatGauge> = gauges(
        registry,
        "worker_status",
        "The worker's status and its state class in the latest successful poll; always 1",
    );
    for (target, snapshot) in snapshots {
        for worker in &snapshot.workers {
            let labels = WorkerLabels {
                target: target.to_string(),
                worker_id: worker.worker_id,
            };
            for (field, family) in &fields {
                if let Some(value) = worker.get(*field) {
                    family.get_or_create(&labels).set(value);
                }
            }
            status
                .get_or_create(&WorkerStatusLabels {
                    target: target.to_string(),
                    worker_id: worker.worker_id,
                    status: worker.status.as_deref().unwrap_or("").to_string(),
                    class: worker.class.as_str(),
                })
                .set(1.0);
        }
    }
}
