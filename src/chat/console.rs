//! The console "platform": prints alerts readably to stdout so the bundled config works with
//! no chat account. It cannot find earlier messages, so a crash mid-print may print twice.

use super::escape::{terminal_text, truncate};
use super::{AlertView, ChatError, ChatPlatform, Posted};
use crate::model::{AlertId, DigestPost, MessageRef, Note, Part};
use chrono::{DateTime, Utc};
use std::io::Write;

#[derive(Default)]
pub struct ConsolePlatform;

/// The alert as a few plain lines; untrusted text has its control characters removed.
pub(crate) fn render_alert(view: &AlertView) -> String {
    let mut out = format!(
        "{} #{} [{}] rule {} · {} ({})",
        view.priority_icon(),
        view.id,
        view.priority,
        terminal_text(&view.rules.join(", ")),
        terminal_text(&view.source),
        terminal_text(&view.source_kind),
    );
    if let Some(a) = &view.author {
        out.push_str(&format!(" · by {}", terminal_text(&truncate(a, 80))));
    }
    out.push('\n');
    if let Some(t) = view.title.as_deref().filter(|t| !t.trim().is_empty()) {
        out.push_str(&format!("   {}\n", terminal_text(&truncate(t, 200))));
    }
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
    if let Some(u) = &view.url {
        out.push_str(&format!("   {}\n", terminal_text(u)));
    }
    let stars = view
        .stars_label()
        .map(|s| format!("rating {s} · "))
        .unwrap_or_default();
    out.push_str(&format!(
        "   {stars}sentiment {} · {}\n",
        view.sentiment_label(),
        view.state_line(console_user, terminal_text)
    ));
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

    async fn update_alert(&self, msg: &MessageRef, view: &AlertView) -> Result<(), ChatError> {
        let state = view.state_line(console_user, terminal_text);
        self.print(&format!(
            "   #{} in {}: {}\n",
            view.id,
            terminal_text(&msg.channel_id),
            state
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
    use crate::model::{AlertState, Priority};

    #[test]
    fn console_alert_is_readable_and_strips_escapes() {
        let view = AlertView {
            id: AlertId(3),
            rules: vec!["acme".into()],
            source: "sample".into(),
            source_kind: "file".into(),
            author: Some("dana\u{1b}[2J".into()),
            title: None,
            excerpt: vec![
                ("my ".into(), false),
                ("Acme".into(), true),
                (" broke".into(), false),
            ],
            url: Some("https://example.com/p/1".into()),
            rating: None,
            priority: Priority::High,
            sentiment: -0.4,
            negative: true,
            human_negative: None,
            state: AlertState::Open,
            created_at: Utc::now(),
        };
        let out = render_alert(&view);
        assert!(out.contains("#3 [high] rule acme"));
        assert!(out.contains("\"my [Acme] broke\""));
        assert!(out.contains("📥 Open · unclaimed"));
        assert!(!out.contains('\u{1b}'));
        assert!(!out.contains("rating"), "no rating, no stars");
        let out = render_alert(&AlertView {
            rating: Some(1),
            ..view
        });
        assert!(
            out.contains("rating ★☆☆☆☆ 1/5 · sentiment negative"),
            "{out}"
        );
    }
}
