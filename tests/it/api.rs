//! The HTTP API over real HTTP on 127.0.0.1 port 0, in front of a daemon that polls the
//! simulator on a manual clock. Every answer is checked against docs/openapi.yaml.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use vastwatch::api::{self, ApiState, ReloadReply};
use vastwatch::clock::Clock;
use vastwatch::config::Config;
use vastwatch::daemon::{Daemon, load_rules};
use vastwatch::notify::send::ConsoleOut;
use vastwatch::sim::RunningSimulator;

use crate::helpers::*;
use crate::openapi::Spec;

const TOKEN: &str = "api-token-7d2e";

/// Two fleets; worker 101 turns unreliable at 1m10s.
const SCENARIO: &str = r#"
name: api
fleets:
  - endpoint: 1
    load: 100
    workers:
      - {id: 101, perf: 200, reliability: {0s: 0.99, 1m: 0.99, 1m10s: 0.5}}
      - {id: 102, perf: 200, reliability: 0.99}
  - endpoint: 2
    load: 50
    workers:
      - {id: 201, perf: 100, reliability: 0.99}
"#;

const RULES: &str = r#"
rules:
  - alert: Unreliable
    scope: worker
    expr: reliability < 0.9
    severity: warning
    annotations:
      summary: "Worker {{ worker_id }} reliability {{ reliability }}"
"#;

pub(crate) struct Api {
    pub(crate) dir: tempfile::TempDir,
    clock: Clock,
    _simulator: RunningSimulator,
    daemon: Arc<Daemon>,
    /// Replaces the daemon the API reads, as a reload does.
    daemon_sender: watch::Sender<Arc<Daemon>>,
    stop: watch::Receiver<bool>,
    _stop_sender: watch::Sender<bool>,
    pub(crate) base: String,
    token: Option<&'static str>,
    client: reqwest::Client,
    spec: Arc<Spec>,
    reloads: tokio::sync::Mutex<mpsc::Receiver<ReloadReply>>,
    _shutdown: oneshot::Sender<()>,
}

impl Api {
    /// A daemon with the rules above, a console receiver, and (when `token`) a bearer
    /// token from `listen_token_env`; its API served on a port-0 listener.
    pub(crate) async fn spawn(token: bool) -> Api {
        Api::spawn_with(SCENARIO, token).await
    }

    async fn spawn_with(scenario: &str, token: bool) -> Api {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let clock = Clock::manual(T0);
        let simulator = start_simulator(scenario, &clock, TEST_KEY).await;
        std::fs::write(dir.path().join("rules.yaml"), RULES).expect("rules file");
        let mut extra = "rules: [rules.yaml]\nnotify:\n  group_wait: 0s\n  receivers:\n    - name: ops\n      console: {}\n".to_string();
        if token {
            extra.push_str("listen_token_env: API_TOKEN\n");
        }
        let path = write_config(
            dir.path(),
            &simulator.base_url(),
            "",
            "  - name: t\n    endpoint: 1\n  - name: u\n    endpoint: 2\n",
            &extra,
        );
        let mut env = test_env();
        env.insert("API_TOKEN".to_string(), TOKEN.to_string());
        let config = Config::load(&path, &env).expect("valid config");
        let rules = load_rules(&config).expect("rules load");
        let daemon = Daemon::start(config, rules, clock.clone())
            .await
            .expect("daemon starts")
            .with_console(ConsoleOut::Buffer(Arc::default()))
            .expect("console");
        let daemon = Arc::new(daemon);
        let (daemon_sender, daemon_receiver) = watch::channel(Arc::clone(&daemon));
        let (reload_sender, reloads) = mpsc::channel(1);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind port 0");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (shutdown, shutdown_signal) = oneshot::channel::<()>();
        let state = ApiState::new(daemon_receiver, reload_sender);
        tokio::spawn(async move {
            api::serve(listener, state, async move {
                let _ = shutdown_signal.await;
            })
            .await
        });
        let (stop_sender, stop) = watch::channel(false);
        Api {
            dir,
            clock,
            _simulator: simulator,
            daemon,
            daemon_sender,
            stop,
            _stop_sender: stop_sender,
            base,
            token: token.then_some(TOKEN),
            client: reqwest::Client::new(),
            spec: Arc::new(Spec::load()),
            reloads: tokio::sync::Mutex::new(reloads),
            _shutdown: shutdown,
        }
    }

