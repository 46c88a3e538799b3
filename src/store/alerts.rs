//! Alerts after they exist: reads, the desk's compare-and-swap changes (with their audit
//! entries, outbox work and timers in one transaction), the durable timers and the audit log.
//! It does not decide what a change is; the desk's state machine does.

use super::accept::StoredMention;
use super::alert_record::Parts;
use super::labels::apply_label;
use super::mention_record::{self, Decoded};
use super::outbox::push_outbox;
use super::rule_log::RuleHit;
use super::timer_queue::TimerTrees;
use super::{
    flatten_tx, from_json, next_counter, to_json, u64_key, LabelWrite, OutboxAction, SledStore,
    StoreError, TxResult, NEXT_AUDIT_SEQ,
};
use crate::model::{Alert, AlertId, AlertState, AuditEntry, Priority, Target, TimerKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;

/// Whether a compare-and-swap change to an alert went through.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ChangeOutcome {
    Applied,
    /// Someone changed the alert first; this is what it is now.
    Conflict(Box<Alert>),
}

/// A change to an alert, written atomically with its audit entry, outbox work and timers.
#[derive(Debug, Clone)]
pub(crate) struct AlertChange {
    pub(crate) alert: Alert,
    pub(crate) audit: AuditEntry,
    /// Work for every target of the alert.
    pub(crate) outbox: Vec<OutboxAction>,
    /// Extra deliveries to other places (escalation channel).
    pub(crate) extra_outbox: Vec<(Target, OutboxAction)>,
    /// Timers to cancel (the state change they waited for happened).
    pub(crate) cancel_timers: Vec<TimerKind>,
    pub(crate) set_timers: Vec<(TimerKind, DateTime<Utc>)>,
    /// The relevance label the change gives the alert's rules, written with it.
    pub(crate) label: Option<LabelWrite>,
}

/// The `alert_id` of a timer round's message: it lists several alerts and belongs to none
/// (alert ids start at 1; digests use the same id).
pub(crate) const ROUND_ENTRY: AlertId = AlertId(0);

/// What a round checks is unchanged for one alert: id, alert bytes, its timer.
type RoundCheck = (AlertId, Vec<u8>, Timer);

/// What `/desk list` sorts and filters by, for an alert still on the desk (neither resolved
/// nor ignored). sled keeps these in memory (`DeskIndex`), so a list during a large ingest
/// reads the few alerts it shows instead of decoding every alert ever stored. Compact (about
/// 48 bytes): a desk may hold many open alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertHead {
    pub id: AlertId,
    pub priority: Priority,
    pub created_at: DateTime<Utc>,
    pub state: HeadState,
}

/// The desk states `list` tells apart; only a claim keeps who holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadState {
    Open,
    Claimed { by: Box<str> },
    Snoozed,
    Held,
}

impl AlertHead {
    /// `None` once the alert left the desk.
    pub(crate) fn of(a: &Alert) -> Option<AlertHead> {
        AlertHead::from_parts(a.id, a.priority, a.created_at, &a.state)
    }

    pub(super) fn from_parts(
        id: AlertId,
        priority: Priority,
        created_at: DateTime<Utc>,
        state: &AlertState,
    ) -> Option<AlertHead> {
        let state = match state {
            AlertState::Open => HeadState::Open,
            AlertState::Claimed { by, .. } => HeadState::Claimed {
                by: by.as_str().into(),
            },
            AlertState::Snoozed { .. } => HeadState::Snoozed,
            AlertState::Held => HeadState::Held,
            AlertState::Resolved { .. } | AlertState::Ignored { .. } => return None,
        };
        Some(AlertHead {
            id,
            priority,
            created_at,
            state,
        })
    }
}

/// A durable timer that is due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timer {
    pub alert_id: AlertId,
    pub kind: TimerKind,
    pub due: DateTime<Utc>,
}

impl SledStore {
    pub fn alert(&self, id: AlertId) -> Result<Option<Alert>, StoreError> {
        self.alerts
            .get(id.0.to_be_bytes())?
            .map(|v| decode_alert(id, &v))
            .transpose()
    }

    /// The mention an alert is about: held in the alert's value, or (an alert stored before
    /// that, or copied in) in `mentions`. `None` once its body is gone.
    pub fn alert_mention(&self, alert: &Alert) -> Result<Option<StoredMention>, StoreError> {
        Ok(self
            .mention_of(alert.id, &alert.mention_key)?
            .map(|d| d.stored))
    }

