//! Failures have an end and are visible: 429 pauses hold every call to the platform, retries
//! back off, refusals park the entry with its reason (in `/healthz`, `/metrics` and
//! `/desk list`) and delivery resumes when the cause is gone; Discord thread notes are
//! exactly-once across a crash. All against the fakes over sockets, through the real SDKs.

use crate::common;

use common::discord::{ops, FakeDiscord, CHANNEL, CHANNEL2};
use common::faults::{Fault, ANY};
use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A feed whose items a test can add while the daemon runs.
#[derive(Clone)]
struct LiveFeed {
    items: Arc<Mutex<Vec<(String, String, String)>>>,
    url: String,
}

impl LiveFeed {
    async fn start(items: Vec<(String, String, String)>) -> LiveFeed {
        let shared = Arc::new(Mutex::new(items));
        let for_route = shared.clone();
        let router = axum::Router::new().route(
            "/feed.xml",
            axum::routing::get(move || {
                let items = for_route.clone();
                async move {
                    let body = rss(&items.lock().unwrap());
                    ([("content-type", "application/rss+xml")], body)
                }
            }),
        );
        let addr = serve(router).await;
        LiveFeed {
            items: shared,
            url: format!("http://{addr}/feed.xml"),
        }
    }

    fn push(&self, item: (String, String, String)) {
        self.items.lock().unwrap().push(item);
    }
}

fn item(i: usize) -> (String, String, String) {
    (
        format!("g{i}"),
        format!("Acme report number {i}"),
        format!("acme unique-marker-{i} is broken"),
    )
}

fn items(n: usize) -> Vec<(String, String, String)> {
    (0..n).map(item).collect()
}

fn slack_config(slack: &FakeSlack, feed_url: &str, targets: &[&str]) -> String {
    ConfigBuilder::new()
        .slack(slack)
        .rss("news", feed_url)
        .key("timeout", "2s")
        .rule("acme", "acme", targets)
        .desk()
        .toml()
}

fn discord_config(discord: &FakeDiscord, feed_url: &str) -> String {
    discord_config_to(discord, feed_url, &[&format!("discord:{CHANNEL}")])
}

fn discord_config_to(discord: &FakeDiscord, feed_url: &str, targets: &[&str]) -> String {
    ConfigBuilder::new()
        .discord(discord)
        .rss("news", feed_url)
        .rule("acme", "acme", targets)
        .desk()
        .toml()
}

/// How many Slack posts carry each item's marker.
fn posts_per_item(slack: &FakeSlack) -> HashMap<usize, usize> {
    let mut per = HashMap::new();
    for p in slack.posts() {
        let text = p.body.to_string();
        if let Some(i) = (0..100)
            .rev()
            .find(|i| text.contains(&format!("unique-marker-{i} ")))
        {
            *per.entry(i).or_default() += 1;
        }
    }
    per
}

