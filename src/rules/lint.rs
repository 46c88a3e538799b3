//! Rule lint: refuses a rule that can match a post with none of its positive terms (it would
//! flood the desk from a firehose), and warns about operator-looking words that are read as
//! plain words (`acme NEAR refund`). It does not parse (see `parser.rs`) and does not apply to
//! `[rules_defaults].exclude`, which is meant to be negative.

use super::ast::Expr;
use super::error::ParseError;
use super::lexer::{TokKind, Token};
use super::parser::{NotSite, Parsed};

/// An error when the rule matches a post with no words and no metadata at all, i.e. when it
/// can match without any of its positive terms (`NOT a`, `a OR NOT b`, `NOT (a AND b)`).
/// Points at the first NOT that lets it through and names what the post only has to lack.
pub(crate) fn require_positive(q: &str, parsed: &Parsed) -> Result<(), ParseError> {
    let mut counter = 0;
    let mut why = Vec::new();
    if !matches_empty(&parsed.expr, &mut counter, &mut why) {
        return Ok(());
    }
    let sites: Vec<&NotSite> = why.iter().filter_map(|&i| parsed.nots.get(i)).collect();
    let names: Vec<String> = sites.iter().map(|s| quoted(s)).collect();
    let lacks = match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => "its terms".to_string(),
    };
    let example = sites.first().map_or("brand AND NOT acme".to_string(), |s| {
        if s.op == "-" {
            format!("brand -{}", s.operand)
        } else {
            format!("brand AND NOT {}", s.operand)
        }
    });
    Err(ParseError::new(
        q,
        sites.first().map_or(1, |s| s.col),
        format!("this query matches every post that lacks {lacks} (NOT with nothing positive beside it)"),
        format!("add a term that must be present, e.g. {example}"),
    ))
}

fn quoted(s: &NotSite) -> String {
    if s.bare_word || !(s.operand.starts_with('"') || s.operand.starts_with('(')) {
        format!("\"{}\"", s.operand)
    } else {
        s.operand.clone()
    }
}

/// Whether `e` matches a post that has no words and no metadata (every term, phrase, NEAR,
/// `raw:` and metadata test false). `counter` numbers the `Not` nodes in pre-order, which is
/// the order of `Parsed::nots`; `why` receives the numbers of the NOTs that make it match.
fn matches_empty(e: &Expr, counter: &mut usize, why: &mut Vec<usize>) -> bool {
    match e {
        Expr::Term(_) | Expr::Raw(_) | Expr::Meta(_) | Expr::Near(_) => false,
        Expr::Not(inner) => {
            let me = *counter;
            *counter += 1;
            let inner_empty = matches_empty(inner, counter, &mut Vec::new());
            if !inner_empty {
                why.push(me);
            }
            !inner_empty
        }
        Expr::And(items) => {
            let mut all = true;
            let mut w = Vec::new();
            for item in items {
                // Every item is visited so the NOT numbering stays right.
                all &= matches_empty(item, counter, &mut w);
            }
            if all {
                why.extend(w);
            }
            all
        }
        Expr::Or(items) => {
            let mut any = false;
            for item in items {
                let mut w = Vec::new();
                if matches_empty(item, counter, &mut w) && !any {
                    any = true;
                    why.extend(w);
                }
            }
            any
        }
    }
}

/// Warnings for words that look like operators but are read as words: bare `NEAR`/`ONEAR`
/// (no distance), `near/5` in lower or mixed case, and mixed-case `And`, `Or`, `Not`, `Near`.
/// All-lowercase `and`, `or`, `not`, `near` are ordinary words by design and never warned
/// about; neither is anything in quotes or after a field prefix (`raw:NEAR`).
pub(crate) fn warnings(q: &str, toks: &[Token]) -> Vec<ParseError> {
    let mut out = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        let TokKind::Word(w) = &t.kind else {
            continue;
        };
        if i > 0 && matches!(toks[i - 1].kind, TokKind::Field(_)) {
            continue;
        }
        let upper = w.to_uppercase();
        let lower = w.to_lowercase();
        if w == "NEAR" || w == "ONEAR" {
            let word_at = |j: Option<usize>, default: &str| {
                j.and_then(|j| toks.get(j))
                    .filter(|t| matches!(t.kind, TokKind::Word(_) | TokKind::Phrase(_)))
                    .map_or(default.to_string(), |t| q[t.start..t.end].to_string())
            };
            let (a, b) = (
                word_at(i.checked_sub(1), "acme"),
                word_at(Some(i + 1), "refund"),
            );
            out.push(ParseError::new(
                q,
                t.col,
                format!("\"{w}\" without a distance is read as the word \"{lower}\""),
                format!("write {a} {w}/5 {b}, or \"{lower}\" in quotes to mean the word"),
            ));
        } else if ["NEAR/", "ONEAR/"].iter().any(|p| {
            upper
                .strip_prefix(p)
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        }) {
            out.push(ParseError::new(
                q,
                t.col,
                format!("\"{w}\" is read as text, not as the {upper} operator"),
                format!("write {upper} in upper case, or \"{w}\" in quotes to mean the text"),
            ));
        } else if ["AND", "OR", "NOT", "NEAR", "ONEAR"].contains(&upper.as_str()) && *w != lower {
            let operator = if upper.ends_with("NEAR") {
                format!("{upper}/5 (with a distance)")
            } else {
                upper.clone()
            };
            out.push(ParseError::new(
                q,
                t.col,
                format!("\"{w}\" is read as the word \"{lower}\", not as the {upper} operator"),
                format!(
                    "write {operator} in upper case for the operator, or \"{w}\" in quotes to mean the word"
                ),
            ));
        }
    }
    out
}
