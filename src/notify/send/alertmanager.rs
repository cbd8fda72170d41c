//! The body vastwatch posts to an existing Alertmanager's `POST /api/v2/alerts`.
//!
//! Alertmanager treats an alert as resolved once its `endsAt` has passed, so a client
//! must keep re-sending firing alerts. Prometheus sends them with `endsAt` four resend
//! intervals ahead and re-sends every interval; vastwatch does the same, so a firing alert
//! survives three lost deliveries, and an alert whose resolution never arrives (vastwatch
//! stopped) resolves by itself minutes later instead of firing forever.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::super::message::{AlertStatus, Message, ZERO_TIME};
use crate::time::Timestamp;

/// How often the delivery worker re-sends a group's firing alerts to an Alertmanager
/// receiver. Firing alerts are sent with `endsAt = now + 4 × ALERTMANAGER_RESEND`.
pub const ALERTMANAGER_RESEND: Duration = Duration::from_secs(60);

/// How many resend intervals ahead a firing alert's `endsAt` is set (as Prometheus).
const RESENDS_BEFORE_EXPIRY: u32 = 4;

/// One element of Alertmanager's `postableAlerts` (its OpenAPI spec, v2).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PostableAlert<'a> {
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    starts_at: &'a str,
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
}

/// The alerts of `message` as Alertmanager's API takes them at `now`.
pub(super) fn postable_alerts(message: &Message, now: Timestamp) -> Vec<PostableAlert<'_>> {
    let firing_ends_at = now
        .saturating_add(ALERTMANAGER_RESEND * RESENDS_BEFORE_EXPIRY)
        .to_rfc3339();
    message
        .alerts
        .iter()
        .map(|alert| PostableAlert {
            labels: &alert.labels,
            annotations: &alert.annotations,
            starts_at: &alert.starts_at,
            ends_at: match alert.status {
                AlertStatus::Firing => firing_ends_at.clone(),
                // A resolution without an end time would read as "firing" to
                // Alertmanager; it ended no later than now.
                AlertStatus::Resolved if alert.ends_at.is_empty() || alert.ends_at == ZERO_TIME => {
                    now.to_rfc3339()
                }
                AlertStatus::Resolved => alert.ends_at.clone(),
            },
            generator_url: &alert.generator_url,
        })
        .collect()
}
