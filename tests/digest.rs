//! The digest and spike alerts: content read from a real store, the schedule under paused
//! tokio time (a daylight-saving change, a missed digest sent once at start-up), the chart
//! uploaded to a fake Slack (external upload flow) and a fake Discord (attachment) through
//! the real clients, `digest --now` through the daemon's admin endpoint and without a
//! daemon, and spikes on synthetic series.

mod common;

use chrono::{DateTime, Duration as CDuration, Utc};
use common::discord::*;
use common::*;
use mentiondesk::clock::Clock;
use mentiondesk::config::{DeskConfig, RuleConfig, SpikeConfig};
use mentiondesk::desk::state::Action;
use mentiondesk::desk::Desk;
use mentiondesk::digest::report::{self, Period};
use mentiondesk::digest::schedule::Schedule;
use mentiondesk::digest::{self, DigestJob};
use mentiondesk::model::{AlertState, Mention, Note, Priority, Target, TimerKind};
use mentiondesk::sources::SourceState;
use mentiondesk::store::{Candidate, NewAlert, OutboxAction, Store};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn mention(id: &str, source: &str, text: &str) -> Mention {
    Mention {
        item_id: id.into(),
        source: source.into(),
        source_kind: "rss".into(),
        url: Some(format!("https://example.com/{id}")),
        title: None,
        text: text.into(),
        author: Some(format!("author-{id}")),
        author_reach: None,
        published: None,
        lang: None,
    }
}

/// Stores one matched mention at `at`, as the intake would.
#[allow(clippy::too_many_arguments)]
async fn hit(
    store: &Store,
    id: &str,
    rule: &str,
    source: &str,
    text: &str,
    sentiment: f64,
    negative: bool,
    priority: Priority,
    at: DateTime<Utc>,
) {
    let m = mention(id, source, text);
    let c = Candidate {
        dedup_keys: vec![format!("item:{source}:{id}")],
        mention: m,
        alert: Some(NewAlert {
            rules: vec![rule.into()],
            priority,
            sentiment,
            negative,
            targets: vec![Target::Slack("#pr-alerts".into())],
            highlights: vec![],
            timers: vec![],
            thread_keys: vec![],
            repeat_of: None,
            log_hit: true,
        }),
    };
    store
        .accept(source, &SourceState::default(), &[c], at)
        .await
        .unwrap();
}

fn desk_config() -> DeskConfig {
    DeskConfig {
        command: "/desk".into(),
        escalate_after: Duration::from_secs(900),
        escalate_to: None,
        remind_after: None,
        allowed: vec![],
        timezone: chrono_tz::UTC,
    }
}

