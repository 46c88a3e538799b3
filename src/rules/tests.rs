//! Table-driven tests of the rule language through its public API. They do not test
//! internals that the public API already covers.

use super::*;
use proptest::prelude::*;

/// Asserts the query gives `want` through all three paths: `Query::matches` (direct
/// evaluation), `RuleSet::matches` (compiled pre-filter) and the naive reference.
fn check(q: &str, d: &Document, want: bool) {
    let query = Query::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    assert_eq!(query.matches(d).is_some(), want, "Query {q:?} on {d:?}");
    let expr = parser::parse(q).unwrap();
    match RuleSet::compile([("r", q)]) {
        Ok(set) => assert_eq!(!set.matches(d).is_empty(), want, "RuleSet {q:?} on {d:?}"),
        // Refused as a rule by the lint: only right if it matches a post with nothing in it.
        Err(e) => assert!(
            reference::matches(&expr, &Document::default()),
            "{q:?} refused but needs a positive term: {e:?}"
        ),
    }
    assert_eq!(
        reference::matches(&expr, d),
        want,
        "reference {q:?} on {d:?}"
    );
}

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
    ("straße", "STRASSE", true),
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
    for &(q, text, want) in MATCH_CASES.iter().chain(FULL_LANGUAGE_CASES) {
        check(q, &doc(text), want);
    }
}

