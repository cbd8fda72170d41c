//! The fault matrix of docs/reliability.md: each way the Vast API or a notification
//! receiver can misbehave, what vastwatch records for it, and that it carries on after.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use vastwatch::clock::Clock;
use vastwatch::config::Config;
use vastwatch::daemon::Daemon;
use vastwatch::model::TargetKind;
use vastwatch::store::{NotificationRow, NotificationStatus};

use crate::helpers::*;
use crate::notify::{App, webhook};
use crate::polling::stored_samples;
use crate::receiver::{Answer, Receiver, read_request};

/// A healthy one-worker fleet whose API shows `fault` (its keys after `at: 0s`).
fn one_fault(fault: &str) -> String {
    format!(
        "name: fault\nfleets:\n  - endpoint: 1\n    load: 10\n    workers: [{{id: 1, perf: 100}}]\n    \
         faults: [{{at: 0s, {fault}}}]\n"
    )
}

/// Polls at 0 s (during `fault`) and at 10 s (after it); returns both `polls` rows and
/// the samples stored by the first poll.
async fn fault_then_ok(fault: &str, api: &str) -> (PollRow, PollRow, Vec<Value>) {
    let app = TestApp::spawn(&one_fault(&format!("for: 5s, {fault}")), api).await;
    app.tick_at(secs(0)).await;
    let pool = app.sql().await;
    let samples = stored_samples(&pool).await;
    app.tick_at(secs(10)).await;
    let rows = poll_rows(&pool).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1].outcome, "ok", "polling goes on after {fault}");
    assert_eq!(rows[1].worker_count, Some(1));
    (rows[0].clone(), rows[1].clone(), samples)
}

/// A raw 200 body as a fault.
fn raw_body(body: &str) -> String {
    format!("kind: raw, status: 200, body: '{body}'")
}

#[tokio::test]
async fn server_errors_are_stored_with_their_status_and_polling_goes_on() {
    for status in [500, 502, 503, 504] {
        let (failed, _, samples) =
            fault_then_ok(&format!("kind: http_status, status: {status}"), "").await;
        assert_eq!(failed.outcome, "http_status");
        assert_eq!(failed.http_status, Some(status));
        let error = failed.error.unwrap_or_default();
        assert!(error.starts_with(&format!("HTTP {status}")), "{error}");
        assert!(samples.is_empty(), "a failed poll stores no samples");
    }
}

#[tokio::test]
async fn a_429_storm_backs_off_doubling_to_five_minutes_and_recovers() {
    let app = TestApp::spawn(&one_fault("for: 15m, kind: rate_limit"), "").await;
    let polled_at = ticks_that_polled(&app, 970).await;
    // Back-offs of 20, 40, 80, 160, 300 and 300 s after each 429 (10 s schedule); the
    // storm ends at 900 s, so the poll at 960 s is ok and clears the back-off.
    assert_eq!(polled_at, vec![0, 30, 80, 170, 340, 650, 960, 970]);
    let rows = poll_rows(&app.sql().await).await;
    let outcomes: Vec<(&str, Option<i64>)> = rows
        .iter()
        .map(|row| (row.outcome.as_str(), row.http_status))
        .collect();
    let limited = ("rate_limited", Some(429));
    assert_eq!(
        outcomes,
        vec![
            limited,
            limited,
            limited,
            limited,
            limited,
            limited,
            ("ok", None),
            ("ok", None)
        ],
        "skipped polls are not stored"
    );
    assert_eq!(app.simulator.requests_for(TargetKind::Endpoint, 1), 8);
}

