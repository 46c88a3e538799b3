//! Accepting polled (or generated) mentions: the mention, its dedup keys, its alert or its
//! repeat note, its rule hits and the source's new state, in one transaction. Whether a mention
//! repeats an alert is decided by intake before it calls here (`NewAlert::repeat_of`); this
//! file only writes that decision, after checking that what it was based on still holds.

use super::alert_record;
use super::outbox::push_outbox;
use super::rule_log::BatchHits;
use super::timer_queue::{self, TimerTrees};
use super::{
    flatten_tx, journal, mention_record, next_counter, to_json, OutboxAction, SledStore,
    StoreError, TxResult, NEXT_ALERT_ID, NEXT_AUDIT_SEQ, NEXT_MENTION_SEQ,
};
use crate::model::{
    Alert, AlertId, AlertState, Mention, Note, Priority, SourceState, Target, TimerKind,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;

/// A mention as kept in the store, with when we first heard it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMention {
    pub mention: Mention,
    pub(crate) received_at: DateTime<Utc>,
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
    /// Keys that make a later mention a repeat of this one (same author, same story), each
    /// with what intake read under it when it decided `repeat_of`. A new alert claims them.
    pub thread_keys: Vec<ThreadKey>,
    /// Intake's decision that this mention repeats an alert: then no alert is created, and
    /// the note goes into that alert's thread instead.
    pub repeat_of: Option<Repeat>,
    /// Whether the mention counts towards its rules' volume (digest, spike baseline). A spike
    /// alert itself does not: it is about mentions, not one.
    pub log_hit: bool,
    /// The relevance intake scored (see `Alert::relevance`).
    pub relevance: Option<f32>,
    /// Held back: the alert is stored as `AlertState::Held` with no outbox entry; intake
    /// gives it no timers and no thread keys.
    pub held: bool,
}

/// A thread key and the mark intake read under it (`None`: none, or unreadable).
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadKey {
    pub key: String,
    pub(crate) read: Option<ThreadMark>,
}

/// How long a repeat of the same story or author goes into the existing thread. A thread
/// key's mark older than this threads nothing (the next alert on the key replaces it), so
/// the store drops such marks (`prune_thread_marks`).
pub const REPEAT_WINDOW_DAYS: i64 = 7;

/// Where the walk of `prune_thread_marks` goes on from, and how far one call reads.
#[derive(Debug, Clone)]
pub(crate) struct ThreadPrune {
    pub(crate) limit: usize,
    after: Option<sled::IVec>,
}

impl ThreadPrune {
    pub(crate) fn new(limit: usize) -> ThreadPrune {
        ThreadPrune { limit, after: None }
    }
}

/// What a thread key points at: the alert that claimed it, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ThreadMark {
    pub(crate) alert: AlertId,
    pub(crate) at: DateTime<Utc>,
}

impl ThreadMark {
    /// Stored as the JSON pair `[id, at]`, as before the mark had a name.
    pub(super) fn to_bytes(self) -> Vec<u8> {
        to_json(&(self.alert, self.at))
    }

    /// An unreadable mark counts as none, both for intake's read and the transaction's check.
    pub(super) fn from_bytes(bytes: &[u8]) -> Option<ThreadMark> {
        let (alert, at) = serde_json::from_slice::<(AlertId, DateTime<Utc>)>(bytes).ok()?;
        Some(ThreadMark { alert, at })
    }
}

/// Where a repeat's note goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Repeat {
    pub(crate) of: RepeatOf,
    pub note: Note,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RepeatOf {
    /// An alert already in the store; the note goes to each of its targets (an alert's
    /// targets never change after it is created).
    Stored {
        alert: AlertId,
        targets: Vec<Target>,
    },
    /// The alert created by an earlier candidate of the same batch (its index).
    Earlier(usize),
}

/// What one accepted batch produced.
#[derive(Debug, Default, Clone)]
pub struct Accepted {
    /// Mentions not seen before (matching or not).
    pub(crate) new_mentions: usize,
    pub alerts: Vec<Alert>,
    /// Repeats that went into an existing alert's thread instead.
    pub(crate) threaded: Vec<AlertId>,
    /// Outbox entries the batch queued.
    outbox_added: usize,
}

impl SledStore {
    /// Writes a poll's results in one transaction: new mentions, their dedup keys, the alerts
    /// (or repeat notes) and their outbox entries, and the source's new state; then flushes.
    /// Either all of it survives a crash or none of it does (and the next poll fetches the
    /// items again).
    ///
    /// Threading is intake's decision, made from reads outside this transaction, so it can be
    /// stale by the time the transaction runs (another writer claimed a thread key, or a
    /// mention intake expected to open an alert turned out to be known). Before writing
    /// anything the transaction compares every `ThreadKey::read` with the mark stored now, and
    /// while writing it checks that every `RepeatOf::Earlier` candidate did open an alert. If
    /// either fails it writes nothing and returns `StoreError::Stale`; intake reads again and
    /// decides anew. Comparing the reads instead of re-deciding here keeps the rule (window,
    /// key order) in one place, and the check costs one `get` per thread key. Dedup needs no
    /// such check: it is decided here, inside the transaction.
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

    /// Stores candidates that come from no source (spike alerts), as `accept` without a source
    /// state, and sets `meta[key]` to `mark` in the same transaction, so the two survive a
    /// crash together or not at all: a spike alert and its rule's cooldown marker (a lost
    /// marker would post the spike again; a marker without its alert would hide it). The
    /// mark is written even when the candidate turns out to be known.
    ///
    /// With `before`, all of it is written only while the stored mark (a time) is absent,
    /// unreadable or earlier than `before`; otherwise nothing is written and the result is
    /// empty: another writer (a replica checking the same rule) set the mark first.
    pub(crate) async fn accept_generated_marked<T: Serialize>(
        &self,
        candidates: &[Candidate],
        now: DateTime<Utc>,
        key: &str,
        mark: &T,
        before: Option<DateTime<Utc>>,
    ) -> Result<Accepted, StoreError> {
        let store = self.clone();
        let candidates = candidates.to_vec();
        let mark = (key.as_bytes().to_vec(), to_json(mark));
        let accepted = super::off_runtime(move || {
            store.write_batch_marked(None, &candidates, now, Some(&mark), before)
        })
        .await?;
        self.outbox_added(accepted.outbox_added);
        self.durable().await?;
        self.outbox_signal.notify_one();
        Ok(accepted)
    }

