//! Chat platforms: the `ChatPlatform` trait, the neutral alert view every platform renders,
//! and the Slack and console implementations. SDK types never leave this folder; nothing here
//! reads or writes the store.

use crate::model::{AlertId, MessageRef, Note};
use chrono::{DateTime, Utc};
use std::time::Duration;

pub mod console;
pub mod discord;
pub mod discord_gateway;
pub mod escape;
pub mod slack;
pub mod slack_socket;
pub mod view;

pub use view::AlertView;

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
}
