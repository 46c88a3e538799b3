//! Chat platforms: the `ChatPlatform` trait, the neutral alert view every platform renders,
//! and the Slack and console implementations. SDK types never leave this folder; nothing here
//! reads or writes the store.

use crate::model::{AlertId, DigestPost, MessageRef, Note};
use chrono::{DateTime, Utc};
use std::time::Duration;

pub mod console;
pub mod discord;
pub mod discord_gateway;
pub mod escape;
pub mod slack;
pub mod slack_socket;
pub mod text;
pub mod view;

pub use view::AlertView;

/// Ids of the buttons on an alert and of the snooze choices, the same on every platform
/// (Slack `action_id`; Discord `custom_id` before `:<alert id>`).
pub mod buttons {
    pub const CLAIM: &str = "desk_claim";
    pub const RESOLVE: &str = "desk_resolve";
    pub const SNOOZE: &str = "desk_snooze";
    pub const IGNORE: &str = "desk_ignore";
    pub const SNOOZE_1H: &str = "desk_snooze_1h";
    pub const SNOOZE_4H: &str = "desk_snooze_4h";
    pub const SNOOZE_TOMORROW: &str = "desk_snooze_tomorrow";
    /// The snooze choices offered after Snooze, as (id, label).
    pub const SNOOZE_CHOICES: [(&str, &str); 3] = [
        (SNOOZE_1H, "1 hour"),
        (SNOOZE_4H, "4 hours"),
        (SNOOZE_TOMORROW, "Tomorrow 9:00"),
    ];
}

/// How often one call is retried after a 429 before the relay's own backoff takes over.
pub const MAX_RATE_LIMIT_RETRIES: u32 = 5;
/// A rate-limit wait longer than this is not waited out in-line.
pub const MAX_INLINE_WAIT: Duration = Duration::from_secs(60);

/// Where a platform put a message: enough to edit it or reply in its thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub channel_id: String,
    pub message_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("rate limited by {platform}; retry after {retry_after:?}")]
    RateLimited {
        platform: &'static str,
        retry_after: Duration,
    },
    #[error("{platform} refused the request: {code}{hint}")]
    Api {
        platform: &'static str,
        code: String,
        hint: &'static str,
    },
    #[error("could not reach {platform}: {detail}")]
    Network {
        platform: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Config(String),
}

/// One chat platform. Implementations handle the platform's rate limits themselves and
/// return `RateLimited` only once their own retries are spent.
#[async_trait::async_trait]
pub trait ChatPlatform: Send + Sync {
    fn name(&self) -> &'static str;

    /// Posts a new alert's root message into `channel` (as written in the target).
    async fn post_alert(&self, channel: &str, view: &AlertView) -> Result<Posted, ChatError>;

    /// Looks for an alert message posted since `since` (crash recovery: the process may have
    /// died after the platform accepted a post but before its reference was stored).
    /// `Ok(None)` means "certainly not there" only when the platform can search at all.
    async fn find_alert(
        &self,
        channel: &str,
        id: AlertId,
        since: DateTime<Utc>,
    ) -> Result<Option<Posted>, ChatError>;

    /// Edits the alert's root message so it shows the current state.
    async fn update_alert(&self, msg: &MessageRef, view: &AlertView) -> Result<(), ChatError>;

    /// Posts `note` in the alert's thread (`thread` = the root message) or, without a thread,
    /// as a message of its own in `channel`. `delivery` is a unique id the platform stores
    /// with the message so `find_note` can recognise it after a crash.
    async fn post_note(
        &self,
        channel: &str,
        thread: Option<&str>,
        note: &Note,
        delivery: &str,
    ) -> Result<Posted, ChatError>;

    /// Looks for a note posted with `delivery` since `since` (crash recovery, as `find_alert`).
    async fn find_note(
        &self,
        channel: &str,
        thread: Option<&str>,
        delivery: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<Posted>, ChatError>;

    /// Posts a digest into `channel` with its chart as an uploaded image, tagged with
    /// `delivery` so `find_digest` can recognise it after a crash.
    async fn post_digest(
        &self,
        channel: &str,
        digest: &DigestPost,
        delivery: &str,
    ) -> Result<Posted, ChatError>;

    /// Looks for a digest posted with `delivery` since `since` (crash recovery).
    async fn find_digest(
        &self,
        channel: &str,
        delivery: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<Posted>, ChatError>;
}

/// The file name a digest's chart is uploaded under; it carries the delivery id so the
/// upload can be recognised in channel history.
pub fn chart_file_name(delivery: &str) -> String {
    format!("mentiondesk-digest-{delivery}.png")
}
