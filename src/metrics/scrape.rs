//! The gauges read from the running daemon when Prometheus scrapes: fleets, alerts, the
//! outbox, and the opt-in per-worker series. Built afresh for every scrape, so a worker or
//! target that left has no series to remove.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{FloatGauge, PREFIX, ReceiverLabels, TargetLabels, register};
use crate::daemon::Daemon;
use crate::model::{Field, StateClass};
use crate::rules::AlertState;
use crate::rules::expr::{FleetNumber, Snapshot};
use crate::service::ReplicaState;
use crate::store::DatabaseHealth;
use crate::store::Role;

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

/// Per-target fleet gauges, alert counts, outbox depth (`pending`; left out when it could
/// not be counted) and the database's health, read from the daemon as it is now, and the
/// per-worker series when the config asks for them.
pub(super) fn registry(daemon: &Daemon, pending: Option<&BTreeMap<String, u64>>) -> Registry {
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

    register_database(&mut registry, daemon.store().health());

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

    if let Some(pending) = pending {
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    replica: String,
}

/// Whether this replica leads, and when it last renewed its lease (`ha:` only).
pub(super) fn replica_registry(state: &ReplicaState) -> Registry {
    let mut registry = Registry::with_prefix(PREFIX);
    let labels = ReplicaLabels {
        replica: state.replica.clone().unwrap_or_default(),
    };
    let leader: Family<ReplicaLabels, FloatGauge> = gauges(
        &mut registry,
        "ha_leader",
        "1 while this replica leads (polls, evaluates and enqueues), 0 while it stands by",
    );
    leader
        .get_or_create(&labels)
        .set(if state.role == Role::Leader { 1.0 } else { 0.0 });
    if let Some(renewed_at) = state.renewed_at {
        let renewed: Family<ReplicaLabels, FloatGauge> = gauges(
            &mut registry,
            "ha_lease_renewed_timestamp_seconds",
            "Unix time of this replica's last lease renewal that reached the database",
        );
        renewed
            .get_or_create(&labels)
            .set(renewed_at.unix_secs_f64());
    }
    registry
}

/// The database's health (docs/reliability.md, "Database faults"): whether it takes
/// writes, the polls waiting to be written, those dropped, and recreated files.
fn register_database(registry: &mut Registry, health: &DatabaseHealth) {
    let backlog = health.backlog();
    let gauges = [
        (
            "database_up",
            "Whether the database takes writes (1) or the last write failed or its file is missing (0)",
            i64::from(health.is_up()),
        ),
        (
            "database_backlog_polls",
            "Polls waiting in memory to be written while the database takes no writes",
            backlog.len() as i64,
        ),
    ];
    for (name, help, value) in gauges {
        let gauge: Gauge = register(registry, name, help, Gauge::default());
        gauge.set(value);
    }
    let counters = [
        (
            "database_backlog_dropped",
            "Polls dropped, oldest first, because the write backlog was full",
            backlog.dropped(),
        ),
        (
            "database_recreated",
            "Times the database file was found deleted while open and recreated from the open connection",
            health.recreated(),
        ),
    ];
    for (name, help, value) in counters {
        let counter: Counter = register(registry, name, help, Counter::default());
        counter.inc_by(value);
    }
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
