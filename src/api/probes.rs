//! `/healthz`, `/readyz`, `/metrics` and `POST /-/reload`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::{ApiError, ApiState};
use crate::time::format_duration;

/// How many intervals a target may go without a poll attempt and still count as ready.
const READY_WITHIN_INTERVALS: u32 = 3;

/// 200 while the process runs: it answers, so it lives.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The Prometheus text page of the current daemon's metrics (docs/metrics.md).
pub async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let daemon = state.daemon();
    match daemon.metrics().render(&daemon, &state.replica()).await {
        Ok(text) => Ok(([(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()),
        Err(error) => {
            tracing::warn!(error = %error, "A metrics scrape failed.");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                error.to_string(),
            ))
        }
    }
}

/// 200 when the database takes writes (the last write succeeded and a probe passes) and
/// every target (counting polls waiting in the write backlog) had a poll attempt within three
/// intervals (or is backing off after a 429); else 503. The body lists every check.
pub async fn readyz(State(state): State<ApiState>) -> (StatusCode, Json<Value>) {
    let daemon = state.daemon();
    let now = daemon.clock().now();
    let mut checks = Vec::new();
    // A write that failed says more than a probe: a full disk lets the probe, which
    // writes nothing, pass; and while the fault lasts a probe would only wait out the busy
    // timeout again.
    let database = match daemon.store().health().fault() {
        Some(fault) => Some(fault),
        None => daemon
            .store()
            .probe_write()
            .await
            .err()
            .map(|error| error.to_string()),
    };
    checks.push(check(
        "database",
        None,
        database.map(|fault| format!("the database takes no writes: {fault}")),
    ));
    let config = daemon.config();
    let window = config
        .schedule
        .interval_at(now)
        .saturating_mul(READY_WITHIN_INTERVALS);
    let mut last_polls: HashMap<String, _> = match daemon.store().latest_polls().await {
        Ok(polls) => polls
            .into_iter()
            .map(|poll| (poll.target, poll.started_at))
            .collect(),
        Err(error) => {
            checks.push(check(
                "polls",
                None,
                Some(format!("cannot read the latest polls: {error}")),
            ));
            HashMap::new()
        }
    };
    // Polls waiting for the database to take writes were attempted all the same.
    for poll in daemon.store().health().backlog().polls() {
        let latest = last_polls
            .entry(poll.target.clone())
            .or_insert(poll.started_at);
        *latest = (*latest).max(poll.started_at);
    }
    for target in &config.targets {
        let failure = match last_polls.get(&target.name) {
            _ if daemon.is_backing_off(&target.name, now) => None,
            Some(at) if now.duration_since(*at) <= window => None,
            Some(at) => Some(format!(
                "last poll attempt at {} is older than {} ({READY_WITHIN_INTERVALS} intervals)",
                at.to_rfc3339(),
                format_duration(window)
            )),
            None => Some("no poll attempt yet".to_string()),
        };
        checks.push(check("poll", Some(&target.name), failure));
    }
    let ready = checks.iter().all(|check| check["ok"] == json!(true));
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let replica = state.replica();
    let body = json!({
        "ready": ready,
        "role": replica.role.as_str(),
        "replica": replica.replica,
        "checks": checks,
    });
    (status, Json(body))
}

fn check(name: &str, target: Option<&str>, failure: Option<String>) -> Value {
    json!({
        "check": name,
        "target": target,
        "ok": failure.is_none(),
        "reason": failure,
    })
}

/// Asks the service to reload config and rules, and answers with its verdict: 200, or
/// 400 with the error when the new config is bad (the old one keeps running).
pub async fn reload(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let (reply, answer) = oneshot::channel();
    let unavailable = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "reloading is not available: the daemon is shutting down",
        )
    };
    state.reload.send(reply).await.map_err(|_| unavailable())?;
    match answer.await.map_err(|_| unavailable())? {
        Ok(()) => Ok(Json(json!({"status": "reloaded"}))),
        Err(message) => Err(ApiError::new(StatusCode::BAD_REQUEST, message)),
    }
}
