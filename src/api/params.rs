//! Query parameters: each endpoint names the ones it knows, so a misspelt parameter is a
//! 400 naming it rather than a filter silently ignored.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::ApiError;
use crate::store::HistoryCursor;
use std::time::Duration;

use crate::time::{Timestamp, parse_duration, parse_time_or_ago};

/// The parameters of one request, checked against the names an endpoint accepts.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(
        query: Result<Query<Vec<(String, String)>>, QueryRejection>,
        known: &[&'static str],
    ) -> Result<Params, ApiError> {
        let Query(pairs) =
            query.map_err(|rejection| ApiError::bad("query", rejection.body_text()))?;
        for (name, _) in &pairs {
            if !known.contains(&name.as_str()) {
                let takes = match known {
                    [] => "no parameters".to_string(),
                    _ => known.join(", "),
                };
                return Err(ApiError::bad(
                    name.as_str(),
                    format!("unknown parameter `{name}`; this path takes {takes}"),
                ));
            }
        }
        Ok(Params(pairs))
    }

    /// The value of `name`, if given (the last one wins when it is repeated).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }

    /// A time: RFC 3339, or an age such as `1h` meaning that long before `now`.
    pub fn time(&self, name: &'static str, now: Timestamp) -> Result<Option<Timestamp>, ApiError> {
        self.get(name)
            .map(|text| {
                parse_time_or_ago(text, now).map_err(|message| ApiError::bad(name, message))
            })
            .transpose()
    }

    /// A duration such as `30s` or `5m`, if given.
    pub fn duration(&self, name: &'static str) -> Result<Option<Duration>, ApiError> {
        self.get(name)
            .map(|text| {
                parse_duration(text).map_err(|error| ApiError::bad(name, error.to_string()))
            })
            .transpose()
    }

    /// A parameter the path cannot do without.
    pub fn required(&self, name: &'static str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::bad(name, format!("`{name}` is required")))
    }

    /// A whole number from 1 to `max`, `default` when absent.
    pub fn limit(&self, name: &'static str, default: u32, max: u32) -> Result<u32, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => match text.parse::<u32>() {
                Ok(value) if (1..=max).contains(&value) => Ok(value),
                _ => Err(ApiError::bad(
                    name,
                    format!("`{text}` is not a whole number from 1 to {max}"),
                )),
            },
        }
    }

    pub fn integer(&self, name: &'static str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|text| {
                text.parse()
                    .map_err(|_| ApiError::bad(name, format!("`{text}` is not a whole number")))
            })
            .transpose()
    }

    pub fn boolean(&self, name: &'static str) -> Result<bool, ApiError> {
        match self.get(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(text) => Err(ApiError::bad(
                name,
                format!("`{text}` is neither true nor false"),
            )),
        }
    }

    /// One of `choices`, `None` when absent.
    pub fn choice(
        &self,
        name: &'static str,
        choices: &[&'static str],
    ) -> Result<Option<&'static str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => choices
                .iter()
                .find(|choice| **choice == text)
                .map(|choice| Some(*choice))
                .ok_or_else(|| {
                    ApiError::bad(
                        name,
                        format!("`{text}` is not one of {}", choices.join(", ")),
                    )
                }),
        }
    }

    pub fn cursor(&self, name: &'static str) -> Result<Option<PageCursor>, ApiError> {
        self.get(name)
            .map(|text| {
                decode_cursor(text).ok_or_else(|| {
                    ApiError::bad(name, "not a cursor this server handed out (`next`)")
                })
            })
            .transpose()
    }
}

/// Where a page of history ended. Fleet history comes in two parts, each oldest first:
/// five-minute rollups where raw samples have expired (the cursor holds a bucket and a
/// target id), then raw rows (a time and a poll id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCursor {
    Rollup(HistoryCursor),
    Raw(HistoryCursor),
}

/// A cursor as the client sees it: opaque text, so its shape can change.
pub fn encode_cursor(cursor: PageCursor) -> String {
    let text = match cursor {
        PageCursor::Raw(at) => format!("{}:{}", at.at.unix_millis(), at.poll_id),
        PageCursor::Rollup(at) => format!("r:{}:{}", at.at.unix_millis(), at.poll_id),
    };
    URL_SAFE_NO_PAD.encode(text)
}

fn decode_cursor(text: &str) -> Option<PageCursor> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (rollup, text) = match text.strip_prefix("r:") {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (millis, id) = text.split_once(':')?;
    let cursor = HistoryCursor {
        at: Timestamp::from_unix_millis(millis.parse().ok()?),
        poll_id: id.parse().ok()?,
    };
    Some(if rollup {
        PageCursor::Rollup(cursor)
    } else {
        PageCursor::Raw(cursor)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_its_round_trip_and_junk_is_refused() {
        let cursor = HistoryCursor {
            at: Timestamp::from_unix_millis(1_767_225_610_250),
            poll_id: 42,
        };
        for cursor in [PageCursor::Raw(cursor), PageCursor::Rollup(cursor)] {
            assert_eq!(decode_cursor(&encode_cursor(cursor)), Some(cursor));
        }
        let junk_rollup = URL_SAFE_NO_PAD.encode("r:12");
        for junk in [
            "",
            "abc",
            "%%%",
            &URL_SAFE_NO_PAD.encode("12:x"),
            &junk_rollup,
        ] {
            assert_eq!(decode_cursor(junk), None, "{junk}");
        }
    }
}
