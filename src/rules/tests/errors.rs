//! Parse errors: column, message and hint of each, and how a rule set reports them.

use super::*;

/// (query, column, message, hint)
const ERROR_CASES: &[(&str, usize, &str, &str)] = &[
    (
        "acme OR acme.com/blog/*",
        9,
        "wildcard too short",
        "put at least 3 letters or digits before * or ?, or it would match almost everything",
    ),
    (
        "",
        1,
        "empty query",
        "write at least one word or \"phrase\"",
    ),
    (
        "   ",
        1,
        "empty query",
        "write at least one word or \"phrase\"",
    ),
    (
        "acme OR foo)",
        12,
        "unbalanced \")\"",
        "remove it or add a matching \"(\"",
    ),
    (
        ")",
        1,
        "unbalanced \")\"",
        "remove it or add a matching \"(\"",
    ),
    (
        "acme AND )",
        10,
        "unbalanced \")\"",
        "remove it or add a matching \"(\"",
    ),
    (
        "(acme OR foo",
        1,
        "unbalanced \"(\"",
        "add a matching \")\"",
    ),
    ("a ((b) c", 3, "unbalanced \"(\"", "add a matching \")\""),
    (
        "()",
        1,
        "empty parentheses",
        "put a query inside them or remove them",
    ),
    (
        "acme NOT",
        6,
        "NOT needs something to negate",
        "put a word, \"phrase\" or (group) after NOT",
    ),
    (
        "(NOT) acme",
        2,
        "NOT needs something to negate",
        "put a word, \"phrase\" or (group) after NOT",
    ),
    (
        "NOT OR acme",
        1,
        "NOT needs something to negate",
        "put a word, \"phrase\" or (group) after NOT",
    ),
    (
        "acme \"\"",
        6,
        "empty phrase",
        "put words between the quotes or remove them",
    ),
    (
        "acme \"  \"",
        6,
        "empty phrase",
        "put words between the quotes or remove them",
    ),
    (
        "acme \"corp",
        6,
        "unclosed quote",
        "add a closing \" or remove this one",
    ),
    (
        "acme AND",
        9,
        "unexpected end of query",
        "add a word, \"phrase\" or (group) after AND",
    ),
    (
        "acme OR",
        8,
        "unexpected end of query",
        "add a word, \"phrase\" or (group) after OR",
    ),
    (
        "acme AND OR foo",
        10,
        "unexpected OR",
        "add a word, \"phrase\" or (group) after AND",
    ),
    (
        "(acme OR )",
        10,
        "unexpected \")\"",
        "add a word, \"phrase\" or (group) after OR",
    ),
    (
        "OR acme",
        1,
        "OR needs something on its left",
        "add a word, \"phrase\" or (group) before it, or remove it",
    ),
    (
        "(AND acme)",
        2,
        "AND needs something on its left",
        "add a word, \"phrase\" or (group) before it, or remove it",
    ),
    (
        "acme !!!",
        6,
        "\"!!!\" has no letters or digits",
        "a term needs at least one letter or digit; punctuation alone is not searchable",
    ),
    (
        "é OR )",
        6,
        "unbalanced \")\"",
        "remove it or add a matching \"(\"",
    ),
];

#[test]
fn error_table() {
    for &(q, col, msg, hint) in ERROR_CASES {
        let e = Query::parse(q).expect_err(q);
        assert_eq!(
            (e.column, e.message.as_str(), e.hint.as_str()),
            (col, msg, hint),
            "query {q:?}"
        );
        assert_eq!(e.query, q);
    }
}

#[test]
fn error_display_matches_contract() {
    let e = Query::parse("acme OR foo)").unwrap_err();
    assert_eq!(
        e.to_string(),
        "unbalanced \")\" at column 12: remove it or add a matching \"(\"\n  acme OR foo)\n             ^"
    );
}

#[test]
fn compile_reports_every_bad_rule_in_order() {
    let errs = RuleSet::compile([
        ("good", "acme"),
        ("bad1", "acme)"),
        ("good2", "globex"),
        ("bad2", "NOT"),
        ("bad3", "acme OR -hiring"),
    ])
    .unwrap_err();
    let got: Vec<(&str, usize)> = errs
        .iter()
        .map(|e| (e.rule.as_str(), e.error.column))
        .collect();
    assert_eq!(got, vec![("bad1", 5), ("bad2", 1), ("bad3", 9)]);
    assert!(errs[0]
        .to_string()
        .starts_with("rule \"bad1\": unbalanced \")\" at column 5"));
}
