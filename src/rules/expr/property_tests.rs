//! Property tests: the compiler never panics on any text, every well-typed expression the
//! generator writes compiles, and evaluating anything that compiled never panics and
//! returns a value of the compiled type, over random histories with missing values,
//! absent workers and empty fleets.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use super::{Compiled, EvalContext, Identifiers, Scope, Snapshot, Type, Value, compile};
use crate::model::WorkerSample;
use crate::time::Timestamp;

const KNOWN_VARS: [&str; 3] = ["max_reqs", "target_util", "missing_var"];

fn identifiers() -> Identifiers {
    Identifiers::standard()
        .with_fleet_number("desired_workers")
        .with_fleet_number("scale_delta")
}

fn known_vars() -> BTreeSet<String> {
    KNOWN_VARS.into_iter().map(String::from).collect()
}

// ---- random histories ------------------------------------------------------------------

fn arb_number() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        4 => (-1000.0..1000.0f64).prop_map(Some),
        2 => Just(None),
        1 => prop::sample::select(vec![
            0.0,
            -0.0,
            1.0,
            1e308,
            -1e308,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
        ])
        .prop_map(Some),
    ]
}

fn arb_worker() -> impl Strategy<Value = WorkerSample> {
    let status = prop::option::of(prop::sample::select(vec![
        "running",
        "idle",
        "loading",
        "error",
        "stopped",
        "teleporting",
    ]));
    let extra = prop::option::of(prop::sample::select(vec![
        json!({"loop_lag_max": 0.5}),
        json!({"loop_lag_max": "NaN"}),
        json!({"loop_lag_max": null, "other": [1, 2]}),
    ]));
    (1..8i64, status, prop::array::uniform11(arb_number()), extra).prop_map(
        |(id, status, values, extra)| WorkerSample {
            worker_id: id,
            status: status.map(String::from),
            values,
            extra: extra.and_then(|value| value.as_object().cloned()),
        },
    )
}

/// Up to six snapshots, each some milliseconds (possibly zero) after the one before.
fn arb_history() -> impl Strategy<Value = VecDeque<Arc<Snapshot>>> {
    let snapshot = (
        0..200_000i64,
        prop::collection::vec(arb_worker(), 0..5),
        prop::collection::vec(arb_number(), 0..3),
    );
    prop::collection::vec(snapshot, 0..6).prop_map(|snapshots| {
        let mut at = 1_700_000_000_000i64;
        snapshots
            .into_iter()
            .map(|(gap, mut workers, extras)| {
                at += gap;
                workers.sort_by_key(|worker| worker.worker_id);
                workers.dedup_by_key(|worker| worker.worker_id);
                Arc::new(Snapshot::new(
                    Timestamp::from_unix_millis(at),
                    &workers,
                    extras,
                ))
            })
            .collect()
    })
}

fn arb_vars() -> impl Strategy<Value = BTreeMap<String, f64>> {
    prop::collection::btree_map(
        prop::sample::select(KNOWN_VARS.to_vec()).prop_map(String::from),
        prop_oneof![Just(0.0), -10.0..10.0f64],
        0..3,
    )
}

// ---- random well-typed expressions ----------------------------------------------------

/// Writes expressions from a list of choices, so proptest can shrink a failure to a short
/// list. Every binary operation is parenthesised, so the text means what was generated.
struct Writer<'c> {
    choices: &'c [u8],
    position: usize,
}

/// What may appear where the writer is.
#[derive(Clone, Copy)]
struct Place {
    scope: Scope,
    depth: u32,
    in_aggregate: bool,
    windows: u32,
}

impl Place {
    fn deeper(self) -> Place {
        Place {
            depth: self.depth.saturating_sub(1),
            ..self
        }
    }
}

const WORKER_NUMBERS: [&str; 14] = [
    "cur_load",
    "new_load",
    "cur_load_rolling_avg",
    "cur_perf",
    "measured_perf",
    "perf",
    "reliability",
    "dlperf",
    "reqs_working",
    "disk_usage",
    "loaded_at",
    "age",
    "utilization",
    "extra(\"loop_lag_max\")",
];

