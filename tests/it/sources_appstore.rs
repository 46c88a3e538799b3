//! The `appstore` source against a fake of Apple's customer reviews feed on 127.0.0.1: the
//! feed's shapes and quirks, paging back to the watermark, restarts, throttling and broken
//! answers, config checks, and a 1-star review becoming an alert that shows its stars.

use crate::common;

use common::fake_appstore::{ops, review, FakeFeedsApi};
use common::faults::Fault;
use common::{ConfigBuilder, Daemon, FakeSlack};
use mentiondesk::sources::{self, SourceError, SourceState};
use std::path::Path;
use std::time::Duration;

const APP: &str = "1404176564";

fn config(fake: &FakeFeedsApi, apps: &str, countries: Option<&str>) -> String {
    format!(
        r#"
[[sources]]
name = "ios"
kind = "appstore"
apps = {apps}
{countries}
url = "{}"
timeout = "2s"
allow_private = true

[[rules]]
name = "acme"
query = "acme"
alert = ["slack:#pr"]
"#,
        fake.url(),
        countries = countries
            .map(|c| format!("countries = {c}"))
            .unwrap_or_default(),
    )
}

fn source(fake: &FakeFeedsApi) -> Box<dyn sources::Source> {
    build(&config(fake, &format!("[{APP}]"), None))
}

