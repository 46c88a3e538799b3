//! Field tests (`title:`, `author:`, `site:`, `lang:`…) and the spans a match reports.

use super::*;

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
