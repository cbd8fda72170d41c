//! Grouping and deduplication (SPEC §8.4), as a pure state machine: alerts go in with
//! [`Grouper::observe`], and [`Grouper::flush_due`] says, per group and receiver, what to
//! send and why. Nothing here does I/O or reads a clock; the notifier persists what a
//! flush returns in one transaction (see `super::notifier`).
//!
//! The model is Alertmanager's. Each route groups alerts by its `group_by` labels. A new
//! group waits `group_wait`, then is flushed every `group_interval`. At each flush every
//! receiver of the route compares the group with what it was last sent (its log entry):
//! new firing alerts are sent at once (`first notification`, `new alerts`), resolutions when
//! the receiver wants them (`resolved`), and an unchanged firing group once per
//! `repeat_interval` (`repeat`).
//!
//! One departure from Alertmanager, required by the SPEC: batching never drops a
//! transition. An alert that fired and resolved within one batch is still sent, as
//! resolved with both `startsAt` and `endsAt`, even to a receiver without
//! `send_resolved` — it never heard that the alert fired.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::message::{AlertStatus, Extra, Message, MessageAlert, Reason, ZERO_TIME};
use super::receiver::ReceiverKind;
use super::route::NotifyConfig;
use super::silence::Silence;
use crate::advise::Recommendation;
use crate::rules::{AlertRecord, AlertState, LabelSet, Transition};
use crate::time::Timestamp;

use super::send::ALERTMANAGER_RESEND;

/// An alert as notifications see it: the payload of a "to notify" mark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSnapshot {
    pub fingerprint: String,
    pub status: AlertStatus,
    pub labels: LabelSet,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Timestamp,
    /// When it resolved; `None` while it fires.
    pub ends_at: Option<Timestamp>,
}

impl AlertSnapshot {
    /// The snapshot a transition calls for: entering `firing`, or leaving it. Other
    /// transitions (into and out of `pending`) are not notified.
    pub fn of_transition(record: &AlertRecord, transition: &Transition) -> Option<Self> {
        let status = match (transition.from, transition.to) {
            (_, AlertState::Firing) => AlertStatus::Firing,
            (AlertState::Firing, _) => AlertStatus::Resolved,
            _ => return None,
        };
        Some(AlertSnapshot::new(record, status, transition.at))
    }

    /// A snapshot of a firing alert as stored (when notifications resume after a restart).
    pub fn of_firing(record: &AlertRecord) -> Self {
        AlertSnapshot::new(record, AlertStatus::Firing, record.last_eval_at)
    }

    fn new(record: &AlertRecord, status: AlertStatus, at: Timestamp) -> Self {
        let lifecycle = &record.lifecycle;
        AlertSnapshot {
            fingerprint: record.fingerprint.clone(),
            status,
            labels: record.labels.clone(),
            annotations: record.annotations.clone(),
            starts_at: lifecycle.fired_at.or(lifecycle.active_at).unwrap_or(at),
            ends_at: match status {
                AlertStatus::Firing => None,
                AlertStatus::Resolved => Some(lifecycle.resolved_at.unwrap_or(at)),
            },
        }
    }

    pub fn alertname(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }

    pub fn target(&self) -> &str {
        self.labels.get("target").map_or("", String::as_str)
    }
}

/// What a receiver was last sent for a group (Alertmanager's notification log), kept per
/// episode: an alert that fires again leaves `resolved`, and one whose episode ended
/// without the receiver being told leaves `firing` for `resolved`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub sent_at: Timestamp,
    /// Fingerprints whose current episode was sent as firing.
    pub firing: BTreeSet<String>,
    /// Fingerprints whose last episode's end was sent (or was not wanted).
    pub resolved: BTreeSet<String>,
}

/// One message to write to the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub receiver: String,
    pub message: Message,
}

/// Why an alert in a flushed group was left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Muted {
    pub fingerprint: String,
    pub alertname: String,
    pub target: String,
    /// `silenced by <id>` or `inhibited by <alertname>`.
    pub why: String,
    /// Whether a transition of this alert arrived since the group's last flush (the
    /// mute is then worth an info line rather than a debug one).
    pub changed: bool,
    /// The receivers of the group's route, which the alert would have gone to.
    pub receivers: Vec<String>,
}

