//! Slack through slack-morphism: renders an alert as Block Kit, posts it, and finds it again
//! after a crash through its message metadata. It honours 429 `Retry-After` itself. It does
//! not decide what to post or when; the relay does.

use super::escape::{slack_text, slack_url, truncate};
use super::{
    buttons, chart_file_name, AlertView, ChatError, ChatPlatform, Identity, Pauses, Posted, Scope,
    MAX_INLINE_WAIT, MAX_RATE_LIMIT_RETRIES,
};
use crate::model::{AlertId, DigestPost, MessageRef, Note, Part};
use chrono::{DateTime, Utc};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Metadata `event_type` on every alert message; with the alert id in its payload it lets us
/// recognise our own message in channel history.
pub const ALERT_EVENT_TYPE: &str = "mentiondesk_alert";

/// How much channel history `find_alert` reads at most.
const MAX_HISTORY_PAGES: usize = 10;

type Connector = SlackClientHyperConnector<HttpsConnector<HttpConnector>>;

/// Runs one API call (`$call` on a fresh session `$s`). It honours the pause a 429 set for
/// the method (Slack limits each method per workspace, in tiers), waits at most
/// `MAX_INLINE_WAIT` in all, and hands a longer pause back as `RateLimited`.
/// A macro rather than a function because the SDK's futures borrow the session.
macro_rules! slack_call {
    ($self:expr, $method:literal, |$s:ident| $call:expr) => {{
        let mut budget = MAX_INLINE_WAIT;
        let mut attempt = 0u32;
        loop {
            if let Err(e) = $self.pauses.wait_turn("slack", $method, &mut budget).await {
                break Err(e);
            }
            let $s = $self.client.open_session(&$self.token);
            match $call.await {
                Ok(v) => break Ok(v),
                Err(SlackClientError::RateLimitError(e)) => {
                    let wait = e.retry_after.unwrap_or(Duration::from_secs(1));
                    $self.pauses.pause($method, wait);
                    attempt += 1;
                    if attempt > MAX_RATE_LIMIT_RETRIES || wait > budget {
                        break Err(ChatError::RateLimited {
                            platform: "slack",
                            retry_after: wait,
                        });
                    }
                    tracing::warn!(
                        method = $method,
                        wait_secs = wait.as_secs_f64(),
                        attempt,
                        "slack rate limit; waiting as asked"
                    );
                }
                Err(e) => break Err(map_error($method, e)),
            }
        }
    }};
}

pub struct SlackPlatform {
    client: SlackClient<Connector>,
    token: SlackApiToken,
    /// `#name` → channel id, learned from posts and `conversations.list`.
    channel_ids: Mutex<HashMap<String, String>>,
    /// Pauses Slack asked for with 429s, per method.
    pauses: Pauses,
}

impl SlackPlatform {
    /// `api_url` is the Web API base (`https://slack.com/api`); plain `http://` is accepted so
    /// tests and local proxies work.
    pub fn new(api_url: &str, bot_token: &str) -> Result<SlackPlatform, ChatError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| {
                ChatError::Config(format!(
                    "no TLS root certificates for Slack ({e}); install the ca-certificates package"
                ))
            })?
            .https_or_http()
            .enable_http1()
            .build();
        let connector = SlackClientHyperConnector::with_connector(https)
            .with_slack_api_url(api_url.trim_end_matches('/'));
        Ok(SlackPlatform {
            client: SlackClient::new(connector),
            token: SlackApiToken::new(SlackApiTokenValue::new(bot_token.to_string())),
            channel_ids: Mutex::new(HashMap::new()),
            pauses: Pauses::default(),
        })
    }

    /// Channel id for a target channel: ids pass through, `#name` is looked up once.
    async fn channel_id(&self, channel: &str) -> Result<String, ChatError> {
        if is_channel_id(channel) {
            return Ok(channel.to_string());
        }
        let name = channel.trim_start_matches('#');
        if let Some(id) = self.channel_ids.lock().expect("lock").get(name) {
            return Ok(id.clone());
        }
        let mut cursor: Option<SlackCursorId> = None;
        loop {
            let req = SlackApiConversationsListRequest::new()
                .with_limit(1000)
                .with_exclude_archived(true)
                .with_types(vec![
                    SlackConversationType::Public,
                    SlackConversationType::Private,
                ])
                .opt_cursor(cursor.clone());
            let resp: SlackApiConversationsListResponse =
                slack_call!(self, "conversations.list", |s| s.conversations_list(&req))?;
            let mut ids = self.channel_ids.lock().expect("lock");
            for ch in &resp.channels {
                if let Some(n) = &ch.name {
                    ids.insert(n.clone(), ch.id.0.clone());
                }
            }
            if let Some(id) = ids.get(name) {
                return Ok(id.clone());
            }
            drop(ids);
            cursor = resp
                .response_metadata
                .and_then(|m| m.next_cursor)
                .filter(|c| !c.0.is_empty());
            if cursor.is_none() {
                return Err(ChatError::Refused {
                    platform: "slack",
                    scope: Scope::Target,
                    reason: "channel_not_found".into(),
                    call: format!("conversations.list (no channel #{name})"),
                    fix: "create the channel, or for a private one invite the bot to it with /invite @mentiondesk",
                });
            }
        }
    }
}

