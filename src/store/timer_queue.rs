//! The timers in due order (`timer_queue` tree): one empty entry per timer, keyed by its due
//! second, alert id and kind, beside the `timers` tree (keyed by alert id and kind, holding
//! the timer). The desk asks for due timers every few seconds; with the queue that reads
//! only the timers due, where a walk of `timers` read every pending one: after a burst of
//! 100k alerts, 100k timers parsed every five seconds for the 15 minutes until they
//! escalate, and every page of them kept in sled's cache (see `desk_index.rs`).
//!
//! Every write of a timer goes through `set`, `cancel` or `remove` here, inside the
//! transaction that changes `timers`, so both trees always agree. A binary from before the
//! queue writes `timers` only: a clean shutdown records the counters it saw
//! (`QUEUE_STAMP`), and a start that finds them moved on (any alert created or changed
//! since, which is how timers are written) or missing builds the queue afresh from `timers`.

use super::alerts::{timer_key, Timer};
use super::desk_index::Stamp;
use super::{from_json, to_json, StoreError, TxResult};
use crate::model::{AlertId, TimerKind};
use chrono::{DateTime, Utc};
use sled::transaction::TransactionalTree;

/// Meta key: the counters at the last clean shutdown, while the queue was complete. sled's
/// own layout, not copied by `store copy`.
pub(super) const QUEUE_STAMP: &str = "timer_queue_stamp";

/// The two trees a timer lives in, inside one transaction.
pub(super) struct TimerTrees<'a> {
    pub(super) timers: &'a TransactionalTree,
    pub(super) queue: &'a TransactionalTree,
}

impl TimerTrees<'_> {
    /// Sets (or moves) the alert's timer of `kind`.
    pub(super) fn set(&self, id: AlertId, kind: TimerKind, due: DateTime<Utc>) -> TxResult<()> {
        self.cancel(id, kind)?;
        let t = Timer {
            alert_id: id,
            kind,
            due,
        };
        self.timers.insert(&timer_key(id, kind), to_json(&t))?;
        self.queue
            .insert(queue_key(due, id, kind).as_slice(), &[])?;
        Ok(())
    }

    /// Removes the alert's timer of `kind`, if one is set.
    pub(super) fn cancel(&self, id: AlertId, kind: TimerKind) -> TxResult<()> {
        if let Some(old) = self.timers.remove(&timer_key(id, kind))? {
            if let Ok(t) = from_json::<Timer>("timer", &old) {
                self.queue.remove(queue_key(t.due, id, kind).as_slice())?;
            }
        }
        Ok(())
    }
}

/// Key: the due second (offset so times before 1970 sort first), the alert id, the kind.
fn queue_key(due: DateTime<Utc>, id: AlertId, kind: TimerKind) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..8].copy_from_slice(&(due.timestamp() as u64 ^ (1 << 63)).to_be_bytes());
    k[8..16].copy_from_slice(&id.0.to_be_bytes());
    k[16] = kind.code();
    k
}

/// Timers due at or before `now`, soonest first: the queue up to `now`'s second, each
/// confirmed in `timers` (a queue entry whose timer is gone or moved is skipped).
pub(super) fn due(
    timers: &sled::Tree,
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
        let id = AlertId(super::u64_key(&k[8..16]));
        let Some(v) = timers.get(timer_key(id, kind))? else {
            continue;
        };
        let t: Timer = from_json("timer", &v)?;
        if t.due <= now && queue_key(t.due, id, kind)[..] == k[..] {
            out.push(t);
        }
    }
    out.sort_by_key(|t| t.due);
    Ok(out)
}

/// At open: keeps the queue when the last clean shutdown left it complete and nothing wrote
/// alerts since; otherwise builds it from `timers` (one read of every timer).
pub(super) fn open(
    meta: &sled::Tree,
    timers: &sled::Tree,
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
    rebuild(timers, queue)
}

/// Builds the queue from `timers` (at open, and after `store copy` filled `timers`).
pub(super) fn rebuild(timers: &sled::Tree, queue: &sled::Tree) -> Result<(), StoreError> {
    queue.clear()?;
    let mut n = 0usize;
    for kv in timers.iter() {
        let (_, v) = kv?;
        let t: Timer = from_json("timer", &v)?;
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
