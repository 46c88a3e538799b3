//! A cheap keyword prefilter for high-volume sources (the Bluesky firehose, Reddit's comment
//! stream): keeps only items that could possibly match the source's `query`, before anything
//! is decoded further or sent on. It never decides a match: the rules do that downstream.
//! Until the rule matcher exposes its atoms, the keywords come from the source's own `query`.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// The words a query needs at least one of, found case-insensitively as substrings.
///
/// Substring search accepts a superset of what the rules' word-boundary matching accepts, so
/// the prefilter can only let through too much, never drop a mention a rule would take.
/// Terms under `NOT` are left out (a post is never kept *because* it says "hiring"); for a
/// phrase only its longest word is used, because the rules match `"acme corp"` across any
/// punctuation (`acme-corp`), which a literal phrase search would miss.
#[derive(Debug, Clone)]
pub struct Prefilter {
    keywords: Vec<String>,
    /// ASCII keywords, matched case-insensitively on raw bytes without lower-casing the text.
    ascii: Option<AhoCorasick>,
    /// Keywords with non-ASCII letters, matched against a lower-cased copy of the text.
    unicode: Vec<String>,
}

impl Prefilter {
    /// Builds the prefilter from a query; `None` when the query names no positive term
    /// (then nothing can be filtered cheaply and the caller must decide).
    pub fn from_query(query: &str) -> Option<Prefilter> {
        Prefilter::from_keywords(positive_terms(query))
    }

    /// Builds the prefilter from keywords (lower-cased here); `None` for an empty list.
    pub(crate) fn from_keywords(keywords: Vec<String>) -> Option<Prefilter> {
        let mut keywords: Vec<String> = keywords
            .into_iter()
            .map(|k| k.trim().to_lowercase())
            .filter(|k| !k.is_empty())
            .collect();
        keywords.sort();
        keywords.dedup();
        if keywords.is_empty() {
            return None;
        }
        let (ascii, unicode): (Vec<String>, Vec<String>) =
            keywords.iter().cloned().partition(|k| k.is_ascii());
        let ascii = (!ascii.is_empty()).then(|| {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostFirst)
                .build(&ascii)
                .expect("a handful of literal keywords always builds")
        });
        Some(Prefilter {
            keywords,
            ascii,
            unicode,
        })
    }

    /// The keywords, lower-cased and sorted (shown in logs and docs).
    pub(crate) fn keywords(&self) -> &[String] {
        &self.keywords
    }

    /// True if `text` contains any keyword, ignoring case.
    pub(crate) fn accepts(&self, text: &str) -> bool {
        if self.ascii.as_ref().is_some_and(|ac| ac.is_match(text)) {
            return true;
        }
        if self.unicode.is_empty() {
            return false;
        }
        let lower = text.to_lowercase();
        self.unicode.iter().any(|k| lower.contains(k.as_str()))
    }

    /// True if raw bytes (for instance an undecoded JSON event) may contain a keyword.
    /// Exact for ASCII keywords, which JSON never escapes; with any non-ASCII keyword it
    /// answers true so the caller decodes and asks `accepts`.
    pub(crate) fn may_contain(&self, raw: &[u8]) -> bool {
        if !self.unicode.is_empty() {
            return true;
        }
        self.ascii.as_ref().is_some_and(|ac| ac.is_match(raw))
    }
}

/// The positive terms of a query in the rule language: words and phrases not under `NOT`,
/// operators and parentheses dropped. A phrase contributes its longest word.
pub(crate) fn positive_terms(query: &str) -> Vec<String> {
    let tokens = tokenize(query);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Not => {
                // Skip the negated term, or the whole negated group.
                i += 1;
                if let Some(Token::Open) = tokens.get(i) {
                    let mut depth = 0usize;
                    while i < tokens.len() {
                        match tokens[i] {
                            Token::Open => depth += 1,
                            Token::Close => {
                                depth = depth.saturating_sub(1);
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        i += 1;
                    }
                }
            }
            Token::Term(words) => {
                // The first of the longest words (`rev` because `max_by_key` keeps the last).
                if let Some(longest) = words.iter().rev().max_by_key(|w| w.chars().count()) {
                    out.push(longest.to_lowercase());
                }
            }
            Token::Open | Token::Close | Token::And | Token::Or => {}
        }
        i += 1;
    }
    out
}

#[derive(Debug, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    /// A word or phrase, split into its words (runs of letters and digits).
    Term(Vec<String>),
}

fn tokenize(query: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = query.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            '(' => tokens.push(Token::Open),
            ')' => tokens.push(Token::Close),
            '"' => {
                let mut phrase = String::new();
                for (_, c) in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    phrase.push(c);
                }
                tokens.push(Token::Term(words(&phrase)));
            }
            c if c.is_whitespace() => {}
            _ => {
                let mut end = start + c.len_utf8();
                while let Some(&(i, c)) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' || c == '"' {
                        break;
                    }
                    end = i + c.len_utf8();
                    chars.next();
                }
                let raw = &query[start..end];
                tokens.push(match raw {
                    "AND" => Token::And,
                    "OR" => Token::Or,
                    "NOT" => Token::Not,
                    _ => Token::Term(words(raw)),
                });
            }
        }
    }
    tokens
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_terms_skip_operators_and_negations() {
        assert_eq!(
            positive_terms(r#"(acme OR "acme corp") AND NOT (hiring OR "job opening")"#),
            ["acme", "acme"]
        );
        assert_eq!(
            positive_terms("acme NOT hiring widgets"),
            ["acme", "widgets"]
        );
        assert_eq!(positive_terms(r#""big acmecorp""#), ["acmecorp"]);
        assert_eq!(positive_terms("acme-corp"), ["acme"]);
        assert_eq!(positive_terms("NOT spam"), Vec::<String>::new());
        assert_eq!(positive_terms("Ärger and"), ["ärger", "and"]);
    }

    #[test]
    fn prefilter_never_rejects_what_a_rule_could_match() {
        let p = Prefilter::from_query(r#"(acme OR "acme corp") AND NOT hiring"#).unwrap();
        assert_eq!(p.keywords(), ["acme"]);
        for text in ["ACME broke", "#acme", "the acme-corp router", "xAcmeville"] {
            assert!(p.accepts(text), "{text}");
            assert!(p.may_contain(text.as_bytes()), "{text}");
        }
        assert!(!p.accepts("nothing to see here"));
        assert!(!p.may_contain(br#"{"text":"nothing to see"}"#));
    }

    #[test]
    fn non_ascii_keywords_match_case_insensitively() {
        let p = Prefilter::from_query("Ärger OR acme").unwrap();
        assert!(p.accepts("so viel ÄRGER"));
        assert!(p.accepts("Acme"));
        assert!(!p.accepts("alles gut"));
        assert!(
            p.may_contain(b"anything"),
            "raw bytes cannot be checked for non-ASCII"
        );
    }

    #[test]
    fn a_query_without_positive_terms_builds_no_prefilter() {
        assert!(Prefilter::from_query("NOT spam").is_none());
        assert!(Prefilter::from_query("  ").is_none());
    }
}
