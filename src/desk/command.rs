//! `/desk` subcommands: parsed once from the text people type into a closed enum, with short
//! answers that say what to type when the text is wrong. Parsing only; `desk/mod.rs` runs
//! them.

use crate::model::{Actor, AlertId};
use std::time::Duration;

/// Which alerts `list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFilter {
    Open,
    Mine,
    Unclaimed,
    /// Held back by the relevance filter, not posted.
    Held,
}

/// When a snooze ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnoozeFor {
    Duration(Duration),
    /// Tomorrow 9:00 in the desk's time zone.
    TomorrowMorning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Claim(AlertId),
    Unclaim(AlertId),
    Resolve(AlertId, Option<String>),
    Reopen(AlertId),
    Assign(AlertId, Actor),
    Snooze(AlertId, SnoozeFor),
    Ignore(AlertId, Option<String>),
    /// Post a held-back alert after all.
    Promote(AlertId),
    Note(AlertId, String),
    List(ListFilter),
    Show(AlertId),
    Stats(Duration),
    Relabel(AlertId),
    Preview(String),
    /// Post a test alert into the channel the command was typed in (the dispatcher runs it:
    /// it needs the chat platform, which the desk does not hold).
    Test,
    Help,
}

pub(crate) const SUBCOMMANDS: &[&str] = &[
    "claim", "unclaim", "resolve", "reopen", "assign", "snooze", "ignore", "note", "list", "show",
    "stats", "preview", "relabel", "test", "help", "promote",
];

/// Parses the text after the command (`claim 42`). `platform` prefixes user ids in `assign`.
/// The error is the whole private answer, naming what to type instead.
pub(crate) fn parse(text: &str, command: &str, platform: &str) -> Result<Command, String> {
    let text = text.trim();
    let (sub, rest) = match text.split_once(char::is_whitespace) {
        Some((s, r)) => (s, r.trim()),
        None => (text, ""),
    };
    let sub_lc = sub.to_lowercase();
    let usage = |u: &str| format!("Usage: `{command} {u}`");
    let id_then = |rest: &str, u: &str| -> Result<(AlertId, String), String> {
        let (id, tail) = match rest.split_once(char::is_whitespace) {
            Some((i, t)) => (i, t.trim()),
            None => (rest, ""),
        };
        if id.is_empty() {
            return Err(format!("`{sub_lc}` needs an alert id. {}", usage(u)));
        }
        let id = parse_id(id).ok_or_else(|| {
            format!(
                "`{id}` is not an alert id (the number after # on an alert). {}",
                usage(u)
            )
        })?;
        Ok((id, tail.to_string()))
    };
    let opt = |s: String| (!s.is_empty()).then_some(s);
    match sub_lc.as_str() {
        "" | "help" => Ok(Command::Help),
        "test" if rest.is_empty() => Ok(Command::Test),
        "test" => Err(format!(
            "`test` takes nothing after it: it posts a test alert in this channel. {}",
            usage("test")
        )),
        "claim" => no_tail(id_then(rest, "claim 42")?, "claim 42", command).map(Command::Claim),
        "unclaim" => {
            no_tail(id_then(rest, "unclaim 42")?, "unclaim 42", command).map(Command::Unclaim)
        }
        "reopen" => no_tail(id_then(rest, "reopen 42")?, "reopen 42", command).map(Command::Reopen),
        "show" => no_tail(id_then(rest, "show 42")?, "show 42", command).map(Command::Show),
        "promote" => {
            no_tail(id_then(rest, "promote 42")?, "promote 42", command).map(Command::Promote)
        }
        "relabel" => {
            no_tail(id_then(rest, "relabel 42")?, "relabel 42", command).map(Command::Relabel)
        }
        "resolve" => {
            let (id, note) = id_then(rest, "resolve 42 [note]")?;
            Ok(Command::Resolve(id, opt(note)))
        }
        "ignore" => {
            let (id, reason) = id_then(rest, "ignore 42 [reason]")?;
            Ok(Command::Ignore(id, opt(reason)))
        }
        "note" => {
            let (id, text) = id_then(rest, "note 42 your text")?;
            if text.is_empty() {
                return Err(format!(
                    "`note` needs some text. {}",
                    usage("note 42 your text")
                ));
            }
            Ok(Command::Note(id, text))
        }
        "assign" => {
            let (id, who) = id_then(rest, "assign 42 @user")?;
            let user = parse_user(&who, platform).ok_or_else(|| {
                format!(
                    "`assign` needs a person to assign to. {}",
                    usage("assign 42 @user")
                )
            })?;
            Ok(Command::Assign(id, user))
        }
        "snooze" => {
            let (id, how) = id_then(rest, "snooze 42 2h")?;
            let how_lc = how.to_lowercase();
            let snooze = match how_lc.as_str() {
                "" => {
                    return Err(format!(
                        "`snooze` needs how long. {} (or `tomorrow`)",
                        usage("snooze 42 2h")
                    ))
                }
                "tomorrow" => SnoozeFor::TomorrowMorning,
                d => SnoozeFor::Duration(
                    crate::util::parse_duration(d)
                        .map_err(|e| format!("{e}. {} (or `tomorrow`)", usage("snooze 42 2h")))?,
                ),
            };
            if matches!(snooze, SnoozeFor::Duration(d) if d.is_zero() || d > Duration::from_secs(30 * 86_400))
            {
                return Err("A snooze lasts from 1 minute to 30 days.".into());
            }
            Ok(Command::Snooze(id, snooze))
        }
        "list" => match rest.to_lowercase().as_str() {
            "" | "open" => Ok(Command::List(ListFilter::Open)),
            "mine" => Ok(Command::List(ListFilter::Mine)),
            "unclaimed" => Ok(Command::List(ListFilter::Unclaimed)),
            "held" => Ok(Command::List(ListFilter::Held)),
            other => Err(format!(
                "`{other}` is not a list filter. {}",
                usage("list [open|mine|unclaimed|held]")
            )),
        },
        "stats" => {
            let period = if rest.is_empty() { "7d" } else { rest };
            let d = crate::util::parse_duration(period)
                .map_err(|e| format!("{e}. {}", usage("stats [7d]")))?;
            Ok(Command::Stats(d))
        }
        "preview" => {
            if rest.is_empty() {
                return Err(format!(
                    "`preview` needs a rule query. {}",
                    usage("preview acme AND refund")
                ));
            }
            Ok(Command::Preview(rest.to_string()))
        }
        other => {
            let hint = closest(other)
                .map(|s| format!(" Did you mean `{command} {s}`?"))
                .unwrap_or_default();
            Err(format!(
                "`{other}` is not a {command} command.{hint} Type `{command} help` for the list."
            ))
        }
    }
}

