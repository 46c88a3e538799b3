//! The desk in Discord, end to end: alerts posted through serenity's requests to a fake
//! Discord API on 127.0.0.1 (embed, buttons, no mentions, nonce, thread), and signed
//! interactions through the real `/discord/interactions` endpoint.

use crate::common;

use common::discord::*;
use common::faults::Fault;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn config(discord: &FakeDiscord, feed_url: &str) -> String {
    ConfigBuilder::new()
        .discord(discord)
        .rss("news", feed_url)
        .rule("acme", "acme", &[&format!("discord:{CHANNEL}")])
        .desk()
        .toml()
}

struct Setup {
    discord: FakeDiscord,
    daemon: Daemon,
    _feeds: FakeFeeds,
    root: String,
}

async fn setup(extra_items: usize) -> Setup {
    let discord = FakeDiscord::start().await;
    let mut items = vec![(
        "first".to_string(),
        "Acme outage <@&999> @everyone".to_string(),
        "acme is down, **really**".to_string(),
    )];
    for i in 0..extra_items {
        items.push((
            format!("x{i}"),
            format!("Acme again {i}"),
            format!("acme thing {i}"),
        ));
    }
    let feeds = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(rss(&items)))]).await;
    let daemon = Daemon::start(&config(&discord, &feeds.url("/feed.xml"))).await;
    let root = discord
        .wait_until(15, "alert posted", |d| {
            d.roots().first().map(|m| m.id.clone())
        })
        .await;
    Setup {
        discord,
        daemon,
        _feeds: feeds,
        root,
    }
}

async fn interact(d: &Daemon, body: &Value) -> reqwest::Response {
    let body = body.to_string();
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = sign(&ts, &body);
    common::discord::checked_interaction_answer(raw(d, &body, Some(&ts), Some(&sig)).await).await
}