fn build(text: &str) -> Box<dyn sources::Source> {
    let config = mentiondesk::settings::parse(text, Path::new("t.toml"), &|_| None).unwrap();
    sources::build(&config.sources[0]).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn ids(got: &[mentiondesk::model::Mention]) -> Vec<&str> {
    got.iter().map(|m| m.item_id.as_str()).collect()
}

#[tokio::test]
async fn real_feed_pages_become_clean_reviews_with_ratings() {
    let fake = FakeFeedsApi::start().await;
    let t = now();
    fake.set_reviews(
        APP,
        "us",
        vec![
            review(
                "14545746087",
                t - 120,
                1,
                "There's no optimisation to it",
                "It takes an eternity to load.\n\nAcme, please fix.",
            ),
            review(
                "14545746001",
                t - 600,
                5,
                "Love it",
                "Acme works & looks <great>",
            ),
        ],
    );
    fake.state
        .lock()
        .unwrap()
        .app_entry_first
        .push(APP.to_string());
    let got = source(&fake)
        .poll(&mut SourceState::default())
        .await
        .unwrap();
    assert_eq!(
        ids(&got),
        ["14545746087", "14545746001"],
        "the app's own entry is no review"
    );
    let m = &got[0];
    assert_eq!(m.source_kind, "appstore");
    assert_eq!(m.rating, Some(1));
    assert_eq!(m.title.as_deref(), Some("There's no optimisation to it"));
    assert_eq!(m.text, "It takes an eternity to load. Acme, please fix.");
    assert_eq!(m.author.as_deref(), Some("reviewer14545746087"));
    assert_eq!(m.published.unwrap().timestamp(), t - 120);
    assert_eq!(
        m.url.as_deref(),
        Some("https://apps.apple.com/us/app/id1404176564?see-all=reviews#review-14545746087")
    );
    assert_eq!(got[1].rating, Some(5));
    assert_eq!(
        got[1].text, "Acme works & looks <great>",
        "plain text kept as written"
    );
    let req = &fake.requests("/us/rss/customerreviews/")[0].0;
    assert_eq!(
        req,
        &format!("/us/rss/customerreviews/page=1/id={APP}/sortby=mostrecent/json")
    );
}

#[tokio::test]
async fn a_single_review_is_an_object_and_an_empty_feed_has_no_entry() {
    let fake = FakeFeedsApi::start().await;
    let t = now();
    fake.set_reviews(APP, "us", vec![]);
    let mut src = source(&fake);
    let mut state = SourceState::default();
    assert!(src.poll(&mut state).await.unwrap().is_empty());
    fake.set_reviews(APP, "us", vec![review("1", t - 10, 2, "meh", "acme meh")]);
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(ids(&got), ["1"]);
    assert_eq!(got[0].rating, Some(2));
}

#[tokio::test]
async fn first_poll_looks_back_one_hour_pages_to_the_watermark_and_then_reads_only_new() {
    let fake = FakeFeedsApi::start().await;
    let t = now();
    // 120 reviews in the last 50 minutes (3 pages), then older ones.
    let mut all: Vec<_> = (0..120)
        .map(|i| review(&format!("{}", 5000 - i), t - 10 - i * 25, 3, "ok", "acme"))
        .collect();
    all.extend((0..200).map(|i| {
        review(
            &format!("{}", 4000 - i),
            t - 4000 - i * 60,
            4,
            "old",
            "acme",
        )
    }));
    fake.set_reviews(APP, "us", all);
    let mut src = source(&fake);
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(got.len(), 120, "the last hour only, every review once");
    let pages = fake.requests("/us/");
    assert_eq!(
        pages.len(),
        3,
        "stops at the page that reaches back past an hour: {pages:?}"
    );

    // Nothing new: page 1 is read, nothing handed on (the overlap re-reads known ids).
    fake.clear_requests();
    assert!(src.poll(&mut state).await.unwrap().is_empty());
    fake.add_review(APP, "us", review("6000", t - 1, 1, "broken", "acme broke"));
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(ids(&got), ["6000"]);
}

#[tokio::test]
async fn a_restart_resumes_from_the_saved_state_without_gaps_or_repeats() {
    let fake = FakeFeedsApi::start().await;
    let t = now();
    fake.set_reviews(APP, "us", vec![review("10", t - 100, 4, "a", "acme one")]);
    let mut state = SourceState::default();
    assert_eq!(source(&fake).poll(&mut state).await.unwrap().len(), 1);
    // Down for a while; reviews arrive, one published to the feed late (older `updated`).
    fake.add_review(APP, "us", review("12", t - 50, 1, "b", "acme two"));
    fake.add_review(APP, "us", review("11", t - 3000, 2, "c", "acme late"));
    let saved = serde_json::to_string(&state).unwrap();
    let mut restored: SourceState = serde_json::from_str(&saved).unwrap();
    let got = source(&fake).poll(&mut restored).await.unwrap();
    let mut got = ids(&got);
    got.sort();
    assert_eq!(got, ["11", "12"]);
    assert!(source(&fake).poll(&mut restored).await.unwrap().is_empty());
}

#[tokio::test]
async fn several_apps_and_countries_each_keep_their_own_watermark() {
    let fake = FakeFeedsApi::start().await;
    let t = now();
    fake.set_reviews(APP, "us", vec![review("1", t - 60, 5, "a", "acme us")]);
    fake.set_reviews(APP, "gb", vec![review("2", t - 60, 1, "b", "acme gb")]);
    fake.set_reviews(
        "389801252",
        "us",
        vec![review("3", t - 60, 2, "c", "acme other")],
    );
    fake.set_reviews("389801252", "gb", vec![]);
    let text = config(
        &fake,
        &format!("[{APP}, \"389801252\"]"),
        Some("[\"us\", \"GB\"]"),
    );
    let mut src = build(&text);
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    let mut got = ids(&got);
    got.sort();
    assert_eq!(got, ["1", "2", "3"]);
    let gb = &fake.requests("/gb/")[0].0;
    assert!(gb.starts_with("/gb/rss/customerreviews/page=1/id="), "{gb}");
    assert!(src.poll(&mut state).await.unwrap().is_empty());
}

#[tokio::test]
async fn throttling_is_a_rate_limit_with_a_wait_and_the_state_is_untouched() {
    let fake = FakeFeedsApi::start().await;
    let t = now();
    fake.set_reviews(APP, "us", vec![review("1", t - 60, 1, "x", "acme")]);
    let mut src = source(&fake);
    let mut state = SourceState::default();

    fake.fail_next(ops::REVIEWS, Fault::rate_limited(120.0));
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::RateLimited { .. }), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)), "{err}");

    // Apple answers throttled clients with a bare 403 or 503: a backoff of its own.
    for (status, fault) in [(403, Fault::status(403, &[])), (503, Fault::http(503))] {
        fake.fail_next(ops::REVIEWS, fault);
        let err = src.poll(&mut state).await.unwrap_err();
        assert_eq!(
            err.retry_after(),
            Some(Duration::from_secs(300)),
            "{status}: {err}"
        );
        assert!(err.to_string().contains("waiting 300s"), "{err}");
    }
    assert_eq!(state, SourceState::default(), "failed polls leave no state");
    assert!(src.quota().is_none(), "Apple publishes no quota");

    fake.fail_next(ops::REVIEWS, Fault::http(500));
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(err.to_string().contains("500"), "{err}");

    fake.fail_next(ops::REVIEWS, Fault::Hang);
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::Timeout(_)), "{err}");

    assert_eq!(
        src.poll(&mut state).await.unwrap().len(),
        1,
        "recovers by itself"
    );
}