async fn healthz(d: &Daemon) -> (u16, Value) {
    let resp = reqwest::get(d.url("/healthz")).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// `/healthz` once `ok` holds for it; panics with the last answer after `secs`.
async fn healthz_until(d: &Daemon, secs: u64, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, h) = healthz(d).await;
        if ok(&h) {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {h}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metrics(d: &Daemon) -> String {
    reqwest::get(d.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of one metric line (`name{labels}`), if present.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Defect 9: a 429 paused one entry, and the relay posted the next entry at once. Six 429s
/// in a row (more than the client retries in-line) must hold every call to Slack for the
/// Retry-After of each, the relay's next entry included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_429_holds_every_call_to_slack_for_its_retry_after() {
    let slack = FakeSlack::start().await;
    slack
        .faults
        .next("chat.postMessage", 6, Fault::rate_limited(2.0));
    let feed = LiveFeed::start(items(4)).await;
    let daemon = Daemon::start(&slack_config(&slack, &feed.url, &["slack:#pr-alerts"])).await;

    slack.wait_for_posts(4, 40).await;
    let calls = slack.faults.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.faulted && c.method == "chat.postMessage")
            .count(),
        6,
        "the fake answered six 429s"
    );
    // The next call to Slack after each 429, whatever its method, waits the 2 s asked.
    for pair in calls.windows(2) {
        if pair[0].faulted {
            let gap = pair[1].at - pair[0].at;
            assert!(
                gap >= Duration::from_millis(1900),
                "a call to Slack {gap:?} after a 429 asking for 2 s: {calls:?}"
            );
        }
    }
    let per = posts_per_item(&slack);
    assert_eq!(per.len(), 4, "every alert posted: {per:?}");
    assert!(per.values().all(|n| *n == 1), "each exactly once: {per:?}");
    daemon.stop().await;
}

/// Defect 10: a refused `chat.update` was re-sent every 2 s because its attempt count never
/// grew. It must back off 2, 4, 8, 16 s …
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_chat_update_backs_off() {
    let slack = FakeSlack::start().await;
    let feed = LiveFeed::start(items(1)).await;
    let daemon = Daemon::start(&slack_config(&slack, &feed.url, &["slack:#pr-alerts"])).await;
    slack.wait_for_posts(1, 15).await;

    // An error Slack does not document as permanent: retried, with backoff.
    slack
        .faults
        .always("chat.update", Fault::slack("internal_error"));
    let t0 = Instant::now();
    let resp = daemon
        .slack_post(
            "/slack/commands",
            &command_body(&slack, "claim 1", "U1", "claim"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let updates = slack
        .faults
        .count_between("chat.update", t0, t0 + Duration::from_secs(20));
    // 0, ~2, ~6, ~14 s (plus up to 20 % jitter): four; every 2 s would be ten.
    assert!(
        (2..=5).contains(&updates),
        "chat.update sent {updates} times in 20 s"
    );
    daemon.stop().await;
    // Every chat.update carries new block_ids (no filter: a reused one fails here).
    let violations: Vec<_> = slack
        .take_violations()
        .into_iter()
        .map(|v| v.to_string())
        .collect();
    assert!(violations.is_empty(), "{violations:?}");
}

/// Defect 10: with a revoked token alert 1 was retried every 2 s forever while `/healthz`
/// said ok. Now: parked with its reason, `unhealthy` with 503, counted, few calls; after the
/// token is fixed and the daemon restarted, everything is delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_parks_reports_unhealthy_and_resumes_after_restart() {
    let slack = FakeSlack::start().await;
    let feed = LiveFeed::start(items(1)).await;
    let config = slack_config(&slack, &feed.url, &["slack:#pr-alerts"]);
    let daemon = Daemon::start(&config).await;
    slack.wait_for_posts(1, 15).await;
    let (code, h) = healthz(&daemon).await;
    assert_eq!((code, h["status"].as_str()), (200, Some("ok")), "{h}");

    slack.faults.revoke_token();
    feed.push(item(1));
    feed.push(item(2));
    poll_until(15, "a refused post", || {
        (slack.faults.faulted("chat.postMessage") > 0).then_some(())
    })
    .await;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(25)).await;
    let calls = slack
        .faults
        .count_between(ANY, t0, t0 + Duration::from_secs(25));
    // One credential probe after ~16 s (and perhaps one at its doubling), not one every 2 s.
    assert!(
        calls <= 2,
        "{calls} calls to Slack in 25 s with a revoked token"
    );

    // The outbox figures are the last read that finished within /healthz's budget (a busy
    // store, e.g. PostgreSQL on a loaded machine, may answer a read later): wait for them.
    let h = healthz_until(&daemon, 10, "both waiting posts in /healthz", |h| {
        h["outbox_pending"].as_u64() == Some(2)
    })
    .await;
    let (code, _) = healthz(&daemon).await;
    assert_eq!(code, 503, "a refused token fails the healthcheck: {h}");
    assert_eq!(h["status"], "unhealthy", "{h}");
    assert_eq!(h["chat"]["slack"]["status"], "unreachable", "{h}");
    assert_eq!(h["chat"]["slack"]["reason"], "invalid_auth", "{h}");
    assert!(
        h["chat"]["slack"]["fix"]
            .as_str()
            .unwrap()
            .contains("SLACK_BOT_TOKEN"),
        "{h}"
    );
    assert!(
        h["sources"].is_array() && h["outbox_pending"].as_u64() == Some(2),
        "{h}"
    );
    let parked = h["parked"].as_array().unwrap();
    assert!(
        parked
            .iter()
            .any(|p| p["reason"] == "invalid_auth" && p["target"] == "slack:#pr-alerts"),
        "{h}"
    );
    let m = metrics(&daemon).await;
    assert_eq!(
        metric(&m, "mentiondesk_chat_up{platform=\"slack\"}"),
        Some(0.0),
        "{m}"
    );
    assert!(
        metric(
            &m,
            "mentiondesk_delivery_failures_total{platform=\"slack\",kind=\"refused_platform\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{m}"
    );
    assert!(
        metric(
            &m,
            "mentiondesk_outbox_parked{platform=\"slack\",reason=\"invalid_auth\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{m}"
    );
    assert!(!h.to_string().contains(BOT_TOKEN) && !m.contains(BOT_TOKEN));

    // The operator sets a new token and restarts.
    slack.faults.restore_token();
    let dir = daemon.stop().await;
    let daemon = Daemon::start_in(&config, dir).await;
    poll_until(20, "all three alerts", || {
        (posts_per_item(&slack).len() == 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let per = posts_per_item(&slack);
    assert!(per.values().all(|n| *n == 1), "each exactly once: {per:?}");
    let (code, h) = healthz(&daemon).await;
    assert_eq!((code, h["status"].as_str()), (200, Some("ok")), "{h}");
    assert_eq!(h["outbox_parked"], 0, "{h}");
    daemon.stop().await;
}

/// Defect 10: a Slack 5xx outage made ~556 calls in 60 s for 32 alerts. The platform is now
/// held on one backoff schedule, and everything goes out once it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_outage_costs_few_calls_and_everything_is_delivered_after() {
    let slack = FakeSlack::start().await;
    let outage_end = Instant::now() + Duration::from_secs(15);
    slack.faults.until(ANY, outage_end, Fault::http(503));
    let feed = LiveFeed::start(items(10)).await;
    let t0 = Instant::now();
    let daemon = Daemon::start(&slack_config(&slack, &feed.url, &["slack:#pr-alerts"])).await;

    poll_until(50, "all ten alerts after the outage", || {
        (posts_per_item(&slack).len() == 10).then_some(())
    })
    .await;
    let during = slack.faults.count_between(ANY, t0, outage_end);
    // Credential check, then probes at ~0, 2, 6, 14 s: a handful, not one per alert per step.
    assert!(
        during <= 7,
        "{during} calls to Slack during a 15 s outage with 10 alerts waiting"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let per = posts_per_item(&slack);
    assert!(per.values().all(|n| *n == 1), "each exactly once: {per:?}");
    let (code, h) = healthz(&daemon).await;
    assert_eq!((code, h["status"].as_str()), (200, Some("ok")), "{h}");
    daemon.stop().await;
}

/// A channel that does not exist degrades that target only: the others deliver, `/healthz`
/// names the target and reason, `/desk list` shows the alert as not delivered there, and the
/// channel is not hammered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_not_found_degrades_only_that_target_and_shows_in_desk_list() {
    let slack = FakeSlack::start().await;
    let feed = LiveFeed::start(items(3)).await;
    let daemon = Daemon::start(&slack_config(
        &slack,
        &feed.url,
        &["slack:#pr-alerts", "slack:#gone"],
    ))
    .await;
    slack.wait_for_posts(3, 20).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let refused = slack.faults.count("chat.postMessage") - slack.posts().len();
    assert!(
        refused <= 2,
        "{refused} posts tried into a channel that does not exist"
    );

    let (code, h) = healthz(&daemon).await;
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["chat"]["slack"]["status"], "degraded", "{h}");
    let failing = &h["chat"]["slack"]["failing_targets"][0];
    assert_eq!(failing["target"], "slack:#gone", "{h}");
    assert_eq!(failing["reason"], "channel_not_found", "{h}");
    assert!(h["parked"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["target"] == "slack:#gone"));

    let resp = daemon
        .slack_post("/slack/commands", &command_body(&slack, "list", "U1", "ls"))
        .await;
    assert_eq!(resp.status(), 200);
    let answer = slack
        .wait_until(10, "list answer", |f| f.answers("ls").pop())
        .await;
    assert!(
        answer.contains("not delivered to slack:#gone: channel not found"),
        "{answer}"
    );
    daemon.stop().await;
}

/// Content a platform refuses is never dropped: the entry is parked as undeliverable,
/// shown in `/healthz`, and sent after a restart (an upgrade with a fixed renderer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_content_is_parked_visible_and_sent_after_a_restart() {
    let slack = FakeSlack::start().await;
    slack
        .faults
        .always("chat.postMessage", Fault::slack("invalid_blocks"));
    let feed = LiveFeed::start(items(1)).await;
    let config = slack_config(&slack, &feed.url, &["slack:#pr-alerts"]);
    let daemon = Daemon::start(&config).await;
    poll_until(15, "a refused post", || {
        (slack.faults.faulted("chat.postMessage") > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        slack.faults.count("chat.postMessage"),
        1,
        "refused content is not retried blindly"
    );
    let (code, h) = healthz(&daemon).await;
    assert_eq!((code, h["status"].as_str()), (200, Some("degraded")), "{h}");
    assert_eq!(h["parked"][0]["reason"], "invalid_blocks", "{h}");
    assert_eq!(h["parked"][0]["scope"], "message", "{h}");
    assert_eq!(h["parked"][0]["alert"], 1, "{h}");

    slack.faults.clear();
    let dir = daemon.stop().await;
    let daemon = Daemon::start_in(&config, dir).await;
    slack.wait_for_posts(1, 15).await;
    // The post reaches Slack before the daemon has read Slack's answer and dropped the entry.
    healthz_until(&daemon, 15, "the parked entry delivered", |h| {
        h["outbox_parked"] == 0
    })
    .await;
    assert_eq!(posts_per_item(&slack).get(&0), Some(&1));
    daemon.stop().await;
}

/// Discord 403 (the bot lost its permissions) degrades that channel; once the permission is
/// back, the waiting alerts are delivered on their own, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_403_degrades_then_delivers_when_permissions_return() {
    let discord = FakeDiscord::start().await;
    discord
        .faults
        .always(ops::CREATE_MESSAGE, Fault::discord_missing_permissions());
    let feed = LiveFeed::start(items(2)).await;
    let daemon = Daemon::start(&discord_config(&discord, &feed.url)).await;
    poll_until(15, "a refused post", || {
        (discord.faults.faulted(ops::CREATE_MESSAGE) > 0).then_some(())
    })
    .await;
    let h = healthz_until(&daemon, 10, "the refusal in /healthz", |h| {
        h["status"] == "degraded"
    })
    .await;
    let failing = &h["chat"]["discord"]["failing_targets"][0];
    assert_eq!(failing["target"], format!("discord:{CHANNEL}"), "{h}");
    assert_eq!(failing["reason"], "403/50013", "{h}");
    assert!(failing["fix"].as_str().unwrap().contains("Send Messages"));

    discord.faults.clear();
    discord
        .wait_until(40, "both alerts after the permission returned", |d| {
            (d.roots().len() == 2).then_some(())
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(discord.roots().len(), 2, "each posted once");
    // Healthy again once a read of the outbox after the deliveries has finished (its figures
    // are the last read that finished within /healthz's budget).
    healthz_until(&daemon, 10, "healthy again", |h| h["status"] == "ok").await;
    let (code, _) = healthz(&daemon).await;
    assert_eq!(code, 200);
    daemon.stop().await;
}

fn spawn_daemon(config: &std::path::Path, dir: &std::path::Path, n: usize) -> std::process::Child {
    let log = std::fs::File::create(dir.join(format!("run-{n}.log"))).unwrap();
    crate::common::mentiondesk()
        .args(["run", "--config"])
        .arg(config)
        .env("MENTIONDESK_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Discord honours a message nonce for a few minutes only: a thread note that reached
/// Discord right before a crash must be found after the restart (by its marker line among
/// the thread's recent messages) and not posted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_note_in_flight_at_a_crash_is_found_and_not_posted_again() {
    let discord = FakeDiscord::start().await;
    // Same title twice: the second mention is a repeat, noted in the first alert's thread.
    let story = "Acme outage reported across the whole region";
    let feed = LiveFeed::start(vec![(
        "s1".into(),
        story.into(),
        "acme first report".into(),
    )])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let text = discord_config(&discord, &feed.url)
        .replace("{store}", &dir.path().join("store").display().to_string())
        .replace("{port}", &free_port().to_string());
    let config = dir.path().join("mentiondesk.toml");
    std::fs::write(&config, text).unwrap();

    let mut child = spawn_daemon(&config, dir.path(), 0);
    let root = discord
        .wait_until(20, "alert posted", |d| {
            d.roots().first().map(|m| m.id.clone())
        })
        .await;
    discord
        .wait_until(10, "thread started", |d| {
            (!d.state.lock().unwrap().threads.is_empty()).then_some(())
        })
        .await;
    // The note is stored by Discord at once but answered late: a kill in that window
    // leaves the entry in flight although Discord has the note.
    discord
        .faults
        .always(ops::CREATE_MESSAGE, Fault::Slow(Duration::from_secs(10)));
    feed.push(("s2".into(), story.into(), "acme second report".into()));
    discord
        .wait_until(20, "note reached Discord", |d| {
            (!d.thread(&root).is_empty()).then_some(())
        })
        .await;
    child.kill().unwrap();
    child.wait().unwrap();
    discord.faults.clear();
    {
        let mut s = discord.state.lock().unwrap();
        // Minutes later Discord no longer recognises the nonce.
        for m in s.messages.iter_mut() {
            if let Some(o) = m.body.as_object_mut() {
                o.remove("nonce");
            }
        }
    }
    let lookups = discord.faults.count(ops::LIST_MESSAGES);
    let mut child = spawn_daemon(&config, dir.path(), 1);
    tokio::time::sleep(Duration::from_secs(6)).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let notes = discord.thread(&root);
    assert_eq!(notes.len(), 1, "the note is in the thread once: {notes:?}");
    assert!(
        notes[0]
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("-# md:")),
        "the note ends with its marker line: {:?}",
        notes[0]
    );
    assert!(
        discord.faults.count(ops::LIST_MESSAGES) > lookups,
        "the thread was read before posting again"
    );
}

/// `check --online` reports a refused token with its fix, exits 1, and never prints the
/// token; the daemon checks the same at start-up and says so in `/healthz`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_and_start_up_report_a_refused_token_with_its_fix() {
    let slack = FakeSlack::start().await;
    slack.faults.revoke_token();
    let feed = LiveFeed::start(items(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let text = slack_config(&slack, &feed.url, &["slack:#pr-alerts"])
        .replace("{store}", &dir.path().join("store").display().to_string())
        .replace("{port}", &free_port().to_string());
    let path = dir.path().join("mentiondesk.toml");
    std::fs::write(&path, &text).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        crate::common::mentiondesk()
            .args(["check", "--online", "--config"])
            .arg(&path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("ok (1 source, 1 rule, alerts to Slack)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("slack credentials: problem:")
            && stdout.contains("invalid_auth")
            && stdout.contains("set SLACK_BOT_TOKEN"),
        "{stdout}"
    );
    assert!(!stdout.contains(BOT_TOKEN) && !stderr.contains(BOT_TOKEN));
    assert!(slack.faults.count("auth.test") >= 1);
    assert_eq!(
        slack.faults.count("chat.postMessage"),
        0,
        "a check posts nothing"
    );

    // The daemon finds the same at start-up: unhealthy before any alert is tried, the alert
    // waits in the outbox, and the log gives the fix once, not once per retry.
    let port = free_port();
    let text = text.replace(
        &dir.path().join("store").display().to_string(),
        &dir.path().join("store2").display().to_string(),
    );
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("listen = ") {
                format!("listen = \"127.0.0.1:{port}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.path().join("run.toml");
    std::fs::write(&path, &text).unwrap();
    let mut child = spawn_daemon(&path, dir.path(), 0);
    // Past the first credential probe (~16 s after the start-up check).
    tokio::time::sleep(Duration::from_secs(21)).await;
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let h: Value = resp.json().await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        (code, h["status"].as_str()),
        (503, Some("unhealthy")),
        "{h}"
    );
    assert_eq!(h["chat"]["slack"]["reason"], "invalid_auth", "{h}");
    assert_eq!(h["outbox_pending"], 1, "{h}");
    assert_eq!(slack.faults.count("chat.postMessage"), 0, "{h}");
    assert!(
        slack.faults.count("auth.test") >= 3,
        "start-up check and a probe"
    );
    let log = std::fs::read_to_string(dir.path().join("run-0.log")).unwrap();
    assert_eq!(
        log.matches("set SLACK_BOT_TOKEN").count(),
        1,
        "the fix is logged once: {log}"
    );
    assert!(!log.contains(BOT_TOKEN));
}

/// Defect 9 on Discord: a 429 holds every call to Discord, the relay's next entry included,
/// for the time it asks (a per-route 429 too: the relay holds the whole platform).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_429_holds_every_call_to_discord() {
    let discord = FakeDiscord::start().await;
    discord
        .faults
        .next(ops::CREATE_MESSAGE, 6, Fault::rate_limited(2.0));
    let feed = LiveFeed::start(items(3)).await;
    let daemon = Daemon::start(&discord_config(&discord, &feed.url)).await;
    discord
        .wait_until(45, "three alerts", |d| (d.roots().len() == 3).then_some(()))
        .await;
    let calls = discord.faults.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.faulted && c.method == ops::CREATE_MESSAGE)
            .count(),
        6
    );
    // The next call to Discord after each 429, whatever its route, waits the 2 s asked.
    for pair in calls.windows(2) {
        if pair[0].faulted {
            let gap = pair[1].at - pair[0].at;
            assert!(
                gap >= Duration::from_millis(1900),
                "a call to Discord {gap:?} after a 429 asking for 2 s: {calls:?}"
            );
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(discord.roots().len(), 3, "each posted once");
    daemon.stop().await;
}

/// A config file (store, port filled in) in `dir`, for a daemon run as its own process.
fn write_config(template: &str, dir: &std::path::Path) -> (std::path::PathBuf, u16) {
    let port = free_port();
    let text = template
        .replace("{store}", &dir.join("store").display().to_string())
        .replace("{port}", &port.to_string());
    let path = dir.join("mentiondesk.toml");
    std::fs::write(&path, text).unwrap();
    (path, port)
}

/// A missing scope passes `auth.test`. The credential probe used to clear it every ~16 s:
/// every held entry was released and refused again, the fix logged each time and `/healthz`
/// flipping to ok. Now one entry probes it on the backoff schedule, the fix is logged once,
/// `/healthz` stays unhealthy, and delivery resumes once the scope is added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_scope_is_probed_by_a_delivery_and_logged_once() {
    let slack = FakeSlack::start().await;
    slack
        .faults
        .always("chat.postMessage", Fault::slack("missing_scope"));
    let feed = LiveFeed::start(items(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, port) = write_config(
        &slack_config(&slack, &feed.url, &["slack:#pr-alerts"]),
        dir.path(),
    );
    let mut child = spawn_daemon(&config, dir.path(), 0);
    poll_until(20, "a refused post", || {
        (slack.faults.faulted("chat.postMessage") > 0).then_some(())
    })
    .await;
    let t0 = Instant::now();
    let window = Duration::from_secs(40);
    // Slack has refused the post; the daemon reads that answer a moment later.
    let healthz_url = format!("http://127.0.0.1:{port}/healthz");
    while reqwest::get(&healthz_url).await.unwrap().status() != 503 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the refusal never showed in /healthz"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut statuses = vec![];
    while t0.elapsed() < window {
        let resp = reqwest::get(&healthz_url).await.unwrap();
        let code = resp.status().as_u16();
        let h: Value = resp.json().await.unwrap();
        statuses.push((code, h["status"].as_str().unwrap_or_default().to_string()));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        statuses.iter().all(|(c, s)| *c == 503 && s == "unhealthy"),
        "/healthz changed while the scope was missing: {statuses:?}"
    );
    let posts = slack
        .faults
        .count_between("chat.postMessage", t0, t0 + window);
    // Probes at ~16-19 s and ~48-57 s after the refusal: one or two, never one per entry.
    assert!(
        (1..=2).contains(&posts),
        "{posts} posts in 40 s with a missing scope"
    );
    assert_eq!(
        slack.faults.count_between("auth.test", t0, t0 + window),
        0,
        "auth.test cannot tell whether a scope is missing"
    );

    // The scope is added: the next probe delivers, and everything follows.
    slack.faults.clear();
    poll_until(60, "both alerts after the scope was added", || {
        (posts_per_item(&slack).len() == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let per = posts_per_item(&slack);
    assert!(per.values().all(|n| *n == 1), "each exactly once: {per:?}");
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    let h: Value = resp.json().await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(h["status"], "ok", "{h}");
    let log = std::fs::read_to_string(dir.path().join("run-0.log")).unwrap();
    assert_eq!(
        log.matches("the app lacks a scope").count(),
        1,
        "the fix is logged once: {log}"
    );
    assert!(!log.contains(BOT_TOKEN));
}

/// Slack reports its own trouble as `{"ok":false,"error":"service_unavailable"}` (HTTP 200).
/// That was an ordinary error: every entry retried on its own schedule. It now holds the
/// platform like a 5xx outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_service_unavailable_holds_the_platform_like_an_outage() {
    let slack = FakeSlack::start().await;
    let outage_end = Instant::now() + Duration::from_secs(15);
    slack
        .faults
        .until(ANY, outage_end, Fault::slack("service_unavailable"));
    let feed = LiveFeed::start(items(10)).await;
    let t0 = Instant::now();
    let daemon = Daemon::start(&slack_config(&slack, &feed.url, &["slack:#pr-alerts"])).await;

    poll_until(50, "all ten alerts after Slack recovered", || {
        (posts_per_item(&slack).len() == 10).then_some(())
    })
    .await;
    let during = slack.faults.count_between(ANY, t0, outage_end);
    assert!(
        during <= 7,
        "{during} calls to Slack in 15 s of service_unavailable with 10 alerts waiting"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let per = posts_per_item(&slack);
    assert!(per.values().all(|n| *n == 1), "each exactly once: {per:?}");
    let (code, h) = healthz(&daemon).await;
    assert_eq!((code, h["status"].as_str()), (200, Some("ok")), "{h}");
    daemon.stop().await;
}

/// A deleted alert message (`message_not_found` on `chat.update`) was parked and retried
/// daily forever, `/healthz` degraded for good, one more parked entry per state change. The
/// update now ends with a warning; the alert stays on the desk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_of_a_deleted_slack_alert_end_without_parking() {
    let slack = FakeSlack::start().await;
    let feed = LiveFeed::start(items(1)).await;
    let daemon = Daemon::start(&slack_config(&slack, &feed.url, &["slack:#pr-alerts"])).await;
    slack.wait_for_posts(1, 15).await;
    slack
        .faults
        .always("chat.update", Fault::slack("message_not_found"));
    for (text, trigger) in [("claim 1", "c1"), ("unclaim 1", "c2")] {
        // Counted before the command: the update can reach Slack before the command's answer.
        let before = slack.faults.count("chat.update");
        let resp = daemon
            .slack_post(
                "/slack/commands",
                &command_body(&slack, text, "U1", trigger),
            )
            .await;
        assert_eq!(resp.status(), 200);
        poll_until(10, "the refused update", || {
            (slack.faults.count("chat.update") > before).then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        slack.faults.count("chat.update"),
        2,
        "one call per state change, no retries"
    );
    let (code, h) = healthz(&daemon).await;
    assert_eq!((code, h["status"].as_str()), (200, Some("ok")), "{h}");
    assert_eq!(h["outbox_parked"], 0, "{h}");
    assert_eq!(h["outbox_pending"], 0, "{h}");
    // The alert is still on the desk with its state.
    let resp = daemon
        .slack_post(
            "/slack/commands",
            &command_body(&slack, "show 1", "U1", "s1"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    daemon.stop().await;
}

/// A thread note for an alert whose Discord message (and thread) was deleted: the thread
/// cannot be started again (404 Unknown Message). It was parked for good; it now ends with
/// a warning instead of being re-posted into the channel without its alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_for_a_deleted_discord_alert_ends_without_parking() {
    let discord = FakeDiscord::start().await;
    let story = "Acme outage reported across the whole region";
    let feed = LiveFeed::start(vec![(
        "s1".into(),
        story.into(),
        "acme first report".into(),
    )])
    .await;
    let daemon = Daemon::start(&discord_config(&discord, &feed.url)).await;
    let root = discord
        .wait_until(20, "alert posted", |d| {
            d.roots().first().map(|m| m.id.clone())
        })
        .await;
    discord
        .wait_until(10, "thread started", |d| {
            (!d.state.lock().unwrap().threads.is_empty()).then_some(())
        })
        .await;
    {
        // Someone deletes the alert and its thread.
        let mut s = discord.state.lock().unwrap();
        s.messages.retain(|m| m.id != root);
        s.threads.retain(|(id, _)| *id != root);
    }
    let threads_started = discord.faults.count(ops::START_THREAD);
    feed.push(("s2".into(), story.into(), "acme second report".into()));
    poll_until(20, "the note's attempt to restart the thread", || {
        (discord.faults.count(ops::START_THREAD) > threads_started).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        discord.faults.count(ops::START_THREAD),
        threads_started + 1,
        "tried once, not retried"
    );
    let (code, h) = healthz(&daemon).await;
    assert_eq!((code, h["status"].as_str()), (200, Some("ok")), "{h}");
    assert_eq!(h["outbox_parked"], 0, "{h}");
    assert_eq!(h["outbox_pending"], 0, "{h}");
    assert!(discord.messages().is_empty(), "nothing re-posted");
    daemon.stop().await;
}

/// The Snooze choices went to the response URL without the 429 handling every other call
/// has: one 429 lost them. They now wait out the pause and arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snooze_choices_wait_out_a_429_on_the_response_url() {
    let slack = FakeSlack::start().await;
    let feed = LiveFeed::start(items(1)).await;
    let daemon = Daemon::start(&slack_config(&slack, &feed.url, &["slack:#pr-alerts"])).await;
    slack.wait_for_posts(1, 15).await;
    slack
        .faults
        .next("response_url", 1, Fault::rate_limited(1.0));
    daemon
        .slack_post(
            "/slack/interactions",
            &button_body(&slack, "desk_snooze", "1", "U1", "b1"),
        )
        .await;
    let offer = slack
        .wait_until(10, "snooze choices after the 429", |f| {
            f.responses().into_iter().find(|(p, _)| p == "/response/b1")
        })
        .await;
    assert_eq!(
        offer.1["blocks"][1]["elements"][0]["action_id"],
        "desk_snooze_1h"
    );
    let times = slack.faults.times("response_url");
    assert_eq!(times.len(), 2, "one 429, one retry");
    assert!(
        times[1] - times[0] >= Duration::from_millis(950),
        "the retry waited the second asked: {:?}",
        times[1] - times[0]
    );
    daemon.stop().await;
}

/// Discord dedups a nonce per author. The alert nonce was `mdalert-<id>` for every target,
/// so the second channel got the first channel's message back and never showed the alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_alert_to_two_discord_channels_appears_in_both() {
    let discord = FakeDiscord::start().await;
    let feed = LiveFeed::start(items(1)).await;
    let config = discord_config_to(
        &discord,
        &feed.url,
        &[
            &format!("discord:{CHANNEL}"),
            &format!("discord:{CHANNEL2}"),
        ],
    );
    let daemon = Daemon::start(&config).await;
    let in_channel = |d: &FakeDiscord, c: &str| {
        d.messages()
            .into_iter()
            .filter(|m| m.channel_id == c)
            .collect::<Vec<_>>()
    };
    discord
        .wait_until(20, "the alert in both channels", |d| {
            (in_channel(d, CHANNEL).len() == 1 && in_channel(d, CHANNEL2).len() == 1).then_some(())
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (a, b) = (
        in_channel(&discord, CHANNEL),
        in_channel(&discord, CHANNEL2),
    );
    assert_eq!((a.len(), b.len()), (1, 1), "once in each channel");
    assert_ne!(a[0].body["nonce"], b[0].body["nonce"]);
    assert!(a[0].body["nonce"].as_str().unwrap().chars().count() <= 25);
    let threads = discord.state.lock().unwrap().threads.len();
    assert_eq!(threads, 2, "a thread under each");
    daemon.stop().await;
}
