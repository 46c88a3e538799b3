//! A fake Discord REST API (v10) on 127.0.0.1 for the paths mentiondesk uses, with nonce
//! deduplication (`enforce_nonce`), 429 injection, and signing of interactions with a test
//! key pair.

use super::discord_spec;
pub use super::discord_wire::*;
use super::faults::{self, Fault, Faults, Platform};
use super::poll_until;
use super::schema::{SchemaError, Seg};
use super::violations::{Guard, Severity, Violation, Violations};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DISCORD_TOKEN: &str = "discord-test-token";
pub const APP_ID: &str = "200000000000000002";
pub const GUILD_ID: &str = "300000000000000003";
pub const CHANNEL: &str = "100000000000000001";
/// A second text channel of the guild, for alerts with two Discord targets.
pub const CHANNEL2: &str = "100000000000000007";

#[derive(Debug, Clone)]
pub struct DiscordMessage {
    pub id: String,
    pub channel_id: String,
    pub body: Value,
}

#[derive(Default)]
pub struct DiscordState {
    pub messages: Vec<DiscordMessage>,
    pub edits: Vec<(String, String, Value)>,
    pub threads: Vec<(String, Value)>,
    pub commands: Vec<(String, Value)>,
    pub original_edits: Vec<(String, Value)>,
    /// Follow-up messages sent to an interaction webhook: (interaction token, body).
    pub followups: Vec<(String, Value)>,
    /// Edits of follow-ups: (interaction token, message id, body).
    pub followup_edits: Vec<(String, String, Value)>,
    /// Gateway: frames to send to the connected client, what it sent, interaction answers.
    pub gateway_tx: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    pub gateway_received: Vec<Value>,
    pub callbacks: Vec<(String, Value)>,
    /// Files uploaded with messages: (message id, file name, content type, bytes).
    pub files: Vec<UploadedFile>,
    seq: u64,
}

#[derive(Clone)]
pub struct FakeDiscord {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<DiscordState>>,
    /// Injected faults and the log of every call (see `faults.rs`).
    pub faults: Faults,
    /// Requests that broke Discord's spec or limits (see `discord_spec.rs`).
    pub violations: Violations,
    /// Held only for its `Drop`: fails the test when the last handle is dropped with
    /// unexpected violations.
    _guard: Arc<Guard>,
}

/// Operation keys for fault injection and the call log: method and path as in Discord's
/// OpenAPI spec.
pub mod ops {
    pub const CREATE_MESSAGE: &str = "POST /channels/{channel_id}/messages";
    pub const LIST_MESSAGES: &str = "GET /channels/{channel_id}/messages";
    pub const EDIT_MESSAGE: &str = "PATCH /channels/{channel_id}/messages/{message_id}";
    pub const GET_MESSAGE: &str = "GET /channels/{channel_id}/messages/{message_id}";
    pub const START_THREAD: &str = "POST /channels/{channel_id}/messages/{message_id}/threads";
    pub const PUT_COMMANDS: &str = "PUT /applications/{application_id}/commands";
    pub const PUT_GUILD_COMMANDS: &str =
        "PUT /applications/{application_id}/guilds/{guild_id}/commands";
    pub const CREATE_FOLLOWUP: &str = "POST /webhooks/{webhook_id}/{webhook_token}";
    pub const EDIT_ORIGINAL: &str =
        "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original";
    pub const EDIT_FOLLOWUP: &str =
        "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}";
    pub const GATEWAY_BOT: &str = "GET /gateway/bot";
    pub const GATEWAY: &str = "GET /gateway";
    pub const USERS_ME: &str = "GET /users/@me";
    pub const GET_CHANNEL: &str = "GET /channels/{channel_id}";
    pub const CALLBACK: &str = "POST /interactions/{interaction_id}/{interaction_token}/callback";
    pub const ALL: &[&str] = &[
        CREATE_MESSAGE,
        LIST_MESSAGES,
        EDIT_MESSAGE,
        GET_MESSAGE,
        START_THREAD,
        PUT_COMMANDS,
        PUT_GUILD_COMMANDS,
        CREATE_FOLLOWUP,
        EDIT_ORIGINAL,
        EDIT_FOLLOWUP,
        GATEWAY_BOT,
        GATEWAY,
        USERS_ME,
        GET_CHANNEL,
        CALLBACK,
    ];
}

