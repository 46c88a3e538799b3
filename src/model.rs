//! Plain data shared by every module: mentions, alerts, their states, targets and ids.
//! Nothing here does I/O or decides anything; the types only carry facts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// One item heard on a source, normalised so every later stage treats all sources alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mention {
    /// The source's own id for the item (feed guid, post id, line id); stable across polls.
    pub item_id: String,
    /// The configured source name (`[[sources]].name`).
    pub source: String,
    /// The source kind (`rss`, `file`, ...).
    pub source_kind: String,
    pub url: Option<String>,
    pub title: Option<String>,
    pub text: String,
    pub author: Option<String>,
    /// Followers or similar, when the source tells it; `reach_unit()` says what it counts.
    pub author_reach: Option<u64>,
    pub published: Option<DateTime<Utc>>,
    pub lang: Option<String>,
    /// The author's star rating, 1 to 5, where the source has one (app store reviews).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<u8>,
}

impl Mention {
    /// Drops NUL characters (U+0000) from every text field. A feed or webhook can carry one;
    /// PostgreSQL refuses it in text and JSON, which would fail that poll's transaction on
    /// every retry, and no reader can see it anyway. Both backends store the same text.
    pub(crate) fn strip_nul(&mut self) {
        fn strip(s: &mut String) {
            if s.contains('\0') {
                s.retain(|c| c != '\0');
            }
        }
        for s in [
            &mut self.item_id,
            &mut self.source,
            &mut self.source_kind,
            &mut self.text,
        ] {
            strip(s);
        }
        for s in [
            &mut self.url,
            &mut self.title,
            &mut self.author,
            &mut self.lang,
        ]
        .into_iter()
        .flatten()
        {
            strip(s);
        }
    }

    /// The key under which this mention is stored and deduplicated: unique per source item.
    pub fn key(&self) -> String {
        format!("{}\u{1f}{}", self.source, self.item_id)
    }

    /// What `author_reach` counts, as the plural noun to print after the number. It follows
    /// from the kind of source, so stored mentions need no field for it: Hacker News has no
    /// followers and gives the author's karma; Reddit gives the members of the subreddit the
    /// mention is in (the reach of the place, not of the author); every other source that
    /// gives a reach gives followers.
    pub fn reach_unit(&self) -> &'static str {
        reach_unit_of(&self.source_kind)
    }
}

/// [`Mention::reach_unit`] for a source kind, for views that keep only the kind.
pub fn reach_unit_of(source_kind: &str) -> &'static str {
    match source_kind {
        "hackernews" => "karma",
        "reddit" => "subreddit members",
        _ => "followers",
    }
}

