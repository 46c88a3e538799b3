//! The `bluesky` source against a fake Jetstream websocket on 127.0.0.1: prefiltering,
//! cursor persistence and restart replay, drops and reconnects, failover, and the time from
//! a streamed matching post to the Slack request through the whole daemon. Then the search
//! back-fill against a fake Bluesky PDS (createSession, refreshSession, searchPosts) on
//! 127.0.0.1: back-fill after downtime, paging, restarts, token renewal, failures that must
//! not stop the stream, and one alert for a post that arrives both ways.

mod common;

use common::fake_sources::{
    bsky_post, bsky_post_view, jet_account, jet_commit, jet_delete, jet_identity, jet_post,
    jet_post_at, FakeApi, FakeJetstream, Misbehave, BSKY_APP_PASSWORD, BSKY_HANDLE,
};
use common::*;
use mentiondesk::model::Mention;
use mentiondesk::sources::{self, SourceError, SourceState};
use std::path::Path;
use std::time::{Duration, Instant};

const DID: &str = "did:plc:eygmaihciaxprqvxpfvl6flk";

fn source_config(url: &str, extra: &str) -> String {
    format!(
        r#"
[[sources]]
name = "bsky"
kind = "bluesky"
query = '(acme OR "acme corp") AND NOT hiring'
url = "{url}"
every = "1s"
timeout = "3s"
allow_private = true
{extra}
"#
    )
}

fn source(url: &str, extra: &str) -> Box<dyn sources::Source> {
    let text = format!(
        "{}\n[[rules]]\nname = \"acme\"\nquery = \"acme\"\nalert = [\"slack:#pr-alerts\"]\n",
        source_config(url, extra)
    );
    let config = mentiondesk::settings::parse(&text, Path::new("t.toml"), &|_| None).unwrap();
    sources::build(&config.sources[0]).unwrap()
}

async fn next_batch(src: &mut Box<dyn sources::Source>, state: &mut SourceState) -> Vec<String> {
    tokio::time::timeout(Duration::from_secs(5), src.ready())
        .await
        .expect("something arrives");
    src.poll(state)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect()
}

async fn wait_until(f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "condition not met in 10s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn matching_posts_are_kept_and_the_rest_of_the_firehose_is_dropped() {
    let jet = FakeJetstream::start().await;
    let mut src = source(&jet.url(), "");
    let mut state = SourceState::default();
    assert!(src.poll(&mut state).await.unwrap().is_empty());
    let conn = &jet.connections()[0];
    assert!(
        conn.contains("wantedCollections=app.bsky.feed.post"),
        "{conn}"
    );
    assert!(
        !conn.contains("cursor="),
        "a first start is live only: {conn}"
    );

    jet.send(100, jet_post(DID, "a1", 100, "lovely weather"));
    jet.send(101, jet_post(DID, "a2", 101, "My Acme router died"));
    jet.send(102, jet_post(DID, "a3", 102, "nothing here"));
    let got = next_batch(&mut src, &mut state).await;
    assert_eq!(got, ["My Acme router died"]);
    assert!(
        state
            .cursor
            .as_deref()
            .is_some_and(|c| c == "101" || c == "102"),
        "cursor persisted with the kept post: {:?}",
        state.cursor
    );
}

#[tokio::test]
async fn a_restart_replays_from_the_saved_cursor_so_nothing_is_missed() {
    let jet = FakeJetstream::start().await;
    let base = 1_725_911_162_000_000i64;
    let mut state = SourceState::default();
    {
        let mut src = source(&jet.url(), "");
        src.poll(&mut state).await.unwrap();
        jet.send(base, jet_post(DID, "b1", base, "acme one"));
        assert_eq!(next_batch(&mut src, &mut state).await, ["acme one"]);
    } // dropped: the "process" stops and its connection task with it
    assert_eq!(state.cursor.as_deref(), Some(base.to_string().as_str()));
    // Posted while we were down.
    jet.store_only(
        base + 1_000_000,
        jet_post(DID, "b2", base + 1_000_000, "acme two"),
    );

    let mut restored: SourceState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    let mut src = source(&jet.url(), "");
    let first = src.poll(&mut restored).await.unwrap();
    let texts: Vec<_> = first.iter().map(|m| m.text.as_str()).collect();
    assert!(
        texts.contains(&"acme two"),
        "the gap is replayed: {texts:?}"
    );
    let conn = jet.connections().last().unwrap().clone();
    assert!(
        conn.contains(&format!("cursor={}", base - 5_000_000)),
        "resumes a few seconds before the cursor: {conn}"
    );
}

