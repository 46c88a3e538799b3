//! Evaluates a parsed query against one document's normalised fields and collects the spans of
//! matched positive terms in the text. It does not parse, and it does not pre-filter rules.

use super::ast::{Expr, Term};
use super::text::{tokenize, Tokens};
use super::{Document, Span};

/// A document's searchable fields, normalised once and shared by every rule evaluated on it.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    pub text: Tokens,
    pub title: Option<Tokens>,
}

impl Fields {
    pub fn new(doc: &Document) -> Fields {
        Fields {
            text: tokenize(doc.text),
            title: doc.title.map(tokenize),
        }
    }
}

/// `Some(spans)` when `e` matches: spans of positive terms found in the text (a term found only
/// in the title matches with no span). Children of a matching OR all contribute their spans so
/// every reason for the alert is highlighted; NOT contributes none.
pub fn eval(e: &Expr, f: &Fields) -> Option<Vec<Span>> {
    match e {
        Expr::Term(t) => {
            let spans: Vec<Span> = occurrences(t, &f.text)
                .map(|(a, b)| Span {
                    start: f.text.words[a].ostart as usize,
                    end: f.text.words[b].oend as usize,
                })
                .collect();
            let in_title = || {
                f.title
                    .as_ref()
                    .is_some_and(|tt| occurrences(t, tt).next().is_some())
            };
            if !spans.is_empty() || in_title() {
                Some(spans)
            } else {
                None
            }
        }
        Expr::Not(inner) => match eval(inner, f) {
            Some(_) => None,
            None => Some(Vec::new()),
        },
        Expr::And(items) => {
            let mut spans = Vec::new();
            for item in items {
                spans.extend(eval(item, f)?);
            }
            Some(spans)
        }
        Expr::Or(items) => {
            let mut any = false;
            let mut spans = Vec::new();
            for item in items {
                if let Some(s) = eval(item, f) {
                    any = true;
                    spans.extend(s);
                }
            }
            any.then_some(spans)
        }
    }
}

/// Every place the term's words occur consecutively, as (first, last) word indices.
pub fn occurrences<'t>(t: &'t Term, toks: &'t Tokens) -> impl Iterator<Item = (usize, usize)> + 't {
    let k = t.words.len();
    let n = toks.words.len();
    (0..(n + 1).saturating_sub(k)).filter_map(move |i| {
        t.words
            .iter()
            .enumerate()
            .all(|(j, w)| toks.word(i + j) == w)
            .then_some((i, i + k - 1))
    })
}

/// Sorts spans and merges overlapping ones, so a highlighter never marks a byte twice.
pub fn tidy(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| (s.start, s.end));
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(last) if s.start < last.end => last.end = last.end.max(s.end),
            _ => out.push(s),
        }
    }
    out
}
