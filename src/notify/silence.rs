//! Silences (SPEC §8.5): mute notifications of alerts whose labels match every matcher,
//! between `starts_at` and `ends_at`. Muted alerts still change state and are stored.

use std::collections::BTreeMap;

use serde::Serialize;

use super::matcher::{Matcher, all_match};
use crate::time::Timestamp;

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
