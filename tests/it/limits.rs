//! Long texts against Slack's and Discord's published limits, end to end: through the real
//! HTTP endpoints and SDK clients to the fakes on 127.0.0.1, asserting on what the fakes
//! recorded. Each test is one case that the platforms refused before (issue 11, defects 7,
//! 8 and 11): Slack answered `invalid_blocks` to a section over 3,000 characters, Discord
//! answered 400 to an embed url over 2,048 characters and to a modal label over 45.

use crate::common;

use common::discord::*;
use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------- Slack

/// Section text ≤ 3,000 characters; Slack counts characters, which are never more than
/// UTF-16 units, so this counts UTF-16 units to be safe either way.
const SLACK_SECTION_MAX: usize = 3000;
/// A message's `text` is truncated by Slack past 40,000 characters.
const SLACK_TEXT_MAX: usize = 40_000;

fn slack_config(slack: &FakeSlack, feed_url: &str) -> String {
    ConfigBuilder::new()
        .slack(slack)
        .rss("news", feed_url)
        .rule("acme", "acme", &["slack:#pr-alerts"])
        .desk()
        .toml()
}

struct SlackSetup {
    slack: FakeSlack,
    daemon: Daemon,
    _feeds: FakeFeeds,
    root_ts: String,
}

async fn slack_setup(feed: FeedResponse) -> SlackSetup {
    let slack = FakeSlack::start().await;
    let feeds = FakeFeeds::start(vec![("/feed.xml", feed)]).await;
    let daemon = Daemon::start(&slack_config(&slack, &feeds.url("/feed.xml"))).await;
    let roots = slack.wait_for_posts(1, 15).await;
    SlackSetup {
        root_ts: roots[0].ts.clone(),
        slack,
        daemon,
        _feeds: feeds,
    }
}

fn one_item() -> FeedResponse {
    FeedResponse::rss(rss(&[(
        "first".to_string(),
        "Acme outage".to_string(),
        "acme is down".to_string(),
    )]))
}

