//! The `notify:` section: the SPEC's example loads, and every mistake names its key.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::config::Config;
use crate::notify::{EmailTls, GroupBy, ReceiverKind, WebhookFormat};

fn env() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("VAST_API_KEY".to_string(), "key".to_string()),
        (
            "OPS_WEBHOOK_SECRET".to_string(),
            "whsec_c2VjcmV0".to_string(),
        ),
        ("SMTP_USER".to_string(), "mailer".to_string()),
        ("SMTP_PASSWORD".to_string(), "hunter2-smtp".to_string()),
    ])
}

fn load(notify: &str) -> Result<Config, String> {
    let text = format!("targets:\n  - name: prod\n    endpoint: 1\n{notify}");
    Config::parse(Path::new("/etc/vastwatch/vastwatch.yaml"), &text, &env())
        .map_err(|e| e.to_string())
}

const SPEC_EXAMPLE: &str = r#"
external_url: http://vastwatch.internal:9469/
notify:
  group_by: [alertname, target]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 4h
  receivers:
    - name: ops
      webhook:
        url: https://hooks.example.com/vast
        format: alertmanager
        secret_env: OPS_WEBHOOK_SECRET
        timeout: 10s
        headers: {X-Team: ml}
        send_resolved: true
    - name: oncall
      email:
        smtp: smtp.example.com:587
        tls: starttls
        username_env: SMTP_USER
        password_env: SMTP_PASSWORD
        from: vastwatch@example.com
        to: [oncall@example.com]
    - name: am
      alertmanager: {url: "http://alertmanager:9093"}
    - name: chat
      send_resolved: false
      webhook: {url: "https://hooks.slack.example/T000/B000/XXXX", format: slack}
    - name: console
      console: {}
  routes:
    - match: {severity: critical}
      receivers: [oncall, ops]
      group_by: [target]
    - matchers: ["team=~ml|infra", "target!=dev"]
      receivers: [chat, am]
      continue: true
      repeat_interval: 1h
    - receivers: [ops, console]
  inhibit:
    - source: {alertname: VastwatchTargetDown}
      target_matchers: ["alertname!=VastwatchTargetDown"]
      equal: [target]
  max_age: 12h
"#;

#[test]
fn the_spec_example_loads() {
    let config = load(SPEC_EXAMPLE).expect("valid");
    let notify = &config.notify;
    assert_eq!(notify.external_url, "http://vastwatch.internal:9469");
    assert_eq!(notify.max_age, Duration::from_secs(12 * 3600));
    assert_eq!(notify.receivers.len(), 5);
    let ReceiverKind::Webhook(ops) = &notify.receivers[0].kind else {
        panic!("ops is a webhook");
    };
    assert_eq!(ops.format, WebhookFormat::Alertmanager);
    assert_eq!(ops.secret.as_ref().unwrap().expose(), "whsec_c2VjcmV0");
    assert_eq!(ops.headers.get("X-Team").unwrap(), "ml");
    let ReceiverKind::Email(email) = &notify.receivers[1].kind else {
        panic!("oncall is email");
    };
    assert_eq!(
        (email.host.as_str(), email.port, email.tls),
        ("smtp.example.com", 587, EmailTls::Starttls)
    );
    assert_eq!(email.password.as_ref().unwrap().expose(), "hunter2-smtp");
    assert!(!notify.receivers[3].send_resolved);
    assert!(notify.receivers[0].send_resolved);
    assert_eq!(notify.routes.len(), 3);
    assert_eq!(
        notify.routes[0].group_by,
        GroupBy::Labels(vec!["target".into()])
    );
    assert_eq!(notify.routes[0].timing.group_wait, Duration::from_secs(10));
    assert_eq!(
        notify.routes[1].timing.repeat_interval,
        Duration::from_secs(3600)
    );
    assert_eq!(
        notify.routes[2].timing.repeat_interval,
        Duration::from_secs(4 * 3600)
    );
    assert!(notify.routes[1].continue_);
    // The built-in rule plus the configured copy of it.
    assert_eq!(notify.inhibit.len(), 2);
    // Secrets never reach the summary.
    let summary = config.summary();
    assert!(!summary.contains("whsec_"), "{summary}");
    assert!(!summary.contains("XXXX"), "{summary}");
    assert!(
        summary.contains("ops (webhook alertmanager to https://hooks.example.com/…, signed)"),
        "{summary}"
    );
}

