//! The desk: applies people's actions to alerts (through the pure state machine in
//! `state.rs`, written with compare-and-swap), answers `/desk` commands, and fires the
//! durable timers (escalation, reminders, snooze ends). Every chat interaction reaches it
//! through `dispatch.rs`. It never calls a chat SDK: changes go to the outbox and replies
//! are returned as neutral `Note`s.

pub(crate) mod command;
pub mod config;
pub(crate) mod dispatch;
pub mod relevance;
pub mod state;
pub mod timers;

use crate::analysis::relevance::config::RelevanceConfig;
use crate::chat::buttons;
use crate::chat::view::excerpt;
use crate::metrics::Metrics;
use crate::model::{
    Actor, Alert, AlertId, AlertState, AuditEntry, Note, Priority, Target, TimerKind,
};
use crate::rules::{Document, Query};
use crate::store::{
    AlertChange, AlertHead, ChangeOutcome, HeadState, OutboxAction, Store, StoreError, Timer,
};
use crate::util::{human_duration, percentile};
use chrono::{DateTime, Utc};
use command::{Command, ListFilter, SnoozeFor};
use config::DeskConfig;
use state::{Action, Refusal};
use std::sync::Arc;

/// The answer to an action: whether it changed the alert, and what to tell the person.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub applied: bool,
    pub note: Note,
}

impl Outcome {
    fn refused(note: Note) -> Result<Outcome, StoreError> {
        Ok(Outcome {
            applied: false,
            note,
        })
    }
}

/// The longest `Desk::round_window`.
const ROUND_WINDOW_MAX: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// How many times a change is retried when someone else changed the alert first.
const CAS_RETRIES: usize = 5;
/// How many stored mentions `preview` tries a rule on.
pub(crate) const PREVIEW_MENTIONS: usize = 1000;

/// The store wakes the relay itself on every outbox write, so the desk holds no signal.
#[derive(Clone)]
pub struct Desk {
    store: Store,
    cfg: DeskConfig,
    relevance: RelevanceConfig,
    /// Where promotions are counted (`mentiondesk_promoted_total`).
    metrics: Arc<Metrics>,
}

impl Desk {
    pub fn new(store: Store, cfg: DeskConfig) -> Desk {
        Desk {
            store,
            cfg,
            relevance: RelevanceConfig::default(),
            metrics: Arc::default(),
        }
    }

    /// Counts promotions in the daemon's `/metrics` (a desk of its own counts for nobody).
    pub(crate) fn with_metrics(mut self, metrics: Arc<Metrics>) -> Desk {
        self.metrics = metrics;
        self
    }

    /// Learns relevance (or not) as `[relevance]` says; the default is on.
    pub fn with_relevance(mut self, relevance: RelevanceConfig) -> Desk {
        self.relevance = relevance;
        self
    }

    pub fn config(&self) -> &DeskConfig {
        &self.cfg
    }

    /// Runs one `/desk` command for `actor`; the answer is private to them.
    pub async fn run(&self, actor: &Actor, cmd: Command, now: DateTime<Utc>) -> Note {
        let result = match cmd {
            Command::Claim(id) => self
                .act(id, actor, Action::Claim, now)
                .await
                .map(|o| o.note),
            Command::Unclaim(id) => self
                .act(id, actor, Action::Unclaim, now)
                .await
                .map(|o| o.note),
            Command::Resolve(id, note) => self
                .act(id, actor, Action::Resolve { note }, now)
                .await
                .map(|o| o.note),
            Command::Reopen(id) => self
                .act(id, actor, Action::Reopen, now)
                .await
                .map(|o| o.note),
            Command::Assign(id, to) => self
                .act(id, actor, Action::Assign { to }, now)
                .await
                .map(|o| o.note),
            Command::Snooze(id, how) => {
                let until = self.snooze_until(how, now);
                self.act(id, actor, Action::Snooze { until }, now)
                    .await
                    .map(|o| o.note)
            }
            Command::Ignore(id, reason) => self
                .act(id, actor, Action::Ignore { reason }, now)
                .await
                .map(|o| o.note),
            Command::Promote(id) => self
                .act(id, actor, Action::Promote, now)
                .await
                .map(|o| o.note),
            Command::Note(id, text) => self.note(id, actor, &text, now).await,
            Command::List(filter) => self.list(filter, actor, now).await,
            Command::Show(id) => self.show(id).await,
            Command::Stats(period) => self.stats(period, now).await,
            Command::Relabel(id) => self.relabel(id, actor, now).await,
            Command::Preview(q) => self.preview(&q).await,
            Command::Help => Ok(Note::markup(&command::help(&self.cfg.command))),
            // The dispatcher posts test alerts (it holds the chat platforms); a desk on its own
            // cannot.
            Command::Test => Ok(Note::new()
                .text("Test alerts are posted by the chat app; this desk has no chat platform.")),
        };
        result.unwrap_or_else(|e| {
            tracing::error!(error = %e, "desk command failed in the store");
            Note::new().text(
                "Something went wrong on our side; nothing was changed. Try again in a moment.",
            )
        })
    }

    /// When a snooze ends: a duration from now, or tomorrow 9:00 in the desk's time zone.
    pub(crate) fn snooze_until(&self, how: SnoozeFor, now: DateTime<Utc>) -> DateTime<Utc> {
        match how {
            SnoozeFor::Duration(d) => now + chrono::Duration::from_std(d).unwrap_or_default(),
            SnoozeFor::TomorrowMorning => tomorrow_at_nine(now, self.cfg.timezone),
        }
    }

