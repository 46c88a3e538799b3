//! The Bluesky search back-fill: sign-in, paging, rate limits and failures of searchPosts,
//! and its mentions merged with what Jetstream streams.

use super::*;

// ---------- search back-fill ----------

pub(super) const HANDLE_DID: &str = "did:plc:annannannannannannann01";

/// A bluesky source with the search back-fill on `api`, streaming from `jet`.
pub(super) fn search_source(
    jet: &FakeJetstream,
    api: &FakeApi,
    password: &str,
    extra: &str,
) -> Box<dyn sources::Source> {
    let text = format!(
        r#"
[[sources]]
name = "bsky"
kind = "bluesky"
query = '(acme OR "acme corp" OR widgetco) AND NOT hiring'
url = "{jet}"
every = "1s"
timeout = "10s"
allow_private = true
handle = "{BSKY_HANDLE}"
app_password = "${{BLUESKY_APP_PASSWORD}}"
search_url = "{xrpc}"
{details}
{extra}

[[rules]]
name = "acme"
query = "acme"
alert = ["slack:#pr-alerts"]
"#,
        jet = jet.url(),
        xrpc = api.xrpc_url(),
        // Profile lookups are covered in `authors.rs`.
        details = if extra.contains("author_details") || extra.contains("profiles_url") {
            ""
        } else {
            "author_details = false"
        },
    );
    let password = password.to_string();
    let env = move |k: &str| (k == "BLUESKY_APP_PASSWORD").then(|| password.clone());
    let config = mentiondesk::settings::parse(&text, Path::new("t.toml"), &env).unwrap();
    sources::build(&config.sources[0]).unwrap()
}

