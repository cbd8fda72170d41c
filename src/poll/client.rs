//! The HTTP client for the Vast worker-list API. It sends the key as a bearer header only,
//! never follows redirects, bounds the body size, and maps every way a request can go
//! wrong to one of SPEC §4's failure kinds.

use std::error::Error as _;
use std::sync::Once;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::redirect::Policy;

use super::decode::{decode_worker_list, describe_error_body, preview};
use crate::config::{ApiConfig, Secret};
use crate::model::{FailureKind, PollFailure, PollResult, TargetKind};

/// A client for one Vast API base URL.
#[derive(Debug, Clone)]
pub struct VastClient {
    http: reqwest::Client,
    base_url: String,
    max_body: u64,
}

/// The HTTP client could not be built (TLS setup).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientBuildError(String);

/// Installs the process-wide TLS crypto provider once; every HTTP client needs it.
pub fn install_tls_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // An error means another provider is already installed, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl VastClient {
    pub fn new(api: &ApiConfig) -> Result<Self, ClientBuildError> {
        install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(api.timeout)
            .connect_timeout(api.timeout.min(Duration::from_secs(5)))
            .redirect(Policy::none())
            .user_agent(concat!("vastwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| ClientBuildError(error_chain(&error)))?;
        Ok(VastClient {
            http,
            base_url: api.base_url.clone(),
            max_body: api.max_body,
        })
    }

    /// Fetches one worker list. Never fails outright: every problem is a [`PollFailure`],
    /// whose message never quotes the key, even from an API that echoes the key it refused.
    pub async fn fetch(&self, kind: TargetKind, vast_id: i64, key: &Secret) -> PollResult {
        match self.fetch_body(kind, vast_id, key).await {
            Ok(body) => match decode_worker_list(&body) {
                Ok(list) => PollResult::Snapshot {
                    workers: list.workers,
                    notes: list.notes,
                },
                Err(failure) => PollResult::Failed(PollFailure {
                    http_status: Some(200),
                    message: String::from_utf8_lossy(&without_key(
                        failure.message.into_bytes(),
                        key,
                    ))
                    .into_owned(),
                    ..failure
                }),
            },
            Err(failure) => PollResult::Failed(failure),
        }
    }

    async fn fetch_body(
        &self,
        kind: TargetKind,
        vast_id: i64,
        key: &Secret,
    ) -> Result<Vec<u8>, PollFailure> {
        let url = format!("{}{}", self.base_url, kind.api_path());
        let request_body = serde_json::json!({ "id": vast_id }).to_string();
        let mut response = self
            .http
            .post(&url)
            .bearer_auth(key.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(request_body)
            .send()
            .await
            .map_err(|error| transport_failure(&error))?;
        let status = response.status();
        if let Some(length) = response.content_length()
            && length > self.max_body
        {
            return Err(PollFailure {
                kind: FailureKind::Decode,
                message: format!(
                    "body of {length} bytes exceeds the limit of {} bytes (api.max_body)",
                    self.max_body
                ),
                http_status: Some(status.as_u16()),
            });
        }
        let mut body = Vec::new();
        loop {
            let chunk = response.chunk().await.map_err(|error| PollFailure {
                http_status: Some(status.as_u16()),
                ..transport_failure(&error)
            })?;
            let Some(chunk) = chunk else { break };
            if (body.len() + chunk.len()) as u64 > self.max_body {
                return Err(PollFailure {
                    kind: FailureKind::Decode,
                    message: format!(
                        "body exceeds the limit of {} bytes (api.max_body)",
                        self.max_body
                    ),
                    http_status: Some(status.as_u16()),
                });
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return Ok(body);
        }
        Err(status_failure(
            status,
            &without_key(body, key),
            response.headers(),
        ))
    }
}

/// `text` with every copy of the key replaced by `[redacted]`, so that an error message
/// quoting a body cannot carry it. Only bodies that are quoted are searched: a failed
/// status's (before it is cut short for the message), or the message about a body that did
/// not decode.
fn without_key(text: Vec<u8>, key: &Secret) -> Vec<u8> {
    let key = key.expose().as_bytes();
    if key.is_empty() || !text.windows(key.len()).any(|window| window == key) {
        return text;
    }
    let mut redacted = Vec::with_capacity(text.len());
    let mut rest = text.as_slice();
    while let Some(at) = rest.windows(key.len()).position(|window| window == key) {
        redacted.extend_from_slice(&rest[..at]);
        redacted.extend_from_slice(b"[redacted]");
        rest = &rest[at + key.len()..];
    }
    redacted.extend_from_slice(rest);
    redacted
}

fn status_failure(
    status: StatusCode,
    body: &[u8],
    headers: &reqwest::header::HeaderMap,
) -> PollFailure {
    let code = status.as_u16();
    let (kind, message) = match code {
        429 => (
            FailureKind::RateLimited,
            format!("HTTP 429: {}", preview(body)),
        ),
        401 => (
            FailureKind::ApiError,
            format!("HTTP 401: {}", describe_error_body(body)),
        ),
        300..=399 => {
            let location = headers
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("(none)");
            (
                FailureKind::HttpStatus,
                format!("HTTP {code}: redirect to {location} not followed"),
            )
        }
        _ => (
            FailureKind::HttpStatus,
            format!("HTTP {code}: {}", describe_error_body(body)),
        ),
    };
    PollFailure {
        kind,
        message,
        http_status: Some(code),
    }
}

fn transport_failure(error: &reqwest::Error) -> PollFailure {
    let kind = if error.is_timeout() {
        FailureKind::Timeout
    } else if error.is_connect() {
        FailureKind::Connect
    } else if error.is_body() || error.is_decode() {
        FailureKind::Decode
    } else {
        FailureKind::Connect
    };
    PollFailure {
        kind,
        message: error_chain(error),
        http_status: None,
    }
}

/// The error and its causes in one line, without the request URL (which could carry
/// credentials a user wrote into `api.base_url`, or a webhook's token).
pub(crate) fn error_chain(error: &reqwest::Error) -> String {
    let mut message = match error.url() {
        Some(_) => {
            let mut without_url = String::new();
            let text = error.to_string();
            // reqwest renders "... for url (URL)"; cut that part off.
            match text.find(" for url (") {
                Some(cut) => without_url.push_str(&text[..cut]),
                None => without_url.push_str(&text),
            }
            without_url
        }
        None => error.to_string(),
    };
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !message.contains(&cause_text) {
            message.push_str(": ");
            message.push_str(&cause_text);
        }
        source = cause.source();
    }
    message
}
