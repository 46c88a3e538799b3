//! Escalation and reminder rounds through the strict Slack and Discord fakes: the timers that
//! come due in one tick make one message per round (not one or two per alert), with each
//! alert's headline, age and a link to its message, one ping, within each platform's limits;
//! and a crash mid-round neither repeats nor loses the round.

use crate::common;

use common::discord::{FakeDiscord, CHANNEL};
use common::faults::Fault;
use common::*;
use mentiondesk::chat::ChatPlatform;
use mentiondesk::clock::Clock;
use mentiondesk::desk::config::DeskConfig;
use mentiondesk::desk::{timers, Desk};
use mentiondesk::model::{Mention, Priority, Target, TimerKind};
use mentiondesk::relay::Platforms;
use mentiondesk::sources::SourceState;
use mentiondesk::store::{Candidate, NewAlert, Store};
use std::sync::Arc;
use std::time::Duration;

fn desk(store: &Store, escalate_to: Target) -> Desk {
    let cfg = DeskConfig {
        command: "/desk".into(),
        escalate_after: Duration::from_secs(15 * 60),
        escalate_to: Some(escalate_to),
        remind_after: None,
        allowed: vec![],
        timezone: chrono_tz::UTC,
    };
    Desk::new(store.clone(), cfg)
}

/// Stores `n` alerts for `target`, all created at `at` and due to escalate 15 minutes later,
/// each with the title `title(i)`.
async fn stored_alerts(
    store: &Store,
    target: &Target,
    n: usize,
    at: chrono::DateTime<chrono::Utc>,
    title: impl Fn(usize) -> String,
) {
    let batch: Vec<Candidate> = (0..n)
        .map(|i| Candidate {
            dedup_keys: vec![format!("item:{i}")],
            mention: Mention {
                item_id: format!("{i}"),
                source: "feed".into(),
                source_kind: "rss".into(),
                url: Some(format!("https://example.com/{i}")),
                title: Some(title(i)),
                text: "acme broke".into(),
                author: None,
                author_reach: None,
                published: None,
                lang: None,
                rating: None,
            },
            alert: Some(NewAlert {
                rules: vec!["acme".into()],
                priority: Priority::High,
                sentiment: -0.5,
                negative: true,
                targets: vec![target.clone()],
                highlights: vec![],
                timers: vec![(TimerKind::Escalate, at + chrono::Duration::minutes(15))],
                thread_keys: vec![],
                repeat_of: None,
                log_hit: true,
            }),
        })
        .collect();
    store
        .accept("feed", &SourceState::default(), &batch, at)
        .await
        .unwrap();
}

async fn relay_once(store: &Store, platforms: &Platforms) {
    let (_trigger, shutdown) = mentiondesk::shutdown::channel();
    let metrics = mentiondesk::metrics::Metrics::default();
    mentiondesk::relay::deliver_due(store, platforms, &metrics, &shutdown).await;
}

/// Slack as the relay sees it, after its credential check (which tells it the workspace's
/// address, for links).
async fn slack_platforms(slack: &FakeSlack) -> Platforms {
    let p = mentiondesk::chat::slack::SlackPlatform::new(&slack.api_url(), BOT_TOKEN).unwrap();
    p.verify().await.unwrap();
    Platforms {
        slack: Some(Arc::new(p) as Arc<dyn ChatPlatform>),
        discord: None,
        console: Arc::new(mentiondesk::chat::console::ConsolePlatform),
    }
}

fn discord_platforms(discord: &FakeDiscord) -> Platforms {
    let p = mentiondesk::chat::discord::DiscordPlatform::new(
        &discord.api_url(),
        common::discord::DISCORD_TOKEN,
    )
    .unwrap();
    Platforms {
        slack: None,
        discord: Some(Arc::new(p) as Arc<dyn ChatPlatform>),
        console: Arc::new(mentiondesk::chat::console::ConsolePlatform),
    }
}

/// Top-level Slack messages in `channel` that are escalation rounds.
fn slack_rounds(slack: &FakeSlack, channel: &str) -> Vec<String> {
    slack
        .posts()
        .into_iter()
        .filter(|p| p.channel == channel && p.body["thread_ts"].is_null())
        .map(|p| p.body.to_string())
        .filter(|b| b.contains("been unclaimed"))
        .collect()
}

