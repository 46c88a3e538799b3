//! The `hackernews` source against a fake Algolia `search_by_date` on 127.0.0.1: windows under
//! the 1,000-hit cap, pagination, restarts, and every failure it must survive.

use crate::common;

use common::fake_sources::{hn_hit, hn_user, ops, FakeApi};
use common::faults::Fault;
use mentiondesk::sources::{self, SourceError, SourceState};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

fn source(fake: &FakeApi, timeout: &str) -> Box<dyn sources::Source> {
    source_with(fake, timeout, "")
}

/// The source with its user lookups on the fake too (`users_url`), and `extra` keys.
fn source_with(fake: &FakeApi, timeout: &str, extra: &str) -> Box<dyn sources::Source> {
    let text = format!(
        r#"
[[sources]]
name = "hn"
kind = "hackernews"
query = '(acme OR "acme corp") AND NOT hiring'
url = "{base}/api/v1"
users_url = "{base}/v0"
timeout = "{timeout}"
allow_private = true
{extra}

[[rules]]
name = "acme"
query = "acme"
alert = ["slack:#pr"]
"#,
        base = fake.url()
    );
    let config = mentiondesk::settings::parse(&text, Path::new("t.toml"), &|_| None).unwrap();
    sources::build(&config.sources[0]).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn first_poll_reads_the_last_hour_and_later_polls_only_new_items() {
    let fake = FakeApi::start().await;
    let t = now();
    fake.state.lock().unwrap().hn_hits = vec![
        hn_hit(1, t - 7200, Some("Acme old news"), ""),
        hn_hit(2, t - 600, Some("Acme router review"), "It <i>works</i>"),
        hn_hit(3, t - 300, None, "my acme died"),
    ];
    let mut src = source(&fake, "5s");
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    let ids: Vec<_> = got.iter().map(|m| m.item_id.as_str()).collect();
    assert_eq!(
        ids.len(),
        2,
        "the 2-hour-old story is before the first lookback: {ids:?}"
    );
    assert!(ids.contains(&"2") && ids.contains(&"3"));
    let story = got.iter().find(|m| m.item_id == "2").unwrap();
    assert_eq!(story.title.as_deref(), Some("Acme router review"));
    assert_eq!(story.text, "It works");
    assert_eq!(
        story.url.as_deref(),
        Some("https://news.ycombinator.com/item?id=2")
    );
    assert_eq!(story.source_kind, "hackernews");
    let req = &fake.requests("/api/v1/search_by_date")[0];
    assert_eq!(req.query["query"], "acme");
    assert_eq!(req.query["tags"], "(story,comment)");

    // Nothing new: nothing handed on, even though the overlap re-reads the same hits.
    assert!(src.poll(&mut state).await.unwrap().is_empty());
    fake.state
        .lock()
        .unwrap()
        .hn_hits
        .push(hn_hit(4, t - 1, None, "acme again"));
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(got.iter().map(|m| &m.item_id).collect::<Vec<_>>(), ["4"]);
}

#[tokio::test]
async fn more_than_1000_hits_are_all_read_once_by_splitting_the_window() {
    let fake = FakeApi::start().await;
    let t = now();
    // 2,500 comments in the last 50 minutes: more than the 1,000 one query can page to.
    fake.state.lock().unwrap().hn_hits = (0..2500)
        .map(|i| {
            hn_hit(
                10_000 + i,
                t - 3000 + (i as i64 * 3000 / 2500),
                None,
                "acme",
            )
        })
        .collect();
    let mut src = source(&fake, "10s");
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    let ids: HashSet<_> = got.iter().map(|m| m.item_id.clone()).collect();
    assert_eq!(ids.len(), 2500, "every hit once");
    assert_eq!(got.len(), 2500, "no hit twice");
    let pages: Vec<_> = fake.requests("/api/v1/search_by_date");
    assert!(
        pages.iter().any(|r| r.query["page"] == "1"),
        "windows of 500-1000 hits are paged"
    );
    assert!(src.poll(&mut state).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_restart_resumes_from_the_saved_state_without_gaps_or_repeats() {
    let fake = FakeApi::start().await;
    let t = now();
    fake.state.lock().unwrap().hn_hits = vec![hn_hit(1, t - 100, None, "acme one")];
    let mut state = SourceState::default();
    assert_eq!(source(&fake, "5s").poll(&mut state).await.unwrap().len(), 1);
    // "Down" for a while; items arrive, one of them late in the index (older timestamp).
    {
        let mut s = fake.state.lock().unwrap();
        s.hn_hits.push(hn_hit(2, t - 50, None, "acme two"));
        s.hn_hits
            .push(hn_hit(3, t - 120, None, "acme indexed late"));
    }
    let saved = serde_json::to_string(&state).unwrap();
    let mut restored: SourceState = serde_json::from_str(&saved).unwrap();
    let got = source(&fake, "5s").poll(&mut restored).await.unwrap();
    let mut ids: Vec<_> = got.iter().map(|m| m.item_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["2", "3"]);
}

#[tokio::test]
async fn failures_are_errors_that_leave_the_state_alone_and_the_next_poll_recovers() {
    let fake = FakeApi::start().await;
    let t = now();
    fake.state.lock().unwrap().hn_hits = vec![hn_hit(1, t - 100, None, "acme")];
    let mut src = source(&fake, "1s");

    fake.fail_next(Fault::rate_limited(120.0));
    let mut state = SourceState::default();
    let err = src.poll(&mut state).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)), "{err}");

    fake.fail_next(Fault::http(503));
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");

    fake.fail_next(Fault::Malformed);
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::Parse(_)), "{err}");
    assert!(err.to_string().contains("HN search API"), "{err}");

    fake.fail_next(Fault::Truncated);
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(
        matches!(err, SourceError::Network(_) | SourceError::Parse(_)),
        "{err}"
    );

    fake.fail_next(Fault::Hang);
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::Timeout(_)), "{err}");

    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(got.len(), 1, "recovers by itself");
}

