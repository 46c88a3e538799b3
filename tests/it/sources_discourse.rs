//! The `discourse` source against a fake Discourse forum (`/posts.json`) on 127.0.0.1: the
//! first poll's one-hour lookback, the post-id watermark across restarts and bursts, the
//! query filter, API-key headers and private forums, the forum's 429 and request spacing,
//! failures, config checks, and `scan --once`.

use crate::common;

use common::fake_discourse::{post, FakeDiscourse};
use common::faults::Fault;
use mentiondesk::sources::{self, SourceError, SourceState};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

const KEY: &str = "d1sc0urse-api-key-0123456789abcdef";

fn config(fake: &FakeDiscourse, extra: &str) -> String {
    format!(
        r#"
[[sources]]
name = "forum"
kind = "discourse"
url = "{}/"
query = '(acme OR "acme corp") AND NOT hiring'
allow_private = true
{extra}

[[rules]]
name = "acme"
query = "acme AND NOT hiring"
alert = ["slack:#pr"]
"#,
        fake.url()
    )
}

fn build(text: &str) -> Box<dyn sources::Source> {
    let env = |k: &str| (k == "DISCOURSE_API_KEY").then(|| KEY.to_string());
    let config = mentiondesk::settings::parse(text, Path::new("t.toml"), &env).unwrap();
    sources::build(&config.sources[0]).unwrap()
}