/// The section text of a Slack message, joined.
fn slack_sections(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["text"]["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Five alerts due in the same tick, escalated to a user group: one message in their
/// channel that lists all five (headline, age, link to each alert's message) and pings the
/// group once; no note in any alert's thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_alerts_due_at_once_make_one_round_message_with_one_ping() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let platforms = slack_platforms(&slack).await;
    let target = Target::Slack("#pr-alerts".into());
    let t0 = chrono::Utc::now();
    stored_alerts(&store, &target, 5, t0, |i| {
        format!("Outage report {i} <!channel> & more")
    })
    .await;
    relay_once(&store, &platforms).await;
    let roots = slack.roots();
    assert_eq!(roots.len(), 5, "the five alerts are posted");

    let desk = desk(&store, Target::Slack("S0PRLEADS".into()));
    let clock = Clock::tokio_at(t0 + chrono::Duration::minutes(17));
    assert_eq!(timers::fire_due(&desk, &store, &clock).await, 5);
    relay_once(&store, &platforms).await;
    assert!(store.outbox().unwrap().is_empty(), "all delivered");

    let rounds = slack_rounds(&slack, "C0PRALERTS");
    assert_eq!(rounds.len(), 1, "one message for the round: {rounds:#?}");
    let text = slack_sections(&rounds[0]);
    assert!(
        text.contains("5 alerts have been unclaimed for 15 min or more"),
        "{text}"
    );
    assert_eq!(text.matches("<!subteam^S0PRLEADS>").count(), 1, "{text}");
    assert_eq!(text.matches("\n• ").count(), 5, "five entries: {text}");
    for root in roots {
        let link = format!(
            "<https://fake-workspace.slack.com/archives/C0PRALERTS/p{}|",
            root.ts.replace('.', "")
        );
        assert!(text.contains(&link), "a link to {}: {text}", root.ts);
        assert!(slack.thread(&root.ts).is_empty(), "no thread note");
    }
    assert!(text.contains("17 min old"), "{text}");
    assert!(text.contains("High · rule acme"), "{text}");
    // Titles are untrusted: escaped, so they ping nobody.
    assert!(!text.contains("<!channel>"), "{text}");
    assert!(text.contains("&lt;!channel&gt; &amp; more"), "{text}");
    // Nothing is due any more.
    assert_eq!(store.timers().unwrap().len(), 0);
}

/// A crash while the round message is on its way: after a restart (a new store handle on
/// the same files, a fresh relay) the round is in the escalation channel exactly once, and
/// the timers that made it do not fire again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_round_posts_the_round_once() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let t0 = chrono::Utc::now();
    let target = Target::Slack("#pr-alerts".into());
    {
        let store = Store::open(dir.path()).unwrap();
        let platforms = slack_platforms(&slack).await;
        stored_alerts(&store, &target, 5, t0, |i| format!("Outage {i}")).await;
        relay_once(&store, &platforms).await;
        let desk = desk(&store, Target::Slack("#pr-leads".into()));
        let clock = Clock::tokio_at(t0 + chrono::Duration::minutes(16));
        assert_eq!(timers::fire_due(&desk, &store, &clock).await, 5);
        // The round reaches Slack; the process dies before the answer is recorded.
        slack
            .faults
            .always("chat.postMessage", Fault::Slow(Duration::from_secs(30)));
        let (store2, platforms2) = (store.clone(), platforms.clone());
        let run = tokio::spawn(async move { relay_once(&store2, &platforms2).await });
        slack
            .wait_until(30, "the round reaching Slack", |s| {
                (!slack_rounds(s, "C0PRLEADS0").is_empty()).then_some(())
            })
            .await;
        run.abort();
        let _ = run.await;
        store.flush().await.unwrap();
    }
    slack.faults.clear();

    let store = Store::open(dir.path()).unwrap();
    let platforms = slack_platforms(&slack).await;
    let desk = desk(&store, Target::Slack("#pr-leads".into()));
    let clock = Clock::tokio_at(t0 + chrono::Duration::minutes(20));
    assert_eq!(
        timers::fire_due(&desk, &store, &clock).await,
        0,
        "the round's timers went with it"
    );
    relay_once(&store, &platforms).await;
    assert!(store.outbox().unwrap().is_empty(), "done after the lookup");
    let rounds = slack_rounds(&slack, "C0PRLEADS0");
    assert_eq!(rounds.len(), 1, "the round is in #pr-leads once");
    assert_eq!(slack_sections(&rounds[0]).matches("\n• ").count(), 5);
}

