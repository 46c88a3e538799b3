//! The outbox: deliveries waiting for a chat platform, their attempts and parking, and the
//! message references a delivery leaves behind. Every durable write that adds or releases work
//! (here, in `accept` and in `change_alert`) rings the store's outbox signal. It does not decide
//! when or how to deliver; the relay does.

use super::alert_record;
use super::alerts::alert_parts;
use super::{
    flatten_tx, from_json, next_counter, to_json, u64_key, SledStore, StoreError, TxResult,
    NEXT_OUTBOX_SEQ,
};
use crate::model::{AlertId, DigestPost, MessageRef, Note, Target};
use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;

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
pub(crate) const DIGEST_ENTRY: AlertId = AlertId(0);

/// A pending delivery. `in_flight_since` is set (and flushed) before the platform is called,
/// so after a crash the relay knows the platform may already have the message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub alert_id: AlertId,
    pub target: Target,
    pub action: OutboxAction,
    pub created_at: DateTime<Utc>,
    pub(crate) attempts: u32,
    pub in_flight_since: Option<DateTime<Utc>>,
    pub(crate) not_before: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Set when the platform refused the entry for a reason a retry cannot fix; it stays
    /// (and shows in `/healthz` and `/desk list`) until a later attempt succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) parked: Option<Parked>,
}

/// Why an outbox entry is parked, and what a person must do about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Parked {
    /// The platform's short error code (`invalid_auth`, `403/50013`).
    pub(crate) reason: String,
    pub(crate) fix: String,
    /// Whether the refusal stops the whole platform, the entry's channel, or only this entry.
    pub(crate) scope: crate::model::Scope,
    pub(crate) since: DateTime<Utc>,
}

/// Key of an outbox entry; ordered by creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OutboxKey(u64);

impl OutboxKey {
    /// Unique per entry, for platforms to tag a delivery with.
    pub fn seq(self) -> u64 {
        self.0
    }

    /// The key of the entry numbered `seq` (backends other than sled number entries their way).
    pub(crate) fn from_seq(seq: u64) -> OutboxKey {
        OutboxKey(seq)
    }
}

/// What `/healthz` and `/metrics` show of the outbox.
#[derive(Debug, Clone, Default)]
pub(crate) struct OutboxSummary {
    pub(crate) pending: u64,
    /// When the oldest waiting entry was queued.
    pub(crate) oldest: Option<DateTime<Utc>>,
    /// Every parked entry, oldest first.
    pub(crate) parked: Vec<OutboxEntry>,
}

/// Entries in the outbox tree, and how many are parked (once, at open).
pub(super) fn count(outbox: &sled::Tree) -> Result<(i64, i64), StoreError> {
    let (mut pending, mut parked) = (0, 0);
    for kv in outbox.iter() {
        let (_, v) = kv?;
        pending += 1;
        parked += i64::from(is_parked(&v));
    }
    Ok((pending, parked))
}

/// Whether a stored entry is parked; an unreadable one is not.
fn is_parked(bytes: &[u8]) -> bool {
    serde_json::from_slice::<OutboxEntry>(bytes).is_ok_and(|e| e.parked.is_some())
}

impl SledStore {
    /// The outbox as `/healthz` and `/metrics` show it, without reading every entry: the
    /// count is kept in memory, the oldest entry is the first key (keys follow creation), and
    /// the entries are read only while some are parked (then the desk is degraded anyway).
    pub(crate) fn outbox_summary(&self) -> Result<OutboxSummary, StoreError> {
        use std::sync::atomic::Ordering::Relaxed;
        let oldest = match self.outbox.first()? {
            Some((k, v)) => {
                let entry: OutboxEntry = from_json(&format!("outbox {}", u64_key(&k)), &v)?;
                Some(entry.created_at)
            }
            None => None,
        };
        let parked = if self.outbox_parked.load(Relaxed) > 0 {
            self.outbox()?
                .into_iter()
                .filter_map(|(_, e)| e.parked.is_some().then_some(e))
                .collect()
        } else {
            Vec::new()
        };
        Ok(OutboxSummary {
            // Below zero only for the moment between a delivery and the count of its queueing.
            pending: self.outbox_pending.load(Relaxed).max(0) as u64,
            oldest,
            parked,
        })
    }

