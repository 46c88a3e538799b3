//! Naive reference evaluator for tests: decides whether a query matches by brute force over
//! every word position, with no pre-filter, no spans and no shortcuts. It shares only the parser
//! and the normaliser with the real matcher, so the property test checks the compiled path
//! (atoms, automaton, candidate selection) and the evaluator against something obviously right.

use super::ast::{Expr, Field, Joint, Meta, Term, WordPat};
use super::text::{is_word_char, tokenize, Tokens};
use super::Document;

pub(crate) fn matches(e: &Expr, doc: &Document) -> bool {
    match e {
        Expr::Term(t) => fields(t.field, doc)
            .iter()
            .any(|f| (0..f.words.len()).any(|i| term_at(t, f, i))),
        Expr::Raw(s) => [Some(doc.text), doc.title]
            .into_iter()
            .flatten()
            .any(|hay| raw_in(s, hay)),
        Expr::Meta(m) => meta(m, doc),
        Expr::Near(n) => fields(n.left.field, doc).iter().any(|f| {
            let len = f.words.len();
            (0..len).any(|i| {
                (0..len).any(|j| {
                    let (a_end, b_end) = (i + n.left.words.len(), j + n.right.words.len());
                    let (first_end, second_start) = if i < j { (a_end, j) } else { (b_end, i) };
                    term_at(&n.left, f, i)
                        && term_at(&n.right, f, j)
                        && (!n.ordered || i < j)
                        && first_end <= second_start
                        && second_start - first_end <= n.distance as usize
                })
            })
        }),
        Expr::Not(inner) => !matches(inner, doc),
        Expr::And(items) => items.iter().all(|i| matches(i, doc)),
        Expr::Or(items) => items.iter().any(|i| matches(i, doc)),
    }
}

fn fields(field: Field, doc: &Document) -> Vec<Tokens> {
    let texts = match field {
        Field::Any => vec![Some(doc.text), doc.title],
        Field::Title => vec![doc.title],
        Field::Author => vec![doc.author],
    };
    texts.into_iter().flatten().map(tokenize).collect()
}

fn term_at(t: &Term, f: &Tokens, i: usize) -> bool {
    if i + t.words.len() > f.words.len() {
        return false;
    }
    for (j, w) in t.words.iter().enumerate() {
        let word: Vec<char> = f.word(i + j).chars().collect();
        let ok = match w {
            WordPat::Exact(s) => *s == f.word(i + j),
            WordPat::Wild { pattern, .. } => glob(&pattern.chars().collect::<Vec<_>>(), &word),
        };
        if !ok {
            return false;
        }
    }
    if let Some(sigil) = t.sigil {
        let before: Vec<char> = f.norm[..f.words[i].start as usize].chars().collect();
        let n = before.len();
        if n == 0 || before[n - 1] != sigil || (n >= 2 && is_word_char(before[n - 2])) {
            return false;
        }
    }
    if let Joint::Exact { seps, glue } = &t.joint {
        for (j, sep) in seps.iter().enumerate() {
            if f.gap(i + j) != sep {
                return false;
            }
        }
        let after: Vec<char> = f.after(i + t.words.len() - 1).chars().collect();
        if after.len() >= 2 && glue.contains(after[0]) && is_word_char(after[1]) {
            return false;
        }
    }
    true
}

/// Recursive glob: obviously right, exponential in the worst case, fine for tests.
fn glob(p: &[char], w: &[char]) -> bool {
    match p.split_first() {
        None => w.is_empty(),
        Some(('*', rest)) => (0..=w.len()).any(|k| glob(rest, &w[k..])),
        Some(('?', rest)) => !w.is_empty() && glob(rest, &w[1..]),
        Some((c, rest)) => w.first() == Some(c) && glob(rest, &w[1..]),
    }
}

fn raw_in(needle: &str, hay: &str) -> bool {
    let chars: Vec<(usize, char)> = hay.char_indices().collect();
    let starts_word = needle.chars().next().is_some_and(is_word_char);
    let ends_word = needle.chars().last().is_some_and(is_word_char);
    (0..chars.len()).any(|k| {
        let at = chars[k].0;
        if !hay[at..].starts_with(needle) {
            return false;
        }
        let end = at + needle.len();
        let before = k.checked_sub(1).map(|p| chars[p].1);
        let after = hay[end..].chars().next();
        (!starts_word || !before.is_some_and(is_word_char))
            && (!ends_word || !after.is_some_and(is_word_char))
    })
}

fn meta(m: &Meta, doc: &Document) -> bool {
    match m {
        Meta::Site(d) => doc.url.is_some_and(|u| {
            let host = super::parser::host_of(u);
            host == *d || host.ends_with(&format!(".{d}"))
        }),
        Meta::Source(s) => doc.source.to_lowercase() == *s || doc.source_kind.to_lowercase() == *s,
        Meta::Lang(l) => doc.lang.is_some_and(|dl| {
            let dl = dl.trim().to_lowercase().replace('_', "-");
            dl == *l || dl.starts_with(&format!("{l}-"))
        }),
    }
}
