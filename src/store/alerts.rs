//! Alert instances and transitions: written in the same transaction as the polls whose
//! evaluation produced them, read back at start so timers resume, and listed for
//! `vastwatch alerts`.

use std::collections::BTreeMap;

use super::Store;
use super::backend::{StoreRow, WriteTx, on_tx, with_pool};
use super::error::{StoreError, query_error};
use crate::advise::Recommendation;
use crate::rules::{AlertChange, AlertRecord, AlertState, Evaluation, Lifecycle, Severity};
use crate::time::Timestamp;

const UPSERT_ALERT: &str = "INSERT INTO alerts (fingerprint, alertname, target, worker_id, \
     severity, state, labels, annotations, active_at, fired_at, resolved_at, resolving_since, \
     last_eval_at, value, recommendation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
     ON CONFLICT (fingerprint) DO UPDATE SET state = excluded.state, \
     severity = excluded.severity, labels = excluded.labels, \
     annotations = excluded.annotations, active_at = excluded.active_at, \
     fired_at = excluded.fired_at, resolved_at = excluded.resolved_at, \
     resolving_since = excluded.resolving_since, last_eval_at = excluded.last_eval_at, \
     value = excluded.value, recommendation = excluded.recommendation";

const INSERT_RECOMMENDATION: &str = "INSERT INTO recommendations (target, at, action, \
     current_workers, desired_workers, detail) VALUES (?, ?, ?, ?, ?, ?)";

const INSERT_EVENT: &str = "INSERT INTO alert_events (fingerprint, at, from_state, to_state, value) VALUES (?, ?, ?, ?, ?)";

const SELECT_FILTERED_ALERTS: &str = "SELECT fingerprint, alertname, target, worker_id, \
     severity, state, labels, annotations, active_at, fired_at, resolved_at, resolving_since, \
     last_eval_at, value, recommendation FROM alerts WHERE (?1 IS NULL OR state = ?1) AND last_eval_at >= ?2 \
     AND (?3 IS NULL OR target = ?3) ORDER BY last_eval_at DESC, fingerprint";

/// Which alerts `vastwatch alerts` lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    /// Only alerts in this state; `None` lists every state.
    pub state: Option<AlertState>,
    /// Only alerts evaluated at or after this time.
    pub since: Option<Timestamp>,
    pub target: Option<String>,
}

/// One `alert_events` row.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEventRow {
    pub fingerprint: String,
    pub alertname: String,
    pub target: String,
    pub worker_id: Option<i64>,
    pub at: Timestamp,
    pub from_state: AlertState,
    pub to_state: AlertState,
    pub value: Option<f64>,
}

/// Writes what evaluations produced, inside the caller's transaction: each changed alert
/// instance is upserted with its transition appended, and each changed recommendation
/// gets a row.
pub(super) async fn write_evaluations(
    transaction: &mut WriteTx,
    evaluations: &[Evaluation],
) -> Result<(), StoreError> {
    for evaluation in evaluations {
        write_alert_changes(transaction, &evaluation.changes).await?;
        super::notify::write_marks(transaction, &evaluation.changes).await?;
        if evaluation.recommendation_changed {
            write_recommendation(
                transaction,
                &evaluation.target,
                evaluation.at,
                &evaluation.recommendation,
            )
            .await?;
        }
    }
    Ok(())
}

async fn write_recommendation(
    transaction: &mut WriteTx,
    target: &str,
    at: Timestamp,
    recommendation: &Recommendation,
) -> Result<(), StoreError> {
    let detail = serde_json::to_string(recommendation).unwrap_or_else(|_| "{}".to_string());
    on_tx!(transaction, |connection, dialect| {
        sqlx::query(dialect.sql(INSERT_RECOMMENDATION))
            .bind(target)
            .bind(at.unix_secs_f64())
            .bind(recommendation.action.as_str())
            .bind(i64::from(recommendation.current_workers))
            .bind(i64::from(recommendation.desired_workers))
            .bind(detail)
            .execute(&mut *connection)
            .await
            .map_err(query_error("storing a recommendation"))?;
    });
    Ok(())
}

impl Store {
    /// Stores alert changes made outside any poll (instances retired at start or reload)
    /// with their notification marks, in one transaction.
    pub async fn record_alert_changes(&self, changes: &[AlertChange]) -> Result<(), StoreError> {
        const OPERATION: &str = "storing alert changes";
        if changes.is_empty() {
            return Ok(());
        }
        let mut transaction = WriteTx::begin(&self.backend, OPERATION).await?;
        write_alert_changes(&mut transaction, changes).await?;
        super::notify::write_marks(&mut transaction, changes).await?;
        transaction.commit(OPERATION).await
    }
}

