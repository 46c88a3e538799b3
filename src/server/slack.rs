//! Slack's callbacks: `POST /slack/commands` and `POST /slack/interactions`, and the same
//! requests over Socket Mode. Every HTTP request is verified (v0 HMAC-SHA256 of the raw body
//! with the signing secret, timestamp within five minutes, constant-time comparison) before
//! anything is parsed. Payloads are decoded into typed structs and then into the desk's
//! neutral `Interaction`; the `Dispatcher` decides (dedup, `[desk].allowed`, the action, the
//! texts) and its `Reply` is encoded here: at once where Slack expects an answer in the
//! response, otherwise through `response_url` by tracked work after the 3 s acknowledgement.

use super::Tasks;
use crate::chat::slack::modals::{self, VIEW_IGNORE, VIEW_RESOLVE};
use crate::chat::slack::socket::{SlashCommand, SocketHandler};
use crate::chat::slack::{ephemeral_answer, SlackPlatform};
use crate::chat::BoxFuture;
use crate::clock::Clock;
use crate::desk::command::{parse_button_id, parse_id};
use crate::desk::dispatch::{Dialog, Dispatcher, Interaction, Kind, Mute, Reply};
use crate::model::{Note, Secret};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests older (or newer) than this are refused as replays.
pub(crate) const MAX_SKEW_SECS: i64 = 5 * 60;
/// How long user-group membership for `[desk].allowed` is trusted.
const GROUP_CACHE: Duration = Duration::from_secs(300);
/// In Socket Mode the acknowledgement can carry the answer; Slack wants it within 3 s.
const SOCKET_ANSWER_WAIT: Duration = Duration::from_millis(2500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum VerifyError {
    #[error("missing X-Slack-Request-Timestamp or X-Slack-Signature")]
    MissingHeaders,
    #[error("request timestamp is not within five minutes of now")]
    Stale,
    #[error("signature does not match")]
    BadSignature,
}

/// Checks Slack's v0 signature over the raw body.
pub(crate) fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let (Some(ts), Some(sig)) = (timestamp, signature) else {
        return Err(VerifyError::MissingHeaders);
    };
    let ts_num: i64 = ts.trim().parse().map_err(|_| VerifyError::MissingHeaders)?;
    if (now - ts_num).abs() > MAX_SKEW_SECS {
        return Err(VerifyError::Stale);
    }
    let Some(hex_sig) = sig.strip_prefix("v0=") else {
        return Err(VerifyError::BadSignature);
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return Err(VerifyError::BadSignature);
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(b"v0:");
    mac.update(ts.trim().as_bytes());
    mac.update(b":");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected)
        .map_err(|_| VerifyError::BadSignature)
}

/// Signs a body the way Slack does; used by tests and by anyone scripting the endpoint.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// User group → (when fetched, member ids).
type GroupCache = HashMap<String, (Instant, Vec<String>)>;

/// Everything the Slack endpoints need.
#[derive(Clone)]
pub(crate) struct SlackEndpoints {
    pub(crate) signing_secret: Secret,
    pub(crate) platform: Arc<SlackPlatform>,
    pub(crate) dispatcher: Dispatcher,
    pub(crate) clock: Clock,
    tasks: Tasks,
    groups: Arc<Mutex<GroupCache>>,
}

/// Where a reply goes that is not the response body.
#[derive(Debug, Clone, Default)]
struct ReplyTo {
    response_url: Secret,
    trigger_id: String,
}

impl SlackEndpoints {
    pub(crate) fn new(
        signing_secret: Secret,
        platform: Arc<SlackPlatform>,
        dispatcher: Dispatcher,
        clock: Clock,
        tasks: Tasks,
    ) -> SlackEndpoints {
        SlackEndpoints {
            signing_secret,
            platform,
            dispatcher,
            clock,
            tasks,
            groups: Arc::default(),
        }
    }

    fn check(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), Box<Response>> {
        let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        verify(
            self.signing_secret.expose(),
            h("x-slack-request-timestamp"),
            h("x-slack-signature"),
            body,
            self.clock.now().timestamp(),
        )
        .map_err(|e| {
            tracing::warn!(error = %e, "refused an unverified Slack request");
            Box::new((StatusCode::UNAUTHORIZED, "invalid request signature").into_response())
        })
    }