    async fn accept_with(
        &self,
        source: Option<(&str, &SourceState)>,
        candidates: &[Candidate],
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        let source = source.map(|(name, state)| (name.to_string(), state.clone()));
        self.accept_owned(source, candidates.to_vec(), now).await
    }

    /// `accept` for a batch the caller hands over: the transaction runs on a blocking thread,
    /// so a large batch never holds up the runtime's workers (and with them `/healthz` and
    /// the desk's callbacks). `source` is `None` for a batch whose source state is written
    /// by a later batch of the same poll (see `Intake`) or that has none.
    pub(crate) async fn accept_owned(
        &self,
        source: Option<(String, SourceState)>,
        candidates: Vec<Candidate>,
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        let store = self.clone();
        let accepted = super::off_runtime(move || {
            let source = source.map(|(name, state)| (name.into_bytes(), to_json(&state)));
            store.write_batch(source.as_ref(), &candidates, now)
        })
        .await?;
        self.outbox_added(accepted.outbox_added);
        self.durable().await?;
        self.outbox_signal.notify_one();
        Ok(accepted)
    }

    /// The transaction of `accept`: writes, does not flush.
    fn write_batch(
        &self,
        source: Option<&(Vec<u8>, Vec<u8>)>,
        candidates: &[Candidate],
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        self.write_batch_marked(source, candidates, now, None, None)
    }

    /// `write_batch`, also writing `mark` (meta key, value) in the same transaction; with
    /// `before`, only while the stored mark is earlier (see `accept_generated_marked`).
    ///
    /// Dedup is decided first, under the journal's writer lock (held until the transaction
    /// has committed or the journal is cut back), from the journal's hashes; the batch's
    /// journal records are made durable before the transaction that records the journal's
    /// new end, so a crash leaves both or neither (see `journal.rs`).
    fn write_batch_marked(
        &self,
        source: Option<&(Vec<u8>, Vec<u8>)>,
        candidates: &[Candidate],
        now: DateTime<Utc>,
        mark: Option<&(Vec<u8>, Vec<u8>)>,
        before: Option<DateTime<Utc>>,
    ) -> Result<Accepted, StoreError> {
        let mut writer = self.journal.writer();
        let plan = self.plan(candidates, now)?;
        let (start, tip) = writer.append(&plan.records, &plan.hashes, now)?;
        let writes = self.desk.lock_writes();
        let result = self.transact(source, candidates, &plan, tip, now, mark, before);
        if let Ok(Some(accepted)) = &result {
            for alert in &accepted.alerts {
                writes.put(alert);
            }
        }
        drop(writes);
        match result {
            Ok(Some(accepted)) => {
                self.journal.committed(tip, &plan.hashes);
                if let Err(e) = writer.pack_closed(tip) {
                    // The batch is stored; the segment stays unpacked and readable.
                    tracing::warn!(error = %e, "could not pack a closed journal segment");
                }
                Ok(accepted)
            }
            Ok(None) => {
                writer.rollback(start)?;
                Ok(Accepted::default())
            }
            Err(e) => {
                writer.rollback(start)?;
                Err(e)
            }
        }
    }

    /// Which candidates are new, their places in the arrival order, and their journal records
    /// and hashes. Called with the journal's writer lock held.
    fn plan(&self, candidates: &[Candidate], now: DateTime<Utc>) -> Result<Plan, StoreError> {
        let mut next_seq = self
            .meta
            .get(NEXT_MENTION_SEQ)?
            .map(|v| super::u64_key(&v))
            .unwrap_or(1);
        let mut plan = Plan {
            seqs: Vec::with_capacity(candidates.len()),
            next_seq,
            records: Vec::new(),
            hashes: Vec::new(),
        };
        let mut here: rustc_hash::FxHashSet<u64> = Default::default();
        for c in candidates {
            let hashes: Vec<u64> = c.dedup_keys.iter().map(|k| self.journal.hash(k)).collect();
            let mut known = false;
            for (k, &h) in c.dedup_keys.iter().zip(&hashes) {
                if here.contains(&h) || self.seen_before(k, h)? {
                    known = true;
                    break;
                }
            }
            if known {
                plan.seqs.push(None);
                continue;
            }
            here.extend(hashes.iter().copied());
            let entry = journal::Entry {
                seq: next_seq,
                received_at: now,
                dedup_keys: c.dedup_keys.clone(),
                body: None,
            };
            // A mention that matched a rule keeps its body in sled, beside its alert (or its
            // repeat note); the journal keeps only its keys.
            let body = c
                .alert
                .is_none()
                .then(|| journal::body_bytes(&c.mention, now));
            journal::encode(&mut plan.records, &entry, body.as_deref());
            plan.hashes.extend(hashes);
            plan.seqs.push(Some(next_seq));
            next_seq += 1;
        }
        plan.next_seq = next_seq;
        Ok(plan)
    }