fn digests(store: &Store) -> Vec<(Target, mentiondesk::model::DigestPost)> {
    store
        .outbox()
        .unwrap()
        .into_iter()
        .filter_map(|(_, e)| match e.action {
            OutboxAction::Digest(p) => Some((e.target, *p)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn digest_counts_compares_and_ranks_what_came_in() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let to = utc("2026-11-23T08:00:00Z");
    let h = |n: i64| to - CDuration::hours(n);
    // The period before (the 24 h before the digest's 24 h): 2 mentions.
    hit(
        &store,
        "p1",
        "acme",
        "hn",
        "acme is fine",
        0.0,
        false,
        Priority::Normal,
        h(30),
    )
    .await;
    hit(
        &store,
        "p2",
        "acme",
        "hn",
        "acme ok",
        0.0,
        false,
        Priority::Normal,
        h(40),
    )
    .await;
    // This period: 5 mentions, 3 negative, one critical.
    hit(
        &store,
        "a",
        "acme",
        "reddit",
        "acme refund never came",
        -0.6,
        true,
        Priority::High,
        h(20),
    )
    .await;
    hit(
        &store,
        "b",
        "acme",
        "reddit",
        "acme app crashed again",
        -0.4,
        true,
        Priority::Critical,
        h(10),
    )
    .await;
    hit(
        &store,
        "c",
        "acme",
        "hn",
        "love acme, great",
        0.8,
        false,
        Priority::Normal,
        h(5),
    )
    .await;
    hit(
        &store,
        "d",
        "acme-ceo",
        "rss",
        "<!channel> acme ceo @everyone",
        0.0,
        false,
        Priority::Low,
        h(3),
    )
    .await;
    hit(
        &store,
        "e",
        "acme",
        "rss",
        "acme delayed my order",
        -0.3,
        true,
        Priority::Normal,
        h(1),
    )
    .await;
    // Claim and resolve some of them.
    let desk = Desk::new(store.clone(), desk_config(), Arc::new(Notify::new()));
    let alerts = store.alerts().unwrap();
    let id_of = |item: &str| {
        alerts
            .iter()
            .find(|a| a.mention_key.ends_with(item))
            .unwrap()
            .id
    };
    let a = id_of("\u{1f}a");
    let created_a = h(20);
    desk.act(
        a,
        &"slack:U1".into(),
        Action::Claim,
        created_a + CDuration::minutes(10),
    )
    .await
    .unwrap();
    desk.act(
        a,
        &"slack:U1".into(),
        Action::Resolve { note: None },
        created_a + CDuration::hours(2),
    )
    .await
    .unwrap();
    let b = id_of("\u{1f}b");
    desk.act(
        b,
        &"slack:U2".into(),
        Action::Claim,
        h(10) + CDuration::minutes(30),
    )
    .await
    .unwrap();

    let period = Period {
        from: to - CDuration::hours(24),
        to,
    };
    let rules = vec!["acme".to_string(), "acme-ceo".to_string()];
    let r = report::gather(&store, &rules, period, chrono_tz::Europe::Berlin, to).unwrap();
    assert_eq!(r.now.mentions, 5);
    assert_eq!(r.before.mentions, 2);
    assert_eq!(r.now.negative, 3);
    assert_eq!(r.now.positive, 1);
    assert_eq!(r.now.neutral, 1);
    assert_eq!(
        r.now.by_rule,
        vec![("acme".to_string(), 4), ("acme-ceo".to_string(), 1)]
    );
    assert_eq!(r.now.by_source[0], ("reddit".to_string(), 2));
    assert_eq!(r.states.claimed, 1);
    assert_eq!(r.states.resolved, 1);
    assert_eq!(r.states.open, 3);
    let mut claims = r.now.to_claim.clone();
    claims.sort();
    assert_eq!(claims, vec![600, 1800], "10 min and 30 min to claim");
    assert_eq!(r.now.to_resolve, vec![7200]);
    // Critical first, then high, then the negative normal one.
    let top: Vec<Priority> = r.top.iter().map(|i| i.priority).collect();
    assert_eq!(top[0], Priority::Critical);
    assert_eq!(top[1], Priority::High);
    assert!(r.top[2].negative, "{:?}", r.top);
    // Oldest unclaimed first: the two old ones from the period before come first.
    assert!(r.oldest_unclaimed[0].excerpt.contains("acme ok"));
    assert_eq!(r.chart.len(), 24, "hourly chart for a daily digest");
    let total: u32 = r
        .chart
        .iter()
        .map(|b| b.negative + b.neutral + b.positive)
        .sum();
    assert_eq!(total, 5, "the chart shows this period's five mentions");
    assert_eq!(
        r.chart[23].negative, 1,
        "the last hour holds the delayed order"
    );
    assert_eq!(r.chart[23].label, "08:00", "labels are Berlin time");

    let (title, body) = report::render(&r, "Morning digest", to);
    assert_eq!(
        title,
        "📊 Morning digest — Mon 23 Nov 2026, 09:00 (Europe/Berlin)"
    );
    let text = body.plain();
    assert!(text.contains("New mentions: 5 ↑ 150% (was 2)"), "{text}");
    assert!(text.contains("negative 3 ↑ (none before)"), "{text}");
    assert!(text.contains("By rule: acme 4 · acme-ceo 1"), "{text}");
    assert!(text.contains("Time to claim: median 10 min"), "{text}");
    assert!(text.contains("Time to resolve: median 2 h"), "{text}");
    assert!(text.contains("1 claimed · 1 resolved"), "{text}");
    // Hostile text stays text: the platforms escape Text parts.
    let slack = mentiondesk::chat::slack::render_note(&body);
    assert!(!slack.contains("<!channel>"), "{slack}");
    let discord = mentiondesk::chat::discord::render_note_within(&body, 4096);
    assert!(discord.contains("\\@everyone"), "{discord}");
}

/// Lets the digest task finish what it is doing in real time (sled flushes on its own
/// threads, and paused tokio time would otherwise jump ahead while it waits).
async fn settle() {
    for _ in 0..25 {
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Moves paused time forward by `total` in `chunk` steps, settling after each.
async fn step(total: Duration, chunk: Duration) {
    let mut left = total;
    while !left.is_zero() {
        let d = left.min(chunk);
        tokio::time::advance(d).await;
        settle().await;
        left -= d;
    }
}

fn berlin_job(expr: &str) -> DigestJob {
    DigestJob {
        name: "Morning digest".into(),
        schedule: Schedule::parse(expr, chrono_tz::Europe::Berlin).unwrap(),
        to: vec![Target::Slack("#pr-alerts".into())],
        chart: false,
    }
}

#[tokio::test(start_paused = true)]
async fn scheduled_digest_keeps_local_nine_across_the_dst_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Saturday 24 Oct 2026 12:00 UTC; Berlin leaves summer time on Sunday 25 Oct at 03:00.
    let clock = Clock::tokio_at(utc("2026-10-24T12:00:00Z"));
    let (trigger, shutdown) = mentiondesk::shutdown::channel();
    let job = berlin_job("0 0 9 * * *");
    let task = tokio::spawn(digest::run(
        job,
        store.clone(),
        vec!["acme".into()],
        clock,
        Arc::new(Notify::new()),
        shutdown,
    ));
    settle().await;
    step(Duration::from_secs(60), Duration::from_secs(60)).await;
    assert!(
        digests(&store).is_empty(),
        "a new digest does not fire at start-up"
    );
    // Sunday 08:59 Berlin (CET, UTC+1) = 07:59 UTC: not yet.
    step(
        Duration::from_secs(19 * 3600 + 58 * 60),
        Duration::from_secs(3600),
    )
    .await;
    assert!(digests(&store).is_empty(), "nothing before 09:00 local");
    // 09:00 CET = 08:00 UTC: an hour later in UTC than the day before (07:00 UTC in CEST).
    step(Duration::from_secs(3 * 60), Duration::from_secs(30)).await;
    let d = digests(&store);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        d[0].1.title,
        "📊 Morning digest — Sun 25 Oct 2026, 09:00 (Europe/Berlin)"
    );
    assert!(
        d[0].1.body.plain().contains("Covering the last 1 d 1 h"),
        "the DST day is 25 hours long: {}",
        d[0].1.body.plain()
    );
    // Monday 09:00 CET, and no other digest in between.
    step(Duration::from_secs(23 * 3600), Duration::from_secs(3600)).await;
    assert_eq!(digests(&store).len(), 1);
    step(Duration::from_secs(3600 + 120), Duration::from_secs(30)).await;
    let d = digests(&store);
    assert_eq!(d.len(), 2);
    assert!(
        d[1].1.title.contains("Mon 26 Oct 2026, 09:00"),
        "{}",
        d[1].1.title
    );
    trigger.trigger();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_digest_missed_while_down_is_sent_once_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Last sent on Tuesday 20 Oct; the daemon comes back on Saturday 24 Oct 12:00 UTC,
    // having missed four 09:00 digests.
    store
        .meta_set("digest_slot:Morning digest", &utc("2026-10-20T07:00:00Z"))
        .await
        .unwrap();
    let clock = Clock::tokio_at(utc("2026-10-24T12:00:00Z"));
    let (trigger, shutdown) = mentiondesk::shutdown::channel();
    let task = tokio::spawn(digest::run(
        berlin_job("0 0 9 * * *"),
        store.clone(),
        vec!["acme".into()],
        clock,
        Arc::new(Notify::new()),
        shutdown,
    ));
    settle().await;
    step(Duration::from_secs(5), Duration::from_secs(5)).await;
    let d = digests(&store);
    assert_eq!(
        d.len(),
        1,
        "one digest for the missed slots, not four: {d:?}"
    );
    assert!(
        d[0].1.title.contains("Sat 24 Oct 2026, 09:00"),
        "{}",
        d[0].1.title
    );
    step(Duration::from_secs(3600), Duration::from_secs(600)).await;
    assert_eq!(digests(&store).len(), 1, "and not again");
    trigger.trigger();
    task.await.unwrap();
    // A restart right after sends nothing more: the slot is recorded with the digest.
    let (trigger, shutdown) = mentiondesk::shutdown::channel();
    let task = tokio::spawn(digest::run(
        berlin_job("0 0 9 * * *"),
        store.clone(),
        vec!["acme".into()],
        Clock::tokio_at(utc("2026-10-24T13:05:00Z")),
        Arc::new(Notify::new()),
        shutdown,
    ));
    settle().await;
    step(Duration::from_secs(5), Duration::from_secs(5)).await;
    assert_eq!(digests(&store).len(), 1);
    trigger.trigger();
    task.await.unwrap();
}

fn spike_config() -> SpikeConfig {
    SpikeConfig {
        min_count: 10,
        ..SpikeConfig::default()
    }
}

fn rule() -> RuleConfig {
    RuleConfig {
        name: "acme".into(),
        query: "acme".into(),
        alert: vec![Target::Slack("#pr-alerts".into())],
        priority: Priority::Normal,
    }
}

/// 14 days of about three mentions an hour (2, 3 or 4), ending at `now - 1h`.
async fn usual_volume(store: &Store, now: DateTime<Utc>) {
    let mut n = 0;
    for hour in (1..=14 * 24).rev() {
        let start = now - CDuration::hours(hour + 1);
        for k in 0..(2 + hour % 3) {
            n += 1;
            let at = start + CDuration::minutes(5 + k * 10);
            let id = format!("u{n}");
            hit(
                store,
                &id,
                "acme",
                "hn",
                "acme works fine",
                0.0,
                false,
                Priority::Normal,
                at,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn spikes_alert_once_on_a_real_spike_and_never_on_noise() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = utc("2026-11-23T12:00:00Z");
    usual_volume(&store, now).await;
    let cfg = spike_config();
    let checked = mentiondesk::spikes::check(&store, &cfg, &rule(), &desk_config(), now)
        .await
        .unwrap();
    assert!(checked.is_none(), "the usual volume is not a spike");

    // 42 mentions in the last hour, most about an outage on reddit.
    for k in 0..42 {
        let source = if k < 30 { "reddit" } else { "hn" };
        let at = now - CDuration::minutes(50) + CDuration::seconds(k * 60);
        let text = if k % 2 == 0 {
            "acme login outage"
        } else {
            "acme outage again"
        };
        hit(
            &store,
            &format!("s{k}"),
            "acme",
            source,
            text,
            -0.5,
            true,
            Priority::Normal,
            at,
        )
        .await;
    }
    let later = now + CDuration::minutes(2);
    let alert = mentiondesk::spikes::check(&store, &cfg, &rule(), &desk_config(), later)
        .await
        .unwrap()
        .expect("a spike");
    let m = store.mention(&alert.mention_key).unwrap().unwrap().mention;
    assert!(
        m.text.starts_with(
            "42 mentions in the last hour; usually 3 ± 1 (mean ± σ per hour over the last 14 days)"
        ),
        "{}",
        m.text
    );
    assert!(
        m.text.contains("Top sources: reddit 30, hn 12"),
        "{}",
        m.text
    );
    assert!(m.text.contains("Top terms: outage 42"), "{}", m.text);
    assert_eq!(
        alert.priority,
        Priority::High,
        "a spike is one level above its rule"
    );
    assert!(alert.negative);
    assert_eq!(alert.state, AlertState::Open);
    // It is an alert like any other: posted, escalated, claimable.
    let outbox = store.outbox().unwrap();
    assert!(outbox
        .iter()
        .any(|(_, e)| e.alert_id == alert.id && e.action == OutboxAction::PostAlert));
    assert!(store
        .timers()
        .unwrap()
        .iter()
        .any(|t| t.alert_id == alert.id && t.kind == TimerKind::Escalate));
    let desk = Desk::new(store.clone(), desk_config(), Arc::new(Notify::new()));
    desk.act(alert.id, &"slack:U1".into(), Action::Claim, later)
        .await
        .unwrap();
    assert_eq!(
        store.alert(alert.id).unwrap().unwrap().state.name(),
        "claimed"
    );
    // The spike alert does not count as a mention of its own rule.
    assert_eq!(
        store
            .rule_hits(
                "acme",
                now - CDuration::hours(1),
                later + CDuration::seconds(1)
            )
            .unwrap()
            .len(),
        42
    );

    // Within the cooldown (6 h by default), the same spike does not alert again.
    for m in [5, 30, 120] {
        let again = mentiondesk::spikes::check(
            &store,
            &cfg,
            &rule(),
            &desk_config(),
            later + CDuration::minutes(m),
        )
        .await
        .unwrap();
        assert!(again.is_none(), "cooldown at +{m} min");
    }
    // The spike shows in the digest of the period.
    let r = report::gather(
        &store,
        &["acme".into()],
        Period {
            from: later - CDuration::hours(24),
            to: later + CDuration::minutes(1),
        },
        chrono_tz::UTC,
        later,
    )
    .unwrap();
    assert_eq!(r.spikes.len(), 1);
    assert!(
        r.top.iter().all(|i| i.id != alert.id),
        "spikes are listed on their own"
    );
}

#[tokio::test]
async fn a_new_rule_does_not_spike_before_it_has_a_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = utc("2026-11-23T12:00:00Z");
    for k in 0..50 {
        let at = now - CDuration::minutes(50) + CDuration::minutes(k);
        hit(
            &store,
            &format!("n{k}"),
            "acme",
            "hn",
            "acme launch",
            0.3,
            false,
            Priority::Normal,
            at,
        )
        .await;
    }
    let got = mentiondesk::spikes::check(&store, &spike_config(), &rule(), &desk_config(), now)
        .await
        .unwrap();
    assert!(
        got.is_none(),
        "no history yet: the first busy hour is not a spike"
    );
}

fn chat_config(slack: &FakeSlack, discord: &FakeDiscord, feed_url: &str) -> String {
    format!(
        r#"
[store]
path = "{{store}}"

[server]
listen = "127.0.0.1:{{port}}"

[slack]
bot_token = "{BOT_TOKEN}"
signing_secret = "{SIGNING_SECRET}"
api_url = "{slack_api}"

[discord]
bot_token = "{DISCORD_TOKEN}"
application_id = "{APP_ID}"
public_key = "{key}"
api_url = "{discord_api}"
guild_id = "{GUILD_ID}"

[[sources]]
name = "news"
kind = "rss"
url = "{feed_url}"
every = "1s"
allow_private = true

[[rules]]
name = "acme"
query = "acme"
alert = ["slack:#pr-alerts"]

[[digest]]
name = "Acme morning"
schedule = "0 0 9 1 1 * 2099"
timezone = "Europe/Berlin"
to = ["slack:#pr-alerts", "discord:{CHANNEL}"]
"#,
        slack_api = slack.api_url(),
        discord_api = discord.api_url(),
        key = public_key_hex(),
    )
}

fn assert_png(bytes: &[u8]) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("decodes");
    assert_eq!(
        (info.width, info.height),
        (
            mentiondesk::digest::chart::WIDTH,
            mentiondesk::digest::chart::HEIGHT
        )
    );
    let first = &buf[..info.line_size.min(buf.len())][..3];
    assert!(
        buf.chunks(3).any(|px| px != first),
        "the chart is not a blank image"
    );
}

async fn admin_digest(daemon: &Daemon, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(daemon.url("/admin/digest"))
        .bearer_auth(token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_now_uploads_the_chart_to_slack_and_discord() {
    let slack = FakeSlack::start().await;
    let discord = FakeDiscord::start().await;
    let feed = rss(&[
        (
            "g1".into(),
            "Acme outage <!channel>".into(),
            "acme is down @everyone, terrible".into(),
        ),
        ("g2".into(), "Acme love".into(), "acme is great".into()),
    ]);
    let feeds = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(feed))]).await;
    let daemon = Daemon::start(&chat_config(&slack, &discord, &feeds.url("/feed.xml"))).await;
    slack.wait_for_posts(2, 15).await;

    let token_path = daemon.dir.path().join("store.admin-token");
    let token = std::fs::read_to_string(&token_path).expect("the daemon wrote its admin token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_path).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "only the daemon's user can read the token"
        );
    }
    let wrong = admin_digest(&daemon, "not-the-token").await;
    assert_eq!(wrong.status(), 401);
    let proxied = reqwest::Client::new()
        .post(daemon.url("/admin/digest"))
        .bearer_auth(&token)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 403, "nothing forwarded by a proxy");
    let resp = admin_digest(&daemon, &token).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["queued"][0]["name"], "Acme morning");
    assert_eq!(v["queued"][0]["chart"], true);

    // Slack: getUploadURLExternal → bytes to the upload URL → completeUploadExternal.
    let completed = poll_until(15, "the Slack upload is completed", || {
        slack
            .state
            .lock()
            .unwrap()
            .completed_uploads
            .first()
            .cloned()
    })
    .await;
    assert_eq!(completed["channel_id"], "C0PRALERTS");
    let file_id = completed["files"][0]["id"].as_str().unwrap().to_string();
    let (ctype, bytes) = slack.state.lock().unwrap().uploads[&file_id].clone();
    assert_eq!(ctype, "image/png");
    assert_png(&bytes);
    let (name, _, alt) = slack.state.lock().unwrap().upload_urls[&file_id].clone();
    assert!(
        name.starts_with("mentiondesk-digest-") && name.ends_with(".png"),
        "{name}"
    );
    assert!(alt.contains("Mentions per hour"), "{alt}");
    let blocks = completed["blocks"].to_string();
    assert!(blocks.contains("Acme morning"), "{blocks}");
    assert!(blocks.contains("*New mentions:* 2"), "{blocks}");
    assert!(
        !blocks.contains("<!channel>"),
        "no ping from hostile titles: {blocks}"
    );
    assert!(blocks.contains("&lt;!channel&gt;"), "{blocks}");

    // Discord: one message with the chart attached and shown in the embed.
    let msg = poll_until(15, "the Discord digest", || {
        discord.messages().into_iter().find(|m| {
            m.body["embeds"][0]["title"]
                .as_str()
                .is_some_and(|t| t.contains("Acme morning"))
        })
    })
    .await;
    assert_eq!(msg.body["allowed_mentions"]["parse"], serde_json::json!([]));
    let image = msg.body["embeds"][0]["image"]["url"].as_str().unwrap();
    let files = discord.state.lock().unwrap().files.clone();
    let (mid, filename, ctype, bytes) = &files[0];
    assert_eq!(mid, &msg.id);
    assert_eq!(image, format!("attachment://{filename}"));
    assert_eq!(ctype, "image/png");
    assert_png(bytes);
    let desc = msg.body["embeds"][0]["description"].as_str().unwrap();
    assert!(desc.contains("**New mentions:** 2"), "{desc}");
    assert!(desc.contains("\\@everyone"), "{desc}");

    // Delivered once each, and the outbox is empty.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(slack.state.lock().unwrap().completed_uploads.len(), 1);
    assert_eq!(discord.state.lock().unwrap().files.len(), 1);
    assert_eq!(daemon.healthz().await["outbox_pending"], 0);
    let metrics = reqwest::get(daemon.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mentiondesk_digests_posted_total 2"),
        "{metrics}"
    );
    daemon.stop().await;
}

