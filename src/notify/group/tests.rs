use std::time::Duration;

use super::*;
use crate::notify::matcher::Matcher;
use crate::notify::receiver::{AlertmanagerReceiver, Receiver};
use crate::notify::route::{GroupBy, GroupTiming, InhibitRule, Route};

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|item| item.to_string()).collect()
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_millis(secs * 1000)
}

fn entry(sent_at: i64, firing: &[&str], resolved: &[&str]) -> LogEntry {
    LogEntry {
        sent_at: at(sent_at),
        firing: set(firing),
        resolved: set(resolved),
    }
}

#[test]
fn decide_follows_the_notification_table() {
    const HOUR: Duration = Duration::from_secs(3600);
    type Case<'a> = (
        &'a str,
        Option<LogEntry>,
        &'a [&'a str],
        &'a [&'a str],
        bool,
        i64,
        Option<(Reason, &'a [&'a str])>,
    );
    let cases: &[Case<'_>] = &[
        (
            "new group, firing",
            None,
            &["a"],
            &[],
            true,
            0,
            Some((Reason::First, &["a"])),
        ),
        ("new group, nothing", None, &[], &[], true, 0, None),
        (
            "fired and resolved before the first send",
            None,
            &[],
            &["a"],
            false,
            0,
            Some((Reason::First, &["a"])),
        ),
        (
            "a new firing alert",
            Some(entry(0, &["a"], &[])),
            &["a", "b"],
            &[],
            true,
            10,
            Some((Reason::NewAlerts, &["a", "b"])),
        ),
        (
            "resolution, wanted",
            Some(entry(0, &["a"], &[])),
            &[],
            &["a"],
            true,
            10,
            Some((Reason::Resolved, &["a"])),
        ),
        (
            "resolution, not wanted",
            Some(entry(0, &["a"], &[])),
            &[],
            &["a"],
            false,
            10,
            None,
        ),
        (
            "one of two resolved; the other is still listed",
            Some(entry(0, &["a", "b"], &[])),
            &["a"],
            &["b"],
            true,
            10,
            Some((Reason::Resolved, &["a", "b"])),
        ),
        (
            "unchanged, before repeat",
            Some(entry(0, &["a"], &[])),
            &["a"],
            &[],
            true,
            3599,
            None,
        ),
        (
            "unchanged, repeat due",
            Some(entry(0, &["a"], &[])),
            &["a"],
            &[],
            true,
            3600,
            Some((Reason::Repeat, &["a"])),
        ),
        (
            "an unseen resolution is new even without send_resolved",
            Some(entry(0, &["a"], &[])),
            &["a"],
            &["b"],
            false,
            10,
            Some((Reason::NewAlerts, &["a", "b"])),
        ),
        (
            "a resolution already sent is not sent again",
            Some(entry(0, &["a"], &["b"])),
            &["a"],
            &["b"],
            true,
            10,
            None,
        ),
        (
            "resolved and already told",
            Some(entry(0, &[], &["a"])),
            &[],
            &["a"],
            true,
            7200,
            None,
        ),
    ];
    for (name, entry, firing, resolved, send_resolved, now, expected) in cases {
        let got = decide(
            entry.as_ref(),
            &set(firing),
            &set(resolved),
            *send_resolved,
            HOUR,
            at(*now),
        );
        let expected = expected.map(|(reason, alerts)| {
            (
                reason,
                alerts.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            )
        });
        assert_eq!(got, expected, "{name}");
    }
}

const WAIT: Duration = Duration::from_secs(10);
const INTERVAL: Duration = Duration::from_secs(60);
const REPEAT: Duration = Duration::from_secs(3600);

fn timing() -> GroupTiming {
    GroupTiming {
        group_wait: WAIT,
        group_interval: INTERVAL,
        repeat_interval: REPEAT,
    }
}

fn console(name: &str, send_resolved: bool) -> Receiver {
    Receiver {
        name: name.to_string(),
        send_resolved,
        kind: ReceiverKind::Console,
    }
}

fn config(receivers: Vec<Receiver>, routes: Vec<Route>) -> Arc<NotifyConfig> {
    Arc::new(NotifyConfig {
        receivers,
        routes,
        ..NotifyConfig::default()
    })
}

fn simple() -> Arc<NotifyConfig> {
    one_route(console("ops", true), GroupBy::default())
}