    /// The sled transaction of a batch; `None` when `before` says another writer set the
    /// mark first (nothing written).
    #[allow(clippy::too_many_arguments)]
    fn transact(
        &self,
        source: Option<&(Vec<u8>, Vec<u8>)>,
        candidates: &[Candidate],
        plan: &Plan,
        tip: journal::Tip,
        now: DateTime<Utc>,
        mark: Option<&(Vec<u8>, Vec<u8>)>,
        before: Option<DateTime<Utc>>,
    ) -> Result<Option<Accepted>, StoreError> {
        let trees = (
            &self.meta,
            &self.mentions,
            &self.mention_log,
            &self.alerts,
            &self.sources,
            &self.outbox,
            &self.timers,
            &self.timer_queue,
            &self.threads,
            &self.rule_log,
        );
        #[cfg(test)]
        {
            use std::sync::atomic::Ordering::Relaxed;
            self.transactions.fetch_add(1, Relaxed);
            self.largest_batch.fetch_max(candidates.len(), Relaxed);
        }
        trees
            .transaction(
                |(
                    meta,
                    mentions,
                    mention_log,
                    alerts,
                    sources,
                    outbox,
                    timers,
                    queue,
                    threads,
                    rule_log,
                )| {
                    let timers = TimerTrees {
                        alerts,
                        queue,
                        legacy: timers,
                    };
                    if let (Some((key, _)), Some(before)) = (mark, before) {
                        if !mark_is_before(meta.get(key.as_slice())?.as_deref(), before) {
                            return Ok(None);
                        }
                    }
                    check_reads(threads, candidates)?;
                    let mut accepted = Accepted::default();
                    let mut hits = BatchHits::default();
                    // Per candidate, the alert it created in this batch: what `Earlier` names.
                    let mut created: Vec<Option<(AlertId, Vec<Target>)>> =
                        Vec::with_capacity(candidates.len());
                    for (c, seq) in candidates.iter().zip(&plan.seqs) {
                        created.push(None);
                        let Some(seq) = *seq else {
                            continue;
                        };
                        accepted.new_mentions += 1;
                        let Some(new) = &c.alert else {
                            // Its body and keys are in the journal.
                            continue;
                        };
                        let key = c.mention.key();
                        // Only a mention that opens an alert keeps its body past the
                        // retention; a repeat's note carries its own excerpt.
                        let alerted = new.repeat_of.is_none();
                        // The log is for the prune, which never drops an alert's mention, and
                        // for `recent_mentions`, which finds those by the alerts: such a
                        // mention keeps its place in its record instead, one sled entry less
                        // per alert (sled's memory grows with its entries).
                        let record = mention_record::encode(
                            &c.mention,
                            now,
                            alerted,
                            alerted.then_some(seq),
                        );
                        if !alerted {
                            // An alert's own mention goes into the alert's value instead
                            // (`create_alert`): one sled entry less per alert.
                            mentions.insert(key.as_bytes(), record.as_slice())?;
                            mention_log.insert(&seq.to_be_bytes(), key.as_bytes())?;
                            if new.log_hit {
                                hits.add(&c.mention, new, &key, seq, None);
                            }
                        }
                        if let Some(repeat) = &new.repeat_of {
                            let (id, targets) = repeat_target(&repeat.of, &created, &key)?;
                            for target in targets {
                                let action = OutboxAction::ThreadNote(repeat.note.clone());
                                push_outbox(meta, outbox, id, target, action, now)?;
                            }
                            accepted.outbox_added += targets.len();
                            accepted.threaded.push(id);
                            continue;
                        }
                        let alert =
                            create_alert(meta, alerts, outbox, new, key.clone(), &record, now)?;
                        if new.log_hit {
                            hits.add(&c.mention, new, &key, seq, Some(alert.id));
                        }
                        timers.queue_new(alert.id, &new.timers)?;
                        let mark = ThreadMark {
                            alert: alert.id,
                            at: now,
                        }
                        .to_bytes();
                        for k in &new.thread_keys {
                            threads.insert(k.key.as_bytes(), mark.as_slice())?;
                        }
                        if let Some(last) = created.last_mut() {
                            *last = Some((alert.id, alert.targets.clone()));
                        }
                        if !alert.held {
                            accepted.outbox_added += alert.targets.len();
                        }
                        accepted.alerts.push(alert);
                    }
                    hits.write(rule_log, now)?;
                    if let Some((name, state)) = source {
                        sources.insert(name.as_slice(), state.as_slice())?;
                    }
                    if let Some((key, value)) = mark {
                        meta.insert(key.as_slice(), value.as_slice())?;
                    }
                    if plan.next_seq != plan.first_seq() {
                        meta.insert(NEXT_MENTION_SEQ, &plan.next_seq.to_be_bytes())?;
                        meta.insert(journal::JOURNAL_TIP, &tip.to_bytes())?;
                    }
                    Ok(Some(accepted))
                },
            )
            .map_err(flatten_tx)
    }

    /// Whether any mention was stored under this dedup key (intake's read before deciding).
    pub(crate) fn is_seen(&self, key: &str) -> Result<bool, StoreError> {
        self.seen_before(key, self.journal.hash(key))
    }

    /// Whether a committed mention had dedup key `key` (whose journal hash is `hash`): in the
    /// journal, or in sled's `seen` tree of a store from before the journal.
    fn seen_before(&self, key: &str, hash: u64) -> Result<bool, StoreError> {
        if self.journal.is_seen_hash(hash) {
            return Ok(true);
        }
        Ok(self.legacy_seen && self.seen.contains_key(key.as_bytes())?)
    }

    /// What a thread key points at now (intake's read before deciding).
    pub(crate) fn thread_mark(&self, key: &str) -> Result<Option<ThreadMark>, StoreError> {
        Ok(self
            .threads
            .get(key.as_bytes())?
            .and_then(|v| ThreadMark::from_bytes(&v)))
    }

    /// Drops the thread marks set before `before` (see `REPEAT_WINDOW_DAYS`) among the next
    /// `prune.limit` marks after where the last call stopped: every alert sets one or two,
    /// and they were kept forever. Marks are keyed by story or author, not by time, so
    /// finding the old ones reads them all; a bounded walk per call keeps that from pulling
    /// the whole tree through sled's cache at once (which left 10 MiB more resident after a
    /// start with 98,109 marks). A mark is only removed as it was read, so one that intake
    /// just set for a new alert stays. Returns how many went.
    pub(crate) fn prune_thread_marks(
        &self,
        before: DateTime<Utc>,
        prune: &mut ThreadPrune,
    ) -> Result<usize, StoreError> {
        let entries = match prune.after.take() {
            Some(after) => self
                .threads
                .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => self.threads.range::<&[u8], _>(..),
        };
        let mut removed = 0;
        let mut seen = 0;
        for kv in entries.take(prune.limit) {
            let (k, v) = kv?;
            seen += 1;
            prune.after = Some(k.clone());
            // An unreadable mark counts as none everywhere: nothing is lost with it.
            if ThreadMark::from_bytes(&v).is_some_and(|m| m.at >= before) {
                continue;
            }
            if self
                .threads
                .compare_and_swap(&k, Some(&v), None as Option<&[u8]>)?
                .is_ok()
            {
                removed += 1;
            }
        }
        if seen < prune.limit {
            // The end: the next call starts over.
            prune.after = None;
        }
        Ok(removed)
    }

    /// A stored mention; `None` also once its body was dropped after `[store] keep_mentions`,
    /// and on sled for a mention that matched no rule (its body is in the journal, which is
    /// read in arrival order only: `recent_mentions`, `store copy`), and for one an alert
    /// holds in its own entry (`alert_mention`, `hit_mention` read those).
    pub fn mention(&self, key: &str) -> Result<Option<StoredMention>, StoreError> {
        Ok(self.mention_in_tree(key)?.map(|d| d.stored))
    }

