//! The words and the commands of a recommendation: one sentence with the numbers, and the
//! `vastai` lines that carry it out.

use std::time::Duration;

use super::demand::{Decision, Hold, Sizing};
use super::replace::{Replacement, Why};
use super::{Clamp, STALE_AFTER_INTERVALS, ScalingConfig, Staleness};
use crate::model::TargetKind;
use crate::time::format_duration;

/// How many replacements the sentence names before "and N more" (all are in `replace`).
const NAMED_REPLACEMENTS: usize = 3;

/// Everything the sentence and the commands are made from, besides the config. It owns
/// its figures, so the sentence can be written later than the advice is made, or never:
/// replay writes it only for recommendations it reports.
#[derive(Debug, Clone)]
pub(super) struct Outcome {
    pub staleness: Option<Staleness>,
    pub sizing: Option<Sizing>,
    pub decision: Decision,
    pub current: u32,
    pub desired: u32,
    pub unclamped: u32,
    pub clamped_by: Option<Clamp>,
    pub replacements: Vec<Replacement>,
    pub interval: Duration,
    pub data_age: Option<Duration>,
}

impl Outcome {
    pub fn sentence(&self, config: &ScalingConfig) -> String {
        if let Some(staleness) = self.staleness {
            return self.investigate(staleness);
        }
        let Some(sizing) = &self.sizing else {
            return self.investigate(Staleness::NoData);
        };
        let situation = self.situation(sizing, config);
        let clamp = match self.clamped_by {
            Some(Clamp::MaxWorkers) => {
                format!(", but max_workers is {}", config.max_workers.unwrap_or(0))
            }
            Some(Clamp::MinWorkers) => {
                format!(", but min_workers is {}", config.min_workers.unwrap_or(0))
            }
            None => String::new(),
        };
        let verdict = match self.desired.cmp(&self.current) {
            std::cmp::Ordering::Greater => {
                format!(
                    "add {} (to {})",
                    workers(self.desired - self.current),
                    self.desired
                )
            }
            std::cmp::Ordering::Less => format!(
                "remove {} (to {})",
                workers(self.current - self.desired),
                self.desired
            ),
            std::cmp::Ordering::Equal => format!("hold at {}", workers(self.desired)),
        };
        format!(
            "{situation}{clamp}, so {verdict}{}.",
            replace_clause(&self.replacements, config)
        )
    }

    fn investigate(&self, staleness: Staleness) -> String {
        let age = self.data_age.map(whole_seconds).unwrap_or_default();
        match staleness {
            Staleness::NoData => {
                "No successful poll of this target is on record, so investigate before scaling."
                    .to_string()
            }
            Staleness::LastPollFailed => format!(
                "The latest poll failed and the last good data is {age} old, so investigate \
                 before scaling."
            ),
            Staleness::TooOld => format!(
                "The latest data is {age} old, more than {STALE_AFTER_INTERVALS} poll intervals \
                 of {}, so investigate before scaling.",
                format_duration(self.interval)
            ),
        }
    }

    /// The sentence up to the verdict: what demand needs against what there is.
    fn situation(&self, sizing: &Sizing, config: &ScalingConfig) -> String {
        let counts = sizing.counts();
        let fleet = format!(
            "there are {} ({} ready, {} starting)",
            self.current, counts.ready, counts.starting
        );
        let per_worker = sizing.per_worker.map_or(0.0, |p| p.perf);
        let needs = |need: u32| {
            format!(
                "needs {} of {} perf at {} target utilization",
                workers(need),
                number(per_worker),
                percent(config.target_util)
            )
        };
        let demand = demand_phrase(sizing, config);
        let window = format_duration(config.scale_down_window);
        match self.decision {
            Decision::Unchanged => String::new(),
            Decision::DemandUnknown => {
                format!("Demand is unknown (no worker reports cur_load_rolling_avg) and {fleet}")
            }
            Decision::PerfUnknown => format!(
                "Per-worker perf is unknown (no worker reports perf, measured_perf or dlperf) \
                 and {fleet}"
            ),
            Decision::ScaleUp { need } | Decision::Hold(Hold::SameCount { need }) => {
                format!("{demand} {} and {fleet}", needs(need))
            }
            Decision::ScaleDown { need, to } => format!(
                "{demand} {}, desired was at most {to} over the last {window} and {fleet}",
                needs(need)
            ),
            Decision::Hold(Hold::WithinTolerance { ratio }) => {
                let capacity = if sizing.incoming() > 0.0 {
                    format!(
                        "{} ready + {} starting capacity",
                        number(sizing.capacity),
                        number(sizing.incoming())
                    )
                } else {
                    format!("{} ready capacity", number(sizing.capacity))
                };
                format!(
                    "{demand} is {} of the target load of {} ({capacity} at {}), within the {} \
                     tolerance",
                    percent(ratio),
                    number((sizing.capacity + sizing.incoming()) * config.target_util),
                    percent(config.target_util),
                    percent(config.tolerance)
                )
            }
            Decision::Hold(Hold::WindowNotCovered { need }) => format!(
                "{demand} {} and {fleet}, but the history does not yet show that for the whole \
                 {window} scale-down window",
                needs(need)
            ),
            Decision::Hold(Hold::NeededInWindow { need, window_max }) => format!(
                "{demand} {} and {fleet}, but desired was {window_max} within the last {window}",
                needs(need)
            ),
        }
    }
}

