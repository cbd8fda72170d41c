//! `/api/v1`: targets, alerts, history, notifications and silences.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::params::{PageCursor, Params, encode_cursor};
use super::{ApiError, ApiState, dto};
use crate::advise::Recommendation;
use crate::config::{HaMode, Target};
use crate::notify::silence::{SilenceField, SilenceRequest};
use crate::rules::AlertState;
use crate::store::{
    AlertFilter, FleetHistoryRow, FleetRow, HistoryCursor, HistoryFilter, NotificationFilter,
    NotificationStatus, PollRow, Role, Store, WorkerRow,
};
use crate::time::Timestamp;

pub(super) type RawQuery = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// History rows per page unless `limit` says otherwise, and the most it may say.
const HISTORY_LIMIT: u32 = 1_000;
const HISTORY_MAX_LIMIT: u32 = 10_000;
const NOTIFICATIONS_LIMIT: u32 = 100;
const NOTIFICATIONS_MAX_LIMIT: u32 = 1_000;

/// Each configured target with its latest poll attempt, worker counts from its latest
/// successful poll, and its current recommendation.
/// `GET /api/v1/status`: this replica, its role, the leader, the last lease renewal, and
/// every replica that shares the database with whether it renewed within the failover
/// bound.
pub async fn status(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let replica = state.replica();
    let daemon = state.daemon();
    let now = daemon.clock().now();
    let rows = daemon.store().replicas().await?;
    let live = |renewed_at: Timestamp| {
        replica
            .failover
            .is_some_and(|failover| now.duration_since(renewed_at) <= failover)
    };
    let leader = match (&replica.replica, replica.role) {
        (Some(id), Role::Leader) => Some(id.clone()),
        _ => rows
            .iter()
            .find(|row| row.role == Role::Leader.as_str() && live(row.renewed_at))
            .map(|row| row.replica.clone()),
    };
    let replicas: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "replica": row.replica,
                "role": row.role,
                "started_at": row.started_at.to_rfc3339(),
                "renewed_at": row.renewed_at.to_rfc3339(),
                "live": live(row.renewed_at),
            })
        })
        .collect();
    Ok(Json(json!({
        "mode": replica.mode.map_or("single", HaMode::as_str),
        "replica": replica.replica,
        "role": replica.role.as_str(),
        "targets": replica.targets,
        "leader": leader,
        "lease_renewed_at": replica.renewed_at.map(Timestamp::to_rfc3339),
        "failover_seconds": replica.failover.map(|failover| failover.as_secs_f64()),
        "replicas": replicas,
    })))
}

pub async fn targets(
    State(state): State<ApiState>,
    query: RawQuery,
) -> Result<Json<Value>, ApiError> {
    Params::parse(query, &[])?;
    let daemon = state.daemon();
    let store = daemon.store();
    let mut last_polls: HashMap<String, _> = store
        .latest_polls()
        .await?
        .into_iter()
        .map(|poll| (poll.target.clone(), poll))
        .collect();
    let mut targets = Vec::new();
    for target in &daemon.config().targets {
        let last_poll = last_polls.remove(&target.name);
        let recommendation = daemon.recommendation(&target.name);
        targets.push(
            target_summary(
                store,
                target,
                last_poll.as_ref(),
                recommendation.as_ref(),
                daemon.config().schedule.interval_at(daemon.clock().now()),
            )
            .await?,
        );
    }
    Ok(Json(json!({"targets": targets})))
}

/// One entry of `/api/v1/targets`; the status report embeds the same.
pub(super) async fn target_summary(
    store: &Store,
    target: &Target,
    last_poll: Option<&PollRow>,
    recommendation: Option<&Recommendation>,
    poll_interval: Duration,
) -> Result<Value, ApiError> {
    let latest = store
        .fleet_history(&HistoryFilter {
            target: Some(target.name.clone()),
            limit: Some(1),
            ..HistoryFilter::default()
        })
        .await;
    // A target that a reload just added may not be stored yet: it has no rows.
    let latest = match latest {
        Err(crate::store::StoreError::UnknownTarget { .. }) => Vec::new(),
        other => other?,
    };
    Ok(json!({
        "name": target.name,
        "kind": target.kind.as_str(),
        "vast_id": target.vast_id,
        "poll_interval_seconds": poll_interval.as_secs_f64(),
        "last_poll": last_poll.map_or(Value::Null, dto::poll),
        "workers": latest.last().map_or(Value::Null, dto::worker_counts),
        "recommendation": dto::recommendation(recommendation),
    }))
}