    /// The record of mention `key` in `mentions`.
    pub(super) fn mention_in_tree(
        &self,
        key: &str,
    ) -> Result<Option<mention_record::Decoded>, StoreError> {
        self.mentions
            .get(key.as_bytes())?
            .map(|v| mention_record::decode(key, &v))
            .transpose()
    }

    /// Drops the bodies of mentions received before `now - keep_mentions` that opened no
    /// alert (their dedup keys stay, so they are never alerted again), and forgets the order
    /// of every mention that old (only `/desk preview` reads it, newest first). Walks the
    /// mentions oldest first and stops at the first one inside the retention, so a run costs
    /// what it drops. Looks at most `limit` entries per call and resumes where `prune` says,
    /// so a first run over a large old store is many short blocking calls, not one long one.
    /// Returns whether the walk is done.
    pub(crate) fn prune_mentions_chunk(
        &self,
        prune: &mut MentionPrune,
        limit: usize,
    ) -> Result<bool, StoreError> {
        let cutoff = prune.now - self.keep_mentions;
        if !prune.journal_done {
            match self.journal.prune_one(cutoff)? {
                Some(dropped) => {
                    prune.calls += 1;
                    prune.dropped += dropped;
                    return Ok(false);
                }
                None => prune.journal_done = true,
            }
        }
        let entries = match &prune.after {
            Some(after) => self.mention_log.range((
                std::ops::Bound::Excluded(after.clone()),
                std::ops::Bound::Unbounded,
            )),
            None => self.mention_log.range::<&[u8], _>(..),
        };
        prune.calls += 1;
        let mut seen = 0;
        for kv in entries.take(limit) {
            let (seq, key) = kv?;
            seen += 1;
            prune.after = Some(seq.clone());
            let key_text = String::from_utf8_lossy(&key).into_owned();
            if let Some(v) = self.mentions.get(&key)? {
                let Ok(record) = mention_record::decode(&key_text, &v) else {
                    // Unreadable: kept for a person to look at, never counted as pruned.
                    self.mention_log.remove(&seq)?;
                    continue;
                };
                if record.stored.received_at >= cutoff {
                    self.forget_order_before(cutoff)?;
                    return Ok(true);
                }
                let alerted = match record.alerted {
                    Some(alerted) => alerted,
                    // Records from before the compact format do not say whether they opened
                    // an alert: read every alert's mention key once per prune.
                    None => {
                        if prune.alerted_keys.is_none() {
                            let keys = self.alerts()?.into_iter().map(|a| a.mention_key);
                            prune.alerted_keys = Some(keys.collect());
                        }
                        prune
                            .alerted_keys
                            .as_ref()
                            .is_some_and(|k| k.contains(&key_text))
                    }
                };
                if !alerted {
                    self.mentions.remove(&key)?;
                    prune.dropped += 1;
                }
            }
            self.mention_log.remove(&seq)?;
        }
        if seen < limit {
            self.forget_order_before(cutoff)?;
        }
        Ok(seen < limit)
    }

    /// Alerts' mentions keep their place in their record, which the prune does not touch:
    /// the prune's cutoff, kept here, hides them from `recent_mentions` once they are as old
    /// as the mentions whose log entries it removed.
    fn forget_order_before(&self, cutoff: DateTime<Utc>) -> Result<(), StoreError> {
        if self.order_from()?.is_some_and(|from| from >= cutoff) {
            return Ok(());
        }
        self.meta
            .insert(ORDER_FROM.as_bytes(), super::to_json(&cutoff))?;
        Ok(())
    }

    /// Mentions received before this are no longer listed (see `forget_order_before`).
    fn order_from(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.meta_get(ORDER_FROM)
    }

    /// A whole prune in one call (tests).
    #[cfg(test)]
    pub(crate) fn prune_mentions(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut prune = MentionPrune::new(now);
        while !self.prune_mentions_chunk(&mut prune, 1000)? {}
        Ok(prune.dropped)
    }

    /// Mentions still in the arrival order (tests): in the log, in the journal, or alerted
    /// with their place in their record and not older than the last prune's cutoff.
    #[cfg(test)]
    pub(crate) fn mention_count(&self) -> usize {
        let from = self.order_from().unwrap();
        let placed = self
            .mentions
            .iter()
            .filter(|kv| {
                let (k, v) = kv.as_ref().unwrap();
                let d = mention_record::decode(&String::from_utf8_lossy(k), v).unwrap();
                listed_place(&d, from).is_some()
            })
            .count();
        let held = self
            .alerts
            .iter()
            .filter(|kv| {
                let (k, v) = kv.as_ref().unwrap();
                let id = crate::model::AlertId(super::u64_key(k));
                let parts = super::alerts::alert_parts(id, v).unwrap();
                let alert: crate::model::Alert = super::from_json("alert", parts.alert).unwrap();
                parts.mention.is_some_and(|m| {
                    let d = mention_record::decode(&alert.mention_key, m).unwrap();
                    listed_place(&d, from).is_some()
                })
            })
            .count();
        self.mention_log.len() + self.journal.bodies() + placed + held
    }

    /// The newest `n` stored mentions, newest first (for `/desk preview`): those that matched
    /// a rule from sled, the others from the journal, merged by arrival.
    ///
    /// A mention that opened an alert keeps its place in its record, not in the log (see
    /// `transact`); alerts are numbered in arrival order, so the newest `n` of those are
    /// among the newest `n` alerts' mentions. Those without a place in their record
    /// (written before, or copied in) are in the log.
    pub(crate) fn recent_mentions(&self, n: usize) -> Result<Vec<StoredMention>, StoreError> {
        let mut all = self.journal.recent(n)?;
        for kv in self.mention_log.iter().rev().take(n) {
            let (seq, key) = kv?;
            let key = String::from_utf8_lossy(&key).into_owned();
            if let Some(m) = self.mention(&key)? {
                all.push((super::u64_key(&seq), m));
            }
        }
        let from = self.order_from()?;
        for kv in self.alerts.iter().rev().take(n) {
            let (k, v) = kv?;
            let id = crate::model::AlertId(super::u64_key(&k));
            let parts = super::alerts::alert_parts(id, &v)?;
            let alert: crate::model::Alert = super::from_json(&format!("alert {id}"), parts.alert)?;
            let Some(d) = self.held_mention(&parts, &alert.mention_key)? else {
                continue;
            };
            if let Some(seq) = listed_place(&d, from) {
                all.push((seq, d.stored));
            }
        }
        all.sort_by_key(|m| std::cmp::Reverse(m.0));
        Ok(all.into_iter().take(n).map(|(_, m)| m).collect())
    }
}