/// RFC 3339 time `secs` seconds ago, with milliseconds, as Bluesky writes `createdAt`.
pub(super) fn ago(secs: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn texts(mentions: &[Mention]) -> Vec<String> {
    let mut t: Vec<String> = mentions.iter().map(|m| m.text.clone()).collect();
    t.sort();
    t
}

fn restore(state: &SourceState) -> SourceState {
    serde_json::from_str(&serde_json::to_string(state).unwrap()).unwrap()
}

#[tokio::test]
async fn a_post_found_by_search_is_the_same_mention_jetstream_makes() {
    let jet = FakeJetstream::start().await;
    let api = FakeApi::start().await;
    let created = ago(600);
    let text = "My Acme router died again";
    api.bsky_add(bsky_post(
        HANDLE_DID,
        "ann.bsky.social",
        "3l3qo2vutsw2b",
        &created,
        text,
    ));
    let mut searching = search_source(&jet, &api, BSKY_APP_PASSWORD, "");
    let found = searching.poll(&mut SourceState::default()).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(searching.take_warning(), None);

    // The same post over Jetstream, to a source without search.
    let mut streaming = source(&jet.url(), "");
    let mut state = SourceState::default();
    streaming.poll(&mut state).await.unwrap();
    jet.send(
        1,
        jet_post_at(HANDLE_DID, "3l3qo2vutsw2b", 1, text, &created),
    );
    tokio::time::timeout(Duration::from_secs(5), streaming.ready())
        .await
        .unwrap();
    let streamed = streaming.poll(&mut state).await.unwrap();
    assert_eq!(streamed.len(), 1);

    assert_eq!(found[0], streamed[0], "search and Jetstream disagree");
    let m = &found[0];
    assert_eq!(
        m.item_id,
        format!("at://{HANDLE_DID}/app.bsky.feed.post/3l3qo2vutsw2b")
    );
    assert_eq!(
        m.url.as_deref(),
        Some(format!("https://bsky.app/profile/{HANDLE_DID}/post/3l3qo2vutsw2b").as_str())
    );
    assert_eq!(
        m.author.as_deref(),
        Some(HANDLE_DID),
        "the DID, as Jetstream"
    );
    assert_eq!(m.lang.as_deref(), Some("en"));
    assert_eq!(
        m.published
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        created
    );

    // Signed in once with the handle and app password; the search was authorised.
    assert_eq!(api.bsky().bsky.sessions_created, 1);
    let search = &api.bsky_searches()[0];
    assert!(search.headers["authorization"].starts_with("Bearer eyJ"));
    assert_eq!(search.query["sort"], "latest");
    assert_eq!(search.query["limit"], "100");
}

#[tokio::test]
async fn the_first_search_looks_back_an_hour_for_every_keyword() {
    let jet = FakeJetstream::start().await;
    let api = FakeApi::start().await;
    for (rkey, secs, text) in [
        ("a1", 1800, "acme support never answers"),
        ("a2", 1200, "widgetco shipped a broken update"),
        ("a3", 7200, "acme two hours ago, before this source existed"),
        ("a4", 600, "acme is hiring"), // found; the rules drop it later
    ] {
        api.bsky_add(bsky_post(
            HANDLE_DID,
            "ann.bsky.social",
            rkey,
            &ago(secs),
            text,
        ));
    }
    let mut src = search_source(&jet, &api, BSKY_APP_PASSWORD, "");
    let got = src.poll(&mut SourceState::default()).await.unwrap();
    assert_eq!(
        texts(&got),
        [
            "acme is hiring",
            "acme support never answers",
            "widgetco shipped a broken update"
        ]
    );
    let mut queries: Vec<String> = api
        .bsky_searches()
        .iter()
        .map(|r| r.query["q"].clone())
        .collect();
    queries.sort();
    assert_eq!(queries, ["acme", "widgetco"], "one query per keyword");
    let since = chrono::DateTime::parse_from_rfc3339(&api.bsky_searches()[0].query["since"])
        .unwrap()
        .with_timezone(&chrono::Utc);
    let back = chrono::Utc::now() - since;
    assert!(
        back > chrono::Duration::minutes(60) && back < chrono::Duration::minutes(70),
        "the first search reaches an hour (and the overlap) back: {back}"
    );
}

#[tokio::test]
async fn a_restart_searches_from_the_saved_mark_so_posts_missed_while_down_arrive_once() {
    let jet = FakeJetstream::start().await;
    let api = FakeApi::start().await;
    api.bsky_add(bsky_post(
        HANDLE_DID,
        "ann.bsky.social",
        "b0",
        &ago(900),
        "acme before the outage",
    ));
    let mut state = SourceState::default();
    {
        let mut src = search_source(&jet, &api, BSKY_APP_PASSWORD, "");
        let got = src.poll(&mut state).await.unwrap();
        assert_eq!(texts(&got), ["acme before the outage"]);
    } // the process stops; Jetstream keeps nothing from the time it is down
      // Posted while the bot was down, longer than Jetstream replays.
    api.bsky_add(bsky_post(
        HANDLE_DID,
        "ann.bsky.social",
        "b1",
        &ago(120),
        "acme down for everyone",
    ));
    api.bsky_add(bsky_post(
        HANDLE_DID,
        "bob.bsky.social",
        "b2",
        &ago(60),
        "widgetco and acme both down",
    ));
    api.clear_requests();

    let mut restored = restore(&state);
    let mut src = search_source(&jet, &api, BSKY_APP_PASSWORD, "");
    let got = src.poll(&mut restored).await.unwrap();
    assert_eq!(
        texts(&got),
        ["acme down for everyone", "widgetco and acme both down"],
        "the gap is filled, and the post handed on before the restart is not repeated"
    );
    let since = api
        .bsky_searches()
        .into_iter()
        .find(|r| r.query["q"] == "acme")
        .unwrap()
        .query["since"]
        .clone();
    let since = chrono::DateTime::parse_from_rfc3339(&since).unwrap();
    let back = chrono::Utc::now().signed_duration_since(since);
    assert!(
        back > chrono::Duration::minutes(19) && back < chrono::Duration::minutes(21),
        "resumes 5 minutes before the newest post it had handed on (15 min ago): {back}"
    );

    // A second restart right away finds nothing new.
    let mut again = restore(&restored);
    let got = search_source(&jet, &api, BSKY_APP_PASSWORD, "")
        .poll(&mut again)
        .await
        .unwrap();
    assert!(got.is_empty(), "{:?}", texts(&got));
}

#[tokio::test]
async fn a_backlog_is_paged_with_cursor_and_a_larger_one_continues_at_the_next_poll() {
    let jet = FakeJetstream::start().await;
    let api = FakeApi::start().await;
    // 1,050 posts in the last 50 minutes: more than one search reads (10 pages of 100).
    for i in 0..1050 {
        api.bsky_add(bsky_post(
            HANDLE_DID,
            "ann.bsky.social",
            &format!("p{i:04}"),
            &ago(3000 - i * 2),
            &format!("acme complaint {i:04}"),
        ));
    }
    let mut src = search_source(&jet, &api, BSKY_APP_PASSWORD, "search_every = \"1h\"");
    let mut state = SourceState::default();
    let first = src.poll(&mut state).await.unwrap();
    assert_eq!(first.len(), 1000, "the page cap");
    assert_eq!(
        src.take_warning(),
        None,
        "a long back-fill is not a failure"
    );
    let cursors: Vec<String> = api
        .bsky_searches()
        .iter()
        .filter(|r| r.query["q"] == "acme")
        .map(|r| r.query.get("cursor").cloned().unwrap_or_default())
        .collect();
    assert_eq!(
        cursors,
        ["", "100", "200", "300", "400", "500", "600", "700", "800", "900"]
    );
    // The newest thousand came first; the next poll continues below them, not from the top.
    api.clear_requests();
    let second = src.poll(&mut state).await.unwrap();
    assert_eq!(second.len(), 50, "the rest of the backlog");
    let req = &api.bsky_searches()[0];
    assert_eq!(req.query["q"], "acme");
    let until = chrono::DateTime::parse_from_rfc3339(&req.query["until"])
        .unwrap()
        .with_timezone(&chrono::Utc);
    let oldest_read = first.iter().filter_map(|m| m.published).min().unwrap();
    assert!(
        until > oldest_read && until - oldest_read <= chrono::Duration::milliseconds(1),
        "continues just below what it read ({until} vs {oldest_read})"
    );
    let mut all: Vec<String> = first
        .iter()
        .chain(&second)
        .map(|m| m.text.clone())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 1050, "every post once");

    // Complete: the next search waits for search_every, and a restart repeats nothing.
    api.clear_requests();
    assert!(src.poll(&mut state).await.unwrap().is_empty());
    assert!(
        api.bsky_searches().is_empty(),
        "searched again before search_every"
    );
    api.bsky_add(bsky_post(
        HANDLE_DID,
        "ann.bsky.social",
        "new",
        &ago(1),
        "acme news",
    ));
    let mut restored = restore(&state);
    let got = search_source(&jet, &api, BSKY_APP_PASSWORD, "search_every = \"1h\"")
        .poll(&mut restored)
        .await
        .unwrap();
    assert_eq!(texts(&got), ["acme news"]);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_a_revoked_refresh_signs_in_again() {
    let jet = FakeJetstream::start().await;
    let api = FakeApi::start().await;
    let mut src = search_source(&jet, &api, BSKY_APP_PASSWORD, "search_every = \"500ms\"");
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    assert_eq!(api.bsky().bsky.sessions_created, 1);

    // The access token expires (400 ExpiredToken): refreshed, and the search still succeeds.
    api.bsky().bsky.access_expired = true;
    api.bsky_add(bsky_post(
        HANDLE_DID,
        "ann.bsky.social",
        "e1",
        &ago(5),
        "acme after expiry",
    ));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(texts(&got), ["acme after expiry"]);
    assert_eq!(src.take_warning(), None);
    {
        let s = api.bsky();
        assert_eq!((s.bsky.refreshes, s.bsky.sessions_created), (1, 1));
    }
    let refresh = &api.requests("/xrpc/com.atproto.server.refreshSession")[0];
    assert_eq!(
        refresh.headers["authorization"], "Bearer eyJhbGciOi.refresh-1.sig",
        "refreshed with the refresh token"
    );

    // Expired again, and the refresh token was revoked: a new sign-in.
    {
        let mut s = api.bsky();
        s.bsky.access_expired = true;
        s.bsky.refresh = None;
    }
    api.bsky_add(bsky_post(
        HANDLE_DID,
        "ann.bsky.social",
        "e2",
        &ago(3),
        "acme after revocation",
    ));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(texts(&got), ["acme after revocation"]);
    assert_eq!(src.take_warning(), None);
    assert_eq!(api.bsky().bsky.sessions_created, 2);
}

#[tokio::test]
async fn a_rate_limited_search_waits_for_the_reset_and_the_stream_goes_on() {
    let jet = FakeJetstream::start().await;
    let api = FakeApi::start().await;
    let mut src = search_source(&jet, &api, BSKY_APP_PASSWORD, "search_every = \"500ms\"");
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();

    let reset = chrono::Utc::now().timestamp() + 120;
    api.bsky_fail_search(Fault::status(
        429,
        &[
            ("ratelimit-limit", "3000"),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", &reset.to_string()),
            ("ratelimit-policy", "3000;w=300"),
        ],
    ));
    tokio::time::sleep(Duration::from_millis(600)).await;
    jet.send(
        1,
        jet_post(DID, "r1", 1, "acme streamed during the rate limit"),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(texts(&got), ["acme streamed during the rate limit"]);
    let warning = src.take_warning().expect("the rate limit shows");
    assert!(warning.contains("rate limit used up"), "{warning}");
    let wait: u64 = warning
        .split("waiting ")
        .nth(1)
        .and_then(|w| w.split('s').next())
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no wait in {warning}"));
    assert!(
        (110..=121).contains(&wait),
        "waits for ratelimit-reset: {warning}"
    );

    // Until the reset, polls do not search, and keep saying why.
    let searches = api.bsky_searches().len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    src.poll(&mut state).await.unwrap();
    assert_eq!(
        api.bsky_searches().len(),
        searches,
        "searched during the rate limit"
    );
    assert!(src.take_warning().is_some_and(|w| w.contains("rate limit")));
}

#[tokio::test]
async fn a_used_up_rate_limit_window_pauses_the_search_until_it_resets() {
    let jet = FakeJetstream::start().await;
    let api = FakeApi::start().await;
    api.bsky().bsky.ratelimit_remaining = 0;
    let mut src = search_source(&jet, &api, BSKY_APP_PASSWORD, "search_every = \"300ms\"");
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    assert_eq!(
        src.take_warning(),
        None,
        "a used-up window is not a failure"
    );
    let searches = api.bsky_searches().len();
    assert_eq!(searches, 1, "the other keyword waits for the reset too");
    tokio::time::sleep(Duration::from_millis(500)).await;
    src.poll(&mut state).await.unwrap();
    assert_eq!(
        api.bsky_searches().len(),
        searches,
        "searched again before ratelimit-reset (5 minutes away)"
    );
}

#[tokio::test]
async fn malformed_cut_off_and_failing_search_answers_are_reported_and_the_stream_still_delivers() {
    let jet = FakeJetstream::start().await;
    let api = FakeApi::start().await;
    let mut src = search_source(&jet, &api, BSKY_APP_PASSWORD, "search_every = \"300ms\"");
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    api.bsky_add(bsky_post(
        HANDLE_DID,
        "ann.bsky.social",
        "m1",
        &ago(5),
        "acme found at last",
    ));

    // Each failure backs the search off (300 ms, 600 ms, 1.2 s), so wait past it each time.
    let cases: [(Fault, &[&str], u64); 3] = [
        (
            Fault::Malformed,
            &["malformed JSON from the Bluesky searchPosts API"],
            400,
        ),
        // A cut connection shows as a body error, JSON that ends early, or (when it is cut
        // before the headers are out) a connection error.
        (
            Fault::Truncated,
            &["reading the body failed", "ends early", "connection closed"],
            700,
        ),
        (Fault::http(502), &["HTTP 502"], 1300),
    ];
    for (i, (failure, expect, wait_ms)) in cases.into_iter().enumerate() {
        api.bsky_fail_search(failure);
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        let t = i as i64 + 10;
        jet.send(
            t,
            jet_post(DID, &format!("s{i}"), t, &format!("acme streamed {i}")),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let got = src.poll(&mut state).await.unwrap();
        assert_eq!(
            texts(&got),
            [format!("acme streamed {i}")],
            "case {expect:?}"
        );
        let warning = src
            .take_warning()
            .unwrap_or_else(|| panic!("no warning for {expect:?}"));
        assert!(
            expect.iter().any(|e| warning.contains(e)),
            "case {i}: {warning}"
        );
        assert!(
            warning.contains("search back-fill failed (streamed posts are not affected)"),
            "{warning}"
        );
    }
    // The search works again: the post arrives, and the warning is gone.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(texts(&got), ["acme found at last"]);
    assert_eq!(src.take_warning(), None);
}

#[tokio::test]
async fn a_hanging_search_is_cut_short_and_does_not_hold_up_streamed_posts() {
    let jet = FakeJetstream::start().await;
    let api = FakeApi::start().await;
    let mut src = search_source(&jet, &api, BSKY_APP_PASSWORD, "search_every = \"300ms\"");
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    api.bsky_fail_search(Fault::Hang);
    tokio::time::sleep(Duration::from_millis(400)).await;
    jet.send(5, jet_post(DID, "h1", 5, "acme while search hangs"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    // The poll loop gives the poll `timeout` (10 s); the search may use 80 % of it.
    let got = tokio::time::timeout(Duration::from_secs(10), src.poll(&mut state))
        .await
        .expect("the poll returns within its timeout")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(texts(&got), ["acme while search hangs"]);
    let warning = src.take_warning().unwrap();
    assert!(warning.contains("timed out"), "{warning}");
}

#[test]
fn handle_and_app_password_come_together_or_not_at_all() {
    let cfg = |keys: &str| {
        format!(
            "[[sources]]\nname = \"b\"\nkind = \"bluesky\"\nquery = \"acme\"\n{keys}\n\n[[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n"
        )
    };
    let env = |k: &str| (k == "BLUESKY_APP_PASSWORD").then(|| "abcd-efgh-ijkl-mnop".to_string());
    let problems = |text: &str| match mentiondesk::settings::parse(text, Path::new("t.toml"), &env)
    {
        Err(mentiondesk::config::ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems, got {:?}", other.map(|c| c.sources)),
    };

    let p = problems(&cfg("handle = \"brand.bsky.social\""));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "sources[0].app_password");
    assert_eq!(p[0].line, 5, "the line of handle");
    assert!(p[0].message.contains("App passwords"), "{}", p[0].message);

    let p = problems(&cfg("app_password = \"${BLUESKY_APP_PASSWORD}\""));
    assert_eq!(p[0].key, "sources[0].handle");
    assert_eq!(p[0].line, 5);
    assert!(!p[0].message.contains("abcd-efgh"), "{}", p[0].message);

    let p = problems(&cfg("search_url = \"https://pds.example/xrpc\""));
    assert_eq!(p[0].key, "sources[0].search_url");
    assert!(p[0].message.contains("no effect"), "{}", p[0].message);

    let p = problems(&cfg(
        "handle = \"brand.bsky.social\"\napp_password = \"${BLUESKY_MISSING}\"",
    ));
    assert_eq!(p[0].key, "sources[0].app_password");
    assert!(
        p[0].message.contains("BLUESKY_MISSING is not set"),
        "{}",
        p[0].message
    );

    let p = problems(&cfg(
        "handle = \"brand.bsky.social\"\napp_password = \"x\"\nsearch_url = \"wss://x\"",
    ));
    assert_eq!(p[0].key, "sources[0].search_url");

    // Both: valid, and the password never prints.
    let text = cfg(
        "handle = \"@brand.bsky.social\"\napp_password = \"${BLUESKY_APP_PASSWORD}\"\nsearch_every = \"10m\"",
    );
    let config = mentiondesk::settings::parse(&text, Path::new("t.toml"), &env).unwrap();
    let spec = &config.sources[0];
    let sources::SourceConfig::Bluesky(bluesky) = spec else {
        panic!("not a bluesky source: {spec:?}")
    };
    assert_eq!(bluesky.handle.as_deref(), Some("brand.bsky.social"));
    assert_eq!(bluesky.search_every, Some(Duration::from_secs(600)));
    assert!(!format!("{spec:?}").contains("abcd-efgh"), "{spec:?}");
    assert!(!format!("{config:?}").contains("abcd-efgh"));
}

fn daemon_config(
    slack: &FakeSlack,
    jet: &FakeJetstream,
    api: &FakeApi,
    keys: &[(&str, &str)],
) -> String {
    let mut config = ConfigBuilder::new()
        .slack(slack)
        .source("bsky", "bluesky")
        .key("query", "(acme OR \"acme corp\") AND NOT hiring")
        .key("url", jet.url())
        .key("every", "1s")
        .key("timeout", "10s")
        .key("allow_private", true)
        .key("handle", BSKY_HANDLE)
        .key("search_url", api.xrpc_url())
        // Never the real AppView: the lookups are off unless a test points them at the fake.
        .key("author_details", false)
        .key("profiles_url", api.xrpc_url());
    for (k, v) in keys {
        config = config.key(k, *v);
    }
    config
        .rule("acme", "acme AND NOT hiring", &["slack:#pr-alerts"])
        .toml()
}

async fn metric(daemon: &Daemon, name: &str) -> u64 {
    let text = reqwest::get(daemon.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

async fn wait_for_metric(daemon: &Daemon, name: &str, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric(daemon, name).await < at_least {
        assert!(
            Instant::now() < deadline,
            "{name} did not reach {at_least} in 15s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Through the whole daemon: a post the search back-fill found and then Jetstream streamed
/// (and one streamed first, then found by search) each make one alert and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_post_from_search_and_jetstream_makes_one_alert() {
    let slack = FakeSlack::start().await;
    let jet = FakeJetstream::start().await;
    let api = FakeApi::start().await;
    let first = ago(600);
    api.bsky_add(bsky_post(
        HANDLE_DID,
        "ann.bsky.social",
        "d1",
        &first,
        "Acme lost my order",
    ));
    let daemon = Daemon::start(&daemon_config(
        &slack,
        &jet,
        &api,
        &[("app_password", BSKY_APP_PASSWORD), ("search_every", "2s")],
    ))
    .await;

    // Found by the back-fill at start-up.
    let posts = slack.wait_for_posts(1, 15).await;
    assert!(posts[0].body.to_string().contains("Acme lost my order"));
    // The same post arrives over Jetstream: dropped as a duplicate, no new alert or note.
    wait_until(|| !jet.connections().is_empty()).await;
    jet.send(
        1,
        jet_post_at(HANDLE_DID, "d1", 1, "Acme lost my order", &first),
    );
    wait_for_metric(&daemon, "mentiondesk_duplicates_total", 1).await;

    // A post streamed first, then found by the next search.
    // (Another author: a second post by the same author would be threaded under the first.)
    let second = ago(30);
    jet.send(
        2,
        jet_post_at(DID, "d2", 2, "Acme refund still missing", &second),
    );
    slack.wait_for_posts(2, 10).await;
    let before = metric(&daemon, "mentiondesk_duplicates_total").await;
    let searches = api.bsky_searches().len();
    api.bsky_add(bsky_post(
        DID,
        "bob.bsky.social",
        "d2",
        &second,
        "Acme refund still missing",
    ));
    wait_for_metric(&daemon, "mentiondesk_duplicates_total", before + 1).await;
    assert!(api.bsky_searches().len() > searches);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let posts = slack.posts();
    assert_eq!(
        posts.len(),
        2,
        "one alert per post, no repeat notes: {posts:#?}"
    );
    assert_eq!(metric(&daemon, "mentiondesk_alerts_total").await, 2);
    let health = daemon.healthz().await;
    assert_eq!(health["status"], "ok", "{health}");
    daemon.stop().await;
}

/// Through the whole daemon: a wrong app password shows in `/healthz` with what to do, the
/// sign-in is not retried every poll (Bluesky allows 300 a day), and streamed posts still
/// become alerts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_app_password_shows_in_healthz_while_jetstream_still_delivers() {
    let slack = FakeSlack::start().await;
    let jet = FakeJetstream::start().await;
    let api = FakeApi::start().await;
    let daemon = Daemon::start(&daemon_config(
        &slack,
        &jet,
        &api,
        &[("app_password", "wrong-pass-9999")],
    ))
    .await;
    wait_until(|| !jet.connections().is_empty()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    jet.send(1, jet_post(DID, "w1", 1, "Acme support hung up on me"));
    slack.wait_for_posts(1, 10).await;

    let health = daemon.healthz().await;
    let bsky = &health["sources"][0];
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(bsky["healthy"], true, "{bsky}");
    assert_eq!(bsky["degraded"], true, "{bsky}");
    let error = bsky["last_error"].as_str().unwrap();
    assert!(
        error.contains("handle or app password not accepted"),
        "{error}"
    );
    assert!(
        error.contains("Settings → Privacy and security → App passwords"),
        "{error}"
    );
    assert!(error.contains(BSKY_HANDLE), "{error}");
    assert!(!error.contains("wrong-pass-9999"), "{error}");

    // Polls go on every second; the sign-in waits for search_every (5 min) before retrying.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        api.requests("/xrpc/com.atproto.server.createSession").len(),
        1
    );
    assert!(api.bsky_searches().is_empty());
    daemon.stop().await;
}