/// (query, text, should match): the full language of issue 3.
const FULL_LANGUAGE_CASES: &[(&str, &str, bool)] = &[
    // hashtags, handles, cashtags
    ("#acme", "love #Acme!", true),
    ("#acme", "love acme", false),
    ("#acme", "#acme_fans", false),
    ("#acme", "#acme-fans unite", true),
    ("#acme", "x#acme", false),
    ("#acme", "＃ａｃｍｅ", true),
    ("#東京", "今日は #東京 に", true),
    ("#東京", "今日は東京に", false),
    ("@acme", "hi @ACME", true),
    ("@acme", "@acme: hi", true),
    ("@acme", "mail bob@acme.com", false),
    ("@acme", "@acme.bsky.social", false),
    ("@acme", "@acme_support", false),
    ("@acme.bsky.social", "ping @acme.bsky.social!", true),
    ("$acme", "$ACME up 5%", true),
    ("$acme", "acme up", false),
    // domains and URLs
    ("acme.com", "visit acme.com today", true),
    ("acme.com", "https://www.acme.com/pricing", true),
    ("acme.com", "shop.acme.com", true),
    ("acme.com", "acme com", false),
    ("acme.com", "acme.com.evil.net", false),
    ("acme.com", "acme.community", false),
    ("acme.com", "I like acme.com.", true),
    ("www.acme.com", "acme.com", true),
    (
        "https://acme.com/pricing",
        "see http://acme.com/pricing/enterprise",
        true,
    ),
    ("acme.com/pricing", "acme.com/pricing-old", false),
    ("acme.com/pricing", "acme.com/blog", false),
    ("u.s.", "the U.S. market", true),
    // URLs with a query (issue 11, defect 6): `?` `=` `&` `#` are the URL's punctuation
    (
        "youtube.com/watch?v=abc",
        "https://www.youtube.com/watch?v=abc",
        true,
    ),
    (
        "youtube.com/watch?v=abc",
        "https://www.youtube.com/watch?v=abd",
        false,
    ),
    (
        "youtube.com/watch?v=abc",
        "see youtube.com/watch?v=abc&t=42s",
        true,
    ),
    (
        "youtube.com/watch?v=abc",
        "youtube.com/watch?v=abc-xyz",
        false,
    ),
    (
        "youtube.com/watch?v=abc",
        "youtube.com/watch?v=abcdef",
        false,
    ),
    (
        "youtube.com/watch?v=abc",
        "https://m.youtube.com/watch?v=abc",
        true,
    ),
    ("youtube.com/watch?v=abc", "youtube.com/watch/v=abc", false),
    ("youtube.com/watch?v=abc", "YOUTUBE.COM/WATCH?V=ABC", true),
    (
        "https://www.youtube.com/watch?v=abc",
        "youtube.com/watch?v=abc",
        true,
    ),
    (
        "\"youtube.com/watch?v=abc\"",
        "http://youtube.com/watch?v=abc",
        true,
    ),
    (
        "\"youtube.com/watch?v=abc\"",
        "youtube.com watch v abc",
        false,
    ),
    ("acme.com?ref=news", "acme.com?ref=news", true),
    ("acme.com/#pricing", "acme.com/#pricing", true),
    (
        "acme.com/blog/recall*",
        "https://acme.com/blog/recalls?page=2",
        true,
    ),
    (
        "acme.com/blog/recall*",
        "https://acme.com/blog/refunds",
        false,
    ),
    ("acme.com/p?id=ref*", "acme.com/p?id=refund", true),
    ("acme.com/p?id=ref*", "acme.com/p?id=re", false),
    // -term
    ("acme -hiring", "acme hiring", false),
    ("acme -hiring", "acme", true),
    ("acme -(jobs OR hiring)", "acme jobs", false),
    ("-hiring", "nothing", true),
    ("acme-corp", "acme corp", true),
    // NEAR/n and ONEAR/n: at most n words between
    ("acme NEAR/2 refund", "acme wants a refund", true),
    ("acme NEAR/1 refund", "acme wants a refund", false),
    ("acme NEAR/2 refund", "refund for acme", true),
    ("acme ONEAR/2 refund", "refund for acme", false),
    ("acme ONEAR/2 refund", "acme x refund", true),
    ("acme NEAR/0 refund", "acme refund", true),
    ("acme NEAR/0 refund", "acme, refund", true),
    (
        "\"acme corp\" NEAR/1 \"bad service\"",
        "acme corp has bad service",
        true,
    ),
    (
        "\"acme corp\" NEAR/1 \"bad service\"",
        "acme corp has very bad service",
        false,
    ),
    ("acme NEAR/3 refund", "acme", false),
    ("acme NEAR/3 acme", "acme", false),
    ("acme NEAR/3 acme", "acme x acme", true),
    ("NOT acme NEAR/1 refund", "acme refund", false),
    ("NOT acme NEAR/1 refund", "acme x x refund", true),
    ("acme NEAR/1 refund*", "acme refunded", true),
    // wildcards
    ("refund*", "refunds please", true),
    ("refund*", "refund", true),
    ("refund*", "refun", false),
    ("colo?r", "nice colour", true),
    ("colo?r", "color", false),
    ("col*r", "colr", true),
    ("col*r", "colds", false),
    ("\"acme refund*\"", "acme refunded", true),
    ("#acme*", "#acmefans", true),
    ("#acme*", "acmefans", false),
    ("café*", "CAFES", true),
    // raw: exact characters
    ("raw:Acme", "Acme rocks", true),
    ("raw:Acme", "ACME rocks", false),
    ("raw:Acme", "Acmes", false),
    ("raw:\"Acme Corp\"", "the Acme Corp way", true),
    ("raw:\"Acme Corp\"", "the Acme  Corp way", false),
    ("raw:Nestlé", "Nestle", false),
    // normalisation: diacritics, ligatures, full width, emoji, CJK, case folding
    ("nestle", "Nestlé", true),
    ("Nestlé", "NESTLE", true),
    ("NESTLÉ", "nestlé", true),
    ("finance", "ﬁnance", true),
    ("ﬁnance", "FINANCE", true),
    ("acme", "ＡＣＭＥ", true),
    ("ａｃｍｅ", "acme", true),
    ("acme", "🔥acme🔥", true),
    ("acme", "acme👍", true),
    ("\"acme corp\"", "acme🔥corp", true),
    ("東京", "今日は東京タワー", true),
    ("ガ", "ｶﾞ", true),
    ("ガ", "カ", false),
    ("ørsted", "Orsted", false),
    ("istanbul", "İSTANBUL", true),
    ("müller", "MULLER", true),
    ("strasse", "Straße", true),
    ("οδυσσευς", "ΟΔΥΣΣΕΥΣ", true),
    ("москва", "МОСКВА", true),
];

