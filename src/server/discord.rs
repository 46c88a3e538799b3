//! Discord's interactions endpoint, `POST /discord/interactions`, and the same interactions
//! over the gateway. Every HTTP request is verified (Ed25519 signature of timestamp + raw body
//! with the application's public key, through serenity's verifier, and a timestamp within
//! five minutes) before it is parsed; PING gets PONG. The payload is decoded into typed
//! structs (serenity's `InteractionType`) and then into the desk's neutral `Interaction`; the
//! `Dispatcher` decides and its `Reply` is encoded here as a private (ephemeral) answer that
//! parses no mentions. A command not answered within a moment is deferred, and tracked work
//! replaces the deferral with the answer.

use super::Tasks;
use crate::chat::discord::gateway::GatewayHandler;
use crate::chat::discord::interaction as respond_with;
use crate::chat::discord::DiscordPlatform;
use crate::chat::BoxFuture;
use crate::clock::Clock;
use crate::desk::command::parse_button_id;
use crate::desk::dispatch::{Dialog, Dispatcher, Interaction, Kind, Mute, Reply, MUTE_FIELD};
use crate::model::{Note, Secret};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use serenity::model::application::InteractionType;
use std::sync::Arc;
use std::time::Duration;

/// Requests whose timestamp is further from now than this are refused as replays.
pub(crate) const MAX_SKEW_SECS: i64 = 5 * 60;
/// How long an answer may take before the interaction is deferred.
const ANSWER_WAIT: Duration = Duration::from_millis(2000);

#[derive(Clone)]
pub(crate) struct DiscordEndpoints {
    verifier: Arc<serenity::interactions_endpoint::Verifier>,
    pub(crate) platform: Arc<DiscordPlatform>,
    pub(crate) application_id: u64,
    pub(crate) dispatcher: Dispatcher,
    pub(crate) clock: Clock,
    tasks: Tasks,
}

