//! Discord's interactions endpoint, `POST /discord/interactions`: every request is verified
//! (Ed25519 signature of timestamp + raw body with the application's public key, through
//! serenity's verifier, and a timestamp within five minutes) before it is parsed; PING gets
//! PONG; `/desk` subcommands, alert buttons and dialogs go to the desk. Answers are private
//! (ephemeral) and parse no mentions; work that is not ready at once is deferred and the
//! answer replaces the deferral. The business outcome is the desk's.

use crate::chat::buttons;
use crate::chat::discord::{self as discord, note_payload, DiscordPlatform};
use crate::chat::discord_gateway::GatewayHandler;
use crate::chat::escape::truncate;
use crate::chat::slack_socket::BoxFuture;
use crate::chat::text::{NOTE_INPUT_MAX, REASON_INPUT_MAX};
use crate::clock::Clock;
use crate::desk::command;
use crate::desk::state::Action;
use crate::desk::Desk;
use crate::model::{AlertId, Note};
use crate::store::Store;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Requests whose timestamp is further from now than this are refused as replays.
pub const MAX_SKEW_SECS: i64 = 5 * 60;
/// How long an answer may take before the interaction is deferred.
const ANSWER_WAIT: Duration = Duration::from_millis(2000);
/// Discord's "only you can see this" message flag.
const EPHEMERAL: u64 = 64;

#[derive(Clone)]
pub struct DiscordEndpoints {
    pub verifier: Arc<serenity::interactions_endpoint::Verifier>,
    pub platform: Arc<DiscordPlatform>,
    pub application_id: u64,
    pub desk: Desk,
    pub store: Store,
    pub clock: Clock,
}

impl DiscordEndpoints {
    /// Fails when the public key is not a valid Ed25519 key (config validation checked its form).
    pub fn new(
        public_key: &str,
        platform: Arc<DiscordPlatform>,
        application_id: u64,
        desk: Desk,
        store: Store,
        clock: Clock,
    ) -> Result<DiscordEndpoints, String> {
        let bytes =
            decode_key(public_key).ok_or("[discord].public_key is not 64 hex characters")?;
        let verifier = serenity::interactions_endpoint::Verifier::try_new(bytes)
            .map_err(|_| "[discord].public_key is not a valid Ed25519 public key; copy it again from the Developer Portal".to_string())?;
        Ok(DiscordEndpoints {
            verifier: Arc::new(verifier),
            platform,
            application_id,
            desk,
            store,
            clock,
        })
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(sig), Some(ts)) = (h("x-signature-ed25519"), h("x-signature-timestamp")) else {
            return false;
        };
        let Ok(ts_num) = ts.trim().parse::<i64>() else {
            return false;
        };
        // serenity's verifier checks the signature only; freshness is ours.
        if (self.clock.now().timestamp() - ts_num).abs() > MAX_SKEW_SECS {
            return false;
        }
        self.verifier.verify(sig, ts, body).is_ok()
    }
}

fn decode_key(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A private answer; a long one (`/desk show`) continues in embeds within Discord's limits.
fn answer(note: &Note) -> Value {
    let mut data = note_payload(note);
    data["flags"] = EPHEMERAL.into();
    json!({"type": 4, "data": data})
}

/// `POST /discord/interactions`.
pub async fn interactions(ep: DiscordEndpoints, headers: HeaderMap, body: Bytes) -> Response {
    if !ep.verify(&headers, &body) {
        tracing::warn!("refused an unverified Discord interaction");
        return (StatusCode::UNAUTHORIZED, "invalid request signature").into_response();
    }
    let Ok(i) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "body is not JSON").into_response();
    };
    Json(respond(&ep, &i).await).into_response()
}

/// The response to a verified interaction (from HTTP or the gateway); replays are answered
/// but never applied twice.
pub async fn respond(ep: &DiscordEndpoints, i: &Value) -> Value {
    if i["type"] == 1 {
        return json!({"type": 1});
    }
    let id = i["id"].as_str().unwrap_or_default();
    match ep
        .store
        .first_request(&format!("discord:interaction:{id}"), ep.clock.now())
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(interaction = %id, "Discord interaction already handled (replay); ignored");
            return answer(&Note::new().text("Already done."));
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot record a Discord interaction id; treating it as new")
        }
    }
    handle(ep, i).await
}

