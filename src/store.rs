//! The only code that imports sled: mentions, alerts, dedup keys, source state, the outbox and
//! the chat message references. It knows nothing about Slack or Discord; it stores what the
//! intake and the relay hand it, atomically, and flushes before it answers when a crash must
//! not lose what was just written.

use crate::model::{
    Alert, AlertId, AlertState, AuditEntry, DigestPost, Mention, MessageRef, Note, Priority,
    Target, TimerKind,
};
use crate::sources::SourceState;
use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[path = "store_flush.rs"]
mod flush;
pub use flush::FlushStats;
use flush::{FlushError, Flusher};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {path} is held by another process (is `mentiondesk run` already running? stop it, or point [store].path elsewhere)")]
    Locked { path: PathBuf },
    #[error("could not open the store at {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("store error: {0}")]
    Sled(#[from] sled::Error),
    #[error("store record {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("the store's flusher stopped unexpectedly; restart mentiondesk")]
    FlusherStopped,
}

impl From<FlushError> for StoreError {
    fn from(e: FlushError) -> StoreError {
        match e {
            FlushError::Sled(e) => StoreError::Sled(e),
            FlushError::Stopped => StoreError::FlusherStopped,
        }
    }
}

/// A mention as kept in the store, with when we first heard it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMention {
    pub mention: Mention,
    pub received_at: DateTime<Utc>,
}

/// What the intake decided about one polled mention; the store writes it atomically.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub mention: Mention,
    /// Every key under which this mention counts as already seen (item id, canonical URL, ...).
    /// If any of them is known, the whole candidate is dropped.
    pub dedup_keys: Vec<String>,
    /// Present when the mention matched a rule and should go on the desk.
    pub alert: Option<NewAlert>,
}

#[derive(Debug, Clone)]
pub struct NewAlert {
    pub rules: Vec<String>,
    pub priority: Priority,
    pub sentiment: f64,
    pub negative: bool,
    pub targets: Vec<Target>,
    pub highlights: Vec<(usize, usize)>,
    /// Durable timers to start with the alert (escalation).
    pub timers: Vec<(TimerKind, DateTime<Utc>)>,
    /// Keys that make a later mention a repeat of this one (same author, same story).
    pub thread_keys: Vec<String>,
    /// What to post in an existing alert's thread if this mention turns out to be a repeat.
    pub repeat_note: Note,
    /// Whether the mention counts towards its rules' volume (digest, spike baseline). A spike
    /// alert itself does not: it is about mentions, not one.
    pub log_hit: bool,
}

/// One matched mention in a rule's volume log: what the digest and spike detection count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleHit {
    pub rule: String,
    pub at: DateTime<Utc>,
    pub mention_key: String,
    pub source: String,
    pub sentiment: f64,
    pub negative: bool,
}

/// How long a repeat of the same story or author goes into the existing thread.
pub const REPEAT_WINDOW_DAYS: i64 = 7;

/// What one accepted batch produced.
#[derive(Debug, Default, Clone)]
pub struct Accepted {
    /// Mentions not seen before (matching or not).
    pub new_mentions: usize,
    pub alerts: Vec<Alert>,
    /// Repeats that went into an existing alert's thread instead.
    pub threaded: Vec<AlertId>,
}

/// What the outbox can ask a platform to do for an alert's target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxAction {
    /// Post the alert's root message.
    PostAlert,
    /// Edit the root message so its state line is current.
    UpdateAlert,
    /// Reply in the alert's thread.
    ThreadNote(Note),
    /// Post a message of its own into the target's channel (escalation to another channel).
    ChannelNote(Note),
    /// Post a digest into the target's channel (entry's `alert_id` is `DIGEST_ENTRY`).
    Digest(Box<DigestPost>),
}

/// The `alert_id` of outbox entries that belong to no alert (digests). Alert ids start at 1.
pub const DIGEST_ENTRY: AlertId = AlertId(0);

/// Whether a compare-and-swap change to an alert went through.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeOutcome {
    Applied,
    /// Someone changed the alert first; this is what it is now.
    Conflict(Box<Alert>),
}

/// A change to an alert, written atomically with its audit entry, outbox work and timers.
#[derive(Debug, Clone)]
pub struct AlertChange {
    pub alert: Alert,
    pub audit: AuditEntry,
    /// Work for every target of the alert.
    pub outbox: Vec<OutboxAction>,
    /// Extra deliveries to other places (escalation channel).
    pub extra_outbox: Vec<(Target, OutboxAction)>,
    /// Timers to cancel (the state change they waited for happened).
    pub cancel_timers: Vec<TimerKind>,
    pub set_timers: Vec<(TimerKind, DateTime<Utc>)>,
}

/// A durable timer that is due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timer {
    pub alert_id: AlertId,
    pub kind: TimerKind,
    pub due: DateTime<Utc>,
}

/// A pending delivery. `in_flight_since` is set (and flushed) before the platform is called,
/// so after a crash the relay knows the platform may already have the message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub alert_id: AlertId,
    pub target: Target,
    pub action: OutboxAction,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
    pub in_flight_since: Option<DateTime<Utc>>,
    pub not_before: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Set when the platform refused the entry for a reason a retry cannot fix; it stays
    /// (and shows in `/healthz` and `/desk list`) until a later attempt succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked: Option<Parked>,
}

