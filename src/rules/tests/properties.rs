//! Property test: compiled matcher, direct evaluation and the naive reference agree.

use super::*;
use proptest::prelude::*;

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
    "finance",
    "strasse",
    "\"acme finance\"",
    "\"acme acme\"",
    "\"acme corp acme\"",
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
    // Non-ASCII next to ASCII words with no ASCII separator between them: the matcher's scan
    // normalises only the pieces between ASCII separators that hold non-ASCII characters.
    "ﬁnance",
    "Straße",
    "cafe\u{301}",
    "acme\u{2019}s",
    "\u{201c}acme\u{201d}",
    "acme\u{1f525}finance",
    "\u{301}acme",
    "x\u{b2}",
    "acme\u{3000}corp",
    // Plain separators the scan cuts at, and a variation selector it must not cut at.
    "\u{2764}\u{fe0f}acme",
    "acme\u{fe0f}corp",
    "acme\u{200d}corp",
    "acme\u{2026}corp",
    "\u{1f44d}\u{1f3fb}corp",
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