/// Upserts each changed instance and appends its transition.
async fn write_alert_changes(
    transaction: &mut WriteTx,
    changes: &[AlertChange],
) -> Result<(), StoreError> {
    const OPERATION: &str = "storing alert changes";
    on_tx!(transaction, |connection, dialect| {
        for change in changes {
            let record = &change.record;
            let lifecycle = &record.lifecycle;
            let labels = serde_json::to_string(&record.labels).unwrap_or_else(|_| "{}".to_string());
            let annotations =
                serde_json::to_string(&record.annotations).unwrap_or_else(|_| "{}".to_string());
            sqlx::query(dialect.sql(UPSERT_ALERT))
                .bind(record.fingerprint.as_str())
                .bind(record.alertname.as_str())
                .bind(record.target.as_str())
                .bind(record.worker_id)
                .bind(record.severity.as_str())
                .bind(lifecycle.state.as_str())
                .bind(labels)
                .bind(annotations)
                .bind(lifecycle.active_at.map(Timestamp::unix_secs_f64))
                .bind(lifecycle.fired_at.map(Timestamp::unix_secs_f64))
                .bind(lifecycle.resolved_at.map(Timestamp::unix_secs_f64))
                .bind(lifecycle.resolving_since.map(Timestamp::unix_secs_f64))
                .bind(record.last_eval_at.unix_secs_f64())
                .bind(record.value)
                .bind(
                    record
                        .recommendation
                        .as_ref()
                        .and_then(|r| serde_json::to_string(r).ok()),
                )
                .execute(&mut *connection)
                .await
                .map_err(query_error(OPERATION))?;
            if let Some(transition) = &change.transition {
                sqlx::query(dialect.sql(INSERT_EVENT))
                    .bind(record.fingerprint.as_str())
                    .bind(transition.at.unix_secs_f64())
                    .bind(transition.from.as_str())
                    .bind(transition.to.as_str())
                    .bind(record.value)
                    .execute(&mut *connection)
                    .await
                    .map_err(query_error(OPERATION))?;
            }
        }
    });
    Ok(())
}

/// One `recommendations` row.
#[derive(Debug, Clone, PartialEq)]
pub struct RecommendationRow {
    pub target: String,
    pub at: Timestamp,
    pub recommendation: Recommendation,
}

impl Store {
    /// Recommendation rows in time order, optionally of one target and since a time.
    pub async fn recommendations(
        &self,
        target: Option<&str>,
        since: Option<Timestamp>,
    ) -> Result<Vec<RecommendationRow>, StoreError> {
        const OPERATION: &str = "reading recommendations";
        with_pool!(self, readers, |pool, dialect| {
            let rows = sqlx::query(dialect.sql(
                "SELECT target, at, detail FROM recommendations \
                 WHERE (?1 IS NULL OR target = ?1) AND at >= ?2 ORDER BY at, id",
            ))
            .bind(target)
            .bind(since.map_or(f64::MIN, Timestamp::unix_secs_f64))
            .fetch_all(pool)
            .await
            .map_err(query_error(OPERATION))?;
            rows.iter().map(recommendation_row).collect()
        })
    }

    /// The newest recommendation row of each target.
    pub async fn latest_recommendations(&self) -> Result<Vec<RecommendationRow>, StoreError> {
        let all = self.recommendations(None, None).await?;
        let mut latest: BTreeMap<String, RecommendationRow> = BTreeMap::new();
        for row in all {
            latest.insert(row.target.clone(), row);
        }
        Ok(latest.into_values().collect())
    }

    /// Pending and firing instances, to resume their timers after a restart.
    pub async fn active_alerts(&self) -> Result<Vec<AlertRecord>, StoreError> {
        self.alerts(&AlertFilter::default()).await.map(|alerts| {
            alerts
                .into_iter()
                .filter(|alert| alert.lifecycle.state.is_active())
                .collect()
        })
    }

    /// Alert instances, most recently evaluated first.
    pub async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<AlertRecord>, StoreError> {
        const OPERATION: &str = "reading alerts";
        with_pool!(self, readers, |pool, dialect| {
            let rows = sqlx::query(dialect.sql(SELECT_FILTERED_ALERTS))
                .bind(filter.state.map(AlertState::as_str))
                .bind(filter.since.map_or(f64::MIN, Timestamp::unix_secs_f64))
                .bind(filter.target.as_deref())
                .fetch_all(pool)
                .await
                .map_err(query_error(OPERATION))?;
            rows.iter()
                .map(|row| alert_record(row, OPERATION))
                .collect()
        })
    }

