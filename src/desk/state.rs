//! The alert lifecycle as one pure state machine: which action is allowed from which state,
//! what the new state is, and which timers it starts or cancels. No I/O; the desk applies
//! the result to the store with compare-and-swap.

use super::config::DeskConfig;
use crate::model::{Actor, AlertState, TimerKind};
use chrono::{DateTime, Utc};

/// Everything that can change an alert's state. Closed: a new action is a new variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Claim,
    Unclaim,
    Resolve {
        note: Option<String>,
    },
    Reopen,
    Assign {
        to: Actor,
    },
    Snooze {
        until: DateTime<Utc>,
    },
    Ignore {
        reason: Option<String>,
    },
    /// The snooze ran out (system).
    Wake,
    /// A held-back alert is posted after all (`/desk promote ID`).
    Promote,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Claim => "claim",
            Action::Unclaim => "unclaim",
            Action::Resolve { .. } => "resolve",
            Action::Reopen => "reopen",
            Action::Assign { .. } => "assign",
            Action::Snooze { .. } => "snooze",
            Action::Ignore { .. } => "ignore",
            Action::Wake => "wake",
            Action::Promote => "promote",
        }
    }
}

/// Why an action is not allowed now; the desk turns it into a short private answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    AlreadyYours,
    ClaimedBy(Actor),
    NotClaimed,
    Closed(&'static str),
    NotClosed,
    NotSnoozed,
    SnoozeInPast,
    /// The alert is held back: only promoting it or marking it not relevant applies.
    Held,
    NotHeld,
}