/// A document with every field set, for field tests.
#[derive(Clone, Copy)]
struct Full {
    text: &'static str,
    title: Option<&'static str>,
    author: Option<&'static str>,
    url: Option<&'static str>,
    lang: Option<&'static str>,
}

const PLAIN: Full = Full {
    text: "",
    title: None,
    author: None,
    url: None,
    lang: None,
};

impl Full {
    fn doc(&self) -> Document<'static> {
        Document {
            text: self.text,
            title: self.title,
            author: self.author,
            url: self.url,
            source: "hn",
            source_kind: "hackernews",
            lang: self.lang,
        }
    }
}

const FIELD_CASES: &[(&str, Full, bool)] = &[
    (
        "title:acme",
        Full {
            text: "acme",
            title: Some("news"),
            ..PLAIN
        },
        false,
    ),
    (
        "title:acme",
        Full {
            text: "x",
            title: Some("Acme news"),
            ..PLAIN
        },
        true,
    ),
    (
        "title:(acme OR globex) refund",
        Full {
            text: "refund",
            title: Some("Globex"),
            ..PLAIN
        },
        true,
    ),
    (
        "title:acme",
        Full {
            text: "acme",
            ..PLAIN
        },
        false,
    ),
    (
        "author:jane",
        Full {
            author: Some("Jane Doe"),
            ..PLAIN
        },
        true,
    ),
    (
        "author:\"jane doe\"",
        Full {
            author: Some("jane.doe"),
            ..PLAIN
        },
        true,
    ),
    (
        "author:jane",
        Full {
            text: "jane",
            ..PLAIN
        },
        false,
    ),
    (
        "site:acme.com",
        Full {
            url: Some("https://blog.acme.com/x"),
            ..PLAIN
        },
        true,
    ),
    (
        "site:acme.com",
        Full {
            url: Some("https://acme.co"),
            ..PLAIN
        },
        false,
    ),
    (
        "site:acme.com",
        Full {
            text: "acme.com",
            ..PLAIN
        },
        false,
    ),
    (
        "site:https://www.acme.com/",
        Full {
            url: Some("http://acme.com"),
            ..PLAIN
        },
        true,
    ),
    ("source:hn", Full { ..PLAIN }, true),
    ("source:HackerNews", Full { ..PLAIN }, true),
    ("source:rss", Full { ..PLAIN }, false),
    (
        "lang:en",
        Full {
            lang: Some("en-GB"),
            ..PLAIN
        },
        true,
    ),
    (
        "lang:en",
        Full {
            lang: Some("eng"),
            ..PLAIN
        },
        false,
    ),
    (
        "lang:en",
        Full {
            lang: None,
            ..PLAIN
        },
        false,
    ),
    (
        "lang:(en OR de)",
        Full {
            lang: Some("DE"),
            ..PLAIN
        },
        true,
    ),
    (
        "acme -lang:de",
        Full {
            text: "acme",
            lang: Some("de"),
            ..PLAIN
        },
        false,
    ),
    (
        "acme -lang:de",
        Full {
            text: "acme",
            lang: Some("fr"),
            ..PLAIN
        },
        true,
    ),
    (
        "raw:Acme",
        Full {
            text: "x",
            title: Some("Acme"),
            ..PLAIN
        },
        true,
    ),
    (
        "title:acme NEAR/1 title:refund",
        Full {
            text: "acme refund",
            title: Some("acme x refund"),
            ..PLAIN
        },
        true,
    ),
    (
        "title:acme NEAR/0 title:refund",
        Full {
            text: "acme refund",
            title: Some("acme x refund"),
            ..PLAIN
        },
        false,
    ),
];

