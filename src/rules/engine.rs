//! The evaluation engine: per target, an in-memory history window and the alert instances
//! of every rule. [`Engine::evaluate`] is a pure function of the engine and one poll; it
//! returns what changed, and [`Engine::apply`] commits it once the caller has stored it.
//! The daemon, `vastwatch test` and `vastwatch replay` all drive this same code.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

// Targets and alert instances are looked up several times per poll; foldhash hashes their
// keys several times faster than the standard SipHash, and these keys are the config's
// names and worker ids, not attacker-chosen.
use foldhash::HashMap;
use minijinja::Value as TemplateValue;

use super::expr::{Compiled, EvalContext, Identifiers, Scope, Snapshot, Value, compile};
use super::file::{Rule, RuleSet, Severity};
use super::labels::{LabelSet, fingerprint};
use super::lifecycle::{self, AlertState, Condition, Lifecycle, Timing, Transition};
use crate::advise::{self, AdvisorInput, LastPoll, Reason, Recommendation, ScalingConfig};
use crate::model::{CompactPoll, PollRecord, TargetKind};
use crate::time::Timestamp;

/// The name of the built-in alert for a target whose polls keep failing.
pub const TARGET_DOWN: &str = "VastwatchTargetDown";

/// A target as the engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetInfo {
    pub name: String,
    pub kind: TargetKind,
    pub vast_id: i64,
    pub labels: LabelSet,
    pub vars: BTreeMap<String, f64>,
    pub scaling: ScalingConfig,
}

/// The fleet identifiers the engine fills from the advisor, in slot order.
pub const ADVISOR_IDENTIFIERS: [&str; 2] = ["desired_workers", "scale_delta"];

/// The identifiers rules are compiled against: SPEC §6.3's, plus the advisor's.
pub fn identifiers() -> Identifiers {
    ADVISOR_IDENTIFIERS
        .iter()
        .fold(Identifiers::standard(), |identifiers, name| {
            identifiers.with_fleet_number(name)
        })
}

/// One alert instance's full state: what is stored in the `alerts` table.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub fingerprint: String,
    pub alertname: String,
    pub target: String,
    pub worker_id: Option<i64>,
    pub severity: Severity,
    pub labels: LabelSet,
    pub annotations: BTreeMap<String, String>,
    pub lifecycle: Lifecycle,
    pub value: Option<f64>,
    pub last_eval_at: Timestamp,
    /// The target's recommendation when the instance last changed state.
    pub recommendation: Option<Recommendation>,
}

/// A transition of one instance, with the record as it is after the transition.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertChange {
    pub record: AlertRecord,
    pub transition: Option<Transition>,
    /// The engine's instance; `None` for an instance the engine no longer holds (see
    /// [`AlertChange::retire`]).
    key: Option<InstanceKey>,
}

impl AlertChange {
    /// Ends a stored instance that no configured rule or target produces any more (its
    /// rule or target was removed, or its identity labels changed, on reload or between
    /// runs): a firing alert resolves and a pending one returns to inactive, so nothing
    /// stays firing forever. `None` when it was not active.
    pub fn retire(record: &AlertRecord, now: Timestamp) -> Option<AlertChange> {
        let (lifecycle, transition) = lifecycle::end(&record.lifecycle, now);
        transition?;
        let mut record = record.clone();
        record.lifecycle = lifecycle;
        record.last_eval_at = now;
        Some(AlertChange {
            record,
            transition,
            key: None,
        })
    }
}

/// What evaluating one poll produced: changed instances, to be stored together.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub target: String,
    pub at: Timestamp,
    /// Instances whose state changed or that are active (their value and last_eval_at
    /// moved). Stored rows are upserted from these.
    pub changes: Vec<AlertChange>,
    /// The target's recommendation after this poll. From [`Engine::evaluate_for_replay`]
    /// its `reason` is written only when `recommendation_changed`.
    pub recommendation: Recommendation,
    /// Whether its action or desired count differs from the previous one (a row for the
    /// `recommendations` table).
    pub recommendation_changed: bool,
    snapshot: Option<Arc<Snapshot>>,
    failures_in_a_row: u32,
    last_poll: LastPoll,
    /// Instances that stay active without a transition, when they are not in `changes`
    /// ([`Engine::evaluate_for_replay`]).
    updates: Vec<InstanceUpdate>,
    /// What writes `recommendation.reason`, when it is not written yet.
    unwritten_reason: Option<Reason>,
}

/// What evaluating changes in an instance that makes no transition.
#[derive(Debug, Clone, Copy)]
struct InstanceUpdate {
    key: InstanceKey,
    lifecycle: Lifecycle,
    value: Option<f64>,
    at: Timestamp,
}

