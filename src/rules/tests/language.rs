//! Matching tables: words, phrases, boolean operators, NEAR, wildcards and the full language
//! of issue 3, each checked through all three matching paths.

use super::*;

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
