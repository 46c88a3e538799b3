//! Crash safety: the real `mentiondesk run` binary is killed with SIGKILL while alerts are
//! flowing (including while a post is in flight) and restarted; every matching item must
//! reach the fake Slack exactly once in total. Notes (thread and channel, Slack and Discord)
//! are crashed in process: the relay is cut off while the platform already has the note and
//! has not answered yet, then a fresh relay run must find it instead of posting it again.

use crate::common;

use common::faults::Fault;
use common::*;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ITEMS: usize = 30;

fn write_config(dir: &Path, slack: &FakeSlack, feed_url: &str) -> std::path::PathBuf {
    ConfigBuilder::new()
        .slack(slack)
        .rss("news", feed_url)
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .write(dir, "mentiondesk.toml")
        .0
}

fn spawn(config: &Path, dir: &Path, n: usize) -> Child {
    let log = std::fs::File::create(dir.join(format!("run-{n}.log"))).unwrap();
    crate::common::mentiondesk()
        .args(["run", "--config"])
        .arg(config)
        .env("MENTIONDESK_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_posting_loses_nothing_and_posts_nothing_twice() {
    let slack = FakeSlack::start().await;
    // Each post is recorded at once but answered late: a kill in that window leaves an
    // entry in flight that Slack already has.
    slack
        .faults
        .always("chat.postMessage", Fault::Slow(Duration::from_millis(150)));
    let mut items: Vec<(String, String, String)> = (0..ITEMS)
        .map(|i| {
            (
                format!("item-{i}"),
                format!("Acme report {i}"),
                format!("acme unique-marker-{i}"),
            )
        })
        .collect();
    items.push(("other".into(), "Weather".into(), "nothing to see".into()));
    let feeds = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(rss(&items)))]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &slack, &feeds.url("/feed.xml"));

    // Three runs killed at different points, then one that finishes.
    for (run, kill_after_posts) in [(0, 3usize), (1, 9), (2, 16)].into_iter() {
        let mut child = spawn(&config, dir.path(), run);
        slack.wait_for_posts(kill_after_posts, 30).await;
        // Kill while the last recorded post is still waiting for its answer.
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let mut child = spawn(&config, dir.path(), 9);
    slack.wait_for_posts(ITEMS, 60).await;
    // Give it time to (wrongly) post anything twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let posts = slack.posts();
    let mut per_item: HashMap<String, usize> = HashMap::new();
    for p in &posts {
        let text = p.body.to_string();
        let marker = (0..ITEMS)
            .rev()
            .find(|i| text.contains(&format!("unique-marker-{i}")))
            .unwrap_or_else(|| panic!("post for no known item: {text}"));
        *per_item.entry(marker.to_string()).or_default() += 1;
    }
    let dupes: Vec<_> = per_item.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "posted twice: {dupes:?}");
    assert_eq!(per_item.len(), ITEMS, "every matching item posted");
    assert_eq!(posts.len(), ITEMS);
    let history_calls = slack.state.lock().unwrap().history_calls;
    assert!(
        history_calls >= 1,
        "in-flight entries were looked up before reposting"
    );
    let logs: String = (0..10)
        .filter_map(|n| std::fs::read_to_string(dir.path().join(format!("run-{n}.log"))).ok())
        .collect();
    assert!(
        !logs.contains(BOT_TOKEN),
        "the token never reaches the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_after_the_post_in_flight() {
    let slack = FakeSlack::start().await;
    // Slow answers: SIGTERM arrives while a post is waiting for Slack.
    slack
        .faults
        .always("chat.postMessage", Fault::Slow(Duration::from_millis(400)));
    let items: Vec<(String, String, String)> = (0..5)
        .map(|i| {
            (
                format!("t-{i}"),
                format!("Acme {i}"),
                format!("acme unique-marker-{i}"),
            )
        })
        .collect();
    let feeds = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(rss(&items)))]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &slack, &feeds.url("/feed.xml"));

    let mut child = spawn(&config, dir.path(), 0);
    slack.wait_for_posts(1, 30).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "clean exit on SIGTERM: {exit:?}");
    let log = std::fs::read_to_string(dir.path().join("run-0.log")).unwrap();
    assert!(log.contains("stopped; store flushed"), "{log}");
    let posted_before_stop = slack.posts().len();

    // The rest is delivered by the next run, and nothing twice.
    let mut child = spawn(&config, dir.path(), 1);
    slack.wait_for_posts(5, 30).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        posted_before_stop < 5,
        "SIGTERM stopped the run before everything was posted"
    );
    assert_eq!(slack.posts().len(), 5);
    let log = std::fs::read_to_string(dir.path().join("run-1.log")).unwrap();
    assert!(
        !log.contains("found an alert posted before a restart"),
        "a clean stop leaves nothing in flight: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_posting_to_discord_posts_nothing_twice() {
    use common::discord::*;
    let discord = FakeDiscord::start().await;
    discord
        .faults
        .always(ops::CREATE_MESSAGE, Fault::Slow(Duration::from_millis(150)));
    let n = 12;
    let items: Vec<(String, String, String)> = (0..n)
        .map(|i| {
            (
                format!("d-{i}"),
                format!("Acme {i}"),
                format!("acme unique-marker-{i}"),
            )
        })
        .collect();
    let feeds = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(rss(&items)))]).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = ConfigBuilder::new()
        .discord(&discord)
        .without("guild_id")
        .rss("news", &feeds.url("/feed.xml"))
        .rule("acme", "acme", &[&format!("discord:{CHANNEL}")])
        .write(dir.path(), "d.toml");
    for (run, kill_after) in [(0, 2usize), (1, 6)] {
        let mut child = spawn(&config, dir.path(), run);
        discord
            .wait_until(30, "posts", |d| {
                (d.roots().len() >= kill_after).then_some(())
            })
            .await;
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let mut child = spawn(&config, dir.path(), 5);
    discord
        .wait_until(60, "all posts", |d| (d.roots().len() >= n).then_some(()))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let roots = discord.roots();
    assert_eq!(roots.len(), n, "each alert exactly once");
    let mut footers: Vec<String> = roots
        .iter()
        .map(|m| {
            m.body["embeds"][0]["footer"]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    footers.sort();
    footers.dedup();
    assert_eq!(footers.len(), n);
    let threads = discord.state.lock().unwrap().threads.len();
    assert!(
        threads >= n - 2,
        "threads started for (almost) every alert: {threads}"
    );
}

// ------------------------------------------------ notes in flight at a crash (in process)

use mentiondesk::chat::ChatPlatform;
use mentiondesk::desk::config::DeskConfig;
use mentiondesk::desk::Desk;
use mentiondesk::model::{AlertId, Mention, Note, Priority, Target, TimerKind};
use mentiondesk::relay::Platforms;
use mentiondesk::sources::SourceState;
use mentiondesk::store::{Candidate, NewAlert, OutboxAction, Store, Timer};
use std::sync::Arc;

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

/// Stores one alert for `target`, as intake does after a poll.
async fn stored_alert(store: &Store, target: Target) -> AlertId {
    let mention = Mention {
        item_id: "a".into(),
        source: "feed".into(),
        source_kind: "rss".into(),
        url: Some("https://example.com/a".into()),
        title: Some("Acme outage".into()),
        text: "acme broke".into(),
        author: None,
        author_reach: None,
        published: None,
        lang: None,
        rating: None,
    };
    let c = Candidate {
        dedup_keys: vec!["item:a".into()],
        mention,
        alert: Some(NewAlert {
            rules: vec!["acme".into()],
            priority: Priority::Normal,
            sentiment: -0.5,
            negative: true,
            targets: vec![target],
            highlights: vec![],
            // Due at once: the escalation tests fire it (a round fires only stored timers).
            timers: vec![(TimerKind::Escalate, chrono::Utc::now())],
            thread_keys: vec![],
            repeat_of: None,
            log_hit: true,
            relevance: None,
            held: false,
        }),
    };
    let accepted = store
        .accept("feed", &SourceState::default(), &[c], chrono::Utc::now())
        .await
        .unwrap();
    accepted.alerts[0].id
}

async fn relay_once(store: &Store, platforms: &Platforms) {
    let (_trigger, shutdown) = mentiondesk::shutdown::channel();
    let metrics = mentiondesk::metrics::Metrics::default();
    mentiondesk::relay::deliver_due(store, platforms, &metrics, &shutdown).await;
}

/// The crash: a relay run is cut off (its task dropped, as a SIGKILL drops the process) once
/// `reached` says the platform has the note; the platform's answer is still on its way.
async fn crash_relay_when(
    store: &Store,
    platforms: &Platforms,
    mut reached: impl FnMut() -> bool,
    what: &str,
) {
    let (store2, platforms2) = (store.clone(), platforms.clone());
    let run = tokio::spawn(async move { relay_once(&store2, &platforms2).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !reached() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never reached the platform"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.abort();
    let _ = run.await;
    let in_flight = store
        .outbox()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, e)| e.in_flight_since.is_some())
        .count();
    assert_eq!(in_flight, 1, "the crash left {what} in flight");
}

fn slack_platforms(slack: &FakeSlack) -> Platforms {
    let p = mentiondesk::chat::slack::SlackPlatform::new(&slack.api_url(), BOT_TOKEN).unwrap();
    Platforms {
        slack: Some(Arc::new(p) as Arc<dyn ChatPlatform>),
        discord: None,
        console: Arc::new(mentiondesk::chat::console::ConsolePlatform),
    }
}

fn discord_platforms(discord: &common::discord::FakeDiscord) -> Platforms {
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

fn slack_posts_containing(slack: &FakeSlack, channel: &str, text: &str) -> Vec<SlackPost> {
    slack
        .posts()
        .into_iter()
        .filter(|p| p.channel == channel && p.body.to_string().contains(text))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_thread_note_in_flight_at_a_crash_is_found_and_not_posted_again() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let platforms = slack_platforms(&slack);
    let target = Target::Slack("#pr-alerts".into());
    let id = stored_alert(&store, target.clone()).await;
    relay_once(&store, &platforms).await;
    let root = store
        .message_ref(id, &target)
        .await
        .unwrap()
        .expect("root posted");

    let desk = desk(&store, Target::Slack("#pr-leads".into()));
    desk.note(
        id,
        &"U0ALICE".to_string(),
        "called the customer back",
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    slack
        .faults
        .always("chat.postMessage", Fault::Slow(Duration::from_secs(30)));
    crash_relay_when(
        &store,
        &platforms,
        || !slack_posts_containing(&slack, "C0PRALERTS", "called the customer back").is_empty(),
        "the thread note",
    )
    .await;

    slack.faults.clear();
    let lookups = slack.faults.count("conversations.replies");
    relay_once(&store, &platforms).await;
    assert!(
        store.outbox().await.unwrap().is_empty(),
        "done after the lookup"
    );
    let notes = slack_posts_containing(&slack, "C0PRALERTS", "called the customer back");
    assert_eq!(notes.len(), 1, "the note is in the thread once");
    assert_eq!(
        notes[0].body["thread_ts"], root.message_id,
        "and it is in the alert's thread"
    );
    assert!(
        slack.faults.count("conversations.replies") > lookups,
        "the thread was read before posting again"
    );
}

/// An escalation note goes to `escalate_to` as a message of its own. `chatter` messages
/// arrive in that channel after it and before the restart (a busy channel).
async fn slack_channel_note_crash(chatter: usize) {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let platforms = slack_platforms(&slack);
    let target = Target::Slack("#pr-alerts".into());
    let id = stored_alert(&store, target.clone()).await;
    relay_once(&store, &platforms).await;
    assert!(store.outbox().await.unwrap().is_empty(), "root posted");

    let desk = desk(&store, Target::Slack("#pr-leads".into()));
    let now = chrono::Utc::now();
    let timer = Timer {
        alert_id: id,
        kind: TimerKind::Escalate,
        due: now,
    };
    desk.fire(&timer, now).await.unwrap();
    let kinds: Vec<bool> = store
        .outbox()
        .await
        .unwrap()
        .iter()
        .map(|(_, e)| matches!(e.action, OutboxAction::ChannelNote(_)))
        .collect();
    assert_eq!(kinds, [true], "the round message, and no thread note");
    // The round message reaches Slack, then the crash.
    slack
        .faults
        .always("chat.postMessage", Fault::Slow(Duration::from_millis(1500)));
    crash_relay_when(
        &store,
        &platforms,
        || !slack_posts_containing(&slack, "C0PRLEADS0", "has been unclaimed").is_empty(),
        "the channel note",
    )
    .await;
    slack.faults.clear();

    // Others talk in the channel meanwhile.
    let chat = mentiondesk::chat::slack::SlackPlatform::new(&slack.api_url(), BOT_TOKEN).unwrap();
    for i in 0..chatter {
        chat.post_note(
            "#pr-leads",
            None,
            &Note::new().text(format!("chatter {i}")),
            &format!("other-{i}"),
        )
        .await
        .unwrap();
    }
    let pages = slack.faults.count("conversations.history");
    relay_once(&store, &platforms).await;
    assert!(
        store.outbox().await.unwrap().is_empty(),
        "done after the lookup"
    );
    let notes = slack_posts_containing(&slack, "C0PRLEADS0", "has been unclaimed");
    assert_eq!(notes.len(), 1, "the escalation is in #pr-leads once");
    assert!(
        notes[0].body["thread_ts"].is_null(),
        "as a message of its own"
    );
    let pages = slack.faults.count("conversations.history") - pages;
    // conversations.history hands out at most 200 messages a page (limit=200 asked).
    let needed = (chatter + 1).div_ceil(200);
    assert!(
        pages >= needed,
        "the channel's history was read back to the note: {pages} pages for {chatter} newer messages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_channel_note_in_flight_at_a_crash_is_found_and_not_posted_again() {
    slack_channel_note_crash(0).await;
}

/// More than a page of newer messages: the note is found on a later page, not posted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_channel_note_is_found_under_more_than_a_page_of_newer_messages() {
    slack_channel_note_crash(250).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_channel_note_in_flight_at_a_crash_is_found_and_not_posted_again() {
    use common::discord::{ops, FakeDiscord, CHANNEL};
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let platforms = discord_platforms(&discord);
    let target = Target::Discord(CHANNEL.into());
    let id = stored_alert(&store, target.clone()).await;
    relay_once(&store, &platforms).await;
    assert!(store.outbox().await.unwrap().is_empty(), "root posted");

    // Escalation into the alert channel itself (`escalate_to = "discord:<same channel>"`).
    let desk = desk(&store, target.clone());
    let now = chrono::Utc::now();
    let timer = Timer {
        alert_id: id,
        kind: TimerKind::Escalate,
        due: now,
    };
    desk.fire(&timer, now).await.unwrap();
    discord.faults.always(
        ops::CREATE_MESSAGE,
        Fault::Slow(Duration::from_millis(1500)),
    );
    let escalations = |d: &FakeDiscord| {
        d.roots()
            .into_iter()
            .filter(|m| m.body.to_string().contains("has been unclaimed"))
            .count()
    };
    crash_relay_when(
        &store,
        &platforms,
        || escalations(&discord) > 0,
        "the channel note",
    )
    .await;
    discord.faults.clear();
    {
        let mut s = discord.state.lock().unwrap();
        // Later Discord no longer recognises the nonce.
        for m in s.messages.iter_mut() {
            if let Some(o) = m.body.as_object_mut() {
                o.remove("nonce");
            }
        }
    }
    let lookups = discord.faults.count(ops::LIST_MESSAGES);
    relay_once(&store, &platforms).await;
    assert!(
        store.outbox().await.unwrap().is_empty(),
        "done after the lookup"
    );
    assert_eq!(
        escalations(&discord),
        1,
        "the escalation is in the channel once"
    );
    assert!(
        discord.faults.count(ops::LIST_MESSAGES) > lookups,
        "the channel was read before posting again"
    );
}

/// A large JSON-lines file is read in parts and stored in batches, each batch with its
/// source position: a SIGKILL in the middle of the ingest (twice, at different points) and a
/// restart neither lose an item nor post one twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_large_file_ingest_loses_nothing_and_posts_nothing_twice() {
    // About 1.1 MB: read in some nine parts, so the kills below can land during the ingest
    // (the correctness checked here holds wherever they land).
    const LINES: usize = 10_000;
    const EVERY: usize = 50;
    let slack = FakeSlack::start().await;
    slack
        .faults
        .always("chat.postMessage", Fault::Slow(Duration::from_millis(20)));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mentions.jsonl");
    let lines: String = (0..LINES)
        .map(|i| {
            let text = if i % EVERY == 0 {
                format!("acme unique-marker-{i}. the router dropped again, still waiting")
            } else {
                format!("post {i} about the weather, the train and a long day at work")
            };
            format!("{{\"id\":\"{i}\",\"text\":\"{text}\",\"author\":\"user{i}\"}}\n")
        })
        .collect();
    std::fs::write(&file, lines).unwrap();
    let (config, _) = ConfigBuilder::new()
        .slack(&slack)
        .source("big", "file")
        .key("path", file.display().to_string())
        .key("every", "1s")
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .write(dir.path(), "mentiondesk.toml");
    let want = LINES / EVERY;
    for (run, kill_after_posts) in [(0, 5usize), (1, 60)] {
        let mut child = spawn(&config, dir.path(), run);
        slack.wait_for_posts(kill_after_posts, 60).await;
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let mut child = spawn(&config, dir.path(), 9);
    slack.wait_for_posts(want, 300).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let mut per_item: HashMap<usize, usize> = HashMap::new();
    for p in slack.posts() {
        let text = p.body.to_string();
        let i = (0..LINES)
            .rev()
            .find(|i| text.contains(&format!("unique-marker-{i}.")))
            .unwrap_or_else(|| panic!("post for no known item: {text}"));
        *per_item.entry(i).or_default() += 1;
    }
    let dupes: Vec<_> = per_item.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "posted twice: {dupes:?}");
    assert_eq!(per_item.len(), want, "every matching line posted");
}
