//! What setup checks say: the sample alert that `mentiondesk test-alert` and `/desk test` post,
//! the Discord permissions the bot needs with its invite URL, and the fix a person reads when
//! a platform refuses. It builds the sample through the normal renderers (`AlertView`) and
//! never touches the store: a test alert is not an alert, so it cannot escalate, show up in a
//! digest or count in stats.

use super::{AlertView, ChatError, ChatPlatform};
use crate::model::{Alert, AlertId, AlertState, Mention, Priority};
use chrono::{DateTime, Utc};

/// The title of every test alert: it says what it is before anyone reads further.
pub const TEST_ALERT_TITLE: &str = "🧪 Test alert — mentiondesk is connected; nothing to do";

/// The id a test alert carries. Real alerts count from 1, so buttons on a test alert name no
/// alert; the dispatcher answers them with `TEST_ALERT_BUTTON`.
pub(crate) const TEST_ALERT_ID: AlertId = AlertId(0);

/// The private answer to a button pressed on a test alert.
pub(crate) const TEST_ALERT_BUTTON: &str =
    "This is a test alert: it is not on the desk, so its buttons do nothing. Real alerts look like it.";

/// Discord permission bits the bot needs in every alert channel, as (name, bit) from
/// Discord's permissions table (topics/permissions): View Channel 1<<10, Send Messages 1<<11,
/// Embed Links 1<<14 (the alert is an embed), Attach Files 1<<15 (the digest chart), Read
/// Message History 1<<16 (finding a post again after a crash), Create Public Threads 1<<35
/// (each alert's thread), Send Messages in Threads 1<<38 (notes in that thread).
pub(crate) const DISCORD_PERMISSIONS: [(&str, u64); 7] = [
    ("View Channel", 1 << 10),
    ("Send Messages", 1 << 11),
    ("Embed Links", 1 << 14),
    ("Attach Files", 1 << 15),
    ("Read Message History", 1 << 16),
    ("Create Public Threads", 1 << 35),
    ("Send Messages in Threads", 1 << 38),
];

/// The permissions integer of `DISCORD_PERMISSIONS` (309237763072), as an invite URL wants it.
pub const fn discord_permissions_integer() -> u64 {
    let mut sum = 0;
    let mut i = 0;
    while i < DISCORD_PERMISSIONS.len() {
        sum |= DISCORD_PERMISSIONS[i].1;
        i += 1;
    }
    sum
}

/// The URL that adds the bot to a server with the `/desk` command and every permission it
/// needs (a server admin opens it; re-opening it for a server the bot is in updates its role).
pub fn discord_invite_url(application_id: u64) -> String {
    format!(
        "https://discord.com/oauth2/authorize?client_id={application_id}&scope=bot+applications.commands&permissions={}",
        discord_permissions_integer()
    )
}

/// The names of `DISCORD_PERMISSIONS`, joined for a sentence.
pub(crate) fn discord_permission_names() -> String {
    let names: Vec<&str> = DISCORD_PERMISSIONS.iter().map(|(n, _)| *n).collect();
    names.join(", ")
}

/// The whole fix for a Discord 403 (Missing Access, Missing Permissions): which permissions,
/// where to give them, and the invite URL that grants them all.
pub(crate) fn discord_permissions_fix(application_id: Option<u64>) -> String {
    let mut fix = format!(
        "give the bot {} in that channel (channel settings → Permissions)",
        discord_permission_names()
    );
    if let Some(app) = application_id {
        fix.push_str(&format!(
            ", or have a server admin open {} to add them all",
            discord_invite_url(app)
        ));
    }
    fix
}

/// A platform refusal as the line a person reads: the problem with its fix; a Discord 403
/// also names every permission and the invite URL.
pub(crate) fn describe_error(e: &ChatError, discord_application: Option<u64>) -> String {
    match e {
        ChatError::Refused {
            platform: "discord",
            reason,
            call,
            ..
        } if reason.starts_with("403") => format!(
            "discord refused {call}: {reason}; {}",
            discord_permissions_fix(discord_application)
        ),
        e => e.to_string(),
    }
}

/// The sample mention and alert a test alert shows: a plausible complaint with the matched
/// word highlighted, so the team sees what a real alert will look like.
pub(crate) fn test_alert_view(now: DateTime<Utc>) -> AlertView {
    let text = "Sample mention: \u{201c}Ordered from Acme two weeks ago and my refund still hasn't arrived. Anyone else?\u{201d} Real alerts look like this one; this one is not stored, and its buttons do nothing.";
    let word = "refund";
    let at = text.find(word).unwrap_or(0);
    let mention = Mention {
        item_id: format!("test-alert-{}", now.timestamp_millis()),
        source: "mentiondesk test-alert".into(),
        source_kind: "test".into(),
        url: None,
        title: Some(TEST_ALERT_TITLE.into()),
        text: text.into(),
        author: Some("mentiondesk".into()),
        author_reach: None,
        published: Some(now),
        lang: Some("en".into()),
        rating: None,
    };
    let alert = Alert {
        id: TEST_ALERT_ID,
        mention_key: mention.key(),
        rules: vec!["test".into()],
        priority: Priority::Normal,
        sentiment: 0.0,
        negative: false,
        targets: vec![],
        state: AlertState::Open,
        created_at: now,
        highlights: vec![(at, at + word.len())],
        first_claimed_at: None,
        resolved_at: None,
        human_negative: None,
        relevance: None,
        held: false,
        promoted_at: None,
        created_audit_seq: None,
    };
    AlertView::new(&alert, &mention)
}

/// Posts the test alert into `channel` on `platform`: what happened, or the problem with its
/// fix.
pub(crate) async fn post_test_alert(
    platform: &dyn ChatPlatform,
    channel: &str,
    now: DateTime<Utc>,
    discord_application: Option<u64>,
) -> Result<String, String> {
    let view = test_alert_view(now);
    match tokio::time::timeout(TEST_ALERT_TIMEOUT, platform.post_alert(channel, &view)).await {
        Ok(Ok(_)) if platform.name() == "console" => {
            Ok("printed on the console (no chat platform is configured for it)".into())
        }
        Ok(Ok(_)) => Ok("test alert posted".into()),
        Ok(Err(e)) => Err(describe_error(&e, discord_application)),
        Err(_) => Err(format!(
            "{} did not answer within {TEST_ALERT_TIMEOUT:?}; check the network and [{}].api_url",
            platform.name(),
            platform.name()
        )),
    }
}

/// How long one test post may take (a platform's in-line rate-limit waits included). The
/// targets are posted to at once, so this bounds the whole `test-alert`; the CLI waits longer
/// for the daemon's answer.
pub const TEST_ALERT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permissions_integer_is_the_sum_of_discords_documented_bits() {
        // 1024 + 2048 + 16384 + 32768 + 65536 + 34359738368 + 274877906944
        assert_eq!(discord_permissions_integer(), 309_237_763_072);
        assert!(discord_invite_url(42)
            .ends_with("client_id=42&scope=bot+applications.commands&permissions=309237763072"));
        assert!(discord_permission_names().contains("Attach Files"));
    }

    #[test]
    fn the_test_alert_says_what_it_is_and_highlights_its_sample_word() {
        let v = test_alert_view(Utc::now());
        assert_eq!(v.title.as_deref(), Some(TEST_ALERT_TITLE));
        assert_eq!(v.id, TEST_ALERT_ID);
        assert!(v.excerpt.iter().any(|(s, hl)| *hl && s == "refund"));
    }
}
