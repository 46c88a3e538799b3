//! Brand rule query language: parse a query into an AST, compile a rule set into one matcher,
//! and match documents. It does not know where text came from, and does not decide what to do
//! with a match.
//!
//! # Language
//! Terms (all case-, diacritic- and width-insensitive, on word boundaries):
//! - `acme` a word: matches `ACME,` `#acme` `@acme` but not `acmeville`. A word is a maximal run
//!   of letters and digits; each CJK ideograph, hiragana or katakana character is a word of its
//!   own, so `東京` matches inside `東京タワー`.
//! - `"acme corp"` words in a row, whatever spaces or punctuation are between them. A bare term
//!   with punctuation inside (`acme-corp`, `mcdonald's`) is such a phrase.
//! - `#acme`, `@acme`, `$ACME` a hashtag, handle or cashtag: the sign right before the word and
//!   no word character before the sign; `#acme` does not match `#acme_fans`, `@acme` does not
//!   match `bob@acme.com` nor `@acme.bsky.social`.
//! - `acme.com`, `https://www.acme.com/pricing` a domain or URL (scheme and `www.` ignored):
//!   the words with exactly those separators, also as a subdomain (`shop.acme.com`), but not
//!   going on as another domain (`acme.com.evil.net`).
//! - `youtube.com/watch?v=abc` a URL (a scheme, or a dotted host followed by a path or query),
//!   quoted or not: matched as written, so `?`, `=`, `&`, `#` are its punctuation, not
//!   wildcards; it does not match `…?v=abd` nor `…?v=abc-x` (the id goes on). `*` stays a
//!   wildcard in a URL (`acme.com/blog/recall*`).
//! - `refund*` any word starting with `refund`; `colo?r` one character in place of `?`; `*`
//!   may also stand inside a word (`col*r`). At least 3 letters or digits must come before the
//!   first wildcard.
//!
//! Operators (upper case only; `and`, `or`, `not`, `near` are ordinary words):
//! - `a AND b`, `a b` (adjacent), `a OR b`, `NOT a`, `-a` (same as `NOT a`), `( ... )`.
//! - `a NEAR/n b`: both terms with at most n words between them, in either order, in the same
//!   field; `a ONEAR/n b`: `a` first. Operands are terms (phrases allowed), not groups.
//! - Precedence, tightest first: NEAR/ONEAR, then NOT and `-`, then AND (explicit or adjacent),
//!   then OR: `a OR b c` is `a OR (b AND c)`; `NOT a b` is `(NOT a) AND b`;
//!   `NOT a NEAR/2 b` is `NOT (a NEAR/2 b)`.
//!
//! Fields (prefix a term or a group: `title:(acme OR globex)`):
//! - no field: title and text, a match in either counts; `title:` the title only; `author:`
//!   words of the author name;
//! - `site:acme.com` the URL's host is that domain or a subdomain; `source:hn` the source name
//!   or kind; `lang:en` the language tag, subtags included (`en-GB`);
//! - `raw:"Acme"` the exact characters, case-sensitive, no normalisation, on word boundaries,
//!   in title or text.
//!
//! Normalisation is documented in `text.rs`; spans always refer to `Document::text`.
//!
//! # Matching
//! `RuleSet::compile` parses every rule once and builds one pre-filter over the literal words
//! of all rules (`compiled.rs`); `RuleSet::matches` looks a post's words up once and evaluates
//! only the rules whose words occurred, plus rules with no literal to look for (`lang:en`,
//! `raw:...`), which run on every post. A rule that is one plain word or phrase (most of a
//! deployment's rules) is decided by the scan itself from where its word occurred, so a post
//! is normalised and split again for the evaluator only when another kind of rule, or the
//! exclusion, needs it. `Defaults` (exclude query, muted authors and sites, languages) apply
//! after the rules: an excluded post matches no rule.
//!
//! A post without a language tag gets one from `analysis::lang` only when something needs it
//! (`RuleSet::matches_detecting`): a candidate rule or the exclusion tests `lang:`, or a rule
//! matched and `[rules_defaults] languages` is set. Detection costs far more than matching,
//! so a post no rule looks at is never detected.

mod ast;
mod compiled;
pub mod config;
mod error;
mod eval;
mod lexer;
mod lint;
mod parser;
mod text;

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

pub use error::{ParseError, RuleError, RuleWarning};

use crate::analysis::lang;

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
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// One parsed query, ready to match.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    expr: ast::Expr,
}

impl Query {
    /// Parses `q`; the error points at the column of the first problem.
    pub(crate) fn parse(q: &str) -> Result<Query, ParseError> {
        Ok(Query {
            expr: parser::parse(q)?,
        })
    }

