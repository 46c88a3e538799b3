//! The neutral alert view: what every platform shows for an alert, decided once so Slack,
//! Discord and the console agree. Text here is still untrusted and unescaped; each renderer
//! escapes it for its own markup.
//!
//! The layout language is shared too: the headline (what was said) comes first, then who
//! said it where, why it is here (rule and matched words), how urgent (priority and
//! sentiment in words), a detail line with the numbers, the link, and the state with the
//! buttons that state allows. The state decides the marker, the colour and the buttons
//! ([`state_look`], [`buttons_for`]); the priority words and icons ([`priority_label`]) are
//! the same wherever alerts are listed, the digest included.

use crate::analysis::negativity::positive_at;
use crate::chat::buttons;
use crate::model::{Alert, AlertId, AlertState, Mention, Priority};
use crate::util::human_duration;
use chrono::{DateTime, Utc};
use unicode_segmentation::UnicodeSegmentation;

/// How many characters of the post the alert quotes.
pub(crate) const EXCERPT_CHARS: usize = 280;
/// How many characters of the title or first line make the headline. Slack's header block
/// takes 150; the state marker and a space go before it.
pub(crate) const HEADLINE_CHARS: usize = 140;
/// How much of a resolve note or ignore reason the root message's state line quotes; the
/// whole text is in the alert's thread.
pub(crate) const STATE_NOTE_CHARS: usize = 200;
/// An author name longer than this is cut: it is a label, not content.
pub(crate) const AUTHOR_CHARS: usize = 80;
/// How many distinct matched words the "why" line names.
pub(crate) const MATCHED_MAX: usize = 5;
/// How long one matched word may be on the "why" line.
const MATCHED_CHARS: usize = 40;

#[derive(Debug, Clone, PartialEq)]
pub struct AlertView {
    pub id: AlertId,
    pub rules: Vec<String>,
    pub source: String,
    pub source_kind: String,
    pub author: Option<String>,
    /// Followers or similar, when the source tells it.
    pub author_reach: Option<u64>,
    pub title: Option<String>,
    /// What was said, in one line: the title, else the first line of the text.
    pub headline: String,
    /// Runs of the excerpt; `true` runs are what the rule matched. Empty when the headline
    /// already is the whole text.
    pub excerpt: Vec<(String, bool)>,
    /// The distinct words the rules matched, in order of appearance (at most `MATCHED_MAX`).
    pub matched: Vec<String>,
    pub url: Option<String>,
    /// The author's star rating, 1 to 5 (app store reviews).
    pub rating: Option<u8>,
    pub priority: Priority,
    pub sentiment: f64,
    pub negative: bool,
    /// A person's correction of `negative`, if any.
    pub(crate) human_negative: Option<bool>,
    /// The relevance the rule's model gave it (`Alert::relevance`), from the rule's first
    /// label on.
    pub(crate) relevance: Option<f32>,
    /// Whether the text has complaint cues ("never arrived", "refund"): the reason a
    /// negative mention is negative, said in words.
    pub(crate) complaint: bool,
    /// Whether the text asks something.
    pub(crate) question: bool,
    /// The mention's language when the analysis does not score it (not English): the
    /// sentiment is then unknown, and the alert says so instead of showing a score.
    pub(crate) unscored_lang: Option<String>,
    pub state: AlertState,
    pub created_at: DateTime<Utc>,
}