#[tokio::test]
async fn a_dropped_connection_is_reported_and_resumed_without_a_gap() {
    let jet = FakeJetstream::start().await;
    let mut src = source(&jet.url(), "");
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    jet.send(10_000_000, jet_post(DID, "c1", 10_000_000, "acme before"));
    assert_eq!(next_batch(&mut src, &mut state).await, ["acme before"]);

    jet.drop_all();
    // Posted while disconnected; the reconnect replays it from the cursor.
    jet.store_only(11_000_000, jet_post(DID, "c2", 11_000_000, "acme during"));
    tokio::time::timeout(Duration::from_secs(5), src.ready())
        .await
        .unwrap();
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::Network(_)), "{err}");
    assert!(err.to_string().contains("jetstream"), "{err}");
    wait_until(|| jet.connections().len() == 2).await;
    assert!(jet.connections()[1].contains("cursor=5000000"));
    let got = next_batch(&mut src, &mut state).await;
    assert!(got.contains(&"acme during".to_string()), "{got:?}");
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_over_to_the_second() {
    let jet = FakeJetstream::start().await;
    let dead = format!("ws://127.0.0.1:{}/subscribe", free_port());
    let mut src = source(&dead, &format!("failover_url = \"{}\"", jet.url()));
    let mut state = SourceState::default();
    let _ = src.poll(&mut state).await;
    wait_until(|| !jet.connections().is_empty()).await;
    jet.send(1, jet_post(DID, "d1", 1, "acme via failover"));
    let mut got = Vec::new();
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(5), src.ready())
            .await
            .unwrap();
        if let Ok(m) = src.poll(&mut state).await {
            got.extend(m.into_iter().map(|m| m.text));
        }
        if !got.is_empty() {
            break;
        }
    }
    assert_eq!(got, ["acme via failover"]);
}

#[tokio::test]
async fn private_addresses_are_refused_without_allow_private() {
    let jet = FakeJetstream::start().await;
    let text = format!(
        "[[sources]]\nname = \"b\"\nkind = \"bluesky\"\nquery = \"acme\"\nurl = \"{}\"\n\n[[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n",
        jet.url()
    );
    let config = mentiondesk::settings::parse(&text, Path::new("t.toml"), &|_| None).unwrap();
    let mut src = sources::build(&config.sources[0]).unwrap();
    let err = src.poll(&mut SourceState::default()).await.unwrap_err();
    assert!(err.to_string().contains("allow_private"), "{err}");
    assert!(jet.connections().is_empty());
}

#[test]
fn a_query_with_only_negations_is_a_config_error() {
    let text = "[[sources]]\nname = \"b\"\nkind = \"bluesky\"\nquery = \"NOT spam\"\n\n[[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n";
    let err = mentiondesk::settings::parse(text, Path::new("t.toml"), &|_| None).unwrap_err();
    assert!(err.to_string().contains("sources[0].query"), "{err}");
}

