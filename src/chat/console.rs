//! The console "platform": prints alerts readably to stdout so the bundled config works with
//! no chat account. It cannot find earlier messages, so a crash mid-print may print twice.

use super::escape::{terminal_text, truncate};
use super::view::state_look;
use super::{AlertView, ChatError, ChatPlatform, Posted};
use crate::model::{AlertId, DigestPost, MessageRef, Note, Part};
use chrono::{DateTime, Utc};
use std::io::Write;

#[derive(Default)]
pub struct ConsolePlatform;

/// The alert as a few plain lines, in the order every platform uses: the state marker and
/// the headline, who said it where, the quoted excerpt with matched words in `[brackets]`,
/// the rule and those words, priority and sentiment in words, the numbers, the link, the
/// state line and the buttons the state offers on Slack and Discord. Untrusted text has its
/// control characters removed and is otherwise shown as written.
pub(crate) fn render_alert(view: &AlertView) -> String {
    let look = state_look(&view.state);
    let mut out = format!(
        "{} {}\n   {}\n",
        look.emoji,
        terminal_text(&view.headline),
        terminal_text(&truncate(&view.who_line(), 400)),
    );
    if !view.excerpt.is_empty() {
        let excerpt: String = view
            .excerpt
            .iter()
            .map(|(run, hl)| {
                let t = terminal_text(run);
                if *hl {
                    format!("[{t}]")
                } else {
                    t
                }
            })
            .collect();
        out.push_str(&format!("   \"{excerpt}\"\n"));
    }
    let mut why = format!(
        "   matched rule {}",
        terminal_text(&truncate(&view.rules.join(", "), 300))
    );
    if !view.matched.is_empty() {
        let words: Vec<String> = view
            .matched_words()
            .iter()
            .map(|w| format!("[{}]", terminal_text(w)))
            .collect();
        why.push_str(&format!(": {}", words.join(", ")));
    }
    out.push_str(&why);
    out.push('\n');
    let (priority, sentiment, stars) = view.urgency_words();
    let stars = stars.map(|s| format!(" · rating {s}")).unwrap_or_default();
    out.push_str(&format!("   {priority} · {sentiment}{stars}\n"));
    out.push_str(&format!("   {}\n", view.detail_line()));
    if let Some(u) = &view.url {
        out.push_str(&format!("   🔗 {}\n", terminal_text(u)));
    }
    out.push_str(&format!(
        "   {}\n",
        view.state_line(console_user, terminal_text)
    ));
    let buttons: Vec<String> = view
        .buttons()
        .iter()
        .map(|b| format!("[{}]", b.label))
        .collect();
    out.push_str(&format!("   {}\n", buttons.join(" ")));
    out
}

impl ConsolePlatform {
    fn print(&self, text: &str) -> Result<(), ChatError> {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|_| stdout.flush())
            .map_err(|e| ChatError::Network {
                platform: "console",
                detail: e.to_string(),
            })
    }
}

/// A user id as `@id`, without its platform prefix.
fn console_user(actor: &str) -> String {
    format!(
        "@{}",
        terminal_text(actor.split_once(':').map_or(actor, |x| x.1))
    )
}

/// A note as one plain line; users shown as `@id`.
pub(crate) fn render_note(note: &Note) -> String {
    note.0
        .iter()
        .map(|p| match p {
            Part::Text(s) | Part::Bold(s) | Part::Code(s) => terminal_text(s),
            Part::User(u) => format!(
                "@{}",
                terminal_text(u.split_once(':').map_or(u.as_str(), |x| x.1))
            ),
            Part::Ping(p) => format!("@{}", terminal_text(p)),
            Part::Link { url, label } => {
                format!("{} <{}>", terminal_text(label), terminal_text(url))
            }
            Part::Newline => "\n   ".to_string(),
            // No buttons on a terminal; the text beside them names the command.
            Part::Button { .. } => String::new(),
        })
        .collect()
}

