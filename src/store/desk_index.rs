//! The desk's alert heads in memory (`DeskIndex`), and their snapshot: at a clean shutdown the
//! heads go to `desk.index` beside sled's files, stamped with the two counters every write of
//! an alert's head bumps (a new alert takes an id; every change and every creation appends an
//! audit entry). The next start reads that file (about 20 bytes an alert) instead of every
//! stored alert, which also kept every alert page in sled's cache: sled's cache evicts only
//! after 64 accesses per shard (256 shards), so one scan of 100k alerts stayed resident at
//! about 35 MiB whatever `cache_mb` says. A missing, stale or damaged snapshot only means
//! the index is built from the alerts, as before; it never decides anything else.

use super::alerts::{AlertHead, HeadState};
use super::{from_json, u64_key, StoreError, NEXT_ALERT_ID, NEXT_AUDIT_SEQ};
use crate::model::{AlertId, AlertState, Priority};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The snapshot's file name, in the store's folder.
pub(super) const FILE: &str = "desk.index";

/// File format marker and version (a new layout takes a new last byte).
const MAGIC: &[u8; 8] = b"mdesk\0i\x01";

/// The heads of the alerts on the desk, kept in step with sled's alerts tree: loaded or built
/// at open, and updated under `writes` by every write of an alert (creation, change, copy),
/// so that two writers of one alert cannot leave the older state behind.
#[derive(Default)]
pub(crate) struct DeskIndex {
    heads: std::sync::RwLock<Heads>,
    writes: std::sync::Mutex<()>,
    /// Where the heads came from at open (tests check it).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) origin: Origin,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Read from every stored alert.
    #[default]
    Built,
    /// Read from the snapshot of the last clean shutdown.
    Snapshot,
}

/// The fields of a stored alert the index reads (the rest are skipped, not decoded).
#[derive(Deserialize)]
struct HeadRecord {
    id: AlertId,
    priority: Priority,
    created_at: DateTime<Utc>,
    state: AlertState,
}

/// The counters a snapshot is valid for: while both read the same, no alert was created and
/// no alert changed (each such write appends an audit entry in its transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Stamp {
    next_alert_id: u64,
    next_audit_seq: u64,
}

impl Stamp {
    pub(super) fn read(meta: &sled::Tree) -> Result<Stamp, StoreError> {
        let counter = |key: &[u8]| -> Result<u64, StoreError> {
            Ok(meta.get(key)?.map_or(0, |v| u64_key(&v)))
        };
        Ok(Stamp {
            next_alert_id: counter(NEXT_ALERT_ID)?,
            next_audit_seq: counter(NEXT_AUDIT_SEQ)?,
        })
    }
}

impl DeskIndex {
    /// The index for the store in `dir`: from the snapshot when it matches the store,
    /// otherwise from the alerts.
    pub(super) fn open(
        dir: &Path,
        meta: &sled::Tree,
        alerts: &sled::Tree,
    ) -> Result<DeskIndex, StoreError> {
        let path = dir.join(FILE);
        let stamp = Stamp::read(meta)?;
        match load(&path, stamp) {
            Ok(Some(heads)) => {
                tracing::debug!(alerts = heads.len(), "desk index read from its snapshot");
                return Ok(DeskIndex {
                    heads: std::sync::RwLock::new(heads),
                    writes: Default::default(),
                    origin: Origin::Snapshot,
                });
            }
            Ok(None) => {}
            Err(reason) => tracing::warn!(
                path = %path.display(),
                %reason,
                "the desk index snapshot is unreadable; building the index from the stored alerts instead (the next clean shutdown writes a new one)"
            ),
        }
        DeskIndex::build(alerts)
    }

    /// Reads the heads out of the stored alerts (only the fields it needs are decoded; in id
    /// order, so each is appended).
    fn build(alerts: &sled::Tree) -> Result<DeskIndex, StoreError> {
        let mut heads = Heads::default();
        for kv in alerts.iter() {
            let (k, v) = kv?;
            let id = crate::model::AlertId(u64_key(&k));
            let parts = super::alerts::alert_parts(id, &v)?;
            let r: HeadRecord = from_json(&format!("alert {id}"), parts.alert)?;
            if let Some(head) = AlertHead::from_parts(r.id, r.priority, r.created_at, &r.state) {
                heads.put(&head);
            }
        }
        Ok(DeskIndex {
            heads: std::sync::RwLock::new(heads),
            writes: Default::default(),
            origin: Origin::Built,
        })
    }