#[test]
fn field_table() {
    for (q, full, want) in FIELD_CASES {
        check(q, &full.doc(), *want);
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
    ("nestle", "Try NESTLÉ now", &["NESTLÉ"]),
    ("acme", "ＡＣＭＥ!", &["ＡＣＭＥ"]),
    ("#acme", "go #acme", &["acme"]),
    ("acme.com", "at shop.acme.com/x", &["acme.com"]),
    (
        "acme NEAR/1 refund",
        "refund? acme! x x acme",
        &["refund", "acme"],
    ),
    ("raw:Acme", "ACME Acme", &["Acme"]),
    ("refund*", "refunds, refunded", &["refunds", "refunded"]),
    ("東京", "東京タワー", &["東京"]),
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

#[test]
fn ruleset_matches_in_rule_order_with_spans() {
    let set = RuleSet::compile([
        ("never", "initech"),
        ("acme", "acme NOT hiring"),
        ("all", "source:test NOT zzz"),
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

#[test]
fn defaults_exclude_and_mute_for_every_rule() {
    let defaults = Defaults {
        exclude: Some("hiring OR \"job opening\""),
        muted_authors: vec!["@Spammer"],
        muted_sites: vec!["spam.com"],
    };
    let set =
        RuleSet::compile_with([("acme", "acme"), ("all", "source:test -zzz")], &defaults).unwrap();
    let names =
        |d: &Document| -> Vec<String> { set.matches(d).into_iter().map(|m| m.name).collect() };
    assert_eq!(names(&doc("acme rocks")), vec!["acme", "all"]);
    assert!(names(&doc("acme is hiring")).is_empty());
    assert!(names(&doc("acme has a Job Opening")).is_empty());
    let spammer = Document {
        author: Some("spammer"),
        ..doc("acme")
    };
    assert!(names(&spammer).is_empty());
    let spam_site = Document {
        url: Some("https://x.spam.com/a"),
        ..doc("acme")
    };
    assert!(names(&spam_site).is_empty());
    let other_site = Document {
        url: Some("https://notspam.com/a"),
        ..doc("acme")
    };
    assert_eq!(names(&other_site), vec!["acme", "all"]);
}

#[test]
fn bad_exclude_is_reported_with_the_rules() {
    let defaults = Defaults {
        exclude: Some("hiring OR"),
        ..Defaults::default()
    };
    let errs = RuleSet::compile_with([("bad", "(acme"), ("ok", "acme")], &defaults).unwrap_err();
    let got: Vec<(&str, usize)> = errs
        .iter()
        .map(|e| (e.rule.as_str(), e.error.column))
        .collect();
    assert_eq!(got, vec![("bad", 1), (EXCLUDE_RULE_NAME, 10)]);
}

#[test]
fn untriggered_rules_are_counted() {
    let set = RuleSet::compile([("a", "acme"), ("b", "raw:Acme"), ("c", "lang:en")]).unwrap();
    assert_eq!(set.untriggered(), 2);
}

#[test]
fn many_rules_share_atoms_and_keep_order() {
    let rules: Vec<(String, String)> = (0..300)
        .map(|i| (format!("r{i}"), format!("acme{i} OR shared{}", i % 7)))
        .collect();
    let set = RuleSet::compile(rules.iter().map(|(n, q)| (n.as_str(), q.as_str()))).unwrap();
    let got: Vec<usize> = set
        .matches(&doc("about shared3 and acme250"))
        .iter()
        .map(|m| m.rule)
        .collect();
    let want: Vec<usize> = (0..300).filter(|i| i % 7 == 3 || *i == 250).collect();
    assert_eq!(got, want);
}

// ---- property test: compiled matcher ≡ direct evaluation ≡ naive reference ----

const TERMS: &[&str] = &[
    "acme",
    "corp",
    "refund",
    "café",
    "CAFE",
    "nestlé",
    "x",
    "colour",
    "\"acme corp\"",
    "\"corp acme\"",
    "acm*",
    "ref*",
    "colo?r",
    "caf?",
    "#acme",
    "@acme",
    "$acme",
    "acme.com",
    "title:acme",
    "title:refund",
    "author:jane",
    "raw:Acme",
    "lang:en",
    "source:hn",
    "site:acme.com",
    "東京",
    "ガ",
    "acme.com/x?id=1",
    "\"acme.com/x?id=1\"",
    "acme.com/refund*",
];

const TEXT_WORDS: &[&str] = &[
    "acme",
    "ACME",
    "Acme",
    "corp",
    "refund",
    "refunds",
    "café",
    "CAFE",
    "cafe",
    "Nestle",
    "colour",
    "color",
    "#acme",
    "@acme",
    "$ACME",
    "acme.com",
    "x",
    "acmeville",
    "acm",
    "Ref",
    "café.com",
    "東京",
    "ｶﾞ",
    "ＡＣＭＥ",
    "🔥",
    "acme.com/x?id=1",
    "acme.com/x?id=2",
    "acme.com/x?id=1-b",
    "acme.com/refunds",
];

const SEPARATORS: &[&str] = &[" ", ", ", "-", ".", "#", "/", "! "];

fn query_strategy() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(TERMS).prop_map(str::to_string);
    leaf.prop_recursive(4, 24, 3, |inner| {
        let term = prop::sample::select(TERMS).prop_filter("NEAR takes terms", |t| {
            !t.contains(':') || t.starts_with("title:")
        });
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} AND {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} OR {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} {b}")),
            inner.clone().prop_map(|a| format!("NOT {a}")),
            inner.clone().prop_map(|a| format!("-({a})")),
            inner.prop_map(|a| format!("({a})")),
            (term.clone(), term, 0u32..3, any::<bool>()).prop_map(|(a, b, n, o)| {
                // NEAR operands must share a field; drop a lone title: prefix.
                let (a, b) = if a.starts_with("title:") != b.starts_with("title:") {
                    (
                        a.trim_start_matches("title:"),
                        b.trim_start_matches("title:"),
                    )
                } else {
                    (a, b)
                };
                format!("{a} {}NEAR/{n} {b}", if o { "O" } else { "" })
            }),
        ]
    })
}

fn text_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop::sample::select(TEXT_WORDS),
            prop::sample::select(SEPARATORS),
        ),
        0..8,
    )
    .prop_map(|parts| parts.into_iter().map(|(w, s)| format!("{w}{s}")).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compiled_matcher_agrees_with_reference(
        queries in prop::collection::vec(query_strategy(), 1..6),
        text in text_strategy(),
        title in prop::option::of(text_strategy()),
        lang in prop::option::of(prop::sample::select(&["en", "en-GB", "de"][..])),
    ) {
        let d = Document {
            text: &text,
            title: title.as_deref(),
            author: Some("Jane"),
            url: Some("https://shop.acme.com/x"),
            source: "hn",
            source_kind: "hackernews",
            lang,
        };
        // The lint refuses exactly the queries that match a post with nothing in it; the rest
        // are compiled together, and their matches compared with direct evaluation.
        let mut kept = Vec::new();
        for (i, q) in queries.iter().enumerate() {
            let expr = parser::parse(q).unwrap();
            let refused = RuleSet::compile([("r", q.as_str())]).is_err();
            let empty = reference::matches(&expr, &Document::default());
            prop_assert_eq!(refused, empty, "lint vs empty post: {:?}", q);
            if !refused {
                kept.push(i);
            }
        }
        let set = RuleSet::compile(kept.iter().map(|&i| ("r", queries[i].as_str()))).unwrap();
        let got: Vec<(usize, Vec<Span>)> =
            set.matches(&d).into_iter().map(|m| (kept[m.rule], m.spans)).collect();
        let mut direct = Vec::new();
        for &i in &kept {
            let q = &queries[i];
            let expr = parser::parse(q).unwrap();
            let want = reference::matches(&expr, &d);
            let spans = Query::parse(q).unwrap().matches(&d);
            prop_assert_eq!(spans.is_some(), want, "direct vs reference: {:?} on {:?}", q, d);
            if let Some(spans) = spans {
                direct.push((i, spans));
            }
        }
        prop_assert_eq!(got, direct, "compiled vs direct: {:?} on {:?}", queries, d);
    }
}

