//! The compiled rule set: rule order, defaults, untriggered rules, shared atoms, block
//! boundaries of the word scan and URL queries.

use super::*;

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
        ..Defaults::default()
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

/// Posts without a language tag: `lang:` rules and the exclusion see the detected language,
/// `[rules_defaults] languages` drops matched posts in other languages and keeps posts whose
/// language cannot be told, and nothing is detected for a post no rule looks at.
#[test]
fn detected_languages_feed_lang_rules_and_the_language_list() {
    let en = "My Acme order never arrived and support has not answered my emails for a week";
    let de = "Ich warte immer noch auf meine Rückerstattung von Acme";
    let short = "acme x2";

    let set = RuleSet::compile([("de", "acme lang:de"), ("any", "acme")]).unwrap();
    let got = set.matches_detecting(&doc(de));
    let names: Vec<&str> = got.rules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, vec!["de", "any"]);
    assert_eq!(
        got.detected,
        Some(Some("de")),
        "detected for the lang: rule"
    );
    let got = set.matches_detecting(&doc(en));
    assert_eq!(got.rules.len(), 1, "{got:?}");
    assert_eq!(got.detected, Some(Some("en")));
    let tagged = Document {
        lang: Some("de-AT"),
        ..doc(en)
    };
    let got = set.matches_detecting(&tagged);
    assert_eq!(got.rules.len(), 2, "a given tag wins over detection");
    assert_eq!(
        got.detected, None,
        "nothing detected when the post has a tag"
    );
    let got = set.matches_detecting(&doc("Ich warte immer noch auf mein Paket"));
    assert_eq!(got, Matched::default(), "no brand word: nothing detected");

    let plain = RuleSet::compile([("any", "acme")]).unwrap();
    assert_eq!(
        plain.matches_detecting(&doc(de)).detected,
        None,
        "no rule tests lang:, no list: detection is the caller's choice"
    );

    let exclude = Defaults {
        exclude: Some("lang:fr"),
        ..Defaults::default()
    };
    let set = RuleSet::compile_with([("any", "acme")], &exclude).unwrap();
    assert!(set
        .matches(&doc(
            "Ma commande Acme n'est jamais arrivée, aucune réponse du service client"
        ))
        .is_empty());
    assert_eq!(set.matches(&doc(de)).len(), 1);

    let only = Defaults {
        languages: vec!["en", "fr"],
        ..Defaults::default()
    };
    let set = RuleSet::compile_with([("any", "acme")], &only).unwrap();
    assert_eq!(set.matches(&doc(en)).len(), 1);
    let got = set.matches_detecting(&doc(de));
    assert!(got.rules.is_empty(), "German is not on the list");
    assert_eq!(got.detected, Some(Some("de")));
    let got = set.matches_detecting(&doc(short));
    assert_eq!(got.rules.len(), 1, "unknown language is kept");
    assert_eq!(got.detected, Some(None));
    let tagged = Document {
        lang: Some("EN-gb"),
        ..doc(de)
    };
    assert_eq!(
        set.matches(&tagged).len(),
        1,
        "the tag decides, subtags ignored"
    );
    assert!(
        set.matches_detecting(&doc("nothing here"))
            .detected
            .is_none(),
        "a post no rule matched is never detected"
    );
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
