//! Points in time and spans of time, as vastwatch reads, stores and prints them.
//!
//! A [`Timestamp`] is milliseconds since the Unix epoch (UTC). The database stores unix
//! seconds as REAL so that SQL arithmetic works; conversions live here and nowhere else.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// A point in time with millisecond precision. Serialises as unix milliseconds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    pub const fn from_unix_millis(millis: i64) -> Self {
        Timestamp(millis)
    }

    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// Converts unix seconds (as stored in the database) to a timestamp, rounding to the
    /// nearest millisecond. Non-finite input maps to the epoch rather than panicking.
    pub fn from_unix_secs_f64(secs: f64) -> Self {
        if !secs.is_finite() {
            return Timestamp::EPOCH;
        }
        Timestamp((secs * 1000.0).round() as i64)
    }

    /// Unix seconds with a fractional part: the form stored in the database.
    pub fn unix_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    pub fn saturating_add(self, duration: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_millis(duration)))
    }

    pub fn saturating_sub(self, duration: Duration) -> Self {
        Timestamp(self.0.saturating_sub(duration_millis(duration)))
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    /// RFC 3339 in UTC with millisecond precision, e.g. `2026-11-28T22:15:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(datetime) => datetime.to_rfc3339_opts(SecondsFormat::Millis, true),
            None => format!("@{}ms", self.0),
        }
    }

    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|datetime| Timestamp(datetime.timestamp_millis()))
    }

    pub fn to_chrono(self) -> Option<DateTime<Utc>> {
        DateTime::<Utc>::from_timestamp_millis(self.0)
    }

    pub fn from_chrono(datetime: DateTime<Utc>) -> Self {
        Timestamp(datetime.timestamp_millis())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration; write a number and a unit such as 30s or 10m")]
    Empty,
    #[error("`{0}` is not a duration; write a number and a unit: ms, s, m, h or d (e.g. 30s)")]
    Malformed(String),
    #[error("`{text}` has unknown unit `{unit}`; use ms, s, m, h or d")]
    UnknownUnit { text: String, unit: String },
    #[error("`{0}` is too long")]
    Overflow(String),
}

/// Parses `500ms`, `30s`, `10m`, `2h`, `7d`, and sums such as `1h30m`. A bare `0` is
/// accepted as zero; any other number needs a unit.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DurationError::Empty);
    }
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    if trimmed.contains(char::is_whitespace) {
        return Err(DurationError::Malformed(trimmed.to_string()));
    }
    let mut total_millis: u128 = 0;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(DurationError::Malformed(trimmed.to_string()));
        }
        let number: f64 = rest[..digits_end]
            .parse()
            .map_err(|_| DurationError::Malformed(trimmed.to_string()))?;
        rest = &rest[digits_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let unit_millis: f64 = match unit {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            "" => return Err(DurationError::Malformed(trimmed.to_string())),
            other => {
                return Err(DurationError::UnknownUnit {
                    text: trimmed.to_string(),
                    unit: other.to_string(),
                });
            }
        };
        let millis = number * unit_millis;
        if !millis.is_finite() || millis > 1e15 {
            return Err(DurationError::Overflow(trimmed.to_string()));
        }
        total_millis += millis.round() as u128;
    }
    u64::try_from(total_millis)
        .map(Duration::from_millis)
        .map_err(|_| DurationError::Overflow(trimmed.to_string()))
}

/// Formats a duration in the largest units that keep it exact: `90s` → `1m30s`.
pub fn format_duration(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if millis >= size {
            out.push_str(&format!("{}{}", millis / size, unit));
            millis %= size;
        }
    }
    out
}

/// Reads a point in time for `--since`/`--until`: RFC 3339, or a duration meaning that
/// long before `now`.
pub fn parse_time_or_ago(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    if let Some(timestamp) = Timestamp::parse_rfc3339(text) {
        return Ok(timestamp);
    }
    parse_duration(text)
        .map(|ago| now.saturating_sub(ago))
        .map_err(|_| {
            format!("`{text}` is neither an RFC 3339 time nor a duration such as 1h or 30m")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<u64, DurationError>) {
        assert_eq!(
            parse_duration(text).map(|d| d.as_millis() as u64),
            expected,
            "parsing {text:?}"
        );
    }

    #[test]
    fn durations_parse_in_every_unit() {
        check("500ms", Ok(500));
        check("30s", Ok(30_000));
        check("10m", Ok(600_000));
        check("2h", Ok(7_200_000));
        check("7d", Ok(604_800_000));
        check("1h30m", Ok(5_400_000));
        check("1.5s", Ok(1_500));
        check("0", Ok(0));
        check(" 10s ", Ok(10_000));
    }

    #[test]
    fn malformed_durations_are_errors() {
        check("", Err(DurationError::Empty));
        check("10", Err(DurationError::Malformed("10".into())));
        check("s", Err(DurationError::Malformed("s".into())));
        check("1.2.3s", Err(DurationError::Malformed("1.2.3s".into())));
        check(
            "10y",
            Err(DurationError::UnknownUnit {
                text: "10y".into(),
                unit: "y".into(),
            }),
        );
        check(
            "99999999999999999d",
            Err(DurationError::Overflow("99999999999999999d".into())),
        );
    }

    #[test]
    fn durations_format_back_to_their_shortest_exact_form() {
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_secs(86_400 * 7)), "7d");
    }

    #[test]
    fn timestamps_round_trip_through_rfc3339_and_unix_seconds() {
        let timestamp = Timestamp::from_unix_millis(1_724_275_993_997);
        assert_eq!(timestamp.to_rfc3339(), "2024-08-21T21:33:13.997Z");
        assert_eq!(
            Timestamp::parse_rfc3339("2024-08-21T21:33:13.997Z"),
            Some(timestamp)
        );
        assert_eq!(
            Timestamp::from_unix_secs_f64(timestamp.unix_secs_f64()),
            timestamp
        );
        assert_eq!(Timestamp::from_unix_secs_f64(f64::NAN), Timestamp::EPOCH);
    }

    #[test]
    fn since_accepts_rfc3339_or_an_age() {
        let now = Timestamp::from_unix_millis(10_000_000);
        assert_eq!(
            parse_time_or_ago("1h", now),
            Ok(Timestamp::from_unix_millis(10_000_000 - 3_600_000))
        );
        assert_eq!(
            parse_time_or_ago("1970-01-01T00:00:01Z", now),
            Ok(Timestamp::from_unix_millis(1_000))
        );
        assert!(parse_time_or_ago("yesterday", now).is_err());
    }
}