#[test]
fn words_across_64_byte_blocks_are_found() {
    let set = RuleSet::compile([("acme", "acme"), ("wild", "refund*")]).unwrap();
    for pad in 55..140 {
        for (word, rule) in [("ACME", 0), ("refunded", 1)] {
            let hit = format!("{} {word} z", "x ".repeat(pad / 2));
            let got: Vec<usize> = set.matches(&doc(&hit)).iter().map(|m| m.rule).collect();
            assert_eq!(got, vec![rule], "{hit:?}");
            // Glued to the padding it is a different word and must not match.
            let glued = format!("{}{word}", "x ".repeat(pad / 2) + "y");
            assert!(set.matches(&doc(&glued)).is_empty(), "{glued:?}");
        }
    }
}

#[test]
fn wildcard_prefixes_of_different_lengths_share_one_table() {
    let set = RuleSet::compile([("a", "colo?r"), ("b", "refund*"), ("c", "müll*")]).unwrap();
    let cases: &[(&str, &[usize])] = &[
        ("nice colour", &[0]),
        ("refunds now", &[1]),
        ("refu colo", &[]),
        ("MÜLLER und colour", &[2, 0]),
        ("Muller", &[2]),
    ];
    for (text, want) in cases {
        let mut got: Vec<usize> = set.matches(&doc(text)).iter().map(|m| m.rule).collect();
        got.sort_unstable();
        let mut want = want.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "{text:?}");
    }
}