    /// Writes the snapshot for the next start (a clean shutdown calls this after its last
    /// write). Holds `writes`, so the heads and the stamp belong together; a later write
    /// moves the stamp on and the snapshot is then ignored.
    pub(super) fn save(&self, dir: &Path, meta: &sled::Tree) -> Result<(), StoreError> {
        let _writes = self.lock_writes();
        let stamp = Stamp::read(meta)?;
        let bytes = {
            let heads = self.heads.read().unwrap_or_else(|e| e.into_inner());
            encode(stamp, &heads)
        };
        let path = dir.join(FILE);
        super::replace_file(&path, &bytes).map_err(|source| StoreError::Snapshot { path, source })
    }

    /// Takes the index's write lock: a writer of alerts holds it across its transaction and
    /// its update of the heads (only the guard can update them), so two writers of one alert
    /// cannot leave the older state in the index.
    pub(super) fn lock_writes(&self) -> DeskWrites<'_> {
        DeskWrites {
            index: self,
            _lock: self.writes.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    pub(super) fn heads(&self) -> Vec<AlertHead> {
        let heads = self.heads.read().unwrap_or_else(|e| e.into_inner());
        heads.iter().collect()
    }
}

/// The index's write lock, held (see `DeskIndex::lock_writes`).
pub(super) struct DeskWrites<'a> {
    index: &'a DeskIndex,
    _lock: std::sync::MutexGuard<'a, ()>,
}

impl DeskWrites<'_> {
    /// After a write of `a` committed.
    pub(super) fn put(&self, a: &crate::model::Alert) {
        let mut heads = self.index.heads.write().unwrap_or_else(|e| e.into_inner());
        match AlertHead::of(a) {
            Some(head) => heads.put(&head),
            None => heads.remove(a.id),
        }
    }

    /// After the alerts tree was emptied.
    pub(super) fn clear(&self) {
        self.index
            .heads
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// The heads, compact: sorted by id, 24 bytes each (a `BTreeMap` of `AlertHead`s took about
/// 60), claimers stored once each (a team has few). A new alert has the highest id yet, so
/// creating one appends; an alert leaving the desk shifts the ones after it, a copy of 24
/// bytes per alert still on the desk.
#[derive(Default)]
struct Heads {
    slots: Vec<Slot>,
    /// `Slot::claimer` indexes this.
    claimers: Vec<Box<str>>,
    claimer_ids: rustc_hash::FxHashMap<Box<str>, u32>,
}

#[derive(Clone, Copy)]
struct Slot {
    id: u64,
    /// `created_at` in nanoseconds since 1970: one field instead of seconds and nanoseconds
    /// makes a slot 24 bytes instead of 32. It holds the years 1677 to 2262 (alerts are
    /// stamped with the clock's time); a time outside is held as the nearest end.
    at_nanos: i64,
    claimer: u32,
    priority: Priority,
    state: SlotState,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 24);

#[derive(Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Open,
    Claimed,
    Snoozed,
    Held,
}

impl Heads {
    fn with_capacity(n: usize) -> Heads {
        Heads {
            slots: Vec::with_capacity(n),
            ..Heads::default()
        }
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn last_id(&self) -> Option<AlertId> {
        self.slots.last().map(|s| AlertId(s.id))
    }

    /// Adds or replaces the head of `head.id`.
    fn put(&mut self, head: &AlertHead) {
        let (state, claimer) = match &head.state {
            HeadState::Open => (SlotState::Open, 0),
            HeadState::Claimed { by } => (SlotState::Claimed, self.claimer_id(by)),
            HeadState::Snoozed => (SlotState::Snoozed, 0),
            HeadState::Held => (SlotState::Held, 0),
        };
        let slot = Slot {
            id: head.id.0,
            at_nanos: head.created_at.timestamp_nanos_opt().unwrap_or(
                if head.created_at.timestamp() < 0 {
                    i64::MIN
                } else {
                    i64::MAX
                },
            ),
            claimer,
            priority: head.priority,
            state,
        };
        match self.slots.last() {
            Some(last) if last.id >= slot.id => match self.find(head.id) {
                Ok(i) => self.slots[i] = slot,
                Err(i) => self.slots.insert(i, slot),
            },
            _ => self.slots.push(slot),
        }
    }

    fn remove(&mut self, id: AlertId) {
        if let Ok(i) = self.find(id) {
            self.slots.remove(i);
        }
    }

    fn clear(&mut self) {
        *self = Heads::default();
    }

    fn find(&self, id: AlertId) -> Result<usize, usize> {
        self.slots.binary_search_by_key(&id.0, |s| s.id)
    }

    fn claimer_id(&mut self, by: &str) -> u32 {
        if let Some(&id) = self.claimer_ids.get(by) {
            return id;
        }
        let id = self.claimers.len() as u32;
        self.claimers.push(by.into());
        self.claimer_ids.insert(by.into(), id);
        id
    }

    fn iter(&self) -> impl Iterator<Item = AlertHead> + '_ {
        self.slots.iter().map(|s| AlertHead {
            id: AlertId(s.id),
            priority: s.priority,
            created_at: DateTime::from_timestamp_nanos(s.at_nanos),
            state: match s.state {
                SlotState::Open => HeadState::Open,
                SlotState::Claimed => HeadState::Claimed {
                    by: self.claimers[s.claimer as usize].clone(),
                },
                SlotState::Snoozed => HeadState::Snoozed,
                SlotState::Held => HeadState::Held,
            },
        })
    }
}