#[derive(Clone)]
struct DiscordGate {
    faults: Faults,
    violations: Violations,
}

/// The value at `path` in `v`, for reporting the size of an offending field.
fn value_at<'a>(v: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, seg| match seg {
        Seg::Key(k) => v.get(k),
        Seg::Index(i) => v.get(*i),
    })
}

pub(super) fn describe(body: &Value, e: &SchemaError) -> String {
    let size = match value_at(body, &e.path) {
        Some(Value::String(s)) => format!(" (is {} characters)", s.chars().count()),
        Some(Value::Array(a)) => format!(" (has {} items)", a.len()),
        Some(Value::Number(n)) => format!(" (is {n})"),
        _ => String::new(),
    };
    format!("{} {}{size}", e.code, e.message)
}

/// Runs before every routed handler: logs the call under its operation key, checks its body
/// and query against Discord's spec and limits (recording violations and answering as Discord
/// does), and answers injected faults and the revoked token.
async fn discord_gate(
    State(g): State<DiscordGate>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(op) = op_of(req.method().as_str(), req.uri().path()) else {
        return next.run(req).await;
    };
    let with_bot_token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bot {DISCORD_TOKEN}"));
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut problems = discord_spec::check_query(op, parts.uri.query().unwrap_or_default());
    let mut json_body = Value::Null;
    let mut refusal: Option<(u16, Value)> = None;
    if !bytes.is_empty() {
        let (parsed, has_files) = match content_type.split_once("boundary=") {
            Some((kind, boundary)) if kind.starts_with("multipart/form-data") => {
                let parts = multipart_parts(&bytes, boundary.trim_matches('"'));
                let has_files = parts.iter().any(|p| p.0.starts_with("files["));
                match parts.iter().find(|p| p.0 == "payload_json") {
                    Some(p) => (serde_json::from_slice::<Value>(&p.3).ok(), has_files),
                    None => (Some(json!({})), has_files),
                }
            }
            _ => (serde_json::from_slice::<Value>(&bytes).ok(), false),
        };
        match parsed {
            Some(v) => {
                problems.extend(discord_spec::check_body(op, &v));
                if op == ops::CREATE_MESSAGE && discord_spec::is_empty_message(&v, has_files) {
                    refusal = Some((
                        400,
                        json!({"code": 50006, "message": "Cannot send an empty message"}),
                    ));
                    g.violations.record(Violation {
                        platform: "discord",
                        call: op.to_string(),
                        severity: Severity::Refused,
                        field: "(body)".into(),
                        rule: "50006 Cannot send an empty message".into(),
                    });
                }
                json_body = v;
            }
            None => {
                refusal = Some((
                    400,
                    json!({"code": 50109, "message": "The request body contains invalid JSON."}),
                ));
                g.violations.record(Violation {
                    platform: "discord",
                    call: op.to_string(),
                    severity: Severity::Refused,
                    field: "(body)".into(),
                    rule: "50109 The request body contains invalid JSON.".into(),
                });
            }
        }
    }
    for e in &problems {
        g.violations.record(Violation {
            platform: "discord",
            call: op.to_string(),
            severity: Severity::Refused,
            field: e.dotted(),
            rule: describe(&json_body, e),
        });
    }
    let hold = match g.faults.on_call(op, with_bot_token) {
        None => Duration::ZERO,
        Some(Some(Fault::Slow(hold))) => hold,
        Some(fault) => return faults::answer(Platform::Discord, fault, &bucket_of(op)).await,
    };
    if !problems.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(discord_spec::invalid_form_body(&problems)),
        )
            .into_response();
    }
    if let Some((status, body)) = refusal {
        return (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
    }
    let answer = next
        .run(axum::extract::Request::from_parts(
            parts,
            axum::body::Body::from(bytes),
        ))
        .await;
    tokio::time::sleep(hold).await;
    answer
}