/// Which changed instances an evaluation lists in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Every instance that made a transition or is active: what the store upserts.
    Everything,
    /// Only instances that made a transition; the rest become [`InstanceUpdate`]s.
    Transitions,
}

impl Evaluation {
    pub fn transitions(&self) -> impl Iterator<Item = (&AlertRecord, &Transition)> {
        self.changes
            .iter()
            .filter_map(|change| change.transition.as_ref().map(|t| (&change.record, t)))
    }
}

/// Which rule an instance belongs to, and for which worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum InstanceKey {
    Rule { rule: usize, worker_id: Option<i64> },
    TargetDown,
}

#[derive(Debug, Default)]
struct TargetState {
    /// Per rule (by index): the vars it sees on this target.
    rule_vars: Vec<BTreeMap<String, f64>>,
    history: VecDeque<Arc<Snapshot>>,
    failures_in_a_row: u32,
    instances: HashMap<InstanceKey, AlertRecord>,
    last_poll: Option<LastPoll>,
    recommendation: Option<Latest>,
}

/// A target's latest recommendation. After [`Engine::evaluate_for_replay`] its reason may
/// not be written yet; it is written when first read, if ever.
#[derive(Debug)]
struct Latest {
    /// With its `reason` empty while `reason` is `Some`.
    recommendation: Recommendation,
    reason: Option<Reason>,
    written: OnceLock<Recommendation>,
}

impl Latest {
    fn written(recommendation: Recommendation) -> Latest {
        Latest {
            recommendation,
            reason: None,
            written: OnceLock::new(),
        }
    }

    /// The recommendation, its reason perhaps not written: all a comparison reads.
    fn decided(&self) -> &Recommendation {
        &self.recommendation
    }

    /// The whole recommendation; `config` is the target's.
    fn get(&self, config: &ScalingConfig) -> &Recommendation {
        match &self.reason {
            None => &self.recommendation,
            Some(reason) => self
                .written
                .get_or_init(|| write_reason(&self.recommendation, reason, config)),
        }
    }
}

/// This poll's recommendation while the rules are evaluated: its reason is written when
/// an instance changes state (the record keeps the recommendation) or at the end, when
/// the caller needs it.
struct Pending<'a> {
    /// With its `reason` empty.
    recommendation: Recommendation,
    reason: Reason,
    config: &'a ScalingConfig,
    written: OnceCell<Recommendation>,
}

impl Pending<'_> {
    fn get(&self) -> &Recommendation {
        self.written
            .get_or_init(|| write_reason(&self.recommendation, &self.reason, self.config))
    }
}

fn write_reason(
    recommendation: &Recommendation,
    reason: &Reason,
    config: &ScalingConfig,
) -> Recommendation {
    Recommendation {
        reason: reason.sentence(config),
        ..recommendation.clone()
    }
}

/// Identifier expressions compiled once, for filling template contexts.
#[derive(Debug, Clone)]
struct TemplateIdentifiers {
    worker: Vec<(String, Compiled)>,
    fleet: Vec<(String, Compiled)>,
}

impl TemplateIdentifiers {
    fn new(identifiers: &Identifiers) -> Self {
        let none = std::collections::BTreeSet::new();
        let compile_all = |scope: Scope| {
            identifiers
                .names(scope)
                .into_iter()
                .filter(|name| !name.contains('.'))
                .filter_map(|name| {
                    compile(&name, scope, identifiers, &none)
                        .ok()
                        .map(|compiled| (name, compiled))
                })
                .collect()
        };
        TemplateIdentifiers {
            worker: compile_all(Scope::Worker),
            fleet: compile_all(Scope::Fleet),
        }
    }
}

/// One rule's evaluation over one target's snapshot: what every step of it reads.
struct RuleEvaluation<'a, 'c> {
    index: usize,
    rule: &'a Rule,
    target: &'a TargetInfo,
    state: &'a TargetState,
    context: &'a EvalContext<'c>,
    now: Timestamp,
    recommendation: &'a Pending<'a>,
    keep: Keep,
    changes: &'a mut Vec<AlertChange>,
    updates: &'a mut Vec<InstanceUpdate>,
}

/// Rules, targets, histories and alert instances.
#[derive(Debug)]
pub struct Engine {
    rules: Arc<RuleSet>,
    targets: BTreeMap<String, TargetInfo>,
    states: HashMap<String, TargetState>,
    target_down_after: u32,
    /// The schedule's interval, for the advisor's staleness check.
    interval: Duration,
    /// How much history each target keeps.
    window: Duration,
    template_identifiers: Arc<TemplateIdentifiers>,
}