#[tokio::test]
async fn private_addresses_are_refused_without_allow_private() {
    let fake = FakeApi::start().await;
    let text = format!(
        "[[sources]]\nname = \"hn\"\nkind = \"hackernews\"\nquery = \"acme\"\nurl = \"{}/api/v1\"\nauthor_details = false\n\n[[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n",
        fake.url()
    );
    let config = mentiondesk::settings::parse(&text, Path::new("t.toml"), &|_| None).unwrap();
    let mut src = sources::build(&config.sources[0]).unwrap();
    let err = src.poll(&mut SourceState::default()).await.unwrap_err();
    assert!(err.to_string().contains("allow_private"), "{err}");
    assert!(fake.requests("/").is_empty());
}

/// Hits in the shape Algolia's `search_by_date` returns them (hn.algolia.com/api, "Search";
/// fields as in a captured response: `_highlightResult`, `_tags`, `author`, `created_at(_i)`,
/// `objectID`, `story_id`, `parent_id`, `story_title`, `story_url`, `updated_at`; comment and
/// Ask HN text are HN's HTML: `<p>` between paragraphs without a closing tag, `<a href=…
/// rel="nofollow">`, `<i>`, and entities such as `&#x2F;`, `&#x27;`, `&quot;`).
fn real_hits(t: i64) -> Vec<serde_json::Value> {
    let at = |secs: i64| {
        chrono::DateTime::from_timestamp(t - secs, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let hl = |v: &str, words: &[&str]| {
        serde_json::json!({"value": v, "matchLevel": if words.is_empty() {"none"} else {"full"},
            "fullyHighlighted": false, "matchedWords": words})
    };
    vec![
        // A link story: title and url, no story_text.
        serde_json::json!({
            "_highlightResult": {"author": hl("dana", &[]),
                "title": hl("<em>Acme</em> routers recalled", &["acme"]),
                "url": hl("https://news.example/acme-recall", &[])},
            "_tags": ["story", "author_dana", "story_40000001"],
            "author": "dana", "children": [40000010], "created_at": at(900),
            "created_at_i": t - 900, "num_comments": 1, "objectID": "40000001", "points": 12,
            "story_id": 40000001, "title": "Acme routers recalled",
            "updated_at": at(100), "url": "https://news.example/acme-recall"
        }),
        // A comment with HTML.
        serde_json::json!({
            "_highlightResult": {"author": hl("kim", &[]),
                "comment_text": hl("My <i><em>Acme</em></i> died", &["acme"]),
                "story_title": hl("<em>Acme</em> routers recalled", &["acme"]),
                "story_url": hl("https://news.example/acme-recall", &[])},
            "_tags": ["comment", "author_kim", "story_40000001"],
            "author": "kim",
            "comment_text": "My <i>Acme</i> died after a week. Support said &quot;reboot it&quot;.<p>See <a href=\"https:&#x2F;&#x2F;acme.example&#x2F;recall\" rel=\"nofollow\">https:&#x2F;&#x2F;acme.example&#x2F;recall</a>",
            "created_at": at(600), "created_at_i": t - 600, "objectID": "40000010",
            "parent_id": 40000001, "story_id": 40000001,
            "story_title": "Acme routers recalled",
            "story_url": "https://news.example/acme-recall", "updated_at": at(100)
        }),
        // Ask HN: a story with story_text HTML and no url.
        serde_json::json!({
            "_highlightResult": {"author": hl("lee", &[]),
                "title": hl("Ask HN: Is <em>Acme</em> support always this slow?", &["acme"]),
                "story_text": hl("I&#x27;ve waited", &[])},
            "_tags": ["story", "author_lee", "story_40000020", "ask_hn"],
            "author": "lee", "children": [], "created_at": at(300), "created_at_i": t - 300,
            "num_comments": 0, "objectID": "40000020", "points": 3, "story_id": 40000020,
            "story_text": "I&#x27;ve waited 3 weeks for a reply.<p>Anyone else? <a href=\"https:&#x2F;&#x2F;acme.example&#x2F;ticket\" rel=\"nofollow\">ticket</a>",
            "title": "Ask HN: Is Acme support always this slow?", "updated_at": at(100)
        }),
    ]
}

/// Markup or entities left in a text a person reads.
fn has_markup(s: &str) -> bool {
    s.contains('<') || s.contains('>') || s.contains("&#") || s.contains("&quot;")
}

#[tokio::test]
async fn real_algolia_hits_become_clean_mentions() {
    let fake = FakeApi::start().await;
    let t = now();
    fake.state.lock().unwrap().hn_hits = real_hits(t);
    let got = source(&fake, "5s")
        .poll(&mut SourceState::default())
        .await
        .unwrap();
    assert_eq!(got.len(), 3, "{got:?}");
    let by_id = |id: &str| got.iter().find(|m| m.item_id == id).unwrap();

    let story = by_id("40000001");
    assert_eq!(story.title.as_deref(), Some("Acme routers recalled"));
    assert_eq!(story.text, "https://news.example/acme-recall");
    assert_eq!(story.author.as_deref(), Some("dana"));
    assert_eq!(
        story.url.as_deref(),
        Some("https://news.ycombinator.com/item?id=40000001")
    );
    assert_eq!(story.published.unwrap().timestamp(), t - 900);

    let comment = by_id("40000010");
    assert!(!has_markup(&comment.text), "{}", comment.text);
    assert!(
        comment
            .text
            .starts_with("My Acme died after a week. Support said \"reboot it\"."),
        "{}",
        comment.text
    );
    assert!(comment.text.contains("See https://acme.example/recall"));
    assert_eq!(
        comment.title, None,
        "the story title is context, not its words"
    );
    assert_eq!(comment.author.as_deref(), Some("kim"));
    assert_eq!(
        comment.url.as_deref(),
        Some("https://news.ycombinator.com/item?id=40000010")
    );

    let ask = by_id("40000020");
    assert_eq!(
        ask.title.as_deref(),
        Some("Ask HN: Is Acme support always this slow?")
    );
    assert!(!has_markup(&ask.text), "{}", ask.text);
    assert!(
        ask.text
            .starts_with("I've waited 3 weeks for a reply. Anyone else?"),
        "{}",
        ask.text
    );
    assert_eq!(ask.author.as_deref(), Some("lee"));
}

/// Issue 13: HN has no followers, so an author's reach is their karma, from the official API
/// (`/v0/user/{id}.json`, github.com/HackerNews/API), shown as karma. Each author is looked up
/// once and remembered, and so is a user the API does not know (`null`).
#[tokio::test]
async fn authors_come_with_their_karma_looked_up_once_each() {
    let fake = FakeApi::start().await;
    let t = now();
    {
        let mut s = fake.state.lock().unwrap();
        // hn_hit's stories are by "dana", its comments by "kim"; kim is unknown to the API.
        s.hn_hits = vec![
            hn_hit(1, t - 100, Some("Acme is down"), ""),
            hn_hit(2, t - 90, None, "acme support is slow"),
            hn_hit(3, t - 80, Some("Acme again"), ""),
        ];
        s.hn_users.insert("dana".into(), hn_user("dana", 12_345));
    }
    let mut src = source(&fake, "5s");
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(got.len(), 3);
    for m in got.iter().filter(|m| m.author.as_deref() == Some("dana")) {
        assert_eq!(m.author_reach, Some(12_345));
        assert_eq!(m.reach_unit(), "karma");
    }
    let kim = got.iter().find(|m| m.item_id == "2").unwrap();
    assert_eq!(kim.author.as_deref(), Some("kim"));
    assert_eq!(kim.author_reach, None, "an unknown user has no karma");
    let users = |f: &FakeApi| f.requests("/v0/user/").len();
    assert_eq!(users(&fake), 2, "one request per author, not per mention");

    fake.state
        .lock()
        .unwrap()
        .hn_hits
        .push(hn_hit(4, t - 10, None, "acme?"));
    fake.state
        .lock()
        .unwrap()
        .hn_hits
        .push(hn_hit(5, t - 5, Some("Acme 3"), ""));
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(got.len(), 2);
    let dana = got.iter().find(|m| m.item_id == "5").unwrap();
    assert_eq!(dana.author_reach, Some(12_345), "remembered");
    assert_eq!(
        users(&fake),
        2,
        "known authors, and known unknowns, are not asked again"
    );
}

/// A 404, a 429, a 5xx or a user API that never answers: the mentions are handed on without
/// karma, the poll succeeds well inside its timeout, and after a 429 the lookups wait.
#[tokio::test]
async fn a_failing_user_api_never_costs_a_mention() {
    for fault in [
        Fault::status(404, &[]),
        Fault::rate_limited(600.0),
        Fault::http(503),
        Fault::Malformed,
        Fault::Hang,
    ] {
        let fake = FakeApi::start().await;
        let t = now();
        {
            let mut s = fake.state.lock().unwrap();
            s.hn_hits = vec![hn_hit(1, t - 100, Some("Acme is down"), "")];
            s.hn_users.insert("dana".into(), hn_user("dana", 12_345));
        }
        fake.faults.always(ops::HN_USER, fault.clone());
        let mut src = source(&fake, "2s");
        let mut state = SourceState::default();
        let got = src
            .poll(&mut state)
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(got.len(), 1, "{fault:?}");
        assert_eq!(got[0].author.as_deref(), Some("dana"));
        assert_eq!(got[0].author_reach, None, "{fault:?}");
        assert_eq!(fake.requests("/v0/user/").len(), 1);
        // The next poll's new mention: a missing user (404) is remembered, and every other
        // failure pauses the lookups, so neither asks again.
        fake.state
            .lock()
            .unwrap()
            .hn_hits
            .push(hn_hit(2, t - 50, Some("Acme 2"), ""));
        let got = src.poll(&mut state).await.unwrap();
        assert_eq!(got.len(), 1, "{fault:?}");
        assert_eq!(fake.requests("/v0/user/").len(), 1, "{fault:?}");
    }
}

/// `author_details = false`: no user request at all.
#[tokio::test]
async fn author_details_off_makes_no_user_request() {
    let fake = FakeApi::start().await;
    let t = now();
    fake.state.lock().unwrap().hn_hits = vec![hn_hit(1, t - 100, Some("Acme is down"), "")];
    let mut src = source_with(&fake, "5s", "author_details = false");
    let got = src.poll(&mut SourceState::default()).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].author_reach, None);
    assert!(fake.requests("/v0/user/").is_empty());
}
