//! Discord through serenity: alerts as an embed with buttons (rendered in `render.rs`), a
//! thread started from each alert for discussion, edits on every state change; interaction
//! response bodies are `interaction.rs`, the gateway `gateway.rs`. Requests are built with
//! serenity's builders and routes and sent through its proxy rewrite to `[discord].api_url`; because
//! serenity's rate limiter cannot be used with a proxy, 429s (per-route and global) are
//! handled here, for every call. Every message parses no mentions (`allowed_mentions`
//! empty), and every post carries a nonce with `enforce_nonce`, so a repeat after a crash
//! returns the first message instead of posting twice.

use super::escape::truncate;
use super::text::{self, Atom, Unit};
use super::{
    chart_file_name, AlertView, ChatError, ChatPlatform, Identity, Pauses, Posted, Scope,
    GLOBAL_FAMILY, MAX_INLINE_WAIT, MAX_RATE_LIMIT_RETRIES,
};
use crate::model::{AlertId, DigestPost, MessageRef, Note, Part};
use chrono::{DateTime, Utc};
use serenity::builder::{
    CreateActionRow, CreateAllowedMentions, CreateAttachment, CreateButton, CreateEmbed,
    CreateEmbedFooter, CreateMessage, EditMessage,
};
use serenity::http::{LightMethod, Multipart, MultipartUpload, Request, Route};
use serenity::model::application::ButtonStyle;
use serenity::model::channel::Nonce;
use serenity::model::id::{ChannelId, MessageId};
use std::time::Duration;

pub(crate) mod gateway;
pub(crate) mod interaction;
mod render;

pub use render::*;

// Discord's limits, all counted in code points (`Unit::Chars`; see there). Sources: the
// OpenAPI spec (discord/discord-api-spec `specs/openapi.json`, excerpt in shared/specs):
// `RichEmbed` title ≤ 256, description ≤ 4,096, url ≤ 2,048, ≤ 25 fields; `RichEmbedField`
// name ≤ 256, value ≤ 1,024; `RichEmbedFooter` text ≤ 2,048; `RichEmbedAuthor` name ≤ 256;
// `TextInputComponentForModalRequest` label ≤ 45, placeholder ≤ 100, custom_id ≤ 100,
// value ≤ 4,000; `ModalInteractionCallbackRequestData` title ≤ 45;
// `ButtonComponentForMessageRequest` label ≤ 80; `CreateTextThreadWithMessageRequest` name
// ≤ 100. Discord's docs (resources/message, "Embed Limits"): the title, description, field
// names and values, footer and author name of a message's embeds hold ≤ 6,000 together;
// "Create Message": content ≤ 2,000 characters, nonce ≤ 25; (interactions/
// message-components) ≤ 5 buttons in an action row, ≤ 5 rows.
pub(crate) const CONTENT_MAX: usize = 2000;
pub(crate) const EMBED_TITLE_MAX: usize = 256;
pub(crate) const EMBED_DESCRIPTION_MAX: usize = 4096;
#[cfg(test)]
pub(crate) const EMBED_FIELD_NAME_MAX: usize = 256;
pub(crate) const EMBED_FIELD_VALUE_MAX: usize = 1024;
#[cfg(test)]
pub(crate) const EMBED_FIELDS_MAX: usize = 25;
#[cfg(test)]
pub(crate) const EMBED_FOOTER_MAX: usize = 2048;
pub(crate) const EMBED_TOTAL_MAX: usize = 6000;
pub(crate) const EMBED_URL_MAX: usize = 2048;
pub(crate) const CUSTOM_ID_MAX: usize = 100;
pub(crate) const BUTTON_LABEL_MAX: usize = 80;
/// Buttons in one action row, and action rows in one message (interactions/
/// message-components).
pub(crate) const ROW_BUTTONS_MAX: usize = 5;
pub(crate) const MODAL_TITLE_MAX: usize = 45;
pub(crate) const TEXT_INPUT_LABEL_MAX: usize = 45;
pub(crate) const TEXT_INPUT_PLACEHOLDER_MAX: usize = 100;
pub(crate) const TEXT_INPUT_VALUE_MAX: usize = 4000;
pub(crate) const THREAD_NAME_MAX: usize = 100;
pub(crate) const NONCE_MAX: usize = 25;
/// An attachment's `description` (alt text) ≤ 1,024.
const ATTACHMENT_DESCRIPTION_MAX: usize = 1024;
/// A name or heading (`Part::Bold`, a display name) is a label: cut at 200 characters.
const NAME_MAX: usize = 200;
/// A link longer than this is not put into a note's text, where it would crowd out the note.
const INLINE_URL_MAX: usize = 1000;
/// How much of the post an alert's embed quotes at most.
const EXCERPT_MAX: usize = 1500;
/// The excerpt keeps at least this much room when a long link joins the description.
const EXCERPT_MIN: usize = 200;
/// One message carries a note in its content and up to three embeds (see `note_pieces`).
const NOTE_PIECES_MAX: usize = 4;