    /// Applies a state change with compare-and-swap; retried when someone was faster, so
    /// the loser of two concurrent claims is told who has it.
    pub async fn act(
        &self,
        id: AlertId,
        actor: &Actor,
        action: Action,
        now: DateTime<Utc>,
    ) -> Result<Outcome, StoreError> {
        for _ in 0..CAS_RETRIES {
            let Some(alert) = self.store.alert(id).await? else {
                return Outcome::refused(not_found(id, &self.cfg.command));
            };
            // A second click on Promote (or a click on an old list) finds it posted already.
            if let (Action::Promote, Some(at)) = (&action, alert.promoted_at) {
                if !matches!(alert.state, AlertState::Held) {
                    return Outcome::refused(already_promoted(id, at, self.cfg.timezone));
                }
            }
            let new_state = match state::transition(&alert.state, &action, actor, now) {
                Ok(s) => s,
                Err(r) => return Outcome::refused(refusal(id, &r, &self.cfg.command)),
            };
            // Reopening a held-back alert that was confirmed not relevant puts it back among
            // the held ones: it was never posted, so there is no message to reopen.
            let new_state = match (&action, new_state) {
                (Action::Reopen, AlertState::Open) if alert.never_posted() => AlertState::Held,
                (_, s) => s,
            };
            let mut new = alert.clone();
            new.state = new_state.clone();
            if matches!(new_state, AlertState::Claimed { .. }) && new.first_claimed_at.is_none() {
                new.first_claimed_at = Some(now);
            }
            match new_state {
                AlertState::Resolved { .. } => new.resolved_at = Some(now),
                AlertState::Open => new.resolved_at = None,
                _ => {}
            }
            if matches!(action, Action::Promote) {
                new.promoted_at = Some(now);
            }
            let (cancel, set) = state::timers_for(&new_state, now, &self.cfg);
            let label = relevance::label_write(
                &self.store,
                self.relevance.enabled,
                &alert,
                relevance::label_of(&action),
                action.name(),
                actor,
                now,
            )
            .await?;
            let note = thread_note(&action, actor, &new, self.cfg.timezone);
            let outbox = match (&alert.state, &action) {
                // Never posted: nothing to edit; a promotion posts it now, with its note.
                (AlertState::Held, Action::Promote) => {
                    vec![OutboxAction::PostAlert, OutboxAction::ThreadNote(note)]
                }
                (AlertState::Held, _) => vec![],
                // Held back, confirmed not relevant, never posted: nothing to edit either.
                _ if alert.never_posted() => vec![],
                _ => vec![OutboxAction::UpdateAlert, OutboxAction::ThreadNote(note)],
            };
            let detail = match &action {
                Action::Resolve { note: Some(n) } | Action::Ignore { reason: Some(n) } => {
                    Some(n.clone())
                }
                Action::Assign { to } => Some(format!("to {to}")),
                Action::Snooze { until } => Some(format!("until {}", until.to_rfc3339())),
                _ => None,
            };
            let change = AlertChange {
                audit: AuditEntry {
                    at: now,
                    actor: actor.clone(),
                    action: action.name().into(),
                    from: alert.state.name().into(),
                    to: new_state.name().into(),
                    detail,
                },
                outbox,
                extra_outbox: vec![],
                cancel_timers: cancel,
                set_timers: set,
                label,
                alert: new,
            };
            match self.store.change_alert(&alert, change).await? {
                ChangeOutcome::Applied => {
                    if matches!(action, Action::Promote) {
                        Metrics::add(&self.metrics.promoted_total, 1);
                    }
                    tracing::info!(alert = %id, actor = %actor, action = action.name(), from = alert.state.name(), to = new_state.name(), "alert changed");
                    return Ok(Outcome {
                        applied: true,
                        note: success(id, &action),
                    });
                }
                ChangeOutcome::Conflict(_) => continue,
            }
        }
        Outcome::refused(
            Note::new().text(format!("#{id} is changing fast; look at it and try again.")),
        )
    }

