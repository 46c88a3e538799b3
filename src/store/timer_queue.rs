//! Durable timers (escalation, reminders, snooze wake-ups) and their order. An alert's
//! pending timers are held in its own sled entry (`alert_record.rs`; before 2 December
//! 2026 and after `store copy` in the `timers` tree, keyed by alert id and kind, which is
//! still read). The `timer_queue` tree keeps them in due order: one empty entry per timer,
//! keyed by its due second, alert id and kind. The desk asks for due timers every few
//! seconds; with the queue that reads only the timers due, where a walk of every timer
//! read every pending one: after a burst of 100k alerts, 100k timers parsed every five
//! seconds for the 15 minutes until they escalate, and every page of them kept in sled's
//! cache (see `desk_index.rs`).
//!
//! Every write of a timer goes through `set`, `cancel` or `queue_new` here, inside the transaction that
//! changes the alert, so the alert and the queue always agree. A clean shutdown records
//! the counters it saw (`QUEUE_STAMP`), and a start that finds them moved on (any alert
//! created or changed since, which is how timers are written) or missing builds the queue
//! afresh from the alerts and the `timers` tree.

use super::alert_record::{self, Parts};
use super::alerts::{alert_parts, timer_key, Timer};
use super::desk_index::Stamp;
use super::{from_json, to_json, u64_key, StoreError, TxResult};
use crate::model::{AlertId, TimerKind};
use chrono::{DateTime, Utc};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

/// Meta key: the counters at the last clean shutdown, while the queue was complete. sled's
/// own layout, not copied by `store copy`.
pub(super) const QUEUE_STAMP: &str = "timer_queue_stamp";

/// The trees a timer lives in, inside one transaction.
pub(super) struct TimerTrees<'a> {
    pub(super) alerts: &'a TransactionalTree,
    pub(super) queue: &'a TransactionalTree,
    /// Timers written before alerts held them (and by `store copy`).
    pub(super) legacy: &'a TransactionalTree,
}

impl TimerTrees<'_> {
    /// Sets (or moves) the alert's timer of `kind`. The alert must be stored (a timer
    /// belongs to it).
    pub(super) fn set(&self, id: AlertId, kind: TimerKind, due: DateTime<Utc>) -> TxResult<()> {
        self.cancel(id, kind)?;
        self.edit(id, |timers| timers.push((kind, due)))?;
        self.queue
            .insert(queue_key(due, id, kind).as_slice(), &[])?;
        Ok(())
    }

    /// Queues the timers of an alert this transaction created with them in its value
    /// (`create_alert`), without reading that value back.
    pub(super) fn queue_new(
        &self,
        id: AlertId,
        timers: &[(TimerKind, DateTime<Utc>)],
    ) -> TxResult<()> {
        for (kind, due) in one_per_kind(timers) {
            self.queue
                .insert(queue_key(due, id, kind).as_slice(), &[])?;
        }
        Ok(())
    }

    /// Removes the alert's timer of `kind`, if one is set.
    pub(super) fn cancel(&self, id: AlertId, kind: TimerKind) -> TxResult<()> {
        let mut gone = Vec::new();
        self.edit(id, |timers| {
            timers.retain(|&(k, due)| {
                if k == kind {
                    gone.push(due);
                }
                k != kind
            })
        })?;
        if let Some(old) = self.legacy.remove(&timer_key(id, kind))? {
            if let Ok(t) = from_json::<Timer>("timer", &old) {
                gone.push(t.due);
            }
        }
        for due in gone {
            self.queue.remove(queue_key(due, id, kind).as_slice())?;
        }
        Ok(())
    }

    /// The alert's timer of `kind`, as this transaction sees it.
    pub(super) fn get(&self, id: AlertId, kind: TimerKind) -> TxResult<Option<Timer>> {
        if let Some(v) = self.alerts.get(id.0.to_be_bytes())? {
            let parts = alert_parts(id, &v).map_err(ConflictableTransactionError::Abort)?;
            if let Some(due) = find(&parts, kind) {
                return Ok(Some(Timer {
                    alert_id: id,
                    kind,
                    due,
                }));
            }
        }
        match self.legacy.get(timer_key(id, kind))? {
            Some(v) => Ok(from_json::<Timer>("timer", &v).ok()),
            None => Ok(None),
        }
    }

    /// Rewrites the alert's timers section with `f` applied (nothing when the alert is gone
    /// or nothing changed).
    fn edit(
        &self,
        id: AlertId,
        f: impl FnOnce(&mut Vec<(TimerKind, DateTime<Utc>)>),
    ) -> TxResult<()> {
        let Some(v) = self.alerts.get(id.0.to_be_bytes())? else {
            return Ok(());
        };
        let parts = alert_parts(id, &v).map_err(ConflictableTransactionError::Abort)?;
        let before = alert_record::timers_of(parts.timers);
        let mut timers = before.clone();
        f(&mut timers);
        if timers == before {
            return Ok(());
        }
        let section = alert_record::encode_timers(&timers);
        let stored = Parts {
            timers: section.as_deref(),
            ..parts
        };
        self.alerts.insert(&id.0.to_be_bytes(), stored.encode())?;
        Ok(())
    }
}

