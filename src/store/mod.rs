//! The only code that imports sled: mentions, alerts, dedup keys, source state, the outbox and
//! the chat message references, one file per concern behind the one `SledStore` type. It knows
//! nothing about Slack or Discord and decides nothing about mentions: it writes what intake,
//! the desk and the relay hand it, atomically, and flushes before it answers when a crash
//! must not lose what was just written.

use serde::{de::DeserializeOwned, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod accept;
mod alert_record;
mod alerts;
pub(crate) mod config;
pub mod copy;
mod desk_index;
mod facade;
mod flush;
mod journal;
mod labels;
mod mention_record;
mod outbox;
#[doc(hidden)]
pub mod pg;
mod requests;
mod rule_log;
mod seen_set;
mod sources;
#[cfg(test)]
mod test_util;
mod timer_queue;

pub use accept::{
    Accepted, Candidate, NewAlert, Repeat, StoredMention, ThreadKey, REPEAT_WINDOW_DAYS,
};
pub(crate) use accept::{MentionPrune, RepeatOf, ThreadMark, ThreadPrune};
pub(crate) use alerts::{AlertChange, ChangeOutcome};
pub use alerts::{AlertHead, HeadState, Timer};
pub use config::StoreConfig;
pub use facade::Store;
#[cfg(test)]
pub(crate) use flush::FlushStats;
use flush::{FlushError, Flusher};
pub use labels::LabelRecord;
pub(crate) use labels::LabelWrite;
pub use outbox::{OutboxAction, OutboxEntry, OutboxKey};
pub(crate) use outbox::{OutboxSummary, Parked};
pub use pg::{Lease, SourceLease};
pub use rule_log::RuleHit;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {path} is held by another process (is `mentiondesk run` already running? stop it, or point [store].path elsewhere)")]
    Locked { path: PathBuf },
    #[error("no store at {path}, but there is one at {previous}, where mentiondesk kept it before relative paths became relative to the config file's folder (or before $MENTIONDESK_STORE overrode the file): move it to {path}, or set [store] path = \"{previous_abs}\"; an empty store would alert on every mention again", previous_abs = previous_abs.display(), path = path.display(), previous = previous.display())]
    Moved {
        path: PathBuf,
        previous: PathBuf,
        previous_abs: PathBuf,
    },
    #[error("the store at {path} is an unfinished copy of {from} (`mentiondesk store copy` was interrupted): run the same `store copy` again to finish it before starting mentiondesk on it")]
    UnfinishedCopy { path: PathBuf, from: String },
    #[error("could not open the store at {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("store error: {0}")]
    Sled(#[from] sled::Error),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error("store record {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("the store's flusher stopped unexpectedly; restart mentiondesk")]
    FlusherStopped,
    #[error("could not write the desk index snapshot {path}: {source} (the next start reads every alert instead, which is slower and uses more memory)")]
    Snapshot {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Nothing was written: see `SledStore::accept`.
    #[error("intake decided from a read that no longer holds ({reason}); read the store again and decide anew")]
    Stale { reason: String },
    /// `url` is redacted (no password); so is `reason`.
    #[error("[store] url {url} cannot be used: {reason}")]
    PgConfig { url: String, reason: String },
    /// `url` is redacted (no password); so is `reason`.
    #[error("cannot connect to PostgreSQL at {url}: {reason}; check [store] url, that the server runs and is reachable from here, and its user and password")]
    PgConnect { url: String, reason: String },
    #[error("PostgreSQL failed {what}: {reason}")]
    Postgres { what: &'static str, reason: String },
    /// Nothing was written: the writer no longer holds the source's lease (PostgreSQL; see
    /// `Store::accept_leased`).
    #[error("this replica no longer holds the lease on source {name:?} (another replica took it over); nothing was written, and the replica holding it polls the source from its stored state")]
    LeaseLost { name: String },
    #[error("the database's schema is at version {database}, newer than this mentiondesk knows (version {binary}): a newer mentiondesk migrated it; upgrade mentiondesk on this machine to the version the other replicas run (never point an older one at it)")]
    SchemaTooNew { database: i32, binary: i32 },
    /// Another replica took over an outbox entry this one had claimed (its claim lapsed): that
    /// replica delivers it now, and this one must leave the entry alone.
    #[error("outbox entry {seq} is now claimed by replica {owner} (this replica's claim on it lapsed); that replica delivers it")]
    ClaimLost { seq: u64, owner: String },
}

impl From<FlushError> for StoreError {
    fn from(e: FlushError) -> StoreError {
        match e {
            FlushError::Sled(e) => StoreError::Sled(e),
            FlushError::Stopped => StoreError::FlusherStopped,
        }
    }
}

/// The sled backend (see `facade.rs` for the `Store` everyone else uses). Clones share one set
/// of sled handles and one flusher.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Trees>,
}

/// The sled handles behind every clone of a `SledStore`, in one `Arc` so that the last clone
/// drops them all on one thread after the flusher has stopped: sled flushes whenever a tree
/// handle's last copy drops, and two flushes must never run at once (see `flush.rs`).
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
    /// Dedup keys of stores from before the mention journal (read, no longer written).
    seen: sled::Tree,
    /// Whether `seen` holds anything: only then does a dedup check read it.
    legacy_seen: bool,
    /// Every mention's dedup keys, and the bodies of mentions that matched no rule (see
    /// `journal.rs`).
    journal: journal::Journal,
    /// The alerts on the desk, in memory (see `desk_index.rs`).
    desk: desk_index::DeskIndex,
    /// The store's folder (sled's files, the journal, the desk index snapshot).
    dir: PathBuf,
    sources: sled::Tree,
    outbox: sled::Tree,
    refs: sled::Tree,
    audit: sled::Tree,
    timers: sled::Tree,
    /// The timers in due order (`timer_queue.rs`).
    timer_queue: sled::Tree,
    requests: sled::Tree,
    mutes: sled::Tree,
    threads: sled::Tree,
    /// `rule \x1f unix secs (be) \x1f seq (be)` → `RuleHit`: each rule's matched mentions in time
    /// order, repeats included, so volume per rule and hour is a range scan.
    rule_log: sled::Tree,
    /// `rule \x1f alert id (be)` → `LabelRecord`: the desk's relevance label per alert and rule.
    labels: sled::Tree,
    /// The relevance models' counts (see `labels.rs`).
    relevance: sled::Tree,
    /// Bumped after every label write (see `SledStore::label_generation`).
    label_generation: std::sync::atomic::AtomicU64,
    /// How long the bodies of mentions without an alert are kept (`[store] keep_mentions`).
    keep_mentions: chrono::Duration,
    /// Outbox entries waiting, and how many of them are parked: counted at open and kept up
    /// to date by every write that adds or removes one, so `/healthz` and `/metrics` answer
    /// without reading the whole outbox (see `SledStore::outbox_summary`).
    /// Signed: a delivery may be uncounted before its queueing is counted (see `outbox_added`).
    outbox_pending: std::sync::atomic::AtomicI64,
    outbox_parked: std::sync::atomic::AtomicI64,
    /// `accept` transactions run, and the most candidates one of them held (tests check that
    /// large polls are written in bounded batches).
    #[cfg(test)]
    transactions: std::sync::atomic::AtomicU64,
    #[cfg(test)]
    largest_batch: std::sync::atomic::AtomicUsize,
    /// Rung after every write that adds or releases outbox work, so the relay wakes without
    /// each writer having to hold a handle to it.
    outbox_signal: Arc<tokio::sync::Notify>,
}

impl std::ops::Deref for SledStore {
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

impl SledStore {
    /// Opens the store at `path` with the default cache size and retention.
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        SledStore::open_with(&StoreConfig::at(path))
    }

    /// Opens the store as `[store]` configures it.
    pub fn open_with(config: &StoreConfig) -> Result<SledStore, StoreError> {
        // Reopening in the same process right after a drop can briefly find the lock still
        // held by a buffer write finishing on sled's IO pool; a real second process holds
        // it for good.
        let mut tries = 0;
        loop {
            match SledStore::open_once(config) {
                Err(StoreError::Locked { .. }) if tries < 20 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    fn open_once(config: &StoreConfig) -> Result<SledStore, StoreError> {
        let path = config.path.as_path();
        if !path.exists() {
            // sled's `conf` file marks a store (an empty folder is not one).
            if let Some(previous) = config
                .previous
                .as_deref()
                .filter(|p| p.join("conf").is_file())
            {
                return Err(StoreError::Moved {
                    path: path.to_path_buf(),
                    previous: previous.to_path_buf(),
                    previous_abs: std::path::absolute(previous)
                        .unwrap_or_else(|_| previous.to_path_buf()),
                });
            }
            tracing::info!(path = %path.display(), "creating a new store");
        }
        // sled's own periodic flusher stays on (every 500 ms, its default, made explicit): it
        // only seals the current log buffer and hands its write to sled's IO pool, never
        // waiting for durability on a pool thread, so it cannot starve the pool the way
        // concurrent `flush_async` calls did (#1308); and it is what runs sled's segment
        // garbage collection. It covers the writes nobody waits for (`record_failure`,
        // `defer`, timers); every write that must survive a crash waits on our flusher.
        //
        // The page cache is sized by `[store] cache_mb`: sled's default (1 GiB) let the
        // daemon's memory grow with the store until it reached that.
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(config.cache_mb.saturating_mul(1024 * 1024))
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
        let outbox = db.open_tree("outbox")?;
        let (pending, parked) = outbox::count(&outbox)?;
        let meta = db.open_tree("meta")?;
        let seen = db.open_tree("seen")?;
        let journal = journal::Journal::open(path, meta.get(journal::JOURNAL_TIP)?.as_deref())?;
        let alerts = db.open_tree("alerts")?;
        let desk = desk_index::DeskIndex::open(path, &meta, &alerts)?;
        let timers = db.open_tree("timers")?;
        let timer_queue = db.open_tree("timer_queue")?;
        timer_queue::open(&meta, &alerts, &timers, &timer_queue)?;
        let trees = Trees {
            meta,
            mentions: db.open_tree("mentions")?,
            mention_log: db.open_tree("mention_log")?,
            alerts,
            desk,
            dir: path.to_path_buf(),
            legacy_seen: !seen.is_empty(),
            seen,
            journal,
            sources: db.open_tree("source_state")?,
            outbox,
            outbox_pending: pending.into(),
            outbox_parked: parked.into(),
            refs: db.open_tree("message_refs")?,
            audit: db.open_tree("audit")?,
            timers,
            timer_queue,
            requests: db.open_tree("requests")?,
            mutes: db.open_tree("mutes")?,
            threads: db.open_tree("threads")?,
            rule_log: db.open_tree("rule_log")?,
            labels: db.open_tree("labels")?,
            relevance: db.open_tree("relevance")?,
            label_generation: Default::default(),
            keep_mentions: chrono::Duration::from_std(config.keep_mentions)
                .unwrap_or(chrono::Duration::MAX),
            #[cfg(test)]
            transactions: Default::default(),
            #[cfg(test)]
            largest_batch: Default::default(),
            flusher: Flusher::start(db.clone()),
            outbox_signal: Arc::new(tokio::sync::Notify::new()),
            _db: db,
        };
        Ok(SledStore {
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
    pub(crate) fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.outbox_signal.clone()
    }

    /// How the flusher has worked so far (flushes run versus waits served).
    #[cfg(test)]
    pub(crate) fn flush_stats(&self) -> FlushStats {
        self.flusher.stats()
    }

    /// How many `accept` transactions ran, and the most candidates one held.
    #[cfg(test)]
    pub(crate) fn batch_stats(&self) -> (u64, usize) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.transactions.load(Relaxed),
            self.largest_batch.load(Relaxed),
        )
    }

    /// Waits until everything written so far is on disk (shutdown, CLI commands).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.durable().await
    }

    /// The clean shutdown's last step, after every other write: flushes, then writes the desk
    /// index snapshot for a quicker, leaner next start (see `desk_index.rs`). A snapshot that
    /// cannot be written is reported and costs only that.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.durable().await?;
        timer_queue::save(&self.meta)?;
        self.durable().await?;
        let store = self.clone();
        if let Err(e) = off_runtime(move || store.desk.save(&store.dir, &store.meta)).await {
            tracing::warn!(error = %e, "desk index snapshot not written");
        }
        Ok(())
    }

    /// A small value in the meta tree (digest slots, spike cooldowns), as JSON.
    pub(crate) fn meta_get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
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
}

/// Runs `f` on tokio's blocking pool: store transactions and other work that takes more than
/// a moment stay off the runtime's workers, which answer `/healthz` and the desk's callbacks.
/// A panic in `f` resumes here.
pub(crate) async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only at runtime shutdown, when nothing waits for the answer any more.
        Err(e) => panic!("blocking store work was cancelled: {e}"),
    }
}

