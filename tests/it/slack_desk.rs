//! The desk in Slack, end to end: signed slash commands and button payloads through the real
//! HTTP endpoints, changes delivered through slack-morphism to a fake Slack on 127.0.0.1:
//! the root message edited in place, a note in its thread, private answers via response_url.

use crate::common;

use common::*;
use serde_json::json;
use std::time::Duration;

fn config(slack: &FakeSlack, feed_url: &str, allowed: &[&str]) -> String {
    let desk = ConfigBuilder::new()
        .slack(slack)
        .rss("news", feed_url)
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .desk();
    if allowed.is_empty() {
        desk.toml()
    } else {
        desk.key("allowed", allowed).toml()
    }
}

struct Setup {
    slack: FakeSlack,
    daemon: Daemon,
    _feeds: FakeFeeds,
    root_ts: String,
}

/// A daemon with one alert (#1) posted; `items` more feed items are available.
async fn setup(allowed: &[&str], items: &[(String, String, String)]) -> Setup {
    let slack = FakeSlack::start().await;
    let mut all = vec![(
        "first".to_string(),
        "Acme outage".to_string(),
        "acme is down".to_string(),
    )];
    all.extend_from_slice(items);
    let feeds = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(rss(&all)))]).await;
    let daemon = Daemon::start(&config(&slack, &feeds.url("/feed.xml"), allowed)).await;
    let roots = slack.wait_for_posts(1, 15).await;
    Setup {
        root_ts: roots[0].ts.clone(),
        slack,
        daemon,
        _feeds: feeds,
    }
}

