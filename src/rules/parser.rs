//! Recursive-descent parser from tokens to `Expr`, with precedence NOT > AND > OR and adjacency
//! meaning AND. It reports the first error with its column and a hint; it does not match text.
//!
//! Grammar:
//! ```text
//! query   := or EOF
//! or      := and ( "OR" and )*
//! and     := unary ( ["AND"] unary )*
//! unary   := "NOT" unary | primary
//! primary := "(" or ")" | word | "phrase"
//! ```

use super::ast::{Expr, Term};
use super::error::ParseError;
use super::lexer::{lex, TokKind, Token};
use super::text::tokenize;

const OPERAND: &str = "a word, \"phrase\" or (group)";

/// Parses a whole query.
pub fn parse(q: &str) -> Result<Expr, ParseError> {
    let toks = lex(q)?;
    if toks.is_empty() {
        return Err(ParseError::new(
            q,
            1,
            "empty query",
            "write at least one word or \"phrase\"",
        ));
    }
    let mut p = Parser {
        query: q,
        toks,
        pos: 0,
        depth: 0,
    };
    let e = p.parse_or()?;
    if let Some(t) = p.peek() {
        // parse_or stops only at ")" or the end, and a ")" left over at depth 0 is unbalanced.
        return Err(p.err(
            t.col,
            "unbalanced \")\"",
            "remove it or add a matching \"(\"",
        ));
    }
    Ok(e)
}

struct Parser<'q> {
    query: &'q str,
    toks: Vec<Token>,
    pos: usize,
    /// Open parentheses, to tell an unbalanced ")" from a misplaced one.
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn err(&self, col: usize, message: impl Into<String>, hint: impl Into<String>) -> ParseError {
        ParseError::new(self.query, col, message, hint)
    }

    /// Column one past the last character, where "unexpected end" points.
    fn end_col(&self) -> usize {
        self.query.chars().count() + 1
    }

    /// Whether the next token can start an operand (so adjacency means AND).
    fn starts_operand(&self) -> bool {
        matches!(
            self.peek().map(|t| &t.kind),
            Some(TokKind::Word(_) | TokKind::Phrase(_) | TokKind::LParen | TokKind::Not)
        )
    }

    fn parse_or(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.parse_and()?];
        while let Some(TokKind::Or) = self.peek().map(|t| &t.kind) {
            self.next();
            items.push(self.parse_and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Expr::Or(items)
        })
    }

    fn parse_and(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.parse_unary()?];
        loop {
            match self.peek().map(|t| &t.kind) {
                Some(TokKind::And) => {
                    self.next();
                    items.push(self.parse_unary()?);
                }
                Some(_) if self.starts_operand() => items.push(self.parse_unary()?),
                _ => break,
            }
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Expr::And(items)
        })
    }

    fn parse_unary(&mut self) -> Result<Expr, ParseError> {
        if let Some(TokKind::Not) = self.peek().map(|t| &t.kind) {
            let not = self.next().expect("peeked");
            if !self.starts_operand() {
                return Err(self.err(
                    not.col,
                    "NOT needs something to negate",
                    format!("put {OPERAND} after NOT"),
                ));
            }
            return Ok(Expr::Not(Box::new(self.parse_unary()?)));
        }
        self.parse_primary()
    }

    /// The token before the current one, to say what an operand was missing after.
    fn previous(&self) -> Option<&Token> {
        self.pos.checked_sub(1).and_then(|i| self.toks.get(i))
    }

    fn parse_primary(&mut self) -> Result<Expr, ParseError> {
        let prev = self.previous().map(|t| t.kind.clone());
        let Some(tok) = self.next() else {
            let hint = match prev {
                Some(k @ (TokKind::And | TokKind::Or)) => {
                    format!("add {OPERAND} after {}", k.describe())
                }
                _ => format!("add {OPERAND}"),
            };
            return Err(self.err(self.end_col(), "unexpected end of query", hint));
        };
        match tok.kind {
            TokKind::Word(ref w) => self.term(&tok, w),
            TokKind::Phrase(ref p) => self.term(&tok, p),
            TokKind::LParen => {
                if let Some(TokKind::RParen) = self.peek().map(|t| &t.kind) {
                    return Err(self.err(
                        tok.col,
                        "empty parentheses",
                        "put a query inside them or remove them",
                    ));
                }
                self.depth += 1;
                let inner = self.parse_or()?;
                self.depth -= 1;
                match self.next() {
                    Some(Token {
                        kind: TokKind::RParen,
                        ..
                    }) => Ok(inner),
                    _ => Err(self.err(tok.col, "unbalanced \"(\"", "add a matching \")\"")),
                }
            }
            TokKind::RParen if self.depth == 0 => Err(self.err(
                tok.col,
                "unbalanced \")\"",
                "remove it or add a matching \"(\"",
            )),
            kind @ (TokKind::And | TokKind::Or | TokKind::RParen) => match prev {
                Some(p @ (TokKind::And | TokKind::Or)) => Err(self.err(
                    tok.col,
                    format!("unexpected {}", kind.describe()),
                    format!("add {OPERAND} after {}", p.describe()),
                )),
                _ => Err(self.err(
                    tok.col,
                    format!("{} needs something on its left", kind.describe()),
                    format!("add {OPERAND} before it, or remove it"),
                )),
            },
            TokKind::Not => unreachable!("parse_unary handles NOT"),
        }
    }

    fn term(&self, tok: &Token, text: &str) -> Result<Expr, ParseError> {
        let t = tokenize(text);
        if t.words.is_empty() {
            return Err(self.err(
                tok.col,
                format!("{} has no letters or digits", tok.kind.describe()),
                "a term needs at least one letter or digit; punctuation alone is not searchable",
            ));
        }
        let words = (0..t.words.len()).map(|i| t.word(i).to_string()).collect();
        Ok(Expr::Term(Term { words }))
    }
}
