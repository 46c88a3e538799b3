//! Table-driven tests of the rule language through its public API. They do not test
//! internals that the public API already covers.

use super::*;

fn doc(text: &str) -> Document<'_> {
    Document {
        text,
        source: "test",
        source_kind: "file",
        ..Document::default()
    }
}

/// (query, text, should match)
const MATCH_CASES: &[(&str, &str, bool)] = &[
    // words, case-insensitive, on word boundaries
    ("acme", "I love Acme!", true),
    ("acme", "ACME", true),
    ("ACME", "acme", true),
    ("acme", "acmeville is nice", false),
    ("acme", "the newacme thing", false),
    ("acme", "#acme rocks", true),
    ("acme", "@acme hi", true),
    ("acme", "acme's store", true),
    ("acme", "acme_corp", true),
    ("acme", "", false),
    ("acme2", "acme2 launch", true),
    ("acme", "acme2 launch", false),
    ("café", "Café au lait", true),
    ("straße", "STRASSE", false),
    // phrases: consecutive words, any separators
    ("\"acme corp\"", "Acme Corp announced", true),
    ("\"acme corp\"", "acme, corp", true),
    ("\"acme corp\"", "corp acme", false),
    ("\"acme corp\"", "acme big corp", false),
    ("\"acme corp\"", "acmecorp", false),
    ("acme-corp", "ACME corp", true),
    ("\"corp\"", "acme corp", true),
    // AND, adjacency
    ("acme AND refund", "acme wants a refund", true),
    ("acme AND refund", "acme only", false),
    ("acme refund", "refund from acme", true),
    ("acme refund", "refund only", false),
    // OR
    ("acme OR globex", "globex rules", true),
    ("acme OR globex", "initech", false),
    // NOT
    ("NOT acme", "nothing here", true),
    ("NOT acme", "acme here", false),
    ("acme NOT hiring", "acme is hiring", false),
    ("acme NOT hiring", "acme is great", true),
    ("acme AND NOT hiring", "acme is great", true),
    ("NOT NOT acme", "acme", true),
    // parentheses
    ("(acme OR globex) refund", "globex refund", true),
    ("(acme OR globex) refund", "globex", false),
    ("NOT (acme OR globex)", "globex", false),
    ("NOT (acme OR globex)", "initech", true),
    ("((acme))", "acme", true),
    // precedence: NOT > AND > OR
    ("a OR b c", "a", true),  // a OR (b AND c)
    ("a OR b c", "b", false), // not (a OR b) AND c
    ("a OR b c", "b c", true),
    ("a b OR c", "c", true), // (a AND b) OR c
    ("NOT a b", "b", true),  // (NOT a) AND b
    ("NOT a b", "a b", false),
    ("NOT a OR b", "a b", true), // (NOT a) OR b
    ("NOT a OR b", "a", false),
    // lowercase operators are words
    ("acme and globex", "acme and globex", true),
    ("acme and globex", "acme globex", false),
    ("acme or globex", "globex", false),
    // unicode word boundaries
    ("東京", "今日は東京タワーに行った", true),
    ("京都", "今日は東京タワーに行った", false),
    ("acme", "🚀acme🚀", true),
    ("acme", "ｘacme", false),
];

#[test]
fn match_table() {
    for &(q, text, want) in MATCH_CASES {
        let query = Query::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let got = query.matches(&doc(text)).is_some();
        assert_eq!(got, want, "query {q:?} on {text:?}");
    }
}

#[test]
fn title_counts_but_gives_no_span() {
    let q = Query::parse("acme").unwrap();
    let d = Document {
        title: Some("Acme news"),
        ..doc("nothing here")
    };
    assert_eq!(q.matches(&d), Some(vec![]));
    let q = Query::parse("\"news nothing\"").unwrap();
    assert_eq!(q.matches(&d), None, "a phrase does not span title and text");
}

/// (query, text, spans as substrings of text, in order)
const SPAN_CASES: &[(&str, &str, &[&str])] = &[
    ("acme", "Acme and ACME", &["Acme", "ACME"]),
    ("\"acme corp\"", "hi Acme, Corp!", &["Acme, Corp"]),
    ("acme OR globex", "globex beats acme", &["globex", "acme"]),
    ("acme NOT hiring", "acme rocks", &["acme"]),
    ("NOT hiring", "acme rocks", &[]),
    ("acme (\"acme corp\" OR corp)", "acme corp", &["acme corp"]),
    ("İstanbul", "İSTANBUL", &["İSTANBUL"]),
];

#[test]
fn span_table() {
    for &(q, text, want) in SPAN_CASES {
        let spans = Query::parse(q)
            .unwrap()
            .matches(&doc(text))
            .unwrap_or_else(|| panic!("{q:?} should match {text:?}"));
        let got: Vec<&str> = spans.iter().map(|s| &text[s.start..s.end]).collect();
        assert_eq!(got, want, "query {q:?} on {text:?}");
    }
}

/// (query, column, message, hint)
const ERROR_CASES: &[(&str, usize, &str, &str)] = &[
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
    ])
    .unwrap_err();
    let got: Vec<(&str, usize)> = errs
        .iter()
        .map(|e| (e.rule.as_str(), e.error.column))
        .collect();
    assert_eq!(got, vec![("bad1", 5), ("bad2", 1)]);
    assert!(errs[0]
        .to_string()
        .starts_with("rule \"bad1\": unbalanced \")\" at column 5"));
}

#[test]
fn ruleset_matches_in_rule_order_with_spans() {
    let set = RuleSet::compile([
        ("never", "initech"),
        ("acme", "acme NOT hiring"),
        ("all", "NOT zzz"),
    ])
    .unwrap();
    assert_eq!(set.len(), 3);
    assert!(!set.is_empty());
    let got = set.matches(&doc("Acme rocks"));
    assert_eq!(
        got,
        vec![
            RuleMatch {
                rule: 1,
                name: "acme".into(),
                spans: vec![Span { start: 0, end: 4 }],
            },
            RuleMatch {
                rule: 2,
                name: "all".into(),
                spans: vec![],
            },
        ]
    );
    let empty = RuleSet::compile(std::iter::empty()).unwrap();
    assert!(empty.is_empty());
    assert!(empty.matches(&doc("acme")).is_empty());
}

#[test]
fn ruleset_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<RuleSet>();
}