    /// `Some(spans)` if the query matches `doc`: the sorted, non-overlapping byte ranges of the
    /// positive terms found in `doc.text` (empty when the match came from the title or only
    /// from NOT).
    pub(crate) fn matches(&self, doc: &Document) -> Option<Vec<Span>> {
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
    pub(crate) spans: Vec<Span>,
}

/// Exclusions that apply to every rule (`[rules_defaults]` in the config).
#[derive(Debug, Clone, Default)]
pub(crate) struct Defaults<'a> {
    /// A query; a post it matches matches no rule.
    pub(crate) exclude: Option<&'a str>,
    /// Author names whose posts match no rule; compared ignoring case and a leading `@`.
    pub(crate) muted_authors: Vec<&'a str>,
    /// Domains whose pages (subdomains included) match no rule.
    pub(crate) muted_sites: Vec<&'a str>,
    /// ISO 639-1 codes (checked by the config reader): a post in another language matches no
    /// rule; a post whose language cannot be told is kept. Empty: every language.
    pub(crate) languages: Vec<&'a str>,
}

/// What `RuleSet::matches_detecting` found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Matched {
    pub rules: Vec<RuleMatch>,
    /// `Some` when the language was detected on the way (the document had none and a rule,
    /// the exclusion or the language list needed it), holding the answer (`None`: could not
    /// tell). The caller reuses it instead of detecting again.
    pub detected: Option<Option<&'static str>>,
}

thread_local! {
    /// The matcher's buffers, reused by every post matched on this thread.
    static SCRATCH: std::cell::RefCell<compiled::Scratch> =
        const { std::cell::RefCell::new(compiled::Scratch::new()) };
}

/// The rule name a bad `Defaults::exclude` is reported under.
pub(crate) const EXCLUDE_RULE_NAME: &str = "rules_defaults.exclude";

/// Every configured rule, compiled once into one matcher; immutable afterwards, so one
/// `Arc<RuleSet>` serves all tasks.
#[derive(Debug, Clone)]
pub struct RuleSet {
    names: Vec<String>,
    exprs: Vec<ast::Expr>,
    compiled: compiled::Compiled,
    exclude: Option<ast::Expr>,
    muted_authors: Vec<String>,
    muted_sites: Vec<String>,
    /// Per rule (compile order): whether it tests `lang:`, so only those make a post's
    /// language be detected before they are evaluated.
    tests_lang: Vec<bool>,
    exclude_tests_lang: bool,
    languages: Vec<String>,
    warnings: Vec<RuleWarning>,
}

impl RuleSet {
    /// Compiles `(name, query)` pairs in order. On failure returns one error per bad rule, so a
    /// config with several mistakes is fixed in one pass.
    pub fn compile<'a>(
        rules: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<RuleSet, Vec<RuleError>> {
        RuleSet::compile_with(rules, &Defaults::default())
    }