/// One route to one receiver, grouping by `group_by`.
fn one_route(receiver: Receiver, group_by: GroupBy) -> Arc<NotifyConfig> {
    let name = receiver.name.clone();
    config(
        vec![receiver],
        vec![Route::new(0, vec![], vec![name], false, group_by, timing())],
    )
}

fn alert(name: &str, target: &str, worker: &str, status: AlertStatus, start: i64) -> AlertSnapshot {
    let mut labels: LabelSet = [
        ("alertname".to_string(), name.to_string()),
        ("target".to_string(), target.to_string()),
        ("severity".to_string(), "warning".to_string()),
    ]
    .into();
    if !worker.is_empty() {
        labels.insert("worker_id".into(), worker.into());
    }
    AlertSnapshot {
        fingerprint: crate::rules::labels::fingerprint(&labels),
        status,
        labels,
        annotations: [("summary".to_string(), format!("{name} on {target}"))].into(),
        starts_at: at(start),
        ends_at: None,
    }
}

fn resolved(mut snapshot: AlertSnapshot, end: i64) -> AlertSnapshot {
    snapshot.status = AlertStatus::Resolved;
    snapshot.ends_at = Some(at(end));
    snapshot
}

fn flush(grouper: &mut Grouper, now: i64) -> Vec<Flush> {
    flush_with(grouper, now, &[])
}

fn flush_with(grouper: &mut Grouper, now: i64, silences: &[Silence]) -> Vec<Flush> {
    grouper.flush_due(&FlushContext {
        now: at(now),
        silences,
        recommendations: &BTreeMap::new(),
    })
}

/// `(receiver, reason, [(worker_id, status)])` of each message.
type Sent = (String, Reason, Vec<(String, AlertStatus)>);

