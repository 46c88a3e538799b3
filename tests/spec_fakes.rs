//! Tests of the test fakes themselves: fault injection answers as the platforms do, the call
//! log, and (below) the strict spec and limit checks with payloads at and over each limit.

mod common;

use common::discord::{self, ops, FakeDiscord, DISCORD_TOKEN};
use common::faults::{Fault, Lasting, ANY};
use common::{FakeSlack, BOT_TOKEN};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

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
        json!({"message": "You are being rate limited.", "retry_after": 1.5, "global": false})
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
