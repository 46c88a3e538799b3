//! Evaluates a parsed query against one document's normalised fields and collects the spans of
//! matched positive terms in the text. It does not parse, and it does not pre-filter rules (the
//! compiled matcher in `compiled.rs` decides which rules reach this evaluator).

use super::ast::{Expr, Field, Joint, Meta, Near, Term, WordPat};
use super::parser::host_of;
use super::text::{is_word_char, tokenize, Tokens};
use super::{Document, Span};

/// A document's searchable fields, normalised once and shared by every rule evaluated on it.
#[derive(Debug, Clone)]
pub(crate) struct Fields<'d> {
    pub(crate) doc: Document<'d>,
    pub(crate) text: Tokens,
    pub(crate) title: Option<Tokens>,
    pub(crate) author: Option<Tokens>,
}

impl<'d> Fields<'d> {
    pub(crate) fn new(doc: &Document<'d>) -> Fields<'d> {
        Fields {
            doc: *doc,
            text: tokenize(doc.text),
            title: doc.title.map(tokenize),
            author: doc.author.map(tokenize),
        }
    }

    /// The normalised fields a term with this field searches, the text first.
    fn searched(&self, field: Field) -> [Option<&Tokens>; 2] {
        match field {
            Field::Any => [Some(&self.text), self.title.as_ref()],
            Field::Title => [None, self.title.as_ref()],
            Field::Author => [None, self.author.as_ref()],
        }
    }
}

/// `Some(spans)` when `e` matches: spans of positive terms found in the text (a term found only
/// in the title matches with no span). Children of a matching OR all contribute their spans so
/// every reason for the alert is highlighted; NOT contributes none.
pub(crate) fn eval(e: &Expr, f: &Fields) -> Option<Vec<Span>> {
    match e {
        Expr::Term(t) => {
            let [text, other] = f.searched(t.field);
            let spans: Vec<Span> = text
                .map(|tt| occurrences(t, tt).map(|(a, b)| span(tt, a, b)).collect())
                .unwrap_or_default();
            let elsewhere = || other.is_some_and(|o| occurrences(t, o).next().is_some());
            (!spans.is_empty() || elsewhere()).then_some(spans)
        }
        Expr::Raw(s) => {
            let spans: Vec<Span> = raw_occurrences(s, f.doc.text).collect();
            let in_title = || {
                f.doc
                    .title
                    .is_some_and(|t| raw_occurrences(s, t).next().is_some())
            };
            (!spans.is_empty() || in_title()).then_some(spans)
        }
        Expr::Meta(m) => meta(m, &f.doc).then(Vec::new),
        Expr::Near(n) => {
            let [text, other] = f.searched(n.left.field);
            let spans: Vec<Span> = text.map(|tt| near(n, tt)).unwrap_or_default();
            let elsewhere = || other.is_some_and(|o| !near(n, o).is_empty());
            (!spans.is_empty() || elsewhere()).then_some(spans)
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

fn span(t: &Tokens, first: usize, last: usize) -> Span {
    Span {
        start: t.words[first].ostart as usize,
        end: t.words[last].oend as usize,
    }
}

/// Spans of both operands for every pair of occurrences close enough.
fn near(n: &Near, t: &Tokens) -> Vec<Span> {
    let lefts: Vec<(usize, usize)> = occurrences(&n.left, t).collect();
    if lefts.is_empty() {
        return Vec::new();
    }
    let rights: Vec<(usize, usize)> = occurrences(&n.right, t).collect();
    let mut spans = Vec::new();
    for &(a0, a1) in &lefts {
        for &(b0, b1) in &rights {
            let forward = b0 > a1 && b0 - a1 - 1 <= n.distance as usize;
            let backward = !n.ordered && a0 > b1 && a0 - b1 - 1 <= n.distance as usize;
            if forward || backward {
                spans.push(span(t, a0, a1));
                spans.push(span(t, b0, b1));
            }
        }
    }
    spans
}

/// Every place the term occurs, as (first, last) word indices.
pub(crate) fn occurrences<'t>(
    t: &'t Term,
    toks: &'t Tokens,
) -> impl Iterator<Item = (usize, usize)> + 't {
    let k = t.words.len();
    let n = toks.words.len();
    (0..(n + 1).saturating_sub(k))
        .filter(move |&i| occurs_at(t, toks, i))
        .map(move |i| (i, i + k - 1))
}

fn occurs_at(t: &Term, toks: &Tokens, i: usize) -> bool {
    let words_ok = t
        .words
        .iter()
        .enumerate()
        .all(|(j, w)| word_matches(w, toks.word(i + j)));
    if !words_ok {
        return false;
    }
    if let Some(sigil) = t.sigil {
        let (before, before2) = toks.before(i);
        if before != Some(sigil) || before2.is_some_and(is_word_char) {
            return false;
        }
    }
    match &t.joint {
        Joint::Loose => true,
        Joint::Exact { seps, glue } => {
            let seps_ok = seps
                .iter()
                .enumerate()
                .all(|(j, sep)| toks.gap(i + j) == sep);
            let mut after = toks.after(i + t.words.len() - 1).chars();
            let goes_on = match (after.next(), after.next()) {
                (Some(g), Some(w)) => glue.contains(g) && is_word_char(w),
                _ => false,
            };
            seps_ok && !goes_on
        }
    }
}

pub(crate) fn word_matches(p: &WordPat, word: &str) -> bool {
    match p {
        WordPat::Exact(w) => w == word,
        WordPat::Wild { pattern, prefix } => {
            word.starts_with(prefix.as_str()) && glob(pattern, word)
        }
    }
}

/// `*` matches any run of characters (possibly none), `?` exactly one character.
pub(crate) fn glob(pattern: &str, word: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let w: Vec<char> = word.chars().collect();
    let (mut pi, mut wi) = (0, 0);
    // Last `*` seen and the word position it was tried at, for backtracking.
    let mut star: Option<(usize, usize)> = None;
    while wi < w.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == w[wi]) {
            pi += 1;
            wi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, wi));
            pi += 1;
        } else if let Some((sp, sw)) = star {
            pi = sp + 1;
            wi = sw + 1;
            star = Some((sp, sw + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Case-sensitive occurrences of `needle` in `hay`, on word boundaries where the needle's own
/// edge is a word character.
pub(crate) fn raw_occurrences<'a>(
    needle: &'a str,
    hay: &'a str,
) -> impl Iterator<Item = Span> + 'a {
    let starts_word = needle.chars().next().is_some_and(is_word_char);
    let ends_word = needle.chars().next_back().is_some_and(is_word_char);
    hay.match_indices(needle).filter_map(move |(i, m)| {
        let end = i + m.len();
        let before_ok = !starts_word || !hay[..i].chars().next_back().is_some_and(is_word_char);
        let after_ok = !ends_word || !hay[end..].chars().next().is_some_and(is_word_char);
        (before_ok && after_ok).then_some(Span { start: i, end })
    })
}

pub(crate) fn meta(m: &Meta, doc: &Document) -> bool {
    match m {
        Meta::Site(domain) => doc.url.is_some_and(|u| site_matches(domain, u)),
        Meta::Source(s) => {
            doc.source.eq_ignore_ascii_case(s)
                || doc.source_kind.eq_ignore_ascii_case(s)
                || doc.source.to_lowercase() == *s
                || doc.source_kind.to_lowercase() == *s
        }
        Meta::Lang(l) => doc.lang.is_some_and(|dl| {
            let dl = dl.trim().to_lowercase().replace('_', "-");
            dl == *l
                || dl
                    .strip_prefix(l.as_str())
                    .is_some_and(|r| r.starts_with('-'))
        }),
    }
}

/// Whether the URL's host is `domain` or a subdomain of it.
pub(crate) fn site_matches(domain: &str, url: &str) -> bool {
    let host = host_of(url);
    host == domain || host.strip_suffix(domain).is_some_and(|h| h.ends_with('.'))
}

/// Sorts spans and merges overlapping ones, so a highlighter never marks a byte twice.
pub(crate) fn tidy(mut spans: Vec<Span>) -> Vec<Span> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let cases = [
            ("refund*", "refund", true),
            ("refund*", "refunds", true),
            ("refund*", "refun", false),
            ("colo?r", "colour", true),
            ("colo?r", "color", false),
            ("colo?r", "colouur", false),
            ("col*r", "colour", true),
            ("col*r", "colr", true),
            ("col*r*", "colourful", true),
            ("col*x", "colour", false),
            ("caf?", "cafe", true),
        ];
        for (p, w, want) in cases {
            assert_eq!(glob(p, w), want, "{p} on {w}");
        }
    }

    #[test]
    fn site_matches_domain_and_subdomains_only() {
        let cases = [
            ("acme.com", "https://acme.com/x", true),
            ("acme.com", "https://www.acme.com", true),
            ("acme.com", "http://shop.acme.com:8080/a?b", true),
            ("acme.com", "https://notacme.com", false),
            ("acme.com", "https://acme.com.evil.net", false),
            ("acme.com", "https://ACME.COM", true),
        ];
        for (d, u, want) in cases {
            assert_eq!(site_matches(d, u), want, "{d} on {u}");
        }
    }
}