/// `timers` with a later timer of a kind in place of an earlier one, as `set` leaves them.
pub(super) fn one_per_kind(
    timers: &[(TimerKind, DateTime<Utc>)],
) -> Vec<(TimerKind, DateTime<Utc>)> {
    let mut out: Vec<(TimerKind, DateTime<Utc>)> = Vec::with_capacity(timers.len());
    for &(kind, due) in timers {
        out.retain(|&(k, _)| k != kind);
        out.push((kind, due));
    }
    out
}

/// The due time of the timer of `kind` an alert's value holds.
fn find(parts: &Parts, kind: TimerKind) -> Option<DateTime<Utc>> {
    alert_record::timers_of(parts.timers)
        .into_iter()
        .find(|&(k, _)| k == kind)
        .map(|(_, due)| due)
}

/// Key: the due second (offset so times before 1970 sort first), the alert id, the kind.
fn queue_key(due: DateTime<Utc>, id: AlertId, kind: TimerKind) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..8].copy_from_slice(&(due.timestamp() as u64 ^ (1 << 63)).to_be_bytes());
    k[8..16].copy_from_slice(&id.0.to_be_bytes());
    k[16] = kind.code();
    k
}

/// The alert's timer of `kind` (outside a transaction): in the alert's value, or in the
/// `timers` tree.
pub(super) fn timer(
    alerts: &sled::Tree,
    legacy: &sled::Tree,
    id: AlertId,
    kind: TimerKind,
) -> Result<Option<Timer>, StoreError> {
    if let Some(v) = alerts.get(id.0.to_be_bytes())? {
        if let Some(due) = find(&alert_parts(id, &v)?, kind) {
            return Ok(Some(Timer {
                alert_id: id,
                kind,
                due,
            }));
        }
    }
    legacy
        .get(timer_key(id, kind))?
        .map(|v| from_json("timer", &v))
        .transpose()
}

/// Every pending timer, in alert order: those alerts hold, then those in `timers`.
pub(super) fn all(alerts: &sled::Tree, legacy: &sled::Tree) -> Result<Vec<Timer>, StoreError> {
    let mut out = Vec::new();
    for kv in alerts.iter() {
        let (k, v) = kv?;
        let id = AlertId(u64_key(&k));
        let parts = alert_parts(id, &v)?;
        for (kind, due) in alert_record::timers_of(parts.timers) {
            out.push(Timer {
                alert_id: id,
                kind,
                due,
            });
        }
    }
    for kv in legacy.iter() {
        out.push(from_json("timer", &kv?.1)?);
    }
    Ok(out)
}

