//! The digest and spike alerts: content read from a real store, the schedule under paused
//! tokio time (a daylight-saving change, a missed digest sent once at start-up), the chart
//! uploaded to a fake Slack (external upload flow) and a fake Discord (attachment) through
//! the real clients, `digest --now` through the daemon's admin endpoint and without a
//! daemon, and spikes on synthetic series.

use crate::common;

use chrono::{DateTime, Duration as CDuration, Utc};
use common::discord::*;
use common::*;
use mentiondesk::clock::Clock;
use mentiondesk::desk::config::DeskConfig;
use mentiondesk::desk::state::Action;
use mentiondesk::desk::Desk;
use mentiondesk::digest::report::{self, Period};
use mentiondesk::digest::schedule::Schedule;
use mentiondesk::digest::{DigestJob, Digests};
use mentiondesk::model::{AlertState, Mention, Note, Priority, Target, TimerKind};
use mentiondesk::rules::config::RuleConfig;
use mentiondesk::sources::SourceState;
use mentiondesk::spikes::config::SpikeConfig;
use mentiondesk::store::{Candidate, NewAlert, OutboxAction, Store};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

mod chat;
mod spikes;

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
        rating: None,
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
            relevance: None,
            held: false,
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

async fn digests(store: &Store) -> Vec<(Target, mentiondesk::model::DigestPost)> {
    store
        .outbox()
        .await
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
    let desk = Desk::new(store.clone(), desk_config());
    let alerts = store.alerts().await.unwrap();
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
    let r = report::gather(&store, &rules, period, chrono_tz::Europe::Berlin, to)
        .await
        .unwrap();
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

    // No alert is listed twice: one both unclaimed and among the top stays under "Oldest
    // unclaimed" and "Top mentions" says so.
    for i in &r.oldest_unclaimed {
        assert!(!r.top.iter().any(|t| t.id == i.id), "{:?} twice", i.id);
    }
    assert_eq!(r.top_skipped, 1, "the loved one is unclaimed");
    // A digest sent at 09:48 has its chart on whole hours after a partial first bar from
    // 09:48 the day before (see `a_digest_at_an_odd_minute_charts_the_whole_period`).
    let late = Period {
        from: period.from + CDuration::minutes(48),
        to: to + CDuration::minutes(48),
    };
    let r2 = report::gather(&store, &rules, late, chrono_tz::Europe::Berlin, late.to)
        .await
        .unwrap();
    let labels: Vec<&str> = r2.chart.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(labels[0], "09:48", "{labels:?}");
    assert!(labels[1..].iter().all(|l| l.ends_with(":00")), "{labels:?}");
    assert_eq!(
        labels[24], "09:00",
        "the hour the digest is sent in, so far"
    );

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
    assert!(
        text.contains("Covering the last day, compared with the day before."),
        "{text}"
    );
    assert!(
        text.contains("Top mentions: (1 more is listed under Oldest unclaimed)"),
        "{text}"
    );
    assert!(
        text.contains("🔴 Critical · #"),
        "priority in words: {text}"
    );
    assert!(
        !text.contains("(open) open") && !text.contains("  "),
        "{text}"
    );
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
        relevance: Default::default(),
        command: "/desk".into(),
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
    let task = tokio::spawn(
        Digests::new(vec![job], store.clone(), vec!["acme".into()], clock).run(shutdown),
    );
    settle().await;
    step(Duration::from_secs(60), Duration::from_secs(60)).await;
    assert!(
        digests(&store).await.is_empty(),
        "a new digest does not fire at start-up"
    );
    // Sunday 08:59 Berlin (CET, UTC+1) = 07:59 UTC: not yet.
    step(
        Duration::from_secs(19 * 3600 + 58 * 60),
        Duration::from_secs(3600),
    )
    .await;
    assert!(
        digests(&store).await.is_empty(),
        "nothing before 09:00 local"
    );
    // 09:00 CET = 08:00 UTC: an hour later in UTC than the day before (07:00 UTC in CEST).
    step(Duration::from_secs(3 * 60), Duration::from_secs(30)).await;
    let d = digests(&store).await;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        d[0].1.title,
        "📊 Morning digest — Sun 25 Oct 2026, 09:00 (Europe/Berlin)"
    );
    assert!(
        d[0].1.body.plain().contains("Covering the last 25 hours"),
        "the DST day is 25 hours long: {}",
        d[0].1.body.plain()
    );
    // Monday 09:00 CET, and no other digest in between.
    step(Duration::from_secs(23 * 3600), Duration::from_secs(3600)).await;
    assert_eq!(digests(&store).await.len(), 1);
    step(Duration::from_secs(3600 + 120), Duration::from_secs(30)).await;
    let d = digests(&store).await;
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
    let task = tokio::spawn(
        Digests::new(
            vec![berlin_job("0 0 9 * * *")],
            store.clone(),
            vec!["acme".into()],
            clock,
        )
        .run(shutdown),
    );
    settle().await;
    step(Duration::from_secs(5), Duration::from_secs(5)).await;
    let d = digests(&store).await;
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
    assert_eq!(digests(&store).await.len(), 1, "and not again");
    trigger.trigger();
    task.await.unwrap();
    // A restart right after sends nothing more: the slot is recorded with the digest.
    let (trigger, shutdown) = mentiondesk::shutdown::channel();
    let task = tokio::spawn(
        Digests::new(
            vec![berlin_job("0 0 9 * * *")],
            store.clone(),
            vec!["acme".into()],
            Clock::tokio_at(utc("2026-10-24T13:05:00Z")),
        )
        .run(shutdown),
    );
    settle().await;
    step(Duration::from_secs(5), Duration::from_secs(5)).await;
    assert_eq!(digests(&store).await.len(), 1);
    trigger.trigger();
    task.await.unwrap();
}