fn cli(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mentiondesk"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("MENTIONDESK_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_now_cli_asks_the_running_daemon_or_sends_it_itself() {
    let slack = FakeSlack::start().await;
    let discord = FakeDiscord::start().await;
    let feeds = FakeFeeds::start(vec![(
        "/feed.xml",
        FeedResponse::rss(rss(&[("g1".into(), "Acme".into(), "acme news".into())])),
    )])
    .await;
    let template = chat_config(&slack, &discord, &feeds.url("/feed.xml"));
    let daemon = Daemon::start(&template).await;
    slack.wait_for_posts(1, 15).await;
    let config_path = daemon.dir.path().join("mentiondesk.toml");
    let resolved = |port: u16| {
        template
            .replace(
                "{store}",
                &daemon.dir.path().join("store").display().to_string(),
            )
            .replace("{port}", &port.to_string())
    };
    std::fs::write(&config_path, resolved(daemon.port)).unwrap();

    // The daemon holds the store: the CLI asks it, and it posts.
    let out = tokio::task::spawn_blocking({
        let p = config_path.clone();
        move || cli(&p, &["digest", "--now"])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("queued \"📊 Acme morning"), "{stdout}");
    poll_until(15, "the digest from the daemon", || {
        (!slack.state.lock().unwrap().completed_uploads.is_empty()).then_some(())
    })
    .await;

    // An unknown digest name says which ones exist.
    let p = config_path.clone();
    let out = tokio::task::spawn_blocking(move || cli(&p, &["digest", "--now", "--name", "Nope"]))
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no digest named \"Nope\"; configured: Acme morning"),
        "{stderr}"
    );

    // Daemon stopped: the CLI opens the store itself and posts directly.
    let dir = daemon.stop().await;
    assert!(
        !dir.path().join("store.admin-token").exists(),
        "token removed on stop"
    );
    let p = config_path.clone();
    let out = tokio::task::spawn_blocking(move || cli(&p, &["digest", "--now"]))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("sent \"📊 Acme morning"), "{stdout}");
    assert_eq!(slack.state.lock().unwrap().completed_uploads.len(), 2);
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_posted_just_before_a_crash_is_found_and_not_posted_again() {
    use mentiondesk::chat::ChatPlatform;
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let platform = Arc::new(
        mentiondesk::chat::slack::SlackPlatform::new(&slack.api_url(), BOT_TOKEN).unwrap(),
    );
    let buckets = vec![mentiondesk::digest::chart::Bucket {
        label: "09:00".into(),
        negative: 1,
        neutral: 2,
        positive: 3,
    }];
    let chart = mentiondesk::digest::chart::render_png(&mentiondesk::digest::chart::ChartSpec {
        title: "t",
        buckets: &buckets,
    })
    .unwrap();
    let post = mentiondesk::model::DigestPost {
        title: "📊 Digest".into(),
        body: Note::new().text("hello"),
        chart: Some(chart),
        chart_alt: "alt".into(),
    };
    let target = Target::Slack("#pr-alerts".into());
    store
        .enqueue_digest::<()>(None, std::slice::from_ref(&target), &post, Utc::now())
        .await
        .unwrap();
    let (key, _) = store.outbox().unwrap()[0].clone();
    // The crash: marked in flight, uploaded, and the process died before finishing.
    store.mark_in_flight(key, Utc::now()).await.unwrap();
    platform
        .post_digest("#pr-alerts", &post, &format!("digest-{}", key.seq()))
        .await
        .unwrap();
    let platforms = mentiondesk::relay::Platforms {
        slack: Some(platform as Arc<dyn ChatPlatform>),
        discord: None,
        console: Arc::new(mentiondesk::chat::console::ConsolePlatform),
    };
    let (_trigger, shutdown) = mentiondesk::shutdown::channel();
    let metrics = mentiondesk::metrics::Metrics::default();
    mentiondesk::relay::deliver_due(&store, &platforms, &metrics, &shutdown).await;
    assert!(store.outbox().unwrap().is_empty(), "done after the lookup");
    let s = slack.state.lock().unwrap();
    assert_eq!(
        s.completed_uploads.len(),
        1,
        "found in history, not uploaded twice"
    );
    assert!(s.history_calls >= 1, "the relay looked before posting");
}

