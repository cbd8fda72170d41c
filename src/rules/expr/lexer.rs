//! Turns expression text into tokens, each with the 0-based character column it starts at.

use std::time::Duration;

use super::CompileError;
use crate::time::parse_duration;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    Number(f64),
    Duration(Duration),
    Str(String),
    /// A name, possibly dotted (`fleet.ready`).
    Ident(String),
    True,
    False,
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    EqualEqual,
    NotEqual,
    /// `&&` or `and`.
    And,
    /// `||` or `or`.
    Or,
    /// `!` or `not`.
    Not,
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    /// 0-based character offset of the token's first character.
    pub column: usize,
    /// The token as written (empty for [`TokenKind::End`]).
    pub text: String,
}

impl Token {
    /// How an error message names this token: "`0.9`", or "end of expression".
    pub fn describe(&self) -> String {
        match self.kind {
            TokenKind::End => "end of expression".to_string(),
            _ => format!("`{}`", self.text),
        }
    }
}

/// Splits `text` into tokens, ending with one [`TokenKind::End`] token.
pub(crate) fn lex(text: &str) -> Result<Vec<Token>, CompileError> {
    let chars: Vec<char> = text.chars().collect();
    let mut lexer = Lexer {
        chars: &chars,
        position: 0,
        tokens: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

struct Lexer<'c> {
    chars: &'c [char],
    /// Index into `chars`, which is also the column.
    position: usize,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.position + ahead).copied()
    }

    fn text(&self, start: usize) -> String {
        self.chars[start..self.position].iter().collect()
    }

    fn push(&mut self, kind: TokenKind, start: usize) {
        let text = self.text(start);
        self.tokens.push(Token {
            kind,
            column: start,
            text,
        });
    }

    fn run(&mut self) -> Result<(), CompileError> {
        while let Some(c) = self.peek(0) {
            let start = self.position;
            if c.is_whitespace() {
                self.position += 1;
            } else if c.is_ascii_digit()
                || (c == '.' && self.peek(1).is_some_and(|n| n.is_ascii_digit()))
            {
                self.number(start)?;
            } else if is_ident_start(c) {
                self.identifier(start);
            } else if c == '"' || c == '\'' {
                self.string(start, c)?;
            } else {
                self.operator(start, c)?;
            }
        }
        self.tokens.push(Token {
            kind: TokenKind::End,
            column: self.chars.len(),
            text: String::new(),
        });
        Ok(())
    }

    fn operator(&mut self, start: usize, c: char) -> Result<(), CompileError> {
        let next = self.peek(1);
        let (kind, width) = match (c, next) {
            ('(', _) => (TokenKind::LParen, 1),
            (')', _) => (TokenKind::RParen, 1),
            (',', _) => (TokenKind::Comma, 1),
            ('+', _) => (TokenKind::Plus, 1),
            ('-', _) => (TokenKind::Minus, 1),
            ('*', _) => (TokenKind::Star, 1),
            ('/', _) => (TokenKind::Slash, 1),
            ('<', Some('=')) => (TokenKind::LessEqual, 2),
            ('<', _) => (TokenKind::Less, 1),
            ('>', Some('=')) => (TokenKind::GreaterEqual, 2),
            ('>', _) => (TokenKind::Greater, 1),
            ('=', Some('=')) => (TokenKind::EqualEqual, 2),
            ('!', Some('=')) => (TokenKind::NotEqual, 2),
            ('!', _) => (TokenKind::Not, 1),
            ('&', Some('&')) => (TokenKind::And, 2),
            ('|', Some('|')) => (TokenKind::Or, 2),
            ('=', _) => {
                return Err(CompileError::new(
                    start,
                    "`=` is not an operator; use `==` to compare",
                ));
            }
            ('&', _) => {
                return Err(CompileError::new(
                    start,
                    "`&` is not an operator; use `&&` (or `and`)",
                ));
            }
            ('|', _) => {
                return Err(CompileError::new(
                    start,
                    "`|` is not an operator; use `||` (or `or`)",
                ));
            }
            _ => {
                return Err(CompileError::new(
                    start,
                    format!("unexpected character `{c}`"),
                ));
            }
        };
        self.position += width;
        self.push(kind, start);
        Ok(())
    }

    fn identifier(&mut self, start: usize) {
        loop {
            while self.peek(0).is_some_and(is_ident_continue) {
                self.position += 1;
            }
            // A dot joins two names (`fleet.ready`) only when a name follows it.
            if self.peek(0) == Some('.') && self.peek(1).is_some_and(is_ident_start) {
                self.position += 1;
            } else {
                break;
            }
        }
        let text = self.text(start);
        let kind = match text.as_str() {
            "true" => TokenKind::True,
            "false" => TokenKind::False,
            "and" => TokenKind::And,
            "or" => TokenKind::Or,
            "not" => TokenKind::Not,
            _ => TokenKind::Ident(text),
        };
        self.push(kind, start);
    }

    /// A number (`0.9`, `1e3`, `.5`) or, when letters follow the digits, a duration
    /// (`500ms`, `10m`, `1h30m`).
    fn number(&mut self, start: usize) -> Result<(), CompileError> {
        let digits = |lexer: &mut Self| {
            while lexer.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                lexer.position += 1;
            }
        };
        digits(self);
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            self.position += 1;
            digits(self);
        }
        let exponent_follows = matches!(self.peek(0), Some('e' | 'E'))
            && match self.peek(1) {
                Some(c) if c.is_ascii_digit() => true,
                Some('+' | '-') => self.peek(2).is_some_and(|c| c.is_ascii_digit()),
                _ => false,
            };
        if exponent_follows {
            self.position += 2;
            digits(self);
        }
        if self
            .peek(0)
            .is_some_and(|c| is_ident_continue(c) || c == '.')
        {
            while self
                .peek(0)
                .is_some_and(|c| is_ident_continue(c) || c == '.')
            {
                self.position += 1;
            }
            let word = self.text(start);
            if !word.chars().any(|c| c.is_ascii_alphabetic()) {
                return Err(CompileError::new(
                    start,
                    format!("malformed number `{word}`"),
                ));
            }
            return match parse_duration(&word) {
                Ok(duration) => {
                    self.push(TokenKind::Duration(duration), start);
                    Ok(())
                }
                Err(error) => Err(CompileError::new(start, format!("bad duration: {error}"))),
            };
        }
        let word = self.text(start);
        match word.parse::<f64>() {
            Ok(number) if number.is_finite() => {
                self.push(TokenKind::Number(number), start);
                Ok(())
            }
            _ => Err(CompileError::new(
                start,
                format!("number `{word}` is too large"),
            )),
        }
    }

    fn string(&mut self, start: usize, quote: char) -> Result<(), CompileError> {
        self.position += 1;
        let mut value = String::new();
        loop {
            let Some(c) = self.peek(0) else {
                return Err(CompileError::new(
                    start,
                    format!("unterminated string; add the closing `{quote}`"),
                ));
            };
            self.position += 1;
            if c == quote {
                break;
            }
            if c != '\\' {
                value.push(c);
                continue;
            }
            let escaped = match self.peek(0) {
                Some('\\') => '\\',
                Some('"') => '"',
                Some('\'') => '\'',
                Some('n') => '\n',
                Some('t') => '\t',
                Some(other) => {
                    return Err(CompileError::new(
                        self.position - 1,
                        format!(
                            "unknown escape `\\{other}` in a string; use `\\\\`, `\\\"`, `\\'`, `\\n` or `\\t`"
                        ),
                    ));
                }
                None => {
                    return Err(CompileError::new(
                        start,
                        format!("unterminated string; add the closing `{quote}`"),
                    ));
                }
            };
            self.position += 1;
            value.push(escaped);
        }
        self.push(TokenKind::Str(value), start);
        Ok(())
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_continue(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}