#[test]
fn without_routes_every_receiver_gets_everything() {
    let config = load("notify:\n  receivers:\n    - name: a\n      console: {}\n    - name: b\n      console: {}\n").unwrap();
    assert_eq!(config.notify.routes.len(), 1);
    assert_eq!(config.notify.routes[0].receivers, vec!["a", "b"]);
    assert!(config.notify.routes[0].matchers.is_empty());
    // Alertmanager's default timings.
    assert_eq!(
        config.notify.routes[0].timing.group_wait,
        Duration::from_secs(30)
    );
    assert_eq!(
        config.notify.routes[0].timing.group_interval,
        Duration::from_secs(300)
    );
}

#[test]
fn the_builtin_inhibit_rule_can_be_turned_off() {
    assert_eq!(load("").unwrap().notify.inhibit.len(), 1);
    let off = load("notify:\n  inhibit_target_down: false\n").unwrap();
    assert!(off.notify.inhibit.is_empty());
}

#[test]
fn mistakes_name_the_line_and_the_key() {
    let cases = [
        (
            "notify:\n  receivers:\n    - name: a\n      webhok: {url: http://x}\n",
            &["yaml:7:", "webhok", "webhook"][..],
        ),
        (
            "notify:\n  receivers:\n    - name: a\n      console: {}\n  routes:\n    - receivers: [b]\n",
            &[
                "yaml:9:",
                "notify.routes[0].receivers",
                "no receiver is named `b`",
            ],
        ),
        (
            "notify:\n  receivers:\n    - name: a\n      webhook: {url: \"ftp://x\"}\n",
            &["yaml:7:", "notify.receivers[a].webhook.url", "http"],
        ),
        (
            "notify:\n  receivers:\n    - name: a\n      webhook: {url: \"http://x\", secret_env: MISSING}\n",
            &["yaml:7:", "secret_env", "`MISSING` is not set"],
        ),
        (
            "notify:\n  receivers:\n    - name: a\n      console: {}\n  routes:\n    - matchers: [\"team=~(\"]\n      receivers: [a]\n",
            &["yaml:9:", "notify.routes[0].matchers", "bad regex"],
        ),
        (
            "notify:\n  receivers:\n    - name: a\n      email: {smtp: mail.example.com, from: a@b.c, to: [x@y.z]}\n",
            &["yaml:7:", "email.smtp", "host:port"],
        ),
        (
            "notify:\n  receivers:\n    - name: a\n      email: {smtp: \"m:25\", from: nobody, to: [x@y.z]}\n",
            &["yaml:7:", "email.from", "not an email address"],
        ),
        (
            "notify:\n  receivers:\n    - name: a\n      email: {smtp: \"m:25\", tls: ssl, from: a@b.c, to: [x@y.z]}\n",
            &["yaml:7:", "email.tls", "starttls"],
        ),
        (
            "notify:\n  receivers:\n    - name: a\n      console: {}\n      webhook: {url: \"http://x\"}\n",
            &["yaml:6:", "exactly one of"],
        ),
        (
            "notify:\n  receivers:\n    - name: a\n      console: {}\n    - name: a\n      console: {}\n",
            &["yaml:8:", "defined twice"],
        ),
        (
            "notify:\n  group_interval: 0s\n",
            &["yaml:5:", "notify.group_interval", "longer than 0s"],
        ),
        (
            "notify:\n  receivers:\n    - name: a\n      webhook: {url: \"http://x\", headers: {webhook-id: x}}\n",
            &["webhook.headers", "sets `webhook-id` itself"],
        ),
    ];
    for (notify, expected) in cases {
        let error = load(notify).expect_err(notify);
        for part in expected {
            assert!(
                error.contains(part),
                "{notify}\n=> {error}\n(missing `{part}`)"
            );
        }
        assert!(error.contains("/etc/vastwatch/vastwatch.yaml"), "{error}");
    }
}
