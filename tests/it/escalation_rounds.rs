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
    numbered_alerts(store, target, 0..n, at, title).await
}

/// Like `stored_alerts`, for the items numbered `items` (so later batches are new mentions).
async fn numbered_alerts(
    store: &Store,
    target: &Target,
    items: std::ops::Range<usize>,
    at: chrono::DateTime<chrono::Utc>,
    title: impl Fn(usize) -> String,
) {
    let batch: Vec<Candidate> = items
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
                relevance: None,
                held: false,
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
    assert!(store.outbox().await.unwrap().is_empty(), "all delivered");

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
    assert_eq!(store.timers().await.unwrap().len(), 0);
}

/// More timers due than one round takes (`ROUND_MAX`, here 3 so the test stays small):
/// the soonest go first, the rest make the next ticks' rounds; each round's message counts
/// and lists only its own alerts, and every alert escalates exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_takes_at_most_its_limit_and_the_next_tick_takes_the_rest() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let platforms = slack_platforms(&slack).await;
    let target = Target::Slack("#pr-alerts".into());
    let t0 = chrono::Utc::now();
    // Items 0..4 first, 4..7 a minute later: the first round takes three of the older four.
    numbered_alerts(
        &store,
        &target,
        4..7,
        t0 + chrono::Duration::minutes(1),
        |i| format!("Late {i}"),
    )
    .await;
    numbered_alerts(&store, &target, 0..4, t0, |i| format!("Early {i}")).await;
    relay_once(&store, &platforms).await;
    assert_eq!(slack.roots().len(), 7);

    let desk = desk(&store, Target::Slack("S0PRLEADS".into()));
    let clock = Clock::tokio_at(t0 + chrono::Duration::minutes(17));
    let mut fired = vec![];
    loop {
        let n = timers::fire_due_at_most(&desk, &store, &clock, 3).await;
        if n == 0 {
            break;
        }
        fired.push(n);
        relay_once(&store, &platforms).await;
    }
    assert_eq!(fired, [3, 3, 1]);
    let rounds: Vec<String> = slack_rounds(&slack, "C0PRALERTS")
        .iter()
        .map(|r| slack_sections(r))
        .collect();
    assert_eq!(rounds.len(), 3, "{rounds:#?}");
    for (round, n) in rounds.iter().zip(["3 alerts", "3 alerts", "1 alert has"]) {
        assert!(round.contains(n), "{round}");
    }
    assert!(
        ["Early 0", "Early 1", "Early 2"]
            .iter()
            .all(|t| rounds[0].contains(t))
            && !rounds[0].contains("Late"),
        "the soonest due first: {}",
        rounds[0]
    );
    for i in 0..4 {
        let t = format!("Early {i}");
        assert_eq!(rounds.iter().filter(|r| r.contains(&t)).count(), 1, "{t}");
    }
    for i in 4..7 {
        let t = format!("Late {i}");
        assert_eq!(rounds.iter().filter(|r| r.contains(&t)).count(), 1, "{t}");
    }
    assert_eq!(store.timers().await.unwrap().len(), 0);
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
    assert!(
        store.outbox().await.unwrap().is_empty(),
        "done after the lookup"
    );
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
    assert!(store.outbox().await.unwrap().is_empty(), "alerts posted");
    let roots = discord.roots().len();

    let desk = desk(&store, target.clone());
    let clock = Clock::tokio_at(t0 + chrono::Duration::minutes(16));
    assert_eq!(timers::fire_due(&desk, &store, &clock).await, 40);
    relay_once(&store, &platforms).await;
    assert!(
        store.outbox().await.unwrap().is_empty(),
        "the round is delivered"
    );
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
    assert!(
        store.outbox().await.unwrap().is_empty(),
        "the round is delivered"
    );
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