/// A record's place in the arrival order when it holds one and is not older than the last
/// prune's cutoff `from` (see `forget_order_before`).
fn listed_place(d: &mention_record::Decoded, from: Option<DateTime<Utc>>) -> Option<u64> {
    d.seq
        .filter(|_| from.is_none_or(|from| d.stored.received_at >= from))
}

/// Meta key: the last mention prune's cutoff (see `forget_order_before`). sled's own layout,
/// not copied by `store copy`.
pub(super) const ORDER_FROM: &str = "mention_order_from";

/// What a batch writes outside sled, decided before its transaction.
struct Plan {
    /// Per candidate, its place in the arrival order; `None` if it was seen before.
    seqs: Vec<Option<u64>>,
    /// The arrival counter after this batch.
    next_seq: u64,
    /// The batch's journal records, and the hashes of its new mentions' dedup keys.
    records: Vec<u8>,
    hashes: Vec<u64>,
}

impl Plan {
    /// The arrival counter before this batch.
    fn first_seq(&self) -> u64 {
        self.next_seq - self.seqs.iter().filter(|s| s.is_some()).count() as u64
    }
}

/// Where a prune of old mention bodies is (see `SledStore::prune_mentions_chunk`).
#[derive(Debug)]
pub(crate) struct MentionPrune {
    now: DateTime<Utc>,
    /// The last mention-log key looked at; the next chunk starts after it.
    after: Option<sled::IVec>,
    /// Mention keys that opened an alert, read once when the first old-format record shows up.
    alerted_keys: Option<std::collections::HashSet<String>>,
    /// Bodies dropped so far.
    pub(crate) dropped: usize,
    /// Chunks run so far.
    pub(crate) calls: usize,
    /// Whether the journal has no old segment left to rewrite (it goes first).
    journal_done: bool,
}

impl MentionPrune {
    pub(crate) fn new(now: DateTime<Utc>) -> MentionPrune {
        MentionPrune {
            now,
            after: None,
            alerted_keys: None,
            dropped: 0,
            calls: 0,
            journal_done: false,
        }
    }

    /// The moment the prune measures the retention from.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.now
    }
}

/// Whether a stored time mark is absent, unreadable (replaced, as before marks were
/// guarded) or earlier than `before`.
fn mark_is_before(stored: Option<&[u8]>, before: DateTime<Utc>) -> bool {
    stored
        .and_then(|v| serde_json::from_slice::<DateTime<Utc>>(v).ok())
        .is_none_or(|at| at < before)
}

/// Fails the transaction if any thread key no longer holds what intake read. Runs before the
/// batch writes anything, so a key claimed earlier in the same batch is not mistaken for a
/// concurrent change.
fn check_reads(threads: &TransactionalTree, candidates: &[Candidate]) -> TxResult<()> {
    for new in candidates.iter().filter_map(|c| c.alert.as_ref()) {
        for k in &new.thread_keys {
            let now = threads
                .get(k.key.as_bytes())?
                .and_then(|v| ThreadMark::from_bytes(&v));
            if now != k.read {
                return Err(stale(format!("thread key {} changed", k.key)));
            }
        }
    }
    Ok(())
}

/// The alert a decided repeat goes to, and its targets.
fn repeat_target<'a>(
    of: &'a RepeatOf,
    created: &'a [Option<(AlertId, Vec<Target>)>],
    mention_key: &str,
) -> TxResult<(AlertId, &'a [Target])> {
    match of {
        RepeatOf::Stored { alert, targets } => Ok((*alert, targets)),
        RepeatOf::Earlier(i) => match created.get(*i) {
            Some(Some((id, targets))) => Ok((*id, targets)),
            _ => Err(stale(format!(
                "mention {mention_key} repeats an alert its batch did not create"
            ))),
        },
    }
}

fn stale(reason: String) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(StoreError::Stale { reason })
}

impl NewAlert {
    /// The alert this candidate opens as `id`: open, or held back by the relevance filter.
    /// Both backends build it here, so a new alert is the same whichever stores it.
    pub(crate) fn alert(&self, id: AlertId, mention_key: String, now: DateTime<Utc>) -> Alert {
        Alert {
            id,
            mention_key,
            rules: self.rules.clone(),
            priority: self.priority,
            sentiment: self.sentiment,
            negative: self.negative,
            targets: self.targets.clone(),
            state: if self.held {
                AlertState::Held
            } else {
                AlertState::Open
            },
            created_at: now,
            highlights: self.highlights.clone(),
            first_claimed_at: None,
            resolved_at: None,
            human_negative: None,
            relevance: self.relevance,
            held: self.held,
            promoted_at: None,
            created_audit_seq: None,
        }
    }
}

