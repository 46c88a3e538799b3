//! The `reddit` source against a fake Reddit (OAuth token endpoint and listings) on
//! 127.0.0.1: the app-only token and its renewal, search and comment listings, paging to the
//! watermark, restarts, rate-limit headers and failures.

use crate::common;

use common::fake_sources::{ops, reddit_comment, reddit_post, FakeApi};
use common::faults::Fault;
use mentiondesk::sources::{self, SourceError, SourceState};
use std::path::Path;
use std::time::Duration;

fn source(fake: &FakeApi) -> Box<dyn sources::Source> {
    source_with_timeout(fake, "1s")
}

fn source_with_timeout(fake: &FakeApi, timeout: &str) -> Box<dyn sources::Source> {
    let text = format!(
        r#"
[[sources]]
name = "rd"
kind = "reddit"
query = '(acme OR "acme corp") AND NOT hiring'
subreddits = ["routers", "r/homelab"]
client_id = "client-id"
client_secret = "${{REDDIT_CLIENT_SECRET}}"
user_agent = "linux:mentiondesk-test:0.1 (by /u/acme_pr)"
url = "{base}"
token_url = "{base}/api/v1/access_token"
timeout = "{timeout}"
allow_private = true

[[rules]]
name = "acme"
query = "acme"
alert = ["slack:#pr"]
"#,
        base = fake.url(),
    );
    let env = |k: &str| (k == "REDDIT_CLIENT_SECRET").then(|| "client-secret-xyz".to_string());
    let config = mentiondesk::settings::parse(&text, Path::new("t.toml"), &env).unwrap();
    sources::build(&config.sources[0]).unwrap()
}

fn now() -> f64 {
    chrono::Utc::now().timestamp() as f64
}

#[tokio::test]
async fn posts_and_matching_comments_arrive_with_a_token_and_a_descriptive_user_agent() {
    let fake = FakeApi::start().await;
    let t = now();
    {
        let mut s = fake.state.lock().unwrap();
        s.reddit_posts = vec![
            reddit_post("p1", t - 50.0, "Acme router died", "after a week"),
            reddit_post("p2", t - 40.0, "Other brand", "fine"),
        ];
        s.reddit_comments = vec![
            reddit_comment("c1", t - 30.0, "my ACME does that too"),
            reddit_comment("c2", t - 20.0, "unrelated chatter"),
        ];
    }
    let mut src = source(&fake);
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    let mut ids: Vec<_> = got.iter().map(|m| m.item_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["t1_c1", "t3_p1"]);
    let post = got.iter().find(|m| m.item_id == "t3_p1").unwrap();
    assert_eq!(post.title.as_deref(), Some("Acme router died"));
    assert_eq!(post.text, "after a week");
    assert_eq!(post.author.as_deref(), Some("u/u_dana"));
    assert_eq!(
        post.url.as_deref(),
        Some("https://www.reddit.com/r/routers/comments/p1/some_title/")
    );

    let search = &fake.requests("/r/routers+homelab/search")[0];
    assert_eq!(search.query["q"], "acme");
    assert_eq!(search.query["sort"], "new");
    assert_eq!(search.query["restrict_sr"], "1");
    assert_eq!(search.headers["authorization"], "Bearer token-1");
    assert_eq!(
        search.headers["user-agent"],
        "linux:mentiondesk-test:0.1 (by /u/acme_pr)"
    );
    assert_eq!(fake.state.lock().unwrap().tokens_issued, 1);

    // Nothing new: nothing handed on, and the token is reused.
    assert!(src.poll(&mut state).await.unwrap().is_empty());
    assert_eq!(fake.state.lock().unwrap().tokens_issued, 1);
}