    /// Like `compile`, with global exclusions; a bad `exclude` query is reported as the rule
    /// named `rules_defaults.exclude`, after the rules' own errors. A rule that can match a post
    /// with none of its positive terms (`NOT acme`, `a OR NOT b`) is refused; the exclusion is
    /// not, since it is meant to be negative. Operator-looking words read as words become
    /// `warnings()`.
    pub(crate) fn compile_with<'a>(
        rules: impl IntoIterator<Item = (&'a str, &'a str)>,
        defaults: &Defaults,
    ) -> Result<RuleSet, Vec<RuleError>> {
        let mut names = Vec::new();
        let mut exprs = Vec::new();
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut warn =
            |rule: &str, query: &str, toks: &[lexer::Token]| {
                warnings.extend(lint::warnings(query, toks).into_iter().map(|warning| {
                    RuleWarning {
                        rule: rule.to_string(),
                        warning,
                    }
                }))
            };
        for (name, query) in rules {
            let parsed = parser::parse_full(query)
                .and_then(|p| lint::require_positive(query, &p).map(|()| p));
            match parsed {
                Ok(p) => {
                    warn(name, query, &p.toks);
                    names.push(name.to_string());
                    exprs.push(p.expr);
                }
                Err(error) => errors.push(RuleError {
                    rule: name.to_string(),
                    error,
                }),
            }
        }
        let exclude = match defaults.exclude.map(|q| (q, parser::parse_full(q))) {
            None => None,
            Some((q, Ok(p))) => {
                warn(EXCLUDE_RULE_NAME, q, &p.toks);
                Some(p.expr)
            }
            Some((_, Err(error))) => {
                errors.push(RuleError {
                    rule: EXCLUDE_RULE_NAME.to_string(),
                    error,
                });
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RuleSet {
            compiled: compiled::Compiled::build(&exprs),
            tests_lang: exprs.iter().map(tests_lang).collect(),
            exclude_tests_lang: exclude.as_ref().is_some_and(tests_lang),
            languages: defaults
                .languages
                .iter()
                .map(|l| lang::primary(l))
                .collect(),
            names,
            exprs,
            exclude,
            muted_authors: defaults
                .muted_authors
                .iter()
                .map(|a| author_key(a))
                .collect(),
            muted_sites: defaults
                .muted_sites
                .iter()
                .map(|s| parser::host_of(s))
                .collect(),
            warnings,
        })
    }

    /// Rules (and the exclusion) that compiled but probably do not say what was meant, in
    /// compile order.
    pub fn warnings(&self) -> &[RuleWarning] {
        &self.warnings
    }

    /// The rules that match `doc`, in compile order; none if the post is excluded.
    pub fn matches(&self, doc: &Document) -> Vec<RuleMatch> {
        self.matches_detecting(doc).rules
    }

    /// The rules that match `doc`, in compile order (none if the post is excluded or in a
    /// language `[rules_defaults] languages` leaves out), detecting the post's language
    /// when `doc.lang` is `None` and a candidate rule, the exclusion or the language list
    /// needs it.
    pub fn matches_detecting(&self, doc: &Document) -> Matched {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                let found = self.matches_in(doc, &mut scratch);
                if doc.text.len() + doc.title.map_or(0, str::len) > compiled::KEEP {
                    scratch.shrink();
                }
                found
            }
            // Only if matching ever re-entered itself on this thread.
            Err(_) => self.matches_in(doc, &mut compiled::Scratch::default()),
        })
    }

    fn matches_in(&self, doc: &Document, scan: &mut compiled::Scratch) -> Matched {
        self.compiled.scan(doc, scan);
        if scan.is_empty() || self.muted(doc) {
            return Matched::default();
        }
        // A tag that says nothing (`und`) counts as none.
        let mut doc = Document {
            lang: lang::given(doc.lang),
            ..*doc
        };
        let mut detected = None;
        let mut detect = |doc: &mut Document| {
            if doc.lang.is_none() && detected.is_none() {
                let found = lang::detect(doc.title, doc.text);
                detected = Some(found);
                doc.lang = found;
            }
        };
        // Direct rules never test `lang:`.
        if self.exclude_tests_lang || scan.candidates.iter().any(|&i| self.tests_lang[i as usize]) {
            detect(&mut doc);
        }
        let mut hits = self.compiled.direct_matches(&doc, scan);
        // The post is normalised and split again only for rules the scan cannot decide.
        let mut fields = None;
        hits.extend(scan.candidates.iter().filter_map(|&i| {
            let i = i as usize;
            let fields = fields.get_or_insert_with(|| eval::Fields::new(&doc));
            eval::eval(&self.exprs[i], fields).map(|spans| (i, eval::tidy(spans)))
        }));
        // No rule is in both lists: rule order is the order of their indices.
        hits.sort_unstable_by_key(|&(rule, _)| rule);
        let mut found: Vec<RuleMatch> = hits
            .into_iter()
            .map(|(rule, spans)| RuleMatch {
                rule,
                name: self.names[rule].clone(),
                spans,
            })
            .collect();
        if !found.is_empty()
            && self.exclude.as_ref().is_some_and(|e| {
                let fields = fields.get_or_insert_with(|| eval::Fields::new(&doc));
                eval::eval(e, fields).is_some()
            })
        {
            found.clear();
        }
        if !found.is_empty() && !self.languages.is_empty() {
            detect(&mut doc);
            if lang::left_out_by(&self.languages, doc.lang) {
                found.clear();
            }
        }
        Matched {
            rules: found,
            detected,
        }
    }

    /// Whether the author or site is muted.
    fn muted(&self, doc: &Document) -> bool {
        let author = doc
            .author
            .is_some_and(|a| self.muted_authors.contains(&author_key(a)));
        let site = doc
            .url
            .is_some_and(|u| self.muted_sites.iter().any(|d| eval::site_matches(d, u)));
        author || site
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Rules that have no literal to pre-filter on and so are evaluated on every post; worth
    /// logging at start-up because each one costs time on every post.
    pub fn untriggered(&self) -> usize {
        self.compiled.untriggered()
    }
}

/// Whether `e` tests the document's language anywhere.
fn tests_lang(e: &ast::Expr) -> bool {
    match e {
        ast::Expr::Meta(ast::Meta::Lang(_)) => true,
        ast::Expr::Not(inner) => tests_lang(inner),
        ast::Expr::And(v) | ast::Expr::Or(v) => v.iter().any(tests_lang),
        ast::Expr::Term(_) | ast::Expr::Raw(_) | ast::Expr::Meta(_) | ast::Expr::Near(_) => false,
    }
}

/// How author names are compared for muting.
fn author_key(a: &str) -> String {
    let a = a.trim();
    a.strip_prefix('@').unwrap_or(a).to_lowercase()
}
