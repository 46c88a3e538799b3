//! Discord's gateway as the way interactions arrive when the bot has no public URL
//! (`[discord].gateway = true`): serenity's client keeps the websocket (through the same
//! `api_url` proxy for `GET /gateway/bot`), and each INTERACTION_CREATE is handed to a
//! `GatewayHandler` as Discord's JSON, exactly what the HTTP endpoint would have received;
//! its answer is sent to the interaction callback. It decides nothing itself.

use super::DiscordPlatform;
use crate::chat::{BoxFuture, ChatError};
use serde_json::Value;
use serenity::all::{Context, EventHandler, GatewayIntents, Interaction, Ready};
use serenity::http::HttpBuilder;
use std::sync::Arc;

/// What gateway interactions are handed to (implemented by the server's Discord endpoints).
pub(crate) trait GatewayHandler: Send + Sync + 'static {
    /// Discord's interaction JSON in, the interaction response body out.
    fn interaction(&self, interaction: Value) -> BoxFuture<Value>;
}

struct Events {
    handler: Arc<dyn GatewayHandler>,
    platform: Arc<DiscordPlatform>,
}

#[serenity::async_trait]
impl EventHandler for Events {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        tracing::info!(user = %ready.user.name, "discord gateway connected");
    }

    async fn interaction_create(&self, _ctx: Context, interaction: Interaction) {
        let mut raw = match serde_json::to_value(&interaction) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "could not read a gateway interaction");
                return;
            }
        };
        // serenity keeps the interaction type in the enum, not in the serialised struct.
        raw["type"] = u8::from(interaction.kind()).into();
        let id = raw["id"].as_str().unwrap_or_default().to_string();
        let token = raw["token"].as_str().unwrap_or_default().to_string();
        let answer = self.handler.interaction(raw).await;
        if let Err(e) = self
            .platform
            .interaction_callback(&id, &token, &answer)
            .await
        {
            tracing::warn!(error = %e, "could not answer a gateway interaction");
        }
    }
}

/// A running gateway connection; dropping or `shutdown` closes it.
pub(crate) struct Gateway {
    shards: Arc<serenity::gateway::ShardManager>,
    task: tokio::task::JoinHandle<()>,
}

impl Gateway {
    pub(crate) async fn shutdown(self) {
        self.shards.shutdown_all().await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.task).await;
    }
}

/// Connects to the gateway; interactions need no privileged intents.
pub(crate) async fn start(
    api_url: &str,
    bot_token: &str,
    platform: Arc<DiscordPlatform>,
    handler: Arc<dyn GatewayHandler>,
) -> Result<Gateway, ChatError> {
    let http = HttpBuilder::new(bot_token)
        .proxy(api_url.trim_end_matches('/'))
        .ratelimiter_disabled(true)
        .build();
    let mut client = serenity::client::ClientBuilder::new_with_http(http, GatewayIntents::GUILDS)
        .event_handler(Events { handler, platform })
        .await
        .map_err(|e| ChatError::Config(format!("cannot start the Discord gateway client: {e}")))?;
    let shards = client.shard_manager.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = client.start().await {
            tracing::error!(error = %e, "discord gateway stopped");
        }
    });
    Ok(Gateway { shards, task })
}