/// Timers due at or before `now`, soonest first: the queue up to `now`'s second, each
/// confirmed where the timer lives (a queue entry whose timer is gone or moved is skipped).
pub(super) fn due(
    alerts: &sled::Tree,
    legacy: &sled::Tree,
    queue: &sled::Tree,
    now: DateTime<Utc>,
) -> Result<Vec<Timer>, StoreError> {
    let mut end = queue_key(now, AlertId(u64::MAX), TimerKind::Wake);
    end[16] = u8::MAX;
    let mut out = Vec::new();
    for kv in queue.range(..=end.as_slice()) {
        let (k, _) = kv?;
        let Some(kind) = k.get(16).copied().and_then(TimerKind::from_code) else {
            continue;
        };
        let id = AlertId(u64_key(&k[8..16]));
        let Some(t) = timer(alerts, legacy, id, kind)? else {
            continue;
        };
        if t.due <= now && queue_key(t.due, id, kind)[..] == k[..] {
            out.push(t);
        }
    }
    out.sort_by_key(|t| t.due);
    Ok(out)
}

/// At open: keeps the queue when the last clean shutdown left it complete and nothing wrote
/// alerts since; otherwise builds it from the timers (one read of every alert).
pub(super) fn open(
    meta: &sled::Tree,
    alerts: &sled::Tree,
    legacy: &sled::Tree,
    queue: &sled::Tree,
) -> Result<(), StoreError> {
    let stamp = Stamp::read(meta)?;
    let saved: Option<Stamp> = meta
        .get(QUEUE_STAMP)?
        .and_then(|v| serde_json::from_slice(&v).ok());
    // Removed first: from here on only a clean shutdown vouches for the queue again.
    meta.remove(QUEUE_STAMP)?;
    if saved == Some(stamp) {
        return Ok(());
    }
    rebuild(alerts, legacy, queue)
}

/// Builds the queue from every timer (at open, and after `store copy` filled `timers`).
pub(super) fn rebuild(
    alerts: &sled::Tree,
    legacy: &sled::Tree,
    queue: &sled::Tree,
) -> Result<(), StoreError> {
    queue.clear()?;
    let mut n = 0usize;
    for kv in alerts.iter() {
        let (k, v) = kv?;
        let id = AlertId(u64_key(&k));
        for (kind, due) in alert_record::timers_of(alert_parts(id, &v)?.timers) {
            queue.insert(queue_key(due, id, kind).as_slice(), &[])?;
            n += 1;
        }
    }
    for kv in legacy.iter() {
        let t: Timer = from_json("timer", &kv?.1)?;
        queue.insert(queue_key(t.due, t.alert_id, t.kind).as_slice(), &[])?;
        n += 1;
    }
    tracing::debug!(timers = n, "timer queue built from the timers");
    Ok(())
}

