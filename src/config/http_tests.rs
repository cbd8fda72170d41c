//! Config of the HTTP API: `listen`, `listen_token_env`, and `external_url`'s default.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;

const FILE: &str = "/etc/vastwatch/vastwatch.yaml";
const TARGETS: &str = "targets:\n  - name: a\n    endpoint: 1\n";

fn load(text: &str) -> Result<Config, String> {
    let env = BTreeMap::from([
        ("VAST_API_KEY".to_string(), "key-default".to_string()),
        ("API_TOKEN".to_string(), "token-s3cret".to_string()),
    ]);
    Config::parse(Path::new(FILE), &format!("{text}{TARGETS}"), &env).map_err(|e| e.to_string())
}

#[test]
fn listen_defaults_to_loopback_without_a_token_and_external_url_follows_it() {
    let config = load("").expect("valid config");
    assert_eq!(config.http.listen, Some("127.0.0.1:9469".parse().unwrap()));
    assert!(config.http.token.is_none());
    assert_eq!(config.notify.external_url, "http://127.0.0.1:9469");
    assert!(
        config
            .summary()
            .contains("http:      127.0.0.1:9469, no token\n")
    );
}

#[test]
fn listen_null_turns_the_server_off() {
    let config = load("listen: null\n").expect("valid config");
    assert_eq!(config.http.listen, None);
    assert!(config.summary().contains("http:      off (listen: null)\n"));
}

#[test]
fn a_public_address_with_a_token_loads_and_the_summary_never_shows_the_token() {
    let config = load("listen: 0.0.0.0:8080\nlisten_token_env: API_TOKEN\n").expect("valid config");
    assert_eq!(config.http.listen, Some("0.0.0.0:8080".parse().unwrap()));
    assert_eq!(
        config.http.token.as_ref().map(Secret::expose),
        Some("token-s3cret")
    );
    assert_eq!(config.notify.external_url, "http://0.0.0.0:8080");
    let summary = config.summary();
    assert!(summary.contains("http:      0.0.0.0:8080, bearer token required\n"));
    assert!(!summary.contains("token-s3cret") && !format!("{config:?}").contains("token-s3cret"));
}

#[test]
fn an_explicit_external_url_wins_over_the_listen_address() {
    let config = load("listen: \"[::1]:9000\"\nexternal_url: https://watch.example.com\n")
        .expect("valid config");
    assert_eq!(config.http.listen, Some("[::1]:9000".parse().unwrap()));
    assert_eq!(config.notify.external_url, "https://watch.example.com");
}

#[test]
fn mistakes_in_listen_keys_name_the_line_and_key() {
    for (text, expected) in [
        (
            "listen: 0.0.0.0:9469\n",
            "1:9: key `listen`: 0.0.0.0:9469 is not a loopback address, so the HTTP API needs a \
             bearer token; set `listen_token_env` to the environment variable that holds it",
        ),
        (
            "listen: localhost\n",
            "1:9: key `listen`: `localhost` is not a socket address; write e.g. 127.0.0.1:9469, \
             [::1]:9469 or 0.0.0.0:9469 (or null to turn the HTTP API off)",
        ),
        (
            "listen_token_env: NO_SUCH_TOKEN\n",
            "1:19: key `listen_token_env`: environment variable `NO_SUCH_TOKEN` is not set",
        ),
        (
            "listen_token: x\n",
            "1:1: unknown key `listen_token`; did you mean `listen_token_env`?",
        ),
    ] {
        assert_eq!(
            load(text).err(),
            Some(format!("{FILE}:{expected}")),
            "{text}"
        );
    }
}
