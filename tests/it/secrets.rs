//! The secrets audit (docs/reliability.md, "Secrets audit"): every command and failure path
//! runs with distinctive secret values, and every output and log line (at trace level), every
//! byte of the database files, backups and reports, and every HTTP answer of the API and
//! the status page is searched for each secret and its obvious encodings.
//!
//! A new secret is one line in [`SECRETS`]; a new command, one line in [`COMMANDS`]; a new
//! way to break a config, one line in [`BROKEN_CONFIGS`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::CommandFactory as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use vastwatch::clock::Clock;

use crate::helpers::*;
use crate::receiver::{Answer, Receiver};

/// One secret the audit plants. `env` names the variable that carries it into every
/// command; a secret without one is written into the config itself (a URL's path or
/// password, a header value).
struct Planted {
    what: &'static str,
    env: Option<&'static str>,
    value: &'static str,
}

const VAST_KEY: Planted = Planted {
    what: "Vast API key",
    env: Some("TEST_VAST_KEY"),
    value: "vastkey-SECRET-7d2e91c4b8",
};
const WRONG_KEY: Planted = Planted {
    what: "a Vast API key the API refuses",
    env: Some("WRONG_KEY_ENV"),
    value: "vastkey+WRONG/0a9f33e6d1",
};
const HOOK_SECRET: Planted = Planted {
    what: "webhook signing secret",
    env: Some("HOOK_SECRET"),
    value: "whsec_U0VDUkVULWhvb2sta2V5LTk5",
};
const SMTP_USER: Planted = Planted {
    what: "SMTP user name",
    env: Some("SMTP_USER"),
    value: "mailer-0f1e",
};
const SMTP_PASSWORD: Planted = Planted {
    what: "SMTP password",
    env: Some("SMTP_PASSWORD"),
    value: "smtp-PASSWORD-3c3c",
};
const API_TOKEN: Planted = Planted {
    what: "HTTP API bearer token",
    env: Some("API_TOKEN_ENV"),
    value: "apitoken-SECRET-5e6f7a8b",
};
const WRONG_TOKEN: Planted = Planted {
    what: "a wrong bearer token a client presents",
    env: None,
    value: "apitoken-WRONG-1b2c3d4e",
};
const URL_TOKEN: Planted = Planted {
    what: "token in a webhook URL's path",
    env: None,
    value: "T0KEN-in-the-path-55aa",
};
const URL_USER: Planted = Planted {
    what: "user in a webhook URL",
    env: None,
    value: "hookuser",
};
const URL_PASSWORD: Planted = Planted {
    what: "password in a webhook URL",
    env: None,
    value: "hookPASS-77e1",
};
const HEADER_TOKEN: Planted = Planted {
    what: "a receiver's configured Authorization header",
    env: None,
    value: "hdrtoken-SECRET-19c0",
};

/// Every secret the audit looks for. The PostgreSQL password joins here (with its
/// variable) when that backend lands, and the audit then covers it everywhere.
const SECRETS: &[Planted] = &[
    VAST_KEY,
    WRONG_KEY,
    HOOK_SECRET,
    SMTP_PASSWORD,
    API_TOKEN,
    WRONG_TOKEN,
    URL_TOKEN,
    URL_PASSWORD,
    HEADER_TOKEN,
];

/// One form of one secret, as it could leak.
struct Needle {
    what: String,
    bytes: Vec<u8>,
}

/// Each secret as it is, percent-encoded, base64-encoded, and (a `whsec_` secret) decoded;
/// then the credentials that travel encoded together: HTTP basic auth's `user:password` and
/// SMTP AUTH PLAIN's `\0user\0password`.
fn needles() -> Vec<Needle> {
    let mut needles = Vec::new();
    for secret in SECRETS {
        let mut forms = vec![
            ("as is", secret.value.as_bytes().to_vec()),
            (
                "percent-encoded",
                percent_encoded(secret.value).into_bytes(),
            ),
            ("base64", STANDARD.encode(secret.value).into_bytes()),
        ];
        if let Some(encoded) = secret.value.strip_prefix("whsec_") {
            forms.push(("decoded", STANDARD.decode(encoded).expect("base64")));
        }
        forms.dedup_by(|a, b| a.1 == b.1);
        needles.extend(forms.into_iter().map(|(form, bytes)| Needle {
            what: format!("{} ({form})", secret.what),
            bytes,
        }));
    }
    let basic = format!("{}:{}", URL_USER.value, URL_PASSWORD.value);
    let plain = format!("\0{}\0{}", SMTP_USER.value, SMTP_PASSWORD.value);
    needles.push(Needle {
        what: "webhook URL credentials (basic auth)".into(),
        bytes: STANDARD.encode(basic).into_bytes(),
    });
    needles.push(Needle {
        what: "SMTP credentials (AUTH PLAIN)".into(),
        bytes: STANDARD.encode(plain).into_bytes(),
    });
    needles
}

fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The environment every command runs with: each secret that comes from a variable.
fn secret_env(command: &mut Command) -> &mut Command {
    for secret in SECRETS.iter().chain([&SMTP_USER]) {
        if let Some(variable) = secret.env {
            command.env(variable, secret.value);
        }
    }
    // `vastwatch simulate` reads its key from here; its help must not show it.
    command.env("VASTWATCH_SIM_API_KEY", VAST_KEY.value)
}

/// Everything the audit has seen, each with where it came from.
#[derive(Default)]
struct Audit {
    seen: Vec<(String, Vec<u8>)>,
}

impl Audit {
    fn record(&mut self, source: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.seen.push((source.into(), bytes.into()));
    }

    /// Every file under `dir` except the `inputs` the test wrote (the config names the
    /// variables and holds the URL and header secrets on purpose).
    fn record_files(&mut self, dir: &Path, inputs: &[PathBuf], when: &str) {
        for entry in std::fs::read_dir(dir).expect("list dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                self.record_files(&path, inputs, when);
            } else if !inputs.contains(&path) {
                // A -wal or -shm file may vanish between listing and reading.
                if let Ok(bytes) = std::fs::read(&path) {
                    self.record(format!("{} ({when})", path.display()), bytes);
                }
            }
        }
    }

    fn sources_named(&self, suffix: &str) -> usize {
        self.seen
            .iter()
            .filter(|(source, _)| source.contains(suffix))
            .count()
    }

    /// Everything seen, as text, for checking that the audited paths really ran.
    fn text(&self) -> String {
        self.seen
            .iter()
            .map(|(_, bytes)| String::from_utf8_lossy(bytes))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Fails naming every secret form found, where, with the text around it.
    fn assert_clean(&self) {
        let mut leaks = Vec::new();
        for needle in needles() {
            for (source, bytes) in &self.seen {
                if let Some(at) = find(bytes, &needle.bytes) {
                    let from = at.saturating_sub(120);
                    let to = (at + needle.bytes.len() + 120).min(bytes.len());
                    leaks.push(format!(
                        "{} in {source}: …{}…",
                        needle.what,
                        String::from_utf8_lossy(&bytes[from..to])
                    ));
                }
            }
        }
        assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n\n"));
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// An SMTP server on 127.0.0.1 that refuses every login with 535, as a server does when
/// the password is wrong. It speaks just enough SMTP for a client to get there.
async fn refusing_smtp_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 smtp.test ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.split_whitespace().next().unwrap_or("");
                    let answer: &[u8] = match verb.to_ascii_uppercase().as_str() {
                        "EHLO" => b"250-smtp.test\r\n250 AUTH PLAIN LOGIN\r\n",
                        "AUTH" => b"535 5.7.8 Authentication credentials invalid\r\n",
                        "QUIT" => b"221 bye\r\n",
                        _ => b"503 5.5.1 log in first\r\n",
                    };
                    if write.write_all(answer).await.is_err() || verb == "QUIT" {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// The scenario: endpoint 1 answers with an unreliable worker (so a rule fires and every
/// receiver is tried); endpoints 2 and 3 answer 401 and 500 with bodies that quote the
/// key, as an API's error page might.
fn scenario() -> String {
    let key = VAST_KEY.value;
    format!(
        "name: audit\nfleets:\n  - endpoint: 1\n    load: 10\n    workers: [{{id: 1, perf: 100, reliability: 0.5}}]\n  \
         - endpoint: 2\n    workers: [{{id: 2, perf: 100}}]\n    faults:\n      \
         - {{at: 0s, kind: unauthorized, message: 'key {key} was revoked'}}\n  \
         - endpoint: 3\n    workers: [{{id: 3, perf: 100}}]\n    faults:\n      \
         - {{at: 0s, kind: http_status, status: 500, body: 'upstream failed for Bearer {key}'}}\n"
    )
}

/// The targets: one good, one whose key the API refuses, two whose answers quote the key.
const TARGETS: &str = "  - name: good\n    endpoint: 1\n  - name: refused\n    endpoint: 1\n    api_key_env: WRONG_KEY_ENV\n  \
     - name: revoked\n    endpoint: 2\n  - name: upstream\n    endpoint: 3\n";

/// Receivers that work, redirect, echo their request, are down, refuse the SMTP login,
/// and carry a header token; every one is tried for every alert (there are no routes).
struct Receivers {
    ok: Receiver,
    redirect: Receiver,
    echo: Receiver,
    smtp_port: u16,
}

impl Receivers {
    async fn start() -> Receivers {
        let ok = Receiver::start().await;
        let redirect = Receiver::start().await;
        redirect.answer(Answer::Redirect(format!(
            "https://{}/{}",
            redirect.addr, URL_TOKEN.value
        )));
        let echo = Receiver::start().await;
        echo.answer(Answer::Echo(404));
        Receivers {
            ok,
            redirect,
            echo,
            smtp_port: refusing_smtp_server().await,
        }
    }

    /// The config's `rules:` and `notify:` (and `listen_token_env`).
    fn config(&self) -> String {
        let token = URL_TOKEN.value;
        let credentials = format!("{}:{}", URL_USER.value, URL_PASSWORD.value);
        let webhook = |name: &str, address: String, format: &str| {
            format!(
                "    - name: {name}\n      webhook: {{url: \"http://{credentials}@{address}/{token}?token={token}\", \
                 secret_env: HOOK_SECRET, format: {format}}}\n"
            )
        };
        format!(
            "listen_token_env: API_TOKEN_ENV\nrules: [rules.yaml]\nnotify:\n  group_wait: 1s\n  receivers:\n{}{}{}\
             {}    - name: mail\n      email: {{smtp: \"127.0.0.1:{}\", tls: none, username_env: SMTP_USER, \
             password_env: SMTP_PASSWORD, from: a@example.com, to: [b@example.com]}}\n    \
             - name: am\n      alertmanager: {{url: \"{}/{token}\", headers: {{Authorization: \"Bearer {}\"}}}}\n",
            webhook("ok", self.ok.addr.to_string(), "alertmanager"),
            webhook("redirect", self.redirect.addr.to_string(), "slack"),
            webhook("echo", self.echo.addr.to_string(), "alertmanager"),
            // Nothing listens on the discard port.
            webhook("down", "127.0.0.1:9".to_string(), "alertmanager"),
            self.smtp_port,
            self.echo.base_url(),
            HEADER_TOKEN.value,
        )
    }
}

/// What both audits of the scenario share: the simulator, the receivers, and a folder with
/// the config and its rule file (the `inputs`, which the audit does not search).
struct Setup {
    simulator: vastwatch::sim::RunningSimulator,
    receivers: Receivers,
    dir: tempfile::TempDir,
    config: PathBuf,
    inputs: Vec<PathBuf>,
}

impl Setup {
    async fn start(clock: Clock) -> Setup {
        let simulator = start_simulator(&scenario(), &clock, VAST_KEY.value).await;
        let receivers = Receivers::start().await;
        let dir = tempfile::TempDir::new().expect("temp dir");
        let rules = dir.path().join("rules.yaml");
        std::fs::write(
            &rules,
            "rules:\n  - alert: Unreliable\n    scope: worker\n    expr: reliability < 0.9\n",
        )
        .expect("rules");
        let config = write_config(
            dir.path(),
            &simulator.base_url(),
            "",
            TARGETS,
            &receivers.config(),
        );
        Setup {
            simulator,
            receivers,
            dir,
            inputs: vec![config.clone(), rules],
            config,
        }
    }
}

/// Every command of the CLI, as the audit runs it (split at spaces): `{config}` is the
/// config file, `{dir}` its folder, `{silence}` the id `silence add` printed, `{rule_tests}`
/// the shipped rules' unit tests, `{format}` the log format (each command runs with both). `--help` of every command is run besides, from the clap
/// definitions, and `simulate` and `health` in the running daemon's test.
const COMMANDS: &[&str] = &[
    "check --config {config}",
    "check --strict --config {config}",
    "poll-once --config {config}",
    "poll-once --config {config}",
    "history --config {config}",
    "history --worker 1 --format json --config {config}",
    "history --target revoked --format csv --config {config}",
    "alerts --format json --config {config}",
    "alerts --config {config}",
    "replay --config {config}",
    "advise --format json --config {config}",
    "notifications --config {config}",
    "notifications --payload --format json --config {config}",
    "silence add --match alertname=Unreliable --for 1h --comment audit --config {config}",
    "silence list --all --format json --config {config}",
    "silence expire {silence} --config {config}",
    "notify test ok --config {config}",
    "notify test redirect --config {config}",
    "notify test echo --config {config}",
    "notify test down --config {config}",
    "notify test mail --config {config}",
    "notify test am --config {config}",
    "db stats --format json --config {config}",
    "db backup {dir}/backup-{format}.db --config {config}",
    "report --target good --out {dir}/report-{format}.html --config {config}",
    "test {rule_tests}",
    "demo --duration 2s --speed 60 --dir {dir}/demo-{format} --listen 127.0.0.1:0",
    "completions bash",
    "man",
];

/// Ways to break a config next to its secrets: each is applied to the working config and
/// run through `check` and `poll-once`, which must refuse it without quoting a secret.
const BROKEN_CONFIGS: &[(&str, &str)] = &[
    // An unknown key beside the key's variable.
    (
        "api_key_env: TEST_VAST_KEY",
        "api_key_env: TEST_VAST_KEY\n  api_kye: x",
    ),
    // The key pasted where its variable's name belongs.
    (
        "api_key_env: TEST_VAST_KEY",
        "api_key_env: vastkey-SECRET-7d2e91c4b8",
    ),
    // A webhook written as a bare URL, not a map.
    (
        "  receivers:\n",
        "  receivers:\n    - name: bare\n      webhook: \"http://hookuser:hookPASS-77e1@127.0.0.1:9/T0KEN-in-the-path-55aa\"\n",
    ),
    // A URL with credentials that does not parse.
    ("@127.0.0.1:", "@[127.0.0.1:"),
    // A header value that is not a valid header.
    ("Authorization: \"Bearer ", "Authorization: \"\\x7fBearer "),
    // The API token's variable unset.
    (
        "listen_token_env: API_TOKEN_ENV",
        "listen_token_env: API_TOKEN_UNSET",
    ),
];

fn vastwatch(args: &[String]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vastwatch"));
    secret_env(command.args(args))
        .output()
        .expect("vastwatch runs")
}

/// Runs `args` at trace level with logs in `format`, recording stdout and stderr; returns
/// stdout. Every command succeeds but a test of a failing receiver.
fn run_logged(audit: &mut Audit, args: &[String], format: &str) -> String {
    let name = args.join(" ");
    let may_fail = name.starts_with("notify test") && !name.starts_with("notify test ok");
    let mut full = args.to_vec();
    full.extend(["--log-level", "trace", "--log-format", format].map(String::from));
    let output = vastwatch(&full);
    assert!(
        may_fail || output.status.success(),
        "`{name}` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    audit.record(format!("stdout of `{name}` ({format} logs)"), output.stdout);
    audit.record(format!("stderr of `{name}` ({format} logs)"), output.stderr);
    stdout
}

/// The path of every subcommand (`["db", "backup"]`, ...), from the clap definitions.
fn command_paths(command: &clap::Command, prefix: &[String], into: &mut Vec<Vec<String>>) {
    for sub in command.get_subcommands() {
        let mut path = prefix.to_vec();
        path.push(sub.get_name().to_string());
        command_paths(sub, &path, into);
        into.push(path);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_and_failure_path_keeps_every_secret_out_of_output_logs_and_files() {
    let Setup {
        simulator,
        receivers,
        dir,
        config,
        mut inputs,
    } = Setup::start(Clock::manual(T0)).await;
    let config_text = std::fs::read_to_string(&config).expect("config");
    let rule_tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/tests/vast_test.yaml");

    let mut audit = Audit::default();
    let mut silence = String::new();
    for format in ["human", "json"] {
        for template in COMMANDS {
            let args: Vec<String> = template
                .split_whitespace()
                .map(|arg| {
                    arg.replace("{config}", config.to_str().expect("utf-8"))
                        .replace("{dir}", dir.path().to_str().expect("utf-8"))
                        .replace("{silence}", &silence)
                        .replace("{format}", format)
                        .replace("{rule_tests}", rule_tests.to_str().expect("utf-8"))
                })
                .collect();
            let stdout = run_logged(&mut audit, &args, format);
            if template.starts_with("silence add") {
                silence = stdout.trim().to_string();
            }
        }
    }
    audit.record_files(dir.path(), &inputs, "after the commands");

    for (index, (working, broken)) in BROKEN_CONFIGS.iter().enumerate() {
        assert!(config_text.contains(working), "{working} is in the config");
        let path = dir.path().join(format!("broken-{index}.yaml"));
        std::fs::write(&path, config_text.replacen(working, broken, 1)).expect("write");
        inputs.push(path.clone());
        let path = path.to_str().expect("utf-8").to_string();
        for command in ["check", "poll-once"] {
            let args = [command, "--config", &path, "--log-level", "trace"];
            let output = vastwatch(&args.map(String::from));
            assert_eq!(output.status.code(), Some(2), "{broken} is refused");
            audit.record(
                format!("stderr of `{command}` on `{broken}`"),
                output.stderr,
            );
        }
    }

    let mut paths = Vec::new();
    command_paths(&vastwatch::cli::Cli::command(), &[], &mut paths);
    assert!(paths.len() > 20, "{paths:?}");
    for mut path in paths {
        path.push("--help".into());
        let output = vastwatch(&path);
        audit.record(format!("`{}`", path.join(" ")), output.stdout);
    }

    // The audited paths really ran.
    let text = audit.text();
    for expected in [
        "TRACE",
        "\"level\":\"TRACE\"",
        "refused: api_error",
        "revoked: api_error",
        "upstream: http_status",
        "HTTP 301",
        "HTTP 404",
        "535",
        "not delivered",
    ] {
        assert!(text.contains(expected), "`{expected}` in the transcripts");
    }
    assert!(
        !receivers.ok.accepted().is_empty(),
        "the working receiver got the alert"
    );
    for file in ["vastwatch.db", "backup-json.db", "report-human.html"] {
        assert!(audit.sources_named(file) > 0, "{file} was written and read");
    }
    audit.assert_clean();
    simulator.shutdown().await.expect("shutdown");
}

/// A running daemon at trace level: its logs, every answer of the API and the status page
/// (with the right, a wrong and no token), `health`, the database files while it runs
/// (WAL included), and a reload of a broken config by SIGHUP and by `POST /-/reload`.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_daemon_keeps_every_secret_out_of_logs_answers_and_database_files() {
    let Setup {
        simulator,
        receivers,
        dir,
        config,
        inputs,
    } = Setup::start(Clock::real()).await;
    poll_every_second(&config);
    let mut command = run_command(&config);
    let mut child = secret_env(command.args(["--log-level", "trace"]))
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
        wait_until(Duration::from_secs(30), || async {
            count_polls(&database).await >= 8 && !receivers.echo.received().is_empty()
        })
        .await,
        "the daemon polled and notified"
    );

    let mut audit = Audit::default();
    audit.record_files(dir.path(), &inputs, "while running");
    vastwatch::poll::install_tls_provider();
    let client = reqwest::Client::new();
    for (method, path) in [
        ("GET", "/api/v1/targets"),
        ("GET", "/api/v1/alerts"),
        ("GET", "/api/v1/history"),
        ("GET", "/api/v1/history?target=revoked"),
        ("GET", "/api/v1/notifications"),
        ("GET", "/api/v1/silences"),
        ("GET", "/api/v1/series?target=good"),
        ("GET", "/api/v1/alerts/intervals?target=good"),
        ("GET", "/api/v1/workers?target=good"),
        ("DELETE", "/api/v1/silences/no-such-silence"),
        ("GET", "/"),
        ("GET", "/assets/page.js"),
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("POST", "/-/reload"),
    ] {
        for token in [None, Some(WRONG_TOKEN.value), Some(API_TOKEN.value)] {
            let url = format!("http://{address}{path}");
            let mut request = match method {
                "POST" => client.post(&url),
                "DELETE" => client.delete(&url),
                _ => client.get(&url),
            };
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("the API answers");
            let source = format!("{method} {path} with token {token:?}");
            audit.record(
                format!("headers of {source}"),
                format!("{:?}", response.headers()),
            );
            audit.record(source, response.bytes().await.expect("body").to_vec());
        }
    }
    let health = vastwatch(&[
        "health".into(),
        "--url".into(),
        format!("http://{address}"),
        "--log-level".into(),
        "trace".into(),
    ]);
    assert!(health.status.success());
    audit.record("`health` stdout", health.stdout);
    audit.record("`health` stderr", health.stderr);

    // A broken config, reloaded both ways, is refused and logged without its secrets.
    let working = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        working.replacen(
            "api_key_env: TEST_VAST_KEY",
            "api_key_env: vastkey-SECRET-7d2e91c4b8",
            1,
        ),
    )
    .expect("break the config");
    let _ = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status();
    assert!(
        stderr
            .logged_field(
                "Reload failed; the previous config keeps running.",
                "cause="
            )
            .await
            .is_some(),
        "SIGHUP reloaded the broken config and failed"
    );
    let reload = client
        .post(format!("http://{address}/-/reload"))
        .bearer_auth(API_TOKEN.value)
        .send()
        .await
        .expect("reload answers");
    assert!(!reload.status().is_success(), "a broken config is refused");
    audit.record(
        "POST /-/reload of a broken config",
        reload.bytes().await.expect("body").to_vec(),
    );
    audit.record_files(dir.path(), &inputs, "after the reloads");

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(0));
    let log = stderr.finish();
    assert!(log.contains("TRACE"), "trace logging was on");
    assert_eq!(
        log.matches("Reload failed; the previous config keeps running.")
            .count(),
        2,
        "both reloads of the broken config failed: {log}"
    );
    audit.record("`run` stderr", log);
    audit.record("`run` stdout", output.stdout);
    audit.record_files(dir.path(), &inputs, "after shutdown");
    assert!(
        audit.sources_named("vastwatch.db-wal (while running)") > 0,
        "the WAL was read"
    );
    audit.assert_clean();
    simulator.shutdown().await.expect("shutdown");
}

/// `vastwatch simulate` with its key from `VASTWATCH_SIM_API_KEY`, at trace level, asked
/// with the right key, a wrong one (as a header and in the body) and none.
#[tokio::test(flavor = "multi_thread")]
async fn the_simulator_keeps_its_key_out_of_logs_and_answers() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vastwatch"));
    let mut child = secret_env(command.args([
        "simulate",
        "--listen",
        "127.0.0.1:0",
        "--log-level",
        "trace",
    ]))
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("spawn vastwatch simulate");
    let stderr = StderrLines::collect(&mut child);
    let address = stderr
        .logged_field("Simulator listening.", "addr=")
        .await
        .expect("the simulator logs its address");
    let client = reqwest::Client::new();
    let url = format!("http://{address}/get_endpoint_workers/");
    let mut audit = Audit::default();
    for (header, body) in [
        (Some(VAST_KEY.value), r#"{"id": 101}"#.to_string()),
        (Some(WRONG_KEY.value), r#"{"id": 101}"#.to_string()),
        (
            None,
            format!(r#"{{"id": 101, "api_key": "{}"}}"#, WRONG_KEY.value),
        ),
        (None, r#"{"id": 101}"#.to_string()),
    ] {
        let mut request = client.post(&url).body(body);
        if let Some(key) = header {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("the simulator answers");
        let status = response.status().as_u16();
        let source = format!("simulator answer {status} to key {header:?}");
        audit.record(source, response.bytes().await.expect("body").to_vec());
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let output = child.wait_with_output().expect("wait");
    let log = stderr.finish();
    assert!(
        log.contains("Refused a request"),
        "the wrong keys were refused: {log}"
    );
    audit.record("`simulate` stderr", log);
    audit.record("`simulate` stdout", output.stdout);
    audit.assert_clean();
}