/// A digest sent at 09:48 covers 09:48 the day before to 09:48: its chart starts with the
/// partial hour 09:48–10:00, so the chart counts every new mention the text reports.
#[tokio::test]
async fn a_digest_at_an_odd_minute_charts_the_whole_period() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // 09:48 in Berlin.
    let to = utc("2026-11-23T08:48:00Z");
    let period = Period {
        from: to - CDuration::hours(24),
        to,
    };
    for (i, at) in [
        period.from - CDuration::minutes(5),
        period.from + CDuration::minutes(3),
        period.from + CDuration::minutes(11),
        to - CDuration::hours(5),
        to - CDuration::minutes(1),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("c{i}");
        hit(
            &store,
            &id,
            "acme",
            "hn",
            "acme",
            0.0,
            false,
            Priority::Normal,
            at,
        )
        .await;
    }
    let tz = chrono_tz::Europe::Berlin;
    let r = report::gather(&store, &["acme".into()], period, tz, to)
        .await
        .unwrap();
    let total: u32 = r
        .chart
        .iter()
        .map(|b| b.negative + b.neutral + b.positive)
        .sum();
    assert_eq!(
        r.now.mentions, 4,
        "the one before 09:48 is not in the period"
    );
    assert_eq!(total as usize, r.now.mentions, "{:?}", r.chart);
    assert_eq!(r.chart.len(), 25);
    assert_eq!(r.chart[0].label, "09:48", "a partial first bar");
    assert_eq!(r.chart[0].neutral, 2);
    assert_eq!(r.chart[1].label, "10:00");
    assert_eq!(r.chart[24].label, "09:00");
    assert_eq!(r.chart_title, "Mentions per hour, last 24 hours");
    let text = report::render(&r, "Digest", to).1.plain();
    assert!(text.contains("New mentions: 4"), "{text}");
}

/// An open spike of the period is listed under "Spikes" only, not again under "Oldest
/// unclaimed"; and when every top mention is under "Oldest unclaimed", "Top mentions" says
/// so plainly.
#[tokio::test]
async fn an_open_spike_is_listed_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let to = utc("2026-11-23T08:00:00Z");
    let period = Period {
        from: to - CDuration::hours(24),
        to,
    };
    // Stored as the spike watch stores its alerts (its own source name).
    hit(
        &store,
        "spike-1",
        "acme",
        "spike watch",
        "42 mentions in the last hour",
        -0.5,
        true,
        Priority::High,
        to - CDuration::hours(3),
    )
    .await;
    hit(
        &store,
        "m1",
        "acme",
        "hn",
        "acme is down",
        -0.5,
        true,
        Priority::High,
        to - CDuration::hours(2),
    )
    .await;
    let r = report::gather(&store, &["acme".into()], period, chrono_tz::UTC, to)
        .await
        .unwrap();
    let spike = r.spikes.first().expect("the spike").id;
    assert!(r.oldest_unclaimed.iter().all(|i| i.id != spike));
    let text = report::render(&r, "Digest", to).1.plain();
    assert!(text.contains("2 waiting for someone in all"), "{text}");
    assert_eq!(text.matches(&format!("· #{spike} ·")).count(), 1, "{text}");
    assert!(
        text.contains("Top mentions: the only one is listed under Oldest unclaimed"),
        "{text}"
    );
    assert!(!text.contains("no others"), "{text}");
}
