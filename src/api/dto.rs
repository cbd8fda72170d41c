//! The JSON shapes of `/api/v1` (docs/openapi.yaml describes them): built explicitly from
//! store rows and domain types, so a change inside never changes the API by accident.
//! Names follow the database's columns; times are RFC 3339 with a `_unix` twin in seconds
//! where clients are likely to do arithmetic.

use serde_json::{Map, Value, json};

use crate::advise::Recommendation;
use crate::model::Field;
use crate::notify::Silence;
use crate::rules::AlertRecord;
use crate::store::{FleetHistoryRow, FleetRow, FleetValues, NotificationRow, PollRow, WorkerRow};
use crate::time::Timestamp;

fn time(at: Option<Timestamp>) -> Value {
    at.map_or(Value::Null, |at| json!(at.to_rfc3339()))
}

fn number(value: Option<f64>) -> Value {
    value.map_or(Value::Null, |value| json!(value))
}

pub fn poll(row: &PollRow) -> Value {
    json!({
        "started_at": row.started_at.to_rfc3339(),
        "started_at_unix": row.started_at.unix_secs_f64(),
        "outcome": row.outcome,
        "error": row.error,
        "http_status": row.http_status,
        "duration_ms": row.duration.as_millis() as u64,
        "worker_count": row.worker_count,
    })
}

/// Worker counts by state class from a target's latest successful poll.
pub fn worker_counts(row: &FleetRow) -> Value {
    let summary = &row.summary;
    json!({
        "polled_at": row.polled_at.to_rfc3339(),
        "workers": summary.workers,
        "ready": summary.ready,
        "starting": summary.starting,
        "inactive": summary.inactive,
        "failed": summary.failed,
    })
}

pub fn recommendation(recommendation: Option<&Recommendation>) -> Value {
    recommendation
        .and_then(|recommendation| serde_json::to_value(recommendation).ok())
        .unwrap_or(Value::Null)
}

pub fn alert(alert: &AlertRecord) -> Value {
    let lifecycle = &alert.lifecycle;
    json!({
        "fingerprint": alert.fingerprint,
        "alertname": alert.alertname,
        "target": alert.target,
        "worker_id": alert.worker_id.map(|id| id.to_string()),
        "severity": alert.severity.as_str(),
        "state": lifecycle.state.as_str(),
        "labels": alert.labels,
        "annotations": alert.annotations,
        "active_at": time(lifecycle.active_at),
        "fired_at": time(lifecycle.fired_at),
        "resolved_at": time(lifecycle.resolved_at),
        "last_eval_at": alert.last_eval_at.to_rfc3339(),
        "value": number(alert.value),
        "recommendation": recommendation(alert.recommendation.as_ref()),
    })
}

/// A row of the `fleet_samples` view, plus the sums it leaves out.
pub fn fleet_row(row: &FleetRow) -> Value {
    let summary = &row.summary;
    json!({
        "poll_id": row.poll_id,
        "target": row.target,
        "polled_at": row.polled_at.to_rfc3339(),
        "polled_at_unix": row.polled_at.unix_secs_f64(),
        "resolution": "raw",
        "workers": summary.workers,
        "ready": summary.ready,
        "starting": summary.starting,
        "inactive": summary.inactive,
        "failed": summary.failed,
        "load": number(summary.load),
        "new_load": number(summary.new_load),
        "load_rolling": number(summary.load_rolling),
        "perf": number(summary.perf),
        "cur_perf": number(summary.cur_perf),
        "measured_perf": number(summary.measured_perf),
        "reqs_working": number(summary.reqs_working),
        "utilization": number(row.utilization),
    })
}

/// A row of `fleet_rollups`: a five-minute bucket's averages under the `fleet_samples`
/// names, with its minimums and maximums beside them.
pub fn rollup_row(row: &FleetHistoryRow) -> Value {
    let mut object = fleet_values(&row.avg);
    object.insert("target".into(), json!(row.target));
    object.insert("polled_at".into(), json!(row.at.to_rfc3339()));
    object.insert("polled_at_unix".into(), json!(row.at.unix_secs_f64()));
    object.insert("resolution".into(), json!(row.resolution.as_str()));
    object.insert("polls".into(), json!(row.polls));
    object.insert("min".into(), Value::Object(fleet_values(&row.min)));
    object.insert("max".into(), Value::Object(fleet_values(&row.max)));
    Value::Object(object)
}

fn fleet_values(values: &FleetValues) -> Map<String, Value> {
    let mut object = Map::new();
    for (name, value) in [
        ("workers", values.workers),
        ("ready", values.ready),
        ("starting", values.starting),
        ("inactive", values.inactive),
        ("failed", values.failed),
        ("load", values.load),
        ("load_rolling", values.load_rolling),
        ("perf", values.perf),
        ("reqs_working", values.reqs_working),
        ("utilization", values.utilization),
    ] {
        object.insert(name.into(), number(value));
    }
    object
}

/// A row of `worker_samples`: every API field under its API name.
pub fn worker_row(row: &WorkerRow) -> Value {
    let sample = &row.sample;
    let mut object = Map::new();
    object.insert("poll_id".into(), json!(row.poll_id));
    object.insert("target".into(), json!(row.target));
    object.insert("polled_at".into(), json!(row.polled_at.to_rfc3339()));
    object.insert(
        "polled_at_unix".into(),
        json!(row.polled_at.unix_secs_f64()),
    );
    object.insert("worker_id".into(), json!(sample.worker_id));
    object.insert("status".into(), json!(sample.status));
    for field in Field::ALL {
        object.insert(field.name().into(), number(sample.get(field)));
    }
    object.insert(
        "extra".into(),
        sample
            .extra
            .as_ref()
            .map_or(Value::Null, |extra| Value::Object(extra.clone())),
    );
    Value::Object(object)
}

pub fn notification(row: &NotificationRow) -> Value {
    json!({
        "id": row.id,
        "receiver": row.receiver,
        "group_key": row.group_key,
        "status": row.status.as_str(),
        "attempts": row.attempts,
        "created_at": row.created_at.to_rfc3339(),
        "next_attempt_at": time(row.next_attempt_at),
        "delivered_at": time(row.delivered_at),
        "last_error": row.last_error,
        "payload": serde_json::from_str::<Value>(&row.payload).unwrap_or(Value::Null),
    })
}

/// A silence in Alertmanager's spelling (`startsAt`, `createdBy`), as the POST body is.
pub fn silence(silence: &Silence, now: Timestamp) -> Value {
    let matchers: Vec<String> = silence.matchers.iter().map(ToString::to_string).collect();
    json!({
        "id": silence.id,
        "state": silence.state(now),
        "matchers": matchers,
        "startsAt": silence.starts_at.to_rfc3339(),
        "endsAt": silence.ends_at.to_rfc3339(),
        "comment": silence.comment,
        "createdBy": silence.created_by,
    })
}