#[tokio::test]
async fn a_burst_is_paged_to_the_watermark_and_a_restart_resumes_without_repeats() {
    let fake = FakeApi::start().await;
    let t = now();
    fake.state.lock().unwrap().reddit_posts = vec![reddit_post("p0", t - 1000.0, "acme old", "")];
    let mut state = SourceState::default();
    assert_eq!(source(&fake).poll(&mut state).await.unwrap().len(), 1);

    // 250 new posts while "down": three pages of 100.
    fake.state.lock().unwrap().reddit_posts.extend(
        (0..250).map(|i| reddit_post(&format!("n{i}"), t - 900.0 + i as f64, "acme news", "x")),
    );
    let mut restored: SourceState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    let got = source(&fake).poll(&mut restored).await.unwrap();
    let posts: Vec<_> = got
        .iter()
        .filter(|m| m.item_id.starts_with("t3_"))
        .collect();
    assert_eq!(
        posts.len(),
        250,
        "every new post once, the old one not again"
    );
    assert!(fake
        .requests("/r/routers+homelab/search")
        .iter()
        .any(|r| r.query.contains_key("after")));
}

#[tokio::test]
async fn the_token_is_renewed_before_expiry_and_after_a_401() {
    let fake = FakeApi::start().await;
    fake.state.lock().unwrap().token_ttl_secs = 60; // less than the renewal margin
    let mut src = source(&fake);
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    src.poll(&mut state).await.unwrap();
    // Two listings per poll; a token with less than the renewal margin left is never used.
    assert_eq!(
        fake.state.lock().unwrap().tokens_issued,
        4,
        "renewed before expiry"
    );

    fake.state.lock().unwrap().token_ttl_secs = 3600;
    src.poll(&mut state).await.unwrap();
    fake.state.lock().unwrap().valid_token = Some("revoked-elsewhere".into());
    src.poll(&mut state).await.unwrap();
    assert_eq!(
        fake.state.lock().unwrap().tokens_issued,
        6,
        "a 401 renews the token and the poll still succeeds"
    );
}

#[tokio::test]
async fn wrong_credentials_say_so_without_the_secret() {
    let fake = FakeApi::start().await;
    fake.state.lock().unwrap().reddit_client.1 = "another-secret".into();
    let err = source(&fake)
        .poll(&mut SourceState::default())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("client_id and client_secret"), "{msg}");
    assert!(!msg.contains("client-secret-xyz"), "{msg}");
}

#[tokio::test]
async fn the_rate_limit_headers_pause_the_source_until_the_reset() {
    let fake = FakeApi::start().await;
    {
        let mut s = fake.state.lock().unwrap();
        s.ratelimit_remaining = 1.0;
        s.ratelimit_reset = 240;
        s.reddit_posts = vec![reddit_post("p1", now(), "acme", "")];
    }
    let mut src = source(&fake);
    let mut state = SourceState::default();
    assert_eq!(src.poll(&mut state).await.unwrap().len(), 1);
    // What `/healthz` shows for the source: Reddit's budget as its headers gave it.
    let quota = src.quota().expect("reddit's budget");
    assert_eq!(
        (quota.unit, quota.remaining, quota.limit),
        ("requests", 1, Some(2))
    );
    let resets_in = quota.resets_at.unwrap() - chrono::Utc::now();
    assert!(
        (230..=240).contains(&resets_in.num_seconds()),
        "{resets_in}"
    );
    let before = fake.requests("/r/").len();
    let err = src.poll(&mut state).await.unwrap_err();
    let wait = err.retry_after().expect("a wait");
    assert!(
        wait > Duration::from_secs(230) && wait <= Duration::from_secs(240),
        "{wait:?}"
    );
    assert_eq!(
        fake.requests("/r/").len(),
        before,
        "no request while paused"
    );
}

#[tokio::test]
async fn failures_are_reported_and_the_next_poll_recovers() {
    let fake = FakeApi::start().await;
    fake.state.lock().unwrap().reddit_posts = vec![reddit_post("p1", now(), "acme", "")];
    let mut src = source(&fake);
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap(); // token fetched
    fake.state
        .lock()
        .unwrap()
        .reddit_posts
        .push(reddit_post("p2", now(), "acme 2", ""));

    fake.fail_next(Fault::status(429, &[("x-ratelimit-reset", "42")]));
    let err = src.poll(&mut state).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(42)), "{err}");
    fake.fail_next(Fault::http(500));
    assert!(src
        .poll(&mut state)
        .await
        .unwrap_err()
        .to_string()
        .contains("500"));
    fake.fail_next(Fault::Malformed);
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::Parse(_)), "{err}");
    fake.fail_next(Fault::Truncated);
    assert!(src.poll(&mut state).await.is_err());
    fake.fail_next(Fault::Hang);
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::Timeout(_)), "{err}");
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(
        got.iter().map(|m| m.item_id.as_str()).collect::<Vec<_>>(),
        ["t3_p2"]
    );
}

