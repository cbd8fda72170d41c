//! Silences (SPEC §8.5): mute notifications of alerts whose labels match every matcher,
//! between `starts_at` and `ends_at`. Muted alerts still change state and are stored.

use std::collections::BTreeMap;

use serde::Serialize;

use super::matcher::{Matcher, all_match};
use crate::time::{Timestamp, parse_duration};

/// A new silence as a user asks for it, from `silence add`'s flags or the HTTP API's
/// JSON body; [`SilenceRequest::build`] checks it the same way for both.
#[derive(Debug, Clone, Default)]
pub struct SilenceRequest {
    /// Label matchers as written: `name=value`, `name!=value`, `name=~re`, `name!~re`.
    pub matchers: Vec<String>,
    /// How long it lasts, e.g. `2h`; give this or `ends_at`.
    pub duration: Option<String>,
    /// When it ends, RFC 3339; give this or `duration`.
    pub ends_at: Option<String>,
    /// When it starts, RFC 3339; `None` means now.
    pub starts_at: Option<String>,
    pub comment: String,
    pub created_by: String,
}

/// The part of a [`SilenceRequest`] that is wrong; each caller names it its own way
/// (`--for` on the command line, `duration` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceField {
    Matchers,
    Duration,
    EndsAt,
    StartsAt,
}

impl SilenceRequest {
    /// Checks the request and makes the silence, with a fresh id, starting now by default.
    pub fn build(&self, now: Timestamp) -> Result<Silence, (SilenceField, String)> {
        if self.matchers.is_empty() {
            return Err((
                SilenceField::Matchers,
                "give at least one matcher".to_string(),
            ));
        }
        let matchers = self
            .matchers
            .iter()
            .map(|text| Matcher::parse(text).map_err(|message| (SilenceField::Matchers, message)))
            .collect::<Result<Vec<_>, _>>()?;
        let time = |text: &str, field| {
            Timestamp::parse_rfc3339(text)
                .ok_or_else(|| (field, format!("`{text}` is not an RFC 3339 time")))
        };
        let starts_at = match &self.starts_at {
            Some(text) => time(text, SilenceField::StartsAt)?,
            None => now,
        };
        let ends_at = match (&self.duration, &self.ends_at) {
            (Some(text), None) => {
                let duration = parse_duration(text)
                    .map_err(|error| (SilenceField::Duration, error.to_string()))?;
                if duration.is_zero() {
                    return Err((SilenceField::Duration, "must be longer than 0s".to_string()));
                }
                starts_at.saturating_add(duration)
            }
            (None, Some(text)) => {
                let ends_at = time(text, SilenceField::EndsAt)?;
                if ends_at <= starts_at {
                    return Err((SilenceField::EndsAt, "must be after the start".to_string()));
                }
                ends_at
            }
            (Some(_), Some(_)) => {
                return Err((
                    SilenceField::Duration,
                    "give a duration or an end time, not both".to_string(),
                ));
            }
            (None, None) => {
                return Err((
                    SilenceField::Duration,
                    "give a duration or an end time".to_string(),
                ));
            }
        };
        Ok(Silence {
            id: uuid::Uuid::new_v4().to_string(),
            matchers,
            starts_at,
            ends_at,
            comment: self.comment.clone(),
            created_by: self.created_by.clone(),
        })
    }
}

/// One row of `silences`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Silence {
    /// A UUID.
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub comment: String,
    pub created_by: String,
}

impl Silence {
    /// Whether the silence is in force at `now`: started, not yet ended.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.starts_at <= now && now < self.ends_at
    }

    /// `active`, `pending` (starts later) or `expired`.
    pub fn state(&self, now: Timestamp) -> &'static str {
        if now < self.starts_at {
            "pending"
        } else if now < self.ends_at {
            "active"
        } else {
            "expired"
        }
    }

    pub fn mutes(&self, labels: &BTreeMap<String, String>, now: Timestamp) -> bool {
        self.is_active(now) && all_match(&self.matchers, labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silence_mutes_matching_alerts_only_while_it_is_in_force() {
        let silence = Silence {
            id: "s1".into(),
            matchers: vec![
                Matcher::parse("alertname=WorkerLowReliability").unwrap(),
                Matcher::parse("target=~prod.*").unwrap(),
            ],
            starts_at: Timestamp::from_unix_millis(1_000),
            ends_at: Timestamp::from_unix_millis(5_000),
            comment: String::new(),
            created_by: "ops".into(),
        };
        let matching: BTreeMap<String, String> = [
            ("alertname".to_string(), "WorkerLowReliability".to_string()),
            ("target".to_string(), "prod-a".to_string()),
        ]
        .into();
        let mut other = matching.clone();
        other.insert("target".into(), "dev".into());
        let at = Timestamp::from_unix_millis;
        assert!(!silence.mutes(&matching, at(999)));
        assert!(silence.mutes(&matching, at(1_000)));
        assert!(silence.mutes(&matching, at(4_999)));
        assert!(!silence.mutes(&matching, at(5_000)));
        assert!(!silence.mutes(&other, at(2_000)));
        assert_eq!(silence.state(at(0)), "pending");
        assert_eq!(silence.state(at(2_000)), "active");
        assert_eq!(silence.state(at(5_000)), "expired");
    }
}