/// Alert instances, newest evaluation first.
pub async fn alerts(
    State(state): State<ApiState>,
    query: RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(query, &["state", "target", "fingerprint", "since"])?;
    let daemon = state.daemon();
    let state_filter = params
        .choice(
            "state",
            &["inactive", "pending", "firing", "resolved", "all"],
        )?
        .and_then(AlertState::parse);
    let filter = AlertFilter {
        state: state_filter,
        since: params.time("since", daemon.clock().now())?,
        target: params.string("target"),
    };
    let fingerprint = params.get("fingerprint");
    let alerts: Vec<Value> = daemon
        .store()
        .alerts(&filter)
        .await?
        .iter()
        .filter(|alert| fingerprint.is_none_or(|wanted| alert.fingerprint == wanted))
        .map(dto::alert)
        .collect();
    Ok(Json(json!({"alerts": alerts})))
}

/// Fleet rows, or one worker's rows with `worker`, oldest first, a page at a time: `next`
/// is the cursor of the following page, `null` on the last one.
pub async fn history(
    State(state): State<ApiState>,
    query: RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(
        query,
        &["target", "worker", "since", "until", "limit", "cursor"],
    )?;
    let daemon = state.daemon();
    let now = daemon.clock().now();
    let limit = params.limit("limit", HISTORY_LIMIT, HISTORY_MAX_LIMIT)?;
    let filter = HistoryFilter {
        target: params.string("target"),
        since: params.time("since", now)?,
        until: params.time("until", now)?,
        // One row more than a page tells whether another page follows.
        limit: Some(limit + 1),
    };
    let after = params.cursor("cursor")?;
    let store = daemon.store();
    let (kind, (rows, next)) = match params.integer("worker")? {
        Some(worker_id) => {
            let after = match after {
                None => None,
                Some(PageCursor::Raw(cursor)) => Some(cursor),
                Some(PageCursor::Rollup(_)) => {
                    return Err(ApiError::bad(
                        "cursor",
                        "a fleet history cursor, not a worker's",
                    ));
                }
            };
            let rows = store.worker_page(&filter, worker_id, after).await?;
            let key = |row: &WorkerRow| (row.polled_at, row.poll_id);
            let (rows, next) = page(&rows, limit, key, dto::worker_row);
            ("worker", (rows, next.map(PageCursor::Raw)))
        }
        None => ("fleet", fleet_pages(store, &filter, limit, after).await?),
    };
    let next = next.map(encode_cursor);
    Ok(Json(json!({"kind": kind, "rows": rows, "next": next})))
}

/// A page of fleet history: first the five-minute rollups where raw samples have expired,
/// then raw rows, each part oldest first. `filter.limit` is one more than a page.
async fn fleet_pages(
    store: &Store,
    filter: &HistoryFilter,
    limit: u32,
    after: Option<PageCursor>,
) -> Result<(Vec<Value>, Option<PageCursor>), ApiError> {
    let mut shown = Vec::new();
    let mut last_rollup = None;
    let raw_after = match after {
        Some(PageCursor::Raw(cursor)) => Some(cursor),
        rollup_after => {
            let rollup_after = match rollup_after {
                Some(PageCursor::Rollup(cursor)) => Some(cursor),
                _ => None,
            };
            let rollups = store.rollup_page(filter, rollup_after).await?;
            let key = |(target_id, row): &(i64, FleetHistoryRow)| (row.at, *target_id);
            let (rows, next) = page(&rollups, limit, key, |(_, row)| dto::rollup_row(row));
            if next.is_some() {
                return Ok((rows, next.map(PageCursor::Rollup)));
            }
            shown = rows;
            last_rollup = rollups.last().map(|row| {
                let (at, poll_id) = key(row);
                HistoryCursor { at, poll_id }
            });
            None
        }
    };
    let remaining = limit - shown.len() as u32;
    let raw_filter = HistoryFilter {
        limit: Some(remaining + 1),
        ..filter.clone()
    };
    let raw = store.fleet_page(&raw_filter, raw_after).await?;
    let key = |row: &FleetRow| (row.polled_at, row.poll_id);
    let (rows, next) = page(&raw, remaining, key, dto::fleet_row);
    // A page filled by rollups alone, with raw rows still to come, resumes after its last
    // rollup: that part then yields nothing and the raw part starts from its beginning.
    let next = match (next, rows.is_empty() && !raw.is_empty()) {
        (Some(cursor), _) if !rows.is_empty() => Some(PageCursor::Raw(cursor)),
        (_, true) => last_rollup.map(PageCursor::Rollup),
        _ => None,
    };
    shown.extend(rows);
    Ok((shown, next))
}

