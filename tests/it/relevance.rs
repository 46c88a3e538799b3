//! Relevance learned from the desk, end to end: mentions of an ambiguous brand word arrive
//! through a file source, the team claims the right sense and marks the wrong one not
//! relevant with signed slash commands, and once the rule has enough labels the daemon holds
//! wrong-sense mentions back: not posted to the strict Slack fake, listed by `/desk list held`,
//! posted after `/desk promote ID`, and still held (and still learned) after a restart.

use crate::common;

use common::*;
use std::path::Path;

const CAR: &[&str] = &[
    "Picked up my new Jaguar F-Pace from the dealership, the infotainment screen is so much faster",
    "Booked the Jaguar XF in at the service centre because the gearbox keeps throwing a warning",
    "The lease deal on the Jaguar I-Pace is better than I expected after a month of commuting",
    "Jaguar customer service sorted the air suspension on my F-Type within a day",
    "Is the resale value of a used Jaguar XE worth it compared with a BMW?",
];
const ANIMAL: &[&str] = &[
    "Incredible camera trap footage of a jaguar stalking a caiman in the Pantanal",
    "Rare sighting of a black jaguar in the Amazon, our guide could hardly believe it",
    "A jaguar cub was born at the city zoo, the keepers say mother and cub are doing well",
    "The biologists fitted a young jaguar with a tracking collar in the wetlands",
    "Watched a documentary about the jaguar tonight, the way it hunts capybara is unreal",
];
/// Wrong-sense mentions that arrive once the rule has learned.
const LATER_ANIMAL: &[&str] = &[
    "Fresh jaguar paw prints near the lodge in the Pantanal at dawn, our guide was thrilled",
    "Night vision video of a female jaguar swimming across the river in the Amazon",
    "The researchers fitted another jaguar with a tracking collar near the river in the Pantanal",
];
const LATER_CAR: &str =
    "Booked my Jaguar F-Pace in at the dealership for the infotainment screen update, quick service";

fn line(id: &str, text: &str) -> String {
    format!(
        "{}\n",
        serde_json::json!({"id": id, "text": text, "author": format!("author-{id}")})
    )
}

fn append(path: &Path, lines: &[String]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        f.write_all(l.as_bytes()).unwrap();
    }
}

fn config(slack: &FakeSlack, posts: &Path) -> String {
    // `ConfigBuilder` takes no floats: the section is written out.
    let relevance = "[relevance]\nmin_labels = 8\nhold_below = 0.3\n";
    ConfigBuilder::new()
        .slack(slack)
        .source("posts", "file")
        .key("path", posts.display().to_string())
        .key("every", "1s")
        .rule("jaguar", "jaguar", &["slack:#pr-alerts"])
        .desk()
        .toml()
        + relevance
}

/// Sends `/desk <text>` as `user` and waits for its private answer.
async fn desk(slack: &FakeSlack, daemon: &Daemon, text: &str, trigger: &str) -> String {
    let body = command_body(slack, text, "U0DANA", trigger);
    let resp = daemon.slack_post("/slack/commands", &body).await;
    assert_eq!(resp.status(), 200);
    slack
        .wait_until(15, &format!("answer to /desk {text}"), |f| {
            f.answers(trigger).pop()
        })
        .await
}

