//! Routing (SPEC §8.1): which receivers an alert goes to, and how its group is formed.
//! Routes are a flat list tried in order; the first that matches wins unless it says
//! `continue`. A route without matchers matches everything (the default route).

use std::collections::BTreeMap;
use std::time::Duration;

use super::matcher::{Matcher, all_match};
use super::receiver::Receiver;

/// The validated `notify:` section.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub receivers: Vec<Receiver>,
    pub routes: Vec<Route>,
    /// Inhibit rules, the built-in `VastwatchTargetDown` one first unless turned off.
    pub inhibit: Vec<InhibitRule>,
    /// Give up on a notification this long after it was created.
    pub max_age: Duration,
    /// Base of links in payloads (`externalURL`, `generatorURL`).
    pub external_url: String,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            receivers: Vec::new(),
            routes: Vec::new(),
            inhibit: vec![InhibitRule::target_down()],
            max_age: Duration::from_secs(24 * 3600),
            external_url: DEFAULT_EXTERNAL_URL.to_string(),
        }
    }
}

/// Where links point when `external_url` is not set.
pub const DEFAULT_EXTERNAL_URL: &str = "http://127.0.0.1:9469";

impl NotifyConfig {
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|receiver| receiver.name == name)
    }

    /// The routes `labels` take, in order: matching routes up to and including the first
    /// one without `continue`.
    pub fn routes_for<'a>(
        &'a self,
        labels: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a Route> + 'a {
        let mut stopped = false;
        self.routes.iter().filter(move |route| {
            if stopped || !route.matches(labels) {
                return false;
            }
            stopped = !route.continue_;
            true
        })
    }
}

/// When a group's notifications go out (SPEC §8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupTiming {
    /// A new group's first notification waits this long for more alerts.
    pub group_wait: Duration,
    /// Later changes are batched this often.
    pub group_interval: Duration,
    /// An unchanged firing group is re-sent this often.
    pub repeat_interval: Duration,
}

impl Default for GroupTiming {
    /// Alertmanager's defaults.
    fn default() -> Self {
        GroupTiming {
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
        }
    }
}

/// Which labels form a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// These labels; the empty list puts every alert of the route in one group.
    Labels(Vec<String>),
    /// `[...]`: every label, so each alert is its own group.
    All,
}

impl GroupBy {
    /// The group labels of an alert.
    pub fn group_labels(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        match self {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => names
                .iter()
                .filter_map(|name| labels.get(name).map(|value| (name.clone(), value.clone())))
                .collect(),
        }
    }
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy::Labels(vec!["alertname".to_string(), "target".to_string()])
    }
}

/// One entry of `routes:`.
#[derive(Debug, Clone)]
pub struct Route {
    /// Position in `routes`.
    pub index: usize,
    /// Identifies the route in group keys: its position and matchers, as Alertmanager
    /// writes them (`0:{severity="critical"}`).
    pub key: String,
    pub matchers: Vec<Matcher>,
    /// Receiver names, each defined under `receivers`.
    pub receivers: Vec<String>,
    pub continue_: bool,
    pub group_by: GroupBy,
    pub timing: GroupTiming,
}

impl Route {
    pub fn new(
        index: usize,
        matchers: Vec<Matcher>,
        receivers: Vec<String>,
        continue_: bool,
        group_by: GroupBy,
        timing: GroupTiming,
    ) -> Route {
        let written: Vec<String> = matchers
            .iter()
            .map(|m| format!("{}{}{:?}", m.name, m.op.as_str(), m.value))
            .collect();
        Route {
            index,
            key: format!("{index}:{{{}}}", written.join(",")),
            matchers,
            receivers,
            continue_,
            group_by,
            timing,
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        all_match(&self.matchers, labels)
    }

    /// The group key of an alert on this route: the route's key and the group labels,
    /// as Alertmanager writes them (`0:{}:{alertname="X", target="y"}`).
    pub fn group_key(&self, group_labels: &BTreeMap<String, String>) -> String {
        let written: Vec<String> = group_labels
            .iter()
            .map(|(name, value)| format!("{name}={value:?}"))
            .collect();
        format!("{}:{{{}}}", self.key, written.join(", "))
    }
}

/// An inhibit rule: while an alert matching `source` fires, alerts matching `target`
/// with the same values of the `equal` labels are muted.
#[derive(Debug, Clone, PartialEq)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

impl InhibitRule {
    /// The built-in rule: a firing `VastwatchTargetDown` mutes its target's other alerts.
    pub fn target_down() -> InhibitRule {
        InhibitRule {
            source: vec![Matcher::parse("alertname=VastwatchTargetDown").expect("valid")],
            target: vec![Matcher::parse("alertname!=VastwatchTargetDown").expect("valid")],
            equal: vec!["target".to_string()],
        }
    }