/// How urgent an alert is. Ordered: `Low < Normal < High < Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Critical,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// One level up, saturating at `Critical`.
    pub(crate) fn raised(self) -> Priority {
        match self {
            Priority::Low => Priority::Normal,
            Priority::Normal => Priority::High,
            Priority::High | Priority::Critical => Priority::Critical,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The short number people type in chat (`/desk claim 42`) and see as `#42`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertId(pub u64);

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where an alert goes: `slack:#channel` / `slack:C0123` or `discord:<channel id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Target {
    Slack(String),
    Discord(String),
}

impl Target {
    /// Parses the config form; the error says what a valid target looks like.
    pub fn parse(s: &str) -> Result<Target, String> {
        let hint = "expected \"slack:#channel\", \"slack:C0123ABCD\" or \"discord:<channel id>\"";
        match s.split_once(':') {
            Some(("slack", rest)) if !rest.trim().is_empty() => {
                Ok(Target::Slack(rest.trim().to_string()))
            }
            Some(("discord", rest))
                if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Ok(Target::Discord(rest.to_string()))
            }
            Some(("discord", _)) => Err(format!(
                "alert target {s:?}: a Discord target is a numeric channel id; {hint}"
            )),
            _ => Err(format!("alert target {s:?} is not valid; {hint}")),
        }
    }

    pub fn platform(&self) -> &'static str {
        match self {
            Target::Slack(_) => "slack",
            Target::Discord(_) => "discord",
        }
    }

    pub fn channel(&self) -> &str {
        match self {
            Target::Slack(c) | Target::Discord(c) => c,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.platform(), self.channel())
    }
}

/// Where an alert is in its life. The transitions are the desk's business; this is the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum AlertState {
    Open,
    Claimed {
        by: String,
        at: DateTime<Utc>,
    },
    Resolved {
        by: String,
        at: DateTime<Utc>,
        note: Option<String>,
    },
    Snoozed {
        by: String,
        until: DateTime<Utc>,
    },
    Ignored {
        by: String,
        at: DateTime<Utc>,
        reason: Option<String>,
    },
    /// Held back: the rule's relevance model scored it below `[relevance] hold_below`, so it
    /// is stored but not posted until someone promotes it (`/desk promote ID`).
    Held,
}

impl AlertState {
    pub fn name(&self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Claimed { .. } => "claimed",
            AlertState::Resolved { .. } => "resolved",
            AlertState::Snoozed { .. } => "snoozed",
            AlertState::Ignored { .. } => "ignored",
            AlertState::Held => "held",
        }
    }
}

/// A mention that matched at least one rule and so went on the desk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: AlertId,
    /// `Mention::key()` of the mention this alert is about.
    pub mention_key: String,
    /// The rules that matched; the first decides the targets' order in the message.
    pub rules: Vec<String>,
    pub priority: Priority,
    /// VADER compound score, -1..1.
    pub sentiment: f64,
    pub negative: bool,
    pub targets: Vec<Target>,
    pub state: AlertState,
    pub created_at: DateTime<Utc>,
    /// Byte ranges of the mention text that the rules matched, to highlight the excerpt.
    #[serde(default)]
    pub highlights: Vec<(usize, usize)>,
    /// First time anyone claimed it: time to claim is `first_claimed_at - created_at`.
    #[serde(default)]
    pub(crate) first_claimed_at: Option<DateTime<Utc>>,
    /// When it was last resolved: time to resolve is `resolved_at - created_at`.
    #[serde(default)]
    pub(crate) resolved_at: Option<DateTime<Utc>>,
    /// A person's correction of `negative` (`/desk relabel`), kept to measure accuracy.
    #[serde(default)]
    pub(crate) human_negative: Option<bool>,
    /// The relevance its rules' models gave the mention when the alert was made (the highest
    /// of its rules), 0..1; `None` before a rule's first label or with `[relevance]` off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relevance: Option<f32>,
    /// Whether it was held back when made; stays true after a promotion (that is how a
    /// promotion, a miss of the filter, is counted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    /// When a held-back alert was promoted (posted): response times and ages count from then,
    /// not from the days it waited unseen. `None` for an alert posted when made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_at: Option<DateTime<Utc>>,
    /// sled only: the audit sequence number its "created" entry was given. That entry is
    /// not stored, it is `created_entry()`: one store entry less per alert (sled's memory
    /// grows with its entries). `None` where the entry is stored (PostgreSQL, and alerts
    /// from before, or copied in with their audit).
    #[serde(
        default,
        rename = "created_seq",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) created_audit_seq: Option<u64>,
}

impl Alert {
    /// When the team could first see it: its promotion for a held-back alert, else its
    /// creation.
    pub fn posted_at(&self) -> DateTime<Utc> {
        self.promoted_at.unwrap_or(self.created_at)
    }

    /// The first line of its audit log, which everything in it says: made by the system
    /// when it was created, open or held back by the relevance filter (`held` stays true
    /// after a promotion), with the rules that matched.
    pub fn created_entry(&self) -> AuditEntry {
        let to = if self.held {
            AlertState::Held
        } else {
            AlertState::Open
        };
        AuditEntry {
            at: self.created_at,
            actor: "system".into(),
            action: "created".into(),
            from: "-".into(),
            to: to.name().into(),
            detail: Some(format!("rules {}", self.rules.join(", "))),
        }
    }

    /// Held back and never promoted: no message of it exists in any channel.
    pub fn never_posted(&self) -> bool {
        self.held && self.promoted_at.is_none()
    }
}

/// Who did something: `"<platform>:<user id>"`, e.g. `slack:U0123ABCD`, or `system`.
pub type Actor = String;

/// One line of an alert's audit log: who did what, when, from which state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: String,
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Durable timers the desk keeps per alert; at most one of each kind per alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// Unclaimed for too long: ping `[desk].escalate_to`.
    Escalate,
    /// Claimed but unresolved for too long: remind the owner.
    Remind,
    /// Snooze ends: back to open.
    Wake,
}

impl TimerKind {
    pub fn code(self) -> u8 {
        match self {
            TimerKind::Escalate => 1,
            TimerKind::Remind => 2,
            TimerKind::Wake => 3,
        }
    }

    /// The kind whose `code` this is.
    pub fn from_code(code: u8) -> Option<TimerKind> {
        [TimerKind::Escalate, TimerKind::Remind, TimerKind::Wake]
            .into_iter()
            .find(|k| k.code() == code)
    }
}

/// Platform-neutral rich text for thread notes, replies and escalations. Each platform
/// renders and escapes it its own way, so untrusted `Text` can never become markup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v", rename_all = "snake_case")]
pub enum Part {
    Text(String),
    Bold(String),
    Code(String),
    /// A user, as an `Actor` (`slack:U0123`): a mention on its own platform.
    User(String),
    /// A Slack user group (`S0123`) or channel to ping on purpose (escalation only).
    Ping(String),
    Link {
        url: String,
        label: String,
    },
    Newline,
    /// A button acting on an alert (Promote on a held-back one): `action` is a button id of
    /// `chat::buttons`, `label` what it says. Platforms show a note's buttons together below
    /// its text (the text next to it names the command, for where there are none).
    Button {
        action: String,
        alert: AlertId,
        label: String,
    },
}

/// A sequence of parts; build with the helpers for readable call sites.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note(pub Vec<Part>);

impl Note {
    pub fn new() -> Note {
        Note(Vec::new())
    }
    pub fn text(mut self, s: impl Into<String>) -> Note {
        self.0.push(Part::Text(s.into()));
        self
    }
    pub fn bold(mut self, s: impl Into<String>) -> Note {
        self.0.push(Part::Bold(s.into()));
        self
    }
    pub fn code(mut self, s: impl Into<String>) -> Note {
        self.0.push(Part::Code(s.into()));
        self
    }
    pub fn user(mut self, actor: impl Into<String>) -> Note {
        self.0.push(Part::User(actor.into()));
        self
    }
    pub(crate) fn ping(mut self, who: impl Into<String>) -> Note {
        self.0.push(Part::Ping(who.into()));
        self
    }
    pub(crate) fn link(mut self, url: impl Into<String>, label: impl Into<String>) -> Note {
        self.0.push(Part::Link {
            url: url.into(),
            label: label.into(),
        });
        self
    }
    pub(crate) fn newline(mut self) -> Note {
        self.0.push(Part::Newline);
        self
    }
    pub(crate) fn append(mut self, other: Note) -> Note {
        self.0.extend(other.0);
        self
    }
    pub(crate) fn button(
        mut self,
        action: impl Into<String>,
        alert: AlertId,
        label: impl Into<String>,
    ) -> Note {
        self.0.push(Part::Button {
            action: action.into(),
            alert,
            label: label.into(),
        });
        self
    }

    /// The note's buttons, in order: (action, alert, label).
    pub(crate) fn buttons(&self) -> impl Iterator<Item = (&str, AlertId, &str)> {
        self.0.iter().filter_map(|p| match p {
            Part::Button {
                action,
                alert,
                label,
            } => Some((action.as_str(), *alert, label.as_str())),
            _ => None,
        })
    }

    /// Our own fixed texts with `code` and *bold* spans, turned into parts so each platform
    /// renders them its own way. Anything between the marks is still escaped as text.
    pub(crate) fn markup(s: &str) -> Note {
        let mut note = Note::new();
        for (i, chunk) in s.split('`').enumerate() {
            if chunk.is_empty() {
                continue;
            }
            if i % 2 == 1 {
                note = note.code(chunk);
                continue;
            }
            for (j, part) in chunk.split('*').enumerate() {
                if part.is_empty() {
                    continue;
                }
                note = if j % 2 == 1 {
                    note.bold(part)
                } else {
                    note.text(part)
                };
            }
        }
        note
    }

    /// Plain text without markup, for logs and tests.
    pub fn plain(&self) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Part::Text(s) | Part::Bold(s) | Part::Code(s) => s.clone(),
                Part::User(u) => format!("@{}", u.split_once(':').map_or(u.as_str(), |x| x.1)),
                Part::Ping(p) => format!("@{p}"),
                Part::Link { label, url } => format!("{label} ({url})"),
                Part::Newline => "\n".into(),
                // Shown apart from the text; see `buttons`.
                Part::Button { .. } => String::new(),
            })
            .collect()
    }
}

