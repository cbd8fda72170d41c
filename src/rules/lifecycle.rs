//! The alert lifecycle (SPEC §6.4): inactive → pending → firing → resolved, as in
//! Prometheus, with `for`, `keep_firing_for` and `recover` hysteresis. Every transition
//! happens in [`step`], a pure function of the previous state, the condition, the time and
//! the rule's timing.

use std::fmt;
use std::time::Duration;

use crate::time::Timestamp;

/// Where an alert instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AlertState {
    #[default]
    Inactive,
    Pending,
    Firing,
    Resolved,
}

impl AlertState {
    pub const ALL: [AlertState; 4] = [
        AlertState::Inactive,
        AlertState::Pending,
        AlertState::Firing,
        AlertState::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<AlertState> {
        AlertState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
    }

    /// Pending or firing: the instance is being tracked and its timers matter.
    pub fn is_active(self) -> bool {
        matches!(self, AlertState::Pending | AlertState::Firing)
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The timing of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    /// How long `expr` must hold before firing.
    pub for_: Duration,
    /// How long the resolve condition must hold before resolving.
    pub keep_firing_for: Duration,
}

/// A rule's verdict for one instance at one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Condition {
    /// `expr` evaluated to true (false and unknown both count as not true).
    pub expr_true: bool,
    /// Whether `recover` evaluated to true, when the rule has one.
    pub recover_true: Option<bool>,
}

impl Condition {
    pub fn holds(expr_true: bool) -> Self {
        Condition {
            expr_true,
            recover_true: None,
        }
    }

    /// The resolve condition: `recover` where the rule gives one, else `expr` not true.
    fn resolves(self) -> bool {
        self.recover_true.unwrap_or(!self.expr_true)
    }
}

/// The lifecycle state of one alert instance, with its timers.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Lifecycle {
    pub state: AlertState,
    /// When `expr` turned true for the current episode.
    pub active_at: Option<Timestamp>,
    pub fired_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    /// While firing: since when the resolve condition has held without a break.
    pub resolving_since: Option<Timestamp>,
}

/// A state change, to be stored in `alert_events` and offered to notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: AlertState,
    pub to: AlertState,
    pub at: Timestamp,
}

/// Advances one instance by one evaluation. Returns the new lifecycle and the transition
/// it made, if any.
pub fn step(
    previous: &Lifecycle,
    condition: Condition,
    now: Timestamp,
    timing: Timing,
) -> (Lifecycle, Option<Transition>) {
    let mut next = *previous;
    let from = previous.state;
    match from {
        AlertState::Inactive | AlertState::Resolved => {
            if condition.expr_true {
                next.active_at = Some(now);
                next.fired_at = None;
                next.resolved_at = None;
                next.resolving_since = None;
                if timing.for_.is_zero() {
                    next.state = AlertState::Firing;
                    next.fired_at = Some(now);
                } else {
                    next.state = AlertState::Pending;
                }
            }
        }
        AlertState::Pending => {
            if !condition.expr_true {
                next.state = AlertState::Inactive;
                next.active_at = None;
            } else if previous
                .active_at
                .is_none_or(|since| now.duration_since(since) >= timing.for_)
            {
                next.state = AlertState::Firing;
                next.fired_at = Some(now);
            }
        }
        AlertState::Firing => {
            if condition.resolves() {
                let since = previous.resolving_since.unwrap_or(now);
                next.resolving_since = Some(since);
                if now.duration_since(since) >= timing.keep_firing_for {
                    next.state = AlertState::Resolved;
                    next.resolved_at = Some(now);
                    next.resolving_since = None;
                }
            } else {
                next.resolving_since = None;
            }
        }
    }
    let transition = (next.state != from).then_some(Transition {
        from,
        to: next.state,
        at: now,
    });
    (next, transition)
}

