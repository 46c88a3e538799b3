//! Slack through slack-morphism: posts alerts, notes and digests (rendered as Block Kit in
//! `blocks.rs`), finds them again after a crash through their message metadata, answers
//! through `response_url` and opens the desk's modals (`modals.rs`); Socket Mode is
//! `socket.rs`, refusals and redaction `errors.rs`. It honours 429 `Retry-After` itself. It
//! does not decide what to post or when; the relay and the desk do.

use super::escape::{slack_text, slack_url, truncate};
use super::text::{self, Atom, Unit};
use super::{
    chart_file_name, AlertView, ChatError, ChatPlatform, Identity, Pauses, Posted, Scope,
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

mod blocks;
mod errors;
pub(crate) mod modals;
pub(crate) mod socket;

pub use blocks::*;
pub(crate) use errors::*;

/// Metadata `event_type` on every alert message; with the alert id in its payload it lets us
/// recognise our own message in channel history.
pub(crate) const ALERT_EVENT_TYPE: &str = "mentiondesk_alert";

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
    /// The bot's user name from `auth.test`, for `/invite @name` in fixes.
    bot_name: std::sync::OnceLock<String>,
    /// The workspace's address from `auth.test` (`https://acme.slack.com/`), for permalinks.
    workspace_url: std::sync::OnceLock<String>,
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
            bot_name: std::sync::OnceLock::new(),
            workspace_url: std::sync::OnceLock::new(),
        })
    }

    /// The bot's user name as `auth.test` gave it (the app's default name before that).
    fn bot_name(&self) -> &str {
        self.bot_name.get().map_or("mentiondesk", String::as_str)
    }

    /// Channel id for a target channel: ids pass through, `#name` is looked up once.
    /// Archived channels are included (their names stay taken), so an archived target is
    /// reported as archived rather than as missing.
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
                .with_exclude_archived(false)
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
                    fix: format!("create the channel, or for a private channel invite the bot to it first: /invite @{} in #{name}", self.bot_name()).into(),
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
        // Slack documents this method as POST (docs.slack.dev/reference/methods/
        // files.getUploadURLExternal: "POST", form or JSON body); the SDK's own
        // `get_upload_url_external` sends a GET, so the request goes through its generic POST.
        let upload: SlackApiFilesGetUploadUrlExternalResponse =
            slack_call!(self, "files.getUploadURLExternal", |s| s
                .http_session_api
                .http_post(
                    "files.getUploadURLExternal",
                    &req,
                    Some(&SLACK_TIER4_METHOD_CONFIG)
                ))?;
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
    pub(crate) async fn respond(&self, response_url: &str, note: &Note) -> Result<(), ChatError> {
        let url: url::Url = response_url.parse().map_err(|_| ChatError::Api {
            platform: "slack",
            code: "invalid response_url".into(),
            hint: "",
        })?;
        let req = SlackApiPostWebhookMessageRequest::new(note_content(note, None))
            .with_replace_original(false);
        self.post_to_response_url(&url, &req).await
    }

    /// Posts to a `response_url`, honouring the pause a 429 set for response URLs, as
    /// `slack_call!` does for Web API methods.
    async fn post_to_response_url(
        &self,
        url: &url::Url,
        req: &SlackApiPostWebhookMessageRequest,
    ) -> Result<(), ChatError> {
        let mut budget = MAX_INLINE_WAIT;
        let mut attempt = 0u32;
        loop {
            self.pauses
                .wait_turn("slack", "response_url", &mut budget)
                .await?;
            match self.client.post_webhook_message(url, req).await {
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
    pub(crate) async fn offer_snooze(
        &self,
        response_url: &str,
        id: AlertId,
    ) -> Result<(), ChatError> {
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
        self.post_to_response_url(&url, &req).await
    }

    /// Opens a modal (Block Kit view JSON) for the person who pressed a button.
    pub(crate) async fn open_modal(
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
    pub(crate) async fn usergroup_members(&self, group: &str) -> Result<Vec<String>, ChatError> {
        let req = SlackApiUserGroupsUsersListRequest::new(SlackUserGroupId(group.to_string()));
        let resp: SlackApiUserGroupsUsersListResponse =
            slack_call!(self, "usergroups.users.list", |s| s
                .usergroups_users_list(&req))?;
        Ok(resp.users.into_iter().map(|u| u.0).collect())
    }
}

impl SlackPlatform {
    /// Makes sure the workspace's address is known, for `permalink`: `verify` learns it at
    /// start-up, but when that `auth.test` failed (Slack down for a moment) it is asked again
    /// with the next alert. A failure only costs the link, so it is logged, not returned.
    async fn learn_workspace(&self) {
        if self.workspace_url.get().is_some() {
            return;
        }
        match slack_call!(self, "auth.test", |s| s.auth_test()) {
            Ok(resp) => {
                let resp: SlackApiAuthTestResponse = resp;
                let _ = self.workspace_url.set(resp.url.0.to_string());
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read the workspace's address; alert links wait for the next alert")
            }
        }
    }
}

#[async_trait::async_trait]
impl ChatPlatform for SlackPlatform {
    fn name(&self) -> &'static str {
        "slack"
    }

    async fn verify(&self) -> Result<Identity, ChatError> {
        let resp: SlackApiAuthTestResponse = slack_call!(self, "auth.test", |s| s.auth_test())?;
        if let Some(user) = &resp.user {
            let _ = self.bot_name.set(user.clone());
        }
        let _ = self.workspace_url.set(resp.url.0.to_string());
        Ok(Identity {
            name: format!(
                "{} in {}",
                resp.user.as_deref().unwrap_or("the bot"),
                resp.team
            ),
            user_id: resp.user_id.0,
        })
    }

    async fn check_channel(&self, channel: &str) -> Result<String, ChatError> {
        let id = self.channel_id(channel).await?;
        let req = SlackApiConversationsInfoRequest::new(SlackChannelId(id));
        let call = format!("conversations.info ({channel})");
        let bot = self.bot_name();
        let refused = |reason: &str, fix: String| ChatError::Refused {
            platform: "slack",
            scope: Scope::Target,
            reason: reason.into(),
            call: call.clone(),
            fix: fix.into(),
        };
        let resp: SlackApiConversationsInfoResponse =
            slack_call!(self, "conversations.info", |s| s.conversations_info(&req)).map_err(
                |e| match e {
                    // Slack hides private channels the bot is not in: they are "not found".
                    ChatError::Refused { reason, .. } if reason == "channel_not_found" => refused(
                        "channel_not_found",
                        format!("check the channel in the alert target (slack:#name or slack:C0123…); for a private channel, invite the bot first: /invite @{bot} in it"),
                    ),
                    e => e,
                },
            )?;
        let name = resp
            .channel
            .name
            .as_deref()
            .map_or_else(|| channel.to_string(), |n| format!("#{n}"));
        if resp.channel.flags.is_archived == Some(true) {
            return Err(refused(
                "is_archived",
                format!("{name} is archived: unarchive it, or point the alert target at another channel"),
            ));
        }
        if resp.channel.flags.is_member == Some(false) {
            return Err(refused(
                "not_in_channel",
                format!("invite the bot: /invite @{bot} in {name}"),
            ));
        }
        Ok("the bot can post there".into())
    }

    /// Slack's permalink form, `https://<workspace>.slack.com/archives/<channel>/p<ts without
    /// the dot>` (as `chat.getPermalink` answers), from the workspace address `auth.test` gave.
    fn permalink(&self, posted: &Posted) -> Option<String> {
        let base = self.workspace_url.get()?;
        Some(format!(
            "{}/archives/{}/p{}",
            base.trim_end_matches('/'),
            posted.channel_id,
            posted.message_id.replace('.', "")
        ))
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
        self.learn_workspace().await;
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
        let found = self
            .find_in_history(channel, since, |m| {
                m.content.metadata.as_ref().is_some_and(|md| {
                    md.event_type == ALERT_EVENT_TYPE
                        && md
                            .event_payload
                            .as_ref()
                            .and_then(|p| p.get("alert_id"))
                            .is_some_and(|v| *v == wanted)
                })
            })
            .await?;
        if found.is_some() {
            self.learn_workspace().await;
        }
        Ok(found)
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
        // A long note fills several sections of one message; the first carries the marker.
        let content = note_content(note, Some(note_block_id(delivery)));
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
        let wanted = note_block_id(delivery);
        let Some(ts) = thread else {
            // A channel note (escalation) sits among the channel's own messages: a busy channel
            // can bury it under more than a page of newer ones, so page back to `since`.
            return self
                .find_in_history(channel, since, |m| has_block_id(&m.content.blocks, &wanted))
                .await;
        };
        let channel_id = self.channel_id(channel).await?;
        let oldest = SlackTs(format!("{}.000000", since.timestamp().saturating_sub(60)));
        let req = SlackApiConversationsRepliesRequest::new(
            SlackChannelId(channel_id.clone()),
            SlackTs(ts.to_string()),
        )
        .with_oldest(oldest)
        .with_limit(200);
        let resp: SlackApiConversationsRepliesResponse =
            slack_call!(self, "conversations.replies", |s| s
                .conversations_replies(&req))?;
        Ok(resp
            .messages
            .iter()
            .find(|m| has_block_id(&m.content.blocks, &wanted))
            .map(|m| Posted {
                channel_id,
                message_id: m.origin.ts.0.clone(),
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