fn source(fake: &FakeDiscourse) -> Box<dyn sources::Source> {
    build(&config(fake, "timeout = \"20s\""))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn ids(got: &[mentiondesk::model::Mention]) -> Vec<String> {
    let mut v: Vec<String> = got.iter().map(|m| m.item_id.clone()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn first_poll_reads_the_last_hour_then_only_new_posts_that_name_the_query() {
    let fake = FakeDiscourse::start().await;
    let t = now();
    fake.add(post(
        100,
        10,
        1,
        t - 7200,
        "<p>Acme was great two hours ago</p>",
    ));
    fake.add(post(
        101,
        11,
        1,
        t - 600,
        "<p>Setting up my <b>ACME</b> hub</p>",
    ));
    fake.add(post(
        102,
        11,
        2,
        t - 500,
        "<p>Did you try resetting it?</p>",
    ));
    fake.add(post(
        103,
        12,
        4,
        t - 400,
        "<p>Acme is hiring, apply now</p>",
    ));
    let mut src = source(&fake);
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(
        ids(&got),
        ["101", "103"],
        "the 2-hour-old post is history; the reply without the word is filtered out"
    );
    let m = got.iter().find(|m| m.item_id == "101").unwrap();
    assert_eq!(m.text, "Setting up my ACME hub");
    assert_eq!(
        m.title.as_deref(),
        Some("Topic 11"),
        "a topic's first post carries its title"
    );
    assert_eq!(m.author.as_deref(), Some("dana"));
    assert_eq!(m.source_kind, "discourse");
    assert_eq!(
        m.url.as_deref(),
        Some(format!("{}/t/topic-11/11/1", fake.url()).as_str())
    );
    let first = &fake.requests()[0];
    assert!(!first.query.contains_key("before"));
    assert!(
        !first.headers.contains_key("api-key"),
        "no key configured, none sent"
    );

    // Nothing new: nothing handed on.
    assert!(src.poll(&mut state).await.unwrap().is_empty());
    fake.add(post(104, 12, 5, t - 1, "<p>my acme again</p>"));
    fake.add(post(105, 12, 6, t, "<p>unrelated</p>"));
    assert_eq!(ids(&src.poll(&mut state).await.unwrap()), ["104"]);
    assert_eq!(
        state.cursor.as_deref(),
        Some("105"),
        "the watermark is the newest post id"
    );
}

#[tokio::test]
async fn a_burst_beyond_one_poll_is_caught_up_across_a_restart_without_gaps_or_repeats() {
    let fake = FakeDiscourse::start().await;
    let t = now();
    fake.add(post(1, 1, 1, t - 1000, "<p>acme first</p>"));
    let mut state = SourceState::default();
    assert_eq!(source(&fake).poll(&mut state).await.unwrap().len(), 1);

    // 700 new posts while "down": 14 pages of 50, more than one poll's 10 pages.
    for i in 0..700u64 {
        fake.add(post(
            2 + i,
            2,
            2 + i,
            t - 900 + i as i64,
            &format!("<p>acme post {i}</p>"),
        ));
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut handed = 0;
    for round in 0..3 {
        // A restart between every poll: a new source from the saved state.
        let saved = serde_json::to_string(&state).unwrap();
        state = serde_json::from_str(&saved).unwrap();
        let got = source(&fake).poll(&mut state).await.unwrap();
        if round == 0 {
            assert_eq!(got.len(), 500, "one poll reads at most 10 pages");
        }
        handed += got.len();
        seen.extend(got.into_iter().map(|m| m.item_id));
    }
    assert_eq!(seen.len(), 700, "every new post once");
    assert_eq!(handed, 700, "no post twice");
    assert!(!seen.contains("1"), "the old post is not handed on again");
    assert_eq!(state.cursor.as_deref(), Some("701"));
    assert!(!state.extra.contains_key("gap"), "caught up");
    assert!(fake
        .requests()
        .iter()
        .any(|r| r.query.get("before").map(String::as_str) == Some("502")));
}

#[tokio::test]
async fn a_post_that_becomes_visible_late_below_the_watermark_is_still_handed_on() {
    let fake = FakeDiscourse::start().await;
    let t = now();
    fake.add(post(10, 1, 1, t - 60, "<p>acme one</p>"));
    fake.add(post(12, 1, 3, t - 30, "<p>acme three</p>"));
    let mut src = source(&fake);
    let mut state = SourceState::default();
    assert_eq!(ids(&src.poll(&mut state).await.unwrap()), ["10", "12"]);
    // Post 11 was inserted before 12 but its transaction committed after the poll.
    fake.add(post(11, 1, 2, t - 40, "<p>acme two</p>"));
    fake.add(post(13, 1, 4, t - 5, "<p>acme four</p>"));
    assert_eq!(ids(&src.poll(&mut state).await.unwrap()), ["11", "13"]);
    assert!(src.poll(&mut state).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_private_forum_without_a_key_says_how_to_get_one() {
    let fake = FakeDiscourse::start().await;
    fake.state.lock().unwrap().private = true;
    let mut state = SourceState::default();
    let err = source(&fake).poll(&mut state).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("HTTP 403"), "{msg}");
    assert!(msg.contains("api_key and api_username"), "{msg}");
    assert!(msg.contains("Admin → API"), "{msg}");
    assert_eq!(state, SourceState::default());
}

#[tokio::test]
async fn the_api_key_goes_in_headers_and_a_refused_key_is_named_without_printing_it() {
    let fake = FakeDiscourse::start().await;
    let t = now();
    {
        let mut s = fake.state.lock().unwrap();
        s.private = true;
        s.api_key = Some((KEY.into(), "system".into()));
    }
    fake.add(post(5, 1, 1, t - 10, "<p>acme in the private forum</p>"));
    let text = config(
        &fake,
        "api_key = \"${DISCOURSE_API_KEY}\"\napi_username = \"system\"",
    );
    let got = build(&text)
        .poll(&mut SourceState::default())
        .await
        .unwrap();
    assert_eq!(ids(&got), ["5"]);
    let req = &fake.requests()[0];
    assert_eq!(req.headers["api-key"], KEY);
    assert_eq!(req.headers["api-username"], "system");
    assert!(req.query.is_empty(), "the key is never in the URL");

    fake.state.lock().unwrap().api_key = Some(("another-key".into(), "system".into()));
    let err = build(&text)
        .poll(&mut SourceState::default())
        .await
        .unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(msg.contains("refused the API key"), "{msg}");
    assert!(msg.contains("check api_key and api_username"), "{msg}");
    assert!(!msg.contains(KEY), "the key is never printed: {msg}");
}

#[tokio::test]
async fn the_forums_429_pauses_the_source_for_the_wait_it_names() {
    let fake = FakeDiscourse::start().await;
    {
        let mut s = fake.state.lock().unwrap();
        s.rate_limited = 1;
        s.wait_seconds = 17;
    }
    let mut src = source(&fake);
    let mut state = SourceState::default();
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::RateLimited { .. }), "{err}");
    assert_eq!(
        err.retry_after(),
        Some(Duration::from_secs(17)),
        "extras.wait_seconds"
    );
    let quota = src.quota().expect("discourse's budget");
    assert_eq!(
        (quota.unit, quota.remaining, quota.limit),
        ("requests", 0, Some(200))
    );
    let resets_in = quota.resets_at.unwrap() - chrono::Utc::now();
    assert!((15..=17).contains(&resets_in.num_seconds()), "{resets_in}");
    let before = fake.requests().len();
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(err.retry_after().unwrap() <= Duration::from_secs(17));
    assert_eq!(fake.requests().len(), before, "no request while paused");

    // Retry-After wins when both are sent.
    {
        let mut s = fake.state.lock().unwrap();
        s.rate_limited = 1;
        s.wait_seconds = 40;
        s.retry_after_header = true;
    }
    let err = source(&fake).poll(&mut state).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(40)));
}

#[tokio::test]
async fn a_huge_wait_from_the_forum_is_capped_at_a_day_and_does_not_panic() {
    let fake = FakeDiscourse::start().await;
    {
        let mut s = fake.state.lock().unwrap();
        s.rate_limited = 1;
        s.wait_seconds = u64::MAX;
        s.retry_after_header = true;
    }
    let mut src = source(&fake);
    let err = src.poll(&mut SourceState::default()).await.unwrap_err();
    assert_eq!(
        err.retry_after(),
        Some(Duration::from_secs(86_400)),
        "{err}"
    );
    let quota = src.quota().unwrap();
    assert_eq!(quota.remaining, 0, "paused");
    // Only in the body's extras.wait_seconds, a Retry-After of any size, or an HTTP-date.
    for headers in [
        vec![],
        vec![("retry-after", "18446744073709551615")],
        vec![("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT")],
    ] {
        {
            let mut s = fake.state.lock().unwrap();
            s.rate_limited = 1;
            s.retry_after_header = false;
        }
        if !headers.is_empty() {
            fake.state.lock().unwrap().rate_limited = 0;
            fake.fail_next(Fault::status(429, &headers));
        }
        let err = source(&fake)
            .poll(&mut SourceState::default())
            .await
            .unwrap_err();
        assert_eq!(
            err.retry_after(),
            Some(Duration::from_secs(86_400)),
            "{err}"
        );
    }
}

#[tokio::test]
async fn the_api_key_never_follows_a_redirect_to_another_host() {
    let forum = FakeDiscourse::start().await;
    let elsewhere = FakeDiscourse::start().await;
    let t = now();
    elsewhere.add(post(5, 1, 1, t - 10, "<p>acme</p>"));
    forum.state.lock().unwrap().redirect_to = Some(elsewhere.url());
    let text = config(
        &forum,
        "api_key = \"${DISCOURSE_API_KEY}\"\napi_username = \"system\"",
    );
    let err = build(&text)
        .poll(&mut SourceState::default())
        .await
        .unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(matches!(err, SourceError::Config(_)), "{msg}");
    assert!(
        msg.contains(&format!("redirects to {}/posts.json", elsewhere.url())),
        "{msg}"
    );
    assert!(msg.contains("set url to where the forum is now"), "{msg}");
    assert!(!msg.contains(KEY), "{msg}");
    assert_eq!(forum.requests()[0].headers["api-key"], KEY);
    assert!(
        elsewhere.requests().is_empty(),
        "the other host never gets the key: {:?}",
        elsewhere.requests()
    );

    // Without a key the move is followed.
    let got = source(&forum)
        .poll(&mut SourceState::default())
        .await
        .unwrap();
    assert_eq!(ids(&got), ["5"]);
    assert_eq!(elsewhere.requests().len(), 1);

    // With a key, a redirect within the forum's own address is followed.
    {
        let mut s = forum.state.lock().unwrap();
        s.redirect_to = None;
        s.api_key = Some((KEY.into(), "system".into()));
    }
    forum.add(post(7, 1, 2, t - 5, "<p>acme here</p>"));
    let text = text.replace(
        &format!("{}/", forum.url()),
        &format!("{}/moved", forum.url()),
    );
    let got = build(&text)
        .poll(&mut SourceState::default())
        .await
        .unwrap();
    assert_eq!(ids(&got), ["7"]);
    let last = forum.requests().pop().unwrap();
    assert_eq!(last.headers["api-key"], KEY);
}

#[tokio::test]
async fn requests_are_spaced_within_the_per_ip_limits_and_counted_in_the_quota() {
    let fake = FakeDiscourse::start().await;
    let t = now();
    for i in 0..160u64 {
        fake.add(post(1 + i, 1, 1 + i, t - 3000 + i as i64, "<p>acme</p>"));
    }
    let mut src = source(&fake);
    let got = src.poll(&mut SourceState::default()).await.unwrap();
    assert_eq!(got.len(), 160);
    let times = fake.faults.times(common::fake_discourse::ops::LATEST_POSTS);
    assert_eq!(times.len(), 4, "four pages of 50");
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        // 200 a minute is one per 300 ms; 50 per 10 s one per 200 ms.
        assert!(gap >= Duration::from_millis(300), "{gap:?}");
    }
    let quota = src.quota().unwrap();
    assert_eq!((quota.remaining, quota.limit), (196, Some(200)));
}

