//! An alert's state drives its whole message, end to end through the daemon and the strict
//! Slack and Discord fakes: each state has its own marker (and colour on Discord) and only
//! the buttons its state allows; every change is one edit of the root message plus one
//! thread note; the message reads headline first and shows the author's handle exactly.

use crate::common;

use common::discord::*;
use common::*;
use serde_json::{json, Value};

/// One feed item by `dana_k`, whose handle has the `_` Slack would read as markup.
fn feed() -> FeedResponse {
    let items = vec![(
        "first".to_string(),
        "Acme outage".to_string(),
        "acme is down again".to_string(),
    )];
    FeedResponse::rss(rss(&items).replace("<item>", "<item><author>dana_k</author>"))
}

// ---- Slack ----

fn slack_labels(body: &Value) -> Vec<String> {
    body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap().clone())
        .map(|e| e["text"]["text"].as_str().unwrap().to_string())
        .collect()
}

fn slack_header(body: &Value) -> String {
    body["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits for the `n`th edit of the root message and returns it.
async fn slack_edit(slack: &FakeSlack, n: usize, what: &str) -> Value {
    slack
        .wait_until(15, what, |f| {
            let u = f.updates();
            (u.len() >= n).then(|| u[n - 1].2.clone())
        })
        .await
}

const OPEN: [&str; 4] = ["Claim", "Resolve", "Snooze", "Not relevant"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_buttons_and_marker_follow_the_state_and_the_handle_is_exact() {
    let slack = FakeSlack::start().await;
    let feeds = FakeFeeds::start(vec![("/feed.xml", feed())]).await;
    let cfg = ConfigBuilder::new()
        .slack(&slack)
        .rss("news", &feeds.url("/feed.xml"))
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .desk()
        .toml();
    let daemon = Daemon::start(&cfg).await;
    let root = slack.wait_for_posts(1, 15).await.remove(0);

    // Headline first: what was said, who said it where, why and how urgent, the numbers,
    // the link, the state and the buttons.
    let types: Vec<&str> = root.body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["header", "context", "section", "context", "section", "context", "actions"]
    );
    assert_eq!(slack_header(&root.body), "📥 Acme outage");
    let who = &root.body["blocks"][1]["elements"][0];
    assert_eq!(who["type"], "plain_text", "no markup where the handle is");
    assert_eq!(who["text"], "by dana_k · news (rss)", "the handle exactly");
    assert!(!root.body.to_string().contains('ˍ'), "no look-alikes");
    let why = root.body["blocks"][2]["text"]["text"].as_str().unwrap();
    assert!(
        why.starts_with("> *acme* is down again\nMatched rule *acme*: *acme*\n*"),
        "{why}"
    );
    assert!(
        ["Low", "Normal", "High", "Critical"]
            .iter()
            .any(|p| why.contains(&format!(" {p} priority* · "))),
        "priority in words: {why}"
    );
    let detail = root.body["blocks"][3]["elements"][0]["text"]
        .as_str()
        .unwrap();
    assert!(detail.starts_with("sentiment score "), "{detail}");
    assert_eq!(slack_labels(&root.body), OPEN);

    let press =
        |action: &str, user: &str, trigger: &str| button_body(&slack, action, "1", user, trigger);
    // Claim: the owner is shown and the buttons become Unclaim / Resolve / Snooze.
    daemon
        .slack_post("/slack/interactions", &press("desk_claim", "U0ANA", "s1"))
        .await;
    let e = slack_edit(&slack, 1, "claimed edit").await;
    assert!(slack_header(&e).starts_with("🙋 "), "{e}");
    assert!(e.to_string().contains("🙋 Claimed by <@U0ANA>"), "{e}");
    assert_eq!(slack_labels(&e), ["Unclaim", "Resolve", "Snooze"]);

    // Unclaim: open again, the open buttons back.
    daemon
        .slack_post("/slack/interactions", &press("desk_unclaim", "U0ANA", "s2"))
        .await;
    let a = slack
        .wait_until(10, "unclaim answer", |f| f.answers("s2").pop())
        .await;
    assert!(a.contains("#1 is open again"), "{a}");
    let e = slack_edit(&slack, 2, "unclaimed edit").await;
    assert!(slack_header(&e).starts_with("📥 "));
    assert_eq!(slack_labels(&e), OPEN);

    // Resolve (through its dialog): only Reopen remains.
    daemon
        .slack_post(
            "/slack/interactions",
            &view_body(
                "desk_resolve",
                "1",
                "U0ANA",
                json!({"note": {"note": {"value": "replied"}}}),
            ),
        )
        .await;
    let e = slack_edit(&slack, 3, "resolved edit").await;
    assert!(slack_header(&e).starts_with("✅ "));
    assert_eq!(slack_labels(&e), ["Reopen"]);
    assert!(
        e["text"].as_str().unwrap().contains("· Resolved · #1"),
        "{e}"
    );

    // Reopen: back to the open set.
    daemon
        .slack_post("/slack/interactions", &press("desk_reopen", "U0BEN", "s3"))
        .await;
    let e = slack_edit(&slack, 4, "reopened edit").await;
    assert!(slack_header(&e).starts_with("📥 "));
    assert_eq!(slack_labels(&e), OPEN);

    // Not relevant (through its dialog): only Reopen.
    daemon
        .slack_post(
            "/slack/interactions",
            &view_body(
                "desk_ignore",
                "1",
                "U0BEN",
                json!({"reason": {"reason": {"value": "job ad"}}}),
            ),
        )
        .await;
    let e = slack_edit(&slack, 5, "ignored edit").await;
    assert!(slack_header(&e).starts_with("🚫 "));
    assert_eq!(slack_labels(&e), ["Reopen"]);

    // Five changes: five edits of the root and five thread notes, no more.
    let notes = slack
        .wait_until(10, "five thread notes", |f| {
            let t = f.thread(&root.ts);
            (t.len() >= 5).then_some(t)
        })
        .await;
    assert_eq!(notes.len(), 5, "{notes:?}");
    assert_eq!(slack.updates().len(), 5);
    assert!(slack.updates().iter().all(|u| u.1 == root.ts));
    daemon.stop().await;
}

// ---- Discord ----

async fn interact(d: &Daemon, body: &Value) -> Value {
    let body = body.to_string();
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = sign(&ts, &body);
    let resp = reqwest::Client::new()
        .post(d.url("/discord/interactions"))
        .header("content-type", "application/json")
        .header("x-signature-timestamp", &ts)
        .header("x-signature-ed25519", &sig)
        .body(body)
        .send()
        .await
        .unwrap();
    checked_interaction_answer(resp).await.json().await.unwrap()
}

fn member(user: &str) -> Value {
    json!({"user": {"id": user, "username": "someone"}, "roles": []})
}

fn button(id: &str, user: &str, custom_id: &str) -> Value {
    json!({"id": id, "application_id": APP_ID, "type": 3, "token": format!("tok-{id}"), "version": 1, "guild_id": GUILD_ID,
           "channel_id": CHANNEL, "member": member(user), "data": {"custom_id": custom_id, "component_type": 2}})
}

fn modal(id: &str, user: &str, custom_id: &str, fields: &[(&str, &str)]) -> Value {
    let rows: Vec<Value> = fields
        .iter()
        .map(|(k, v)| json!({"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]}))
        .collect();
    json!({"id": id, "application_id": APP_ID, "type": 5, "token": format!("tok-{id}"), "version": 1, "guild_id": GUILD_ID,
           "channel_id": CHANNEL, "member": member(user), "data": {"custom_id": custom_id, "components": rows}})
}

fn discord_ids(body: &Value) -> Vec<String> {
    body["components"][0]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["custom_id"].as_str().unwrap().to_string())
        .collect()
}

/// Waits for the `n`th edit of the root message and returns its body.
async fn discord_edit(discord: &FakeDiscord, n: usize, what: &str) -> Value {
    discord
        .wait_until(15, what, |d| {
            let e = d.edits();
            (e.len() >= n).then(|| e[n - 1].2.clone())
        })
        .await
}

fn colour(body: &Value) -> u64 {
    body["embeds"][0]["color"].as_u64().unwrap()
}

const OPEN_IDS: [&str; 4] = [
    "desk_claim:1",
    "desk_resolve:1",
    "desk_snooze:1",
    "desk_ignore:1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_colour_and_buttons_follow_the_state_and_the_handle_is_exact() {
    let discord = FakeDiscord::start().await;
    let feeds = FakeFeeds::start(vec![("/feed.xml", feed())]).await;
    let cfg = ConfigBuilder::new()
        .discord(&discord)
        .rss("news", &feeds.url("/feed.xml"))
        .rule("acme", "acme", &[&format!("discord:{CHANNEL}")])
        .desk()
        .toml();
    let daemon = Daemon::start(&cfg).await;
    let root = discord
        .wait_until(15, "alert posted", |d| d.roots().first().cloned())
        .await;

    let embed = &root.body["embeds"][0];
    assert_eq!(embed["title"], "📥 Acme outage", "headline first");
    let desc = embed["description"].as_str().unwrap();
    let lines: Vec<&str> = desc.lines().collect();
    assert_eq!(
        lines[0], "by dana\\_k · news (rss)",
        "handle escaped, shown as written"
    );
    assert_eq!(lines[1], "> **acme** is down again");
    assert_eq!(lines[2], "Matched rule **acme**: **acme**");
    assert!(lines[3].contains(" priority** · "), "{desc}");
    assert_eq!(colour(&root.body), 0xe74c3c, "open is red");
    assert_eq!(discord_ids(&root.body), OPEN_IDS);
    let fields: Vec<&str> = embed["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["State", "Details"]);

    // Claim: amber, the owner, Unclaim / Resolve / Snooze.
    let v = interact(&daemon, &button("d1", "11", "desk_claim:1")).await;
    assert!(v["data"]["content"]
        .as_str()
        .unwrap()
        .contains("You claimed #1"));
    let e = discord_edit(&discord, 1, "claimed edit").await;
    assert_eq!(colour(&e), 0xf1c40f);
    assert!(e.to_string().contains("Claimed by <@11>"), "{e}");
    assert_eq!(
        discord_ids(&e),
        ["desk_unclaim:1", "desk_resolve:1", "desk_snooze:1"]
    );

    // Unclaim: red again with the open set.
    interact(&daemon, &button("d2", "11", "desk_unclaim:1")).await;
    let e = discord_edit(&discord, 2, "unclaimed edit").await;
    assert_eq!(colour(&e), 0xe74c3c);
    assert_eq!(discord_ids(&e), OPEN_IDS);

    // Snooze for an hour: purple, and it can still be claimed, resolved or dismissed.
    interact(&daemon, &button("d3", "11", "desk_snooze_1h:1")).await;
    let e = discord_edit(&discord, 3, "snoozed edit").await;
    assert_eq!(colour(&e), 0x9b59b6);
    assert!(e["embeds"][0]["title"].as_str().unwrap().starts_with("💤 "));
    assert_eq!(
        discord_ids(&e),
        ["desk_claim:1", "desk_resolve:1", "desk_ignore:1"]
    );

    // Resolve through the dialog: green, only Reopen.
    interact(
        &daemon,
        &modal("d4", "11", "desk_resolve:1", &[("note", "replied")]),
    )
    .await;
    let e = discord_edit(&discord, 4, "resolved edit").await;
    assert_eq!(colour(&e), 0x2ecc71);
    assert_eq!(discord_ids(&e), ["desk_reopen:1"]);

    // Reopen: the open set again.
    let v = interact(&daemon, &button("d5", "12", "desk_reopen:1")).await;
    assert!(
        v["data"]["content"]
            .as_str()
            .unwrap()
            .contains("open again"),
        "{v}"
    );
    let e = discord_edit(&discord, 5, "reopened edit").await;
    assert_eq!(colour(&e), 0xe74c3c);
    assert_eq!(discord_ids(&e), OPEN_IDS);

    // Not relevant through the dialog: grey, only Reopen.
    interact(
        &daemon,
        &modal("d6", "12", "desk_ignore:1", &[("reason", "job ad")]),
    )
    .await;
    let e = discord_edit(&discord, 6, "ignored edit").await;
    assert_eq!(colour(&e), 0x95a5a6);
    assert!(e["embeds"][0]["title"].as_str().unwrap().starts_with("🚫 "));
    assert_eq!(discord_ids(&e), ["desk_reopen:1"]);

    // Six changes: six edits and six notes in the alert's thread.
    let notes = discord
        .wait_until(10, "six thread notes", |d| {
            let t = d.thread(&root.id);
            (t.len() >= 6).then_some(t)
        })
        .await;
    assert_eq!(notes.len(), 6, "{notes:?}");
    assert_eq!(discord.edits().len(), 6);
    daemon.stop().await;
}