impl AlertView {
    pub fn new(alert: &Alert, mention: &Mention) -> AlertView {
        let text = &mention.text;
        let title = mention.title.as_deref().filter(|t| !t.trim().is_empty());
        let mut excerpt_runs = excerpt(text, &alert.highlights, EXCERPT_CHARS);
        let headline = match title {
            Some(t) => one_line(t, HEADLINE_CHARS),
            None => {
                let first = text.trim().lines().next().unwrap_or_default();
                let line = one_line(first, HEADLINE_CHARS);
                // A one-line post that fits the headline is said once, not twice.
                if line == one_line(text, usize::MAX) {
                    excerpt_runs.clear();
                }
                line
            }
        };
        let headline = if headline.is_empty() {
            format!("A mention matching {}", alert.rules.join(", "))
        } else {
            headline
        };
        let scored = crate::analysis::negativity::analysed_text(title, text);
        AlertView {
            id: alert.id,
            rules: alert.rules.clone(),
            source: mention.source.clone(),
            source_kind: mention.source_kind.clone(),
            author: mention.author.clone(),
            author_reach: mention.author_reach,
            title: mention.title.clone(),
            headline,
            excerpt: excerpt_runs,
            matched: matched_words(text, &alert.highlights),
            url: mention.url.clone(),
            rating: mention.rating,
            priority: alert.priority,
            sentiment: alert.sentiment,
            negative: alert.negative,
            human_negative: alert.human_negative,
            relevance: alert.relevance,
            complaint: crate::analysis::complaint::detect(&scored).weight > 0.0,
            question: scored.contains('?'),
            unscored_lang: mention
                .lang
                .as_deref()
                .filter(|l| !crate::analysis::lang::is_scored(Some(l)))
                .map(lang_label),
            state: alert.state.clone(),
            created_at: alert.created_at,
        }
    }

    /// The excerpt as plain text, without highlight marks.
    pub(crate) fn excerpt_text(&self) -> String {
        self.excerpt.iter().map(|(s, _)| s.as_str()).collect()
    }

    /// The author with reach, `dana_k (12.3k followers)`, unescaped; `None` without an author.
    /// Renderers escape it whole so the handle shows exactly as written.
    pub(crate) fn author_label(&self) -> Option<String> {
        let a = self.author.as_deref().filter(|a| !a.trim().is_empty())?;
        let a = crate::chat::text::truncate(
            &crate::chat::escape::terminal_text(a),
            AUTHOR_CHARS,
            crate::chat::text::Unit::Chars,
        );
        Some(match self.author_reach {
            Some(n) => format!(
                "{a} ({})",
                reach_label(n, crate::model::reach_unit_of(&self.source_kind))
            ),
            None => a,
        })
    }

    /// Who said it where: `by dana_k (12.3k followers) · forum-feed (file)`, unescaped.
    pub(crate) fn who_line(&self) -> String {
        let place = format!("{} ({})", self.source, self.source_kind);
        match self.author_label() {
            Some(a) => format!("by {a} · {place}"),
            None => place,
        }
    }

    /// The sentiment in words: `negative — complaint`, `neutral question`, `positive`; a
    /// person's correction wins and says so. The score is in [`AlertView::detail_line`]. A
    /// mention in a language the analysis does not score says so: `sentiment not scored
    /// (language: de)` (or `negative — low rating · …` when its stars said so).
    pub(crate) fn sentiment_words(&self) -> String {
        match self.human_negative {
            Some(true) => return "negative (marked by the team)".into(),
            Some(false) => return "not negative (corrected by the team)".into(),
            None => {}
        }
        let low_rating = self.rating.is_some_and(|r| (1..=2).contains(&r));
        if let Some(lang) = &self.unscored_lang {
            let unscored = format!("sentiment not scored (language: {lang})");
            return match self.negative && low_rating {
                true => format!("negative — low rating · {unscored}"),
                false => unscored,
            };
        }
        let words = match (self.negative, self.sentiment >= positive_at()) {
            (true, _) if self.complaint => "negative — complaint",
            (true, _) if low_rating => "negative — low rating",
            (true, _) if self.question => "negative question",
            (true, _) => "negative",
            (false, true) if self.question => "positive question",
            (false, true) => "positive",
            (false, false) if self.question => "neutral question",
            (false, false) => "neutral",
        };
        words.into()
    }

    /// How urgent, in words: `🟠 High priority · negative — complaint · ★★☆☆☆ 2/5`.
    pub(crate) fn urgency_words(&self) -> (String, String, Option<String>) {
        (
            priority_label(self.priority),
            self.sentiment_words(),
            self.stars_label(),
        )
    }