/// At a clean shutdown, after the last write: the queue is complete for these counters.
pub(super) fn save(meta: &sled::Tree) -> Result<(), StoreError> {
    let stamp = Stamp::read(meta)?;
    meta.insert(QUEUE_STAMP, to_json(&stamp))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::copy::{copy, Location};
    use super::super::test_util::{candidate, change};
    use super::super::{SledStore, NEXT_AUDIT_SEQ};
    use super::*;
    use crate::model::SourceState;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + secs, 0).unwrap()
    }

    /// Alerts 1..=n, alert i with an escalation due at `at(i * 10)`.
    async fn store_with_timers(dir: &std::path::Path, n: i64) -> SledStore {
        let store = SledStore::open(dir).unwrap();
        for i in 1..=n {
            let mut c = candidate(&format!("m{i}"), true);
            c.alert.as_mut().unwrap().timers = vec![(TimerKind::Escalate, at(i * 10))];
            store
                .accept("feed", &SourceState::default(), &[c], at(0))
                .await
                .unwrap();
        }
        store
    }

    fn due_ids(store: &SledStore, now: DateTime<Utc>) -> Vec<(u64, TimerKind)> {
        let due = store.due_timers(now).unwrap();
        due.iter().map(|t| (t.alert_id.0, t.kind)).collect()
    }

    /// Each timer has exactly its one queue entry, and the queue nothing else.
    fn assert_agree(store: &SledStore) {
        let mut want: Vec<[u8; 17]> = store
            .timers()
            .unwrap()
            .iter()
            .map(|t| queue_key(t.due, t.alert_id, t.kind))
            .collect();
        want.sort();
        let got: Vec<Vec<u8>> = store
            .timer_queue
            .iter()
            .map(|kv| kv.unwrap().0.to_vec())
            .collect();
        assert_eq!(got, want.iter().map(|k| k.to_vec()).collect::<Vec<_>>());
    }

    #[test]
    fn keys_sort_by_due_time_then_alert() {
        let t = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        let keys = [
            queue_key(t(-5), AlertId(9), TimerKind::Escalate),
            queue_key(t(0), AlertId(9), TimerKind::Escalate),
            queue_key(t(100), AlertId(1), TimerKind::Wake),
            queue_key(t(100), AlertId(2), TimerKind::Escalate),
            queue_key(t(101), AlertId(1), TimerKind::Escalate),
        ];
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }

    /// Only the timers due come back, soonest first, to the second's fraction; moving,
    /// cancelling, firing and removing a timer keep the queue in step with the timers.
    #[tokio::test]
    async fn due_timers_come_from_the_queue_and_follow_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_timers(dir.path(), 5).await;
        assert_agree(&store);
        assert_eq!(due_ids(&store, at(5)), []);
        assert_eq!(
            due_ids(&store, at(30)),
            [
                (1, TimerKind::Escalate),
                (2, TimerKind::Escalate),
                (3, TimerKind::Escalate)
            ]
        );
        let half = at(40) + chrono::Duration::milliseconds(500);
        assert_eq!(due_ids(&store, at(40)).len(), 4, "due exactly now counts");
        assert_eq!(due_ids(&store, half).len(), 4);

        // Alert 1's escalation moves later, alert 2's is cancelled and it gets a reminder
        // due half a second into a second.
        let a1 = store.alert(AlertId(1)).unwrap().unwrap();
        let mut c1 = change(a1.clone());
        c1.set_timers = vec![(TimerKind::Escalate, at(1000))];
        store.change_alert(&a1, c1).await.unwrap();
        let a2 = store.alert(AlertId(2)).unwrap().unwrap();
        let mut c2 = change(a2.clone());
        c2.cancel_timers = vec![TimerKind::Escalate];
        c2.set_timers = vec![(TimerKind::Remind, half)];
        store.change_alert(&a2, c2).await.unwrap();
        assert_agree(&store);
        assert_eq!(
            due_ids(&store, at(40)),
            [(3, TimerKind::Escalate), (4, TimerKind::Escalate)]
        );
        assert_eq!(
            due_ids(&store, half),
            [
                (3, TimerKind::Escalate),
                (4, TimerKind::Escalate),
                (2, TimerKind::Remind)
            ]
        );

        // Alert 3's escalation fires in a round; alert 4's is removed as moot.
        let due = store.due_timers(at(40)).unwrap();
        let a3 = store.alert(AlertId(3)).unwrap().unwrap();
        let entry = change(a3.clone()).audit;
        store
            .fire_round(&[(a3, due[0].clone(), entry)], &[], at(40))
            .await
            .unwrap()
            .unwrap();
        store.remove_timer(&due[1]).unwrap();
        assert_agree(&store);
        assert_eq!(due_ids(&store, half), [(2, TimerKind::Remind)]);
        assert_eq!(
            due_ids(&store, at(2000)),
            [
                (2, TimerKind::Remind),
                (5, TimerKind::Escalate),
                (1, TimerKind::Escalate)
            ]
        );
    }

    /// A clean close vouches for the queue; a crash, or writes by a binary that does not
    /// know the queue (it moves the counters), make the next open build it from the timers.
    #[tokio::test]
    async fn the_queue_is_rebuilt_unless_a_clean_close_vouched_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_timers(dir.path(), 2).await;
        store.close().await.unwrap();
        // A timer that only `timers` holds, the counters unmoved: a kept queue misses it.
        let stray = Timer {
            alert_id: AlertId(2),
            kind: TimerKind::Wake,
            due: at(1),
        };
        let put_stray = |store: &SledStore| {
            store
                .timers
                .insert(timer_key(stray.alert_id, stray.kind), to_json(&stray))
                .unwrap();
        };
        put_stray(&store);
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(due_ids(&store, at(15)), [(1, TimerKind::Escalate)], "kept");

        // The same after a crash (no close): built from the timers.
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            due_ids(&store, at(15)),
            [(2, TimerKind::Wake), (1, TimerKind::Escalate)],
            "rebuilt after a start without a clean close"
        );
        assert_agree(&store);

        // A clean close, then an older binary's change: a timer and an audit entry.
        store
            .timers
            .remove(timer_key(stray.alert_id, stray.kind))
            .unwrap();
        store.close().await.unwrap();
        put_stray(&store);
        let next = store
            .meta
            .get(NEXT_AUDIT_SEQ)
            .unwrap()
            .map_or(1, |v| super::super::u64_key(&v));
        store
            .meta
            .insert(NEXT_AUDIT_SEQ, &(next + 1).to_be_bytes())
            .unwrap();
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            due_ids(&store, at(15)).len(),
            2,
            "rebuilt: the counters moved"
        );
        assert_agree(&store);
    }

    /// A timer is held in its alert's entry (no entry of its own); one kept in the `timers`
    /// tree (written before, or copied in) is read, fires and is cancelled the same way, and
    /// setting it anew moves it into the alert.
    #[tokio::test]
    async fn a_timer_lives_in_its_alerts_entry_and_one_from_before_still_works() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_timers(dir.path(), 2).await;
        assert_eq!(store.timers.len(), 0, "no entry of their own");
        assert_eq!(store.timers().unwrap().len(), 2);
        assert_eq!(
            store
                .timer(AlertId(2), TimerKind::Escalate)
                .unwrap()
                .unwrap()
                .due,
            at(20)
        );
        let old = Timer {
            alert_id: AlertId(1),
            kind: TimerKind::Remind,
            due: at(5),
        };
        store
            .timers
            .insert(timer_key(old.alert_id, old.kind), to_json(&old))
            .unwrap();
        drop(store);
        // No clean close: the queue is built from both places.
        let store = SledStore::open(dir.path()).unwrap();
        assert_agree(&store);
        assert_eq!(
            due_ids(&store, at(10)),
            [(1, TimerKind::Remind), (1, TimerKind::Escalate)]
        );
        let a1 = store.alert(AlertId(1)).unwrap().unwrap();
        let mut c = change(a1.clone());
        c.set_timers = vec![(TimerKind::Remind, at(50))];
        store.change_alert(&a1, c).await.unwrap();
        assert_eq!(store.timers.len(), 0, "moved into the alert");
        assert_agree(&store);
        assert_eq!(due_ids(&store, at(10)), [(1, TimerKind::Escalate)]);
        assert_eq!(
            store
                .timer(AlertId(1), TimerKind::Remind)
                .unwrap()
                .unwrap()
                .due,
            at(50)
        );
    }

    /// `store copy` writes the timers alone; the copy's queue is built from them.
    #[tokio::test]
    async fn a_copy_gets_the_queue_of_its_timers() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let source = store_with_timers(&a, 3).await;
        source.flush().await.unwrap();
        drop(source);
        copy(&Location::Sled(a), &Location::Sled(b.clone()))
            .await
            .unwrap();
        let copied = SledStore::open(&b).unwrap();
        assert_eq!(due_ids(&copied, at(20)).len(), 2);
        assert_agree(&copied);
    }
}