/// Issue 11, defect 6: the `?` of a URL's query was read as a one-character wildcard, so a
/// rule on a YouTube link never matched that link.
#[test]
fn a_url_with_a_query_matches_that_url_and_no_other() {
    let q = "youtube.com/watch?v=abc";
    check(
        q,
        &doc("new video https://www.youtube.com/watch?v=abc"),
        true,
    );
    check(
        q,
        &doc("new video https://www.youtube.com/watch?v=abd"),
        false,
    );
    let spans = Query::parse(q)
        .unwrap()
        .matches(&doc("see https://www.youtube.com/watch?v=abc now"))
        .unwrap();
    let text = "see https://www.youtube.com/watch?v=abc now";
    let got: Vec<&str> = spans.iter().map(|s| &text[s.start..s.end]).collect();
    assert_eq!(got, ["youtube.com/watch?v=abc"]);
    // Outside URLs wildcards work as documented.
    check("colo?r", &doc("colour"), true);
    check("refund*", &doc("refunds"), true);
}

// ---- rule lint: no rule without a positive term; operator-looking words ----

fn refusal(q: &str) -> ParseError {
    RuleSet::compile([("x", q)])
        .map(|_| ())
        .expect_err(q)
        .remove(0)
        .error
}

#[test]
fn a_rule_that_matches_without_a_positive_term_is_refused() {
    // (query, column of the NOT to blame, what the post only has to lack, example fix)
    let cases: &[(&str, usize, &str, &str)] = &[
        ("NOT acme", 1, "\"acme\"", "brand AND NOT acme"),
        ("-acme", 1, "\"acme\"", "brand -acme"),
        (
            "acme OR NOT hiring",
            9,
            "\"hiring\"",
            "brand AND NOT hiring",
        ),
        ("NOT (a AND b)", 1, "(a AND b)", "brand AND NOT (a AND b)"),
        ("title:(NOT acme)", 8, "\"acme\"", "brand AND NOT acme"),
        (
            "NOT a NEAR/2 b",
            1,
            "\"a NEAR/2 b\"",
            "brand AND NOT a NEAR/2 b",
        ),
        (
            "NOT \"acme corp\"",
            1,
            "\"acme corp\"",
            "brand AND NOT \"acme corp\"",
        ),
        ("NOT a NOT b", 1, "\"a\" and \"b\"", "brand AND NOT a"),
        ("(a OR NOT b) OR c", 7, "\"b\"", "brand AND NOT b"),
        (
            "NOT NOT NOT a",
            1,
            "\"NOT NOT a\"",
            "brand AND NOT NOT NOT a",
        ),
        ("NOT lang:en", 1, "\"lang:en\"", "brand AND NOT lang:en"),
    ];
    for &(q, col, lacks, example) in cases {
        let e = refusal(q);
        assert_eq!(
            (e.column, e.message.clone(), e.hint.clone()),
            (
                col,
                format!(
                    "this query matches every post that lacks {lacks} (NOT with nothing positive beside it)"
                ),
                format!("add a term that must be present, e.g. {example}"),
            ),
            "{q}"
        );
        // The claim is true: the query matches a post with nothing in it.
        assert!(
            Query::parse(q)
                .unwrap()
                .matches(&Document::default())
                .is_some(),
            "{q}"
        );
    }
    let shown = RuleSet::compile([("x", "NOT acme")]).unwrap_err()[0].to_string();
    assert_eq!(
        shown,
        "rule \"x\": this query matches every post that lacks \"acme\" (NOT with nothing positive beside it) at column 1: add a term that must be present, e.g. brand AND NOT acme\n  NOT acme\n  ^"
    );
}