    /// The numbers behind the words, for a secondary line: `sentiment score -0.62 (from -1
    /// to +1) · alert #1`.
    /// With a relevance score once the rule has labels: `sentiment score -0.62 (from -1 to
    /// +1) · relevance 0.12 — most like mentions you marked not relevant · alert #1`.
    pub(crate) fn detail_line(&self) -> String {
        let relevance = match self.relevance {
            Some(r) => format!(
                " · relevance {r:.2} — {}",
                crate::analysis::relevance::explain(f64::from(r))
            ),
            None => String::new(),
        };
        if self.unscored_lang.is_some() {
            return format!(
                "sentiment is scored for English posts only{relevance} · alert #{}",
                self.id
            );
        }
        format!(
            "sentiment score {:+.2} (from -1 to +1){relevance} · alert #{}",
            self.sentiment, self.id
        )
    }

    /// `★★☆☆☆ 2/5` when the mention has a star rating; `None` otherwise (and for a value
    /// outside 1–5, which no source sends).
    pub(crate) fn stars_label(&self) -> Option<String> {
        let r = self.rating.filter(|r| (1..=5).contains(r))? as usize;
        Some(format!("{}{} {r}/5", "★".repeat(r), "☆".repeat(5 - r)))
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
        let mark = state_look(&self.state).emoji;
        match &self.state {
            AlertState::Open => format!("{mark} Open · unclaimed"),
            AlertState::Claimed { by, at } => {
                format!(
                    "{mark} Claimed by {} · {} after posting",
                    user(by),
                    after(at)
                )
            }
            AlertState::Resolved { by, note, .. } => match note {
                Some(n) => format!("{mark} Resolved by {} — {}", user(by), quote(n)),
                None => format!("{mark} Resolved by {}", user(by)),
            },
            AlertState::Snoozed { by, until } => format!(
                "{mark} Snoozed by {} until {}",
                user(by),
                until.format("%Y-%m-%d %H:%M UTC")
            ),
            AlertState::Ignored { by, reason, .. } => match reason {
                Some(r) => format!("{mark} Not relevant ({}) — {}", user(by), quote(r)),
                None => format!("{mark} Not relevant ({})", user(by)),
            },
            AlertState::Held => format!("{mark} Held back · low relevance"),
        }
    }

    /// The matched words to name, each cut to a label's length: at most `MATCHED_MAX`.
    pub(crate) fn matched_words(&self) -> Vec<String> {
        self.matched
            .iter()
            .take(MATCHED_MAX)
            .map(|w| one_line(w, MATCHED_CHARS))
            .collect()
    }

    /// The buttons this alert offers in its state.
    pub(crate) fn buttons(&self) -> &'static [Button] {
        buttons_for(&self.state)
    }
}

/// The priority's icon. Never shown alone: always with [`priority_words`].
pub(crate) fn priority_icon(p: Priority) -> &'static str {
    match p {
        Priority::Low => "⚪",
        Priority::Normal => "🔵",
        Priority::High => "🟠",
        Priority::Critical => "🔴",
    }
}

/// The priority in words: `High priority`.
pub(crate) fn priority_words(p: Priority) -> &'static str {
    match p {
        Priority::Low => "Low priority",
        Priority::Normal => "Normal priority",
        Priority::High => "High priority",
        Priority::Critical => "Critical priority",
    }
}

/// Icon and words, `🟠 High priority`: how alerts and digests name a priority.
pub(crate) fn priority_label(p: Priority) -> String {
    format!("{} {}", priority_icon(p), priority_words(p))
}

