//! Slack's refusals and errors: which error codes a retry cannot fix (and what a person must
//! do), and redaction of tokens and URLs from error text. It makes no calls.

use super::*;

/// The fix for a refused Slack token; the daemon needs a restart to read a new one.
pub(super) const TOKEN_FIX: &str = "create a new bot token under OAuth & Permissions (Reinstall to Workspace), set SLACK_BOT_TOKEN ([slack].bot_token) to it and restart mentiondesk";
/// The fix for content Slack refused: nothing a person can change in Slack.
pub(super) const CONTENT_FIX: &str = "Slack refused this message's content; it stays in the outbox and is sent again after a restart (upgrade mentiondesk first; please report it with the alert id)";

/// Slack error codes that a retry cannot fix: what they stop and what a person must do.
pub(crate) fn refusal(code: &str) -> Option<(Scope, &'static str)> {
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
pub(super) fn transient(code: &str) -> bool {
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
pub(super) fn redact_error(e: &SlackClientError) -> String {
    redact(&e.to_string())
}

/// The first line of an error text, cut to 300 characters, with every URL (a `response_url`
/// is a secret: anyone holding it can post) and every Slack token (`xox?-…`, `xapp-…`)
/// replaced by a placeholder.
pub(crate) fn redact(text: &str) -> String {
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
pub(super) fn secret_token_start(lower: &str) -> Option<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
