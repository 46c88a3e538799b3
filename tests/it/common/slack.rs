//! The fake Slack: Web API methods, response URLs, Socket Mode and file uploads, checked
//! against Slack's spec (`slack_spec.rs`) and answering faults injected through `faults.rs`.

use super::faults::{self, Fault, Faults, Platform};
use super::slack_spec;
use super::violations::{Guard, Severity, Violation, Violations};
use super::{poll_until, serve, BOT_TOKEN};

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SlackPost {
    pub channel: String,
    pub ts: String,
    pub body: Value,
}

#[derive(Default)]
pub struct SlackState {
    pub posts: Vec<SlackPost>,
    pub history_calls: u32,
    pub list_calls: u32,
    /// `chat.update` calls: (channel, ts, body).
    pub updates: Vec<(String, String, Value)>,
    /// `views.open` calls: the view JSON.
    pub views: Vec<Value>,
    /// Messages sent to response URLs: (path, body).
    pub responses: Vec<(String, Value)>,
    /// User group id → members, for `usergroups.users.list`.
    pub groups: HashMap<String, Vec<String>>,
    /// Socket Mode: frames to send to the connected client, and the acks it sent back.
    pub socket_tx: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    pub acks: Vec<Value>,
    pub socket_connections: u32,
    /// The fake's own address, for upload URLs.
    pub addr: Option<SocketAddr>,
    /// Upload URLs handed out: file id → (file name, declared length, alt text).
    pub upload_urls: HashMap<String, (String, usize, String)>,
    /// Bytes sent to an upload URL: file id → (content type, bytes).
    pub uploads: HashMap<String, (String, Vec<u8>)>,
    /// `files.completeUploadExternal` bodies.
    pub completed_uploads: Vec<Value>,
    /// Channel ids of `CHANNELS` the bot is not a member of (`conversations.info` answers
    /// `is_member: false`; posting there is `not_in_channel`).
    pub not_member: HashSet<String>,
    /// Channel ids of `CHANNELS` that are archived (`is_archived: true`; posting is
    /// `is_archived`; `conversations.list` leaves them out with `exclude_archived`).
    pub archived: HashSet<String>,
    /// Where Socket Mode acks that break Slack's rules are recorded.
    violations: Violations,
    next_ts: u64,
}

impl SlackState {
    /// A new message ts: like real Slack, the current epoch time in microseconds, unique.
    fn new_ts(&mut self) -> String {
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        self.next_ts = (self.next_ts + 1).max(now_us);
        format!(
            "{}.{:06}",
            self.next_ts / 1_000_000,
            self.next_ts % 1_000_000
        )
    }
}

#[derive(Clone)]
pub struct FakeSlack {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<SlackState>>,
    /// Injected faults and the log of every call (see `faults.rs`).
    pub faults: Faults,
    /// Requests that broke Slack's spec or limits (see `slack_spec.rs`).
    pub violations: Violations,
    /// Held only for its `Drop`: fails the test when the last handle is dropped with
    /// unexpected violations.
    _guard: Arc<Guard>,
}

/// Channel names the fake workspace knows, with their ids.
pub const CHANNELS: &[(&str, &str)] = &[("pr-alerts", "C0PRALERTS"), ("pr-leads", "C0PRLEADS0")];

