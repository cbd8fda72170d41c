//! Turns a worker-list response body into worker samples, tolerating everything the real
//! API is known to do (reference doc): a bare list or `{"workers": [...]}`, missing and
//! null fields, unknown fields, wrong types, NaN, upper-case statuses, duplicate ids.
//! Pure: bytes in, samples or a failure out.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::model::{FailureKind, Field, PollFailure, WorkerSample};

/// A decoded worker list.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedList {
    pub workers: Vec<WorkerSample>,
    /// Human notes about entries that were repaired or dropped; stored with the poll.
    pub notes: Vec<String>,
    /// Worker ids that appeared more than once (the last entry was kept).
    pub duplicate_ids: Vec<i64>,
}

/// Decodes a 2xx body. `{"error_msg": ...}` is an `api_error`; anything that is not a
/// worker list is a `decode` failure.
pub fn decode_worker_list(body: &[u8]) -> Result<DecodedList, PollFailure> {
    let text = quote_non_finite_numbers(body);
    let value: Value = serde_json::from_slice(&text).map_err(|error| {
        failure(
            FailureKind::Decode,
            format!("body is not JSON ({error}): {}", preview(body)),
        )
    })?;
    let entries = match value {
        Value::Array(entries) => entries,
        Value::Object(mut object) => {
            if let Some(message) = object.get("error_msg") {
                return Err(failure(
                    FailureKind::ApiError,
                    format!("API error: {}", value_text(message)),
                ));
            }
            match object.remove("workers") {
                Some(Value::Array(entries)) => entries,
                _ => {
                    let keys: Vec<&String> = object.keys().take(5).collect();
                    return Err(failure(
                        FailureKind::Decode,
                        format!(
                            "JSON object is not a worker list (expected a list or \
                             {{\"workers\": [...]}}; keys: {keys:?})"
                        ),
                    ));
                }
            }
        }
        other => {
            return Err(failure(
                FailureKind::Decode,
                format!("JSON {} is not a worker list", json_type_name(&other)),
            ));
        }
    };
    Ok(decode_entries(entries))
}

/// Describes an error body (401, other 4xx): the API's own message where it gives one.
pub fn describe_error_body(body: &[u8]) -> String {
    if let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) {
        let parts: Vec<String> = ["msg", "error", "error_msg", "message"]
            .iter()
            .filter_map(|key| object.get(*key).map(value_text))
            .filter(|text| !text.is_empty())
            .collect();
        if !parts.is_empty() {
            return parts.join(": ");
        }
    }
    preview(body)
}

fn decode_entries(entries: Vec<Value>) -> DecodedList {
    let mut workers: Vec<WorkerSample> = Vec::with_capacity(entries.len());
    let mut position_by_id: HashMap<i64, usize> = HashMap::with_capacity(entries.len());
    let mut notes = Vec::new();
    let mut duplicate_ids = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let Value::Object(object) = entry else {
            notes.push(format!(
                "entry {index} is a JSON {}, not an object; skipped",
                json_type_name(&entry)
            ));
            continue;
        };
        let worker = match decode_worker(object) {
            Ok(worker) => worker,
            Err(problem) => {
                notes.push(format!("entry {index}: {problem}; skipped"));
                continue;
            }
        };
        match position_by_id.get(&worker.worker_id) {
            Some(&position) => {
                duplicate_ids.push(worker.worker_id);
                notes.push(format!(
                    "worker {} appears more than once; the last entry was kept",
                    worker.worker_id
                ));
                workers[position] = worker;
            }
            None => {
                position_by_id.insert(worker.worker_id, workers.len());
                workers.push(worker);
            }
        }
    }
    DecodedList {
        workers,
        notes,
        duplicate_ids,
    }
}