#[tokio::test]
async fn a_timeout_is_stored_and_polling_goes_on() {
    let (failed, _, _) = fault_then_ok("kind: timeout, hold: 10s", "  timeout: 500ms\n").await;
    assert_eq!(failed.outcome, "timeout");
    assert_eq!(failed.http_status, None);
    assert!(!failed.error.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn a_truncated_body_is_a_decode_failure_and_polling_goes_on() {
    let (failed, _, samples) = fault_then_ok("kind: truncated", "").await;
    assert_eq!(failed.outcome, "decode");
    assert_eq!(failed.http_status, Some(200));
    let error = failed.error.unwrap_or_default();
    assert!(error.starts_with("body is not JSON"), "{error}");
    assert!(samples.is_empty());
}

#[tokio::test]
async fn fields_of_the_wrong_type_are_null_with_their_raw_value_in_extra() {
    let body = r#"[{"id": 1, "status": 7, "perf": "fast", "reliability": true, "reqs_working": 2.5, "cur_load": [1], "dlperf": {"x": 1}, "cur_load_rolling_avg": 4}]"#;
    let (first, _, samples) = fault_then_ok(&raw_body(body), "").await;
    assert_eq!(first.outcome, "ok");
    assert_eq!(first.worker_count, Some(1));
    let sample = &samples[0];
    for column in [
        "status",
        "perf",
        "reliability",
        "reqs_working",
        "cur_load",
        "dlperf",
    ] {
        assert_eq!(sample[column], Value::Null, "{column}");
    }
    assert_eq!(sample["cur_load_rolling_avg"], json!(4.0));
    assert_eq!(
        sample["extra"],
        json!({"status": 7, "perf": "fast", "reliability": true, "reqs_working": 2.5,
               "cur_load": [1], "dlperf": {"x": 1}})
    );
}

#[tokio::test]
async fn a_duplicated_worker_id_keeps_the_last_entry_with_a_note() {
    let body = r#"[{"id": 1, "status": "loading", "perf": 10}, {"id": 2, "status": "running"}, {"id": 1, "status": "running", "perf": 50}]"#;
    let (first, _, samples) = fault_then_ok(&raw_body(body), "").await;
    assert_eq!(first.outcome, "ok");
    assert_eq!(first.worker_count, Some(2));
    assert_eq!(
        first.error.as_deref(),
        Some("worker 1 appears more than once; the last entry was kept")
    );
    let kept: Vec<(Value, Value, Value)> = samples
        .iter()
        .map(|s| (s["id"].clone(), s["status"].clone(), s["perf"].clone()))
        .collect();
    assert_eq!(
        kept,
        vec![
            (json!(1), json!("running"), json!(50.0)),
            (json!(2), json!("running"), Value::Null)
        ]
    );
}

#[tokio::test]
async fn nan_and_infinite_numbers_are_null_and_negative_numbers_are_kept() {
    // 1e400 is valid JSON but too large for a double (it used to fail the whole poll).
    let body = r#"[{"id": 1, "status": "running", "cur_load": NaN, "perf": Infinity, "reliability": -Infinity, "dlperf": 1e400, "cur_load_rolling_avg": -5, "measured_perf": -0.5, "reqs_working": -2}]"#;
    let (first, _, samples) = fault_then_ok(&raw_body(body), "").await;
    assert_eq!(first.outcome, "ok");
    let sample = &samples[0];
    for column in ["cur_load", "perf", "reliability", "dlperf"] {
        assert_eq!(sample[column], Value::Null, "{column}");
    }
    // Negative values are numbers the API sent; they are stored as sent, not guessed at.
    assert_eq!(sample["cur_load_rolling_avg"], json!(-5.0));
    assert_eq!(sample["measured_perf"], json!(-0.5));
    assert_eq!(sample["reqs_working"], json!(-2));
    assert_eq!(
        sample["extra"],
        json!({"cur_load": "NaN", "perf": "Infinity", "reliability": "-Infinity",
               "dlperf": "1e400"})
    );
}

#[tokio::test]
async fn status_strings_never_seen_before_are_stored_lower_cased() {
    let body = r#"[{"id": 1, "status": "Hibernating"}, {"id": 2, "status": "MODEL_LOADING"}, {"id": 3, "status": ""}]"#;
    let (first, _, samples) = fault_then_ok(&raw_body(body), "").await;
    assert_eq!(first.outcome, "ok");
    assert_eq!(first.worker_count, Some(3));
    let statuses: Vec<&Value> = samples.iter().map(|s| &s["status"]).collect();
    assert_eq!(
        statuses,
        vec![&json!("hibernating"), &json!("model_loading"), &json!("")]
    );
    assert!(samples.iter().all(|s| s["extra"].is_null()));
}

/// What the scripted API does with one request.
#[derive(Debug, Clone, Copy)]
enum Play {
    /// 200 with a one-worker list.
    Good,
    /// 200 headers at once, then one byte of body every 200 ms.
    Trickle,
    /// 200 with a 100 MB body, announced by `Content-Length` or streamed chunked.
    Flood { announced: bool },
}

/// How one connection ended, as the scripted API saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Served {
    body_bytes: u64,
    /// A write failed: the client closed the connection before the body was complete.
    client_hung_up: bool,
}

const FLOOD_BYTES: u64 = 100 * 1024 * 1024;
/// Five minutes of trickling: far past any `api.timeout` in these tests.
const TRICKLE_BYTES: u64 = 1500;

/// A Vast API stand-in on 127.0.0.1:0 for what the simulator cannot serve: bodies that
/// trickle or flood. Each connection takes the next play; every answer closes it.
struct ScriptedApi {
    base_url: String,
    /// By connection number, in the order the connections ended.
    served: Arc<Mutex<Vec<(usize, Served)>>>,
}

impl ScriptedApi {
    async fn start(plays: &[Play]) -> ScriptedApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let plays = Arc::new(Mutex::new(plays.iter().copied().collect::<VecDeque<_>>()));
        let served = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&served);
        tokio::spawn(async move {
            let mut number = 0;
            while let Ok((stream, _)) = listener.accept().await {
                let Some(play) = plays.lock().unwrap().pop_front() else {
                    continue;
                };
                let record = Arc::clone(&record);
                tokio::spawn(async move {
                    let served = answer(stream, play).await;
                    record.lock().unwrap().push((number, served));
                });
                number += 1;
            }
        });
        ScriptedApi { base_url, served }
    }

    /// Waits until `count` connections have ended and returns how, in connection order.
    async fn served(&self, count: usize) -> Vec<Served> {
        assert!(
            wait_until(secs(60), || async {
                self.served.lock().unwrap().len() >= count
            })
            .await,
            "the API saw {} connections end",
            self.served.lock().unwrap().len()
        );
        let mut served = self.served.lock().unwrap().clone();
        served.sort_by_key(|(number, _)| *number);
        served.into_iter().map(|(_, served)| served).collect()
    }
}