    /// The user groups named in `[desk].allowed` that the person is in. Looked up only when
    /// the list names groups and not the person, and cached for `GROUP_CACHE`.
    async fn groups(&self, user: &str) -> Vec<String> {
        let allowed = self.dispatcher.allowed();
        if allowed.is_empty() || allowed.iter().any(|a| a == user) {
            return vec![];
        }
        for group in allowed.iter().filter(|a| a.starts_with('S')) {
            let cached = self
                .groups
                .lock()
                .expect("lock")
                .get(group)
                .filter(|(at, _)| at.elapsed() < GROUP_CACHE)
                .map(|(_, m)| m.clone());
            let members = match cached {
                Some(m) => m,
                None => match self.platform.usergroup_members(group).await {
                    Ok(m) => {
                        self.groups
                            .lock()
                            .expect("lock")
                            .insert(group.clone(), (Instant::now(), m.clone()));
                        m
                    }
                    Err(e) => {
                        tracing::warn!(group = %group, error = %e, "cannot read user group members");
                        continue;
                    }
                },
            };
            if members.iter().any(|m| m == user) {
                return vec![group.clone()];
            }
        }
        vec![]
    }

    /// The gate and the action of an admitted interaction, with the person's groups.
    async fn run(&self, mut i: Interaction) -> Reply {
        i.groups = self.groups(&i.user).await;
        self.dispatcher.run(i).await
    }

    /// Sends a reply that is not the response body: a note through `response_url`, a modal
    /// through `views.open`, the snooze choices.
    async fn deliver(&self, reply: Reply, to: &ReplyTo) {
        match reply {
            Reply::Private(note) | Reply::Accepted(note) | Reply::Refused { note, .. } => {
                self.respond(to.response_url.expose(), &note).await
            }
            Reply::Modal {
                dialog,
                alert,
                fallback,
            } => {
                let view = match dialog {
                    Dialog::Resolve => modals::resolve_modal(alert),
                    Dialog::Ignore => modals::ignore_modal(alert),
                };
                if let Err(e) = self.platform.open_modal(&to.trigger_id, view).await {
                    tracing::warn!(error = %e, "could not open a dialog");
                    self.respond(to.response_url.expose(), &fallback).await;
                }
            }
            Reply::SnoozeChoices(alert) => {
                if let Err(e) = self
                    .platform
                    .offer_snooze(to.response_url.expose(), alert)
                    .await
                {
                    tracing::warn!(error = %e, "could not offer snooze choices");
                }
            }
            Reply::Duplicate | Reply::Defer => {}
        }
    }

    async fn respond(&self, response_url: &str, note: &Note) {
        if response_url.is_empty() {
            return;
        }
        if let Err(e) = self.platform.respond(response_url, note).await {
            tracing::warn!(error = %e, "could not answer through response_url");
        }
    }
}

/// The dedup key of a request: its id, or a hash of its body when it has none.
fn request_id(kind: &str, id: &str, body: &[u8]) -> String {
    if id.is_empty() {
        use sha2::Digest;
        format!("slack:{kind}:body:{}", hex::encode(Sha256::digest(body)))
    } else {
        format!("slack:{kind}:{id}")
    }
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// A slash command's form fields.
fn slash_command(mut f: HashMap<String, String>) -> SlashCommand {
    let mut take = |k: &str| f.remove(k).unwrap_or_default();
    SlashCommand {
        command: take("command"),
        text: take("text"),
        user_id: take("user_id"),
        response_url: Secret::new(take("response_url")),
        trigger_id: take("trigger_id"),
        channel_id: take("channel_id"),
    }
}

/// `POST /slack/commands`.
pub(crate) async fn commands(ep: SlackEndpoints, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = ep.check(&headers, &body) {
        return *r;
    }
    match handle_command(&ep, slash_command(form(&body)), &body, Duration::ZERO).await {
        Some(note) => Json(ephemeral_answer(&note)).into_response(),
        None => StatusCode::OK.into_response(),
    }
}

/// Handles a verified slash command (from HTTP or Socket Mode). The answer comes back
/// directly if it is ready within `wait`; otherwise it goes through `response_url`.
pub(crate) async fn handle_command(
    ep: &SlackEndpoints,
    c: SlashCommand,
    raw: &[u8],
    wait: Duration,
) -> Option<Note> {
    let i = Interaction {
        actor: format!("slack:{}", c.user_id),
        user: c.user_id,
        groups: vec![],
        request_id: request_id("command", &c.trigger_id, raw),
        kind: Kind::Command {
            name: Some(c.command),
            text: c.text,
            platform: "slack",
            channel: Some(c.channel_id).filter(|c| !c.is_empty()),
        },
    };
    // Over HTTP (`wait` zero) nobody waits for the answer: the work delivers it itself. A
    // channel whose receiver is dropped as this returns could take the answer and lose it.
    let (tx, rx) = if wait.is_zero() {
        (None, None)
    } else {
        let (tx, rx) = tokio::sync::oneshot::channel::<Reply>();
        (Some(tx), Some(rx))
    };
    let worker = ep.clone();
    let to = ReplyTo {
        response_url: c.response_url,
        trigger_id: c.trigger_id,
    };
    ep.tasks.spawn(async move {
        // Admitting records the request id in the store and waits for it to be on disk; done
        // here, not before the HTTP answer, so that the acknowledgement Slack waits for never
        // waits on the store (during a large ingest that took a few hundred milliseconds).
        // A retried command is still applied once: its id is checked before any work.
        let reply = match worker.dispatcher.admit(&i).await {
            Some(Reply::Private(note)) => Reply::Private(note),
            Some(_) => return,
            None => worker.run(i).await,
        };
        // Nobody waits, or whoever waited has gone: it goes through response_url instead.
        let unsent = match tx {
            Some(tx) => tx.send(reply).err(),
            None => Some(reply),
        };
        if let Some(reply) = unsent {
            worker.deliver(reply, &to).await;
        }
    });
    let rx = rx?;
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(Reply::Private(note))) => Some(note),
        _ => None,
    }
}