    /// `/desk note`: a line in the thread and the audit log; the state stays.
    pub async fn note(
        &self,
        id: AlertId,
        actor: &Actor,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<Note, StoreError> {
        for _ in 0..CAS_RETRIES {
            let Some(alert) = self.store.alert(id).await? else {
                return Ok(not_found(id, &self.cfg.command));
            };
            if matches!(alert.state, AlertState::Held) {
                return Ok(refusal(id, &Refusal::Held, &self.cfg.command));
            }
            let label = relevance::label_write(
                &self.store,
                self.relevance.enabled,
                &alert,
                relevance::label_of_engagement(&alert),
                "note",
                actor,
                now,
            )
            .await?;
            let change = AlertChange {
                label,
                audit: AuditEntry {
                    at: now,
                    actor: actor.clone(),
                    action: "note".into(),
                    from: alert.state.name().into(),
                    to: alert.state.name().into(),
                    detail: Some(text.to_string()),
                },
                outbox: vec![OutboxAction::ThreadNote(
                    Note::new()
                        .text("📝 ")
                        .user(actor.clone())
                        .text(": ")
                        .text(text),
                )],
                extra_outbox: vec![],
                cancel_timers: vec![],
                set_timers: vec![],
                alert: alert.clone(),
            };
            if self.store.change_alert(&alert, change).await? == ChangeOutcome::Applied {
                return Ok(Note::new().text(format!("Added your note to the thread of #{id}.")));
            }
        }
        Ok(Note::new().text(format!("#{id} is changing fast; try again.")))
    }

    /// `/desk relabel`: a person says the sentiment is wrong. The correction is stored on
    /// the alert (and undone by relabelling again) so `stats` can report the model's accuracy.
    pub(crate) async fn relabel(
        &self,
        id: AlertId,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Note, StoreError> {
        for _ in 0..CAS_RETRIES {
            let Some(alert) = self.store.alert(id).await? else {
                return Ok(not_found(id, &self.cfg.command));
            };
            if matches!(alert.state, AlertState::Held) {
                return Ok(refusal(id, &Refusal::Held, &self.cfg.command));
            }
            let label = relevance::label_write(
                &self.store,
                self.relevance.enabled,
                &alert,
                relevance::label_of_engagement(&alert),
                "relabel",
                actor,
                now,
            )
            .await?;
            let mut new = alert.clone();
            new.human_negative = match alert.human_negative {
                None => Some(!alert.negative),
                Some(_) => None,
            };
            let (said, note) = match new.human_negative {
                Some(false) => (
                    "not negative",
                    Note::new()
                        .text("👎 ")
                        .user(actor.clone())
                        .text(" says this is not negative."),
                ),
                Some(true) => (
                    "negative",
                    Note::new()
                        .text("👎 ")
                        .user(actor.clone())
                        .text(" says this is negative."),
                ),
                None => (
                    "as scored",
                    Note::new()
                        .text("↩️ ")
                        .user(actor.clone())
                        .text(" removed the sentiment correction."),
                ),
            };
            let change = AlertChange {
                audit: AuditEntry {
                    at: now,
                    actor: actor.clone(),
                    action: "relabel".into(),
                    from: alert.state.name().into(),
                    to: alert.state.name().into(),
                    detail: Some(said.into()),
                },
                outbox: vec![OutboxAction::UpdateAlert, OutboxAction::ThreadNote(note)],
                extra_outbox: vec![],
                cancel_timers: vec![],
                set_timers: vec![],
                label,
                alert: new,
            };
            if self.store.change_alert(&alert, change).await? == ChangeOutcome::Applied {
                return Ok(Note::new().text(format!(
                    "#{id} is now marked {said}. Thanks, this is how accuracy is tracked."
                )));
            }
        }
        Ok(Note::new().text(format!("#{id} is changing fast; try again.")))
    }

    /// "Not relevant" with muting: the author and/or site of the alert's mention produce no
    /// alerts from now on.
    pub(crate) async fn mute(
        &self,
        id: AlertId,
        actor: &Actor,
        author: bool,
        site: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let Some(keys) = self.mute_keys(id).await? else {
            return Ok(vec![]);
        };
        let mut muted = Vec::new();
        if author {
            if let Some(k) = keys.author {
                self.store.mute(&k, actor, now).await?;
                muted.push(k);
            }
        }
        if site {
            if let Some(k) = keys.site {
                self.store.mute(&k, actor, now).await?;
                muted.push(k);
            }
        }
        Ok(muted)
    }

    /// What muting would apply to for an alert, `None` when the alert or its mention is gone.
    /// Its `author` is `None` when the mention has no real author (none, or a placeholder such
    /// as feed-rs's "author"): muting that would mute every mention without one.
    pub(crate) async fn mute_keys(
        &self,
        id: AlertId,
    ) -> Result<Option<crate::analysis::dedup::MuteKeys>, StoreError> {
        let Some(alert) = self.store.alert(id).await? else {
            return Ok(None);
        };
        Ok(self
            .store
            .alert_mention(&alert)
            .await?
            .map(|m| crate::analysis::dedup::mute_keys(&m.mention)))
    }

    /// How far ahead an escalation round reaches: when an escalation is due, every open alert
    /// that reaches `escalate_after` within this window is escalated in the same round, so a
    /// burst of alerts created minutes apart (separate polls, streaming sources) makes one
    /// message and one ping, not one each. A fifth of `escalate_after`, at most 5 minutes.
    pub fn round_window(&self) -> chrono::Duration {
        let w = (self.cfg.escalate_after / 5).min(ROUND_WINDOW_MAX);
        chrono::Duration::from_std(w).unwrap_or_default()
    }

    /// Fires the alert's stored timer of `timer.kind` now, due or not (a round of one; see
    /// `fire_round`): `timer` names the timer, the store says which one it is now.
    pub async fn fire(&self, timer: &Timer, now: DateTime<Utc>) -> Result<(), StoreError> {
        match self.store.timer(timer.alert_id, timer.kind).await? {
            Some(stored) => self.fire_round(std::slice::from_ref(&stored), now).await,
            None => Ok(()),
        }
    }

    /// Fires the timers that came due in one timer tick (and the escalations that come due
    /// within the round window, see `round_window`) as one round. A snooze end wakes its
    /// alert (a change in its own thread). Escalations become one message per destination
    /// listing every unclaimed alert with headline, age and a link, pinging a user group set
    /// as `[desk].escalate_to` once; reminders one message per owner listing their alerts,
    /// pinging the owner once: one
    /// message per round, as PagerDuty and Opsgenie do, instead of one (or two) per alert. The
    /// messages, audit entries and timer removals are one store transaction, so a crash
    /// neither repeats nor loses a round. A timer whose state changed meanwhile is dropped.
    pub async fn fire_round(&self, due: &[Timer], now: DateTime<Utc>) -> Result<(), StoreError> {
        for t in due.iter().filter(|t| t.kind == TimerKind::Wake) {
            match self.store.alert(t.alert_id).await? {
                Some(a) if matches!(a.state, AlertState::Snoozed { .. }) => {
                    self.act(a.id, &"system".to_string(), Action::Wake, now)
                        .await?;
                }
                _ => self.store.remove_timer(t).await?,
            }
        }
        let rest: Vec<&Timer> = due.iter().filter(|t| t.kind != TimerKind::Wake).collect();
        for _ in 0..CAS_RETRIES {
            let fired = self.still_due(&rest).await?;
            if fired.is_empty() {
                return Ok(());
            }
            let messages = self.round_messages(&fired, now).await?;
            let mut entries = with_audits(fired, now);
            let total = entries.len();
            let rest = entries.split_off(entries.len().min(ROUND_CHUNK));
            match self.store.fire_round(&entries, &messages, now).await? {
                Ok(()) => {
                    let left = self.fire_round_rest(rest, now).await?;
                    tracing::info!(
                        alerts = total - left,
                        first = %entries[0].0.id,
                        messages = messages.len(),
                        "timer round fired"
                    );
                    return Ok(());
                }
                // A person acted meanwhile (their change re-armed the timers): decide again.
                Err(id) => tracing::debug!(alert = %id, "alert changed during a timer round"),
            }
        }
        tracing::warn!("alerts kept changing during a timer round; trying again next tick");
        Ok(())
    }

    /// The timers of `due` that still fire, with their alerts: each is read again (a person
    /// may have re-armed it, claim then unclaim, since the tick read it); a moot one (its
    /// alert gone or no longer in the state it fires for) is removed.
    async fn still_due(&self, due: &[&Timer]) -> Result<Vec<(Alert, Timer)>, StoreError> {
        let mut fired = Vec::new();
        for t in due {
            let Some(timer) = self.store.timer(t.alert_id, t.kind).await? else {
                continue;
            };
            if timer.due > t.due {
                continue;
            }
            let Some(alert) = self.store.alert(t.alert_id).await? else {
                self.store.remove_timer(&timer).await?;
                continue;
            };
            match (timer.kind, &alert.state) {
                (TimerKind::Escalate, AlertState::Open)
                | (TimerKind::Remind, AlertState::Claimed { .. }) => fired.push((alert, timer)),
                _ => self.store.remove_timer(&timer).await?,
            }
        }
        Ok(fired)
    }

    /// Writes the audit entries and timer removals of a round past its first
    /// `ROUND_CHUNK` alerts (whose transaction carried the messages), a chunk per
    /// transaction, so a round after a long outage never builds one huge transaction. An
    /// alert that changed meanwhile is decided again; returns how many were left for the next
    /// tick (a chunk that kept changing, or a crash between chunks: that round then posts its
    /// own message for them).
    async fn fire_round_rest(
        &self,
        rest: Vec<(Alert, Timer, AuditEntry)>,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut left = 0;
        let mut rest = rest.into_iter();
        loop {
            let mut entries: Vec<_> = rest.by_ref().take(ROUND_CHUNK).collect();
            if entries.is_empty() {
                break;
            }
            let mut written = false;
            for _ in 0..CAS_RETRIES {
                match self.store.fire_round(&entries, &[], now).await? {
                    Ok(()) => {
                        written = true;
                        break;
                    }
                    Err(id) => {
                        tracing::debug!(alert = %id, "alert changed during a timer round");
                        let timers: Vec<Timer> = entries.into_iter().map(|(_, t, _)| t).collect();
                        let timers: Vec<&Timer> = timers.iter().collect();
                        entries = with_audits(self.still_due(&timers).await?, now);
                    }
                }
            }
            if !written {
                left += entries.len();
            }
        }
        Ok(left)
    }

    /// The messages of one round: escalations to `[desk].escalate_to` when it is a channel,
    /// else into each alert's own channel (pinging a user group there when one is set);
    /// reminders into the owner's alert channels, one per owner.
    async fn round_messages(
        &self,
        fired: &[(Alert, Timer)],
        now: DateTime<Utc>,
    ) -> Result<Vec<(Target, OutboxAction)>, StoreError> {
        let mut out = Vec::new();
        let mut escalated: Vec<&Alert> = fired
            .iter()
            .filter(|(_, t)| t.kind == TimerKind::Escalate)
            .map(|(a, _)| a)
            .collect();
        escalated.sort_by_key(|a| (a.created_at, a.id));
        if !escalated.is_empty() {
            match &self.cfg.escalate_to {
                // Posting into the escalation channel is what calls people there.
                Some(to) if is_channel_target(to) => {
                    let note = self.escalation_note(&escalated, None, to, now).await?;
                    out.push((to.clone(), OutboxAction::ChannelNote(note)));
                }
                group => {
                    // The group is called once per round: in the first of its platform's
                    // messages (alerts posted to several channels make several messages).
                    let mut pinged = false;
                    for (target, alerts) in by_target(&escalated, |_| None) {
                        let ping = group
                            .as_ref()
                            .filter(|g| !pinged && g.platform() == target.platform());
                        pinged |= ping.is_some();
                        let note = self.escalation_note(&alerts, ping, &target, now).await?;
                        out.push((target, OutboxAction::ChannelNote(note)));
                    }
                }
            }
        }
        let mut reminded: Vec<&Alert> = fired
            .iter()
            .filter(|(_, t)| t.kind == TimerKind::Remind)
            .map(|(a, _)| a)
            .collect();
        reminded.sort_by_key(|a| (a.created_at, a.id));
        let mut owners: std::collections::BTreeMap<&str, Vec<&Alert>> = Default::default();
        for a in reminded {
            if let AlertState::Claimed { by, .. } = &a.state {
                owners.entry(by.as_str()).or_default().push(a);
            }
        }
        for (owner, alerts) in owners {
            // Into the owner's own platform's channels, where the ping reaches them.
            let platform = owner.split_once(':').map(|(p, _)| p);
            for (target, alerts) in by_target(&alerts, |t| platform.map(|p| t.platform() == p)) {
                let note = self.reminder_note(owner, &alerts, &target, now).await?;
                out.push((target, OutboxAction::ChannelNote(note)));
            }
        }
        Ok(out)
    }

    /// `⏰ @group 3 alerts have been unclaimed for 15 min or more:` and one line per alert.
    async fn escalation_note(
        &self,
        alerts: &[&Alert],
        ping: Option<&Target>,
        dest: &Target,
        now: DateTime<Utc>,
    ) -> Result<Note, StoreError> {
        let mut head = Note::new().text("⏰ ");
        if let Some(p) = ping {
            head = head.ping(p.channel().to_string()).text(" ");
        }
        // A round also takes alerts that reach `escalate_after` within its window (see
        // `round_window`); the head says what holds for every alert listed.
        let youngest = alerts
            .iter()
            .map(|a| (now - a.posted_at()).num_seconds())
            .min()
            .unwrap_or(0);
        let wait = human_duration(youngest.min(self.cfg.escalate_after.as_secs() as i64));
        head = head.bold(match alerts.len() {
            1 => format!("1 alert has been unclaimed for {wait} or more"),
            n => format!("{n} alerts have been unclaimed for {wait} or more"),
        });
        head = head.text(if alerts.len() == 1 {
            ". Who can take it?"
        } else {
            ". Who can take them?"
        });
        let age = |a: &Alert| {
            let age = human_duration((now - a.posted_at()).num_seconds());
            format!("{age} old")
        };
        self.round_note(head, alerts, dest, age, "claim").await
    }

    /// `⏰ @owner, 2 alerts you claimed are still unresolved:` and one line per alert.
    async fn reminder_note(
        &self,
        owner: &str,
        alerts: &[&Alert],
        dest: &Target,
        now: DateTime<Utc>,
    ) -> Result<Note, StoreError> {
        let head = Note::new()
            .text("⏰ ")
            .user(owner.to_string())
            .text(match alerts.len() {
                1 => ", 1 alert you claimed is still unresolved. Resolve it or hand it over:"
                    .to_string(),
                n => format!(
                    ", {n} alerts you claimed are still unresolved. Resolve them or hand them over:"
                ),
            });
        let held = |a: &Alert| {
            let held = match &a.state {
                AlertState::Claimed { at, .. } => human_duration((now - *at).num_seconds()),
                _ => String::new(),
            };
            format!("yours for {held}")
        };
        self.round_note(head, alerts, dest, held, "resolve").await
    }

    /// `head`, then a line per alert (`round_line`, with `age` of it and `verb`) for as many
    /// as fit; the rest are counted, never read.
    async fn round_note(
        &self,
        head: Note,
        alerts: &[&Alert],
        dest: &Target,
        age: impl Fn(&Alert) -> String,
        verb: &str,
    ) -> Result<Note, StoreError> {
        let mut fit = RoundFit::new(head, alerts.len());
        for a in alerts {
            let line = self.round_line(a, dest, &age(a), verb).await?;
            if !fit.push(line) {
                break;
            }
        }
        Ok(fit.finish())
    }

    /// `• #12 “Checkout broken again” · High · rule acme · 17 min old`: the headline links to
    /// the alert's message; without a link, the command that acts on it is named instead.
    async fn round_line(
        &self,
        a: &Alert,
        dest: &Target,
        age: &str,
        verb: &str,
    ) -> Result<Note, StoreError> {
        let headline = self
            .store
            .alert_mention(a)
            .await?
            .map(|m| headline(&m.mention))
            .unwrap_or_default();
        let label = if headline.is_empty() {
            format!("#{}", a.id)
        } else {
            format!("#{} “{headline}”", a.id)
        };
        let mut note = Note::new().text("• ");
        let link = self.alert_link(a, dest).await?;
        note = match &link {
            Some(url) => note.link(url.clone(), label),
            None => note.text(label),
        };
        note = note.text(format!(
            " · {} · rule {} · {age}",
            priority_word(a.priority),
            a.rules.join(", ")
        ));
        if link.is_none() {
            note = note
                .text(" · ")
                .code(format!("{} {verb} {}", self.cfg.command, a.id));
        }
        Ok(note)
    }

    /// A link to the alert's message: on the round's own target if it was posted there, else
    /// on any target that has one.
    async fn alert_link(&self, a: &Alert, dest: &Target) -> Result<Option<String>, StoreError> {
        let mut targets: Vec<&Target> = a.targets.iter().filter(|t| *t == dest).collect();
        targets.extend(a.targets.iter().filter(|t| *t != dest));
        for t in targets {
            if let Some(url) = self
                .store
                .message_ref(a.id, t)
                .await?
                .and_then(|m| m.permalink)
            {
                return Ok(Some(url));
            }
        }
        Ok(None)
    }

    async fn list(
        &self,
        filter: ListFilter,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Note, StoreError> {
        // Filtered and sorted on the heads (on sled from memory); only the alerts shown are
        // read in full.
        let mut heads: Vec<AlertHead> = self
            .store
            .desk_heads()
            .await?
            .into_iter()
            .filter(|a| match (&filter, &a.state) {
                // Held-back alerts are not on the desk: `list held` shows them.
                (ListFilter::Open, s) => !matches!(s, HeadState::Held),
                (ListFilter::Mine, HeadState::Claimed { by }) => **by == **actor,
                (ListFilter::Unclaimed, HeadState::Open) => true,
                (ListFilter::Held, HeadState::Held) => true,
                _ => false,
            })
            .collect();
        heads.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.created_at.cmp(&b.created_at))
        });
        let label = match filter {
            ListFilter::Open => "open",
            ListFilter::Mine => "claimed by you",
            ListFilter::Unclaimed => "unclaimed",
            ListFilter::Held => "held back",
        };
        if heads.is_empty() {
            return Ok(Note::new().text(format!("No {label} alerts. 🎉")));
        }
        let mut note = Note::new().bold(format!(
            "{} {label} alert{}",
            heads.len(),
            if heads.len() == 1 { "" } else { "s" }
        ));
        // Parked deliveries, so an alert a platform refused is never silently missing (the
        // summary reads the outbox only when something is parked).
        let mut undelivered: std::collections::HashMap<AlertId, Vec<String>> = Default::default();
        for e in self.store.outbox_summary().await?.parked {
            if let Some(p) = &e.parked {
                undelivered.entry(e.alert_id).or_default().push(format!(
                    "⚠ not delivered to {}: {}",
                    e.target,
                    p.reason.replace('_', " ")
                ));
            }
        }
        for head in heads.iter().take(15) {
            let Some(a) = self.store.alert(head.id).await? else {
                continue;
            };
            let text = self
                .store
                .alert_mention(&a)
                .await?
                .map(|m| one_line(&m.mention.text, 80))
                .unwrap_or_default();
            note = note.newline().code(format!("#{}", a.id)).text(format!(
                " {} · {} · {} · {} ago · “{}”",
                a.priority,
                a.rules.join(","),
                a.state.name(),
                human_duration((now - a.posted_at()).num_seconds()),
                text
            ));
            if matches!(a.state, AlertState::Held) {
                if let Some(r) = a.relevance {
                    note = note.text(format!(" · relevance {r:.2}"));
                }
                note = note
                    .text(" · ")
                    .code(format!("{} promote {}", self.cfg.command, a.id))
                    .button(buttons::PROMOTE, a.id, format!("Promote #{}", a.id));
            }
            for line in undelivered.get(&a.id).into_iter().flatten() {
                note = note.newline().text(format!("    {line}"));
            }
        }
        if heads.len() > 15 {
            note = note
                .newline()
                .text(format!("…and {} more.", heads.len() - 15));
        }
        Ok(note)
    }