    /// Ticks every 10 s from `from` to `to` seconds, each followed by a notifier pass.
    pub(crate) async fn run(&self, from: u64, to: u64) {
        for second in (from..=to).step_by(10) {
            self.clock.set(at(secs(second)));
            self.daemon.tick_once(at(secs(second)), &self.stop).await;
            self.daemon.notify_pass(false).await.expect("notify pass");
        }
    }

    /// Calls `method path_and_query` (`template` is the documented path) with the
    /// configured token, and checks the answer against the OpenAPI document.
    async fn call(
        &self,
        method: Method,
        template: &str,
        path_and_query: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(method, template, path_and_query, body, self.token)
            .await
    }

    async fn call_with(
        &self,
        method: Method,
        template: &str,
        path_and_query: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path_and_query}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status();
        let body: Value =
            serde_json::from_slice(&response.bytes().await.expect("a body")).expect("a JSON body");
        let method = method.as_str().to_lowercase();
        let errors = self.spec.check(template, &method, status.as_u16(), &body);
        assert!(errors.is_empty(), "{}", errors.join("\n"));
        (status, body)
    }

    pub(crate) async fn get(&self, template: &str, query: &str) -> (StatusCode, Value) {
        self.call(Method::GET, template, &format!("{template}{query}"), None)
            .await
    }
}