#[tokio::test]
async fn a_malformed_answer_is_a_parse_error_and_the_state_is_untouched() {
    let fake = FakeFeedsApi::start().await;
    let t = now();
    fake.set_reviews(APP, "us", vec![review("1", t - 60, 1, "x", "acme")]);
    let mut src = source(&fake);
    let mut state = SourceState::default();
    assert_eq!(src.poll(&mut state).await.unwrap().len(), 1);
    let before = state.clone();
    fake.add_review(APP, "us", review("2", t - 30, 1, "y", "acme"));
    for fault in [Fault::Malformed, Fault::Truncated] {
        fake.fail_next(ops::REVIEWS, fault.clone());
        let mut next = state.clone();
        let err = src.poll(&mut next).await.unwrap_err();
        assert!(
            matches!(err, SourceError::Parse(_) | SourceError::Network(_)),
            "{fault:?}: {err}"
        );
        if let SourceError::Parse(m) = &err {
            assert!(
                m.contains("App Store reviews feed") && m.contains(APP),
                "{m}"
            );
        }
    }
    assert_eq!(state, before);
    assert_eq!(
        ids(&src.poll(&mut state).await.unwrap()),
        ["2"],
        "nothing skipped"
    );
}

#[tokio::test]
async fn an_app_missing_from_a_store_is_named_and_the_others_still_read() {
    let fake = FakeFeedsApi::start().await;
    let t = now();
    fake.set_reviews(APP, "us", vec![review("1", t - 60, 1, "x", "acme")]);
    // 999 is in no store: Apple answers 404.
    let mut src = build(&config(&fake, &format!("[{APP}, 999]"), None));
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(ids(&got), ["1"]);
    let warning = src.take_warning().expect("the failing feed is reported");
    assert!(
        warning.contains("app 999") && warning.contains("HTTP 404") && warning.contains("/id"),
        "{warning}"
    );

    let mut only_missing = build(&config(&fake, "[999]", None));
    let err = only_missing
        .poll(&mut SourceState::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("app 999 has no reviews feed"),
        "{err}"
    );
}

#[tokio::test]
async fn private_addresses_are_refused_without_allow_private() {
    let fake = FakeFeedsApi::start().await;
    let text = config(&fake, &format!("[{APP}]"), None).replace("allow_private = true", "");
    let err = build(&text)
        .poll(&mut SourceState::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("allow_private"), "{err}");
    assert!(fake.requests("/").is_empty());
}

