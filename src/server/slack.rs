//! Slack's callbacks: `POST /slack/commands` and `POST /slack/interactions`. Every request is
//! verified (v0 HMAC-SHA256 of the raw body with the signing secret, timestamp within five
//! minutes, constant-time comparison) before anything is parsed; retries and replays are
//! recognised by their trigger id and never applied twice. Slack is answered at once; the
//! work happens afterwards and is reported privately through `response_url`. The business
//! outcome is the desk's; this module only verifies, parses and routes.

use crate::chat::buttons;
use crate::chat::slack::SlackPlatform;
use crate::chat::slack_socket::{BoxFuture, SocketHandler};
use crate::clock::Clock;
use crate::desk::command;
use crate::desk::state::Action;
use crate::desk::Desk;
use crate::model::{AlertId, Note, Secret};
use crate::store::Store;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests older (or newer) than this are refused as replays.
pub const MAX_SKEW_SECS: i64 = 5 * 60;
/// How long user-group membership for `[desk].allowed` is trusted.
const GROUP_CACHE: Duration = Duration::from_secs(300);

pub const VIEW_RESOLVE: &str = "desk_resolve";
pub const VIEW_IGNORE: &str = "desk_ignore";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing X-Slack-Request-Timestamp or X-Slack-Signature")]
    MissingHeaders,
    #[error("request timestamp is not within five minutes of now")]
    Stale,
    #[error("signature does not match")]
    BadSignature,
}

