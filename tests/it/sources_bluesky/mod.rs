//! The `bluesky` source against a fake Jetstream websocket on 127.0.0.1: prefiltering,
//! cursor persistence and restart replay, drops and reconnects, failover, and the time from
//! a streamed matching post to the Slack request through the whole daemon. Then the search
//! back-fill against a fake Bluesky PDS (createSession, refreshSession, searchPosts) on
//! 127.0.0.1: back-fill after downtime, paging, restarts, token renewal, failures that must
//! not stop the stream, and one alert for a post that arrives both ways.

use crate::common;

use common::fake_sources::{
    bsky_post, bsky_post_view, jet_account, jet_commit, jet_delete, jet_identity, jet_post,
    jet_post_at, FakeApi, FakeJetstream, BSKY_APP_PASSWORD, BSKY_HANDLE,
};
use common::faults::Fault;
use common::*;
use mentiondesk::model::Mention;
use mentiondesk::sources::{self, SourceError, SourceState};
use std::path::Path;
use std::time::{Duration, Instant};

mod authors;
mod payloads;
mod search;

const DID: &str = "did:plc:eygmaihciaxprqvxpfvl6flk";

/// Profile lookups are off unless `extra` configures them (see `authors.rs`): these tests
/// have no AppView, and no test sends anything off the machine.
fn source_config(url: &str, extra: &str) -> String {
    let details = if extra.contains("author_details") || extra.contains("profiles_url") {
        ""
    } else {
        "author_details = false"
    };
    let timeout = if extra.contains("timeout") {
        ""
    } else {
        "timeout = \"3s\""
    };
    format!(
        r#"
[[sources]]
name = "bsky"
kind = "bluesky"
query = '(acme OR "acme corp") AND NOT hiring'
url = "{url}"
every = "1s"
{timeout}
allow_private = true
{details}
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

/// When its replica loses the source's lease to another (issue 17) the poll loop calls
/// `disconnect`: the stream is closed. Taken back, the next poll connects again from the
/// cursor it is given (the one the other replica stored), so what was said meanwhile arrives.
#[tokio::test]
async fn a_disconnected_stream_closes_and_reconnects_from_the_cursor_it_is_given() {
    let jet = FakeJetstream::start().await;
    let mut src = source(&jet.url(), "");
    let mut state = SourceState::default();
    src.poll(&mut state).await.unwrap();
    assert_eq!(jet.open_connections(), 1);

    src.disconnect();
    wait_until(|| jet.open_connections() == 0).await;
    let base = 1_725_911_162_000_000i64;
    jet.store_only(
        base + 1_000_000,
        jet_post(
            DID,
            "d1",
            base + 1_000_000,
            "acme while another replica held it",
        ),
    );
    let mut stored = SourceState::default();
    stored.cursor = Some(base.to_string());
    let got = src.poll(&mut stored).await.unwrap();
    let texts: Vec<_> = got.iter().map(|m| m.text.as_str()).collect();
    assert!(
        texts.contains(&"acme while another replica held it"),
        "{texts:?}"
    );
    let connections = jet.connections();
    assert_eq!(connections.len(), 2, "{connections:?}");
    assert!(
        connections[1].contains(&format!("cursor={}", base - 5_000_000)),
        "{connections:?}"
    );
    assert_eq!(jet.open_connections(), 1);
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
        "[[sources]]\nname = \"b\"\nkind = \"bluesky\"\nquery = \"acme\"\nurl = \"{}\"\nauthor_details = false\n\n[[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n",
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
