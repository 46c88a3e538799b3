//! `scan --once` with all four API sources configured against their fakes: each source is
//! polled once and only what the rules match is reported.

use crate::common;

use common::fake_sources::{
    hn_hit, jet_post, reddit_comment, reddit_post, status, FakeApi, FakeJetstream,
};
use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_once_polls_hackernews_reddit_mastodon_and_bluesky() {
    let api = FakeApi::start().await;
    let jet = FakeJetstream::start().await;
    let t = chrono::Utc::now().timestamp();
    {
        let mut s = api.state.lock().unwrap();
        s.hn_hits = vec![
            hn_hit(1, t - 60, Some("Acme outage"), "down again"),
            hn_hit(2, t - 50, Some("Acme is hiring"), ""),
        ];
        s.reddit_posts = vec![reddit_post(
            "p1",
            t as f64 - 30.0,
            "Acme support is terrible",
            "",
        )];
        s.reddit_comments = vec![reddit_comment("c1", t as f64 - 20.0, "no mention here")];
        s.statuses
            .insert("acme".into(), vec![status(7, "acme love it", "en", 5)]);
    }
    let text = format!(
        r#"
[[sources]]
name = "hn"
kind = "hackernews"
query = "acme"
url = "{base}/api/v1"
users_url = "{base}/v0"
allow_private = true

[[sources]]
name = "rd"
kind = "reddit"
query = "acme"
subreddits = ["routers"]
client_id = "client-id"
client_secret = "client-secret-xyz"
url = "{base}"
token_url = "{base}/api/v1/access_token"
allow_private = true

[[sources]]
name = "masto"
kind = "mastodon"
instances = ["{base}"]
tags = ["acme"]
allow_private = true

[[sources]]
name = "bsky"
kind = "bluesky"
query = "acme"
url = "{jet}"
profiles_url = "{base}/xrpc"
timeout = "5s"
allow_private = true

[[rules]]
name = "acme"
query = "acme AND NOT hiring"
alert = ["slack:#pr-alerts"]
"#,
        base = api.url(),
        jet = jet.url()
    );
    let config = mentiondesk::settings::parse(&text, Path::new("t.toml"), &|_| None).unwrap();
    // Jetstream events that arrive while the first poll listens.
    let j = jet.clone();
    tokio::spawn(async move {
        while j.connections().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        j.send(1, jet_post("did:plc:x", "r1", 1, "acme on bluesky"));
        j.send(2, jet_post("did:plc:x", "r2", 2, "other things"));
    });
    let results = mentiondesk::app::scan_once(&config).await.unwrap();
    let hits = |name: &str| -> Vec<String> {
        let (_, r) = results.iter().find(|(n, _)| n == name).unwrap();
        r.as_ref()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .iter()
            .map(|h| h.mention.item_id.clone())
            .collect()
    };
    assert_eq!(
        hits("hn"),
        ["1"],
        "the hiring story is excluded by the rule"
    );
    assert_eq!(hits("rd"), ["t3_p1"]);
    assert_eq!(
        hits("masto"),
        ["https://remote.example/users/ann/statuses/7"]
    );
    assert_eq!(hits("bsky"), ["at://did:plc:x/app.bsky.feed.post/r1"]);
}