/// Checks Slack's v0 signature over the raw body.
pub fn verify(
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
    let Some(expected) = decode_hex(hex_sig) else {
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
    let bytes = mac.finalize().into_bytes();
    format!(
        "v0={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// User group → (when fetched, member ids).
type GroupCache = HashMap<String, (Instant, Vec<String>)>;

/// Everything the Slack endpoints need.
#[derive(Clone)]
pub struct SlackEndpoints {
    pub signing_secret: Secret,
    pub platform: Arc<SlackPlatform>,
    pub desk: Desk,
    pub store: Store,
    pub clock: Clock,
    groups: Arc<Mutex<GroupCache>>,
}

impl SlackEndpoints {
    pub fn new(
        signing_secret: Secret,
        platform: Arc<SlackPlatform>,
        desk: Desk,
        store: Store,
        clock: Clock,
    ) -> SlackEndpoints {
        SlackEndpoints {
            signing_secret,
            platform,
            desk,
            store,
            clock,
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

    /// True the first time a request id is seen; retries and replays answer false.
    async fn first(&self, kind: &str, id: &str, body: &[u8]) -> bool {
        let key = if id.is_empty() {
            use sha2::Digest;
            let digest = Sha256::digest(body);
            format!(
                "slack:{kind}:body:{}",
                digest
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            )
        } else {
            format!("slack:{kind}:{id}")
        };
        match self.store.first_request(&key, self.clock.now()).await {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::error!(error = %e, "cannot record a Slack request id; treating it as new");
                true
            }
        }
    }

    /// `[desk].allowed`: empty means everyone; otherwise user ids or user groups (`S…`).
    async fn allowed(&self, user: &str) -> bool {
        let allowed = &self.desk.config().allowed;
        if allowed.is_empty() || allowed.iter().any(|a| a == user) {
            return true;
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
                return true;
            }
        }
        false
    }

    async fn reply(&self, response_url: &str, note: &Note) {
        if response_url.is_empty() {
            return;
        }
        if let Err(e) = self.platform.respond(response_url, note).await {
            tracing::warn!(error = %e, "could not answer through response_url");
        }
    }
}

fn not_allowed(command: &str) -> Note {
    Note::new().text(format!(
        "You are not on this desk's list of people who can use {command}. Ask an admin to add you to [desk].allowed."
    ))
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// `POST /slack/commands`.
pub async fn commands(ep: SlackEndpoints, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = ep.check(&headers, &body) {
        return *r;
    }
    match handle_command(&ep, &form(&body), &body, Duration::ZERO).await {
        Some(note) => Json(crate::chat::slack::ephemeral_answer(&note)).into_response(),
        None => StatusCode::OK.into_response(),
    }
}

/// Handles a verified slash command (from HTTP or Socket Mode). The answer comes back
/// directly if it is ready within `wait`; otherwise it goes through `response_url`.
pub async fn handle_command(
    ep: &SlackEndpoints,
    f: &HashMap<String, String>,
    raw: &[u8],
    wait: Duration,
) -> Option<Note> {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let (cmd_name, text, user, response_url) = (
        get("command"),
        get("text"),
        get("user_id"),
        get("response_url"),
    );
    if !ep.first("command", &get("trigger_id"), raw).await {
        tracing::info!(user = %user, "Slack command already handled (retry or replay); ignored");
        return None;
    }
    let configured = ep.desk.config().command.clone();
    if cmd_name != configured {
        return Some(Note::new().text(format!("This app answers {configured}, not {cmd_name}.")));
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<Note>();
    let worker = ep.clone();
    tokio::spawn(async move {
        let actor = format!("slack:{user}");
        let note = if !worker.allowed(&user).await {
            not_allowed(&configured)
        } else {
            match command::parse(&text, &configured, "slack") {
                Ok(cmd) => worker.desk.run(&actor, cmd, worker.clock.now()).await,
                Err(e) => Note::markup(&e),
            }
        };
        // Whoever waited for the answer has gone: it goes through response_url instead.
        if let Err(note) = tx.send(note) {
            worker.reply(&response_url, &note).await;
        }
    });
    if wait.is_zero() {
        return None;
    }
    tokio::time::timeout(wait, rx)
        .await
        .ok()
        .and_then(Result::ok)
}

/// `POST /slack/interactions`: buttons on alerts and the modals they open.
pub async fn interactions(ep: SlackEndpoints, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = ep.check(&headers, &body) {
        return *r;
    }
    let Some(payload) = form(&body).remove("payload") else {
        return (StatusCode::BAD_REQUEST, "missing payload").into_response();
    };
    let Ok(p) = serde_json::from_str::<Value>(&payload) else {
        return (StatusCode::BAD_REQUEST, "payload is not JSON").into_response();
    };
    if p["type"].as_str().is_none() {
        return (StatusCode::BAD_REQUEST, "payload has no type").into_response();
    }
    match handle_interaction(&ep, &p, &body).await {
        Some(v) => Json(v).into_response(),
        None => StatusCode::OK.into_response(),
    }
}

/// Handles a verified interaction payload (from HTTP or Socket Mode). Returns the body to
/// answer with when Slack expects one (dialog errors); button work is done afterwards.
pub async fn handle_interaction(ep: &SlackEndpoints, p: &Value, raw: &[u8]) -> Option<Value> {
    let user = p["user"]["id"].as_str().unwrap_or_default().to_string();
    let actor = format!("slack:{user}");
    let command_name = ep.desk.config().command.clone();
    match p["type"].as_str() {
        Some("block_actions") => {
            let request_id = format!(
                "{}:{}",
                p["trigger_id"].as_str().unwrap_or_default(),
                p["actions"][0]["action_ts"].as_str().unwrap_or_default()
            );
            if !ep.first("action", &request_id, raw).await {
                return None;
            }
            let action_id = p["actions"][0]["action_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let value = p["actions"][0]["value"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let trigger = p["trigger_id"].as_str().unwrap_or_default().to_string();
            let response_url = p["response_url"].as_str().unwrap_or_default().to_string();
            let ep = ep.clone();
            tokio::spawn(async move {
                button(
                    &ep,
                    &user,
                    &actor,
                    &command_name,
                    &action_id,
                    &value,
                    &trigger,
                    &response_url,
                )
                .await;
            });
            None
        }
        Some("view_submission") => view_submission(ep.clone(), p, &actor, &user, raw).await,
        Some(other) => {
            tracing::debug!(kind = %other, "Slack interaction type not used");
            None
        }
        None => None,
    }
}

#[allow(clippy::too_many_arguments)]
async fn button(
    ep: &SlackEndpoints,
    user: &str,
    actor: &str,
    command_name: &str,
    action_id: &str,
    value: &str,
    trigger: &str,
    response_url: &str,
) {
    if !ep.allowed(user).await {
        ep.reply(response_url, &not_allowed(command_name)).await;
        return;
    }
    let Some(id) = command::parse_id(value) else {
        ep.reply(
            response_url,
            &Note::new().text("That button does not name an alert."),
        )
        .await;
        return;
    };
    let now = ep.clock.now();
    let actor = actor.to_string();
    let outcome = match action_id {
        buttons::CLAIM => Some(ep.desk.act(id, &actor, Action::Claim, now).await),
        choice if super::snooze_choice(choice).is_some() => {
            let how = super::snooze_choice(choice).expect("checked by the guard");
            let until = ep.desk.snooze_until(how, now);
            Some(ep.desk.act(id, &actor, Action::Snooze { until }, now).await)
        }
        buttons::SNOOZE => {
            if let Err(e) = ep.platform.offer_snooze(response_url, id).await {
                tracing::warn!(error = %e, "could not offer snooze choices");
            }
            None
        }
        buttons::RESOLVE | buttons::IGNORE => {
            let (modal, fallback) = if action_id == buttons::RESOLVE {
                (
                    resolve_modal(id),
                    format!("`{command_name} resolve {id} [note]`"),
                )
            } else {
                (
                    ignore_modal(id),
                    format!("`{command_name} ignore {id} [reason]`"),
                )
            };
            if let Err(e) = ep.platform.open_modal(trigger, modal).await {
                tracing::warn!(error = %e, "could not open a dialog");
                ep.reply(
                    response_url,
                    &Note::markup(&format!("Could not open the dialog; use {fallback}.")),
                )
                .await;
            }
            None
        }
        other => {
            tracing::warn!(action = %other, "unknown Slack action");
            ep.reply(
                response_url,
                &Note::new().text("That button is not known to this version of mentiondesk."),
            )
            .await;
            None
        }
    };
    match outcome {
        Some(Ok(o)) => ep.reply(response_url, &o.note).await,
        Some(Err(e)) => {
            tracing::error!(error = %e, "desk action failed in the store");
            ep.reply(
                response_url,
                &Note::new().text("Something went wrong on our side; nothing was changed."),
            )
            .await;
        }
        None => {}
    }
}

/// The Resolve and Not relevant dialogs. Answered synchronously (the desk is local and
/// quick) so a refusal shows in the dialog itself.
async fn view_submission(
    ep: SlackEndpoints,
    p: &Value,
    actor: &str,
    user: &str,
    body: &[u8],
) -> Option<Value> {
    let view = &p["view"];
    let request_id = format!(
        "{}:{}",
        view["id"].as_str().unwrap_or_default(),
        view["hash"].as_str().unwrap_or_default()
    );
    // Checked before the request is recorded, so the person can untick the box and send the
    // same dialog again.
    if let Some(msg) = author_mute_refusal(&ep, view) {
        return Some(json!({"response_action": "errors", "errors": {"mute": msg}}));
    }
    if !ep.first("view", &request_id, body).await {
        return None;
    }
    let errors = |block: &str, msg: String| {
        Some(json!({"response_action": "errors", "errors": {block: msg}}))
    };
    let first_block = if view["callback_id"] == VIEW_IGNORE {
        "reason"
    } else {
        "note"
    };
    if !ep.allowed(user).await {
        return errors(first_block, not_allowed(&ep.desk.config().command).plain());
    }
    let Some(id) = view["private_metadata"]
        .as_str()
        .and_then(command::parse_id)
    else {
        return errors(
            first_block,
            "This dialog lost its alert id; use the command instead.".into(),
        );
    };
    let values = &view["state"]["values"];
    let text = |block: &str| {
        values[block][block]["value"]
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let now = ep.clock.now();
    let actor = actor.to_string();
    let result = match view["callback_id"].as_str() {
        Some(VIEW_RESOLVE) => {
            ep.desk
                .act(id, &actor, Action::Resolve { note: text("note") }, now)
                .await
        }
        Some(VIEW_IGNORE) => {
            let chosen: Vec<&str> = values["mute"]["mute"]["selected_options"]
                .as_array()
                .map(|a| a.iter().filter_map(|o| o["value"].as_str()).collect())
                .unwrap_or_default();
            let outcome = ep
                .desk
                .act(
                    id,
                    &actor,
                    Action::Ignore {
                        reason: text("reason"),
                    },
                    now,
                )
                .await;
            if matches!(outcome, Ok(ref o) if o.applied) && !chosen.is_empty() {
                if let Err(e) = ep
                    .desk
                    .mute(
                        id,
                        &actor,
                        chosen.contains(&"author"),
                        chosen.contains(&"site"),
                        now,
                    )
                    .await
                {
                    tracing::error!(error = %e, "could not store a mute");
                }
            }
            outcome
        }
        _ => return None,
    };
    match result {
        Ok(o) if o.applied => None,
        Ok(o) => errors(first_block, o.note.plain()),
        Err(e) => {
            tracing::error!(error = %e, "desk action failed in the store");
            errors(
                first_block,
                "Something went wrong on our side; nothing was changed.".into(),
            )
        }
    }
}

/// Why "Mute this author" cannot be done for the dialog's alert: its mention has no real
/// author (a feed without one, or a placeholder), and muting that would mute them all.
fn author_mute_refusal(ep: &SlackEndpoints, view: &Value) -> Option<String> {
    let wants_author = view["callback_id"] == VIEW_IGNORE
        && view["state"]["values"]["mute"]["mute"]["selected_options"]
            .as_array()
            .is_some_and(|a| a.iter().any(|o| o["value"] == "author"));
    let id = view["private_metadata"]
        .as_str()
        .and_then(command::parse_id)?;
    match wants_author.then(|| ep.desk.mute_keys(id)) {
        Some(Ok(Some(keys))) if keys.author.is_none() => Some(NO_AUTHOR_TO_MUTE.to_string()),
        _ => None,
    }
}

/// Said when someone asks to mute the author of a mention that has none.
pub const NO_AUTHOR_TO_MUTE: &str = "This mention has no known author (its source names none), so there is no author to mute. Untick \u{201c}Mute this author\u{201d}; you can still mute the site.";

/// Socket Mode hands its events to the same code as the HTTP endpoints. Socket Mode needs
/// no signature check: the connection itself is authenticated with the app token.
impl SocketHandler for SlackEndpoints {
    fn command(&self, fields: HashMap<String, String>, raw: Vec<u8>) -> BoxFuture<Option<Note>> {
        let ep = self.clone();
        Box::pin(async move { handle_command(&ep, &fields, &raw, SOCKET_ANSWER_WAIT).await })
    }

    fn interaction(&self, payload: Value, raw: Vec<u8>) -> BoxFuture<Option<Value>> {
        let ep = self.clone();
        Box::pin(async move { handle_interaction(&ep, &payload, &raw).await })
    }
}

/// In Socket Mode the acknowledgement can carry the answer; Slack wants it within 3 s.
const SOCKET_ANSWER_WAIT: Duration = Duration::from_millis(2500);

/// A modal title within Slack's 24 characters (an alert id of ten digits or more is cut).
fn modal_title(s: String) -> String {
    crate::chat::escape::truncate(&s, crate::chat::slack::MODAL_TITLE_MAX)
}

pub fn resolve_modal(id: AlertId) -> Value {
    json!({
        "type": "modal",
        "callback_id": VIEW_RESOLVE,
        "private_metadata": id.to_string(),
        "title": {"type": "plain_text", "text": modal_title(format!("Resolve #{id}"))},
        "submit": {"type": "plain_text", "text": "Resolve"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [{
            "type": "input",
            "block_id": "note",
            "optional": true,
            "label": {"type": "plain_text", "text": "How was it handled? (optional)"},
            "element": {"type": "plain_text_input", "action_id": "note", "multiline": true,
                        "max_length": crate::chat::text::NOTE_INPUT_MAX,
                        "placeholder": {"type": "plain_text", "text": "replied publicly"}}
        }]
    })
}

pub fn ignore_modal(id: AlertId) -> Value {
    json!({
        "type": "modal",
        "callback_id": VIEW_IGNORE,
        "private_metadata": id.to_string(),
        "title": {"type": "plain_text", "text": modal_title(format!("Not relevant: #{id}"))},
        "submit": {"type": "plain_text", "text": "Mark not relevant"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "optional": true,
                "label": {"type": "plain_text", "text": "Why? (optional)"},
                "element": {"type": "plain_text_input", "action_id": "reason",
                            "max_length": crate::chat::text::REASON_INPUT_MAX}
            },
            {
                "type": "input",
                "block_id": "mute",
                "optional": true,
                "label": {"type": "plain_text", "text": "From now on"},
                "element": {"type": "checkboxes", "action_id": "mute", "options": [
                    {"text": {"type": "plain_text", "text": "Mute this author"}, "value": "author"},
                    {"text": {"type": "plain_text", "text": "Mute this site"}, "value": "site"}
                ]}
            }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn modals_stay_within_slack_limits_and_cap_typed_text() {
        use crate::chat::slack::{INPUT_MAX_LENGTH_MAX, MODAL_TITLE_MAX};
        for v in [
            resolve_modal(AlertId(u64::MAX)),
            ignore_modal(AlertId(u64::MAX)),
        ] {
            let title = v["title"]["text"].as_str().unwrap();
            assert!(title.chars().count() <= MODAL_TITLE_MAX, "{title}");
            for b in v["blocks"].as_array().unwrap() {
                if b["element"]["type"] == "plain_text_input" {
                    let max = b["element"]["max_length"].as_u64().expect("max_length set");
                    assert!((1..=INPUT_MAX_LENGTH_MAX as u64).contains(&max), "{b}");
                }
            }
        }
        assert_eq!(
            resolve_modal(AlertId(7))["blocks"][0]["element"]["max_length"],
            crate::chat::text::NOTE_INPUT_MAX
        );
    }

    #[test]
    fn modals_are_valid_block_kit_for_the_sdk() {
        for v in [resolve_modal(AlertId(3)), ignore_modal(AlertId(3))] {
            let parsed: Result<slack_morphism::prelude::SlackView, _> =
                serde_json::from_value(v.clone());
            assert!(parsed.is_ok(), "{v}: {parsed:?}");
        }
    }
}
