//! The syntax tree the parser builds: untyped and unresolved, with the column of every node.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expr {
    pub kind: ExprKind,
    /// 0-based character column where the node's text starts (its `(` when parenthesised).
    pub column: usize,
    /// Levels of nodes below and including this one; a literal is 1.
    pub depth: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ExprKind {
    Number(f64),
    Duration(Duration),
    Str(String),
    Bool(bool),
    /// A name as written, possibly dotted (`fleet.ready`).
    Ident(String),
    Call {
        name: String,
        args: Vec<Expr>,
    },
    Unary {
        op: UnaryOp,
        /// `-`, `!` or `not`, as written, for messages.
        spelling: &'static str,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        /// The operator as written (`&&` or `and`), for messages.
        spelling: &'static str,
        op_column: usize,
        left: Box<Expr>,
        right: Box<Expr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Negate,
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    Equal,
    NotEqual,
    And,
    Or,
}

impl BinaryOp {
    /// Binding strength: a higher number binds tighter (C and PromQL order).
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Less
            | BinaryOp::LessEqual
            | BinaryOp::Greater
            | BinaryOp::GreaterEqual
            | BinaryOp::Equal
            | BinaryOp::NotEqual => 3,
            BinaryOp::Add | BinaryOp::Subtract => 4,
            BinaryOp::Multiply | BinaryOp::Divide => 5,
        }
    }
}