/// Alerts created minutes apart (separate polls, a streaming source): when the first one is
/// due, the others that reach `escalate_after` within the round window (a fifth of it, here
/// 3 minutes) are in the same round: one message, one ping, and no second round for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_created_minutes_apart_make_one_round() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let platforms = slack_platforms(&slack).await;
    let target = Target::Slack("#pr-alerts".into());
    let t0 = chrono::Utc::now();
    for (i, secs) in [0, 40, 100, 170].into_iter().enumerate() {
        let at = t0 + chrono::Duration::seconds(secs);
        numbered_alerts(&store, &target, i..i + 1, at, |i| format!("Spread {i}")).await;
    }
    // One more, well outside the window: it gets its own round later.
    numbered_alerts(
        &store,
        &target,
        4..5,
        t0 + chrono::Duration::minutes(10),
        |i| format!("Spread {i}"),
    )
    .await;
    relay_once(&store, &platforms).await;
    assert_eq!(slack.roots().len(), 5);

    let desk = desk(&store, Target::Slack("S0PRLEADS".into()));
    let first_due = t0 + chrono::Duration::minutes(15) + chrono::Duration::seconds(5);
    assert_eq!(
        timers::fire_due(&desk, &store, &Clock::tokio_at(first_due)).await,
        4
    );
    relay_once(&store, &platforms).await;
    let rounds = slack_rounds(&slack, "C0PRALERTS");
    assert_eq!(rounds.len(), 1, "one message for the burst: {rounds:#?}");
    let text = slack_sections(&rounds[0]);
    assert!(
        text.contains("4 alerts have been unclaimed for 12 min or more"),
        "the head holds for the youngest listed: {text}"
    );
    assert_eq!(text.matches("<!subteam^S0PRLEADS>").count(), 1, "{text}");
    for i in 0..4 {
        assert!(text.contains(&format!("Spread {i}")), "{text}");
    }
    assert!(!text.contains("Spread 4"), "{text}");

    // When the others would have been due, nothing more is posted for them.
    let later = Clock::tokio_at(t0 + chrono::Duration::minutes(19));
    assert_eq!(timers::fire_due(&desk, &store, &later).await, 0);
    relay_once(&store, &platforms).await;
    assert_eq!(slack_rounds(&slack, "C0PRALERTS").len(), 1);
    // The last one has its own round when it is due.
    let last = Clock::tokio_at(t0 + chrono::Duration::minutes(25) + chrono::Duration::seconds(5));
    assert_eq!(timers::fire_due(&desk, &store, &last).await, 1);
    relay_once(&store, &platforms).await;
    let rounds = slack_rounds(&slack, "C0PRALERTS");
    assert_eq!(rounds.len(), 2);
    assert!(slack_sections(&rounds[1]).contains("Spread 4"));
    assert!(store.timers().await.unwrap().is_empty());
}

/// Alerts posted to two channels, escalated to a user group: a message in each channel, but
/// the group is pinged once for the round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_group_is_pinged_once_per_round_across_channels() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let platforms = slack_platforms(&slack).await;
    let t0 = chrono::Utc::now();
    let alerts = Target::Slack("#pr-alerts".into());
    let leads = Target::Slack("#pr-leads".into());
    numbered_alerts(&store, &alerts, 0..2, t0, |i| format!("Here {i}")).await;
    numbered_alerts(&store, &leads, 2..4, t0, |i| format!("There {i}")).await;
    relay_once(&store, &platforms).await;

    let desk = desk(&store, Target::Slack("S0PRLEADS".into()));
    let clock = Clock::tokio_at(t0 + chrono::Duration::minutes(16));
    assert_eq!(timers::fire_due(&desk, &store, &clock).await, 4);
    relay_once(&store, &platforms).await;
    let here = slack_rounds(&slack, "C0PRALERTS");
    let there = slack_rounds(&slack, "C0PRLEADS0");
    assert_eq!((here.len(), there.len()), (1, 1), "{here:#?} {there:#?}");
    let pings: usize = here
        .iter()
        .chain(&there)
        .map(|b| slack_sections(b).matches("<!subteam^S0PRLEADS>").count())
        .sum();
    assert_eq!(pings, 1, "{here:#?} {there:#?}");
    assert!(slack_sections(&there[0]).contains("There 2"));
}