/// Extra history kept beyond the longest rule window, so a window is full even when a
/// poll lands a little late.
const WINDOW_SLACK: Duration = Duration::from_secs(60);

impl Engine {
    pub fn new(
        rules: Arc<RuleSet>,
        identifiers: &Identifiers,
        targets: Vec<TargetInfo>,
        target_down_after: u32,
        interval: Duration,
    ) -> Engine {
        let advisor_window = targets
            .iter()
            .map(|target| target.scaling.history_needed())
            .max()
            .unwrap_or_default();
        let window = rules.longest_window().max(advisor_window) + WINDOW_SLACK;
        let states = targets
            .iter()
            .map(|target| {
                let rule_vars = rules
                    .rules
                    .iter()
                    .map(|rule| rule.vars_for(&target.vars))
                    .collect();
                let state = TargetState {
                    rule_vars,
                    ..TargetState::default()
                };
                (target.name.clone(), state)
            })
            .collect();
        Engine {
            rules,
            targets: targets.into_iter().map(|t| (t.name.clone(), t)).collect(),
            states,
            target_down_after: target_down_after.max(1),
            interval,
            window,
            template_identifiers: Arc::new(TemplateIdentifiers::new(identifiers)),
        }
    }

    /// Moves the given targets, with their histories and alert instances, into an engine
    /// of their own. Evaluating a poll reads and changes only its own target's state, so
    /// the two engines can evaluate their targets' polls at the same time (replay does)
    /// and give the same results as one; [`Engine::absorb`] joins them again.
    pub fn split_off(&mut self, targets: &[String]) -> Engine {
        let mut other = Engine {
            rules: Arc::clone(&self.rules),
            targets: BTreeMap::new(),
            states: HashMap::default(),
            target_down_after: self.target_down_after,
            interval: self.interval,
            window: self.window,
            template_identifiers: Arc::clone(&self.template_identifiers),
        };
        for name in targets {
            if let Some((name, info)) = self.targets.remove_entry(name) {
                other.targets.insert(name, info);
            }
            if let Some((name, state)) = self.states.remove_entry(name) {
                other.states.insert(name, state);
            }
        }
        other
    }

    /// Takes back the targets of an engine made by [`Engine::split_off`].
    pub fn absorb(&mut self, other: Engine) {
        self.targets.extend(other.targets);
        self.states.extend(other.states);
    }

