//! Plain data shared by every module: mentions, alerts, their states, targets and ids.
//! Nothing here does I/O or decides anything; the types only carry facts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
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
    /// Followers or similar, when the source tells it.
    pub author_reach: Option<u64>,
    pub published: Option<DateTime<Utc>>,
    pub lang: Option<String>,
}

impl Mention {
    /// The key under which this mention is stored and deduplicated: unique per source item.
    pub fn key(&self) -> String {
        format!("{}\u{1f}{}", self.source, self.item_id)
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
    pub fn raised(self) -> Priority {
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
}

impl AlertState {
    pub fn name(&self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Claimed { .. } => "claimed",
            AlertState::Resolved { .. } => "resolved",
            AlertState::Snoozed { .. } => "snoozed",
            AlertState::Ignored { .. } => "ignored",
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
}

/// Where a posted alert lives on a platform, so it can be edited and threaded later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRef {
    pub target: Target,
    /// The platform's channel id (Slack resolves `#name` to `C...`).
    pub channel_id: String,
    /// Slack `ts` or Discord message id.
    pub message_id: String,
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
    fn priority_raises_and_saturates() {
        assert_eq!(Priority::Low.raised(), Priority::Normal);
        assert_eq!(Priority::Critical.raised(), Priority::Critical);
        assert!(Priority::High > Priority::Normal);
    }
}