#[test]
fn a_rule_with_a_positive_term_in_every_branch_is_kept() {
    for q in [
        "acme NOT hiring",
        "acme -hiring",
        "(a OR NOT b) AND c",
        "NOT NOT acme",
        "NOT (NOT a OR b)",
        "x AND (a OR NOT b)",
        "(a -b) OR (c -d)",
        "lang:en -spam",
        "site:acme.com",
        "raw:\"Acme\" NOT hiring",
        "title:(acme NOT hiring)",
        "acme NEAR/3 refund NOT hiring",
    ] {
        let set = RuleSet::compile([("x", q)]).unwrap_or_else(|e| panic!("{q}: {e:?}"));
        assert!(set.matches(&Document::default()).is_empty(), "{q}");
    }
}

#[test]
fn the_exclusion_may_be_negative() {
    let defaults = Defaults {
        exclude: Some("NOT lang:en"),
        ..Defaults::default()
    };
    let set = RuleSet::compile_with([("acme", "acme")], &defaults).unwrap();
    let en = Document {
        lang: Some("en"),
        ..doc("acme")
    };
    assert_eq!(set.matches(&en).len(), 1);
    assert!(set.matches(&doc("acme")).is_empty());
}

fn warnings_of(q: &str) -> Vec<(usize, String, String)> {
    RuleSet::compile([("x", q)])
        .unwrap_or_else(|e| panic!("{q}: {e:?}"))
        .warnings()
        .iter()
        .map(|w| {
            assert_eq!(w.rule, "x");
            (
                w.warning.column,
                w.warning.message.clone(),
                w.warning.hint.clone(),
            )
        })
        .collect()
}

#[test]
fn operator_words_read_as_words_are_warned_about() {
    let w = |col: usize, m: &str, h: &str| vec![(col, m.to_string(), h.to_string())];
    assert_eq!(
        warnings_of("acme NEAR refund"),
        w(
            6,
            "\"NEAR\" without a distance is read as the word \"near\"",
            "write acme NEAR/5 refund, or \"near\" in quotes to mean the word"
        )
    );
    assert_eq!(
        warnings_of("\"acme corp\" ONEAR (x)"),
        w(
            13,
            "\"ONEAR\" without a distance is read as the word \"onear\"",
            "write \"acme corp\" ONEAR/5 refund, or \"onear\" in quotes to mean the word"
        )
    );
    assert_eq!(
        warnings_of("acme near/5 refund"),
        w(
            6,
            "\"near/5\" is read as text, not as the NEAR/5 operator",
            "write NEAR/5 in upper case, or \"near/5\" in quotes to mean the text"
        )
    );
    assert_eq!(
        warnings_of("acme Or globex"),
        w(
            6,
            "\"Or\" is read as the word \"or\", not as the OR operator",
            "write OR in upper case for the operator, or \"Or\" in quotes to mean the word"
        )
    );
    assert_eq!(
        warnings_of("acme Near refund"),
        w(
            6,
            "\"Near\" is read as the word \"near\", not as the NEAR operator",
            "write NEAR/5 (with a distance) in upper case for the operator, or \"Near\" in quotes to mean the word"
        )
    );
    // The bare NEAR still matches the word, as documented.
    let set = RuleSet::compile([("x", "acme NEAR refund")]).unwrap();
    assert_eq!(set.matches(&doc("acme is near a refund")).len(), 1);
    assert!(set.matches(&doc("acme refund")).is_empty());
}