impl DiscordEndpoints {
    /// Fails when the public key is not a valid Ed25519 key (config validation checked its form).
    pub(crate) fn new(
        public_key: &str,
        platform: Arc<DiscordPlatform>,
        application_id: u64,
        dispatcher: Dispatcher,
        clock: Clock,
        tasks: Tasks,
    ) -> Result<DiscordEndpoints, String> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(public_key, &mut bytes)
            .map_err(|_| "[discord].public_key is not 64 hex characters")?;
        let verifier = serenity::interactions_endpoint::Verifier::try_new(bytes)
            .map_err(|_| "[discord].public_key is not a valid Ed25519 public key; copy it again from the Developer Portal".to_string())?;
        Ok(DiscordEndpoints {
            verifier: Arc::new(verifier),
            platform,
            application_id,
            dispatcher,
            clock,
            tasks,
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

/// An interaction, typed as far as mentiondesk reads it; absent fields read as empty.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawInteraction {
    #[serde(rename = "type")]
    kind: Option<InteractionType>,
    id: String,
    /// Answers and edits for 15 minutes: a credential.
    token: Secret,
    member: Option<Member>,
    user: Option<User>,
    data: Option<Data>,
    /// The channel the interaction came from (`/desk test` posts there).
    channel_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Member {
    user: Option<User>,
    roles: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct User {
    id: String,
}

/// Command options, a component's custom id, or a modal's rows.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Data {
    options: Option<Vec<CommandOption>>,
    custom_id: Option<String>,
    components: Option<Vec<Row>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CommandOption {
    name: Option<String>,
    /// A string, number or boolean, as the option's type says.
    value: Value,
    options: Option<Vec<CommandOption>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Row {
    components: Option<Vec<Input>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Input {
    custom_id: String,
    value: Option<String>,
}

impl Data {
    /// A modal's text input by custom id, trimmed, `None` when empty.
    fn field(&self, name: &str) -> Option<String> {
        self.components
            .iter()
            .flatten()
            .flat_map(|row| row.components.iter().flatten())
            .find(|c| c.custom_id == name)
            .and_then(|c| c.value.as_deref())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }
}

/// `POST /discord/interactions`.
pub(crate) async fn interactions(
    ep: DiscordEndpoints,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !ep.verify(&headers, &body) {
        tracing::warn!("refused an unverified Discord interaction");
        return (StatusCode::UNAUTHORIZED, "invalid request signature").into_response();
    }
    match serde_json::from_slice::<RawInteraction>(&body) {
        Ok(i) => Json(respond(&ep, i).await).into_response(),
        Err(e) if e.is_data() => {
            (StatusCode::BAD_REQUEST, "body is not a Discord interaction").into_response()
        }
        Err(_) => (StatusCode::BAD_REQUEST, "body is not JSON").into_response(),
    }
}

/// The response to a verified interaction (from HTTP or the gateway); replays are answered
/// but never applied twice.
pub(crate) async fn respond(ep: &DiscordEndpoints, raw: RawInteraction) -> Value {
    let kind = raw.kind.unwrap_or(InteractionType::Unknown(0));
    if kind == InteractionType::Ping {
        return respond_with::pong();
    }
    let token = raw.token.expose().to_string();
    let i = decode(raw, kind);
    if let Some(reply) = ep.dispatcher.admit(&i).await {
        return encode(reply);
    }
    match i.kind {
        Kind::Command { .. } => deferred(ep, token, i).await,
        _ => encode(ep.dispatcher.run(i).await),
    }
}

/// The neutral interaction of a decoded payload.
fn decode(raw: RawInteraction, kind: InteractionType) -> Interaction {
    let (member_user, roles) = match raw.member {
        Some(m) => (m.user, m.roles.unwrap_or_default()),
        None => (None, vec![]),
    };
    let user = member_user.or(raw.user).map(|u| u.id).unwrap_or_default();
    let data = raw.data.unwrap_or_default();
    let custom = data.custom_id.clone().unwrap_or_default();
    // Components and dialogs carry `<what>:<alert id>` as their custom id.
    let (what, alert) = match custom.split_once(':') {
        Some((what, id)) => (what.to_string(), parse_button_id(id)),
        None => (custom.clone(), None),
    };
    let kind = match kind {
        InteractionType::Command => Kind::Command {
            name: None,
            text: command_text(&data),
            platform: "discord",
            channel: raw.channel_id.clone(),
        },
        InteractionType::Component => Kind::Button {
            button: what,
            alert,
        },
        InteractionType::Modal => {
            let dialog = match what.as_str() {
                crate::chat::buttons::RESOLVE => Some(Dialog::Resolve),
                crate::chat::buttons::IGNORE => Some(Dialog::Ignore),
                _ => None,
            };
            let mute = data.field(MUTE_FIELD).unwrap_or_default().to_lowercase();
            Kind::ModalSubmit {
                dialog,
                alert,
                text: dialog.and_then(|d| data.field(d.text_field())),
                mute: Mute {
                    author: dialog == Some(Dialog::Ignore)
                        && (mute.contains("author") || mute == "both"),
                    site: dialog == Some(Dialog::Ignore)
                        && (mute.contains("site") || mute == "both"),
                },
                inline_errors: false,
            }
        }
        _ => Kind::Unsupported,
    };
    Interaction {
        actor: format!("discord:{user}"),
        user,
        groups: roles,
        request_id: format!("discord:interaction:{}", raw.id),
        kind,
    }
}

/// The interaction response for a reply.
fn encode(reply: Reply) -> Value {
    match reply {
        Reply::Private(note) | Reply::Accepted(note) | Reply::Refused { note, .. } => {
            respond_with::answer(&note)
        }
        Reply::Duplicate => respond_with::answer(&Note::new().text("Already done.")),
        Reply::Modal {
            dialog: Dialog::Resolve,
            alert,
            ..
        } => respond_with::resolve_modal(alert),
        Reply::Modal {
            dialog: Dialog::Ignore,
            alert,
            ..
        } => respond_with::ignore_modal(alert),
        Reply::SnoozeChoices(alert) => respond_with::snooze_choices(alert),
        Reply::Defer => respond_with::deferred(),
    }
}

/// Runs an admitted command; answers with its reply if it is ready within a moment, else
/// defers, and tracked work replaces the deferral with the reply when it is.
async fn deferred(ep: &DiscordEndpoints, token: String, i: Interaction) -> Value {
    let (tx, rx) = tokio::sync::oneshot::channel::<Reply>();
    let (platform, dispatcher, app) = (
        ep.platform.clone(),
        ep.dispatcher.clone(),
        ep.application_id,
    );
    ep.tasks.spawn(async move {
        let reply = dispatcher.run(i).await;
        if let Err(reply) = tx.send(reply) {
            let note = match reply {
                Reply::Private(note) | Reply::Accepted(note) | Reply::Refused { note, .. } => note,
                other => {
                    tracing::warn!(reply = ?other, "a deferred Discord answer is not a message");
                    return;
                }
            };
            if let Err(e) = platform.edit_original(app, &token, &note).await {
                tracing::warn!(error = %e, "could not replace a deferred Discord answer");
            }
        }
    });
    match tokio::time::timeout(ANSWER_WAIT, rx).await {
        Ok(Ok(reply)) => encode(reply),
        _ => encode(Reply::Defer),
    }
}

/// Gateway interactions go through the same code; the websocket itself is authenticated.
impl GatewayHandler for DiscordEndpoints {
    fn interaction(&self, interaction: Value) -> BoxFuture<Value> {
        let ep = self.clone();
        Box::pin(async move {
            match serde_json::from_value::<RawInteraction>(interaction) {
                Ok(i) => respond(&ep, i).await,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read a gateway interaction");
                    respond_with::answer(
                        &Note::new().text("This kind of interaction is not used by mentiondesk."),
                    )
                }
            }
        })
    }
}

/// Turns a `/desk` application command's typed options into the text form the desk parses,
/// so Slack and Discord share one parser and one set of answers.
pub(crate) fn command_text(data: &Data) -> String {
    let Some(sub) = data.options.as_ref().and_then(|o| o.first()) else {
        return "help".into();
    };
    let name = sub.name.as_deref().unwrap_or("help");
    let opt = |key: &str| {
        sub.options
            .iter()
            .flatten()
            .find(|o| o.name.as_deref() == Some(key))
            .map(|o| match &o.value {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An interaction token answers and edits for 15 minutes: never in `{:?}` output.
    #[test]
    fn interaction_tokens_never_show_in_debug_output() {
        let raw: RawInteraction = serde_json::from_value(
            json!({"type": 3, "id": "111", "token": "aW50ZXJhY3Rpb24tdG9rZW4", "user": {"id": "42"}}),
        )
        .unwrap();
        let shown = format!("{raw:?}");
        assert!(
            shown.contains("111") && !shown.contains("aW50ZXJhY3Rpb24tdG9rZW4"),
            "{shown}"
        );
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
            let data: Data = serde_json::from_value(data(sub)).unwrap();
            assert_eq!(command_text(&data), want);
        }
    }
}

#[cfg(test)]
mod command_tests {
    /// Discord offers only registered subcommands and choices (Slack sends free text), so a
    /// desk command missing here cannot be typed in Discord at all.
    #[test]
    fn every_desk_subcommand_and_list_filter_is_registered() {
        let json = serde_json::to_value(crate::chat::discord::desk_command("/desk")).unwrap();
        let subs: Vec<&serde_json::Value> = json["options"].as_array().unwrap().iter().collect();
        let names: Vec<&str> = subs.iter().map(|o| o["name"].as_str().unwrap()).collect();
        for sub in crate::desk::command::SUBCOMMANDS {
            assert!(
                names.contains(sub),
                "/desk {sub} is not registered with Discord"
            );
        }
        let list = subs.iter().find(|o| o["name"] == "list").unwrap();
        let choices: Vec<&str> = list["options"][0]["choices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["value"].as_str().unwrap())
            .collect();
        for which in ["open", "mine", "unclaimed", "held"] {
            assert!(choices.contains(&which), "list {which} is not a choice");
        }
    }
}
