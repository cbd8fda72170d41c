//! HTTP deliveries: webhooks (Alertmanager or Slack format) and an existing Alertmanager's
//! API, through one shared client, with every answer classified as SPEC §8.3 says.
//!
//! Redirects are never followed: a receiver that moved is a configuration error to fix,
//! and following it would send a signed payload somewhere nobody configured.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::redirect::Policy;

use super::super::message::Message;
use super::super::receiver::{AlertmanagerReceiver, WebhookFormat, WebhookReceiver};
use super::{Outcome, USER_AGENT, alertmanager, sign, slack};
use crate::config::redacted_url;
use crate::poll::error_chain;
use crate::time::{Timestamp, format_duration};

/// How much of a response body is read for an error message; the rest is dropped.
const MAX_BODY_READ: usize = 16 * 1024;
/// How many characters of a response body an error message quotes.
const MAX_BODY_QUOTE: usize = 200;
/// Parts of a request shorter than this are not taken for secrets (see [`request_secrets`]):
/// `/hook` or `v2` in an error stays readable, and a token is longer.
const MIN_SECRET_LEN: usize = 8;

/// The one client every HTTP delivery shares: keep-alive connections, no redirects.
pub(super) fn build_client() -> Result<reqwest::Client, String> {
    crate::poll::install_tls_provider();
    reqwest::Client::builder()
        .redirect(Policy::none())
        .user_agent(USER_AGENT)
        .build()
        .map_err(|error| error_chain(&error.without_url()))
}

/// POSTs `message` to a webhook in its format, with the Standard Webhooks headers.
pub(super) async fn send_webhook(
    http: &reqwest::Client,
    webhook: &WebhookReceiver,
    notification_id: &str,
    message: &Message,
    now: Timestamp,
) -> Outcome {
    let body = match webhook.format {
        WebhookFormat::Alertmanager => serde_json::to_vec(message),
        WebhookFormat::Slack => serde_json::to_vec(&slack::payload(message)),
    };
    let body = match body {
        Ok(body) => body,
        Err(error) => return Outcome::failed(format!("cannot encode the message: {error}")),
    };
    let mut headers = match configured_headers(&webhook.headers) {
        Ok(headers) => headers,
        Err(outcome) => return outcome,
    };
    let timestamp = now.unix_millis().div_euclid(1000);
    let Ok(id_value) = HeaderValue::from_str(notification_id) else {
        return Outcome::failed("the notification id is not a valid header value");
    };
    headers.insert(HeaderName::from_static("webhook-id"), id_value);
    headers.insert(
        HeaderName::from_static("webhook-timestamp"),
        HeaderValue::from(timestamp),
    );
    if let Some(secret) = &webhook.secret {
        let signature = match sign::signature(secret, notification_id, timestamp, &body) {
            Ok(signature) => signature,
            Err(error) => return Outcome::failed(error.to_string()),
        };
        // Base64 is always a valid header value; the error arm only keeps this panic-free.
        let Ok(mut value) = HeaderValue::from_str(&signature) else {
            return Outcome::failed("the webhook signature is not a valid header value");
        };
        value.set_sensitive(true);
        headers.insert(HeaderName::from_static("webhook-signature"), value);
    }
    post_json(
        http,
        webhook.url.clone(),
        headers,
        body,
        webhook.timeout,
        now,
    )
    .await
}

/// POSTs the message's alerts to `{url}/api/v2/alerts` of an existing Alertmanager.
pub(super) async fn send_alertmanager(
    http: &reqwest::Client,
    receiver: &AlertmanagerReceiver,
    message: &Message,
    now: Timestamp,
) -> Outcome {
    let mut url = receiver.url.clone();
    match url.path_segments_mut() {
        Ok(mut segments) => {
            segments.pop_if_empty().extend(["api", "v2", "alerts"]);
        }
        Err(()) => return Outcome::failed("the Alertmanager URL cannot take a path"),
    }
    let body = match serde_json::to_vec(&alertmanager::postable_alerts(message, now)) {
        Ok(body) => body,
        Err(error) => return Outcome::failed(format!("cannot encode the alerts: {error}")),
    };
    let headers = match configured_headers(&receiver.headers) {
        Ok(headers) => headers,
        Err(outcome) => return outcome,
    };
    post_json(http, url, headers, body, receiver.timeout, now).await
}

/// The configured extra headers. Their values are marked sensitive (an `Authorization`
/// header is a secret), and an error names the header but never its value.
fn configured_headers(configured: &BTreeMap<String, String>) -> Result<HeaderMap, Outcome> {
    let mut headers = HeaderMap::with_capacity(configured.len() + 4);
    for (name, value) in configured {
        let Ok(header_name) = HeaderName::from_bytes(name.as_bytes()) else {
            return Err(Outcome::failed(format!(
                "the configured header name `{name}` is not a valid header name"
            )));
        };
        let Ok(mut header_value) = HeaderValue::from_str(value) else {
            return Err(Outcome::failed(format!(
                "the value of the configured header `{name}` is not a valid header value"
            )));
        };
        header_value.set_sensitive(true);
        headers.insert(header_name, header_value);
    }
    Ok(headers)
}