fn state_line(update: &serde_json::Value) -> String {
    update["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| {
            b["block_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("state-"))
        })
        .map(|b| b["elements"][0]["text"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_claim_edits_the_root_notes_the_thread_and_replay_changes_nothing() {
    let s = setup(&[], &[]).await;
    let body = command_body(&s.slack, "claim 1", "U0DANA", "trig-1");
    let resp = s.daemon.slack_post("/slack/commands", &body).await;
    assert_eq!(resp.status(), 200);

    let answer = s
        .slack
        .wait_until(10, "private answer", |f| f.answers("trig-1").pop())
        .await;
    assert!(answer.contains("You claimed #1"), "{answer}");
    let (channel, ts, update) = s
        .slack
        .wait_until(10, "chat.update", |f| f.updates().pop())
        .await;
    assert_eq!(
        (channel.as_str(), ts.as_str()),
        ("C0PRALERTS", s.root_ts.as_str())
    );
    let line = state_line(&update);
    assert!(
        line.contains("Claimed by <@U0DANA>") && line.contains("after posting"),
        "{line}"
    );
    let thread = s
        .slack
        .wait_until(10, "thread note", |f| {
            let t = f.thread(&s.root_ts);
            (!t.is_empty()).then_some(t)
        })
        .await;
    assert!(thread[0].contains("<@U0DANA> claimed this"), "{thread:?}");

    // The same signed request again (a Slack retry or a replay): no second change.
    let resp = s
        .daemon
        .raw_post("/slack/commands", &body, None, None)
        .await;
    assert_eq!(resp.status(), 401, "unsigned replay refused");
    let resp = s
        .daemon
        .raw_post(
            "/slack/commands",
            &body,
            Some(&chrono::Utc::now().timestamp().to_string()),
            Some(&mentiondesk::server::slack::sign(
                SIGNING_SECRET,
                chrono::Utc::now().timestamp(),
                body.as_bytes(),
            )),
        )
        .await;
    assert_eq!(resp.status(), 200, "a signed retry is acknowledged");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(s.slack.updates().len(), 1, "no second edit");
    assert_eq!(s.slack.thread(&s.root_ts).len(), 1, "no second thread note");
    assert_eq!(s.slack.answers("trig-1").len(), 1, "no second answer");

    // The audit log shows it once.
    let show = command_body(&s.slack, "show 1", "U0DANA", "trig-show");
    s.daemon.slack_post("/slack/commands", &show).await;
    let shown = s
        .slack
        .wait_until(10, "show answer", |f| f.answers("trig-show").pop())
        .await;
    assert_eq!(
        shown.matches("claim (open → claimed)").count(),
        1,
        "{shown}"
    );
    assert!(shown.contains("created"), "{shown}");
    s.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_unsigned_requests_get_401_and_change_nothing() {
    let s = setup(&[], &[]).await;
    let body = command_body(&s.slack, "claim 1", "U0EVE", "trig-evil");
    let now = chrono::Utc::now().timestamp();
    let forged = mentiondesk::server::slack::sign("not-the-secret", now, body.as_bytes());
    let stale_ts = now - 600;
    let stale = mentiondesk::server::slack::sign(SIGNING_SECRET, stale_ts, body.as_bytes());
    let altered = mentiondesk::server::slack::sign(SIGNING_SECRET, now, b"text=claim+2");
    let cases: Vec<(Option<String>, Option<String>)> = vec![
        (Some(now.to_string()), Some(forged)),
        (Some(stale_ts.to_string()), Some(stale)),
        (Some(now.to_string()), Some(altered)),
        (None, None),
        (Some(now.to_string()), None),
        (None, Some("v0=00".into())),
    ];
    for path in ["/slack/commands", "/slack/interactions"] {
        for (ts, sig) in &cases {
            let resp = s
                .daemon
                .raw_post(path, &body, ts.as_deref(), sig.as_deref())
                .await;
            assert_eq!(resp.status(), 401, "{path} {ts:?} {sig:?}");
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(s.slack.updates().is_empty());
    assert!(s.slack.responses().is_empty());
    assert!(s.slack.thread(&s.root_ts).is_empty());
    s.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_button_works() {
    let s = setup(
        &[],
        &[(
            "second".into(),
            "Acme again".into(),
            "acme broke my phone".into(),
        )],
    )
    .await;
    s.slack.wait_for_posts(2, 15).await;

    // Claim.
    s.daemon
        .slack_post(
            "/slack/interactions",
            &button_body(&s.slack, "desk_claim", "1", "U0ANA", "b1"),
        )
        .await;
    let a = s
        .slack
        .wait_until(10, "claim answer", |f| f.answers("b1").pop())
        .await;
    assert!(a.contains("You claimed #1"), "{a}");

    // Resolve opens a dialog; submitting it resolves with the note.
    s.daemon
        .slack_post(
            "/slack/interactions",
            &button_body(&s.slack, "desk_resolve", "1", "U0ANA", "b2"),
        )
        .await;
    let view = s
        .slack
        .wait_until(10, "resolve dialog", |f| {
            f.state.lock().unwrap().views.first().cloned()
        })
        .await;
    assert_eq!(view["callback_id"], "desk_resolve");
    assert_eq!(view["private_metadata"], "1");
    let resp = s
        .daemon
        .slack_post("/slack/interactions", &view_body("desk_resolve", "1", "U0ANA", json!({"note": {"note": {"type": "plain_text_input", "value": "replied publicly"}}})))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().is_empty(), "dialog closes");
    let upd = s
        .slack
        .wait_until(10, "resolved edit", |f| {
            f.updates()
                .into_iter()
                .map(|u| state_line(&u.2))
                .find(|l| l.contains("Resolved"))
        })
        .await;
    assert!(
        upd.contains("✅ Resolved by <@U0ANA> — \"replied publicly\""),
        "{upd}"
    );

    // Resolving again from a dialog is refused inside the dialog.
    let resp = s
        .daemon
        .slack_post(
            "/slack/interactions",
            &view_body(
                "desk_resolve",
                "1",
                "U0BEN",
                json!({"note": {"note": {"value": "again"}}}),
            ),
        )
        .await;
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["response_action"], "errors");
    assert!(
        v["errors"]["note"]
            .as_str()
            .unwrap()
            .contains("resolved. Reopen it first"),
        "{v}"
    );

    // Snooze offers choices; choosing 4 hours snoozes.
    s.daemon
        .slack_post(
            "/slack/interactions",
            &button_body(&s.slack, "desk_snooze", "2", "U0ANA", "b3"),
        )
        .await;
    let offer = s
        .slack
        .wait_until(10, "snooze choices", |f| {
            f.responses().into_iter().find(|(p, _)| p == "/response/b3")
        })
        .await;
    let choices: Vec<String> = offer.1["blocks"][1]["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        choices,
        vec!["desk_snooze_1h", "desk_snooze_4h", "desk_snooze_tomorrow"]
    );
    s.daemon
        .slack_post(
            "/slack/interactions",
            &button_body(&s.slack, "desk_snooze_4h", "2", "U0ANA", "b4"),
        )
        .await;
    let a = s
        .slack
        .wait_until(10, "snooze answer", |f| f.answers("b4").pop())
        .await;
    assert!(a.contains("#2 is snoozed until"), "{a}");

    // Not relevant opens a dialog with mute choices; muting the author stops their alerts.
    s.daemon
        .slack_post(
            "/slack/interactions",
            &button_body(&s.slack, "desk_ignore", "2", "U0ANA", "b5"),
        )
        .await;
    let view = s
        .slack
        .wait_until(10, "ignore dialog", |f| {
            f.state.lock().unwrap().views.get(1).cloned()
        })
        .await;
    assert_eq!(view["callback_id"], "desk_ignore");
    let resp = s
        .daemon
        .slack_post(
            "/slack/interactions",
            &view_body("desk_ignore", "2", "U0ANA", json!({"reason": {"reason": {"value": "spam"}}, "mute": {"mute": {"selected_options": [{"value": "site"}]}}})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let upd = s
        .slack
        .wait_until(10, "ignored edit", |f| {
            f.updates()
                .into_iter()
                .map(|u| state_line(&u.2))
                .find(|l| l.contains("Not relevant"))
        })
        .await;
    assert!(
        upd.contains("🚫 Not relevant (<@U0ANA>) — \"spam\""),
        "{upd}"
    );
    s.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_claims_have_one_winner_and_the_other_is_told_who() {
    let s = setup(&[], &[]).await;
    let a = button_body(&s.slack, "desk_claim", "1", "U0ANA", "c1");
    let b = button_body(&s.slack, "desk_claim", "1", "U0BEN", "c2");
    let (ra, rb) = tokio::join!(
        s.daemon.slack_post("/slack/interactions", &a),
        s.daemon.slack_post("/slack/interactions", &b)
    );
    assert_eq!((ra.status().as_u16(), rb.status().as_u16()), (200, 200));
    let ans_a = s
        .slack
        .wait_until(10, "answer a", |f| f.answers("c1").pop())
        .await;
    let ans_b = s
        .slack
        .wait_until(10, "answer b", |f| f.answers("c2").pop())
        .await;
    let (winner, loser_answer) = if ans_a.contains("You claimed") {
        ("U0ANA", &ans_b)
    } else {
        ("U0BEN", &ans_a)
    };
    assert!(
        ans_a.contains("You claimed") ^ ans_b.contains("You claimed"),
        "exactly one winner: {ans_a} / {ans_b}"
    );
    assert!(
        loser_answer.contains(&format!("already claimed by <@{winner}>")),
        "{loser_answer}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.slack.thread(&s.root_ts).len(), 1, "one claim note");
    s.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_answers_including_errors() {
    let s = setup(
        &[],
        &[(
            "second".into(),
            "Acme again".into(),
            "acme broke my phone".into(),
        )],
    )
    .await;
    s.slack.wait_for_posts(2, 15).await;
    let cases: Vec<(&str, &str, &str)> = vec![
        ("help", "U1", "`/desk claim 42` take alert #42"),
        ("claim 1", "U1", "You claimed #1"),
        ("claim 1", "U2", "already claimed by <@U1>"),
        ("claim 1", "U1", "#1 is already yours"),
        ("list mine", "U1", "1 claimed by you alert"),
        ("list unclaimed", "U1", "1 unclaimed alert"),
        ("list", "U1", "2 open alerts"),
        ("unclaim 1", "U1", "#1 is open again"),
        ("assign 1 <@U3|cleo>", "U1", "#1 is assigned"),
        (
            "note 1 called the customer",
            "U3",
            "Added your note to the thread of #1",
        ),
        ("snooze 2 2h", "U1", "#2 is snoozed until"),
        ("resolve 1 replied publicly", "U3", "#1 is resolved"),
        ("reopen 1", "U3", "#1 is open again"),
        ("ignore 1 duplicate", "U3", "#1 is marked not relevant"),
        ("reopen 2", "U1", "not resolved or ignored"),
        (
            "show 1",
            "U1",
            "note (claimed → claimed) — called the customer",
        ),
        ("stats 7d", "U1", "Time to claim: median"),
        (
            "preview acme AND phone",
            "U1",
            "1 of the last 2 mentions match",
        ),
        ("preview acme AND (", "U1", "does not parse"),
        ("relabel 1", "U1", "#1 is now marked not negative"),
        (
            "stats",
            "U1",
            "Sentiment: 1 of 2 corrected by people (50 % kept; 0 missed complaints)",
        ),
        ("relabel 1", "U1", "#1 is now marked as scored"),
        ("claim 99", "U1", "There is no alert #99"),
        ("clam 1", "U1", "Did you mean `/desk claim`?"),
        ("resolve", "U1", "needs an alert id"),
        ("snooze 1 whenever", "U1", "Usage: `/desk snooze 42 2h`"),
    ];
    for (i, (text, user, want)) in cases.iter().enumerate() {
        let trigger = format!("sub-{i}");
        let resp = s
            .daemon
            .slack_post(
                "/slack/commands",
                &command_body(&s.slack, text, user, &trigger),
            )
            .await;
        assert_eq!(resp.status(), 200);
        let got = s
            .slack
            .wait_until(10, text, |f| f.answers(&trigger).pop())
            .await;
        assert!(
            got.contains(want),
            "/desk {text} by {user}: {got:?} should contain {want:?}"
        );
    }
    let thread = s.slack.thread(&s.root_ts).join("\n");
    assert!(thread.contains("📝 <@U3>: called the customer"), "{thread}");
    assert!(thread.contains("<@U1> assigned this to <@U3>"), "{thread}");
    s.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_outside_the_allowed_list_are_refused_privately() {
    let s = setup(&["U0BOSS", "S0TEAM"], &[]).await;
    s.slack
        .state
        .lock()
        .unwrap()
        .groups
        .insert("S0TEAM".into(), vec!["U0MEMBER".into()]);
    s.daemon
        .slack_post(
            "/slack/commands",
            &command_body(&s.slack, "claim 1", "U0RANDOM", "al-1"),
        )
        .await;
    let a = s
        .slack
        .wait_until(10, "refusal", |f| f.answers("al-1").pop())
        .await;
    assert!(a.contains("not on this desk's list"), "{a}");
    s.daemon
        .slack_post(
            "/slack/commands",
            &command_body(&s.slack, "claim 1", "U0MEMBER", "al-2"),
        )
        .await;
    let a = s
        .slack
        .wait_until(10, "group member claim", |f| f.answers("al-2").pop())
        .await;
    assert!(a.contains("You claimed #1"), "{a}");
    // The answer can reach Slack before the relay's edit of the root message: wait for the
    // edit, then check that it is the only one (the refused claim came first and changed nothing).
    s.slack
        .wait_until(10, "the claim's edit", |f| {
            (!f.updates().is_empty()).then_some(())
        })
        .await;
    assert_eq!(
        s.slack.updates().len(),
        1,
        "only the allowed claim changed anything"
    );
    s.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_from_the_same_author_goes_into_the_existing_thread() {
    let slack = FakeSlack::start().await;
    let feed = |n: usize| {
        let mut items = vec![];
        for i in 0..n {
            items.push((
                format!("r{i}"),
                format!("Acme post number {i}"),
                format!("acme thing {i}"),
            ));
        }
        let mut x = rss(&items);
        // Same author on every item.
        x = x.replace("<item>", "<item><author>dana@example.com (Dana)</author>");
        x
    };
    let feeds = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(feed(2)))]).await;
    let daemon = Daemon::start(&config(&slack, &feeds.url("/feed.xml"), &[])).await;
    let roots = slack
        .wait_until(15, "first alert", |f| {
            (!f.roots().is_empty()).then(|| f.roots())
        })
        .await;
    let thread = slack
        .wait_until(15, "repeat in thread", |f| {
            let t = f.thread(&roots[0].ts);
            (!t.is_empty()).then_some(t)
        })
        .await;
    assert!(thread[0].contains("Another mention"), "{thread:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        slack.roots().len(),
        1,
        "the repeat did not become a second alert"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_mode_serves_commands_and_buttons_without_a_public_url() {
    let s = setup_with_app_token().await;
    s.slack
        .wait_until(10, "socket connection", |f| {
            f.state.lock().unwrap().socket_tx.clone()
        })
        .await;

    // A slash command over the socket: the ack carries the answer, the change is applied.
    let fields = json!({
        "team_id": "T0TEAM", "channel_id": "C0PRALERTS", "user_id": "U0SOCK", "command": "/desk",
        "text": "claim 1", "response_url": s.slack.response_url("sock-1"), "trigger_id": "sock-1",
    });
    s.slack.socket_send(json!({"envelope_id": "env-1", "type": "slash_commands", "accepts_response_payload": true, "payload": fields}));
    let ack = s
        .slack
        .wait_until(10, "command ack", |f| f.ack("env-1"))
        .await;
    assert!(
        ack["payload"]["text"]
            .as_str()
            .unwrap()
            .contains("You claimed #1"),
        "{ack}"
    );
    let (_, _, update) = s
        .slack
        .wait_until(10, "chat.update", |f| f.updates().pop())
        .await;
    assert!(state_line(&update).contains("Claimed by <@U0SOCK>"));

    // Slack redelivers the same envelope (retry): acknowledged, not applied twice.
    s.slack.socket_send(json!({"envelope_id": "env-1b", "type": "slash_commands", "accepts_response_payload": true, "retry_attempt": 1, "payload": fields}));
    s.slack
        .wait_until(10, "retry ack", |f| f.ack("env-1b"))
        .await;

    // A button over the socket: acked at once, answered through response_url.
    let payload = json!({
        "type": "block_actions",
        "user": {"id": "U0OTHER", "team_id": "T0TEAM"},
        "team": {"id": "T0TEAM"},
        "api_app_id": "A0APP",
        "trigger_id": "sock-2",
        "response_url": s.slack.response_url("sock-2"),
        "container": {"type": "message", "channel_id": "C0PRALERTS", "message_ts": s.root_ts},
        "actions": [{"type": "button", "action_id": "desk_claim", "block_id": "actions-1", "value": "1", "action_ts": "1700000000.2", "text": {"type": "plain_text", "text": "Claim"}}],
    });
    s.slack.socket_send(json!({"envelope_id": "env-2", "type": "interactive", "accepts_response_payload": true, "payload": payload}));
    s.slack
        .wait_until(10, "button ack", |f| f.ack("env-2"))
        .await;
    let answer = s
        .slack
        .wait_until(10, "button answer", |f| f.answers("sock-2").pop())
        .await;
    assert!(answer.contains("already claimed by <@U0SOCK>"), "{answer}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.slack.updates().len(), 1, "one claim, one edit");
    s.daemon.stop().await;
}

async fn setup_with_app_token() -> Setup {
    let slack = FakeSlack::start().await;
    let items = vec![(
        "first".to_string(),
        "Acme outage".to_string(),
        "acme is down".to_string(),
    )];
    let feeds = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(rss(&items)))]).await;
    let cfg = ConfigBuilder::new()
        .slack(&slack)
        .key("app_token", APP_TOKEN)
        .rss("news", &feeds.url("/feed.xml"))
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .desk()
        .toml();
    let daemon = Daemon::start(&cfg).await;
    let roots = slack.wait_for_posts(1, 15).await;
    Setup {
        root_ts: roots[0].ts.clone(),
        slack,
        daemon,
        _feeds: feeds,
    }
}

/// A command acknowledged just before shutdown still gets its answer: the work after the 3 s
/// ack is tracked and joined at shutdown, not dropped with the runtime. The answer goes to a
/// `response_url` on 127.0.0.1 that takes two seconds to accept it, so a daemon that did not
/// wait for its deferred work would have stopped before the answer arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_answered_just_before_shutdown_is_delivered_before_the_daemon_stops() {
    use axum::routing::post;
    use std::sync::{Arc, Mutex};
    let s = setup(&[], &[]).await;
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = received.clone();
    let slow = axum::Router::new().route(
        "/slow",
        post(move |body: axum::Json<serde_json::Value>| {
            let sink = sink.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                sink.lock().unwrap().push(body.0);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_url = format!("http://{}/slow", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, slow).await });

    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("team_id", "T0TEAM")
        .append_pair("channel_id", "C0PRALERTS")
        .append_pair("user_id", "U0LATE")
        .append_pair("command", "/desk")
        .append_pair("text", "claim 1")
        .append_pair("response_url", &slow_url)
        .append_pair("trigger_id", "late-1")
        .finish();
    let resp = s.daemon.slack_post("/slack/commands", &body).await;
    assert_eq!(resp.status(), 200);
    s.daemon.stop().await;
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "the answer was dropped at shutdown");
    assert!(
        got[0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("You claimed #1"),
        "{}",
        got[0]
    );
}
