//! End to end in one process: a served feed → rules → sled → a Block Kit alert on a fake
//! Slack, driven through the real slack-morphism client over 127.0.0.1.

use crate::common;

use common::faults::Fault;
use common::*;
use serde_json::Value;
use std::time::Duration;

/// Rss sources (name, url), polled every second with a 2 s timeout.
fn config_text(slack: &FakeSlack, sources: &[(&str, &str)]) -> String {
    let mut config = ConfigBuilder::new().slack(slack);
    for (name, url) in sources {
        config = config.rss(name, url).key("timeout", "2s");
    }
    config
        .table("[[rules]]")
        .key("name", "acme")
        .key("query", "(acme OR \"acme corp\") AND NOT hiring")
        .key("alert", ["slack:#pr-alerts"])
        .key("priority", "normal")
        .toml()
}

async fn start(slack: &FakeSlack, sources: &[(&str, &str)]) -> Daemon {
    Daemon::start(&config_text(slack, sources)).await
}

fn item(guid: &str, title: &str, desc: &str) -> (String, String, String) {
    (guid.into(), title.into(), desc.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matching_item_becomes_exactly_one_block_kit_post() {
    let slack = FakeSlack::start().await;
    let feed = rss(&[
        item(
            "g1",
            "Acme outage",
            "The Acme app has been down for two hours, terrible service",
        ),
        item("g2", "Gardening tips", "Nothing about any brand here"),
        item("g3", "Acme is hiring", "Acme hiring engineers"),
    ]);
    let feeds = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(feed))]).await;
    let daemon = start(&slack, &[("news", &feeds.url("/feed.xml"))]).await;

    let posts = slack.wait_for_posts(1, 15).await;
    // Let a few more polls happen: the same items must not be posted again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let posts_after = slack.posts();
    assert_eq!(
        posts_after.len(),
        1,
        "only the matching, non-excluded item: {posts_after:#?}"
    );
    assert!(
        *feeds.hits.lock().unwrap().get("/feed.xml").unwrap() >= 2,
        "feed was re-polled"
    );

    let post = &posts[0];
    assert_eq!(post.channel, "C0PRALERTS");
    let body = post.body.to_string();
    assert!(body.contains("Acme outage"), "title shown");
    assert!(body.contains("https://example.com/posts/g1"), "link shown");
    assert!(body.contains("rule *acme*"), "rule shown");
    assert!(body.contains("#1"), "alert id shown");
    assert!(body.contains("Open · unclaimed"), "state line shown");
    assert!(body.contains("negative"), "sentiment shown: {body}");
    let buttons: Vec<(String, String)> = post.body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap().clone())
        .map(|e| {
            (
                e["text"]["text"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        buttons,
        vec![
            ("Claim".to_string(), "1".to_string()),
            ("Resolve".to_string(), "1".to_string()),
            ("Snooze".to_string(), "1".to_string()),
            ("Not relevant".to_string(), "1".to_string()),
        ]
    );
    assert_eq!(alert_id_of(post), "1");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_post_is_waited_out_and_lands_once() {
    let slack = FakeSlack::start().await;
    slack
        .faults
        .next("chat.postMessage", 2, Fault::rate_limited(1.0));
    let feed = rss(&[item("r1", "Acme", "acme broke my phone")]);
    let feeds = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(feed))]).await;
    let started = std::time::Instant::now();
    let daemon = start(&slack, &[("news", &feeds.url("/feed.xml"))]).await;
    slack.wait_for_posts(1, 20).await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "two Retry-After: 1 waits were honoured"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(slack.posts().len(), 1);
    assert_eq!(slack.faults.faulted("chat.postMessage"), 2);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_reaches_slack_escaped() {
    let slack = FakeSlack::start().await;
    let feed = rss(&[item(
        "h1",
        "<!here> Acme *alert*",
        "<!channel> <@U123> &lt;b&gt; *bold* acme",
    )]);
    let feeds = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(feed))]).await;
    let daemon = start(&slack, &[("news", &feeds.url("/feed.xml"))]).await;
    let posts = slack.wait_for_posts(1, 15).await;
    let body = &posts[0].body;
    let everything = body.to_string();
    for bad in ["<!channel>", "<!here>", "<@U123>", "*bold*"] {
        assert!(
            !everything.contains(bad),
            "{bad} reached Slack unescaped: {everything}"
        );
    }
    let fallback = body["text"].as_str().unwrap();
    assert!(
        fallback.contains("&lt;!channel&gt;") && fallback.contains("&lt;@U123&gt;"),
        "{fallback}"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_feeds_are_reported_and_do_not_stop_good_ones() {
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;
    let slack = FakeSlack::start().await;
    // 20 MB of zeros gzip to about 20 KB: over the 10 MB cap only after decompression.
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(&vec![b' '; 20 * 1024 * 1024]).unwrap();
    let bomb = FeedResponse {
        status: 200,
        headers: vec![
            ("content-type", "application/rss+xml".into()),
            ("content-encoding", "gzip".into()),
        ],
        body: gz.finish().unwrap(),
    };
    let feeds = FakeFeeds::start(vec![
        (
            "/good.xml",
            FeedResponse::rss(rss(&[item("ok1", "Acme news", "acme does a thing")])),
        ),
        (
            "/malformed.xml",
            FeedResponse::rss("<rss><channel><item><title>Acme</ti".into()),
        ),
        (
            "/500.xml",
            FeedResponse {
                status: 500,
                headers: vec![],
                body: b"oops".to_vec(),
            },
        ),
        ("/bomb.xml", bomb),
    ])
    .await;
    let daemon = start(
        &slack,
        &[
            ("bad-xml", &feeds.url("/malformed.xml")),
            ("server-error", &feeds.url("/500.xml")),
            ("bomb", &feeds.url("/bomb.xml")),
            ("good", &feeds.url("/good.xml")),
        ],
    )
    .await;
    slack.wait_for_posts(1, 15).await;

    // Wait until every source has polled at least once.
    let mut health = Value::Null;
    for _ in 0..100 {
        health = daemon.healthz().await;
        let polled = health["sources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["polls_total"].as_u64().unwrap_or(0) >= 1);
        if polled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(health["status"], "degraded");
    let by_name = |n: &str| {
        health["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .unwrap_or_else(|| panic!("no {n} in {health}"))
            .clone()
    };
    assert_eq!(by_name("good")["healthy"], true);
    for (name, needle) in [
        ("bad-xml", "parse"),
        ("server-error", "500"),
        ("bomb", "larger than"),
    ] {
        let s = by_name(name);
        assert_eq!(s["healthy"], false, "{name}: {s}");
        assert!(s["errors_total"].as_u64().unwrap() >= 1);
        let err = s["last_error"].as_str().unwrap_or_default();
        assert!(
            err.contains(needle),
            "{name} error {err:?} should mention {needle:?}"
        );
    }
    let metrics = reqwest::get(daemon.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mentiondesk_alerts_posted_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("mentiondesk_source_errors_total{source=\"bomb\",kind=\"rss\"}"));
    assert!(
        metrics.contains("mentiondesk_source_degraded{source=\"good\",kind=\"rss\"} 0"),
        "{metrics}"
    );
    daemon.stop().await;
}