/// Owners get one reminder each per round, listing their alerts and pinging them once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_are_one_message_per_owner() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let platforms = slack_platforms(&slack).await;
    let target = Target::Slack("#pr-alerts".into());
    let t0 = chrono::Utc::now();
    stored_alerts(&store, &target, 3, t0, |i| format!("Complaint {i}")).await;
    relay_once(&store, &platforms).await;
    let cfg = DeskConfig {
        remind_after: Some(Duration::from_secs(3600)),
        escalate_to: None,
        ..DeskConfig::default()
    };
    let desk = Desk::new(store.clone(), cfg);
    let claim_at = t0 + chrono::Duration::minutes(5);
    for (id, who) in [
        (1, "slack:U0ALICE"),
        (2, "slack:U0BOB"),
        (3, "slack:U0ALICE"),
    ] {
        let o = desk
            .act(
                mentiondesk::model::AlertId(id),
                &who.to_string(),
                mentiondesk::desk::state::Action::Claim,
                claim_at,
            )
            .await
            .unwrap();
        assert!(o.applied);
    }
    relay_once(&store, &platforms).await;
    let clock = Clock::tokio_at(claim_at + chrono::Duration::minutes(61));
    assert_eq!(timers::fire_due(&desk, &store, &clock).await, 3);
    relay_once(&store, &platforms).await;
    let reminders: Vec<String> = slack
        .posts()
        .into_iter()
        .filter(|p| {
            p.body["thread_ts"].is_null() && p.body.to_string().contains("still unresolved")
        })
        .map(|p| slack_sections(&p.body.to_string()))
        .collect();
    assert_eq!(reminders.len(), 2, "one per owner: {reminders:#?}");
    let alice = reminders
        .iter()
        .find(|r| r.contains("<@U0ALICE>"))
        .expect("Alice's");
    assert_eq!(alice.matches("<@U0ALICE>").count(), 1, "{alice}");
    assert!(
        alice.contains("2 alerts you claimed are still unresolved"),
        "{alice}"
    );
    assert!(
        alice.contains("Complaint 0") && alice.contains("Complaint 2"),
        "{alice}"
    );
    assert!(alice.contains("yours for 1 h 1 min"), "{alice}");
    let bob = reminders
        .iter()
        .find(|r| r.contains("<@U0BOB>"))
        .expect("Bob's");
    assert!(
        bob.contains("1 alert you claimed is still unresolved"),
        "{bob}"
    );
    assert!(
        bob.contains("Complaint 1") && !bob.contains("Complaint 0"),
        "{bob}"
    );
}

/// More alerts in one round than one message holds: Discord's content stays within 2,000
/// characters (the fake refuses more), lists as many as fit and says how many more there
/// are; each listed one links to its Discord message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_round_fits_discord_and_says_how_many_more() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let platforms = discord_platforms(&discord);
    let target = Target::Discord(CHANNEL.into());
    let t0 = chrono::Utc::now();
    // Titles full of characters Discord must escape (each one doubles).
    stored_alerts(&store, &target, 40, t0, |i| {
        format!("{i} {}", "*_~`|".repeat(30))
    })
    .await;
    relay_once(&store, &platforms).await;
    assert!(store.outbox().unwrap().is_empty(), "alerts posted");
    let roots = discord.roots().len();

    let desk = desk(&store, target.clone());
    let clock = Clock::tokio_at(t0 + chrono::Duration::minutes(16));
    assert_eq!(timers::fire_due(&desk, &store, &clock).await, 40);
    relay_once(&store, &platforms).await;
    assert!(store.outbox().unwrap().is_empty(), "the round is delivered");
    assert!(discord.take_violations().is_empty());
    let new: Vec<_> = discord.roots().into_iter().skip(roots).collect();
    assert_eq!(new.len(), 1, "one message for the round");
    let content = new[0].body["content"].as_str().unwrap().to_string();
    assert!(content.chars().count() <= 2000, "{}", content.len());
    assert!(
        new[0].body["embeds"]
            .as_array()
            .is_none_or(|e| e.is_empty()),
        "all of it in the content"
    );
    assert!(
        content.contains("40 alerts have been unclaimed"),
        "{content}"
    );
    let listed = content.matches("\n• ").count();
    assert!(listed >= 3, "{content}");
    assert!(
        content.contains(&format!("…and {} more", 40 - listed)),
        "{content}"
    );
    assert_eq!(
        content
            .matches(&format!(
                "](<https://discord.com/channels/{}/{CHANNEL}/",
                common::discord::GUILD_ID
            ))
            .count(),
        listed,
        "each listed alert links to its message: {content}"
    );
    assert_eq!(
        new[0].body["allowed_mentions"]["parse"],
        serde_json::json!([])
    );
}

/// The same on Slack: sections within 3,000 characters and the block limit (the fake
/// refuses more), "…and N more" for the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_round_fits_slack_and_says_how_many_more() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let platforms = slack_platforms(&slack).await;
    let target = Target::Slack("#pr-alerts".into());
    let t0 = chrono::Utc::now();
    // `&` becomes `&amp;` on Slack: five times longer.
    stored_alerts(&store, &target, 60, t0, |i| {
        format!("{i} {}", "&".repeat(100))
    })
    .await;
    relay_once(&store, &platforms).await;
    let desk = desk(&store, Target::Slack("#pr-leads".into()));
    let clock = Clock::tokio_at(t0 + chrono::Duration::minutes(16));
    assert_eq!(timers::fire_due(&desk, &store, &clock).await, 60);
    relay_once(&store, &platforms).await;
    assert!(store.outbox().unwrap().is_empty(), "the round is delivered");
    assert!(slack.take_violations().is_empty());
    let rounds = slack_rounds(&slack, "C0PRLEADS0");
    assert_eq!(rounds.len(), 1);
    let text = slack_sections(&rounds[0]);
    let listed = text.matches("\n• ").count();
    assert!((3..60).contains(&listed), "{text}");
    assert!(
        text.contains(&format!("…and {} more", 60 - listed)),
        "{text}"
    );
}
