//! The notifier: turns stored "to notify" marks into outbox rows, through the pure
//! [`Grouper`], and wakes the delivery workers.
//!
//! Crash safety comes from the order of writes. A transition and its mark are committed
//! together (by the poll's transaction). The grouper's output, new outbox rows, log entries
//! and the deletion of the marks it consumed, is committed together too. So after a crash
//! the marks not yet consumed are read again, the alerts still firing come back from the
//! `alerts` table and what each receiver was sent from `notification_log`: nothing is lost,
//! and the log keeps anything already queued from being queued twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{Mutex, Notify, watch};
use tracing::{debug, error, info, warn};

use super::group::{AlertSnapshot, Flush, FlushContext, Grouper};
use super::route::NotifyConfig;
use crate::advise::Recommendation;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::store::{FlushWrite, NewNotification, Store, StoreError};
use crate::time::Timestamp;

/// Marks read per round trip.
const MARK_BATCH: u32 = 20_000;
/// How long the loop waits after a failed write before trying again.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);

/// Counters of what notifications did since start.
#[derive(Debug, Default)]
pub struct NotifyStats {
    /// Outbox rows written.
    pub queued: AtomicU64,
    pub delivered: AtomicU64,
    /// Attempts that will be retried.
    pub retried: AtomicU64,
    /// Notifications given up on.
    pub failed: AtomicU64,
    /// Alert transitions whose notification a silence or inhibition suppressed.
    pub muted: AtomicU64,
}

/// What one step of the notifier did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StepReport {
    pub marks_read: usize,
    pub queued: Vec<NewNotification>,
}

struct State {
    grouper: Grouper,
    /// The id of the last mark observed.
    cursor: i64,
}

/// Routing, grouping and the outbox writes, shared by the daemon's loop and `poll-once`.
pub struct Notifier {
    store: Store,
    clock: Clock,
    config: Arc<NotifyConfig>,
    state: Mutex<State>,
    wake: Notify,
    /// One per receiver, poked when it has new outbox rows.
    delivery_wakes: HashMap<String, Arc<Notify>>,
    recommendations: RwLock<BTreeMap<String, Recommendation>>,
    stats: Arc<NotifyStats>,
    /// Replaced once, when the daemon is given the process's metrics after start.
    metrics: RwLock<Arc<Metrics>>,
}

impl Notifier {
    /// Builds the notifier and resumes it from the database: the notification log, the
    /// alerts firing now, and the marks not yet consumed. `recommendations` are the
    /// targets' current ones, as the resumed rule engine holds them. Queued and muted
    /// notifications are counted in `metrics`.
    pub async fn start(
        store: Store,
        config: Arc<NotifyConfig>,
        clock: Clock,
        recommendations: BTreeMap<String, Recommendation>,
        metrics: Arc<Metrics>,
    ) -> Result<Notifier, StoreError> {
        let state = resume(&store, &config, clock.now()).await?;
        let delivery_wakes = config
            .receivers
            .iter()
            .map(|receiver| (receiver.name.clone(), Arc::new(Notify::new())))
            .collect();
        Ok(Notifier {
            store,
            clock,
            config,
            state: Mutex::new(state),
            wake: Notify::new(),
            delivery_wakes,
            recommendations: RwLock::new(recommendations),
            stats: Arc::new(NotifyStats::default()),
            metrics: RwLock::new(metrics),
        })
    }

    pub fn stats(&self) -> &Arc<NotifyStats> {
        &self.stats
    }

    /// Counts queued and muted notifications in `metrics` from now on.
    pub fn set_metrics(&self, metrics: Arc<Metrics>) {
        *self
            .metrics
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = metrics;
    }

    /// The wake-up of a receiver's delivery worker.
    pub fn delivery_wake(&self, receiver: &str) -> Option<Arc<Notify>> {
        self.delivery_wakes.get(receiver).cloned()
    }

    /// New marks were committed: look at them soon.
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// Keeps the latest recommendation of a target for payloads.
    pub fn set_recommendation(&self, target: &str, recommendation: &Recommendation) {
        let mut map = self
            .recommendations
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.insert(target.to_string(), recommendation.clone());
    }

    /// Reads new marks, flushes the groups that are due (every group with `flush_all`),
    /// and writes the result in one transaction. On a write error the in-memory state is
    /// rebuilt from the database, which still holds every unconsumed mark.
    pub async fn step(&self, flush_all: bool) -> Result<StepReport, StoreError> {
        let mut state = self.state.lock().await;
        let result = self.step_locked(&mut state, flush_all).await;
        if result.is_err() {
            match resume(&self.store, &self.config, self.clock.now()).await {
                Ok(fresh) => *state = fresh,
                Err(resume_error) => {
                    error!(error = %resume_error, "Could not reload notification state.");
                }
            }
        }
        result
    }

