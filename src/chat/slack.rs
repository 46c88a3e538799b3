//! Slack through slack-morphism: renders an alert as Block Kit, posts it, and finds it again
//! after a crash through its message metadata. It honours 429 `Retry-After` itself. It does
//! not decide what to post or when; the relay does.

use super::escape::{slack_text, slack_url, truncate};
use super::text::{self, Atom, Unit};
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
    /// The bot's user name from `auth.test`, for `/invite @name` in fixes.
    bot_name: std::sync::OnceLock<String>,
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
    pub async fn respond(&self, response_url: &str, note: &Note) -> Result<(), ChatError> {
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
        self.post_to_response_url(&url, &req).await
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
        if let Some(user) = &resp.user {
            let _ = self.bot_name.set(user.clone());
        }
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

/// Block Kit and Web API limits, as Slack documents them (docs.slack.dev/reference/…):
/// section block `text` ≤ 3,000 characters (block-kit/blocks/section-block); a context
/// block's text element is a text object, ≤ 3,000 (block-kit/composition-objects/text-object)
/// and ≤ 10 elements (block-kit/blocks/context-block).
pub const SECTION_TEXT_MAX: usize = 3000;
/// ≤ 50 blocks in a message, 100 in a modal (block-kit/blocks).
pub const MESSAGE_BLOCKS_MAX: usize = 50;
/// `block_id` and `action_id` ≤ 255 characters, unique in a message; "if a message is updated,
/// use a new block_id" (block-kit/blocks, "block_id").
pub const BLOCK_ID_MAX: usize = 255;
/// chat.postMessage: Slack truncates message `text` past 40,000 characters (methods/
/// chat.postMessage, "Truncating content"); the fallback `text` we send is a summary well
/// below that, and below the 4,000 characters Slack recommends per message.
pub const FALLBACK_TEXT_MAX: usize = 3000;
/// Modal `title`, `submit` and `close` ≤ 24 characters (views/modal-views).
pub const MODAL_TITLE_MAX: usize = 24;
/// `plain_text_input` `max_length` must be 1..=3,000 (block-kit/block-elements/
/// plain-text-input-element).
pub const INPUT_MAX_LENGTH_MAX: usize = 3000;
/// Sections one message carries at most. Slack also refuses a message whose blocks hold
/// about 13,000 characters in all (`msg_blocks_too_long`, slackapi/bolt-js#2509), far below
/// 50 × 3,000, so a note fills at most four full sections (12,000).
const NOTE_SECTIONS_MAX: usize = 4;
/// A name or heading (`Part::Bold`, someone's display name) is cut at this many characters:
/// it is a label, and a 3,000-character "author name" is noise, not content.
const NAME_MAX: usize = 200;
/// A link whose URL is longer than this is not put inside a sentence or title, where it
/// would crowd out the text within the section limit; it gets a section of its own.
const INLINE_URL_MAX: usize = 1000;

/// How Slack's limits are counted here (see `Unit::Utf16`).
const UNIT: Unit = Unit::Utf16;

/// mrkdwn for one block, built from atoms so it can be cut or split without breaking an
/// escape, a mention or a link.
#[derive(Default)]
struct Mrkdwn(Vec<Atom>);

impl Mrkdwn {
    /// Our own text and markup; never cut inside.
    fn ours(mut self, s: &str) -> Mrkdwn {
        self.0.push(Atom::plain(s));
        self
    }
    fn atom(mut self, a: Atom) -> Mrkdwn {
        self.0.push(a);
        self
    }
    /// Untrusted text, escaped, at most `max` characters.
    fn text(self, s: &str, max: usize) -> Mrkdwn {
        self.styled(s, max, "")
    }
    fn styled(mut self, s: &str, max: usize, wrap: &'static str) -> Mrkdwn {
        let s = text::truncate(s, max, Unit::Chars);
        self.0.extend(text::atoms(&s, wrap, slack_text));
        self
    }
    fn fit(&self, max: usize) -> String {
        text::fit(&self.0, max, UNIT)
    }
}

/// The digest as section blocks: the title in bold, then the body split into sections,
/// preferably at line ends; the first block carries the delivery marker for `find_digest`.
pub fn digest_blocks(digest: &DigestPost, delivery: &str) -> Vec<SlackBlock> {
    let mut atoms = Mrkdwn::default()
        .styled(&digest.title, NAME_MAX, "*")
        .ours("\n")
        .0;
    atoms.extend(note_atoms(&digest.body));
    text::pack(&atoms, SECTION_TEXT_MAX, NOTE_SECTIONS_MAX, UNIT)
        .pieces
        .into_iter()
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
    text::truncate(&format!("mdnote-{delivery}"), BLOCK_ID_MAX, Unit::Chars)
}

/// A `block_id` that is new on every render (Slack asks for new ones when a message is
/// updated), starting with `prefix` so tests and people can still recognise the block.
fn fresh_block_id(prefix: &str) -> String {
    format!("{prefix}-{:08x}", fastrand::u32(..))
}

/// A note as Slack mrkdwn, whole. Untrusted text is escaped; only `User` of a Slack actor
/// and `Ping` become mentions, on purpose. What is sent is cut to Slack's limits by
/// [`note_sections`].
pub fn render_note(note: &Note) -> String {
    text::render(&note_atoms(note))
}

/// A note as the texts of at most `max_sections` section blocks, each within Slack's limit;
/// text that does not fit ends in "…".
pub fn note_sections(note: &Note, max_sections: usize) -> Vec<String> {
    text::pack(&note_atoms(note), SECTION_TEXT_MAX, max_sections, UNIT).pieces
}

/// A note as a whole message: up to four sections and a fallback `text` for notifications,
/// the first section marked with `block_id` when given.
pub fn note_content(note: &Note, block_id: Option<String>) -> SlackMessageContent {
    let atoms = note_atoms(note);
    let sections = text::pack(&atoms, SECTION_TEXT_MAX, NOTE_SECTIONS_MAX, UNIT).pieces;
    let blocks: Vec<SlackBlock> = sections
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let block = SlackSectionBlock::new().with_text(md!(s));
            match (&block_id, i) {
                (Some(id), 0) => block.with_block_id(id.clone().into()).into(),
                _ => block.into(),
            }
        })
        .collect();
    SlackMessageContent::new()
        .with_text(text::fit(&atoms, FALLBACK_TEXT_MAX, UNIT))
        .with_blocks(blocks)
}

