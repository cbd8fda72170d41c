//! Validated receivers (`notify.receivers` in the config, SPEC §8.1). Secrets are read from
//! the environment at load and held as [`Secret`]s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Secret;

/// Where notifications go.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// Unique among receivers; the `receiver` column and the payload's `receiver`.
    pub name: String,
    /// Whether resolutions are sent (default true).
    pub send_resolved: bool,
    pub kind: ReceiverKind,
}

#[derive(Debug, Clone)]
pub enum ReceiverKind {
    Webhook(WebhookReceiver),
    Email(EmailReceiver),
    Alertmanager(AlertmanagerReceiver),
    /// Readable lines on stdout.
    Console,
}

impl Receiver {
    /// The longest one attempt may take: the receiver's own timeout (a console write is
    /// immediate).
    pub fn attempt_timeout(&self) -> Duration {
        match &self.kind {
            ReceiverKind::Webhook(webhook) => webhook.timeout,
            ReceiverKind::Email(email) => email.timeout,
            ReceiverKind::Alertmanager(alertmanager) => alertmanager.timeout,
            ReceiverKind::Console => Duration::ZERO,
        }
    }
}

impl ReceiverKind {
    /// `webhook`, `email`, `alertmanager` or `console`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReceiverKind::Webhook(_) => "webhook",
            ReceiverKind::Email(_) => "email",
            ReceiverKind::Alertmanager(_) => "alertmanager",
            ReceiverKind::Console => "console",
        }
    }
}

/// `webhook:`. `Debug` shows the URL's host only: webhook paths often carry a token.
#[derive(Clone)]
pub struct WebhookReceiver {
    pub url: reqwest::Url,
    pub format: WebhookFormat,
    /// Signs requests as Standard Webhooks specifies when set.
    pub secret: Option<Secret>,
    pub timeout: Duration,
    /// Extra request headers.
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// Alertmanager's webhook v4 JSON plus the `vastwatch` key.
    Alertmanager,
    /// `{"text": ..., "blocks": [...]}`.
    Slack,
}

/// `email:`
#[derive(Debug, Clone)]
pub struct EmailReceiver {
    /// The SMTP server's host name (also the name its certificate must carry).
    pub host: String,
    pub port: u16,
    pub tls: EmailTls,
    /// Both or neither: SMTP AUTH credentials.
    pub username: Option<Secret>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    /// A PEM file of CA certificates trusted in addition to the system's.
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTls {
    /// Plain connection upgraded with STARTTLS (required, not opportunistic).
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
    /// No encryption, for a local relay.
    None,
}

/// `alertmanager:` an existing Alertmanager that vastwatch posts alerts to.
#[derive(Clone)]
pub struct AlertmanagerReceiver {
    /// Alertmanager's base URL; vastwatch posts to `{url}/api/v2/alerts`.
    pub url: reqwest::Url,
    pub timeout: Duration,
    pub headers: BTreeMap<String, String>,
}

impl std::fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookReceiver")
            .field("url", &crate::config::redacted_url(&self.url))
            .field("format", &self.format)
            .field("secret", &self.secret)
            .field("timeout", &self.timeout)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl std::fmt::Debug for AlertmanagerReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertmanagerReceiver")
            .field("url", &crate::config::redacted_url(&self.url))
            .field("timeout", &self.timeout)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_webhook_paths_and_header_values() {
        let webhook = WebhookReceiver {
            url: "https://hooks.slack.com/services/T000/B000/SECRETTOKEN"
                .parse()
                .unwrap(),
            format: WebhookFormat::Slack,
            secret: Some(Secret::new("whsec_c2VjcmV0")),
            timeout: Duration::from_secs(5),
            headers: [("Authorization".to_string(), "Bearer tok-123".to_string())].into(),
        };
        let shown = format!("{webhook:?}");
        assert!(shown.contains("https://hooks.slack.com/…"), "{shown}");
        for secret in ["SECRETTOKEN", "whsec_", "tok-123"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
