//! What the status page draws: `/api/v1/series` (a target's fleet history downsampled to
//! the chart's resolution), `/api/v1/alerts/intervals` (when its alerts fired) and
//! `/api/v1/workers` (its latest workers). The JSON builders are shared with
//! `vastwatch report`, which inlines the same answers into one HTML file.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::params::Params;
use super::v1::{RawQuery, target_summary};
use super::{ApiError, ApiState};
use crate::advise::Recommendation;
use crate::config::{Config, Target};
use crate::model::{Field, StateClass};
use crate::store::{AlertFilter, FleetValues, SeriesBucket, Store, StoreError, series_step};
use crate::time::Timestamp;

/// The range shown when a request names no `since`.
const DEFAULT_RANGE: Duration = Duration::from_secs(3_600);

/// The fleet series of `target`: bucket starts, then each metric's averages and
/// maximums as arrays of the same length.
pub async fn series(
    State(state): State<ApiState>,
    query: RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(query, &["target", "since", "until", "step"])?;
    let daemon = state.daemon();
    let now = daemon.clock().now();
    let target = configured(daemon.config(), params.required("target")?)?;
    let (since, until) = range(&params, now)?;
    let step = series_step(since, until, params.duration("step")?);
    Ok(Json(
        series_json(daemon.store(), target, since, until, step).await?,
    ))
}

/// The episodes in which `target`'s alerts fired that overlap the range.
pub async fn alert_intervals(
    State(state): State<ApiState>,
    query: RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(query, &["target", "since", "until"])?;
    let daemon = state.daemon();
    let now = daemon.clock().now();
    let target = configured(daemon.config(), params.required("target")?)?;
    let (since, until) = range(&params, now)?;
    Ok(Json(
        intervals_json(daemon.store(), &target.name, since, until).await?,
    ))
}

/// The workers of `target`'s latest successful poll, marked where the current
/// recommendation replaces them.
pub async fn workers(
    State(state): State<ApiState>,
    query: RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(query, &["target"])?;
    let daemon = state.daemon();
    let target = configured(daemon.config(), params.required("target")?)?;
    let recommendation = daemon.recommendation(&target.name);
    Ok(Json(
        workers_json(
            daemon.store(),
            &target.name,
            recommendation.as_ref(),
            daemon.clock().now(),
        )
        .await?,
    ))
}

fn configured<'a>(config: &'a Config, name: &str) -> Result<&'a Target, ApiError> {
    config
        .targets
        .iter()
        .find(|target| target.name == name)
        .ok_or_else(|| ApiError::bad("target", format!("no target `{name}` is configured")))
}

fn range(params: &Params, now: Timestamp) -> Result<(Timestamp, Timestamp), ApiError> {
    let until = params.time("until", now)?.unwrap_or(now);
    let since = params
        .time("since", now)?
        .unwrap_or_else(|| until.saturating_sub(DEFAULT_RANGE));
    if since > until {
        return Err(ApiError::bad("since", "`since` is after `until`"));
    }
    Ok((since, until))
}

/// A target unknown to the store (configured, never polled) has no rows yet.
fn none_yet<T: Default>(result: Result<T, StoreError>) -> Result<T, StoreError> {
    match result {
        Err(StoreError::UnknownTarget { .. }) => Ok(T::default()),
        other => other,
    }
}

async fn series_json(
    store: &Store,
    target: &Target,
    since: Timestamp,
    until: Timestamp,
    step: Duration,
) -> Result<Value, StoreError> {
    let buckets = none_yet(store.fleet_series(&target.name, since, until, step).await)?;
    let column = |values: fn(&SeriesBucket) -> &FleetValues, metric: fn(&FleetValues) -> _| {
        buckets
            .iter()
            .map(|bucket| metric(values(bucket)))
            .collect::<Vec<Option<f64>>>()
    };
    let statistic = |values: fn(&SeriesBucket) -> &FleetValues| {
        json!({
            "workers": column(values, |v| v.workers),
            "ready": column(values, |v| v.ready),
            "starting": column(values, |v| v.starting),
            "inactive": column(values, |v| v.inactive),
            "failed": column(values, |v| v.failed),
            "load": column(values, |v| v.load),
            "load_rolling": column(values, |v| v.load_rolling),
            "perf": column(values, |v| v.perf),
            "reqs_working": column(values, |v| v.reqs_working),
            "utilization": column(values, |v| v.utilization),
        })
    };
    let target_util = target.scaling.target_util;
    let desired: Vec<Option<f64>> = buckets
        .iter()
        .map(|bucket| bucket.avg.load_rolling.map(|demand| demand / target_util))
        .collect();
    Ok(json!({
        "target": target.name,
        "since": since.to_rfc3339(),
        "until": until.to_rfc3339(),
        "since_unix": since.unix_secs_f64(),
        "until_unix": until.unix_secs_f64(),
        "step_seconds": step.as_secs_f64(),
        "target_util": target_util,
        "t": buckets.iter().map(|bucket| bucket.start.unix_secs_f64()).collect::<Vec<_>>(),
        "polls": buckets.iter().map(|bucket| bucket.polls).collect::<Vec<_>>(),
        "avg": statistic(|bucket| &bucket.avg),
        "max": statistic(|bucket| &bucket.max),
        "desired_capacity": desired,
    }))
}

