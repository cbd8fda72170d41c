//! The plain-text rendering of a message: console lines and an email's text/plain part.
//! The small helpers here (names, label lists, recommendation headlines) are shared with
//! the Slack and HTML renderings so every format says the same thing.

use std::fmt::Write as _;

use super::super::message::{AlertStatus, Message, MessageAlert, ZERO_TIME};
use crate::advise::Recommendation;

/// Annotations shown first, in this order; the rest follow alphabetically.
pub(super) const LEADING_ANNOTATIONS: [&str; 2] = ["summary", "description"];

/// The alert's `alertname`, or a placeholder when it has none.
pub(super) fn alert_name(alert: &MessageAlert) -> &str {
    alert
        .labels
        .get("alertname")
        .map_or("(no alertname)", String::as_str)
}

/// `name=value` pairs of every label but `alertname`, which is shown on its own.
pub(super) fn label_pairs(alert: &MessageAlert) -> String {
    let mut pairs = String::new();
    for (name, value) in alert.labels.iter().filter(|(name, _)| *name != "alertname") {
        if !pairs.is_empty() {
            pairs.push(' ');
        }
        let _ = write!(pairs, "{name}={value}");
    }
    pairs
}

/// The alert's annotations, summary and description first.
pub(super) fn ordered_annotations(alert: &MessageAlert) -> Vec<(&str, &str)> {
    let mut ordered: Vec<(&str, &str)> = LEADING_ANNOTATIONS
        .iter()
        .filter_map(|name| {
            alert
                .annotations
                .get(*name)
                .map(|value| (*name, value.as_str()))
        })
        .collect();
    ordered.extend(
        alert
            .annotations
            .iter()
            .filter(|(name, _)| !LEADING_ANNOTATIONS.contains(&name.as_str()))
            .map(|(name, value)| (name.as_str(), value.as_str())),
    );
    ordered
}

/// `FIRING` or `RESOLVED`.
pub(super) fn status_word(status: AlertStatus) -> &'static str {
    match status {
        AlertStatus::Firing => "FIRING",
        AlertStatus::Resolved => "RESOLVED",
    }
}

/// When the alert started and, once resolved, ended.
pub(super) fn alert_times(alert: &MessageAlert) -> String {
    match alert.status {
        AlertStatus::Resolved if !alert.ends_at.is_empty() && alert.ends_at != ZERO_TIME => {
            format!("from {} to {}", alert.starts_at, alert.ends_at)
        }
        _ => format!("since {}", alert.starts_at),
    }
}

/// `scale_up: 3 → 5 workers (+2)`: the action and the counts in one phrase.
pub(super) fn recommendation_headline(recommendation: &Recommendation) -> String {
    format!(
        "{}: {} → {} workers ({:+})",
        recommendation.action.as_str(),
        recommendation.current_workers,
        recommendation.desired_workers,
        recommendation.delta
    )
}

/// The whole message as readable lines: the title and reason, each alert with its labels
/// and annotations, then each target's recommendation with its commands. Every value is
/// kept on its line and stripped of control characters, so a label cannot forge a line
/// or send escapes to a terminal.
pub(super) fn render(message: &Message) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({})",
        one_line(&message.title()),
        message.vastwatch.reason.as_str()
    );
    for alert in &message.alerts {
        let _ = write!(
            out,
            "  {:<8} {}",
            status_word(alert.status),
            one_line(alert_name(alert))
        );
        let labels = label_pairs(alert);
        if !labels.is_empty() {
            let _ = write!(out, " {}", one_line(&labels));
        }
        let _ = writeln!(out, " ({})", one_line(&alert_times(alert)));
        for (name, value) in ordered_annotations(alert) {
            let _ = writeln!(out, "           {}: {}", one_line(name), one_line(value));
        }
    }
    for (target, recommendation) in &message.vastwatch.recommendations {
        let _ = writeln!(
            out,
            "  Recommendation for {}: {}",
            one_line(target),
            recommendation_headline(recommendation)
        );
        let _ = writeln!(out, "    {}", one_line(&recommendation.reason));
        if !recommendation.replace.is_empty() {
            let _ = writeln!(
                out,
                "    replace: {}",
                one_line(&recommendation.replace.join(", "))
            );
        }
        for command in &recommendation.commands {
            let _ = writeln!(out, "    $ {}", one_line(command));
        }
    }
    out
}

/// Text with its line breaks folded, so each item stays on its line, and other control
/// characters (a terminal escape in a label, say) shown as `\u{fffd}`.
fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .map(|character| {
            if character.is_control() {
                char::REPLACEMENT_CHARACTER
            } else {
                character
            }
        })
        .collect()
}