    async fn show(&self, id: AlertId) -> Result<Note, StoreError> {
        let Some(a) = self.store.alert(id).await? else {
            return Ok(not_found(id, &self.cfg.command));
        };
        let relevance = a
            .relevance
            .map(|r| format!(" · relevance {r:.2}"))
            .unwrap_or_default();
        let mut note = Note::new().bold(format!("#{id}")).text(format!(
            " · rule {} · priority {} · sentiment {:+.2}{relevance} · {}",
            a.rules.join(", "),
            a.priority,
            a.sentiment,
            a.state.name()
        ));
        if let Some(m) = self.store.alert_mention(&a).await? {
            let m = m.mention;
            note = note
                .newline()
                .text(format!("{} ({})", m.source, m.source_kind));
            if let Some(au) = &m.author {
                note = note.text(" · by ").text(au.clone());
            }
            note = note.newline().text(format!("“{}”", one_line(&m.text, 200)));
            if let Some(u) = &m.url {
                note = note.newline().link(u.clone(), "Open the post");
            }
        }
        note = note.newline().bold("History");
        // The newest changes matter most; a long history keeps its last SHOW_HISTORY entries
        // so the answer fits one message (each platform cuts what is still too long).
        let log = self.store.audit_log(id).await?;
        let skipped = log.len().saturating_sub(SHOW_HISTORY);
        if skipped > 0 {
            note = note.newline().text(format!(
                "… {skipped} earlier change{} not shown",
                if skipped == 1 { "" } else { "s" }
            ));
        }
        for e in log.into_iter().skip(skipped) {
            note = note
                .newline()
                .text(format!("{} · ", e.at.format("%Y-%m-%d %H:%M UTC")));
            note = if e.actor == "system" {
                note.text("system")
            } else {
                note.user(e.actor.clone())
            };
            note = note.text(format!(" · {} ({} → {})", e.action, e.from, e.to));
            if let Some(d) = e.detail {
                note = note.text(format!(" — {}", one_line(&d, 120)));
            }
        }
        Ok(note)
    }