async fn intervals_json(
    store: &Store,
    target: &str,
    since: Timestamp,
    until: Timestamp,
) -> Result<Value, StoreError> {
    let intervals = store.alert_intervals(target, since, until).await?;
    let intervals: Vec<Value> = intervals
        .iter()
        .map(|interval| {
            json!({
                "fingerprint": interval.fingerprint,
                "alertname": interval.alertname,
                "worker_id": interval.worker_id.map(|id| id.to_string()),
                "severity": interval.severity.as_str(),
                "start": interval.start.to_rfc3339(),
                "start_unix": interval.start.unix_secs_f64(),
                "end": interval.end.map(Timestamp::to_rfc3339),
                "end_unix": interval.end.map(Timestamp::unix_secs_f64),
            })
        })
        .collect();
    Ok(json!({"intervals": intervals}))
}

async fn workers_json(
    store: &Store,
    target: &str,
    recommendation: Option<&Recommendation>,
    now: Timestamp,
) -> Result<Value, StoreError> {
    let latest = none_yet(store.latest_workers(target).await)?;
    let replace = recommendation.map_or(&[][..], |recommendation| &recommendation.replace[..]);
    let workers: Vec<Value> = latest
        .iter()
        .flat_map(|latest| &latest.workers)
        .map(|worker| {
            let id = worker.worker_id.to_string();
            let perf = worker.get(Field::Perf);
            let load = worker.get(Field::CurLoadRollingAvg);
            let utilization = load
                .zip(perf)
                .filter(|(_, perf)| *perf != 0.0)
                .map(|(load, perf)| load / perf);
            let age = worker
                .get(Field::LoadedAt)
                .map(|loaded| now.unix_secs_f64() - loaded);
            json!({
                "worker_id": id,
                "status": worker.status,
                "class": StateClass::of(worker.status.as_deref()).as_str(),
                "reliability": worker.get(Field::Reliability),
                "perf": perf,
                "reqs_working": worker.get(Field::ReqsWorking),
                "cur_load_rolling_avg": load,
                "utilization": utilization,
                "age_seconds": age,
                "replace": replace.contains(&id),
            })
        })
        .collect();
    let polled_at = latest.map(|latest| latest.polled_at.to_rfc3339());
    Ok(json!({"target": target, "polled_at": polled_at, "workers": workers}))
}

/// Everything the status page shows for one target over `[since, until]`, as the API
/// would answer it; `vastwatch report` inlines this into the page.
pub async fn report_data(
    store: &Store,
    config: &Config,
    target: &str,
    since: Timestamp,
    until: Timestamp,
) -> Result<Value, String> {
    let target = configured(config, target).map_err(|error| error.message().to_string())?;
    let store_error = |error: StoreError| error.to_string();
    let last_poll = store
        .latest_polls()
        .await
        .map_err(store_error)?
        .into_iter()
        .find(|poll| poll.target == target.name);
    let recommendation = store
        .latest_recommendations()
        .await
        .map_err(store_error)?
        .into_iter()
        .find(|row| row.target == target.name)
        .map(|row| row.recommendation);
    let summary = target_summary(
        store,
        target,
        last_poll.as_ref(),
        recommendation.as_ref(),
        config.schedule.interval_at(until),
    )
    .await
    .map_err(|error| error.message().to_string())?;
    let step = series_step(since, until, None);
    let alerts = store
        .alerts(&AlertFilter {
            state: None,
            since: Some(since),
            target: Some(target.name.clone()),
        })
        .await
        .map_err(store_error)?;
    Ok(json!({
        "generated_at": until.to_rfc3339(),
        "targets": {"targets": [summary]},
        "series": series_json(store, target, since, until, step).await.map_err(store_error)?,
        "intervals": intervals_json(store, &target.name, since, until).await.map_err(store_error)?,
        "workers": workers_json(store, &target.name, recommendation.as_ref(), until).await.map_err(store_error)?,
        "alerts": {"alerts": alerts.iter().map(super::dto::alert).collect::<Vec<_>>()},
    }))
}