/// The private answer to a slash command as the HTTP response body.
pub fn ephemeral_answer(note: &Note) -> serde_json::Value {
    let mut v = serde_json::to_value(note_content(note, None)).unwrap_or_default();
    v["response_type"] = "ephemeral".into();
    v
}

/// The atoms of a note: escaped graphemes, and mentions and links whole.
fn note_atoms(note: &Note) -> Vec<Atom> {
    let mut out = Mrkdwn::default();
    for part in &note.0 {
        out = match part {
            Part::Text(t) => out.text(t, usize::MAX),
            Part::Bold(t) => out.styled(t, NAME_MAX, "*"),
            Part::Code(t) => out.styled(t, usize::MAX, "`"),
            Part::User(u) => match slack_user_id(u) {
                Some(id) => out.ours(&format!("<@{id}>")),
                None => out.text(actor_name(u), NAME_MAX),
            },
            Part::Ping(p) => match slack_ping(p) {
                Some(ping) => out.ours(&ping),
                None => out.text(p, NAME_MAX),
            },
            Part::Link { url, label } => match slack_url(url) {
                Some(u) if UNIT.len(&u) <= INLINE_URL_MAX => {
                    let label = slack_text(&text::truncate(label, NAME_MAX, Unit::Chars));
                    out.ours(&format!("<{u}|{label}>"))
                }
                // Too long to link inside a sentence: the label, and the address as text.
                Some(_) => out
                    .text(label, NAME_MAX)
                    .ours(" (")
                    .text(url, INLINE_URL_MAX)
                    .ours(")"),
                None => out.text(label, NAME_MAX),
            },
            Part::Newline => out.ours("\n"),
        };
    }
    out.0
}

/// The Slack user id of a `slack:U…` actor.
fn slack_user_id(actor: &str) -> Option<&str> {
    actor.strip_prefix("slack:").filter(|id| is_slack_id(id))
}

/// An actor's name without its platform prefix.
fn actor_name(actor: &str) -> &str {
    actor.split_once(':').map_or(actor, |x| x.1)
}