    /// Transitions in time order, optionally of one instance only.
    pub async fn alert_events(
        &self,
        fingerprint: Option<&str>,
        since: Option<Timestamp>,
    ) -> Result<Vec<AlertEventRow>, StoreError> {
        const OPERATION: &str = "reading alert events";
        with_pool!(self, readers, |pool, dialect| {
            let rows = sqlx::query(dialect.sql(
                "SELECT e.fingerprint, a.alertname, a.target, a.worker_id, e.at, e.from_state, \
                 e.to_state, e.value FROM alert_events AS e JOIN alerts AS a USING (fingerprint) \
                 WHERE (?1 IS NULL OR e.fingerprint = ?1) AND e.at >= ?2 ORDER BY e.at, e.id",
            ))
            .bind(fingerprint)
            .bind(since.map_or(f64::MIN, Timestamp::unix_secs_f64))
            .fetch_all(pool)
            .await
            .map_err(query_error(OPERATION))?;
            rows.iter().map(alert_event_row).collect()
        })
    }
}

fn recommendation_row(row: &impl StoreRow) -> Result<RecommendationRow, StoreError> {
    const OPERATION: &str = "reading recommendations";
    let detail: String = row.value("detail").map_err(query_error(OPERATION))?;
    Ok(RecommendationRow {
        target: row.value("target").map_err(query_error(OPERATION))?,
        at: time(row, "at", OPERATION)?.unwrap_or_default(),
        recommendation: serde_json::from_str(&detail).map_err(|error| StoreError::BadRow {
            operation: OPERATION,
            detail: format!("recommendation detail is not the SPEC §7 object: {error}"),
        })?,
    })
}

fn alert_event_row(row: &impl StoreRow) -> Result<AlertEventRow, StoreError> {
    const OPERATION: &str = "reading alert events";
    let state = |column: &str| -> Result<AlertState, StoreError> {
        let text: String = row.value(column).map_err(query_error(OPERATION))?;
        AlertState::parse(&text).ok_or_else(|| StoreError::BadRow {
            operation: OPERATION,
            detail: format!("unknown alert state `{text}`"),
        })
    };
    Ok(AlertEventRow {
        fingerprint: row.value("fingerprint").map_err(query_error(OPERATION))?,
        alertname: row.value("alertname").map_err(query_error(OPERATION))?,
        target: row.value("target").map_err(query_error(OPERATION))?,
        worker_id: row.value("worker_id").map_err(query_error(OPERATION))?,
        at: time(row, "at", OPERATION)?.unwrap_or_default(),
        from_state: state("from_state")?,
        to_state: state("to_state")?,
        value: row.value("value").map_err(query_error(OPERATION))?,
    })
}

fn time(
    row: &impl StoreRow,
    column: &str,
    operation: &'static str,
) -> Result<Option<Timestamp>, StoreError> {
    let secs: Option<f64> = row.value(column).map_err(query_error(operation))?;
    Ok(secs.map(Timestamp::from_unix_secs_f64))
}

fn alert_record(row: &impl StoreRow, operation: &'static str) -> Result<AlertRecord, StoreError> {
    let text = |column: &str| -> Result<String, StoreError> {
        row.value(column).map_err(query_error(operation))
    };
    let bad = |detail: String| StoreError::BadRow { operation, detail };
    let severity = text("severity")?;
    let state = text("state")?;
    let labels: BTreeMap<String, String> =
        serde_json::from_str(&text("labels")?).map_err(|error| {
            bad(format!(
                "alert labels are not a JSON object of strings: {error}"
            ))
        })?;
    let annotations: BTreeMap<String, String> = serde_json::from_str(&text("annotations")?)
        .map_err(|error| {
            bad(format!(
                "alert annotations are not a JSON object of strings: {error}"
            ))
        })?;
    Ok(AlertRecord {
        fingerprint: text("fingerprint")?,
        alertname: text("alertname")?,
        target: text("target")?,
        worker_id: row.value("worker_id").map_err(query_error(operation))?,
        severity: Severity::parse(&severity)
            .ok_or_else(|| bad(format!("unknown severity `{severity}`")))?,
        labels,
        annotations,
        lifecycle: Lifecycle {
            state: AlertState::parse(&state)
                .ok_or_else(|| bad(format!("unknown alert state `{state}`")))?,
            active_at: time(row, "active_at", operation)?,
            fired_at: time(row, "fired_at", operation)?,
            resolved_at: time(row, "resolved_at", operation)?,
            resolving_since: time(row, "resolving_since", operation)?,
        },
        value: row.value("value").map_err(query_error(operation))?,
        last_eval_at: time(row, "last_eval_at", operation)?.unwrap_or_default(),
        recommendation: row
            .value::<Option<String>>("recommendation")
            .map_err(query_error(operation))?
            .and_then(|text| serde_json::from_str(&text).ok()),
    })
}
