//! The syntax tree a query parses into. Plain data: it does not parse (see `parser.rs`) and does
//! not match (see `eval.rs`).

/// A boolean query over terms. Closed: every operator of the language is one variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Term(Term),
    Not(Box<Expr>),
    /// All children must match. Has at least two children.
    And(Vec<Expr>),
    /// At least one child must match. Has at least two children.
    Or(Vec<Expr>),
}

/// A word or phrase: normalised words that must occur consecutively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Normalised words, never empty.
    pub words: Vec<String>,
}
