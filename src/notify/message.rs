//! What a notification says, independent of where it goes: exactly Alertmanager's webhook
//! v4 JSON plus one `vastwatch` key (SPEC §8.2). The outbox stores this as `payload`; every
//! receiver format (Slack, email, console, Alertmanager's API) is rendered from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::advise::Recommendation;

/// Alertmanager's "zero" time, which it sends as `endsAt` of an alert still firing.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One notification: a group of alerts for one receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Always `"4"`.
    pub version: String,
    pub group_key: String,
    /// Alerts left out to keep a message small; vastwatch never truncates, so 0.
    pub truncated_alerts: u64,
    /// `firing` when any alert in `alerts` fires, else `resolved`.
    pub status: AlertStatus,
    pub receiver: String,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<MessageAlert>,
    pub vastwatch: Extra,
}

/// One alert in a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageAlert {
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339, UTC.
    pub starts_at: String,
    /// RFC 3339, UTC; [`ZERO_TIME`] while the alert fires.
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

/// `firing` or `resolved`, as Alertmanager spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// The key vastwatch adds to Alertmanager's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extra {
    /// Why this message was sent.
    pub reason: Reason,
    /// The current recommendation of each target in the group.
    pub recommendations: BTreeMap<String, Recommendation>,
}

/// Why a group was notified (SPEC §8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    #[serde(rename = "first notification")]
    First,
    #[serde(rename = "new alerts")]
    NewAlerts,
    #[serde(rename = "resolved")]
    Resolved,
    #[serde(rename = "repeat")]
    Repeat,
    /// `vastwatch notify test`.
    #[serde(rename = "test")]
    Test,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::First => "first notification",
            Reason::NewAlerts => "new alerts",
            Reason::Resolved => "resolved",
            Reason::Repeat => "repeat",
            Reason::Test => "test",
        }
    }
}

impl Message {
    /// Firing alerts in the message.
    pub fn firing(&self) -> impl Iterator<Item = &MessageAlert> {
        self.alerts
            .iter()
            .filter(|alert| alert.status == AlertStatus::Firing)
    }

    /// Resolved alerts in the message.
    pub fn resolved(&self) -> impl Iterator<Item = &MessageAlert> {
        self.alerts
            .iter()
            .filter(|alert| alert.status == AlertStatus::Resolved)
    }

    /// A short title: `[FIRING:N] alertname target` or `[RESOLVED] alertname target`,
    /// naming the group's common `alertname` and `target` where they have one. Email
    /// subjects, Slack headers and console lines use it.
    pub fn title(&self) -> String {
        let mut title = match self.status {
            AlertStatus::Firing => format!("[FIRING:{}]", self.firing().count()),
            AlertStatus::Resolved => "[RESOLVED]".to_string(),
        };
        for key in ["alertname", "target"] {
            if let Some(value) = self
                .common_labels
                .get(key)
                .or_else(|| self.group_labels.get(key))
            {
                title.push(' ');
                title.push_str(value);
            }
        }
        title
    }
}
