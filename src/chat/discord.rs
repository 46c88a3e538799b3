//! Discord through serenity: alerts as an embed with buttons, a thread started from each
//! alert for discussion, edits on every state change. Requests are built with serenity's
//! builders and routes and sent through its proxy rewrite to `[discord].api_url`; because
//! serenity's rate limiter cannot be used with a proxy, 429s (per-route and global) are
//! handled here, for every call. Every message parses no mentions (`allowed_mentions`
//! empty), and every post carries a nonce with `enforce_nonce`, so a repeat after a crash
//! returns the first message instead of posting twice.

use super::escape::truncate;
use super::text::{self, Atom, Unit};
use super::{
    buttons, chart_file_name, AlertView, ChatError, ChatPlatform, Identity, Pauses, Posted, Scope,
    GLOBAL_FAMILY, MAX_INLINE_WAIT, MAX_RATE_LIMIT_RETRIES,
};
use crate::model::{AlertId, DigestPost, MessageRef, Note, Part, Priority};
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
pub const CONTENT_MAX: usize = 2000;
pub const EMBED_TITLE_MAX: usize = 256;
pub const EMBED_DESCRIPTION_MAX: usize = 4096;
pub const EMBED_FIELD_NAME_MAX: usize = 256;
pub const EMBED_FIELD_VALUE_MAX: usize = 1024;
pub const EMBED_FIELDS_MAX: usize = 25;
pub const EMBED_FOOTER_MAX: usize = 2048;
pub const EMBED_TOTAL_MAX: usize = 6000;
pub const EMBED_URL_MAX: usize = 2048;
pub const CUSTOM_ID_MAX: usize = 100;
pub const BUTTON_LABEL_MAX: usize = 80;
pub const MODAL_TITLE_MAX: usize = 45;
pub const TEXT_INPUT_LABEL_MAX: usize = 45;
pub const TEXT_INPUT_PLACEHOLDER_MAX: usize = 100;
pub const TEXT_INPUT_VALUE_MAX: usize = 4000;
pub const THREAD_NAME_MAX: usize = 100;
pub const NONCE_MAX: usize = 25;
/// An attachment's `description` (alt text) ≤ 1,024.
const ATTACHMENT_DESCRIPTION_MAX: usize = 1024;
/// An author name: the author field of an embed is held to the embed author limit, 256.
const AUTHOR_FIELD_MAX: usize = 256;
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
        self.call("start thread", req).await.map(|_| ())
    }
}

