//! Issue 11, defect 1: the store wedged under concurrent writes. With sled 0.34, 16–24 signed
//! `/desk` commands at once deadlocked its flush (spacejam/sled#1308): every request timed
//! out, new feed items were never alerted, and the daemon did not stop. Here several hundred
//! signed commands and button clicks (duplicates included) hit the daemon at once, round
//! after round, while new feed items arrive. Every request must be acknowledged within
//! Slack's 3 s, every answer and every item must arrive exactly once, each alert's history
//! must be one consistent chain with exactly one winner per claim race, and the daemon must
//! stop cleanly.

use crate::common;

use axum::routing::get;
use axum::Router;
use common::*;
use mentiondesk::model::AlertId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Slack drops a slash command or interaction not acknowledged within 3 s.
const ACK_WINDOW: Duration = Duration::from_secs(3);
const ROUNDS: usize = 3;
/// Alerts raced for by claimers, then by unclaimers.
const RACE: [u64; 3] = [1, 2, 3];
/// Alerts that get notes and snoozes.
const CALM: [u64; 3] = [4, 5, 6];
const CLAIMERS: usize = 40;
const UNCLAIMERS: usize = 20;
const NOTES_PER_ALERT: usize = 20;
const SNOOZERS: usize = 10;
const NEW_ITEMS_PER_ROUND: usize = 5;

fn config(slack: &FakeSlack, feed_url: &str) -> String {
    ConfigBuilder::new()
        .slack(slack)
        .rss("news", feed_url)
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .desk()
        .toml()
}

/// An RSS feed whose items can be added while the daemon polls it.
#[derive(Clone, Default)]
struct LiveFeed {
    items: Arc<Mutex<Vec<(String, String, String)>>>,
}

impl LiveFeed {
    async fn start(guids: &[String]) -> (LiveFeed, String) {
        let feed = LiveFeed::default();
        for g in guids {
            feed.push(g);
        }
        let items = feed.items.clone();
        let router = Router::new().route(
            "/feed.xml",
            get(move || {
                let body = rss(&items.lock().unwrap());
                async move { ([("content-type", "application/rss+xml")], body) }
            }),
        );
        let addr = serve(router).await;
        (feed, format!("http://{addr}/feed.xml"))
    }