fn decode_worker(object: Map<String, Value>) -> Result<WorkerSample, String> {
    let id = match object.get("id") {
        Some(value) => as_integer(value)
            .ok_or_else(|| format!("`id` is {}, not an integer", value_text(value)))?,
        None => return Err("no `id`".to_string()),
    };
    let mut worker = WorkerSample::new(id);
    let mut extra = Map::new();
    for (key, value) in object {
        if key == "id" {
            continue;
        }
        if key == "status" {
            match value {
                Value::String(status) => worker.status = Some(status.to_lowercase()),
                Value::Null => {}
                other => {
                    extra.insert(key, other);
                }
            }
            continue;
        }
        let Some(field) = Field::from_name(&key) else {
            extra.insert(key, value);
            continue;
        };
        match value {
            Value::Null => {}
            value => match numeric_value(field, &value) {
                Some(number) => worker.set(field, Some(number)),
                // Wrong type, NaN or infinite: NULL in the column, raw value kept.
                None => {
                    extra.insert(key, value);
                }
            },
        }
    }
    if !extra.is_empty() {
        worker.extra = Some(extra);
    }
    Ok(worker)
}

/// Integers a REAL column holds exactly (2^53); beyond, an integer field is the wrong type.
const LARGEST_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

fn numeric_value(field: Field, value: &Value) -> Option<f64> {
    let number = value.as_f64().filter(|n| n.is_finite())?;
    if field.is_integer() && (number.fract() != 0.0 || number.abs() > LARGEST_EXACT_INTEGER) {
        return None;
    }
    Some(number)
}

fn as_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| {
            number
                .as_f64()
                .filter(|n| n.is_finite() && n.fract() == 0.0 && n.abs() < 9.0e15)
                .map(|n| n as i64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn failure(kind: FailureKind, message: String) -> PollFailure {
    PollFailure {
        kind,
        message,
        http_status: None,
    }
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The first bytes of a body, quoted, for error messages.
pub fn preview(body: &[u8]) -> String {
    const LIMIT: usize = 80;
    let text = String::from_utf8_lossy(&body[..body.len().min(LIMIT)]);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.is_empty() {
        "empty body".to_string()
    } else if body.len() > LIMIT {
        format!("`{}…`", text.trim())
    } else {
        format!("`{}`", text.trim())
    }
}

/// Python's `json` module writes `NaN`, `Infinity` and `-Infinity`, which are not JSON, and
/// a number too large for a double (`1e400`) is JSON that serde_json refuses. Quoting each
/// turns it into a string, so the field is stored as NULL with its raw value in `extra`
/// and the rest of the list survives. Bodies with nothing to quote are not copied.
fn quote_non_finite_numbers(body: &[u8]) -> Cow<'_, [u8]> {
    const TOKENS: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];
    // Built only once something needs quoting; `body[..copied]` is already in it.
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut in_string = false;
    let mut escaped = false;
    let mut index = 0;
    while index < body.len() {
        let byte = body[index];
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            index += 1;
            continue;
        }
        if byte == b'"' {
            in_string = true;
            index += 1;
            continue;
        }
        let quoted_length =
            if let Some(token) = TOKENS.iter().find(|t| body[index..].starts_with(t)) {
                token.len()
            } else if byte == b'-' || byte.is_ascii_digit() {
                let length = number_length(&body[index..]);
                if !overflows_a_double(&body[index..index + length]) {
                    index += length;
                    continue;
                }
                length
            } else {
                index += 1;
                continue;
            };
        let out = out.get_or_insert_with(|| Vec::with_capacity(body.len() + 16));
        out.extend_from_slice(&body[copied..index]);
        out.push(b'"');
        out.extend_from_slice(&body[index..index + quoted_length]);
        out.push(b'"');
        index += quoted_length;
        copied = index;
    }
    match out {
        None => Cow::Borrowed(body),
        Some(mut out) => {
            out.extend_from_slice(&body[copied..]);
            Cow::Owned(out)
        }
    }
}

/// The length of the number literal (or number-like run) that `text` starts with.
fn number_length(text: &[u8]) -> usize {
    text.iter()
        .take_while(|byte| {
            byte.is_ascii_digit() || matches!(byte, b'-' | b'+' | b'.' | b'e' | b'E')
        })
        .count()
}

