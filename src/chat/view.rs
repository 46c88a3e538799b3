//! The neutral alert view: what every platform shows for an alert, decided once so Slack,
//! Discord and the console agree. Text here is still untrusted and unescaped; each renderer
//! escapes it for its own markup.

use crate::model::{Alert, AlertId, AlertState, Mention, Priority};
use crate::util::human_duration;
use chrono::{DateTime, Utc};
use unicode_segmentation::UnicodeSegmentation;

/// How many characters of the post the alert quotes.
pub(crate) const EXCERPT_CHARS: usize = 280;
/// How much of a resolve note or ignore reason the root message's state line quotes; the
/// whole text is in the alert's thread.
pub(crate) const STATE_NOTE_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq)]
pub struct AlertView {
    pub id: AlertId,
    pub rules: Vec<String>,
    pub source: String,
    pub source_kind: String,
    pub author: Option<String>,
    pub title: Option<String>,
    /// Runs of the excerpt; `true` runs are what the rule matched.
    pub excerpt: Vec<(String, bool)>,
    pub url: Option<String>,
    /// The author's star rating, 1 to 5 (app store reviews).
    pub rating: Option<u8>,
    pub priority: Priority,
    pub sentiment: f64,
    pub negative: bool,
    /// A person's correction of `negative`, if any.
    pub(crate) human_negative: Option<bool>,
    pub state: AlertState,
    pub created_at: DateTime<Utc>,
}

impl AlertView {
    pub fn new(alert: &Alert, mention: &Mention) -> AlertView {
        AlertView {
            id: alert.id,
            rules: alert.rules.clone(),
            source: mention.source.clone(),
            source_kind: mention.source_kind.clone(),
            author: mention.author.clone(),
            title: mention.title.clone(),
            excerpt: excerpt(&mention.text, &alert.highlights, EXCERPT_CHARS),
            url: mention.url.clone(),
            rating: mention.rating,
            priority: alert.priority,
            sentiment: alert.sentiment,
            negative: alert.negative,
            human_negative: alert.human_negative,
            state: alert.state.clone(),
            created_at: alert.created_at,
        }
    }

    /// The excerpt as plain text, without highlight marks.
    pub(crate) fn excerpt_text(&self) -> String {
        self.excerpt.iter().map(|(s, _)| s.as_str()).collect()
    }

    /// `negative (-0.62)` / `positive (0.40)` / `neutral (0.00)`; a person's correction wins
    /// and says so.
    pub(crate) fn sentiment_label(&self) -> String {
        match self.human_negative {
            Some(true) => {
                return format!("negative ({:+.2}, corrected by the team)", self.sentiment)
            }
            Some(false) => {
                return format!(
                    "not negative ({:+.2}, corrected by the team)",
                    self.sentiment
                )
            }
            None => {}
        }
        let word = if self.negative {
            "negative"
        } else if self.sentiment >= 0.05 {
            "positive"
        } else {
            "neutral"
        };
        format!("{word} ({:+.2})", self.sentiment)
    }

    /// `★★☆☆☆ 2/5` when the mention has a star rating; `None` otherwise (and for a value
    /// outside 1–5, which no source sends).
    pub(crate) fn stars_label(&self) -> Option<String> {
        let r = self.rating.filter(|r| (1..=5).contains(r))? as usize;
        Some(format!("{}{} {r}/5", "★".repeat(r), "☆".repeat(5 - r)))
    }

    pub(crate) fn priority_icon(&self) -> &'static str {
        match self.priority {
            Priority::Low => "⚪",
            Priority::Normal => "🔵",
            Priority::High => "🟠",
            Priority::Critical => "🔴",
        }
    }

    /// The state line, with `user` rendering a user id and `text` escaping untrusted text the
    /// platform's way. A long resolve note or reason is quoted in part: the root message is a
    /// summary, and the whole note is in the thread.
    pub(crate) fn state_line(
        &self,
        user: impl Fn(&str) -> String,
        text: impl Fn(&str) -> String,
    ) -> String {
        let after = |at: &DateTime<Utc>| human_duration((*at - self.created_at).num_seconds());
        let quote = |n: &str| {
            let short =
                crate::chat::text::truncate(n, STATE_NOTE_CHARS, crate::chat::text::Unit::Chars);
            let more = if short.len() < n.len() {
                " (all of it in the thread)"
            } else {
                ""
            };
            format!("\"{}\"{more}", text(&short))
        };
        match &self.state {
            AlertState::Open => "📥 Open · unclaimed".to_string(),
            AlertState::Claimed { by, at } => {
                format!("🟡 Claimed by {} · {} after posting", user(by), after(at))
            }
            AlertState::Resolved { by, note, .. } => match note {
                Some(n) => format!("✅ Resolved by {} — {}", user(by), quote(n)),
                None => format!("✅ Resolved by {}", user(by)),
            },
            AlertState::Snoozed { by, until } => format!(
                "💤 Snoozed by {} until {}",
                user(by),
                until.format("%Y-%m-%d %H:%M UTC")
            ),
            AlertState::Ignored { by, reason, .. } => match reason {
                Some(r) => format!("🚫 Not relevant ({}) — {}", user(by), quote(r)),
                None => format!("🚫 Not relevant ({})", user(by)),
            },
        }
    }
}