/// Gateway interactions go through the same code; the websocket itself is authenticated.
impl GatewayHandler for DiscordEndpoints {
    fn interaction(&self, interaction: Value) -> BoxFuture<Value> {
        let ep = self.clone();
        Box::pin(async move { respond(&ep, &interaction).await })
    }
}

/// The response body for a verified, first-seen interaction.
pub async fn handle(ep: &DiscordEndpoints, i: &Value) -> Value {
    let user = i["member"]["user"]["id"]
        .as_str()
        .or_else(|| i["user"]["id"].as_str())
        .unwrap_or_default()
        .to_string();
    let roles: Vec<String> = i["member"]["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    let command_name = ep.desk.config().command.clone();
    let allowed = &ep.desk.config().allowed;
    if !allowed.is_empty() && !allowed.iter().any(|a| *a == user || roles.contains(a)) {
        return answer(&Note::new().text(format!(
            "You are not on this desk's list of people who can use {command_name}. Ask an admin to add you to [desk].allowed."
        )));
    }
    let actor = format!("discord:{user}");
    match i["type"].as_u64() {
        Some(2) => {
            let text = command_text(&i["data"]);
            let ep2 = ep.clone();
            let token = i["token"].as_str().unwrap_or_default().to_string();
            deferred(ep, token, async move {
                match command::parse(&text, &command_name, "discord") {
                    Ok(cmd) => ep2.desk.run(&actor, cmd, ep2.clock.now()).await,
                    Err(e) => Note::markup(&e),
                }
            })
            .await
        }
        Some(3) => component(ep, i, &actor).await,
        Some(5) => modal_submit(ep, i, &actor).await,
        _ => answer(&Note::new().text("This kind of interaction is not used by mentiondesk.")),
    }
}

/// Runs `work`; answers with its note if it is ready within a moment, else defers and
/// replaces the deferral with the note when it is.
async fn deferred(
    ep: &DiscordEndpoints,
    token: String,
    work: impl std::future::Future<Output = Note> + Send + 'static,
) -> Value {
    let (tx, rx) = tokio::sync::oneshot::channel::<Note>();
    let platform = ep.platform.clone();
    let app = ep.application_id;
    tokio::spawn(async move {
        let note = work.await;
        if let Err(note) = tx.send(note) {
            if let Err(e) = platform.edit_original(app, &token, &note).await {
                tracing::warn!(error = %e, "could not replace a deferred Discord answer");
            }
        }
    });
    match tokio::time::timeout(ANSWER_WAIT, rx).await {
        Ok(Ok(note)) => answer(&note),
        _ => json!({"type": 5, "data": {"flags": EPHEMERAL}}),
    }
}

/// Turns a `/desk` application command's typed options into the text form the desk parses,
/// so Slack and Discord share one parser and one set of answers.
pub fn command_text(data: &Value) -> String {
    let Some(sub) = data["options"][0].as_object() else {
        return "help".into();
    };
    let name = sub.get("name").and_then(Value::as_str).unwrap_or("help");
    let opt = |key: &str| {
        sub.get("options")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|o| o["name"] == key)
            .map(|o| match &o["value"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    let parts: Vec<String> = match name {
        "assign" => vec![name.into(), opt("id"), format!("<@{}>", opt("user"))],
        "resolve" => vec![name.into(), opt("id"), opt("note")],
        "ignore" => vec![name.into(), opt("id"), opt("reason")],
        "note" => vec![name.into(), opt("id"), opt("text")],
        "snooze" => vec![name.into(), opt("id"), opt("for")],
        "list" => vec![name.into(), opt("which")],
        "stats" => vec![name.into(), opt("period")],
        "preview" => vec![name.into(), opt("query")],
        "help" => vec![name.into()],
        _ => vec![name.into(), opt("id")],
    };
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

async fn component(ep: &DiscordEndpoints, i: &Value, actor: &str) -> Value {
    let custom = i["data"]["custom_id"].as_str().unwrap_or_default();
    let Some((kind, id)) = custom
        .split_once(':')
        .and_then(|(k, v)| Some((k, command::parse_id(v)?)))
    else {
        return answer(&Note::new().text("That button does not name an alert."));
    };
    let now = ep.clock.now();
    let actor = actor.to_string();
    let act = |action: Action| async move {
        match ep.desk.act(id, &actor, action, now).await {
            Ok(o) => answer(&o.note),
            Err(e) => {
                tracing::error!(error = %e, "desk action failed in the store");
                answer(&Note::new().text("Something went wrong on our side; nothing was changed."))
            }
        }
    };
    match kind {
        buttons::CLAIM => act(Action::Claim).await,
        buttons::RESOLVE => resolve_modal(id),
        buttons::IGNORE => ignore_modal(id),
        buttons::SNOOZE => snooze_choices(id),
        choice if super::snooze_choice(choice).is_some() => {
            let how = super::snooze_choice(choice).expect("checked by the guard");
            let until = ep.desk.snooze_until(how, now);
            act(Action::Snooze { until }).await
        }
        _ => answer(&Note::new().text("That button is not known to this version of mentiondesk.")),
    }
}

async fn modal_submit(ep: &DiscordEndpoints, i: &Value, actor: &str) -> Value {
    let custom = i["data"]["custom_id"].as_str().unwrap_or_default();
    let Some((kind, id)) = custom
        .split_once(':')
        .and_then(|(k, v)| Some((k, command::parse_id(v)?)))
    else {
        return answer(
            &Note::new().text("This dialog lost its alert id; use the command instead."),
        );
    };
    let field = |name: &str| {
        i["data"]["components"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
            .find(|c| c["custom_id"] == name)
            .and_then(|c| {
                c["value"]
                    .as_str()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
    };
    let now = ep.clock.now();
    let actor = actor.to_string();
    let result = match kind {
        buttons::RESOLVE => {
            ep.desk
                .act(
                    id,
                    &actor,
                    Action::Resolve {
                        note: field("note"),
                    },
                    now,
                )
                .await
        }
        buttons::IGNORE => {
            let mute = field("mute").unwrap_or_default().to_lowercase();
            let mut outcome = ep
                .desk
                .act(
                    id,
                    &actor,
                    Action::Ignore {
                        reason: field("reason"),
                    },
                    now,
                )
                .await;
            if matches!(outcome, Ok(ref o) if o.applied) && !mute.is_empty() {
                let (author, site) = (
                    mute.contains("author") || mute == "both",
                    mute.contains("site") || mute == "both",
                );
                match ep.desk.mute(id, &actor, author, site, now).await {
                    // No real author (none, or a placeholder): muting it would mute them all.
                    Ok(muted) if author && !muted.iter().any(|k| k.starts_with("author:")) => {
                        if let Ok(o) = &mut outcome {
                            o.note = std::mem::take(&mut o.note).text(format!(
                                " No author was muted: this mention has no known author{}.",
                                if site && !muted.is_empty() {
                                    "; its site is muted"
                                } else {
                                    ""
                                }
                            ));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "could not store a mute"),
                }
            }
            outcome
        }
        _ => {
            return answer(
                &Note::new().text("This dialog is not known to this version of mentiondesk."),
            )
        }
    };
    match result {
        Ok(o) => answer(&o.note),
        Err(e) => {
            tracing::error!(error = %e, "desk action failed in the store");
            answer(&Note::new().text("Something went wrong on our side; nothing was changed."))
        }
    }
}

/// One text input in its action row, every text within Discord's modal limits.
fn text_input(
    custom_id: &str,
    label: &str,
    placeholder: Option<&str>,
    long: bool,
    max_length: usize,
) -> Value {
    let mut input = json!({
        "type": 4,
        "custom_id": custom_id,
        "label": truncate(label, discord::TEXT_INPUT_LABEL_MAX),
        "style": if long { 2 } else { 1 },
        "required": false,
        "max_length": max_length.min(discord::TEXT_INPUT_VALUE_MAX),
    });
    if let Some(p) = placeholder {
        input["placeholder"] = truncate(p, discord::TEXT_INPUT_PLACEHOLDER_MAX).into();
    }
    json!({"type": 1, "components": [input]})
}

fn modal(custom_id: String, title: String, components: Vec<Value>) -> Value {
    json!({"type": 9, "data": {
        "custom_id": truncate(&custom_id, discord::CUSTOM_ID_MAX),
        "title": truncate(&title, discord::MODAL_TITLE_MAX),
        "components": components,
    }})
}

pub fn resolve_modal(id: AlertId) -> Value {
    modal(
        format!("{}:{id}", buttons::RESOLVE),
        format!("Resolve #{id}"),
        vec![text_input(
            "note",
            "How was it handled? (optional)",
            Some("replied publicly"),
            true,
            NOTE_INPUT_MAX,
        )],
    )
}

/// The "Not relevant" dialog. Its labels are 45 characters at most: Discord refuses the
/// whole modal otherwise, and the button then does nothing at all.
pub fn ignore_modal(id: AlertId) -> Value {
    modal(
        format!("{}:{id}", buttons::IGNORE),
        format!("Not relevant: #{id}"),
        vec![
            text_input("reason", "Why? (optional)", None, false, REASON_INPUT_MAX),
            text_input(
                "mute",
                "Mute from now on? (optional)",
                Some("author, site or both"),
                false,
                30,
            ),
        ],
    )
}

fn snooze_choices(id: AlertId) -> Value {
    let b = |custom: &str, label: &str| json!({"type": 2, "style": 2, "custom_id": format!("{custom}:{id}"), "label": label});
    json!({"type": 4, "data": {"content": format!("Snooze #{id} until…"), "flags": EPHEMERAL, "allowed_mentions": {"parse": []},
        "components": [{"type": 1, "components": buttons::SNOOZE_CHOICES.iter().map(|(c, l)| b(c, l)).collect::<Vec<_>>()}]}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modals_stay_within_discord_limits() {
        for m in [
            resolve_modal(AlertId(u64::MAX)),
            ignore_modal(AlertId(u64::MAX)),
        ] {
            let data = &m["data"];
            let count = |v: &Value| v.as_str().unwrap().chars().count();
            assert!(count(&data["title"]) <= discord::MODAL_TITLE_MAX, "{m}");
            assert!(count(&data["custom_id"]) <= discord::CUSTOM_ID_MAX, "{m}");
            for row in data["components"].as_array().unwrap() {
                let input = &row["components"][0];
                assert!(
                    count(&input["label"]) <= discord::TEXT_INPUT_LABEL_MAX,
                    "{input}"
                );
                assert!(count(&input["custom_id"]) <= discord::CUSTOM_ID_MAX);
                if !input["placeholder"].is_null() {
                    assert!(count(&input["placeholder"]) <= discord::TEXT_INPUT_PLACEHOLDER_MAX);
                }
                let max = input["max_length"].as_u64().unwrap() as usize;
                assert!((1..=discord::TEXT_INPUT_VALUE_MAX).contains(&max));
            }
        }
    }

    #[test]
    fn typed_options_become_desk_text() {
        let data = |sub: Value| json!({"name": "desk", "options": [sub]});
        let cases = vec![
            (
                json!({"name": "claim", "options": [{"name": "id", "type": 4, "value": 42}]}),
                "claim 42",
            ),
            (
                json!({"name": "resolve", "options": [{"name": "id", "value": 4}, {"name": "note", "value": "replied"}]}),
                "resolve 4 replied",
            ),
            (
                json!({"name": "assign", "options": [{"name": "id", "value": 4}, {"name": "user", "value": "1234"}]}),
                "assign 4 <@1234>",
            ),
            (
                json!({"name": "snooze", "options": [{"name": "id", "value": 4}, {"name": "for", "value": "2h"}]}),
                "snooze 4 2h",
            ),
            (json!({"name": "list"}), "list"),
            (
                json!({"name": "list", "options": [{"name": "which", "value": "mine"}]}),
                "list mine",
            ),
            (
                json!({"name": "preview", "options": [{"name": "query", "value": "acme AND refund"}]}),
                "preview acme AND refund",
            ),
            (json!({"name": "help"}), "help"),
        ];
        for (sub, want) in cases {
            assert_eq!(command_text(&data(sub)), want);
        }
    }
}