    fn push(&self, guid: &str) {
        self.items.lock().unwrap().push((
            guid.to_string(),
            format!("Acme story number {guid}"),
            format!("acme news {guid}"),
        ));
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Claim,
    Unclaim,
    Note(String),
    Snooze,
}

/// One signed request the test sends, and what it is about.
#[derive(Debug, Clone)]
struct Req {
    path: &'static str,
    body: String,
    trigger: String,
    user: String,
    alert: u64,
    kind: Kind,
}

fn command(
    slack: &FakeSlack,
    text: &str,
    user: &str,
    trigger: &str,
    alert: u64,
    kind: Kind,
) -> Req {
    Req {
        path: "/slack/commands",
        body: command_body(slack, text, user, trigger),
        trigger: trigger.into(),
        user: user.into(),
        alert,
        kind,
    }
}

fn button(
    slack: &FakeSlack,
    action: &str,
    user: &str,
    trigger: &str,
    alert: u64,
    kind: Kind,
) -> Req {
    Req {
        path: "/slack/interactions",
        body: button_body(slack, action, &alert.to_string(), user, trigger),
        trigger: trigger.into(),
        user: user.into(),
        alert,
        kind,
    }
}

/// Sends every request at the same moment (each fourth one twice, as a Slack retry with the
/// same trigger id), signed as Slack signs. Returns each send's status and time to answer.
async fn fire(port: u16, reqs: &[Req]) -> Vec<(String, Result<(u16, Duration), String>)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let mut sends: Vec<&Req> = reqs.iter().collect();
    sends.extend(reqs.iter().step_by(4));
    let barrier = Arc::new(tokio::sync::Barrier::new(sends.len()));
    let mut tasks = Vec::new();
    for r in sends {
        let (client, barrier) = (client.clone(), barrier.clone());
        let (path, body, trigger) = (r.path, r.body.clone(), r.trigger.clone());
        let url = format!("http://127.0.0.1:{port}{path}");
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let ts = chrono::Utc::now().timestamp();
            let sig = mentiondesk::server::slack::sign(SIGNING_SECRET, ts, body.as_bytes());
            let started = Instant::now();
            let result = client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-slack-request-timestamp", ts.to_string())
                .header("x-slack-signature", sig)
                .body(body)
                .send()
                .await;
            let result = match result {
                Ok(resp) => {
                    let elapsed = started.elapsed();
                    // What Slack would make of the answer, as `Daemon::slack_post` checks it.
                    let resp = checked_slack_answer(path, resp).await;
                    Ok((resp.status().as_u16(), elapsed))
                }
                Err(e) => Err(format!("{e} after {:?}", started.elapsed())),
            };
            (trigger, result)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Every text answered through a response URL, by trigger id.
fn answers_by_trigger(slack: &FakeSlack) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (path, body) in slack.responses() {
        if let Some(trigger) = path.strip_prefix("/response/") {
            out.entry(trigger.to_string())
                .or_default()
                .push(body["text"].as_str().unwrap_or_default().to_string());
        }
    }
    out
}

/// Fires a wave and checks the transport: each request answered 200 within the ack
/// window, then exactly one private answer per trigger id. Returns trigger → answer.
async fn wave(
    slack: &FakeSlack,
    port: u16,
    reqs: &[Req],
    latencies: &mut Vec<Duration>,
) -> HashMap<String, String> {
    let results = fire(port, reqs).await;
    let mut late = Vec::new();
    for (trigger, result) in &results {
        match result {
            Ok((200, took)) if *took <= ACK_WINDOW => latencies.push(*took),
            other => late.push(format!("{trigger}: {other:?}")),
        }
    }
    assert!(
        late.is_empty(),
        "{} of {} requests were not acknowledged with 200 within {ACK_WINDOW:?}: {:?}",
        late.len(),
        results.len(),
        &late[..late.len().min(10)]
    );
    let triggers: Vec<&str> = reqs.iter().map(|r| r.trigger.as_str()).collect();
    slack
        .wait_until(60, "an answer to every request", |s| {
            let got = answers_by_trigger(s);
            triggers.iter().all(|t| got.contains_key(*t)).then_some(())
        })
        .await;
    // A retried duplicate is acknowledged but never answered (nor applied) a second time.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = answers_by_trigger(slack);
    triggers
        .iter()
        .map(|t| {
            let a = &got[*t];
            assert_eq!(a.len(), 1, "trigger {t} answered {} times: {a:?}", a.len());
            (t.to_string(), a[0].clone())
        })
        .collect()
}

/// Per race alert: the one user whose request got `won`, with every other answer `lost`
/// (or the desk's "changing fast" when its compare-and-swap retries ran out).
fn one_winner(
    reqs: &[Req],
    answers: &HashMap<String, String>,
    kind: &Kind,
    won: impl Fn(u64) -> String,
    lost: impl Fn(u64, &str) -> bool,
) -> HashMap<u64, String> {
    let mut winners = HashMap::new();
    for alert in RACE {
        let mine: Vec<&Req> = reqs
            .iter()
            .filter(|r| r.alert == alert && r.kind == *kind)
            .collect();
        let won_by: Vec<&str> = mine
            .iter()
            .filter(|r| answers[&r.trigger] == won(alert))
            .map(|r| r.user.as_str())
            .collect();
        assert_eq!(
            won_by.len(),
            1,
            "exactly one {kind:?} of #{alert} wins the race, got {won_by:?}"
        );
        for r in &mine {
            let a = &answers[&r.trigger];
            assert!(
                *a == won(alert) || lost(alert, a) || a.contains("is changing fast"),
                "unexpected answer to {kind:?} #{alert} by {}: {a}",
                r.user
            );
        }
        winners.insert(alert, won_by[0].to_string());
    }
    winners
}

/// How long the whole scenario may take. The old deadlock blocked the runtime's worker
/// threads too (they waited on sled's locks), so no timer inside the scenario could fire:
/// the scenario runs on its own runtime and thread, and this watchdog fails the test.
const WATCHDOG: Duration = Duration::from_secs(120);

#[test]
fn hundreds_of_concurrent_signed_commands_and_new_items_never_wedge_the_store() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(scenario())));
        let _ = tx.send(result);
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!(
            "the daemon wedged: the scenario did not finish within {WATCHDOG:?} (requests, \
             alerts and shutdown all stuck, as with sled's concurrent-flush deadlock)"
        ),
    }
}