#[tokio::test]
async fn without_the_token_every_path_but_the_probes_answers_401() {
    let api = Api::spawn(true).await;
    api.run(0, 0).await;
    for (method, template, path) in [
        (Method::GET, "/api/v1/targets", "/api/v1/targets"),
        (Method::GET, "/api/v1/alerts", "/api/v1/alerts?state=firing"),
        (Method::GET, "/api/v1/history", "/api/v1/history"),
        (
            Method::GET,
            "/api/v1/notifications",
            "/api/v1/notifications",
        ),
        (Method::GET, "/api/v1/silences", "/api/v1/silences"),
        (Method::POST, "/api/v1/silences", "/api/v1/silences"),
        (
            Method::DELETE,
            "/api/v1/silences/{id}",
            "/api/v1/silences/x",
        ),
        (Method::POST, "/-/reload", "/-/reload"),
        (Method::GET, "/api/v1/status", "/api/v1/status"),
    ] {
        for token in [None, Some("wrong-token"), Some("api-token-7d2")] {
            let (status, body) = api
                .call_with(method.clone(), template, path, None, token)
                .await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token:?}"
            );
            assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
        }
    }
    // `/metrics` is guarded the same way; Prometheus sends the token.
    let metrics = format!("{}/metrics", api.base);
    for token in [None, Some("wrong-token")] {
        let mut request = api.client.get(&metrics);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token:?}");
    }
    let response = api
        .client
        .get(&metrics)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    assert!(text.contains("vastwatch_build_info{"), "{text}");
    assert!(!text.contains(TOKEN));
    // An unknown path is not a way around the rule either.
    let response = reqwest::get(format!("{}/api/v1/nothing", api.base))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");

    let (status, _) = api
        .call_with(Method::GET, "/healthz", "/healthz", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .call_with(Method::GET, "/readyz", "/readyz", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.get("/api/v1/targets", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn the_token_is_read_from_the_daemon_current_at_each_request() {
    let api = Api::spawn(true).await;
    let path = api.dir.path().join("vastwatch.yaml");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, config.replace("listen_token_env: API_TOKEN\n", "")).unwrap();
    let config = Config::load(&path, &test_env()).expect("valid config");
    let without_token = Daemon::start(
        config,
        vastwatch::rules::RuleSet::empty(),
        api.clock.clone(),
    )
    .await
    .expect("daemon starts");
    let targets_without_token = || async {
        api.call_with(
            Method::GET,
            "/api/v1/targets",
            "/api/v1/targets",
            None,
            None,
        )
        .await
        .0
    };
    api.daemon_sender.send(Arc::new(without_token)).unwrap();
    assert_eq!(
        targets_without_token().await,
        StatusCode::OK,
        "a reload that drops the token opens the API"
    );
    api.daemon_sender.send(Arc::clone(&api.daemon)).unwrap();
    assert_eq!(targets_without_token().await, StatusCode::UNAUTHORIZED);
    // The scheme's name is case-insensitive.
    let response = api
        .client
        .get(format!("{}/api/v1/targets", api.base))
        .header("authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn on_loopback_without_a_token_nothing_asks_for_one() {
    let api = Api::spawn(false).await;
    let (status, _) = api.get("/api/v1/targets", "").await;
    assert_eq!(status, StatusCode::OK);
    let response = reqwest::get(format!("{}/no/such/path", api.base))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"], "no such path `/no/such/path`");
    let response = api
        .client
        .put(format!("{}/api/v1/targets", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"], "`/api/v1/targets` does not answer PUT");
}

#[tokio::test]
async fn readyz_is_503_before_the_first_poll_200_after_and_503_when_polls_stop() {
    let api = Api::spawn(false).await;
    let (status, body) = api.get("/readyz", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["ready"], false);
    let failed: Vec<_> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|check| check["ok"] == false)
        .map(|check| (check["target"].clone(), check["reason"].clone()))
        .collect();
    assert_eq!(
        failed,
        [
            (json!("t"), json!("no poll attempt yet")),
            (json!("u"), json!("no poll attempt yet"))
        ]
    );

    api.run(0, 0).await;
    let (status, body) = api.get("/readyz", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["role"], &body["replica"]),
        (&json!("leader"), &json!(null)),
        "without `ha:` the process leads alone"
    );
    assert_eq!(
        body["checks"][0],
        json!({"check": "database", "target": null, "ok": true, "reason": null})
    );

    // Three intervals (30 s) without a poll attempt is still ready; past that it is not.
    api.clock.set(at(secs(30)));
    assert_eq!(api.get("/readyz", "").await.0, StatusCode::OK);
    api.clock.set(at(secs(31)));
    let (status, body) = api.get("/readyz", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body["checks"][1]["reason"],
        "last poll attempt at 2026-01-01T00:00:00.000Z is older than 30s (3 intervals)"
    );
}

#[tokio::test]
async fn a_target_backing_off_after_a_429_stays_ready() {
    let rate_limited = SCENARIO.replace(
        "  - endpoint: 1\n",
        "  - endpoint: 1\n    faults: [{at: 0s, for: 10m, kind: rate_limit}]\n",
    );
    let api = Api::spawn_with(&rate_limited, false).await;
    // 429s at 0s and 30s: target t backs off until 20s, then until 70s.
    api.run(0, 60).await;
    let (_, body) = api.get("/api/v1/targets", "").await;
    assert_eq!(body["targets"][0]["last_poll"]["outcome"], "rate_limited");
    assert_eq!(
        body["targets"][0]["last_poll"]["started_at"],
        "2026-01-01T00:00:30.000Z"
    );
    api.clock.set(at(secs(65)));
    let (status, body) = api.get("/readyz", "").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "35 s since t's last attempt, but backing off: {body}"
    );
    api.clock.set(at(secs(71)));
    let (status, body) = api.get("/readyz", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["checks"][1]["target"], "t");
    assert_eq!(body["checks"][1]["ok"], false);
    assert_eq!(
        body["checks"][2]["ok"], true,
        "u is polled every tick: {body}"
    );
}

#[tokio::test]
async fn targets_show_the_last_poll_worker_counts_and_recommendation() {
    let api = Api::spawn(false).await;
    let (_, body) = api.get("/api/v1/targets", "").await;
    assert_eq!(body["targets"][0]["name"], "t");
    assert_eq!(body["targets"][0]["last_poll"], Value::Null);
    assert_eq!(body["targets"][0]["workers"], Value::Null);

    api.run(0, 20).await;
    let (status, body) = api.get("/api/v1/targets", "").await;
    assert_eq!(status, StatusCode::OK);
    let t = &body["targets"][0];
    assert_eq!(t["kind"], "endpoint");
    assert_eq!(t["vast_id"], 1);
    assert_eq!(t["last_poll"]["outcome"], "ok");
    assert_eq!(t["last_poll"]["started_at"], "2026-01-01T00:00:20.000Z");
    assert_eq!(t["last_poll"]["worker_count"], 2);
    assert_eq!(t["workers"]["ready"], 2);
    assert_eq!(t["workers"]["workers"], 2);
    assert_eq!(t["recommendation"]["current_workers"], 2);
    assert!(
        t["recommendation"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    assert_eq!(body["targets"][1]["name"], "u");
    assert_eq!(body["targets"][1]["workers"]["ready"], 1);
}

#[tokio::test]
async fn alerts_filter_by_state_target_and_fingerprint() {
    let api = Api::spawn(false).await;
    api.run(0, 90).await;
    let (status, body) = api.get("/api/v1/alerts", "?state=firing").await;
    assert_eq!(status, StatusCode::OK);
    let alerts = body["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{body}");
    assert_eq!(alerts[0]["alertname"], "Unreliable");
    assert_eq!(alerts[0]["worker_id"], "101");
    assert_eq!(alerts[0]["fired_at"], "2026-01-01T00:01:10.000Z");
    let fingerprint = alerts[0]["fingerprint"].as_str().unwrap().to_string();

    // The link in notification payloads (generatorURL) finds the alert.
    let (_, body) = api
        .get("/api/v1/alerts", &format!("?fingerprint={fingerprint}"))
        .await;
    assert_eq!(body["alerts"].as_array().unwrap().len(), 1);
    for query in [
        "?state=pending",
        "?target=u",
        "?fingerprint=0000000000000000",
    ] {
        let (_, body) = api.get("/api/v1/alerts", query).await;
        assert_eq!(body["alerts"], json!([]), "{query}");
    }
    let (_, body) = api.get("/api/v1/alerts", "?state=all&target=t").await;
    assert_eq!(body["alerts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn history_pages_return_every_row_exactly_once() {
    let api = Api::spawn(false).await;
    // 25 ticks of two targets: 50 fleet rows, many sharing a time.
    api.run(0, 240).await;
    let all_fleet = api
        .daemon
        .store()
        .fleet_history(&Default::default())
        .await
        .unwrap();
    assert_eq!(all_fleet.len(), 50);
    let expected: Vec<i64> = {
        let mut ids: Vec<_> = all_fleet.iter().map(|row| row.poll_id).collect();
        ids.sort();
        ids
    };

    let pages = collect_pages(&api, "?limit=7").await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [7, 7, 7, 7, 7, 7, 7, 1]
    );
    let rows: Vec<Value> = pages.into_iter().flatten().collect();
    let mut ids: Vec<i64> = rows
        .iter()
        .map(|row| row["poll_id"].as_i64().unwrap())
        .collect();
    let times: Vec<f64> = rows
        .iter()
        .map(|row| row["polled_at_unix"].as_f64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|pair| pair[0] <= pair[1]),
        "oldest first"
    );
    ids.sort();
    assert_eq!(ids, expected);

    // One target, a time range, one worker.
    let rows: Vec<Value> = collect_pages(
        &api,
        "?target=u&since=2026-01-01T00:01:00Z&until=2026-01-01T00:02:00Z&limit=2",
    )
    .await
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(rows.len(), 7);
    assert!(rows.iter().all(|row| row["target"] == "u"));
    let rows: Vec<Value> = collect_pages(&api, "?worker=101&limit=10")
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(rows.len(), 25);
    assert_eq!(rows[8]["reliability"], 0.5);
    assert_eq!(rows[0]["status"], "running");

    // An age counts back from the daemon's clock (at 4m), not the wall clock.
    let (_, body) = api.get("/api/v1/history", "?target=t&since=1m").await;
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 7);
    assert_eq!(rows[0]["polled_at"], "2026-01-01T00:03:00.000Z");
}

#[tokio::test]
async fn history_pages_run_through_rollups_then_raw_rows() {
    let api = Api::spawn(false).await;
    // 15 minutes of two targets, then the first ten minutes expire into rollups.
    api.run(0, 900).await;
    api.daemon
        .store()
        .delete_samples_before(at(secs(600)))
        .await
        .expect("retention");
    let raw = api
        .daemon
        .store()
        .fleet_history(&Default::default())
        .await
        .unwrap();
    let mut expected_ids: Vec<i64> = raw.iter().map(|row| row.poll_id).collect();
    expected_ids.sort();
    // Page sizes that end inside the rollups, exactly at their end, and past it.
    for limit in [3, 4, 5] {
        let rows: Vec<Value> = collect_pages(&api, &format!("?limit={limit}"))
            .await
            .into_iter()
            .flatten()
            .collect();
        let resolutions: Vec<&str> = rows
            .iter()
            .map(|row| row["resolution"].as_str().unwrap())
            .collect();
        assert_eq!(resolutions[..4], ["5m"; 4], "limit {limit}");
        assert!(
            resolutions[4..].iter().all(|r| *r == "raw"),
            "limit {limit}"
        );
        // Two buckets of two targets, 30 polls each, oldest first.
        let buckets: Vec<(f64, &str)> = rows[..4]
            .iter()
            .map(|row| {
                (
                    row["polled_at_unix"].as_f64().unwrap() - T0.unix_secs_f64(),
                    row["target"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            buckets,
            [(0.0, "t"), (0.0, "u"), (300.0, "t"), (300.0, "u")]
        );
        assert!(rows[..4].iter().all(|row| row["polls"] == 30));
        assert_eq!(rows[0]["max"]["workers"], rows[0]["workers"]);
        let mut ids: Vec<i64> = rows[4..]
            .iter()
            .map(|row| row["poll_id"].as_i64().unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, expected_ids, "limit {limit}: every raw row once");
    }
    // A worker's history has no rollups, and refuses a fleet rollup cursor.
    let (_, first) = api.get("/api/v1/history", "?limit=1").await;
    let cursor = first["next"].as_str().unwrap();
    let (status, body) = api
        .get("/api/v1/history", &format!("?worker=101&cursor={cursor}"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// Follows `next` from the first page to the last; returns each page's rows.
async fn collect_pages(api: &Api, query: &str) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(cursor) => format!("{query}&cursor={cursor}"),
            None => query.to_string(),
        };
        let (status, body) = api.get("/api/v1/history", &query).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        pages.push(body["rows"].as_array().unwrap().clone());
        match body["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return pages,
        }
        assert!(pages.len() < 100, "paging does not end");
    }
}

#[tokio::test]
async fn notifications_list_the_outbox_by_status() {
    let api = Api::spawn(false).await;
    api.run(0, 90).await;
    let (_, body) = api.get("/api/v1/notifications", "").await;
    let all = body["notifications"].as_array().unwrap();
    assert!(!all.is_empty(), "the alert was notified");
    assert_eq!(all[0]["receiver"], "ops");
    assert_eq!(
        all[0]["payload"]["alerts"][0]["labels"]["alertname"],
        "Unreliable"
    );
    let (_, delivered) = api
        .get("/api/v1/notifications", "?status=delivered&receiver=ops")
        .await;
    assert_eq!(
        delivered["notifications"].as_array().unwrap().len(),
        all.len()
    );
    let (_, pending) = api.get("/api/v1/notifications", "?status=pending").await;
    assert_eq!(pending["notifications"], json!([]));
    let (_, none) = api.get("/api/v1/notifications", "?receiver=nobody").await;
    assert_eq!(none["notifications"], json!([]));
}

#[tokio::test]
async fn silences_are_added_listed_and_expired() {
    let api = Api::spawn(true).await;
    let new = json!({
        "matchers": ["alertname=Unreliable", "target=~t|u"],
        "duration": "2h",
        "comment": "known bad host",
        "createdBy": "ops"
    });
    let (status, created) = api
        .call(
            Method::POST,
            "/api/v1/silences",
            "/api/v1/silences",
            Some(new),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["state"], "active");
    assert_eq!(created["startsAt"], "2026-01-01T00:00:00.000Z");
    assert_eq!(created["endsAt"], "2026-01-01T02:00:00.000Z");
    assert_eq!(
        created["matchers"],
        json!(["alertname=Unreliable", "target=~t|u"])
    );
    let id = created["id"].as_str().unwrap().to_string();

    let (_, listed) = api.get("/api/v1/silences", "").await;
    assert_eq!(listed["silences"], json!([created]));

    api.clock.set(at(secs(60)));
    let template = "/api/v1/silences/{id}";
    let path = format!("/api/v1/silences/{id}");
    let (status, body) = api.call(Method::DELETE, template, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"id": id, "expired": true}));
    let (_, listed) = api.get("/api/v1/silences", "").await;
    assert_eq!(listed["silences"], json!([]));
    let (_, listed) = api.get("/api/v1/silences", "?all=true").await;
    assert_eq!(listed["silences"][0]["state"], "expired");
    assert_eq!(listed["silences"][0]["endsAt"], "2026-01-01T00:01:00.000Z");
    let (status, _) = api.call(Method::DELETE, template, &path, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an expired silence cannot expire again"
    );

    // An end time instead of a duration.
    let (status, created) = api
        .call(
            Method::POST,
            "/api/v1/silences",
            "/api/v1/silences",
            Some(json!({"matchers": ["target=u"], "endsAt": "2026-01-02T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["createdBy"], "api");
}

#[tokio::test]
async fn a_bad_silence_is_400_naming_the_field() {
    let api = Api::spawn(false).await;
    for (body, parameter, message) in [
        (
            json!({"matchers": [], "duration": "1h"}),
            "matchers",
            "give at least one matcher",
        ),
        (
            json!({"matchers": ["team"], "duration": "1h"}),
            "matchers",
            "team",
        ),
        (
            json!({"matchers": ["a=b"]}),
            "duration",
            "give a duration or an end time",
        ),
        (
            json!({"matchers": ["a=b"], "duration": "0s"}),
            "duration",
            "must be longer than 0s",
        ),
        (
            json!({"matchers": ["a=b"], "duration": "soon"}),
            "duration",
            "soon",
        ),
        (
            json!({"matchers": ["a=b"], "duration": "1h", "endsAt": "2026-01-02T00:00:00Z"}),
            "duration",
            "not both",
        ),
        (
            json!({"matchers": ["a=b"], "endsAt": "2025-01-01T00:00:00Z"}),
            "endsAt",
            "must be after the start",
        ),
        (
            json!({"matchers": ["a=b"], "duration": "1h", "startsAt": "later"}),
            "startsAt",
            "`later` is not an RFC 3339 time",
        ),
        (
            json!({"matchers": ["a=b"], "duration": "1h", "author": "me"}),
            "body",
            "unknown field `author`",
        ),
        (json!(["a=b"]), "body", "not a silence"),
    ] {
        let (status, answer) = api
            .call(
                Method::POST,
                "/api/v1/silences",
                "/api/v1/silences",
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["parameter"], parameter, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(message),
            "{body}: {answer}"
        );
    }
    let (_, listed) = api.get("/api/v1/silences", "?all=true").await;
    assert_eq!(listed["silences"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn bad_parameters_are_400_naming_the_parameter() {
    let api = Api::spawn(false).await;
    api.run(0, 0).await;
    for (template, query, parameter, message) in [
        (
            "/api/v1/alerts",
            "?state=burning",
            "state",
            "`burning` is not one of inactive, pending, firing, resolved, all",
        ),
        (
            "/api/v1/alerts",
            "?since=yesterday",
            "since",
            "`yesterday` is neither an RFC 3339 time nor a duration",
        ),
        (
            "/api/v1/targets",
            "?all=true",
            "all",
            "unknown parameter `all`; this path takes no parameters",
        ),
        (
            "/api/v1/alerts",
            "?sate=firing",
            "sate",
            "unknown parameter `sate`; this path takes state, target, fingerprint, since",
        ),
        ("/api/v1/history", "?until=soon", "until", "soon"),
        (
            "/api/v1/history",
            "?limit=0",
            "limit",
            "`0` is not a whole number from 1 to 10000",
        ),
        (
            "/api/v1/history",
            "?limit=10001",
            "limit",
            "from 1 to 10000",
        ),
        (
            "/api/v1/history",
            "?worker=abc",
            "worker",
            "`abc` is not a whole number",
        ),
        ("/api/v1/history", "?cursor=bogus", "cursor", "not a cursor"),
        (
            "/api/v1/history",
            "?target=nope",
            "target",
            "no target `nope` is stored",
        ),
        (
            "/api/v1/notifications",
            "?status=lost",
            "status",
            "`lost` is not one of pending, delivered, failed, all",
        ),
        (
            "/api/v1/notifications",
            "?limit=-1",
            "limit",
            "from 1 to 1000",
        ),
        (
            "/api/v1/silences",
            "?all=yes",
            "all",
            "`yes` is neither true nor false",
        ),
    ] {
        let (status, body) = api.get(template, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{template}{query}");
        assert_eq!(body["parameter"], parameter, "{template}{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(message),
            "{template}{query}: {body}"
        );
    }
}

#[tokio::test]
async fn reload_answers_with_the_service_verdict() {
    let api = Api::spawn(true).await;
    for (verdict, status) in [
        (Ok(()), StatusCode::OK),
        (
            Err(
                "/etc/vastwatch.yaml:3:5: unknown key `targts`; did you mean `targets`?"
                    .to_string(),
            ),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let answer = async {
            let reply = api
                .reloads
                .lock()
                .await
                .recv()
                .await
                .expect("a reload request");
            reply.send(verdict.clone()).expect("the handler waits");
        };
        let ((code, body), ()) = tokio::join!(
            api.call(Method::POST, "/-/reload", "/-/reload", None),
            answer
        );
        assert_eq!(code, status, "{body}");
        match &verdict {
            Ok(()) => assert_eq!(body, json!({"status": "reloaded"})),
            Err(message) => assert_eq!(body["error"], json!(message)),
        }
    }
    // With nobody left to answer, reload is unavailable rather than hanging.
    api.reloads.lock().await.close();
    let (code, _) = api.call(Method::POST, "/-/reload", "/-/reload", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn series_are_bucketed_averages_with_the_desired_capacity_line() {
    let api = Api::spawn(false).await;
    api.run(0, 170).await;
    let since = at(secs(0)).to_rfc3339();
    let until = at(secs(170)).to_rfc3339();
    let (status, body) = api
        .get(
            "/api/v1/series",
            &format!("?target=t&since={since}&until={until}&step=1m"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["step_seconds"], 60.0);
    let t0 = at(secs(0)).unix_secs_f64();
    assert_eq!(body["t"], json!([t0, t0 + 60.0, t0 + 120.0]));
    assert_eq!(body["polls"], json!([6, 6, 6]));
    assert_eq!(body["avg"]["ready"], json!([2.0, 2.0, 2.0]));
    assert_eq!(body["max"]["workers"], json!([2.0, 2.0, 2.0]));
    let target_util = body["target_util"].as_f64().unwrap();
    for (load, desired) in body["avg"]["load_rolling"]
        .as_array()
        .unwrap()
        .iter()
        .zip(body["desired_capacity"].as_array().unwrap())
    {
        let expected = load.as_f64().unwrap() / target_util;
        assert!(
            (desired.as_f64().unwrap() - expected).abs() < 1e-9,
            "{body}"
        );
    }
    // A week at one second would be 604 800 buckets: the step widens to fit 2000.
    let (_, body) = api
        .get("/api/v1/series", "?target=t&since=7d&step=1s")
        .await;
    assert_eq!(body["step_seconds"], 303.0);
    let polls: Vec<u64> = body["polls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert!(
        polls.len() <= 2 && polls.iter().sum::<u64>() == 18,
        "{polls:?}"
    );
    // Without a step, about 720 buckets over the range: 5 s over the default hour.
    let (_, body) = api.get("/api/v1/series", "?target=t").await;
    assert_eq!(body["step_seconds"], 5.0);
    assert_eq!(body["t"].as_array().unwrap().len(), 18);
}

#[tokio::test]
async fn alert_intervals_and_workers_show_what_fired_and_who_runs() {
    let api = Api::spawn(false).await;
    api.run(0, 170).await;
    let (status, body) = api
        .get("/api/v1/alerts/intervals", "?target=t&since=1h")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let intervals = body["intervals"].as_array().unwrap();
    assert_eq!(intervals.len(), 1, "{body}");
    assert_eq!(intervals[0]["alertname"], "Unreliable");
    assert_eq!(intervals[0]["worker_id"], "101");
    assert_eq!(intervals[0]["start_unix"], at(secs(70)).unix_secs_f64());
    assert_eq!(intervals[0]["end"], Value::Null, "still firing");
    // Target u has no alerts; an episode that ended before `since` is left out.
    let (_, body) = api
        .get("/api/v1/alerts/intervals", "?target=u&since=1h")
        .await;
    assert_eq!(body["intervals"], json!([]));

    let (status, body) = api.get("/api/v1/workers", "?target=t").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["polled_at"], at(secs(170)).to_rfc3339());
    let workers = body["workers"].as_array().unwrap();
    let ids: Vec<&str> = workers
        .iter()
        .map(|w| w["worker_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["101", "102"]);
    assert_eq!(workers[0]["reliability"], 0.5);
    assert_eq!(workers[0]["class"], "ready");
    // The simulator derates perf by reliability: 200 at 0.99.
    assert_eq!(workers[1]["perf"], 198.0);
    let (_, targets) = api.get("/api/v1/targets", "").await;
    let replace = &targets["targets"][0]["recommendation"]["replace"];
    for worker in workers {
        assert_eq!(
            worker["replace"],
            json!(replace.as_array().unwrap().contains(&worker["worker_id"])),
            "{worker}"
        );
    }
    assert_eq!(targets["targets"][0]["poll_interval_seconds"], 10.0);
}

#[tokio::test]
async fn chart_endpoints_name_the_parameter_at_fault() {
    let api = Api::spawn(false).await;
    api.run(0, 0).await;
    for (template, query, parameter) in [
        ("/api/v1/series", "", "target"),
        ("/api/v1/series", "?target=nope", "target"),
        ("/api/v1/series", "?target=t&step=soon", "step"),
        ("/api/v1/series", "?target=t&since=1m&until=2h", "since"),
        ("/api/v1/alerts/intervals", "?target=t&step=1m", "step"),
        ("/api/v1/workers", "?since=1h&target=t", "since"),
    ] {
        let (status, body) = api.get(template, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{template}{query}: {body}");
        assert_eq!(body["parameter"], parameter, "{template}{query}: {body}");
    }
}

#[tokio::test]
async fn the_page_and_its_assets_are_open_while_its_data_needs_the_token() {
    let api = Api::spawn(true).await;
    api.run(0, 0).await;
    let page = reqwest::get(format!("{}/", api.base)).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    for asset in ["page.js", "page.css", "uPlot.iife.min.js", "uPlot.min.css"] {
        assert!(html.contains(&format!("assets/{asset}")), "{asset}");
        let response = reqwest::get(format!("{}/assets/{asset}", api.base))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
    }
    let missing = reqwest::get(format!("{}/assets/nope.js", api.base))
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN"
    );
    for path in ["/api/v1/series?target=t", "/api/v1/workers?target=t"] {
        let response = reqwest::get(format!("{}{path}", api.base)).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn without_ha_the_status_is_a_single_leading_process() {
    let api = Api::spawn(false).await;
    let (status, body) = api.get("/api/v1/status", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "mode": "single",
            "replica": null,
            "role": "leader",
            "targets": null,
            "leader": null,
            "lease_renewed_at": null,
            "failover_seconds": null,
            "replicas": [],
        })
    );
}

#[tokio::test]
async fn every_documented_operation_is_exercised_by_these_tests() {
    // Keep this list in step with the tests above: it fails when the document gains an
    // operation no test checks against a real answer.
    let tested: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("/healthz", &["get"][..]),
        ("/readyz", &["get"][..]),
        ("/-/reload", &["post"][..]),
        ("/api/v1/status", &["get"][..]),
        ("/api/v1/targets", &["get"][..]),
        ("/api/v1/alerts", &["get"][..]),
        ("/api/v1/history", &["get"][..]),
        ("/api/v1/series", &["get"][..]),
        ("/api/v1/alerts/intervals", &["get"][..]),
        ("/api/v1/workers", &["get"][..]),
        ("/", &["get"][..]),
        ("/api/v1/notifications", &["get"][..]),
        ("/api/v1/silences", &["get", "post"][..]),
        ("/api/v1/silences/{id}", &["delete"][..]),
    ]);
    for (path, method) in Spec::load().operations() {
        assert!(
            tested
                .get(path.as_str())
                .is_some_and(|methods| methods.contains(&method.as_str())),
            "{method} {path} is documented but not tested"
        );
    }
}

#[tokio::test]
async fn the_health_command_asks_healthz_without_the_api_key() {
    let api = Api::spawn(false).await;
    let port = api.base.rsplit(':').next().unwrap().to_string();
    let base = api.base.clone();
    let dir = tempfile::TempDir::new().unwrap();
    let config = dir.path().join("vastwatch.yaml");
    std::fs::write(
        &config,
        format!("listen: 127.0.0.1:{port}\ntargets:\n  - name: t\n    endpoint: 1\n"),
    )
    .unwrap();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let results = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| {
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_vastwatch"))
                .args(args)
                .env_remove("VAST_API_KEY")
                .env_remove("VASTWATCH_CONFIG")
                .output()
                .expect("vastwatch runs");
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        };
        [
            run(&["health", "--url", &base]),
            run(&["health", "--config", config.to_str().unwrap()]),
            run(&["health", "--url", &closed]),
        ]
    })
    .await
    .unwrap();
    let [by_url, by_config, refused] = results;
    assert_eq!(by_url.0, Some(0), "{by_url:?}");
    assert!(by_url.1.contains("healthy"), "{by_url:?}");
    assert_eq!(
        by_config.0,
        Some(0),
        "no VAST_API_KEY needed: {by_config:?}"
    );
    assert_eq!(refused.0, Some(3), "{refused:?}");
    assert!(
        refused.2.contains("unhealthy") && refused.2.contains("did not answer"),
        "{refused:?}"
    );
}