    /// The mention of a rule hit: held by the alert it opened, or in `mentions`.
    pub fn hit_mention(&self, hit: &RuleHit) -> Result<Option<StoredMention>, StoreError> {
        match hit.alert {
            Some(id) => Ok(self.mention_of(id, &hit.mention_key)?.map(|d| d.stored)),
            None => self.mention(&hit.mention_key),
        }
    }

    /// The record of mention `key`, which alert `id` is about.
    fn mention_of(&self, id: AlertId, key: &str) -> Result<Option<Decoded>, StoreError> {
        match self.alerts.get(id.0.to_be_bytes())? {
            Some(v) => self.held_mention(&alert_parts(id, &v)?, key),
            None => self.mention_in_tree(key),
        }
    }

    /// The record of mention `key`, which the alert stored as `parts` is about: held in
    /// its value, or (an alert stored before that, or copied in) in `mentions`.
    pub(super) fn held_mention(
        &self,
        parts: &Parts,
        key: &str,
    ) -> Result<Option<Decoded>, StoreError> {
        match parts.mention {
            Some(m) => Ok(Some(mention_record::decode(key, m)?)),
            None => self.mention_in_tree(key),
        }
    }

    /// How many alerts are stored, from the last key alone: ids are given out 1, 2, 3… by
    /// `NEXT_ALERT_ID` inside the transaction that writes the alert (an aborted one takes no
    /// id) and alerts are never deleted, so the highest id is the count. (`Tree::len` would
    /// walk every key.) Only start-up's hint reads it, so a read error counts as none, as
    /// it did with `Tree::len`.
    pub(crate) fn alert_count(&self) -> usize {
        match self.alerts.last() {
            Ok(last) => last.map_or(0, |(k, _)| u64_key(&k) as usize),
            Err(_) => 0,
        }
    }

    /// The alerts on the desk (neither resolved nor ignored), oldest first, from memory.
    pub(crate) fn desk_heads(&self) -> Vec<AlertHead> {
        self.desk.heads()
    }