    /// The names of the targets the engine evaluates, sorted.
    pub fn target_names(&self) -> impl Iterator<Item = &str> {
        self.targets.keys().map(String::as_str)
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// How far back history must reach for every window to be full.
    pub fn history_window(&self) -> Duration {
        self.window
    }

    /// Loads a target's recent polls (oldest first) as read back from the store at start,
    /// and its current run of failed polls.
    pub fn restore_history(
        &mut self,
        target: &str,
        records: &[PollRecord],
        failures_in_a_row: u32,
    ) {
        let Some(state) = self.states.get_mut(target) else {
            return;
        };
        state.history = records
            .iter()
            .filter_map(|record| {
                record
                    .result
                    .workers()
                    .map(|workers| Arc::new(Snapshot::new(record.started_at, workers, Vec::new())))
            })
            .collect();
        if let Some(last) = records.last() {
            trim(&mut state.history, last.started_at, self.window);
            state.last_poll = Some(LastPoll {
                at: last.started_at,
                ok: last.result.workers().is_some(),
            });
        }
        state.failures_in_a_row = failures_in_a_row;
    }

    /// Resumes the last stored recommendation of a target, so a restart does not record
    /// an unchanged one again.
    pub fn restore_recommendation(&mut self, target: &str, recommendation: Recommendation) {
        if let Some(state) = self.states.get_mut(target) {
            state.recommendation = Some(Latest::written(recommendation));
        }
    }

    /// The target's recommendation after the last applied poll.
    pub fn recommendation(&self, target: &str) -> Option<&Recommendation> {
        let config = &self.targets.get(target)?.scaling;
        Some(
            self.states
                .get(target)?
                .recommendation
                .as_ref()?
                .get(config),
        )
    }

    /// The target's latest successful snapshot, as rules last read it. The history always
    /// keeps its newest snapshot, so this is there from the first success on.
    pub fn latest_snapshot(&self, target: &str) -> Option<&Arc<Snapshot>> {
        self.states.get(target)?.history.back()
    }

    /// Every alertname the engine can raise: its rules' and `VastwatchTargetDown`.
    pub fn alert_names(&self) -> BTreeSet<&str> {
        self.rules
            .rules
            .iter()
            .map(|rule| rule.name.as_str())
            .chain([TARGET_DOWN])
            .collect()
    }

    /// The recommendation for a target from its history as of `now`, without a new poll
    /// (`vastwatch advise`).
    pub fn advise_now(&self, target: &str, now: Timestamp) -> Option<Recommendation> {
        let info = self.targets.get(target)?;
        let state = self.states.get(target)?;
        let input = self.advisor_input(info, &state.history, state.last_poll, now);
        Some(advise::advise(&input, &info.scaling))
    }

    fn advisor_input<'a>(
        &self,
        target: &TargetInfo,
        history: &'a VecDeque<Arc<Snapshot>>,
        last_poll: Option<LastPoll>,
        now: Timestamp,
    ) -> AdvisorInput<'a> {
        AdvisorInput {
            history,
            last_poll,
            interval: self.interval,
            kind: target.kind,
            vast_id: target.vast_id,
            now,
        }
    }

    /// Resumes stored pending and firing instances, so their timers continue. Returns the
    /// instances that belong to no configured rule and target any more (orphans), for the
    /// caller to retire with [`AlertChange::retire`].
    pub fn restore_alerts(&mut self, alerts: Vec<AlertRecord>) -> Vec<AlertRecord> {
        let mut orphans = Vec::new();
        for alert in alerts {
            let key = self.key_of(&alert);
            match (key, self.states.get_mut(&alert.target)) {
                (Some(key), Some(state)) => {
                    state.instances.insert(key, alert);
                }
                _ => orphans.push(alert),
            }
        }
        orphans
    }

    /// Finds the instance key a stored alert belongs to: the rule whose identity labels
    /// give the same fingerprint.
    fn key_of(&self, alert: &AlertRecord) -> Option<InstanceKey> {
        if alert.alertname == TARGET_DOWN {
            return Some(InstanceKey::TargetDown);
        }
        let target = self.targets.get(&alert.target)?;
        self.rules
            .rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.name == alert.alertname && rule.applies_to(&target.name))
            .find(|(_, rule)| {
                fingerprint(&identity_labels(rule, target, alert.worker_id)) == alert.fingerprint
            })
            .map(|(rule, _)| InstanceKey::Rule {
                rule,
                worker_id: alert.worker_id,
            })
    }

    /// Active (pending or firing) instances of every target.
    pub fn active_alerts(&self) -> impl Iterator<Item = &AlertRecord> {
        self.states
            .values()
            .flat_map(|state| state.instances.values())
            .filter(|record| record.lifecycle.state.is_active())
    }

    /// Evaluates every rule of the poll's target over its history plus this poll. The
    /// only thing it changes is the history, which gains the poll's snapshot; call
    /// [`Engine::apply`] once the result is stored, or [`Engine::discard`] if it could not
    /// be, which takes the snapshot back out.
    pub fn evaluate(&mut self, record: &PollRecord) -> Evaluation {
        let snapshot = record
            .result
            .workers()
            .map(|workers| Snapshot::new(record.started_at, workers, Vec::new()));
        self.evaluate_keeping(
            record.target.clone(),
            record.started_at,
            snapshot,
            Keep::Everything,
        )
    }

    /// As [`Engine::evaluate`], for a poll read back in compact form, and `changes` lists
    /// only the instances that made a transition; those that stay pending or firing are
    /// updated by [`Engine::apply`] without being copied out. For callers that store
    /// nothing (replay): copying every active instance's record, labels and recommendation
    /// on every poll was an eighth of replay's time.
    pub fn evaluate_for_replay(&mut self, poll: CompactPoll) -> Evaluation {
        let snapshot = poll
            .workers
            .map(|workers| Snapshot::from_compact(poll.started_at, workers, Vec::new()));
        self.evaluate_keeping(poll.target, poll.started_at, snapshot, Keep::Transitions)
    }

    /// Evaluates a poll of `target` at `now`: `snapshot` is its workers, `None` when the
    /// poll failed.
    fn evaluate_keeping(
        &mut self,
        target: String,
        now: Timestamp,
        snapshot: Option<Snapshot>,
        keep: Keep,
    ) -> Evaluation {
        let last_poll = LastPoll {
            at: now,
            ok: snapshot.is_some(),
        };
        let known = self.targets.contains_key(&target);
        let Some(state) = self.states.get_mut(&target).filter(|_| known) else {
            // A poll of a target the engine does not know (removed from the config).
            let empty = VecDeque::new();
            let input = AdvisorInput {
                history: &empty,
                last_poll: Some(last_poll),
                interval: self.interval,
                kind: TargetKind::Endpoint,
                vast_id: 0,
                now,
            };
            return Evaluation {
                target,
                at: now,
                changes: Vec::new(),
                recommendation: advise::advise(&input, &ScalingConfig::default()),
                recommendation_changed: false,
                snapshot: None,
                failures_in_a_row: 0,
                last_poll,
                updates: Vec::new(),
                unwritten_reason: None,
            };
        };
        // The new snapshot joins the history in place: cloning the window for every poll
        // cost an allocation and a reference count per snapshot on the hot path.
        let snapshot = snapshot.map(|snapshot| {
            state.history.push_back(Arc::new(snapshot));
            trim(&mut state.history, now, self.window);
        });
        let target_name = target;
        let target = &self.targets[&target_name];
        let state = &self.states[&target_name];
        let input = self.advisor_input(target, &state.history, Some(last_poll), now);
        let (recommendation, reason) = advise::assess(&input, &target.scaling);
        let recommendation = Pending {
            recommendation,
            reason,
            config: &target.scaling,
            written: OnceCell::new(),
        };
        let mut changes = Vec::new();
        let mut updates = Vec::new();
        let (snapshot, failures_in_a_row) = match snapshot {
            Some(()) => {
                // The new snapshot has no other owner yet, so it can still take the
                // advisor's numbers as the fleet identifiers rules read.
                if let Some(snapshot) = self
                    .states
                    .get_mut(&target_name)
                    .and_then(|state| state.history.back_mut())
                    .and_then(Arc::get_mut)
                {
                    snapshot.fleet.set_extra(
                        0,
                        Some(f64::from(recommendation.recommendation.desired_workers)),
                    );
                    snapshot
                        .fleet
                        .set_extra(1, Some(recommendation.recommendation.delta as f64));
                }
                let state = &self.states[&target_name];
                for (index, rule) in self.rules.rules.iter().enumerate() {
                    if rule.applies_to(&target.name) {
                        let context = EvalContext {
                            history: &state.history,
                            vars: &state.rule_vars[index],
                        };
                        let mut evaluation = RuleEvaluation {
                            index,
                            rule,
                            target,
                            state,
                            context: &context,
                            now,
                            recommendation: &recommendation,
                            keep,
                            changes: &mut changes,
                            updates: &mut updates,
                        };
                        self.evaluate_rule(&mut evaluation);
                    }
                }
                (state.history.back().cloned(), 0)
            }
            None => (None, state.failures_in_a_row.saturating_add(1)),
        };
        let state = &self.states[&target_name];
        // The reason and evidence move with every poll; the advice itself is the action,
        // the count, the workers to replace and the commands.
        let recommendation_changed = state.recommendation.as_ref().is_none_or(|previous| {
            let previous = previous.decided();
            let current = &recommendation.recommendation;
            previous.action != current.action
                || previous.desired_workers != current.desired_workers
                || previous.replace != current.replace
                || previous.commands != current.commands
        });
        self.evaluate_target_down(
            target,
            state,
            now,
            failures_in_a_row,
            &recommendation,
            &mut changes,
        );
        // Replay needs the reason only of a recommendation it reports; the daemon stores
        // and shows every one.
        let (recommendation, unwritten_reason) = match recommendation.written.into_inner() {
            Some(written) => (written, None),
            None if keep == Keep::Everything || recommendation_changed => (
                write_reason(
                    &recommendation.recommendation,
                    &recommendation.reason,
                    recommendation.config,
                ),
                None,
            ),
            None => (recommendation.recommendation, Some(recommendation.reason)),
        };
        Evaluation {
            target: target_name,
            at: now,
            changes,
            recommendation,
            recommendation_changed,
            snapshot,
            failures_in_a_row,
            last_poll,
            updates,
            unwritten_reason,
        }
    }

    #[cfg(test)]
    fn state_history_len(&self, target: &str) -> usize {
        self.states
            .get(target)
            .map_or(0, |state| state.history.len())
    }

    /// Undoes an evaluation that could not be stored: its snapshot leaves the history, so
    /// memory never runs ahead of disk.
    pub fn discard(&mut self, evaluation: Evaluation) {
        let Some(snapshot) = evaluation.snapshot else {
            return;
        };
        if let Some(state) = self.states.get_mut(&evaluation.target)
            && state
                .history
                .back()
                .is_some_and(|last| Arc::ptr_eq(last, &snapshot))
        {
            state.history.pop_back();
        }
    }

    fn evaluate_rule(&self, run: &mut RuleEvaluation<'_, '_>) {
        let rule = run.rule;
        let context = run.context;
        match rule.scope {
            Scope::Fleet => {
                let key = InstanceKey::Rule {
                    rule: run.index,
                    worker_id: None,
                };
                let expr_true = rule.expr.eval_fleet(context) == Value::Bool(true);
                let recover_true = || {
                    rule.recover
                        .as_ref()
                        .map(|recover| recover.eval_fleet(context) == Value::Bool(true))
                };
                self.advance(run, key, expr_true, recover_true, None, || {
                    rule.expr.eval_value_fleet(context)
                });
            }
            Scope::Worker => {
                let Some(current) = context.history.back() else {
                    return;
                };
                for (worker_index, worker) in current.workers.iter().enumerate() {
                    let key = InstanceKey::Rule {
                        rule: run.index,
                        worker_id: Some(worker.worker_id),
                    };
                    let expr_true =
                        rule.expr.eval_worker(context, worker_index) == Value::Bool(true);
                    let recover_true = || {
                        rule.recover.as_ref().map(|recover| {
                            recover.eval_worker(context, worker_index) == Value::Bool(true)
                        })
                    };
                    self.advance(
                        run,
                        key,
                        expr_true,
                        recover_true,
                        Some(worker_index),
                        || rule.expr.eval_value_worker(context, worker_index),
                    );
                }
                // Workers that left the list resolve their alerts, in worker id order (the
                // instance map's order differs from one engine to the next).
                let mut left: Vec<(i64, &InstanceKey, &AlertRecord)> = Vec::new();
                for (key, record) in &run.state.instances {
                    let InstanceKey::Rule {
                        rule: rule_index,
                        worker_id: Some(worker_id),
                    } = *key
                    else {
                        continue;
                    };
                    if rule_index == run.index
                        && current
                            .workers
                            .binary_search_by_key(&worker_id, |w| w.worker_id)
                            .is_err()
                    {
                        left.push((worker_id, key, record));
                    }
                }
                left.sort_unstable_by_key(|(worker_id, _, _)| *worker_id);
                for (_, key, record) in left {
                    let (lifecycle, transition) = lifecycle::end(&record.lifecycle, run.now);
                    if transition.is_some() {
                        let mut record = record.clone();
                        record.lifecycle = lifecycle;
                        record.last_eval_at = run.now;
                        record.recommendation = Some(run.recommendation.get().clone());
                        run.changes.push(AlertChange {
                            record,
                            transition,
                            key: Some(*key),
                        });
                    }
                }
            }
        }
    }

    fn advance(
        &self,
        run: &mut RuleEvaluation<'_, '_>,
        key: InstanceKey,
        expr_true: bool,
        recover_true: impl Fn() -> Option<bool>,
        worker_index: Option<usize>,
        value: impl Fn() -> Option<f64>,
    ) {
        // Most targets have no instance at all: skip hashing the key for them.
        let existing = if run.state.instances.is_empty() {
            None
        } else {
            run.state.instances.get(&key)
        };
        if existing.is_none() && !expr_true {
            // The common case: nothing to track, nothing to write, and `recover` need not
            // be evaluated.
            return;
        }
        let condition = Condition {
            expr_true,
            recover_true: recover_true(),
        };
        if run.keep == Keep::Transitions
            && let Some(existing) = existing
        {
            let (lifecycle, transition) =
                lifecycle::step(&existing.lifecycle, condition, run.now, run.rule.timing);
            if transition.is_none() {
                // Still active (only active instances are kept): no copy of the record.
                run.updates.push(InstanceUpdate {
                    key,
                    lifecycle,
                    value: value(),
                    at: run.now,
                });
                return;
            }
        }
        let worker_id = match key {
            InstanceKey::Rule { worker_id, .. } => worker_id,
            InstanceKey::TargetDown => None,
        };
        let mut record = match existing {
            Some(record) => record.clone(),
            None => {
                let labels = identity_labels(run.rule, run.target, worker_id);
                AlertRecord {
                    fingerprint: fingerprint(&labels),
                    alertname: run.rule.name.clone(),
                    target: run.target.name.clone(),
                    worker_id,
                    severity: run.rule.severity,
                    labels,
                    annotations: BTreeMap::new(),
                    lifecycle: Lifecycle::default(),
                    value: None,
                    last_eval_at: run.now,
                    recommendation: None,
                }
            }
        };
        let (lifecycle, transition) =
            lifecycle::step(&record.lifecycle, condition, run.now, run.rule.timing);
        record.lifecycle = lifecycle;
        record.last_eval_at = run.now;
        record.value = value();
        if transition.is_some() {
            record.recommendation = Some(run.recommendation.get().clone());
        }
        if transition.is_some_and(|t| t.to != AlertState::Inactive) {
            record.annotations = self.render_annotations(run, &record, worker_index);
        }
        if transition.is_some() || record.lifecycle.state.is_active() {
            run.changes.push(AlertChange {
                record,
                transition,
                key: Some(key),
            });
        }
    }

    fn evaluate_target_down(
        &self,
        target: &TargetInfo,
        state: &TargetState,
        now: Timestamp,
        failures_in_a_row: u32,
        recommendation: &Pending<'_>,
        changes: &mut Vec<AlertChange>,
    ) {
        let down = failures_in_a_row >= self.target_down_after;
        let existing = state.instances.get(&InstanceKey::TargetDown);
        if existing.is_none() && !down {
            return;
        }
        let mut record = match existing {
            Some(record) => record.clone(),
            None => {
                let mut labels = target.labels.clone();
                labels.insert("alertname".into(), TARGET_DOWN.into());
                labels.insert("target".into(), target.name.clone());
                labels.insert("severity".into(), Severity::Critical.as_str().into());
                AlertRecord {
                    fingerprint: fingerprint(&labels),
                    alertname: TARGET_DOWN.to_string(),
                    target: target.name.clone(),
                    worker_id: None,
                    severity: Severity::Critical,
                    labels,
                    annotations: BTreeMap::new(),
                    lifecycle: Lifecycle::default(),
                    value: None,
                    last_eval_at: now,
                    recommendation: None,
                }
            }
        };
        let (lifecycle, transition) = lifecycle::step(
            &record.lifecycle,
            Condition::holds(down),
            now,
            Timing::default(),
        );
        record.lifecycle = lifecycle;
        record.last_eval_at = now;
        record.value = Some(f64::from(failures_in_a_row));
        if transition.is_some() {
            record.recommendation = Some(recommendation.get().clone());
        }
        if transition.is_some_and(|t| t.to == AlertState::Firing) {
            record.annotations = BTreeMap::from([
                (
                    "summary".to_string(),
                    format!(
                        "{}: the last {} polls of the Vast API failed",
                        target.name, failures_in_a_row
                    ),
                ),
                (
                    "description".to_string(),
                    "vastwatch cannot read this fleet's worker list, so no other alert can \
                     fire for it. Check `vastwatch history` and the polls table for the \
                     failure reason (auth, rate limiting, Vast outage)."
                        .to_string(),
                ),
            ]);
        }
        if transition.is_some() || record.lifecycle.state.is_active() {
            changes.push(AlertChange {
                record,
                transition,
                key: Some(InstanceKey::TargetDown),
            });
        }
    }

    fn render_annotations(
        &self,
        run: &RuleEvaluation<'_, '_>,
        record: &AlertRecord,
        worker_index: Option<usize>,
    ) -> BTreeMap<String, String> {
        let rule = run.rule;
        let context = run.context;
        if rule.annotations.is_empty() {
            return BTreeMap::new();
        }
        let mut values: BTreeMap<String, TemplateValue> = BTreeMap::new();
        let fleet_values: BTreeMap<String, TemplateValue> = self
            .template_identifiers
            .fleet
            .iter()
            .map(|(name, compiled)| (name.clone(), template_value(compiled.eval_fleet(context))))
            .collect();
        match worker_index {
            Some(worker_index) => {
                for (name, compiled) in &self.template_identifiers.worker {
                    values.insert(
                        name.clone(),
                        template_value(compiled.eval_worker(context, worker_index)),
                    );
                }
                values.insert("fleet".into(), TemplateValue::from(fleet_values));
                values.insert(
                    "worker_id".into(),
                    TemplateValue::from(
                        record
                            .worker_id
                            .map(|id| id.to_string())
                            .unwrap_or_default(),
                    ),
                );
            }
            None => values.extend(fleet_values),
        }
        for (name, value) in context.vars {
            values.insert(name.clone(), number_value(*value));
        }
        values.insert("target".into(), TemplateValue::from(record.target.clone()));
        values.insert("labels".into(), TemplateValue::from(record.labels.clone()));
        values.insert(
            "value".into(),
            record.value.map_or(TemplateValue::from(()), number_value),
        );
        values.insert(
            "recommendation".into(),
            TemplateValue::from(minijinja::value::Serde(run.recommendation.get())),
        );
        let context = TemplateValue::from(values);
        rule.annotations
            .iter()
            .map(|(name, key)| (name.clone(), self.rules.templates.render(key, &context)))
            .collect()
    }

    /// Commits an evaluation: the history grows by its snapshot and the instances take
    /// their new states. Inactive and resolved instances are forgotten (their rows stay).
    pub fn apply(&mut self, evaluation: Evaluation) {
        let Some(state) = self.states.get_mut(&evaluation.target) else {
            return;
        };
        state.failures_in_a_row = evaluation.failures_in_a_row;
        state.last_poll = Some(evaluation.last_poll);
        state.recommendation = Some(Latest {
            recommendation: evaluation.recommendation,
            reason: evaluation.unwritten_reason,
            written: OnceLock::new(),
        });
        for update in evaluation.updates {
            if let Some(record) = state.instances.get_mut(&update.key) {
                record.lifecycle = update.lifecycle;
                record.value = update.value;
                record.last_eval_at = update.at;
            }
        }
        for change in evaluation.changes {
            let Some(key) = change.key else {
                continue;
            };
            if change.record.lifecycle.state.is_active() {
                state.instances.insert(key, change.record);
            } else {
                state.instances.remove(&key);
            }
        }
    }
}