/// What flushing one group decided; the caller stores it in one transaction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Flush {
    pub group_key: String,
    pub notifications: Vec<Outgoing>,
    /// Changed log entries, per receiver: the receivers that were sent something, and
    /// those whose entry forgot an ended episode (see [`Grouper::flush_group`]).
    pub log: Vec<(String, LogEntry)>,
    /// Marks every group they went to has now flushed: delete them.
    pub consumed_marks: Vec<i64>,
    /// The group is empty and gone: delete its log entries.
    pub closed: bool,
    pub muted: Vec<Muted>,
}

/// The context of a flush that does not live in the grouper.
pub struct FlushContext<'a> {
    pub now: Timestamp,
    /// Silences in the database (inactive ones are ignored).
    pub silences: &'a [Silence],
    /// The current recommendation of each target.
    pub recommendations: &'a BTreeMap<String, Recommendation>,
}

#[derive(Debug)]
struct Member {
    alert: AlertSnapshot,
    /// Marks not yet consumed that this member carries.
    marks: Vec<i64>,
    /// Later episodes, each with its marks, waiting for this one to be flushed: an alert
    /// that resolves and fires again before its group is flushed must still send the
    /// resolution (SPEC §8.4: batching never drops a transition), so the re-fire waits
    /// for the next flush instead of overwriting it.
    later: VecDeque<(AlertSnapshot, Vec<i64>)>,
}

#[derive(Debug)]
struct Group {
    route: usize,
    labels: LabelSet,
    members: BTreeMap<String, Member>,
    next_flush: Timestamp,
    /// Receivers whose log entry `observe` changed since the last flush, to be stored with
    /// the flush that consumes the marks that changed it.
    log_changed: BTreeSet<String>,
}

/// Groups, their members and what each receiver was last sent.
pub struct Grouper {
    config: Arc<NotifyConfig>,
    groups: BTreeMap<String, Group>,
    /// Per group key, per receiver.
    logs: HashMap<String, BTreeMap<String, LogEntry>>,
    /// Labels of every firing alert, routed or not: the sources of inhibition.
    firing: HashMap<String, LabelSet>,
    /// Groups still holding each unconsumed mark.
    mark_holders: HashMap<i64, usize>,
}

impl Grouper {
    pub fn new(config: Arc<NotifyConfig>) -> Self {
        Grouper {
            config,
            groups: BTreeMap::new(),
            logs: HashMap::new(),
            firing: HashMap::new(),
            mark_holders: HashMap::new(),
        }
    }

    /// Restores what a receiver was last sent for a group (at start).
    pub fn restore_log(&mut self, group_key: String, receiver: String, entry: LogEntry) {
        self.logs
            .entry(group_key)
            .or_default()
            .insert(receiver, entry);
    }

    /// Adds an alert's new state to every group its routes give it. `mark` is the id of
    /// the stored mark it came from, if any. Returns whether any route took it; a mark no
    /// route takes is the caller's to delete.
    pub fn observe(&mut self, mark: Option<i64>, alert: AlertSnapshot, now: Timestamp) -> bool {
        match alert.status {
            AlertStatus::Firing => {
                self.firing
                    .insert(alert.fingerprint.clone(), alert.labels.clone());
            }
            AlertStatus::Resolved => {
                self.firing.remove(&alert.fingerprint);
            }
        }
        let config = Arc::clone(&self.config);
        let mut routed = 0;
        let routes: Vec<usize> = config
            .routes_for(&alert.labels)
            .map(|route| route.index)
            .collect();
        for index in routes {
            let route = &config.routes[index];
            let labels = route.group_by.group_labels(&alert.labels);
            let key = route.group_key(&labels);
            let group = self.groups.entry(key.clone()).or_insert_with(|| Group {
                route: index,
                labels,
                members: BTreeMap::new(),
                next_flush: now.saturating_add(route.timing.group_wait),
                log_changed: BTreeSet::new(),
            });
            let member = group
                .members
                .entry(alert.fingerprint.clone())
                .or_insert_with(|| Member {
                    alert: alert.clone(),
                    marks: Vec::new(),
                    later: VecDeque::new(),
                });
            // A new episode while the newest one's resolution is unsent waits its turn.
            let newest_status = member
                .later
                .back()
                .map_or(member.alert.status, |(queued, _)| queued.status);
            if alert.status == AlertStatus::Firing && newest_status == AlertStatus::Resolved {
                member.later.push_back((alert.clone(), Vec::new()));
            } else if alert.status == AlertStatus::Firing && mark.is_some() {
                // A new episode: a resolution sent for an earlier one must not hide its own
                // (a firing without a mark is the resumption of one, at start).
                let forgot = forget_resolution(self.logs.get_mut(&key), &alert.fingerprint);
                group.log_changed.extend(forgot);
            }
            let (newest, marks) = match member.later.back_mut() {
                Some((queued, marks)) => (queued, marks),
                None => (&mut member.alert, &mut member.marks),
            };
            // A resolution keeps the first firing's start; a re-fire starts afresh.
            let starts_at = if alert.status == AlertStatus::Resolved {
                newest.starts_at.min(alert.starts_at)
            } else {
                alert.starts_at
            };
            *newest = AlertSnapshot {
                starts_at,
                ..alert.clone()
            };
            if let Some(mark) = mark {
                marks.push(mark);
                *self.mark_holders.entry(mark).or_default() += 1;
            }
            routed += 1;
        }
        routed > 0
    }

