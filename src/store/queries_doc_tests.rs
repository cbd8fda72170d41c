//! Runs every SQL recipe of `docs/queries.md` against a store filled with realistic polls,
//! so the operator docs can never drift from the schema.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use super::test_db::sqlite_pools;
use super::{Store, TargetSpec};
use crate::model::{
    FailureKind, Field, PollFailure, PollRecord, PollResult, TargetKind, WorkerSample,
};
use crate::time::Timestamp;

const QUERIES_DOC: &str = include_str!("../../docs/queries.md");

/// The bodies of the doc's ```sql blocks, in order.
fn sql_blocks(markdown: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = markdown;
    while let Some(start) = rest.find("```sql\n") {
        let body = &rest[start + "```sql\n".len()..];
        let end = body.find("\n```").expect("every sql block is closed");
        blocks.push(&body[..end]);
        rest = &body[end..];
    }
    blocks
}

fn worker(id: i64, status: &str, reliability: f64, load: f64) -> WorkerSample {
    let mut worker = WorkerSample::new(id)
        .with(Field::CurLoad, load)
        .with(Field::NewLoad, load / 2.0)
        .with(Field::CurLoadRollingAvg, load)
        .with(Field::CurPerf, 80.0)
        .with(Field::MeasuredPerf, 105.0)
        .with(Field::Perf, 105.0 * reliability)
        .with(Field::Reliability, reliability)
        .with(Field::Dlperf, 105.0)
        .with(Field::ReqsWorking, (load / 40.0).floor())
        .with(Field::DiskUsage, 30.0)
        .with(Field::LoadedAt, 1_724_275_993.997);
    worker.status = Some(status.to_string());
    worker
}

/// Forty minutes of polls every 30 s, ending now: `llama-prod` with a worker whose
/// reliability sinks, one stuck loading and one with an unknown status and extra fields;
/// `llama-prod-group` failing every third poll and otherwise empty.
fn polls_until(now: Timestamp) -> Vec<PollRecord> {
    let mut records = Vec::new();
    for tick in 0..80i64 {
        let started_at = now.saturating_sub(Duration::from_secs(30 * (80 - tick) as u64));
        let sinking = 0.99 - 0.002 * tick as f64;
        let mut odd = worker(123_459, "mystery", 0.9, 10.0);
        odd.extra = Some(
            serde_json::json!({"loop_lag_max": 0.4, "deployment_version_id": 7})
                .as_object()
                .cloned()
                .expect("an object"),
        );
        records.push(PollRecord {
            target: "llama-prod".to_string(),
            started_at,
            duration: Duration::from_millis(150 + tick as u64),
            result: PollResult::Snapshot {
                workers: vec![
                    worker(123_456, "running", sinking, 60.0 + tick as f64),
                    worker(123_457, "idle", 0.98, 40.0),
                    worker(123_458, "loading", 0.97, 0.0),
                    odd,
                ],
                notes: Vec::new(),
            },
        });
        let result = match tick % 3 {
            0 => PollResult::Failed(PollFailure {
                kind: FailureKind::HttpStatus,
                message: "HTTP 503 Service Unavailable".to_string(),
                http_status: Some(503),
            }),
            1 => PollResult::Failed(PollFailure {
                kind: FailureKind::Timeout,
                message: "no answer within 10s".to_string(),
                http_status: None,
            }),
            _ => PollResult::Snapshot {
                workers: Vec::new(),
                notes: Vec::new(),
            },
        };
        records.push(PollRecord {
            target: "llama-prod-group".to_string(),
            started_at,
            duration: Duration::from_millis(10_000),
            result,
        });
    }
    records
}