/// The new state for `action` by `actor` at `now`, or why not.
pub(crate) fn transition(
    state: &AlertState,
    action: &Action,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<AlertState, Refusal> {
    use AlertState::*;
    let closed = |s: &AlertState| matches!(s, Resolved { .. } | Ignored { .. });
    if closed(state) && !matches!(action, Action::Reopen) {
        return Err(Refusal::Closed(state.name()));
    }
    // A held-back alert was never posted: it is promoted (then posted as open) or confirmed
    // not relevant, nothing else.
    if matches!(state, Held) && !matches!(action, Action::Promote | Action::Ignore { .. }) {
        return Err(Refusal::Held);
    }
    Ok(match action {
        Action::Claim => match state {
            Claimed { by, .. } if by == actor => return Err(Refusal::AlreadyYours),
            Claimed { by, .. } => return Err(Refusal::ClaimedBy(by.clone())),
            _ => Claimed {
                by: actor.clone(),
                at: now,
            },
        },
        Action::Unclaim => match state {
            Claimed { .. } => Open,
            _ => return Err(Refusal::NotClaimed),
        },
        Action::Resolve { note } => Resolved {
            by: actor.clone(),
            at: now,
            note: note.clone(),
        },
        Action::Reopen => match state {
            Resolved { .. } | Ignored { .. } => Open,
            _ => return Err(Refusal::NotClosed),
        },
        Action::Assign { to } => match state {
            Claimed { by, .. } if by == to => return Err(Refusal::ClaimedBy(by.clone())),
            _ => Claimed {
                by: to.clone(),
                at: now,
            },
        },
        Action::Snooze { until } => {
            if *until <= now {
                return Err(Refusal::SnoozeInPast);
            }
            Snoozed {
                by: actor.clone(),
                until: *until,
            }
        }
        Action::Ignore { reason } => Ignored {
            by: actor.clone(),
            at: now,
            reason: reason.clone(),
        },
        Action::Wake => match state {
            Snoozed { until, .. } if *until <= now => Open,
            _ => return Err(Refusal::NotSnoozed),
        },
        Action::Promote => match state {
            Held => Open,
            _ => return Err(Refusal::NotHeld),
        },
    })
}

/// Timers for a state just entered: which to cancel and which to (re)start. The timer a
/// state change waits for is cancelled by that change, in the same transaction.
pub(crate) fn timers_for(
    state: &AlertState,
    now: DateTime<Utc>,
    desk: &DeskConfig,
) -> (Vec<TimerKind>, Vec<(TimerKind, DateTime<Utc>)>) {
    let after = |d: std::time::Duration| now + chrono::Duration::from_std(d).unwrap_or_default();
    match state {
        AlertState::Open => (
            vec![TimerKind::Remind, TimerKind::Wake],
            vec![(TimerKind::Escalate, after(desk.escalate_after))],
        ),
        AlertState::Claimed { .. } => (
            vec![TimerKind::Escalate, TimerKind::Wake, TimerKind::Remind],
            desk.remind_after
                .map(|d| (TimerKind::Remind, after(d)))
                .into_iter()
                .collect(),
        ),
        AlertState::Snoozed { until, .. } => (
            vec![TimerKind::Escalate, TimerKind::Remind, TimerKind::Wake],
            vec![(TimerKind::Wake, *until)],
        ),
        AlertState::Resolved { .. } | AlertState::Ignored { .. } | AlertState::Held => (
            vec![TimerKind::Escalate, TimerKind::Remind, TimerKind::Wake],
            vec![],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }
    fn a(s: &str) -> Actor {
        format!("slack:{s}")
    }
    fn claimed(by: &str) -> AlertState {
        AlertState::Claimed {
            by: a(by),
            at: t(0),
        }
    }
    fn resolved() -> AlertState {
        AlertState::Resolved {
            by: a("U1"),
            at: t(0),
            note: None,
        }
    }

    #[test]
    fn transition_table() {
        use AlertState::*;
        let snoozed = Snoozed {
            by: a("U1"),
            until: t(60),
        };
        let ignored = Ignored {
            by: a("U1"),
            at: t(0),
            reason: None,
        };
        let cases: Vec<(AlertState, Action, &str, Result<&str, Refusal>)> = vec![
            (Open, Action::Claim, "U1", Ok("claimed")),
            (snoozed.clone(), Action::Claim, "U1", Ok("claimed")),
            (
                claimed("U1"),
                Action::Claim,
                "U1",
                Err(Refusal::AlreadyYours),
            ),
            (
                claimed("U1"),
                Action::Claim,
                "U2",
                Err(Refusal::ClaimedBy(a("U1"))),
            ),
            (
                resolved(),
                Action::Claim,
                "U1",
                Err(Refusal::Closed("resolved")),
            ),
            (
                ignored.clone(),
                Action::Claim,
                "U1",
                Err(Refusal::Closed("ignored")),
            ),
            (claimed("U1"), Action::Unclaim, "U1", Ok("open")),
            (Open, Action::Unclaim, "U1", Err(Refusal::NotClaimed)),
            (Open, Action::Resolve { note: None }, "U1", Ok("resolved")),
            (
                claimed("U2"),
                Action::Resolve { note: None },
                "U1",
                Ok("resolved"),
            ),
            (
                resolved(),
                Action::Resolve { note: None },
                "U1",
                Err(Refusal::Closed("resolved")),
            ),
            (resolved(), Action::Reopen, "U1", Ok("open")),
            (ignored.clone(), Action::Reopen, "U1", Ok("open")),
            (Open, Action::Reopen, "U1", Err(Refusal::NotClosed)),
            (Open, Action::Assign { to: a("U9") }, "U1", Ok("claimed")),
            (
                claimed("U9"),
                Action::Assign { to: a("U9") },
                "U1",
                Err(Refusal::ClaimedBy(a("U9"))),
            ),
            (Open, Action::Snooze { until: t(30) }, "U1", Ok("snoozed")),
            (
                Open,
                Action::Snooze { until: t(-5) },
                "U1",
                Err(Refusal::SnoozeInPast),
            ),
            (
                claimed("U1"),
                Action::Ignore { reason: None },
                "U1",
                Ok("ignored"),
            ),
            (
                snoozed.clone(),
                Action::Wake,
                "system",
                Err(Refusal::NotSnoozed),
            ),
            (
                Snoozed {
                    by: a("U1"),
                    until: t(-1),
                },
                Action::Wake,
                "system",
                Ok("open"),
            ),
            (Open, Action::Wake, "system", Err(Refusal::NotSnoozed)),
            (Held, Action::Promote, "U1", Ok("open")),
            (Held, Action::Ignore { reason: None }, "U1", Ok("ignored")),
            (Held, Action::Claim, "U1", Err(Refusal::Held)),
            (
                Held,
                Action::Resolve { note: None },
                "U1",
                Err(Refusal::Held),
            ),
            (Open, Action::Promote, "U1", Err(Refusal::NotHeld)),
        ];
        for (state, action, who, want) in cases {
            let got = transition(&state, &action, &a(who), t(0)).map(|s| s.name());
            assert_eq!(got, want, "{state:?} + {action:?} by {who}");
        }
    }

    #[test]
    fn claim_records_owner_and_time() {
        let s = transition(&AlertState::Open, &Action::Claim, &a("U7"), t(4)).unwrap();
        assert_eq!(
            s,
            AlertState::Claimed {
                by: a("U7"),
                at: t(4)
            }
        );
    }

    #[test]
    fn timers_follow_the_state() {
        let desk = DeskConfig {
            command: "/desk".into(),
            escalate_after: std::time::Duration::from_secs(900),
            escalate_to: None,
            remind_after: Some(std::time::Duration::from_secs(3600)),
            allowed: vec![],
            timezone: chrono_tz::UTC,
        };
        let (cancel, set) = timers_for(&AlertState::Open, t(0), &desk);
        assert_eq!(set, vec![(TimerKind::Escalate, t(15))]);
        assert!(cancel.contains(&TimerKind::Wake));
        let (cancel, set) = timers_for(&claimed("U1"), t(0), &desk);
        assert!(cancel.contains(&TimerKind::Escalate));
        assert_eq!(set, vec![(TimerKind::Remind, t(60))]);
        let (cancel, set) = timers_for(&resolved(), t(0), &desk);
        assert_eq!(cancel.len(), 3);
        assert!(set.is_empty());
    }
}