/// Cuts `text` to about `max` grapheme clusters around the first highlight and splits it into
/// highlighted and plain runs. Highlights are byte ranges into `text`; bad ones are ignored.
pub(crate) fn excerpt(
    text: &str,
    highlights: &[(usize, usize)],
    max: usize,
) -> Vec<(String, bool)> {
    let mut spans: Vec<(usize, usize)> = highlights
        .iter()
        .copied()
        .filter(|&(s, e)| {
            s < e && e <= text.len() && text.is_char_boundary(s) && text.is_char_boundary(e)
        })
        .collect();
    spans.sort_unstable();

    // The window starts a little before the first highlight and ends `max` graphemes later,
    // both on grapheme boundaries so no emoji sequence or accented letter is cut.
    let bounds: Vec<usize> = text.grapheme_indices(true).map(|(i, _)| i).collect();
    let total = bounds.len();
    let mut first = 0;
    if total > max {
        if let Some(&(hl, _)) = spans.first() {
            let before = bounds.partition_point(|&i| i < hl);
            first = before.saturating_sub(max / 4);
        }
    }
    let start = bounds.get(first).copied().unwrap_or(0);
    let end = bounds.get(first + max).copied().unwrap_or(text.len());
    let mut runs = Vec::new();
    if start > 0 {
        runs.push(("…".to_string(), false));
    }
    let mut pos = start;
    for (s, e) in spans {
        let (s, e) = (s.max(pos), e.min(end));
        if s >= e {
            continue;
        }
        if s > pos {
            runs.push((text[pos..s].to_string(), false));
        }
        runs.push((text[s..e].to_string(), true));
        pos = e;
    }
    if pos < end {
        runs.push((text[pos..end].to_string(), false));
    }
    if end < text.len() {
        runs.push(("…".to_string(), false));
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_marks_highlights() {
        let runs = excerpt("I love Acme and acme", &[(7, 11), (16, 20)], 100);
        assert_eq!(
            runs,
            vec![
                ("I love ".to_string(), false),
                ("Acme".to_string(), true),
                (" and ".to_string(), false),
                ("acme".to_string(), true),
            ]
        );
    }

    #[test]
    fn long_text_is_cut_around_the_first_match() {
        let text = format!("{} acme {}", "x".repeat(500), "y".repeat(500));
        let runs = excerpt(&text, &[(501, 505)], 100);
        let joined: String = runs.iter().map(|r| r.0.as_str()).collect();
        assert!(joined.starts_with('…') && joined.ends_with('…'));
        assert!(runs.iter().any(|r| r.0 == "acme" && r.1));
        assert!(joined.chars().count() <= 102);
    }

    #[test]
    fn the_excerpt_window_never_cuts_a_grapheme() {
        let family = "👩\u{200d}👩\u{200d}👧\u{200d}👦";
        let text = format!("{} acme {}", family.repeat(300), "e\u{301}".repeat(300));
        let at = text.find("acme").unwrap();
        let runs = excerpt(&text, &[(at, at + 4)], 40);
        let joined: String = runs.iter().map(|r| r.0.as_str()).collect();
        let inner = joined.trim_start_matches('…').trim_end_matches('…');
        assert!(
            inner.starts_with(family) && inner.ends_with("e\u{301}"),
            "{joined}"
        );
        assert!(inner
            .graphemes(true)
            .all(|g| [family, "e\u{301}", " ", "a", "c", "m", "e"].contains(&g)));
        assert_eq!(inner.graphemes(true).count(), 40);
    }

    #[test]
    fn stars_show_the_rating_out_of_five() {
        let mut v = AlertView::new(
            &crate::model::Alert {
                id: AlertId(1),
                mention_key: "ios\u{1f}1".into(),
                rules: vec!["acme".into()],
                priority: Priority::High,
                sentiment: 0.6,
                negative: true,
                targets: vec![],
                state: AlertState::Open,
                created_at: Utc::now(),
                highlights: vec![],
                first_claimed_at: None,
                resolved_at: None,
                human_negative: None,
            },
            &crate::model::Mention {
                item_id: "1".into(),
                source: "ios".into(),
                source_kind: "appstore".into(),
                url: None,
                title: None,
                text: String::new(),
                author: None,
                author_reach: None,
                published: None,
                lang: None,
                rating: Some(2),
            },
        );
        assert_eq!(v.stars_label().as_deref(), Some("★★☆☆☆ 2/5"));
        v.rating = Some(5);
        assert_eq!(v.stars_label().as_deref(), Some("★★★★★ 5/5"));
        for none in [None, Some(0), Some(6)] {
            v.rating = none;
            assert_eq!(v.stars_label(), None, "{none:?}");
        }
    }

    #[test]
    fn the_state_line_quotes_a_long_note_in_part_and_escapes_it() {
        let v = AlertView {
            id: AlertId(1),
            rules: vec![],
            source: String::new(),
            source_kind: String::new(),
            author: None,
            title: None,
            excerpt: vec![],
            url: None,
            rating: None,
            priority: Priority::Normal,
            sentiment: 0.0,
            negative: false,
            human_negative: None,
            state: AlertState::Resolved {
                by: "x:ann".into(),
                at: Utc::now(),
                note: Some("<b>".repeat(500)),
            },
            created_at: Utc::now(),
        };
        let line = v.state_line(|u| u.to_string(), |t| t.replace('<', "&lt;"));
        assert!(
            line.starts_with("✅ Resolved by x:ann — \"&lt;b>"),
            "{line}"
        );
        assert!(line.ends_with("…\" (all of it in the thread)"), "{line}");
        assert!(line.chars().count() < STATE_NOTE_CHARS * 2 + 60, "{line}");
    }

    #[test]
    fn out_of_range_highlights_are_ignored() {
        let runs = excerpt("héllo", &[(1, 2), (3, 99)], 10);
        assert_eq!(runs, vec![("héllo".to_string(), false)]);
    }
}