    async fn stats(
        &self,
        period: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Note, StoreError> {
        let since = now - chrono::Duration::from_std(period).unwrap_or_default();
        let alerts: Vec<Alert> = self
            .store
            .alerts()
            .await?
            .into_iter()
            .filter(|a| a.created_at >= since)
            .collect();
        let count = |name: &str| alerts.iter().filter(|a| a.state.name() == name).count();
        let mut to_claim: Vec<i64> = alerts
            .iter()
            .filter_map(|a| {
                a.first_claimed_at
                    .map(|t| (t - a.posted_at()).num_seconds())
            })
            .collect();
        let mut to_resolve: Vec<i64> = alerts
            .iter()
            .filter_map(|a| a.resolved_at.map(|t| (t - a.posted_at()).num_seconds()))
            .collect();
        let fmt = |v: &mut Vec<i64>| match (percentile(v, 50), percentile(v, 90)) {
            (Some(m), Some(p)) => {
                format!("median {} · p90 {}", human_duration(m), human_duration(p))
            }
            _ => "no data yet".to_string(),
        };
        Ok(Note::new()
            .bold(format!(
                "Last {}: {} alert{}",
                human_duration(period.as_secs() as i64),
                alerts.len(),
                if alerts.len() == 1 { "" } else { "s" }
            ))
            .newline()
            .text(format!(
                "open {} · claimed {} · snoozed {} · resolved {} · ignored {}",
                count("open"),
                count("claimed"),
                count("snoozed"),
                count("resolved"),
                count("ignored")
            ))
            .newline()
            .text(format!("Time to claim: {}", fmt(&mut to_claim)))
            .newline()
            .text(format!("Time to resolve: {}", fmt(&mut to_resolve)))
            .newline()
            .text(sentiment_accuracy(&alerts))
            .append(self.relevance_lines(&alerts).await?))
    }

    /// Per rule: labels so far, held back, promoted, estimated precision (see
    /// `relevance::RuleRelevance`); nothing when relevance learning is off.
    async fn relevance_lines(&self, alerts: &[Alert]) -> Result<Note, StoreError> {
        if !self.relevance.enabled {
            return Ok(Note::new());
        }
        let refs: Vec<&Alert> = alerts.iter().collect();
        let rules = relevance::figures(&self.store, &refs, self.relevance.min_labels).await?;
        let mut note = Note::new().newline().text("Relevance: ");
        if rules.is_empty() {
            return Ok(note.text(
                "no labels yet (claiming, resolving or marking alerts not relevant teaches it)",
            ));
        }
        for r in rules {
            note = note
                .newline()
                .text(format!("• {}", r.line(self.relevance.min_labels)));
        }
        Ok(note)
    }

    async fn preview(&self, q: &str) -> Result<Note, StoreError> {
        let query = match Query::parse(q) {
            Ok(q) => q,
            Err(e) => {
                return Ok(Note::new()
                    .text("That query does not parse:")
                    .newline()
                    .code(e.to_string()))
            }
        };
        let mentions = self.store.recent_mentions(PREVIEW_MENTIONS).await?;
        let hits: Vec<_> = mentions
            .iter()
            .filter_map(|sm| {
                let m = &sm.mention;
                let doc = Document {
                    text: &m.text,
                    title: m.title.as_deref(),
                    author: m.author.as_deref(),
                    url: m.url.as_deref(),
                    source: &m.source,
                    source_kind: &m.source_kind,
                    lang: m.lang.as_deref(),
                };
                query.matches(&doc).map(|spans| (m, spans))
            })
            .collect();
        let mut note = Note::new()
            .bold(format!(
                "{} of the last {} mentions match",
                hits.len(),
                mentions.len()
            ))
            .text(" ")
            .code(q.to_string());
        for (m, spans) in hits.iter().take(5) {
            let spans: Vec<(usize, usize)> = spans.iter().map(|s| (s.start, s.end)).collect();
            note = note.newline().text("• ");
            for (run, hl) in excerpt(&m.text, &spans, 120) {
                note = if hl { note.bold(run) } else { note.text(run) };
            }
            note = note.text(format!(" ({})", m.source));
        }
        Ok(note)
    }
}

/// How often people corrected `negative`, from `/desk relabel`.
fn sentiment_accuracy(alerts: &[Alert]) -> String {
    let corrected = alerts
        .iter()
        .filter(|a| a.human_negative.is_some_and(|h| h != a.negative))
        .count();
    let missed = alerts
        .iter()
        .filter(|a| a.human_negative == Some(true) && !a.negative)
        .count();
    match alerts.len() {
        0 => "Sentiment: no alerts yet".to_string(),
        n => format!(
            "Sentiment: {corrected} of {n} corrected by people ({:.0} % kept; {missed} missed complaint{})",
            100.0 * (n - corrected) as f64 / n as f64,
            if missed == 1 { "" } else { "s" }
        ),
    }
}

/// The mention's headline: its title, or else the first line of its text, cut to
/// `HEADLINE_MAX` characters.
fn headline(m: &crate::model::Mention) -> String {
    let title = m.title.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let first = m
        .text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    one_line(title.unwrap_or(first), HEADLINE_MAX)
}

/// Alerts whose escalation or reminder one store transaction writes: a round after a long
/// outage can hold tens of thousands (every alert of a big ingest at once), and one
/// transaction of them all held gigabytes of memory.
pub(crate) const ROUND_CHUNK: usize = 256;

/// Each fired alert with its audit entry, "escalated" or "reminded" (its state does not
/// change).
fn with_audits(fired: Vec<(Alert, Timer)>, now: DateTime<Utc>) -> Vec<(Alert, Timer, AuditEntry)> {
    fired
        .into_iter()
        .map(|(a, timer)| {
            let audit = AuditEntry {
                at: now,
                actor: "system".into(),
                action: match timer.kind {
                    TimerKind::Escalate => "escalated",
                    _ => "reminded",
                }
                .into(),
                from: a.state.name().into(),
                to: a.state.name().into(),
                detail: None,
            };
            (a, timer, audit)
        })
        .collect()
}

/// A headline in a round message is a label, not the post: this many characters at most.
const HEADLINE_MAX: usize = 80;

/// How much a round message may hold, counted by `rendered_bound`: Discord's 2,000-character
/// message content, less room for the platform's own marker line.
const ROUND_BUDGET: usize = 1900;

/// An upper bound on a note's length once a platform has rendered it. Escaping at most
/// doubles untrusted text on Discord (a backslash per character) and bold or code adds its
/// marks; on Slack `&` becomes `&amp;` (five times), so what fits this bound fits Slack's
/// four 3,000-character sections too.
fn rendered_bound(note: &Note) -> usize {
    use crate::model::Part;
    note.0
        .iter()
        .map(|p| match p {
            Part::Text(s) => 2 * s.chars().count(),
            Part::Bold(s) | Part::Code(s) => 2 * s.chars().count() + 4,
            Part::User(u) | Part::Ping(u) => 2 * u.chars().count() + 16,
            Part::Link { url, label } => url.chars().count() + 2 * label.chars().count() + 8,
            Part::Newline => 1,
            Part::Button { .. } => 0,
        })
        .sum()
}

/// The round message, built line by line: `head`, then as many lines as fit `ROUND_BUDGET`
/// with room kept for "…and N more" for the rest (which `/desk list unclaimed` shows in
/// full). `push` says when the message is full, so a round of thousands of alerts reads only
/// the few it lists.
struct RoundFit {
    note: Note,
    /// `rendered_bound(&note)`, kept as lines are added (the bound is a sum over parts).
    bound: usize,
    total: usize,
    listed: usize,
}

impl RoundFit {
    fn new(head: Note, total: usize) -> RoundFit {
        RoundFit {
            bound: rendered_bound(&head),
            note: head,
            total,
            listed: 0,
        }
    }

