//! Delivery of one built [`Message`] to one [`Receiver`]: one attempt, one classified
//! [`Outcome`] (SPEC §8.2, §8.3).
//!
//! This is the edge of the notification pipeline. Routing, grouping, silences and the
//! durable outbox decide *what* to send and *when*; the delivery worker calls
//! [`Sender::send`] for each attempt and turns the [`Outcome`] into "done", "try again
//! later" or "give up". Keeping the attempt separate from the retry loop lets tests drive
//! every classification against real servers without timers, and keeps backoff policy in
//! one place (the worker).
//!
//! One [`Sender`] serves the whole daemon. It holds one `reqwest::Client`, so webhook and
//! Alertmanager requests reuse keep-alive connections and TLS sessions across attempts and
//! receivers; per-receiver timeouts are set per request. Email opens one SMTP connection
//! per attempt, as Alertmanager does: notifications by mail are few, and building the
//! transport per attempt picks up a rotated `ca_file` without a restart.
//!
//! Secrets never leave through errors: request errors are rendered without their URL
//! (webhook URLs such as Slack's carry a token in the path), and no error or `Debug`
//! output includes a signing secret, SMTP password or header value.

mod alertmanager;
mod email;
mod http;
mod sign;
mod slack;
mod text;

#[cfg(test)]
mod tests;

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::Instrument as _;

use super::message::Message;
use super::receiver::{Receiver, ReceiverKind};
use crate::time::Timestamp;

pub use alertmanager::ALERTMANAGER_RESEND;

/// What one delivery attempt came to (SPEC §8.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver accepted the message, e.g. `HTTP 200` or `SMTP 250 OK`.
    Delivered { detail: String },
    /// A failure that may pass: 408, 429, 5xx, a timeout, a connection error, an SMTP 4xx.
    /// `retry_after` is the receiver's own `Retry-After`, when it gave one.
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
    /// A failure that retrying will not fix: another 4xx, a 3xx (redirects are not
    /// followed; the error names the Location), an SMTP 5xx, a malformed address.
    Failed { error: String },
}

impl Outcome {
    fn retry(error: impl Into<String>) -> Self {
        Outcome::Retry {
            error: error.into(),
            retry_after: None,
        }
    }

    fn failed(error: impl Into<String>) -> Self {
        Outcome::Failed {
            error: error.into(),
        }
    }

    /// `delivered`, `retry` or `failed`, for logs and metrics labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// Where `console` receivers write.
#[derive(Clone)]
pub enum ConsoleOut {
    /// The process's standard output (`vastwatch demo`, `run` with a console receiver).
    Stdout,
    /// A buffer, for tests.
    Buffer(Arc<Mutex<Vec<u8>>>),
}

impl std::fmt::Debug for ConsoleOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsoleOut::Stdout => f.write_str("Stdout"),
            ConsoleOut::Buffer(_) => f.write_str("Buffer"),
        }
    }
}

/// The sender could not be built (TLS setup of the HTTP client).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the notification HTTP client: {0}")]
pub struct SendBuildError(String);

/// Delivers messages to receivers. Cheap to clone; one per daemon; any number of
/// [`send`](Sender::send)s may run at once through `&self`.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    console: ConsoleOut,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("console", &self.inner.console)
            .finish_non_exhaustive()
    }
}

/// `User-Agent` of every request and the mailer name of every email.
const USER_AGENT: &str = concat!("vastwatch/", env!("CARGO_PKG_VERSION"));

impl Sender {
    pub fn new(console: ConsoleOut) -> Result<Sender, SendBuildError> {
        let http = http::build_client().map_err(SendBuildError)?;
        Ok(Sender {
            inner: Arc::new(Inner { http, console }),
        })
    }

    /// One delivery attempt of `message` to `receiver`. Never panics and never fails
    /// outright: every problem is an [`Outcome`]. `notification_id` is the stable id of
    /// the notification (the `webhook-id` header, the basis of an email's Message-ID), the
    /// same on every retry; `now` is the clock's time of the attempt.
    pub async fn send(
        &self,
        receiver: &Receiver,
        notification_id: &str,
        message: &Message,
        now: Timestamp,
    ) -> Outcome {
        let span = tracing::debug_span!(
            "deliver",
            receiver = %receiver.name,
            kind = receiver.kind.as_str(),
            notification_id,
        );
        let outcome = async {
            match &receiver.kind {
                ReceiverKind::Webhook(webhook) => {
                    http::send_webhook(&self.inner.http, webhook, notification_id, message, now)
                        .await
                }
                ReceiverKind::Alertmanager(alertmanager) => {
                    http::send_alertmanager(&self.inner.http, alertmanager, message, now).await
                }
                ReceiverKind::Email(email) => {
                    email::send_email(email, notification_id, message, now).await
                }
                ReceiverKind::Console => self.write_console(message),
            }
        }
        .instrument(span.clone())
        .await;
        span.in_scope(|| match &outcome {
            Outcome::Delivered { detail } => tracing::debug!(%detail, "Notification delivered."),
            Outcome::Retry { error, .. } => {
                tracing::debug!(%error, "Notification attempt failed; it may be retried.");
            }
            Outcome::Failed { error } => tracing::debug!(%error, "Notification failed."),
        });
        outcome
    }

    fn write_console(&self, message: &Message) -> Outcome {
        let rendered = text::render(message);
        let written = match &self.inner.console {
            ConsoleOut::Stdout => {
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(rendered.as_bytes())
                    .and_then(|()| stdout.flush())
            }
            ConsoleOut::Buffer(buffer) => {
                // A test that panicked while holding the lock leaves a usable buffer.
                let mut buffer = buffer.lock().unwrap_or_else(|poison| poison.into_inner());
                buffer.extend_from_slice(rendered.as_bytes());
                Ok(())
            }
        };
        match written {
            Ok(()) => Outcome::Delivered {
                detail: "written to the console".to_string(),
            },
            Err(error) => Outcome::retry(format!("cannot write to stdout: {error}")),
        }
    }
}