/// Writes a new alert with its root-message outbox entries. Its "created" audit entry takes
/// its sequence number, kept in the alert, but is not written: `Alert::created_entry` says
/// all it holds (see `audit_log`).
fn create_alert(
    meta: &TransactionalTree,
    alerts: &TransactionalTree,
    outbox: &TransactionalTree,
    new: &NewAlert,
    mention_key: String,
    mention: &[u8],
    now: DateTime<Utc>,
) -> TxResult<Alert> {
    let id = AlertId(next_counter(meta, NEXT_ALERT_ID)?);
    let mut alert = new.alert(id, mention_key, now);
    alert.created_audit_seq = Some(next_counter(meta, NEXT_AUDIT_SEQ)?);
    // Its timers are written with it; `TimerTrees::queue_new` queues them.
    let timers = alert_record::encode_timers(&timer_queue::one_per_kind(&new.timers));
    let value = alert_record::Parts {
        alert: &to_json(&alert),
        mention: Some(mention),
        refs: None,
        timers: timers.as_deref(),
    }
    .encode();
    alerts.insert(&id.0.to_be_bytes(), value)?;
    // A held-back alert is not posted until someone promotes it.
    if !alert.held {
        for target in &alert.targets {
            push_outbox(meta, outbox, id, target, OutboxAction::PostAlert, now)?;
        }
    }
    Ok(alert)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::candidate;
    use super::*;
    use crate::store::{Store, ThreadPrune};

    /// Marks older than the repeat window go; a newer one stays; a key whose mark went is
    /// free again (the next alert on it sets a new mark). On both backends; on sled a walk
    /// of one mark per call, which goes on where the last one stopped and starts over at the
    /// end.
    async fn thread_marks_older_than_the_window_are_pruned(store: &Store) {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        for (id, key, at) in [
            ("m1", "author:rss:ann", "2026-11-01T09:00:00Z"),
            ("m2", "author:rss:bo", "2026-11-20T09:00:00Z"),
        ] {
            let mut c = candidate(id, true);
            c.alert.as_mut().unwrap().thread_keys = vec![ThreadKey {
                key: key.into(),
                read: None,
            }];
            store
                .accept("feed", &SourceState::default(), &[c], t(at))
                .await
                .unwrap();
        }
        let before = t("2026-11-20T09:00:00Z") - chrono::Duration::days(REPEAT_WINDOW_DAYS);
        let mut walk = ThreadPrune::new(1);
        // "ann" sorts first: the first call reads it (sled) or everything (PostgreSQL).
        assert_eq!(
            store.prune_thread_marks(before, &mut walk).await.unwrap(),
            1
        );
        assert_eq!(store.thread_mark("author:rss:ann").await.unwrap(), None);
        let kept = store.thread_mark("author:rss:bo").await.unwrap().unwrap();
        assert_eq!(
            (kept.alert, kept.at),
            (AlertId(2), t("2026-11-20T09:00:00Z"))
        );
        for _ in 0..3 {
            assert_eq!(
                store.prune_thread_marks(before, &mut walk).await.unwrap(),
                0
            );
        }
        // Later, "bo" is old too: a walk that started over finds it.
        let later = t("2026-12-01T09:00:00Z");
        let mut removed = 0;
        for _ in 0..3 {
            removed += store.prune_thread_marks(later, &mut walk).await.unwrap();
        }
        assert_eq!(removed, 1);
        assert_eq!(store.thread_mark("author:rss:bo").await.unwrap(), None);
        // The pruned key reads as never set, which is what the next alert on it expects.
        let mut again = candidate("m3", true);
        again.alert.as_mut().unwrap().thread_keys = vec![ThreadKey {
            key: "author:rss:ann".into(),
            read: None,
        }];
        let now = t("2026-11-21T09:00:00Z");
        store
            .accept("feed", &SourceState::default(), &[again], now)
            .await
            .unwrap();
        let mark = store.thread_mark("author:rss:ann").await.unwrap().unwrap();
        assert_eq!(mark.alert, AlertId(3));
    }

    #[tokio::test]
    async fn thread_marks_older_than_the_window_are_pruned_on_sled() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        thread_marks_older_than_the_window_are_pruned(&store).await;
    }

    #[tokio::test]
    async fn thread_marks_older_than_the_window_are_pruned_on_postgresql() {
        let Some(db) = crate::store::pg::throwaway::database().await else {
            return;
        };
        let mut cfg = crate::store::StoreConfig::at("unused-by-postgres");
        cfg.backend = crate::store::config::Backend::Postgres(db.config());
        let store = Store::open_with(&cfg).await.unwrap();
        thread_marks_older_than_the_window_are_pruned(&store).await;
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
            let store = SledStore::open(dir.path()).unwrap();
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
        let store = SledStore::open(dir.path()).unwrap();
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
        let store = SledStore::open(dir.path()).unwrap();
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

    fn with_thread_key(id: &str, read: Option<ThreadMark>) -> Candidate {
        let mut c = candidate(id, true);
        if let Some(a) = &mut c.alert {
            a.thread_keys = vec![ThreadKey {
                key: "author:rss:dana".into(),
                read,
            }];
        }
        c
    }

    /// A new alert claims its thread keys; a repeat intake decided on writes its note to the
    /// named alert's targets and creates nothing.
    #[tokio::test]
    async fn decided_repeats_are_written_as_thread_notes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let now = Utc::now();
        let state = SourceState::default();
        store
            .accept("feed", &state, &[with_thread_key("a", None)], now)
            .await
            .unwrap();
        let mark = store.thread_mark("author:rss:dana").unwrap();
        assert_eq!(
            mark,
            Some(ThreadMark {
                alert: AlertId(1),
                at: now
            })
        );
        let mut repeat = with_thread_key("b", mark);
        repeat.alert.as_mut().unwrap().repeat_of = Some(Repeat {
            of: RepeatOf::Stored {
                alert: AlertId(1),
                targets: vec![Target::Slack("#pr".into())],
            },
            note: Note::new().text("again"),
        });
        let got = store.accept("feed", &state, &[repeat], now).await.unwrap();
        assert_eq!(got.threaded, vec![AlertId(1)]);
        assert!(got.alerts.is_empty());
        assert_eq!(store.alerts().unwrap().len(), 1);
        let notes: Vec<_> = store
            .outbox()
            .unwrap()
            .into_iter()
            .filter(|(_, e)| matches!(e.action, OutboxAction::ThreadNote(_)))
            .map(|(_, e)| (e.alert_id, e.target))
            .collect();
        assert_eq!(notes, vec![(AlertId(1), Target::Slack("#pr".into()))]);
        assert_eq!(
            store
                .rule_hits("acme", now, now + chrono::Duration::seconds(1))
                .unwrap()
                .len(),
            2,
            "a repeat still counts towards its rule's volume"
        );
    }

    /// A decision based on a read that no longer holds writes nothing: here intake saw no
    /// alert under the author's key, but another writer claimed it before the transaction.
    #[tokio::test]
    async fn a_stale_threading_decision_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let now = Utc::now();
        let state = SourceState::default();
        let decided = with_thread_key("b", store.thread_mark("author:rss:dana").unwrap());
        store
            .accept("feed", &state, &[with_thread_key("a", None)], now)
            .await
            .unwrap();
        let outbox = store.outbox().unwrap().len();
        let err = store
            .accept("other", &state, &[candidate("c", false), decided], now)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Stale { reason } if reason.contains("author:rss:dana")),
            "{err}"
        );
        assert_eq!(store.mention_count(), 1, "not even the unrelated mention");
        assert_eq!(store.outbox().unwrap().len(), outbox);
        assert_eq!(store.alerts().unwrap().len(), 1);
        assert_eq!(
            store.source_state("other").unwrap(),
            SourceState::default(),
            "the source state waits for the retry"
        );
    }

    /// A repeat of an earlier candidate that did not open an alert (it was known already) is
    /// stale too, rather than a note into nowhere.
    #[tokio::test]
    async fn a_repeat_of_an_earlier_candidate_that_opened_nothing_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let now = Utc::now();
        let state = SourceState::default();
        store
            .accept("feed", &state, &[candidate("a", false)], now)
            .await
            .unwrap();
        let mut repeat = candidate("b", true);
        repeat.alert.as_mut().unwrap().repeat_of = Some(Repeat {
            of: RepeatOf::Earlier(0),
            note: Note::new().text("again"),
        });
        let err = store
            .accept("feed", &state, &[candidate("a", true), repeat], now)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Stale { .. }), "{err}");
        assert_eq!(store.mention_count(), 1);
    }

    /// A mention that opens an alert keeps its place in the arrival order in its own record,
    /// not in a `mention_log` entry (one sled entry less per alert); a repeat and a mention
    /// recorded the way earlier versions did keep theirs in the log. The preview still lists
    /// all of them with the journal's, newest first, each once.
    #[tokio::test]
    async fn an_alerts_mention_takes_no_log_entry_and_still_lists_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let state = SourceState::default();
        let now = Utc::now();
        let batch = [
            candidate("quiet-1", false),
            candidate("loud-1", true),
            candidate("loud-2", true),
        ];
        store.accept("feed", &state, &batch, now).await.unwrap();
        assert_eq!(store.mention_log.len(), 0, "two alerts, no log entry");
        assert_eq!(store.mentions.len(), 0, "the alerts hold their mentions");
        for a in store.alerts().unwrap() {
            let m = store.alert_mention(&a).unwrap().expect("held by the alert");
            assert_eq!(m.mention.key(), a.mention_key);
        }

        // As an earlier version stored an alerted mention: body without its place, log entry.
        let legacy = candidate("legacy-loud", true);
        store
            .accept("feed", &state, std::slice::from_ref(&legacy), now)
            .await
            .unwrap();
        let key = legacy.mention.key();
        let old_record = mention_record::encode(&legacy.mention, now, true, None);
        store.mentions.insert(key.as_bytes(), old_record).unwrap();
        // ... and its alert as plain JSON, without the mention.
        let legacy_alert = store.alert(AlertId(3)).unwrap().unwrap();
        assert_eq!(legacy_alert.mention_key, key);
        store
            .alerts
            .insert(3u64.to_be_bytes(), to_json(&legacy_alert))
            .unwrap();
        store
            .mention_log
            .insert(4u64.to_be_bytes(), key.as_bytes())
            .unwrap();

        let mut repeat = candidate("repeat", true);
        repeat.alert.as_mut().unwrap().repeat_of = Some(Repeat {
            of: RepeatOf::Stored {
                alert: AlertId(1),
                targets: vec![Target::Slack("#pr".into())],
            },
            note: Note::new().text("again"),
        });
        let batch = [
            repeat,
            candidate("loud-3", true),
            candidate("quiet-2", false),
        ];
        store.accept("feed", &state, &batch, now).await.unwrap();
        assert_eq!(
            store.mention_log.len(),
            2,
            "the legacy entry and the repeat's"
        );

        let ids = |n| -> Vec<String> {
            store
                .recent_mentions(n)
                .unwrap()
                .into_iter()
                .map(|m| m.mention.item_id)
                .collect()
        };
        assert_eq!(
            ids(10),
            [
                "quiet-2",
                "loud-3",
                "repeat",
                "legacy-loud",
                "loud-2",
                "loud-1",
                "quiet-1"
            ]
        );
        assert_eq!(ids(3), ["quiet-2", "loud-3", "repeat"]);
        assert_eq!(store.mention_count(), 7);
    }

    /// After `keep_mentions`, the bodies of mentions without an alert are dropped and those
    /// of alerts kept; dedup still knows the dropped ones, so they never alert again. Records
    /// written in the format from before (plain JSON) are pruned alike.
    #[tokio::test]
    async fn old_mention_bodies_are_pruned_but_alerts_and_dedup_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let state = SourceState::default();
        let old: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let batch = [candidate("quiet", false), candidate("loud", true)];
        store.accept("feed", &state, &batch, old).await.unwrap();
        // Two mentions as the previous version stored them (bodies and arrival order in
        // sled, whether they matched or not).
        for (seq, (id, alert)) in [
            (100u64, ("legacy-quiet", false)),
            (101, ("legacy-loud", true)),
        ] {
            let c = candidate(id, alert);
            if alert {
                // For its alert; a matched mention's body is in sled as before.
                store
                    .accept("feed", &state, std::slice::from_ref(&c), old)
                    .await
                    .unwrap();
            }
            let json = serde_json::to_vec(&StoredMention {
                mention: c.mention.clone(),
                received_at: old,
            })
            .unwrap();
            store
                .mentions
                .insert(c.mention.key().as_bytes(), json)
                .unwrap();
            store
                .mention_log
                .insert(seq.to_be_bytes(), c.mention.key().as_bytes())
                .unwrap();
        }
        let recent = old + chrono::Duration::days(80);
        store
            .accept("feed", &state, &[candidate("recent", false)], recent)
            .await
            .unwrap();
        let key = |id: &str| super::super::test_util::mention(id).key();
        assert_eq!(
            store
                .mention(&key("legacy-quiet"))
                .unwrap()
                .unwrap()
                .mention
                .item_id,
            "legacy-quiet",
            "a record from before loads"
        );

        assert_eq!(
            store
                .prune_mentions(old + chrono::Duration::days(89))
                .unwrap(),
            0
        );
        let dropped = store
            .prune_mentions(old + chrono::Duration::days(91))
            .unwrap();
        assert_eq!(dropped, 2, "the two without an alert");
        assert!(store.mention(&key("quiet")).unwrap().is_none());
        assert!(store.mention(&key("legacy-quiet")).unwrap().is_none());
        for id in ["loud", "legacy-loud"] {
            let alert = store
                .alerts()
                .unwrap()
                .into_iter()
                .find(|a| a.mention_key == key(id))
                .unwrap();
            assert!(store.alert_mention(&alert).unwrap().is_some(), "{id} kept");
        }
        let listed = store.recent_mentions(10).unwrap();
        let ids: Vec<&str> = listed.iter().map(|m| m.mention.item_id.as_str()).collect();
        assert_eq!(ids, ["recent"], "the recent one is still listed");
        assert_eq!(
            store.mention_count(),
            1,
            "only the recent one is still listed"
        );
        let later = old + chrono::Duration::days(92);
        let again = store
            .accept("feed", &state, &[candidate("quiet", true)], later)
            .await
            .unwrap();
        assert_eq!(again.new_mentions, 0, "a pruned mention is still known");
        assert_eq!(
            store.prune_mentions(later).unwrap(),
            0,
            "nothing left to drop"
        );
    }

    /// Memory guard for the store's size: a few thousand mentions of ~150 bytes of text
    /// (every tenth with an alert, its audit entry and rule hit) cost under 420 bytes each in
    /// sled's keys and values plus the mention journal's files, once the outbox is delivered:
    /// the text, URL and author, the dedup keys as text (for `store copy`) and as hashes, and
    /// a record header (401 when written). sled's log adds its own overhead on disk to what
    /// sled holds; `scripts/memory_bench.sh` measures that. So sled must hold only what the
    /// alerts need: under 100 bytes per mention (88 when written).
    #[tokio::test]
    async fn a_stored_mention_costs_little_more_than_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let n = 3_000;
        let batch: Vec<Candidate> = (0..n)
            .map(|i| {
                let mut c = candidate(&format!("{i:07}"), i % 10 == 0);
                c.mention.text = format!("{i:07} {}", "acme router slow again ".repeat(6));
                c.mention.author = Some(format!("user{i}"));
                c
            })
            .collect();
        assert!((140..160).contains(&batch[0].mention.text.len()));
        for part in batch.chunks(500) {
            store
                .accept("feed", &SourceState::default(), part, Utc::now())
                .await
                .unwrap();
        }
        // The outbox only holds entries until the relay delivers them.
        let mut in_sled = 0;
        for name in store._db.tree_names() {
            if name == "outbox" {
                continue;
            }
            for kv in store._db.open_tree(name).unwrap().iter() {
                let (k, v) = kv.unwrap();
                in_sled += k.len() + v.len();
            }
        }
        let mut in_journal = 0;
        for f in std::fs::read_dir(dir.path().join("journal")).unwrap() {
            in_journal += f.unwrap().metadata().unwrap().len() as usize;
        }
        let per_mention = (in_sled + in_journal) / n;
        assert!(per_mention < 420, "{per_mention} bytes per mention");
        assert!(
            in_sled / n < 100,
            "{} bytes per mention in sled",
            in_sled / n
        );
    }

    /// sled's memory grows with its entries (BENCHMARKS.md, session 15), so what an alert
    /// costs is counted here: an unclaimed alert, posted to two channels, with its
    /// escalation timer and its story's thread mark, is three sled entries (the alert, which
    /// holds its mention, both message references and the timer; the mark; the timer's
    /// place in the due order), besides counters and the source's state. Its rule hit
    /// shares an entry with up to 63 others of its batch.
    #[tokio::test]
    async fn an_unclaimed_alert_is_three_sled_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let n = 40;
        let batch: Vec<Candidate> = (0..n)
            .map(|i| {
                let mut c = candidate(&format!("m{i}"), true);
                let new = c.alert.as_mut().unwrap();
                new.timers = vec![(TimerKind::Escalate, Utc::now())];
                new.thread_keys = vec![ThreadKey {
                    key: format!("story:{i}"),
                    read: None,
                }];
                c
            })
            .collect();
        store
            .accept("feed", &SourceState::default(), &batch, Utc::now())
            .await
            .unwrap();
        for (key, entry) in store.outbox().unwrap() {
            let posted = crate::model::MessageRef {
                target: entry.target.clone(),
                channel_id: "C1".into(),
                message_id: format!("{}.0", entry.alert_id),
                permalink: None,
            };
            store.complete(key, &entry, &posted).await.unwrap();
        }
        let mut per_tree = std::collections::BTreeMap::new();
        for name in store._db.tree_names() {
            let n = store._db.open_tree(&name).unwrap().len();
            if n > 0 && name != "meta" && name != "source_state" {
                per_tree.insert(String::from_utf8_lossy(&name).into_owned(), n);
            }
        }
        let entries: usize = per_tree.values().sum::<usize>() - per_tree["rule_log"];
        assert_eq!(entries, 3 * n, "{per_tree:?}");
        assert_eq!(per_tree["rule_log"], 1, "{per_tree:?}");
        assert_eq!(store.timers().unwrap().len(), n);
        assert_eq!(store.message_refs(AlertId(7)).unwrap().len(), 2);
    }

    /// A prune over many old mentions runs in bounded chunks, each resuming where the last
    /// stopped, and drops them all: first the journal's old segment (one chunk), then
    /// sled's records (here from before the journal) 10 at a time.
    #[tokio::test]
    async fn a_large_prune_runs_in_bounded_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let old: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let batch: Vec<Candidate> = (0..25)
            .map(|i| candidate(&format!("m{i}"), false))
            .collect();
        store
            .accept("feed", &SourceState::default(), &batch, old)
            .await
            .unwrap();
        for i in 0..25u64 {
            let m = super::super::test_util::mention(&format!("legacy{i}"));
            let record = mention_record::encode(&m, old, false, None);
            store.mentions.insert(m.key().as_bytes(), record).unwrap();
            store
                .mention_log
                .insert(i.to_be_bytes(), m.key().as_bytes())
                .unwrap();
        }
        // A mention two days later closes the journal's first segment.
        let later = old + chrono::Duration::days(2);
        store
            .accept(
                "feed",
                &SourceState::default(),
                &[candidate("new", false)],
                later,
            )
            .await
            .unwrap();
        assert_eq!(store.mention_count(), 51);
        let mut prune = MentionPrune::new(old + chrono::Duration::days(91));
        let mut done = Vec::new();
        while done.last() != Some(&true) {
            done.push(store.prune_mentions_chunk(&mut prune, 10).unwrap());
        }
        assert_eq!(
            done,
            [false, false, false, true],
            "the journal segment, then 10 + 10 + 5 entries"
        );
        assert_eq!((prune.calls, prune.dropped), (4, 50));
        assert_eq!(store.mention_count(), 1, "the later one");
        let again = store
            .accept("feed", &SourceState::default(), &batch, later)
            .await
            .unwrap();
        assert_eq!(again.new_mentions, 0, "pruned mentions are still known");
    }
}