const FLEET_NUMBERS: [&str; 15] = [
    "workers",
    "ready",
    "starting",
    "inactive",
    "failed",
    "load",
    "new_load",
    "load_rolling",
    "perf",
    "cur_perf",
    "measured_perf",
    "reqs_working",
    "utilization",
    "desired_workers",
    "scale_delta",
];

const CONSTANTS: [&str; 10] = [
    "0",
    "1",
    "0.5",
    "1e3",
    "-2",
    "0s",
    "30s",
    "10m",
    "max_reqs",
    "missing_var",
];

const WINDOWS: [&str; 4] = ["0s", "1m", "90s", "10m"];

impl Writer<'_> {
    fn pick(&mut self, count: usize) -> usize {
        let choice = self.choices.get(self.position).copied().unwrap_or(0);
        self.position += 1;
        usize::from(choice) % count
    }

    fn select<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.pick(options.len())]
    }

    fn number(&mut self, place: Place) -> String {
        if place.depth == 0 {
            return self.number_leaf(place);
        }
        let inner = place.deeper();
        match self.pick(14) {
            0 | 1 => self.number_leaf(place),
            2 => {
                let op = self.select(&["+", "-", "*", "/"]);
                format!("({} {op} {})", self.number(inner), self.number(inner))
            }
            3 => format!("-{}", self.number(inner)),
            4 => {
                let function = self.select(&["abs"]);
                format!("{function}({})", self.number(inner))
            }
            5 => {
                let function = self.select(&["least", "greatest", "default"]);
                format!("{function}({}, {})", self.number(inner), self.number(inner))
            }
            6..=9 if place.scope == Scope::Fleet && !place.in_aggregate => {
                let worker = Place {
                    scope: Scope::Worker,
                    in_aggregate: true,
                    ..inner
                };
                match self.pick(3) {
                    0 => format!("count({})", self.boolean(worker)),
                    1 => {
                        let function = self.select(&["sum", "avg", "min", "max", "median"]);
                        format!("{function}({})", self.number(worker))
                    }
                    _ => {
                        let q = self.select(&["0", "0.5", "0.95", "1"]);
                        format!("quantile({q}, {})", self.number(worker))
                    }
                }
            }
            10..=13 if place.windows < 2 => {
                let window = self.select(&WINDOWS);
                let nested = Place {
                    windows: place.windows + 1,
                    ..inner
                };
                match self.pick(3) {
                    0 => format!("count_over({}, {window})", self.boolean(nested)),
                    1 => {
                        let horizon = self.number(inner);
                        format!("predict({}, {window}, {horizon})", self.number(nested))
                    }
                    _ => {
                        let function = self.select(&[
                            "avg_over", "min_over", "max_over", "delta", "rate", "slope",
                        ]);
                        format!("{function}({}, {window})", self.number(nested))
                    }
                }
            }
            _ => self.number_leaf(place),
        }
    }

    fn number_leaf(&mut self, place: Place) -> String {
        match (self.pick(3), place.scope) {
            (0, _) => self.select(&CONSTANTS).to_string(),
            (1, Scope::Worker) => self.select(&WORKER_NUMBERS).to_string(),
            (_, Scope::Worker) => format!("fleet.{}", self.select(&FLEET_NUMBERS)),
            (_, Scope::Fleet) => self.select(&FLEET_NUMBERS).to_string(),
        }
    }

    fn boolean(&mut self, place: Place) -> String {
        if place.depth == 0 {
            return self.select(&["true", "false"]).to_string();
        }
        let inner = place.deeper();
        match self.pick(9) {
            0 => self.select(&["true", "false"]).to_string(),
            1 | 2 => {
                let op = self.select(&["<", "<=", ">", ">=", "==", "!="]);
                format!("({} {op} {})", self.number(inner), self.number(inner))
            }
            3 => {
                let op = self.select(&["==", "!="]);
                format!("({} {op} {})", self.string(inner), self.string(inner))
            }
            4 => {
                let op = self.select(&["&&", "||", "and", "or", "==", "!="]);
                format!("({} {op} {})", self.boolean(inner), self.boolean(inner))
            }
            5 => {
                let op = self.select(&["!", "not "]);
                format!("{op}{}", self.boolean(inner))
            }
            6 => format!("present({})", self.any(inner)),
            7 => format!("default({}, {})", self.boolean(inner), self.boolean(inner)),
            _ => format!("({} > {})", self.number(inner), self.number(inner)),
        }
    }

    fn string(&mut self, place: Place) -> String {
        let inner = place.deeper();
        match (self.pick(3), place.scope) {
            (0, Scope::Worker) => "status".to_string(),
            (1, _) if place.depth > 0 => {
                format!("default({}, {})", self.string(inner), self.string(inner))
            }
            _ => self
                .select(&["\"running\"", "'loading'", "\"\"", "\"teleporting\""])
                .to_string(),
        }
    }

    fn any(&mut self, place: Place) -> String {
        match self.pick(3) {
            0 => self.number(place),
            1 => self.boolean(place),
            _ => self.string(place),
        }
    }
}

