//! Several replicas on one PostgreSQL database (issue 17), as the real `mentiondesk run`
//! binary in subprocesses: a feed that keeps growing, the fake Slack, and replicas that are
//! SIGKILLed while they hold the source and post. Every matching item must reach Slack exactly
//! once; the source must move to a live replica within the lease period; desk clicks sent to
//! any replica must give the result one replica gives; timers and digests fire once; and a
//! replica cut off from the database must stop and say so.
//!
//! These tests start their own database in the test process's throwaway cluster, whatever
//! `MENTIONDESK_TEST_STORE` says; they run in the suite's first pass only (the PostgreSQL pass
//! would repeat them unchanged), and skip with the throwaway's one line when the PostgreSQL
//! server binaries are missing.

use crate::common;

use common::faults::Fault;
use common::store_backend::{self, TestStore};
use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The lease every replica of these tests holds its work with: short, so a test waits
/// seconds for a takeover, not the 15 s default.
const LEASE: &str = "3s";
const LEASE_SECS: u64 = 3;
/// The feed's poll interval.
const EVERY_SECS: u64 = 1;

/// Whether these tests run in this pass, and a fresh database when they do.
fn database() -> Option<String> {
    if TestStore::from_env() == TestStore::Postgres {
        // The first pass ran them already, on the same server.
        return None;
    }
    mentiondesk::store::pg::throwaway::cluster()?;
    Some(store_backend::fresh_database_url())
}

// --- a feed that grows while the test runs ---

/// An RSS feed on 127.0.0.1 whose items the test adds while the replicas poll it.
#[derive(Clone)]
struct GrowingFeed {
    addr: SocketAddr,
    items: Arc<Mutex<Vec<(String, String, String)>>>,
}

impl GrowingFeed {
    async fn start() -> GrowingFeed {
        let items: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
        let served = items.clone();
        let router = axum::Router::new().route(
            "/feed.xml",
            axum::routing::get(move || {
                let body = rss(&served.lock().unwrap());
                async move { ([("content-type", "application/rss+xml")], body) }
            }),
        );
        GrowingFeed {
            addr: serve(router).await,
            items,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/feed.xml", self.addr)
    }

    /// Adds matching item `n` (its text carries `marker-n`, so a post names its item).
    fn add(&self, n: usize) {
        self.items.lock().unwrap().push((
            format!("item-{n}"),
            format!("Acme report {n}"),
            format!("acme outage marker-{n}-end"),
        ));
    }
}

/// The item a Slack post is about (`marker-n-end` in its blocks).
fn item_of(post: &SlackPost) -> Option<usize> {
    let text = post.body.to_string();
    let start = text.find("marker-")? + "marker-".len();
    let rest = &text[start..];
    rest[..rest.find("-end")?].parse().ok()
}

/// Root posts per item.
fn posts_per_item(slack: &FakeSlack) -> HashMap<usize, usize> {
    let mut per_item = HashMap::new();
    for p in slack.posts() {
        if let Some(n) = item_of(&p) {
            *per_item.entry(n).or_default() += 1;
        }
    }
    per_item
}

// --- a TCP proxy in front of PostgreSQL that a test can cut ---

/// Forwards 127.0.0.1 connections to the database until [`DbProxy::cut`]: then every open
/// connection is dropped and new ones are closed at once, as when a replica loses its network
/// path to the database.
#[derive(Clone)]
struct DbProxy {
    addr: SocketAddr,
    cut: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl DbProxy {
    async fn start(upstream: SocketAddr) -> DbProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = DbProxy {
            addr: listener.local_addr().unwrap(),
            cut: Arc::default(),
            conns: Arc::default(),
        };
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if p.cut.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // Dropped: closed at once.
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                p.conns.lock().unwrap().push(task.abort_handle());
            }
        });
        proxy
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// `url` (a throwaway database's) with its host and port replaced by the proxy's.
    fn url_for(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).unwrap();
        u.set_port(Some(self.addr.port())).unwrap();
        u.to_string()
    }
}

/// The database server's address in a throwaway URL.
fn server_addr(url: &str) -> SocketAddr {
    let u = url::Url::parse(url).unwrap();
    format!("127.0.0.1:{}", u.port().unwrap()).parse().unwrap()
}