/// Replaces the file at `path` by one holding `bytes`: written to `<path>.tmp`, fsynced,
/// renamed into place and the folder fsynced, so after a crash `path` holds the old contents
/// or the new ones, whole. A `.tmp` left by a crash is overwritten by the next replacement.
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

fn next_counter(meta: &TransactionalTree, name: &[u8]) -> TxResult<u64> {
    let next = meta.get(name)?.map(|v| u64_key(&v)).unwrap_or(1);
    meta.insert(name, &(next + 1).to_be_bytes())?;
    Ok(next)
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
    use super::test_util::candidate;
    use super::*;
    use crate::model::SourceState;
    use chrono::Utc;

    /// An upgrade that moves where a relative store path points must not start an empty
    /// store next to the existing one (everything would alert again): it says where the old
    /// one is and how to keep it; with no old store, a new one is created.
    #[test]
    fn a_store_left_at_its_previous_place_is_named_instead_of_starting_empty() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.sled");
        drop(SledStore::open(&old).unwrap());
        let mut config = StoreConfig::at(dir.path().join("config/data/mentiondesk.sled"));
        config.previous = Some(old.clone());
        let e = SledStore::open_with(&config)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains(&old.display().to_string()), "{e}");
        assert!(e.contains("config/data/mentiondesk.sled"), "{e}");
        assert!(e.contains("move it to"), "{e}");
        assert!(!config.path.exists(), "nothing was created");
        // Nothing at the previous place: a new store, as for a first start.
        config.previous = Some(dir.path().join("nothing-here"));
        drop(SledStore::open_with(&config).unwrap());
        // Once the store is where the config points, the old one no longer matters.
        config.previous = Some(old);
        SledStore::open_with(&config).unwrap();
    }

    /// sled 0.34 wedged when many `flush_async` calls ran at once (#1308): hundreds of
    /// concurrent writers that each wait for durability must all return, through flushes
    /// that never overlap, and what they wrote must be there after an immediate reopen.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_durable_writes_share_one_flusher_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
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

        let store = SledStore::open(dir.path()).expect("reopens right after the last handle drops");
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
