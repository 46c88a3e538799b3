//! Recursive-descent parser from tokens to `Expr`, with precedence NEAR > NOT > AND > OR and
//! adjacency meaning AND. It reports the first error with its column and a hint; it does not
//! match text.
//!
//! Grammar:
//! ```text
//! query   := or EOF
//! or      := and ( "OR" and )*
//! and     := unary ( ["AND"] unary )*
//! unary   := ("NOT" | "-") unary | near
//! near    := primary [ ("NEAR/n" | "ONEAR/n") primary ]     both operands terms
//! primary := "(" or ")" | field primary | term
//! field   := ("title" | "author" | "site" | "source" | "lang" | "raw") ":"
//! term    := word | "phrase" | #tag | @handle | $cashtag | domain | url
//!            (words may hold * ?; in a url, quoted or not, ? is punctuation, only * is a wildcard)
//! ```

use super::ast::{Expr, Field, Joint, Meta, Near, Term, WordPat};
use super::error::ParseError;
use super::lexer::{lex, TokKind, Token};
use super::text::{tokenize_star, tokenize_wild, Tokens};

/// The field a group or term is scoped to by a `name:` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Title,
    Author,
    Site,
    Source,
    Lang,
    Raw,
}

const FIELDS: &[(&str, Scope)] = &[
    ("title", Scope::Title),
    ("author", Scope::Author),
    ("site", Scope::Site),
    ("source", Scope::Source),
    ("lang", Scope::Lang),
    ("raw", Scope::Raw),
];

/// Fewest literal characters a wildcard word needs before its first `*` or `?`.
pub(crate) const MIN_WILDCARD_PREFIX: usize = 3;

const OPERAND: &str = "a word, \"phrase\" or (group)";

/// Parses a whole query.
pub(crate) fn parse(q: &str) -> Result<Expr, ParseError> {
    parse_full(q).map(|p| p.expr)
}

/// Where a `NOT` or `-` was written, so the lint can point at the one that lets a rule match
/// without any positive term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotSite {
    /// 1-based character column of the `NOT` or `-`.
    pub(crate) col: usize,
    /// `NOT` or `-`, as written.
    pub(crate) op: &'static str,
    /// The negated operand as written.
    pub(crate) operand: String,
    /// Whether the operand is a single bare word (then messages quote it).
    pub(crate) bare_word: bool,
}

/// A parsed query with what the lint needs: the tokens, and one `NotSite` per `Expr::Not` in
/// pre-order (which is the order the `NOT`s are written in).
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub(crate) expr: Expr,
    pub(crate) toks: Vec<Token>,
    pub(crate) nots: Vec<NotSite>,
}

/// Parses a whole query, keeping the tokens and NOT sites for the lint.
pub(crate) fn parse_full(q: &str) -> Result<Parsed, ParseError> {
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
        scope: None,
        nots: Vec::new(),
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
    Ok(Parsed {
        expr: e,
        toks: p.toks,
        nots: p.nots,
    })
}