    async fn step_locked(
        &self,
        state: &mut State,
        flush_all: bool,
    ) -> Result<StepReport, StoreError> {
        let mut report = StepReport::default();
        let mut unrouted = Vec::new();
        loop {
            let marks = self
                .store
                .notification_marks(state.cursor, MARK_BATCH)
                .await?;
            let now = self.clock.now();
            let done = marks.len() < MARK_BATCH as usize;
            report.marks_read += marks.len();
            for (id, snapshot) in marks {
                state.cursor = id;
                if !state.grouper.observe(Some(id), snapshot, now) {
                    unrouted.push(id);
                }
            }
            if done {
                break;
            }
        }
        let now = self.clock.now();
        let due = flush_all || state.grouper.next_deadline().is_some_and(|at| at <= now);
        if !due && unrouted.is_empty() {
            return Ok(report);
        }
        let silences = if due {
            self.store.silences(now, false).await?
        } else {
            Vec::new()
        };
        let recommendations = self
            .recommendations
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let context = FlushContext {
            now,
            silences: &silences,
            recommendations: &recommendations,
        };
        let flushes = match (due, flush_all) {
            (false, _) => Vec::new(),
            (true, true) => state.grouper.flush_all(&context),
            (true, false) => state.grouper.flush_due(&context),
        };
        let writes: Vec<FlushWrite> = flushes
            .iter()
            .map(|flush| self.write_of(flush, now))
            .collect();
        self.store.record_flushes(&writes, &unrouted, now).await?;
        let metrics = Arc::clone(
            &self
                .metrics
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for (flush, write) in flushes.iter().zip(&writes) {
            log_flush(flush, write, &self.stats, &metrics);
            for notification in &write.notifications {
                if let Some(wake) = self.delivery_wakes.get(&notification.receiver) {
                    wake.notify_one();
                }
            }
            report.queued.extend(write.notifications.iter().cloned());
        }
        if !unrouted.is_empty() {
            debug!(
                marks = unrouted.len(),
                "Transitions no route takes were dropped."
            );
        }
        Ok(report)
    }

    fn write_of(&self, flush: &Flush, now: Timestamp) -> FlushWrite {
        FlushWrite {
            group_key: flush.group_key.clone(),
            notifications: flush
                .notifications
                .iter()
                .map(|outgoing| NewNotification {
                    id: new_id(now),
                    receiver: outgoing.receiver.clone(),
                    group_key: flush.group_key.clone(),
                    payload: serde_json::to_string(&outgoing.message)
                        .unwrap_or_else(|_| "{}".to_string()),
                })
                .collect(),
            log: flush.log.clone(),
            consumed_marks: flush.consumed_marks.clone(),
            closed: flush.closed,
        }
    }

    /// Steps whenever marks arrive or a group falls due, until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let wait = match self.step(false).await {
                Ok(_) => None,
                Err(store_error) => {
                    warn!(error = %store_error, "Could not queue notifications; will retry.");
                    Some(self.clock.now().saturating_add(RETRY_AFTER_ERROR))
                }
            };
            let deadline = match wait {
                Some(at) => Some(at),
                None => self.state.lock().await.grouper.next_deadline(),
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = sleep_until(&self.clock, deadline) => {}
                _ = stop.wait_for(|stopping| *stopping) => return,
            }
        }
    }
}

async fn sleep_until(clock: &Clock, deadline: Option<Timestamp>) {
    match deadline {
        Some(deadline) => clock.sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Rebuilds the grouper from the database.
async fn resume(
    store: &Store,
    config: &Arc<NotifyConfig>,
    now: Timestamp,
) -> Result<State, StoreError> {
    let mut grouper = Grouper::new(Arc::clone(config));
    for (group_key, receiver, entry) in store.notification_log().await? {
        grouper.restore_log(group_key, receiver, entry);
    }
    for alert in store.active_alerts().await? {
        if alert.lifecycle.state == crate::rules::AlertState::Firing {
            grouper.observe(None, AlertSnapshot::of_firing(&alert), now);
        }
    }
    Ok(State { grouper, cursor: 0 })
}

/// A new notification id: a UUIDv7 from the injected clock, so ids sort by creation.
pub fn new_id(now: Timestamp) -> String {
    let millis = u64::try_from(now.unix_millis()).unwrap_or(0);
    let timestamp = uuid::Timestamp::from_unix(
        uuid::NoContext,
        millis / 1000,
        u32::try_from((millis % 1000) * 1_000_000).unwrap_or(0),
    );
    uuid::Uuid::new_v7(timestamp).to_string()
}

fn log_flush(flush: &Flush, write: &FlushWrite, stats: &NotifyStats, metrics: &Metrics) {
    for mute in &flush.muted {
        if mute.changed {
            stats.muted.fetch_add(1, Ordering::Relaxed);
            for receiver in &mute.receivers {
                metrics.notification_muted(receiver);
            }
            info!(
                alertname = %mute.alertname,
                target = %mute.target,
                fingerprint = %mute.fingerprint,
                why = %mute.why,
                "Notification suppressed."
            );
        } else {
            debug!(alertname = %mute.alertname, target = %mute.target, why = %mute.why, "Alert still muted.");
        }
    }
    for (outgoing, row) in flush.notifications.iter().zip(&write.notifications) {
        stats.queued.fetch_add(1, Ordering::Relaxed);
        metrics.notification_queued(&outgoing.receiver);
        info!(
            receiver = %outgoing.receiver,
            group = %flush.group_key,
            id = %row.id,
            reason = outgoing.message.vastwatch.reason.as_str(),
            firing = outgoing.message.firing().count(),
            resolved = outgoing.message.resolved().count(),
            "Notification queued."
        );
    }
}
