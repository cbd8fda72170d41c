//! `email:` receivers: one SMTP conversation per attempt through `lettre`, over required
//! STARTTLS, implicit TLS or (for a local relay) plain TCP.
//!
//! The mail is multipart/alternative: a text/plain part (the console rendering) for
//! terminals and filters, and an HTML part for mail clients. Everything that comes from
//! labels and annotations is HTML-escaped. The Message-ID is derived from the notification
//! id, so a retried attempt the server already accepted is recognisable as a duplicate.
//! The Date header is the clock's `now`, not the system time.
//!
//! TLS verifies the server against the system's roots (the same platform verifier reqwest
//! uses) plus, when `ca_file` is set, the CAs in that PEM file.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

use super::super::message::{AlertStatus, Message};
use super::super::receiver::{EmailReceiver, EmailTls};
use super::{Outcome, USER_AGENT, text};
use crate::time::{Timestamp, format_duration};

/// Sends one message by SMTP. `timeout` bounds the whole attempt, as it does a webhook's.
pub(super) async fn send_email(
    email: &EmailReceiver,
    notification_id: &str,
    message: &Message,
    now: Timestamp,
) -> Outcome {
    let mail = match build_mail(email, notification_id, message, now) {
        Ok(mail) => mail,
        Err(outcome) => return outcome,
    };
    let transport = match build_transport(email) {
        Ok(transport) => transport,
        Err(outcome) => return outcome,
    };
    match tokio::time::timeout(email.timeout, transport.send(mail)).await {
        Err(_elapsed) => Outcome::retry(format!(
            "no answer within {} (timeout)",
            format_duration(email.timeout)
        )),
        Ok(Ok(response)) => Outcome::Delivered {
            detail: format!(
                "SMTP {} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            ),
        },
        Ok(Err(error)) => classify_smtp_error(&error),
    }
}

/// SMTP 4xx, timeouts, network, TLS and connection errors may pass; 5xx and client-side
/// errors (no common AUTH mechanism, no STARTTLS offered) will not.
fn classify_smtp_error(error: &lettre::transport::smtp::Error) -> Outcome {
    let text = format!("SMTP: {error}");
    if error.is_permanent() || error.is_client() {
        Outcome::failed(text)
    } else {
        Outcome::retry(text)
    }
}

fn build_transport(email: &EmailReceiver) -> Result<AsyncSmtpTransport<Tokio1Executor>, Outcome> {
    let tls = match email.tls {
        EmailTls::None => Tls::None,
        EmailTls::Starttls => Tls::Required(tls_parameters(email)?),
        EmailTls::Tls => Tls::Wrapper(tls_parameters(email)?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(email.host.as_str())
        .port(email.port)
        .timeout(Some(email.timeout))
        .tls(tls);
    if let Some(username) = &email.username {
        let password = email
            .password
            .as_ref()
            .map_or(String::new(), |password| password.expose().to_string());
        builder = builder
            .credentials(Credentials::new(username.expose().to_string(), password))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    Ok(builder.build())
}

fn tls_parameters(email: &EmailReceiver) -> Result<TlsParameters, Outcome> {
    crate::poll::install_tls_provider();
    let mut builder = TlsParameters::builder(email.host.clone());
    if let Some(path) = &email.ca_file {
        let pem = std::fs::read(path).map_err(|error| {
            Outcome::failed(format!(
                "cannot read email.ca_file {}: {error}",
                path.display()
            ))
        })?;
        let certificate = Certificate::from_pem(&pem).map_err(|error| {
            Outcome::failed(format!(
                "email.ca_file {} holds no valid PEM certificates: {error}",
                path.display()
            ))
        })?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build_rustls()
        .map_err(|error| Outcome::failed(format!("cannot set up TLS: {error}")))
}

fn build_mail(
    email: &EmailReceiver,
    notification_id: &str,
    message: &Message,
    now: Timestamp,
) -> Result<lettre::Message, Outcome> {
    let from: Mailbox = email.from.parse().map_err(|error| {
        Outcome::failed(format!(
            "email.from `{}` is not a valid address: {error}",
            email.from
        ))
    })?;
    let mut builder = lettre::Message::builder()
        .message_id(Some(message_id(notification_id, &from)))
        .date(system_time(now))
        .user_agent(USER_AGENT.to_string())
        .from(from)
        .subject(one_line(&message.title()));
    for to in &email.to {
        let mailbox: Mailbox = to.parse().map_err(|error| {
            Outcome::failed(format!("email.to `{to}` is not a valid address: {error}"))
        })?;
        builder = builder.to(mailbox);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            text::render(message),
            render_html(message),
        ))
        .map_err(|error| Outcome::failed(format!("cannot build the email: {error}")))
}

/// A subject on one line. lettre encodes a line break safely (it cannot start a new
/// header), but mail clients show it badly.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|character| {
            if character.is_control() {
                ' '
            } else {
                character
            }
        })
        .collect()
}

/// `<{id}@{sender's domain}>`, with characters a Message-ID may not hold replaced.
fn message_id(notification_id: &str, from: &Mailbox) -> String {
    let local: String = notification_id
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() || matches!(character, '.' | '-' | '_') {
                character
            } else {
                '-'
            }
        })
        .collect();
    let local = local.trim_matches('.');
    let local = if local.is_empty() {
        "notification"
    } else {
        local
    };
    format!("<{local}.vastwatch@{}>", from.email.domain())
}