/// A claim and an unclaim between the timer tick reading the due timers and the round being
/// written: the alert is open again and looks as before, but its escalation starts over, so
/// the stale round must not escalate it (nor drop its new timer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_and_unclaim_during_a_round_starts_the_escalation_over() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let platforms = slack_platforms(&slack).await;
    let target = Target::Slack("#pr-alerts".into());
    let t0 = chrono::Utc::now();
    stored_alerts(&store, &target, 1, t0, |i| format!("Bounce {i}")).await;
    relay_once(&store, &platforms).await;
    let desk = desk(&store, Target::Slack("S0PRLEADS".into()));
    // A first claim and unclaim, so the alert's bytes repeat after the second pair.
    let who = "slack:U0ALICE".to_string();
    let at = t0 + chrono::Duration::minutes(1);
    for action in [
        mentiondesk::desk::state::Action::Claim,
        mentiondesk::desk::state::Action::Unclaim,
    ] {
        assert!(
            desk.act(mentiondesk::model::AlertId(1), &who, action, at)
                .await
                .unwrap()
                .applied
        );
    }
    let due = store.timers().await.unwrap();
    assert_eq!(due.len(), 1);
    let fire_at = due[0].due + chrono::Duration::seconds(1);
    // The tick has read `due`; now the alert is claimed and given back.
    let again = t0 + chrono::Duration::minutes(10);
    for action in [
        mentiondesk::desk::state::Action::Claim,
        mentiondesk::desk::state::Action::Unclaim,
    ] {
        assert!(
            desk.act(mentiondesk::model::AlertId(1), &who, action, again)
                .await
                .unwrap()
                .applied
        );
    }
    let rearmed = store.timers().await.unwrap();
    desk.fire_round(&due, fire_at).await.unwrap();
    relay_once(&store, &platforms).await;
    assert!(
        slack_rounds(&slack, "C0PRALERTS").is_empty(),
        "not escalated"
    );
    assert_eq!(
        store.timers().await.unwrap(),
        rearmed,
        "its new timer stays"
    );
}

/// The Discord links of a round, `](<https://discord.com/channels/<guild>/<channel>/…`.
fn discord_links(content: &str) -> usize {
    content
        .matches(&format!(
            "](<https://discord.com/channels/{}/{CHANNEL}/",
            common::discord::GUILD_ID
        ))
        .count()
}

/// The escalation round posted on Discord after `relay_once` (the newest root message).
async fn discord_round(
    discord: &FakeDiscord,
    store: &Store,
    platforms: &Platforms,
    t0: chrono::DateTime<chrono::Utc>,
) -> String {
    let desk = desk(store, Target::Discord(CHANNEL.into()));
    let clock = Clock::tokio_at(t0 + chrono::Duration::minutes(16));
    assert!(timers::fire_due(&desk, store, &clock).await > 0);
    relay_once(store, platforms).await;
    assert!(
        store.outbox().await.unwrap().is_empty(),
        "the round is delivered"
    );
    let round = discord
        .roots()
        .into_iter()
        .rev()
        .find(|m| m.body.to_string().contains("been unclaimed"))
        .expect("a round");
    round.body["content"].as_str().unwrap().to_string()
}

/// An alert whose thread could not be started (no thread object tells the guild) still gets
/// a link in the round: the channel's guild is read from `GET /channels/{id}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discord_alert_without_a_thread_still_gets_a_link() {
    use common::discord::ops;
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let platforms = discord_platforms(&discord);
    let target = Target::Discord(CHANNEL.into());
    let t0 = chrono::Utc::now();
    discord.faults.always(ops::START_THREAD, Fault::http(500));
    stored_alerts(&store, &target, 2, t0, |i| format!("No thread {i}")).await;
    relay_once(&store, &platforms).await;
    assert!(store.outbox().await.unwrap().is_empty(), "alerts posted");
    assert!(discord.faults.count(ops::START_THREAD) >= 2);
    discord.faults.clear();
    let content = discord_round(&discord, &store, &platforms, t0).await;
    assert_eq!(discord_links(&content), 2, "{content}");
    assert!(!content.contains("/desk claim"), "{content}");
}

/// An alert posted just before a crash and found again after the restart (a fresh client
/// that started no thread) links to its message in the round too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discord_alert_found_after_a_crash_still_gets_a_link() {
    use common::discord::ops;
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let target = Target::Discord(CHANNEL.into());
    let t0 = chrono::Utc::now();
    stored_alerts(&store, &target, 1, t0, |i| format!("Crashed {i}")).await;
    {
        let platforms = discord_platforms(&discord);
        discord
            .faults
            .always(ops::CREATE_MESSAGE, Fault::Slow(Duration::from_secs(30)));
        let (store2, platforms2) = (store.clone(), platforms.clone());
        let run = tokio::spawn(async move { relay_once(&store2, &platforms2).await });
        discord
            .wait_until(30, "the alert reaching Discord", |d| {
                (!d.roots().is_empty()).then_some(())
            })
            .await;
        run.abort();
        let _ = run.await;
        discord.faults.clear();
    }
    // The restart: a new client, which finds the alert instead of posting it again.
    let platforms = discord_platforms(&discord);
    relay_once(&store, &platforms).await;
    assert!(
        store.outbox().await.unwrap().is_empty(),
        "found, not posted again"
    );
    assert_eq!(discord.roots().len(), 1);
    assert_eq!(
        discord.faults.count(ops::START_THREAD),
        0,
        "no thread told the guild"
    );
    let content = discord_round(&discord, &store, &platforms, t0).await;
    assert_eq!(discord_links(&content), 1, "{content}");
}

