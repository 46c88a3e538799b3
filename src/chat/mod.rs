//! Chat platforms: the `ChatPlatform` trait, the neutral alert view every platform renders,
//! and the Slack, Discord and console implementations. SDK types never leave this folder; nothing here
//! reads or writes the store.

use crate::model::{AlertId, DigestPost, MessageRef, Note};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

pub(crate) mod config;
pub mod console;
pub mod discord;
pub mod escape;
pub mod setup;
pub mod slack;
pub(crate) mod text;
pub(crate) mod view;

/// A boxed future, as the Socket Mode and gateway handler traits must be object-safe.
pub(crate) type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

pub use view::AlertView;

/// Ids of the buttons on an alert and of the snooze choices, the same on every platform
/// (Slack `action_id`; Discord `custom_id` before `:<alert id>`). Which of them an alert shows
/// depends on its state (`view::buttons_for`); the desk's dispatcher maps each to an action.
pub(crate) mod buttons {
    pub(crate) const CLAIM: &str = "desk_claim";
    pub(crate) const UNCLAIM: &str = "desk_unclaim";
    pub(crate) const RESOLVE: &str = "desk_resolve";
    pub(crate) const SNOOZE: &str = "desk_snooze";
    pub(crate) const IGNORE: &str = "desk_ignore";
    pub(crate) const REOPEN: &str = "desk_reopen";
    pub(crate) const SNOOZE_1H: &str = "desk_snooze_1h";
    pub(crate) const SNOOZE_4H: &str = "desk_snooze_4h";
    pub(crate) const SNOOZE_TOMORROW: &str = "desk_snooze_tomorrow";
    /// Posts a held-back alert after all; shown beside held alerts in `/desk list held` and
    /// the digest, never on an alert.
    pub(crate) const PROMOTE: &str = "desk_promote";
    /// The snooze choices offered after Snooze, as (id, label).
    pub(crate) const SNOOZE_CHOICES: [(&str, &str); 3] = [
        (SNOOZE_1H, "1 hour"),
        (SNOOZE_4H, "4 hours"),
        (SNOOZE_TOMORROW, "Tomorrow 9:00"),
    ];
}

/// At most this many of a note's buttons are shown: Discord's 5 action rows of 5 buttons,
/// and the 25 elements of one Slack actions block. A note that lists more alerts names the
/// command for the rest.
pub(crate) const NOTE_BUTTONS_MAX: usize = 25;

/// The id a note's button carries on every platform (Slack `action_id`, Discord `custom_id`):
/// `<action>:<alert id>`, so that several Promote buttons in one message stay unique (both
/// platforms refuse a message that repeats one). The dispatcher reads the action before `:`.
pub(crate) fn note_button_id(action: &str, alert: AlertId) -> String {
    format!("{action}:{alert}")
}

/// How often one call is retried after a 429 before the pause is handed to the relay.
pub(crate) const MAX_RATE_LIMIT_RETRIES: u32 = 5;
/// The longest a single call waits out rate-limit pauses in-line, summed over its retries.
/// It stays well below the relay's 30 s call timeout: a longer pause is returned as
/// `RateLimited` and the relay holds every delivery to that platform until it ends.
pub(crate) const MAX_INLINE_WAIT: Duration = Duration::from_secs(10);

