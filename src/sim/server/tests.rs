//! The simulator over real HTTP on port 0, driven by a manual clock.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;

const SCENARIO: &str = "
name: server-test
fleets:
  - endpoint: 11
    load: 100
    workers:
      - {id: 1, perf: 100}
      - {id: 2, perf: 100, status: {0s: loading, 2m: running}}
    faults:
      - {at: 5m, for: 1m, kind: rate_limit}
      - {at: 10m, for: 1m, kind: timeout, hold: 1h}
  - worker_group: 22
    response: wrapped
    workers:
      - {id: 3, perf: 80}
";

const START: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);

async fn start(api_key: Option<&str>) -> (RunningSimulator, Clock) {
    let scenario = Scenario::from_yaml(SCENARIO, "server-test.yaml").expect("valid scenario");
    let clock = Clock::manual(START);
    let options = SimOptions {
        api_key: api_key.map(str::to_string),
        clock: clock.clone(),
        start: START,
    };
    let running = Simulator::new(scenario, options)
        .serve("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("binds port 0");
    (running, clock)
}

fn client() -> reqwest::Client {
    // reqwest is built without a bundled TLS provider; plain HTTP still builds a config.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

struct Answer {
    status: u16,
    content_type: String,
    retry_after: bool,
    body: String,
}

async fn post(
    sim: &RunningSimulator,
    path: &str,
    body: &str,
    bearer: Option<&str>,
) -> Result<Answer, reqwest::Error> {
    post_with(&client(), sim, path, body, bearer).await
}

async fn post_with(
    client: &reqwest::Client,
    sim: &RunningSimulator,
    path: &str,
    body: &str,
    bearer: Option<&str>,
) -> Result<Answer, reqwest::Error> {
    let mut request = client
        .post(format!("{}{path}", sim.base_url()))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(key) = bearer {
        request = request.bearer_auth(key);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let retry_after = response.headers().contains_key("retry-after");
    let body = response.text().await?;
    Ok(Answer {
        status,
        content_type,
        retry_after,
        body,
    })
}

fn json_body(answer: &Answer) -> Value {
    serde_json::from_str(&answer.body)
        .unwrap_or_else(|err| panic!("not JSON ({err}): {}", answer.body))
}

#[tokio::test]
async fn both_paths_and_the_alias_serve_worker_lists_and_are_counted() {
    let (sim, _clock) = start(None).await;
    assert!(sim.base_url().starts_with("http://127.0.0.1:"));
    assert_ne!(sim.local_addr().port(), 0);

    let endpoint = post(&sim, "/get_endpoint_workers/", r#"{"id": 11}"#, None)
        .await
        .expect("request");
    assert_eq!(endpoint.status, 200);
    assert_eq!(endpoint.content_type, "application/json");
    let list = json_body(&endpoint);
    assert_eq!(list[0]["id"], 1);
    assert_eq!(list[0]["cur_load"], 100.0);
    assert_eq!(list[1]["status"], "loading");

    for path in ["/get_autogroup_workers/", "/get_workergroup_workers/"] {
        let group = post(&sim, path, r#"{"id": 22, "api_key": "anything"}"#, None)
            .await
            .expect("request");
        assert_eq!(group.status, 200, "{path}");
        assert_eq!(json_body(&group)["workers"][0]["id"], 3, "{path}");
    }
    // A numeric string id is read too.
    let by_string = post(&sim, "/get_autogroup_workers/", r#"{"id": "22"}"#, None)
        .await
        .expect("request");
    assert_eq!(by_string.status, 200);

    let served = sim.requests_served();
    assert_eq!(served[&("/get_endpoint_workers/".to_string(), 11)], 1);
    assert_eq!(served[&("/get_autogroup_workers/".to_string(), 22)], 2);
    assert_eq!(served[&("/get_workergroup_workers/".to_string(), 22)], 1);
    assert_eq!(sim.requests_for(TargetKind::WorkerGroup, 22), 3);
    assert_eq!(sim.requests_for(TargetKind::Endpoint, 11), 1);
    assert_eq!(sim.requests_for(TargetKind::Endpoint, 22), 0);
    sim.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_configured_key_is_required_in_the_body_or_as_a_bearer_token() {
    let (sim, _clock) = start(Some("s3cret")).await;
    let path = "/get_endpoint_workers/";
    let cases = [
        (r#"{"id": 11}"#, None, 401, "Missing API key"),
        (
            r#"{"id": 11, "api_key": "wrong"}"#,
            None,
            401,
            "Invalid API key",
        ),
        (r#"{"id": 11}"#, Some("wrong"), 401, "Invalid API key"),
        (r#"{"id": 11}"#, Some("s3cret"), 200, ""),
        (r#"{"id": 11, "api_key": "s3cret"}"#, None, 200, ""),
        // The header is the key when both are sent.
        (
            r#"{"id": 11, "api_key": "s3cret"}"#,
            Some("wrong"),
            401,
            "Invalid API key",
        ),
    ];
    for (body, bearer, status, message) in cases {
        let answer = post(&sim, path, body, bearer).await.expect("request");
        assert_eq!(answer.status, status, "{body} with bearer {bearer:?}");
        if status == 401 {
            assert_eq!(
                json_body(&answer),
                json!({"success": false, "error": "invalid_api_key", "msg": message}),
                "{body} with bearer {bearer:?}"
            );
        }
    }
    // Refused requests still count as arrivals.
    assert_eq!(sim.requests_for(TargetKind::Endpoint, 11), 6);
    sim.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn unknown_ids_and_unreadable_bodies_answer_like_the_api() {
    let (sim, _clock) = start(None).await;
    let unknown = post(&sim, "/get_endpoint_workers/", r#"{"id": 99}"#, None)
        .await
        .expect("request");
    assert_eq!(unknown.status, 200);
    assert_eq!(
        json_body(&unknown),
        json!({"error_msg": "No endpoint found with id 99"})
    );
    for body in ["", "not json", r#"{"api_key": "k"}"#, r#"{"id": "eleven"}"#] {
        let answer = post(&sim, "/get_endpoint_workers/", body, None)
            .await
            .expect("request");
        assert_eq!(answer.status, 400, "{body:?}");
        assert!(json_body(&answer)["error_msg"].is_string(), "{body:?}");
    }
    sim.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn scenario_time_follows_the_injected_clock() {
    let (sim, clock) = start(None).await;
    let path = "/get_endpoint_workers/";
    let status_of_worker_2 = |answer: &Answer| json_body(answer)[1]["status"].clone();

    let early = post(&sim, path, r#"{"id": 11}"#, None)
        .await
        .expect("request");
    assert_eq!(status_of_worker_2(&early), "loading");

    clock.advance(Duration::from_secs(150));
    let later = post(&sim, path, r#"{"id": 11}"#, None)
        .await
        .expect("request");
    assert_eq!(status_of_worker_2(&later), "running");
    let loaded_at = json_body(&later)[1]["loaded_at"]
        .as_f64()
        .expect("loaded_at");
    assert_eq!(loaded_at, START.unix_secs_f64() + 120.0);

    clock.advance(Duration::from_secs(180));
    let limited = post(&sim, path, r#"{"id": 11}"#, None)
        .await
        .expect("request");
    assert_eq!(limited.status, 429);
    assert_eq!(limited.content_type, "text/plain; charset=utf-8");
    assert_eq!(limited.body, "API requests too frequent, please wait");
    assert!(!limited.retry_after, "the real API sends no Retry-After");
    sim.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_timeout_fault_outlasts_the_client_and_ends_at_shutdown() {
    let (sim, clock) = start(None).await;
    clock.advance(Duration::from_secs(630));
    let impatient = {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .expect("client")
    };
    let err = post_with(
        &impatient,
        &sim,
        "/get_endpoint_workers/",
        r#"{"id": 11}"#,
        None,
    )
    .await
    .err()
    .expect("the response is held past the client's timeout");
    assert!(err.is_timeout(), "{err}");

    // A request still held when the simulator stops is let go, so shutdown is prompt.
    let held = {
        let base = sim.base_url();
        tokio::spawn(async move {
            client()
                .post(format!("{base}/get_endpoint_workers/"))
                .body(r#"{"id": 11}"#)
                .send()
                .await
                .map(|response| response.status().as_u16())
        })
    };
    let arrived = tokio::time::timeout(Duration::from_secs(5), async {
        while sim.requests_for(TargetKind::Endpoint, 11) < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(arrived.is_ok(), "the second request never arrived");
    let stopped = tokio::time::timeout(Duration::from_secs(4), sim.shutdown()).await;
    assert!(stopped.is_ok(), "shutdown waited for the held request");
    let released = held.await.expect("task");
    assert!(
        matches!(released, Ok(200)) || released.is_err(),
        "{released:?}"
    );
}

#[tokio::test]
async fn a_taken_port_is_an_error_not_a_panic() {
    let (sim, _clock) = start(None).await;
    let scenario = Scenario::from_yaml(SCENARIO, "server-test.yaml").expect("valid scenario");
    let second = Simulator::new(scenario, SimOptions::starting_now(Clock::manual(START)))
        .serve(sim.local_addr())
        .await;
    assert!(second.is_err());
    sim.shutdown().await.expect("clean shutdown");
}

#[test]
fn options_never_show_the_api_key() {
    let options = SimOptions {
        api_key: Some("s3cret".into()),
        ..SimOptions::starting_now(Clock::manual(START))
    };
    let shown = format!("{options:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
}