async fn answer(mut stream: TcpStream, play: Play) -> Served {
    read_request(&mut stream).await;
    let mut served = Served {
        body_bytes: 0,
        client_hung_up: false,
    };
    let head = |length: &str| {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n{length}\r\n"
        )
    };
    match play {
        Play::Good => {
            let body = r#"[{"id": 1, "status": "running", "perf": 100}]"#;
            let response = format!(
                "{}{body}",
                head(&format!("content-length: {}\r\n", body.len()))
            );
            served.client_hung_up = stream.write_all(response.as_bytes()).await.is_err();
            served.body_bytes = body.len() as u64;
        }
        Play::Trickle => {
            let head = head(&format!("content-length: {TRICKLE_BYTES}\r\n"));
            if stream.write_all(head.as_bytes()).await.is_err() {
                served.client_hung_up = true;
                return served;
            }
            while served.body_bytes < TRICKLE_BYTES {
                if stream.write_all(b" ").await.is_err() || stream.flush().await.is_err() {
                    served.client_hung_up = true;
                    break;
                }
                served.body_bytes += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Play::Flood { announced } => {
            let length = if announced {
                format!("content-length: {FLOOD_BYTES}\r\n")
            } else {
                "transfer-encoding: chunked\r\n".to_string()
            };
            if stream.write_all(head(&length).as_bytes()).await.is_err() {
                served.client_hung_up = true;
                return served;
            }
            let chunk = vec![b' '; 64 * 1024];
            let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            while served.body_bytes < FLOOD_BYTES {
                let bytes: &[u8] = if announced { &chunk } else { &framed };
                if stream.write_all(bytes).await.is_err() {
                    served.client_hung_up = true;
                    break;
                }
                served.body_bytes += chunk.len() as u64;
            }
            if !announced && !served.client_hung_up {
                let _ = stream.write_all(b"0\r\n\r\n").await;
            }
        }
    }
    served
}

/// A daemon polling `base_url` (one endpoint target), on a manual clock.
async fn daemon_against(base_url: &str, api: &str, dir: &std::path::Path) -> Daemon {
    let config_path = write_config(dir, base_url, api, "  - name: t\n    endpoint: 1\n", "");
    let config = Config::load(&config_path, &test_env()).expect("config");
    Daemon::start(
        config,
        vastwatch::rules::RuleSet::empty(),
        Clock::manual(T0),
    )
    .await
    .expect("daemon")
}

/// Ticks at 0, 10, 20 ... s, one per play, each bounded so that a hang fails the test
/// instead of stalling it; returns the `polls` rows.
async fn poll_scripted(api: &ScriptedApi, api_config: &str, ticks: u64) -> Vec<PollRow> {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let daemon = daemon_against(&api.base_url, api_config, dir.path()).await;
    let (_sender, stop) = tokio::sync::watch::channel(false);
    for tick in 0..ticks {
        let polled = tokio::time::timeout(secs(120), daemon.tick_once(at(secs(tick * 10)), &stop));
        polled.await.expect("a poll ended instead of hanging");
    }
    poll_rows(&open_database(&dir.path().join("vastwatch.db")).await).await
}

#[tokio::test]
async fn a_slowloris_body_ends_as_a_timeout_and_polling_goes_on() {
    let api = ScriptedApi::start(&[Play::Trickle, Play::Good]).await;
    let rows = poll_scripted(&api, "  timeout: 1s\n", 2).await;
    assert_eq!(rows[0].outcome, "timeout", "{:?}", rows[0]);
    // The headers said 200 before the body stalled.
    assert_eq!(rows[0].http_status, Some(200));
    assert_eq!(rows[1].outcome, "ok");
    let served = api.served(2).await;

    assert!(served[0].client_hung_up, "{served:?}");
    assert!(served[0].body_bytes < TRICKLE_BYTES, "{served:?}");
}

#[tokio::test]
async fn a_100_mb_body_is_rejected_early_and_polling_goes_on() {
    let plays = [
        Play::Flood { announced: false },
        Play::Flood { announced: true },
        Play::Good,
    ];
    let api = ScriptedApi::start(&plays).await;
    // The default api.max_body of 16 MiB.
    let rows = poll_scripted(&api, "", 3).await;
    for row in &rows[..2] {
        assert_eq!(row.outcome, "decode", "{row:?}");
        assert_eq!(row.http_status, Some(200));
        let error = row.error.as_deref().unwrap_or_default();
        assert!(
            error.contains("exceeds the limit of 16777216 bytes"),
            "{error}"
        );
    }
    assert!(
        rows[1]
            .error
            .as_deref()
            .unwrap_or_default()
            .starts_with(&format!("body of {FLOOD_BYTES} bytes")),
        "an announced length is refused before reading: {:?}",
        rows[1].error
    );
    assert_eq!(rows[2].outcome, "ok");
    let served = api.served(3).await;
    // The client hung up once it held max_body (plus what sat in socket buffers), long
    // before the server could write 100 MB: memory stays bounded by max_body.
    for flood in &served[..2] {
        assert!(flood.client_hung_up, "{served:?}");
        assert!(flood.body_bytes < 40 * 1024 * 1024, "{served:?}");
    }
}

/// A receiver that answers `answer`, and an app whose only receiver `hook` is it, sent the
/// Overloaded alert (firing at 2m10s, first sent at 2m20s), with webhook options `options`.
async fn receiver_app(answer: Answer, options: &str) -> (Receiver, App) {
    let receiver = Receiver::start().await;
    receiver.answer(answer);
    let hook = webhook("hook", &receiver.url()).replace("\"}\n", &format!("\"{options}}}\n"));
    let notify = format!(
        "  group_wait: 10s\n  group_interval: 30s\n  receivers:\n{hook}  routes:\n    - match: {{alertname: Overloaded}}\n      receivers: [hook]\n"
    );
    (receiver, App::spawn(&notify).await)
}

/// The one notification the receiver was sent.
async fn only_notification(app: &App) -> NotificationRow {
    let rows = app.notifications().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0].clone()
}