fn sent(flushes: &[Flush]) -> Vec<Sent> {
    flushes
        .iter()
        .flat_map(|flush| &flush.notifications)
        .map(|outgoing| {
            (
                outgoing.receiver.clone(),
                outgoing.message.vastwatch.reason,
                outgoing
                    .message
                    .alerts
                    .iter()
                    .map(|alert| {
                        (
                            alert.labels.get("worker_id").cloned().unwrap_or_default(),
                            alert.status,
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn three_alerts_within_group_wait_make_one_notification() {
    let mut grouper = Grouper::new(simple());
    for (mark, worker) in [(1, "1"), (2, "2"), (3, "3")] {
        let snapshot = alert("WorkerSaturated", "prod", worker, AlertStatus::Firing, 100);
        assert!(grouper.observe(Some(mark), snapshot, at(100 + mark)));
    }
    assert!(
        flush(&mut grouper, 109).is_empty(),
        "group_wait has not passed"
    );
    assert_eq!(
        grouper.next_deadline(),
        Some(at(111)),
        "the first alert opened the group"
    );
    let flushes = flush(&mut grouper, 111);
    let firing = AlertStatus::Firing;
    assert_eq!(
        sent(&flushes),
        vec![(
            "ops".to_string(),
            Reason::First,
            vec![
                ("1".into(), firing),
                ("2".into(), firing),
                ("3".into(), firing)
            ]
        )]
    );
    let message = &flushes[0].notifications[0].message;
    assert_eq!(
        message.group_labels.get("alertname").unwrap(),
        "WorkerSaturated"
    );
    assert_eq!(message.common_labels.get("target").unwrap(), "prod");
    assert!(!message.common_labels.contains_key("worker_id"));
    assert_eq!(message.title(), "[FIRING:3] WorkerSaturated prod");
    assert_eq!(flushes[0].consumed_marks, vec![1, 2, 3]);
    assert!(!flushes[0].closed);
}

#[test]
fn an_alert_that_fired_and_resolved_within_group_wait_is_still_sent() {
    let mut grouper = Grouper::new(one_route(console("quiet", false), GroupBy::default()));
    let firing = alert(
        "WorkerLowReliability",
        "prod",
        "7",
        AlertStatus::Firing,
        100,
    );
    grouper.observe(Some(1), firing.clone(), at(100));
    grouper.observe(Some(2), resolved(firing, 105), at(105));
    let flushes = flush(&mut grouper, 110);
    assert_eq!(
        sent(&flushes),
        vec![(
            "quiet".to_string(),
            Reason::First,
            vec![("7".into(), AlertStatus::Resolved)]
        )]
    );
    let alert = &flushes[0].notifications[0].message.alerts[0];
    assert_eq!(alert.starts_at, at(100).to_rfc3339());
    assert_eq!(alert.ends_at, at(105).to_rfc3339());
    assert_eq!(
        flushes[0].notifications[0].message.status,
        AlertStatus::Resolved
    );
    assert!(flushes[0].closed, "nothing fires any more");
    assert_eq!(flushes[0].consumed_marks, vec![1, 2]);
    assert_eq!(grouper.group_count(), 0);
}

#[test]
fn changes_are_batched_every_group_interval_and_repeats_wait_for_repeat_interval() {
    let mut grouper = Grouper::new(simple());
    let first = alert("WorkerSaturated", "prod", "1", AlertStatus::Firing, 100);
    grouper.observe(Some(1), first.clone(), at(100));
    assert_eq!(sent(&flush(&mut grouper, 110)).len(), 1);
    // Unchanged: nothing at the next interval.
    assert!(sent(&flush(&mut grouper, 170)).is_empty());
    // A second alert waits for the interval, then goes out with the first.
    let second = alert("WorkerSaturated", "prod", "2", AlertStatus::Firing, 180);
    grouper.observe(Some(2), second.clone(), at(180));
    assert!(flush(&mut grouper, 200).is_empty(), "not due until 230");
    let batch = sent(&flush(&mut grouper, 230));
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].1, Reason::NewAlerts);
    assert_eq!(batch[0].2.len(), 2);
    // The first resolves: a resolved notification listing the one still firing.
    grouper.observe(Some(3), resolved(first, 250), at(250));
    let batch = sent(&flush(&mut grouper, 290));
    assert_eq!(
        batch,
        vec![(
            "ops".to_string(),
            Reason::Resolved,
            vec![
                ("2".into(), AlertStatus::Firing),
                ("1".into(), AlertStatus::Resolved)
            ]
        )]
    );
    // Nothing until repeat_interval after the last send, then a repeat.
    let mut now = 290;
    let mut repeats = Vec::new();
    while now < 290 + 3600 + 120 {
        now += 60;
        repeats.extend(
            sent(&flush(&mut grouper, now))
                .into_iter()
                .map(|s| (now, s.1)),
        );
    }
    assert_eq!(repeats, vec![(3890, Reason::Repeat)]);
    // Resolving the last one closes the group.
    grouper.observe(Some(4), resolved(second, now), at(now));
    let flushes = flush(&mut grouper, now + 60);
    assert_eq!(sent(&flushes)[0].1, Reason::Resolved);
    assert!(flushes[0].closed);
}

#[test]
fn silenced_alerts_are_held_back_and_sent_when_the_silence_ends() {
    let mut grouper = Grouper::new(simple());
    let silence = Silence {
        id: "s-1".into(),
        matchers: vec![Matcher::parse("worker_id=2").unwrap()],
        starts_at: at(0),
        ends_at: at(500),
        comment: "known bad host".into(),
        created_by: "ops".into(),
    };
    let silences = [silence];
    grouper.observe(
        Some(1),
        alert("WorkerSaturated", "prod", "1", AlertStatus::Firing, 100),
        at(100),
    );
    grouper.observe(
        Some(2),
        alert("WorkerSaturated", "prod", "2", AlertStatus::Firing, 100),
        at(100),
    );
    let flushes = flush_with(&mut grouper, 110, &silences);
    assert_eq!(
        sent(&flushes)[0].2,
        vec![("1".to_string(), AlertStatus::Firing)]
    );
    assert_eq!(flushes[0].muted.len(), 1);
    assert_eq!(flushes[0].muted[0].why, "silenced by s-1");
    assert!(flushes[0].muted[0].changed);
    // Still silenced: nothing new, and the mute is no longer a change.
    let flushes = flush_with(&mut grouper, 170, &silences);
    assert!(sent(&flushes).is_empty());
    assert!(!flushes[0].muted[0].changed);
    // The silence has ended: worker 2 is news.
    let batch = sent(&flush_with(&mut grouper, 530, &silences));
    assert_eq!(batch[0].1, Reason::NewAlerts);
    assert_eq!(batch[0].2.len(), 2);
}

#[test]
fn a_target_that_is_down_mutes_its_other_alerts_only() {
    let mut grouper = Grouper::new(simple());
    grouper.observe(
        Some(1),
        alert("VastwatchTargetDown", "prod", "", AlertStatus::Firing, 100),
        at(100),
    );
    grouper.observe(
        Some(2),
        alert("WorkerSaturated", "prod", "1", AlertStatus::Firing, 100),
        at(100),
    );
    grouper.observe(
        Some(3),
        alert("WorkerSaturated", "dev", "1", AlertStatus::Firing, 100),
        at(100),
    );
    let flushes = flush(&mut grouper, 110);
    let mut sent_groups: Vec<String> = flushes
        .iter()
        .flat_map(|flush| &flush.notifications)
        .map(|outgoing| outgoing.message.title())
        .collect();
    sent_groups.sort();
    assert_eq!(
        sent_groups,
        vec![
            "[FIRING:1] VastwatchTargetDown prod".to_string(),
            "[FIRING:1] WorkerSaturated dev".to_string()
        ]
    );
    let muted: Vec<&Muted> = flushes.iter().flat_map(|flush| &flush.muted).collect();
    assert_eq!(muted.len(), 1);
    assert_eq!(muted[0].target, "prod");
    assert_eq!(muted[0].why, "inhibited by VastwatchTargetDown");
}

#[test]
fn configured_inhibit_rules_and_turning_off_the_builtin_one() {
    let mut config = (*simple()).clone();
    config.inhibit = vec![InhibitRule {
        source: vec![Matcher::parse("severity=critical").unwrap()],
        target: vec![Matcher::parse("severity=warning").unwrap()],
        equal: vec!["target".into()],
    }];
    let mut grouper = Grouper::new(Arc::new(config));
    let mut critical = alert("FleetOverloaded", "prod", "", AlertStatus::Firing, 100);
    critical.labels.insert("severity".into(), "critical".into());
    grouper.observe(None, critical, at(100));
    grouper.observe(
        None,
        alert("VastwatchTargetDown", "dev", "", AlertStatus::Firing, 100),
        at(100),
    );
    grouper.observe(
        None,
        alert("WorkerSaturated", "prod", "1", AlertStatus::Firing, 100),
        at(100),
    );
    grouper.observe(
        None,
        alert("WorkerSaturated", "dev", "1", AlertStatus::Firing, 100),
        at(100),
    );
    let titles: BTreeSet<String> = flush(&mut grouper, 110)
        .iter()
        .flat_map(|flush| &flush.notifications)
        .map(|outgoing| outgoing.message.title())
        .collect();
    // prod's warning is muted by its critical; dev's is not muted: the built-in rule is off.
    assert!(
        titles.contains("[FIRING:1] WorkerSaturated dev"),
        "{titles:?}"
    );
    assert!(
        !titles.contains("[FIRING:1] WorkerSaturated prod"),
        "{titles:?}"
    );
}

#[test]
fn a_mark_is_consumed_only_once_every_group_holding_it_has_flushed() {
    let slow = GroupTiming {
        group_wait: Duration::from_secs(100),
        ..timing()
    };
    let config = config(
        vec![console("pager", true), console("ops", true)],
        vec![
            Route::new(
                0,
                vec![Matcher::parse("severity=warning").unwrap()],
                vec!["pager".into()],
                true,
                GroupBy::default(),
                timing(),
            ),
            Route::new(
                1,
                vec![],
                vec!["ops".into()],
                false,
                GroupBy::Labels(vec![]),
                slow,
            ),
        ],
    );
    let mut grouper = Grouper::new(config);
    assert!(grouper.observe(
        Some(7),
        alert("WorkerSaturated", "prod", "1", AlertStatus::Firing, 100),
        at(100)
    ));
    let early = flush(&mut grouper, 110);
    assert_eq!(sent(&early).len(), 1);
    assert!(
        early[0].consumed_marks.is_empty(),
        "the second route's group still holds it"
    );
    let late = flush(&mut grouper, 200);
    assert_eq!(sent(&late).len(), 1);
    let second = late
        .iter()
        .find(|flush| flush.group_key == "1:{}:{}")
        .unwrap();
    assert_eq!(second.consumed_marks, vec![7]);
    assert_eq!(second.notifications[0].receiver, "ops");
}

#[test]
fn an_alert_no_route_takes_is_reported_unrouted() {
    let config = config(
        vec![console("ops", true)],
        vec![Route::new(
            0,
            vec![Matcher::parse("team=ml").unwrap()],
            vec!["ops".into()],
            false,
            GroupBy::default(),
            timing(),
        )],
    );
    let mut grouper = Grouper::new(config);
    assert!(!grouper.observe(
        Some(1),
        alert("WorkerSaturated", "prod", "1", AlertStatus::Firing, 100),
        at(100)
    ));
    assert_eq!(grouper.group_count(), 0);
}

#[test]
fn a_restored_log_prevents_a_repeat_after_restart() {
    let mut before = Grouper::new(simple());
    let firing = alert("WorkerSaturated", "prod", "1", AlertStatus::Firing, 100);
    before.observe(Some(1), firing.clone(), at(100));
    let flushes = flush(&mut before, 110);
    let (receiver, entry) = flushes[0].log[0].clone();
    // Restart: the log comes back from the database, the alert from the alerts table.
    let mut after = Grouper::new(simple());
    after.restore_log(flushes[0].group_key.clone(), receiver, entry);
    after.observe(None, firing, at(1000));
    assert!(sent(&flush(&mut after, 1010)).is_empty());
    let repeat: Vec<_> = (1..=70)
        .flat_map(|i| sent(&flush(&mut after, 1010 + i * 60)))
        .collect();
    assert_eq!(
        repeat.len(),
        1,
        "exactly one repeat, an hour after the first send"
    );
    assert_eq!(repeat[0].1, Reason::Repeat);
}

#[test]
fn an_alertmanager_receiver_hears_firing_alerts_every_minute() {
    let alertmanager = Receiver {
        name: "am".into(),
        send_resolved: true,
        kind: ReceiverKind::Alertmanager(AlertmanagerReceiver {
            url: "http://127.0.0.1:9093".parse().unwrap(),
            timeout: Duration::from_secs(5),
            headers: BTreeMap::new(),
        }),
    };
    let slow = GroupTiming {
        group_interval: Duration::from_secs(300),
        ..timing()
    };
    let mut grouper = Grouper::new(config(
        vec![alertmanager],
        vec![Route::new(
            0,
            vec![],
            vec!["am".into()],
            false,
            GroupBy::default(),
            slow,
        )],
    ));
    grouper.observe(
        Some(1),
        alert("WorkerSaturated", "prod", "1", AlertStatus::Firing, 100),
        at(100),
    );
    let mut sends = Vec::new();
    for now in (110..=350).step_by(10) {
        sends.extend(
            sent(&flush(&mut grouper, now))
                .into_iter()
                .map(|s| (now, s.1)),
        );
    }
    assert_eq!(
        sends,
        vec![
            (110, Reason::First),
            (170, Reason::Repeat),
            (230, Reason::Repeat),
            (290, Reason::Repeat),
            (350, Reason::Repeat)
        ]
    );
}

#[test]
fn payloads_carry_the_recommendations_of_the_targets_in_the_group() {
    use crate::advise::{AdvisorInput, ScalingConfig};
    let mut grouper = Grouper::new(simple());
    grouper.observe(
        Some(1),
        alert("WorkerSaturated", "prod", "1", AlertStatus::Firing, 100),
        at(100),
    );
    let history = std::collections::VecDeque::new();
    let input = AdvisorInput {
        history: &history,
        last_poll: None,
        interval: Duration::from_secs(10),
        kind: crate::model::TargetKind::Endpoint,
        vast_id: 1,
        now: at(110),
    };
    let recommendation = crate::advise::advise(&input, &ScalingConfig::default());
    let recommendations: BTreeMap<String, Recommendation> = [
        ("prod".to_string(), recommendation.clone()),
        ("other".to_string(), recommendation.clone()),
    ]
    .into();
    let flushes = grouper.flush_due(&FlushContext {
        now: at(110),
        silences: &[],
        recommendations: &recommendations,
    });
    let message = &flushes[0].notifications[0].message;
    assert_eq!(
        message.vastwatch.recommendations.keys().collect::<Vec<_>>(),
        vec!["prod"]
    );
    let json = serde_json::to_value(message).unwrap();
    assert_eq!(json["vastwatch"]["reason"], "first notification");
    assert_eq!(json["version"], "4");
    assert_eq!(json["alerts"][0]["endsAt"], ZERO_TIME);
    assert!(
        json["alerts"][0]["generatorURL"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:9469/")
    );
}

/// Found by the crash loop (tests/it/crash_loop.rs): a re-fire used to overwrite the
/// resolution still waiting for the next flush, so the receiver never heard that the first
/// episode resolved (SPEC §8.4). The re-fire now waits for the flush after.
#[test]
fn a_resolution_followed_by_a_re_fire_within_one_batch_is_still_sent() {
    let mut grouper = Grouper::new(simple());
    let first = alert(
        "WorkerLowReliability",
        "prod",
        "7",
        AlertStatus::Firing,
        100,
    );
    grouper.observe(Some(1), first.clone(), at(100));
    let flushes = flush(&mut grouper, 110);
    assert_eq!(
        sent(&flushes),
        vec![(
            "ops".to_string(),
            Reason::First,
            vec![("7".into(), AlertStatus::Firing)]
        )]
    );
    // Within one group interval: the episode resolves and a new one fires.
    grouper.observe(Some(2), resolved(first, 112), at(112));
    let second = alert(
        "WorkerLowReliability",
        "prod",
        "7",
        AlertStatus::Firing,
        114,
    );
    grouper.observe(Some(3), second, at(114));
    let flushes = flush(&mut grouper, 110 + INTERVAL.as_secs() as i64);
    let alerts: Vec<(AlertStatus, String)> = flushes
        .iter()
        .flat_map(|flush| &flush.notifications)
        .flat_map(|outgoing| &outgoing.message.alerts)
        .map(|alert| (alert.status, alert.starts_at.clone()))
        .collect();
    assert!(
        alerts.contains(&(AlertStatus::Resolved, at(100).to_rfc3339())),
        "the first episode's resolution is sent: {alerts:?}"
    );
}

/// `(status, startsAt)` of every alert of every message of `flushes`.
fn episodes(flushes: &[Flush]) -> Vec<(AlertStatus, String)> {
    flushes
        .iter()
        .flat_map(|flush| &flush.notifications)
        .flat_map(|outgoing| &outgoing.message.alerts)
        .map(|alert| (alert.status, alert.starts_at.clone()))
        .collect()
}

/// Workers 1 and 7 of `WorkerSaturated` fire at 100 (marks 1 and 2) and are sent at 110;
/// 7 resolves at 120 (mark 3). Returns the flush at 170, which handles that resolution.
fn fire_two_then_resolve_one(grouper: &mut Grouper) -> Vec<Flush> {
    let steady = alert("WorkerSaturated", "prod", "1", AlertStatus::Firing, 100);
    let first = alert("WorkerSaturated", "prod", "7", AlertStatus::Firing, 100);
    grouper.observe(Some(1), steady, at(100));
    grouper.observe(Some(2), first.clone(), at(100));
    assert_eq!(sent(&flush(grouper, 110)).len(), 1);
    grouper.observe(Some(3), resolved(first, 120), at(120));
    flush(grouper, 170)
}

/// Found by the crash loop (tests/it/crash_loop.rs), which counted transitions that
/// reached no message: once a group had sent an alert's resolution, the receiver's log
/// listed it as resolved, and a later episode that fired and resolved before the next
/// flush was taken for that resolution and never sent (SPEC §8.4). Here the group stays
/// open because another alert in it keeps firing.
#[test]
fn a_later_episode_that_resolves_before_the_next_flush_is_sent() {
    let mut grouper = Grouper::new(simple());
    let flushes = fire_two_then_resolve_one(&mut grouper);
    assert_eq!(
        episodes(&flushes),
        vec![
            (AlertStatus::Firing, at(100).to_rfc3339()),
            (AlertStatus::Resolved, at(100).to_rfc3339())
        ]
    );
    // The second episode fires and resolves within one group interval.
    let second = alert("WorkerSaturated", "prod", "7", AlertStatus::Firing, 180);
    grouper.observe(Some(4), second.clone(), at(180));
    grouper.observe(Some(5), resolved(second, 190), at(190));
    let flushes = flush(&mut grouper, 230);
    assert!(
        episodes(&flushes).contains(&(AlertStatus::Resolved, at(180).to_rfc3339())),
        "the second episode is sent: {:?}",
        episodes(&flushes)
    );
    assert_eq!(flushes[0].consumed_marks, vec![4, 5]);
}

/// The crash loop's case (every alert its own group): a resolution and a re-fire within
/// one batch send the resolution first and queue the re-fire; when the re-fire resolves
/// before the flush after, that episode is still sent.
#[test]
fn a_queued_re_fire_that_resolves_before_its_flush_is_sent() {
    let mut grouper = Grouper::new(one_route(console("ops", true), GroupBy::All));
    let first = alert("WorkerAboveAverage", "prod", "7", AlertStatus::Firing, 100);
    grouper.observe(Some(1), first.clone(), at(100));
    assert_eq!(sent(&flush(&mut grouper, 110)).len(), 1);
    grouper.observe(Some(2), resolved(first, 112), at(112));
    let second = alert("WorkerAboveAverage", "prod", "7", AlertStatus::Firing, 114);
    grouper.observe(Some(3), second.clone(), at(114));
    let flushes = flush(&mut grouper, 170);
    assert_eq!(
        episodes(&flushes),
        vec![(AlertStatus::Resolved, at(100).to_rfc3339())]
    );
    assert!(!flushes[0].closed, "the re-fire keeps the group open");
    grouper.observe(Some(4), resolved(second, 180), at(180));
    let flushes = flush(&mut grouper, 230);
    assert_eq!(
        episodes(&flushes),
        vec![(AlertStatus::Resolved, at(114).to_rfc3339())],
        "the second episode, fired and resolved between two flushes, is sent"
    );
    assert_eq!(flushes[0].consumed_marks, vec![3, 4]);
    assert!(flushes[0].closed);
}

/// A receiver without `send_resolved` is not told that an episode ended, but must still
/// hear the next one fire: an alert that fired is always in some notification.
#[test]
fn without_send_resolved_a_re_fire_after_a_resolution_is_sent() {
    let mut grouper = Grouper::new(one_route(console("quiet", false), GroupBy::default()));
    let flushes = fire_two_then_resolve_one(&mut grouper);
    assert!(sent(&flushes).is_empty(), "the resolution is not wanted");
    assert_eq!(
        flushes[0].log.len(),
        1,
        "the receiver's log forgets the ended episode, and is stored"
    );
    let second = alert("WorkerSaturated", "prod", "7", AlertStatus::Firing, 180);
    grouper.observe(Some(4), second, at(180));
    assert_eq!(
        sent(&flush(&mut grouper, 230)),
        vec![(
            "quiet".to_string(),
            Reason::NewAlerts,
            vec![
                ("1".into(), AlertStatus::Firing),
                ("7".into(), AlertStatus::Firing)
            ]
        )]
    );
}

/// After a restart the marks not yet consumed are observed again, after the alerts that
/// fire now. A resolution this group already sent (its mark was held by another group too)
/// is not sent again, even though the alert has fired anew since; the new episode is.
#[test]
fn a_resolution_sent_before_a_restart_is_not_sent_again_when_the_alert_fires_anew() {
    let mut before = Grouper::new(simple());
    let flushes = fire_two_then_resolve_one(&mut before);
    assert_eq!(
        episodes(&flushes),
        vec![
            (AlertStatus::Firing, at(100).to_rfc3339()),
            (AlertStatus::Resolved, at(100).to_rfc3339())
        ]
    );
    // Restart: the log as stored, the alerts firing now (the second episode of "7"
    // started at 180), then the marks still held: the resolution and the new firing.
    let steady = alert("WorkerSaturated", "prod", "1", AlertStatus::Firing, 100);
    let first = alert("WorkerSaturated", "prod", "7", AlertStatus::Firing, 100);
    let mut after = Grouper::new(simple());
    for (receiver, entry) in &flushes[0].log {
        after.restore_log(
            flushes[0].group_key.clone(),
            receiver.clone(),
            entry.clone(),
        );
    }
    let second = alert("WorkerSaturated", "prod", "7", AlertStatus::Firing, 180);
    after.observe(None, steady, at(200));
    after.observe(None, second.clone(), at(200));
    after.observe(Some(3), resolved(first, 120), at(200));
    after.observe(Some(4), second, at(200));
    let mut sent_after = Vec::new();
    for now in [210, 270] {
        sent_after.extend(episodes(&flush(&mut after, now)));
    }
    assert!(
        !sent_after.contains(&(AlertStatus::Resolved, at(100).to_rfc3339())),
        "the first resolution is not sent twice: {sent_after:?}"
    );
    assert!(
        sent_after.contains(&(AlertStatus::Firing, at(180).to_rfc3339())),
        "the second episode is sent: {sent_after:?}"
    );
}