/// Leaves of every type and both scopes, and names that do not exist.
const ANY_LEAVES: [&str; 16] = [
    "1",
    "0.5",
    "10m",
    "\"running\"",
    "true",
    "perf",
    "status",
    "age",
    "workers",
    "ready",
    "fleet.ready",
    "fleet.nope",
    "max_reqs",
    "missing_var",
    "nope",
    "extra(\"loop_lag_max\")",
];

const ANY_OPERATORS: [&str; 16] = [
    "+", "-", "*", "/", "<", "<=", ">", ">=", "==", "!=", "&&", "||", "and", "or", "+", "*",
];

const ANY_FUNCTIONS: [&str; 23] = [
    "abs",
    "least",
    "greatest",
    "default",
    "present",
    "extra",
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "median",
    "quantile",
    "avg_over",
    "min_over",
    "max_over",
    "count_over",
    "delta",
    "rate",
    "slope",
    "predict",
    "nope",
    "perf",
];

impl Writer<'_> {
    /// A syntactically well-formed expression that may or may not type-check: any
    /// operator over any operands, any function with any number of arguments, with or
    /// without parentheses.
    fn untyped(&mut self, depth: u32) -> String {
        if depth == 0 || self.pick(4) == 0 {
            return self.select(&ANY_LEAVES).to_string();
        }
        match self.pick(4) {
            0 => {
                let op = self.select(&ANY_OPERATORS);
                format!(
                    "{} {op} {}",
                    self.untyped(depth - 1),
                    self.untyped(depth - 1)
                )
            }
            1 => {
                let op = self.select(&["-", "!", "not "]);
                format!("{op}{}", self.untyped(depth - 1))
            }
            2 => {
                let function = self.select(&ANY_FUNCTIONS);
                let args: Vec<String> =
                    (0..self.pick(4)).map(|_| self.untyped(depth - 1)).collect();
                format!("{function}({})", args.join(", "))
            }
            _ => format!("({})", self.untyped(depth - 1)),
        }
    }
}

fn write_expression(choices: &[u8], scope: Scope, kind: u8) -> String {
    let mut writer = Writer {
        choices,
        position: 0,
    };
    let place = Place {
        scope,
        depth: 5,
        in_aggregate: false,
        windows: 0,
    };
    match kind % 3 {
        0 => writer.boolean(place),
        1 => writer.number(place),
        _ => writer.string(place),
    }
}

// ---- random token soup ----------------------------------------------------------------

const TOKENS: [&str; 48] = [
    "perf",
    "reliability",
    "status",
    "age",
    "workers",
    "fleet.ready",
    "fleet.perf",
    "fleet",
    "max_reqs",
    "missing_var",
    "count",
    "avg_over",
    "predict",
    "quantile",
    "extra",
    "default",
    "present",
    "abs",
    "min",
    "(",
    ")",
    ")",
    ",",
    "+",
    "-",
    "*",
    "/",
    "<",
    ">=",
    "==",
    "!=",
    "&&",
    "||",
    "!",
    "and",
    "not",
    "true",
    "1",
    "0.9",
    "1e3",
    "10m",
    "0s",
    "\"running\"",
    "'x",
    "=",
    ".",
    "#",
    "é",
];