fn overflows_a_double(literal: &[u8]) -> bool {
    std::str::from_utf8(literal)
        .ok()
        .and_then(|text| text.parse::<f64>().ok())
        .is_some_and(f64::is_infinite)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decode(body: &str) -> Result<DecodedList, PollFailure> {
        decode_worker_list(body.as_bytes())
    }

    fn check_failure(body: &str, kind: FailureKind, message: &str) {
        match decode(body) {
            Ok(list) => panic!("{body:?} decoded to {list:?}"),
            Err(failure) => {
                assert_eq!(failure.kind, kind, "{body:?}");
                assert_eq!(failure.message, message, "{body:?}");
            }
        }
    }

    #[test]
    fn the_reference_example_decodes_field_by_field() {
        let list = decode(
            r#"[{"cur_load": 150, "new_load": 50, "cur_load_rolling_avg": 50, "cur_perf": 80,
                 "disk_usage": 30, "dlperf": 105.87, "id": 123456, "loaded_at": 1724275993.997,
                 "measured_perf": 105.87, "perf": 100.57, "reliability": 0.95,
                 "reqs_working": 2, "status": "running"}]"#,
        )
        .expect("decodes");
        assert_eq!(list.notes, Vec::<String>::new());
        let worker = &list.workers[0];
        assert_eq!(worker.worker_id, 123456);
        assert_eq!(worker.status.as_deref(), Some("running"));
        for (field, expected) in [
            (Field::CurLoad, 150.0),
            (Field::NewLoad, 50.0),
            (Field::CurLoadRollingAvg, 50.0),
            (Field::CurPerf, 80.0),
            (Field::DiskUsage, 30.0),
            (Field::Dlperf, 105.87),
            (Field::LoadedAt, 1724275993.997),
            (Field::MeasuredPerf, 105.87),
            (Field::Perf, 100.57),
            (Field::Reliability, 0.95),
            (Field::ReqsWorking, 2.0),
        ] {
            assert_eq!(worker.get(field), Some(expected), "{}", field.name());
        }
        assert_eq!(worker.extra, None);
    }

    #[test]
    fn the_wrapped_variant_and_an_empty_list_are_worker_lists() {
        let list = decode(r#"{"workers": [{"id": 1, "status": "idle"}]}"#).expect("decodes");
        assert_eq!(list.workers.len(), 1);
        assert_eq!(decode("[]").expect("decodes").workers, vec![]);
        assert_eq!(
            decode(r#"{"workers": []}"#).expect("decodes").workers,
            vec![]
        );
    }

    #[test]
    fn missing_null_and_unusable_values_stay_missing_with_raw_values_in_extra() {
        let list = decode(
            r#"[{"id": 7, "status": "RUNNING", "perf": null, "reliability": "high",
                 "reqs_working": 2.5, "cur_load": NaN, "new_load": -Infinity,
                 "started_at": 1724275000, "warnings": ["disk"]}]"#,
        )
        .expect("decodes");
        let worker = &list.workers[0];
        assert_eq!(worker.status.as_deref(), Some("running"));
        assert_eq!(worker.get(Field::Perf), None);
        assert_eq!(worker.get(Field::Reliability), None);
        assert_eq!(worker.get(Field::ReqsWorking), None);
        assert_eq!(worker.get(Field::CurLoad), None);
        assert_eq!(worker.get(Field::CurPerf), None);
        let extra = Value::Object(worker.extra.clone().expect("extra"));
        assert_eq!(
            extra,
            json!({"reliability": "high", "reqs_working": 2.5, "cur_load": "NaN",
                   "new_load": "-Infinity", "started_at": 1724275000, "warnings": ["disk"]})
        );
    }

    #[test]
    fn an_integer_field_beyond_exact_range_is_the_wrong_type() {
        let list = decode(r#"[{"id": 7, "reqs_working": 99999999999999999999999, "perf": 1e300}]"#)
            .expect("decodes");
        let worker = &list.workers[0];
        assert_eq!(worker.get(Field::ReqsWorking), None);
        // A real-valued field keeps any finite number.
        assert_eq!(worker.get(Field::Perf), Some(1e300));
        let extra = worker.extra.clone().expect("extra");
        assert!(extra.contains_key("reqs_working"), "{extra:?}");
    }

    #[test]
    fn unknown_statuses_are_kept_lower_cased() {
        let list = decode(r#"[{"id": 1, "status": "Teleporting"}]"#).expect("decodes");
        assert_eq!(list.workers[0].status.as_deref(), Some("teleporting"));
    }

    #[test]
    fn the_last_entry_of_a_duplicated_id_wins() {
        let list =
            decode(r#"[{"id": 1, "perf": 10}, {"id": 2, "perf": 20}, {"id": 1, "perf": 11}]"#)
                .expect("decodes");
        assert_eq!(list.workers.len(), 2);
        assert_eq!(list.workers[0].get(Field::Perf), Some(11.0));
        assert_eq!(list.duplicate_ids, vec![1]);
        assert_eq!(
            list.notes,
            vec!["worker 1 appears more than once; the last entry was kept"]
        );
    }

    #[test]
    fn entries_without_a_usable_id_are_skipped_with_a_note() {
        let list =
            decode(r#"[{"perf": 1}, 5, {"id": "x"}, {"id": "12"}, {"id": 3.0}]"#).expect("decodes");
        let ids: Vec<i64> = list.workers.iter().map(|w| w.worker_id).collect();
        assert_eq!(ids, vec![12, 3]);
        assert_eq!(
            list.notes,
            vec![
                "entry 0: no `id`; skipped",
                "entry 1 is a JSON number, not an object; skipped",
                "entry 2: `id` is x, not an integer; skipped",
            ]
        );
    }

    #[test]
    fn numbers_too_large_for_a_double_are_kept_as_raw_text() {
        // serde_json refuses these; before they were quoted, one lost the whole poll.
        let body = r#"[{"id": 1, "perf": 1e400, "cur_load": -1e400, "dlperf": 99e307, "reliability": 0.5}, {"id": 2}]"#;
        let list = decode(body).expect("decodes");
        assert_eq!(list.workers.len(), 2);
        let worker = &list.workers[0];
        assert_eq!(worker.get(Field::Perf), None);
        assert_eq!(worker.get(Field::CurLoad), None);
        assert_eq!(worker.get(Field::Dlperf), None);
        assert_eq!(worker.get(Field::Reliability), Some(0.5));
        assert_eq!(
            serde_json::Value::Object(worker.extra.clone().expect("extra")),
            json!({"perf": "1e400", "cur_load": "-1e400", "dlperf": "99e307"})
        );
    }

    #[test]
    fn nan_inside_strings_is_left_alone() {
        let list = decode(r#"[{"id": 1, "note": "NaN and Infinity \" NaN"}]"#).expect("decodes");
        assert_eq!(
            list.workers[0].extra.as_ref().expect("extra")["note"],
            json!("NaN and Infinity \" NaN")
        );
    }

    #[test]
    fn bodies_that_are_not_worker_lists_fail_with_their_kind() {
        check_failure(
            r#"{"error_msg": "workers are still loading"}"#,
            FailureKind::ApiError,
            "API error: workers are still loading",
        );
        check_failure(
            "<html><body>Bad gateway</body></html>",
            FailureKind::Decode,
            "body is not JSON (expected value at line 1 column 1): \
             `<html><body>Bad gateway</body></html>`",
        );
        check_failure(
            r#"[{"id": 1, "perf""#,
            FailureKind::Decode,
            "body is not JSON (EOF while parsing an object at line 1 column 17): \
             `[{\"id\": 1, \"perf\"`",
        );
        check_failure(
            r#"{"success": true}"#,
            FailureKind::Decode,
            "JSON object is not a worker list (expected a list or {\"workers\": [...]}; keys: \
             [\"success\"])",
        );
        check_failure(
            "42",
            FailureKind::Decode,
            "JSON number is not a worker list",
        );
        check_failure(
            "",
            FailureKind::Decode,
            "body is not JSON (EOF while parsing a value at line 1 column 0): empty body",
        );
    }

    #[test]
    fn error_bodies_are_described_by_their_own_message() {
        assert_eq!(
            describe_error_body(br#"{"success": false, "error": "auth", "msg": "bad key"}"#),
            "bad key: auth"
        );
        assert_eq!(
            describe_error_body(b"API requests too frequent"),
            "`API requests too frequent`"
        );
    }
}