/// Why an outbox entry is parked, and what a person must do about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parked {
    /// The platform's short error code (`invalid_auth`, `403/50013`).
    pub reason: String,
    pub fix: String,
    /// Whether the refusal stops the whole platform, the entry's channel, or only this entry.
    pub scope: crate::chat::Scope,
    pub since: DateTime<Utc>,
}

/// Key of an outbox entry; ordered by creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OutboxKey(u64);

impl OutboxKey {
    /// Unique per entry, for platforms to tag a delivery with.
    pub fn seq(self) -> u64 {
        self.0
    }
}

/// The one seam to the database. Clones share one set of sled handles and one flusher.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Trees>,
}

/// The sled handles behind every clone of a `Store`, in one `Arc` so that the last clone
/// drops them all on one thread after the flusher has stopped: sled flushes whenever a tree
/// handle's last copy drops, and two flushes must never run at once (see `store_flush.rs`).
pub struct Trees {
    /// Declared first so it is dropped first: its thread finishes and lets go of the
    /// database before the handles below run sled's final flush.
    flusher: Flusher,
    /// Unused directly; keeps the database itself open as long as the store.
    _db: sled::Db,
    meta: sled::Tree,
    mentions: sled::Tree,
    mention_log: sled::Tree,
    alerts: sled::Tree,
    seen: sled::Tree,
    sources: sled::Tree,
    outbox: sled::Tree,
    refs: sled::Tree,
    audit: sled::Tree,
    timers: sled::Tree,
    requests: sled::Tree,
    mutes: sled::Tree,
    threads: sled::Tree,
    /// `rule \x1f unix secs (be) \x1f seq (be)` → `RuleHit`: each rule's matched mentions in time
    /// order, repeats included, so volume per rule and hour is a range scan.
    rule_log: sled::Tree,
    /// Rung after every write that adds or releases outbox work, so the relay wakes without
    /// each writer having to hold a handle to it.
    outbox_signal: Arc<tokio::sync::Notify>,
}

impl std::ops::Deref for Store {
    type Target = Trees;

    fn deref(&self) -> &Trees {
        &self.inner
    }
}