fn channel_id(name_or_id: &str) -> Option<String> {
    let name = name_or_id.trim_start_matches('#');
    CHANNELS
        .iter()
        .find(|(n, id)| *n == name || *id == name_or_id)
        .map(|(_, id)| id.to_string())
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let state = Arc::new(Mutex::new(SlackState {
            ..Default::default()
        }));
        let shared = state.clone();
        let faults = Faults::new(Platform::Slack, SLACK_METHODS);
        let violations = Violations::default();
        state.lock().unwrap().violations = violations.clone();
        let router = Router::new()
            .route("/api/auth.test", get(auth_test).post(auth_test))
            .route(
                "/api/chat.postMessage",
                get(post_message).post(post_message),
            )
            .route("/api/conversations.history", get(history).post(history))
            .route("/api/conversations.list", get(list).post(list))
            .route(
                "/api/conversations.info",
                get(conversation_info).post(conversation_info),
            )
            .route("/api/conversations.replies", get(replies).post(replies))
            .route("/api/chat.update", get(chat_update).post(chat_update))
            .route("/api/views.open", get(views_open).post(views_open))
            .route(
                "/api/usergroups.users.list",
                get(usergroup_users).post(usergroup_users),
            )
            .route("/response/{id}", post(response_url))
            .route(
                "/api/apps.connections.open",
                get(connections_open).post(connections_open),
            )
            .route("/socket", get(socket))
            .route(
                "/api/files.getUploadURLExternal",
                get(get_upload_url).post(get_upload_url),
            )
            .route("/upload/{file}", post(upload))
            .route(
                "/api/files.completeUploadExternal",
                get(complete_upload).post(complete_upload),
            )
            .layer(axum::middleware::from_fn_with_state(
                SlackGate {
                    faults: faults.clone(),
                    violations: violations.clone(),
                    state: state.clone(),
                },
                slack_gate,
            ))
            .with_state(shared);
        let addr = serve(router).await;
        state.lock().unwrap().addr = Some(addr);
        FakeSlack {
            addr,
            state,
            faults,
            _guard: Arc::new(Guard {
                name: "the fake Slack",
                violations: violations.clone(),
            }),
            violations,
        }
    }

    /// This test sends requests Slack refuses on purpose: do not fail it for them.
    pub fn expect_violations(&self) {
        self.violations.expect();
    }

    /// Takes the violations so far (the test asserts on them; they no longer fail it).
    pub fn take_violations(&self) -> Vec<Violation> {
        self.violations.take()
    }

    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    pub fn posts(&self) -> Vec<SlackPost> {
        self.state.lock().unwrap().posts.clone()
    }

    /// Root messages only (not thread replies).
    pub fn roots(&self) -> Vec<SlackPost> {
        self.posts()
            .into_iter()
            .filter(|p| p.body["thread_ts"].is_null())
            .collect()
    }

    /// Replies in the thread of `root_ts`, as plain text.
    pub fn thread(&self, root_ts: &str) -> Vec<String> {
        self.posts()
            .into_iter()
            .filter(|p| p.body["thread_ts"] == root_ts)
            .map(|p| p.body["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub fn updates(&self) -> Vec<(String, String, Value)> {
        self.state.lock().unwrap().updates.clone()
    }

    pub fn responses(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().responses.clone()
    }

    /// Texts answered to one response URL path (`/response/<id>`).
    pub fn answers(&self, id: &str) -> Vec<String> {
        let path = format!("/response/{id}");
        self.responses()
            .into_iter()
            .filter(|(p, _)| *p == path)
            .map(|(_, b)| b["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Sends a Socket Mode envelope to the connected client.
    pub fn socket_send(&self, frame: Value) {
        let tx = self
            .state
            .lock()
            .unwrap()
            .socket_tx
            .clone()
            .expect("a socket mode client is connected");
        tx.send(frame.to_string()).unwrap();
    }

    /// The ack for `envelope_id`, once the client sent it.
    pub fn ack(&self, envelope_id: &str) -> Option<Value> {
        self.state
            .lock()
            .unwrap()
            .acks
            .iter()
            .find(|a| a["envelope_id"] == envelope_id)
            .cloned()
    }

    pub fn response_url(&self, id: &str) -> String {
        format!("http://{}/response/{id}", self.addr)
    }

    /// Polls `f` every 20 ms until it returns Some, or panics after `secs` with `what`.
    pub async fn wait_until<T>(
        &self,
        secs: u64,
        what: &str,
        mut f: impl FnMut(&FakeSlack) -> Option<T>,
    ) -> T {
        poll_until(secs, what, || f(self)).await
    }

    /// Waits until at least `n` messages were posted, or panics after `secs`.
    pub async fn wait_for_posts(&self, n: usize, secs: u64) -> Vec<SlackPost> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let posts = self.posts();
            if posts.len() >= n {
                return posts;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "expected {n} posts within {secs}s, got {}: {:#?}",
                    posts.len(),
                    posts
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

type Shared = Arc<Mutex<SlackState>>;

/// The method keys the fake answers (fault injection refuses others): Web API method names,
/// plus `response_url` and `upload` for the interaction response URLs and the upload host.
pub const SLACK_METHODS: &[&str] = &[
    "auth.test",
    "chat.postMessage",
    "chat.update",
    "conversations.history",
    "conversations.info",
    "conversations.list",
    "conversations.replies",
    "views.open",
    "usergroups.users.list",
    "apps.connections.open",
    "files.getUploadURLExternal",
    "files.completeUploadExternal",
    "response_url",
    "upload",
];

/// The method key of a request path: `/api/chat.update` → `chat.update`.
fn slack_method_of(path: &str) -> Option<&'static str> {
    let key = if let Some(m) = path.strip_prefix("/api/") {
        m
    } else if path.starts_with("/response/") {
        "response_url"
    } else if path.starts_with("/upload/") {
        "upload"
    } else {
        return None;
    };
    SLACK_METHODS.iter().find(|k| **k == key).copied()
}

#[derive(Clone)]
struct SlackGate {
    faults: Faults,
    violations: Violations,
    state: Arc<Mutex<SlackState>>,
}

/// A Web API call's arguments as Slack reads them (query, form or JSON body), JSON-valued
/// ones (`blocks`, `view`, …) decoded; handed to the handlers by the gate.
#[derive(Clone)]
pub struct SlackArgs(pub Value);

/// Arguments whose value is JSON (sent as a JSON string in forms and query strings).
const JSON_ARGS: &[&str] = &["blocks", "view", "files", "metadata", "attachments"];

/// Runs before every handler: logs the call, checks it against Slack's spec and limits
/// (recording violations and answering as Slack does), answers injected faults and the revoked
/// token, and hands the parsed arguments on.
async fn slack_gate(
    State(g): State<SlackGate>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(method) = slack_method_of(req.uri().path()) else {
        if let Some(unknown) = req.uri().path().strip_prefix("/api/") {
            // A method this fake does not know is a request no test checks: fail the test,
            // and answer as Slack answers a method it does not have.
            g.violations.record(Violation {
                platform: "slack",
                call: format!("{} {unknown}", req.method()),
                severity: Severity::Refused,
                field: "(method)".into(),
                rule: "unknown_method: the fake has no such method, so the request is unchecked"
                    .into(),
            });
            return slack_error("unknown_method");
        }
        return next.run(req).await;
    };
    let with_bot_token = authorized(req.headers());
    let http = req.method().as_str().to_string();
    let (mut parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let mut findings = Vec::new();
    let mut args = serde_json::Map::new();
    match method {
        "upload" => {}
        "response_url" => match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => {
                args = m;
                findings = slack_spec::check_response_url(&args);
            }
            _ => findings.push(slack_spec::Finding {
                severity: Severity::Refused,
                error: "invalid_payload",
                pointer: String::new(),
                message: "the body is not a JSON object".into(),
                detail: String::new(),
            }),
        },
        _ => match slack_spec::parse_args(&content_type, &query, &bytes) {
            Ok(a) => {
                args = a;
                findings = slack_spec::check_call(method, &http, &args);
            }
            Err(code) => findings.push(slack_spec::Finding {
                severity: Severity::Refused,
                error: code,
                pointer: String::new(),
                message: format!("body not readable as {content_type}"),
                detail: String::new(),
            }),
        },
    }
    for k in JSON_ARGS {
        if let Some(Ok(v)) = slack_spec::json_arg(&args, k) {
            args.insert(k.to_string(), v);
        }
    }
    if method == "chat.update" {
        let s = g.state.lock().unwrap();
        let channel = args
            .get("channel")
            .and_then(Value::as_str)
            .and_then(channel_id)
            .unwrap_or_default();
        let ts = args.get("ts").and_then(Value::as_str).unwrap_or_default();
        let current = s
            .updates
            .iter()
            .rev()
            .find(|(c, t, _)| channel_id(c).as_deref() == Some(channel.as_str()) && t == ts)
            .map(|(_, _, b)| b["blocks"].clone())
            .or_else(|| {
                s.posts
                    .iter()
                    .find(|p| p.channel == channel && p.ts == ts)
                    .map(|p| p.body["blocks"].clone())
            });
        if let (Some(old), Some(new)) = (current, args.get("blocks")) {
            findings.extend(slack_spec::check_update_block_ids(new, &old));
        }
    }
    for f in &findings {
        g.violations.record(Violation {
            platform: "slack",
            call: format!("{http} {method}"),
            severity: f.severity,
            field: f.pointer.clone(),
            rule: match (f.error.is_empty(), f.detail.is_empty()) {
                (true, _) => f.message.clone(),
                (false, true) => format!("{}: {}", f.error, f.message),
                (false, false) => format!("{}: {} ({})", f.error, f.message, f.detail),
            },
        });
    }
    let hold = match g.faults.on_call(method, with_bot_token) {
        None => Duration::ZERO,
        Some(Some(Fault::Slow(hold))) => hold,
        Some(fault) => return faults::answer(Platform::Slack, fault, "").await,
    };
    if method == "response_url" {
        // Response URLs answer a refused payload with HTTP 400 and the bare error code
        // (slackapi/java-slack-sdk#1017, sourcegraph/sourcegraph#49979: `400 invalid_blocks`).
        if let Some(f) = findings.iter().find(|f| f.severity == Severity::Refused) {
            return (StatusCode::BAD_REQUEST, f.error).into_response();
        }
    } else if let Some(body) = slack_spec::web_api_refusal(&findings) {
        return Json(body).into_response();
    }
    parts.extensions.insert(SlackArgs(Value::Object(args)));
    let answer = next
        .run(axum::extract::Request::from_parts(
            parts,
            axum::body::Body::from(bytes),
        ))
        .await;
    tokio::time::sleep(hold).await;
    answer
}

/// A string argument (Slack takes numbers as strings and the reverse).
fn arg(args: &Value, name: &str) -> Option<String> {
    match &args[name] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `auth.test`: who the token belongs to, in Slack's documented shape.
async fn auth_test(headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return slack_error("invalid_auth");
    }
    Json(json!({
        "ok": true,
        "url": "https://fake-workspace.slack.com/",
        "team": "Fake Workspace",
        "user": "mentiondesk",
        "team_id": "T0TEAM",
        "user_id": "U0BOT",
        "bot_id": "B0BOT",
        "is_enterprise_install": false,
    }))
    .into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {BOT_TOKEN}"))
}

fn slack_error(code: &str) -> Response {
    Json(json!({"ok": false, "error": code})).into_response()
}

async fn post_message(
    State(state): State<Shared>,
    headers: HeaderMap,
    Extension(SlackArgs(body)): Extension<SlackArgs>,
) -> Response {
    if !authorized(&headers) {
        return slack_error("invalid_auth");
    }
    let (ts, channel) = {
        let mut s = state.lock().unwrap();
        let Some(channel) = body["channel"].as_str().and_then(channel_id) else {
            return slack_error("channel_not_found");
        };
        if s.archived.contains(&channel) {
            return slack_error("is_archived");
        }
        if s.not_member.contains(&channel) {
            return slack_error("not_in_channel");
        }
        let ts = s.new_ts();
        s.posts.push(SlackPost {
            channel: channel.clone(),
            ts: ts.clone(),
            body: body.clone(),
        });
        (ts, channel)
    };
    Json(json!({
        "ok": true,
        "channel": channel,
        "ts": ts,
        "message": message_object(&ts, &body),
    }))
    .into_response()
}

async fn history(
    State(state): State<Shared>,
    headers: HeaderMap,
    Extension(SlackArgs(q)): Extension<SlackArgs>,
) -> Response {
    if !authorized(&headers) {
        return slack_error("invalid_auth");
    }
    let mut s = state.lock().unwrap();
    s.history_calls += 1;
    let Some(channel) = arg(&q, "channel").and_then(|c| channel_id(&c)) else {
        return slack_error("channel_not_found");
    };
    let oldest: f64 = arg(&q, "oldest")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0.0);
    let latest: f64 = arg(&q, "latest")
        .and_then(|o| o.parse().ok())
        .unwrap_or(f64::MAX);
    let inclusive = arg(&q, "inclusive").is_some_and(|v| v == "true" || v == "1");
    // conversations.history: default limit 100 (docs.slack.dev/reference/methods/conversations.history).
    let limit = arg(&q, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(100);
    let with_metadata = arg(&q, "include_all_metadata").is_some_and(|v| v == "true" || v == "1");
    // Pagination: `next_cursor` names the last message handed out; the next page starts
    // below it (Slack's cursors are opaque; this one is readable for test failures).
    let before: f64 = arg(&q, "cursor")
        .and_then(|c| c.strip_prefix("before:").and_then(|ts| ts.parse().ok()))
        .unwrap_or(f64::MAX);
    // Newest first, as Slack returns history; thread replies are not part of the channel's
    // history unless broadcast (they come from conversations.replies).
    let matching: Vec<&SlackPost> = s
        .posts
        .iter()
        .rev()
        .filter(|p| {
            let ts = p.ts.parse::<f64>().unwrap_or(0.0);
            let in_range = if inclusive {
                ts >= oldest && ts <= latest
            } else {
                ts > oldest && ts < latest
            };
            let is_reply = !p.body["thread_ts"].is_null()
                && p.body["thread_ts"] != p.ts.as_str()
                && p.body["reply_broadcast"] != true;
            p.channel == channel && in_range && ts < before && !is_reply
        })
        .collect();
    let has_more = matching.len() > limit;
    let next_cursor = if has_more {
        format!("before:{}", matching[limit - 1].ts)
    } else {
        String::new()
    };
    let messages: Vec<Value> = matching
        .into_iter()
        .take(limit)
        .map(|p| {
            let mut m = message_object(&p.ts, &p.body);
            if !with_metadata {
                m.as_object_mut().unwrap().remove("metadata");
            }
            if !p.body["files"].is_null() {
                m["files"] = p.body["files"].clone();
            }
            m
        })
        .collect();
    Json(json!({"ok": true, "messages": messages, "has_more": has_more, "response_metadata": {"next_cursor": next_cursor}}))
        .into_response()
}

/// `files.getUploadURLExternal`: hands out an upload URL on this fake.
async fn get_upload_url(
    State(state): State<Shared>,
    headers: HeaderMap,
    Extension(SlackArgs(q)): Extension<SlackArgs>,
) -> Response {
    if !authorized(&headers) {
        return slack_error("invalid_auth");
    }
    let (Some(name), Some(len)) = (
        arg(&q, "filename"),
        arg(&q, "length").and_then(|l| l.parse::<usize>().ok()),
    ) else {
        return slack_error("invalid_arguments");
    };
    let mut s = state.lock().unwrap();
    let id = format!("F{:08}", s.upload_urls.len() + 1);
    let alt = arg(&q, "alt_txt").unwrap_or_default();
    s.upload_urls.insert(id.clone(), (name.clone(), len, alt));
    let url = format!("http://{}/upload/{id}", s.addr.unwrap());
    Json(json!({"ok": true, "upload_url": url, "file_id": id})).into_response()
}

/// The upload URL: takes the bytes (no auth header, as on Slack's upload host).
async fn upload(
    State(state): State<Shared>,
    Path(file): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = state.lock().unwrap();
    let Some((_, len, _)) = s.upload_urls.get(&file) else {
        return (StatusCode::NOT_FOUND, "no such upload").into_response();
    };
    if *len != body.len() {
        return (StatusCode::BAD_REQUEST, "length mismatch").into_response();
    }
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    s.uploads.insert(file, (ctype, body.to_vec()));
    format!("OK - {}", body.len()).into_response()
}

/// `files.completeUploadExternal`: shares uploaded files into a channel as one message.
async fn complete_upload(
    State(state): State<Shared>,
    headers: HeaderMap,
    Extension(SlackArgs(body)): Extension<SlackArgs>,
) -> Response {
    if !authorized(&headers) {
        return slack_error("invalid_auth");
    }
    let mut s = state.lock().unwrap();
    let Some(channel) = body["channel_id"].as_str().and_then(channel_id) else {
        return slack_error("channel_not_found");
    };
    let mut files = Vec::new();
    for f in body["files"].as_array().into_iter().flatten() {
        let id = f["id"].as_str().unwrap_or_default().to_string();
        if !s.uploads.contains_key(&id) {
            return slack_error("file_not_found");
        }
        let (name, _, _) = s.upload_urls[&id].clone();
        files.push(json!({"id": id, "name": name, "title": f["title"], "mimetype": "image/png"}));
    }
    s.completed_uploads.push(body.clone());
    let ts = s.new_ts();
    let mut message = json!({"channel": channel, "blocks": body["blocks"], "files": files});
    message["text"] = json!("");
    s.posts.push(SlackPost {
        channel,
        ts,
        body: message,
    });
    drop(s);
    Json(json!({"ok": true, "files": files})).into_response()
}

/// A conversation object of `CHANNELS` in the shape of `conversations.info` / `.list`
/// (docs.slack.dev/reference/objects/conversation-object), with the knobs applied.
fn conversation_object(s: &SlackState, name: &str, id: &str) -> Value {
    json!({"id": id, "name": name, "name_normalized": name, "created": 1_600_000_000,
        "creator": "U0CREATOR", "is_channel": true, "is_group": false, "is_im": false,
        "is_mpim": false, "is_private": false, "is_archived": s.archived.contains(id),
        "is_general": false, "is_shared": false, "is_ext_shared": false, "is_org_shared": false,
        "is_pending_ext_shared": false, "is_member": !s.not_member.contains(id),
        "unlinked": 0, "updated": 1_600_000_000_000u64, "context_team_id": "T0TEAM",
        "parent_conversation": null, "pending_shared": [], "shared_team_ids": ["T0TEAM"],
        "topic": {"value": "", "creator": "", "last_set": 0},
        "purpose": {"value": "", "creator": "", "last_set": 0}, "previous_names": []})
}

/// `conversations.info`: the conversation object for a known channel id, `channel_not_found`
/// otherwise (also for a private channel the bot is not in: Slack hides those).
async fn conversation_info(
    State(state): State<Shared>,
    headers: HeaderMap,
    Extension(SlackArgs(q)): Extension<SlackArgs>,
) -> Response {
    if !authorized(&headers) {
        return slack_error("invalid_auth");
    }
    let s = state.lock().unwrap();
    let wanted = arg(&q, "channel").unwrap_or_default();
    match CHANNELS.iter().find(|(_, id)| *id == wanted) {
        Some((name, id)) => {
            Json(json!({"ok": true, "channel": conversation_object(&s, name, id)})).into_response()
        }
        None => slack_error("channel_not_found"),
    }
}

async fn list(
    State(state): State<Shared>,
    headers: HeaderMap,
    Extension(SlackArgs(q)): Extension<SlackArgs>,
) -> Response {
    if !authorized(&headers) {
        return slack_error("invalid_auth");
    }
    let mut s = state.lock().unwrap();
    s.list_calls += 1;
    let exclude_archived = arg(&q, "exclude_archived").is_some_and(|v| v == "true" || v == "1");
    let channels: Vec<Value> = CHANNELS
        .iter()
        .filter(|(_, id)| !(exclude_archived && s.archived.contains(*id)))
        .map(|(name, id)| conversation_object(&s, name, id))
        .collect();
    Json(json!({"ok": true, "channels": channels, "response_metadata": {"next_cursor": ""}}))
        .into_response()
}

pub const APP_TOKEN: &str = "xapp-test-token";

async fn connections_open(headers: HeaderMap) -> Response {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {APP_TOKEN}"));
    if !ok {
        return slack_error("invalid_auth");
    }
    Json(json!({"ok": true, "url": format!("ws://{host}/socket")})).into_response()
}

async fn socket(State(state): State<Shared>, ws: axum::extract::ws::WebSocketUpgrade) -> Response {
    use axum::extract::ws::Message;
    ws.on_upgrade(move |mut socket| async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        {
            let mut s = state.lock().unwrap();
            s.socket_tx = Some(tx);
            s.socket_connections += 1;
        }
        let hello = json!({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0APP"}, "debug_info": {"host": "fake"}});
        if socket.send(Message::Text(hello.to_string().into())).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Some(frame) => if socket.send(Message::Text(frame.into())).await.is_err() { break },
                    None => break,
                },
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Text(t))) => {
                        if let Ok(v) = serde_json::from_str::<Value>(&t) {
                            // An ack's payload is an answer Slack shows or applies (a
                            // command's message, a view_submission's response_action).
                            let mut s = state.lock().unwrap();
                            if v["payload"].is_object() {
                                for f in slack_spec::check_immediate_answer(&v["payload"]) {
                                    s.violations.record(Violation {
                                        platform: "slack",
                                        call: "socket mode ack".into(),
                                        severity: f.severity,
                                        field: format!("/payload{}", f.pointer),
                                        rule: format!("{} {} {}", f.error, f.message, f.detail),
                                    });
                                }
                            }
                            s.acks.push(v);
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    })
}

async fn replies(
    State(state): State<Shared>,
    headers: HeaderMap,
    Extension(SlackArgs(q)): Extension<SlackArgs>,
) -> Response {
    if !authorized(&headers) {
        return slack_error("invalid_auth");
    }
    let s = state.lock().unwrap();
    let (Some(channel), Some(ts)) = (
        arg(&q, "channel").and_then(|c| channel_id(&c)),
        arg(&q, "ts"),
    ) else {
        return slack_error("thread_not_found");
    };
    // The thread's parent first, then its replies oldest first, as Slack returns them.
    let messages: Vec<Value> = s
        .posts
        .iter()
        .filter(|p| p.channel == channel && (p.ts == ts || p.body["thread_ts"] == ts.as_str()))
        .map(|p| {
            let mut m = message_object(&p.ts, &p.body);
            m["thread_ts"] = json!(ts);
            m
        })
        .collect();
    if messages.is_empty() {
        return slack_error("thread_not_found");
    }
    Json(json!({"ok": true, "messages": messages, "has_more": false, "response_metadata": {"next_cursor": ""}})).into_response()
}

async fn chat_update(
    State(state): State<Shared>,
    headers: HeaderMap,
    Extension(SlackArgs(body)): Extension<SlackArgs>,
) -> Response {
    if !authorized(&headers) {
        return slack_error("invalid_auth");
    }
    let channel = arg(&body, "channel").unwrap_or_default();
    let ts = arg(&body, "ts").unwrap_or_default();
    let mut s = state.lock().unwrap();
    let Some(channel_id) = channel_id(&channel) else {
        return slack_error("channel_not_found");
    };
    if !s
        .posts
        .iter()
        .any(|p| p.channel == channel_id && p.ts == ts)
    {
        return slack_error("message_not_found");
    }
    s.updates.push((channel.clone(), ts.clone(), body.clone()));
    // chat.update's documented answer: ok, channel, ts, text, message.
    Json(
        json!({"ok": true, "channel": channel_id, "ts": ts, "text": body["text"],
        "message": message_object(&ts, &body)}),
    )
    .into_response()
}

async fn views_open(
    State(state): State<Shared>,
    headers: HeaderMap,
    Extension(SlackArgs(body)): Extension<SlackArgs>,
) -> Response {
    if !authorized(&headers) {
        return slack_error("invalid_auth");
    }
    if body["trigger_id"].as_str().unwrap_or_default().is_empty() {
        return slack_error("invalid_trigger_id");
    }
    // The view as views.open documents its answer: the request's view plus Slack's fields.
    let mut view = body["view"].clone();
    for (k, v) in [
        ("id", json!("V0123")),
        ("team_id", json!("T0TEAM")),
        ("state", json!({"values": {}})),
        ("hash", json!("1700000000.abcdef")),
        ("previous_view_id", Value::Null),
        ("root_view_id", json!("V0123")),
        ("app_id", json!("A0APP")),
        ("bot_id", json!("B0BOT")),
        ("app_installed_team_id", json!("T0TEAM")),
    ] {
        view[k] = v;
    }
    for (k, v) in [
        ("private_metadata", json!("")),
        ("callback_id", json!("")),
        ("external_id", json!("")),
        ("clear_on_close", json!(false)),
        ("notify_on_close", json!(false)),
    ] {
        if view[k].is_null() {
            view[k] = v;
        }
    }
    state.lock().unwrap().views.push(body["view"].clone());
    Json(json!({"ok": true, "view": view})).into_response()
}

async fn usergroup_users(
    State(state): State<Shared>,
    headers: HeaderMap,
    Extension(SlackArgs(q)): Extension<SlackArgs>,
) -> Response {
    if !authorized(&headers) {
        return slack_error("invalid_auth");
    }
    let s = state.lock().unwrap();
    match arg(&q, "usergroup").and_then(|g| s.groups.get(&g).cloned()) {
        Some(users) => Json(json!({"ok": true, "users": users})).into_response(),
        None => slack_error("no_such_subteam"),
    }
}

async fn response_url(
    State(state): State<Shared>,
    axum::extract::Path(id): axum::extract::Path<String>,
    Extension(SlackArgs(body)): Extension<SlackArgs>,
) -> Response {
    state
        .lock()
        .unwrap()
        .responses
        .push((format!("/response/{id}"), body));
    (StatusCode::OK, "ok").into_response()
}

/// A message in Slack's documented shape (chat.postMessage's `message`, history items).
pub fn message_object(ts: &str, body: &Value) -> Value {
    let mut m = json!({
        "type": "message",
        "text": body["text"].as_str().unwrap_or_default(),
        "user": "U0BOT",
        "bot_id": "B0BOT",
        "app_id": "A0APP",
        "team": "T0TEAM",
        "ts": ts,
    });
    for k in ["blocks", "metadata", "thread_ts", "attachments"] {
        if !body[k].is_null() {
            m[k] = body[k].clone();
        }
    }
    m
}

/// What a post says about its alert: the alert id from its metadata.
pub fn alert_id_of(post: &SlackPost) -> String {
    post.body["metadata"]["event_payload"]["alert_id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