fn no_tail(parsed: (AlertId, String), u: &str, command: &str) -> Result<AlertId, String> {
    if parsed.1.is_empty() {
        Ok(parsed.0)
    } else {
        Err(format!(
            "Too many words after the id. Usage: `{command} {u}`"
        ))
    }
}

/// `42` or `#42`.
pub(crate) fn parse_id(s: &str) -> Option<AlertId> {
    s.trim_start_matches('#')
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(AlertId)
}

/// An alert id on a button or dialog: as `parse_id`, but also `0`, which the buttons of a test
/// alert carry (`chat::setup::TEST_ALERT_ID`), so the dispatcher can say what they are.
pub(crate) fn parse_button_id(s: &str) -> Option<AlertId> {
    match s.trim_start_matches('#') {
        "0" => Some(AlertId(0)),
        other => parse_id(other),
    }
}

/// `<@U123|name>` (Slack, escaped), `<@U123>`, `<@!123>` (Discord), or a bare id.
pub(crate) fn parse_user(s: &str, platform: &str) -> Option<Actor> {
    let s = s.trim();
    let inner = s
        .strip_prefix("<@")
        .and_then(|r| r.strip_suffix('>'))
        .map(|r| {
            r.trim_start_matches('!')
                .split('|')
                .next()
                .unwrap_or_default()
        })
        .unwrap_or(s);
    let ok =
        !inner.is_empty() && inner.len() <= 32 && inner.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then(|| format!("{platform}:{inner}"))
}

fn closest(word: &str) -> Option<&'static str> {
    SUBCOMMANDS
        .iter()
        .map(|s| (strsim::levenshtein(word, s), *s))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, s)| s)
}

