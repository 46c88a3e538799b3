//! The rule lint: no rule without a positive term; operator-looking words are warned about.

use super::*;

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
