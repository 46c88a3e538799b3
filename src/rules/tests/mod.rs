//! Table-driven tests of the rule language through its public API, one file per topic. They
//! do not test internals that the public API already covers.

use super::*;

mod errors;
mod fields;
mod language;
mod lint;
mod properties;
mod ruleset;

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