#[test]
fn missing_credentials_are_config_problems() {
    let text = "[[sources]]\nname = \"r\"\nkind = \"reddit\"\nquery = \"acme\"\nsubreddits = [\"x\"]\n\n[[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n";
    let err = mentiondesk::settings::parse(text, Path::new("t.toml"), &|_| None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("client_id"), "{err}");
    assert!(err.contains("REDDIT_CLIENT_SECRET"), "{err}");
}

// ---------- real payload shapes ----------

/// A `t3` as Reddit's listings return it with `raw_json=1` (reddit.com/dev/api, "listings";
/// fields as in a captured `/r/{sub}/search.json`: `name`, `title`, `selftext` (Markdown) and
/// `selftext_html`, `is_self`, `over_18`, `author` (`[deleted]` once the account is gone),
/// `permalink`, `url`, and for a crosspost `crosspost_parent` + `crosspost_parent_list`).
fn t3(id: &str, created: f64, fields: serde_json::Value) -> serde_json::Value {
    let mut data = serde_json::json!({
        "approved_at_utc": null, "subreddit": "routers", "selftext": "",
        "author_fullname": "t2_abc123", "saved": false, "gilded": 0, "clicked": false,
        "title": "", "subreddit_name_prefixed": "r/routers", "hidden": false, "pwls": 6,
        "downs": 0, "name": format!("t3_{id}"), "upvote_ratio": 0.98, "ups": 12,
        "total_awards_received": 0, "score": 12, "is_self": true, "created": created,
        "created_utc": created, "selftext_html": null, "over_18": false, "spoiler": false,
        "locked": false, "subreddit_id": "t5_2qh0u", "id": id, "author": "dana_k",
        "num_comments": 4, "send_replies": true, "stickied": false,
        "permalink": format!("/r/routers/comments/{id}/a_title/"),
        "url": format!("https://www.reddit.com/r/routers/comments/{id}/a_title/"),
        "subreddit_subscribers": 120000, "num_crossposts": 0, "media": null, "is_video": false
    });
    for (k, v) in fields.as_object().unwrap() {
        data[k] = v.clone();
    }
    serde_json::json!({"kind": "t3", "data": data})
}

/// A `t1` as the subreddit comment listing returns it (`body` Markdown, `body_html`,
/// `link_title`, `link_id`, `parent_id`, `permalink`).
fn t1(id: &str, created: f64, body: &str, author: &str) -> serde_json::Value {
    serde_json::json!({"kind": "t1", "data": {
        "subreddit_id": "t5_2qh0u", "link_title": "Acme routers recalled", "subreddit": "routers",
        "link_author": "dana_k", "id": id, "name": format!("t1_{id}"), "author": author,
        "author_fullname": "t2_kim", "body": body,
        "body_html": format!("<div class=\"md\"><p>{}</p>\n</div>", body.replace('&', "&amp;")),
        "link_id": "t3_lnk1", "parent_id": "t3_lnk1", "score": 1, "created": created,
        "created_utc": created, "over_18": false, "controversiality": 0, "stickied": false,
        "permalink": format!("/r/routers/comments/lnk1/acme_routers_recalled/{id}/"),
        "link_permalink": "https://www.reddit.com/r/routers/comments/lnk1/acme_routers_recalled/",
        "link_url": "https://news.example/acme-recall"
    }})
}