pub struct DiscordPlatform {
    client: reqwest::Client,
    /// `Bot <token>`, as the Authorization header wants it.
    auth: String,
    api_url: String,
    /// Pauses Discord asked for with 429s: per call kind, and global.
    pauses: Pauses,
    /// The bot's user id, once `verify` learned it: `find_note` trusts only its messages.
    user_id: std::sync::OnceLock<String>,
    /// Channel id → its guild id, for message links: learned from the threads started on
    /// alerts (a thread object names its guild), else from `GET /channels/{id}` (an alert
    /// found again after a restart, or one whose thread could not be started).
    guilds: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl DiscordPlatform {
    /// `api_url` is the API origin (`https://discord.com`); `http://` works for tests.
    pub fn new(api_url: &str, bot_token: &str) -> Result<DiscordPlatform, ChatError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ChatError::Config(format!("cannot build the Discord HTTP client: {e}")))?;
        Ok(DiscordPlatform {
            client,
            auth: format!("Bot {}", bot_token.trim_start_matches("Bot ")),
            api_url: api_url.trim_end_matches('/').to_string(),
            pauses: Pauses::default(),
            user_id: std::sync::OnceLock::new(),
            guilds: Default::default(),
        })
    }

    /// Sends one request. It honours the pauses 429s set (per call kind, and Discord's global
    /// limit for every call), waits at most `MAX_INLINE_WAIT` in all, and hands a longer
    /// pause back as `RateLimited`. Refusals a retry cannot fix come back as `Refused`.
    async fn call(
        &self,
        what: &'static str,
        req: Request<'_>,
    ) -> Result<serde_json::Value, ChatError> {
        let mut budget = MAX_INLINE_WAIT;
        let mut attempt = 0;
        loop {
            self.pauses.wait_turn("discord", what, &mut budget).await?;
            let builder = req
                .clone()
                .build(&self.client, &self.auth, Some(&self.api_url))
                .map_err(|e| {
                    ChatError::Config(format!("cannot build the Discord request for {what}: {e}"))
                })?;
            let resp = builder.send().await.map_err(|e| ChatError::Network {
                platform: "discord",
                detail: format!("{what}: {}", e.without_url()),
            })?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
            if status.as_u16() == 429 {
                let retry = body["retry_after"]
                    .as_f64()
                    .or_else(|| {
                        headers
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok()?.parse().ok())
                    })
                    .unwrap_or(1.0);
                let wait = Duration::from_secs_f64(retry.clamp(0.0, 3600.0));
                let global = body["global"].as_bool().unwrap_or(false)
                    || headers.contains_key("x-ratelimit-global");
                self.pauses
                    .pause(if global { GLOBAL_FAMILY } else { what }, wait);
                attempt += 1;
                if attempt > MAX_RATE_LIMIT_RETRIES || wait > budget {
                    return Err(ChatError::RateLimited {
                        platform: "discord",
                        retry_after: wait,
                    });
                }
                tracing::warn!(
                    call = what,
                    wait_secs = wait.as_secs_f64(),
                    global,
                    attempt,
                    "discord rate limit; waiting as asked"
                );
                continue;
            }
            if status.is_server_error() {
                return Err(ChatError::Network {
                    platform: "discord",
                    detail: format!("{what} answered HTTP {}", status.as_u16()),
                });
            }
            if !status.is_success() {
                let code = body["code"].as_u64().unwrap_or(0);
                return Err(discord_error(what, status.as_u16(), code, &body));
            }
            return Ok(body);
        }
    }

    async fn post_message(
        &self,
        channel: u64,
        msg: &CreateMessage,
    ) -> Result<serde_json::Value, ChatError> {
        let body = serde_json::to_vec(msg).map_err(|e| ChatError::Config(e.to_string()))?;
        let req = Request::new(
            Route::ChannelMessages {
                channel_id: ChannelId::new(channel),
            },
            LightMethod::Post,
        )
        .body(Some(body));
        self.call("create message", req).await
    }

    /// Starts the alert's discussion thread; its id is the root message's id.
    async fn start_thread(
        &self,
        channel: u64,
        message: u64,
        view: &AlertView,
    ) -> Result<(), ChatError> {
        let name = truncate(
            &format!("#{} {}", view.id, view.rules.join(", ")),
            THREAD_NAME_MAX,
        );
        let body = serde_json::json!({"name": name, "auto_archive_duration": 10080});
        let req = Request::new(
            Route::ChannelMessageThreads {
                channel_id: ChannelId::new(channel),
                message_id: MessageId::new(message),
            },
            LightMethod::Post,
        )
        .body(Some(body.to_string().into_bytes()));
        let thread = self.call("start thread", req).await?;
        if let Some(guild) = thread["guild_id"].as_str() {
            self.guilds
                .lock()
                .expect("lock")
                .insert(channel.to_string(), guild.to_string());
        }
        Ok(())
    }
}