    /// Adds `line` if it fits; `false` when it does not (the message is full).
    fn push(&mut self, line: Note) -> bool {
        let bound = self.bound + 1 + rendered_bound(&line);
        let reserve = match self.total - self.listed - 1 {
            0 => 0,
            n => 1 + rendered_bound(&more_line(n)),
        };
        if bound + reserve > ROUND_BUDGET {
            return false;
        }
        self.note = std::mem::take(&mut self.note).newline().append(line);
        self.bound = bound;
        self.listed += 1;
        true
    }

    fn finish(self) -> Note {
        match self.total - self.listed {
            0 => self.note,
            n => self.note.newline().append(more_line(n)),
        }
    }
}

fn more_line(n: usize) -> Note {
    Note::new().text(format!("…and {n} more"))
}

/// Priority in words, as alerts and the digest show it.
pub(crate) fn priority_word(p: Priority) -> &'static str {
    match p {
        Priority::Low => "Low",
        Priority::Normal => "Normal",
        Priority::High => "High",
        Priority::Critical => "Critical",
    }
}

/// The alerts of a round grouped by the targets they were posted to (each alert under every
/// target `keep` accepts, or under all its targets when it accepts none), in first-seen order.
fn by_target<'a>(
    alerts: &[&'a Alert],
    keep: impl Fn(&Target) -> Option<bool>,
) -> Vec<(Target, Vec<&'a Alert>)> {
    let mut out: Vec<(Target, Vec<&'a Alert>)> = Vec::new();
    for a in alerts {
        let kept: Vec<&Target> = a
            .targets
            .iter()
            .filter(|t| keep(t).unwrap_or(true))
            .collect();
        let targets = if kept.is_empty() {
            a.targets.iter().collect()
        } else {
            kept
        };
        for t in targets {
            match out.iter_mut().find(|(x, _)| x == t) {
                Some((_, v)) => v.push(a),
                None => out.push((t.clone(), vec![a])),
            }
        }
    }
    out
}

fn is_channel_target(t: &Target) -> bool {
    let c = t.channel();
    !(c.starts_with('S')
        && c.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
}

/// How many history entries `show` lists (the newest).
const SHOW_HISTORY: usize = 30;

fn one_line(s: &str, max: usize) -> String {
    crate::chat::escape::truncate(&s.split_whitespace().collect::<Vec<_>>().join(" "), max)
}

/// Tomorrow 9:00 local time in `tz`, as UTC (DST-safe: an ambiguous time takes the earlier).
pub(crate) fn tomorrow_at_nine(now: DateTime<Utc>, tz: chrono_tz::Tz) -> DateTime<Utc> {
    use chrono::TimeZone;
    let local_tomorrow = now.with_timezone(&tz).date_naive() + chrono::Duration::days(1);
    let nine = local_tomorrow.and_hms_opt(9, 0, 0).expect("9:00 exists");
    tz.from_local_datetime(&nine)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now + chrono::Duration::hours(24))
}

fn not_found(id: AlertId, command: &str) -> Note {
    Note::markup(&format!(
        "There is no alert #{id}. `{command} list` shows the open ones."
    ))
}

fn refusal(id: AlertId, r: &Refusal, command: &str) -> Note {
    match r {
        Refusal::AlreadyYours => Note::new().text(format!("#{id} is already yours.")),
        Refusal::ClaimedBy(by) => Note::new()
            .text(format!("#{id} is already claimed by "))
            .user(by.clone())
            .text("."),
        Refusal::NotClaimed => Note::new().text(format!("#{id} is not claimed by anyone.")),
        Refusal::Closed(s) => Note::new()
            .text(format!("#{id} is {s}. Reopen it first: "))
            .code(format!("{command} reopen {id}")),
        Refusal::NotClosed => Note::new().text(format!(
            "#{id} is not resolved or ignored, so there is nothing to reopen."
        )),
        Refusal::NotSnoozed => Note::new().text(format!("#{id} is not snoozed.")),
        Refusal::SnoozeInPast => {
            Note::new().text("That time has already passed; snooze for a duration like 2h.")
        }
        Refusal::Held => Note::new()
            .text(format!(
                "#{id} is held back (its relevance is low), so it was never posted. Promote it first: "
            ))
            .code(format!("{command} promote {id}")),
        Refusal::NotHeld => Note::new().text(format!(
            "#{id} is not held back; it is on the desk already."
        )),
    }
}

fn already_promoted(id: AlertId, at: DateTime<Utc>, tz: chrono_tz::Tz) -> Note {
    Note::new().text(format!(
        "#{id} is already promoted ({}): it was posted then, and is on the desk. Nothing more to do.",
        at.with_timezone(&tz).format("%a %d %b %H:%M %Z")
    ))
}

fn success(id: AlertId, action: &Action) -> Note {
    let what = match action {
        Action::Claim => format!("You claimed #{id}. It is yours until you resolve or unclaim it."),
        Action::Unclaim => format!("#{id} is open again."),
        Action::Resolve { .. } => format!("#{id} is resolved. Thanks!"),
        Action::Reopen => format!("#{id} is open again."),
        Action::Assign { .. } => format!("#{id} is assigned."),
        Action::Snooze { until } => format!(
            "#{id} is snoozed until {}.",
            until.format("%Y-%m-%d %H:%M UTC")
        ),
        Action::Ignore { .. } => format!("#{id} is marked not relevant."),
        Action::Wake => format!("#{id} is open again."),
        Action::Promote => {
            format!("#{id} is promoted: it is posted now. Thanks, the filter learns from it.")
        }
    };
    Note::new().text(what)
}

/// The line posted in the alert's thread for a change.
fn thread_note(action: &Action, actor: &Actor, alert: &Alert, tz: chrono_tz::Tz) -> Note {
    let n = Note::new();
    match action {
        Action::Claim => {
            let after = match &alert.state {
                AlertState::Claimed { at, .. } => {
                    human_duration((*at - alert.posted_at()).num_seconds())
                }
                _ => String::new(),
            };
            n.text("🙋 ")
                .user(actor.clone())
                .text(format!(" claimed this, {after} after posting."))
        }
        Action::Unclaim => n
            .text("↩️ ")
            .user(actor.clone())
            .text(" unclaimed this; it is open again."),
        Action::Resolve { note: Some(text) } => n
            .text("✅ ")
            .user(actor.clone())
            .text(" resolved this — “")
            .text(text.clone())
            .text("”"),
        Action::Resolve { note: None } => n.text("✅ ").user(actor.clone()).text(" resolved this."),
        Action::Reopen => n.text("🔁 ").user(actor.clone()).text(" reopened this."),
        Action::Assign { to } => n
            .text("👉 ")
            .user(actor.clone())
            .text(" assigned this to ")
            .user(to.clone())
            .text("."),
        Action::Snooze { until } => n.text("💤 ").user(actor.clone()).text(format!(
            " snoozed this until {}.",
            until.with_timezone(&tz).format("%a %d %b %H:%M %Z")
        )),
        Action::Ignore { reason: Some(r) } => n
            .text("🚫 ")
            .user(actor.clone())
            .text(" marked this not relevant — “")
            .text(r.clone())
            .text("”"),
        Action::Ignore { reason: None } => n
            .text("🚫 ")
            .user(actor.clone())
            .text(" marked this not relevant."),
        Action::Wake => n.text("⏰ The snooze is over; this is open again."),
        Action::Promote => n
            .text("⬆️ ")
            .user(actor.clone())
            .text(match alert.relevance {
                Some(r) => format!(
                    " promoted this from held back (relevance {r:.2}); the filter learns from it."
                ),
                None => " promoted this from held back.".to_string(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_round_lists_what_fits_and_counts_the_rest() {
        let line = |i: usize| Note::new().text(format!("• #{i} ")).text("x".repeat(150));
        let fit_round = |total: usize| {
            let mut fit = RoundFit::new(Note::new().text("head"), total);
            let mut offered = 0;
            for i in 0..total {
                offered += 1;
                if !fit.push(line(i)) {
                    break;
                }
            }
            (fit.finish(), offered)
        };
        let (note, offered) = fit_round(100);
        assert!(rendered_bound(&note) <= ROUND_BUDGET);
        // Lines are built only until the message is full.
        assert_eq!(offered, note.plain().matches("\n• ").count() + 1);
        let text = note.plain();
        let listed = text.matches("\n• ").count();
        assert!(listed > 1, "{text}");
        assert!(
            text.ends_with(&format!("…and {} more", 100 - listed)),
            "{text}"
        );
        // A round that fits is listed whole, with no "more".
        let (note, _) = fit_round(3);
        assert_eq!(note.plain().matches("\n• ").count(), 3);
        assert!(!note.plain().contains("more"));
    }

    #[test]
    fn tomorrow_nine_respects_time_zone_and_dst() {
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        // Saturday 28 March 2026 evening: tomorrow is the day clocks go forward (CEST, UTC+2).
        let now = Utc.with_ymd_and_hms(2026, 3, 28, 20, 0, 0).unwrap();
        assert_eq!(
            tomorrow_at_nine(now, berlin),
            Utc.with_ymd_and_hms(2026, 3, 29, 7, 0, 0).unwrap()
        );
        // In winter Berlin is UTC+1.
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 20, 0, 0).unwrap();
        assert_eq!(
            tomorrow_at_nine(now, berlin),
            Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap()
        );
    }
}
