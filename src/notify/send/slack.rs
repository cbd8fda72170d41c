//! `format: slack`: `{"text": ..., "blocks": [...]}` for Slack incoming webhooks and the
//! Slack-compatible hooks of Mattermost and Discord.
//!
//! Slack shows the blocks and uses `text` for notifications; Mattermost and Discord show
//! only `text`, so `text` is the whole message as readable lines, cut to Discord's 2000
//! characters. The blocks respect Slack's limits (at most 50 blocks, 3000 characters in a
//! section, 150 in a header); what does not fit is counted in a last line instead of making
//! Slack reject the whole message.

use serde_json::{Value, json};

use super::super::message::{AlertStatus, Message, MessageAlert};
use super::text;
use crate::advise::Recommendation;

/// Slack rejects a message with more blocks than this.
const MAX_BLOCKS: usize = 50;
/// Slack rejects a section whose text is longer than this (characters).
const MAX_SECTION_TEXT: usize = 3000;
/// Slack rejects a header whose text is longer than this (characters).
const MAX_HEADER_TEXT: usize = 150;
/// Discord shows at most this many characters of `text`; Slack and Mattermost allow more.
const MAX_FALLBACK_TEXT: usize = 2000;

/// The Slack payload of a message.
pub(super) fn payload(message: &Message) -> Value {
    json!({
        "text": truncate_escaped(&escape(&text::render(message)), MAX_FALLBACK_TEXT),
        "blocks": blocks(message),
    })
}

fn blocks(message: &Message) -> Vec<Value> {
    let alerts = &message.alerts;
    let recommendations = &message.vastwatch.recommendations;
    let firing = message.firing().count();
    let resolved = message.resolved().count();

    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(&message.title(), MAX_HEADER_TEXT), "emoji": false},
        }),
        json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": escape(&format!(
                "{} · {firing} firing, {resolved} resolved",
                message.vastwatch.reason.as_str()
            ))}],
        }),
    ];

    // Header, context, and a divider between alerts and recommendations.
    let room = MAX_BLOCKS - blocks.len() - 1;
    let (alerts_shown, recommendations_shown) = if alerts.len() + recommendations.len() <= room {
        (alerts.len(), recommendations.len())
    } else {
        // Keep one block for the line that counts what was left out. Alerts take what
        // recommendations leave, but at least half, and the other way round.
        let room = room - 1;
        let alerts_shown = alerts
            .len()
            .min(room.saturating_sub(recommendations.len()).max(room / 2));
        (alerts_shown, recommendations.len().min(room - alerts_shown))
    };

    blocks.extend(alerts.iter().take(alerts_shown).map(alert_block));
    if alerts_shown > 0 && recommendations_shown > 0 {
        blocks.push(json!({"type": "divider"}));
    }
    blocks.extend(
        recommendations
            .iter()
            .take(recommendations_shown)
            .map(|(target, recommendation)| recommendation_block(target, recommendation)),
    );

    let alerts_left = alerts.len() - alerts_shown;
    let recommendations_left = recommendations.len() - recommendations_shown;
    if alerts_left > 0 || recommendations_left > 0 {
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!(
                "{alerts_left} more alerts and {recommendations_left} more recommendations not shown \
                 ({} alerts in all); the email, console or webhook receivers carry every one.",
                alerts.len()
            )}],
        }));
    }
    blocks
}

fn alert_block(alert: &MessageAlert) -> Value {
    let icon = match alert.status {
        AlertStatus::Firing => ":red_circle:",
        AlertStatus::Resolved => ":large_green_circle:",
    };
    let mut text = format!(
        "{icon} *{}* {}",
        text::status_word(alert.status),
        escape(text::alert_name(alert))
    );
    let labels = text::label_pairs(alert);
    if !labels.is_empty() {
        text.push_str(&format!("\n`{}`", escape(&labels).replace('`', "'")));
    }
    text.push_str(&format!("\n_{}_", escape(&text::alert_times(alert))));
    for name in text::LEADING_ANNOTATIONS {
        if let Some(value) = alert.annotations.get(name) {
            text.push_str(&format!("\n*{name}:* {}", escape(value)));
        }
    }
    section(&truncate_escaped(&text, MAX_SECTION_TEXT))
}

fn recommendation_block(target: &str, recommendation: &Recommendation) -> Value {
    let mut text = format!(
        "*Recommendation for {}:* {}\n{}",
        escape(target),
        escape(&text::recommendation_headline(recommendation)),
        escape(&recommendation.reason)
    );
    if !recommendation.replace.is_empty() {
        text.push_str(&format!(
            "\nreplace: {}",
            escape(&recommendation.replace.join(", "))
        ));
    }
    let mut text = truncate_escaped(&text, MAX_SECTION_TEXT);
    if !recommendation.commands.is_empty() {
        // Whatever room the text left, inside a code block whose fences always survive.
        const FENCES: &str = "\n``````";
        let room = MAX_SECTION_TEXT.saturating_sub(text.chars().count() + FENCES.len());
        let commands = escape(&recommendation.commands.join("\n")).replace("```", "'''");
        if room > 1 {
            text.push_str(&format!("\n```{}```", truncate_escaped(&commands, room)));
        }
    }
    section(&text)
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

/// Slack's three control characters, escaped as its docs require.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters, ending in `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// [`truncate`] for text already [`escape`]d: a cut never splits an entity such as `&amp;`
/// (escaping after cutting could grow the text past the limit again).
fn truncate_escaped(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    // Every `&` of escaped text starts an entity; one without its `;` was cut.
    if let Some(ampersand) = cut.rfind('&')
        && !cut[ampersand..].contains(';')
    {
        cut.truncate(ampersand);
    }
    cut.push('…');
    cut
}