    /// Every alert, oldest first.
    pub fn alerts(&self) -> Result<Vec<Alert>, StoreError> {
        self.alerts
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode_alert(AlertId(u64_key(&k)), &v)
            })
            .collect()
    }

    /// Compare-and-swap: writes `change` only if the alert is still exactly `expected`, with
    /// its audit entry, outbox work and timers in the same transaction; then flushes.
    pub(crate) async fn change_alert(
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
            &self.timer_queue,
            &self.labels,
            &self.relevance,
        );
        // The closure may run more than once (a conflict); the last run's answer counts.
        let labelled = std::cell::Cell::new(false);
        let outcome = {
            let writes = self.desk.lock_writes();
            let outcome = trees
                .transaction(
                    |(meta, alerts, audit, outbox, timers, queue, labels, relevance)| {
                        let Some(current) = alerts.get(id.0.to_be_bytes())? else {
                            return Err(ConflictableTransactionError::Abort(StoreError::Corrupt {
                                key: format!("alert {id}"),
                                reason: "missing".into(),
                            }));
                        };
                        let parts = alert_parts(id, &current)
                            .map_err(ConflictableTransactionError::Abort)?;
                        if parts.alert != expected_bytes.as_slice() {
                            let alert = decode_alert(id, &current)
                                .map_err(ConflictableTransactionError::Abort)?;
                            return Ok(ChangeOutcome::Conflict(Box::new(alert)));
                        }
                        // The mention and message references it holds stay as they are.
                        let stored = Parts {
                            alert: &new_bytes,
                            ..parts
                        };
                        alerts.insert(&id.0.to_be_bytes(), stored.encode())?;
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
                        let timers = TimerTrees {
                            alerts,
                            queue,
                            legacy: timers,
                        };
                        for kind in &change.cancel_timers {
                            timers.cancel(id, *kind)?;
                        }
                        for (kind, due) in &change.set_timers {
                            timers.set(id, *kind, *due)?;
                        }
                        labelled.set(match &change.label {
                            Some(label) => apply_label(labels, relevance, id, label)?,
                            None => false,
                        });
                        Ok(ChangeOutcome::Applied)
                    },
                )
                .map_err(flatten_tx)?;
            if outcome == ChangeOutcome::Applied {
                writes.put(&change.alert);
            }
            outcome
        };
        if outcome == ChangeOutcome::Applied {
            let targets = change.alert.targets.len();
            self.outbox_added(change.outbox.len() * targets + change.extra_outbox.len());
            if labelled.get() {
                self.labels_changed();
            }
            self.durable().await?;
            self.outbox_signal.notify_one();
        }
        Ok(outcome)
    }

    /// One timer round (see `desk::Desk::fire_round`): for every alert in `fired`, still exactly
    /// as expected, its audit entry and the removal of its fired timer; and the round's
    /// messages, all in one transaction, then flushed. A crash keeps all or nothing, so a
    /// round is neither lost nor posted twice. Nothing is written when any alert or its timer
    /// changed meanwhile (a claim and an unclaim leave the alert as it was but re-arm the
    /// timer with a later due time): its id comes back and the caller decides the round anew.
    pub(crate) async fn fire_round(
        &self,
        fired: &[(Alert, Timer, AuditEntry)],
        messages: &[(Target, OutboxAction)],
        now: DateTime<Utc>,
    ) -> Result<Result<(), AlertId>, StoreError> {
        // Per alert: its id and bytes, and its timer, as the round read them.
        let expected: Vec<RoundCheck> = fired
            .iter()
            .map(|(a, t, _)| (a.id, to_json(a), t.clone()))
            .collect();
        let trees = (
            &self.meta,
            &self.alerts,
            &self.audit,
            &self.outbox,
            &self.timers,
            &self.timer_queue,
        );
        let outcome = trees
            .transaction(|(meta, alerts, audit, outbox, legacy, queue)| {
                let timers = TimerTrees {
                    alerts,
                    queue,
                    legacy,
                };
                for (id, bytes, timer) in &expected {
                    let alert = alerts.get(id.0.to_be_bytes())?;
                    let same = match &alert {
                        Some(v) => {
                            alert_parts(*id, v)
                                .map_err(ConflictableTransactionError::Abort)?
                                .alert
                                == bytes.as_slice()
                        }
                        None => false,
                    };
                    if !same || timers.get(timer.alert_id, timer.kind)?.as_ref() != Some(timer) {
                        return Ok(Err(*id));
                    }
                }
                for (alert, timer, entry) in fired {
                    push_audit(meta, audit, alert.id, entry)?;
                    timers.cancel(timer.alert_id, timer.kind)?;
                }
                for (target, action) in messages {
                    push_outbox(meta, outbox, ROUND_ENTRY, target, action.clone(), now)?;
                }
                Ok(Ok(()))
            })
            .map_err(flatten_tx)?;
        if outcome.is_ok() {
            self.outbox_added(messages.len());
            self.durable().await?;
            self.outbox_signal.notify_one();
        }
        Ok(outcome)
    }

    /// Removes a timer that fired, unless it was re-armed in the meantime.
    pub(crate) fn remove_timer(&self, timer: &Timer) -> Result<(), StoreError> {
        (&self.alerts, &self.timer_queue, &self.timers)
            .transaction(|(alerts, queue, legacy)| {
                let timers = TimerTrees {
                    alerts,
                    queue,
                    legacy,
                };
                if timers.get(timer.alert_id, timer.kind)?.as_ref() == Some(timer) {
                    timers.cancel(timer.alert_id, timer.kind)?;
                }
                Ok(())
            })
            .map_err(flatten_tx)
    }

    /// The alert's timer of `kind`, if one is set.
    pub(crate) fn timer(&self, id: AlertId, kind: TimerKind) -> Result<Option<Timer>, StoreError> {
        super::timer_queue::timer(&self.alerts, &self.timers, id, kind)
    }

    /// Timers due at or before `now`, soonest first (only those due are read, see
    /// `timer_queue.rs`).
    pub(crate) fn due_timers(&self, now: DateTime<Utc>) -> Result<Vec<Timer>, StoreError> {
        super::timer_queue::due(&self.alerts, &self.timers, &self.timer_queue, now)
    }

    /// Every timer (tests; it reads every alert).
    pub fn timers(&self) -> Result<Vec<Timer>, StoreError> {
        super::timer_queue::all(&self.alerts, &self.timers)
    }

    /// An alert's audit log, oldest first: its "created" entry (built from the alert when
    /// not stored, see `create_alert`), then the stored ones.
    pub fn audit_log(&self, id: AlertId) -> Result<Vec<AuditEntry>, StoreError> {
        let mut log = Vec::new();
        if let Some(alert) = self.alert(id)? {
            if let Some((_, entry)) = self.unstored_created_entry(&alert)? {
                log.push(entry);
            }
        }
        for kv in self.audit.scan_prefix(id.0.to_be_bytes()) {
            log.push(from_json(&format!("audit of alert {id}"), &kv?.1)?);
        }
        Ok(log)
    }

    /// The "created" entry of `alert` with its sequence number, when the store keeps only
    /// that number. An alert copied in from another store carries the number and its entry
    /// too: the stored entry counts then, never both.
    pub(super) fn unstored_created_entry(
        &self,
        alert: &Alert,
    ) -> Result<Option<(u64, AuditEntry)>, StoreError> {
        let Some(seq) = alert.created_audit_seq else {
            return Ok(None);
        };
        let mut key = alert.id.0.to_be_bytes().to_vec();
        key.extend_from_slice(&seq.to_be_bytes());
        if self.audit.contains_key(key)? {
            return Ok(None);
        }
        Ok(Some((seq, alert.created_entry())))
    }
}

