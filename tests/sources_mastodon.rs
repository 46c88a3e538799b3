//! The `mastodon` source against a fake instance on 127.0.0.1: tag timelines read forward by
//! id (pagination, restarts), the SSE stream (auth, latency, drops and reconnects), failures.

mod common;

use common::fake_sources::{status, FakeApi, Misbehave};
use mentiondesk::sources::poll::{self, Health};
use mentiondesk::sources::{self, SourceError, SourceState};
use std::path::Path;
use std::time::Duration;

fn source(fake: &FakeApi, extra: &str) -> Box<dyn sources::Source> {
    source_on(&[fake], extra)
}

fn source_on(fakes: &[&FakeApi], extra: &str) -> Box<dyn sources::Source> {
    let instances: Vec<String> = fakes.iter().map(|f| format!("{:?}", f.url())).collect();
    let text = format!(
        r##"
[[sources]]
name = "masto"
kind = "mastodon"
instances = [{}]
tags = ["#acme"]
timeout = "2s"
allow_private = true
{extra}

[[rules]]
name = "acme"
query = "acme"
alert = ["slack:#pr"]
"##,
        instances.join(", ")
    );
    let env = |k: &str| (k == "MASTODON_TOKEN").then(|| "masto-secret-token".to_string());
    let config = mentiondesk::config::parse(&text, Path::new("t.toml"), &env).unwrap();
    sources::build(&config.sources[0]).unwrap()
}

fn add(fake: &FakeApi, ids: std::ops::Range<u64>) {
    let mut s = fake.state.lock().unwrap();
    let list = s.statuses.entry("acme".into()).or_default();
    for id in ids {
        list.push(status(id, &format!("acme post {id}"), "de", 12_000));
    }
}

#[tokio::test]
async fn the_first_poll_takes_the_newest_page_then_reads_forward_page_by_page() {
    let fake = FakeApi::start().await;
    add(&fake, 100..150);
    let mut src = source(&fake, "");
    let mut state = SourceState::default();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(got.len(), 40, "one page of history on the first poll");
    let m = got.iter().find(|m| m.text == "acme post 149").unwrap();
    assert_eq!(m.author_reach, Some(12_000));
    assert_eq!(m.lang.as_deref(), Some("de"));
    assert_eq!(m.author.as_deref(), Some("@ann@remote.example"));
    assert_eq!(m.item_id, "https://remote.example/users/ann/statuses/149");
    assert_eq!(m.url.as_deref(), Some("https://remote.example/@ann/149"));

    // A burst of 95 while we were away: three pages, none missed, none repeated.
    add(&fake, 150..245);
    let got = src.poll(&mut state).await.unwrap();
    let mut ids: Vec<u64> = got
        .iter()
        .map(|m| m.text.trim_start_matches("acme post ").parse().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, (150..245).collect::<Vec<_>>());
    let min_ids: Vec<_> = fake
        .requests("/api/v1/timelines/tag/acme")
        .iter()
        .filter_map(|r| r.query.get("min_id").cloned())
        .collect();
    assert_eq!(min_ids, ["149", "189", "229"], "a short page ends the read");
    assert!(src.poll(&mut state).await.unwrap().is_empty());

    // A restart with the saved state resumes after the last id.
    add(&fake, 245..247);
    let mut restored: SourceState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    let got = source(&fake, "").poll(&mut restored).await.unwrap();
    assert_eq!(got.len(), 2);
}

#[tokio::test]
async fn failures_report_and_recover() {
    let fake = FakeApi::start().await;
    add(&fake, 1..3);
    let mut src = source(&fake, "");
    let mut state = SourceState::default();
    fake.fail_next(Misbehave::Status(429, vec![("retry-after", "30".into())]));
    let err = src.poll(&mut state).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    fake.fail_next(Misbehave::Status(502, vec![]));
    assert!(src
        .poll(&mut state)
        .await
        .unwrap_err()
        .to_string()
        .contains("502"));
    fake.fail_next(Misbehave::Malformed);
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::Parse(_)), "{err}");
    assert!(err.to_string().contains("#acme"), "names the tag: {err}");
    fake.fail_next(Misbehave::Hang);
    let err = tokio::time::timeout(Duration::from_secs(10), src.poll(&mut state))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, SourceError::Timeout(_)), "{err}");
    assert_eq!(src.poll(&mut state).await.unwrap().len(), 2);
}