fn arb_token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (prop::sample::select(TOKENS.to_vec()), any::<bool>()),
        0..24,
    )
    .prop_map(|tokens| {
        let mut text = String::new();
        for (token, space) in tokens {
            text.push_str(token);
            if space {
                text.push(' ');
            }
        }
        text
    })
}

// ---- the properties -------------------------------------------------------------------

/// Evaluates `compiled` everywhere it can be evaluated and checks each result's type.
fn evaluate_everywhere(
    compiled: &Compiled,
    history: &VecDeque<Arc<Snapshot>>,
    vars: &BTreeMap<String, f64>,
) -> Result<(), TestCaseError> {
    let ctx = EvalContext { history, vars };
    let mut results = vec![(compiled.eval_fleet(&ctx), compiled.eval_value_fleet(&ctx))];
    let workers = history.back().map_or(0, |snapshot| snapshot.workers.len());
    for index in 0..=workers {
        results.push((
            compiled.eval_worker(&ctx, index),
            compiled.eval_value_worker(&ctx, index),
        ));
    }
    for (value, annotation_value) in results {
        let fits = match (compiled.result_type(), &value) {
            (_, Value::Missing) => true,
            (Type::Number | Type::Duration, Value::Number(number)) => !number.is_nan(),
            (Type::Bool, Value::Bool(_)) => true,
            (Type::String, Value::Str(_)) => true,
            _ => false,
        };
        prop_assert!(
            fits,
            "{:?} of type {} gave {value:?}",
            compiled.text(),
            compiled.result_type()
        );
        prop_assert!(annotation_value.is_none_or(|number| !number.is_nan()));
    }
    Ok(())
}

fn arb_scope() -> impl Strategy<Value = Scope> {
    prop_oneof![Just(Scope::Worker), Just(Scope::Fleet)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn well_typed_expressions_compile_and_evaluate_without_panicking(
        choices in prop::collection::vec(any::<u8>(), 0..80),
        kind in any::<u8>(),
        scope in arb_scope(),
        history in arb_history(),
        vars in arb_vars(),
    ) {
        let text = write_expression(&choices, scope, kind);
        let compiled = compile(&text, scope, &identifiers(), &known_vars());
        let compiled = match compiled {
            Ok(compiled) => compiled,
            Err(error) => return Err(TestCaseError::fail(format!("{text:?} in {scope} scope: {error}"))),
        };
        evaluate_everywhere(&compiled, &history, &vars)?;
    }

    #[test]
    fn well_formed_expressions_compile_or_fail_and_evaluate_without_panicking(
        choices in prop::collection::vec(any::<u8>(), 0..80),
        scope in arb_scope(),
        history in arb_history(),
        vars in arb_vars(),
    ) {
        let mut writer = Writer { choices: &choices, position: 0 };
        let text = writer.untyped(5);
        match compile(&text, scope, &identifiers(), &known_vars()) {
            Ok(compiled) => evaluate_everywhere(&compiled, &history, &vars)?,
            Err(error) => {
                prop_assert!(error.column <= text.chars().count(), "{text:?}: {error:?}");
                prop_assert!(!error.message.is_empty());
            }
        }
    }

    #[test]
    fn any_token_sequence_compiles_or_fails_with_a_column_inside_the_text(
        text in arb_token_soup(),
        scope in arb_scope(),
        history in arb_history(),
        vars in arb_vars(),
    ) {
        match compile(&text, scope, &identifiers(), &known_vars()) {
            Ok(compiled) => evaluate_everywhere(&compiled, &history, &vars)?,
            Err(error) => {
                prop_assert!(error.column <= text.chars().count(), "{text:?}: {error:?}");
                prop_assert!(!error.message.is_empty());
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_compiler(text in "\\PC{0,64}", scope in arb_scope()) {
        if let Err(error) = compile(&text, scope, &identifiers(), &known_vars()) {
            prop_assert!(error.column <= text.chars().count(), "{text:?}: {error:?}");
        }
    }
}