#[tokio::test]
async fn real_listing_shapes_become_mentions() {
    let fake = FakeApi::start().await;
    let t = now();
    {
        let mut s = fake.state.lock().unwrap();
        s.reddit_posts = vec![
            // A link post.
            t3(
                "lnk1",
                t - 60.0,
                serde_json::json!({"title": "Acme routers recalled",
                "is_self": false, "url": "https://news.example/acme-recall",
                "domain": "news.example"}),
            ),
            // A self post, NSFW-flagged, whose author deleted the account.
            t3(
                "self1",
                t - 50.0,
                serde_json::json!({"title": "Acme support rant",
                "selftext": "They hung up **twice**.\n\nNever again.",
                "selftext_html": "<!-- SC_OFF --><div class=\"md\"><p>They hung up <strong>twice</strong>.</p>\n\n<p>Never again.</p>\n</div><!-- SC_ON -->",
                "author": "[deleted]", "author_fullname": null, "over_18": true}),
            ),
            // A crosspost of a self post from another subreddit: no selftext of its own.
            t3(
                "xp1",
                t - 40.0,
                serde_json::json!({"title": "Acme support rant",
                "url": "/r/homenetworking/comments/orig1/acme_support_rant/",
                "crosspost_parent": "t3_orig1", "num_crossposts": 0,
                "crosspost_parent_list": [{"subreddit": "homenetworking", "id": "orig1",
                    "name": "t3_orig1", "title": "Acme support rant", "is_self": true,
                    "selftext": "The Acme hotline dropped my call.", "author": "ann",
                    "created_utc": t - 4000.0,
                    "permalink": "/r/homenetworking/comments/orig1/acme_support_rant/",
                    "url": "https://www.reddit.com/r/homenetworking/comments/orig1/acme_support_rant/"}]}),
            ),
        ];
        s.reddit_comments = vec![
            t1(
                "cm1",
                t - 30.0,
                "Same, my Acme died & support shrugged",
                "kim",
            ),
            t1("cm2", t - 20.0, "[removed]", "[deleted]"),
        ];
    }
    let got = source(&fake)
        .poll(&mut SourceState::default())
        .await
        .unwrap();
    let by_id = |id: &str| {
        got.iter()
            .find(|m| m.item_id == id)
            .unwrap_or_else(|| panic!("no {id} in {got:?}"))
    };
    assert_eq!(got.len(), 4, "{got:?}");

    let link = by_id("t3_lnk1");
    assert_eq!(link.title.as_deref(), Some("Acme routers recalled"));
    assert_eq!(link.text, "https://news.example/acme-recall");
    assert_eq!(link.author.as_deref(), Some("u/dana_k"));
    assert_eq!(
        link.url.as_deref(),
        Some("https://www.reddit.com/r/routers/comments/lnk1/a_title/")
    );

    let selfpost = by_id("t3_self1");
    assert_eq!(selfpost.text, "They hung up **twice**.\n\nNever again.");
    assert_eq!(
        selfpost.author, None,
        "[deleted] is no author: never grouped or muted on"
    );

    let crosspost = by_id("t3_xp1");
    assert_eq!(crosspost.text, "The Acme hotline dropped my call.");
    assert_eq!(crosspost.author.as_deref(), Some("u/dana_k"));

    let comment = by_id("t1_cm1");
    assert_eq!(comment.text, "Same, my Acme died & support shrugged");
    assert_eq!(comment.title, None);
    assert_eq!(comment.author.as_deref(), Some("u/kim"));
    assert_eq!(
        comment.url.as_deref(),
        Some("https://www.reddit.com/r/routers/comments/lnk1/acme_routers_recalled/cm1/")
    );
}

/// A comment in r/homelab, which `reddit_comment` (r/routers) is not.
fn homelab_comment(id: &str, created_utc: f64, body: &str) -> serde_json::Value {
    let mut c = reddit_comment(id, created_utc, body);
    c["data"]["subreddit"] = "homelab".into();
    c["data"]["permalink"] = format!("/r/homelab/comments/zzz/a_thread/{id}/").into();
    c
}

