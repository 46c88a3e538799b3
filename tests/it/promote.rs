//! Promoting held-back alerts with one click, end to end through the strict fakes: the
//! relevance filter learns from the team's claims and Not relevant marks (as in
//! `relevance.rs`), holds wrong-sense mentions back, and `/desk list held` (Slack and
//! Discord) and the digest show a Promote button beside each. A click posts the alert once
//! on every platform it targets and is a positive label; a second click (sequential on
//! Slack, concurrent on Discord) posts nothing more and says the alert is already promoted.
//! `/metrics` counts held and promoted alerts apart from posted ones.

use crate::common;

use common::discord::*;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

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
/// Wrong-sense mentions that arrive once the rule has learned: held back.
const LATER_ANIMAL: &[&str] = &[
    "Fresh jaguar paw prints near the lodge in the Pantanal at dawn, our guide was thrilled",
    "Night vision video of a female jaguar swimming across the river in the Amazon",
    "The researchers fitted another jaguar with a tracking collar near the river in the Pantanal",
];

fn line(id: &str, text: &str) -> String {
    format!(
        "{}\n",
        json!({"id": id, "text": text, "author": format!("author-{id}")})
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

fn config(slack: &FakeSlack, discord: &FakeDiscord, posts: &Path) -> String {
    // `ConfigBuilder` takes no floats: the section is written out.
    let relevance = "[relevance]\nmin_labels = 8\nhold_below = 0.3\n";
    ConfigBuilder::new()
        .slack(slack)
        .discord(discord)
        .source("posts", "file")
        .key("path", posts.display().to_string())
        .key("every", "1s")
        .rule(
            "jaguar",
            "jaguar",
            &["slack:#pr-alerts", &format!("discord:{CHANNEL}")],
        )
        .desk()
        .table("[[digest]]")
        .key("name", "Morning")
        .key("schedule", "0 0 9 1 1 * 2099")
        .key("timezone", "UTC")
        .key("to", ["slack:#pr-alerts", &format!("discord:{CHANNEL}")])
        .toml()
        + relevance
}

/// Sends `/desk <text>` on Slack and waits for its private answer (the whole body).
async fn slack_desk(slack: &FakeSlack, daemon: &Daemon, text: &str, trigger: &str) -> Value {
    let body = command_body(slack, text, "U0DANA", trigger);
    let resp = daemon.slack_post("/slack/commands", &body).await;
    assert_eq!(resp.status(), 200);
    answer(slack, trigger, text).await
}

/// The body of the first answer sent to the response URL of `trigger`.
async fn answer(slack: &FakeSlack, trigger: &str, what: &str) -> Value {
    let path = format!("/response/{trigger}");
    slack
        .wait_until(15, &format!("answer to {what}"), |f| {
            f.responses()
                .into_iter()
                .find(|(p, _)| *p == path)
                .map(|(_, b)| b)
        })
        .await
}

/// Clicks a Slack button (`block_actions`, as Slack sends it) and waits for its answer.
async fn slack_click(
    slack: &FakeSlack,
    daemon: &Daemon,
    action_id: &str,
    value: &str,
    trigger: &str,
) -> String {
    let body = button_body(slack, action_id, value, "U0DANA", trigger);
    let resp = daemon.slack_post("/slack/interactions", &body).await;
    assert_eq!(resp.status(), 200);
    answer(slack, trigger, action_id).await["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The Slack buttons of a message body: (action_id, value, label).
fn slack_buttons(body: &Value) -> Vec<(String, String, String)> {
    body["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (s(&e["action_id"]), s(&e["value"]), s(&e["text"]["text"]))
        })
        .collect()
}

/// The Discord buttons of a message body: (custom_id, label).
fn discord_buttons(body: &Value) -> Vec<(String, String)> {
    body["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (s(&c["custom_id"]), s(&c["label"]))
        })
        .collect()
}

/// A signed interaction through the real endpoint; its answer is checked against Discord's
/// spec by `checked_interaction_answer`.
async fn discord_interact(daemon: &Daemon, body: &Value) -> Value {
    let body = body.to_string();
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = sign(&ts, &body);
    let resp = reqwest::Client::new()
        .post(daemon.url("/discord/interactions"))
        .header("content-type", "application/json")
        .header("x-signature-timestamp", &ts)
        .header("x-signature-ed25519", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    let resp = checked_interaction_answer(resp).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn interaction(id: &str, kind: u8, data: Value) -> Value {
    json!({"id": id, "application_id": APP_ID, "type": kind, "token": format!("tok-{id}"), "version": 1,
           "guild_id": GUILD_ID, "channel_id": CHANNEL,
           "member": {"user": {"id": "11", "username": "someone"}, "roles": []}, "data": data})
}

/// `/desk list held` on Discord: the answer message, at once or (deferred) as the edit of
/// the original answer.
async fn discord_list_held(discord: &FakeDiscord, daemon: &Daemon, id: &str) -> Value {
    let data = json!({"id": "cmd", "name": "desk", "type": 1,
        "options": [{"name": "list", "type": 1, "options": [{"name": "which", "type": 3, "value": "held"}]}]});
    let v = discord_interact(daemon, &interaction(id, 2, data)).await;
    if v["type"] == 4 {
        return v["data"].clone();
    }
    assert_eq!(v["type"], 5, "{v}");
    let token = format!("tok-{id}");
    discord
        .wait_until(15, "the deferred list", |d| {
            let edits = d.state.lock().unwrap().original_edits.clone();
            edits.into_iter().find(|(t, _)| *t == token).map(|(_, b)| b)
        })
        .await
}

async fn discord_click(daemon: &Daemon, id: &str, custom_id: &str) -> String {
    let data = json!({"custom_id": custom_id, "component_type": 2});
    let v = discord_interact(daemon, &interaction(id, 3, data)).await;
    assert_eq!(v["type"], 4, "{v}");
    assert_eq!(v["data"]["flags"], 64, "the answer is private: {v}");
    v["data"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn slack_roots_of(slack: &FakeSlack, id: &str) -> usize {
    slack
        .roots()
        .iter()
        .filter(|p| alert_id_of(p) == id)
        .count()
}

fn discord_roots_of(discord: &FakeDiscord, id: &str) -> usize {
    let footer = format!("mentiondesk alert #{id}");
    discord
        .roots()
        .iter()
        .filter(|m| m.body["embeds"][0]["footer"]["text"] == footer.as_str())
        .count()
}

async fn metric(daemon: &Daemon, name: &str) -> u64 {
    let text = reqwest::get(daemon.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_click_promotes_a_held_alert_once_on_slack_discord_and_from_the_digest() {
    let slack = FakeSlack::start().await;
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let posts = dir.path().join("posts.jsonl");
    let mut first = Vec::new();
    for i in 0..CAR.len() {
        first.push(line(&format!("car{i}"), CAR[i]));
        first.push(line(&format!("cat{i}"), ANIMAL[i]));
    }
    append(&posts, &first);
    let daemon = Daemon::start_in(&config(&slack, &discord, &posts), dir).await;

    // The learning phase, as people would: claim the car, mark the animal not relevant.
    let roots = slack.wait_for_posts(first.len(), 30).await;
    for (n, p) in roots.iter().enumerate() {
        let id = alert_id_of(p);
        let text = p.body.to_string();
        let command = if CAR.iter().any(|c| text.contains(&c[..40])) {
            format!("claim {id}")
        } else {
            format!("ignore {id} the animal")
        };
        let a = slack_desk(&slack, &daemon, &command, &format!("learn-{n}")).await;
        let a = a["text"].as_str().unwrap_or_default();
        assert!(
            a.contains("You claimed") || a.contains("marked not relevant"),
            "{a}"
        );
    }
    let later: Vec<String> = LATER_ANIMAL
        .iter()
        .enumerate()
        .map(|(i, t)| line(&format!("later-cat{i}"), t))
        .collect();
    append(&posts, &later);

    // `/desk list held` on Slack: one Promote button per held alert, within Block Kit's
    // rules (the fake refuses duplicate action ids, long texts, too many elements).
    let mut listed = Vec::new();
    for round in 0..80 {
        let body = slack_desk(&slack, &daemon, "list held", &format!("held-{round}")).await;
        listed = slack_buttons(&body);
        if listed.len() == LATER_ANIMAL.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(listed.len(), LATER_ANIMAL.len(), "{listed:?}");
    let held: Vec<String> = listed.iter().map(|(_, v, _)| v.clone()).collect();
    for (action, value, label) in &listed {
        assert_eq!(action, &format!("desk_promote:{value}"));
        assert_eq!(label, &format!("Promote #{value}"));
        assert_eq!(slack_roots_of(&slack, value), 0, "#{value} is held back");
    }
    assert_eq!(metric(&daemon, "mentiondesk_held_total").await, 3);
    assert_eq!(metric(&daemon, "mentiondesk_alerts_total").await, 10);
    assert_eq!(metric(&daemon, "mentiondesk_promoted_total").await, 0);

    // Slack: a click promotes; the alert is posted on both platforms it targets, once.
    let a = slack_click(&slack, &daemon, &listed[0].0, &held[0], "click-slack-1").await;
    assert!(a.contains(&format!("#{} is promoted", held[0])), "{a}");
    slack
        .wait_until(15, "the promoted alert on Slack", |f| {
            (slack_roots_of(f, &held[0]) == 1).then_some(())
        })
        .await;
    discord
        .wait_until(15, "the promoted alert on Discord", |d| {
            (discord_roots_of(d, &held[0]) == 1).then_some(())
        })
        .await;
    // A second click on the same (now stale) list answers clearly and posts nothing.
    let again = slack_click(&slack, &daemon, &listed[0].0, &held[0], "click-slack-2").await;
    assert!(
        again.contains(&format!("#{} is already promoted", held[0])),
        "{again}"
    );

    // Discord: the list shows the two still held, as buttons within five rows of five.
    let list = discord_list_held(&discord, &daemon, "list-held-1").await;
    let buttons = discord_buttons(&list);
    let want: Vec<(String, String)> = held[1..]
        .iter()
        .map(|id| (format!("desk_promote:{id}"), format!("Promote #{id}")))
        .collect();
    assert_eq!(buttons, want, "{list}");
    assert_eq!(list["allowed_mentions"]["parse"], json!([]));
    // Two clicks at once: exactly one promotes, the other is told it is done.
    let custom = &want[0].0;
    let (x, y) = tokio::join!(
        discord_click(&daemon, "click-d-1", custom),
        discord_click(&daemon, "click-d-2", custom)
    );
    let mut answers = [x, y];
    answers.sort();
    assert!(
        answers[0].contains(&format!("#{} is already promoted", held[1]))
            && answers[1].contains(&format!("#{} is promoted", held[1])),
        "{answers:?}"
    );

    // The digest lists the one still held with its button; a click on it promotes it.
    let token = std::fs::read_to_string(daemon.dir.path().join("store.admin-token")).unwrap();
    let resp = reqwest::Client::new()
        .post(daemon.url("/admin/digest"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let digest = slack
        .wait_until(15, "the Slack digest", |f| {
            f.state.lock().unwrap().completed_uploads.first().cloned()
        })
        .await;
    let digest_buttons = slack_buttons(&digest);
    assert_eq!(
        digest_buttons,
        vec![(
            format!("desk_promote:{}", held[2]),
            held[2].clone(),
            format!("Promote #{}", held[2])
        )],
        "{digest}"
    );
    let discord_digest = discord
        .wait_until(15, "the Discord digest", |d| {
            d.messages().into_iter().find(|m| {
                m.body["embeds"][0]["title"]
                    .as_str()
                    .is_some_and(|t| t.contains("Morning"))
            })
        })
        .await;
    assert_eq!(
        discord_buttons(&discord_digest.body),
        vec![(
            format!("desk_promote:{}", held[2]),
            format!("Promote #{}", held[2])
        )]
    );
    let a = discord_click(&daemon, "click-d-3", &format!("desk_promote:{}", held[2])).await;
    assert!(a.contains(&format!("#{} is promoted", held[2])), "{a}");

    // Each promoted alert is posted exactly once per platform, and each promotion is a
    // positive label (10 from the learning phase, 3 promotions).
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in &held {
        assert_eq!(slack_roots_of(&slack, id), 1, "#{id} on Slack");
        assert_eq!(discord_roots_of(&discord, id), 1, "#{id} on Discord");
    }
    let stats = slack_desk(&slack, &daemon, "stats", "stats").await;
    let stats = stats["text"].as_str().unwrap_or_default().to_string();
    assert!(
        stats.contains("jaguar: 13 labels · 3 held back · 3 promoted"),
        "{stats}"
    );
    assert_eq!(metric(&daemon, "mentiondesk_promoted_total").await, 3);
    assert_eq!(metric(&daemon, "mentiondesk_held_total").await, 3);
    assert_eq!(metric(&daemon, "mentiondesk_alerts_total").await, 10);
    let text = reqwest::get(daemon.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for help in [
        "# HELP mentiondesk_alerts_total Alerts created and put on the desk; held-back alerts count in mentiondesk_held_total instead.",
        "# HELP mentiondesk_held_total Alerts held back by the relevance filter",
        "# HELP mentiondesk_promoted_total Held-back alerts a person promoted",
        "# TYPE mentiondesk_promoted_total counter",
    ] {
        assert!(text.contains(help), "{help} in {text}");
    }
    let list = slack_desk(&slack, &daemon, "list held", "held-after").await;
    assert!(slack_buttons(&list).is_empty(), "{list}");
    daemon.stop().await;
}
