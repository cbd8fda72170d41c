//! Resolves names to slots and checks types, turning the syntax tree into the typed
//! program the evaluator runs. Every message names the operator or function and the types.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use super::ast::{BinaryOp, Expr, ExprKind, UnaryOp};
use super::eval::{Aggregate, Arithmetic, Comparison, Num, Text, Truth, Typed, Window};
use super::functions::Function;
use super::identifiers::{FleetName, Identifiers, WorkerName};
use super::{CompileError, MAX_WINDOW_NESTING, Scope};
use crate::config::suggest;

/// The type of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    Number,
    Bool,
    String,
    /// A duration literal such as `10m`; anywhere a number is expected it counts as seconds.
    Duration,
}

impl Type {
    /// Numbers and durations, which arithmetic and ordering accept alike.
    pub fn is_numeric(self) -> bool {
        matches!(self, Type::Number | Type::Duration)
    }

    /// "a number", "a boolean", ...: for messages.
    pub fn describe(self) -> &'static str {
        self.article()
    }

    fn article(self) -> &'static str {
        match self {
            Type::Number => "a number",
            Type::Bool => "a boolean",
            Type::String => "a string",
            Type::Duration => "a duration",
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Number => "number",
            Type::Bool => "boolean",
            Type::String => "string",
            Type::Duration => "duration",
        })
    }
}

/// What checking a whole expression produces.
pub(crate) struct Checked {
    pub root: Typed,
    pub result_type: Type,
    /// The left operand of the first numeric comparison outside function arguments.
    pub value: Option<Num>,
    /// Var names by slot, in order of first use.
    pub vars: Vec<String>,
    /// Built-in identifiers used, as written.
    pub identifiers: BTreeSet<String>,
}

pub(crate) fn check(
    expr: &Expr,
    scope: Scope,
    identifiers: &Identifiers,
    known_vars: &BTreeSet<String>,
) -> Result<Checked, CompileError> {
    let mut checker = Checker {
        identifiers,
        known_vars,
        vars: Vec::new(),
        used: BTreeSet::new(),
        window_nesting: 0,
        in_aggregate: false,
        call_nesting: 0,
        value: None,
    };
    let (result_type, root) = checker.check(expr, scope)?;
    Ok(Checked {
        root,
        result_type,
        value: checker.value.map(|(_, operand)| operand),
        vars: checker.vars,
        identifiers: checker.used,
    })
}

struct Checker<'a> {
    identifiers: &'a Identifiers,
    known_vars: &'a BTreeSet<String>,
    vars: Vec<String>,
    used: BTreeSet<String>,
    /// Window functions around the node being checked.
    window_nesting: usize,
    /// Whether the node being checked is inside an aggregate's argument.
    in_aggregate: bool,
    /// Function calls around the node being checked.
    call_nesting: usize,
    /// The `value` candidate found so far, with its column.
    value: Option<(usize, Num)>,
}

/// A checked node and its type.
type CheckResult = Result<(Type, Typed), CompileError>;

