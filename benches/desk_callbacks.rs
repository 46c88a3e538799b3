//! Signed Slack `/desk` callbacks against the daemon in this process, at 1, 16 and 64
//! concurrent clients (closed loop: each client sends its next request when the previous is
//! answered). A figure covers one `POST /slack/commands` from signing to the HTTP 200:
//! signature check, form decoding, the request id recorded in the store and flushed to disk
//! (a group-commit wait), and the desk work spawned. "applied" is when the last private
//! answer reached the fake response URL: each `/desk note` then has also been written with
//! its audit entry and outbox entry (compare-and-swap, flushed) by the desk.
//! Run: `cargo bench --bench desk_callbacks` (no criterion: it needs a live daemon).

// The integration tests' fakes; this bench drives only a few of them.
#[path = "../tests/it/common/mod.rs"]
#[allow(dead_code)]
mod common;

use common::*;
use std::time::{Duration, Instant};

const ALERTS: usize = 20;

fn config(slack: &FakeSlack, feed_url: &str) -> String {
    ConfigBuilder::new()
        .slack(slack)
        .rss("news", feed_url)
        .key("every", "1h")
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .desk()
        .toml()
}

struct Run {
    clients: usize,
    requests: usize,
    wall: Duration,
    acks: Vec<Duration>,
    applied_after: Duration,
}

async fn run(slack: &FakeSlack, port: u16, clients: usize, per_client: usize, tag: &str) -> Run {
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/slack/commands");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, url, slack, tag) = (http.clone(), url.clone(), slack.clone(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let alert = (c * per_client + i) % ALERTS + 1;
                let trigger = format!("{tag}-{c}-{i}");
                let body = command_body(
                    &slack,
                    &format!("note {alert} bench note {trigger}"),
                    &format!("U{c:04}"),
                    &trigger,
                );
                let ts = chrono::Utc::now().timestamp();
                let sig = mentiondesk::server::slack::sign(SIGNING_SECRET, ts, body.as_bytes());
                let sent = Instant::now();
                let resp = http
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("x-slack-request-timestamp", ts.to_string())
                    .header("x-slack-signature", sig)
                    .body(body)
                    .send()
                    .await
                    .expect("the daemon answers");
                assert_eq!(resp.status(), 200);
                acks.push(sent.elapsed());
            }
            acks
        }));
    }
    let mut acks = Vec::new();
    for t in tasks {
        acks.extend(t.await.unwrap());
    }
    let wall = start.elapsed();
    let requests = clients * per_client;
    let prefix = format!("/response/{tag}-");
    poll_until(120, "every answer", || {
        let n = slack
            .responses()
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix))
            .count();
        (n >= requests).then_some(())
    })
    .await;
    Run {
        clients,
        requests,
        wall,
        acks,
        applied_after: start.elapsed(),
    }
}

fn pct(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let slack = FakeSlack::start().await;
    let items: Vec<(String, String, String)> = (1..=ALERTS)
        .map(|i| {
            (
                format!("item-{i}"),
                format!("Acme bench story {i}"),
                format!("acme bench item {i}"),
            )
        })
        .collect();
    let feeds = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(rss(&items)))]).await;
    let daemon = Daemon::start(&config(&slack, &feeds.url("/feed.xml"))).await;
    slack.wait_for_posts(ALERTS, 60).await;

    // Warm-up: connections, caches, the store's first segments.
    run(&slack, daemon.port, 8, 25, "warm").await;

    println!(
        "| clients | requests | callbacks/s (acked) | ack p50 | ack p99 | ack max | all applied after | applied/s |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut tags = 0;
    for (clients, per_client) in [(1, 300), (16, 125), (64, 50)] {
        tags += 1;
        let mut r = run(
            &slack,
            daemon.port,
            clients,
            per_client,
            &format!("b{tags}"),
        )
        .await;
        r.acks.sort();
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {:.2} s | {:.0} |",
            r.clients,
            r.requests,
            r.requests as f64 / r.wall.as_secs_f64(),
            ms(pct(&r.acks, 50)),
            ms(pct(&r.acks, 99)),
            ms(*r.acks.last().unwrap()),
            r.applied_after.as_secs_f64(),
            r.requests as f64 / r.applied_after.as_secs_f64(),
        );
    }
    let notes = slack.posts().len() - ALERTS;
    let stopping = Instant::now();
    daemon.stop().await;
    println!(
        "daemon stopped in {} ({notes} thread notes delivered before the stop)",
        ms(stopping.elapsed()),
    );
}