/// The first `limit` of `rows` as JSON, and where they end when more rows follow (the
/// store was asked for one row more than a page).
fn page<R>(
    rows: &[R],
    limit: u32,
    key: impl Fn(&R) -> (Timestamp, i64),
    to_json: impl Fn(&R) -> Value,
) -> (Vec<Value>, Option<HistoryCursor>) {
    let shown = &rows[..rows.len().min(limit as usize)];
    let next = (rows.len() > shown.len())
        .then(|| shown.last())
        .flatten()
        .map(|row| {
            let (at, poll_id) = key(row);
            HistoryCursor { at, poll_id }
        });
    (shown.iter().map(to_json).collect(), next)
}

/// Outbox rows, newest first.
pub async fn notifications(
    State(state): State<ApiState>,
    query: RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(query, &["status", "receiver", "since", "limit"])?;
    let daemon = state.daemon();
    let status = params
        .choice("status", &["pending", "delivered", "failed", "all"])?
        .and_then(NotificationStatus::parse);
    let filter = NotificationFilter {
        status,
        receiver: params.string("receiver"),
        since: params.time("since", daemon.clock().now())?,
        limit: Some(params.limit("limit", NOTIFICATIONS_LIMIT, NOTIFICATIONS_MAX_LIMIT)?),
    };
    let rows = daemon.store().notifications(&filter).await?;
    let rows: Vec<Value> = rows.iter().map(dto::notification).collect();
    Ok(Json(json!({"notifications": rows})))
}

/// Silences in force or still to come; with `all=true`, expired ones too.
pub async fn silences(
    State(state): State<ApiState>,
    query: RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(query, &["all"])?;
    let daemon = state.daemon();
    let now = daemon.clock().now();
    let silences = daemon.store().silences(now, params.boolean("all")?).await?;
    let silences: Vec<Value> = silences.iter().map(|s| dto::silence(s, now)).collect();
    Ok(Json(json!({"silences": silences})))
}

/// The body of `POST /api/v1/silences`, in Alertmanager's spelling.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewSilence {
    matchers: Vec<String>,
    duration: Option<String>,
    ends_at: Option<String>,
    starts_at: Option<String>,
    #[serde(default)]
    comment: String,
    created_by: Option<String>,
}

/// Adds a silence, checked exactly as `vastwatch silence add` checks its flags.
pub async fn add_silence(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: NewSilence = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad("body", format!("not a silence: {error}")))?;
    let request = SilenceRequest {
        matchers: body.matchers,
        duration: body.duration,
        ends_at: body.ends_at,
        starts_at: body.starts_at,
        comment: body.comment,
        created_by: body.created_by.unwrap_or_else(|| "api".to_string()),
    };
    let daemon = state.daemon();
    let now = daemon.clock().now();
    let silence = request.build(now).map_err(|(field, message)| {
        let field = match field {
            SilenceField::Matchers => "matchers",
            SilenceField::Duration => "duration",
            SilenceField::EndsAt => "endsAt",
            SilenceField::StartsAt => "startsAt",
        };
        ApiError::bad(field, message)
    })?;
    daemon.store().insert_silence(&silence, now).await?;
    tracing::info!(id = %silence.id, created_by = %silence.created_by, "Silence added through the API.");
    Ok((StatusCode::CREATED, Json(dto::silence(&silence, now))))
}

/// Ends a silence now.
pub async fn expire_silence(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let daemon = state.daemon();
    let now = daemon.clock().now();
    if daemon.store().expire_silence(&id, now).await? {
        tracing::info!(id = %id, "Silence expired through the API.");
        Ok(Json(json!({"id": id, "expired": true})))
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no silence `{id}` is in force"),
        ))
    }
}
