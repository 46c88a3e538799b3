//! Tests of the test fakes themselves: fault injection answers as the platforms do, the call
//! log, and (below) the strict spec and limit checks with payloads at and over each limit.

use crate::common;

use common::discord::{self, ops, FakeDiscord, DISCORD_TOKEN};
use common::discord_spec::{check_body, invalid_form_body};
use common::faults::{Fault, Lasting, ANY};
use common::schema::{keywords_in, ANNOTATION_KEYWORDS, ASSERTION_KEYWORDS};
use common::slack_spec::{self, check_call, check_update_block_ids, web_api_refusal, Finding};
use common::violations::Severity;
use common::{FakeSlack, BOT_TOKEN};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

mod limits;

fn slack_post(slack: &FakeSlack, method: &str, body: Value) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("{}/{method}", slack.api_url()))
        .bearer_auth(BOT_TOKEN)
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string())
}

fn discord_req(d: &FakeDiscord, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, format!("{}/api/v10{path}", d.api_url()))
        .header("authorization", format!("Bot {DISCORD_TOKEN}"))
}

fn message(text: &str) -> Value {
    json!({"channel": "C0PRALERTS", "text": text})
}

#[tokio::test]
async fn slack_429_fault_answers_retry_after_then_passes() {
    let slack = FakeSlack::start().await;
    slack
        .faults
        .next("chat.postMessage", 1, Fault::rate_limited(5.0));
    let r = slack_post(&slack, "chat.postMessage", message("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "5");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"ok": false, "error": "ratelimited"}));
    let r: Value = slack_post(&slack, "chat.postMessage", message("b"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["ok"], true);
    assert_eq!(slack.faults.count("chat.postMessage"), 2);
    assert_eq!(slack.faults.faulted("chat.postMessage"), 1);
    assert_eq!(slack.posts().len(), 1, "the faulted call posted nothing");
}

#[tokio::test]
async fn slack_faults_until_an_instant_and_per_method() {
    let slack = FakeSlack::start().await;
    let t0 = Instant::now();
    slack
        .faults
        .until(ANY, t0 + Duration::from_millis(300), Fault::http(503));
    let r = slack_post(
        &slack,
        "chat.update",
        json!({"channel": "C0PRALERTS", "ts": "1.1", "text": "x"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<h1>503 Service Unavailable</h1>"));
    tokio::time::sleep(Duration::from_millis(350)).await;
    slack
        .faults
        .always("chat.postMessage", Fault::slack("not_in_channel"));
    let r: Value = slack_post(&slack, "chat.postMessage", message("a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({"ok": false, "error": "not_in_channel"}));
    let r: Value = reqwest::Client::new()
        .post(format!("{}/auth.test", slack.api_url()))
        .bearer_auth(BOT_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["ok"], true, "other methods are not faulted");
    assert_eq!(r["user_id"], "U0BOT");
    slack.faults.clear();
    let r: Value = slack_post(&slack, "chat.postMessage", message("a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["ok"], true);
    assert_eq!(
        slack
            .faults
            .count_between(ANY, t0, t0 + Duration::from_millis(300)),
        1
    );
    assert_eq!(slack.faults.count(ANY), 4);
}

#[tokio::test]
async fn slack_revoked_token_answers_invalid_auth_until_restored() {
    let slack = FakeSlack::start().await;
    slack.faults.revoke_token();
    let r: Value = slack_post(&slack, "chat.postMessage", message("a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({"ok": false, "error": "invalid_auth"}));
    slack.faults.restore_token();
    let r: Value = slack_post(&slack, "chat.postMessage", message("a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["ok"], true);
}

#[tokio::test]
#[should_panic(expected = "has no method")]
async fn a_mistyped_method_key_is_refused() {
    let slack = FakeSlack::start().await;
    slack
        .faults
        .inject("chat.postMesage", Fault::http(500), Lasting::Next(1));
}

#[tokio::test]
async fn discord_rate_limits_carry_the_documented_headers() {
    let d = FakeDiscord::start().await;
    d.faults
        .next(ops::CREATE_MESSAGE, 1, Fault::rate_limited(1.5));
    d.faults
        .next(ops::CREATE_MESSAGE, 1, Fault::global_rate_limit(2.0));
    let path = format!("/channels/{}/messages", discord::CHANNEL);
    let r = discord_req(&d, reqwest::Method::POST, &path)
        .json(&json!({"content": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let h = r.headers().clone();
    assert_eq!(h["retry-after"], "2");
    assert_eq!(h["x-ratelimit-scope"], "user");
    assert_eq!(h["x-ratelimit-remaining"], "0");
    assert_eq!(h["x-ratelimit-reset-after"], "1.500");
    assert!(h.contains_key("x-ratelimit-bucket"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"message": "You are being rate limited.", "retry_after": 1.5, "global": false, "code": 0})
    );
    let r = discord_req(&d, reqwest::Method::POST, &path)
        .json(&json!({"content": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-ratelimit-global"], "true");
    assert_eq!(r.headers()["x-ratelimit-scope"], "global");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["global"], true);
    let r = discord_req(&d, reqwest::Method::POST, &path)
        .json(&json!({"content": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(d.faults.count(ops::CREATE_MESSAGE), 3);
    assert_eq!(d.faults.faulted(ops::CREATE_MESSAGE), 2);
}

#[tokio::test]
async fn discord_errors_and_revoked_token() {
    let d = FakeDiscord::start().await;
    d.faults
        .always(ops::START_THREAD, Fault::discord_missing_permissions());
    let r = discord_req(
        &d,
        reqwest::Method::POST,
        &format!("/channels/{}/messages/123/threads", discord::CHANNEL),
    )
    .json(&json!({"name": "t"}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"message": "Missing Permissions", "code": 50013})
    );
    let me: Value = discord_req(&d, reqwest::Method::GET, "/users/@me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], discord::APP_ID);
    assert_eq!(me["bot"], true);
    d.faults.revoke_token();
    let r = discord_req(&d, reqwest::Method::GET, "/users/@me")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"message": "401: Unauthorized", "code": 0})
    );
    d.faults.restore_token();
    let r = discord_req(&d, reqwest::Method::GET, "/users/@me")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(d.faults.count(ops::USERS_ME), 3);
}

#[tokio::test]
#[should_panic(expected = "is not a Discord fault")]
async fn a_slack_fault_on_discord_is_refused() {
    let d = FakeDiscord::start().await;
    d.faults
        .next(ops::CREATE_MESSAGE, 1, Fault::slack("invalid_auth"));
}

fn s(n: usize) -> String {
    "x".repeat(n)
}

/// The errors of `body` sent to `op`, as (dotted path, code).
fn discord_errors(op: &str, body: &Value) -> Vec<(String, &'static str)> {
    check_body(op, body)
        .into_iter()
        .map(|e| (e.dotted(), e.code))
        .collect()
}

/// `make(limit)` passes and `make(limit + 1)` is refused at `path`.
fn discord_limit(op: &str, limit: usize, path: &str, make: impl Fn(usize) -> Value) {
    let ok = discord_errors(op, &make(limit));
    assert!(ok.is_empty(), "{path} at {limit}: {ok:?}");
    let over = discord_errors(op, &make(limit + 1));
    assert!(
        over.iter().any(|(p, _)| p == path),
        "{path} at {} should be refused, got {over:?}",
        limit + 1
    );
}

fn button(custom_id: &str, label: &str) -> Value {
    json!({"type": 2, "style": 1, "custom_id": custom_id, "label": label})
}

fn row(n: usize) -> Value {
    json!({"type": 1, "components": (0..n).map(|i| button(&format!("b{i}"), "B")).collect::<Vec<_>>()})
}

fn modal(title: &str, label: &str, placeholder: &str, max_length: u64) -> Value {
    json!({"type": 9, "data": {"custom_id": "m", "title": title, "components": [
        {"type": 1, "components": [{"type": 4, "custom_id": "reason", "style": 2, "label": label,
            "placeholder": placeholder, "max_length": max_length, "required": false}]}
    ]}})
}

fn args(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn refused(findings: &[Finding]) -> Vec<(&'static str, String)> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Refused)
        .map(|f| (f.error, f.pointer.clone()))
        .collect()
}

fn warnings(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .map(|f| f.pointer.clone())
        .collect()
}

fn post(blocks: Value) -> serde_json::Map<String, Value> {
    args(json!({"channel": "C0PRALERTS", "text": "fallback", "blocks": blocks}))
}

/// `make(limit)` passes and `make(limit + 1)` is refused with `error` at `pointer`.
fn slack_limit(
    method: &str,
    limit: usize,
    error: &str,
    pointer: &str,
    make: impl Fn(usize) -> serde_json::Map<String, Value>,
) {
    let ok = refused(&check_call(method, "POST", &make(limit)));
    assert!(ok.is_empty(), "{pointer} at {limit}: {ok:?}");
    let over = refused(&check_call(method, "POST", &make(limit + 1)));
    assert!(
        over.iter().any(|(e, p)| *e == error && p == pointer),
        "{pointer} at {} should be refused with {error}, got {over:?}",
        limit + 1
    );
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

fn actions(buttons: Vec<Value>) -> Value {
    json!({"type": "actions", "elements": buttons})
}

fn sbutton(action_id: &str, text: &str, value: &str) -> Value {
    json!({"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text}, "value": value})
}

fn view(v: Value) -> serde_json::Map<String, Value> {
    args(json!({"trigger_id": "t1", "view": v}))
}

fn resolve_modal(title: &str, label: &str, max_length: usize, n_blocks: usize) -> Value {
    let mut blocks = vec![
        json!({"type": "input", "block_id": "note", "optional": true,
        "label": {"type": "plain_text", "text": label},
        "element": {"type": "plain_text_input", "action_id": "note", "multiline": true, "max_length": max_length}}),
    ];
    blocks.extend((1..n_blocks).map(|_| section("s")));
    json!({"type": "modal", "callback_id": "resolve", "private_metadata": "1",
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Resolve"},
        "close": {"type": "plain_text", "text": "Cancel"}, "blocks": blocks})
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ------------------------------------------------------------------ the fakes over HTTP

#[tokio::test]
async fn slack_refuses_a_long_section_over_http_and_records_it() {
    let slack = FakeSlack::start().await;
    let r: Value = slack_post(
        &slack,
        "chat.postMessage",
        Value::Object(post(json!([section(&s(3001))]))),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(r["error"], "invalid_blocks");
    assert!(slack.posts().is_empty(), "nothing was posted");
    let v = slack.take_violations();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].field, "/blocks/0/text/text");
    assert!(v[0].rule.contains("is 3001 characters"), "{}", v[0].rule);
    // A response URL answers 400 with the bare code.
    let r = reqwest::Client::new()
        .post(slack.response_url("x"))
        .json(&json!({"text": "t", "blocks": [section(&s(3001))]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.text().await.unwrap(), "invalid_blocks");
    assert_eq!(slack.take_violations().len(), 1);
}

#[tokio::test]
async fn discord_refuses_a_long_embed_url_over_http_and_records_it() {
    let d = FakeDiscord::start().await;
    let r = discord_req(
        &d,
        reqwest::Method::POST,
        &format!("/channels/{}/messages", discord::CHANNEL),
    )
    .json(&json!({"embeds": [{"title": "t", "url": format!("https://e.com/{}", s(2100))}]}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], 50035);
    assert_eq!(
        body["errors"]["embeds"]["0"]["url"]["_errors"][0]["code"],
        "BASE_TYPE_MAX_LENGTH"
    );
    assert!(d.messages().is_empty());
    let v = d.take_violations();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].field, "embeds.0.url");
    assert!(v[0].rule.contains("is 2114 characters"), "{}", v[0].rule);
    // A good message is answered in Discord's message shape.
    let m: Value = discord_req(
        &d,
        reqwest::Method::POST,
        &format!("/channels/{}/messages", discord::CHANNEL),
    )
    .json(&json!({"content": "hello", "nonce": "n1"}))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    for k in [
        "id",
        "channel_id",
        "author",
        "content",
        "timestamp",
        "edited_timestamp",
        "tts",
        "mention_everyone",
        "mentions",
        "mention_roles",
        "attachments",
        "embeds",
        "pinned",
        "type",
        "flags",
        "components",
        "nonce",
    ] {
        assert!(m.get(k).is_some(), "message object lacks {k}: {m}");
    }
    assert_eq!(m["author"]["bot"], true);
}

#[tokio::test]
#[should_panic(expected = "the fake Discord received 1 request(s)")]
async fn a_violation_nobody_took_fails_the_test() {
    let d = FakeDiscord::start().await;
    let _ = discord_req(
        &d,
        reqwest::Method::POST,
        &format!("/channels/{}/messages", discord::CHANNEL),
    )
    .json(&json!({"content": s(2001)}))
    .send()
    .await
    .unwrap();
}

#[tokio::test]
async fn expected_violations_do_not_fail_the_test() {
    let slack = FakeSlack::start().await;
    slack.expect_violations();
    let r: Value = slack_post(
        &slack,
        "chat.postMessage",
        json!({"channel": "C0PRALERTS", "text": s(40_001)}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(r, json!({"ok": false, "error": "msg_too_long"}));
}

// ------------------------------------------------------------------ the fakes' own answers

#[tokio::test]
async fn discord_success_and_error_answers_match_the_response_schemas() {
    use common::discord_spec::check_response;
    let d = FakeDiscord::start().await;
    let path = format!("/channels/{}/messages", discord::CHANNEL);
    let created: Value = discord_req(&d, reqwest::Method::POST, &path)
        .json(&json!({"content": "hello", "nonce": "n1", "embeds": [{"title": "t", "description": "d"}],
            "components": [row(2)]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        check_response("MessageResponse", &created),
        vec![],
        "{created}"
    );
    let edited: Value = discord_req(
        &d,
        reqwest::Method::PATCH,
        &format!("{path}/{}", created["id"].as_str().unwrap()),
    )
    .json(&json!({"content": "edited"}))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        check_response("MessageResponse", &edited),
        vec![],
        "{edited}"
    );
    let listed: Value = discord_req(&d, reqwest::Method::GET, &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        check_response("MessageResponse", &listed[0]),
        vec![],
        "{listed}"
    );
    let me: Value = discord_req(&d, reqwest::Method::GET, "/users/@me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(check_response("UserPIIResponse", &me), vec![], "{me}");

    d.faults
        .next(ops::CREATE_MESSAGE, 1, Fault::rate_limited(0.5));
    let limited: Value = discord_req(&d, reqwest::Method::POST, &path)
        .json(&json!({"content": "x"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        check_response("RatelimitedResponse", &limited),
        vec![],
        "{limited}"
    );
    d.faults
        .next(ops::CREATE_MESSAGE, 1, Fault::discord_missing_access());
    let denied: Value = discord_req(&d, reqwest::Method::POST, &path)
        .json(&json!({"content": "x"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(check_response("ErrorResponse", &denied), vec![], "{denied}");
    // 50035: the top level is an Error. Its field errors carry string codes
    // ("BASE_TYPE_MAX_LENGTH"), as in Discord's documented example (topics/opcodes-and-status-
    // codes, "Example JSON Error Response"); the spec's InnerErrors types them as integers, so
    // only the envelope is checked against the spec.
    let invalid = invalid_form_body(&check_body(ops::CALLBACK, &modal("T", &s(49), "", 100)));
    assert_eq!(check_response("Error", &invalid), vec![], "{invalid}");
    // And a wrong answer is caught: a message without its author.
    let mut broken = created.clone();
    broken.as_object_mut().unwrap().remove("author");
    assert_eq!(check_response("MessageResponse", &broken).len(), 1);
}

#[tokio::test]
async fn slack_success_answers_have_the_documented_fields() {
    let slack = FakeSlack::start().await;
    let posted: Value = slack_post(
        &slack,
        "chat.postMessage",
        Value::Object(post(json!([section("hi")]))),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    for k in ["ok", "channel", "ts", "message"] {
        assert!(
            posted.get(k).is_some(),
            "chat.postMessage lacks {k}: {posted}"
        );
    }
    for k in ["type", "text", "user", "bot_id", "ts", "blocks"] {
        assert!(
            posted["message"].get(k).is_some(),
            "message lacks {k}: {posted}"
        );
    }
    let ts = posted["ts"].as_str().unwrap();
    let updated: Value = slack_post(&slack, "chat.update", json!({"channel": "C0PRALERTS", "ts": ts, "text": "t2",
        "blocks": [{"type": "section", "block_id": "b2", "text": {"type": "mrkdwn", "text": "x"}}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for k in ["ok", "channel", "ts", "text", "message"] {
        assert!(updated.get(k).is_some(), "chat.update lacks {k}: {updated}");
    }
    let history: Value = reqwest::Client::new()
        .get(format!(
            "{}/conversations.history?channel=C0PRALERTS",
            slack.api_url()
        ))
        .bearer_auth(BOT_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history["ok"], true);
    assert_eq!(history["has_more"], false);
    assert_eq!(history["response_metadata"]["next_cursor"], "");
    assert_eq!(history["messages"][0]["type"], "message");
    let me: Value = reqwest::Client::new()
        .post(format!("{}/auth.test", slack.api_url()))
        .bearer_auth(BOT_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for k in ["ok", "url", "team", "user", "team_id", "user_id", "bot_id"] {
        assert!(me.get(k).is_some(), "auth.test lacks {k}: {me}");
    }
    // The files.getUploadURLExternal of the reference page: POST with form arguments.
    let up: Value = reqwest::Client::new()
        .post(format!("{}/files.getUploadURLExternal", slack.api_url()))
        .bearer_auth(BOT_TOKEN)
        .form(&[("filename", "d.png"), ("length", "3")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(up["ok"], true, "{up}");
    assert!(up["upload_url"].as_str().unwrap().contains("/upload/"));
}

#[test]
fn immediate_answers_to_slack_are_checked_as_messages_or_views() {
    use common::slack_spec::check_immediate_answer;
    assert!(
        check_immediate_answer(&json!({"response_type": "ephemeral", "text": "ok"})).is_empty()
    );
    let long = check_immediate_answer(&json!({"text": "t", "blocks": [section(&s(3001))]}));
    assert_eq!(
        refused(&long),
        vec![("invalid_blocks", "/blocks/0/text/text".to_string())]
    );
    let view = check_immediate_answer(
        &json!({"response_action": "update", "view": resolve_modal(&s(25), "Note", 10, 1)}),
    );
    assert_eq!(
        refused(&view),
        vec![("invalid_arguments", "/view/title/text".to_string())]
    );
    assert!(check_immediate_answer(
        &json!({"response_action": "errors", "errors": {"note": "too long"}})
    )
    .is_empty());
}

#[tokio::test]
#[should_panic(expected = "a body Discord refuses")]
async fn a_refused_http_interaction_answer_fails_the_test() {
    let answer = axum::http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(modal("T", &s(46), "", 10).to_string())
        .unwrap();
    discord::checked_interaction_answer(reqwest::Response::from(answer)).await;
}

#[tokio::test]
async fn history_holds_channel_messages_only_and_pages_like_slack() {
    let slack = FakeSlack::start().await;
    let mut roots = Vec::new();
    for i in 0..3 {
        let r: Value = slack_post(&slack, "chat.postMessage", message(&format!("root {i}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        roots.push(r["ts"].as_str().unwrap().to_string());
    }
    let reply = json!({"channel": "C0PRALERTS", "text": "reply", "thread_ts": roots[0]});
    assert_eq!(
        slack_post(&slack, "chat.postMessage", reply)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let get = |q: &str| {
        reqwest::Client::new()
            .get(format!(
                "{}/conversations.history?channel=C0PRALERTS{q}",
                slack.api_url()
            ))
            .bearer_auth(BOT_TOKEN)
            .send()
    };
    let all: Value = get("").await.unwrap().json().await.unwrap();
    let texts: Vec<&str> = all["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        vec!["root 2", "root 1", "root 0"],
        "newest first, no thread replies"
    );
    let page: Value = get("&limit=2").await.unwrap().json().await.unwrap();
    assert_eq!(page["messages"].as_array().unwrap().len(), 2);
    assert_eq!(page["has_more"], true);
    let thread: Value = reqwest::Client::new()
        .get(format!(
            "{}/conversations.replies?channel=C0PRALERTS&ts={}",
            slack.api_url(),
            roots[0]
        ))
        .bearer_auth(BOT_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(thread["messages"].as_array().unwrap().len(), 2, "{thread}");
}

#[tokio::test]
async fn discord_lists_and_gets_messages_as_they_are_now() {
    let d = FakeDiscord::start().await;
    let path = format!("/channels/{}/messages", discord::CHANNEL);
    let mut ids = Vec::new();
    for i in 0..3 {
        let m: Value = discord_req(&d, reqwest::Method::POST, &path)
            .json(&json!({"content": format!("m{i}"), "nonce": format!("n{i}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(m["id"].as_str().unwrap().to_string());
    }
    discord_req(&d, reqwest::Method::PATCH, &format!("{path}/{}", ids[0]))
        .json(&json!({"content": "m0 edited"}))
        .send()
        .await
        .unwrap();
    let got: Value = discord_req(&d, reqwest::Method::GET, &format!("{path}/{}", ids[0]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["content"], "m0 edited");
    assert!(
        got.get("nonce").is_none(),
        "fetched messages carry no nonce"
    );
    assert!(!got["edited_timestamp"].is_null());
    let page: Value = discord_req(&d, reqwest::Method::GET, &format!("{path}?limit=2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let contents: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, vec!["m2", "m1"]);
    // limit is 1..=100 in the spec.
    let r = discord_req(&d, reqwest::Method::GET, &format!("{path}?limit=101"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(d.take_violations()[0].field, "limit");
    let r = discord_req(&d, reqwest::Method::GET, &format!("{path}/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// A call to a method or route the fakes do not have would go unchecked: it is answered as
/// the platform answers an unknown method/route and fails the test.
#[tokio::test]
async fn calls_the_fakes_do_not_know_are_recorded_as_violations() {
    let slack = FakeSlack::start().await;
    let r: Value = slack_post(&slack, "chat.scheduleMessage", message("later"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({"ok": false, "error": "unknown_method"}));
    let v = slack.take_violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].call.contains("chat.scheduleMessage"), "{}", v[0]);

    let d = FakeDiscord::start().await;
    let r = discord_req(&d, reqwest::Method::GET, "/guilds/1/members")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], 0);
    let v = d.take_violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].call.contains("/guilds/1/members"), "{}", v[0]);
}