    /// The earliest time a group is due, if any group exists.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.groups.values().map(|group| group.next_flush).min()
    }

    /// Number of groups held.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Flushes every group due at `context.now`.
    pub fn flush_due(&mut self, context: &FlushContext<'_>) -> Vec<Flush> {
        let due: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, group)| group.next_flush <= context.now)
            .map(|(key, _)| key.clone())
            .collect();
        let sources = self.inhibition_sources();
        due.into_iter()
            .filter_map(|key| self.flush_group(&key, context, &sources))
            .collect()
    }

    /// Flushes every group now, whatever its timers say (`poll-once`).
    pub fn flush_all(&mut self, context: &FlushContext<'_>) -> Vec<Flush> {
        let keys: Vec<String> = self.groups.keys().cloned().collect();
        let sources = self.inhibition_sources();
        keys.into_iter()
            .filter_map(|key| self.flush_group(&key, context, &sources))
            .collect()
    }

    /// Per inhibit rule, the firing alerts its `source` matches: found once per flush, so
    /// muting costs a look at a few sources per alert, not at every firing alert.
    fn inhibition_sources(&self) -> Vec<Vec<(String, LabelSet)>> {
        self.config
            .inhibit
            .iter()
            .map(|rule| {
                self.firing
                    .iter()
                    .filter(|(_, labels)| super::matcher::all_match(&rule.source, labels))
                    .map(|(fingerprint, labels)| (fingerprint.clone(), labels.clone()))
                    .collect()
            })
            .collect()
    }

    fn flush_group(
        &mut self,
        key: &str,
        context: &FlushContext<'_>,
        sources: &[Vec<(String, LabelSet)>],
    ) -> Option<Flush> {
        let config = Arc::clone(&self.config);
        let now = context.now;
        let mut flush = Flush {
            group_key: key.to_string(),
            ..Flush::default()
        };
        let group = self.groups.get(key)?;
        let route = &config.routes[group.route];

        // Which members may be sent at all.
        let mut firing = BTreeSet::new();
        let mut resolved = BTreeSet::new();
        for (fingerprint, member) in &group.members {
            if let Some(why) = self.muted_by(&member.alert, context, sources) {
                flush.muted.push(Muted {
                    fingerprint: fingerprint.clone(),
                    alertname: member.alert.alertname().to_string(),
                    target: member.alert.target().to_string(),
                    why,
                    changed: !member.marks.is_empty(),
                    receivers: route.receivers.clone(),
                });
                continue;
            }
            match member.alert.status {
                AlertStatus::Firing => firing.insert(fingerprint.clone()),
                AlertStatus::Resolved => resolved.insert(fingerprint.clone()),
            };
        }

        // Episodes that end at this flush, muted or not.
        let ended: Vec<String> = group
            .members
            .iter()
            .filter(|(_, member)| member.alert.status == AlertStatus::Resolved)
            .map(|(fingerprint, _)| fingerprint.clone())
            .collect();

        let logs = self.logs.entry(key.to_string()).or_default();
        let mut changed = std::mem::take(&mut self.groups.get_mut(key)?.log_changed);
        let group = &self.groups[key];
        let mut has_alertmanager = false;
        for receiver_name in &route.receivers {
            let Some(receiver) = config.receiver(receiver_name) else {
                continue;
            };
            let is_alertmanager = matches!(receiver.kind, ReceiverKind::Alertmanager(_));
            has_alertmanager |= is_alertmanager;
            let repeat = if is_alertmanager {
                ALERTMANAGER_RESEND
            } else {
                route.timing.repeat_interval
            };
            let entry = logs.get(receiver_name);
            let Some((reason, included)) = decide(
                entry,
                &firing,
                &resolved,
                receiver.send_resolved,
                repeat,
                now,
            ) else {
                // Not told of the episodes that ended (it does not want resolutions, or
                // they are muted), the receiver still must not take a later firing of
                // them for the one it heard: they are over, as if resolved.
                if let Some(entry) = logs.get_mut(receiver_name) {
                    for fingerprint in &ended {
                        if entry.firing.remove(fingerprint) {
                            entry.resolved.insert(fingerprint.clone());
                            changed.insert(receiver_name.clone());
                        }
                    }
                }
                continue;
            };
            let message = build_message(
                key,
                receiver_name,
                reason,
                &group.labels,
                included
                    .iter()
                    .map(|fingerprint| &group.members[fingerprint].alert),
                &config.external_url,
                context.recommendations,
            );
            let entry = LogEntry {
                sent_at: now,
                firing: firing.clone(),
                resolved: resolved.clone(),
            };
            logs.insert(receiver_name.clone(), entry);
            changed.insert(receiver_name.clone());
            flush.notifications.push(Outgoing {
                receiver: receiver_name.clone(),
                message,
            });
        }

        // Resolved members have had their say, and a queued episode takes its member's
        // place for the next flush; every mark of what was flushed is consumed.
        let group = self.groups.get_mut(key).expect("the group flushed above");
        let mut released = Vec::new();
        let mut next_episodes = Vec::new();
        group.members.retain(|fingerprint, member| {
            released.append(&mut member.marks);
            if let Some((alert, marks)) = member.later.pop_front() {
                member.alert = alert;
                member.marks = marks;
                next_episodes.push(fingerprint.clone());
                return true;
            }
            member.alert.status == AlertStatus::Firing
        });
        // The resolution just sent was the earlier episode's, not the queued one's.
        for fingerprint in &next_episodes {
            changed.extend(forget_resolution(self.logs.get_mut(key), fingerprint));
        }
        for mark in released {
            let holders = self.mark_holders.entry(mark).or_insert(1);
            *holders -= 1;
            if *holders == 0 {
                self.mark_holders.remove(&mark);
                flush.consumed_marks.push(mark);
            }
        }
        flush.consumed_marks.sort_unstable();
        if group.members.is_empty() {
            self.groups.remove(key);
            self.logs.remove(key);
            flush.closed = true;
        } else {
            let mut interval = route.timing.group_interval;
            if has_alertmanager {
                interval = interval.min(ALERTMANAGER_RESEND);
            }
            group.next_flush = now.saturating_add(interval);
            if let Some(logs) = self.logs.get(key) {
                flush.log = route
                    .receivers
                    .iter()
                    .filter(|receiver| changed.contains(*receiver))
                    .filter_map(|receiver| {
                        logs.get(receiver)
                            .map(|entry| (receiver.clone(), entry.clone()))
                    })
                    .collect();
            }
        }
        Some(flush)
    }

    /// Why an alert is muted, if it is: an active silence, or a firing alert that
    /// inhibits it.
    fn muted_by(
        &self,
        alert: &AlertSnapshot,
        context: &FlushContext<'_>,
        sources: &[Vec<(String, LabelSet)>],
    ) -> Option<String> {
        if let Some(silence) = context
            .silences
            .iter()
            .find(|silence| silence.mutes(&alert.labels, context.now))
        {
            return Some(format!("silenced by {}", silence.id));
        }
        for (rule, sources) in self.config.inhibit.iter().zip(sources) {
            for (fingerprint, source) in sources {
                if *fingerprint != alert.fingerprint && rule.mutes(source, &alert.labels) {
                    let name = source.get("alertname").map_or("", String::as_str);
                    return Some(format!("inhibited by {name}"));
                }
            }
        }
        None
    }
}