/// The payload's `type`, kept for the log when it is one mentiondesk does not use.
fn payload_kind(payload: &Value) -> String {
    payload["type"].as_str().unwrap_or_default().to_string()
}

/// An interaction payload, typed as far as mentiondesk reads it. Every field is optional
/// in effect: a missing one reads as empty, as Slack's own examples omit some.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Payload {
    BlockActions(BlockActions),
    ViewSubmission(ViewSubmission),
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct BlockActions {
    user: User,
    trigger_id: String,
    /// Answers in the channel for 30 minutes: a credential.
    response_url: Secret,
    actions: Vec<BlockAction>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct User {
    id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BlockAction {
    action_id: String,
    value: Option<String>,
    action_ts: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ViewSubmission {
    user: User,
    view: View,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct View {
    id: String,
    hash: String,
    callback_id: Option<String>,
    private_metadata: Option<String>,
    state: ViewState,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ViewState {
    /// Block id → action id → what was entered.
    values: HashMap<String, HashMap<String, InputValue>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InputValue {
    value: Option<String>,
    selected_options: Option<Vec<SelectedOption>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SelectedOption {
    value: Option<String>,
}

impl View {
    /// The input whose block and action ids are both `name` (as the desk's modals build them).
    fn input(&self, name: &str) -> Option<&InputValue> {
        self.state.values.get(name)?.get(name)
    }

    fn text(&self, name: &str) -> Option<String> {
        self.input(name)?
            .value
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    fn chosen(&self, name: &str) -> Vec<&str> {
        self.input(name)
            .and_then(|i| i.selected_options.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|o| o.value.as_deref())
            .collect()
    }
}

/// `POST /slack/interactions`: buttons on alerts and the modals they open.
pub(crate) async fn interactions(ep: SlackEndpoints, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = ep.check(&headers, &body) {
        return *r;
    }
    let Some(payload) = form(&body).remove("payload") else {
        return (StatusCode::BAD_REQUEST, "missing payload").into_response();
    };
    let Ok(value) = serde_json::from_str::<Value>(&payload) else {
        return (StatusCode::BAD_REQUEST, "payload is not JSON").into_response();
    };
    let kind = payload_kind(&value);
    let Ok(p) = serde_json::from_value::<Payload>(value) else {
        return (StatusCode::BAD_REQUEST, "payload has no type").into_response();
    };
    match handle_interaction(&ep, p, &kind, &body).await {
        Some(v) => Json(v).into_response(),
        None => StatusCode::OK.into_response(),
    }
}

/// Handles a verified interaction payload (from HTTP or Socket Mode). Returns the body to
/// answer with when Slack expects one (dialog errors); button work is done afterwards.
pub(crate) async fn handle_interaction(
    ep: &SlackEndpoints,
    p: Payload,
    kind: &str,
    raw: &[u8],
) -> Option<Value> {
    match p {
        Payload::BlockActions(b) => {
            button(ep, b, raw).await;
            None
        }
        Payload::ViewSubmission(v) => view_submission(ep, v, raw).await,
        Payload::Other => {
            tracing::debug!(kind, "Slack interaction type not used");
            None
        }
    }
}

/// A button: acknowledged at once; the work and its answer follow as tracked work.
async fn button(ep: &SlackEndpoints, b: BlockActions, raw: &[u8]) {
    let action = b.actions.into_iter().next().unwrap_or_default();
    let i = Interaction {
        actor: format!("slack:{}", b.user.id),
        user: b.user.id,
        groups: vec![],
        request_id: request_id(
            "action",
            &format!("{}:{}", b.trigger_id, action.action_ts.unwrap_or_default()),
            raw,
        ),
        kind: Kind::Button {
            button: action.action_id,
            alert: action.value.as_deref().and_then(parse_button_id),
        },
    };
    let to = ReplyTo {
        response_url: b.response_url,
        trigger_id: b.trigger_id,
    };
    match ep.dispatcher.admit(&i).await {
        Some(reply) => ep.deliver(reply, &to).await,
        None => {
            let worker = ep.clone();
            ep.tasks.spawn(async move {
                let reply = worker.run(i).await;
                worker.deliver(reply, &to).await;
            });
        }
    }
}

/// The Resolve and Not relevant dialogs. Answered synchronously (the desk is local and
/// quick) so a refusal shows in the dialog itself.
async fn view_submission(ep: &SlackEndpoints, v: ViewSubmission, raw: &[u8]) -> Option<Value> {
    let view = v.view;
    let dialog = match view.callback_id.as_deref() {
        Some(VIEW_RESOLVE) => Dialog::Resolve,
        Some(VIEW_IGNORE) => Dialog::Ignore,
        other => {
            tracing::debug!(callback = ?other, "Slack dialog not ours");
            return None;
        }
    };
    let chosen = view.chosen("mute");
    let mute = Mute {
        author: dialog == Dialog::Ignore && chosen.contains(&"author"),
        site: dialog == Dialog::Ignore && chosen.contains(&"site"),
    };
    let i = Interaction {
        actor: format!("slack:{}", v.user.id),
        user: v.user.id,
        groups: vec![],
        request_id: request_id("view", &format!("{}:{}", view.id, view.hash), raw),
        kind: Kind::ModalSubmit {
            dialog: Some(dialog),
            alert: view.private_metadata.as_deref().and_then(parse_id),
            text: view.text(dialog.text_field()),
            mute,
            inline_errors: true,
        },
    };
    let reply = match ep.dispatcher.admit(&i).await {
        Some(reply) => reply,
        None => ep.run(i).await,
    };
    match reply {
        Reply::Refused { field, note } => {
            Some(json!({"response_action": "errors", "errors": {field: note.plain()}}))
        }
        _ => None,
    }
}

/// Socket Mode hands its events to the same code as the HTTP endpoints. Socket Mode needs
/// no signature check: the connection itself is authenticated with the app token.
impl SocketHandler for SlackEndpoints {
    fn command(&self, command: SlashCommand, raw: Vec<u8>) -> BoxFuture<Option<Note>> {
        let ep = self.clone();
        Box::pin(async move { handle_command(&ep, command, &raw, SOCKET_ANSWER_WAIT).await })
    }

    fn interaction(&self, payload: Value, raw: Vec<u8>) -> BoxFuture<Option<Value>> {
        let ep = self.clone();
        Box::pin(async move {
            let kind = payload_kind(&payload);
            match serde_json::from_value::<Payload>(payload) {
                Ok(p) => handle_interaction(&ep, p, &kind, &raw).await,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read a Socket Mode interaction");
                    None
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `response_url` answers in the caller's channel for 30 minutes: a payload that ends up
    /// in a log line or panic through `{:?}` must not carry it.
    #[test]
    fn response_urls_never_show_in_debug_output() {
        let url = "https://hooks.slack.com/actions/T1/123/SeCrEt";
        let payload = json!({"type": "block_actions", "user": {"id": "U1"}, "response_url": url,
            "actions": [{"action_id": "claim", "value": "1"}]});
        let p: Payload = serde_json::from_value(payload).unwrap();
        let shown = format!("{p:?}");
        assert!(shown.contains("U1") && !shown.contains("SeCrEt"), "{shown}");
        let cmd = SlashCommand {
            command: "/desk".into(),
            response_url: Secret::new(url),
            ..Default::default()
        };
        let shown = format!("{cmd:?}");
        assert!(
            shown.contains("/desk") && !shown.contains("SeCrEt"),
            "{shown}"
        );
    }

    #[test]
    fn signature_round_trip_and_failures() {
        let body = b"token=x&command=%2Fdesk&text=claim+1";
        let now = 1_700_000_000;
        let sig = sign("secret", now, body);
        let ts = now.to_string();
        assert_eq!(verify("secret", Some(&ts), Some(&sig), body, now), Ok(()));
        assert_eq!(
            verify("secret", Some(&ts), Some(&sig), body, now + 299),
            Ok(())
        );
        assert_eq!(
            verify("secret", Some(&ts), Some(&sig), body, now + 301),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify("other", Some(&ts), Some(&sig), body, now),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(
                "secret",
                Some(&ts),
                Some(&sig),
                b"token=x&text=claim+2",
                now
            ),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify("secret", None, Some(&sig), body, now),
            Err(VerifyError::MissingHeaders)
        );
        assert_eq!(
            verify("secret", Some(&ts), None, body, now),
            Err(VerifyError::MissingHeaders)
        );
        assert_eq!(
            verify("secret", Some(&ts), Some("v0=zz"), body, now),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify("secret", Some(&ts), Some("v1=00"), body, now),
            Err(VerifyError::BadSignature)
        );
    }
}
