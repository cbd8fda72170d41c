//! Prometheus metrics (docs/metrics.md). One [`Metrics`] lives for the whole process, so
//! counters and histograms survive config reloads; the fleet, alert and outbox gauges are
//! read from the running daemon's memory when Prometheus scrapes, so they are never stale
//! and the series of a worker or target that left vanish with it.

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
use crate::model::{FailureKind, PollRecord};
use crate::service::{ReloadObserver, ReplicaState};
use crate::store::AttemptRecord;
use crate::time::Timestamp;

mod scrape;

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
            "Transactions of polls and alert changes that could not be written; their polls wait in the write backlog and are evaluated again when written",
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
    /// and this replica's role now. The only query is one count over the pending outbox
    /// rows; while the database cannot be read, the outbox gauges are left out and the
    /// rest, the database's own health among it, is served.
    pub async fn render(
        &self,
        daemon: &Daemon,
        replica: &ReplicaState,
    ) -> Result<String, MetricsError> {
        let pending = match daemon.store().pending_notifications().await {
            Ok(pending) => Some(pending),
            Err(error) => {
                tracing::warn!(error = %error, "Cannot count the outbox for /metrics; its gauges are left out.");
                None
            }
        };
        let scrape = scrape::registry(daemon, pending.as_ref());
        let replica = scrape::replica_registry(replica);
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.registry)?;
        prometheus_text::encode(&mut text, &scrape)?;
        prometheus_text::encode(&mut text, &replica)?;
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