/// The Date header's time: `now`, clamped to what the header can show (the epoch up to
/// the end of year 9999; lettre's date formatting panics outside that range).
fn system_time(now: Timestamp) -> SystemTime {
    const LAST_MILLI_OF_9999: u64 = 253_402_300_799_999;
    let millis = u64::try_from(now.unix_millis())
        .unwrap_or(0)
        .min(LAST_MILLI_OF_9999);
    UNIX_EPOCH
        .checked_add(Duration::from_millis(millis))
        .unwrap_or(UNIX_EPOCH)
}

/// The HTML part: the same content as the text part, every value escaped.
fn render_html(message: &Message) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\n\
         <body style=\"font-family: sans-serif\">\n",
    );
    let _ = writeln!(out, "<h2>{}</h2>", escape(&message.title()));
    let _ = writeln!(
        out,
        "<p>Sent because: {}</p>",
        escape(message.vastwatch.reason.as_str())
    );
    for alert in &message.alerts {
        let color = match alert.status {
            AlertStatus::Firing => "#b00020",
            AlertStatus::Resolved => "#1b7f3b",
        };
        let _ = writeln!(
            out,
            "<h3><span style=\"color: {color}\">{}</span> {}</h3>",
            text::status_word(alert.status),
            escape(text::alert_name(alert))
        );
        let labels = text::label_pairs(alert);
        if !labels.is_empty() {
            let _ = writeln!(out, "<p><code>{}</code></p>", escape(&labels));
        }
        let _ = writeln!(out, "<p>{}</p>", escape(&text::alert_times(alert)));
        let annotations = text::ordered_annotations(alert);
        if !annotations.is_empty() {
            out.push_str("<dl>\n");
            for (name, value) in annotations {
                let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", escape(name), escape(value));
            }
            out.push_str("</dl>\n");
        }
    }
    for (target, recommendation) in &message.vastwatch.recommendations {
        let _ = writeln!(
            out,
            "<h3>Recommendation for {}</h3>\n<p><b>{}</b></p>\n<p>{}</p>",
            escape(target),
            escape(&text::recommendation_headline(recommendation)),
            escape(&recommendation.reason)
        );
        if !recommendation.replace.is_empty() {
            let _ = writeln!(
                out,
                "<p>Replace: {}</p>",
                escape(&recommendation.replace.join(", "))
            );
        }
        if !recommendation.commands.is_empty() {
            let _ = writeln!(
                out,
                "<pre>{}</pre>",
                escape(&recommendation.commands.join("\n"))
            );
        }
    }
    out.push_str("</body></html>\n");
    out
}

/// Text safe inside HTML elements and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}