/// Removes the snapshot (a copy into the store replaces every alert).
pub(super) fn remove(dir: &Path) -> Result<(), StoreError> {
    let path: PathBuf = dir.join(FILE);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(StoreError::Snapshot { path, source: e })
        }
        _ => Ok(()),
    }
}

/// Layout, little-endian: `MAGIC`, the stamp (two u64), the count (u64), then per head its
/// id (u64), created_at (i64 seconds, u32 nanoseconds), priority (u8), state (u8) and for a
/// claim the claimer (u32 length, UTF-8); last a CRC-32 of everything before it.
fn encode(stamp: Stamp, heads: &Heads) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + heads.len() * 24);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&stamp.next_alert_id.to_le_bytes());
    out.extend_from_slice(&stamp.next_audit_seq.to_le_bytes());
    out.extend_from_slice(&(heads.len() as u64).to_le_bytes());
    for h in heads.iter() {
        out.extend_from_slice(&h.id.0.to_le_bytes());
        out.extend_from_slice(&h.created_at.timestamp().to_le_bytes());
        out.extend_from_slice(&h.created_at.timestamp_subsec_nanos().to_le_bytes());
        out.push(match h.priority {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
            Priority::Critical => 3,
        });
        match &h.state {
            HeadState::Open => out.push(0),
            HeadState::Claimed { by } => {
                out.push(1);
                out.extend_from_slice(&(by.len() as u32).to_le_bytes());
                out.extend_from_slice(by.as_bytes());
            }
            HeadState::Snoozed => out.push(2),
            HeadState::Held => out.push(3),
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The snapshot's heads when it exists and was written for the store as it is (`stamp`);
/// `Ok(None)` when absent or stale, `Err` (why) when unreadable.
fn load(path: &Path, stamp: Stamp) -> Result<Option<Heads>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if bytes.len() < MAGIC.len() + 28 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a desk index snapshot of this version".into());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err("checksum mismatch (the file is damaged)".into());
    }
    let mut r = Reader {
        bytes: &body[MAGIC.len()..],
    };
    let written = Stamp {
        next_alert_id: r.u64()?,
        next_audit_seq: r.u64()?,
    };
    if written != stamp {
        return Ok(None);
    }
    let count = r.u64()?;
    let mut heads = Heads::with_capacity(count.min(body.len() as u64 / 22) as usize);
    for _ in 0..count {
        let id = AlertId(r.u64()?);
        let secs = r.u64()? as i64;
        let nanos = r.u32()?;
        let created_at = DateTime::from_timestamp(secs, nanos).ok_or("a time out of range")?;
        let priority = match r.u8()? {
            0 => Priority::Low,
            1 => Priority::Normal,
            2 => Priority::High,
            3 => Priority::Critical,
            p => return Err(format!("unknown priority {p}")),
        };
        let state = match r.u8()? {
            0 => HeadState::Open,
            1 => {
                let len = r.u32()? as usize;
                let by = std::str::from_utf8(r.take(len)?).map_err(|e| e.to_string())?;
                HeadState::Claimed { by: by.into() }
            }
            2 => HeadState::Snoozed,
            3 => HeadState::Held,
            s => return Err(format!("unknown state {s}")),
        };
        if heads.last_id().is_some_and(|last| last >= id) {
            return Err("heads out of order".into());
        }
        heads.put(&AlertHead {
            id,
            priority,
            created_at,
            state,
        });
    }
    if !r.bytes.is_empty() {
        return Err("bytes after the last head".into());
    }
    Ok(Some(heads))
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("the file ends early".into());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{candidate, change, heads_from_alerts as from_alerts};
    use super::super::SledStore;
    use super::*;
    use crate::model::SourceState;

    async fn set_state(store: &SledStore, id: u64, state: AlertState) {
        let expected = store.alert(AlertId(id)).unwrap().unwrap();
        let mut alert = expected.clone();
        alert.state = state;
        store.change_alert(&expected, change(alert)).await.unwrap();
    }

    async fn store_with_alerts(dir: &Path) -> SledStore {
        let store = SledStore::open(dir).unwrap();
        let mut batch: Vec<_> = (0..6).map(|i| candidate(&format!("m{i}"), true)).collect();
        batch[4].alert.as_mut().unwrap().held = true;
        batch[5].alert.as_mut().unwrap().priority = Priority::Critical;
        store
            .accept("feed", &SourceState::default(), &batch, Utc::now())
            .await
            .unwrap();
        let now = Utc::now();
        let claim = AlertState::Claimed {
            by: "slack:Ü1".into(),
            at: now,
        };
        set_state(&store, 1, claim).await;
        let resolve = AlertState::Resolved {
            by: "slack:U1".into(),
            at: now,
            note: None,
        };
        set_state(&store, 2, resolve).await;
        let snooze = AlertState::Snoozed {
            by: "slack:U1".into(),
            until: now + chrono::TimeDelta::hours(2),
        };
        set_state(&store, 3, snooze).await;
        store
    }

    #[tokio::test]
    async fn a_clean_close_lets_the_next_start_read_the_snapshot_instead_of_every_alert() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_alerts(dir.path()).await;
        let heads = store.desk_heads();
        assert_eq!(heads.len(), 5, "open, claimed, snoozed, held, critical");
        store.close().await.unwrap();
        drop(store);
        assert!(dir.path().join(FILE).is_file());

        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.desk.origin, Origin::Snapshot);
        assert_eq!(store.desk_heads(), heads);
        assert_eq!(store.desk_heads(), from_alerts(&store));
    }

    /// A write after the snapshot (a crash before the next clean shutdown, or an older
    /// mentiondesk that knows no snapshot) makes it stale: the next start reads the alerts.
    #[tokio::test]
    async fn any_alert_write_after_the_snapshot_makes_the_next_start_read_the_alerts() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_alerts(dir.path()).await;
        store.close().await.unwrap();
        drop(store);

        // A change of state, then no clean shutdown.
        let store = SledStore::open(dir.path()).unwrap();
        let claim = AlertState::Claimed {
            by: "slack:U9".into(),
            at: Utc::now(),
        };
        set_state(&store, 4, claim).await;
        let heads = store.desk_heads();
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.desk.origin, Origin::Built);
        assert_eq!(store.desk_heads(), heads);
        assert_eq!(store.desk_heads(), from_alerts(&store));
        store.close().await.unwrap();
        drop(store);

        // A new alert, then no clean shutdown.
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.desk.origin, Origin::Snapshot);
        let batch = vec![candidate("m9", true)];
        store
            .accept("feed", &SourceState::default(), &batch, Utc::now())
            .await
            .unwrap();
        let heads = store.desk_heads();
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.desk.origin, Origin::Built);
        assert_eq!(store.desk_heads(), heads);
        assert_eq!(heads.len(), 6);
    }

    #[tokio::test]
    async fn a_damaged_snapshot_is_ignored_and_the_alerts_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_alerts(dir.path()).await;
        let heads = store.desk_heads();
        store.close().await.unwrap();
        drop(store);
        let path = dir.path().join(FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.desk.origin, Origin::Built);
        assert_eq!(store.desk_heads(), heads);
        drop(store);

        std::fs::write(&path, b"mdesk").unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.desk.origin, Origin::Built);
        assert_eq!(store.desk_heads(), heads);
    }

    /// The compact heads behave as a map from id to head under any order of writes.
    #[test]
    fn the_compact_heads_match_a_plain_map_under_any_writes() {
        let mut heads = Heads::default();
        let mut model = std::collections::BTreeMap::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let t0 = Utc::now();
        for step in 0..5000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = AlertId(if step.is_multiple_of(3) {
                1000 + step
            } else {
                x % 400
            });
            if x.is_multiple_of(5) {
                heads.remove(id);
                model.remove(&id);
                continue;
            }
            let state = match x % 4 {
                0 => HeadState::Open,
                1 => HeadState::Claimed {
                    by: format!("slack:U{}", x % 7).into(),
                },
                2 => HeadState::Snoozed,
                _ => HeadState::Held,
            };
            let head = AlertHead {
                id,
                priority: [Priority::Low, Priority::Critical][(x % 2) as usize],
                created_at: t0 + chrono::TimeDelta::nanoseconds((x % 1_000_000_007) as i64),
                state,
            };
            heads.put(&head);
            model.insert(id, head);
        }
        let want: Vec<AlertHead> = model.into_values().collect();
        assert_eq!(heads.iter().collect::<Vec<_>>(), want);
        assert_eq!(heads.len(), want.len());
        assert!(heads.claimers.len() <= 7, "each claimer kept once");
    }

    /// A copy into the store replaces every alert, and may leave the counters where the old
    /// snapshot had them: the snapshot goes with the old alerts.
    #[tokio::test]
    async fn a_copy_into_the_store_removes_its_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_alerts(dir.path()).await;
        store.close().await.unwrap();
        assert!(dir.path().join(FILE).is_file());
        store.import_start("sled:elsewhere").await.unwrap();
        assert!(!dir.path().join(FILE).exists());
        assert!(store.desk_heads().is_empty());
    }
}