    /// Counts entries a committed write queued. Counted after the commit, so the relay may
    /// already have delivered (and uncounted) them: the counters are signed and never
    /// clamped, so the two orders end at the same count.
    pub(super) fn outbox_added(&self, n: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.outbox_pending.fetch_add(n as i64, Relaxed);
    }

    /// Counts an entry a committed write removed (its stored bytes).
    fn outbox_removed(&self, old: Option<&[u8]>) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(old) = old else {
            return;
        };
        self.outbox_pending.fetch_sub(1, Relaxed);
        if is_parked(old) {
            self.outbox_parked.fetch_sub(1, Relaxed);
        }
    }

    /// Outbox entries in creation order.
    pub fn outbox(&self) -> Result<Vec<(OutboxKey, OutboxEntry)>, StoreError> {
        self.outbox_page(None, None, usize::MAX)
    }

    /// Up to `limit` entries with keys strictly between `after` and `before`, oldest first:
    /// the relay reads the outbox a page at a time, so a backlog after an outage costs a
    /// page of memory, not the whole backlog.
    pub(crate) fn outbox_page(
        &self,
        after: Option<OutboxKey>,
        before: Option<OutboxKey>,
        limit: usize,
    ) -> Result<Vec<(OutboxKey, OutboxEntry)>, StoreError> {
        use std::ops::Bound;
        let start = match after {
            Some(k) => Bound::Excluded(k.0.to_be_bytes()),
            None => Bound::Unbounded,
        };
        let end = match before {
            Some(k) => Bound::Excluded(k.0.to_be_bytes()),
            None => Bound::Unbounded,
        };
        self.outbox
            .range::<[u8; 8], _>((start, end))
            .take(limit)
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
    pub(crate) fn record_failure(
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
    pub(crate) fn park(
        &self,
        key: OutboxKey,
        attempts: u32,
        error: &str,
        parked: &Parked,
        not_before: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let newly = std::sync::atomic::AtomicBool::new(false);
        // Set on every run of the update (reset when the entry is gone, then `update_outbox`
        // fails): the last run is the one that was written.
        self.update_outbox_with(key, |e| {
            let Some(e) = e else {
                newly.store(false, std::sync::atomic::Ordering::Relaxed);
                return;
            };
            e.attempts = attempts;
            e.last_error = Some(error.to_string());
            e.not_before = not_before;
            newly.store(e.parked.is_none(), std::sync::atomic::Ordering::Relaxed);
            if e.parked.as_ref().map(|p| &p.reason) != Some(&parked.reason) {
                e.parked = Some(parked.clone());
            }
        })?;
        if newly.into_inner() {
            self.outbox_parked
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// Makes every entry `which` accepts due now (its cause is gone, or the daemon restarted);
    /// parked entries keep their reason until they are delivered. Returns how many.
    pub(crate) fn retry_now(
        &self,
        which: impl Fn(&OutboxEntry) -> bool,
    ) -> Result<usize, StoreError> {
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
    /// then flush so a restart never posts it again. An alert's references are kept in its
    /// value (`alert_record.rs`); a digest's or a timer round's (no alert) in `message_refs`.
    pub(crate) async fn complete(
        &self,
        key: OutboxKey,
        entry: &OutboxEntry,
        msg: &MessageRef,
    ) -> Result<(), StoreError> {
        let id = entry.alert_id;
        let ref_key = ref_key(id, &entry.target);
        let value = to_json(msg);
        let old = (&self.outbox, &self.refs, &self.alerts)
            .transaction(|(outbox, refs, alerts)| {
                let old = outbox.remove(&key.0.to_be_bytes())?;
                match alerts.get(id.0.to_be_bytes())? {
                    Some(v) => {
                        let abort = ConflictableTransactionError::Abort;
                        let parts = alert_parts(id, &v).map_err(abort)?;
                        let held = parts.message_refs(id).map_err(abort)?;
                        let list = alert_record::with_ref(held, msg);
                        let stored = alert_record::Parts {
                            refs: Some(&list),
                            ..parts
                        };
                        // One kept in `message_refs` from before is shadowed by this one.
                        alerts.insert(&id.0.to_be_bytes(), stored.encode())?;
                    }
                    None => {
                        refs.insert(ref_key.as_slice(), value.as_slice())?;
                    }
                }
                Ok(old)
            })
            .map_err(flatten_tx)?;
        self.outbox_removed(old.as_deref());
        self.durable().await?;
        Ok(())
    }

    /// The platform did what an entry asked and there is no reference to keep: drop it, flush.
    pub async fn finish(&self, key: OutboxKey) -> Result<(), StoreError> {
        let old = self.outbox.remove(key.0.to_be_bytes())?;
        self.outbox_removed(old.as_deref());
        self.durable().await?;
        Ok(())
    }

    /// Puts an entry off until `not_before` without counting an attempt (it waits for
    /// something else, such as its alert's root message, to be delivered first).
    pub(crate) fn defer(
        &self,
        key: OutboxKey,
        not_before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.update_outbox(key, |e| e.not_before = Some(not_before))?;
        Ok(())
    }

    /// Where an alert was posted, one reference per target: those its value holds, then any
    /// kept in `message_refs` (written before references moved into the alert, or copied).
    #[cfg(test)]
    pub(crate) fn message_refs(&self, id: AlertId) -> Result<Vec<MessageRef>, StoreError> {
        let mut out = match self.alerts.get(id.0.to_be_bytes())? {
            Some(v) => alert_parts(id, &v)?.message_refs(id)?,
            None => Vec::new(),
        };
        for kv in self.refs.scan_prefix(id.0.to_be_bytes()) {
            let (_, v) = kv?;
            let r: MessageRef = from_json(&format!("message ref of alert {id}"), &v)?;
            if !out.iter().any(|o| o.target == r.target) {
                out.push(r);
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
        if let Some(v) = self.alerts.get(id.0.to_be_bytes())? {
            let held = alert_parts(id, &v)?.message_refs(id)?;
            if let Some(r) = alert_record::ref_for(held, target) {
                return Ok(Some(r));
            }
        }
        self.refs
            .get(ref_key(id, target))?
            .map(|v| from_json(&format!("message ref of alert {id}"), &v))
            .transpose()
    }

    /// Queues a digest for each target and, when `slot` is given, records it as sent, in one
    /// transaction (then flushes): a crash either keeps both or neither, so a slot is
    /// neither lost nor posted twice.
    ///
    /// The slot is written (and the digest queued) only when the stored slot is absent,
    /// unreadable or older: otherwise another writer (a replica at the same slot) sent it
    /// already, nothing is queued and `false` comes back.
    pub async fn enqueue_digest<T: Serialize + DeserializeOwned + PartialOrd>(
        &self,
        slot: Option<(&str, &T)>,
        targets: &[Target],
        post: &DigestPost,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let encoded = slot.map(|(k, v)| (k.as_bytes().to_vec(), to_json(v)));
        let queued = (&self.meta, &self.outbox)
            .transaction(|(meta, outbox)| {
                if let (Some((k, v)), Some((_, slot))) = (&encoded, slot) {
                    let stored = meta.get(k.as_slice())?;
                    let newer = stored
                        .and_then(|s| serde_json::from_slice::<T>(&s).ok())
                        .is_some_and(|s| s >= *slot);
                    if newer {
                        return Ok(false);
                    }
                    meta.insert(k.as_slice(), v.as_slice())?;
                }
                for t in targets {
                    let action = OutboxAction::Digest(Box::new(post.clone()));
                    push_outbox(meta, outbox, DIGEST_ENTRY, t, action, now)?;
                }
                Ok(true)
            })
            .map_err(flatten_tx)?;
        if !queued {
            return Ok(false);
        }
        self.outbox_added(targets.len());
        self.durable().await?;
        self.outbox_signal.notify_one();
        Ok(true)
    }

    fn update_outbox(
        &self,
        key: OutboxKey,
        f: impl Fn(&mut OutboxEntry),
    ) -> Result<OutboxEntry, StoreError> {
        self.update_outbox_with(key, |e| {
            if let Some(e) = e {
                f(e)
            }
        })
    }

    /// Rewrites an entry with `f`, which also runs (with `None`) when a retry of sled's
    /// compare-and-swap finds the entry gone. An unreadable entry is deleted (and uncounted);
    /// both are errors to the caller.
    fn update_outbox_with(
        &self,
        key: OutboxKey,
        f: impl Fn(Option<&mut OutboxEntry>),
    ) -> Result<OutboxEntry, StoreError> {
        let k = key.0.to_be_bytes();
        let label = format!("outbox {}", key.0);
        let mut result = None;
        let mut dropped: Option<Vec<u8>> = None;
        self.outbox.update_and_fetch(k, |old| {
            // Only the last run is written: forget what an earlier one saw.
            result = None;
            dropped = None;
            let Some(old) = old else {
                f(None);
                return None;
            };
            let Ok(mut entry) = serde_json::from_slice::<OutboxEntry>(old) else {
                dropped = Some(old.to_vec());
                f(None);
                return None;
            };
            f(Some(&mut entry));
            let bytes = to_json(&entry);
            result = Some(entry);
            Some(bytes)
        })?;
        self.outbox_removed(dropped.as_deref());
        result.ok_or(StoreError::Corrupt {
            key: label,
            reason: "missing or unreadable".into(),
        })
    }
}

impl OutboxEntry {
    /// A delivery queued now and not yet tried; both backends queue through here.
    pub(crate) fn new(
        alert_id: AlertId,
        target: &Target,
        action: OutboxAction,
        now: DateTime<Utc>,
    ) -> OutboxEntry {
        OutboxEntry {
            alert_id,
            target: target.clone(),
            action,
            created_at: now,
            attempts: 0,
            in_flight_since: None,
            not_before: None,
            last_error: None,
            parked: None,
        }
    }
}

pub(super) fn push_outbox(
    meta: &TransactionalTree,
    outbox: &TransactionalTree,
    alert_id: AlertId,
    target: &Target,
    action: OutboxAction,
    now: DateTime<Utc>,
) -> TxResult<()> {
    let seq = next_counter(meta, NEXT_OUTBOX_SEQ)?;
    let entry = OutboxEntry::new(alert_id, target, action, now);
    outbox.insert(&seq.to_be_bytes(), to_json(&entry))?;
    Ok(())
}

pub(super) fn ref_key(id: AlertId, target: &Target) -> Vec<u8> {
    let mut k = id.0.to_be_bytes().to_vec();
    k.extend_from_slice(target.to_string().as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::super::test_util::candidate;
    use super::*;
    use crate::model::SourceState;

    /// The relay sleeps on the store's signal alone: a write that queues work must ring it,
    /// or new alerts would wait for the relay's idle timeout.
    #[tokio::test]
    async fn outbox_writes_ring_the_relay_signal() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
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
    async fn complete_moves_entry_to_refs() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
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
            permalink: None,
        };
        store.complete(key, &entry, &msg).await.unwrap();
        assert_eq!(store.outbox().unwrap().len(), 1);
        assert_eq!(store.message_refs(entry.alert_id).unwrap(), vec![msg]);
    }

    /// `/healthz` reads the outbox's count from memory: it must stay what the outbox holds
    /// through queueing, parking, delivery and a reopen.
    #[tokio::test]
    async fn the_summary_counts_what_the_outbox_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let now = Utc::now();
        let batch = [
            candidate("a", true),
            candidate("b", true),
            candidate("c", false),
        ];
        store
            .accept("feed", &SourceState::default(), &batch, now)
            .await
            .unwrap();
        let check = |store: &SledStore| {
            let summary = store.outbox_summary().unwrap();
            let all = store.outbox().unwrap();
            assert_eq!(summary.pending as usize, all.len());
            assert_eq!(summary.oldest, all.iter().map(|(_, e)| e.created_at).min());
            let parked: Vec<_> = all
                .into_iter()
                .filter(|(_, e)| e.parked.is_some())
                .collect();
            assert_eq!(summary.parked.len(), parked.len());
            summary
        };
        assert_eq!(check(&store).pending, 4);
        let entries = store.outbox().unwrap();
        let parked = Parked {
            reason: "not_in_channel".into(),
            fix: "invite the bot".into(),
            scope: crate::model::Scope::Target,
            since: now,
        };
        for _ in 0..2 {
            store
                .park(entries[0].0, 1, "refused", &parked, None)
                .unwrap();
        }
        assert_eq!(check(&store).parked.len(), 1, "parked twice counts once");
        let msg = MessageRef {
            target: entries[0].1.target.clone(),
            channel_id: "C1".into(),
            message_id: "1.2".into(),
            permalink: None,
        };
        store
            .complete(entries[0].0, &entries[0].1, &msg)
            .await
            .unwrap();
        store.finish(entries[1].0).await.unwrap();
        store.finish(entries[1].0).await.unwrap();
        let summary = check(&store);
        assert_eq!((summary.pending, summary.parked.len()), (2, 0));
        store
            .park(entries[2].0, 1, "refused", &parked, None)
            .unwrap();
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        let summary = check(&store);
        assert_eq!(
            (summary.pending, summary.parked.len()),
            (2, 1),
            "counted at open"
        );
    }

    /// A timer round's messages are outbox entries like any other: `/healthz` counts them.
    #[tokio::test]
    async fn a_round_s_messages_are_counted_as_pending() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let messages = [
            (Target::Slack("#pr".into()), OutboxAction::UpdateAlert),
            (Target::Slack("#leads".into()), OutboxAction::UpdateAlert),
        ];
        store
            .fire_round(&[], &messages, Utc::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.outbox().unwrap().len(), 2);
        assert_eq!(store.outbox_summary().unwrap().pending, 2);
    }

    /// The relay can deliver an entry before the write that queued it has counted it: the
    /// count must still end at what the outbox holds, not one too many for ever.
    #[tokio::test]
    async fn a_delivery_uncounted_before_its_queueing_is_counted_leaves_the_count_right() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let entry = OutboxEntry::new(
            AlertId(1),
            &Target::Slack("#pr".into()),
            OutboxAction::PostAlert,
            Utc::now(),
        );
        // Committed, not yet counted (as between `accept`'s commit and its `outbox_added`).
        store
            .outbox
            .insert(7u64.to_be_bytes(), to_json(&entry))
            .unwrap();
        store.finish(OutboxKey(7)).await.unwrap();
        store.outbox_added(1);
        assert!(store.outbox().unwrap().is_empty());
        assert_eq!(store.outbox_summary().unwrap().pending, 0);
    }

    /// An update that finds an entry unreadable deletes it (sled's update with `None`): it
    /// must leave the count too.
    #[tokio::test]
    async fn an_unreadable_entry_an_update_deletes_is_uncounted() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store
            .outbox
            .insert(9u64.to_be_bytes(), &b"not json"[..])
            .unwrap();
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        // (The summary itself cannot read an unreadable oldest entry; the count is what it shows.)
        let pending = || {
            store
                .outbox_pending
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        assert_eq!(pending(), 1, "counted at open");
        let err = store.record_failure(OutboxKey(9), 1, "boom", Utc::now());
        assert!(err.is_err());
        assert!(store.outbox.is_empty());
        assert_eq!(pending(), 0);
    }

    /// The alert count comes from the last alert id; it must match the alerts stored.
    #[tokio::test]
    async fn the_alert_count_is_the_number_of_alerts() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.alert_count(), 0);
        let batch = [
            candidate("a", true),
            candidate("b", false),
            candidate("c", true),
        ];
        store
            .accept("feed", &SourceState::default(), &batch, Utc::now())
            .await
            .unwrap();
        assert_eq!(store.alert_count(), 2);
        assert_eq!(store.alerts().unwrap().len(), 2);
    }

    /// A digest slot is queued once: the same slot again, or an older one, queues nothing
    /// and says so; a newer one is queued.
    #[tokio::test]
    async fn a_digest_slot_is_queued_once_and_never_for_an_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let post = DigestPost {
            title: "Daily digest".into(),
            body: Note::default().text("3 mentions"),
            chart: None,
            chart_alt: String::new(),
        };
        let targets = [Target::Slack("#pr".into())];
        let now = Utc::now();
        let slot = |h| now + chrono::Duration::hours(h);
        let key = "digest_slot:daily";
        let queue = async |h| {
            store
                .enqueue_digest(Some((key, &slot(h))), &targets, &post, now)
                .await
                .unwrap()
        };
        assert!(queue(1).await);
        assert!(!queue(1).await, "the same slot again");
        assert!(!queue(0).await, "an older slot");
        assert!(queue(2).await);
        assert_eq!(store.outbox().unwrap().len(), 2);
        assert_eq!(store.meta_get(key).unwrap(), Some(slot(2)));
    }

    /// An alert's mention and its message references live in the alert's own sled entry
    /// (one entry per alert where there were three): they read back, a desk change that
    /// read the alert before a reference was written still applies and keeps them, a
    /// reference of something that is no alert (a digest) and one kept from before in
    /// `message_refs` still read, and `store copy` carries them all.
    #[tokio::test]
    async fn an_alert_holds_its_mention_and_message_refs_in_its_own_entry() {
        use super::super::copy::{copy, Location};
        use super::super::test_util::change;
        use crate::model::AlertState;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let store = SledStore::open(&a).unwrap();
        let c = candidate("loud", true);
        store
            .accept(
                "feed",
                &SourceState::default(),
                std::slice::from_ref(&c),
                Utc::now(),
            )
            .await
            .unwrap();
        let id = AlertId(1);
        let before = store.alert(id).unwrap().unwrap();
        let posted = |target: &Target, ts: &str| MessageRef {
            target: target.clone(),
            channel_id: "C1".into(),
            message_id: ts.into(),
            permalink: None,
        };
        let (pr, leads) = (Target::Slack("#pr".into()), Target::Slack("#leads".into()));
        for (key, entry) in store.outbox().unwrap() {
            let ts = if entry.target == pr { "1.0" } else { "2.0" };
            store
                .complete(key, &entry, &posted(&entry.target, ts))
                .await
                .unwrap();
        }
        assert_eq!(store.alerts.len(), 1);
        assert_eq!(store.mentions.len(), 0, "the mention is in the alert");
        assert_eq!(store.refs.len(), 0, "the references are in the alert");
        assert_eq!(
            store.message_ref(id, &pr).unwrap(),
            Some(posted(&pr, "1.0"))
        );
        assert_eq!(store.message_refs(id).unwrap().len(), 2);

        // A claim decided on the alert as read before the posts went out.
        let mut claimed = before.clone();
        claimed.state = AlertState::Claimed {
            by: "slack:U1".into(),
            at: Utc::now(),
        };
        let outcome = store.change_alert(&before, change(claimed)).await.unwrap();
        assert_eq!(outcome, super::super::ChangeOutcome::Applied);
        let now = store.alert(id).unwrap().unwrap();
        assert!(matches!(now.state, AlertState::Claimed { .. }));
        assert_eq!(
            store.message_ref(id, &leads).unwrap(),
            Some(posted(&leads, "2.0"))
        );
        let m = store
            .alert_mention(&now)
            .unwrap()
            .expect("kept by the change");
        assert_eq!(m.mention.text, c.mention.text);

        // A later post to one target replaces only that reference.
        let again = OutboxEntry::new(id, &pr, OutboxAction::PostAlert, Utc::now());
        store
            .complete(OutboxKey(999), &again, &posted(&pr, "3.0"))
            .await
            .unwrap();
        assert_eq!(
            store.message_ref(id, &pr).unwrap(),
            Some(posted(&pr, "3.0"))
        );
        assert_eq!(
            store.message_ref(id, &leads).unwrap(),
            Some(posted(&leads, "2.0"))
        );

        // No alert (a digest): its own tree. From before: a reference in the tree.
        let digest = OutboxEntry {
            alert_id: AlertId(0),
            ..again.clone()
        };
        store
            .complete(OutboxKey(1000), &digest, &posted(&pr, "9.0"))
            .await
            .unwrap();
        assert_eq!(store.refs.len(), 1);
        assert_eq!(
            store.message_ref(AlertId(0), &pr).unwrap(),
            Some(posted(&pr, "9.0"))
        );
        let discord = Target::Discord("42".into());
        store
            .refs
            .insert(ref_key(id, &discord), to_json(&posted(&discord, "7")))
            .unwrap();
        assert_eq!(
            store.message_ref(id, &discord).unwrap(),
            Some(posted(&discord, "7"))
        );
        assert_eq!(store.message_refs(id).unwrap().len(), 3);

        store.flush().await.unwrap();
        drop(store);
        copy(&Location::Sled(a), &Location::Sled(b.clone()))
            .await
            .unwrap();
        let copied = SledStore::open(&b).unwrap();
        assert_eq!(copied.message_refs(id).unwrap().len(), 3);
        assert_eq!(
            copied.message_ref(id, &pr).unwrap(),
            Some(posted(&pr, "3.0"))
        );
        assert_eq!(
            copied.message_ref(AlertId(0), &pr).unwrap(),
            Some(posted(&pr, "9.0"))
        );
        let alert = copied.alert(id).unwrap().unwrap();
        assert_eq!(alert.state, now.state);
        let m = copied.alert_mention(&alert).unwrap().expect("copied");
        assert_eq!(m.mention.text, c.mention.text);
    }
}