impl DiscordPlatform {
    /// Makes sure the guild of `channel` is known, for `permalink`: asks Discord for the
    /// channel (View Channel suffices) when no thread has told us. A failure only costs the
    /// link (rounds then name the command), so it is logged, not returned.
    async fn learn_guild(&self, channel: &str) {
        if self.guilds.lock().expect("lock").contains_key(channel) {
            return;
        }
        let Ok(channel_id) = snowflake(channel, "channel") else {
            return;
        };
        let req = Request::new(
            Route::Channel {
                channel_id: ChannelId::new(channel_id),
            },
            LightMethod::Get,
        );
        match self.call("get channel", req).await {
            Ok(c) => {
                if let Some(guild) = c["guild_id"].as_str() {
                    self.guilds
                        .lock()
                        .expect("lock")
                        .insert(channel.to_string(), guild.to_string());
                }
            }
            Err(e) => {
                tracing::warn!(channel, error = %e, "could not read the channel's server; alert links wait for the next alert")
            }
        }
    }

    /// Looks for our message whose embed footer is `footer`, posted since `since`.
    async fn find_by_footer(
        &self,
        channel: &str,
        footer: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<Posted>, ChatError> {
        self.find_message(channel, since, 100, |m| {
            m["embeds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["footer"]["text"] == footer)
        })
        .await
    }

    /// Reads up to `limit` messages of `channel` posted since `since` (a minute of slack)
    /// for the first one `wanted` accepts.
    async fn find_message(
        &self,
        channel: &str,
        since: DateTime<Utc>,
        limit: u32,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<Option<Posted>, ChatError> {
        let channel_id = snowflake(channel, "channel")?;
        // A Discord id encodes its time: ask only for messages after `since` (minus a minute).
        let after = (((since.timestamp_millis() - 60_000).max(1_420_070_400_000)
            - 1_420_070_400_000) as u64)
            << 22;
        let req = Request::new(
            Route::ChannelMessages {
                channel_id: ChannelId::new(channel_id),
            },
            LightMethod::Get,
        )
        .params(Some(vec![
            ("limit", limit.to_string()),
            ("after", after.to_string()),
        ]));
        let messages = self.call("list messages", req).await?;
        Ok(messages
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| wanted(m))
            .map(|m| Posted {
                channel_id: channel.to_string(),
                message_id: id_of(m),
            }))
    }
}

/// Discord-only calls the interactions endpoint needs. Neutral types in, neutral out.
impl DiscordPlatform {
    /// Registers `/desk` with its subcommands and typed options: in one guild (instant) or
    /// globally. Replaces whatever was registered before.
    pub(crate) async fn register_commands(
        &self,
        application_id: u64,
        guild_id: Option<u64>,
        command: &str,
    ) -> Result<(), ChatError> {
        let body = serde_json::to_vec(&vec![desk_command(command)])
            .map_err(|e| ChatError::Config(e.to_string()))?;
        let application_id = serenity::model::id::ApplicationId::new(application_id);
        let route = match guild_id {
            Some(g) => Route::GuildCommands {
                application_id,
                guild_id: serenity::model::id::GuildId::new(g),
            },
            None => Route::Commands { application_id },
        };
        self.call(
            "register commands",
            Request::new(route, LightMethod::Put).body(Some(body)),
        )
        .await
        .map(|_| ())
    }

    /// Answers an interaction that arrived over the gateway (the HTTP endpoint answers in
    /// its response body instead).
    pub(crate) async fn interaction_callback(
        &self,
        id: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> Result<(), ChatError> {
        let req = Request::new(
            Route::InteractionResponse {
                interaction_id: serenity::model::id::InteractionId::new(snowflake(
                    id,
                    "interaction",
                )?),
                token,
            },
            LightMethod::Post,
        )
        .body(Some(body.to_string().into_bytes()));
        self.call("answer interaction", req).await.map(|_| ())
    }

    /// Replaces a deferred interaction answer with the real one.
    pub(crate) async fn edit_original(
        &self,
        application_id: u64,
        token: &str,
        note: &Note,
    ) -> Result<(), ChatError> {
        let body = note_payload(note);
        let req = Request::new(
            Route::WebhookOriginalInteractionResponse {
                application_id: serenity::model::id::ApplicationId::new(application_id),
                token,
            },
            LightMethod::Patch,
        )
        .body(Some(body.to_string().into_bytes()));
        self.call("edit interaction answer", req).await.map(|_| ())
    }
}

/// The `/desk` application command: one subcommand per desk command, with typed options.
pub(crate) fn desk_command(command: &str) -> serenity::builder::CreateCommand {
    use serenity::all::CommandOptionType as T;
    use serenity::builder::{CreateCommand, CreateCommandOption as O};
    let id = || {
        O::new(T::Integer, "id", "Alert number (the # on the alert)")
            .required(true)
            .min_int_value(1)
    };
    let text = |name: &str, what: &str, required: bool| {
        O::new(T::String, name, what)
            .required(required)
            .max_length(500)
    };
    let sub = |name: &str, what: &str| O::new(T::SubCommand, name, what);
    CreateCommand::new(command.trim_start_matches('/'))
        .description("Claim, resolve and list brand mention alerts")
        .add_option(sub("claim", "Take an alert").add_sub_option(id()))
        .add_option(sub("unclaim", "Give an alert back").add_sub_option(id()))
        .add_option(
            sub("resolve", "Close an alert")
                .add_sub_option(id())
                .add_sub_option(text("note", "How it was handled", false)),
        )
        .add_option(sub("reopen", "Open a resolved or ignored alert again").add_sub_option(id()))
        .add_option(
            sub("assign", "Hand an alert to someone")
                .add_sub_option(id())
                .add_sub_option(O::new(T::User, "user", "Who takes it").required(true)),
        )
        .add_option(
            sub("snooze", "Hide an alert for a while")
                .add_sub_option(id())
                .add_sub_option(text("for", "How long: 2h, 30m, or tomorrow", true)),
        )
        .add_option(
            sub("ignore", "Mark an alert not relevant")
                .add_sub_option(id())
                .add_sub_option(text("reason", "Why", false)),
        )
        .add_option(
            sub("note", "Add a note to an alert's thread")
                .add_sub_option(id())
                .add_sub_option(text("text", "The note", true)),
        )
        .add_option(
            sub("list", "List alerts").add_sub_option(
                O::new(T::String, "which", "Which alerts")
                    .add_string_choice("open", "open")
                    .add_string_choice("mine", "mine")
                    .add_string_choice("unclaimed", "unclaimed")
                    .add_string_choice("held", "held"),
            ),
        )
        .add_option(
            sub("promote", "Post an alert the relevance filter held back").add_sub_option(id()),
        )
        .add_option(sub("show", "Details and history of an alert").add_sub_option(id()))
        .add_option(
            sub("stats", "Counts and response times")
                .add_sub_option(text("period", "e.g. 7d", false)),
        )
        .add_option(
            sub("preview", "Try a rule on the last 1,000 mentions").add_sub_option(text(
                "query",
                "The rule query",
                true,
            )),
        )
        .add_option(
            sub("relabel", "The sentiment is wrong: negative ⇄ not negative").add_sub_option(id()),
        )
        .add_option(sub(
            "test",
            "Post a test alert in this channel (not stored, nothing to do)",
        ))
        .add_option(sub("help", "What the desk can do"))
}

/// The fix for a refused Discord token; the daemon needs a restart to read a new one.
const TOKEN_FIX: &str = "the Discord bot token was refused: reset it under Developer Portal → your application → Bot, set DISCORD_BOT_TOKEN ([discord].bot_token) to the new token and restart mentiondesk";
/// The fix for missing channel permissions.
const PERMISSIONS_FIX: &str = "give the bot View Channel, Send Messages, Embed Links, Attach Files, Read Message History, Create Public Threads and Send Messages in Threads in that channel (channel settings → Permissions)";

/// A Discord error answer as a `ChatError`: refusals a retry cannot fix carry their scope
/// and fix; anything else is retried with backoff.
fn discord_error(
    what: &'static str,
    status: u16,
    code: u64,
    body: &serde_json::Value,
) -> ChatError {
    let refused = |scope: Scope, fix: &'static str| ChatError::Refused {
        platform: "discord",
        scope,
        reason: if code == 0 {
            status.to_string()
        } else {
            format!("{status}/{code}")
        },
        call: format!(
            "{what} ({})",
            truncate(body["message"].as_str().unwrap_or("no message"), 200)
        ),
        fix: fix.into(),
    };
    match (status, code) {
        (401, _) => refused(Scope::Platform, TOKEN_FIX),
        (403, _) => refused(Scope::Target, PERMISSIONS_FIX),
        (404, 10008) => refused(
            Scope::Message,
            "the message to edit is gone from Discord; the alert stays on the desk (`/desk show ID`)",
        ),
        (404, 10003 | 10004) => refused(
            Scope::Target,
            "check the channel id in the alert target (discord:<channel id>) and that the bot is in that server",
        ),
        (400, 50008) => refused(
            Scope::Target,
            "the alert target is not a text channel the bot can post in: use a text channel's id",
        ),
        (400, 50035 | 50006 | 50109) => refused(
            Scope::Message,
            "Discord refused this message's content; it stays in the outbox and is sent again after a restart (upgrade mentiondesk first; please report it with the alert id)",
        ),
        _ => ChatError::Api {
            platform: "discord",
            code: format!(
                "{what} answered HTTP {status}: {}",
                truncate(body["message"].as_str().unwrap_or_default(), 200)
            ),
            hint: "",
        },
    }
}

fn snowflake(s: &str, what: &str) -> Result<u64, ChatError> {
    s.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ChatError::Config(format!("{what} {s:?} is not a Discord id")))
}

fn id_of(v: &serde_json::Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

#[async_trait::async_trait]
impl ChatPlatform for DiscordPlatform {
    fn name(&self) -> &'static str {
        "discord"
    }

    async fn verify(&self) -> Result<Identity, ChatError> {
        let me = self
            .call(
                "current user",
                Request::new(Route::UserMe, LightMethod::Get),
            )
            .await?;
        let _ = self.user_id.set(id_of(&me));
        Ok(Identity {
            name: me["username"].as_str().unwrap_or("the bot").to_string(),
            user_id: id_of(&me),
        })
    }

    /// `GET /channels/{id}` needs only View Channel: it proves the channel exists and the bot
    /// sees it, not that it may send messages (that needs the member's roles and overwrites).
    async fn check_channel(&self, channel: &str) -> Result<String, ChatError> {
        let req = Request::new(
            Route::Channel {
                channel_id: ChannelId::new(snowflake(channel, "channel")?),
            },
            LightMethod::Get,
        );
        self.call("get channel", req).await.map(|_| {
            "the bot can see the channel (Send Messages and Embed Links show on the first alert)"
                .into()
        })
    }

    /// `https://discord.com/channels/<guild>/<channel>/<message>`, Discord's message link, once
    /// the channel's guild is known (from the alert's thread or the channel; see `learn_guild`).
    fn permalink(&self, posted: &Posted) -> Option<String> {
        let guilds = self.guilds.lock().expect("lock");
        let guild = guilds.get(&posted.channel_id)?;
        Some(format!(
            "https://discord.com/channels/{guild}/{}/{}",
            posted.channel_id, posted.message_id
        ))
    }

    async fn post_alert(&self, channel: &str, view: &AlertView) -> Result<Posted, ChatError> {
        let channel_id = snowflake(channel, "channel")?;
        let msg = alert_message(view)
            .nonce(Nonce::String(alert_nonce(view.id, channel)))
            .enforce_nonce(true);
        let posted = self.post_message(channel_id, &msg).await?;
        let message_id = id_of(&posted);
        if let Err(e) = self
            .start_thread(channel_id, snowflake(&message_id, "message")?, view)
            .await
        {
            // The alert is posted; notes will try to start the thread again.
            tracing::warn!(alert = %view.id, error = %e, "could not start the alert's thread");
        }
        self.learn_guild(channel).await;
        Ok(Posted {
            channel_id: channel.to_string(),
            message_id,
        })
    }

    async fn find_alert(
        &self,
        channel: &str,
        id: AlertId,
        since: DateTime<Utc>,
    ) -> Result<Option<Posted>, ChatError> {
        let found = self
            .find_by_footer(channel, &alert_footer(id), since)
            .await?;
        if found.is_some() {
            self.learn_guild(channel).await;
        }
        Ok(found)
    }

    async fn update_alert(&self, msg: &MessageRef, view: &AlertView) -> Result<(), ChatError> {
        let edit = EditMessage::new()
            .embed(alert_embed(view))
            .components(alert_buttons(view))
            .allowed_mentions(CreateAllowedMentions::new());
        let body = serde_json::to_vec(&edit).map_err(|e| ChatError::Config(e.to_string()))?;
        let req = Request::new(
            Route::ChannelMessage {
                channel_id: ChannelId::new(snowflake(&msg.channel_id, "channel")?),
                message_id: MessageId::new(snowflake(&msg.message_id, "message")?),
            },
            LightMethod::Patch,
        )
        .body(Some(body));
        self.call("edit message", req).await.map(|_| ())
    }

    async fn post_note(
        &self,
        channel: &str,
        thread: Option<&str>,
        note: &Note,
        delivery: &str,
    ) -> Result<Posted, ChatError> {
        // The marker line lets `find_note` recognise the note after a crash; Discord honours
        // the nonce only for a few minutes.
        let marker = note_marker(delivery);
        let msg = note_message(note, Some(&marker))
            .nonce(Nonce::String(truncate(&format!("mdn{delivery}"), 25)))
            .enforce_nonce(true);
        // A thread started from a message has that message's id.
        let target = snowflake(thread.unwrap_or(channel), "channel")?;
        let posted = match self.post_message(target, &msg).await {
            Err(ChatError::Refused { reason, .. })
                if thread.is_some() && reason.starts_with("404") =>
            {
                // The thread was never started (or was deleted): start it and try once more.
                let root = snowflake(thread.unwrap_or_default(), "message")?;
                let body =
                    serde_json::json!({"name": "discussion", "auto_archive_duration": 10080});
                let req = Request::new(
                    Route::ChannelMessageThreads {
                        channel_id: ChannelId::new(snowflake(channel, "channel")?),
                        message_id: MessageId::new(root),
                    },
                    LightMethod::Post,
                )
                .body(Some(body.to_string().into_bytes()));
                self.call("start thread", req).await?;
                self.post_message(target, &msg).await?
            }
            other => other?,
        };
        Ok(Posted {
            channel_id: target.to_string(),
            message_id: id_of(&posted),
        })
    }

    /// Reads the thread's (or channel's) recent messages for one that ends with the note's
    /// marker line. A thread that does not exist holds no note.
    async fn find_note(
        &self,
        channel: &str,
        thread: Option<&str>,
        delivery: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<Posted>, ChatError> {
        let target = thread.unwrap_or(channel);
        let marker = format!("\n{}", note_marker(delivery));
        let found = self
            .find_message(target, since, 50, |m| {
                // People can type a marker line too: only the bot's own message counts.
                let ours = m["author"]["bot"] == true
                    && self
                        .user_id
                        .get()
                        .is_none_or(|id| m["author"]["id"] == id.as_str());
                ours && last_piece(m).is_some_and(|c| c.ends_with(&marker))
            })
            .await;
        match found {
            Err(ChatError::Refused { reason, .. })
                if thread.is_some() && reason.starts_with("404") =>
            {
                Ok(None)
            }
            other => other,
        }
    }

    async fn post_digest(
        &self,
        channel: &str,
        digest: &DigestPost,
        delivery: &str,
    ) -> Result<Posted, ChatError> {
        let channel_id = snowflake(channel, "channel")?;
        let payload = digest_payload(digest, delivery).to_string();
        let route = Route::ChannelMessages {
            channel_id: ChannelId::new(channel_id),
        };
        let req = match &digest.chart {
            Some(png) => Request::new(route, LightMethod::Post).multipart(Some(Multipart {
                upload: MultipartUpload::Attachments(vec![CreateAttachment::bytes(
                    png.clone(),
                    chart_file_name(delivery),
                )]),
                fields: vec![],
                payload_json: Some(payload),
            })),
            None => Request::new(route, LightMethod::Post).body(Some(payload.into_bytes())),
        };
        let posted = self.call("create digest message", req).await?;
        Ok(Posted {
            channel_id: channel_id.to_string(),
            message_id: id_of(&posted),
        })
    }

    /// The nonce only guards a few minutes, so the digest is looked up by its embed footer.
    async fn find_digest(
        &self,
        channel: &str,
        delivery: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<Posted>, ChatError> {
        self.find_by_footer(channel, &digest_footer(delivery), since)
            .await
    }
}