/// Takes a fingerprint out of the `resolved` set of every receiver's log entry of a group,
/// when a new episode of the alert starts: the receivers must hear of that episode's end
/// too. Returns the receivers whose entry changed.
fn forget_resolution(
    logs: Option<&mut BTreeMap<String, LogEntry>>,
    fingerprint: &str,
) -> Vec<String> {
    logs.into_iter()
        .flatten()
        .filter_map(|(receiver, entry)| {
            entry.resolved.remove(fingerprint).then(|| receiver.clone())
        })
        .collect()
}

/// Whether a receiver is sent anything at this flush, why, and which alerts. Pure; the
/// table tests below pin every case.
fn decide(
    entry: Option<&LogEntry>,
    firing: &BTreeSet<String>,
    resolved: &BTreeSet<String>,
    send_resolved: bool,
    repeat: Duration,
    now: Timestamp,
) -> Option<(Reason, Vec<String>)> {
    let empty = BTreeSet::new();
    let (sent_firing, sent_resolved) = entry
        .map(|entry| (&entry.firing, &entry.resolved))
        .unwrap_or((&empty, &empty));
    // Resolved alerts this receiver never heard fire: always sent (never drop a firing).
    let unseen: BTreeSet<&String> = resolved
        .iter()
        .filter(|fp| !sent_firing.contains(*fp) && !sent_resolved.contains(*fp))
        .collect();
    let newly_resolved = resolved
        .iter()
        .any(|fp| sent_firing.contains(fp) && !sent_resolved.contains(fp));
    let new_firing = !firing.is_subset(sent_firing);
    let reason = match entry {
        None if !firing.is_empty() || !unseen.is_empty() => Reason::First,
        None => return None,
        Some(_) if new_firing || !unseen.is_empty() => Reason::NewAlerts,
        Some(_) if send_resolved && newly_resolved => Reason::Resolved,
        Some(entry) if !firing.is_empty() && now.duration_since(entry.sent_at) >= repeat => {
            Reason::Repeat
        }
        Some(_) => return None,
    };
    let mut included: Vec<String> = firing.iter().cloned().collect();
    if send_resolved {
        included.extend(resolved.iter().cloned());
    } else {
        included.extend(unseen.into_iter().cloned());
    }
    Some((reason, included))
}