async fn raw(d: &Daemon, body: &str, ts: Option<&str>, sig: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(d.url("/discord/interactions"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(ts) = ts {
        req = req.header("x-signature-timestamp", ts);
    }
    if let Some(sig) = sig {
        req = req.header("x-signature-ed25519", sig);
    }
    req.send().await.unwrap()
}

fn member(user: &str) -> Value {
    json!({"user": {"id": user, "username": "someone"}, "roles": []})
}

fn slash(id: &str, user: &str, sub: Value) -> Value {
    json!({"id": id, "application_id": APP_ID, "type": 2, "token": format!("tok-{id}"), "version": 1, "guild_id": GUILD_ID,
           "channel_id": CHANNEL, "member": member(user), "data": {"id": "cmd", "name": "desk", "type": 1, "options": [sub]}})
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

fn content(v: &Value) -> String {
    v["data"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn state_field(edit: &Value) -> String {
    edit["embeds"][0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "State")
        .map(|f| f["value"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_is_an_embed_with_buttons_no_mentions_and_a_thread() {
    let s = setup(0).await;
    let m = &s.discord.roots()[0];
    assert_eq!(
        m.body["allowed_mentions"]["parse"],
        json!([]),
        "no mentions parsed"
    );
    // One nonce per alert and channel, stable across retries, within Discord's 25.
    let nonce = m.body["nonce"].as_str().unwrap();
    assert!(nonce.starts_with("mda1-") && nonce.len() <= 25, "{nonce}");
    assert_eq!(m.body["enforce_nonce"], true);
    let embed = &m.body["embeds"][0];
    let title = embed["title"].as_str().unwrap();
    assert!(
        title.starts_with("📥 Acme outage \\<\\@&999\\> \\@everyone"),
        "the headline first: {title}"
    );
    assert_eq!(embed["footer"]["text"], "mentiondesk alert #1");
    assert!(embed["description"]
        .as_str()
        .unwrap()
        .contains("\\*\\*really\\*\\*"));
    assert_eq!(embed["url"], "https://example.com/posts/first");
    let ids: Vec<&str> = m.body["components"][0]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            "desk_claim:1",
            "desk_resolve:1",
            "desk_snooze:1",
            "desk_ignore:1"
        ]
    );
    // The thread is started right after the post is answered: wait for it.
    let threads = s
        .discord
        .wait_until(10, "thread started", |d| {
            let t = d.state.lock().unwrap().threads.clone();
            (!t.is_empty()).then_some(t)
        })
        .await;
    assert_eq!(threads.len(), 1);
    assert_eq!(
        threads[0].0, s.root,
        "the thread starts from the alert message"
    );
    let commands = s.discord.state.lock().unwrap().commands.clone();
    assert_eq!(
        commands[0].0,
        format!("/api/v10/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
    );
    let subs: Vec<&str> = commands[0].1[0]["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        subs,
        vec![
            "claim", "unclaim", "resolve", "reopen", "assign", "snooze", "ignore", "note", "list",
            "promote", "show", "stats", "preview", "relabel", "test", "help"
        ]
    );
    s.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_pongs_and_bad_signatures_get_401() {
    let s = setup(0).await;
    let ping = json!({"id": "1", "application_id": APP_ID, "type": 1, "token": "t", "version": 1});
    let resp = interact(&s.daemon, &ping).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"type": 1}));

    let body = slash(
        "i-evil",
        "666",
        json!({"name": "claim", "options": [{"name": "id", "type": 4, "value": 1}]}),
    )
    .to_string();
    let now = chrono::Utc::now().timestamp().to_string();
    let good = sign(&now, &body);
    let stale_ts = (chrono::Utc::now().timestamp() - 600).to_string();
    let stale = sign(&stale_ts, &body);
    let altered = body.replace("\"value\":1", "\"value\":2");
    let other_key: String = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]).sign_hex(&now, &body);
    for (b, ts, sig) in [
        (altered.as_str(), Some(now.as_str()), Some(good.as_str())),
        (body.as_str(), Some(stale_ts.as_str()), Some(stale.as_str())),
        (body.as_str(), Some(now.as_str()), Some(other_key.as_str())),
        (body.as_str(), None, Some(good.as_str())),
        (body.as_str(), Some(now.as_str()), None),
        (body.as_str(), Some(now.as_str()), Some("zz")),
    ] {
        assert_eq!(
            raw(&s.daemon, b, ts, sig).await.status(),
            401,
            "{ts:?} {sig:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(s.discord.edits().is_empty(), "nothing changed");
    s.daemon.stop().await;
}

trait SignHex {
    fn sign_hex(&self, ts: &str, body: &str) -> String;
}

impl SignHex for ed25519_dalek::SigningKey {
    fn sign_hex(&self, ts: &str, body: &str) -> String {
        use ed25519_dalek::Signer;
        let mut msg = ts.as_bytes().to_vec();
        msg.extend_from_slice(body.as_bytes());
        hex::encode(self.sign(&msg).to_bytes())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_answers_privately_like_slack() {
    let s = setup(1).await;
    s.discord
        .wait_until(15, "second alert", |d| (d.roots().len() >= 2).then_some(()))
        .await;
    let id = |n: u64| json!({"name": "id", "type": 4, "value": n});
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"name": "help"}), "11", "take alert #42"),
        (
            json!({"name": "claim", "options": [id(1)]}),
            "11",
            "You claimed #1",
        ),
        (
            json!({"name": "claim", "options": [id(1)]}),
            "22",
            "already claimed by <@11>",
        ),
        (
            json!({"name": "list", "options": [{"name": "which", "value": "mine"}]}),
            "11",
            "1 claimed by you alert",
        ),
        (
            json!({"name": "assign", "options": [id(1), {"name": "user", "type": 6, "value": "33"}]}),
            "11",
            "#1 is assigned",
        ),
        (
            json!({"name": "note", "options": [id(1), {"name": "text", "value": "called @everyone back"}]}),
            "33",
            "Added your note",
        ),
        (
            json!({"name": "snooze", "options": [id(2), {"name": "for", "value": "2h"}]}),
            "11",
            "#2 is snoozed until",
        ),
        (
            json!({"name": "snooze", "options": [id(2), {"name": "for", "value": "whenever"}]}),
            "11",
            "Usage",
        ),
        (
            json!({"name": "resolve", "options": [id(1), {"name": "note", "value": "replied publicly"}]}),
            "33",
            "#1 is resolved",
        ),
        (
            json!({"name": "reopen", "options": [id(1)]}),
            "33",
            "#1 is open again",
        ),
        (
            json!({"name": "ignore", "options": [id(1), {"name": "reason", "value": "dupe"}]}),
            "33",
            "not relevant",
        ),
        (json!({"name": "show", "options": [id(1)]}), "11", "History"),
        (json!({"name": "stats"}), "11", "Time to claim"),
        (
            json!({"name": "preview", "options": [{"name": "query", "value": "acme AND thing"}]}),
            "11",
            "1 of the last 2 mentions match",
        ),
        (
            json!({"name": "show", "options": [id(77)]}),
            "11",
            "There is no alert #77",
        ),
        (
            // "Acme again 0" is neutral to the trained model (the old cues took "again" for a
            // complaint), so relabelling marks it negative.
            json!({"name": "relabel", "options": [id(2)]}),
            "11",
            "#2 is now marked negative",
        ),
        // Posted into the channel it was typed in (the interaction's channel_id).
        (
            json!({"name": "test"}),
            "11",
            "Posted a test alert in this channel",
        ),
    ];
    for (i, (sub, user, want)) in cases.iter().enumerate() {
        let resp = interact(&s.daemon, &slash(&format!("int-{i}"), user, sub.clone())).await;
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["type"], 4, "{v}");
        assert_eq!(v["data"]["flags"], 64, "answers are ephemeral");
        assert_eq!(
            v["data"]["allowed_mentions"]["parse"],
            json!([]),
            "answers parse no mentions"
        );
        assert!(
            content(&v).contains(want),
            "{sub}: {} should contain {want:?}",
            content(&v)
        );
    }
    let claim_edit = s
        .discord
        .edits()
        .into_iter()
        .map(|e| state_field(&e.2))
        .find(|f| f.contains("Claimed"))
        .unwrap();
    assert!(claim_edit.contains("Claimed by <@11>"), "{claim_edit}");
    // Notes are delivered by the relay after the answer: wait for the last one.
    let thread = s
        .discord
        .wait_until(10, "notes in the thread", |d| {
            let t = d.thread(&s.root).join("\n");
            t.contains("called \\@everyone back").then_some(t)
        })
        .await;
    assert!(thread.contains("<@11> claimed this"), "{thread}");
    assert!(thread.contains("called \\@everyone back"), "{thread}");
    for m in s.discord.messages() {
        assert_eq!(
            m.body["allowed_mentions"]["parse"],
            json!([]),
            "every message parses no mentions: {}",
            m.body
        );
    }
    // A replayed interaction (same id) changes nothing. First let the relay deliver every
    // earlier change, so the count below is settled.
    for _ in 0..200 {
        if s.daemon.healthz().await["outbox_pending"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        s.daemon.healthz().await["outbox_pending"],
        0,
        "relay drained"
    );
    let before = s.discord.edits().len();
    let resp = interact(
        &s.daemon,
        &slash("int-1", "11", json!({"name": "claim", "options": [id(1)]})),
    )
    .await;
    assert!(content(&resp.json().await.unwrap()).contains("Already done"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.discord.edits().len(), before);
    s.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_button_and_dialog() {
    let s = setup(0).await;
    let v: Value = interact(&s.daemon, &button("b1", "11", "desk_claim:1"))
        .await
        .json()
        .await
        .unwrap();
    assert!(content(&v).contains("You claimed #1"), "{v}");

    let v: Value = interact(&s.daemon, &button("b2", "11", "desk_snooze:1"))
        .await
        .json()
        .await
        .unwrap();
    let choices: Vec<&str> = v["data"]["components"][0]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        choices,
        vec![
            "desk_snooze_1h:1",
            "desk_snooze_4h:1",
            "desk_snooze_tomorrow:1"
        ]
    );
    let v: Value = interact(&s.daemon, &button("b3", "11", "desk_snooze_1h:1"))
        .await
        .json()
        .await
        .unwrap();
    assert!(content(&v).contains("#1 is snoozed until"), "{v}");

    let v: Value = interact(&s.daemon, &button("b4", "11", "desk_resolve:1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["type"], 9, "Resolve opens a dialog: {v}");
    assert_eq!(v["data"]["custom_id"], "desk_resolve:1");
    let v: Value = interact(
        &s.daemon,
        &modal(
            "b5",
            "11",
            "desk_resolve:1",
            &[("note", "replied publicly")],
        ),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(content(&v).contains("#1 is resolved"), "{v}");
    let resolved = s
        .discord
        .wait_until(10, "resolved edit", |d| {
            d.edits()
                .into_iter()
                .map(|e| state_field(&e.2))
                .find(|f| f.contains("Resolved"))
        })
        .await;
    assert!(
        resolved.contains("✅ Resolved by <@11> — \"replied publicly\""),
        "{resolved}"
    );

    let v: Value = interact(&s.daemon, &button("b6", "11", "desk_ignore:1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["type"], 9);
    let v: Value = interact(
        &s.daemon,
        &modal(
            "b7",
            "11",
            "desk_ignore:1",
            &[("reason", "spam"), ("mute", "author")],
        ),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(
        content(&v).contains("is resolved. Reopen it first"),
        "a resolved alert cannot be ignored: {v}"
    );
    s.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_post_is_waited_out_and_posted_once() {
    let discord = FakeDiscord::start().await;
    discord
        .faults
        .next(ops::CREATE_MESSAGE, 2, Fault::global_rate_limit(0.5));
    let items = vec![(
        "r1".to_string(),
        "Acme".to_string(),
        "acme broke".to_string(),
    )];
    let feeds = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(rss(&items)))]).await;
    let started = std::time::Instant::now();
    let daemon = Daemon::start(&config(&discord, &feeds.url("/feed.xml"))).await;
    discord
        .wait_until(15, "post after 429s", |d| d.roots().first().cloned())
        .await;
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "two retry_after: 0.5 waits"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(discord.roots().len(), 1);
    assert_eq!(discord.faults.faulted(ops::CREATE_MESSAGE), 2);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_mode_serves_interactions_without_a_public_endpoint() {
    let discord = FakeDiscord::start().await;
    let items = vec![(
        "g1".to_string(),
        "Acme".to_string(),
        "acme broke".to_string(),
    )];
    let feeds = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(rss(&items)))]).await;
    let cfg = ConfigBuilder::new()
        .discord(&discord)
        .key("gateway", true)
        .rss("news", &feeds.url("/feed.xml"))
        .rule("acme", "acme", &[&format!("discord:{CHANNEL}")])
        .desk()
        .toml();
    let daemon = Daemon::start(&cfg).await;
    discord
        .wait_until(15, "alert posted", |d| d.roots().first().cloned())
        .await;
    discord
        .wait_until(15, "gateway ready", |d| {
            d.state.lock().unwrap().gateway_tx.clone()
        })
        .await;
    let identify = discord
        .state
        .lock()
        .unwrap()
        .gateway_received
        .iter()
        .find(|v| v["op"] == 2)
        .cloned()
        .unwrap();
    assert_eq!(
        identify["d"]["token"],
        format!("Bot {DISCORD_TOKEN}").as_str(),
        "identifies with the bot token"
    );

    let interaction = json!({
        "id": "400000000000000004", "application_id": APP_ID, "type": 2, "token": "gw-token", "version": 1,
        "guild_id": GUILD_ID, "channel_id": CHANNEL, "locale": "en-US", "guild_locale": "en-US",
        "app_permissions": "0", "entitlements": [], "authorizing_integration_owners": {}, "attachment_size_limit": 26214400,
        "member": {"user": {"id": "55", "username": "gwuser", "discriminator": "0", "global_name": null, "avatar": null},
                   "roles": [], "joined_at": "2024-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false, "flags": 0, "pending": false, "permissions": "0"},
        "data": {"id": "500000000000000005", "name": "desk", "type": 1,
                 "options": [{"name": "claim", "type": 1, "options": [{"name": "id", "type": 4, "value": 1}]}]}
    });
    if let Err(e) = serde_json::from_value::<serenity::all::Interaction>(interaction.clone()) {
        panic!("interaction does not deserialize: {e}");
    }
    discord.dispatch("INTERACTION_CREATE", interaction);
    let (id, body) = discord
        .wait_until(15, "interaction callback", |d| {
            d.state.lock().unwrap().callbacks.first().cloned()
        })
        .await;
    assert_eq!(id, "400000000000000004");
    assert_eq!(body["type"], 4);
    assert!(content(&body).contains("You claimed #1"), "{body}");
    let edit = discord
        .wait_until(10, "claimed edit", |d| d.edits().pop())
        .await;
    assert!(state_field(&edit.2).contains("Claimed by <@55>"));
    daemon.stop().await;
}
