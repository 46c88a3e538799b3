//! The desk: applies people's actions to alerts (through the pure state machine in
//! `state.rs`, written with compare-and-swap), answers `/desk` commands, and fires the
//! durable timers (escalation, reminders, snooze ends). Every chat interaction reaches it
//! through `dispatch.rs`. It never calls a chat SDK: changes go to the outbox and replies
//! are returned as neutral `Note`s.

pub(crate) mod command;
pub mod config;
pub(crate) mod dispatch;
pub mod state;
pub mod timers;

use crate::chat::view::excerpt;
use crate::model::{Actor, Alert, AlertId, AlertState, AuditEntry, Note, Target, TimerKind};
use crate::rules::{Document, Query};
use crate::store::{AlertChange, ChangeOutcome, OutboxAction, Store, StoreError, Timer};
use crate::util::{human_duration, percentile};
use chrono::{DateTime, Utc};
use command::{Command, ListFilter, SnoozeFor};
use config::DeskConfig;
use state::{Action, Refusal};

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

/// How many times a change is retried when someone else changed the alert first.
const CAS_RETRIES: usize = 5;
/// How many stored mentions `preview` tries a rule on.
pub(crate) const PREVIEW_MENTIONS: usize = 1000;

/// The store wakes the relay itself on every outbox write, so the desk holds no signal.
#[derive(Clone)]
pub struct Desk {
    store: Store,
    cfg: DeskConfig,
}