impl SlackPlatform {
    /// Reads channel history since `since` (a minute of slack for clock skew), newest pages
    /// first, for the first message `wanted` accepts.
    async fn find_in_history(
        &self,
        channel: &str,
        since: DateTime<Utc>,
        wanted: impl Fn(&SlackHistoryMessage) -> bool,
    ) -> Result<Option<Posted>, ChatError> {
        let channel_id = self.channel_id(channel).await?;
        let oldest = format!("{}.000000", since.timestamp().saturating_sub(60));
        let mut cursor: Option<SlackCursorId> = None;
        for _ in 0..MAX_HISTORY_PAGES {
            let req = SlackApiConversationsHistoryRequest::new()
                .with_channel(SlackChannelId(channel_id.clone()))
                .with_oldest(SlackTs(oldest.clone()))
                .with_include_all_metadata(true)
                .with_limit(200)
                .opt_cursor(cursor.clone());
            let resp: SlackApiConversationsHistoryResponse =
                slack_call!(self, "conversations.history", |s| s
                    .conversations_history(&req))?;
            if let Some(m) = resp.messages.iter().find(|m| wanted(m)) {
                return Ok(Some(Posted {
                    channel_id: channel_id.clone(),
                    message_id: m.origin.ts.0.clone(),
                }));
            }
            cursor = resp
                .response_metadata
                .and_then(|m| m.next_cursor)
                .filter(|c| !c.0.is_empty());
            if cursor.is_none() {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Uploads a PNG through Slack's external upload flow (get an upload URL, send the bytes
    /// there, complete the upload into the channel with `blocks` as its message).
    async fn upload_png(
        &self,
        channel_id: &str,
        png: &[u8],
        file_name: String,
        alt: &str,
        title: &str,
        blocks: Vec<SlackBlock>,
    ) -> Result<String, ChatError> {
        let req = SlackApiFilesGetUploadUrlExternalRequest::new(file_name, png.len())
            .with_alt_txt(truncate(alt, 1000));
        let upload: SlackApiFilesGetUploadUrlExternalResponse =
            slack_call!(self, "files.getUploadURLExternal", |s| s
                .get_upload_url_external(&req))?;
        let req = SlackApiFilesUploadViaUrlRequest::new(
            upload.upload_url.clone(),
            png.to_vec(),
            "image/png".into(),
        );
        let _: SlackApiFilesUploadViaUrlResponse =
            slack_call!(self, "files upload", |s| s.files_upload_via_url(&req))?;
        let file =
            SlackApiFilesComplete::new(upload.file_id.clone()).with_title(truncate(title, 250));
        let req = SlackApiFilesCompleteUploadExternalRequest::new(vec![file])
            .with_channel_id(SlackChannelId(channel_id.to_string()))
            .with_blocks(blocks);
        let _: SlackApiFilesCompleteUploadExternalResponse =
            slack_call!(self, "files.completeUploadExternal", |s| s
                .files_complete_upload_external(&req))?;
        Ok(upload.file_id.0)
    }
}

/// Slack-only interactions the HTTP endpoints need: answers through `response_url`,
/// modals, and user-group membership for `[desk].allowed`. Neutral types in, neutral out.
impl SlackPlatform {
    /// The SDK client, for Socket Mode.
    pub(super) fn client(&self) -> &SlackClient<Connector> {
        &self.client
    }

    /// Answers a command or button privately through its `response_url`.
    pub async fn respond(&self, response_url: &str, note: &Note) -> Result<(), ChatError> {
        let url: url::Url = response_url.parse().map_err(|_| ChatError::Api {
            platform: "slack",
            code: "invalid response_url".into(),
            hint: "",
        })?;
        let text = render_note(note);
        let req = SlackApiPostWebhookMessageRequest::new(
            SlackMessageContent::new()
                .with_text(text.clone())
                .with_blocks(vec![SlackSectionBlock::new().with_text(md!(text)).into()]),
        )
        .with_replace_original(false);
        let mut budget = MAX_INLINE_WAIT;
        let mut attempt = 0u32;
        loop {
            self.pauses
                .wait_turn("slack", "response_url", &mut budget)
                .await?;
            match self.client.post_webhook_message(&url, &req).await {
                Ok(_) => return Ok(()),
                Err(SlackClientError::RateLimitError(e)) if attempt < MAX_RATE_LIMIT_RETRIES => {
                    attempt += 1;
                    let wait = e.retry_after.unwrap_or(Duration::from_secs(1));
                    self.pauses.pause("response_url", wait);
                }
                Err(e) => return Err(map_error("response_url", e)),
            }
        }
    }

    /// Answers the Snooze button privately with the three choices.
    pub async fn offer_snooze(&self, response_url: &str, id: AlertId) -> Result<(), ChatError> {
        let url: url::Url = response_url.parse().map_err(|_| ChatError::Api {
            platform: "slack",
            code: "invalid response_url".into(),
            hint: "",
        })?;
        let choice = |label: &str, action: &str| {
            SlackActionBlockElement::Button(
                SlackBlockButtonElement::new(pt!(label))
                    .with_action_id(action.into())
                    .with_value(id.to_string()),
            )
        };
        let text = format!("Snooze #{id} until…");
        let content = SlackMessageContent::new()
            .with_text(text.clone())
            .with_blocks(vec![
                SlackSectionBlock::new().with_text(md!(text)).into(),
                SlackActionsBlock::new(vec![
                    choice("1 hour", "desk_snooze_1h"),
                    choice("4 hours", "desk_snooze_4h"),
                    choice("Tomorrow 9:00", "desk_snooze_tomorrow"),
                ])
                .into(),
            ]);
        let req = SlackApiPostWebhookMessageRequest::new(content).with_replace_original(false);
        self.client
            .post_webhook_message(&url, &req)
            .await
            .map(|_| ())
            .map_err(|e| map_error("response_url", e))
    }

    /// Opens a modal (Block Kit view JSON) for the person who pressed a button.
    pub async fn open_modal(
        &self,
        trigger_id: &str,
        view: serde_json::Value,
    ) -> Result<(), ChatError> {
        let view: SlackView = serde_json::from_value(view)
            .map_err(|e| ChatError::Config(format!("modal view does not match Block Kit: {e}")))?;
        let req = SlackApiViewsOpenRequest::new(SlackTriggerId(trigger_id.to_string()), view);
        let _: SlackApiViewsOpenResponse = slack_call!(self, "views.open", |s| s.views_open(&req))?;
        Ok(())
    }

    /// The members of a user group (`S…`), for `[desk].allowed`.
    pub async fn usergroup_members(&self, group: &str) -> Result<Vec<String>, ChatError> {
        let req = SlackApiUserGroupsUsersListRequest::new(SlackUserGroupId(group.to_string()));
        let resp: SlackApiUserGroupsUsersListResponse =
            slack_call!(self, "usergroups.users.list", |s| s
                .usergroups_users_list(&req))?;
        Ok(resp.users.into_iter().map(|u| u.0).collect())
    }
}

#[async_trait::async_trait]
impl ChatPlatform for SlackPlatform {
    fn name(&self) -> &'static str {
        "slack"
    }

    async fn verify(&self) -> Result<Identity, ChatError> {
        let resp: SlackApiAuthTestResponse = slack_call!(self, "auth.test", |s| s.auth_test())?;
        Ok(Identity {
            name: format!(
                "{} in {}",
                resp.user.as_deref().unwrap_or("the bot"),
                resp.team
            ),
            user_id: resp.user_id.0,
        })
    }

    async fn check_channel(&self, channel: &str) -> Result<(), ChatError> {
        let id = self.channel_id(channel).await?;
        let req = SlackApiConversationsInfoRequest::new(SlackChannelId(id));
        let resp: SlackApiConversationsInfoResponse =
            slack_call!(self, "conversations.info", |s| s.conversations_info(&req))?;
        let refused = |reason: &str| {
            let (scope, fix) = refusal(reason).expect("a known refusal");
            Err(ChatError::Refused {
                platform: "slack",
                scope,
                reason: reason.into(),
                call: format!("conversations.info ({channel})"),
                fix,
            })
        };
        if resp.channel.flags.is_archived == Some(true) {
            return refused("is_archived");
        }
        if resp.channel.flags.is_member == Some(false) {
            return refused("not_in_channel");
        }
        Ok(())
    }

    async fn post_alert(&self, channel: &str, view: &AlertView) -> Result<Posted, ChatError> {
        let content = render_alert(view);
        let req = SlackApiChatPostMessageRequest::new(channel.into(), content)
            .with_unfurl_links(false)
            .with_unfurl_media(false);
        let resp: SlackApiChatPostMessageResponse =
            slack_call!(self, "chat.postMessage", |s| s.chat_post_message(&req))?;
        if !is_channel_id(channel) {
            self.channel_ids.lock().expect("lock").insert(
                channel.trim_start_matches('#').to_string(),
                resp.channel.0.clone(),
            );
        }
        Ok(Posted {
            channel_id: resp.channel.0,
            message_id: resp.ts.0,
        })
    }

    async fn find_alert(
        &self,
        channel: &str,
        id: AlertId,
        since: DateTime<Utc>,
    ) -> Result<Option<Posted>, ChatError> {
        let wanted = id.to_string();
        self.find_in_history(channel, since, |m| {
            m.content.metadata.as_ref().is_some_and(|md| {
                md.event_type == ALERT_EVENT_TYPE
                    && md
                        .event_payload
                        .as_ref()
                        .and_then(|p| p.get("alert_id"))
                        .is_some_and(|v| *v == wanted)
            })
        })
        .await
    }

    async fn update_alert(&self, msg: &MessageRef, view: &AlertView) -> Result<(), ChatError> {
        let req = SlackApiChatUpdateRequest::new(
            SlackChannelId(msg.channel_id.clone()),
            render_alert(view),
            SlackTs(msg.message_id.clone()),
        );
        let _: SlackApiChatUpdateResponse =
            slack_call!(self, "chat.update", |s| s.chat_update(&req))?;
        Ok(())
    }

    async fn post_note(
        &self,
        channel: &str,
        thread: Option<&str>,
        note: &Note,
        delivery: &str,
    ) -> Result<Posted, ChatError> {
        let text = render_note(note);
        let block: SlackBlock = SlackSectionBlock::new()
            .with_text(md!(text.clone()))
            .with_block_id(note_block_id(delivery).into())
            .into();
        let content = SlackMessageContent::new()
            .with_text(text)
            .with_blocks(vec![block]);
        let req = SlackApiChatPostMessageRequest::new(channel.into(), content)
            .opt_thread_ts(thread.map(|t| SlackTs(t.to_string())))
            .with_unfurl_links(false)
            .with_unfurl_media(false);
        let resp: SlackApiChatPostMessageResponse =
            slack_call!(self, "chat.postMessage", |s| s.chat_post_message(&req))?;
        Ok(Posted {
            channel_id: resp.channel.0,
            message_id: resp.ts.0,
        })
    }

    async fn find_note(
        &self,
        channel: &str,
        thread: Option<&str>,
        delivery: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<Posted>, ChatError> {
        let channel_id = self.channel_id(channel).await?;
        let oldest = SlackTs(format!("{}.000000", since.timestamp().saturating_sub(60)));
        let wanted = note_block_id(delivery);
        let has_marker = |blocks: &Option<Vec<SlackBlock>>| has_block_id(blocks, &wanted);
        let messages: Vec<(String, bool)> = match thread {
            Some(ts) => {
                let req = SlackApiConversationsRepliesRequest::new(
                    SlackChannelId(channel_id.clone()),
                    SlackTs(ts.to_string()),
                )
                .with_oldest(oldest)
                .with_limit(200);
                let resp: SlackApiConversationsRepliesResponse =
                    slack_call!(self, "conversations.replies", |s| s
                        .conversations_replies(&req))?;
                resp.messages
                    .iter()
                    .map(|m| (m.origin.ts.0.clone(), has_marker(&m.content.blocks)))
                    .collect()
            }
            None => {
                let req = SlackApiConversationsHistoryRequest::new()
                    .with_channel(SlackChannelId(channel_id.clone()))
                    .with_oldest(oldest)
                    .with_limit(200);
                let resp: SlackApiConversationsHistoryResponse =
                    slack_call!(self, "conversations.history", |s| s
                        .conversations_history(&req))?;
                resp.messages
                    .iter()
                    .map(|m| (m.origin.ts.0.clone(), has_marker(&m.content.blocks)))
                    .collect()
            }
        };
        Ok(messages
            .into_iter()
            .find(|(_, marked)| *marked)
            .map(|(ts, _)| Posted {
                channel_id,
                message_id: ts,
            }))
    }

    async fn post_digest(
        &self,
        channel: &str,
        digest: &DigestPost,
        delivery: &str,
    ) -> Result<Posted, ChatError> {
        let blocks = digest_blocks(digest, delivery);
        if let Some(png) = &digest.chart {
            // The upload needs the channel id, not its name.
            let channel_id = self.channel_id(channel).await?;
            let uploaded = self
                .upload_png(
                    &channel_id,
                    png,
                    chart_file_name(delivery),
                    &digest.chart_alt,
                    &digest.title,
                    blocks.clone(),
                )
                .await;
            match uploaded {
                Ok(file_id) => {
                    return Ok(Posted {
                        channel_id,
                        message_id: file_id,
                    })
                }
                // An app installed before the digest existed lacks files:write: the
                // numbers still go out, without the picture.
                Err(ChatError::Refused { reason: code, .. })
                    if code == "missing_scope" || code == "not_allowed_token_type" =>
                {
                    tracing::warn!(error = %code, "cannot upload the digest chart; add the files:write scope to the Slack app and reinstall it. Posting the digest without it");
                }
                Err(e) => return Err(e),
            }
        }
        {
            let content = SlackMessageContent::new()
                .with_text(slack_text(&digest.title))
                .with_blocks(blocks);
            let req = SlackApiChatPostMessageRequest::new(channel.into(), content)
                .with_unfurl_links(false)
                .with_unfurl_media(false);
            let resp: SlackApiChatPostMessageResponse =
                slack_call!(self, "chat.postMessage", |s| s.chat_post_message(&req))?;
            Ok(Posted {
                channel_id: resp.channel.0,
                message_id: resp.ts.0,
            })
        }
    }

    async fn find_digest(
        &self,
        channel: &str,
        delivery: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<Posted>, ChatError> {
        let marker = note_block_id(delivery);
        let file = chart_file_name(delivery);
        self.find_in_history(channel, since, |m| {
            let marked = has_block_id(&m.content.blocks, &marker);
            let has_file = m
                .content
                .files
                .iter()
                .flatten()
                .any(|f| f.name.as_deref() == Some(file.as_str()));
            marked || has_file
        })
        .await
    }
}

/// Section text is capped at 3,000 characters; the digest is split at line ends below it.
const SECTION_LIMIT: usize = 2900;

/// The digest as section blocks: the title in bold, then the body split into sections at
/// line ends; the first block carries the delivery marker for `find_digest`.
pub fn digest_blocks(digest: &DigestPost, delivery: &str) -> Vec<SlackBlock> {
    let mut chunks: Vec<String> = vec![format!("*{}*", slack_text(&truncate(&digest.title, 150)))];
    for line in render_note(&digest.body).split('\n') {
        let line = truncate(line, SECTION_LIMIT);
        let last = chunks.last_mut().expect("starts with the title");
        if last.len() + line.len() < SECTION_LIMIT {
            last.push('\n');
            last.push_str(&line);
        } else {
            chunks.push(line);
        }
    }
    chunks
        .into_iter()
        .take(45)
        .enumerate()
        .map(|(i, text)| {
            let block = SlackSectionBlock::new().with_text(md!(text));
            let block = if i == 0 {
                block.with_block_id(note_block_id(delivery).into())
            } else {
                block
            };
            block.into()
        })
        .collect()
}

/// Whether one of `blocks` carries `block_id` (our delivery marker).
fn has_block_id(blocks: &Option<Vec<SlackBlock>>, block_id: &str) -> bool {
    blocks.iter().flatten().any(|b| {
        serde_json::to_value(b)
            .ok()
            .is_some_and(|v| v["block_id"] == block_id)
    })
}

/// The `block_id` that marks a note with its delivery id, so it can be found after a crash.
fn note_block_id(delivery: &str) -> String {
    format!("mdnote-{delivery}")
}

/// A note as Slack mrkdwn. Untrusted text is escaped; only `User` of a Slack actor and `Ping`
/// become mentions, on purpose.
pub fn render_note(note: &Note) -> String {
    let mut out = String::new();
    for part in &note.0 {
        match part {
            Part::Text(t) => out.push_str(&slack_text(t)),
            Part::Bold(t) if !t.trim().is_empty() => out.push_str(&format!("*{}*", slack_text(t))),
            Part::Bold(t) => out.push_str(&slack_text(t)),
            Part::Code(t) => out.push_str(&format!("`{}`", slack_text(t))),
            Part::User(u) => out.push_str(&slack_user(u)),
            Part::Ping(p) => out.push_str(&slack_ping(p)),
            Part::Link { url, label } => match slack_url(url) {
                Some(u) => out.push_str(&format!("<{u}|{}>", slack_text(label))),
                None => out.push_str(&slack_text(label)),
            },
            Part::Newline => out.push('\n'),
        }
    }
    out
}

/// `slack:U0123` → `<@U0123>`; anyone else is shown by name, escaped.
pub fn slack_user(actor: &str) -> String {
    match actor.strip_prefix("slack:") {
        Some(id) if is_slack_id(id) => format!("<@{id}>"),
        _ => slack_text(actor.split_once(':').map_or(actor, |x| x.1)),
    }
}

/// A deliberate ping: user group `S…`, channel `C…`/`G…`, user `U…`/`W…`; names stay text.
fn slack_ping(who: &str) -> String {
    let id = who.trim_start_matches('@');
    if is_slack_id(id) {
        match id.as_bytes()[0] {
            b'S' => format!("<!subteam^{id}>"),
            b'C' | b'G' => format!("<#{id}>"),
            _ => format!("<@{id}>"),
        }
    } else {
        slack_text(who)
    }
}

fn is_slack_id(s: &str) -> bool {
    s.len() >= 2
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// `C…`, `G…` and `D…` ids are used as they are; anything else is a channel name.
fn is_channel_id(channel: &str) -> bool {
    channel.len() >= 9
        && matches!(channel.as_bytes()[0], b'C' | b'G' | b'D')
        && channel
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The fix for a refused Slack token; the daemon needs a restart to read a new one.
const TOKEN_FIX: &str = "create a new bot token under OAuth & Permissions (Reinstall to Workspace), set SLACK_BOT_TOKEN ([slack].bot_token) to it and restart mentiondesk";
/// The fix for content Slack refused: nothing a person can change in Slack.
const CONTENT_FIX: &str = "Slack refused this message's content; it stays in the outbox and is sent again after a restart (upgrade mentiondesk first; please report it with the alert id)";

/// Slack error codes that a retry cannot fix: what they stop and what a person must do.
pub fn refusal(code: &str) -> Option<(Scope, &'static str)> {
    let r = match code {
        "invalid_auth" | "not_authed" => (Scope::Platform, TOKEN_FIX),
        "token_revoked" | "token_expired" => (
            Scope::Platform,
            "the Slack bot token was revoked or has expired: reinstall the app under OAuth & Permissions, set SLACK_BOT_TOKEN ([slack].bot_token) to the new xoxb- token and restart mentiondesk",
        ),
        "account_inactive" | "team_disabled" => (
            Scope::Platform,
            "the token belongs to a deactivated user or workspace: reinstall the app from an active account, set SLACK_BOT_TOKEN ([slack].bot_token) to the new token and restart mentiondesk",
        ),
        "not_allowed_token_type" => (
            Scope::Platform,
            "[slack].bot_token must be the app's xoxb- bot token (OAuth & Permissions), not a user or app-level token; set it and restart mentiondesk",
        ),
        "missing_scope" | "no_permission" => (
            Scope::Platform,
            "the app lacks a scope: add the scopes listed in config/slack-app-manifest.yml under OAuth & Permissions, reinstall the app and restart mentiondesk",
        ),
        "channel_not_found" => (
            Scope::Target,
            "check the channel in the alert target (slack:#name or slack:C0123…); for a private channel, invite the bot first with /invite @mentiondesk",
        ),
        "not_in_channel" => (
            Scope::Target,
            "invite the bot to the channel: type /invite @mentiondesk in it",
        ),
        "is_archived" => (
            Scope::Target,
            "the channel is archived: unarchive it, or point the alert target at another channel",
        ),
        "restricted_action"
        | "restricted_action_read_only_channel"
        | "restricted_action_thread_only_channel"
        | "restricted_action_non_threadable_channel" => (
            Scope::Target,
            "a workspace or channel setting stops the bot from posting there: allow apps to post in the channel, or point the alert target elsewhere",
        ),
        "invalid_blocks" | "invalid_blocks_format" | "msg_too_long" | "invalid_arguments"
        | "no_text" | "too_many_attachments" | "invalid_attachments"
        | "invalid_metadata_format" | "invalid_metadata_schema" | "metadata_too_large"
        | "markdown_text_conflict" => (Scope::Message, CONTENT_FIX),
        "message_not_found" | "cant_update_message" | "edit_window_closed" | "thread_not_found" => (
            Scope::Message,
            "the message to edit or reply to is gone from Slack; the alert stays on the desk (`/desk show ID`)",
        ),
        _ => return None,
    };
    Some(r)
}

fn map_error(method: &'static str, e: SlackClientError) -> ChatError {
    match e {
        SlackClientError::ApiError(api) if api.code == "ratelimited" => ChatError::RateLimited {
            platform: "slack",
            retry_after: Duration::from_secs(1),
        },
        SlackClientError::ApiError(api) => match refusal(&api.code) {
            Some((scope, fix)) => ChatError::Refused {
                platform: "slack",
                scope,
                reason: api.code,
                call: method.to_string(),
                fix,
            },
            None => ChatError::Api {
                platform: "slack",
                code: format!("{} from {method}", api.code),
                hint: "",
            },
        },
        SlackClientError::RateLimitError(e) => ChatError::RateLimited {
            platform: "slack",
            retry_after: e.retry_after.unwrap_or(Duration::from_secs(1)),
        },
        SlackClientError::HttpError(e) => ChatError::Network {
            platform: "slack",
            detail: format!("{method} answered HTTP {}", e.status_code.as_u16()),
        },
        other => ChatError::Network {
            platform: "slack",
            detail: format!("{method}: {}", redact_error(&other)),
        },
    }
}

/// Error text from the SDK can echo a request; keep only its first line and never a token.
fn redact_error(e: &SlackClientError) -> String {
    let s = e.to_string();
    let first = s.lines().next().unwrap_or_default();
    if first.contains("xox") {
        "request failed (details withheld: they contained a token)".into()
    } else {
        truncate(first, 300)
    }
}

/// The alert as Slack Block Kit, fallback text and metadata. Every piece of untrusted text goes
/// through `slack_text`, the fallback text included.
pub fn render_alert(view: &AlertView) -> SlackMessageContent {
    let rules = slack_text(&view.rules.join(", "));
    let title = view
        .title
        .as_deref()
        .map(|t| slack_text(&truncate(t, 200)))
        .filter(|t| !t.trim().is_empty());
    let author = view.author.as_deref().map(|a| slack_text(&truncate(a, 80)));
    let excerpt: String = view
        .excerpt
        .iter()
        .map(|(run, hl)| {
            let t = slack_text(run);
            if *hl && !t.trim().is_empty() {
                format!("*{t}*")
            } else {
                t
            }
        })
        .collect();

    let mut head = format!(
        "{} *#{}* · rule *{}* · {} `{}`",
        view.priority_icon(),
        view.id,
        rules,
        slack_text(&view.source),
        slack_text(&view.source_kind),
    );
    if let Some(a) = &author {
        head.push_str(&format!(" · by {a}"));
    }
    let mut body = String::new();
    if let Some(t) = &title {
        match view.url.as_deref().and_then(slack_url) {
            Some(u) => body.push_str(&format!("*<{u}|{t}>*\n")),
            None => body.push_str(&format!("*{t}*\n")),
        }
    }
    body.push_str(&format!("> {excerpt}"));
    if title.is_none() {
        if let Some(u) = view.url.as_deref().and_then(slack_url) {
            body.push_str(&format!("\n<{u}|Open the post>"));
        }
    }
    let facts = format!(
        "Priority *{}* · sentiment {} · id `#{}`",
        view.priority,
        view.sentiment_label(),
        view.id
    );
    let state = view.state_line(slack_user);

    let button = |label: &str, action: &str, style: Option<SlackBlockButtonStyle>| {
        let b = SlackBlockButtonElement::new(pt!(label))
            .with_action_id(action.into())
            .with_value(view.id.to_string())
            .opt_style(style);
        SlackActionBlockElement::Button(b)
    };
    let blocks: Vec<SlackBlock> = vec![
        SlackSectionBlock::new().with_text(md!(head)).into(),
        SlackSectionBlock::new().with_text(md!(body)).into(),
        SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
            SlackBlockMarkDownText::new(facts),
        )])
        .into(),
        SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
            SlackBlockMarkDownText::new(state),
        )])
        .with_block_id(format!("state-{}", view.id).into())
        .into(),
        SlackActionsBlock::new(vec![
            button(
                "Claim",
                buttons::CLAIM,
                Some(SlackBlockButtonStyle::Primary),
            ),
            button("Resolve", buttons::RESOLVE, None),
            button("Snooze", buttons::SNOOZE, None),
            button(
                "Not relevant",
                buttons::IGNORE,
                Some(SlackBlockButtonStyle::Danger),
            ),
        ])
        .with_block_id(format!("actions-{}", view.id).into())
        .into(),
    ];