/// Issue 13: a Reddit mention's reach is its subreddit's members (the reach of the place;
/// an author's karma would cost a request per author from the 100-a-minute budget). Posts
/// carry `subreddit_subscribers`; a comment's subreddit is looked up on `/r/{sub}/about`
/// (Reddit API: a `t5` with `subscribers`) only when no post gave it, and once.
#[tokio::test]
async fn mentions_carry_their_subreddits_members_looked_up_once_for_comments() {
    let fake = FakeApi::start().await;
    let t = now();
    {
        let mut s = fake.state.lock().unwrap();
        s.reddit_posts = vec![reddit_post("p1", t - 50.0, "Acme router died", "")];
        s.reddit_comments = vec![
            reddit_comment("c1", t - 30.0, "my ACME does that too"),
            homelab_comment("c3", t - 20.0, "acme in the lab"),
        ];
        s.reddit_subscribers.insert("homelab".into(), 1_200_000);
    }
    let mut src = source(&fake);
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    let reach = |id: &str| got.iter().find(|m| m.item_id == id).unwrap().author_reach;
    assert_eq!(reach("t3_p1"), Some(48_000), "from the listing");
    assert_eq!(
        reach("t1_c1"),
        Some(48_000),
        "the post's subreddit, remembered"
    );
    assert_eq!(reach("t1_c3"), Some(1_200_000), "looked up");
    assert_eq!(got[0].reach_unit(), "subreddit members");
    let about: Vec<String> = fake
        .requests("/r/")
        .iter()
        .filter(|r| r.path.ends_with("/about"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        about,
        ["/r/homelab/about"],
        "only the subreddit no listing sized"
    );

    fake.state
        .lock()
        .unwrap()
        .reddit_comments
        .push(homelab_comment("c4", t - 5.0, "acme again"));
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].author_reach, Some(1_200_000));
    let abouts = fake
        .requests("/r/")
        .iter()
        .filter(|r| r.path.ends_with("/about"))
        .count();
    assert_eq!(abouts, 1, "remembered");
}

/// `/about` refusing (429), failing (503) or never answering: the comment is handed on
/// without a reach, the poll succeeds, and the lookups pause.
#[tokio::test]
async fn a_failing_subreddit_lookup_never_costs_a_comment() {
    for fault in [Fault::rate_limited(600.0), Fault::http(503), Fault::Hang] {
        let fake = FakeApi::start().await;
        let t = now();
        {
            let mut s = fake.state.lock().unwrap();
            s.reddit_comments = vec![homelab_comment("c1", t - 30.0, "acme in the lab")];
            s.reddit_subscribers.insert("homelab".into(), 1_200_000);
        }
        fake.faults.always(ops::REDDIT_ABOUT, fault.clone());
        let mut src = source(&fake);
        let mut state = SourceState::default();
        let got = src
            .poll(&mut state)
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(got.len(), 1, "{fault:?}");
        assert_eq!(got[0].author_reach, None);
        fake.state
            .lock()
            .unwrap()
            .reddit_comments
            .push(homelab_comment("c2", t - 5.0, "acme 2"));
        let got = src.poll(&mut state).await.unwrap();
        assert_eq!(got.len(), 1, "{fault:?}");
        let abouts = fake
            .requests("/r/")
            .iter()
            .filter(|r| r.path.ends_with("/about"))
            .count();
        assert_eq!(abouts, 1, "paused after {fault:?}");
    }
}

/// The `/about` lookups get what is left of the poll's timeout after the listings, never a
/// fixed share on top of it: a slow listing leaves them to the next poll instead of pushing
/// the poll past its timeout (which would read the listings again). Counted, not timed: with
/// the comments listing answering after 96 % of the timeout, no `/about` request is made.
#[tokio::test]
async fn a_slow_listing_leaves_the_subreddit_lookup_to_the_next_poll() {
    let fake = FakeApi::start().await;
    let t = now();
    {
        let mut s = fake.state.lock().unwrap();
        s.reddit_comments = vec![homelab_comment("c1", t - 30.0, "acme in the lab")];
        s.reddit_subscribers.insert("homelab".into(), 1_200_000);
    }
    fake.faults.next(
        ops::REDDIT_COMMENTS,
        1,
        Fault::Slow(Duration::from_millis(9_600)),
    );
    let mut src = source_with_timeout(&fake, "10s");
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].author_reach, None, "no time was left to look it up");
    let abouts = |fake: &FakeApi| {
        fake.requests("/r/")
            .iter()
            .filter(|r| r.path.ends_with("/about"))
            .count()
    };
    assert_eq!(abouts(&fake), 0, "no lookup past 95 % of the timeout");

    // The next poll, quick again, looks the subreddit up.
    fake.state
        .lock()
        .unwrap()
        .reddit_comments
        .push(homelab_comment("c2", t - 5.0, "acme 2"));
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].author_reach, Some(1_200_000));
    assert_eq!(abouts(&fake), 1);
}