fn len16(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Every text of a message's blocks, after checking each against Slack's limits.
fn slack_block_texts(body: &Value) -> Vec<String> {
    let blocks = body["blocks"].as_array().cloned().unwrap_or_default();
    assert!(blocks.len() <= 50, "{} blocks", blocks.len());
    assert!(len16(body["text"].as_str().unwrap_or_default()) <= SLACK_TEXT_MAX);
    let mut texts = Vec::new();
    for b in &blocks {
        let mut mine: Vec<&str> = b["text"]["text"].as_str().into_iter().collect();
        for e in b["elements"].as_array().into_iter().flatten() {
            mine.extend(e["text"].as_str());
        }
        for t in mine {
            assert!(
                len16(t) <= SLACK_SECTION_MAX,
                "a {}-character block text; Slack answers invalid_blocks",
                len16(t)
            );
            texts.push(t.to_string());
        }
    }
    texts
}

/// The thread replies under the alert, as full messages.
fn thread_posts(s: &SlackSetup) -> Vec<Value> {
    s.slack
        .posts()
        .into_iter()
        .filter(|p| p.body["thread_ts"] == s.root_ts.as_str())
        .map(|p| p.body)
        .collect()
}

async fn wait_thread(s: &SlackSetup, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    s.slack
        .wait_until(15, what, |_| thread_posts(s).into_iter().find(|p| pred(p)))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_desk_note_of_2990_characters_reaches_the_thread_whole() {
    let s = slack_setup(one_item()).await;
    // 2,990 characters whose `&` Slack needs escaped: 4,485 characters once escaped.
    let note = "tea & cake ".repeat(272)[..2990].to_string();
    let words = note.matches("tea").count();
    let body = command_body(&s.slack, &format!("note 1 {note}"), "U0DANA", "t-note");
    assert_eq!(
        s.daemon.slack_post("/slack/commands", &body).await.status(),
        200
    );

    let post = wait_thread(&s, "the note in the thread", |p| {
        p["text"].as_str().unwrap_or_default().contains("📝")
    })
    .await;
    let texts = slack_block_texts(&post);
    assert!(texts.len() >= 2, "split over sections: {}", texts.len());
    let all = texts.join(" ");
    assert_eq!(
        all.matches("tea &amp; cake").count() + 1,
        words,
        "nothing lost"
    );
    assert!(
        all.starts_with("📝 <@U0DANA>: tea &amp; cake"),
        "{}",
        &all[..60]
    );
    assert!(!all.contains('…'), "a team's own note is never cut");
    assert!(
        post["blocks"][0]["block_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("mdnote-")),
        "the first section keeps the delivery marker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_resolve_with_a_long_note_fits_the_root_and_the_thread() {
    let s = slack_setup(one_item()).await;
    let note = "fixed & answered <@U0BAD> ".repeat(112)[..2900].to_string();
    let values = json!({"note": {"note": {"type": "plain_text_input", "value": note}}});
    let resp = s
        .daemon
        .slack_post(
            "/slack/interactions",
            &view_body("desk_resolve", "1", "U0ANA", values),
        )
        .await;
    assert_eq!(resp.status(), 200);

    let (_, _, update) = s
        .slack
        .wait_until(15, "chat.update", |f| f.updates().pop())
        .await;
    let texts = slack_block_texts(&update);
    let state = texts
        .iter()
        .find(|t| t.starts_with("✅ Resolved by <@U0ANA>"))
        .expect("a state line");
    assert!(
        state.ends_with("…\" (all of it in the thread)"),
        "the root quotes an excerpt: {state}"
    );
    assert!(!state.contains("<@U0BAD>"), "untrusted text stays escaped");

    // Slack asks for new block ids when a message is updated.
    let root = &s.slack.roots()[0].body;
    let ids = |m: &Value| -> Vec<String> {
        m["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["block_id"].as_str().map(str::to_string))
            .collect()
    };
    let (before, after) = (ids(root), ids(&update));
    assert!(
        after.iter().any(|id| id.starts_with("state-1")),
        "{after:?}"
    );
    assert!(
        after.iter().all(|id| !before.contains(id)),
        "block ids reused on chat.update: {before:?} / {after:?}"
    );

    let post = wait_thread(&s, "the resolve note", |p| {
        p["text"]
            .as_str()
            .unwrap_or_default()
            .contains("resolved this")
    })
    .await;
    let all = slack_block_texts(&post).join(" ");
    assert_eq!(
        all.matches("fixed &amp; answered &lt;@U0BAD&gt;").count(),
        note.matches("fixed & answered <@U0BAD>").count(),
        "the whole note is in the thread"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_desk_show_with_25_notes_fits_the_private_answer() {
    let s = slack_setup(one_item()).await;
    for i in 0..25 {
        let text = format!("note {i:02} {}", "& long words ".repeat(20));
        let body = command_body(
            &s.slack,
            &format!("note 1 {text}"),
            "U0DANA",
            &format!("n{i}"),
        );
        assert_eq!(
            s.daemon.slack_post("/slack/commands", &body).await.status(),
            200
        );
        s.slack
            .wait_until(15, "note answer", |f| f.answers(&format!("n{i}")).pop())
            .await;
    }
    let body = command_body(&s.slack, "show 1", "U0DANA", "t-show");
    assert_eq!(
        s.daemon.slack_post("/slack/commands", &body).await.status(),
        200
    );
    let answer = s
        .slack
        .wait_until(15, "show answer", |f| {
            f.responses()
                .into_iter()
                .find(|(p, _)| p == "/response/t-show")
                .map(|(_, b)| b)
        })
        .await;
    let all = slack_block_texts(&answer).join(" ");
    assert!(
        len16(&all) > SLACK_SECTION_MAX,
        "a long answer: {}",
        len16(&all)
    );
    for i in [0, 12, 24] {
        assert!(all.contains(&format!("note {i:02}")), "note {i} in {all}");
    }
}

/// An Atom feed whose two entries share one 3,000-character author: the second is filed as a
/// repeat in the first alert's thread.
fn huge_author_feed() -> FeedResponse {
    let author = "N".repeat(3000);
    let entry = |id: &str, title: &str| {
        format!(
            "<entry><id>urn:{id}</id><title>{title}</title><updated>2026-11-30T08:00:00Z</updated>\
             <link href=\"https://example.com/{id}\"/><author><name>{author}</name></author>\
             <summary>acme {title}</summary></entry>"
        )
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><feed xmlns=\"http://www.w3.org/2005/Atom\">\
         <title>t</title><id>urn:feed</id><updated>2026-11-30T08:00:00Z</updated>{}{}</feed>",
        entry("one", "Acme one"),
        entry("two", "Acme two")
    );
    FeedResponse {
        status: 200,
        headers: vec![("content-type", "application/atom+xml".into())],
        body: body.into_bytes(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_repeat_note_for_a_3000_character_author_fits() {
    let s = slack_setup(huge_author_feed()).await;
    let post = wait_thread(&s, "the repeat note", |p| {
        p["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Another mention")
    })
    .await;
    let texts = slack_block_texts(&post);
    assert_eq!(texts.len(), 1, "an untrusted name is cut, not spread out");
    assert!(texts[0].contains("N…`"), "{}", &texts[0][..80]);
    assert!(
        texts[0].contains("Acme two"),
        "the post is still quoted: {}",
        texts[0]
    );
    for root in s.slack.roots() {
        slack_block_texts(&root.body);
    }
}

/// slack-morphism sends `files.getUploadURLExternal` as GET; Slack documents POST. The fake
/// records a GET as a violation, which fails this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_upload_url_is_requested_with_post() {
    use mentiondesk::chat::ChatPlatform;
    let slack = FakeSlack::start().await;
    let platform =
        mentiondesk::chat::slack::SlackPlatform::new(&slack.api_url(), BOT_TOKEN).unwrap();
    let digest = mentiondesk::model::DigestPost {
        title: "📊 Morning digest".into(),
        body: mentiondesk::model::Note::new().text("New mentions: 5"),
        chart: Some(vec![0x89, b'P', b'N', b'G', 1, 2, 3]),
        chart_alt: "mentions per day".into(),
    };
    let posted = platform
        .post_digest("C0PRALERTS", &digest, "digest-1")
        .await
        .expect("digest posted");
    let violations = slack.take_violations();
    assert!(
        violations.is_empty(),
        "requests Slack flags or refuses: {violations:?}"
    );
    assert_eq!(slack.faults.count("files.getUploadURLExternal"), 1);
    let s = slack.state.lock().unwrap();
    let (name, length, alt) = s
        .upload_urls
        .get(&posted.message_id)
        .expect("the posted file is the one whose upload URL was requested");
    assert_eq!(name, "mentiondesk-digest-digest-1.png");
    assert_eq!(*length, 7);
    assert_eq!(alt, "mentions per day");
    assert_eq!(s.completed_uploads.len(), 1, "the upload was completed");
}

// ---------------------------------------------------------------- Discord

fn discord_config(discord: &FakeDiscord, feed_url: &str) -> String {
    ConfigBuilder::new()
        .discord(discord)
        .rss("news", feed_url)
        .rule("acme", "acme", &[&format!("discord:{CHANNEL}")])
        .desk()
        .toml()
}

struct DiscordSetup {
    discord: FakeDiscord,
    daemon: Daemon,
    _feeds: FakeFeeds,
    root: DiscordMessage,
}

async fn discord_setup(guid: &str) -> DiscordSetup {
    let discord = FakeDiscord::start().await;
    let items = vec![(
        guid.to_string(),
        "Acme outage".to_string(),
        "acme is down".to_string(),
    )];
    let feeds = FakeFeeds::start(vec![("/feed.xml", FeedResponse::rss(rss(&items)))]).await;
    let daemon = Daemon::start(&discord_config(&discord, &feeds.url("/feed.xml"))).await;
    let root = discord
        .wait_until(15, "alert posted", |d| d.roots().first().cloned())
        .await;
    DiscordSetup {
        discord,
        daemon,
        _feeds: feeds,
        root,
    }
}

async fn interact(d: &Daemon, body: &Value) -> Value {
    let body = body.to_string();
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = sign(&ts, &body);
    let resp = reqwest::Client::new()
        .post(d.url("/discord/interactions"))
        .header("content-type", "application/json")
        .header("x-signature-timestamp", ts)
        .header("x-signature-ed25519", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    // Checked against Discord's spec and limits (a violation fails the test), then read.
    checked_interaction_answer(resp).await.json().await.unwrap()
}

fn interaction(id: &str, kind: u8, data: Value) -> Value {
    json!({"id": id, "application_id": APP_ID, "type": kind, "token": format!("tok-{id}"), "version": 1,
           "guild_id": GUILD_ID, "channel_id": CHANNEL,
           "member": {"user": {"id": "42", "username": "someone"}, "roles": []}, "data": data})
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// Checks a message body against Discord's documented limits.
fn assert_discord_limits(m: &Value) {
    assert_eq!(m["allowed_mentions"]["parse"], json!([]), "{m}");
    assert!(chars(&m["content"]) <= 2000);
    let mut total = 0;
    for e in m["embeds"].as_array().into_iter().flatten() {
        assert!(
            chars(&e["url"]) <= 2048,
            "an embed url of {}",
            chars(&e["url"])
        );
        assert!(chars(&e["title"]) <= 256);
        assert!(chars(&e["description"]) <= 4096);
        total += chars(&e["title"]) + chars(&e["description"]) + chars(&e["footer"]["text"]);
        for f in e["fields"].as_array().into_iter().flatten() {
            assert!(chars(&f["name"]) <= 256 && (1..=1024).contains(&chars(&f["value"])));
            total += chars(&f["name"]) + chars(&f["value"]);
        }
    }
    assert!(total <= 6000, "embeds hold {total}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_alert_with_a_3000_character_link_is_delivered_with_its_link() {
    let guid = format!("item-{}", "x".repeat(3000));
    let s = discord_setup(&guid).await;
    assert_discord_limits(&s.root.body);
    let embed = &s.root.body["embeds"][0];
    assert!(embed["url"].is_null(), "no url Discord refuses");
    let link = format!("https://example.com/posts/{guid}");
    assert!(
        embed["description"]
            .as_str()
            .unwrap()
            .contains(&format!("[Open the post]({link})")),
        "people can still reach the post"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_not_relevant_click_opens_a_modal_discord_accepts() {
    let s = discord_setup("first").await;
    let answer = interact(
        &s.daemon,
        &interaction(
            "i1",
            3,
            json!({"custom_id": "desk_ignore:1", "component_type": 2}),
        ),
    )
    .await;
    assert_eq!(answer["type"], 9, "a modal: {answer}");
    let data = &answer["data"];
    assert!(chars(&data["title"]) <= 45 && chars(&data["custom_id"]) <= 100);
    for row in data["components"].as_array().unwrap() {
        for input in row["components"].as_array().unwrap() {
            let label = &input["label"];
            assert!(
                (1..=45).contains(&chars(label)),
                "label {label} is over Discord's 45 characters"
            );
            assert!(chars(&input["placeholder"]) <= 100);
            assert!(input["max_length"].as_u64().unwrap_or(4000) <= 4000);
        }
    }
    // Submitting it still works: the reason and the mute choice arrive.
    let rows = json!([
        {"type": 1, "components": [{"type": 4, "custom_id": "reason", "value": "job ad"}]},
        {"type": 1, "components": [{"type": 4, "custom_id": "mute", "value": "author"}]}
    ]);
    let done = interact(
        &s.daemon,
        &interaction(
            "i2",
            5,
            json!({"custom_id": "desk_ignore:1", "components": rows}),
        ),
    )
    .await;
    assert!(
        done["data"]["content"]
            .as_str()
            .unwrap()
            .contains("#1 is marked not relevant"),
        "{done}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_long_resolve_note_arrives_whole_in_one_thread_message() {
    let s = discord_setup("first").await;
    let note = "kept @everyone informed ".repeat(121)[..2900].to_string();
    let rows =
        json!([{"type": 1, "components": [{"type": 4, "custom_id": "note", "value": note}]}]);
    let done = interact(
        &s.daemon,
        &interaction(
            "r1",
            5,
            json!({"custom_id": "desk_resolve:1", "components": rows}),
        ),
    )
    .await;
    assert!(
        done["data"]["content"]
            .as_str()
            .unwrap()
            .contains("resolved"),
        "{done}"
    );
    let edit = s
        .discord
        .wait_until(15, "root edited", |d| d.edits().pop())
        .await;
    assert_discord_limits(&edit.2);
    let msg = s
        .discord
        .wait_until(15, "thread note", |d| {
            d.messages().into_iter().find(|m| {
                m.channel_id == s.root.id
                    && m.body["content"]
                        .as_str()
                        .is_some_and(|c| c.contains("resolved this"))
            })
        })
        .await;
    assert_discord_limits(&msg.body);
    let mut all = msg.body["content"].as_str().unwrap().to_string();
    for e in msg.body["embeds"].as_array().into_iter().flatten() {
        all.push(' ');
        all.push_str(e["description"].as_str().unwrap());
    }
    assert_eq!(
        all.matches("kept \\@everyone informed").count(),
        note.matches("kept @everyone informed").count(),
        "the whole note arrives, its @everyone escaped"
    );
}