// --- replicas as subprocesses ---

/// One `mentiondesk run` process.
struct Replica {
    name: String,
    child: Child,
    port: u16,
}

impl Replica {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `/healthz` as JSON with its status code, or `None` while it does not answer.
    async fn healthz(&self) -> Option<(u16, Value)> {
        let resp = reqwest::Client::new()
            .get(self.url("/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        let code = resp.status().as_u16();
        Some((code, resp.json().await.ok()?))
    }

    async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What every replica of a test shares: the database, the fakes and the config's tables
/// beyond `[store]` and `[server]`.
struct Cluster {
    dir: tempfile::TempDir,
    url: String,
    /// The config after `[store]` and `[server]`.
    rest: Box<dyn Fn(ConfigBuilder) -> ConfigBuilder>,
    started: usize,
}

impl Cluster {
    fn new(url: String, rest: impl Fn(ConfigBuilder) -> ConfigBuilder + 'static) -> Cluster {
        Cluster {
            dir: tempfile::tempdir().unwrap(),
            url,
            rest: Box::new(rest),
            started: 0,
        }
    }

    /// Starts replica `name` (its own folder, port and log) on `url` (the database's, or a
    /// proxy's in front of it) and waits until it answers `/healthz`.
    async fn start_on(&mut self, name: &str, url: &str) -> Replica {
        self.started += 1;
        let dir = self.dir.path().join(format!("{name}-{}", self.started));
        std::fs::create_dir_all(&dir).unwrap();
        let builder = (self.rest)(ConfigBuilder::replica(url, name, LEASE));
        let (config, port) = builder.write(&dir, "mentiondesk.toml");
        let child = spawn(&config, &dir);
        let replica = Replica {
            name: name.to_string(),
            child,
            port,
        };
        poll_until_async(
            60,
            &format!("replica {name} to answer /healthz"),
            || async { replica.healthz().await.map(|_| ()) },
        )
        .await;
        replica
    }

    async fn start(&mut self, name: &str) -> Replica {
        let url = self.url.clone();
        self.start_on(name, &url).await
    }

    /// Every replica's log so far (for failure messages and the secret check).
    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in walk(self.dir.path()) {
            if entry.extension().is_some_and(|e| e == "log") {
                out.push_str(&format!("--- {}\n", entry.display()));
                out.push_str(&std::fs::read_to_string(&entry).unwrap_or_default());
            }
        }
        out
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn spawn(config: &Path, dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("run.log")).unwrap();
    mentiondesk()
        .args(["run", "--config"])
        .arg(config)
        .env("MENTIONDESK_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// [`poll_until`] for a condition that needs to await.
async fn poll_until_async<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Which replica holds `source`'s lease, as `/healthz` of a live replica says.
fn lease_holder(health: &Value, source: &str) -> Option<String> {
    health["leases"]
        .as_array()?
        .iter()
        .find(|l| l["source"] == source)
        .and_then(|l| l["owner"].as_str())
        .map(str::to_string)
}

/// Asks the live replicas who holds `source` until one knows.
async fn holder_of(replicas: &[Replica], source: &str) -> String {
    poll_until_async(30, &format!("a replica to hold {source}"), || async {
        for r in replicas {
            if let Some((_, h)) = r.healthz().await {
                if let Some(owner) = lease_holder(&h, source) {
                    if replicas.iter().any(|r| r.name == owner) {
                        return Some(owner);
                    }
                }
            }
        }
        None
    })
    .await
}

fn feed_config(slack: &FakeSlack, feed: &GrowingFeed) -> impl Fn(ConfigBuilder) -> ConfigBuilder {
    let (slack, url) = (slack.clone(), feed.url());
    move |b: ConfigBuilder| {
        b.slack(&slack)
            .rss("news", &url)
            .rule("acme", "acme", &["slack:#pr-alerts"])
    }
}

/// How many times the kill test kills the source's holder (`MENTIONDESK_REPLICA_KILLS`, for
/// the failover benchmark; 4 in the suite).
fn kills() -> usize {
    std::env::var("MENTIONDESK_REPLICA_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// Three replicas, a feed that keeps growing, and Slack answering each post late (so a kill
/// often lands while a post is in flight). The replica holding the source is SIGKILLed again
/// and again and started again under a new name, as a restarted container would be: every
/// item reaches Slack exactly once, the source moves to a live replica, and items that reached
/// the feed after a kill are posted within the lease period plus a poll (the failover time,
/// printed for BENCHMARKS.md, asserted with room for a loaded machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_post_every_item_once_while_the_source_holder_is_killed() {
    let Some(url) = database() else { return };
    let slack = FakeSlack::start().await;
    slack
        .faults
        .always("chat.postMessage", Fault::Slow(Duration::from_millis(150)));
    let feed = GrowingFeed::start().await;
    let mut cluster = Cluster::new(url, feed_config(&slack, &feed));
    let mut replicas = vec![];
    for i in 0..3 {
        replicas.push(cluster.start(&format!("r{i}")).await);
    }
    let mut next = 0;
    for _ in 0..5 {
        feed.add(next);
        next += 1;
    }
    slack.wait_for_posts(5, 60).await;

    let mut failovers = vec![];
    for kill in 0..kills() {
        let holder = holder_of(&replicas, "news").await;
        // Items the holder may be fetching or posting when it dies.
        for _ in 0..3 {
            feed.add(next);
            next += 1;
        }
        tokio::time::sleep(Duration::from_millis(300 + 250 * (kill as u64 % 4))).await;
        let at = replicas.iter().position(|r| r.name == holder).unwrap();
        let mut dead = replicas.remove(at);
        dead.kill();
        let killed = Instant::now();
        let after = next;
        feed.add(next);
        next += 1;
        let took = poll_until_async(60, &format!("item {after} after kill {kill}"), || {
            let posted = posts_per_item(&slack).contains_key(&after);
            async move { posted.then(Instant::now) }
        })
        .await
        .duration_since(killed);
        failovers.push(took);
        let moved = holder_of(&replicas, "news").await;
        assert_ne!(moved, holder, "the source moved to a live replica");
        replicas.push(cluster.start(&format!("r{}-{}", at, kill + 1)).await);
    }
    for _ in 0..3 {
        feed.add(next);
        next += 1;
    }
    poll_until(90, "every item posted", || {
        (posts_per_item(&slack).len() >= next).then_some(())
    })
    .await;
    // Time for a wrong second post of anything.
    tokio::time::sleep(Duration::from_secs(2 * LEASE_SECS)).await;

    let per_item = posts_per_item(&slack);
    let twice: Vec<_> = per_item.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "posted twice: {twice:?}\n{}",
        cluster.logs()
    );
    assert_eq!(per_item.len(), next, "every item posted once");
    let mut sorted = failovers.clone();
    sorted.sort();
    eprintln!(
        "failover (kill → first post of an item that reached the feed after it), {} kills: median {:?}, worst {:?}, all {:?}",
        sorted.len(),
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1],
        failovers
    );
    let bound = Duration::from_secs(LEASE_SECS + EVERY_SECS + 20);
    assert!(
        sorted[sorted.len() - 1] <= bound,
        "a failover took {:?}, more than the lease period and a poll (plus 20 s for a loaded machine)",
        sorted[sorted.len() - 1]
    );
    assert!(!cluster.logs().contains(BOT_TOKEN), "no token in the logs");
}

/// A signed Slack POST to one replica, as Slack sends it.
async fn slack_to(replica: &Replica, path: &str, body: &str) -> u16 {
    let ts = chrono::Utc::now().timestamp();
    let sig = mentiondesk::server::slack::sign(SIGNING_SECRET, ts, body.as_bytes());
    let resp = reqwest::Client::new()
        .post(replica.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", sig)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    checked_slack_answer(path, resp).await;
    code
}

/// What a person sees of one desk session: the private answers in order, the alert as last
/// edited and its thread notes, with durations and the race's winner and loser
/// written as names, so two sessions compare equal when they behaved the same.
#[derive(Debug, PartialEq)]
struct DeskSession {
    answers: Vec<String>,
    /// The alert's blocks after its last edit (edits in between may be merged by a relay
    /// that finds several waiting, on one replica as on three).
    last_state: String,
    thread: Vec<String>,
}

/// One alert's desk session with clicks and commands spread over `replicas` round-robin: a
/// claim retried by Slack to every replica at once, an unclaim, two people racing to claim,
/// a note, a resolve by the winner and `show`.
async fn desk_session(replicas: &[Replica], slack: &FakeSlack) -> DeskSession {
    let root = slack.wait_for_posts(1, 60).await[0].ts.clone();
    let at = |i: usize| &replicas[i % replicas.len()];
    let mut triggers = vec![];

    // A retried command reaches every replica at once: one change, one answer.
    let claim = command_body(slack, "claim 1", "U0ANA", "t-claim");
    let codes =
        futures_util::future::join_all((0..3).map(|i| slack_to(at(i), "/slack/commands", &claim)))
            .await;
    assert!(codes.iter().all(|c| *c == 200), "{codes:?}");
    triggers.push("t-claim");
    slack
        .wait_until(20, "the claim's answer", |f| f.answers("t-claim").pop())
        .await;

    let unclaim = command_body(slack, "unclaim 1", "U0ANA", "t-unclaim");
    slack_to(at(1), "/slack/commands", &unclaim).await;
    triggers.push("t-unclaim");
    slack
        .wait_until(20, "the unclaim's answer", |f| f.answers("t-unclaim").pop())
        .await;

    // Two people click Claim at once on different replicas: one wins.
    let ben = button_body(slack, "desk_claim", "1", "U0BEN", "t-ben");
    let cat = button_body(slack, "desk_claim", "1", "U0CAT", "t-cat");
    let (a, b) = tokio::join!(
        slack_to(at(1), "/slack/interactions", &ben),
        slack_to(at(2), "/slack/interactions", &cat)
    );
    assert_eq!((a, b), (200, 200));
    let ben_said = slack
        .wait_until(20, "Ben's answer", |f| f.answers("t-ben").pop())
        .await;
    let cat_said = slack
        .wait_until(20, "Cat's answer", |f| f.answers("t-cat").pop())
        .await;
    assert!(
        ben_said.contains("You claimed") ^ cat_said.contains("You claimed"),
        "exactly one winner: {ben_said} / {cat_said}"
    );
    let (winner, loser, win_t, lose_t) = if ben_said.contains("You claimed") {
        ("U0BEN", "U0CAT", "t-ben", "t-cat")
    } else {
        ("U0CAT", "U0BEN", "t-cat", "t-ben")
    };
    triggers.extend([win_t, lose_t]);

    let note = command_body(slack, "note 1 called the customer", winner, "t-note");
    slack_to(at(2), "/slack/commands", &note).await;
    slack
        .wait_until(20, "the note's answer", |f| f.answers("t-note").pop())
        .await;
    let resolve = command_body(slack, "resolve 1 refunded", winner, "t-resolve");
    slack_to(at(0), "/slack/commands", &resolve).await;
    triggers.extend(["t-note", "t-resolve"]);
    slack
        .wait_until(20, "the resolve's answer", |f| f.answers("t-resolve").pop())
        .await;
    let show = command_body(slack, "show 1", "U0ANA", "t-show");
    slack_to(at(1), "/slack/commands", &show).await;
    triggers.push("t-show");
    slack
        .wait_until(20, "show's answer", |f| f.answers("t-show").pop())
        .await;
    // Every edit and note delivered (resolved is the last state).
    slack
        .wait_until(30, "the resolved state on the alert", |f| {
            f.updates()
                .last()
                .filter(|(_, _, u)| u.to_string().contains("Resolved"))
                .map(|_| ())
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let names = |s: String| {
        let s = s.replace(winner, "WINNER").replace(loser, "LOSER");
        // Durations ("after 3s") differ between runs; what was said does not.
        let mut out = String::new();
        let mut digits = false;
        for c in s.chars() {
            if c.is_ascii_digit() {
                if !digits {
                    out.push('N');
                }
                digits = true;
            } else {
                digits = false;
                out.push(c);
            }
        }
        out
    };
    DeskSession {
        answers: triggers
            .iter()
            .flat_map(|t| slack.answers(t))
            .map(names)
            .collect(),
        last_state: slack
            .updates()
            .into_iter()
            .rfind(|(_, ts, _)| *ts == root)
            .map(|(_, _, mut u)| {
                // Block ids are new on every edit (Slack's rule); what they label is not.
                for b in u["blocks"].as_array_mut().into_iter().flatten() {
                    b.as_object_mut().map(|b| b.remove("block_id"));
                }
                names(u["blocks"].to_string())
            })
            .unwrap_or_default(),
        thread: slack.thread(&root).into_iter().map(names).collect(),
    }
}

/// Desk clicks and commands sent round-robin to three replicas (a load balancer in front)
/// give what one replica gives: the same answers, edits and thread notes, a Slack retry that
/// reaches every replica changes the alert once, and two people racing on two replicas get
/// one winner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desk_clicks_on_any_replica_give_what_one_replica_gives() {
    let Some(url) = database() else { return };
    let mut sessions = vec![];
    for (count, url) in [(1, store_backend::fresh_database_url()), (3, url)] {
        let slack = FakeSlack::start().await;
        let feed = GrowingFeed::start().await;
        feed.add(0);
        let mut cluster = Cluster::new(url, feed_config(&slack, &feed));
        let mut replicas = vec![];
        for i in 0..count {
            replicas.push(cluster.start(&format!("d{i}")).await);
        }
        sessions.push(desk_session(&replicas, &slack).await);
        assert_eq!(slack.roots().len(), 1, "one alert posted once");
    }
    assert_eq!(sessions[1], sessions[0], "three replicas behave as one");
    assert_eq!(sessions[0].answers.len(), 7, "{:#?}", sessions[0]);
}

/// The link to an alert's message that an escalation round carries.
fn permalink(root: &SlackPost) -> String {
    format!("/archives/C0PRALERTS/p{}|", root.ts.replace('.', ""))
}

/// Whether a round's text lists the alert of `root`: by a link to its root post, or, when
/// the round was built before the root was posted (a relay slowed by a loaded machine), by
/// the command that claims it.
fn lists(text: &str, root: &SlackPost) -> bool {
    let claim = format!("/desk claim {}`", alert_id_of(root));
    text.contains(&permalink(root)) || text.contains(&claim)
}

/// Escalation timers and digests fire once across three replicas: each unclaimed alert is in
/// exactly one escalation round in #pr-leads, and a digest scheduled every five seconds is
/// posted once per slot, not once per replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_and_digests_fire_once_across_replicas() {
    let Some(url) = database() else { return };
    let slack = FakeSlack::start().await;
    let feed = GrowingFeed::start().await;
    for n in 0..3 {
        feed.add(n);
    }
    let base = feed_config(&slack, &feed);
    let mut cluster = Cluster::new(url, move |b| {
        base(b)
            .table("[desk]")
            .key("escalate_after", "2s")
            .key("escalate_to", "slack:#pr-leads")
            .table("[[digest]]")
            .key("name", "Replica digest")
            .key("schedule", "*/5 * * * * *")
            .key("timezone", "UTC")
            .key("to", ["slack:#pr-alerts"])
            .key("chart", false)
    });
    let mut replicas = vec![];
    for i in 0..3 {
        replicas.push(cluster.start(&format!("t{i}")).await);
    }
    let started = chrono::Utc::now();
    let roots: Vec<SlackPost> = poll_until(60, "three alerts", || {
        let roots: Vec<_> = slack
            .posts()
            .into_iter()
            .filter(|p| p.channel == "C0PRALERTS" && item_of(p).is_some())
            .collect();
        (roots.len() >= 3).then_some(roots)
    })
    .await;
    let leads = |slack: &FakeSlack| -> Vec<String> {
        slack
            .posts()
            .into_iter()
            .filter(|p| p.channel == "C0PRLEADS0")
            .map(|p| p.body.to_string())
            .collect()
    };
    poll_until(60, "every alert escalated", || {
        let text = leads(&slack).concat();
        roots.iter().all(|r| lists(&text, r)).then_some(())
    })
    .await;
    // Three digest slots, and time for a second replica to (wrongly) fire anything again.
    tokio::time::sleep(Duration::from_secs(16)).await;
    let ended = chrono::Utc::now();
    drop(replicas);

    let rounds = leads(&slack);
    for r in &roots {
        let seen = rounds.iter().filter(|p| lists(p, r)).count();
        assert_eq!(seen, 1, "alert {} escalated once: {rounds:#?}", r.ts);
    }
    let digests = slack
        .posts()
        .into_iter()
        .filter(|p| p.body.to_string().contains("Replica digest"))
        .count();
    let slots = (started.timestamp() / 5 + 1..=ended.timestamp() / 5).count();
    assert!(
        (1..=slots + 1).contains(&digests),
        "{digests} digests for {slots} slots (one per slot, whichever replica)\n{}",
        cluster.logs()
    );
}

/// A replica cut off from the database (its connections dropped, new ones refused) stops:
/// `/healthz` says unhealthy and why, its source moves to a replica that still reaches the
/// database, which posts what arrives meanwhile, once; with the database back it is healthy
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_the_database_stops_and_says_so() {
    let Some(url) = database() else { return };
    let slack = FakeSlack::start().await;
    let feed = GrowingFeed::start().await;
    feed.add(0);
    let proxy = DbProxy::start(server_addr(&url)).await;
    let mut cluster = Cluster::new(url.clone(), feed_config(&slack, &feed));
    // The cut-off replica starts first, so it holds the source.
    let cut = cluster.start_on("cut", &proxy.url_for(&url)).await;
    slack.wait_for_posts(1, 60).await;
    assert_eq!(holder_of(std::slice::from_ref(&cut), "news").await, "cut");
    let live = cluster.start("live").await;

    proxy.cut();
    let (code, health) = poll_until_async(60, "the cut-off replica to report it", || async {
        cut.healthz().await.filter(|(code, _)| *code == 503)
    })
    .await;
    assert_eq!(code, 503);
    assert_eq!(health["status"], "unhealthy", "{health:#}");
    let said = health.to_string().to_lowercase();
    assert!(
        said.contains("database") || said.contains("store"),
        "{health:#}"
    );

    feed.add(1);
    poll_until(60, "the live replica to post the new item", || {
        posts_per_item(&slack).contains_key(&1).then_some(())
    })
    .await;
    assert_eq!(holder_of(std::slice::from_ref(&live), "news").await, "live");

    proxy.restore();
    poll_until_async(60, "the replica to recover", || async {
        cut.healthz().await.filter(|(code, _)| *code == 200)
    })
    .await;
    feed.add(2);
    poll_until(60, "the last item", || {
        posts_per_item(&slack).contains_key(&2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2 * LEASE_SECS)).await;
    let per_item = posts_per_item(&slack);
    assert!(
        per_item.values().all(|n| *n == 1),
        "{per_item:?}\n{}",
        cluster.logs()
    );
    let metrics = cut.metrics().await;
    assert!(metrics.contains("mentiondesk_"), "{metrics}");
}

/// A replica with no polled source (only a webhook, so it makes no lease calls) notices a lost
/// database too: its own connection drops, `/healthz` says unhealthy and names the database,
/// and it is healthy again once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_only_replica_cut_off_from_the_database_says_so() {
    let Some(url) = database() else { return };
    let slack = FakeSlack::start().await;
    let proxy = DbProxy::start(server_addr(&url)).await;
    let mut cluster = Cluster::new(url.clone(), move |b: ConfigBuilder| {
        b.slack(&slack)
            .source("reviews", "webhook")
            .key("secret", "a-webhook-secret-of-enough-length")
            .rule("acme", "acme", &["slack:#pr-alerts"])
    });
    let replica = cluster.start_on("hooks", &proxy.url_for(&url)).await;
    let (code, _) = replica.healthz().await.unwrap();
    assert_eq!(code, 200);
    proxy.cut();
    let (_, health) = poll_until_async(60, "the replica to report the lost database", || async {
        replica.healthz().await.filter(|(code, _)| *code == 503)
    })
    .await;
    assert_eq!(health["status"], "unhealthy", "{health:#}");
    let said = health["store_error"].as_str().unwrap_or_default();
    assert!(said.contains("database"), "{health:#}");
    assert!(
        !said.contains("postgres@"),
        "no URL user or password: {said}"
    );
    proxy.restore();
    poll_until_async(90, "the replica to recover", || async {
        replica.healthz().await.filter(|(code, _)| *code == 200)
    })
    .await;
}
