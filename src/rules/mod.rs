//! Brand rule query language: parse a query into an AST and match it against documents. It
//! does not know where text came from, and does not decide what to do with a match.
//!
//! # Language
//! - `acme` matches the word case-insensitively on word boundaries: `acme` matches `ACME,` and
//!   `#acme` but not `acmeville`. A word is a maximal run of letters and digits; each CJK
//!   ideograph, hiragana or katakana character is a word of its own.
//! - `"acme corp"` matches the words consecutively, whatever punctuation or spaces are between
//!   them. A bare term with punctuation inside (`acme-corp`) is the phrase `"acme corp"`.
//! - `a AND b`, `a b` (adjacent terms), `a OR b`, `NOT a`, `( ... )`. Operators are upper case
//!   only; `and`, `or`, `not` are ordinary words.
//! - Precedence: NOT binds tightest, then AND (explicit or adjacent), then OR:
//!   `a OR b c` is `a OR (b AND c)`; `NOT a b` is `(NOT a) AND b`.
//! - Terms search the title and the text; a match in either counts. Spans refer to the text.

mod ast;
mod error;
mod eval;
mod lexer;
mod parser;
mod text;

#[cfg(test)]
mod tests;

pub use error::{ParseError, RuleError};

/// The parts of a mention a rule can look at. Borrowed so matching never copies the post.
#[derive(Debug, Clone, Copy, Default)]
pub struct Document<'a> {
    pub text: &'a str,
    pub title: Option<&'a str>,
    pub author: Option<&'a str>,
    pub url: Option<&'a str>,
    /// Configured source name.
    pub source: &'a str,
    /// Source kind (`rss`, `hackernews`, ...).
    pub source_kind: &'a str,
    pub lang: Option<&'a str>,
}

/// Byte range in `Document::text` of a matched term, for highlighting the excerpt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// One parsed query, ready to match.
#[derive(Debug, Clone)]
pub struct Query {
    expr: ast::Expr,
}

impl Query {
    /// Parses `q`; the error points at the column of the first problem.
    pub fn parse(q: &str) -> Result<Query, ParseError> {
        Ok(Query {
            expr: parser::parse(q)?,
        })
    }

    /// `Some(spans)` if the query matches `doc`: the sorted, non-overlapping byte ranges of the
    /// positive terms found in `doc.text` (empty when the match came from the title or only
    /// from NOT).
    pub fn matches(&self, doc: &Document) -> Option<Vec<Span>> {
        let fields = eval::Fields::new(doc);
        eval::eval(&self.expr, &fields).map(eval::tidy)
    }
}

/// A rule that matched a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    /// Index of the rule in compile order.
    pub rule: usize,
    /// The rule's name, owned so the match can outlive the borrowed rule set.
    pub name: String,
    /// Sorted, non-overlapping byte ranges in `Document::text`; may be empty.
    pub spans: Vec<Span>,
}

/// Every configured rule, compiled once; immutable afterwards, so one `Arc<RuleSet>` serves all
/// tasks.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<(String, ast::Expr)>,
}

impl RuleSet {
    /// Compiles `(name, query)` pairs in order. On failure returns one error per bad rule, so a
    /// config with several mistakes is fixed in one pass.
    pub fn compile<'a>(
        rules: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<RuleSet, Vec<RuleError>> {
        let mut ok = Vec::new();
        let mut errors = Vec::new();
        for (name, query) in rules {
            match parser::parse(query) {
                Ok(expr) => ok.push((name.to_string(), expr)),
                Err(error) => errors.push(RuleError {
                    rule: name.to_string(),
                    error,
                }),
            }
        }
        if errors.is_empty() {
            Ok(RuleSet { rules: ok })
        } else {
            Err(errors)
        }
    }

    /// The rules that match `doc`, in compile order.
    pub fn matches(&self, doc: &Document) -> Vec<RuleMatch> {
        let fields = eval::Fields::new(doc);
        self.rules
            .iter()
            .enumerate()
            .filter_map(|(i, (name, expr))| {
                eval::eval(expr, &fields).map(|spans| RuleMatch {
                    rule: i,
                    name: name.clone(),
                    spans: eval::tidy(spans),
                })
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}
