//! API keys never reach logs, output or the database, on success and failure paths alike.

use std::process::Command;

use vastwatch::clock::Clock;

use crate::helpers::*;

const SERVED_KEY: &str = "vastkey-SECRET-7d2e91c4b8";
const WRONG_KEY: &str = "vastkey-WRONG-0a9f33e6d1";

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// Asserts that no secret is in `output` or in any file of `dir` but the config and rules
/// (which name the variables, not the values).
fn assert_nowhere(secrets: &[&str], output: &[u8], dir: &std::path::Path) {
    for secret in secrets {
        assert!(
            !contains(output, secret),
            "{secret} leaked into output:\n{}",
            String::from_utf8_lossy(output)
        );
        for entry in std::fs::read_dir(dir).expect("list dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|ext| ext == "yaml") {
                continue;
            }
            let bytes = std::fs::read(&path).expect("read file");
            assert!(
                !contains(&bytes, secret),
                "{secret} leaked into {}",
                path.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_appear_in_no_log_line_output_or_database_byte() {
    let clock = Clock::manual(T0);
    let scenario =
        "name: s\nfleets:\n  - endpoint: 1\n    load: 10\n    workers: [{id: 1, perf: 100}]\n";
    let simulator = start_simulator(scenario, &clock, SERVED_KEY).await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    let targets = "  - name: good\n    endpoint: 1\n  - name: bad\n    endpoint: 1\n    api_key_env: WRONG_KEY_ENV\n  - name: unknown\n    endpoint: 404\n";
    let config = write_config(dir.path(), &simulator.base_url(), "", targets, "");

    let mut transcripts = Vec::new();
    for (args, format) in [
        (vec!["poll-once"], "human"),
        (vec!["poll-once"], "json"),
        (vec!["check"], "human"),
        (vec!["history", "--worker", "1"], "human"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_vastwatch"))
            .args(&args)
            .args(["--config", config.to_str().expect("utf-8")])
            .args(["--log-level", "trace", "--log-format", format])
            .env("TEST_VAST_KEY", SERVED_KEY)
            .env("WRONG_KEY_ENV", WRONG_KEY)
            .output()
            .expect("vastwatch runs");
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        transcripts.push(output.stdout);
        transcripts.push(output.stderr);
    }
    let joined: Vec<u8> = transcripts.concat();
    let text = String::from_utf8_lossy(&joined);
    assert!(text.contains("good: ok, 1 workers"), "{text}");
    assert!(
        text.contains("bad: api_error"),
        "the wrong key must fail: {text}"
    );
    assert!(text.contains("unknown: api_error"), "{text}");
    assert!(
        text.contains("TRACE") || text.contains("\"level\":\"TRACE\""),
        "trace logging was on"
    );
    assert_nowhere(&[SERVED_KEY, WRONG_KEY], &joined, dir.path());
    simulator.shutdown().await.expect("shutdown");
}

/// Webhook secrets, webhook URL tokens and SMTP passwords, on delivered and failed sends,
/// at trace level.
#[tokio::test(flavor = "multi_thread")]
async fn notification_secrets_appear_in_no_log_line_output_or_database_byte() {
    const HOOK_SECRET: &str = "whsec_U0VDUkVULWhvb2sta2V5LTk5";
    const URL_TOKEN: &str = "T0KEN-in-the-path-55aa";
    const SMTP_PASSWORD: &str = "smtp-PASSWORD-3c3c";
    let clock = Clock::real();
    let scenario = "name: s\nfleets:\n  - endpoint: 1\n    load: 10\n    workers: [{id: 1, perf: 100, reliability: 0.5}]\n";
    let simulator = start_simulator(scenario, &clock, TEST_KEY).await;
    let hook = crate::receiver::Receiver::start().await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    std::fs::write(
        dir.path().join("rules.yaml"),
        "rules:\n  - alert: Unreliable\n    scope: worker\n    expr: reliability < 0.9\n",
    )
    .unwrap();
    // One receiver that works, one whose server is gone, one mail server that is not there.
    let notify = format!(
        "rules: [rules.yaml]\nnotify:\n  receivers:\n    - name: ok\n      webhook: {{url: \"{}/{URL_TOKEN}\", secret_env: HOOK_SECRET}}\n    \
         - name: down\n      webhook: {{url: \"http://127.0.0.1:9/{URL_TOKEN}\", secret_env: HOOK_SECRET, format: slack}}\n    \
         - name: mail\n      email: {{smtp: \"127.0.0.1:9\", tls: none, username_env: SMTP_USER, password_env: SMTP_PASSWORD, from: a@example.com, to: [b@example.com]}}\n",
        hook.base_url()
    );
    let config = write_config(
        dir.path(),
        &simulator.base_url(),
        "",
        "  - name: t\n    endpoint: 1\n",
        &notify,
    );
    let mut transcripts = Vec::new();
    for args in [
        vec!["poll-once"],
        vec!["check"],
        vec!["notify", "test", "down"],
        vec!["notify", "test", "mail"],
        vec!["notifications", "--format", "json", "--payload"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_vastwatch"))
            .args(&args)
            .args(["--config", config.to_str().expect("utf-8")])
            .args(["--log-level", "trace"])
            .env("TEST_VAST_KEY", TEST_KEY)
            .env("HOOK_SECRET", HOOK_SECRET)
            .env("SMTP_USER", "mailer")
            .env("SMTP_PASSWORD", SMTP_PASSWORD)
            .output()
            .expect("vastwatch runs");
        transcripts.push(output.stdout);
        transcripts.push(output.stderr);
    }
    assert_eq!(
        hook.accepted().len(),
        1,
        "the working receiver got the alert"
    );
    let joined: Vec<u8> = transcripts.concat();
    let text = String::from_utf8_lossy(&joined);
    assert!(text.contains("not delivered"), "{text}");
    assert_nowhere(
        &[HOOK_SECRET, URL_TOKEN, SMTP_PASSWORD],
        &joined,
        dir.path(),
    );
    simulator.shutdown().await.expect("shutdown");
}

/// The HTTP API's bearer token and the Vast key stay out of the logs of a running daemon at
/// trace level, out of every API answer (right, wrong and missing token, reload, metrics)
/// and out of the database.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_token_appears_in_no_log_line_response_or_database_byte() {
    const API_TOKEN: &str = "apitoken-SECRET-5e6f7a8b";
    const WRONG_TOKEN: &str = "apitoken-WRONG-1b2c3d4e";
    let clock = Clock::real();
    let scenario =
        "name: s\nfleets:\n  - endpoint: 1\n    load: 10\n    workers: [{id: 1, perf: 100}]\n";
    let simulator = start_simulator(scenario, &clock, SERVED_KEY).await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    let config = write_config(
        dir.path(),
        &simulator.base_url(),
        "",
        "  - name: t\n    endpoint: 1\n",
        "listen_token_env: API_TOKEN_ENV\n",
    );
    poll_every_second(&config);
    let mut child = run_command(&config)
        .args(["--log-level", "trace"])
        .env("TEST_VAST_KEY", SERVED_KEY)
        .env("API_TOKEN_ENV", API_TOKEN)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn vastwatch run");
    let stderr = StderrLines::collect(&mut child);
    let address = stderr
        .api_address()
        .await
        .expect("the API address is logged");
    let database = dir.path().join("vastwatch.db");
    assert!(
        wait_until(std::time::Duration::from_secs(30), || async {
            database.exists()
        })
        .await
    );
    vastwatch::poll::install_tls_provider();
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for (method, path) in [
        ("GET", "/api/v1/targets"),
        ("GET", "/api/v1/alerts"),
        ("GET", "/api/v1/history"),
        ("GET", "/api/v1/notifications"),
        ("GET", "/api/v1/silences"),
        ("GET", "/api/v1/series?target=t"),
        ("GET", "/api/v1/alerts/intervals?target=t"),
        ("GET", "/api/v1/workers?target=t"),
        ("GET", "/"),
        ("GET", "/metrics"),
        ("GET", "/readyz"),
        ("POST", "/-/reload"),
    ] {
        for token in [None, Some(WRONG_TOKEN), Some(API_TOKEN)] {
            let url = format!("http://{address}{path}");
            let mut request = match method {
                "POST" => client.post(&url),
                _ => client.get(&url),
            };
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("the API answers");
            answers.push(format!("{:?}", response.headers()));
            answers.push(response.text().await.expect("body"));
        }
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(0));
    let mut everything = answers.join("\n").into_bytes();
    everything.extend(stderr.finish().into_bytes());
    everything.extend(output.stdout);
    assert!(
        String::from_utf8_lossy(&everything).contains("DEBUG"),
        "verbose logging was on"
    );
    assert_nowhere(
        &[API_TOKEN, WRONG_TOKEN, SERVED_KEY],
        &everything,
        dir.path(),
    );
    simulator.shutdown().await.expect("shutdown");
}
