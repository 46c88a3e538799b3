//! `[desk]`: the slash command, escalation and reminder timers, who may act, and the time zone
//! for "tomorrow" snoozes. Reads only its own section.

use crate::config::{Reader, Table};
use crate::model::Target;
use std::time::Duration;

const KEYS: &[&str] = &[
    "command",
    "escalate_after",
    "escalate_to",
    "remind_after",
    "allowed",
    "timezone",
];

#[derive(Debug, Clone, PartialEq)]
pub struct DeskConfig {
    pub command: String,
    pub escalate_after: Duration,
    pub escalate_to: Option<Target>,
    pub remind_after: Option<Duration>,
    pub allowed: Vec<String>,
    /// For "tomorrow 9:00" snoozes.
    pub timezone: chrono_tz::Tz,
}

impl Default for DeskConfig {
    fn default() -> DeskConfig {
        DeskConfig {
            command: "/desk".into(),
            escalate_after: Duration::from_secs(15 * 60),
            escalate_to: None,
            remind_after: None,
            allowed: Vec::new(),
            timezone: chrono_tz::UTC,
        }
    }
}

impl DeskConfig {
    /// Reads `[desk]` (optional; every key has a default).
    pub(crate) fn read(r: &mut Reader, root: &Table) -> DeskConfig {
        let mut desk = DeskConfig::default();
        let Some(t) = r.table(root, "desk") else {
            return desk;
        };
        r.known_keys(t, "desk", KEYS);
        if let Some(c) = r.string(t, "desk", "command") {
            if !c.starts_with('/') || c.len() < 2 || c.contains(char::is_whitespace) {
                let line = r.key_line(t, "command");
                r.problem(
                    line,
                    "desk.command",
                    format!("{c:?} is not a slash command; write e.g. \"/desk\""),
                );
            }
            desk.command = c;
        }
        if let Some(d) = r.duration(t, "desk", "escalate_after") {
            desk.escalate_after = d;
        }
        desk.remind_after = r.duration(t, "desk", "remind_after");
        desk.escalate_to = r.target(t, "desk", "escalate_to");
        desk.allowed = r.string_array(t, "desk", "allowed");
        if let Some(tz) = r.timezone(t, "desk", "timezone") {
            desk.timezone = tz;
        }
        desk
    }
}
