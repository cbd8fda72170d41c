//! The compiled, typed program and its evaluator. Identifiers are already slots here; a
//! number that is NaN is a missing value, a truth of `None` is unknown.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use super::functions::{Regression, quantile};
use super::history::{HistSample, Snapshot};
use super::identifiers::FleetNumber;
use crate::model::{Field, StateClass};

/// The result of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Numbers and durations (in seconds). Never NaN.
    Number(f64),
    Bool(bool),
    Str(Arc<str>),
    /// A missing number or string, or an unknown truth.
    Missing,
}

impl Value {
    /// Whether the value is `true`: a rule fires only then, never on unknown.
    pub fn is_true(&self) -> bool {
        matches!(self, Value::Bool(true))
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(number) => Some(*number),
            _ => None,
        }
    }

    pub fn is_missing(&self) -> bool {
        matches!(self, Value::Missing)
    }

    pub(crate) fn number(value: f64) -> Value {
        if value.is_nan() {
            Value::Missing
        } else {
            Value::Number(value)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arithmetic {
    Add,
    Subtract,
    Multiply,
    Divide,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    Equal,
    NotEqual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aggregate {
    Sum,
    Avg,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Window {
    Avg,
    Min,
    Max,
    Delta,
    Rate,
    Slope,
}

/// A number-valued node (numbers and durations alike).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Num {
    Const(f64),
    Field(Field),
    Age,
    WorkerUtilization,
    Fleet(FleetNumber),
    FleetExtra(usize),
    /// A slot in the vars resolved at the start of an evaluation.
    Var(usize),
    Extra(Box<str>),
    Negate(Box<Num>),
    Arithmetic(Arithmetic, Box<Num>, Box<Num>),
    Abs(Box<Num>),
    Least(Box<Num>, Box<Num>),
    Greatest(Box<Num>, Box<Num>),
    Default(Box<Num>, Box<Num>),
    Count(Box<Truth>),
    Aggregate(Aggregate, Box<Num>),
    Quantile(f64, Box<Num>),
    /// A window function over `window_ms` milliseconds of history.
    Window(Window, Box<Num>, i64),
    CountOver(Box<Truth>, i64),
    Predict(Box<Num>, i64, Box<Num>),
}

/// A boolean-valued node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Truth {
    Const(bool),
    Not(Box<Truth>),
    And(Box<Truth>, Box<Truth>),
    Or(Box<Truth>, Box<Truth>),
    CompareNumbers(Comparison, Box<Num>, Box<Num>),
    /// `==` (true) or `!=` (false) between strings.
    CompareTexts(bool, Box<Text>, Box<Text>),
    /// `==` (true) or `!=` (false) between booleans.
    CompareTruths(bool, Box<Truth>, Box<Truth>),
    Present(Box<Typed>),
    Default(Box<Truth>, Box<Truth>),
}

/// A string-valued node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Text {
    Const(Arc<str>),
    Status,
    /// The state class of the worker's status (reference doc).
    Class,
    Default(Box<Text>, Box<Text>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Typed {
    Num(Num),
    Truth(Truth),
    Text(Text),
}

/// Where a node is evaluated: one snapshot of the history (and one worker of it, in
/// worker scope).
#[derive(Clone, Copy)]
pub(crate) struct Frame<'a> {
    pub history: &'a VecDeque<Arc<Snapshot>>,
    pub vars: &'a [f64],
    /// Index of `snapshot` in `history`; windows look back from here.
    pub now: usize,
    pub snapshot: &'a Snapshot,
    /// The worker's position in `snapshot.workers`, and its sample.
    pub worker: Option<(usize, &'a HistSample)>,
}

impl Typed {
    pub fn eval(&self, frame: &Frame<'_>) -> Value {
        match self {
            Typed::Num(node) => Value::number(node.eval(frame)),
            Typed::Truth(node) => node.eval(frame).map_or(Value::Missing, Value::Bool),
            Typed::Text(node) => node
                .eval(frame)
                .map_or(Value::Missing, |text| Value::Str(Arc::clone(text))),
        }
    }

    /// The furthest back, in milliseconds, this node reads history.
    pub fn lookback_ms(&self) -> i64 {
        match self {
            Typed::Num(node) => node.lookback_ms(),
            Typed::Truth(node) => node.lookback_ms(),
            Typed::Text(_) => 0,
        }
    }
}

impl Num {
    pub fn eval(&self, frame: &Frame<'_>) -> f64 {
        match self {
            Num::Const(value) => *value,
            Num::Field(field) => worker_value(frame, *field),
            Num::Age => {
                let loaded_at = worker_value(frame, Field::LoadedAt);
                frame.snapshot.at.unix_secs_f64() - loaded_at
            }
            Num::WorkerUtilization => divide(
                worker_value(frame, Field::CurLoadRollingAvg),
                worker_value(frame, Field::Perf),
            ),
            Num::Fleet(number) => frame.snapshot.fleet.standard_raw(*number),
            Num::FleetExtra(slot) => frame.snapshot.fleet.extra_raw(*slot),
            Num::Var(slot) => frame.vars.get(*slot).copied().unwrap_or(f64::NAN),
            Num::Extra(name) => frame
                .worker
                .and_then(|(_, sample)| sample.extra.as_deref())
                .and_then(|extra| extra.get(&**name))
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(f64::NAN),
            Num::Negate(operand) => -operand.eval(frame),
            Num::Arithmetic(op, left, right) => {
                let left = left.eval(frame);
                if left.is_nan() {
                    return f64::NAN;
                }
                let right = right.eval(frame);
                match op {
                    Arithmetic::Add => left + right,
                    Arithmetic::Subtract => left - right,
                    Arithmetic::Multiply => left * right,
                    Arithmetic::Divide => divide(left, right),
                }
            }
            Num::Abs(operand) => operand.eval(frame).abs(),
            Num::Least(a, b) => both(a.eval(frame), b.eval(frame), f64::min),
            Num::Greatest(a, b) => both(a.eval(frame), b.eval(frame), f64::max),
            Num::Default(value, fallback) => {
                let value = value.eval(frame);
                if value.is_nan() {
                    fallback.eval(frame)
                } else {
                    value
                }
            }
            Num::Count(predicate) => {
                let mut count = 0u32;
                each_worker(frame, |worker| {
                    if predicate.eval(worker) == Some(true) {
                        count += 1;
                    }
                });
                f64::from(count)
            }
            Num::Aggregate(kind, operand) => aggregate(*kind, operand, frame),
            Num::Quantile(q, operand) => worker_quantile(*q, operand, frame),
            Num::Window(kind, operand, window_ms) => window(*kind, operand, *window_ms, frame),
            Num::CountOver(predicate, window_ms) => {
                let mut count = 0u32;
                each_in_window(frame, *window_ms, |past, _| {
                    if predicate.eval(past) == Some(true) {
                        count += 1;
                    }
                });
                f64::from(count)
            }
            Num::Predict(operand, window_ms, horizon) => {
                let horizon = horizon.eval(frame);
                if horizon.is_nan() {
                    return f64::NAN;
                }
                let line = regression(operand, *window_ms, frame);
                line.at(horizon)
            }
        }
    }

    pub fn lookback_ms(&self) -> i64 {
        match self {
            Num::Const(_)
            | Num::Field(_)
            | Num::Age
            | Num::WorkerUtilization
            | Num::Fleet(_)
            | Num::FleetExtra(_)
            | Num::Var(_)
            | Num::Extra(_) => 0,
            Num::Negate(operand)
            | Num::Abs(operand)
            | Num::Aggregate(_, operand)
            | Num::Quantile(_, operand) => operand.lookback_ms(),
            Num::Arithmetic(_, a, b)
            | Num::Least(a, b)
            | Num::Greatest(a, b)
            | Num::Default(a, b) => a.lookback_ms().max(b.lookback_ms()),
            Num::Count(predicate) => predicate.lookback_ms(),
            Num::Window(_, operand, window_ms) => window_ms.saturating_add(operand.lookback_ms()),
            Num::CountOver(predicate, window_ms) => {
                window_ms.saturating_add(predicate.lookback_ms())
            }
            Num::Predict(operand, window_ms, horizon) => window_ms
                .saturating_add(operand.lookback_ms())
                .max(horizon.lookback_ms()),
        }
    }
}

impl Truth {
    pub fn eval(&self, frame: &Frame<'_>) -> Option<bool> {
        match self {
            Truth::Const(value) => Some(*value),
            Truth::Not(operand) => operand.eval(frame).map(|value| !value),
            Truth::And(left, right) => match left.eval(frame) {
                Some(false) => Some(false),
                left => match (left, right.eval(frame)) {
                    (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                },
            },
            Truth::Or(left, right) => match left.eval(frame) {
                Some(true) => Some(true),
                left => match (left, right.eval(frame)) {
                    (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
            },
            Truth::CompareNumbers(op, left, right) => {
                let left = left.eval(frame);
                if left.is_nan() {
                    return None;
                }
                let right = right.eval(frame);
                if right.is_nan() {
                    return None;
                }
                Some(match op {
                    Comparison::Less => left < right,
                    Comparison::LessEqual => left <= right,
                    Comparison::Greater => left > right,
                    Comparison::GreaterEqual => left >= right,
                    Comparison::Equal => left == right,
                    Comparison::NotEqual => left != right,
                })
            }
            Truth::CompareTexts(equal, left, right) => {
                let left = left.eval(frame)?;
                let right = right.eval(frame)?;
                Some((left == right) == *equal)
            }
            Truth::CompareTruths(equal, left, right) => {
                let left = left.eval(frame)?;
                let right = right.eval(frame)?;
                Some((left == right) == *equal)
            }
            Truth::Present(operand) => Some(!operand.eval(frame).is_missing()),
            Truth::Default(value, fallback) => value.eval(frame).or_else(|| fallback.eval(frame)),
        }
    }

    pub fn lookback_ms(&self) -> i64 {
        match self {
            Truth::Const(_) => 0,
            Truth::Not(operand) => operand.lookback_ms(),
            Truth::And(a, b) | Truth::Or(a, b) | Truth::CompareTruths(_, a, b) => {
                a.lookback_ms().max(b.lookback_ms())
            }
            Truth::Default(a, b) => a.lookback_ms().max(b.lookback_ms()),
            Truth::CompareNumbers(_, a, b) => a.lookback_ms().max(b.lookback_ms()),
            Truth::CompareTexts(..) => 0,
            Truth::Present(operand) => operand.lookback_ms(),
        }
    }
}

impl Text {
    pub fn eval<'a>(&'a self, frame: &Frame<'a>) -> Option<&'a Arc<str>> {
        match self {
            Text::Const(text) => Some(text),
            Text::Status => frame.worker.and_then(|(_, sample)| sample.status.as_ref()),
            Text::Class => frame.worker.map(|(_, sample)| class_name(sample.class)),
            Text::Default(value, fallback) => value.eval(frame).or_else(|| fallback.eval(frame)),
        }
    }
}

/// The class names as shared strings, so evaluating `class` never allocates.
fn class_name(class: StateClass) -> &'static Arc<str> {
    static NAMES: OnceLock<[Arc<str>; 5]> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        [
            StateClass::Ready,
            StateClass::Starting,
            StateClass::Inactive,
            StateClass::Failed,
            StateClass::Unknown,
        ]
        .map(|class| Arc::from(class.as_str()))
    });
    let index = match class {
        StateClass::Ready => 0,
        StateClass::Starting => 1,
        StateClass::Inactive => 2,
        StateClass::Failed => 3,
        StateClass::Unknown => 4,
    };
    &names[index]
}

fn worker_value(frame: &Frame<'_>, field: Field) -> f64 {
    frame
        .worker
        .map_or(f64::NAN, |(_, sample)| sample.values[field.index()])
}

/// Division where a zero divisor gives a missing value rather than infinity.
fn divide(dividend: f64, divisor: f64) -> f64 {
    if divisor == 0.0 {
        f64::NAN
    } else {
        dividend / divisor
    }
}

/// `combine(a, b)`, or missing when either is missing.
fn both(a: f64, b: f64, combine: fn(f64, f64) -> f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        combine(a, b)
    }
}

/// Calls `visit` with a frame for each worker of the frame's snapshot.
fn each_worker<'a>(frame: &Frame<'a>, mut visit: impl FnMut(&Frame<'a>)) {
    for (position, sample) in frame.snapshot.workers.iter().enumerate() {
        visit(&Frame {
            worker: Some((position, sample)),
            ..*frame
        });
    }
}

/// Calls `visit`, newest first, with a frame for each snapshot at most `window_ms` older
/// than the frame's (the frame's own included) and the snapshot's time in seconds relative
/// to it. In worker scope, snapshots where the worker is absent are skipped.
fn each_in_window<'a>(frame: &Frame<'a>, window_ms: i64, mut visit: impl FnMut(&Frame<'a>, f64)) {
    let now_ms = frame.snapshot.at.unix_millis();
    let cutoff = now_ms.saturating_sub(window_ms);
    let mut hint = frame.worker.map_or(0, |(position, _)| position);
    for index in (0..=frame.now).rev() {
        let Some(snapshot) = frame.history.get(index) else {
            continue;
        };
        let at = snapshot.at.unix_millis();
        if at < cutoff {
            break;
        }
        let worker = match frame.worker {
            None => None,
            Some((_, sample)) => match snapshot.position_of(sample.worker_id, hint) {
                Some(position) => {
                    hint = position;
                    Some((position, &snapshot.workers[position]))
                }
                None => continue,
            },
        };
        let past = Frame {
            now: index,
            snapshot,
            worker,
            ..*frame
        };
        visit(&past, at.saturating_sub(now_ms) as f64 / 1000.0);
    }
}

fn aggregate(kind: Aggregate, operand: &Num, frame: &Frame<'_>) -> f64 {
    let mut count = 0u32;
    let mut total = 0.0;
    let mut extreme = f64::NAN;
    each_worker(frame, |worker| {
        let value = operand.eval(worker);
        if value.is_nan() {
            return;
        }
        count += 1;
        total += value;
        extreme = match kind {
            Aggregate::Min => extreme.min(value),
            Aggregate::Max => extreme.max(value),
            Aggregate::Sum | Aggregate::Avg => extreme,
        };
    });
    if count == 0 {
        return f64::NAN;
    }
    match kind {
        Aggregate::Sum => total,
        Aggregate::Avg => total / f64::from(count),
        Aggregate::Min | Aggregate::Max => extreme,
    }
}

thread_local! {
    /// Reused by quantiles, so that evaluating one does not allocate.
    static QUANTILE_VALUES: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

fn worker_quantile(q: f64, operand: &Num, frame: &Frame<'_>) -> f64 {
    // Taken out of the cell, not borrowed, so that a nested evaluation could never find the
    // cell borrowed; it would just start with an empty buffer.
    let mut values = QUANTILE_VALUES.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
    values.clear();
    each_worker(frame, |worker| {
        let value = operand.eval(worker);
        if !value.is_nan() {
            values.push(value);
        }
    });
    let result = quantile(&mut values, q);
    QUANTILE_VALUES.with(|cell| *cell.borrow_mut() = values);
    result
}

fn window(kind: Window, operand: &Num, window_ms: i64, frame: &Frame<'_>) -> f64 {
    match kind {
        Window::Avg | Window::Min | Window::Max => {
            let mut count = 0u32;
            let mut total = 0.0;
            let mut extreme = f64::NAN;
            each_in_window(frame, window_ms, |past, _| {
                let value = operand.eval(past);
                if value.is_nan() {
                    return;
                }
                count += 1;
                total += value;
                extreme = match kind {
                    Window::Min => extreme.min(value),
                    Window::Max => extreme.max(value),
                    _ => extreme,
                };
            });
            match kind {
                _ if count == 0 => f64::NAN,
                Window::Avg => total / f64::from(count),
                _ => extreme,
            }
        }
        Window::Delta | Window::Rate => {
            // Visited newest first: the first value seen is the last in time.
            let mut newest: Option<(f64, f64)> = None;
            let mut oldest: Option<(f64, f64)> = None;
            each_in_window(frame, window_ms, |past, t| {
                let value = operand.eval(past);
                if value.is_nan() {
                    return;
                }
                if newest.is_none() {
                    newest = Some((t, value));
                } else {
                    oldest = Some((t, value));
                }
            });
            let (Some((newest_t, newest_value)), Some((oldest_t, oldest_value))) = (newest, oldest)
            else {
                return f64::NAN;
            };
            let delta = newest_value - oldest_value;
            match kind {
                Window::Delta => delta,
                _ => divide(delta, newest_t - oldest_t),
            }
        }
        Window::Slope => regression(operand, window_ms, frame).slope(),
    }
}

/// The least-squares line through the window's present values, time in seconds relative
/// to the frame's snapshot.
fn regression(operand: &Num, window_ms: i64, frame: &Frame<'_>) -> Regression {
    let mut line = Regression::default();
    each_in_window(frame, window_ms, |past, t| {
        let value = operand.eval(past);
        if !value.is_nan() {
            line.add(t, value);
        }
    });
    line
}