const NEXT_ALERT_ID: &[u8] = b"next_alert_id";
const NEXT_OUTBOX_SEQ: &[u8] = b"next_outbox_seq";
const NEXT_MENTION_SEQ: &[u8] = b"next_mention_seq";
const NEXT_AUDIT_SEQ: &[u8] = b"next_audit_seq";

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // Reopening in the same process right after a drop can briefly find the lock still
        // held by a buffer write finishing on sled's IO pool; a real second process holds
        // it for good.
        let mut tries = 0;
        loop {
            match Store::open_once(path) {
                Err(StoreError::Locked { .. }) if tries < 20 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    fn open_once(path: &Path) -> Result<Store, StoreError> {
        // sled's own periodic flusher stays on (every 500 ms, its default, made explicit): it
        // only seals the current log buffer and hands its write to sled's IO pool, never
        // waiting for durability on a pool thread, so it cannot starve the pool the way
        // concurrent `flush_async` calls did (#1308); and it is what runs sled's segment
        // garbage collection. It covers the writes nobody waits for (`record_failure`,
        // `defer`, timers); every write that must survive a crash waits on our flusher.
        let db = sled::Config::new()
            .path(path)
            .flush_every_ms(Some(500))
            .open()
            .map_err(|e| {
                if e.to_string().contains("could not acquire lock") {
                    StoreError::Locked {
                        path: path.to_path_buf(),
                    }
                } else {
                    StoreError::Open {
                        path: path.to_path_buf(),
                        source: e,
                    }
                }
            })?;
        let trees = Trees {
            meta: db.open_tree("meta")?,
            mentions: db.open_tree("mentions")?,
            mention_log: db.open_tree("mention_log")?,
            alerts: db.open_tree("alerts")?,
            seen: db.open_tree("seen")?,
            sources: db.open_tree("source_state")?,
            outbox: db.open_tree("outbox")?,
            refs: db.open_tree("message_refs")?,
            audit: db.open_tree("audit")?,
            timers: db.open_tree("timers")?,
            requests: db.open_tree("requests")?,
            mutes: db.open_tree("mutes")?,
            threads: db.open_tree("threads")?,
            rule_log: db.open_tree("rule_log")?,
            flusher: Flusher::start(db.clone()),
            outbox_signal: Arc::new(tokio::sync::Notify::new()),
            _db: db,
        };
        Ok(Store {
            inner: Arc::new(trees),
        })
    }

    /// Waits until everything this caller wrote so far is on disk. Every durability wait in
    /// the store goes through here: one flusher, one flush at a time, shared by all waiters.
    async fn durable(&self) -> Result<(), StoreError> {
        self.flusher.wait().await?;
        Ok(())
    }

    /// The relay's wake-up: notified (one stored permit) after every durable write that adds
    /// outbox entries or makes waiting ones due again.
    pub fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.outbox_signal.clone()
    }

    /// How the flusher has worked so far (flushes run versus waits served).
    pub fn flush_stats(&self) -> FlushStats {
        self.flusher.stats()
    }

    /// Writes a poll's results in one transaction: new mentions, their dedup keys, the alerts
    /// and their outbox entries, and the source's new state; then flushes. Either all of it
    /// survives a crash or none of it does (and the next poll fetches the items again).
    pub async fn accept(
        &self,
        source: &str,
        state: &SourceState,
        candidates: &[Candidate],
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        self.accept_with(Some((source, state)), candidates, now)
            .await
    }

    /// Stores candidates that come from no source (spike alerts): as `accept`, without a
    /// source state to save.
    pub async fn accept_generated(
        &self,
        candidates: &[Candidate],
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        self.accept_with(None, candidates, now).await
    }

    async fn accept_with(
        &self,
        source: Option<(&str, &SourceState)>,
        candidates: &[Candidate],
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        let source = source.map(|(name, state)| (name.as_bytes().to_vec(), to_json(state)));
        let trees = (
            &self.meta,
            &self.mentions,
            &self.mention_log,
            &self.alerts,
            &self.seen,
            &self.sources,
            &self.outbox,
            &self.timers,
            &self.threads,
            &self.audit,
            &self.rule_log,
        );
        let accepted = trees
            .transaction(
                |(
                    meta,
                    mentions,
                    mention_log,
                    alerts,
                    seen,
                    sources,
                    outbox,
                    timers,
                    threads,
                    audit,
                    rule_log,
                )| {
                    let mut accepted = Accepted::default();
                    for c in candidates {
                        let mut known = false;
                        for k in &c.dedup_keys {
                            if seen.get(k.as_bytes())?.is_some() {
                                known = true;
                                break;
                            }
                        }
                        if known {
                            continue;
                        }
                        for k in &c.dedup_keys {
                            seen.insert(k.as_bytes(), &now.timestamp().to_be_bytes())?;
                        }
                        let key = c.mention.key();
                        let stored = StoredMention {
                            mention: c.mention.clone(),
                            received_at: now,
                        };
                        mentions.insert(key.as_bytes(), to_json(&stored))?;
                        let seq = next_counter(meta, NEXT_MENTION_SEQ)?;
                        mention_log.insert(&seq.to_be_bytes(), key.as_bytes())?;
                        accepted.new_mentions += 1;

                        if let Some(new) = &c.alert {
                            if new.log_hit {
                                for rule in &new.rules {
                                    let hit = RuleHit {
                                        rule: rule.clone(),
                                        at: now,
                                        mention_key: key.clone(),
                                        source: c.mention.source.clone(),
                                        sentiment: new.sentiment,
                                        negative: new.negative,
                                    };
                                    let k = rule_log_key(rule, now.timestamp(), seq);
                                    rule_log.insert(k, to_json(&hit))?;
                                }
                            }
                            if let Some(existing) =
                                repeat_of(threads, alerts, &new.thread_keys, now)?
                            {
                                for target in &existing.targets {
                                    let action = OutboxAction::ThreadNote(new.repeat_note.clone());
                                    push_outbox(meta, outbox, existing.id, target, action, now)?;
                                }
                                accepted.threaded.push(existing.id);
                                continue;
                            }
                            let id = AlertId(next_counter(meta, NEXT_ALERT_ID)?);
                            let alert = Alert {
                                id,
                                mention_key: key,
                                rules: new.rules.clone(),
                                priority: new.priority,
                                sentiment: new.sentiment,
                                negative: new.negative,
                                targets: new.targets.clone(),
                                state: AlertState::Open,
                                created_at: now,
                                highlights: new.highlights.clone(),
                                first_claimed_at: None,
                                resolved_at: None,
                                human_negative: None,
                            };
                            alerts.insert(&id.0.to_be_bytes(), to_json(&alert))?;
                            for target in &alert.targets {
                                push_outbox(
                                    meta,
                                    outbox,
                                    id,
                                    target,
                                    OutboxAction::PostAlert,
                                    now,
                                )?;
                            }
                            for (kind, due) in &new.timers {
                                set_timer(timers, id, *kind, *due)?;
                            }
                            let thread_value = to_json(&(id, now));
                            for k in &new.thread_keys {
                                threads.insert(k.as_bytes(), thread_value.as_slice())?;
                            }
                            let entry = AuditEntry {
                                at: now,
                                actor: "system".into(),
                                action: "created".into(),
                                from: "-".into(),
                                to: "open".into(),
                                detail: Some(format!("rules {}", new.rules.join(", "))),
                            };
                            push_audit(meta, audit, id, &entry)?;
                            accepted.alerts.push(alert);
                        }
                    }
                    if let Some((name, state)) = &source {
                        sources.insert(name.as_slice(), state.as_slice())?;
                    }
                    Ok(accepted)
                },
            )
            .map_err(flatten_tx)?;
        self.durable().await?;
        self.outbox_signal.notify_one();
        Ok(accepted)
    }

    pub fn source_state(&self, source: &str) -> Result<SourceState, StoreError> {
        match self.sources.get(source.as_bytes())? {
            Some(v) => from_json(source, &v),
            None => Ok(SourceState::default()),
        }
    }

    pub fn alert(&self, id: AlertId) -> Result<Option<Alert>, StoreError> {
        self.alerts
            .get(id.0.to_be_bytes())?
            .map(|v| from_json(&format!("alert {id}"), &v))
            .transpose()
    }

    pub fn mention(&self, key: &str) -> Result<Option<StoredMention>, StoreError> {
        self.mentions
            .get(key.as_bytes())?
            .map(|v| from_json(key, &v))
            .transpose()
    }

    /// Every alert, oldest first.
    pub fn alerts(&self) -> Result<Vec<Alert>, StoreError> {
        self.alerts
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                from_json(&format!("alert {:?}", k), &v)
            })
            .collect()
    }

    pub fn mention_count(&self) -> usize {
        self.mention_log.len()
    }

    /// Outbox entries in creation order.
    pub fn outbox(&self) -> Result<Vec<(OutboxKey, OutboxEntry)>, StoreError> {
        self.outbox
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let key = OutboxKey(u64_key(&k));
                Ok((key, from_json(&format!("outbox {}", key.0), &v)?))
            })
            .collect()
    }

    /// Marks an entry as being sent and flushes, before the platform is called.
    pub async fn mark_in_flight(
        &self,
        key: OutboxKey,
        now: DateTime<Utc>,
    ) -> Result<OutboxEntry, StoreError> {
        let entry = self.update_outbox(key, |e| {
            e.attempts += 1;
            e.in_flight_since.get_or_insert(now);
        })?;
        self.durable().await?;
        Ok(entry)
    }

    /// Records a failed attempt: `attempts` is the entry's attempt count after it, and the
    /// entry is retried at `not_before`.
    pub fn record_failure(
        &self,
        key: OutboxKey,
        attempts: u32,
        error: &str,
        not_before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.update_outbox(key, |e| {
            e.attempts = attempts;
            e.last_error = Some(error.to_string());
            e.not_before = Some(not_before);
        })?;
        Ok(())
    }

    /// Parks an entry the platform refused for good (`parked.reason`); it is tried again at
    /// `not_before` (`None`: as soon as the relay lets its platform and channel through).
    pub fn park(
        &self,
        key: OutboxKey,
        attempts: u32,
        error: &str,
        parked: &Parked,
        not_before: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.update_outbox(key, |e| {
            e.attempts = attempts;
            e.last_error = Some(error.to_string());
            e.not_before = not_before;
            if e.parked.as_ref().map(|p| &p.reason) != Some(&parked.reason) {
                e.parked = Some(parked.clone());
            }
        })?;
        Ok(())
    }

    /// Makes every entry `which` accepts due now (its cause is gone, or the daemon restarted);
    /// parked entries keep their reason until they are delivered. Returns how many.
    pub fn retry_now(&self, which: impl Fn(&OutboxEntry) -> bool) -> Result<usize, StoreError> {
        let mut n = 0;
        for (key, entry) in self.outbox()? {
            if entry.not_before.is_some() && which(&entry) {
                self.update_outbox(key, |e| e.not_before = None)?;
                n += 1;
            }
        }
        if n > 0 {
            self.outbox_signal.notify_one();
        }
        Ok(n)
    }

    /// The platform has the message: drop the outbox entry and keep the reference, atomically,
    /// then flush so a restart never posts it again.
    pub async fn complete(
        &self,
        key: OutboxKey,
        entry: &OutboxEntry,
        msg: &MessageRef,
    ) -> Result<(), StoreError> {
        let ref_key = ref_key(entry.alert_id, &entry.target);
        let value = to_json(msg);
        (&self.outbox, &self.refs)
            .transaction(|(outbox, refs)| {
                outbox.remove(&key.0.to_be_bytes())?;
                refs.insert(ref_key.as_slice(), value.as_slice())?;
                Ok(())
            })
            .map_err(flatten_tx)?;
        self.durable().await?;
        Ok(())
    }

    /// The platform did what an entry asked and there is no reference to keep: drop it, flush.
    pub async fn finish(&self, key: OutboxKey) -> Result<(), StoreError> {
        self.outbox.remove(key.0.to_be_bytes())?;
        self.durable().await?;
        Ok(())
    }

    /// Puts an entry off until `not_before` without counting an attempt (it waits for
    /// something else, such as its alert's root message, to be delivered first).
    pub fn defer(&self, key: OutboxKey, not_before: DateTime<Utc>) -> Result<(), StoreError> {
        self.update_outbox(key, |e| e.not_before = Some(not_before))?;
        Ok(())
    }

    /// Where an alert was posted, one reference per target.
    pub fn message_refs(&self, id: AlertId) -> Result<Vec<MessageRef>, StoreError> {
        self.refs
            .scan_prefix(id.0.to_be_bytes())
            .map(|kv| {
                let (_, v) = kv?;
                from_json(&format!("message ref of alert {id}"), &v)
            })
            .collect()
    }

    /// Waits until everything written so far is on disk (shutdown, CLI commands).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.durable().await
    }

    /// Compare-and-swap: writes `change` only if the alert is still exactly `expected`, with
    /// its audit entry, outbox work and timers in the same transaction; then flushes.
    pub async fn change_alert(
        &self,
        expected: &Alert,
        change: AlertChange,
    ) -> Result<ChangeOutcome, StoreError> {
        let id = expected.id;
        let expected_bytes = to_json(expected);
        let new_bytes = to_json(&change.alert);
        let trees = (
            &self.meta,
            &self.alerts,
            &self.audit,
            &self.outbox,
            &self.timers,
        );
        let outcome = trees
            .transaction(|(meta, alerts, audit, outbox, timers)| {
                let current = alerts.get(id.0.to_be_bytes())?;
                match current {
                    Some(cur) if cur.as_ref() == expected_bytes.as_slice() => {}
                    Some(cur) => {
                        let alert: Alert = serde_json::from_slice(&cur).map_err(|e| {
                            ConflictableTransactionError::Abort(StoreError::Corrupt {
                                key: format!("alert {id}"),
                                reason: e.to_string(),
                            })
                        })?;
                        return Ok(ChangeOutcome::Conflict(Box::new(alert)));
                    }
                    None => {
                        return Err(ConflictableTransactionError::Abort(StoreError::Corrupt {
                            key: format!("alert {id}"),
                            reason: "missing".into(),
                        }))
                    }
                }
                alerts.insert(&id.0.to_be_bytes(), new_bytes.as_slice())?;
                push_audit(meta, audit, id, &change.audit)?;
                let now = change.audit.at;
                for action in &change.outbox {
                    for target in &change.alert.targets {
                        push_outbox(meta, outbox, id, target, action.clone(), now)?;
                    }
                }
                for (target, action) in &change.extra_outbox {
                    push_outbox(meta, outbox, id, target, action.clone(), now)?;
                }
                for kind in &change.cancel_timers {
                    timers.remove(&timer_key(id, *kind))?;
                }
                for (kind, due) in &change.set_timers {
                    set_timer(timers, id, *kind, *due)?;
                }
                Ok(ChangeOutcome::Applied)
            })
            .map_err(flatten_tx)?;
        if outcome == ChangeOutcome::Applied {
            self.durable().await?;
            self.outbox_signal.notify_one();
        }
        Ok(outcome)
    }

    /// Removes a timer that fired, unless it was re-armed in the meantime.
    pub fn remove_timer(&self, timer: &Timer) -> Result<(), StoreError> {
        let key = timer_key(timer.alert_id, timer.kind);
        let _ = self
            .timers
            .compare_and_swap(key, Some(to_json(timer)), None as Option<&[u8]>)?;
        Ok(())
    }

    /// Timers due at or before `now`.
    pub fn due_timers(&self, now: DateTime<Utc>) -> Result<Vec<Timer>, StoreError> {
        let mut out = Vec::new();
        for kv in self.timers.iter() {
            let (_, v) = kv?;
            let t: Timer = from_json("timer", &v)?;
            if t.due <= now {
                out.push(t);
            }
        }
        out.sort_by_key(|t| t.due);
        Ok(out)
    }

    /// Every timer, for tests and `/healthz`.
    pub fn timers(&self) -> Result<Vec<Timer>, StoreError> {
        self.timers
            .iter()
            .map(|kv| from_json("timer", &kv?.1))
            .collect()
    }

    /// An alert's audit log, oldest first.
    pub fn audit_log(&self, id: AlertId) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit
            .scan_prefix(id.0.to_be_bytes())
            .map(|kv| from_json(&format!("audit of alert {id}"), &kv?.1))
            .collect()
    }

    /// Records a request id (Slack trigger id, ...) and says whether it is new. A replayed or
    /// retried request answers `false`, so its action is never applied twice.
    pub async fn first_request(&self, key: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let fresh = self
            .requests
            .compare_and_swap(
                key.as_bytes(),
                None as Option<&[u8]>,
                Some(&now.timestamp().to_be_bytes()[..]),
            )?
            .is_ok();
        if fresh {
            self.durable().await?;
        }
        Ok(fresh)
    }

    /// Forgets request ids older than `before`; replays are refused by their timestamp long
    /// before that, so the ids are only needed for Slack's and Discord's retry window.
    pub fn prune_requests(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut removed = 0;
        for kv in self.requests.iter() {
            let (k, v) = kv?;
            let at = i64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8]));
            if at < before.timestamp() {
                self.requests.remove(k)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Mutes an author or site (`author:<kind>:<name>` / `site:<domain>`) from now on.
    pub async fn mute(&self, key: &str, by: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.mutes.insert(key.as_bytes(), to_json(&(by, now)))?;
        self.durable().await?;
        Ok(())
    }

    pub fn is_muted(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.mutes.contains_key(key.as_bytes())?)
    }

    /// The newest `n` stored mentions, newest first (for `/desk preview`).
    pub fn recent_mentions(&self, n: usize) -> Result<Vec<StoredMention>, StoreError> {
        let mut out = Vec::with_capacity(n.min(1024));
        for kv in self.mention_log.iter().rev().take(n) {
            let (_, key) = kv?;
            let key = String::from_utf8_lossy(&key).into_owned();
            if let Some(m) = self.mention(&key)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// The message reference of an alert on one target, if it was posted there.
    pub fn message_ref(
        &self,
        id: AlertId,
        target: &Target,
    ) -> Result<Option<MessageRef>, StoreError> {
        self.refs
            .get(ref_key(id, target))?
            .map(|v| from_json(&format!("message ref of alert {id}"), &v))
            .transpose()
    }

    /// The hits of one rule in `[from, to)`, oldest first.
    pub fn rule_hits(
        &self,
        rule: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RuleHit>, StoreError> {
        // Keys hold whole seconds: read the seconds around the bounds, then cut exactly.
        let start = rule_log_key(rule, from.timestamp(), 0);
        let end = rule_log_key(rule, to.timestamp().saturating_add(1), 0);
        let mut out = Vec::new();
        for kv in self.rule_log.range(start..end) {
            let (_, v) = kv?;
            let hit: RuleHit = from_json(&format!("rule hit of {rule}"), &v)?;
            if hit.at >= from && hit.at < to {
                out.push(hit);
            }
        }
        Ok(out)
    }

    /// Drops rule hits older than `before` (the digest and spike baseline read at most a few
    /// weeks back). Returns how many were removed.
    pub fn prune_rule_hits(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let cutoff = before.timestamp() as u64 ^ (1 << 63);
        let mut removed = 0;
        for kv in self.rule_log.iter() {
            let (k, _) = kv?;
            // Key: rule, 0x1f, secs (8 bytes), seq (8 bytes).
            if k.len() >= 16 && u64_key(&k[k.len() - 16..k.len() - 8]) < cutoff {
                self.rule_log.remove(&k)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// When `rule` first matched anything (the start of its volume history).
    pub fn first_hit(&self, rule: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let start = rule_log_key(rule, i64::MIN, 0);
        let end = rule_log_key(rule, i64::MAX, u64::MAX);
        match self.rule_log.range(start..end).next() {
            Some(kv) => {
                let (_, v) = kv?;
                let hit: RuleHit = from_json(&format!("rule hit of {rule}"), &v)?;
                Ok(Some(hit.at))
            }
            None => Ok(None),
        }
    }

    /// A small value in the meta tree (digest slots, spike cooldowns), as JSON.
    pub fn meta_get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.meta
            .get(key.as_bytes())?
            .map(|v| from_json(key, &v))
            .transpose()
    }

    pub async fn meta_set<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        self.meta.insert(key.as_bytes(), to_json(value))?;
        self.durable().await?;
        Ok(())
    }

    /// Queues a digest for each target and, when `slot` is given, records it as sent, in one
    /// transaction (then flushes): a crash either keeps both or neither, so a slot is
    /// neither lost nor posted twice.
    pub async fn enqueue_digest<T: Serialize>(
        &self,
        slot: Option<(&str, &T)>,
        targets: &[Target],
        post: &DigestPost,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let slot = slot.map(|(k, v)| (k.as_bytes().to_vec(), to_json(v)));
        (&self.meta, &self.outbox)
            .transaction(|(meta, outbox)| {
                if let Some((k, v)) = &slot {
                    meta.insert(k.as_slice(), v.as_slice())?;
                }
                for t in targets {
                    let action = OutboxAction::Digest(Box::new(post.clone()));
                    push_outbox(meta, outbox, DIGEST_ENTRY, t, action, now)?;
                }
                Ok(())
            })
            .map_err(flatten_tx)?;
        self.durable().await?;
        self.outbox_signal.notify_one();
        Ok(())
    }

    fn update_outbox(
        &self,
        key: OutboxKey,
        f: impl Fn(&mut OutboxEntry),
    ) -> Result<OutboxEntry, StoreError> {
        let k = key.0.to_be_bytes();
        let label = format!("outbox {}", key.0);
        let mut result = None;
        self.outbox.update_and_fetch(k, |old| {
            let old = old?;
            let mut entry: OutboxEntry = serde_json::from_slice(old).ok()?;
            f(&mut entry);
            let bytes = to_json(&entry);
            result = Some(entry);
            Some(bytes)
        })?;
        result.ok_or(StoreError::Corrupt {
            key: label,
            reason: "missing or unreadable".into(),
        })
    }
}

fn rule_log_key(rule: &str, secs: i64, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(rule.len() + 17);
    k.extend_from_slice(rule.as_bytes());
    k.push(0x1f);
    // Offset so negative (pre-1970) times still sort before positive ones.
    k.extend_from_slice(&(secs as u64 ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn next_counter(meta: &TransactionalTree, name: &[u8]) -> TxResult<u64> {
    let next = meta.get(name)?.map(|v| u64_key(&v)).unwrap_or(1);
    meta.insert(name, &(next + 1).to_be_bytes())?;
    Ok(next)
}

fn push_outbox(
    meta: &TransactionalTree,
    outbox: &TransactionalTree,
    alert_id: AlertId,
    target: &Target,
    action: OutboxAction,
    now: DateTime<Utc>,
) -> TxResult<()> {
    let seq = next_counter(meta, NEXT_OUTBOX_SEQ)?;
    let entry = OutboxEntry {
        alert_id,
        target: target.clone(),
        action,
        created_at: now,
        attempts: 0,
        in_flight_since: None,
        not_before: None,
        last_error: None,
        parked: None,
    };
    outbox.insert(&seq.to_be_bytes(), to_json(&entry))?;
    Ok(())
}

fn push_audit(
    meta: &TransactionalTree,
    audit: &TransactionalTree,
    id: AlertId,
    entry: &AuditEntry,
) -> TxResult<()> {
    let seq = next_counter(meta, NEXT_AUDIT_SEQ)?;
    let mut key = id.0.to_be_bytes().to_vec();
    key.extend_from_slice(&seq.to_be_bytes());
    audit.insert(key, to_json(entry))?;
    Ok(())
}

fn timer_key(id: AlertId, kind: TimerKind) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..8].copy_from_slice(&id.0.to_be_bytes());
    k[8] = kind.code();
    k
}

fn set_timer(
    timers: &TransactionalTree,
    id: AlertId,
    kind: TimerKind,
    due: DateTime<Utc>,
) -> TxResult<()> {
    let t = Timer {
        alert_id: id,
        kind,
        due,
    };
    timers.insert(&timer_key(id, kind), to_json(&t))?;
    Ok(())
}

/// The alert a mention repeats: one sharing a thread key, created within the window.
fn repeat_of(
    threads: &TransactionalTree,
    alerts: &TransactionalTree,
    keys: &[String],
    now: DateTime<Utc>,
) -> TxResult<Option<Alert>> {
    for k in keys {
        let Some(v) = threads.get(k.as_bytes())? else {
            continue;
        };
        let Ok((id, at)) = serde_json::from_slice::<(AlertId, DateTime<Utc>)>(&v) else {
            continue;
        };
        if now - at > chrono::Duration::days(REPEAT_WINDOW_DAYS) {
            continue;
        }
        if let Some(a) = alerts.get(id.0.to_be_bytes())? {
            if let Ok(alert) = serde_json::from_slice::<Alert>(&a) {
                return Ok(Some(alert));
            }
        }
    }
    Ok(None)
}

fn ref_key(id: AlertId, target: &Target) -> Vec<u8> {
    let mut k = id.0.to_be_bytes().to_vec();
    k.extend_from_slice(target.to_string().as_bytes());
    k
}

fn u64_key(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(b)
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records are plain data and always serialise")
}

fn from_json<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

fn flatten_tx(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mention(id: &str) -> Mention {
        Mention {
            item_id: id.into(),
            source: "feed".into(),
            source_kind: "rss".into(),
            url: Some(format!("https://example.com/{id}")),
            title: None,
            text: format!("text {id}"),
            author: None,
            author_reach: None,
            published: None,
            lang: None,
        }
    }

    fn candidate(id: &str, alert: bool) -> Candidate {
        let m = mention(id);
        Candidate {
            dedup_keys: vec![
                format!("item:{}", m.key()),
                format!("url:{}", m.url.clone().unwrap()),
            ],
            mention: m,
            alert: alert.then(|| NewAlert {
                rules: vec!["acme".into()],
                priority: Priority::Normal,
                sentiment: 0.0,
                negative: false,
                targets: vec![Target::Slack("#pr".into()), Target::Slack("#leads".into())],
                highlights: vec![],
                timers: vec![],
                thread_keys: vec![],
                repeat_note: Note::new(),
                log_hit: true,
            }),
        }
    }

    /// The relay sleeps on the store's signal alone: a write that queues work must ring it,
    /// or new alerts would wait for the relay's idle timeout.
    #[tokio::test]
    async fn outbox_writes_ring_the_relay_signal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let signal = store.outbox_signal();
        let rung = || async {
            tokio::time::timeout(std::time::Duration::from_secs(5), signal.notified())
                .await
                .is_ok()
        };
        store
            .accept(
                "feed",
                &SourceState::default(),
                &[candidate("a", true)],
                Utc::now(),
            )
            .await
            .unwrap();
        assert!(rung().await, "accept of a new alert rings the signal");
        let (key, _) = store.outbox().unwrap()[0].clone();
        store
            .defer(key, Utc::now() + chrono::Duration::hours(1))
            .unwrap();
        assert_eq!(store.retry_now(|_| true).unwrap(), 1);
        assert!(
            rung().await,
            "making deferred work due again rings the signal"
        );
    }

    #[tokio::test]
    async fn accept_writes_alerts_and_outbox_and_dedups_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let state = SourceState {
            etag: Some("\"v1\"".into()),
            ..Default::default()
        };
        {
            let store = Store::open(dir.path()).unwrap();
            let got = store
                .accept(
                    "feed",
                    &state,
                    &[candidate("a", true), candidate("b", false)],
                    now,
                )
                .await
                .unwrap();
            assert_eq!(got.new_mentions, 2);
            assert_eq!(got.alerts.len(), 1);
            assert_eq!(got.alerts[0].id, AlertId(1));
            let outbox = store.outbox().unwrap();
            assert_eq!(outbox.len(), 2, "one entry per target");
            assert_eq!(store.source_state("feed").unwrap(), state);
        }
        let store = Store::open(dir.path()).unwrap();
        let again = store
            .accept(
                "feed",
                &state,
                &[candidate("a", true), candidate("c", true)],
                now,
            )
            .await
            .unwrap();
        assert_eq!(again.new_mentions, 1, "a was seen before the reopen");
        assert_eq!(again.alerts[0].id, AlertId(2), "ids continue after reopen");
        assert_eq!(store.outbox().unwrap().len(), 4);
    }

    #[tokio::test]
    async fn duplicate_within_one_batch_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut twin = candidate("a2", true);
        twin.dedup_keys.push("url:https://example.com/a".into());
        let got = store
            .accept(
                "feed",
                &SourceState::default(),
                &[candidate("a", true), twin],
                Utc::now(),
            )
            .await
            .unwrap();
        assert_eq!(
            got.alerts.len(),
            1,
            "same URL under another id is the same story"
        );
    }

    #[tokio::test]
    async fn request_ids_are_remembered_then_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t0 = Utc::now() - chrono::Duration::days(2);
        assert!(store.first_request("slack:command:T1", t0).await.unwrap());
        assert!(
            !store.first_request("slack:command:T1", t0).await.unwrap(),
            "a replay is refused"
        );
        assert!(store
            .first_request("slack:command:T2", Utc::now())
            .await
            .unwrap());
        assert_eq!(
            store
                .prune_requests(Utc::now() - chrono::Duration::days(1))
                .unwrap(),
            1
        );
        assert!(
            !store
                .first_request("slack:command:T2", Utc::now())
                .await
                .unwrap(),
            "recent ids stay"
        );
    }

    #[tokio::test]
    async fn complete_moves_entry_to_refs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .accept(
                "feed",
                &SourceState::default(),
                &[candidate("a", true)],
                Utc::now(),
            )
            .await
            .unwrap();
        let (key, _) = store.outbox().unwrap()[0].clone();
        let entry = store.mark_in_flight(key, Utc::now()).await.unwrap();
        assert_eq!(entry.attempts, 1);
        assert!(entry.in_flight_since.is_some());
        let msg = MessageRef {
            target: entry.target.clone(),
            channel_id: "C1".into(),
            message_id: "1.2".into(),
        };
        store.complete(key, &entry, &msg).await.unwrap();
        assert_eq!(store.outbox().unwrap().len(), 1);
        assert_eq!(store.message_refs(entry.alert_id).unwrap(), vec![msg]);
    }

    /// sled 0.34 wedged when many `flush_async` calls ran at once (#1308): hundreds of
    /// concurrent writers that each wait for durability must all return, through flushes
    /// that never overlap, and what they wrote must be there after an immediate reopen.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_durable_writes_share_one_flusher_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let batch: Vec<Candidate> = (0..8).map(|i| candidate(&format!("m{i}"), true)).collect();
        store
            .accept("feed", &SourceState::default(), &batch, now)
            .await
            .unwrap();
        let outbox = store.outbox().unwrap();
        let before = store.flush_stats();
        let mut tasks = Vec::new();
        for i in 0..400usize {
            let store = store.clone();
            let (key, _) = outbox[i % outbox.len()].clone();
            tasks.push(tokio::spawn(async move {
                match i % 4 {
                    0 => assert!(store
                        .first_request(&format!("slack:command:T{i}"), now)
                        .await
                        .unwrap()),
                    1 => {
                        store.mark_in_flight(key, now).await.unwrap();
                    }
                    2 => store
                        .mute(&format!("author:rss:a{i}"), "U1", now)
                        .await
                        .unwrap(),
                    _ => store.meta_set(&format!("k{i}"), &i).await.unwrap(),
                }
            }));
        }
        for t in tasks {
            tokio::time::timeout(std::time::Duration::from_secs(30), t)
                .await
                .expect("no durable write hangs")
                .unwrap();
        }
        let stats = store.flush_stats();
        assert_eq!(stats.waits - before.waits, 400);
        assert_eq!(
            stats.max_concurrent, 1,
            "two flushes ran at once: {stats:?}"
        );
        assert!(
            stats.flushes - before.flushes < 400,
            "waiters that queue during a flush share the next one: {stats:?}"
        );
        drop(store);

        let store = Store::open(dir.path()).expect("reopens right after the last handle drops");
        for i in 0..400usize {
            match i % 4 {
                0 => assert!(!store
                    .first_request(&format!("slack:command:T{i}"), now)
                    .await
                    .unwrap()),
                2 => assert!(store.is_muted(&format!("author:rss:a{i}")).unwrap()),
                3 => assert_eq!(store.meta_get::<usize>(&format!("k{i}")).unwrap(), Some(i)),
                _ => {}
            }
        }
        let attempts: u32 = store
            .outbox()
            .unwrap()
            .iter()
            .map(|(_, e)| e.attempts)
            .sum();
        assert_eq!(attempts, 100, "every mark_in_flight counted one attempt");
    }
}