async fn scenario() {
    let slack = FakeSlack::start().await;
    let initial: Vec<String> = (1..=6).map(|i| format!("start-{i}")).collect();
    let (feed, feed_url) = LiveFeed::start(&initial).await;
    let daemon = Daemon::start(&config(&slack, &feed_url)).await;
    let port = daemon.port;
    slack.wait_for_posts(6, 20).await;

    let mut latencies = Vec::new();
    let mut claim_winners: HashMap<u64, Vec<String>> = HashMap::new();
    let mut applied_notes: HashMap<u64, Vec<String>> = HashMap::new();
    let mut new_guids = Vec::new();
    for round in 0..ROUNDS {
        // New items arrive while the wave is in flight.
        let guids: Vec<String> = (0..NEW_ITEMS_PER_ROUND)
            .map(|k| format!("r{round}-new-{k}"))
            .collect();
        new_guids.extend(guids.clone());
        let arrivals = tokio::spawn({
            let feed = feed.clone();
            async move {
                for g in guids {
                    feed.push(&g);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        });

        // Wave 1: claim races (commands and buttons), notes everywhere, snoozes.
        let mut reqs = Vec::new();
        for alert in RACE {
            for k in 0..CLAIMERS {
                let user = format!("U{round}C{alert}N{k:02}");
                let trigger = format!("r{round}-claim-{alert}-{k}");
                reqs.push(if k % 2 == 0 {
                    command(
                        &slack,
                        &format!("claim {alert}"),
                        &user,
                        &trigger,
                        alert,
                        Kind::Claim,
                    )
                } else {
                    button(&slack, "desk_claim", &user, &trigger, alert, Kind::Claim)
                });
            }
        }
        for alert in RACE.into_iter().chain(CALM) {
            for k in 0..NOTES_PER_ALERT {
                let user = format!("U{round}W{alert}N{k:02}");
                let text = format!("note-{round}-{alert}-{k}");
                let trigger = format!("r{round}-note-{alert}-{k}");
                reqs.push(command(
                    &slack,
                    &format!("note {alert} {text}"),
                    &user,
                    &trigger,
                    alert,
                    Kind::Note(text),
                ));
            }
        }
        for alert in CALM {
            for k in 0..SNOOZERS {
                let user = format!("U{round}S{alert}N{k:02}");
                let trigger = format!("r{round}-snooze-{alert}-{k}");
                reqs.push(button(
                    &slack,
                    "desk_snooze_1h",
                    &user,
                    &trigger,
                    alert,
                    Kind::Snooze,
                ));
            }
        }
        // Interleave kinds so the races and the notes really overlap.
        reqs.sort_by_key(|r| r.trigger.bytes().rev().collect::<Vec<u8>>());
        let answers = wave(&slack, port, &reqs, &mut latencies).await;

        let winners = one_winner(
            &reqs,
            &answers,
            &Kind::Claim,
            |id| format!("You claimed #{id}. It is yours until you resolve or unclaim it."),
            |id, a| a.starts_with(&format!("#{id} is already claimed by ")),
        );
        for (alert, user) in winners {
            claim_winners.entry(alert).or_default().push(user);
        }
        for r in &reqs {
            let a = &answers[&r.trigger];
            match &r.kind {
                Kind::Note(text)
                    if *a == format!("Added your note to the thread of #{}.", r.alert) =>
                {
                    applied_notes.entry(r.alert).or_default().push(text.clone());
                }
                Kind::Note(_) => assert!(a.contains("is changing fast"), "note answer: {a}"),
                Kind::Snooze => assert!(
                    a.starts_with(&format!("#{} is snoozed until", r.alert))
                        || a.contains("is changing fast"),
                    "snooze answer: {a}"
                ),
                _ => {}
            }
        }

        // Wave 2: everyone tries to unclaim the race alerts at once; one per alert succeeds.
        let mut reqs = Vec::new();
        for alert in RACE {
            for k in 0..UNCLAIMERS {
                let user = format!("U{round}U{alert}N{k:02}");
                let trigger = format!("r{round}-unclaim-{alert}-{k}");
                reqs.push(command(
                    &slack,
                    &format!("unclaim {alert}"),
                    &user,
                    &trigger,
                    alert,
                    Kind::Unclaim,
                ));
            }
        }
        let answers = wave(&slack, port, &reqs, &mut latencies).await;
        one_winner(
            &reqs,
            &answers,
            &Kind::Unclaim,
            |id| format!("#{id} is open again."),
            |id, a| a == format!("#{id} is not claimed by anyone."),
        );
        arrivals.await.unwrap();
    }

    // Every item that arrived during the waves is alerted, exactly once.
    let roots = slack
        .wait_until(60, "an alert for every new item", |s| {
            let roots = s.roots();
            new_guids
                .iter()
                .all(|g| roots.iter().any(|p| root_mentions(p, g)))
                .then_some(roots)
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let roots_now = slack.roots();
    assert_eq!(
        roots_now.len(),
        roots.len(),
        "no item is alerted a second time"
    );
    for g in initial.iter().chain(&new_guids) {
        let n = roots_now.iter().filter(|p| root_mentions(p, g)).count();
        assert_eq!(n, 1, "item {g} alerted {n} times");
    }
    assert_eq!(roots_now.len(), initial.len() + new_guids.len());

    // Every applied note reaches its alert's thread once; no refused note does.
    let root_ts: HashMap<u64, String> = roots_now
        .iter()
        .map(|p| (alert_id_of(p).parse().unwrap(), p.ts.clone()))
        .collect();
    slack
        .wait_until(60, "every applied note in its thread", |s| {
            applied_notes
                .iter()
                .all(|(alert, notes)| {
                    let thread = s.thread(&root_ts[alert]);
                    notes
                        .iter()
                        .all(|n| thread.iter().any(|t| t.contains(n.as_str())))
                })
                .then_some(())
        })
        .await;
    for alert in RACE.into_iter().chain(CALM) {
        let thread = slack.thread(&root_ts[&alert]);
        let applied = applied_notes.get(&alert).cloned().unwrap_or_default();
        for round in 0..ROUNDS {
            for k in 0..NOTES_PER_ALERT {
                let text = format!("note-{round}-{alert}-{k}");
                let n = thread
                    .iter()
                    .filter(|t| t.ends_with(&format!(": {text}")))
                    .count();
                let want = usize::from(applied.contains(&text));
                assert_eq!(n, want, "note {text} in the thread of #{alert} {n} times");
            }
        }
    }

    let stopping = Instant::now();
    let (_dir, store) = daemon.stop_and_open_store().await;
    let stop_took = stopping.elapsed();

    // The alerts' histories: one unbroken chain of states, one claim per race per round.
    for alert in RACE.into_iter().chain(CALM) {
        let log = store.audit_log(AlertId(alert)).await.unwrap();
        assert_eq!(log[0].action, "created");
        for pair in log.windows(2) {
            assert_eq!(
                pair[1].from, pair[0].to,
                "#{alert}: {:?} does not follow {:?}",
                pair[1], pair[0]
            );
        }
        let state = store.alert(AlertId(alert)).await.unwrap().unwrap().state;
        assert_eq!(state.name(), log.last().unwrap().to, "#{alert} state");
        let notes = log.iter().filter(|e| e.action == "note").count();
        let applied = applied_notes.get(&alert).map_or(0, Vec::len);
        assert_eq!(notes, applied, "#{alert}: notes in the audit log");
        if RACE.contains(&alert) {
            let claimers: Vec<String> = log
                .iter()
                .filter(|e| e.action == "claim")
                .map(|e| e.actor.trim_start_matches("slack:").to_string())
                .collect();
            assert_eq!(claimers, claim_winners[&alert], "#{alert}: claims applied");
            assert_eq!(state.name(), "open", "#{alert} was unclaimed last");
        } else {
            assert_eq!(state.name(), "snoozed", "#{alert} was snoozed");
        }
    }

    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let notes: usize = applied_notes.values().map(Vec::len).sum();
    eprintln!(
        "{} requests acknowledged, p99 {p99:?}, max {:?}; {notes} of {} notes applied; \
         daemon stopped in {stop_took:?}",
        latencies.len(),
        latencies.last().unwrap(),
        ROUNDS * NOTES_PER_ALERT * (RACE.len() + CALM.len()),
    );
}

/// Whether a root message is the alert for the feed item `guid`.
fn root_mentions(post: &SlackPost, guid: &str) -> bool {
    post.body["text"]
        .as_str()
        .is_some_and(|t| t.contains(&format!("acme news {guid}")))
}