/// A reach as people say it: `1 follower`, `950 followers`, `12.3k followers`,
/// `2.1M subreddit members`, `4.2k karma`; `unit` is the plural from
/// [`crate::model::reach_unit_of`].
pub(crate) fn reach_label(n: u64, unit: &str) -> String {
    let one = |x: f64, unit: &str| {
        let s = format!("{x:.1}");
        format!("{}{unit}", s.strip_suffix(".0").unwrap_or(&s))
    };
    let count = match n {
        0..=999 => n.to_string(),
        1_000..=999_949 => one(n as f64 / 1e3, "k"),
        999_950..=999_949_999 => one(n as f64 / 1e6, "M"),
        _ => one(n as f64 / 1e9, "B"),
    };
    let unit = match (n, unit.strip_suffix('s')) {
        (1, Some(one)) => one,
        _ => unit,
    };
    format!("{count} {unit}")
}

/// How a state looks: the marker before the headline and on the state line, its name, and
/// the colour of a Discord embed (RGB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StateLook {
    pub(crate) emoji: &'static str,
    pub(crate) word: &'static str,
    pub(crate) colour: u32,
}

/// Open is red (someone must act), claimed amber, snoozed purple, resolved green, not
/// relevant grey, so a channel of alerts reads at a glance.
pub(crate) fn state_look(state: &AlertState) -> StateLook {
    let (emoji, word, colour) = match state {
        AlertState::Open => ("📥", "Open", 0xe74c3c),
        AlertState::Claimed { .. } => ("🙋", "Claimed", 0xf1c40f),
        AlertState::Snoozed { .. } => ("💤", "Snoozed", 0x9b59b6),
        AlertState::Resolved { .. } => ("✅", "Resolved", 0x2ecc71),
        AlertState::Ignored { .. } => ("🚫", "Not relevant", 0x95a5a6),
        AlertState::Held => ("🫥", "Held back", 0x95a5a6),
    };
    StateLook {
        emoji,
        word,
        colour,
    }
}

/// How much a button stands out; each platform maps it to its styles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Emphasis {
    /// The next step most people take (Slack `primary`, Discord blurple).
    Main,
    /// Closing it well (Discord green; plain on Slack, which has one primary).
    Positive,
    Plain,
    /// Taking it off the desk (Slack and Discord `danger`).
    Danger,
}

/// One button on an alert: its id (`chat::buttons`), label and emphasis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Button {
    pub(crate) id: &'static str,
    pub(crate) label: &'static str,
    pub(crate) emphasis: Emphasis,
}

const CLAIM: Button = Button {
    id: buttons::CLAIM,
    label: "Claim",
    emphasis: Emphasis::Main,
};
const UNCLAIM: Button = Button {
    id: buttons::UNCLAIM,
    label: "Unclaim",
    emphasis: Emphasis::Plain,
};
const RESOLVE: Button = Button {
    id: buttons::RESOLVE,
    label: "Resolve",
    emphasis: Emphasis::Positive,
};
const SNOOZE: Button = Button {
    id: buttons::SNOOZE,
    label: "Snooze",
    emphasis: Emphasis::Plain,
};
const IGNORE: Button = Button {
    id: buttons::IGNORE,
    label: "Not relevant",
    emphasis: Emphasis::Danger,
};
const REOPEN: Button = Button {
    id: buttons::REOPEN,
    label: "Reopen",
    emphasis: Emphasis::Plain,
};

/// The buttons a state offers: only what the state machine (`desk::state`) allows from it,
/// so a closed alert shows only Reopen and a claimed one Unclaim, Resolve and Snooze. A
/// snoozed alert can be claimed, resolved or marked not relevant before it wakes.
pub(crate) fn buttons_for(state: &AlertState) -> &'static [Button] {
    match state {
        AlertState::Open => &[CLAIM, RESOLVE, SNOOZE, IGNORE],
        AlertState::Claimed { .. } => &[UNCLAIM, RESOLVE, SNOOZE],
        AlertState::Snoozed { .. } => &[CLAIM, RESOLVE, IGNORE],
        AlertState::Resolved { .. } | AlertState::Ignored { .. } => &[REOPEN],
        // Never posted while held; promoting it (`/desk promote ID`) posts it as open.
        AlertState::Held => &[],
    }
}