#[test]
fn config_problems_name_the_key_and_the_fix() {
    let check = |source_keys: &str| -> String {
        let text = format!(
            "[[sources]]\nname = \"ios\"\nkind = \"appstore\"\n{source_keys}\n\n[[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n"
        );
        match mentiondesk::settings::parse(&text, Path::new("t.toml"), &|_| None) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    let err = check("");
    assert!(
        err.contains("apps") && err.contains("missing") && err.contains("/id"),
        "{err}"
    );
    let err = check("apps = [\"id284882215\", 0]");
    assert!(
        err.contains("\"id284882215\" is not a numeric App Store id"),
        "{err}"
    );
    assert!(err.contains("0 is not a numeric App Store id"), "{err}");
    let err = check("apps = []");
    assert!(err.contains("apps") && err.contains("empty"), "{err}");
    let err = check("apps = 284882215");
    assert!(err.contains("must be a list"), "{err}");
    let err = check("apps = [284882215]\ncountries = [\"usa\", \"g1\"]");
    assert!(err.contains("\"usa\" is not a two-letter"), "{err}");
    assert!(err.contains("\"g1\" is not a two-letter"), "{err}");
    let err = check("apps = [284882215]\nurl = \"itunes.apple.com\"");
    assert!(err.contains("url"), "{err}");
    let err = check("apps = [284882215]\nquery = \"acme\"");
    assert!(err.contains("query") && err.contains("appstore"), "{err}");
    assert_eq!(
        check("apps = [284882215, \"389801252\"]\ncountries = [\"us\", \"DE\"]"),
        ""
    );
}

/// A 1-star review with friendly words is a complaint: the daemon posts it as a negative,
/// raised-priority alert that shows the stars; a 5-star review of the same words is not.
/// The two share a title, and still are two alerts (reviews never thread by title).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_star_review_becomes_a_negative_alert_showing_its_stars() {
    let slack = FakeSlack::start().await;
    let fake = FakeFeedsApi::start().await;
    let t = now();
    fake.set_reviews(
        APP,
        "us",
        vec![
            review(
                "901",
                t - 60,
                1,
                "The new Acme update",
                "Thanks for the Acme update, I guess.",
            ),
            review(
                "902",
                t - 90,
                5,
                "The new Acme update",
                "Thanks for the Acme update, I guess.",
            ),
        ],
    );
    let text = ConfigBuilder::new()
        .slack(&slack)
        .source("ios", "appstore")
        .key("apps", &[APP][..])
        .key("url", fake.url().as_str())
        .key("every", "1s")
        .key("allow_private", true)
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .key("priority", "normal")
        .toml();
    let daemon = Daemon::start(&text).await;
    let roots = slack
        .wait_until(20, "2 alerts", |s| {
            let r = s.roots();
            (r.len() >= 2).then_some(r)
        })
        .await;
    let body = |id: &str| {
        roots
            .iter()
            .map(|p| p.body.to_string())
            .find(|b| b.contains(&format!("review-{id}")))
            .unwrap_or_else(|| panic!("no alert for {id}: {roots:#?}"))
    };
    let one = body("901");
    assert!(one.contains("★☆☆☆☆ 1/5"), "{one}");
    assert!(one.contains("High priority* · negative"), "{one}");
    let five = body("902");
    assert!(five.contains("★★★★★ 5/5"), "{five}");
    assert!(!five.contains("priority* · negative"), "{five}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_once_reports_matching_reviews() {
    let fake = FakeFeedsApi::start().await;
    let t = now();
    fake.set_reviews(
        APP,
        "us",
        vec![
            review("1", t - 60, 2, "Acme crashes", "since 4.2"),
            review("2", t - 70, 5, "Great", "no brand named"),
        ],
    );
    // Reviews seldom name the brand: `source:` catches every review of the source.
    let text = format!(
        "{}\n[[rules]]\nname = \"all-reviews\"\nquery = \"source:ios\"\nalert = [\"slack:#app\"]\n",
        config(&fake, &format!("[{APP}]"), None)
    );
    let config = mentiondesk::settings::parse(&text, Path::new("t.toml"), &|_| None).unwrap();
    let results = mentiondesk::app::scan_once(&config).await.unwrap();
    let (_, r) = results.iter().find(|(n, _)| n == "ios").unwrap();
    let hits: Vec<_> = r
        .as_ref()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h.mention.item_id.as_str(),
                h.verdict.rules.join(","),
                h.verdict.negative,
            )
        })
        .collect();
    assert_eq!(
        hits,
        [
            ("1", "acme,all-reviews".to_string(), Some(true)),
            ("2", "all-reviews".to_string(), Some(false))
        ]
    );
}