/// Pauses a platform asked for with 429 `Retry-After`, per call family (a Slack method, a
/// Discord route, or `GLOBAL_FAMILY`), shared by every caller of one client, so no call of
/// that family goes out before the pause ends.
#[derive(Debug, Default)]
pub(crate) struct Pauses(Mutex<HashMap<&'static str, Instant>>);

/// The family a platform-wide pause (Discord's global limit) is kept under.
pub(crate) const GLOBAL_FAMILY: &str = "*";

impl Pauses {
    /// Holds `family` for `wait` from now (a longer pause already set stays).
    pub(crate) fn pause(&self, family: &'static str, wait: Duration) {
        let until = Instant::now() + wait;
        let mut map = self.0.lock().expect("lock");
        let e = map.entry(family).or_insert(until);
        *e = (*e).max(until);
    }

    /// How long `family` (or the whole platform) is still held.
    pub(crate) fn remaining(&self, family: &'static str) -> Option<Duration> {
        let now = Instant::now();
        let map = self.0.lock().expect("lock");
        [family, GLOBAL_FAMILY]
            .iter()
            .filter_map(|f| map.get(f))
            .map(|t| t.saturating_duration_since(now))
            .filter(|d| !d.is_zero())
            .max()
    }

    /// Waits until `family` may be called, spending at most `budget` (shared by one call's
    /// retries); a longer pause comes back as `RateLimited` without calling.
    pub(crate) async fn wait_turn(
        &self,
        platform: &'static str,
        family: &'static str,
        budget: &mut Duration,
    ) -> Result<(), ChatError> {
        if let Some(wait) = self.remaining(family) {
            if wait > *budget {
                return Err(ChatError::RateLimited {
                    platform,
                    retry_after: wait,
                });
            }
            *budget -= wait;
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }
}

/// Refusal scopes are plain data (the store keeps them with parked entries).
pub use crate::model::Scope;

/// Whether a platform-wide refusal is about the bot's credentials (Slack `invalid_auth`,
/// `not_authed`, `token_revoked`, `token_expired`, `account_inactive`, `team_disabled`;
/// Discord 401): the credential check (`auth.test`, `GET /users/@me`) can disprove only
/// these. A missing scope or permission passes that check and is refused again on delivery.
pub(crate) fn credential_refusal(reason: &str) -> bool {
    matches!(
        reason,
        "invalid_auth"
            | "not_authed"
            | "token_revoked"
            | "token_expired"
            | "account_inactive"
            | "team_disabled"
            | "401"
    ) || reason.starts_with("401/")
}

/// Whether a refusal says the message to edit or reply to is gone (deleted in the channel):
/// Slack `message_not_found`, `cant_update_message`, `edit_window_closed`,
/// `thread_not_found`; Discord 404 Unknown Message. No retry or fix can bring it back.
pub(crate) fn message_gone(reason: &str) -> bool {
    matches!(
        reason,
        "message_not_found"
            | "cant_update_message"
            | "edit_window_closed"
            | "thread_not_found"
            | "404/10008"
    )
}

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
    /// A refusal that repeating the same call cannot fix; `fix` says what a person must do.
    #[error("{platform} refused {call}: {reason}; {fix}")]
    Refused {
        platform: &'static str,
        scope: Scope,
        /// The platform's short error code (`invalid_auth`, `403/50013`): a metric label.
        reason: String,
        call: String,
        /// Mostly a fixed text; `check --online` names the channel and the bot in it.
        fix: std::borrow::Cow<'static, str>,
    },
    #[error("could not reach {platform}: {detail}")]
    Network {
        platform: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Config(String),
}

/// Who the bot is on a platform, from its credential check (`auth.test`, `GET /users/@me`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The bot's name (and workspace on Slack), for the start-up log and `check --online`.
    pub name: String,
    /// The bot's user id on the platform.
    pub(crate) user_id: String,
}

/// One chat platform. Implementations honour the platform's 429 pauses for every call,
/// wait them out in-line up to `MAX_INLINE_WAIT`, and return `RateLimited` beyond that.
/// Refusals that a retry cannot fix come back as `Refused` with their scope and fix.
#[async_trait::async_trait]
pub trait ChatPlatform: Send + Sync {
    fn name(&self) -> &'static str;

    /// Checks the credentials (Slack `auth.test`, Discord `GET /users/@me`). A platform
    /// without credentials (the console) has nothing to check.
    async fn verify(&self) -> Result<Identity, ChatError> {
        Ok(Identity {
            name: self.name().to_string(),
            user_id: String::new(),
        })
    }

    /// Checks that alerts can be posted into `channel` (it exists and the bot is in it);
    /// says what the check could prove.
    async fn check_channel(&self, _channel: &str) -> Result<String, ChatError> {
        Ok("nothing to check".into())
    }

    /// A link a person can open to reach a posted alert (escalation rounds list it), or `None`
    /// when the platform cannot build one without asking (the console; before `verify`).
    fn permalink(&self, _posted: &Posted) -> Option<String> {
        None
    }

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
pub(crate) fn chart_file_name(delivery: &str) -> String {
    format!("mentiondesk-digest-{delivery}.png")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_its_family_and_a_global_one_holds_all() {
        let p = Pauses::default();
        p.pause("chat.postMessage", Duration::from_secs(3));
        assert_eq!(
            p.remaining("chat.postMessage"),
            Some(Duration::from_secs(3))
        );
        assert_eq!(p.remaining("views.open"), None, "other methods go on");
        p.pause(GLOBAL_FAMILY, Duration::from_secs(1));
        assert_eq!(p.remaining("views.open"), Some(Duration::from_secs(1)));
        // A shorter pause never shortens a longer one.
        p.pause("chat.postMessage", Duration::from_secs(1));
        assert_eq!(
            p.remaining("chat.postMessage"),
            Some(Duration::from_secs(3))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn wait_turn_waits_within_the_budget_and_hands_longer_pauses_back() {
        let p = Pauses::default();
        let mut budget = MAX_INLINE_WAIT;
        p.pause("chat.update", Duration::from_secs(4));
        let start = Instant::now();
        p.wait_turn("slack", "chat.update", &mut budget)
            .await
            .unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(4));
        assert_eq!(budget, MAX_INLINE_WAIT - Duration::from_secs(4));
        p.pause("chat.update", Duration::from_secs(7));
        let start = Instant::now();
        match p.wait_turn("slack", "chat.update", &mut budget).await {
            Err(ChatError::RateLimited { retry_after, .. }) => {
                assert_eq!(retry_after, Duration::from_secs(7))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "no waiting beyond the budget"
        );
    }
}