/// One line of `s`: line breaks and tabs become spaces, control characters go, and it is cut
/// to `max` characters between graphemes.
pub(crate) fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .trim()
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|c| !c.is_control())
        .collect();
    crate::chat::text::truncate(&flat, max, crate::chat::text::Unit::Chars)
}

/// The distinct matched words of `text` (case-insensitively), in order, at most
/// `MATCHED_MAX`; bad highlight ranges are ignored as in [`excerpt`].
fn matched_words(text: &str, highlights: &[(usize, usize)]) -> Vec<String> {
    let mut spans: Vec<(usize, usize)> = highlights
        .iter()
        .copied()
        .filter(|&(s, e)| {
            s < e && e <= text.len() && text.is_char_boundary(s) && text.is_char_boundary(e)
        })
        .collect();
    spans.sort_unstable();
    let mut out: Vec<String> = Vec::new();
    for (s, e) in spans {
        let word = one_line(&text[s..e], MATCHED_CHARS);
        if !word.is_empty() && !out.iter().any(|w| w.to_lowercase() == word.to_lowercase()) {
            out.push(word);
        }
        if out.len() == MATCHED_MAX {
            break;
        }
    }
    out
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

/// A language tag as shown: the tag comes from the source (untrusted), so only letters,
/// digits and `-` pass, at most 16 of them; anything else shows as `unknown`.
fn lang_label(tag: &str) -> String {
    let tag = tag.trim();
    if !tag.is_empty()
        && tag.len() <= 16
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        tag.to_string()
    } else {
        "unknown".to_string()
    }
}

