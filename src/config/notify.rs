//! Validation of the `notify:` section into [`NotifyConfig`]: receivers with their secrets
//! read from the environment, routes that name only defined receivers, matchers compiled.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::raw::{RawEmail, RawInhibit, RawNotify, RawReceiver, RawRoute};
use super::{FileError, Validator};
use crate::notify::matcher::{MatchOp, Matcher};
use crate::notify::{
    AlertmanagerReceiver, EmailReceiver, EmailTls, GroupBy, GroupTiming, InhibitRule, NotifyConfig,
    Receiver, ReceiverKind, Route, WebhookFormat, WebhookReceiver,
};

const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);

impl Validator<'_> {
    pub(super) fn notify(
        &self,
        raw: Option<&Spanned<RawNotify>>,
        external_url: Option<&Spanned<String>>,
        base_dir: &Path,
    ) -> Result<NotifyConfig, FileError> {
        let mut config = NotifyConfig::default();
        if let Some(url) = external_url {
            config.external_url = self.http_url(url, "external_url")?.to_string();
            config.external_url = config.external_url.trim_end_matches('/').to_string();
        }
        let Some(raw) = raw else {
            return Ok(config);
        };
        let notify = &raw.value;
        let defaults = GroupTiming::default();
        let timing = GroupTiming {
            group_wait: self.duration(
                notify.group_wait.as_ref(),
                "notify.group_wait",
                defaults.group_wait,
            )?,
            group_interval: self.positive_duration(
                notify.group_interval.as_ref(),
                "notify.group_interval",
                defaults.group_interval,
            )?,
            repeat_interval: self.positive_duration(
                notify.repeat_interval.as_ref(),
                "notify.repeat_interval",
                defaults.repeat_interval,
            )?,
        };
        let group_by = match &notify.group_by {
            Some(names) => self.group_by(names, "notify.group_by")?,
            None => GroupBy::default(),
        };
        let mut names = HashSet::new();
        for raw_receiver in &notify.receivers {
            let receiver = self.receiver(raw_receiver, base_dir)?;
            if !names.insert(receiver.name.clone()) {
                return Err(self.error(
                    &raw_receiver.value.name,
                    format!(
                        "key `name`: receiver `{}` is defined twice; names must be unique",
                        receiver.name
                    ),
                ));
            }
            config.receivers.push(receiver);
        }
        config.routes = match &notify.routes {
            Some(routes) => routes
                .iter()
                .enumerate()
                .map(|(index, route)| self.route(index, route, &names, &group_by, timing))
                .collect::<Result<_, _>>()?,
            None if config.receivers.is_empty() => Vec::new(),
            None => vec![Route::new(
                0,
                Vec::new(),
                config.receivers.iter().map(|r| r.name.clone()).collect(),
                false,
                group_by,
                timing,
            )],
        };
        if notify.inhibit_target_down == Some(false) {
            config.inhibit.clear();
        }
        for rule in &notify.inhibit {
            config.inhibit.push(self.inhibit(rule)?);
        }
        config.max_age =
            self.positive_duration(notify.max_age.as_ref(), "notify.max_age", config.max_age)?;
        Ok(config)
    }

    fn receiver(&self, raw: &Spanned<RawReceiver>, base_dir: &Path) -> Result<Receiver, FileError> {
        let receiver = &raw.value;
        let name = receiver.name.value.trim().to_string();
        if name.is_empty() {
            return Err(self.error(&receiver.name, "key `name`: a receiver needs a name"));
        }
        let key = |key: &str| format!("notify.receivers[{name}].{key}");
        let kinds = [
            receiver.webhook.is_some(),
            receiver.email.is_some(),
            receiver.alertmanager.is_some(),
            receiver.console.is_some(),
        ];
        if kinds.iter().filter(|kind| **kind).count() != 1 {
            return Err(self.error(
                raw,
                format!(
                    "receiver `{name}`: give exactly one of `webhook`, `email`, `alertmanager` or `console`"
                ),
            ));
        }
        let mut send_resolved = receiver.send_resolved.as_ref().map(|v| v.value);
        let mut inner_send_resolved = |value: &Option<Spanned<bool>>| {
            if let Some(value) = value {
                send_resolved = Some(value.value);
            }
        };
        let kind = if let Some(webhook) = &receiver.webhook {
            let webhook = &webhook.value;
            inner_send_resolved(&webhook.send_resolved);
            let format = match webhook.format.as_ref() {
                None => WebhookFormat::Alertmanager,
                Some(format) => match format.value.as_str() {
                    "alertmanager" => WebhookFormat::Alertmanager,
                    "slack" => WebhookFormat::Slack,
                    other => {
                        return Err(self.error(
                            format,
                            format!(
                                "key `{}`: `{other}` is not a format; use `alertmanager` or `slack`",
                                key("webhook.format")
                            ),
                        ));
                    }
                },
            };
            ReceiverKind::Webhook(WebhookReceiver {
                url: self.http_url(&webhook.url, &key("webhook.url"))?,
                format,
                secret: webhook
                    .secret_env
                    .as_ref()
                    .map(|env| self.secret(env, &key("webhook.secret_env")))
                    .transpose()?,
                timeout: self.positive_duration(
                    webhook.timeout.as_ref(),
                    &key("webhook.timeout"),
                    DEFAULT_SEND_TIMEOUT,
                )?,
                headers: self.headers(&webhook.headers, raw, &key("webhook.headers"))?,
            })
        } else if let Some(email) = &receiver.email {
            inner_send_resolved(&email.value.send_resolved);
            ReceiverKind::Email(self.email(&name, email, base_dir)?)
        } else if let Some(alertmanager) = &receiver.alertmanager {
            let alertmanager = &alertmanager.value;
            inner_send_resolved(&alertmanager.send_resolved);
            ReceiverKind::Alertmanager(AlertmanagerReceiver {
                url: self.http_url(&alertmanager.url, &key("alertmanager.url"))?,
                timeout: self.positive_duration(
                    alertmanager.timeout.as_ref(),
                    &key("alertmanager.timeout"),
                    DEFAULT_SEND_TIMEOUT,
                )?,
                headers: self.headers(&alertmanager.headers, raw, &key("alertmanager.headers"))?,
            })
        } else {
            if let Some(console) = &receiver.console {
                inner_send_resolved(&console.value.send_resolved);
            }
            ReceiverKind::Console
        };
        Ok(Receiver {
            name,
            send_resolved: send_resolved.unwrap_or(true),
            kind,
        })
    }

    fn email(
        &self,
        name: &str,
        raw: &Spanned<RawEmail>,
        base_dir: &Path,
    ) -> Result<EmailReceiver, FileError> {
        let email = &raw.value;
        let key = |key: &str| format!("notify.receivers[{name}].email.{key}");
        let (host, port) = email
            .smtp
            .value
            .trim()
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host.trim(), port.parse::<u16>().ok()?)))
            .filter(|(host, port)| !host.is_empty() && *port > 0)
            .ok_or_else(|| {
                self.error(
                    &email.smtp,
                    format!("key `{}`: write the server as host:port", key("smtp")),
                )
            })?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = match email.tls.as_ref() {
            None => EmailTls::Starttls,
            Some(tls) => match tls.value.as_str() {
                "starttls" => EmailTls::Starttls,
                "tls" => EmailTls::Tls,
                "none" => EmailTls::None,
                other => {
                    return Err(self.error(
                        tls,
                        format!(
                            "key `{}`: `{other}` is not a mode; use `starttls`, `tls` or `none`",
                            key("tls")
                        ),
                    ));
                }
            },
        };
        let username = email
            .username_env
            .as_ref()
            .map(|env| self.secret(env, &key("username_env")))
            .transpose()?;
        let password = email
            .password_env
            .as_ref()
            .map(|env| self.secret(env, &key("password_env")))
            .transpose()?;
        if username.is_some() != password.is_some() {
            return Err(self.error(
                raw,
                format!(
                    "receiver `{name}`: give both `username_env` and `password_env`, or neither"
                ),
            ));
        }
        let address = |text: &Spanned<String>, field: &str| -> Result<String, FileError> {
            let value = text.value.trim();
            if !is_plausible_address(value) {
                return Err(self.error(
                    text,
                    format!("key `{}`: `{value}` is not an email address", key(field)),
                ));
            }
            Ok(value.to_string())
        };
        let from = address(&email.from, "from")?;
        if email.to.value.is_empty() {
            return Err(self.error(
                &email.to,
                format!("key `{}`: name at least one recipient", key("to")),
            ));
        }
        let mut to = Vec::new();
        for recipient in &email.to.value {
            if !is_plausible_address(recipient.trim()) {
                return Err(self.error(
                    &email.to,
                    format!("key `{}`: `{recipient}` is not an email address", key("to")),
                ));
            }
            to.push(recipient.trim().to_string());
        }
        let ca_file = match &email.ca_file {
            Some(path) => {
                let resolved = base_dir.join(&path.value);
                if !resolved.is_file() {
                    return Err(self.error(
                        path,
                        format!(
                            "key `{}`: `{}` does not exist",
                            key("ca_file"),
                            resolved.display()
                        ),
                    ));
                }
                Some(resolved)
            }
            None => None,
        };
        Ok(EmailReceiver {
            host,
            port,
            tls,
            username,
            password,
            from,
            to,
            ca_file,
            timeout: self.positive_duration(
                email.timeout.as_ref(),
                &key("timeout"),
                DEFAULT_SEND_TIMEOUT,
            )?,
        })
    }

    fn route(
        &self,
        index: usize,
        raw: &Spanned<RawRoute>,
        receivers: &HashSet<String>,
        group_by: &GroupBy,
        timing: GroupTiming,
    ) -> Result<Route, FileError> {
        let route = &raw.value;
        let key = |key: &str| format!("notify.routes[{index}].{key}");
        let mut matchers = Vec::new();
        for (name, value) in &route.match_ {
            let matcher = Matcher::new(name, MatchOp::Equal, value)
                .map_err(|message| self.error(raw, format!("key `{}`: {message}", key("match"))))?;
            matchers.push(matcher);
        }
        for text in &route.matchers {
            matchers.push(self.matcher(text, &key("matchers"))?);
        }
        if route.receivers.value.is_empty() {
            return Err(self.error(
                &route.receivers,
                format!("key `{}`: name at least one receiver", key("receivers")),
            ));
        }
        let mut names = Vec::new();
        for name in &route.receivers.value {
            if !receivers.contains(name.value.as_str()) {
                let known: Vec<&str> = receivers.iter().map(String::as_str).collect();
                let hint = super::suggest(&name.value, &known)
                    .map(|near| format!("; did you mean `{near}`?"))
                    .unwrap_or_default();
                return Err(self.error(
                    name,
                    format!(
                        "key `{}`: no receiver is named `{}`{hint}",
                        key("receivers"),
                        name.value
                    ),
                ));
            }
            names.push(name.value.clone());
        }
        let timing = GroupTiming {
            group_wait: self.duration(
                route.group_wait.as_ref(),
                &key("group_wait"),
                timing.group_wait,
            )?,
            group_interval: self.positive_duration(
                route.group_interval.as_ref(),
                &key("group_interval"),
                timing.group_interval,
            )?,
            repeat_interval: self.positive_duration(
                route.repeat_interval.as_ref(),
                &key("repeat_interval"),
                timing.repeat_interval,
            )?,
        };
        let group_by = match &route.group_by {
            Some(names) => self.group_by(names, &key("group_by"))?,
            None => group_by.clone(),
        };
        Ok(Route::new(
            index,
            matchers,
            names,
            route.continue_.unwrap_or(false),
            group_by,
            timing,
        ))
    }

    fn inhibit(&self, raw: &Spanned<RawInhibit>) -> Result<InhibitRule, FileError> {
        let rule = &raw.value;
        let side = |equal: &BTreeMap<String, String>,
                    matchers: &[Spanned<String>],
                    key: &str|
         -> Result<Vec<Matcher>, FileError> {
            let mut out = Vec::new();
            for (name, value) in equal {
                out.push(
                    Matcher::new(name, MatchOp::Equal, value).map_err(|message| {
                        self.error(raw, format!("key `notify.inhibit.{key}`: {message}"))
                    })?,
                );
            }
            for text in matchers {
                out.push(self.matcher(text, &format!("notify.inhibit.{key}_matchers"))?);
            }
            Ok(out)
        };
        let source = side(&rule.source, &rule.source_matchers, "source")?;
        let target = side(&rule.target, &rule.target_matchers, "target")?;
        if source.is_empty() || target.is_empty() {
            return Err(self.error(
                raw,
                "key `notify.inhibit`: a rule needs `source`/`source_matchers` and `target`/`target_matchers`",
            ));
        }
        Ok(InhibitRule {
            source,
            target,
            equal: rule.equal.clone(),
        })
    }

    fn matcher(&self, text: &Spanned<String>, key: &str) -> Result<Matcher, FileError> {
        Matcher::parse(&text.value)
            .map_err(|message| self.error(text, format!("key `{key}`: {message}")))
    }

    fn group_by(&self, names: &Spanned<Vec<String>>, key: &str) -> Result<GroupBy, FileError> {
        if names.value.iter().any(|name| name == "...") {
            if names.value.len() > 1 {
                return Err(self.error(names, format!("key `{key}`: `...` stands alone")));
            }
            return Ok(GroupBy::All);
        }
        for name in &names.value {
            if !super::is_identifier(name) {
                return Err(self.error(names, format!("key `{key}`: `{name}` is not a label name")));
            }
        }
        Ok(GroupBy::Labels(names.value.clone()))
    }

    fn headers(
        &self,
        headers: &BTreeMap<String, String>,
        at: &Spanned<RawReceiver>,
        key: &str,
    ) -> Result<BTreeMap<String, String>, FileError> {
        for (name, value) in headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(value).is_err()
            {
                return Err(self.error(at, format!("key `{key}`: `{name}` is not a valid header")));
            }
            let lower = name.to_ascii_lowercase();
            if lower.starts_with("webhook-") || lower == "content-type" || lower == "content-length"
            {
                return Err(self.error(at, format!("key `{key}`: vastwatch sets `{name}` itself")));
            }
        }
        Ok(headers.clone())
    }

    fn http_url(&self, text: &Spanned<String>, key: &str) -> Result<reqwest::Url, FileError> {
        let url = reqwest::Url::parse(text.value.trim())
            .map_err(|error| self.error(text, format!("key `{key}`: not a URL ({error})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(self.error(text, format!("key `{key}`: must be http:// or https://")));
        }
        Ok(url)
    }

    fn positive_duration(
        &self,
        raw: Option<&Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, FileError> {
        let duration = self.duration(raw, key, default)?;
        match raw {
            Some(text) if duration.is_zero() => {
                Err(self.error(text, format!("key `{key}`: must be longer than 0s")))
            }
            _ => Ok(duration),
        }
    }
}

/// `local@domain` with no spaces or angle brackets: enough to catch typos at load; the
/// SMTP server has the final word.
fn is_plausible_address(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !text.contains([' ', '<', '>', ',', '\n', '\r'])
                && !domain.contains('@')
        }
        None => false,
    }
}
