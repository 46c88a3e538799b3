//! The `hackernews` source against a fake Algolia `search_by_date` on 127.0.0.1: windows under
//! the 1,000-hit cap, pagination, restarts, and every failure it must survive.

mod common;

use common::fake_sources::{hn_hit, FakeApi, Misbehave};
use mentiondesk::sources::{self, SourceError, SourceState};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

fn source(fake: &FakeApi, timeout: &str) -> Box<dyn sources::Source> {
    let text = format!(
        r#"
[[sources]]
name = "hn"
kind = "hackernews"
query = '(acme OR "acme corp") AND NOT hiring'
url = "{}/api/v1"
timeout = "{timeout}"
allow_private = true

[[rules]]
name = "acme"
query = "acme"
alert = ["slack:#pr"]
"#,
        fake.url()
    );
    let config = mentiondesk::config::parse(&text, Path::new("t.toml"), &|_| None).unwrap();
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

    fake.fail_next(Misbehave::Status(429, vec![("retry-after", "120".into())]));
    let mut state = SourceState::default();
    let err = src.poll(&mut state).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)), "{err}");

    fake.fail_next(Misbehave::Status(503, vec![]));
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");

    fake.fail_next(Misbehave::Malformed);
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::Parse(_)), "{err}");
    assert!(err.to_string().contains("HN search API"), "{err}");

    fake.fail_next(Misbehave::Truncated);
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(
        matches!(err, SourceError::Network(_) | SourceError::Parse(_)),
        "{err}"
    );

    fake.fail_next(Misbehave::Hang);
    let err = src.poll(&mut state).await.unwrap_err();
    assert!(matches!(err, SourceError::Timeout(_)), "{err}");

    let got = src.poll(&mut state).await.unwrap();
    assert_eq!(got.len(), 1, "recovers by itself");
}

#[tokio::test]
async fn private_addresses_are_refused_without_allow_private() {
    let fake = FakeApi::start().await;
    let text = format!(
        "[[sources]]\nname = \"hn\"\nkind = \"hackernews\"\nquery = \"acme\"\nurl = \"{}/api/v1\"\n\n[[rules]]\nname = \"a\"\nquery = \"acme\"\nalert = [\"slack:#x\"]\n",
        fake.url()
    );
    let config = mentiondesk::config::parse(&text, Path::new("t.toml"), &|_| None).unwrap();
    let mut src = sources::build(&config.sources[0]).unwrap();
    let err = src.poll(&mut SourceState::default()).await.unwrap_err();
    assert!(err.to_string().contains("allow_private"), "{err}");
    assert!(fake.requests("/").is_empty());
}