impl DiscordPlatform {
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
    pub async fn register_commands(
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
    pub async fn interaction_callback(
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
    pub async fn edit_original(
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
pub fn desk_command(command: &str) -> serenity::builder::CreateCommand {
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
                    .add_string_choice("unclaimed", "unclaimed"),
            ),
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
        self.find_by_footer(channel, &alert_footer(id), since).await
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

/// The last line of every note: Discord shows `-#` as small grey subtext. `find_note`
/// recognises a note by it; text from outside cannot start a line with it (see
/// `discord_text`).
fn note_marker(delivery: &str) -> String {
    format!("-# md:{delivery}")
}

/// The footer that names a digest delivery; `find_digest` recognises it.
fn digest_footer(delivery: &str) -> String {
    format!("mentiondesk {delivery}")
}

/// The footer that names the alert; `find_alert` recognises our message by it.
/// The nonce of an alert's root message. Discord dedups a nonce per author, not per channel
/// ("if another message was created by the same author with the same nonce, that message
/// will be returned"), so it names the channel too (as a hash: nonces are ≤ 25 characters);
/// it stays the same for every retry of one delivery.
fn alert_nonce(id: AlertId, channel: &str) -> String {
    let hash = channel.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    truncate(&format!("mda{id}-{hash:08x}"), NONCE_MAX)
}

fn alert_footer(id: AlertId) -> String {
    format!("mentiondesk alert #{id}")
}

/// Discord markdown: a backslash before every character that formats, quotes, masks a link
/// or mentions (`\ * _ ~ ` | > < @ [ ]`, and `#` or `-` where a line could start), so
/// untrusted text shows as written. Line breaks become spaces.
pub fn discord_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for (i, c) in s.chars().enumerate() {
        escape_char(&mut out, c, i == 0);
    }
    out
}

fn escape_char(out: &mut String, c: char, line_start: bool) {
    match c {
        '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '<' | '[' | ']' | '@' => {
            out.push('\\');
            out.push(c);
        }
        '#' | '-' if line_start => {
            out.push('\\');
            out.push(c);
        }
        '\r' | '\n' | '\t' => out.push(' '),
        c if c.is_control() => {}
        c => out.push(c),
    }
}

/// The atoms of untrusted text: one escaped grapheme each; `#`/`-` are escaped at the start.
fn text_atoms(s: &str, wrap: &'static str) -> Vec<Atom> {
    use unicode_segmentation::UnicodeSegmentation;
    s.graphemes(true)
        .enumerate()
        .map(|(i, g)| {
            let mut out = String::new();
            for (j, c) in g.chars().enumerate() {
                escape_char(&mut out, c, i == 0 && j == 0);
            }
            Atom { text: out, wrap }
        })
        .filter(|a| !a.text.is_empty())
        .collect()
}

/// A piece that would start a line with `#` or `-` (a heading or list in Discord markdown
/// once it stands at the start of a message) gets a backslash; pieces are packed one
/// character short so it still fits.
fn guard_start(piece: String) -> String {
    if piece.starts_with(['#', '-']) {
        format!("\\{piece}")
    } else {
        piece
    }
}

fn discord_user(actor: &str) -> String {
    match actor.strip_prefix("discord:") {
        Some(id) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => format!("<@{id}>"),
        _ => discord_text(&truncate(
            actor.split_once(':').map_or(actor, |x| x.1),
            NAME_MAX,
        )),
    }
}

/// A URL for a masked link or the embed: only http(s), and without the characters that would
/// end the link early.
fn link_url(url: &str) -> Option<String> {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return None;
    }
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            // Characters that end a masked link early or that markdown could read, and those
            // RFC 3986 does not allow unencoded anyway.
            '<' | '>' | '(' | ')' | ' ' | '`' | '[' | ']' | '\\' | '"' | '|' | '^' | '{' | '}' => {
                out.push_str(&format!("%{:02X}", c as u32))
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

/// The atoms of a note: escaped graphemes, and mentions and links whole.
fn note_atoms(note: &Note) -> Vec<Atom> {
    let mut out = Vec::new();
    for part in &note.0 {
        match part {
            Part::Text(t) => out.extend(text_atoms(t, "")),
            Part::Bold(t) => out.extend(text_atoms(&truncate(t, NAME_MAX), "**")),
            Part::Code(t) => out.extend(text::atoms(t, "`", |g| {
                g.chars()
                    .map(|c| match c {
                        '`' => 'ˋ',
                        '\r' | '\n' | '\t' => ' ',
                        c => c,
                    })
                    .filter(|c| !c.is_control())
                    .collect()
            })),
            Part::User(u) => out.push(Atom::plain(discord_user(u))),
            Part::Ping(p) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => {
                out.push(Atom::plain(format!("<#{p}>")))
            }
            Part::Ping(p) => out.extend(text_atoms(&truncate(p, NAME_MAX), "")),
            Part::Link { url, label } => match link_url(url) {
                Some(u) if u.chars().count() <= INLINE_URL_MAX => out.push(Atom::plain(format!(
                    "[{}](<{u}>)",
                    discord_text(&truncate(label, NAME_MAX))
                ))),
                _ => out.extend(text_atoms(&truncate(label, NAME_MAX), "")),
            },
            Part::Newline => out.push(Atom::plain("\n")),
        }
    }
    out
}

/// A note as Discord markdown, at most 2,000 characters (cut with "…").
pub fn render_note(note: &Note) -> String {
    render_note_within(note, CONTENT_MAX)
}

/// A note as Discord markdown, at most `limit` characters (cut with "…").
pub fn render_note_within(note: &Note, limit: usize) -> String {
    guard_start(text::fit(
        &note_atoms(note),
        limit.saturating_sub(1),
        Unit::Chars,
    ))
}

/// A note split for one message: the content (≤ 2,000) and, for a longer note, up to three
/// embed descriptions of ≤ 2,000 each (≤ 6,000 for the message's embeds together), so the
/// note stays one message (one nonce, found as one) and up to 8,000 characters arrive whole;
/// anything longer ends in "…".
pub fn note_pieces(note: &Note) -> (String, Vec<String>) {
    note_pieces_within(note, CONTENT_MAX)
}

/// `note_pieces` with the content held to `content_max` (room left for a marker line).
fn note_pieces_within(note: &Note, content_max: usize) -> (String, Vec<String>) {
    let mut pieces = text::pack(
        &note_atoms(note),
        content_max - 1,
        NOTE_PIECES_MAX,
        Unit::Chars,
    )
    .pieces
    .into_iter()
    .map(guard_start);
    let content = pieces.next().unwrap_or_default();
    (content, pieces.collect())
}

/// A note as a message body (`content`, `embeds`, no mentions parsed), for interaction
/// answers and edits.
pub fn note_payload(note: &Note) -> serde_json::Value {
    let (content, more) = note_pieces(note);
    let embeds: Vec<serde_json::Value> = more
        .into_iter()
        .map(|d| serde_json::json!({ "description": d }))
        .collect();
    serde_json::json!({
        "content": content,
        "embeds": embeds,
        "allowed_mentions": { "parse": [] },
    })
}

/// A note as a message to post, with its embeds for a long note, and `marker` as the last
/// line of its last piece (the content, or the last embed of a long note), where `find_note`
/// looks for it. Every piece leaves room for the marker, so the note's text is never split
/// by it.
fn note_message(note: &Note, marker: Option<&str>) -> CreateMessage {
    let room = marker.map_or(0, |m| m.chars().count() + 1);
    let (mut content, mut more) = note_pieces_within(note, CONTENT_MAX - room);
    if let Some(marker) = marker {
        let last = more.last_mut().unwrap_or(&mut content);
        last.push('\n');
        last.push_str(marker);
    }
    CreateMessage::new()
        .content(content)
        .embeds(
            more.into_iter()
                .map(|d| CreateEmbed::new().description(d))
                .collect(),
        )
        .allowed_mentions(CreateAllowedMentions::new())
}

/// The text of a posted message's last piece: its last embed's description for a long note,
/// else its content.
fn last_piece(m: &serde_json::Value) -> Option<&str> {
    match m["embeds"].as_array().and_then(|e| e.last()) {
        Some(embed) => embed["description"].as_str(),
        None => m["content"].as_str(),
    }
}

/// The digest as `payload_json`: one embed with the chart as its image, no mentions parsed,
/// and a nonce so a repeat after a crash returns the first message.
pub fn digest_payload(digest: &DigestPost, delivery: &str) -> serde_json::Value {
    let file = chart_file_name(delivery);
    let footer = digest_footer(delivery);
    let title = truncate(&digest.title, EMBED_TITLE_MAX);
    let room = EMBED_TOTAL_MAX - title.chars().count() - footer.chars().count();
    let mut embed = serde_json::json!({
        "title": title,
        "description": render_note_within(&digest.body, EMBED_DESCRIPTION_MAX.min(room)),
        "color": 0x3498db,
        "footer": { "text": footer },
    });
    let mut attachments = Vec::new();
    if digest.chart.is_some() {
        embed["image"] = serde_json::json!({ "url": format!("attachment://{file}") });
        attachments.push(serde_json::json!({
            "id": 0,
            "filename": file,
            "description": truncate(&digest.chart_alt, ATTACHMENT_DESCRIPTION_MAX),
        }));
    }
    serde_json::json!({
        "embeds": [embed],
        "attachments": attachments,
        "allowed_mentions": { "parse": [] },
        "nonce": truncate(&format!("mdd{delivery}"), NONCE_MAX),
        "enforce_nonce": true,
    })
}

fn colour(p: Priority) -> u32 {
    match p {
        Priority::Low => 0x95a5a6,
        Priority::Normal => 0x3498db,
        Priority::High => 0xe67e22,
        Priority::Critical => 0xe74c3c,
    }
}

/// Escaped untrusted text cut to `max` characters without splitting an escape; never empty
/// (Discord refuses an empty field value).
fn field_text(s: &str, max: usize) -> String {
    let t = text::fit(&text_atoms(s, ""), max, Unit::Chars);
    if t.trim().is_empty() {
        "—".to_string()
    } else {
        t
    }
}

/// The alert's embed, within every embed limit: title, description, fields, footer and the
/// 6,000 characters they may hold together (the excerpt gives way first). A link Discord
/// would refuse as the embed `url` (over 2,048 characters, or not a valid http(s) URL) is
/// put into the description as a masked link instead, or shown as text where even that
/// cannot fit, so people can still reach the post.
fn alert_embed(view: &AlertView) -> CreateEmbed {
    let title_text = view
        .title
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .map(|t| t.to_string())
        .unwrap_or_else(|| format!("Mention matching {}", view.rules.join(", ")));
    let mut title_atoms = vec![Atom::plain(format!(
        "{} #{} · ",
        view.priority_icon(),
        view.id
    ))];
    title_atoms.extend(text_atoms(&title_text, ""));
    let title = text::fit(&title_atoms, EMBED_TITLE_MAX, Unit::Chars);

    let mut fields: Vec<(&str, String, bool)> = vec![
        (
            "Rule",
            field_text(&view.rules.join(", "), EMBED_FIELD_VALUE_MAX),
            true,
        ),
        (
            "Source",
            field_text(
                &format!("{} ({})", view.source, view.source_kind),
                EMBED_FIELD_VALUE_MAX,
            ),
            true,
        ),
        ("Priority", view.priority.as_str().to_string(), true),
        ("Sentiment", view.sentiment_label(), true),
        (
            "State",
            truncate(
                &view.state_line(discord_user, discord_text),
                EMBED_FIELD_VALUE_MAX,
            ),
            false,
        ),
    ];
    if let Some(a) = view.author.as_deref().filter(|a| !a.trim().is_empty()) {
        fields.push(("Author", field_text(a, AUTHOR_FIELD_MAX), true));
    }
    let footer = alert_footer(view.id);

    let url = view.url.as_deref().and_then(link_url);
    let embed_url = url.clone().filter(|u| {
        u.chars().count() <= EMBED_URL_MAX && url::Url::parse(u).is_ok_and(|p| p.has_host())
    });
    let used = title.chars().count()
        + footer.chars().count()
        + fields
            .iter()
            .map(|(n, v, _)| n.chars().count() + v.chars().count())
            .sum::<usize>();
    let room = EMBED_DESCRIPTION_MAX.min(EMBED_TOTAL_MAX.saturating_sub(used));
    let link_line = match (&url, &embed_url) {
        (Some(u), None) => {
            let masked = format!("\n\n🔗 [Open the post]({u})");
            if masked.chars().count() + EXCERPT_MIN <= room {
                Some(masked)
            } else {
                let mut a = vec![Atom::plain("\n\n🔗 Link too long for Discord: ")];
                a.extend(text_atoms(view.url.as_deref().unwrap_or_default(), ""));
                Some(text::fit(&a, room / 2, Unit::Chars))
            }
        }
        _ => None,
    };
    let link_len = link_line.as_deref().map_or(0, |l| l.chars().count());
    let excerpt_atoms: Vec<Atom> = view
        .excerpt
        .iter()
        .flat_map(|(run, hl)| text_atoms(run, if *hl { "**" } else { "" }))
        .collect();
    let mut description = text::fit(
        &excerpt_atoms,
        EXCERPT_MAX.min(room.saturating_sub(link_len)),
        Unit::Chars,
    );
    description.push_str(link_line.as_deref().unwrap_or_default());
    if description.trim().is_empty() {
        description = "—".into();
    }

    let mut embed = CreateEmbed::new()
        .title(title)
        .description(description)
        .colour(colour(view.priority))
        .footer(CreateEmbedFooter::new(footer));
    for (name, value, inline) in fields {
        embed = embed.field(name, value, inline);
    }
    if let Some(u) = embed_url {
        embed = embed.url(u);
    }
    if let Ok(ts) = serenity::model::Timestamp::from_unix_timestamp(view.created_at.timestamp()) {
        embed = embed.timestamp(ts);
    }
    embed
}

fn alert_buttons(view: &AlertView) -> Vec<CreateActionRow> {
    let b = |prefix: &str, label: &str, style: ButtonStyle| {
        CreateButton::new(format!("{prefix}:{}", view.id))
            .label(label)
            .style(style)
    };
    vec![CreateActionRow::Buttons(vec![
        b(buttons::CLAIM, "Claim", ButtonStyle::Primary),
        b(buttons::RESOLVE, "Resolve", ButtonStyle::Success),
        b(buttons::SNOOZE, "Snooze", ButtonStyle::Secondary),
        b(buttons::IGNORE, "Not relevant", ButtonStyle::Danger),
    ])]
}

/// The alert as a message: embed, buttons, and no mentions parsed.
pub fn alert_message(view: &AlertView) -> CreateMessage {
    CreateMessage::new()
        .embed(alert_embed(view))
        .components(alert_buttons(view))
        .allowed_mentions(CreateAllowedMentions::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AlertState;

    fn view() -> AlertView {
        AlertView {
            id: AlertId(9),
            rules: vec!["acme".into()],
            source: "hn".into(),
            source_kind: "rss".into(),
            author: Some("@everyone".into()),
            title: Some("x".repeat(400)),
            excerpt: vec![
                ("<@123> **bold** @here".into(), false),
                ("acme".into(), true),
            ],
            url: Some("https://example.com/p".into()),
            priority: Priority::High,
            sentiment: -0.4,
            negative: true,
            human_negative: None,
            state: AlertState::Open,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn alert_message_has_embed_buttons_and_no_mentions() {
        let v = serde_json::to_value(alert_message(&view())).unwrap();
        assert_eq!(v["allowed_mentions"]["parse"], serde_json::json!([]));
        let embed = &v["embeds"][0];
        assert!(
            embed["title"].as_str().unwrap().chars().count() <= EMBED_TITLE_MAX,
            "title truncated"
        );
        assert_eq!(
            embed["url"], "https://example.com/p",
            "the link survives truncation"
        );
        assert_eq!(embed["footer"]["text"], "mentiondesk alert #9");
        let desc = embed["description"].as_str().unwrap();
        assert!(
            desc.contains("\\<\\@123\\>")
                && desc.contains("\\*\\*bold\\*\\*")
                && desc.ends_with("**acme**"),
            "{desc}"
        );
        let ids: Vec<&str> = v["components"][0]["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["custom_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            vec![
                "desk_claim:9",
                "desk_resolve:9",
                "desk_snooze:9",
                "desk_ignore:9"
            ]
        );
    }

    /// Every `@` in rendered text is escaped (an odd number of backslashes before it), inside
    /// an inline code span, or our own mention of user 42.
    fn assert_no_ping(text: &str) {
        let chars: Vec<char> = text.chars().collect();
        let escaped =
            |i: usize| chars[..i].iter().rev().take_while(|c| **c == '\\').count() % 2 == 1;
        let mut in_code = false;
        let mut in_url = false;
        for (i, c) in chars.iter().enumerate() {
            // The target of a masked link `[label](url)` is an address, not text.
            if !in_code && *c == '(' && i > 0 && chars[i - 1] == ']' && !escaped(i - 1) {
                in_url = true;
            }
            if in_url {
                in_url = *c != ')';
                continue;
            }
            if *c == '`' && !escaped(i) {
                in_code = !in_code;
            }
            if *c != '@' || in_code || escaped(i) {
                continue;
            }
            let ours = i > 0 && chars[i - 1] == '<' && chars[i + 1..].starts_with(&['4', '2', '>']);
            assert!(
                ours,
                "unescaped @ at {i}: {:?}",
                chars[i.saturating_sub(40)..(i + 20).min(chars.len())]
                    .iter()
                    .collect::<String>()
            );
        }
    }

    fn count(v: &serde_json::Value) -> usize {
        v.as_str().map_or(0, |s| s.chars().count())
    }

    /// Checks one message body against Discord's limits; returns its embeds' total.
    fn assert_within_limits(msg: &serde_json::Value) {
        assert_eq!(
            msg["allowed_mentions"]["parse"],
            serde_json::json!([]),
            "{msg}"
        );
        assert!(count(&msg["content"]) <= CONTENT_MAX);
        assert_no_ping(msg["content"].as_str().unwrap_or_default());
        let embeds = msg["embeds"].as_array().cloned().unwrap_or_default();
        assert!(embeds.len() <= 10);
        let mut total = 0;
        for e in &embeds {
            assert!(count(&e["title"]) <= EMBED_TITLE_MAX);
            assert!(count(&e["description"]) <= EMBED_DESCRIPTION_MAX);
            assert!(count(&e["footer"]["text"]) <= EMBED_FOOTER_MAX);
            assert!(
                count(&e["url"]) <= EMBED_URL_MAX,
                "url {}",
                count(&e["url"])
            );
            if let Some(u) = e["url"].as_str() {
                assert!(url::Url::parse(u).is_ok(), "{u}");
            }
            let fields = e["fields"].as_array().cloned().unwrap_or_default();
            assert!(fields.len() <= EMBED_FIELDS_MAX);
            total += count(&e["title"]) + count(&e["description"]) + count(&e["footer"]["text"]);
            for f in &fields {
                assert!((1..=EMBED_FIELD_NAME_MAX).contains(&count(&f["name"])));
                assert!(
                    (1..=EMBED_FIELD_VALUE_MAX).contains(&count(&f["value"])),
                    "{f}"
                );
                total += count(&f["name"]) + count(&f["value"]);
                assert_no_ping(f["value"].as_str().unwrap());
            }
            assert_no_ping(e["description"].as_str().unwrap_or_default());
            assert_no_ping(e["title"].as_str().unwrap_or_default());
        }
        assert!(total <= EMBED_TOTAL_MAX, "embeds hold {total}");
        let rows = msg["components"].as_array().cloned().unwrap_or_default();
        assert!(rows.len() <= 5);
        for r in rows {
            let items = r["components"].as_array().unwrap();
            assert!(items.len() <= 5);
            for b in items {
                assert!(count(&b["custom_id"]) <= CUSTOM_ID_MAX);
                assert!(count(&b["label"]) <= BUTTON_LABEL_MAX);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        #[test]
        fn every_alert_fits_discord_and_pings_nobody(v in text::testgen::view()) {
            let msg = serde_json::to_value(alert_message(&v)).unwrap();
            assert_within_limits(&msg);
            let edit = EditMessage::new()
                .embed(alert_embed(&v))
                .components(alert_buttons(&v))
                .allowed_mentions(CreateAllowedMentions::new());
            assert_within_limits(&serde_json::to_value(edit).unwrap());
            let name = truncate(&format!("#{} {}", v.id, v.rules.join(", ")), THREAD_NAME_MAX);
            assert!((1..=THREAD_NAME_MAX).contains(&name.chars().count()));
        }

        #[test]
        fn every_note_fits_one_discord_message(n in text::testgen::note()) {
            let msg = serde_json::to_value(note_message(&n, None)).unwrap();
            assert_within_limits(&msg);
            // With the crash-recovery marker: still within limits, and the marker is the
            // last line of the last piece, where `find_note` looks.
            let marker = note_marker("12345-67890");
            let marked = serde_json::to_value(note_message(&n, Some(&marker))).unwrap();
            assert_within_limits(&marked);
            let last = last_piece(&marked).unwrap();
            assert!(last.ends_with(&format!("\n{marker}")));
            assert_eq!(marked.to_string().matches(&marker).count(), 1);
            let payload = note_payload(&n);
            assert_within_limits(&payload);
            let (content, more) = note_pieces(&n);
            assert!(more.len() < NOTE_PIECES_MAX);
            let whole = text::render(&note_atoms(&n));
            let last = more.last().unwrap_or(&content);
            if !last.ends_with(text::ELLIPSIS) {
                let squash = |s: &str| s.chars()
                    .filter(|c| !c.is_whitespace() && *c != '*' && *c != '`' && *c != '\\')
                    .collect::<String>();
                assert_eq!(squash(&format!("{content}{}", more.concat())), squash(&whole));
            }
        }
    }

    #[test]
    fn a_3000_character_link_moves_from_the_embed_url_into_the_description() {
        let mut v = view();
        let long = format!("https://feed.example/item?{}", "q=1&".repeat(750));
        v.url = Some(long.clone());
        let msg = serde_json::to_value(alert_message(&v)).unwrap();
        assert_within_limits(&msg);
        let embed = &msg["embeds"][0];
        assert!(
            embed["url"].is_null(),
            "a url over 2,048 is refused by Discord"
        );
        let desc = embed["description"].as_str().unwrap();
        assert!(desc.contains(&format!("[Open the post]({long})")), "{desc}");
    }

    #[test]
    fn a_long_note_continues_in_embeds_of_the_same_message() {
        let n = Note::new()
            .text("📝 ")
            .user("discord:42")
            .text(": ")
            .text("word ".repeat(598));
        let (content, more) = note_pieces(&n);
        assert!(content.chars().count() <= CONTENT_MAX);
        assert_eq!(more.len(), 1);
        assert_eq!(
            format!("{content} {}", more[0]).matches("word").count(),
            598
        );
    }

    #[test]
    fn notes_escape_text_and_fit_the_limit() {
        let n = Note::new()
            .text("@everyone *x* ")
            .user("discord:42")
            .text(" ")
            .user("slack:U1")
            .text("y".repeat(3000));
        let r = render_note(&n);
        assert!(r.starts_with("\\@everyone \\*x\\* <@42> U1"), "{r}");
        assert!(r.chars().count() <= CONTENT_MAX);
    }
}
