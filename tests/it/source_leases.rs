//! Source leases as a user of several replicas meets them (issue 17), on one daemon over
//! PostgreSQL (skipped on sled, which has no leases; run with `MENTIONDESK_TEST_STORE=postgres`):
//! `/healthz` names the replica, the sources it holds and every live lease; a source another
//! replica took over is shown as held there and is not a problem; a replica cut off from the
//! database reports `unhealthy` (503) with the reason; `/metrics` counts the leases. On sled
//! (always run) none of it shows.
//! The multi-daemon failover tests are in `replicas.rs`.

use crate::common;

use common::store_backend::TestStore;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Polls `/healthz` until `done` holds for its answer (status code and body), at most 60 s.
async fn healthz_until(daemon: &Daemon, what: &str, done: impl Fn(u16, &Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let resp = reqwest::get(daemon.url("/healthz")).await.unwrap();
        let code = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        if done(code, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting: {what}; last {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn metrics(daemon: &Daemon) -> String {
    reqwest::get(daemon.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn source<'a>(health: &'a Value, name: &str) -> &'a Value {
    health["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no source {name} in {health}"))
}

/// On sled (one process, no leases) `/healthz` and `/metrics` show nothing of leases: sled
/// users notice nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_shows_no_leases() {
    let slack = FakeSlack::start().await;
    let feeds = FakeFeeds::start(vec![(
        "/feed.xml",
        FeedResponse::rss(rss(&[("g1".into(), "Gardening".into(), "nothing".into())])),
    )])
    .await;
    let text = ConfigBuilder::for_store(TestStore::Sled)
        .slack(&slack)
        .rss("news", &feeds.url("/feed.xml"))
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .toml();
    let daemon = Daemon::start(&text).await;
    let health = healthz_until(&daemon, "news polled", |code, h| {
        code == 200 && h["sources"][0]["polls_total"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    for key in ["replica", "holds", "leases", "store_error"] {
        assert!(health.get(key).is_none(), "{key} in {health}");
    }
    let news = source(&health, "news");
    for key in ["held_by", "lease_acquired_total", "lease_lost_total"] {
        assert!(news.get(key).is_none(), "{key} in {news}");
    }
    let m = metrics(&daemon).await;
    assert!(!m.contains("lease"), "{m}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_metrics_show_the_source_leases() {
    if TestStore::from_env() != TestStore::Postgres {
        return;
    }
    let slack = FakeSlack::start().await;
    let feeds = FakeFeeds::start(vec![(
        "/feed.xml",
        FeedResponse::rss(rss(&[(
            "g1".into(),
            "Gardening".into(),
            "nothing to see".into(),
        )])),
    )])
    .await;
    let text = ConfigBuilder::for_store(TestStore::Postgres)
        .slack(&slack)
        .rss("news", &feeds.url("/feed.xml"))
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .toml();
    let url = text
        .lines()
        .find_map(|l| l.strip_prefix("url = "))
        .expect("the store's url")
        .trim_matches('"')
        .to_string();
    let text = text.replacen(
        "backend = \"postgres\"",
        "backend = \"postgres\"\nreplica = \"desk-1\"\nlease = \"6s\"",
        1,
    );
    let daemon = Daemon::start(&text).await;

    let health = healthz_until(&daemon, "desk-1 holds news", |code, h| {
        code == 200 && h["holds"] == serde_json::json!(["news"])
    })
    .await;
    assert_eq!(health["replica"], "desk-1");
    assert_eq!(health["status"], "ok", "{health}");
    let leases = health["leases"].as_array().expect("the live leases");
    assert_eq!(leases.len(), 1, "{health}");
    assert_eq!(leases[0]["source"], "news");
    assert_eq!(leases[0]["owner"], "desk-1");
    assert!(leases[0]["until"].is_string(), "{health}");
    assert_eq!(source(&health, "news")["held_by"], "desk-1");
    assert_eq!(source(&health, "news")["lease_acquired_total"], 1);
    let m = metrics(&daemon).await;
    assert!(m.contains("mentiondesk_source_leases_held 1"), "{m}");
    assert!(
        m.contains("mentiondesk_source_lease_acquired_total{source=\"news\",kind=\"rss\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("mentiondesk_source_lease_lost_total{source=\"news\",kind=\"rss\"} 0"),
        "{m}"
    );

    // Another replica ("desk-2") takes the source over, as after a stall of a lease period.
    let (sql, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    sql.execute(
        "UPDATE source_state SET owner = 'desk-2', \
         lease_until = clock_timestamp() + interval '1 hour' WHERE name = 'news'",
        &[],
    )
    .await
    .unwrap();
    let health = healthz_until(&daemon, "news shown as held by desk-2", |code, h| {
        code == 200 && h["sources"][0]["held_by"] == "desk-2"
    })
    .await;
    assert_eq!(
        health["status"], "ok",
        "held elsewhere is no problem: {health}"
    );
    assert_eq!(health["holds"], serde_json::json!([]));
    assert_eq!(health["leases"][0]["owner"], "desk-2");
    assert_eq!(source(&health, "news")["healthy"], true);
    assert_eq!(source(&health, "news")["lease_lost_total"], 1);
    let m = metrics(&daemon).await;
    assert!(m.contains("mentiondesk_source_leases_held 0"), "{m}");
    assert!(
        m.contains("mentiondesk_source_lease_lost_total{source=\"news\",kind=\"rss\"} 1"),
        "{m}"
    );

    // The database stops answering this replica's lease calls: unhealthy, with the reason.
    sql.batch_execute("ALTER TABLE source_state RENAME TO source_state_away")
        .await
        .unwrap();
    let health = healthz_until(&daemon, "unhealthy without the database", |code, h| {
        code == 503 && h["status"] == "unhealthy"
    })
    .await;
    let reason = health["store_error"].as_str().unwrap_or_default();
    assert!(reason.contains("cannot reach the store"), "{health}");
    assert!(!reason.contains("password"), "{reason}");
    sql.batch_execute(
        "ALTER TABLE source_state_away RENAME TO source_state; \
         UPDATE source_state SET owner = NULL, lease_until = NULL",
    )
    .await
    .unwrap();
    healthz_until(&daemon, "desk-1 holds news again", |code, h| {
        code == 200 && h["holds"] == serde_json::json!(["news"])
    })
    .await;

    // At shutdown the replica releases its lease.
    daemon.stop().await;
    let live: i64 = sql
        .query_one(
            "SELECT count(*) FROM source_state WHERE owner IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 0, "released at shutdown");
}