async fn post_json(
    http: &reqwest::Client,
    url: reqwest::Url,
    mut headers: HeaderMap,
    body: Vec<u8>,
    timeout: Duration,
    now: Timestamp,
) -> Outcome {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let secrets = request_secrets(&url, &headers);
    let sent = http
        .post(url)
        .headers(headers)
        .body(body)
        .timeout(timeout)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(error) => return transport_outcome(error, timeout),
    };
    let status = response.status();
    // Shown as scheme, host and port: a redirect keeps the path, and with it any token.
    let location = header_text(response.headers(), &LOCATION).map(|location| {
        response.url().join(&location).map_or_else(
            |_| "(a Location that is not a URL)".to_string(),
            |target| redacted_url(&target),
        )
    });
    let retry_after = header_text(response.headers(), &RETRY_AFTER)
        .and_then(|value| parse_retry_after(&value, now));
    // Reading the body lets the connection go back to the pool; its start explains errors.
    let body = read_body_start(response).await;
    let body = without_secrets(String::from_utf8_lossy(&body).into_owned(), &secrets);
    classify_status(status, location.as_deref(), retry_after, body.as_bytes())
}

/// The parts of a request that may be secret, at least [`MIN_SECRET_LEN`] characters
/// each: the URL's path, its segments and query values, its user and password (and their
/// basic-auth encoding), and the values of sensitive headers (configured ones and the
/// signature; the token alone too, after `Bearer `). A receiver's error page may echo the
/// request (`Cannot POST /services/T000/B000/XXXX`), so these are cut out of any answer
/// quoted in an error. Longest first, so a part that contains another goes whole.
fn request_secrets(url: &reqwest::Url, headers: &HeaderMap) -> Vec<String> {
    let mut parts = vec![
        url.path().to_string(),
        url.query().unwrap_or_default().to_string(),
        url.username().to_string(),
        url.password().unwrap_or_default().to_string(),
    ];
    if let Some(password) = url.password() {
        let credentials = format!("{}:{password}", url.username());
        parts.push(base64::engine::general_purpose::STANDARD.encode(credentials));
    }
    parts.extend(
        url.path_segments()
            .into_iter()
            .flatten()
            .map(str::to_string),
    );
    parts.extend(url.query_pairs().map(|(_, value)| value.into_owned()));
    parts.extend(
        headers
            .values()
            .filter(|value| value.is_sensitive())
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| [value, value.split_once(' ').map_or("", |(_, rest)| rest)])
            .map(str::to_string),
    );
    parts.retain(|part| part.chars().count() >= MIN_SECRET_LEN);
    parts.sort_by_key(|part| std::cmp::Reverse(part.len()));
    parts.dedup();
    parts
}

/// `text` with every one of `secrets` replaced by `[redacted]`.
fn without_secrets(mut text: String, secrets: &[String]) -> String {
    for secret in secrets {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "[redacted]");
        }
    }
    text
}

fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// Up to [`MAX_BODY_READ`] bytes of the body; a body that fails midway gives what arrived.
async fn read_body_start(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_BODY_READ {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY_READ - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// SPEC §8.3: 2xx delivered; 408, 429 and 5xx retried; 3xx and other 4xx failed.
fn classify_status(
    status: StatusCode,
    location: Option<&str>,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Outcome {
    let code = status.as_u16();
    match code {
        200..=299 => Outcome::Delivered {
            detail: format!("HTTP {code}"),
        },
        300..=399 => Outcome::failed(format!(
            "HTTP {code}: redirect to {} not followed",
            location.unwrap_or("(no Location header)")
        )),
        408 | 429 | 500..=599 => Outcome::Retry {
            error: with_body(code, body),
            retry_after,
        },
        _ => Outcome::failed(with_body(code, body)),
    }
}

fn with_body(code: u16, body: &[u8]) -> String {
    let quoted = quote_body(body);
    if quoted.is_empty() {
        format!("HTTP {code}")
    } else {
        format!("HTTP {code}: {quoted}")
    }
}

/// The start of a body on one line, for an error message.
fn quote_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut quoted = String::new();
    for (count, character) in text.trim().chars().enumerate() {
        if count == MAX_BODY_QUOTE {
            quoted.push('…');
            break;
        }
        quoted.push(if character.is_control() {
            ' '
        } else {
            character
        });
    }
    quoted
}

/// `Retry-After` as seconds or as an HTTP date (RFC 9110 §10.2.3); a date in the past
/// means "now".
fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = Timestamp::from_unix_millis(date.timestamp_millis());
    Some(at.duration_since(now))
}

/// A request that got no answer: a timeout or connection error is worth retrying; a
/// request that could not even be built is not.
fn transport_outcome(error: reqwest::Error, timeout: Duration) -> Outcome {
    let error = error.without_url();
    let chain = error_chain(&error);
    if error.is_builder() {
        Outcome::failed(format!("cannot build the request: {chain}"))
    } else if error.is_timeout() {
        Outcome::retry(format!(
            "no answer within {} (timeout): {chain}",
            format_duration(timeout)
        ))
    } else if error.is_connect() {
        Outcome::retry(format!("cannot connect: {chain}"))
    } else {
        Outcome::retry(chain)
    }
}