impl Checker<'_> {
    fn check(&mut self, expr: &Expr, scope: Scope) -> CheckResult {
        match &expr.kind {
            ExprKind::Number(number) => Ok((Type::Number, Typed::Num(Num::Const(*number)))),
            ExprKind::Duration(duration) => Ok((
                Type::Duration,
                Typed::Num(Num::Const(duration.as_secs_f64())),
            )),
            ExprKind::Str(text) => Ok((
                Type::String,
                Typed::Text(Text::Const(Arc::from(text.as_str()))),
            )),
            ExprKind::Bool(value) => Ok((Type::Bool, Typed::Truth(Truth::Const(*value)))),
            ExprKind::Ident(name) => self.identifier(name, expr.column, scope),
            ExprKind::Call { name, args } => {
                self.call_nesting += 1;
                let result = self.call(name, args, expr.column, scope);
                self.call_nesting -= 1;
                result
            }
            ExprKind::Unary {
                op,
                spelling,
                operand,
            } => self.unary(*op, spelling, operand, scope),
            ExprKind::Binary {
                op,
                spelling,
                op_column,
                left,
                right,
            } => self.binary(*op, spelling, *op_column, left, right, scope),
        }
    }

    fn unary(&mut self, op: UnaryOp, spelling: &str, operand: &Expr, scope: Scope) -> CheckResult {
        let (operand_type, typed) = self.check(operand, scope)?;
        match (op, typed) {
            (UnaryOp::Negate, Typed::Num(number)) => {
                Ok((Type::Number, Typed::Num(Num::Negate(Box::new(number)))))
            }
            (UnaryOp::Not, Typed::Truth(truth)) => {
                Ok((Type::Bool, Typed::Truth(Truth::Not(Box::new(truth)))))
            }
            (UnaryOp::Negate, _) => Err(CompileError::new(
                operand.column,
                format!("`{spelling}` needs a number, found {operand_type}"),
            )),
            (UnaryOp::Not, _) => {
                let hint = if operand_type.is_numeric() {
                    format!("; to negate a comparison, wrap it: `{spelling}(a > b)`")
                } else {
                    String::new()
                };
                Err(CompileError::new(
                    operand.column,
                    format!("`{spelling}` needs a boolean, found {operand_type}{hint}"),
                ))
            }
        }
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        spelling: &str,
        op_column: usize,
        left: &Expr,
        right: &Expr,
        scope: Scope,
    ) -> CheckResult {
        let (left_type, left_typed) = self.check(left, scope)?;
        let (right_type, right_typed) = self.check(right, scope)?;
        let side_error = |expr: &Expr, side: &str, wanted: &str, found: Type| {
            CompileError::new(
                expr.column,
                format!("`{spelling}` needs {wanted}, found {found} on the {side}"),
            )
        };
        match op {
            BinaryOp::And | BinaryOp::Or => {
                let (Typed::Truth(a), Typed::Truth(b)) = (left_typed, right_typed) else {
                    return Err(if left_type != Type::Bool {
                        side_error(left, "left", "booleans", left_type)
                    } else {
                        side_error(right, "right", "booleans", right_type)
                    });
                };
                let (a, b) = (Box::new(a), Box::new(b));
                let truth = match op {
                    BinaryOp::And => Truth::And(a, b),
                    _ => Truth::Or(a, b),
                };
                Ok((Type::Bool, Typed::Truth(truth)))
            }
            BinaryOp::Add | BinaryOp::Subtract | BinaryOp::Multiply | BinaryOp::Divide => {
                let (Typed::Num(a), Typed::Num(b)) = (left_typed, right_typed) else {
                    return Err(if !left_type.is_numeric() {
                        side_error(left, "left", "numbers", left_type)
                    } else {
                        side_error(right, "right", "numbers", right_type)
                    });
                };
                let arithmetic = match op {
                    BinaryOp::Add => Arithmetic::Add,
                    BinaryOp::Subtract => Arithmetic::Subtract,
                    BinaryOp::Multiply => Arithmetic::Multiply,
                    _ => Arithmetic::Divide,
                };
                Ok((
                    Type::Number,
                    Typed::Num(Num::Arithmetic(arithmetic, Box::new(a), Box::new(b))),
                ))
            }
            BinaryOp::Less | BinaryOp::LessEqual | BinaryOp::Greater | BinaryOp::GreaterEqual => {
                let (Typed::Num(a), Typed::Num(b)) = (left_typed, right_typed) else {
                    let (expr, side, found) = if !left_type.is_numeric() {
                        (left, "left", left_type)
                    } else {
                        (right, "right", right_type)
                    };
                    let mut error = side_error(expr, side, "numbers", found);
                    if found == Type::String {
                        error
                            .message
                            .push_str("; strings support only `==` and `!=`");
                    }
                    return Err(error);
                };
                Ok(self.compare_numbers(op, left.column, a, b))
            }
            BinaryOp::Equal | BinaryOp::NotEqual => {
                let equal = op == BinaryOp::Equal;
                match (left_typed, right_typed) {
                    (Typed::Num(a), Typed::Num(b)) => {
                        Ok(self.compare_numbers(op, left.column, a, b))
                    }
                    (Typed::Text(a), Typed::Text(b)) => Ok((
                        Type::Bool,
                        Typed::Truth(Truth::CompareTexts(equal, Box::new(a), Box::new(b))),
                    )),
                    (Typed::Truth(a), Typed::Truth(b)) => Ok((
                        Type::Bool,
                        Typed::Truth(Truth::CompareTruths(equal, Box::new(a), Box::new(b))),
                    )),
                    _ => Err(CompileError::new(
                        op_column,
                        format!(
                            "`{spelling}` needs two values of the same type, found {left_type} on the left and {right_type} on the right"
                        ),
                    )),
                }
            }
        }
    }

    /// A comparison of numbers; also remembers its left operand as the `value` candidate
    /// when it is the leftmost one outside function arguments.
    fn compare_numbers(
        &mut self,
        op: BinaryOp,
        column: usize,
        left: Num,
        right: Num,
    ) -> (Type, Typed) {
        if self.call_nesting == 0
            && self
                .value
                .as_ref()
                .is_none_or(|(candidate, _)| column < *candidate)
        {
            self.value = Some((column, left.clone()));
        }
        let comparison = match op {
            BinaryOp::Less => Comparison::Less,
            BinaryOp::LessEqual => Comparison::LessEqual,
            BinaryOp::Greater => Comparison::Greater,
            BinaryOp::GreaterEqual => Comparison::GreaterEqual,
            BinaryOp::Equal => Comparison::Equal,
            _ => Comparison::NotEqual,
        };
        (
            Type::Bool,
            Typed::Truth(Truth::CompareNumbers(
                comparison,
                Box::new(left),
                Box::new(right),
            )),
        )
    }

    fn identifier(&mut self, name: &str, column: usize, scope: Scope) -> CheckResult {
        let error = |message: String| Err(CompileError::new(column, message));
        if let Some(rest) = name.strip_prefix("fleet.") {
            return self.fleet_dotted(rest, column);
        }
        if name == "fleet" {
            return error("`fleet` needs a name after it, e.g. `fleet.utilization`".to_string());
        }
        if name.contains('.') {
            return error(format!(
                "unknown identifier `{name}`; only `fleet.NAME` has a dot"
            ));
        }
        match scope {
            Scope::Worker => {
                if let Some(worker_name) = WorkerName::from_name(name) {
                    self.used.insert(name.to_string());
                    return Ok(lower_worker_name(worker_name));
                }
            }
            Scope::Fleet => {
                if let Some(fleet_name) = self.identifiers.fleet(name) {
                    self.used.insert(name.to_string());
                    return Ok(lower_fleet_name(fleet_name));
                }
            }
        }
        if self.known_vars.contains(name) {
            let slot = match self.vars.iter().position(|var| var == name) {
                Some(slot) => slot,
                None => {
                    self.vars.push(name.to_string());
                    self.vars.len() - 1
                }
            };
            return Ok((Type::Number, Typed::Num(Num::Var(slot))));
        }
        match scope {
            Scope::Worker if self.identifiers.fleet(name).is_some() => {
                return error(format!(
                    "`{name}` is a fleet identifier; in worker scope write `fleet.{name}`"
                ));
            }
            Scope::Fleet if WorkerName::from_name(name).is_some() => {
                let example = if name == "status" {
                    "count(status == \"running\")".to_string()
                } else {
                    format!("avg({name})")
                };
                return error(format!(
                    "`{name}` is a worker identifier; in fleet scope aggregate it over the workers, e.g. `{example}`"
                ));
            }
            _ => {}
        }
        if let Some(function) = Function::from_name(name) {
            return error(format!(
                "`{name}` is a function; call it as `{}`",
                function.signature()
            ));
        }
        let lower = name.to_ascii_lowercase();
        if ["and", "or", "not", "true", "false"].contains(&lower.as_str()) {
            return error(format!(
                "unknown identifier `{name}`; write `{lower}` in lower case"
            ));
        }
        let candidates = self.candidates(scope);
        let words: Vec<&str> = candidates.iter().map(|(word, _)| word.as_str()).collect();
        match suggest(name, &words) {
            Some(nearest) => {
                let shown = candidates
                    .iter()
                    .find(|(word, _)| word == nearest)
                    .map_or(nearest, |(_, shown)| shown.as_str());
                error(format!(
                    "unknown identifier `{name}`; did you mean `{shown}`?"
                ))
            }
            None => error(format!(
                "unknown identifier `{name}`; if it is a target var, define it in the target's `vars`"
            )),
        }
    }

    /// Names a typo may have meant, as (the word to compare, what to suggest).
    fn candidates(&self, scope: Scope) -> Vec<(String, String)> {
        let mut candidates: Vec<(String, String)> = Vec::new();
        match scope {
            Scope::Worker => {
                candidates.extend(WorkerName::all_names().map(|name| (name.into(), name.into())));
                candidates.extend(
                    self.identifiers
                        .fleet_names()
                        .filter(|name| WorkerName::from_name(name).is_none())
                        .map(|name| (name.to_string(), format!("fleet.{name}"))),
                );
            }
            Scope::Fleet => {
                candidates.extend(
                    self.identifiers
                        .fleet_names()
                        .map(|name| (name.to_string(), name.to_string())),
                );
            }
        }
        candidates.extend(
            self.known_vars
                .iter()
                .map(|name| (name.clone(), name.clone())),
        );
        candidates
    }

    /// `fleet.NAME`, allowed in both scopes.
    fn fleet_dotted(&mut self, rest: &str, column: usize) -> CheckResult {
        if let Some(fleet_name) = self.identifiers.fleet(rest) {
            self.used.insert(format!("fleet.{rest}"));
            return Ok(lower_fleet_name(fleet_name));
        }
        let names: Vec<&str> = self.identifiers.fleet_names().collect();
        let message = match suggest(rest, &names) {
            Some(nearest) => {
                format!("unknown fleet identifier `fleet.{rest}`; did you mean `fleet.{nearest}`?")
            }
            None => format!(
                "unknown fleet identifier `fleet.{rest}`; fleet identifiers are {}",
                names.join(", ")
            ),
        };
        Err(CompileError::new(column, message))
    }

    fn call(&mut self, name: &str, args: &[Expr], column: usize, scope: Scope) -> CheckResult {
        let error = |message: String| Err(CompileError::new(column, message));
        let Some(function) = Function::from_name(name) else {
            let is_identifier = WorkerName::from_name(name).is_some()
                || self.identifiers.fleet(name).is_some()
                || self.known_vars.contains(name)
                || name.starts_with("fleet.");
            if is_identifier {
                return error(format!("`{name}` is not a function"));
            }
            let names: Vec<&str> = Function::ALL
                .iter()
                .map(|function| function.name())
                .collect();
            return match suggest(name, &names) {
                Some(nearest) => error(format!(
                    "unknown function `{name}`; did you mean `{nearest}`?"
                )),
                None => error(format!("unknown function `{name}`")),
            };
        };
        if function.is_aggregate() {
            if self.in_aggregate {
                return error(format!("`{name}` cannot be used inside another aggregate"));
            }
            if scope == Scope::Worker {
                return error(format!(
                    "`{name}` aggregates over a fleet's workers, so it needs fleet scope"
                ));
            }
        }
        if function == Function::Extra && scope == Scope::Fleet {
            return error(
                "`extra` reads one worker's field, so it needs worker scope; in fleet scope aggregate it, e.g. `max(extra(\"loop_lag_max\"))`"
                    .to_string(),
            );
        }
        let params = function.params();
        if args.len() != params.len() {
            let plural = if params.len() == 1 { "" } else { "s" };
            let mut message = format!(
                "`{name}` takes {} argument{plural} ({}), found {}",
                params.len(),
                params.join(", "),
                args.len()
            );
            match (function, args.len()) {
                (Function::Min, 2) => {
                    message.push_str("; for the smaller of two values use `least(a, b)`")
                }
                (Function::Max, 2) => {
                    message.push_str("; for the larger of two values use `greatest(a, b)`")
                }
                _ => {}
            }
            return error(message);
        }
        match function {
            Function::Abs => {
                let x = self.number_arg(function, args, 0, scope)?;
                Ok(number(Num::Abs(Box::new(x))))
            }
            Function::Least | Function::Greatest => {
                let a = Box::new(self.number_arg(function, args, 0, scope)?);
                let b = Box::new(self.number_arg(function, args, 1, scope)?);
                Ok(number(if function == Function::Least {
                    Num::Least(a, b)
                } else {
                    Num::Greatest(a, b)
                }))
            }
            Function::Default => self.default(args, scope),
            Function::Present => {
                let (_, x) = self.check(&args[0], scope)?;
                Ok((Type::Bool, Typed::Truth(Truth::Present(Box::new(x)))))
            }
            Function::Extra => match &args[0].kind {
                ExprKind::Str(field) => Ok(number(Num::Extra(field.as_str().into()))),
                _ => Err(CompileError::new(
                    args[0].column,
                    "`extra` needs a string literal as argument 1 (name), e.g. `extra(\"loop_lag_max\")`",
                )),
            },
            Function::Count => {
                let predicate = self.in_aggregate_scope(|checker| {
                    checker.bool_arg(function, args, 0, Scope::Worker)
                })?;
                Ok(number(Num::Count(Box::new(predicate))))
            }
            Function::Sum | Function::Avg | Function::Min | Function::Max | Function::Median => {
                let x = self.in_aggregate_scope(|checker| {
                    checker.number_arg(function, args, 0, Scope::Worker)
                })?;
                let x = Box::new(x);
                Ok(number(match function {
                    Function::Sum => Num::Aggregate(Aggregate::Sum, x),
                    Function::Avg => Num::Aggregate(Aggregate::Avg, x),
                    Function::Min => Num::Aggregate(Aggregate::Min, x),
                    Function::Max => Num::Aggregate(Aggregate::Max, x),
                    _ => Num::Quantile(0.5, x),
                }))
            }
            Function::Quantile => {
                let q = match args[0].kind {
                    ExprKind::Number(q) if (0.0..=1.0).contains(&q) => q,
                    _ => {
                        return Err(CompileError::new(
                            args[0].column,
                            "`quantile` needs a number literal between 0 and 1 as argument 1 (q), e.g. `0.95`",
                        ));
                    }
                };
                let x = self.in_aggregate_scope(|checker| {
                    checker.number_arg(function, args, 1, Scope::Worker)
                })?;
                Ok(number(Num::Quantile(q, Box::new(x))))
            }
            Function::AvgOver
            | Function::MinOver
            | Function::MaxOver
            | Function::Delta
            | Function::Rate
            | Function::Slope
            | Function::CountOver
            | Function::Predict => self.window(function, args, column, scope),
        }
    }

    fn window(
        &mut self,
        function: Function,
        args: &[Expr],
        column: usize,
        scope: Scope,
    ) -> CheckResult {
        if self.window_nesting >= MAX_WINDOW_NESTING {
            return Err(CompileError::new(
                column,
                format!(
                    "window functions can be nested at most {MAX_WINDOW_NESTING} deep; `{}` is one too many",
                    function.name()
                ),
            ));
        }
        // Arguments are checked left to right, so the first mistake is the one reported.
        let node = if function == Function::CountOver {
            let predicate =
                self.inside_window(|checker| checker.bool_arg(function, args, 0, scope))?;
            let window_ms = self.window_arg(function, args, scope)?;
            Num::CountOver(Box::new(predicate), window_ms)
        } else {
            let x = Box::new(
                self.inside_window(|checker| checker.number_arg(function, args, 0, scope))?,
            );
            let window_ms = self.window_arg(function, args, scope)?;
            let kind = match function {
                Function::Predict => {
                    let horizon = self.number_arg(function, args, 2, scope)?;
                    return Ok(number(Num::Predict(x, window_ms, Box::new(horizon))));
                }
                Function::AvgOver => Window::Avg,
                Function::MinOver => Window::Min,
                Function::MaxOver => Window::Max,
                Function::Delta => Window::Delta,
                Function::Rate => Window::Rate,
                _ => Window::Slope,
            };
            Num::Window(kind, x, window_ms)
        };
        Ok(number(node))
    }

    /// Argument 2 of a window function: a duration literal, in milliseconds.
    fn window_arg(
        &mut self,
        function: Function,
        args: &[Expr],
        scope: Scope,
    ) -> Result<i64, CompileError> {
        let arg = &args[1];
        if let ExprKind::Duration(duration) = arg.kind {
            return Ok(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX));
        }
        let (found, _) = self.check(arg, scope)?;
        Err(CompileError::new(
            arg.column,
            format!(
                "`{}` needs a duration such as `10m` as argument 2 (d), found {found}",
                function.name()
            ),
        ))
    }

    fn default(&mut self, args: &[Expr], scope: Scope) -> CheckResult {
        let (value_type, value) = self.check(&args[0], scope)?;
        let (fallback_type, fallback) = self.check(&args[1], scope)?;
        match (value, fallback) {
            (Typed::Num(a), Typed::Num(b)) => Ok(number(Num::Default(Box::new(a), Box::new(b)))),
            (Typed::Truth(a), Typed::Truth(b)) => Ok((
                Type::Bool,
                Typed::Truth(Truth::Default(Box::new(a), Box::new(b))),
            )),
            (Typed::Text(a), Typed::Text(b)) => Ok((
                Type::String,
                Typed::Text(Text::Default(Box::new(a), Box::new(b))),
            )),
            _ => Err(CompileError::new(
                args[1].column,
                format!(
                    "`default` needs its fallback to have the type of its value, found {value_type} as argument 1 (x) and {fallback_type} as argument 2 (v)"
                ),
            )),
        }
    }

    fn inside_window<T>(
        &mut self,
        check: impl FnOnce(&mut Self) -> Result<T, CompileError>,
    ) -> Result<T, CompileError> {
        self.window_nesting += 1;
        let result = check(self);
        self.window_nesting -= 1;
        result
    }

    fn in_aggregate_scope<T>(
        &mut self,
        check: impl FnOnce(&mut Self) -> Result<T, CompileError>,
    ) -> Result<T, CompileError> {
        self.in_aggregate = true;
        let result = check(self);
        self.in_aggregate = false;
        result
    }

    fn number_arg(
        &mut self,
        function: Function,
        args: &[Expr],
        index: usize,
        scope: Scope,
    ) -> Result<Num, CompileError> {
        match self.check(&args[index], scope)? {
            (_, Typed::Num(number)) => Ok(number),
            (found, _) => Err(argument_error(function, args, index, Type::Number, found)),
        }
    }

    fn bool_arg(
        &mut self,
        function: Function,
        args: &[Expr],
        index: usize,
        scope: Scope,
    ) -> Result<Truth, CompileError> {
        match self.check(&args[index], scope)? {
            (_, Typed::Truth(truth)) => Ok(truth),
            (found, _) => Err(argument_error(function, args, index, Type::Bool, found)),
        }
    }
}

fn argument_error(
    function: Function,
    args: &[Expr],
    index: usize,
    wanted: Type,
    found: Type,
) -> CompileError {
    CompileError::new(
        args[index].column,
        format!(
            "`{}` needs {} as argument {} ({}), found {found}",
            function.name(),
            wanted.article(),
            index + 1,
            function.params()[index]
        ),
    )
}

fn number(node: Num) -> (Type, Typed) {
    (Type::Number, Typed::Num(node))
}

fn lower_worker_name(name: WorkerName) -> (Type, Typed) {
    match name {
        WorkerName::Field(field) => number(Num::Field(field)),
        WorkerName::Status => (Type::String, Typed::Text(Text::Status)),
        WorkerName::Class => (Type::String, Typed::Text(Text::Class)),
        WorkerName::Age => number(Num::Age),
        WorkerName::Utilization => number(Num::WorkerUtilization),
    }
}

fn lower_fleet_name(name: FleetName) -> (Type, Typed) {
    match name {
        FleetName::Standard(fleet_number) => number(Num::Fleet(fleet_number)),
        FleetName::Extra(slot) => number(Num::FleetExtra(slot)),
    }
}
