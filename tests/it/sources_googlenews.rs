//! The `googlenews` source against a fake Google News search feed on 127.0.0.1: the query URL,
//! article links unwrapped offline where the id carries the URL (and kept where it does not),
//! the publisher as author, first-poll lookback and remembered ids across restarts, Google's
//! refusals, a broken feed, config checks, and an alert end to end.

use crate::common;

use common::fake_appstore::{news_item, ops, FakeFeedsApi};
use common::faults::Fault;
use common::{ConfigBuilder, Daemon, FakeSlack};
use mentiondesk::sources::{self, SourceError, SourceState};
use std::path::Path;
use std::time::Duration;

/// An older-style article id: base64url of `08 13 22 <len> <url>` (Google News links such as
/// `news.google.com/rss/articles/CBMiLmh0dHBzOi8vd3d3LmJiYy5jb20v…?oc=5`).
const DECODABLE: &str = "CBMiKGh0dHBzOi8vbmV3cy5leGFtcGxlLzIwMjYvMTEvYWNtZS1yZWNhbGw";
const DECODED: &str = "https://news.example/2026/11/acme-recall";
/// A newer id (since mid-2024): field 4 holds the opaque token `AU_yqL…`.
const OPAQUE: &str = "CBMiVkFVX3lxTE4zaGU2bTY2ZGkzdTRkSkJ0cFpsTGlDUjkxU2FBRURaTWU0c3QzVWZ1MHZZNkZ5Vzk1ZVBnTDFHY2R6ZmdCUkpUTUJsS1pqQTlCRzlzbHV3";

fn config(fake: &FakeFeedsApi, extra: &str) -> String {
    format!(
        r#"
[[sources]]
name = "gn"
kind = "googlenews"
query = '"acme corp" OR acme -hiring'
url = "{}"
timeout = "2s"
allow_private = true
{extra}

[[rules]]
name = "acme"
query = "acme"
alert = ["slack:#pr"]
"#,
        fake.url()
    )
}

fn build(text: &str) -> Box<dyn sources::Source> {
    let config = mentiondesk::settings::parse(text, Path::new("t.toml"), &|_| None).unwrap();
    sources::build(&config.sources[0]).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn set_items(fake: &FakeFeedsApi, items: Vec<String>) {
    fake.state.lock().unwrap().news_items = items;
}

#[tokio::test]
async fn items_become_mentions_with_publisher_links_where_google_encodes_them() {
    let fake = FakeFeedsApi::start().await;
    let t = now();
    set_items(
        &fake,
        vec![
            news_item(
                DECODABLE,
                t - 600,
                "Acme recalls 40,000 routers",
                "News Example",
                "https://news.example",
            ),
            news_item(
                OPAQUE,
                t - 300,
                "Acme & Co. shares fall",
                "The Example Times",
                "https://www.example.com",
            ),
        ],
    );
    let mut src = build(&config(&fake, ""));
    let got = src.poll(&mut SourceState::default()).await.unwrap();
    assert_eq!(got.len(), 2, "{got:#?}");
    let (recall, shares) = (&got[0], &got[1]);
    assert_eq!(recall.source_kind, "googlenews");
    assert_eq!(recall.item_id, DECODABLE, "the guid is the id");
    assert_eq!(recall.url.as_deref(), Some(DECODED), "unwrapped offline");
    assert_eq!(
        recall.title.as_deref(),
        Some("Acme recalls 40,000 routers"),
        "no ' - Publisher'"
    );
    assert_eq!(recall.author.as_deref(), Some("News Example"));
    assert_eq!(recall.published.unwrap().timestamp(), t - 600);
    assert!(
        !recall.text.contains('<') && !recall.text.contains("&nbsp;"),
        "{}",
        recall.text
    );

    assert_eq!(
        shares.url.as_deref(),
        Some(format!("https://news.google.com/rss/articles/{OPAQUE}?oc=5").as_str()),
        "an opaque id keeps Google's link: resolving it would mean calling Google"
    );
    assert_eq!(shares.title.as_deref(), Some("Acme & Co. shares fall"));
    assert_eq!(shares.author.as_deref(), Some("The Example Times"));

    let (_, q) = &fake.requests("/rss/search")[0];
    assert_eq!(q["q"], "\"acme corp\" OR acme -hiring");
    assert_eq!(q["hl"], "en-US");
    assert_eq!(q["gl"], "US");
    assert_eq!(q["ceid"], "US:en");
}

#[tokio::test]
async fn language_and_country_pick_the_edition() {
    let fake = FakeFeedsApi::start().await;
    set_items(&fake, vec![]);
    let mut src = build(&config(&fake, "language = \"de\"\ncountry = \"at\""));
    assert!(src
        .poll(&mut SourceState::default())
        .await
        .unwrap()
        .is_empty());
    let (_, q) = &fake.requests("/rss/search")[0];
    assert_eq!(
        (q["hl"].as_str(), q["gl"].as_str(), q["ceid"].as_str()),
        ("de-AT", "AT", "AT:de")
    );
}

#[tokio::test]
async fn first_poll_looks_back_one_hour_and_later_polls_hand_on_only_unseen_items() {
    let fake = FakeFeedsApi::start().await;
    let t = now();
    set_items(
        &fake,
        vec![
            news_item("CBMiAAA1", t - 300, "Acme new", "A", "https://a.example"),
            news_item(
                "CBMiAAA2",
                t - 7200,
                "Acme two hours old",
                "B",
                "https://b.example",
            ),
        ],
    );
    let mut src = build(&config(&fake, ""));
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(
        got.iter().map(|m| m.item_id.as_str()).collect::<Vec<_>>(),
        ["CBMiAAA1"]
    );
    assert!(
        src.poll(&mut state).await.unwrap().is_empty(),
        "same feed, nothing new"
    );

    // The feed is ranked by relevance: a new item, an hour-old one that was indexed late,
    // and a week-old one resurfacing.
    set_items(
        &fake,
        vec![
            news_item(
                "CBMiAAA3",
                t - 3000,
                "Acme indexed late",
                "C",
                "https://c.example",
            ),
            news_item("CBMiAAA1", t - 300, "Acme new", "A", "https://a.example"),
            news_item(
                "CBMiAAA4",
                t - 8 * 86_400,
                "Acme last week",
                "D",
                "https://d.example",
            ),
            news_item("CBMiAAA5", t - 5, "Acme newest", "E", "https://e.example"),
        ],
    );
    let saved = serde_json::to_string(&state).unwrap();
    let mut restored: SourceState = serde_json::from_str(&saved).unwrap();
    let got = build(&config(&fake, "")).poll(&mut restored).await.unwrap();
    let mut ids: Vec<_> = got.iter().map(|m| m.item_id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["CBMiAAA3", "CBMiAAA5"],
        "after a restart: nothing repeated or skipped"
    );
    assert!(build(&config(&fake, ""))
        .poll(&mut restored)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn googles_refusals_back_off_and_a_broken_feed_leaves_the_state_alone() {
    let fake = FakeFeedsApi::start().await;
    let t = now();
    set_items(
        &fake,
        vec![news_item(
            DECODABLE,
            t - 60,
            "Acme",
            "A",
            "https://a.example",
        )],
    );
    let mut src = build(&config(&fake, ""));
    let mut state = SourceState::default();

    fake.fail_next(ops::NEWS_SEARCH, Fault::rate_limited(60.0));
    let err = src.poll(&mut state).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)), "{err}");
    fake.fail_next(ops::NEWS_SEARCH, Fault::http(503));
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::RateLimited { .. }), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(900)), "{err}");
    fake.fail_next(ops::NEWS_SEARCH, Fault::Malformed);
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::Parse(_)), "{err}");
    fake.fail_next(ops::NEWS_SEARCH, Fault::Hang);
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::Timeout(_)), "{err}");
    assert_eq!(
        state,
        SourceState::default(),
        "no failed poll moved the state"
    );
    assert!(src.quota().is_none());

    assert_eq!(
        src.poll(&mut state).await.unwrap().len(),
        1,
        "recovers by itself"
    );
}