impl Desk {
    pub fn new(store: Store, cfg: DeskConfig) -> Desk {
        Desk { store, cfg }
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
            Command::Note(id, text) => self.note(id, actor, &text, now).await,
            Command::List(filter) => self.list(filter, actor, now),
            Command::Show(id) => self.show(id),
            Command::Stats(period) => self.stats(period, now),
            Command::Relabel(id) => self.relabel(id, actor, now).await,
            Command::Preview(q) => self.preview(&q),
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
            let Some(alert) = self.store.alert(id)? else {
                return Outcome::refused(not_found(id, &self.cfg.command));
            };
            let new_state = match state::transition(&alert.state, &action, actor, now) {
                Ok(s) => s,
                Err(r) => return Outcome::refused(refusal(id, &r, &self.cfg.command)),
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
            let (cancel, set) = state::timers_for(&new_state, now, &self.cfg);
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
                outbox: vec![
                    OutboxAction::UpdateAlert,
                    OutboxAction::ThreadNote(thread_note(&action, actor, &new, self.cfg.timezone)),
                ],
                extra_outbox: vec![],
                cancel_timers: cancel,
                set_timers: set,
                alert: new,
            };
            match self.store.change_alert(&alert, change).await? {
                ChangeOutcome::Applied => {
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
            let Some(alert) = self.store.alert(id)? else {
                return Ok(not_found(id, &self.cfg.command));
            };
            let change = AlertChange {
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
            let Some(alert) = self.store.alert(id)? else {
                return Ok(not_found(id, &self.cfg.command));
            };
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
        let Some(keys) = self.mute_keys(id)? else {
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
    pub(crate) fn mute_keys(
        &self,
        id: AlertId,
    ) -> Result<Option<crate::analysis::dedup::MuteKeys>, StoreError> {
        let Some(alert) = self.store.alert(id)? else {
            return Ok(None);
        };
        Ok(self
            .store
            .mention(&alert.mention_key)?
            .map(|m| crate::analysis::dedup::mute_keys(&m.mention)))
    }

    /// Fires one due timer, unless the state it waited for has changed (then it is dropped).
    pub async fn fire(&self, timer: &Timer, now: DateTime<Utc>) -> Result<(), StoreError> {
        let Some(alert) = self.store.alert(timer.alert_id)? else {
            return self.store.remove_timer(timer);
        };
        match (timer.kind, &alert.state) {
            (TimerKind::Wake, AlertState::Snoozed { .. }) => {
                self.act(alert.id, &"system".to_string(), Action::Wake, now)
                    .await?;
            }
            (TimerKind::Escalate, AlertState::Open) => {
                let waited = human_duration((now - alert.created_at).num_seconds());
                let mut note = Note::new().text(format!("⏰ Unclaimed for {waited}"));
                let mut extra = vec![];
                match &self.cfg.escalate_to {
                    Some(to) => {
                        note = note
                            .text(". Escalating to ")
                            .ping(to.channel().to_string())
                            .text(".");
                        if is_channel_target(to) {
                            let channel_note = Note::new()
                                .text(format!("⏰ Alert #{} (rule ", alert.id))
                                .bold(alert.rules.join(", "))
                                .text(format!(") has been unclaimed for {waited}. Claim it with "))
                                .code(format!("{} claim {}", self.cfg.command, alert.id))
                                .text(".");
                            extra.push((to.clone(), OutboxAction::ChannelNote(channel_note)));
                        }
                    }
                    None => note = note.text(". Who can take it?"),
                }
                self.system_change(
                    &alert,
                    "escalated",
                    OutboxAction::ThreadNote(note),
                    extra,
                    TimerKind::Escalate,
                    now,
                )
                .await?;
            }
            (TimerKind::Remind, AlertState::Claimed { by, at }) => {
                let held = human_duration((now - *at).num_seconds());
                let note = Note::new()
                    .text("⏰ ")
                    .user(by.clone())
                    .text(format!(
                        ", this is still unresolved after {held}. Resolve it with "
                    ))
                    .code(format!("{} resolve {}", self.cfg.command, alert.id))
                    .text(" or hand it over.");
                self.system_change(
                    &alert,
                    "reminded",
                    OutboxAction::ThreadNote(note),
                    vec![],
                    TimerKind::Remind,
                    now,
                )
                .await?;
            }
            _ => self.store.remove_timer(timer)?,
        }
        Ok(())
    }

    async fn system_change(
        &self,
        alert: &Alert,
        what: &str,
        action: OutboxAction,
        extra: Vec<(Target, OutboxAction)>,
        done: TimerKind,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let change = AlertChange {
            alert: alert.clone(),
            audit: AuditEntry {
                at: now,
                actor: "system".into(),
                action: what.into(),
                from: alert.state.name().into(),
                to: alert.state.name().into(),
                detail: None,
            },
            outbox: vec![action],
            extra_outbox: extra,
            cancel_timers: vec![done],
            set_timers: vec![],
        };
        // A conflict means a person acted meanwhile; their change re-armed the timers.
        if self.store.change_alert(alert, change).await? == ChangeOutcome::Applied {
            tracing::info!(alert = %alert.id, what, "timer fired");
        }
        Ok(())
    }

    fn list(
        &self,
        filter: ListFilter,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Note, StoreError> {
        let mut alerts: Vec<Alert> = self
            .store
            .alerts()?
            .into_iter()
            .filter(|a| match (&filter, &a.state) {
                (ListFilter::Open, s) => {
                    !matches!(s, AlertState::Resolved { .. } | AlertState::Ignored { .. })
                }
                (ListFilter::Mine, AlertState::Claimed { by, .. }) => by == actor,
                (ListFilter::Unclaimed, AlertState::Open) => true,
                _ => false,
            })
            .collect();
        alerts.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.created_at.cmp(&b.created_at))
        });
        let label = match filter {
            ListFilter::Open => "open",
            ListFilter::Mine => "claimed by you",
            ListFilter::Unclaimed => "unclaimed",
        };
        if alerts.is_empty() {
            return Ok(Note::new().text(format!("No {label} alerts. 🎉")));
        }
        let mut note = Note::new().bold(format!(
            "{} {label} alert{}",
            alerts.len(),
            if alerts.len() == 1 { "" } else { "s" }
        ));
        // Parked deliveries, so an alert a platform refused is never silently missing.
        let mut undelivered: std::collections::HashMap<AlertId, Vec<String>> = Default::default();
        for (_, e) in self.store.outbox()? {
            if let Some(p) = &e.parked {
                undelivered.entry(e.alert_id).or_default().push(format!(
                    "⚠ not delivered to {}: {}",
                    e.target,
                    p.reason.replace('_', " ")
                ));
            }
        }
        for a in alerts.iter().take(15) {
            let text = self
                .store
                .mention(&a.mention_key)?
                .map(|m| one_line(&m.mention.text, 80))
                .unwrap_or_default();
            note = note.newline().code(format!("#{}", a.id)).text(format!(
                " {} · {} · {} · {} ago · “{}”",
                a.priority,
                a.rules.join(","),
                a.state.name(),
                human_duration((now - a.created_at).num_seconds()),
                text
            ));
            for line in undelivered.get(&a.id).into_iter().flatten() {
                note = note.newline().text(format!("    {line}"));
            }
        }
        if alerts.len() > 15 {
            note = note
                .newline()
                .text(format!("…and {} more.", alerts.len() - 15));
        }
        Ok(note)
    }

    fn show(&self, id: AlertId) -> Result<Note, StoreError> {
        let Some(a) = self.store.alert(id)? else {
            return Ok(not_found(id, &self.cfg.command));
        };
        let mut note = Note::new().bold(format!("#{id}")).text(format!(
            " · rule {} · priority {} · sentiment {:+.2} · {}",
            a.rules.join(", "),
            a.priority,
            a.sentiment,
            a.state.name()
        ));
        if let Some(m) = self.store.mention(&a.mention_key)? {
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
        let log = self.store.audit_log(id)?;
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

    fn stats(&self, period: std::time::Duration, now: DateTime<Utc>) -> Result<Note, StoreError> {
        let since = now - chrono::Duration::from_std(period).unwrap_or_default();
        let alerts: Vec<Alert> = self
            .store
            .alerts()?
            .into_iter()
            .filter(|a| a.created_at >= since)
            .collect();
        let count = |name: &str| alerts.iter().filter(|a| a.state.name() == name).count();
        let mut to_claim: Vec<i64> = alerts
            .iter()
            .filter_map(|a| a.first_claimed_at.map(|t| (t - a.created_at).num_seconds()))
            .collect();
        let mut to_resolve: Vec<i64> = alerts
            .iter()
            .filter_map(|a| a.resolved_at.map(|t| (t - a.created_at).num_seconds()))
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
            .text(sentiment_accuracy(&alerts)))
    }

    fn preview(&self, q: &str) -> Result<Note, StoreError> {
        let query = match Query::parse(q) {
            Ok(q) => q,
            Err(e) => {
                return Ok(Note::new()
                    .text("That query does not parse:")
                    .newline()
                    .code(e.to_string()))
            }
        };
        let mentions = self.store.recent_mentions(PREVIEW_MENTIONS)?;
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
    }
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
                    human_duration((*at - alert.created_at).num_seconds())
                }
                _ => String::new(),
            };
            n.text("🟡 ")
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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