#[tokio::test]
async fn failures_leave_the_state_alone_and_the_next_poll_recovers() {
    let fake = FakeDiscourse::start().await;
    let t = now();
    fake.add(post(1, 1, 1, t - 100, "<p>acme</p>"));
    let mut src = build(&config(&fake, "timeout = \"1s\""));
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    fake.add(post(2, 1, 2, t - 50, "<p>acme 2</p>"));
    let kept = state.clone();

    fake.fail_next(Fault::http(503));
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    fake.fail_next(Fault::Malformed);
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::Parse(_)), "{err}");
    assert!(err.to_string().contains("Discourse"), "{err}");
    assert_eq!(state, kept, "a malformed answer leaves the state untouched");
    fake.fail_next(Fault::Truncated);
    assert!(src.poll(&mut state).await.is_err());
    fake.fail_next(Fault::Hang);
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::Timeout(_)), "{err}");
    assert_eq!(state, kept);

    assert_eq!(ids(&src.poll(&mut state).await.unwrap()), ["2"]);
}

#[tokio::test]
async fn a_wrong_url_is_named_with_the_fix() {
    let fake = FakeDiscourse::start().await;
    let text = config(&fake, "").replace(
        &format!("{}/", fake.url()),
        &format!("{}/forum", fake.url()),
    );
    let err = build(&text)
        .poll(&mut SourceState::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("set url to the forum's base URL"),
        "{err}"
    );
}