/// The issue's latency goal: a streamed matching post becomes a chat request within 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_matching_post_reaches_slack_within_two_seconds() {
    let jet = FakeJetstream::start().await;
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = format!(
        r#"
[store]
path = "{store}"
[server]
listen = "127.0.0.1:{port}"
[slack]
bot_token = "{BOT_TOKEN}"
signing_secret = "test-signing-secret"
api_url = "{api}"
{source}
[[rules]]
name = "acme"
query = 'acme AND NOT hiring'
alert = ["slack:#pr-alerts"]
"#,
        store = dir.path().join("store").display(),
        api = slack.api_url(),
        source = source_config(&jet.url(), "").replace("every = \"1s\"", "every = \"30s\""),
    );
    let cfg = mentiondesk::settings::parse(&text, Path::new("t.toml"), &|_| None).unwrap();
    let (trigger, shutdown) = mentiondesk::shutdown::channel();
    let task = tokio::spawn(mentiondesk::app::run_until(cfg, shutdown));
    wait_until(|| !jet.connections().is_empty()).await;
    // Let the first poll's listening window pass so the loop is in its 30 s wait.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut latencies = Vec::new();
    for i in 0..5u64 {
        for j in 0..200 {
            let t = (i * 1000 + j) as i64;
            jet.send(t, jet_post(DID, &format!("n{i}-{j}"), t, "just noise"));
        }
        let t = (i * 1000 + 999) as i64;
        let sent = Instant::now();
        jet.send(
            t,
            jet_post(DID, &format!("m{i}"), t, &format!("Acme broke again #{i}")),
        );
        slack.wait_for_posts(i as usize + 1, 10).await;
        latencies.push(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let worst = latencies.iter().max().unwrap();
    eprintln!("jetstream → slack latencies: {latencies:?}");
    assert!(
        *worst < Duration::from_secs(2),
        "a streamed post took {worst:?} to reach Slack (every = 30s, so the loop was woken)"
    );
    assert_eq!(slack.posts().len(), 5);
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

// ---------- search back-fill ----------

const HANDLE_DID: &str = "did:plc:annannannannannannann01";

/// A bluesky source with the search back-fill on `api`, streaming from `jet`.
fn search_source(
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
{extra}

[[rules]]
name = "acme"
query = "acme"
alert = ["slack:#pr-alerts"]
"#,
        jet = jet.url(),
        xrpc = api.xrpc_url(),
    );
    let password = password.to_string();
    let env = move |k: &str| (k == "BLUESKY_APP_PASSWORD").then(|| password.clone());
    let config = mentiondesk::settings::parse(&text, Path::new("t.toml"), &env).unwrap();
    sources::build(&config.sources[0]).unwrap()
}

/// RFC 3339 time `secs` seconds ago, with milliseconds, as Bluesky writes `createdAt`.
fn ago(secs: i64) -> String {
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
    api.bsky_fail_search(Misbehave::Status(
        429,
        vec![
            ("ratelimit-limit", "3000".into()),
            ("ratelimit-remaining", "0".into()),
            ("ratelimit-reset", reset.to_string()),
            ("ratelimit-policy", "3000;w=300".into()),
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
    let cases: [(Misbehave, &[&str], u64); 3] = [
        (
            Misbehave::Malformed,
            &["malformed JSON from the Bluesky searchPosts API"],
            400,
        ),
        // A cut connection shows as a body error, JSON that ends early, or (when it is cut
        // before the headers are out) a connection error.
        (
            Misbehave::Truncated,
            &["reading the body failed", "ends early", "connection closed"],
            700,
        ),
        (Misbehave::Status(502, vec![]), &["HTTP 502"], 1300),
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
    api.bsky_fail_search(Misbehave::Hang);
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

fn daemon_config(slack: &FakeSlack, jet: &FakeJetstream, api: &FakeApi, keys: &str) -> String {
    format!(
        r#"
[store]
path = "{{store}}"
[server]
listen = "127.0.0.1:{{port}}"
[slack]
bot_token = "{BOT_TOKEN}"
signing_secret = "{SIGNING_SECRET}"
api_url = "{slack}"

[[sources]]
name = "bsky"
kind = "bluesky"
query = '(acme OR "acme corp") AND NOT hiring'
url = "{jet}"
every = "1s"
timeout = "10s"
allow_private = true
handle = "{BSKY_HANDLE}"
search_url = "{xrpc}"
{keys}

[[rules]]
name = "acme"
query = 'acme AND NOT hiring'
alert = ["slack:#pr-alerts"]
"#,
        slack = slack.api_url(),
        jet = jet.url(),
        xrpc = api.xrpc_url(),
    )
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
        &format!("app_password = \"{BSKY_APP_PASSWORD}\"\nsearch_every = \"2s\""),
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
        "app_password = \"wrong-pass-9999\"",
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

// ---------- real payload shapes: facets, embeds, replies, quotes, other events ----------

/// The matching text of a mention, as the intake hands it to the rules.
fn rule_hits(rules: &[(&str, &str)], m: &Mention) -> Vec<String> {
    let set = mentiondesk::rules::RuleSet::compile(rules.iter().copied()).unwrap();
    let doc = mentiondesk::rules::Document {
        text: &m.text,
        title: m.title.as_deref(),
        author: m.author.as_deref(),
        url: m.url.as_deref(),
        source: &m.source,
        source_kind: &m.source_kind,
        lang: m.lang.as_deref(),
    };
    set.matches(&doc).into_iter().map(|r| r.name).collect()
}

fn source_with_query(url: &str, query: &str) -> Box<dyn sources::Source> {
    let text = format!(
        "[[sources]]\nname = \"bsky\"\nkind = \"bluesky\"\nquery = '{query}'\nurl = \"{url}\"\n\
         every = \"1s\"\ntimeout = \"3s\"\nallow_private = true\n\n\
         [[rules]]\nname = \"r\"\nquery = \"acme\"\nalert = [\"slack:#pr-alerts\"]\n"
    );
    let config = mentiondesk::settings::parse(&text, Path::new("t.toml"), &|_| None).unwrap();
    sources::build(&config.sources[0]).unwrap()
}

/// A post as the Bluesky app writes it when the text holds a long link: the display text is
/// shortened (`www.youtube.com/watch?v=V5lD...`) and an `app.bsky.richtext.facet#link`
/// feature carries the full URI at the display text's UTF-8 byte range (atproto lexicon
/// `app.bsky.richtext.facet`: `index.byteStart`/`byteEnd`, `features[].uri`). The emoji in
/// front makes byte offsets differ from character offsets. The mention facet follows the
/// same lexicon (`#mention {did}`); the tag facet `#tag {tag}` (tag without `#`).
fn shortened_link_record() -> serde_json::Value {
    let text = "🎬🔥 New video from @acme.bsky.social www.youtube.com/watch?v=V5lD... #Review";
    let link = "www.youtube.com/watch?v=V5lD...";
    let handle = "@acme.bsky.social";
    let tag = "#Review";
    let at = |s: &str| text.find(s).unwrap();
    serde_json::json!({
        "$type": "app.bsky.feed.post",
        "createdAt": "2024-09-09T19:46:02.102Z",
        "langs": ["en"],
        "text": text,
        "facets": [
            {"$type": "app.bsky.richtext.facet",
             "index": {"byteStart": at(handle), "byteEnd": at(handle) + handle.len()},
             "features": [{"$type": "app.bsky.richtext.facet#mention",
                 "did": "did:plc:acmeacmeacmeacmeacme001"}]},
            {"$type": "app.bsky.richtext.facet",
             "index": {"byteStart": at(link), "byteEnd": at(link) + link.len()},
             "features": [{"$type": "app.bsky.richtext.facet#link",
                 "uri": "https://www.youtube.com/watch?v=V5lDxKq8mYw&t=42s"}]},
            {"$type": "app.bsky.richtext.facet",
             "index": {"byteStart": at(tag), "byteEnd": at(tag) + tag.len()},
             "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "Review"}]},
        ],
    })
}

/// Issue 11, defect 5: a rule on the full URL (or the video id) of a shortened link never
/// matched, and the alert showed the shortened `...` link. Checked to fail before the fix (the
/// post was not even kept: the keyword is only in the facet's URI).
#[tokio::test]
async fn a_shortened_link_is_matched_and_shown_by_its_full_uri() {
    let jet = FakeJetstream::start().await;
    let mut src = source_with_query(&jet.url(), "V5lDxKq8mYw");
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    jet.send(
        10,
        jet_commit(DID, "3l3qo2vutsw2b", 10, shortened_link_record()),
    );
    tokio::time::timeout(Duration::from_secs(5), src.ready())
        .await
        .expect("the post is kept");
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(
        m.text,
        "🎬🔥 New video from @acme.bsky.social https://www.youtube.com/watch?v=V5lDxKq8mYw&t=42s #Review"
    );
    assert_eq!(
        rule_hits(
            &[
                ("url", "youtube.com/watch?v=V5lDxKq8mYw"),
                ("other-video", "youtube.com/watch?v=V5lDxKq8mYx"),
                ("id", "V5lDxKq8mYw"),
                ("handle", "@acme.bsky.social"),
                ("tag", "#review"),
                ("site", "site:bsky.app"),
            ],
            m
        ),
        ["url", "id", "handle", "tag", "site"]
    );
}

/// Embeds (atproto lexicons `app.bsky.embed.external`, `.record`, `.recordWithMedia`,
/// `.images`, `.video`) and replies (`app.bsky.feed.post#replyRef`): what they carry is part
/// of the text, so a brand named only in a link card or an image's alt text is found. A
/// quote carries only the quoted post's URI (its text is not in the event), shown as a link.
#[tokio::test]
async fn embeds_quotes_images_and_replies_are_matched_and_shown() {
    let jet = FakeJetstream::start().await;
    let mut src = source(&jet.url(), "");
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    let post = |text: &str, extra: serde_json::Value| {
        let mut r = serde_json::json!({"$type": "app.bsky.feed.post",
            "createdAt": "2024-09-09T19:46:02.102Z", "langs": ["en"], "text": text});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        r
    };
    let quoted = "at://did:plc:quotedquotedquoted000001/app.bsky.feed.post/3kq2";
    let events = [
        // A link card: the brand only in the card's title.
        post(
            "read this",
            serde_json::json!({"embed": {"$type": "app.bsky.embed.external",
            "external": {"uri": "https://news.example/acme-recall",
                "title": "Acme recalls routers", "description": "Overheating units",
                "thumb": {"$type": "blob", "ref": {"$link": "bafkreih"}, "mimeType": "image/jpeg", "size": 1000}}}}),
        ),
        // A quote of another post that names the brand in the quoting text.
        post(
            "acme did it again",
            serde_json::json!({"embed": {"$type": "app.bsky.embed.record",
            "record": {"uri": quoted, "cid": "bafyreiq"}}}),
        ),
        // A quote with images: the brand only in the alt text.
        post(
            "look",
            serde_json::json!({"embed": {"$type": "app.bsky.embed.recordWithMedia",
            "record": {"$type": "app.bsky.embed.record", "record": {"uri": quoted, "cid": "bafyreiq"}},
            "media": {"$type": "app.bsky.embed.images", "images": [
                {"alt": "Acme router smoking", "image": {"$type": "blob", "ref": {"$link": "bafkreii"},
                    "mimeType": "image/jpeg", "size": 2000},
                 "aspectRatio": {"width": 4, "height": 3}}]}}}),
        ),
        // A reply.
        post(
            "acme never answered me either",
            serde_json::json!({"reply": {
            "root": {"uri": "at://did:plc:rootrootrootrootroot0001/app.bsky.feed.post/3kr", "cid": "bafyreir"},
            "parent": {"uri": "at://did:plc:parentparentparentpa0001/app.bsky.feed.post/3kp", "cid": "bafyreip"}}}),
        ),
    ];
    for (i, record) in events.into_iter().enumerate() {
        let t = 100 + i as i64;
        jet.send(t, jet_commit(DID, &format!("e{i}"), t, record));
    }
    let mut got = Vec::new();
    while got.len() < 4 {
        tokio::time::timeout(Duration::from_secs(5), src.ready())
            .await
            .expect("all four arrive");
        got.extend(src.poll(&mut state).await.unwrap());
    }
    let texts: Vec<&str> = got.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "read this\n\nLink: Acme recalls routers — Overheating units https://news.example/acme-recall",
            "acme did it again\n\nQuoting https://bsky.app/profile/did:plc:quotedquotedquoted000001/post/3kq2",
            "look\n\nQuoting https://bsky.app/profile/did:plc:quotedquotedquoted000001/post/3kq2\nImage: Acme router smoking",
            "acme never answered me either\n\nIn reply to https://bsky.app/profile/did:plc:parentparentparentpa0001/post/3kp",
        ]
    );
    for m in &got {
        assert_eq!(rule_hits(&[("acme", "acme")], m), ["acme"], "{}", m.text);
    }
}

/// Identity and account events and deletes (Jetstream README examples) that happen to
/// contain a keyword are skipped without an error, and the stream goes on.
#[tokio::test]
async fn identity_account_and_delete_events_are_skipped_without_errors() {
    let jet = FakeJetstream::start().await;
    let mut src = source(&jet.url(), "");
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    jet.send(200, jet_identity("did:plc:acme", "acme.bsky.social", 200));
    jet.send(201, jet_account("did:plc:acme", 201));
    jet.send(202, jet_delete("did:plc:acme", "acme", 202));
    jet.send(203, jet_post(DID, "k1", 203, "acme after the noise"));
    assert_eq!(
        next_batch(&mut src, &mut state).await,
        ["acme after the noise"]
    );
    assert_eq!(state.cursor.as_deref(), Some("203"));
    assert_eq!(src.take_warning(), None);
    // After a post, skipped events still move the resume point: a restart does not replay
    // them.
    jet.send(204, jet_identity("did:plc:acme", "acme2.bsky.social", 204));
    jet.send(205, jet_post(DID, "k2", 205, "acme again"));
    assert_eq!(next_batch(&mut src, &mut state).await, ["acme again"]);
    assert_eq!(state.cursor.as_deref(), Some("205"));
    assert_eq!(jet.connections().len(), 1, "no reconnect: nothing failed");
}

/// The search back-fill reads the same record (with facets and embeds) inside a `postView`
/// (`app.bsky.feed.defs#postView`): it must make the very same mention as Jetstream.
#[tokio::test]
async fn search_resolves_facets_and_embeds_exactly_as_jetstream_does() {
    let jet = FakeJetstream::start().await;
    let api = FakeApi::start().await;
    let created = ago(600);
    let mut record = shortened_link_record();
    record["createdAt"] = serde_json::json!(created);
    record["embed"] = serde_json::json!({"$type": "app.bsky.embed.external",
        "external": {"uri": "https://www.youtube.com/watch?v=V5lDxKq8mYw",
            "title": "Acme X200 review", "description": "Is it worth it?"}});
    api.bsky_add(bsky_post_view(
        HANDLE_DID,
        "ann.bsky.social",
        "3l3qo2vutsw2c",
        &created,
        record.clone(),
    ));
    let mut searching = search_source(&jet, &api, BSKY_APP_PASSWORD, "");
    let found = searching.poll(&mut SourceState::default()).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");

    let mut streaming = source(&jet.url(), "");
    let mut state = SourceState::default();
    streaming.poll(&mut state).await.unwrap();
    jet.send(1, jet_commit(HANDLE_DID, "3l3qo2vutsw2c", 1, record));
    tokio::time::timeout(Duration::from_secs(5), streaming.ready())
        .await
        .unwrap();
    let streamed = streaming.poll(&mut state).await.unwrap();
    assert_eq!(found, streamed, "search and Jetstream disagree");
    assert!(
        found[0]
            .text
            .contains("https://www.youtube.com/watch?v=V5lDxKq8mYw&t=42s"),
        "{}",
        found[0].text
    );
    assert!(found[0].text.ends_with(
        "Link: Acme X200 review — Is it worth it? https://www.youtube.com/watch?v=V5lDxKq8mYw"
    ));
}