    /// Whether `source` (a firing alert) mutes `target`.
    pub fn mutes(
        &self,
        source: &BTreeMap<String, String>,
        target: &BTreeMap<String, String>,
    ) -> bool {
        all_match(&self.source, source)
            && all_match(&self.target, target)
            && self
                .equal
                .iter()
                .all(|name| source.get(name) == target.get(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn route(index: usize, matchers: &[&str], receivers: &[&str], continue_: bool) -> Route {
        Route::new(
            index,
            matchers
                .iter()
                .map(|m| Matcher::parse(m).unwrap())
                .collect(),
            receivers.iter().map(|r| r.to_string()).collect(),
            continue_,
            GroupBy::default(),
            GroupTiming::default(),
        )
    }

    fn receivers_for(config: &NotifyConfig, alert: &BTreeMap<String, String>) -> Vec<String> {
        config
            .routes_for(alert)
            .flat_map(|route| route.receivers.clone())
            .collect()
    }

    #[test]
    fn the_first_matching_route_wins_unless_it_continues() {
        let config = NotifyConfig {
            routes: vec![
                route(0, &["severity=critical"], &["pager"], true),
                route(1, &["team=~ml|infra", "target!=dev"], &["ml"], false),
                route(2, &[], &["default"], false),
            ],
            ..NotifyConfig::default()
        };
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: [Case<'_>; 5] = [
            (
                &[("severity", "critical"), ("team", "ml")],
                &["pager", "ml"],
            ),
            (
                &[("severity", "critical"), ("team", "ml"), ("target", "dev")],
                &["pager", "default"],
            ),
            (&[("severity", "warning"), ("team", "infra")], &["ml"]),
            (&[("severity", "warning"), ("team", "web")], &["default"]),
            (&[("severity", "critical")], &["pager", "default"]),
        ];
        for (alert, expected) in cases {
            assert_eq!(
                receivers_for(&config, &labels(alert)),
                expected,
                "{alert:?}"
            );
        }
    }

    #[test]
    fn an_alert_no_route_matches_goes_nowhere() {
        let config = NotifyConfig {
            routes: vec![route(0, &["team=ml"], &["ml"], false)],
            ..NotifyConfig::default()
        };
        assert!(receivers_for(&config, &labels(&[("team", "web")])).is_empty());
    }

    #[test]
    fn group_keys_name_the_route_and_the_group_labels() {
        let route = route(1, &["severity=critical"], &["pager"], false);
        let alert = labels(&[
            ("alertname", "Down"),
            ("target", "prod"),
            ("worker_id", "7"),
        ]);
        let group = route.group_by.group_labels(&alert);
        assert_eq!(group, labels(&[("alertname", "Down"), ("target", "prod")]));
        assert_eq!(
            route.group_key(&group),
            r#"1:{severity="critical"}:{alertname="Down", target="prod"}"#
        );
        assert_eq!(GroupBy::All.group_labels(&alert), alert);
        assert!(GroupBy::Labels(vec![]).group_labels(&alert).is_empty());
    }

    #[test]
    fn target_down_mutes_only_other_alerts_of_its_own_target() {
        let rule = InhibitRule::target_down();
        let down = labels(&[("alertname", "VastwatchTargetDown"), ("target", "a")]);
        let same = labels(&[("alertname", "WorkerSaturated"), ("target", "a")]);
        let other = labels(&[("alertname", "WorkerSaturated"), ("target", "b")]);
        assert!(rule.mutes(&down, &same));
        assert!(!rule.mutes(&down, &other));
        assert!(!rule.mutes(&down, &down));
        assert!(!rule.mutes(&same, &down));
    }
}