/// A plain open alert for renderers' tests to vary with struct update syntax.
#[cfg(test)]
impl AlertView {
    pub(crate) fn sample() -> AlertView {
        AlertView {
            id: AlertId(1),
            rules: vec!["acme".into()],
            source: "forum-feed".into(),
            source_kind: "file".into(),
            author: Some("dana_k".into()),
            author_reach: None,
            title: None,
            headline: "Acme support never answered my refund request".into(),
            excerpt: vec![],
            matched: vec!["Acme".into()],
            url: Some("https://example.com/p/1".into()),
            rating: None,
            priority: Priority::High,
            sentiment: -0.62,
            negative: true,
            human_negative: None,
            relevance: None,
            complaint: true,
            question: false,
            unscored_lang: None,
            state: AlertState::Open,
            created_at: chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 30, 9, 0, 0).unwrap(),
        }
    }
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

    /// From a rule's first label on, the detail line every platform shows gives the score and
    /// which labelled mentions it reads like; before that it says nothing about relevance.
    #[test]
    fn the_detail_line_shows_relevance_once_there_is_one() {
        let v = AlertView::sample();
        assert!(
            !v.detail_line().contains("relevance"),
            "{}",
            v.detail_line()
        );
        let low = AlertView {
            relevance: Some(0.12),
            ..AlertView::sample()
        };
        assert_eq!(
            low.detail_line(),
            "sentiment score -0.62 (from -1 to +1) · relevance 0.12 — most like mentions you marked not relevant · alert #1"
        );
        let high = AlertView {
            relevance: Some(0.93),
            ..AlertView::sample()
        };
        assert!(high
            .detail_line()
            .contains("relevance 0.93 — most like mentions you acted on"));
        let console = crate::chat::console::render_alert(&low);
        assert!(console.contains("relevance 0.12"), "{console}");
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
                relevance: None,
                held: false,
                promoted_at: None,
                created_audit_seq: None,
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
            state: AlertState::Resolved {
                by: "x:ann".into(),
                at: Utc::now(),
                note: Some("<b>".repeat(500)),
            },
            ..AlertView::sample()
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

    fn mention(title: Option<&str>, text: &str) -> (crate::model::Alert, Mention) {
        let at = text.find("acme").unwrap_or(0);
        let alert = crate::model::Alert {
            id: AlertId(4),
            mention_key: "f\u{1f}1".into(),
            rules: vec!["acme".into()],
            priority: Priority::Normal,
            sentiment: 0.0,
            negative: false,
            targets: vec![],
            state: AlertState::Open,
            created_at: Utc::now(),
            highlights: vec![(at, at + 4)],
            first_claimed_at: None,
            resolved_at: None,
            human_negative: None,
            relevance: None,
            held: false,
            promoted_at: None,
            created_audit_seq: None,
        };
        let m = Mention {
            item_id: "1".into(),
            source: "forum-feed".into(),
            source_kind: "file".into(),
            url: None,
            title: title.map(str::to_string),
            text: text.into(),
            author: Some("dana_k".into()),
            author_reach: Some(12_345),
            published: None,
            lang: None,
            rating: None,
        };
        (alert, m)
    }

    #[test]
    fn the_headline_is_the_title_else_the_first_line_and_is_never_said_twice() {
        let (a, m) = mention(Some("Refund\nplease"), "my acme order never came");
        let v = AlertView::new(&a, &m);
        assert_eq!(v.headline, "Refund please");
        assert_eq!(v.excerpt_text(), "my acme order never came");
        let (a, m) = mention(None, "is acme down?\nsecond line here");
        let v = AlertView::new(&a, &m);
        assert_eq!(v.headline, "is acme down?");
        assert!(!v.excerpt.is_empty(), "the rest of the post is quoted");
        let (a, m) = mention(None, "  acme broke my phone  ");
        let v = AlertView::new(&a, &m);
        assert_eq!(v.headline, "acme broke my phone");
        assert!(
            v.excerpt.is_empty(),
            "a one-line post is the headline alone"
        );
        assert_eq!(v.matched, vec!["acme".to_string()]);
        let (a, m) = mention(None, "");
        assert_eq!(AlertView::new(&a, &m).headline, "A mention matching acme");
    }

    #[test]
    fn who_said_it_where_keeps_the_handle_and_says_the_reach() {
        let (a, m) = mention(None, "acme");
        let v = AlertView::new(&a, &m);
        assert_eq!(
            v.who_line(),
            "by dana_k (12.3k followers) · forum-feed (file)"
        );
        let hn = AlertView {
            source: "hn".into(),
            source_kind: "hackernews".into(),
            ..v.clone()
        };
        assert_eq!(hn.who_line(), "by dana_k (12.3k karma) · hn (hackernews)");
        let v = AlertView { author: None, ..v };
        assert_eq!(v.who_line(), "forum-feed (file)");
    }

    #[test]
    fn reach_reads_like_people_say_it() {
        for (n, want) in [
            (1, "1 follower"),
            (950, "950 followers"),
            (1_000, "1k followers"),
            (12_345, "12.3k followers"),
            (999_949, "999.9k followers"),
            (999_950, "1M followers"),
            (2_130_000, "2.1M followers"),
            (3_000_000_000, "3B followers"),
        ] {
            assert_eq!(reach_label(n, "followers"), want, "{n}");
        }
        assert_eq!(reach_label(4_200, "karma"), "4.2k karma");
        assert_eq!(reach_label(1, "karma"), "1 karma");
        assert_eq!(
            reach_label(2_130_000, "subreddit members"),
            "2.1M subreddit members"
        );
        assert_eq!(reach_label(1, "subreddit members"), "1 subreddit member");
    }

    #[test]
    fn priority_and_sentiment_are_said_in_words() {
        assert_eq!(priority_label(Priority::High), "🟠 High priority");
        assert_eq!(priority_label(Priority::Low), "⚪ Low priority");
        let v = AlertView::sample();
        assert_eq!(v.sentiment_words(), "negative — complaint");
        let q = AlertView {
            negative: false,
            complaint: false,
            question: true,
            sentiment: 0.0,
            ..AlertView::sample()
        };
        assert_eq!(q.sentiment_words(), "neutral question");
        let p = AlertView {
            question: false,
            sentiment: 0.6,
            ..q.clone()
        };
        assert_eq!(p.sentiment_words(), "positive");
        assert_eq!(
            AlertView {
                human_negative: Some(false),
                ..AlertView::sample()
            }
            .sentiment_words(),
            "not negative (corrected by the team)"
        );
        assert_eq!(
            v.detail_line(),
            "sentiment score -0.62 (from -1 to +1) · alert #1"
        );
        // The words come from the text, the same way the intake judged it.
        let (mut a, m) = mention(Some("Where is my refund?"), "acme never answered");
        a.negative = true;
        assert_eq!(
            AlertView::new(&a, &m).sentiment_words(),
            "negative — complaint"
        );
        let (a, m) = mention(None, "does acme ship to Norway?");
        assert_eq!(AlertView::new(&a, &m).sentiment_words(), "neutral question");
    }

    /// A mention in a language the analysis does not score says so, on the urgency line and
    /// the detail line, instead of a made-up score; a hostile tag is never shown.
    #[test]
    fn an_unscored_language_is_said_instead_of_a_score() {
        let (a, mut m) = mention(None, "Acme hat mein Geld nicht erstattet");
        m.lang = Some("de".into());
        let v = AlertView::new(&a, &m);
        assert_eq!(v.sentiment_words(), "sentiment not scored (language: de)");
        assert_eq!(
            v.detail_line(),
            "sentiment is scored for English posts only · alert #4"
        );
        m.lang = Some("en-GB".into());
        assert_eq!(AlertView::new(&a, &m).unscored_lang, None);
        // Not a language tag at all: treated as none (so it is never shown); a tag-shaped
        // but odd one shows as `unknown`.
        m.lang = Some("<!channel>".into());
        assert_eq!(AlertView::new(&a, &m).unscored_lang, None);
        m.lang = Some("xx-<!channel>".into());
        assert_eq!(
            AlertView::new(&a, &m).sentiment_words(),
            "sentiment not scored (language: unknown)"
        );
        let rated = AlertView {
            rating: Some(1),
            negative: true,
            unscored_lang: Some("fr".into()),
            ..AlertView::sample()
        };
        assert_eq!(
            rated.sentiment_words(),
            "negative — low rating · sentiment not scored (language: fr)"
        );
    }

    #[test]
    fn each_state_has_its_own_marker_colour_and_buttons() {
        let at = Utc::now();
        let states = [
            AlertState::Open,
            AlertState::Claimed {
                by: "slack:U1".into(),
                at,
            },
            AlertState::Snoozed {
                by: "slack:U1".into(),
                until: at,
            },
            AlertState::Resolved {
                by: "slack:U1".into(),
                at,
                note: None,
            },
            AlertState::Ignored {
                by: "slack:U1".into(),
                at,
                reason: None,
            },
        ];
        let looks: Vec<StateLook> = states.iter().map(state_look).collect();
        for (i, a) in looks.iter().enumerate() {
            for b in &looks[i + 1..] {
                assert!(a.emoji != b.emoji && a.colour != b.colour, "{a:?} {b:?}");
            }
        }
        let ids = |s: &AlertState| buttons_for(s).iter().map(|b| b.id).collect::<Vec<_>>();
        assert_eq!(
            ids(&states[0]),
            [
                buttons::CLAIM,
                buttons::RESOLVE,
                buttons::SNOOZE,
                buttons::IGNORE
            ]
        );
        assert_eq!(
            ids(&states[1]),
            [buttons::UNCLAIM, buttons::RESOLVE, buttons::SNOOZE]
        );
        assert_eq!(
            ids(&states[2]),
            [buttons::CLAIM, buttons::RESOLVE, buttons::IGNORE]
        );
        assert_eq!(ids(&states[3]), [buttons::REOPEN]);
        assert_eq!(ids(&states[4]), [buttons::REOPEN]);
    }
}
