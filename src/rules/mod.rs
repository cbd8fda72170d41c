//! Alert rules: the expression language they are written in (the rule engine joins later).
pub mod expr;