/// The answer to `help`.
pub(crate) fn help(command: &str) -> String {
    format!(
        "*{command}* — work the alerts on the desk\n\
`{command} claim 42` take alert #42 · `{command} unclaim 42` give it back\n\
`{command} resolve 42 [note]` close it · `{command} reopen 42`\n\
`{command} assign 42 @user` hand it to someone\n\
`{command} snooze 42 2h` (or `tomorrow`) · `{command} ignore 42 [reason]` not relevant\n\
`{command} note 42 text` add to its thread · `{command} show 42` details and history\n\
`{command} list [open|mine|unclaimed|held]` · `{command} stats [7d]`\n\
`{command} promote 42` post an alert the relevance filter held back\n\
`{command} relabel 42` the sentiment is wrong (negative ⇄ not negative)\n\
`{command} preview QUERY` try a rule on the last 1,000 mentions\n\
`{command} test` post a test alert in this channel (not stored, nothing to do)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, String> {
        parse(s, "/desk", "slack")
    }

    #[test]
    fn every_subcommand_parses() {
        let h = Duration::from_secs(3600);
        let cases = vec![
            ("claim 42", Command::Claim(AlertId(42))),
            ("CLAIM #42", Command::Claim(AlertId(42))),
            ("unclaim 4", Command::Unclaim(AlertId(4))),
            ("resolve 4", Command::Resolve(AlertId(4), None)),
            (
                "resolve 4 replied publicly",
                Command::Resolve(AlertId(4), Some("replied publicly".into())),
            ),
            ("reopen 4", Command::Reopen(AlertId(4))),
            (
                "assign 4 <@U0ABC|dana>",
                Command::Assign(AlertId(4), "slack:U0ABC".into()),
            ),
            (
                "assign 4 <@U0ABC>",
                Command::Assign(AlertId(4), "slack:U0ABC".into()),
            ),
            (
                "snooze 4 2h",
                Command::Snooze(AlertId(4), SnoozeFor::Duration(2 * h)),
            ),
            (
                "snooze 4 tomorrow",
                Command::Snooze(AlertId(4), SnoozeFor::TomorrowMorning),
            ),
            ("ignore 4", Command::Ignore(AlertId(4), None)),
            (
                "ignore 4 spam bot",
                Command::Ignore(AlertId(4), Some("spam bot".into())),
            ),
            (
                "note 4 called them back",
                Command::Note(AlertId(4), "called them back".into()),
            ),
            ("list", Command::List(ListFilter::Open)),
            ("list mine", Command::List(ListFilter::Mine)),
            ("list unclaimed", Command::List(ListFilter::Unclaimed)),
            ("list held", Command::List(ListFilter::Held)),
            ("promote #7", Command::Promote(AlertId(7))),
            ("show 4", Command::Show(AlertId(4))),
            ("relabel 4", Command::Relabel(AlertId(4))),
            ("stats", Command::Stats(168 * h)),
            ("stats 30d", Command::Stats(720 * h)),
            (
                "preview acme AND refund",
                Command::Preview("acme AND refund".into()),
            ),
            ("help", Command::Help),
            ("", Command::Help),
        ];
        for (text, want) in cases {
            assert_eq!(p(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn mistakes_get_answers_that_say_what_to_type() {
        let cases = [
            ("clam 4", "Did you mean `/desk claim`?"),
            ("frobnicate", "Type `/desk help`"),
            ("claim", "needs an alert id. Usage: `/desk claim 42`"),
            ("claim abc", "`abc` is not an alert id"),
            ("claim 4 5", "Too many words"),
            ("assign 4", "needs a person"),
            ("snooze 4", "needs how long"),
            ("snooze 4 soon", "Usage: `/desk snooze 42 2h`"),
            ("snooze 4 90d", "from 1 minute to 30 days"),
            ("note 4", "needs some text"),
            ("list everything", "is not a list filter"),
            ("stats forever", "Usage: `/desk stats [7d]`"),
            ("preview", "needs a rule query"),
        ];
        for (text, needle) in cases {
            let err = p(text).unwrap_err();
            assert!(
                err.contains(needle),
                "{text:?} → {err:?} should contain {needle:?}"
            );
        }
    }
}