#[test]
fn config_problems_name_the_key_and_the_fix() {
    let check = |body: &str| {
        let text = format!(
            "[[sources]]\nname = \"f\"\nkind = \"discourse\"\n{body}\n\n[[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n"
        );
        let env = |k: &str| (k == "DISCOURSE_API_KEY").then(|| KEY.to_string());
        mentiondesk::settings::parse(&text, Path::new("t.toml"), &env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let err = check("query = \"acme\"");
    assert!(
        err.contains("sources[0].url") && err.contains("forum's base URL"),
        "{err}"
    );
    let err = check("url = \"forum.example.com\"");
    assert!(err.contains("not an http(s) URL"), "{err}");
    let err = check("url = \"https://f.example\"\napi_key = \"${DISCOURSE_API_KEY}\"");
    assert!(err.contains("api_username"), "{err}");
    assert!(!err.contains(KEY), "{err}");
    let err = check("url = \"https://f.example\"\napi_username = \"system\"");
    assert!(
        err.contains("sources[0].api_key") && err.contains("DISCOURSE_API_KEY"),
        "{err}"
    );
    let err = check("url = \"https://f.example\"\nquery = \" \"");
    assert!(err.contains("sources[0].query"), "{err}");
    assert_eq!(
        check("url = \"https://f.example\""),
        "",
        "query is optional"
    );
}

/// Posts as real forums render them in `cooked` (Discourse's PrettyText output, as seen in
/// meta.discourse.org's `/posts.json`): a quote of another post (`aside.quote`), an emoji
/// image, a user mention, a onebox link preview, a code block and entities.
#[tokio::test]
async fn real_cooked_html_becomes_clean_text() {
    let fake = FakeDiscourse::start().await;
    let t = now();
    fake.add(post(
        7001,
        300,
        4,
        t - 120,
        "<aside class=\"quote no-group\" data-username=\"bob\" data-post=\"2\" data-topic=\"300\">\n<div class=\"title\">\n<div class=\"quote-controls\"></div>\n<img loading=\"lazy\" alt=\"\" width=\"24\" height=\"24\" src=\"/user_avatar/forum.example.com/bob/48/3_2.png\" class=\"avatar\"> bob:</div>\n<blockquote>\n<p>Did you update the firmware?</p>\n</blockquote>\n</aside>\n<p>Yes <a class=\"mention\" href=\"/u/bob\">@bob</a>, and my Acme hub still drops Wi-Fi &amp; reboots <img src=\"/images/emoji/twitter/slight_frown.png?v=12\" title=\":slight_frown:\" class=\"emoji\" alt=\":slight_frown:\" loading=\"lazy\" width=\"20\" height=\"20\"></p>\n<pre><code class=\"lang-auto\">error: wifi0 timeout\n</code></pre>\n<aside class=\"onebox allowlistedgeneric\" data-onebox-src=\"https://acme.example/kb/42\">\n  <header class=\"source\"><a href=\"https://acme.example/kb/42\" target=\"_blank\" rel=\"noopener\">acme.example</a></header>\n</aside>",
    ));
    let got = source(&fake)
        .poll(&mut SourceState::default())
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    let m = &got[0];
    assert!(
        !m.text.contains('<') && !m.text.contains("&amp;"),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains("Yes @bob, and my Acme hub still drops Wi-Fi & reboots"),
        "{}",
        m.text
    );
    assert!(m.text.contains("error: wifi0 timeout"), "{}", m.text);
    assert_eq!(m.title, None, "a reply");
    assert_eq!(
        m.url.as_deref(),
        Some(format!("{}/t/topic-300/300/4", fake.url()).as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_once_turns_a_forum_post_into_a_match() {
    let fake = FakeDiscourse::start().await;
    let t = now();
    fake.add(post(
        41,
        4,
        1,
        t - 60,
        "<p>Acme support never answered my ticket</p>",
    ));
    fake.add(post(
        42,
        4,
        2,
        t - 30,
        "<p>Acme is hiring support staff</p>",
    ));
    let config =
        mentiondesk::settings::parse(&config(&fake, ""), Path::new("t.toml"), &|_| None).unwrap();
    let results = mentiondesk::app::scan_once(&config).await.unwrap();
    let (_, hits) = results.iter().find(|(n, _)| n == "forum").unwrap();
    let hits: Vec<String> = hits
        .as_ref()
        .unwrap()
        .iter()
        .map(|h| h.mention.item_id.clone())
        .collect();
    assert_eq!(hits, ["41"], "the hiring post is excluded by the rule");
}

/// End to end: the daemon polls the forum and posts the matching post to Slack once, with
/// its link; the hiring post is excluded by the rule, and a later poll repeats nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_alerts_once_on_a_forum_post() {
    let slack = common::FakeSlack::start().await;
    let fake = FakeDiscourse::start().await;
    let t = now();
    fake.add(post(
        51,
        5,
        1,
        t - 60,
        "<p>Acme support never answered my ticket</p>",
    ));
    fake.add(post(
        52,
        5,
        2,
        t - 30,
        "<p>Acme is hiring support staff</p>",
    ));
    let config = common::ConfigBuilder::new()
        .slack(&slack)
        .source("forum", "discourse")
        .key("url", format!("{}/", fake.url()))
        .key("query", "acme")
        .key("every", "1s")
        .key("allow_private", true)
        .rule("acme", "acme AND NOT hiring", &["slack:#pr-alerts"])
        .toml();
    let daemon = common::Daemon::start(&config).await;
    let posts = slack.wait_for_posts(1, 20).await;
    let body = posts[0].body.to_string();
    assert!(body.contains("support never answered my ticket"), "{body}");
    assert!(body.contains("/t/topic-5/5/1"), "{body}");
    // Several more polls of the same forum: nothing is posted again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(slack.posts().len(), 1, "{:#?}", slack.posts());
    daemon.stop().await;
}