/// A firing alert with its transitions and two recommendation rows, written as the engine
/// would leave them.
async fn record_alert_and_advice(store: &Store, now: Timestamp) {
    let at = |minutes_ago: u64| {
        now.saturating_sub(Duration::from_secs(60 * minutes_ago))
            .unix_secs_f64()
    };
    let statements = [
        format!(
            "INSERT INTO alerts (fingerprint, alertname, target, worker_id, severity, state, \
             labels, annotations, active_at, fired_at, last_eval_at, value) VALUES \
             ('0123456789abcdef', 'WorkerLowReliability', 'llama-prod', 123456, 'warning', \
             'firing', '{{\"alertname\":\"WorkerLowReliability\"}}', \
             '{{\"summary\":\"Worker 123456 on llama-prod: reliability 0.83\"}}', {}, {}, {}, 0.83)",
            at(12),
            at(7),
            at(0)
        ),
        format!(
            "INSERT INTO alert_events (fingerprint, at, from_state, to_state, value) VALUES \
             ('0123456789abcdef', {}, 'inactive', 'pending', 0.88), \
             ('0123456789abcdef', {}, 'pending', 'firing', 0.85)",
            at(12),
            at(7)
        ),
        format!(
            "INSERT INTO recommendations (target, at, action, current_workers, desired_workers, \
             detail) VALUES ('llama-prod', {}, 'hold', 4, 4, '{{\"reason\":\"hold at 4\"}}'), \
             ('llama-prod', {}, 'replace', 4, 4, '{{\"reason\":\"replace 123456\"}}')",
            at(30),
            at(7)
        ),
    ];
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(sqlite_pools(store).0)
            .await
            .expect("fixture row");
    }
    record_notifications(store, now).await;
}

/// One delivered and one failed notification, and a silence in force, written through the
/// store as the notifier and `silence add` write them.
async fn record_notifications(store: &Store, now: Timestamp) {
    use super::{AttemptRecord, NewNotification};
    let payload = r#"{"version":"4","alerts":[{"status":"firing"}],"vastwatch":{"reason":"first notification"}}"#;
    let queued = now.saturating_sub(Duration::from_secs(600));
    for (id, receiver) in [("n-1", "ops"), ("n-2", "pager")] {
        store
            .insert_notification(
                &NewNotification {
                    id: id.to_string(),
                    receiver: receiver.to_string(),
                    group_key: "0:{}:{alertname=\"WorkerLowReliability\"}".to_string(),
                    payload: payload.to_string(),
                },
                queued,
            )
            .await
            .expect("queued");
    }
    store
        .record_attempts(&[
            AttemptRecord::Delivered {
                id: "n-1".to_string(),
                at: queued.saturating_add(Duration::from_secs(2)),
            },
            AttemptRecord::Failed {
                id: "n-2".to_string(),
                error: "HTTP 410 Gone".to_string(),
            },
        ])
        .await
        .expect("attempts");
    let silence = crate::notify::Silence {
        id: "5b1f".to_string(),
        matchers: vec![
            crate::notify::matcher::Matcher::parse("target=~llama-.*").expect("matcher"),
        ],
        starts_at: now.saturating_sub(Duration::from_secs(60)),
        ends_at: now.saturating_add(Duration::from_secs(3600)),
        comment: "known bad host".to_string(),
        created_by: "ana".to_string(),
    };
    store.insert_silence(&silence, now).await.expect("silence");
}

#[test]
fn the_doc_has_recipes_for_every_question_the_issue_names() {
    let blocks = sql_blocks(QUERIES_DOC);
    assert!(blocks.len() >= 12, "{} recipes", blocks.len());
    for block in blocks {
        let statements = block.trim().trim_end_matches(';');
        assert!(
            !statements.contains(';'),
            "one statement per block, so each can be pasted alone:\n{block}"
        );
    }
}

#[tokio::test]
async fn every_recipe_in_the_queries_doc_runs_and_finds_rows() {
    let folder = TempDir::new().expect("temporary folder");
    let store = Store::open(&folder.path().join("vastwatch.db"))
        .await
        .expect("store opens");
    store
        .sync_targets(&[
            TargetSpec {
                name: "llama-prod".to_string(),
                kind: TargetKind::Endpoint,
                vast_id: 123,
            },
            TargetSpec {
                name: "llama-prod-group".to_string(),
                kind: TargetKind::WorkerGroup,
                vast_id: 1001,
            },
        ])
        .await
        .expect("targets");
    // The recipes ask SQLite for 'now', so the data has to be recent by the wall clock.
    // This is the one place a test reads it; the store itself never does.
    let wall_clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    let now = Timestamp::from_unix_millis(wall_clock.as_millis() as i64);
    store.record_polls(&polls_until(now)).await.expect("stored");
    record_alert_and_advice(&store, now).await;

    for block in sql_blocks(QUERIES_DOC) {
        let rows = sqlx::query(sqlx::AssertSqlSafe(block))
            .fetch_all(sqlite_pools(&store).1)
            .await
            .unwrap_or_else(|error| panic!("recipe failed: {error}\n{block}"));
        assert!(!rows.is_empty(), "recipe found no rows:\n{block}");
    }
}
