//! Builds the syntax tree from tokens by precedence climbing, guarding nesting depth so that
//! hostile input cannot overflow the stack here or in the passes that walk the tree.

use super::ast::{BinaryOp, Expr, ExprKind, UnaryOp};
use super::lexer::{Token, TokenKind, lex};
use super::{CompileError, MAX_DEPTH};

/// Parses a whole expression.
pub(crate) fn parse(text: &str) -> Result<Expr, CompileError> {
    let tokens = lex(text)?;
    if tokens.len() == 1 {
        return Err(CompileError::new(0, "empty expression"));
    }
    let mut parser = Parser {
        tokens: &tokens,
        position: 0,
        nesting: 0,
    };
    let expr = parser.expression(1)?;
    let next = parser.peek();
    match next.kind {
        TokenKind::End => Ok(expr),
        TokenKind::RParen => Err(CompileError::new(
            next.column,
            "unmatched `)`; there is no `(` for it to close",
        )),
        _ => Err(not_an_operator(next).unwrap_or_else(|| {
            CompileError::new(
                next.column,
                format!(
                    "expected an operator or the end of the expression, found {}",
                    next.describe()
                ),
            )
        })),
    }
}

/// `AND`, `Or` and the like where an operator belongs: a friendlier error than "expected an
/// operator".
fn not_an_operator(token: &Token) -> Option<CompileError> {
    let TokenKind::Ident(name) = &token.kind else {
        return None;
    };
    let lower = name.to_ascii_lowercase();
    (lower == "and" || lower == "or").then(|| {
        CompileError::new(
            token.column,
            format!("`{name}` is not an operator; write `{lower}` in lower case"),
        )
    })
}

struct Parser<'t> {
    tokens: &'t [Token],
    position: usize,
    /// Parentheses, calls and unary operators currently open.
    nesting: usize,
}

impl<'t> Parser<'t> {
    fn peek(&self) -> &'t Token {
        // The last token is always `End`, and `advance` never moves past it.
        &self.tokens[self.position.min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> &'t Token {
        let token = self.peek();
        if token.kind != TokenKind::End {
            self.position += 1;
        }
        token
    }

