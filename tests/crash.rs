//! Crash safety: the real `mentiondesk run` binary is killed with SIGKILL while alerts are
//! flowing (including while a post is in flight) and restarted; every matching item must
//! reach the fake Slack exactly once in total.

mod common;

use common::*;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ITEMS: usize = 30;

fn write_config(dir: &Path, slack: &FakeSlack, feed_url: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[store]
path = "{store}"

[server]
listen = "127.0.0.1:{port}"

[slack]
bot_token = "{BOT_TOKEN}"
signing_secret = "test-signing-secret"
api_url = "{api}"

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
"#,
        store = dir.join("store").display(),
        port = free_port(),
        api = slack.api_url(),
    );
    let path = dir.join("mentiondesk.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn spawn(config: &Path, dir: &Path, n: usize) -> Child {
    let log = std::fs::File::create(dir.join(format!("run-{n}.log"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_mentiondesk"))
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
    slack.state.lock().unwrap().post_delay = Duration::from_millis(150);
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
    slack.state.lock().unwrap().post_delay = Duration::from_millis(400);
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
    discord.state.lock().unwrap().post_delay = Duration::from_millis(150);
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
    let text = format!(
        r#"
[store]
path = "{store}"
[server]
listen = "127.0.0.1:{port}"
[discord]
bot_token = "{DISCORD_TOKEN}"
application_id = "{APP_ID}"
public_key = "{key}"
api_url = "{api}"
[[sources]]
name = "news"
kind = "rss"
url = "{feed}"
every = "1s"
allow_private = true
[[rules]]
name = "acme"
query = "acme"
alert = ["discord:{CHANNEL}"]
"#,
        store = dir.path().join("store").display(),
        port = free_port(),
        key = public_key_hex(),
        api = discord.api_url(),
        feed = feeds.url("/feed.xml"),
    );
    let config = dir.path().join("d.toml");
    std::fs::write(&config, text).unwrap();
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