/// Runs from 0 to `until` seconds and checks the one notification after its one attempt:
/// its status, and that `last_error` contains `error`.
async fn after_one_attempt(app: &App, until: u64, status: NotificationStatus, error: &str) {
    app.run(0, until).await;
    let row = only_notification(app).await;
    assert_eq!((row.status, row.attempts), (status, 1), "{row:?}");
    let last_error = row.last_error.unwrap_or_default();
    assert!(last_error.contains(error), "{last_error}");
}

/// Runs to just after the first attempt, checks that it was kept for a retry with an
/// error containing `error`, then lets the receiver answer 200 and checks the retry
/// delivered it.
async fn retried_then_delivered(receiver: &Receiver, app: &App, error: &str) {
    after_one_attempt(app, 140, NotificationStatus::Pending, error).await;
    receiver.answer(Answer::Status(200));
    app.run(150, 200).await;
    let row = only_notification(app).await;
    assert_eq!(row.status, NotificationStatus::Delivered);
    assert_eq!(row.attempts, 2);
    assert_eq!(
        receiver.received().len(),
        2,
        "one failed attempt, one delivery"
    );
}

/// Runs well past the first retry delay (5 s) and checks the first attempt failed for good.
async fn failed_at_once(receiver: &Receiver, app: &App, error: &str) {
    after_one_attempt(app, 240, NotificationStatus::Failed, error).await;
    assert_eq!(receiver.received().len(), 1, "never retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_receiver_times_out_and_is_retried() {
    let (receiver, app) = receiver_app(Answer::Slow(secs(60)), ", timeout: 1s").await;
    retried_then_delivered(&receiver, &app, "no answer within 1s (timeout)").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_resetting_mid_response_is_retried() {
    let (receiver, app) = receiver_app(Answer::Reset, "").await;
    // No status line arrived: a transport error, retried like a refused connection.
    retried_then_delivered(&receiver, &app, "error sending request").await;
    assert_eq!(
        receiver.received()[0].answered,
        0,
        "the first attempt was reset"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_5xx_is_retried() {
    let (receiver, app) = receiver_app(Answer::Status(500), "").await;
    retried_then_delivered(&receiver, &app, "HTTP 500").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_redirect_fails_at_once_naming_its_location() {
    let (receiver, app) = receiver_app(
        Answer::Redirect("https://elsewhere.example/hook".into()),
        "",
    )
    .await;
    failed_at_once(
        &receiver,
        &app,
        "HTTP 301: redirect to https://elsewhere.example/… not followed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_4xx_fails_at_once() {
    let (receiver, app) = receiver_app(Answer::Status(400), "").await;
    failed_at_once(&receiver, &app, "HTTP 400").await;
}