    /// The token before the one at `index`.
    fn before(&self, index: usize) -> Option<&'t Token> {
        index
            .checked_sub(1)
            .and_then(|index| self.tokens.get(index))
    }

    fn enter(&mut self, column: usize) -> Result<(), CompileError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(too_deep(column));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    /// Binary operators of at least `min_precedence`, left-associative.
    fn expression(&mut self, min_precedence: u8) -> Result<Expr, CompileError> {
        let mut left = self.unary()?;
        loop {
            let token = self.peek();
            let Some((op, spelling)) = binary_operator(token) else {
                break;
            };
            if op.precedence() < min_precedence {
                break;
            }
            self.advance();
            let right = self.expression(op.precedence() + 1)?;
            let depth = 1 + left.depth.max(right.depth);
            if depth > MAX_DEPTH {
                return Err(too_deep(token.column));
            }
            left = Expr {
                column: left.column,
                depth,
                kind: ExprKind::Binary {
                    op,
                    spelling,
                    op_column: token.column,
                    left: Box::new(left),
                    right: Box::new(right),
                },
            };
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, CompileError> {
        let token = self.peek();
        let (op, spelling) = match token.kind {
            TokenKind::Minus => (UnaryOp::Negate, "-"),
            TokenKind::Not if token.text == "not" => (UnaryOp::Not, "not"),
            TokenKind::Not => (UnaryOp::Not, "!"),
            _ => return self.primary(),
        };
        self.advance();
        self.enter(token.column)?;
        let operand = self.unary()?;
        self.leave();
        let depth = operand.depth + 1;
        if depth > MAX_DEPTH {
            return Err(too_deep(token.column));
        }
        Ok(Expr {
            column: token.column,
            depth,
            kind: ExprKind::Unary {
                op,
                spelling,
                operand: Box::new(operand),
            },
        })
    }

    fn primary(&mut self) -> Result<Expr, CompileError> {
        let index = self.position;
        let token = self.advance();
        let leaf = |kind| {
            Ok(Expr {
                kind,
                column: token.column,
                depth: 1,
            })
        };
        match &token.kind {
            TokenKind::Number(number) => leaf(ExprKind::Number(*number)),
            TokenKind::Duration(duration) => leaf(ExprKind::Duration(*duration)),
            TokenKind::Str(text) => leaf(ExprKind::Str(text.clone())),
            TokenKind::True => leaf(ExprKind::Bool(true)),
            TokenKind::False => leaf(ExprKind::Bool(false)),
            TokenKind::Ident(name) if self.peek().kind == TokenKind::LParen => {
                self.call(name, token.column)
            }
            TokenKind::Ident(name) => leaf(ExprKind::Ident(name.clone())),
            TokenKind::LParen => {
                self.enter(token.column)?;
                let mut inner = self.expression(1)?;
                let close = self.advance();
                if close.kind != TokenKind::RParen {
                    return Err(CompileError::new(
                        close.column,
                        format!("expected `)` to close `(`, found {}", close.describe()),
                    ));
                }
                self.leave();
                inner.column = token.column;
                Ok(inner)
            }
            TokenKind::End if index == 0 => {
                Err(CompileError::new(token.column, "empty expression"))
            }
            _ => {
                let after = match self.before(index) {
                    Some(previous) => format!(" after `{}`", previous.text),
                    None => String::new(),
                };
                Err(CompileError::new(
                    token.column,
                    format!("expected a value{after}, found {}", token.describe()),
                ))
            }
        }
    }

    /// A call: the name is consumed, `(` is next.
    fn call(&mut self, name: &str, column: usize) -> Result<Expr, CompileError> {
        self.advance();
        self.enter(column)?;
        let mut args = Vec::new();
        if self.peek().kind == TokenKind::RParen {
            self.advance();
        } else {
            loop {
                args.push(self.expression(1)?);
                let separator = self.advance();
                match separator.kind {
                    TokenKind::Comma => continue,
                    TokenKind::RParen => break,
                    _ => {
                        if let Some(error) = not_an_operator(separator) {
                            return Err(error);
                        }
                        return Err(CompileError::new(
                            separator.column,
                            format!(
                                "expected `,` or `)` after argument {} of `{name}`, found {}",
                                args.len(),
                                separator.describe()
                            ),
                        ));
                    }
                }
            }
        }
        self.leave();
        let depth = 1 + args.iter().map(|arg| arg.depth).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(too_deep(column));
        }
        Ok(Expr {
            column,
            depth,
            kind: ExprKind::Call {
                name: name.to_string(),
                args,
            },
        })
    }
}

fn binary_operator(token: &Token) -> Option<(BinaryOp, &'static str)> {
    Some(match token.kind {
        TokenKind::Plus => (BinaryOp::Add, "+"),
        TokenKind::Minus => (BinaryOp::Subtract, "-"),
        TokenKind::Star => (BinaryOp::Multiply, "*"),
        TokenKind::Slash => (BinaryOp::Divide, "/"),
        TokenKind::Less => (BinaryOp::Less, "<"),
        TokenKind::LessEqual => (BinaryOp::LessEqual, "<="),
        TokenKind::Greater => (BinaryOp::Greater, ">"),
        TokenKind::GreaterEqual => (BinaryOp::GreaterEqual, ">="),
        TokenKind::EqualEqual => (BinaryOp::Equal, "=="),
        TokenKind::NotEqual => (BinaryOp::NotEqual, "!="),
        TokenKind::And if token.text == "and" => (BinaryOp::And, "and"),
        TokenKind::And => (BinaryOp::And, "&&"),
        TokenKind::Or if token.text == "or" => (BinaryOp::Or, "or"),
        TokenKind::Or => (BinaryOp::Or, "||"),
        _ => return None,
    })
}

fn too_deep(column: usize) -> CompileError {
    CompileError::new(
        column,
        format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"),
    )
}