/// Slack's links need the workspace address `auth.test` gives at start-up; when that check
/// failed (Slack briefly down), it is asked again with the next alert, and the round links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_alert_still_gets_a_link_when_the_start_up_check_failed() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = mentiondesk::chat::slack::SlackPlatform::new(&slack.api_url(), BOT_TOKEN).unwrap();
    slack.faults.next("auth.test", 1, Fault::http(503));
    assert!(p.verify().await.is_err(), "the start-up check fails");
    let platforms = Platforms {
        slack: Some(Arc::new(p) as Arc<dyn ChatPlatform>),
        discord: None,
        console: Arc::new(mentiondesk::chat::console::ConsolePlatform),
    };
    let target = Target::Slack("#pr-alerts".into());
    let t0 = chrono::Utc::now();
    stored_alerts(&store, &target, 1, t0, |i| format!("Linked {i}")).await;
    relay_once(&store, &platforms).await;
    let root = slack.roots().pop().expect("posted");
    let desk = desk(&store, Target::Slack("#pr-leads".into()));
    let clock = Clock::tokio_at(t0 + chrono::Duration::minutes(16));
    assert_eq!(timers::fire_due(&desk, &store, &clock).await, 1);
    relay_once(&store, &platforms).await;
    let rounds = slack_rounds(&slack, "C0PRLEADS0");
    assert_eq!(rounds.len(), 1);
    let text = slack_sections(&rounds[0]);
    let link = format!(
        "<https://fake-workspace.slack.com/archives/C0PRALERTS/p{}|",
        root.ts.replace('.', "")
    );
    assert!(text.contains(&link), "{text}");
}

/// A restart long after a big ingest finds thousands of escalations due at once. They make
/// one message (listing what fits, counting the rest) and every alert is escalated exactly
/// once; the store writes such a round a chunk of alerts per transaction (256), so 1,000
/// alerts span four, the first carrying the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_due_escalations_makes_one_message_and_escalates_each_alert_once() {
    use mentiondesk::store::OutboxAction;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let target = Target::Slack("#pr-alerts".into());
    let leads = Target::Slack("#pr-leads".into());
    let t0 = chrono::Utc::now() - chrono::Duration::hours(3);
    stored_alerts(&store, &target, 1000, t0, |i| format!("Complaint {i}")).await;
    let desk = desk(&store, leads.clone());
    let clock = Clock::tokio_at(t0 + chrono::Duration::hours(2));
    assert_eq!(timers::fire_due(&desk, &store, &clock).await, 1000);

    let rounds: Vec<(Target, String)> = store
        .outbox()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|(_, e)| match e.action {
            OutboxAction::ChannelNote(n) => Some((e.target, n.plain())),
            _ => None,
        })
        .collect();
    assert_eq!(rounds.len(), 1, "one message for the round");
    let (to, text) = &rounds[0];
    assert_eq!(to, &leads);
    assert!(
        text.contains("1000 alerts have been unclaimed for 15 min or more"),
        "{text}"
    );
    let listed = text.matches("\n• ").count();
    assert!((3..100).contains(&listed), "{text}");
    assert!(
        text.ends_with(&format!("…and {} more", 1000 - listed)),
        "{text}"
    );
    assert!(
        store.timers().await.unwrap().is_empty(),
        "every timer fired"
    );
    for id in 1..=1000 {
        let escalated = store
            .audit_log(mentiondesk::model::AlertId(id))
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "escalated")
            .count();
        assert_eq!(escalated, 1, "alert #{id}");
    }
    let later = Clock::tokio_at(t0 + chrono::Duration::hours(3));
    assert_eq!(timers::fire_due(&desk, &store, &later).await, 0);
}