/// The alert ids `/desk list held` names, asked until `want` are listed.
async fn held_ids(slack: &FakeSlack, daemon: &Daemon, want: usize, tag: &str) -> Vec<String> {
    for round in 0..60 {
        let answer = desk(slack, daemon, "list held", &format!("held-{tag}-{round}")).await;
        let ids: Vec<String> = answer
            .split('#')
            .skip(1)
            .filter_map(|s| {
                let id: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
                (!id.is_empty()).then_some(id)
            })
            .collect();
        if ids.len() >= want {
            assert!(answer.contains("held back"), "{answer}");
            assert!(answer.contains("/desk promote"), "{answer}");
            return ids;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("fewer than {want} alerts held back");
}

/// The first root message `found` accepts, waited for.
async fn root_with(slack: &FakeSlack, found: impl Fn(&SlackPost) -> bool) -> SlackPost {
    slack
        .wait_until(30, "a root message", |f| f.roots().into_iter().find(&found))
        .await
}

fn text_of(post: &SlackPost) -> String {
    post.body.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_sense_mentions_are_held_back_listed_promoted_and_kept_across_a_restart() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let posts = dir.path().join("posts.jsonl");
    let mut first = Vec::new();
    for i in 0..CAR.len() {
        first.push(line(&format!("car{i}"), CAR[i]));
        first.push(line(&format!("cat{i}"), ANIMAL[i]));
    }
    append(&posts, &first);
    let text = config(&slack, &posts);
    let daemon = Daemon::start_in(&text, dir).await;

    // The learning phase: every alert is posted; the team acts on each as people would.
    let roots = slack.wait_for_posts(first.len(), 30).await;
    for (n, p) in roots.iter().enumerate() {
        let id = alert_id_of(p);
        let body = text_of(p);
        let command = if CAR.iter().any(|c| body.contains(&c[..40])) {
            format!("claim {id}")
        } else {
            format!("ignore {id} the animal, not the car")
        };
        let answer = desk(&slack, &daemon, &command, &format!("learn-{n}")).await;
        assert!(
            answer.contains("You claimed") || answer.contains("marked not relevant"),
            "{answer}"
        );
    }

    // Learned (10 labels of both kinds, min_labels 8): animal posts are held back, the car
    // post goes out, with its relevance on the alert.
    let mut later: Vec<String> = LATER_ANIMAL[..2]
        .iter()
        .enumerate()
        .map(|(i, t)| line(&format!("later-cat{i}"), t))
        .collect();
    later.push(line("later-car", LATER_CAR));
    append(&posts, &later);
    let held = held_ids(&slack, &daemon, 2, "a").await;
    let open = desk(&slack, &daemon, "list", "list-open").await;
    for id in &held {
        assert!(
            !open.contains(&format!("#{id}")),
            "held #{id} is not open: {open}"
        );
    }
    let car_post = root_with(&slack, |p| text_of(p).contains("quick service")).await;
    let car_post = &car_post;
    assert!(
        text_of(car_post).contains("most like mentions you acted on"),
        "the relevance is shown on the alert: {car_post:?}"
    );
    // Give the relay time to (wrongly) post a held alert before counting.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        slack.roots().len(),
        first.len() + 1,
        "held alerts are not posted"
    );

    // Promoting one posts it as usual (a positive label: the filter missed it).
    let answer = desk(&slack, &daemon, &format!("promote {}", held[0]), "promote").await;
    assert!(answer.contains("is promoted"), "{answer}");
    let promoted = root_with(&slack, |p| alert_id_of(p) == held[0]).await;
    let promoted = &promoted;
    let thread = slack
        .wait_until(15, "promotion note", |f| {
            let t = f.thread(&promoted.ts);
            (!t.is_empty()).then_some(t)
        })
        .await;
    assert!(
        thread[0].contains("promoted this from held back"),
        "{thread:?}"
    );
    let stats = desk(&slack, &daemon, "stats", "stats").await;
    assert!(
        stats.contains("jaguar: 11 labels · 2 held back · 1 promoted"),
        "{stats}"
    );

    // A restart keeps the model and the held list.
    let dir = daemon.stop().await;
    let daemon = Daemon::start_in(&text, dir).await;
    let still = held_ids(&slack, &daemon, 1, "b").await;
    assert_eq!(still, vec![held[1].clone()]);
    append(&posts, &[line("after-restart", LATER_ANIMAL[2])]);
    let held = held_ids(&slack, &daemon, 2, "c").await;
    assert_eq!(
        held.len(),
        2,
        "the new animal post is held after the restart"
    );
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(slack.roots().len(), first.len() + 2);
    daemon.stop().await;
}

/// `[relevance]` is checked like every section: each mistake named with its key and line,
/// an unknown key refused with the keys that are accepted; absent, the defaults hold.
#[test]
fn relevance_settings_are_checked_with_their_lines() {
    let base = ConfigBuilder::new()
        .rule("jaguar", "jaguar", &["slack:#pr-alerts"])
        .toml()
        .replace("{store}", "/tmp/x.sled")
        .replace("{port}", "8080");
    let parse = |extra: &str| {
        mentiondesk::settings::parse(&format!("{base}{extra}"), Path::new("t.toml"), &|_| None)
    };
    let c = parse("").unwrap();
    assert!(c.relevance.enabled);
    assert_eq!((c.relevance.min_labels, c.relevance.hold_below), (30, 0.2));
    let c = parse("[relevance]\nenabled = false\nmin_labels = 50\nhold_below = 0.35\n").unwrap();
    assert!(!c.relevance.enabled);
    assert_eq!((c.relevance.min_labels, c.relevance.hold_below), (50, 0.35));

    let lines = base.lines().count();
    let err = parse("[relevance]\nmin_labels = 1\nhold_below = 1.5\nenable = true\n")
        .unwrap_err()
        .to_string();
    for (line, key, says) in [
        (lines + 2, "relevance.min_labels", "from 2"),
        (lines + 3, "relevance.hold_below", "from 0 up to"),
        (lines + 4, "relevance.enable", "enabled"),
    ] {
        let found = err
            .lines()
            .any(|l| l.contains(&format!(":{line}")) && l.contains(key) && l.contains(says));
        assert!(found, "{key} at line {line}: {err}");
    }
}