/// "Demand 1500" or, when the trend raises the forecast, "Demand 1500, rising 40/min
/// toward 1700 in 5m,".
fn demand_phrase(sizing: &Sizing, config: &ScalingConfig) -> String {
    let demand = sizing.demand.unwrap_or(0.0);
    let forecast = sizing.forecast_demand(config).unwrap_or(demand);
    match sizing.trend_per_min {
        Some(trend) if forecast > demand => format!(
            "Demand {}, rising {}/min toward {} in {},",
            number(demand),
            number(trend),
            number(forecast),
            format_duration(config.cold_start)
        ),
        _ => format!("Demand {}", number(demand)),
    }
}

/// "; replace worker 101 (reliability 0.85, below 0.9 for 10m) and worker 102 (error for
/// 20m)", or nothing.
fn replace_clause(replacements: &[Replacement], config: &ScalingConfig) -> String {
    if replacements.is_empty() {
        return String::new();
    }
    let mut named: Vec<String> = replacements
        .iter()
        .take(NAMED_REPLACEMENTS)
        .map(|replacement| {
            let why = match &replacement.why {
                Why::Failed { status, for_ } => format!("{status} for {}", whole_seconds(*for_)),
                Why::StuckStarting { status, for_ } => {
                    format!("stuck {status} for {}", whole_seconds(*for_))
                }
                Why::LowReliability { latest } => format!(
                    "reliability {}, below {} for {}",
                    number(*latest),
                    number(config.replace_below),
                    format_duration(config.lookback)
                ),
            };
            format!("worker {} ({why})", replacement.worker_id)
        })
        .collect();
    let more = replacements.len().saturating_sub(NAMED_REPLACEMENTS);
    if more > 0 {
        named.push(format!("{more} more"));
    }
    let list = match named.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => named.concat(),
    };
    format!("; replace {list}")
}

/// The `vastai` lines that carry the recommendation out, where the target and config give
/// enough to write them (docs/advisor.md, "Commands").
pub(super) fn commands(outcome: &Outcome, kind: TargetKind, vast_id: i64) -> Vec<String> {
    if outcome.staleness.is_some() || outcome.sizing.is_none() {
        return vec![match kind {
            TargetKind::Endpoint => "vastai show endpoints".to_string(),
            TargetKind::WorkerGroup => "vastai show workergroups".to_string(),
        }];
    }
    let mut commands = Vec::new();
    let needs_more_than_max = matches!(outcome.decision, Decision::ScaleUp { .. })
        && outcome.clamped_by == Some(Clamp::MaxWorkers);
    if needs_more_than_max && kind == TargetKind::Endpoint {
        commands.push(format!(
            "vastai update endpoint {vast_id} --max_workers {}",
            outcome.unclamped
        ));
    }
    if outcome.desired != outcome.current {
        commands.push(match kind {
            TargetKind::Endpoint => format!(
                "vastai update endpoint {vast_id} --cold_workers {}",
                outcome.desired
            ),
            TargetKind::WorkerGroup => format!(
                "vastai update workergroup {vast_id} --cold_workers {}",
                outcome.desired
            ),
        });
    }
    commands.extend(
        outcome
            .replacements
            .iter()
            .map(|replacement| format!("vastai destroy instance {}", replacement.worker_id)),
    );
    commands
}

/// "1 worker", "5 workers".
fn workers(count: u32) -> String {
    if count == 1 {
        "1 worker".to_string()
    } else {
        format!("{count} workers")
    }
}

/// A number as an operator reads it: whole above 100, one decimal above 10, else two, with
/// trailing zeros dropped: 1234.56 → "1235", 45.25 → "45.3", 0.5 → "0.5".
pub(super) fn number(value: f64) -> String {
    let decimals = if value.abs() >= 100.0 {
        0
    } else if value.abs() >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{value:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    if text == "-0" { "0".to_string() } else { text }
}

/// 0.9 → "90%".
fn percent(fraction: f64) -> String {
    format!("{}%", number(fraction * 100.0))
}

/// A duration to whole seconds, formatted: 95.4s → "1m35s".
fn whole_seconds(duration: Duration) -> String {
    format_duration(Duration::from_secs(duration.as_secs_f64().round() as u64))
}