/// `slack:U0123` → `<@U0123>`; anyone else is shown by name, escaped.
pub fn slack_user(actor: &str) -> String {
    match slack_user_id(actor) {
        Some(id) => format!("<@{id}>"),
        None => slack_text(&text::truncate(actor_name(actor), NAME_MAX, Unit::Chars)),
    }
}

/// A deliberate ping: user group `S…`, channel `C…`/`G…`, user `U…`/`W…`; names stay text.
fn slack_ping(who: &str) -> Option<String> {
    let id = who.trim_start_matches('@');
    is_slack_id(id).then(|| match id.as_bytes()[0] {
        b'S' => format!("<!subteam^{id}>"),
        b'C' | b'G' => format!("<#{id}>"),
        _ => format!("<@{id}>"),
    })
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

/// Error codes in which Slack reports trouble on its side (methods' "Errors" tables:
/// `internal_error`, `fatal_error`, `service_unavailable`, `request_timeout`): the platform
/// is held on the outage backoff like a 5xx, instead of each entry retrying on its own.
fn transient(code: &str) -> bool {
    matches!(
        code,
        "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout"
    )
}

pub(super) fn map_error(method: &'static str, e: SlackClientError) -> ChatError {
    match e {
        SlackClientError::ApiError(api) if api.code == "ratelimited" => ChatError::RateLimited {
            platform: "slack",
            retry_after: Duration::from_secs(1),
        },
        // Slack's own trouble, answered with HTTP 200: an outage, not a refusal.
        SlackClientError::ApiError(api) if transient(&api.code) => ChatError::Network {
            platform: "slack",
            detail: format!("{method} answered {}", api.code),
        },
        SlackClientError::ApiError(api) => match refusal(&api.code) {
            Some((scope, fix)) => ChatError::Refused {
                platform: "slack",
                scope,
                reason: api.code,
                call: method.to_string(),
                fix: fix.into(),
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
    redact(&e.to_string())
}

/// The first line of an error text, cut to 300 characters, with every URL (a `response_url`
/// is a secret: anyone holding it can post) and every Slack token (`xox?-…`, `xapp-…`)
/// replaced by a placeholder.
pub fn redact(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    let mut out = String::with_capacity(first.len());
    let mut rest = first;
    while !rest.is_empty() {
        let lower = rest.to_ascii_lowercase();
        let url = ["http://", "https://"]
            .iter()
            .filter_map(|p| lower.find(p))
            .min();
        let token = secret_token_start(&lower);
        let (start, what) = match (url, token) {
            (Some(u), Some(t)) if t < u => (t, "[token]"),
            (Some(u), _) => (u, "[url]"),
            (None, Some(t)) => (t, "[token]"),
            (None, None) => {
                out.push_str(rest);
                break;
            }
        };
        out.push_str(&rest[..start]);
        out.push_str(what);
        let tail = &rest[start..];
        // A URL or token runs to the next whitespace or closing quote/bracket.
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>' | ']'))
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    truncate(&out, 300)
}

/// Where the first Slack token (`xoxb-`, `xoxp-`, `xoxe.xoxp-`, … or `xapp-`) starts.
fn secret_token_start(lower: &str) -> Option<usize> {
    let b = lower.as_bytes();
    (0..b.len()).find(|&i| {
        let t = &b[i..];
        (t.len() > 5
            && t.starts_with(b"xox")
            && t[3].is_ascii_alphabetic()
            && matches!(t[4], b'-' | b'.'))
            || t.starts_with(b"xapp-")
    })
}

/// The alert as Slack Block Kit, fallback text and metadata. Every piece of untrusted text goes
/// through `slack_text`, the fallback text included, and every text is cut to its block's
/// limit at grapheme boundaries. Block ids are new on every render (Slack wants new ones on
/// `chat.update`) and keep their `state-`/`actions-` prefixes.
pub fn render_alert(view: &AlertView) -> SlackMessageContent {
    let rules = view.rules.join(", ");
    let mut head = Mrkdwn::default()
        .ours(&format!("{} *#{}* · rule ", view.priority_icon(), view.id))
        .styled(&rules, 300, "*")
        .ours(" · ")
        .text(&view.source, 200)
        .ours(" ")
        .styled(&view.source_kind, 50, "`");
    if let Some(a) = view.author.as_deref().filter(|a| !a.trim().is_empty()) {
        head = head.ours(" · by ").text(a, 80);
    }

    let url = view.url.as_deref().and_then(slack_url);
    let inline_url = url.as_deref().filter(|u| UNIT.len(u) <= INLINE_URL_MAX);
    let title = view
        .title
        .as_deref()
        .map(|t| text::truncate(t, 200, Unit::Chars))
        .filter(|t| !t.trim().is_empty());
    let mut body = Mrkdwn::default();
    if let Some(t) = &title {
        body = match inline_url {
            Some(u) => body.atom(Atom {
                text: format!("<{u}|{}>", slack_text(t)),
                wrap: "*",
            }),
            None => body.styled(t, 200, "*"),
        }
        .ours("\n");
    }
    body = body.ours("> ");
    for (run, hl) in &view.excerpt {
        body = body.styled(run, usize::MAX, if *hl { "*" } else { "" });
    }
    if title.is_none() {
        if let Some(u) = inline_url {
            body = body.ours(&format!("\n<{u}|Open the post>"));
        }
    }
    // A long address gets a section of its own: linked while it fits, else shown as text
    // (cut visibly) so people can still see where the post is.
    let long_link = match (&url, inline_url) {
        (Some(u), None) if UNIT.len(u) + 20 <= SECTION_TEXT_MAX => {
            Some(format!("🔗 <{u}|Open the post>"))
        }
        (Some(_), None) => Some(
            Mrkdwn::default()
                .ours("🔗 Link too long for Slack: ")
                .text(view.url.as_deref().unwrap_or_default(), usize::MAX)
                .fit(SECTION_TEXT_MAX),
        ),
        _ => None,
    };

    let facts = format!(
        "Priority *{}* · sentiment {} · id `#{}`",
        view.priority,
        view.sentiment_label(),
        view.id
    );
    let state = view.state_line(slack_user, slack_text);

    let button = |label: &str, action: &str, style: Option<SlackBlockButtonStyle>| {
        let b = SlackBlockButtonElement::new(pt!(label))
            .with_action_id(action.into())
            .with_value(view.id.to_string())
            .opt_style(style);
        SlackActionBlockElement::Button(b)
    };
    // The facts and the state line are bounded by construction (a quoted note is at most
    // STATE_NOTE_CHARS characters, a name NAME_MAX, so at most about 2,100 units once
    // escaped); the cut is a last guard that never applies in practice.
    let context = |text: String| {
        SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
            SlackBlockMarkDownText::new(text::truncate(&text, SECTION_TEXT_MAX, UNIT)),
        )])
    };
    let mut blocks: Vec<SlackBlock> = vec![
        SlackSectionBlock::new()
            .with_text(md!(head.fit(SECTION_TEXT_MAX)))
            .into(),
        SlackSectionBlock::new()
            .with_text(md!(body.fit(SECTION_TEXT_MAX)))
            .into(),
    ];
    if let Some(link) = long_link {
        blocks.push(SlackSectionBlock::new().with_text(md!(link)).into());
    }
    blocks.extend([
        context(facts).into(),
        context(state)
            .with_block_id(fresh_block_id(&format!("state-{}", view.id)).into())
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
        .with_block_id(fresh_block_id(&format!("actions-{}", view.id)).into())
        .into(),
    ]);

    let fallback = Mrkdwn::default()
        .ours(&format!("#{} [{}] ", view.id, view.priority))
        .text(&rules, 300)
        .ours(": ")
        .text(&view.excerpt_text(), 150)
        .fit(FALLBACK_TEXT_MAX);
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

    /// Every `&` starts an entity and every `<` one of our own mentions or links: nothing
    /// from untrusted text can ping or link.
    fn assert_safe(text: &str) {
        let mut rest = text;
        while let Some(i) = rest.find(['&', '<', '>']) {
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix('&') {
                assert!(
                    ["&amp;", "&lt;", "&gt;"]
                        .iter()
                        .any(|e| tail.starts_with(e)),
                    "bare & in {}",
                    text.chars().take(300).collect::<String>()
                );
                rest = after;
                continue;
            }
            let line_start = i == 0
                && (rest.len() == text.len() || text[..text.len() - rest.len()].ends_with('\n'))
                || rest[..i].ends_with('\n');
            if tail.starts_with("> ") && line_start {
                rest = &tail[1..];
                continue;
            }
            assert!(
                tail.starts_with('<'),
                "bare > in {}",
                text.chars().take(300).collect::<String>()
            );
            let end = tail.find('>').expect("unclosed <");
            let inner = &tail[1..end];
            assert!(
                inner == "@U0OK" || inner.starts_with("http"),
                "untrusted <{}>",
                inner.chars().take(300).collect::<String>()
            );
            assert!(!inner.contains('<'));
            rest = &tail[end + 1..];
        }
    }

    /// Checks one message against Slack's Block Kit and message limits.
    fn assert_within_limits(content: &SlackMessageContent) {
        let v = serde_json::to_value(content).unwrap();
        let blocks = v["blocks"].as_array().cloned().unwrap_or_default();
        assert!(blocks.len() <= MESSAGE_BLOCKS_MAX);
        let len16 = |s: &str| s.encode_utf16().count();
        let text = v["text"].as_str().unwrap_or_default();
        assert!(len16(text) <= FALLBACK_TEXT_MAX, "fallback {}", len16(text));
        assert_safe(text);
        let mut block_ids = std::collections::HashSet::new();
        let mut action_ids = std::collections::HashSet::new();
        let mut total = 0;
        for b in &blocks {
            if let Some(id) = b["block_id"].as_str() {
                assert!(id.chars().count() <= BLOCK_ID_MAX);
                assert!(block_ids.insert(id.to_string()), "duplicate block_id {id}");
            }
            let mut texts = vec![];
            if let Some(t) = b["text"]["text"].as_str() {
                texts.push(t);
            }
            let elements = b["elements"].as_array().cloned().unwrap_or_default();
            if b["type"] == "context" {
                assert!(elements.len() <= 10);
            }
            for e in &elements {
                if b["type"] == "context" {
                    texts.push(e["text"].as_str().unwrap());
                }
                if e["type"] == "button" {
                    assert!(e["text"]["text"].as_str().unwrap().chars().count() <= 75);
                    assert!(e["value"].as_str().unwrap().chars().count() <= 2000);
                    let id = e["action_id"].as_str().unwrap();
                    assert!(id.len() <= BLOCK_ID_MAX && action_ids.insert(id.to_string()));
                }
            }
            for t in texts {
                assert!(len16(t) <= SECTION_TEXT_MAX, "block text {} long", len16(t));
                assert!(!t.trim().is_empty(), "empty block text");
                assert_safe(t);
                total += len16(t);
            }
        }
        assert!(total <= 12_100, "blocks hold {total} characters");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        #[test]
        fn every_alert_fits_slack_and_escapes_untrusted_text(v in text::testgen::view()) {
            let content = render_alert(&v);
            assert_within_limits(&content);
            // Updates get new block ids every time.
            let ids = |c: &SlackMessageContent| serde_json::to_value(c).unwrap()["blocks"]
                .as_array().unwrap().iter()
                .filter_map(|b| b["block_id"].as_str().map(str::to_string))
                .collect::<Vec<_>>();
            let again = render_alert(&v);
            assert!(ids(&content).iter().all(|id| !ids(&again).contains(id)));
        }

        #[test]
        fn every_note_fits_slack_and_loses_nothing_that_fits(n in text::testgen::note()) {
            let content = note_content(&n, Some(note_block_id("7-1")));
            assert_within_limits(&content);
            let v = serde_json::to_value(&content).unwrap();
            let blocks = v["blocks"].as_array().unwrap();
            assert_eq!(blocks[0]["block_id"], "mdnote-7-1");
            let sections: Vec<&str> =
                blocks.iter().map(|b| b["text"]["text"].as_str().unwrap()).collect();
            let whole = render_note(&n);
            let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace() && *c != '*' && *c != '`').collect::<String>();
            if !sections.last().unwrap().ends_with(text::ELLIPSIS) {
                assert_eq!(squash(&sections.concat()), squash(&whole));
            }
        }
    }

    fn long_note(len: usize) -> Note {
        Note::new()
            .text("📝 ")
            .user("slack:U0OK")
            .text(": ")
            .text("a & b ".repeat(len / 6))
    }

    #[test]
    fn a_desk_note_of_2990_characters_is_posted_whole_over_two_sections() {
        let n = long_note(2990);
        let content = note_content(&n, Some(note_block_id("1-2")));
        assert_within_limits(&content);
        let v = serde_json::to_value(&content).unwrap();
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 2, "{v}");
        let all: String = blocks
            .iter()
            .map(|b| b["text"]["text"].as_str().unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(all.matches("a &amp; b").count(), 2990 / 6);
        assert!(!all.contains('…'));
    }

    #[test]
    fn a_huge_author_name_is_cut_in_a_repeat_note() {
        let n = Note::new()
            .text("🔁 Another mention by ")
            .bold("N".repeat(3000))
            .text(" on news: “acme again”");
        let content = note_content(&n, None);
        assert_within_limits(&content);
        let v = serde_json::to_value(&content).unwrap();
        let text = v["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(v["blocks"].as_array().unwrap().len(), 1);
        assert!(
            text.contains(&format!("*{}…*", "N".repeat(NAME_MAX - 1))),
            "{text}"
        );
        assert!(text.ends_with("on news: “acme again”"));
    }

    #[test]
    fn a_long_resolve_note_shows_an_excerpt_on_the_root() {
        let mut v = view("acme broke");
        v.state = AlertState::Resolved {
            by: "slack:U0OK".into(),
            at: Utc::now(),
            note: Some("<!channel> fixed & ".repeat(200)),
        };
        let content = render_alert(&v);
        assert_within_limits(&content);
        let json = serde_json::to_value(&content).unwrap();
        let state = json["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["block_id"].as_str().unwrap_or("").starts_with("state-7-"))
            .unwrap()["elements"][0]["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(state.starts_with("✅ Resolved by <@U0OK> — \"&lt;!channel&gt; fixed &amp;"));
        assert!(state.ends_with("…\" (all of it in the thread)"), "{state}");
    }

    #[test]
    fn a_very_long_link_gets_its_own_section_or_is_shown_as_text() {
        let mut v = view("acme broke");
        v.url = Some(format!("https://feed.example/{}", "a".repeat(2500)));
        let json = serde_json::to_value(render_alert(&v)).unwrap();
        assert!(json.to_string().contains("🔗 <https://feed.example/aaa"));
        v.url = Some(format!("https://feed.example/{}", "a".repeat(5000)));
        let content = render_alert(&v);
        assert_within_limits(&content);
        let json = serde_json::to_value(content).unwrap().to_string();
        assert!(json.contains("Link too long for Slack: https://feed.example/aaa"));
    }

    #[test]
    fn redaction_removes_every_token_and_url() {
        for (text, secret) in [
            ("error sending request: xoxb-1234-5678-abcdEFGH failed", "xoxb-1234"),
            ("token xoxp-99-88-77 refused", "xoxp-99"),
            ("refresh xoxe.xoxp-1-Mi0yLTE2 expired", "xoxp-1-Mi0"),
            ("socket: xapp-1-A0123-456-deadbeef was refused", "xapp-1-A0123"),
            (
                "error sending request for url (https://hooks.slack.com/actions/T0/1234/Zsecret): connection refused",
                "hooks.slack.com",
            ),
            (
                "POST HTTP://127.0.0.1:9/response/abc?x=1 failed",
                "127.0.0.1",
            ),
        ] {
            let r = redact(text);
            assert!(!r.contains(secret), "{secret} left in {r}");
            assert!(!r.contains("http") && !r.contains("xox") && !r.contains("xapp"), "{r}");
        }
        assert_eq!(
            redact("request to https://slack.com/api/chat.postMessage with xoxb-1-2 failed\nsecond line"),
            "request to [url] with [token] failed"
        );
        assert_eq!(
            redact("connection reset by peer"),
            "connection reset by peer"
        );
    }

    #[test]
    fn channel_ids_are_recognised() {
        assert!(is_channel_id("C0123ABCD"));
        assert!(!is_channel_id("#pr-alerts"));
        assert!(!is_channel_id("pr-alerts"));
    }
}