struct Parser<'q> {
    query: &'q str,
    toks: Vec<Token>,
    pos: usize,
    /// Open parentheses, to tell an unbalanced ")" from a misplaced one.
    depth: usize,
    /// The field prefix in force, if any.
    scope: Option<Scope>,
    /// Every negation so far, in the order written.
    nots: Vec<NotSite>,
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
            Some(
                TokKind::Word(_)
                    | TokKind::Phrase(_)
                    | TokKind::LParen
                    | TokKind::Not
                    | TokKind::Minus
                    | TokKind::Field(_)
            )
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
        let (op, what, hint) = match self.peek().map(|t| &t.kind) {
            Some(TokKind::Not) => ("NOT", "NOT", format!("put {OPERAND} after NOT")),
            Some(TokKind::Minus) => ("-", "\"-\"", format!("put {OPERAND} right after -")),
            _ => return self.parse_near(),
        };
        let not = self.next().expect("peeked");
        if !self.starts_operand() {
            return Err(self.err(not.col, format!("{what} needs something to negate"), hint));
        }
        // Reserve the site before the operand so nested NOTs keep the written order.
        let site = self.nots.len();
        self.nots.push(NotSite {
            col: not.col,
            op,
            operand: String::new(),
            bare_word: false,
        });
        let first = self.pos;
        let inner = self.parse_unary()?;
        let (start, end) = (self.toks[first].start, self.toks[self.pos - 1].end);
        self.nots[site].operand = self.query[start..end].to_string();
        self.nots[site].bare_word =
            self.pos == first + 1 && matches!(self.toks[first].kind, TokKind::Word(_));
        Ok(Expr::Not(Box::new(inner)))
    }

    fn parse_near(&mut self) -> Result<Expr, ParseError> {
        let left_first = self.pos;
        let left = self.parse_primary()?;
        let Some(TokKind::Near { distance, ordered }) = self.peek().map(|t| t.kind.clone()) else {
            return Ok(left);
        };
        let left_text = self.text(left_first, self.pos);
        let op = self.next().expect("peeked");
        let two_operands = |p: &Self| {
            p.err(
                op.col,
                format!("{} needs two operands", op.kind.describe()),
                format!(
                    "put a word or \"phrase\" on each side of {}",
                    op.kind.describe()
                ),
            )
        };
        let Expr::Term(left) = left else {
            let right = match self.peek().map(|t| &t.kind) {
                Some(TokKind::Word(_) | TokKind::Phrase(_)) => {
                    Some(self.text(self.pos, self.pos + 1))
                }
                _ => None,
            };
            return Err(self.bad_operand(left_first, &op.kind, None, right.as_deref()));
        };
        match self.peek().map(|t| &t.kind) {
            Some(TokKind::Word(_) | TokKind::Phrase(_) | TokKind::Field(_)) => {}
            Some(TokKind::LParen) => {
                return Err(self.bad_operand(self.pos, &op.kind, Some(&left_text), None))
            }
            Some(TokKind::Not | TokKind::Minus) => {
                let not = self.peek().expect("peeked");
                return Err(self.err(
                    not.col,
                    format!("NOT cannot be an operand of {}", op.kind.describe()),
                    format!(
                        "write {left_text} AND NOT ... to exclude a word, or NOT ({left_text} {} ...) to exclude the pair",
                        op.kind.describe()
                    ),
                ));
            }
            _ => return Err(two_operands(self)),
        }
        let right_first = self.pos;
        let Expr::Term(right) = self.parse_primary()? else {
            return Err(self.bad_operand(right_first, &op.kind, Some(&left_text), None));
        };
        if let Some(t) = self
            .peek()
            .filter(|t| matches!(t.kind, TokKind::Near { .. }))
        {
            return Err(self.err(
                t.col,
                format!("{} cannot be chained", t.kind.describe()),
                "join NEAR pairs with AND",
            ));
        }
        if left.field != right.field {
            return Err(self.err(
                op.col,
                format!(
                    "{} needs both operands in the same field",
                    op.kind.describe()
                ),
                "put the field prefix on both operands or on neither",
            ));
        }
        Ok(Expr::Near(Near {
            left,
            right,
            distance,
            ordered,
        }))
    }

    /// The query text of tokens `from..to`, as written.
    fn text(&self, from: usize, to: usize) -> String {
        match (
            self.toks.get(from),
            to.checked_sub(1).and_then(|i| self.toks.get(i)),
        ) {
            (Some(a), Some(b)) if b.end >= a.start => self.query[a.start..b.end].to_string(),
            _ => String::new(),
        }
    }

    /// The error for a NEAR operand at token `at` that is not a plain term: a group (with the
    /// NEARs to write instead, when the group is a simple OR list) or a metadata field.
    fn bad_operand(
        &self,
        at: usize,
        op: &TokKind,
        left: Option<&str>,
        right: Option<&str>,
    ) -> ParseError {
        let near = op.describe();
        let (prefix, open) = match self.toks.get(at).map(|t| &t.kind) {
            Some(TokKind::Field(_)) => (self.text(at, at + 1), at + 1),
            _ => (String::new(), at),
        };
        let Some(tok) = self.toks.get(open).filter(|t| t.kind == TokKind::LParen) else {
            let field = self.text(at, at + 1);
            return self.err(
                self.toks.get(at).map_or(1, |t| t.col),
                format!("{field} cannot be an operand of {near}"),
                format!("{near} compares word positions in the title or text; join {field} with AND instead"),
            );
        };
        let pairs = |alts: Vec<String>, pair: &dyn Fn(&str) -> String| {
            format!(
                "put a single word or \"phrase\" on each side and join the pairs with OR: {}",
                alts.iter()
                    .map(|a| pair(a))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            )
        };
        let hint = match (self.alternatives(open), left, right) {
            (Some(alts), Some(l), _) => pairs(alts, &|a| format!("({l} {near} {prefix}{a})")),
            (Some(alts), None, Some(r)) => pairs(alts, &|a| format!("({prefix}{a} {near} {r})")),
            _ => format!(
                "put a single word or \"phrase\" on each side and join several pairs with AND or OR, e.g. (acme {near} refund) OR (acme {near} money)"
            ),
        };
        self.err(
            tok.col,
            format!("a group is not allowed as an operand of {near}"),
            hint,
        )
    }

    /// The words of a group `( a OR "b c" OR d )` opening at token `open`, as written; `None`
    /// when the group is anything else.
    fn alternatives(&self, open: usize) -> Option<Vec<String>> {
        let mut alts = Vec::new();
        let mut i = open + 1;
        loop {
            match self.toks.get(i).map(|t| &t.kind) {
                Some(TokKind::Word(_) | TokKind::Phrase(_)) => alts.push(self.text(i, i + 1)),
                _ => return None,
            }
            match self.toks.get(i + 1).map(|t| &t.kind) {
                Some(TokKind::Or) => i += 2,
                Some(TokKind::RParen) => return Some(alts),
                _ => return None,
            }
        }
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
            TokKind::Near { .. } => Err(self.err(
                tok.col,
                format!("{} needs two operands", tok.kind.describe()),
                format!(
                    "put a word or \"phrase\" on each side of {}",
                    tok.kind.describe()
                ),
            )),
            TokKind::Field(ref name) => self.field(&tok, name),
            TokKind::Not | TokKind::Minus => unreachable!("parse_unary handles negation"),
        }
    }

    fn field(&mut self, tok: &Token, name: &str) -> Result<Expr, ParseError> {
        let Some(&(_, scope)) = FIELDS.iter().find(|(n, _)| *n == name) else {
            return Err(self.err(
                tok.col,
                format!("unknown field {}", tok.kind.describe()),
                "use title:, author:, site:, source:, lang: or raw:, or put the text in quotes",
            ));
        };
        if self.scope.is_some() {
            return Err(self.err(
                tok.col,
                "fields cannot be nested",
                "put the field prefix on each term instead",
            ));
        }
        if !matches!(
            self.peek().map(|t| &t.kind),
            Some(TokKind::Word(_) | TokKind::Phrase(_) | TokKind::LParen)
        ) {
            return Err(self.err(
                tok.col,
                format!("{} needs something to search for", tok.kind.describe()),
                format!("put {OPERAND} right after {}", tok.kind.describe()),
            ));
        }
        self.scope = Some(scope);
        let inner = self.parse_primary();
        self.scope = None;
        inner
    }

    fn term(&self, tok: &Token, text: &str) -> Result<Expr, ParseError> {
        let is_phrase = matches!(tok.kind, TokKind::Phrase(_));
        let field = match self.scope {
            None => Field::Any,
            Some(Scope::Title) => Field::Title,
            Some(Scope::Author) => Field::Author,
            Some(Scope::Raw) => return Ok(Expr::Raw(text.trim().to_string())),
            Some(Scope::Source) => {
                return Ok(Expr::Meta(Meta::Source(text.trim().to_lowercase())));
            }
            Some(Scope::Lang) => {
                return Ok(Expr::Meta(Meta::Lang(
                    text.trim().to_lowercase().replace('_', "-"),
                )));
            }
            Some(Scope::Site) => {
                let domain = host_of(text.trim());
                if domain.is_empty() || domain.contains(|c: char| c.is_whitespace() || c == '/') {
                    return Err(self.err(
                        tok.col,
                        "site: takes a domain",
                        "write it like site:acme.com",
                    ));
                }
                return Ok(Expr::Meta(Meta::Site(domain)));
            }
        };
        let mut body = text;
        let mut sigil = None;
        let mut exact_glue = None;
        // A URL is matched as written: `?`, `=`, `&` and `#` are its punctuation, not
        // wildcards (`youtube.com/watch?v=abc`), whether it is quoted or not; `*` is still
        // a wildcard (`acme.com/blog/recall*`).
        if let Some(url) = url_term(text.trim()) {
            let t = tokenize_star(url);
            if t.words.is_empty() {
                return Err(self.err(
                    tok.col,
                    format!("{} has no letters or digits", tok.kind.describe()),
                    "a term needs at least one letter or digit; punctuation alone is not searchable",
                ));
            }
            let mut words = Vec::with_capacity(t.words.len());
            for i in 0..t.words.len() {
                words.push(self.word_pat(tok, t.word(i))?);
            }
            return Ok(Expr::Term(Term {
                words,
                joint: Joint::Exact {
                    seps: gaps(&t),
                    glue: DOMAIN_GLUE,
                },
                sigil: None,
                field,
            }));
        }
        if !is_phrase {
            if let Some(c) = body.chars().next().filter(|c| matches!(c, '#' | '@' | '$')) {
                if body.len() > 1 {
                    sigil = Some(c);
                    body = &body[1..];
                    exact_glue = Some(if c == '@' { "_." } else { "_" });
                }
            }
            if sigil.is_none() {
                let stripped = strip_scheme(body);
                if stripped.len() != body.len() {
                    exact_glue = Some(DOMAIN_GLUE);
                }
                body = stripped;
            }
        }
        let t = tokenize_wild(body);
        if t.words.is_empty() {
            return Err(self.err(
                tok.col,
                format!("{} has no letters or digits", tok.kind.describe()),
                "a term needs at least one letter or digit; punctuation alone is not searchable",
            ));
        }
        if !is_phrase
            && exact_glue.is_none()
            && (0..t.words.len() - 1).any(|i| t.gap(i).contains(['.', '/']))
        {
            exact_glue = Some(DOMAIN_GLUE);
        }
        let mut words = Vec::with_capacity(t.words.len());
        for i in 0..t.words.len() {
            words.push(self.word_pat(tok, t.word(i))?);
        }
        let joint = match exact_glue {
            None => Joint::Loose,
            Some(glue) => Joint::Exact {
                seps: gaps(&t),
                glue,
            },
        };
        Ok(Expr::Term(Term {
            words,
            joint,
            sigil,
            field,
        }))
    }

    fn word_pat(&self, tok: &Token, word: &str) -> Result<WordPat, ParseError> {
        let Some(first) = word.find(['*', '?']) else {
            return Ok(WordPat::Exact(word.to_string()));
        };
        let prefix = &word[..first];
        if prefix.chars().count() < MIN_WILDCARD_PREFIX {
            return Err(self.err(
                tok.col,
                "wildcard too short",
                format!(
                    "put at least {MIN_WILDCARD_PREFIX} letters or digits before * or ?, or it would match almost everything"
                ),
            ));
        }
        Ok(WordPat::Wild {
            pattern: word.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// Characters that, followed by a word character, mean a domain or URL goes on
/// (`acme.com` must not match `acme.com.evil.net`).
const DOMAIN_GLUE: &str = ".-_";

fn gaps(t: &Tokens) -> Vec<String> {
    (0..t.words.len().saturating_sub(1))
        .map(|i| t.gap(i).to_string())
        .collect()
}

/// The part of `s` to match when `s` is a URL, scheme and `www.` dropped: a term with a scheme
/// (`https://…`), or a dotted host followed by a path or query (`acme.com/x`, `acme.com?x=1`).
/// A bare domain (`acme.com`) is not a URL here: it keeps the ordinary term rules. Text with
/// spaces is never a URL.
fn url_term(s: &str) -> Option<&str> {
    if s.is_empty() || s.contains(char::is_whitespace) {
        return None;
    }
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    let had_scheme = lower.starts_with("http://") || lower.starts_with("https://");
    let rest = strip_scheme(s);
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..host_end];
    let after = &rest[host_end..];
    let dotted = host.split('.').filter(|label| !label.is_empty()).count() >= 2
        && !host.starts_with('.')
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    let has_more = after.chars().nth(1).is_some();
    (dotted && (had_scheme || has_more)).then_some(rest)
}

/// Drops `http://`, `https://` and a leading `www.`, so `https://www.acme.com` and `acme.com`
/// are the same term.
fn strip_scheme(s: &str) -> &str {
    let mut rest = s;
    for prefix in ["https://", "http://", "www."] {
        // Comparing bytes: an ASCII prefix that matches ends on a char boundary.
        let b = rest.as_bytes();
        if b.len() >= prefix.len() && b[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes()) {
            rest = &rest[prefix.len()..];
        }
    }
    rest
}

/// The lowercased host of a URL or domain, without scheme, `www.`, user, port or path.
pub(crate) fn host_of(s: &str) -> String {
    let rest = s.find("://").map_or(s, |i| &s[i + 3..]);
    let rest = rest.split(['/', '?', '#']).next().unwrap_or("");
    let rest = rest.rsplit('@').next().unwrap_or("");
    let rest = rest.split(':').next().unwrap_or("");
    let host = rest.trim_end_matches('.').to_lowercase();
    match host.strip_prefix("www.") {
        Some(h) => h.to_string(),
        None => host,
    }
}
