//! Slack Socket Mode: receives slash commands and interactions over Slack's websocket
//! (slack-morphism's listener) for teams without a public URL. A command arrives as the SDK's
//! typed event and is handed on as a `SlashCommand`; an interaction is handed on in Slack's
//! JSON shape, what the HTTP endpoint receives, so one decoder serves both. It decides
//! nothing itself.

use super::{map_error, note_content, redact, SlackPlatform};
use crate::chat::{BoxFuture, ChatError};
use crate::model::{Note, Secret};
use serde_json::Value;
use slack_morphism::prelude::*;
use std::sync::Arc;

/// A slash command's fields, from an HTTP form or a Socket Mode event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SlashCommand {
    pub(crate) command: String,
    pub(crate) text: String,
    pub(crate) user_id: String,
    /// Lets anyone answer in the caller's channel for 30 minutes: a credential.
    pub(crate) response_url: Secret,
    pub(crate) trigger_id: String,
    /// The channel the command was typed in (`/desk test` posts there).
    pub(crate) channel_id: String,
}

/// What Socket Mode events are handed to (implemented by the server's Slack endpoints).
pub(crate) trait SocketHandler: Send + Sync + 'static {
    /// A slash command, with its raw form for dedup; returns the private answer if ready.
    fn command(&self, command: SlashCommand, raw: Vec<u8>) -> BoxFuture<Option<Note>>;
    /// An interaction payload; returns a response body when Slack expects one.
    fn interaction(&self, payload: Value, raw: Vec<u8>) -> BoxFuture<Option<Value>>;
}

type Handler = Arc<dyn SocketHandler>;
type Connector = SlackClientHyperConnector<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
>;

/// A running Socket Mode connection; `shutdown` closes it.
pub(crate) struct SocketMode {
    listener: SlackClientSocketModeListener<Connector>,
}

impl SocketMode {
    pub(crate) async fn shutdown(&self) {
        self.listener.shutdown().await;
    }
}

/// The fix for a refused app-level token; the daemon reads the token only at start.
pub(crate) const APP_TOKEN_FIX: &str = "the Slack app-level token ([slack].app_token) was refused: create one with the connections:write scope under Basic Information → App-Level Tokens, set SLACK_APP_TOKEN to the new xapp- token and restart mentiondesk";

impl SlackPlatform {
    /// Checks the app-level token with `apps.connections.open` (the call Socket Mode starts
    /// with). The SDK's listener retries a refused token every few seconds forever, logging
    /// only Slack's error code, so the token is checked here first.
    pub(crate) async fn verify_app_token(&self, app_token: &str) -> Result<(), ChatError> {
        let token = SlackApiToken::new(SlackApiTokenValue::new(app_token.to_string()));
        let req = SlackApiAppsConnectionOpenRequest::new();
        match self
            .client()
            .open_session(&token)
            .apps_connections_open(&req)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(match map_error("apps.connections.open", e) {
                ChatError::Refused {
                    platform,
                    scope,
                    reason,
                    call,
                    ..
                } => ChatError::Refused {
                    platform,
                    scope,
                    reason,
                    call,
                    fix: APP_TOKEN_FIX.into(),
                },
                other => other,
            }),
        }
    }

    /// Opens Socket Mode with the app-level token (`xapp-…`) and starts delivering events.
    pub(crate) async fn socket_mode(
        &self,
        app_token: &str,
        handler: Handler,
    ) -> Result<SocketMode, ChatError> {
        let callbacks = SlackSocketModeListenerCallbacks::new()
            .with_command_events(on_command)
            .with_interaction_events(on_interaction);
        let env = Arc::new(
            SlackClientEventsListenerEnvironment::new(Arc::new(self.client().clone()))
                .with_error_handler(on_error)
                .with_user_state(handler),
        );
        let config = SlackClientSocketModeConfig::new()
            .with_max_connections_count(1)
            .with_initial_backoff_in_seconds(1)
            .with_reconnect_timeout_in_seconds(10);
        let listener = SlackClientSocketModeListener::new(&config, env, callbacks);
        let token = SlackApiToken::new(SlackApiTokenValue::new(app_token.to_string()));
        listener.listen_for(&token).await.map_err(|e| ChatError::Network {
            platform: "slack",
            detail: format!("could not open Socket Mode (check [slack].app_token, an xapp- token with connections:write): {}", redact(&e.to_string())),
        })?;
        listener.start().await;
        tracing::info!("slack socket mode started");
        Ok(SocketMode { listener })
    }
}

async fn handler(states: &SlackClientEventsUserState) -> Option<Handler> {
    states.read().await.get_user_state::<Handler>().cloned()
}

async fn on_command(
    ev: SlackCommandEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let raw = serde_json::to_vec(&ev).unwrap_or_default();
    let command = SlashCommand {
        command: ev.command.0,
        text: ev.text.unwrap_or_default(),
        user_id: ev.user_id.0,
        response_url: Secret::new(ev.response_url.0.to_string()),
        trigger_id: ev.trigger_id.0,
        channel_id: ev.channel_id.0,
    };
    let note = match handler(&states).await {
        Some(h) => h.command(command, raw).await,
        None => None,
    };
    let content = match note {
        Some(n) => note_content(&n, None),
        None => SlackMessageContent::new().with_text("⏳ Working on it…".to_string()),
    };
    Ok(SlackCommandEventResponse::new(content)
        .with_response_type(SlackMessageResponseType::Ephemeral))
}

async fn on_interaction(
    ev: SlackInteractionEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<SlackInteractionResponse> {
    let value = serde_json::to_value(&ev).unwrap_or_default();
    let Some(h) = handler(&states).await else {
        return Ok(SlackInteractionResponse::Empty);
    };
    match h
        .interaction(value.clone(), value.to_string().into_bytes())
        .await
    {
        Some(body) => Ok(serde_json::from_value::<SlackViewSubmissionResponse>(body)
            .map(SlackInteractionResponse::ViewSubmission)
            .unwrap_or(SlackInteractionResponse::Empty)),
        None => Ok(SlackInteractionResponse::Empty),
    }
}

fn on_error(
    err: Box<dyn std::error::Error + Send + Sync>,
    _client: Arc<SlackHyperClient>,
    _states: SlackClientEventsUserState,
) -> HttpStatusCode {
    tracing::warn!(error = %redact(&err.to_string()), "slack socket mode error");
    HttpStatusCode::OK
}