/// One instance of two failing is not a failed poll (the other's mentions are delivered), but
/// it must show in the health snapshot (`/healthz`, `errors_total` in metrics), not only in
/// the log; the next clean poll clears it.
#[tokio::test]
async fn a_failing_instance_among_answering_ones_shows_as_degraded_in_health() {
    let good = FakeApi::start().await;
    let bad = FakeApi::start().await;
    add(&good, 1..4);
    bad.fail_next(Misbehave::Status(502, vec![]));
    let src = source_on(&[&good, &bad], "");
    let health = Health::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let (trigger, stop) = mentiondesk::shutdown::channel();
    let task = tokio::spawn(poll::run(
        src,
        Duration::from_millis(300),
        Duration::from_secs(5),
        SourceState::default(),
        tx,
        health.clone(),
        stop,
    ));
    let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.mentions.len(),
        3,
        "the answering instance is delivered"
    );
    let status = health.get("masto").unwrap();
    assert!(status.healthy, "a partial poll is not a failed one");
    assert!(status.degraded, "{status:?}");
    let warning = status.last_error.clone().unwrap();
    assert!(
        warning.contains(&bad.url()),
        "names the instance: {warning}"
    );
    assert!(warning.contains("502"), "{warning}");
    assert!(!warning.contains(&good.url()), "{warning}");
    assert_eq!((status.errors_total, status.partial_total), (1, 1));
    assert_eq!(
        status.consecutive_errors, 0,
        "no backoff for a partial poll"
    );
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["degraded"], true);

    // The next poll finds both instances answering: no longer degraded.
    wait_until(|| health.get("masto").unwrap().polls_total >= 2).await;
    let status = health.get("masto").unwrap();
    assert!(status.healthy && !status.degraded, "{status:?}");
    assert_eq!(status.errors_total, 1);
    trigger.trigger();
    task.await.unwrap();
}

#[tokio::test]
async fn the_stream_delivers_at_once_with_the_token_and_reconnects_after_a_drop() {
    let fake = FakeApi::start().await;
    fake.state.lock().unwrap().mastodon_token = Some("masto-secret-token".into());
    let mut src = source(&fake, "stream = true\ntoken = \"${MASTODON_TOKEN}\"");
    let mut state = SourceState::default();
    assert!(src.poll(&mut state).await.unwrap().is_empty());
    wait_until(|| fake.sse_connections() == 1).await;
    let req = &fake.requests("/api/v1/streaming/hashtag")[0];
    assert_eq!(req.query["tag"], "acme");
    assert_eq!(req.headers["authorization"], "Bearer masto-secret-token");

    let event = format!(
        "event: update\ndata: {}\n\n",
        status(500, "streamed acme news", "en", 3)
    );
    let sent = std::time::Instant::now();
    assert!(fake.sse_send(&event));
    tokio::time::timeout(Duration::from_secs(2), src.ready())
        .await
        .expect("ready fires when a status arrives");
    let got = src.poll(&mut state).await.unwrap();
    assert!(sent.elapsed() < Duration::from_secs(1));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text, "streamed acme news");

    // The server drops the stream: the next poll says so, and the source reconnects alone.
    fake.sse_drop();
    tokio::time::timeout(Duration::from_secs(2), src.ready())
        .await
        .expect("a drop wakes the loop");
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(err.to_string().contains("stream"), "{err}");
    assert!(!err.to_string().contains("masto-secret-token"));
    wait_until(|| fake.sse_connections() == 2).await;
    assert!(fake.sse_send(&format!(
        "event: update\ndata: {}\n\n",
        status(501, "acme after reconnect", "en", 3)
    )));
    tokio::time::timeout(Duration::from_secs(2), src.ready())
        .await
        .unwrap();
    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(got[0].text, "acme after reconnect");
}

#[tokio::test]
async fn stream_without_token_is_a_config_error() {
    let text = "[[sources]]\nname = \"m\"\nkind = \"mastodon\"\ninstances = [\"https://mastodon.social\"]\ntags = [\"acme\"]\nstream = true\n\n[[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n";
    let err = mentiondesk::config::parse(text, Path::new("t.toml"), &|_| None).unwrap_err();
    assert!(err.to_string().contains("token"), "{err}");
}

async fn wait_until(f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met in 5s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