/// Ends an instance whose subject went away (a worker left the list): a firing alert
/// resolves and a pending one goes back to inactive.
pub fn end(previous: &Lifecycle, now: Timestamp) -> (Lifecycle, Option<Transition>) {
    let mut next = *previous;
    match previous.state {
        AlertState::Firing => {
            next.state = AlertState::Resolved;
            next.resolved_at = Some(now);
            next.resolving_since = None;
        }
        AlertState::Pending => {
            next.state = AlertState::Inactive;
            next.active_at = None;
        }
        AlertState::Inactive | AlertState::Resolved => return (next, None),
    }
    let transition = Transition {
        from: previous.state,
        to: next.state,
        at: now,
    };
    (next, Some(transition))
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertState::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_millis(secs * 1000)
    }

    fn timing(for_secs: u64, keep_secs: u64) -> Timing {
        Timing {
            for_: Duration::from_secs(for_secs),
            keep_firing_for: Duration::from_secs(keep_secs),
        }
    }

    /// Feeds `(time, expr, recover)` evaluations and returns the states after each.
    fn run(timing: Timing, evaluations: &[(i64, bool, Option<bool>)]) -> Vec<AlertState> {
        let mut lifecycle = Lifecycle::default();
        let mut states = Vec::new();
        for &(time, expr_true, recover_true) in evaluations {
            let condition = Condition {
                expr_true,
                recover_true,
            };
            let (next, transition) = step(&lifecycle, condition, at(time), timing);
            assert_eq!(
                transition.is_some(),
                next.state != lifecycle.state,
                "a transition is reported exactly when the state changes"
            );
            lifecycle = next;
            states.push(lifecycle.state);
        }
        states
    }

    #[test]
    fn lifecycle_table() {
        struct Case {
            name: &'static str,
            timing: Timing,
            evaluations: Vec<(i64, bool, Option<bool>)>,
            expected: Vec<AlertState>,
        }
        let cases = vec![
            Case {
                name: "for 0s fires at once and resolves at once",
                timing: timing(0, 0),
                evaluations: vec![(0, true, None), (10, true, None), (20, false, None)],
                expected: vec![Firing, Firing, Resolved],
            },
            Case {
                name: "for 30s stays pending until 30s have passed",
                timing: timing(30, 0),
                evaluations: vec![(0, true, None), (20, true, None), (30, true, None)],
                expected: vec![Pending, Pending, Firing],
            },
            Case {
                name: "a pending alert whose expr turns false goes back to inactive",
                timing: timing(30, 0),
                evaluations: vec![
                    (0, true, None),
                    (10, false, None),
                    (20, true, None),
                    (40, true, None),
                    (50, true, None),
                ],
                expected: vec![Pending, Inactive, Pending, Pending, Firing],
            },
            Case {
                name: "keep_firing_for holds a firing alert through a short dip",
                timing: timing(0, 30),
                evaluations: vec![
                    (0, true, None),
                    (10, false, None),
                    (20, true, None),
                    (30, false, None),
                    (50, false, None),
                    (60, false, None),
                ],
                expected: vec![Firing, Firing, Firing, Firing, Firing, Resolved],
            },
            Case {
                name: "recover: stays firing while expr is false but recover is not yet true",
                timing: timing(0, 0),
                evaluations: vec![
                    (0, true, Some(false)),
                    (10, false, Some(false)),
                    (20, false, Some(true)),
                ],
                expected: vec![Firing, Firing, Resolved],
            },
            Case {
                name: "recover with keep_firing_for needs recover to hold for the whole time",
                timing: timing(0, 20),
                evaluations: vec![
                    (0, true, Some(false)),
                    (10, false, Some(true)),
                    (20, false, Some(false)),
                    (30, false, Some(true)),
                    (50, false, Some(true)),
                ],
                expected: vec![Firing, Firing, Firing, Firing, Resolved],
            },
            Case {
                name: "a resolved alert that turns true again starts a new episode",
                timing: timing(10, 0),
                evaluations: vec![
                    (0, true, None),
                    (10, true, None),
                    (20, false, None),
                    (30, true, None),
                    (40, true, None),
                ],
                expected: vec![Pending, Firing, Resolved, Pending, Firing],
            },
            Case {
                name: "a false expression never leaves inactive",
                timing: timing(0, 0),
                evaluations: vec![(0, false, None), (10, false, Some(true))],
                expected: vec![Inactive, Inactive],
            },
        ];
        for case in cases {
            assert_eq!(
                run(case.timing, &case.evaluations),
                case.expected,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn timers_are_kept_so_an_episode_can_be_resumed() {
        let (pending, _) = step(
            &Lifecycle::default(),
            Condition::holds(true),
            at(0),
            timing(60, 0),
        );
        assert_eq!(pending.active_at, Some(at(0)));
        // Resuming from the stored lifecycle after a restart keeps the original start.
        let (still, none) = step(&pending, Condition::holds(true), at(59), timing(60, 0));
        assert_eq!((still.state, none), (Pending, None));
        let (firing, transition) = step(&still, Condition::holds(true), at(60), timing(60, 0));
        assert_eq!(firing.fired_at, Some(at(60)));
        assert_eq!(
            transition,
            Some(Transition {
                from: Pending,
                to: Firing,
                at: at(60)
            })
        );
    }

    #[test]
    fn a_subject_that_goes_away_ends_its_instance() {
        let firing = Lifecycle {
            state: Firing,
            active_at: Some(at(0)),
            fired_at: Some(at(0)),
            ..Lifecycle::default()
        };
        let (ended, transition) = end(&firing, at(5));
        assert_eq!(ended.state, Resolved);
        assert_eq!(ended.resolved_at, Some(at(5)));
        assert_eq!(transition.map(|t| (t.from, t.to)), Some((Firing, Resolved)));

        let pending = Lifecycle {
            state: Pending,
            active_at: Some(at(0)),
            ..Lifecycle::default()
        };
        assert_eq!(end(&pending, at(5)).0.state, Inactive);
        assert_eq!(end(&Lifecycle::default(), at(5)).1, None);
    }
}