#[tokio::test]
async fn a_weekly_chart_has_seven_local_days_ending_today() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Monday 23 Nov 2026, 09:00 Berlin; the period since Friday 09:00 is 72 hours.
    let to = utc("2026-11-23T08:00:00Z");
    for (id, at) in [
        ("today", "2026-11-23T07:30:00Z"),   // Mon 08:30 Berlin
        ("sunday", "2026-11-22T12:00:00Z"),  // Sun 13:00
        ("tuesday", "2026-11-17T12:00:00Z"), // Tue 13:00, the first day shown
        ("too-old", "2026-11-16T12:00:00Z"), // Mon a week ago: not in the chart
    ] {
        hit(
            &store,
            id,
            "acme",
            "hn",
            "acme",
            0.0,
            false,
            Priority::Normal,
            utc(at),
        )
        .await;
    }
    let period = Period {
        from: utc("2026-11-20T08:00:00Z"),
        to,
    };
    let r = report::gather(
        &store,
        &["acme".into()],
        period,
        chrono_tz::Europe::Berlin,
        to,
    )
    .unwrap();
    let labels: Vec<&str> = r.chart.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(
        labels,
        ["Tue 17", "Wed 18", "Thu 19", "Fri 20", "Sat 21", "Sun 22", "Mon 23"]
    );
    let totals: Vec<u32> = r
        .chart
        .iter()
        .map(|b| b.negative + b.neutral + b.positive)
        .collect();
    assert_eq!(
        totals,
        [1, 0, 0, 0, 0, 1, 1],
        "today's mention is in today's bar"
    );
    assert_eq!(r.chart_title, "Mentions per day, last 7 days");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_app_without_files_write_still_gets_the_digest_text() {
    use mentiondesk::chat::ChatPlatform;
    let slack = FakeSlack::start().await;
    slack.state.lock().unwrap().upload_scope_missing = true;
    let platform =
        mentiondesk::chat::slack::SlackPlatform::new(&slack.api_url(), BOT_TOKEN).unwrap();
    let post = mentiondesk::model::DigestPost {
        title: "📊 Digest".into(),
        body: Note::new().bold("New mentions:").text(" 3"),
        chart: Some(vec![0x89, b'P', b'N', b'G']),
        chart_alt: "alt".into(),
    };
    platform
        .post_digest("#pr-alerts", &post, "digest-9")
        .await
        .unwrap();
    let posts = slack.posts();
    assert_eq!(posts.len(), 1, "posted as a plain message");
    assert!(posts[0].body["blocks"]
        .to_string()
        .contains("*New mentions:* 3"));
    assert!(slack.state.lock().unwrap().completed_uploads.is_empty());
    // And it is found again by its marker after a crash.
    let since = Utc::now() - CDuration::minutes(1);
    assert!(platform
        .find_digest("#pr-alerts", "digest-9", since)
        .await
        .unwrap()
        .is_some());
    assert!(platform
        .find_digest("#pr-alerts", "digest-10", since)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discord_digest_is_found_by_its_footer_after_a_crash() {
    use mentiondesk::chat::ChatPlatform;
    let discord = FakeDiscord::start().await;
    let platform =
        mentiondesk::chat::discord::DiscordPlatform::new(&discord.api_url(), DISCORD_TOKEN)
            .unwrap();
    let post = mentiondesk::model::DigestPost {
        title: "📊 Digest".into(),
        body: Note::new().text("hello"),
        chart: None,
        chart_alt: "alt".into(),
    };
    let since = Utc::now() - CDuration::minutes(1);
    assert!(platform
        .find_digest(CHANNEL, "digest-4", since)
        .await
        .unwrap()
        .is_none());
    let posted = platform
        .post_digest(CHANNEL, &post, "digest-4")
        .await
        .unwrap();
    let found = platform
        .find_digest(CHANNEL, "digest-4", since)
        .await
        .unwrap()
        .expect("found by footer, not only by the nonce");
    assert_eq!(found.message_id, posted.message_id);
    assert!(platform
        .find_digest(CHANNEL, "digest-5", since)
        .await
        .unwrap()
        .is_none());
}
