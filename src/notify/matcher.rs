//! Label matchers as Alertmanager writes them: `name=value`, `name!=value`, `name=~regex`
//! and `name!~regex`, regexes anchored at both ends. Routes, inhibit rules and silences
//! all use them. A label that is absent matches as the empty string, as in Alertmanager.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchOp {
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
    #[serde(rename = "=~")]
    Regex,
    #[serde(rename = "!~")]
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One matcher. Serialises as `{"name", "op", "value"}` (the `silences.matchers` column).
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// The anchored regex for `=~` and `!~`.
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Matcher {
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, String> {
        let name = name.trim();
        if !crate::config::is_identifier(name) {
            return Err(format!(
                "label name `{name}` must match [a-zA-Z_][a-zA-Z0-9_]*"
            ));
        }
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|error| format!("bad regex `{value}`: {error}"))?,
            ),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// Parses `name=value`, `name!=value`, `name=~regex` or `name!~regex`. The value may be
    /// quoted with double quotes.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let Some(split) = text.find(['=', '!']) else {
            return Err(format!(
                "`{text}` is not a matcher; write name=value, name!=value, name=~regex or name!~regex"
            ));
        };
        let (name, rest) = text.split_at(split);
        let (op, value) = if let Some(value) = rest.strip_prefix("=~") {
            (MatchOp::Regex, value)
        } else if let Some(value) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, value)
        } else if let Some(value) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, value)
        } else if let Some(value) = rest.strip_prefix('=') {
            (MatchOp::Equal, value)
        } else {
            return Err(format!(
                "`{text}` is not a matcher; write name=value, name!=value, name=~regex or name!~regex"
            ));
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        Matcher::new(name, op, value).map_err(|message| format!("`{text}`: {message}"))
    }

    /// Whether `labels` satisfy this matcher.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.name).map(String::as_str).unwrap_or("");
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(regex)) => regex.is_match(value),
            (MatchOp::NotRegex, Some(regex)) => !regex.is_match(value),
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.name, self.op.as_str(), self.value)
    }
}

/// A matcher as stored in `silences.matchers`.
#[derive(Serialize, Deserialize)]
struct StoredMatcher {
    name: String,
    op: MatchOp,
    value: String,
}

impl Serialize for Matcher {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StoredMatcher {
            name: self.name.clone(),
            op: self.op,
            value: self.value.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = StoredMatcher::deserialize(deserializer)?;
        Matcher::new(&stored.name, stored.op, &stored.value).map_err(serde::de::Error::custom)
    }
}

/// Whether every matcher matches.
pub fn all_match(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers.iter().all(|matcher| matcher.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_operator_matches_as_alertmanager_does() {
        let set = labels(&[("team", "ml"), ("target", "prod-a")]);
        let cases = [
            ("team=ml", true),
            ("team=infra", false),
            ("team!=ml", false),
            ("team!=infra", true),
            ("team=~ml|infra", true),
            ("team=~m", false), // anchored: `m` does not match `ml`
            ("target=~prod-.*", true),
            ("target!~prod-.*", false),
            ("target!~dev", true),
            ("missing=", true), // an absent label is the empty string
            ("missing!=", false),
            ("missing=~.*", true),
            ("team = \"ml\"", true),
        ];
        for (text, expected) in cases {
            let matcher = Matcher::parse(text).unwrap();
            assert_eq!(matcher.matches(&set), expected, "{text}");
        }
    }

    #[test]
    fn malformed_matchers_are_explained() {
        let no_operator = Matcher::parse("team").unwrap_err();
        assert!(no_operator.contains("not a matcher"), "{no_operator}");
        let bad_regex = Matcher::parse("team=~(").unwrap_err();
        assert!(bad_regex.contains("bad regex"), "{bad_regex}");
        let bad_name = Matcher::parse("1team=ml").unwrap_err();
        assert!(bad_name.contains("label name"), "{bad_name}");
        assert!(Matcher::parse("=ml").is_err());
    }

    #[test]
    fn matchers_round_trip_through_their_stored_json() {
        let matcher = Matcher::parse("target=~prod.*").unwrap();
        let json = serde_json::to_string(&matcher).unwrap();
        assert_eq!(json, r#"{"name":"target","op":"=~","value":"prod.*"}"#);
        let back: Matcher = serde_json::from_str(&json).unwrap();
        assert_eq!(back, matcher);
        assert!(back.matches(&labels(&[("target", "prod-1")])));
        assert!(serde_json::from_str::<Matcher>(r#"{"name":"a","op":"=~","value":"("}"#).is_err());
    }
}