/// The Alertmanager v4 message of one flush for one receiver.
fn build_message<'a>(
    group_key: &str,
    receiver: &str,
    reason: Reason,
    group_labels: &LabelSet,
    alerts: impl Iterator<Item = &'a AlertSnapshot>,
    external_url: &str,
    recommendations: &BTreeMap<String, Recommendation>,
) -> Message {
    let mut alerts: Vec<&AlertSnapshot> = alerts.collect();
    alerts.sort_by(|a, b| {
        (a.status, a.starts_at, &a.labels).cmp(&(b.status, b.starts_at, &b.labels))
    });
    let common_labels = common(alerts.iter().map(|alert| &alert.labels));
    let common_annotations = common(alerts.iter().map(|alert| &alert.annotations));
    let status = if alerts
        .iter()
        .any(|alert| alert.status == AlertStatus::Firing)
    {
        AlertStatus::Firing
    } else {
        AlertStatus::Resolved
    };
    let targets: BTreeSet<&str> = alerts.iter().map(|alert| alert.target()).collect();
    let recommendations = targets
        .into_iter()
        .filter_map(|target| {
            recommendations
                .get(target)
                .map(|recommendation| (target.to_string(), recommendation.clone()))
        })
        .collect();
    Message {
        version: "4".to_string(),
        group_key: group_key.to_string(),
        truncated_alerts: 0,
        status,
        receiver: receiver.to_string(),
        group_labels: group_labels.clone(),
        common_labels,
        common_annotations,
        external_url: external_url.to_string(),
        alerts: alerts
            .into_iter()
            .map(|alert| message_alert(alert, external_url))
            .collect(),
        vastwatch: Extra {
            reason,
            recommendations,
        },
    }
}

/// One alert as Alertmanager's payload writes it.
pub fn message_alert(alert: &AlertSnapshot, external_url: &str) -> MessageAlert {
    MessageAlert {
        status: alert.status,
        labels: alert.labels.clone(),
        annotations: alert.annotations.clone(),
        starts_at: alert.starts_at.to_rfc3339(),
        ends_at: alert
            .ends_at
            .map_or_else(|| ZERO_TIME.to_string(), Timestamp::to_rfc3339),
        generator_url: format!(
            "{external_url}/api/v1/alerts?fingerprint={}",
            alert.fingerprint
        ),
        fingerprint: alert.fingerprint.clone(),
    }
}

/// The pairs every map shares.
fn common<'a>(
    mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let Some(first) = maps.next() else {
        return BTreeMap::new();
    };
    let mut shared = first.clone();
    for map in maps {
        shared.retain(|name, value| map.get(name) == Some(value));
    }
    shared
}

#[cfg(test)]
mod tests;