/// A digest ready to post: neutral text and the chart, the same for every target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestPost {
    pub title: String,
    pub body: Note,
    /// PNG bytes, base64 in the record so it stays compact JSON.
    #[serde(default, with = "b64_opt")]
    pub chart: Option<Vec<u8>>,
    pub chart_alt: String,
}

/// Base64 for the chart bytes inside JSON records (plain arrays of numbers would triple them).
mod b64_opt {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&base64::engine::general_purpose::STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        let v: Option<String> = Option::deserialize(d)?;
        v.map(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

/// Where a posted alert lives on a platform, so it can be edited and threaded later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRef {
    pub target: Target,
    /// The platform's channel id (Slack resolves `#name` to `C...`).
    pub channel_id: String,
    /// Slack `ts` or Discord message id.
    pub message_id: String,
    /// A link people can open to reach the message (escalation rounds list it), when the
    /// platform could build one; references stored before it was recorded have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permalink: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print_back() {
        for s in [
            "slack:#pr-alerts",
            "slack:C0123ABCD",
            "discord:123456789012345678",
        ] {
            assert_eq!(Target::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn bad_targets_say_what_is_expected() {
        for s in ["#pr-alerts", "teams:#x", "slack:", "discord:general"] {
            let err = Target::parse(s).unwrap_err();
            assert!(err.contains("slack:#channel"), "{err}");
        }
    }

    #[test]
    fn markup_splits_code_and_bold() {
        let n = Note::markup("*/desk* help: `/desk claim 42` takes it");
        assert_eq!(
            n.0,
            vec![
                Part::Bold("/desk".into()),
                Part::Text(" help: ".into()),
                Part::Code("/desk claim 42".into()),
                Part::Text(" takes it".into()),
            ]
        );
    }

    #[test]
    fn priority_raises_and_saturates() {
        assert_eq!(Priority::Low.raised(), Priority::Normal);
        assert_eq!(Priority::Critical.raised(), Priority::Critical);
        assert!(Priority::High > Priority::Normal);
    }
}

/// A secret from the config or a credential in a platform payload (a Slack `response_url`, a
/// Discord interaction token). Its `Debug` and `Display` never show the value.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The value, for the one place that sends it (an SDK client or an HMAC).
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// What a source remembers between polls; persisted by the intake with the items it produced,
/// so a restart resumes where the last committed poll ended. Plain data here (not in
/// `sources/`) because the store keeps it too, and the store must not depend on sources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceState {
    pub(crate) etag: Option<String>,
    pub(crate) last_modified: Option<String>,
    /// Kind-specific resume point (file fingerprint, API cursor, ...).
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

/// What a refusal stops until someone fixes its cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every call to the platform: the token was refused or revoked, the workspace is gone.
    Platform,
    /// Every call for one channel: not found, bot not in it, missing permissions.
    Target,
    /// Only this message: its content was refused, or the message it edits is gone.
    Message,
}