#[test]
fn ordinary_words_quotes_and_fields_are_not_warned_about() {
    for q in [
        "acme and globex",
        "acme or not near",
        "acme \"NEAR\"",
        "acme \"near me\"",
        "raw:NEAR acme",
        "acme NEAR/5 refund",
        "acme ONEAR/0 refund",
        "acme nearby",
        "acme AND NOT hiring",
    ] {
        assert_eq!(warnings_of(q), vec![], "{q}");
    }
}

#[test]
fn exclusion_warnings_are_named_after_it() {
    let defaults = Defaults {
        exclude: Some("spam NEAR scam"),
        ..Defaults::default()
    };
    let set = RuleSet::compile_with([("acme", "acme")], &defaults).unwrap();
    let got: Vec<(&str, usize)> = set
        .warnings()
        .iter()
        .map(|w| (w.rule.as_str(), w.warning.column))
        .collect();
    assert_eq!(got, vec![(EXCLUDE_RULE_NAME, 6)]);
}

#[test]
fn a_group_beside_near_names_the_group_and_the_near_to_write() {
    let cases: &[(&str, usize, &str, &str)] = &[
        (
            "acme NEAR/5 (refund OR money)",
            13,
            "a group is not allowed as an operand of NEAR/5",
            "put a single word or \"phrase\" on each side and join the pairs with OR: (acme NEAR/5 refund) OR (acme NEAR/5 money)",
        ),
        (
            "(refund OR \"money back\") ONEAR/2 acme",
            1,
            "a group is not allowed as an operand of ONEAR/2",
            "put a single word or \"phrase\" on each side and join the pairs with OR: (refund ONEAR/2 acme) OR (\"money back\" ONEAR/2 acme)",
        ),
        (
            "title:acme NEAR/1 title:(refund OR money)",
            25,
            "a group is not allowed as an operand of NEAR/1",
            "put a single word or \"phrase\" on each side and join the pairs with OR: (title:acme NEAR/1 title:refund) OR (title:acme NEAR/1 title:money)",
        ),
        (
            "globex NEAR/5 (late AND refund)",
            15,
            "a group is not allowed as an operand of NEAR/5",
            "put a single word or \"phrase\" on each side and join several pairs with AND or OR, e.g. (acme NEAR/5 refund) OR (acme NEAR/5 money)",
        ),
        (
            "acme NEAR/5 site:acme.com",
            13,
            "site: cannot be an operand of NEAR/5",
            "NEAR/5 compares word positions in the title or text; join site: with AND instead",
        ),
        (
            "acme NEAR/5 NOT refund",
            13,
            "NOT cannot be an operand of NEAR/5",
            "write acme AND NOT ... to exclude a word, or NOT (acme NEAR/5 ...) to exclude the pair",
        ),
        (
            "acme NEAR/5 OR refund",
            6,
            "NEAR/5 needs two operands",
            "put a word or \"phrase\" on each side of NEAR/5",
        ),
    ];
    for &(q, col, msg, hint) in cases {
        let e = Query::parse(q).expect_err(q);
        assert_eq!(
            (e.column, e.message.as_str(), e.hint.as_str()),
            (col, msg, hint),
            "{q}"
        );
    }
}