#[test]
fn config_problems_name_the_key_and_the_fix() {
    let check = |keys: &str| -> String {
        let text = format!(
            "[[sources]]\nname = \"gn\"\nkind = \"googlenews\"\n{keys}\n\n[[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n"
        );
        match mentiondesk::settings::parse(&text, Path::new("t.toml"), &|_| None) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    let err = check("");
    assert!(err.contains("query") && err.contains("missing"), "{err}");
    let err = check("query = \"acme\"\nlanguage = \"english\"\ncountry = \"USA\"");
    assert!(err.contains("\"english\" is not a language code"), "{err}");
    assert!(
        err.contains("\"USA\" is not a two-letter country code"),
        "{err}"
    );
    let err = check("query = \"acme\"\nurl = \"news.google.com\"");
    assert!(err.contains("url"), "{err}");
    assert_eq!(
        check("query = \"acme\"\nlanguage = \"pt-BR\"\ncountry = \"br\""),
        ""
    );
}

/// The daemon posts a Google News item as an alert with the publisher's own link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_news_item_becomes_an_alert_with_the_article_link() {
    let slack = FakeSlack::start().await;
    let fake = FakeFeedsApi::start().await;
    set_items(
        &fake,
        vec![news_item(
            DECODABLE,
            now() - 60,
            "Acme recalls routers",
            "News Example",
            "https://news.example",
        )],
    );
    let text = ConfigBuilder::new()
        .slack(&slack)
        .source("gn", "googlenews")
        .key("query", "acme")
        .key("url", fake.url().as_str())
        .key("every", "1s")
        .key("allow_private", true)
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .toml();
    let daemon = Daemon::start(&text).await;
    let roots = slack
        .wait_until(20, "an alert", |s| {
            let r = s.roots();
            (!r.is_empty()).then_some(r)
        })
        .await;
    let body = roots[0].body.to_string();
    assert!(body.contains(DECODED), "{body}");
    assert!(body.contains("News Example"), "{body}");
    assert!(!body.contains("news.google.com/rss/articles"), "{body}");
    assert!(body.contains("googlenews"), "{body}");
    daemon.stop().await;
}