/// The parts of alert `id`'s stored value (see `alert_record.rs`).
pub(super) fn alert_parts(id: AlertId, v: &[u8]) -> Result<Parts<'_>, StoreError> {
    Parts::of(v).map_err(|reason| StoreError::Corrupt {
        key: format!("alert {id}"),
        reason,
    })
}

/// Alert `id` from its stored value, plain or in an envelope.
pub(super) fn decode_alert(id: AlertId, v: &[u8]) -> Result<Alert, StoreError> {
    from_json(&format!("alert {id}"), alert_parts(id, v)?.alert)
}

pub(super) fn push_audit(
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

pub(super) fn timer_key(id: AlertId, kind: TimerKind) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..8].copy_from_slice(&id.0.to_be_bytes());
    k[8] = kind.code();
    k
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{candidate, heads_from_alerts as from_alerts};
    use super::*;
    use crate::model::SourceState;

    fn change_to(store: &SledStore, id: AlertId, state: AlertState) -> (Alert, AlertChange) {
        let expected = store.alert(id).unwrap().unwrap();
        let mut alert = expected.clone();
        alert.state = state;
        (expected, super::super::test_util::change(alert))
    }

    /// What the desk lists comes from memory on sled: it must follow every write (new
    /// alerts, claims, resolutions, racing changes) and read the same after a reopen as the
    /// stored alerts say.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_desk_heads_follow_every_alert_write_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let batch: Vec<_> = (0..6).map(|i| candidate(&format!("m{i}"), true)).collect();
        store
            .accept("feed", &SourceState::default(), &batch, Utc::now())
            .await
            .unwrap();
        assert_eq!(store.desk_heads().len(), 6);
        let now = Utc::now();
        let claimed = AlertState::Claimed {
            by: "slack:U1".into(),
            at: now,
        };
        let resolved = AlertState::Resolved {
            by: "slack:U1".into(),
            at: now,
            note: None,
        };
        let (e, c) = change_to(&store, AlertId(1), claimed.clone());
        store.change_alert(&e, c).await.unwrap();
        let (e, c) = change_to(&store, AlertId(2), resolved.clone());
        store.change_alert(&e, c).await.unwrap();
        // Eight changes of one alert at once, each from the same read: one applies, and the
        // heads show that one.
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            let state = if i % 2 == 0 {
                claimed.clone()
            } else {
                resolved.clone()
            };
            let (e, c) = change_to(&store, AlertId(3), state);
            tasks.push(tokio::spawn(async move { store.change_alert(&e, c).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let heads = store.desk_heads();
        assert_eq!(heads, from_alerts(&store));
        assert!(
            heads.iter().all(|h| h.id != AlertId(2)),
            "resolved left the desk"
        );
        assert_eq!(
            heads[0].state,
            HeadState::Claimed {
                by: "slack:U1".into()
            },
            "alert 1 is claimed"
        );
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.desk_heads(), heads, "the same after a reopen");
    }
}