    let fallback = format!(
        "#{} [{}] {}: {}",
        view.id,
        view.priority,
        rules,
        slack_text(&truncate(&view.excerpt_text(), 150))
    );
    let metadata = SlackMessageMetadata {
        event_type: ALERT_EVENT_TYPE.to_string(),
        event_payload: Some(HashMap::from([(
            "alert_id".to_string(),
            view.id.to_string(),
        )])),
    };
    SlackMessageContent::new()
        .with_text(fallback)
        .with_blocks(blocks)
        .with_metadata(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AlertState, Priority};

    fn view(text: &str) -> AlertView {
        AlertView {
            id: AlertId(7),
            rules: vec!["acme".into()],
            source: "hn".into(),
            source_kind: "rss".into(),
            author: Some("<!everyone>".into()),
            title: Some("*Big* <news>".into()),
            excerpt: vec![(text.into(), false)],
            url: Some("https://x.test/a|<!here>".into()),
            priority: Priority::High,
            sentiment: -0.5,
            negative: true,
            human_negative: None,
            state: AlertState::Open,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn hostile_text_is_escaped_everywhere_including_fallback() {
        let content = render_alert(&view("<!channel> <@U123> &lt;b&gt; *bold*"));
        let json = serde_json::to_string(&content).unwrap();
        for bad in ["<!channel>", "<@U123>", "<!everyone>", "<!here>", "<news>"] {
            assert!(!json.contains(bad), "{bad} leaked into {json}");
        }
        assert!(json.contains("&lt;!channel&gt;"));
        assert!(json.contains("&amp;lt;b&amp;gt;"));
        assert!(content.text.unwrap().contains("&lt;@U123&gt;"));
    }

    #[test]
    fn alert_has_id_buttons_and_metadata() {
        let content = render_alert(&view("acme broke"));
        let json = serde_json::to_value(&content).unwrap();
        let text = json.to_string();
        assert!(text.contains("#7"));
        let actions = json["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "actions")
            .unwrap();
        let labels: Vec<_> = actions["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["text"]["text"].as_str().unwrap(),
                    e["value"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            labels,
            vec![
                ("Claim", "7"),
                ("Resolve", "7"),
                ("Snooze", "7"),
                ("Not relevant", "7")
            ]
        );
        assert_eq!(json["metadata"]["event_type"], ALERT_EVENT_TYPE);
        assert_eq!(json["metadata"]["event_payload"]["alert_id"], "7");
    }

    #[test]
    fn channel_ids_are_recognised() {
        assert!(is_channel_id("C0123ABCD"));
        assert!(!is_channel_id("#pr-alerts"));
        assert!(!is_channel_id("pr-alerts"));
    }
}