/// The identity labels of an instance (SPEC §6.4): the target's labels, overridden by the
/// rule's, then the four reserved ones.
pub fn identity_labels(rule: &Rule, target: &TargetInfo, worker_id: Option<i64>) -> LabelSet {
    let mut labels = target.labels.clone();
    labels.extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.insert("alertname".into(), rule.name.clone());
    labels.insert("target".into(), target.name.clone());
    labels.insert("severity".into(), rule.severity.as_str().into());
    if let Some(worker_id) = worker_id {
        labels.insert("worker_id".into(), worker_id.to_string());
    }
    labels
}

fn trim(history: &mut VecDeque<Arc<Snapshot>>, now: Timestamp, window: Duration) {
    let oldest = now.saturating_sub(window);
    while history.len() > 1 && history.front().is_some_and(|s| s.at < oldest) {
        history.pop_front();
    }
}

fn template_value(value: Value) -> TemplateValue {
    match value {
        Value::Number(number) => number_value(number),
        Value::Bool(boolean) => TemplateValue::from(boolean),
        Value::Str(text) => TemplateValue::from(text.to_string()),
        Value::Missing => TemplateValue::from(()),
    }
}

/// Whole numbers render without a fraction (`4`, not `4.0`): counts and limits read
/// naturally in annotations.
fn number_value(number: f64) -> TemplateValue {
    if number.fract() == 0.0 && number.abs() < 9.0e15 {
        TemplateValue::from(number as i64)
    } else {
        TemplateValue::from(number)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::model::{PollResult, WorkerSample};

    fn engine() -> Engine {
        let mut rules = RuleSet::empty();
        let targets = vec![super::super::file::TargetVars {
            name: "t".to_string(),
            vars: Default::default(),
        }];
        rules
            .parse_into(
                Path::new("r.yaml"),
                "rules:\n  - alert: Busy\n    scope: fleet\n    expr: workers > 0\n",
                &identifiers(),
                &targets,
                true,
            )
            .expect("rule");
        let target = TargetInfo {
            name: "t".to_string(),
            kind: TargetKind::Endpoint,
            vast_id: 1,
            labels: LabelSet::new(),
            vars: BTreeMap::new(),
            scaling: ScalingConfig::default(),
        };
        Engine::new(
            Arc::new(rules),
            &identifiers(),
            vec![target],
            3,
            Duration::from_secs(10),
        )
    }

    fn poll(secs: i64) -> PollRecord {
        PollRecord {
            target: "t".to_string(),
            started_at: Timestamp::from_unix_millis(secs * 1000),
            duration: Duration::ZERO,
            result: PollResult::Snapshot {
                workers: vec![WorkerSample::new(1)],
                notes: Vec::new(),
            },
        }
    }

    #[test]
    fn a_discarded_evaluation_leaves_the_engine_as_it_was() {
        let mut engine = engine();
        let first = engine.evaluate(&poll(10));
        let transitions: Vec<_> = first.transitions().map(|(_, t)| (t.from, t.to)).collect();
        assert_eq!(
            transitions,
            vec![(AlertState::Inactive, AlertState::Firing)]
        );
        engine.discard(first);
        assert_eq!(engine.active_alerts().count(), 0);
        assert_eq!(engine.state_history_len("t"), 0);

        let again = engine.evaluate(&poll(10));
        assert_eq!(
            again.transitions().count(),
            1,
            "the same transition, not lost"
        );
        engine.apply(again);
        assert_eq!(engine.active_alerts().count(), 1);
        assert_eq!(engine.state_history_len("t"), 1);
        let next = engine.evaluate(&poll(20));
        assert_eq!(
            next.transitions().count(),
            0,
            "and not repeated once applied"
        );
    }
}