#[async_trait::async_trait]
impl ChatPlatform for ConsolePlatform {
    fn name(&self) -> &'static str {
        "console"
    }

    async fn post_alert(&self, channel: &str, view: &AlertView) -> Result<Posted, ChatError> {
        let text = format!("── {} ──\n{}", terminal_text(channel), render_alert(view));
        self.print(&text)?;
        Ok(Posted {
            channel_id: channel.to_string(),
            message_id: format!("console-{}", view.id),
        })
    }

    async fn find_alert(
        &self,
        _channel: &str,
        _id: AlertId,
        _since: DateTime<Utc>,
    ) -> Result<Option<Posted>, ChatError> {
        Ok(None)
    }

    /// The whole alert again, as it now looks: its state decides its marker and buttons.
    async fn update_alert(&self, msg: &MessageRef, view: &AlertView) -> Result<(), ChatError> {
        self.print(&format!(
            "── #{} updated in {} ──\n{}",
            view.id,
            terminal_text(&msg.channel_id),
            render_alert(view)
        ))
    }

    async fn post_note(
        &self,
        channel: &str,
        thread: Option<&str>,
        note: &Note,
        delivery: &str,
    ) -> Result<Posted, ChatError> {
        let prefix = match thread {
            Some(t) => format!("   ↳ {}: ", terminal_text(t)),
            None => format!("── {} ──\n   ", terminal_text(channel)),
        };
        self.print(&format!("{prefix}{}\n", render_note(note)))?;
        Ok(Posted {
            channel_id: channel.to_string(),
            message_id: format!("console-{delivery}"),
        })
    }

    async fn find_note(
        &self,
        _channel: &str,
        _thread: Option<&str>,
        _delivery: &str,
        _since: DateTime<Utc>,
    ) -> Result<Option<Posted>, ChatError> {
        Ok(None)
    }

    async fn post_digest(
        &self,
        channel: &str,
        digest: &DigestPost,
        delivery: &str,
    ) -> Result<Posted, ChatError> {
        let chart = match &digest.chart {
            Some(png) => format!("\n   (chart: {} bytes of PNG, not shown here)", png.len()),
            None => String::new(),
        };
        let text = format!(
            "── {} ──\n{}\n   {}{chart}",
            terminal_text(channel),
            terminal_text(&digest.title),
            render_note(&digest.body)
        );
        self.print(&text)?;
        Ok(Posted {
            channel_id: channel.to_string(),
            message_id: format!("console-{delivery}"),
        })
    }

    async fn find_digest(
        &self,
        _channel: &str,
        _delivery: &str,
        _since: DateTime<Utc>,
    ) -> Result<Option<Posted>, ChatError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AlertState;

    #[test]
    fn console_alert_is_readable_and_strips_escapes() {
        let view = AlertView {
            id: AlertId(3),
            author: Some("dana\u{1b}[2J".into()),
            excerpt: vec![
                ("my ".into(), false),
                ("Acme".into(), true),
                (" broke".into(), false),
            ],
            ..AlertView::sample()
        };
        let out = render_alert(&view);
        assert!(out.contains("\"my [Acme] broke\""));
        assert!(out.contains("📥 Open · unclaimed"));
        assert!(!out.contains('\u{1b}'));
        assert!(!out.contains("rating"), "no rating, no stars");
        let out = render_alert(&AlertView {
            rating: Some(1),
            ..view
        });
        assert!(
            out.contains("🟠 High priority · negative — complaint · rating ★☆☆☆☆ 1/5"),
            "{out}"
        );
    }

    /// The README shows these renderings; this keeps them true.
    #[test]
    fn each_state_renders_headline_first_with_its_own_marker_and_buttons() {
        let open = AlertView {
            author_reach: Some(12_345),
            excerpt: vec![
                ("Ordered two weeks ago, ".into(), false),
                ("Acme".into(), true),
                (" support never answered my refund request".into(), false),
            ],
            ..AlertView::sample()
        };
        assert_eq!(
            render_alert(&open),
            "📥 Acme support never answered my refund request
   by dana_k (12.3k followers) · forum-feed (file)
   \"Ordered two weeks ago, [Acme] support never answered my refund request\"
   matched rule acme: [Acme]
   🟠 High priority · negative — complaint
   sentiment score -0.62 (from -1 to +1) · alert #1
   🔗 https://example.com/p/1
   📥 Open · unclaimed
   [Claim] [Resolve] [Snooze] [Not relevant]
"
        );
        let at = open.created_at + chrono::Duration::minutes(4);
        let tail = |state: AlertState| {
            let out = render_alert(&AlertView {
                state,
                ..open.clone()
            });
            let lines: Vec<&str> = out.lines().collect();
            (lines[0].to_string(), lines[lines.len() - 2..].join("\n"))
        };
        let (head, end) = tail(AlertState::Claimed {
            by: "slack:U0DANA".into(),
            at,
        });
        assert!(head.starts_with("🙋 Acme support"), "{head}");
        assert_eq!(
            end,
            "   🙋 Claimed by @U0DANA · 4 min after posting\n   [Unclaim] [Resolve] [Snooze]"
        );
        let (head, end) = tail(AlertState::Snoozed {
            by: "slack:U0DANA".into(),
            until: at,
        });
        assert!(head.starts_with("💤 "), "{head}");
        assert_eq!(
            end,
            "   💤 Snoozed by @U0DANA until 2026-11-30 09:04 UTC\n   [Claim] [Resolve] [Not relevant]"
        );
        let (head, end) = tail(AlertState::Resolved {
            by: "slack:U0DANA".into(),
            at,
            note: Some("refunded and replied".into()),
        });
        assert!(head.starts_with("✅ "), "{head}");
        assert_eq!(
            end,
            "   ✅ Resolved by @U0DANA — \"refunded and replied\"\n   [Reopen]"
        );
        let (head, end) = tail(AlertState::Ignored {
            by: "slack:U0DANA".into(),
            at,
            reason: Some("job ad".into()),
        });
        assert!(head.starts_with("🚫 "), "{head}");
        assert_eq!(
            end,
            "   🚫 Not relevant (@U0DANA) — \"job ad\"\n   [Reopen]"
        );
    }
}