/// The operation key (`POST /channels/{channel_id}/messages`) of a request, matched against
/// the spec paths of `ops::ALL`.
pub fn op_of(method: &str, path: &str) -> Option<&'static str> {
    let path = path.strip_prefix("/api/v10")?;
    let segs: Vec<&str> = path.split('/').collect();
    ops::ALL.iter().copied().find(|op| {
        let Some((m, template)) = op.split_once(' ') else {
            return false;
        };
        let t: Vec<&str> = template.split('/').collect();
        m == method
            && t.len() == segs.len()
            && t.iter().zip(&segs).all(|(t, s)| {
                t == s || (t.starts_with('{') && t.ends_with('}') && !s.starts_with('@'))
            })
    })
}

/// A stable, opaque-looking bucket id per operation, as Discord's `X-RateLimit-Bucket`.
fn bucket_of(op: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    op.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The bot's user, as `GET /users/@me` and the gateway READY show it.
pub fn bot_user() -> Value {
    json!({"id": APP_ID, "username": "mentiondesk", "discriminator": "0", "global_name": null,
        "avatar": null, "bot": true, "system": false, "mfa_enabled": true, "banner": null,
        "accent_color": null, "locale": "en-US", "verified": true, "email": null, "flags": 0,
        "premium_type": 0, "public_flags": 0})
}

async fn users_me(headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    Json(bot_user()).into_response()
}

type Shared = Arc<Mutex<DiscordState>>;

impl FakeDiscord {
    pub async fn start() -> FakeDiscord {
        let state: Shared = Arc::default();
        let faults = Faults::new(Platform::Discord, ops::ALL);
        let violations = Violations::default();
        let router = Router::new()
            .route(
                "/api/v10/channels/{channel_id}/messages",
                post(create_message).get(list_messages),
            )
            .route(
                "/api/v10/channels/{channel_id}/messages/{message_id}",
                patch(edit_message).get(get_message),
            )
            .route(
                "/api/v10/channels/{channel_id}/messages/{message_id}/threads",
                post(start_thread),
            )
            .route(
                "/api/v10/applications/{application_id}/commands",
                put(put_commands),
            )
            .route(
                "/api/v10/applications/{application_id}/guilds/{guild_id}/commands",
                put(put_commands),
            )
            .route(
                "/api/v10/webhooks/{webhook_id}/{webhook_token}",
                post(create_followup),
            )
            .route(
                "/api/v10/webhooks/{webhook_id}/{webhook_token}/messages/@original",
                patch(edit_original),
            )
            .route(
                "/api/v10/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                patch(edit_followup),
            )
            .route("/api/v10/gateway/bot", axum::routing::get(gateway_bot))
            .route("/api/v10/gateway", axum::routing::get(gateway_bot))
            .route("/api/v10/users/@me", axum::routing::get(users_me))
            .route(
                "/api/v10/channels/{channel_id}",
                axum::routing::get(get_channel),
            )
            .route(
                "/api/v10/interactions/{interaction_id}/{interaction_token}/callback",
                post(callback),
            )
            .route_layer(axum::middleware::from_fn_with_state(
                DiscordGate {
                    faults: faults.clone(),
                    violations: violations.clone(),
                },
                discord_gate,
            ))
            .route("/gateway", axum::routing::get(gateway))
            .fallback({
                // A route this fake does not have is a request no test checks: fail the test,
                // and answer as Discord answers an unknown route.
                let violations = violations.clone();
                move |req: axum::extract::Request| async move {
                    violations.record(Violation {
                        platform: "discord",
                        call: format!("{} {}", req.method(), req.uri().path()),
                        severity: Severity::Refused,
                        field: "(route)".into(),
                        rule: "the fake has no such route, so the request is unchecked".into(),
                    });
                    (
                        StatusCode::NOT_FOUND,
                        Json(json!({"message": "404: Not Found", "code": 0})),
                    )
                }
            })
            .with_state(state.clone());
        FakeDiscord {
            addr: super::serve(router).await,
            state,
            faults,
            _guard: Arc::new(Guard {
                name: "the fake Discord",
                violations: violations.clone(),
            }),
            violations,
        }
    }

    /// Takes the violations so far (the test asserts on them; they no longer fail it).
    pub fn take_violations(&self) -> Vec<Violation> {
        self.violations.take()
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn messages(&self) -> Vec<DiscordMessage> {
        self.state.lock().unwrap().messages.clone()
    }

    pub fn roots(&self) -> Vec<DiscordMessage> {
        self.messages()
            .into_iter()
            .filter(|m| m.channel_id == CHANNEL)
            .collect()
    }

    /// Messages posted in the thread started from `root`.
    pub fn thread(&self, root: &str) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter(|m| m.channel_id == root)
            .map(|m| m.body["content"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub fn edits(&self) -> Vec<(String, String, Value)> {
        self.state.lock().unwrap().edits.clone()
    }

    pub async fn wait_until<T>(
        &self,
        secs: u64,
        what: &str,
        mut f: impl FnMut(&FakeDiscord) -> Option<T>,
    ) -> T {
        poll_until(secs, what, || f(self)).await
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bot {DISCORD_TOKEN}"))
}

fn error(status: u16, code: u64, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        Json(json!({"code": code, "message": message})),
    )
        .into_response()
}

/// A snowflake for now: milliseconds since the Discord epoch, shifted, plus a sequence.
fn snowflake(seq: u64) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    (((ms - 1_420_070_400_000) << 22) + seq).to_string()
}

async fn create_message(
    State(state): State<Shared>,
    Path(cid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (body, files): (Value, Vec<UploadedFile>) = match content_type.split_once("boundary=") {
        Some((kind, boundary)) if kind.starts_with("multipart/form-data") => {
            let parts = multipart_parts(&body, boundary.trim_matches('"'));
            let Some(payload) = parts.iter().find(|p| p.0 == "payload_json") else {
                return error(400, 50035, "Invalid Form Body: payload_json missing");
            };
            let body: Value = serde_json::from_slice(&payload.3).unwrap_or_default();
            // Like Discord: every attachment in the payload needs its files[id] part.
            for a in body["attachments"].as_array().into_iter().flatten() {
                let name = format!("files[{}]", a["id"]);
                if !parts.iter().any(|p| p.0 == name) {
                    return error(400, 50035, "Invalid Form Body: attachment without file");
                }
            }
            let files = parts
                .into_iter()
                .filter(|p| p.0.starts_with("files["))
                .map(|p| (p.0, p.1, p.2, p.3))
                .collect();
            (body, files)
        }
        _ => (serde_json::from_slice(&body).unwrap_or_default(), vec![]),
    };
    let msg = {
        let mut s = state.lock().unwrap();
        let is_thread = s.threads.iter().any(|(id, _)| *id == cid);
        if cid != CHANNEL && cid != CHANNEL2 && !is_thread {
            return error(404, 10003, "Unknown Channel");
        }
        if body["enforce_nonce"] == true {
            if let Some(existing) = s
                .messages
                .iter()
                // Per author, as Discord documents it: every message here is the bot's.
                .find(|m| m.body["nonce"] == body["nonce"])
            {
                return Json(message_object(&existing.id, &cid, &existing.body)).into_response();
            }
        }
        s.seq += 1;
        let id = snowflake(s.seq);
        let m = DiscordMessage {
            id,
            channel_id: cid.clone(),
            body: body.clone(),
        };
        s.messages.push(m.clone());
        for (_, filename, ctype, bytes) in files {
            s.files.push((m.id.clone(), filename, ctype, bytes));
        }
        m
    };
    Json(message_object(&msg.id, &msg.channel_id, &msg.body)).into_response()
}

async fn list_messages(
    State(state): State<Shared>,
    Path(cid): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    let id_of = |k: &str| q.get(k).and_then(|a| a.parse::<u64>().ok());
    let (after, before) = (
        id_of("after").unwrap_or(0),
        id_of("before").unwrap_or(u64::MAX),
    );
    // Discord's default page is 50 messages, newest first (limit 1..=100, checked by the gate).
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(50);
    let s = state.lock().unwrap();
    let list: Vec<Value> = s
        .messages
        .iter()
        .rev()
        .filter(|m| {
            let id = m.id.parse::<u64>().unwrap_or(0);
            m.channel_id == cid && id > after && id < before
        })
        .take(limit)
        .map(|m| fetched(&s, m))
        .collect();
    Json(list).into_response()
}

/// A message as `GET` returns it: edits applied, no nonce (Discord keeps nonces only briefly).
fn fetched(s: &DiscordState, m: &DiscordMessage) -> Value {
    let mut body = m.body.clone();
    let mut edited = false;
    for (_, _, edit) in s
        .edits
        .iter()
        .filter(|(c, id, _)| *c == m.channel_id && *id == m.id)
    {
        for (k, v) in edit.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        edited = true;
    }
    let mut out = message_object(&m.id, &m.channel_id, &body);
    out.as_object_mut().unwrap().remove("nonce");
    if edited {
        out["edited_timestamp"] = out["timestamp"].clone();
    }
    out
}

/// `GET /channels/{channel_id}/messages/{message_id}`.
async fn get_message(
    State(state): State<Shared>,
    Path((cid, mid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    let s = state.lock().unwrap();
    match s
        .messages
        .iter()
        .find(|m| m.channel_id == cid && m.id == mid)
    {
        Some(m) => Json(fetched(&s, m)).into_response(),
        None => error(404, 10008, "Unknown Message"),
    }
}

impl DiscordState {
    fn has_message(&self, channel: &str, id: &str) -> bool {
        self.messages
            .iter()
            .any(|m| m.channel_id == channel && m.id == id)
    }
}

async fn edit_message(
    State(state): State<Shared>,
    Path((cid, mid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut s = state.lock().unwrap();
    if !s.has_message(&cid, &mid) {
        return error(404, 10008, "Unknown Message");
    }
    s.edits.push((cid.clone(), mid.clone(), body.clone()));
    // The message as it is now: the original with the edited fields replaced.
    let mut now = s
        .messages
        .iter()
        .find(|m| m.channel_id == cid && m.id == mid)
        .map(|m| m.body.clone())
        .unwrap_or_default();
    for (k, v) in body.as_object().into_iter().flatten() {
        now[k] = v.clone();
    }
    let mut out = message_object(&mid, &cid, &now);
    out["edited_timestamp"] =
        json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false));
    Json(out).into_response()
}

async fn start_thread(
    State(state): State<Shared>,
    Path((cid, mid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut s = state.lock().unwrap();
    if !s.has_message(&cid, &mid) {
        return error(404, 10008, "Unknown Message");
    }
    if s.threads.iter().any(|(id, _)| *id == mid) {
        return error(
            400,
            160004,
            "A thread has already been created for this message",
        );
    }
    let thread = thread_object(&mid, &cid, &body);
    s.threads.push((mid, body));
    Json(thread).into_response()
}

/// A public thread channel object (`ThreadResponse`), as Discord answers thread creation and
/// `GET /channels/{id}` of a thread.
fn thread_object(id: &str, parent: &str, start: &Value) -> Value {
    let archive = start["auto_archive_duration"].as_u64().unwrap_or(4320);
    json!({"id": id, "type": 11, "guild_id": GUILD_ID, "parent_id": parent, "name": start["name"],
        "owner_id": APP_ID, "last_message_id": null, "rate_limit_per_user": 0, "flags": 0,
        "message_count": 0, "member_count": 1, "total_message_sent": 0,
        "thread_metadata": {"archived": false, "auto_archive_duration": archive, "locked": false,
            "archive_timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false)}})
}

/// The text channel `CHANNEL` as a `GuildChannelResponse` (type 0, GUILD_TEXT).
pub fn channel_object() -> Value {
    json!({"id": CHANNEL, "type": 0, "guild_id": GUILD_ID, "name": "pr-alerts", "position": 0,
        "flags": 0, "parent_id": null, "last_message_id": null, "rate_limit_per_user": 0,
        "topic": null, "nsfw": false, "permission_overwrites": [], "last_pin_timestamp": null})
}

/// `GET /channels/{channel_id}` (operation `get_channel`): the channel object of `CHANNEL`
/// or of a started thread, 404 10003 "Unknown Channel" for anything else. A bot without
/// View Channel gets the fault layer's 403 50001 (`Fault::discord_missing_access`).
async fn get_channel(
    State(state): State<Shared>,
    Path(cid): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    if cid == CHANNEL {
        return Json(channel_object()).into_response();
    }
    let s = state.lock().unwrap();
    let parent = |mid: &str| {
        s.messages
            .iter()
            .find(|m| m.id == mid)
            .map(|m| m.channel_id.clone())
            .unwrap_or_else(|| CHANNEL.to_string())
    };
    match s.threads.iter().find(|(id, _)| *id == cid) {
        Some((id, start)) => Json(thread_object(id, &parent(id), start)).into_response(),
        None => error(404, 10003, "Unknown Channel"),
    }
}

async fn put_commands(
    State(state): State<Shared>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    state
        .lock()
        .unwrap()
        .commands
        .push((uri.path().to_string(), body.clone()));
    // The registered commands, each with the fields Discord adds (id, application_id, version).
    let guild = uri
        .path()
        .split("/guilds/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .map(|g| json!(g))
        .unwrap_or(Value::Null);
    let mut out = body;
    for (i, c) in out.as_array_mut().into_iter().flatten().enumerate() {
        c["id"] = json!(format!("{}", 400_000_000_000_000_000u64 + i as u64));
        c["application_id"] = json!(APP_ID);
        c["version"] = json!("1");
        c["guild_id"] = guild.clone();
        if c["type"].is_null() {
            c["type"] = json!(1);
        }
        if c["default_member_permissions"].is_null() {
            c["default_member_permissions"] = Value::Null;
        }
        if c["nsfw"].is_null() {
            c["nsfw"] = json!(false);
        }
    }
    Json(out).into_response()
}

async fn edit_original(
    State(state): State<Shared>,
    Path((_app, token)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    state
        .lock()
        .unwrap()
        .original_edits
        .push((token, body.clone()));
    Json(body).into_response()
}

/// `POST /webhooks/{application_id}/{interaction_token}`: a follow-up message.
async fn create_followup(
    State(state): State<Shared>,
    Path((_app, token)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut s = state.lock().unwrap();
    s.seq += 1;
    let id = snowflake(s.seq);
    s.followups.push((token, body.clone()));
    Json(message_object(&id, CHANNEL, &body)).into_response()
}

/// `PATCH /webhooks/{application_id}/{interaction_token}/messages/{message_id}`.
async fn edit_followup(
    State(state): State<Shared>,
    Path((_app, token, mid)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    state
        .lock()
        .unwrap()
        .followup_edits
        .push((token, mid.clone(), body.clone()));
    Json(message_object(&mid, CHANNEL, &body)).into_response()
}

/// Embeds as Discord returns them: each with `type: "rich"`.
fn rich_embeds(mut embeds: Value) -> Value {
    for e in embeds.as_array_mut().into_iter().flatten() {
        if e["type"].is_null() {
            e["type"] = json!("rich");
        }
    }
    embeds
}

/// Components as Discord returns them: each with an `id`, numbered depth-first from 1 where
/// the request gave none.
fn numbered_components(mut components: Value) -> Value {
    fn walk(v: &mut Value, next: &mut u64) {
        for c in v.as_array_mut().into_iter().flatten() {
            if c["id"].is_null() {
                c["id"] = json!(*next);
            }
            *next += 1;
            if c.get("components").is_some() {
                walk(&mut c["components"], next);
            }
        }
    }
    walk(&mut components, &mut 1);
    components
}

/// A message object in Discord's documented shape for what `body` asked to send.
pub fn message_object(id: &str, channel_id: &str, body: &Value) -> Value {
    let or = |k: &str, d: Value| {
        if body[k].is_null() {
            d
        } else {
            body[k].clone()
        }
    };
    let mut m = json!({
        "id": id,
        "channel_id": channel_id,
        "author": {"id": APP_ID, "username": "mentiondesk", "discriminator": "0",
            "global_name": null, "avatar": null, "bot": true, "public_flags": 0, "flags": 0,
            "primary_guild": null},
        "content": or("content", json!("")),
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
        "edited_timestamp": null,
        "tts": or("tts", json!(false)),
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": rich_embeds(or("embeds", json!([]))),
        "pinned": false,
        "type": 0,
        "flags": or("flags", json!(0)),
        "components": numbered_components(or("components", json!([]))),
    });
    if !body["nonce"].is_null() {
        m["nonce"] = body["nonce"].clone();
    }
    m
}

async fn gateway_bot(headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Json(json!({"url": format!("ws://{host}/gateway"), "shards": 1,
        "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}))
    .into_response()
}

async fn gateway(
    State(state): State<Shared>,
    headers: HeaderMap,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    use axum::extract::ws::Message;
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    ws.on_upgrade(move |mut socket| async move {
        let hello = json!({"op": 10, "d": {"heartbeat_interval": 41250}});
        if socket.send(Message::Text(hello.to_string().into())).await.is_err() {
            return;
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let mut seq = 1u64;
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Some(frame) => if socket.send(Message::Text(frame.into())).await.is_err() { break },
                    None => break,
                },
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(&t).unwrap_or_default();
                        state.lock().unwrap().gateway_received.push(v.clone());
                        match v["op"].as_u64() {
                            Some(2) => {
                                let ready = json!({"op": 0, "s": seq, "t": "READY", "d": {
                                    "v": 10,
                                    "user": {"id": APP_ID, "username": "mentiondesk", "discriminator": "0", "global_name": null, "avatar": null, "bot": true},
                                    "guilds": [],
                                    "session_id": "fake-session",
                                    "resume_gateway_url": format!("ws://{host}/gateway"),
                                    "shard": [0, 1],
                                    "application": {"id": APP_ID, "flags": 0}
                                }});
                                seq += 1;
                                if socket.send(Message::Text(ready.to_string().into())).await.is_err() { break }
                                state.lock().unwrap().gateway_tx = Some(tx.clone());
                            }
                            Some(1) => {
                                let _ = socket.send(Message::Text(json!({"op": 11}).to_string().into())).await;
                            }
                            _ => {}
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    })
}

async fn callback(
    State(state): State<Shared>,
    Path((id, _token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers) {
        return error(401, 0, "401: Unauthorized");
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    state.lock().unwrap().callbacks.push((id, body));
    StatusCode::NO_CONTENT.into_response()
}

impl FakeDiscord {
    /// Sends a gateway dispatch (`t` with payload `d`) to the connected client.
    pub fn dispatch(&self, t: &str, d: Value) {
        let tx = self
            .state
            .lock()
            .unwrap()
            .gateway_tx
            .clone()
            .expect("a gateway client is connected");
        tx.send(json!({"op": 0, "s": 2, "t": t, "d": d}).to_string())
            .unwrap();
    }
}
