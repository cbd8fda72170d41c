//! The rule expression language (SPEC §6.2–6.3): [`compile`] parses, resolves and
//! type-checks an expression once, at load; [`Compiled`] evaluates it over a target's
//! history many times without looking up a name or allocating.
//!
//! The stages: `lexer` (text → tokens), `parser` (tokens → `ast`), `check` (names → slots,
//! types, → the typed program in `eval`), `eval` (the program over `history`).
//! **Invariant: this module is pure — no I/O, no clock, no async; evaluation never panics
//! on any expression that compiled.**

mod ast;
mod check;
mod eval;
mod functions;
mod history;
mod identifiers;
mod lexer;
mod parser;

#[cfg(test)]
mod eval_tests;
#[cfg(test)]
mod property_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

pub use check::Type;
pub use eval::Value;
pub use history::{EvalContext, FleetValues, HistSample, Snapshot};
pub use identifiers::{FleetNumber, Identifiers};

use eval::{Frame, Num, Typed};

/// The longest expression accepted, in characters.
pub const MAX_LENGTH: usize = 4096;
/// The deepest nesting of operators, parentheses and calls accepted.
pub const MAX_DEPTH: usize = 64;
/// How many window functions may be nested inside each other (each level multiplies the
/// work of an evaluation by the window's length).
pub const MAX_WINDOW_NESTING: usize = 2;

/// Which snapshot data an expression reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Evaluated once per worker; reads that worker's fields, and the fleet's as `fleet.NAME`.
    Worker,
    /// Evaluated once per target; reads fleet identifiers and aggregates over the workers.
    Fleet,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Worker => "worker",
            Scope::Fleet => "fleet",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an expression did not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (column {})", .column + 1)]
pub struct CompileError {
    /// 0-based character offset into the expression text.
    pub column: usize,
    pub message: String,
}

impl CompileError {
    pub(crate) fn new(column: usize, message: impl Into<String>) -> CompileError {
        CompileError {
            column,
            message: message.into(),
        }
    }
}

/// Compiles `text` for `scope`. `vars` are the var names that may be used (a target that
/// lacks one reads it as missing); built-in identifiers take precedence over vars of the
/// same name.
pub fn compile(
    text: &str,
    scope: Scope,
    identifiers: &Identifiers,
    vars: &BTreeSet<String>,
) -> Result<Compiled, CompileError> {
    let length = text.chars().count();
    if length > MAX_LENGTH {
        return Err(CompileError::new(
            MAX_LENGTH,
            format!("expression is too long ({length} characters; at most {MAX_LENGTH})"),
        ));
    }
    let expr = parser::parse(text)?;
    let checked = check::check(&expr, scope, identifiers, vars)?;
    let lookback_ms = checked.root.lookback_ms().max(0);
    Ok(Compiled {
        text: text.to_string(),
        scope,
        result_type: checked.result_type,
        root: checked.root,
        value: checked.value,
        vars: checked.vars,
        identifiers: checked.identifiers.into_iter().collect(),
        lookback: Duration::from_millis(lookback_ms.unsigned_abs()),
    })
}

/// A compiled expression, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    text: String,
    scope: Scope,
    result_type: Type,
    root: Typed,
    value: Option<Num>,
    vars: Vec<String>,
    identifiers: Vec<String>,
    lookback: Duration,
}

/// Vars resolved per evaluation live on the stack up to this many.
const INLINE_VARS: usize = 8;

impl Compiled {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The expression's type; a rule's `expr` must be [`Type::Bool`].
    pub fn result_type(&self) -> Type {
        self.result_type
    }

    /// How far back from the current snapshot the expression reads: the longest window,
    /// with nested windows added up. History older than this can be dropped.
    pub fn lookback(&self) -> Duration {
        self.lookback
    }

    /// The vars the expression reads, in order of first use.
    pub fn vars(&self) -> &[String] {
        &self.vars
    }

    /// The built-in identifiers the expression reads, as written (`reliability`,
    /// `fleet.ready`), sorted.
    pub fn identifiers(&self) -> &[String] {
        &self.identifiers
    }

    /// Whether the expression has a `value` (a comparison with a number on its left).
    pub fn has_value(&self) -> bool {
        self.value.is_some()
    }

    /// Evaluates a fleet-scope expression at the current snapshot (`history.back()`);
    /// missing when the history is empty.
    pub fn eval_fleet(&self, ctx: &EvalContext<'_>) -> Value {
        self.with_frame(ctx, None, |frame| self.root.eval(frame))
            .unwrap_or(Value::Missing)
    }

    /// Evaluates a worker-scope expression for the worker at `worker_index` in the current
    /// snapshot's `workers`; missing when there is no such worker.
    pub fn eval_worker(&self, ctx: &EvalContext<'_>, worker_index: usize) -> Value {
        self.with_frame(ctx, Some(worker_index), |frame| self.root.eval(frame))
            .unwrap_or(Value::Missing)
    }

    /// The expression's `value` (SPEC §6.1) in fleet scope: the left operand of its first
    /// comparison. `None` when that is missing or there is no such comparison.
    pub fn eval_value_fleet(&self, ctx: &EvalContext<'_>) -> Option<f64> {
        self.eval_value(ctx, None)
    }

    /// The expression's `value` for one worker, as [`Compiled::eval_value_fleet`].
    pub fn eval_value_worker(&self, ctx: &EvalContext<'_>, worker_index: usize) -> Option<f64> {
        self.eval_value(ctx, Some(worker_index))
    }

    fn eval_value(&self, ctx: &EvalContext<'_>, worker_index: Option<usize>) -> Option<f64> {
        let value = self.value.as_ref()?;
        self.with_frame(ctx, worker_index, |frame| value.eval(frame))
            .filter(|number| !number.is_nan())
    }

    /// Resolves the vars to slots and builds the frame of the current snapshot; `None` when
    /// there is no current snapshot or no such worker.
    fn with_frame<R>(
        &self,
        ctx: &EvalContext<'_>,
        worker_index: Option<usize>,
        run: impl FnOnce(&Frame<'_>) -> R,
    ) -> Option<R> {
        let now = ctx.history.len().checked_sub(1)?;
        let snapshot = &**ctx.history.get(now)?;
        let worker = match worker_index {
            Some(index) => Some((index, snapshot.workers.get(index)?)),
            None => None,
        };
        let lookup = |name: &String| ctx.vars.get(name).copied().unwrap_or(f64::NAN);
        let mut inline = [f64::NAN; INLINE_VARS];
        let spilled: Vec<f64>;
        let vars: &[f64] = if self.vars.len() <= INLINE_VARS {
            for (slot, name) in inline.iter_mut().zip(&self.vars) {
                *slot = lookup(name);
            }
            &inline[..self.vars.len()]
        } else {
            spilled = self.vars.iter().map(lookup).collect();
            &spilled
        };
        let frame = Frame {
            history: ctx.history,
            vars,
            now,
            snapshot,
            worker,
        };
        Some(run(&frame))
    }
}
