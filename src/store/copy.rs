//! `mentiondesk store copy`: moves everything a store holds to another store, of either
//! backend, so a daemon started on the copy behaves as on the original (nothing seen alerts
//! again, alert ids continue, open alerts keep their messages and timers).
//!
//! One seam for every direction: a backend exports its contents as a stream of typed
//! [`Record`]s and imports such a stream; this file drives the two and holds the sled
//! backend's half (the PostgreSQL half is `pg/copy.rs`). It never writes to the source.
//!
//! Into a target that is not empty the copy is refused, unless the target is an earlier copy
//! of the same source that nothing has changed since (an interrupted copy, or running the
//! command again): that copy is replaced, so running it twice gives the same store and never
//! duplicates anything. The mark that says so is the meta value [`MARKER`] in the target.

use super::accept::ThreadMark;
use super::alerts::{alert_parts, decode_alert};
use super::config::{PgConfig, PgUrl, StoreConfig};
use super::{
    alerts::timer_key, from_json, labels, mention_record, rule_log::rule_log_key, to_json, u64_key,
    LabelRecord, OutboxEntry, RuleHit, SledStore, Store, StoreError, StoredMention, Timer,
    NEXT_ALERT_ID, NEXT_AUDIT_SEQ, NEXT_MENTION_SEQ, NEXT_OUTBOX_SEQ,
};
use crate::model::{Alert, AlertId, AuditEntry, MessageRef};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tokio::sync::mpsc;

/// The meta key of the mark a copy leaves in its target.
pub(crate) const MARKER: &str = "store_copy";

/// How many records travel together from the exporter to the importer.
const BATCH: usize = 1000;

/// One thing a store holds, in the model's types (each backend's encoding stays inside it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record {
    /// A counter's next value (alert ids are the ones people see: `#42`).
    Counter {
        counter: Counter,
        next: u64,
    },
    /// A small JSON value by name: digest slots, spike cooldowns, generated-mention marks.
    Meta {
        key: String,
        value: serde_json::Value,
    },
    /// A source's resume point (ETag, cursor) as JSON.
    SourceState {
        name: String,
        state: serde_json::Value,
    },
    /// A dedup key: a mention under it counts as already seen.
    Seen {
        key: String,
        at: DateTime<Utc>,
    },
    Mention {
        stored: StoredMention,
        alerted: bool,
    },
    /// A mention's place in the arrival order (`/desk preview`).
    MentionLog {
        seq: u64,
        key: String,
        at: DateTime<Utc>,
    },
    Alert(Alert),
    Audit {
        seq: u64,
        alert: AlertId,
        entry: AuditEntry,
    },
    Timer(Timer),
    Outbox {
        seq: u64,
        entry: OutboxEntry,
    },
    MessageRef {
        alert: AlertId,
        target: String,
        data: MessageRef,
    },
    /// A platform request id already applied.
    Request {
        key: String,
        at: DateTime<Utc>,
    },
    Mute {
        key: String,
        by: String,
        at: DateTime<Utc>,
    },
    Thread {
        key: String,
        mark: ThreadMark,
    },
    RuleHit {
        seq: u64,
        hit: RuleHit,
    },
    Label {
        rule: String,
        alert: AlertId,
        record: LabelRecord,
    },
    /// A relevance model's totals (JSON `ModelHeader`; `""` is the global model).
    RelevanceHeader {
        model: String,
        header: serde_json::Value,
    },
    RelevanceFeature {
        model: String,
        feature: u32,
        counts: [u32; 2],
    },
}

/// The counters a store keeps beside its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counter {
    AlertId,
    Outbox,
    MentionLog,
    Audit,
}

impl Record {
    /// The kind's name in the summary.
    fn kind(&self) -> &'static str {
        match self {
            Record::Counter { .. } => "counters",
            Record::Meta { .. } => "meta values",
            Record::SourceState { .. } => "source states",
            Record::Seen { .. } => "seen keys",
            Record::Mention { .. } => "mentions",
            Record::MentionLog { .. } => "mention log entries",
            Record::Alert(_) => "alerts",
            Record::Audit { .. } => "audit entries",
            Record::Timer(_) => "timers",
            Record::Outbox { .. } => "outbox entries",
            Record::MessageRef { .. } => "message refs",
            Record::Request { .. } => "request ids",
            Record::Mute { .. } => "mutes",
            Record::Thread { .. } => "thread keys",
            Record::RuleHit { .. } => "rule hits",
            Record::Label { .. } => "labels",
            Record::RelevanceHeader { .. } => "relevance models",
            Record::RelevanceFeature { .. } => "relevance features",
        }
    }
}

/// The order kinds are listed in the summary.
const KINDS: &[&str] = &[
    "alerts",
    "audit entries",
    "timers",
    "outbox entries",
    "message refs",
    "seen keys",
    "mentions",
    "mention log entries",
    "thread keys",
    "request ids",
    "mutes",
    "rule hits",
    "labels",
    "relevance models",
    "relevance features",
    "source states",
    "meta values",
    "counters",
];

/// The next value of each counter once a stream is written: the larger of what the source
/// said and one past the highest number its rows use (so a source whose counter row was
/// lost still never hands out a number twice).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counters {
    next: [u64; 4],
}

impl Counters {
    fn slot(c: Counter) -> usize {
        c as usize
    }

    fn raise(&mut self, c: Counter, next: u64) {
        let s = &mut self.next[Counters::slot(c)];
        *s = (*s).max(next);
    }

    pub(crate) fn observe(&mut self, r: &Record) {
        match r {
            Record::Counter { counter, next } => self.raise(*counter, *next),
            Record::Alert(a) => self.raise(Counter::AlertId, a.id.0 + 1),
            Record::Outbox { seq, .. } => self.raise(Counter::Outbox, seq + 1),
            Record::Audit { seq, .. } => self.raise(Counter::Audit, seq + 1),
            Record::MentionLog { seq, .. } | Record::RuleHit { seq, .. } => {
                self.raise(Counter::MentionLog, seq + 1)
            }
            _ => {}
        }
    }

    /// The next value (at least 1).
    pub(crate) fn next(&self, c: Counter) -> u64 {
        self.next[Counters::slot(c)].max(1)
    }
}

/// What a copy leaves in its target's meta: where it came from, whether it finished, and
/// what the target looked like when it did (so a later copy can tell whether anything has
/// written to the target since).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CopyMark {
    pub(crate) from: String,
    pub(crate) complete: bool,
    #[serde(default)]
    pub(crate) fingerprint: Option<Fingerprint>,
}

/// Figures that change whenever a daemon works on a store: the next alert id and the number
/// of seen keys (every new mention adds one; neither is ever pruned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Fingerprint {
    pub(crate) next_alert_id: u64,
    pub(crate) seen: u64,
}

/// A store named on the command line: `sled:PATH`, `postgres://…` (or `postgresql://…`), or
/// `postgres` alone for the URL in `$DATABASE_URL`.
#[derive(Debug, Clone)]
pub enum Location {
    Sled(PathBuf),
    Postgres(PgUrl),
}

impl Location {
    /// Reads `spec`; `database_url` is `$DATABASE_URL` (for `postgres` alone).
    pub fn parse(spec: &str, database_url: Option<String>) -> Result<Location, CopyError> {
        if let Some(path) = spec.strip_prefix("sled:") {
            if path.is_empty() {
                return Err(CopyError::Spec(
                    "`sled:` needs the store's folder, e.g. sled:data/mentiondesk.sled".into(),
                ));
            }
            return Ok(Location::Sled(PathBuf::from(path)));
        }
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            return Ok(Location::Postgres(PgUrl::new(spec)));
        }
        if spec == "postgres" || spec == "postgresql" {
            return match database_url.filter(|u| !u.trim().is_empty()) {
                Some(url) => Ok(Location::Postgres(PgUrl::new(url))),
                None => Err(CopyError::Spec(
                    "`postgres` alone means the URL in $DATABASE_URL, which is not set: set it, or give the URL (postgres://user@host/db)".into(),
                )),
            };
        }
        // Not a store, but it may still be a URL with a password.
        let shown = if spec.contains("://") {
            PgUrl::new(spec).redacted()
        } else if spec.to_ascii_lowercase().contains("password") {
            // A libpq `key=value` string: never echo what may be a password.
            "the connection string given (not shown: it holds a password)".to_string()
        } else {
            format!("`{spec}`")
        };
        Err(CopyError::Spec(format!(
            "{shown} is not a store: write sled:PATH, postgres://user@host/db, or postgres (the URL in $DATABASE_URL)"
        )))
    }

    /// How the store is named in messages and in the copy mark: the sled folder's absolute
    /// path, or the URL without its password.
    fn name(&self) -> String {
        match self {
            Location::Sled(p) => {
                let abs = std::fs::canonicalize(p)
                    .or_else(|_| std::path::absolute(p))
                    .unwrap_or_else(|_| p.clone());
                format!("sled:{}", abs.display())
            }
            Location::Postgres(url) => url.redacted(),
        }
    }
}

/// Why a copy did not start or stopped. No variant holds a password.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{0}")]
    Spec(String),
    #[error("--from and --to name the same store ({0}): name another target")]
    SameStore(String),
    #[error("no sled store at {path} (it has no `conf` file): check the path; nothing was copied")]
    NoSledStore { path: String },
    #[error("the database at {url} holds no mentiondesk store (no schema): check the URL; nothing was copied")]
    NoPgStore { url: String },
    #[error("the sled store at {path} is held by a running mentiondesk (`mentiondesk run`, or another `store copy`): sled allows one process at a time; stop the daemon (SIGTERM or Ctrl-C; it flushes and exits), then copy again")]
    SledHeld { path: String },
    #[error("replicas are running on {url} ({holder} holds source {source_name}'s lease): stop every `mentiondesk run` on that database, wait for its leases to lapse, then copy again")]
    PgLive {
        url: String,
        holder: String,
        source_name: String,
    },
    #[error("{target} already holds a store that is not a copy of {from}: nothing was copied; copy into an empty database or a new sled folder (or empty this one yourself if you mean to replace it)")]
    TargetNotEmpty { target: String, from: String },
    #[error("{count} mentiondesk replica(s) are connected to {url} (they hold no source lease: webhook sources only, or just started): stop every `mentiondesk run` on that database, then copy again")]
    PgConnected { url: String, count: i64 },
    #[error("{target} is a copy of {from} that has changed since the copy (a daemon ran on it): copying again would drop what it wrote, so nothing was copied; to start over from {from}, empty {target} yourself first")]
    TargetChanged { target: String, from: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many records of each kind a copy wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopySummary {
    pub from: String,
    pub to: String,
    /// Whether the target was an earlier copy of the same source, now replaced.
    pub replaced: bool,
    counts: std::collections::BTreeMap<&'static str, u64>,
}

impl CopySummary {
    /// How many records of `kind` (as the summary names it, e.g. `alerts`) were copied.
    pub fn count(&self, kind: &str) -> u64 {
        self.counts.get(kind).copied().unwrap_or(0)
    }
}

impl std::fmt::Display for CopySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = if self.replaced {
            " (replacing an earlier copy of the same store)"
        } else {
            ""
        };
        writeln!(f, "copied {} to {}{how}:", self.from, self.to)?;
        for kind in KINDS {
            writeln!(f, "  {:<20} {}", kind, self.count(kind))?;
        }
        Ok(())
    }
}

/// Copies everything `from` holds into `to` (see the module's documentation for when the
/// target is refused). Prints nothing; the caller shows the summary.
pub async fn copy(from: &Location, to: &Location) -> Result<CopySummary, CopyError> {
    let (from_name, to_name) = (from.name(), to.name());
    if from_name == to_name {
        return Err(CopyError::SameStore(from_name));
    }
    // Both stores must be idle: a daemon on the source would keep changing it after the
    // snapshot; one on the target would race the copy. The source is checked before the
    // target is opened (which creates a sled folder or a schema).
    let source = open(from, true).await?;
    idle(&source, &from_name).await?;
    let target = open(to, false).await?;
    idle(&target, &to_name).await?;
    let replaced = match target.meta_get::<CopyMark>(MARKER).await? {
        Some(mark) if mark.from == from_name => {
            let now = target.copy_fingerprint().await?;
            if mark.complete && mark.fingerprint != Some(now) {
                return Err(CopyError::TargetChanged {
                    target: to_name,
                    from: from_name,
                });
            }
            true
        }
        _ if target.holds_data().await? => {
            return Err(CopyError::TargetNotEmpty {
                target: to_name,
                from: from_name,
            })
        }
        _ => false,
    };
    let mut summary = CopySummary {
        from: from_name.clone(),
        to: to_name,
        replaced,
        counts: Default::default(),
    };
    let mut importer = target.import_start(&from_name).await?;
    let (tx, mut rx) = mpsc::channel::<Vec<Record>>(4);
    let exporter = {
        let source = source.clone();
        tokio::spawn(async move { source.export(tx).await })
    };
    let mut written: Result<(), StoreError> = Ok(());
    while let Some(batch) = rx.recv().await {
        if let Err(e) = importer.write(&batch).await {
            written = Err(e);
            break;
        }
        for r in &batch {
            *summary.counts.entry(r.kind()).or_default() += 1;
        }
    }
    // Dropping the receiver stops an exporter that is still sending.
    drop(rx);
    let exported = match exporter.await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    if let Err(e) = written.and(exported) {
        importer.abort().await;
        return Err(e.into());
    }
    importer.finish(&from_name).await?;
    source.flush().await?;
    Ok(summary)
}

/// Refuses a PostgreSQL store a replica is running on (sled's lock keeps a daemon out).
async fn idle(store: &Store, name: &str) -> Result<(), CopyError> {
    if let Some((holder, source_name)) = store.live_lease().await? {
        return Err(CopyError::PgLive {
            url: name.to_string(),
            holder,
            source_name,
        });
    }
    // A replica that stopped a moment ago may still show while the server ends its session.
    let mut count = store.other_replicas_connected().await?;
    for _ in 0..10 {
        if count == 0 {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        count = store.other_replicas_connected().await?;
    }
    match count {
        0 => Ok(()),
        count => Err(CopyError::PgConnected {
            url: name.to_string(),
            count,
        }),
    }
}

/// Opens a store to copy from (`source`: it must exist, and is never created) or into.
async fn open(at: &Location, source: bool) -> Result<Store, CopyError> {
    match at {
        Location::Sled(path) => {
            if source && !path.join("conf").is_file() {
                return Err(CopyError::NoSledStore {
                    path: path.display().to_string(),
                });
            }
            match SledStore::open_with(&StoreConfig::at(path)) {
                Ok(s) => Ok(Store::from(s)),
                Err(StoreError::Locked { .. }) => Err(CopyError::SledHeld {
                    path: path.display().to_string(),
                }),
                Err(e) => Err(e.into()),
            }
        }
        Location::Postgres(url) => {
            let config = PgConfig::new(url.expose());
            if source {
                // Checked before connecting, which would create the schema in an empty one.
                let facts = super::pg::PgStore::check_online(&config).await?;
                if facts.schema_version == 0 {
                    return Err(CopyError::NoPgStore {
                        url: url.redacted(),
                    });
                }
            }
            let mut config_store = StoreConfig::at("");
            config_store.backend = super::config::Backend::Postgres(config);
            Ok(Store::open_with(&config_store).await?)
        }
    }
}

/// A target being written: the sled store itself, or a PostgreSQL connection holding the
/// one transaction the whole copy is written in; and the counters seen so far.
pub(crate) struct Importer {
    backend: ImportInto,
    counters: Counters,
}

pub(crate) enum ImportInto {
    Sled(SledStore),
    Postgres(Box<super::pg::PgImporter>),
}

impl Importer {
    pub(crate) fn new(backend: ImportInto) -> Importer {
        Importer {
            backend,
            counters: Counters::default(),
        }
    }

    pub(crate) async fn write(&mut self, batch: &[Record]) -> Result<(), StoreError> {
        for r in batch {
            self.counters.observe(r);
        }
        match &mut self.backend {
            ImportInto::Sled(s) => {
                let s = s.clone();
                let batch = batch.to_vec();
                super::off_runtime(move || s.import_batch(&batch)).await
            }
            ImportInto::Postgres(p) => p.write(batch).await,
        }
    }

    pub(crate) async fn finish(self, from: &str) -> Result<(), StoreError> {
        match self.backend {
            ImportInto::Sled(s) => s.import_finish(from, &self.counters).await,
            ImportInto::Postgres(p) => p.finish(from, &self.counters).await,
        }
    }

    /// Gives up: PostgreSQL rolls the whole copy back; a sled target keeps its mark saying
    /// the copy is unfinished, so the next run replaces it.
    pub(crate) async fn abort(self) {
        match self.backend {
            ImportInto::Sled(s) => {
                let _ = s.flush().await;
            }
            ImportInto::Postgres(p) => p.abort().await,
        }
    }
}

/// The mark a finished copy leaves.
pub(crate) fn finished_mark(from: &str, fingerprint: Fingerprint) -> CopyMark {
    CopyMark {
        from: from.to_string(),
        complete: true,
        fingerprint: Some(fingerprint),
    }
}

/// The mark an unfinished copy leaves.
pub(crate) fn started_mark(from: &str) -> CopyMark {
    CopyMark {
        from: from.to_string(),
        complete: false,
        fingerprint: None,
    }
}

// --- the sled backend's half ---

/// The sled meta keys that hold counters (big-endian numbers, not JSON).
const COUNTER_KEYS: [(&[u8], Counter); 4] = [
    (NEXT_ALERT_ID, Counter::AlertId),
    (NEXT_OUTBOX_SEQ, Counter::Outbox),
    (NEXT_MENTION_SEQ, Counter::MentionLog),
    (NEXT_AUDIT_SEQ, Counter::Audit),
];

fn key_text(k: &[u8]) -> String {
    String::from_utf8_lossy(k).into_owned()
}

fn be_u64(k: &[u8], at: usize) -> u64 {
    k.get(at..at + 8).map(u64_key).unwrap_or(0)
}

fn secs(v: &[u8]) -> DateTime<Utc> {
    let s = i64::from_be_bytes(v.try_into().unwrap_or([0; 8]));
    DateTime::from_timestamp(s, 0).unwrap_or_default()
}

/// Sends records in batches; `false` once the importer has gone (it failed).
struct Sender {
    out: mpsc::Sender<Vec<Record>>,
    batch: Vec<Record>,
}

impl Sender {
    fn push(&mut self, r: Record) -> bool {
        self.batch.push(r);
        if self.batch.len() >= BATCH {
            return self.send();
        }
        true
    }

    fn send(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::take(&mut self.batch);
        self.out.blocking_send(batch).is_ok()
    }
}

impl SledStore {
    /// Sends every record the store holds (see [`Record`]); stops early, without an error,
    /// when the receiver is dropped.
    pub(crate) async fn export(&self, out: mpsc::Sender<Vec<Record>>) -> Result<(), StoreError> {
        let s = self.clone();
        super::off_runtime(move || {
            let mut tx = Sender {
                out,
                batch: Vec::with_capacity(BATCH),
            };
            s.export_into(&mut tx)?;
            tx.send();
            Ok(())
        })
        .await
    }

    fn export_into(&self, tx: &mut Sender) -> Result<(), StoreError> {
        macro_rules! send {
            ($r:expr) => {
                if !tx.push($r) {
                    return Ok(());
                }
            };
        }
        for kv in self.meta.iter() {
            let (k, v) = kv?;
            if let Some((_, counter)) = COUNTER_KEYS.iter().find(|(name, _)| **name == *k) {
                send!(Record::Counter {
                    counter: *counter,
                    next: u64_key(&v),
                });
                continue;
            }
            let key = key_text(&k);
            // The journal's end is where this store's own files stop; a copy writes its own.
            // The prune's cutoff only applies to this store's records (`accept.rs`).
            if key == MARKER
                || *k == *super::journal::JOURNAL_TIP
                || key == super::accept::ORDER_FROM
                || key == super::timer_queue::QUEUE_STAMP
            {
                continue;
            }
            let value = from_json(&key, &v)?;
            send!(Record::Meta { key, value });
        }
        for kv in self.sources.iter() {
            let (k, v) = kv?;
            let name = key_text(&k);
            let state = from_json(&name, &v)?;
            send!(Record::SourceState { name, state });
        }
        for kv in self.seen.iter() {
            let (k, v) = kv?;
            send!(Record::Seen {
                key: key_text(&k),
                at: secs(&v),
            });
        }
        // The mention journal: every mention's dedup keys (since the journal), and the bodies
        // of mentions that matched no rule, with their place in the arrival order.
        let mut stopped = false;
        self.journal.for_each(|e| {
            for key in e.dedup_keys {
                if !tx.push(Record::Seen {
                    key,
                    at: e.received_at,
                }) {
                    stopped = true;
                    return Ok::<_, StoreError>(false);
                }
            }
            if let Some(stored) = e.body {
                let key = stored.mention.key();
                let at = stored.received_at;
                let go = tx.push(Record::Mention {
                    stored,
                    alerted: false,
                }) && tx.push(Record::MentionLog {
                    seq: e.seq,
                    key,
                    at,
                });
                if !go {
                    stopped = true;
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        if stopped {
            return Ok(());
        }
        // The mentions in `mentions`, then those alerts hold in their values
        // (`alert_record.rs`), written out alike.
        let in_tree = self.mentions.iter().map(|kv| {
            let (k, v) = kv?;
            Ok::<_, StoreError>(Some((key_text(&k), v.to_vec())))
        });
        let in_alerts = self.alerts.iter().map(|kv| {
            let (k, v) = kv?;
            let id = AlertId(u64_key(&k));
            let parts = alert_parts(id, &v)?;
            let Some(record) = parts.mention else {
                return Ok(None);
            };
            let alert: Alert = from_json(&format!("alert {id}"), parts.alert)?;
            Ok(Some((alert.mention_key, record.to_vec())))
        });
        for item in in_tree.chain(in_alerts) {
            let Some((key, v)) = item? else {
                continue;
            };
            let d = mention_record::decode(&key, &v)?;
            let at = d.stored.received_at;
            // A record from before the compact format does not say; keeping its body is
            // the safe side (it may be an alert's).
            send!(Record::Mention {
                stored: d.stored,
                alerted: d.alerted.unwrap_or(true),
            });
            // An alert's mention keeps its place in its record, not in `mention_log`.
            if let Some(seq) = d.seq {
                send!(Record::MentionLog { seq, key, at });
            }
        }
        for kv in self.mention_log.iter() {
            let (k, v) = kv?;
            let key = key_text(&v);
            // An entry whose body is gone no longer shows anywhere; the log needs the
            // arrival time, which only the body holds.
            let Some(body) = self.mention(&key)? else {
                continue;
            };
            send!(Record::MentionLog {
                seq: u64_key(&k),
                key,
                at: body.received_at,
            });
        }
        // Alerts, then every audit entry: stored ones, and the "created" entries sled keeps
        // only the number of (see `create_alert`), which are written out like the others.
        for kv in self.alerts.iter() {
            let (k, v) = kv?;
            send!(Record::Alert(decode_alert(AlertId(u64_key(&k)), &v)?));
        }
        for kv in self.alerts.iter() {
            let (k, v) = kv?;
            let alert = decode_alert(AlertId(u64_key(&k)), &v)?;
            if let Some((seq, entry)) = self.unstored_created_entry(&alert)? {
                send!(Record::Audit {
                    seq,
                    alert: alert.id,
                    entry,
                });
            }
        }
        for kv in self.audit.iter() {
            let (k, v) = kv?;
            let alert = AlertId(be_u64(&k, 0));
            send!(Record::Audit {
                seq: be_u64(&k, 8),
                alert,
                entry: from_json(&format!("audit of alert {alert}"), &v)?,
            });
        }
        for t in super::timer_queue::all(&self.alerts, &self.timers)? {
            send!(Record::Timer(t));
        }
        for kv in self.outbox.iter() {
            let (k, v) = kv?;
            let seq = u64_key(&k);
            send!(Record::Outbox {
                seq,
                entry: from_json(&format!("outbox {seq}"), &v)?,
            });
        }
        // References alerts hold in their values, then those in `message_refs` (digests,
        // rounds, and alerts' from before) that no alert's value replaced.
        for kv in self.alerts.iter() {
            let (k, v) = kv?;
            let alert = AlertId(u64_key(&k));
            let held = alert_parts(alert, &v)?.message_refs(alert)?;
            for data in held {
                send!(Record::MessageRef {
                    alert,
                    target: data.target.to_string(),
                    data,
                });
            }
        }
        for kv in self.refs.iter() {
            let (k, v) = kv?;
            let alert = AlertId(be_u64(&k, 0));
            let target = key_text(k.get(8..).unwrap_or_default());
            let shadowed = match self.alerts.get(alert.0.to_be_bytes())? {
                Some(a) => alert_parts(alert, &a)?
                    .message_refs(alert)?
                    .iter()
                    .any(|r| r.target.to_string() == target),
                None => false,
            };
            if shadowed {
                continue;
            }
            send!(Record::MessageRef {
                alert,
                target,
                data: from_json(&format!("message ref of alert {alert}"), &v)?,
            });
        }
        for kv in self.requests.iter() {
            let (k, v) = kv?;
            send!(Record::Request {
                key: key_text(&k),
                at: secs(&v),
            });
        }
        for kv in self.mutes.iter() {
            let (k, v) = kv?;
            let key = key_text(&k);
            let (by, at): (String, DateTime<Utc>) = from_json(&key, &v)?;
            send!(Record::Mute { key, by, at });
        }
        for kv in self.threads.iter() {
            let (k, v) = kv?;
            // An unreadable mark counts as none everywhere else too.
            if let Some(mark) = ThreadMark::from_bytes(&v) {
                send!(Record::Thread {
                    key: key_text(&k),
                    mark,
                });
            }
        }
        for kv in self.rule_log.iter() {
            let (k, v) = kv?;
            for (seq, mut hit) in super::rule_log::decode_entry(&k, &v)? {
                // Where sled keeps the body is its own layout: a copy keeps it in `mentions`.
                hit.alert = None;
                send!(Record::RuleHit { seq, hit });
            }
        }
        for kv in self.labels.iter() {
            let (k, v) = kv?;
            let split = k.len().saturating_sub(9);
            let alert = AlertId(be_u64(&k, split + 1));
            send!(Record::Label {
                rule: key_text(&k[..split]),
                alert,
                record: from_json(&format!("label of alert {alert}"), &v)?,
            });
        }
        for kv in self.relevance.iter() {
            let (k, v) = kv?;
            // A header's value is JSON; a feature's is two counts (8 bytes) under
            // `model 0x1f hash`.
            if k.last() == Some(&labels::HEADER) && v.first() == Some(&b'{') {
                let model = key_text(&k[..k.len() - 1]);
                let header = from_json(&format!("relevance header of {model}"), &v)?;
                send!(Record::RelevanceHeader { model, header });
            } else if k.len() >= 5 {
                let split = k.len() - 5;
                let f = &k[split + 1..];
                send!(Record::RelevanceFeature {
                    model: key_text(&k[..split]),
                    feature: u32::from_be_bytes([f[0], f[1], f[2], f[3]]),
                    counts: labels::decode_counts(&v),
                });
            }
        }
        Ok(())
    }

    /// Empties every tree and marks the store as an unfinished copy of `from`.
    pub(crate) async fn import_start(&self, from: &str) -> Result<(), StoreError> {
        let s = self.clone();
        super::off_runtime(move || -> Result<(), StoreError> {
            let writes = s.desk.lock_writes();
            for tree in s.all_trees() {
                tree.clear()?;
            }
            writes.clear();
            super::desk_index::remove(&s.dir)
        })
        .await?;
        self.meta_set(MARKER, &started_mark(from)).await
    }

    fn all_trees(&self) -> [&sled::Tree; 17] {
        [
            &self.meta,
            &self.mentions,
            &self.mention_log,
            &self.alerts,
            &self.seen,
            &self.sources,
            &self.outbox,
            &self.refs,
            &self.audit,
            &self.timers,
            &self.timer_queue,
            &self.requests,
            &self.mutes,
            &self.threads,
            &self.rule_log,
            &self.labels,
            &self.relevance,
        ]
    }

    /// Writes a batch of records under their own keys (no transaction: an interrupted copy
    /// is replaced as a whole by the next run).
    fn import_batch(&self, batch: &[Record]) -> Result<(), StoreError> {
        for r in batch {
            match r {
                // Set once everything is written (`import_finish`).
                Record::Counter { .. } => {}
                Record::Meta { key, value } => {
                    if key != MARKER {
                        self.meta.insert(key.as_bytes(), to_json(value))?;
                    }
                }
                Record::SourceState { name, state } => {
                    self.sources.insert(name.as_bytes(), to_json(state))?;
                }
                Record::Seen { key, at } => {
                    self.seen
                        .insert(key.as_bytes(), &at.timestamp().to_be_bytes())?;
                }
                Record::Mention { stored, alerted } => {
                    let record =
                        mention_record::encode(&stored.mention, stored.received_at, *alerted, None);
                    self.mentions
                        .insert(stored.mention.key().as_bytes(), record)?;
                }
                Record::MentionLog { seq, key, .. } => {
                    self.mention_log.insert(seq.to_be_bytes(), key.as_bytes())?;
                }
                Record::Alert(a) => {
                    let writes = self.desk.lock_writes();
                    self.alerts.insert(a.id.0.to_be_bytes(), to_json(a))?;
                    writes.put(a);
                }
                Record::Audit { seq, alert, entry } => {
                    let mut key = alert.0.to_be_bytes().to_vec();
                    key.extend_from_slice(&seq.to_be_bytes());
                    self.audit.insert(key, to_json(entry))?;
                }
                Record::Timer(t) => {
                    self.timers
                        .insert(timer_key(t.alert_id, t.kind), to_json(t))?;
                }
                Record::Outbox { seq, entry } => {
                    self.outbox.insert(seq.to_be_bytes(), to_json(entry))?;
                }
                Record::MessageRef {
                    alert,
                    target,
                    data,
                } => {
                    let mut key = alert.0.to_be_bytes().to_vec();
                    key.extend_from_slice(target.as_bytes());
                    self.refs.insert(key, to_json(data))?;
                }
                Record::Request { key, at } => {
                    self.requests
                        .insert(key.as_bytes(), &at.timestamp().to_be_bytes())?;
                }
                Record::Mute { key, by, at } => {
                    self.mutes.insert(key.as_bytes(), to_json(&(by, at)))?;
                }
                Record::Thread { key, mark } => {
                    self.threads.insert(key.as_bytes(), mark.to_bytes())?;
                }
                Record::RuleHit { seq, hit } => {
                    self.rule_log.insert(
                        rule_log_key(&hit.rule, hit.at.timestamp(), *seq),
                        to_json(hit),
                    )?;
                }
                Record::Label {
                    rule,
                    alert,
                    record,
                } => {
                    self.labels
                        .insert(labels::label_key(rule, *alert), to_json(record))?;
                }
                Record::RelevanceHeader { model, header } => {
                    self.relevance
                        .insert(labels::header_key(model), to_json(header))?;
                }
                Record::RelevanceFeature {
                    model,
                    feature,
                    counts,
                } => {
                    self.relevance.insert(
                        labels::feature_key(model, *feature),
                        &labels::encode_counts(*counts),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Sets the counters past every number the copied rows use, flushes, and marks the copy
    /// finished.
    pub(crate) async fn import_finish(
        &self,
        from: &str,
        counters: &Counters,
    ) -> Result<(), StoreError> {
        for (name, counter) in COUNTER_KEYS {
            self.meta
                .insert(name, &counters.next(counter).to_be_bytes())?;
        }
        // The copied timers were written without their queue entries.
        let s = self.clone();
        super::off_runtime(move || {
            super::timer_queue::rebuild(&s.alerts, &s.timers, &s.timer_queue)
        })
        .await?;
        self.flush().await?;
        let fingerprint = self.copy_fingerprint()?;
        self.meta_set(MARKER, &finished_mark(from, fingerprint))
            .await
    }

    /// See [`Fingerprint`].
    pub(crate) fn copy_fingerprint(&self) -> Result<Fingerprint, StoreError> {
        Ok(Fingerprint {
            next_alert_id: self.meta.get(NEXT_ALERT_ID)?.map_or(1, |v| u64_key(&v)),
            seen: self.seen.len() as u64 + self.journal.tip().hash_count(),
        })
    }

    /// Whether the store holds anything a daemon wrote (its copy mark aside).
    pub(crate) fn holds_data(&self) -> Result<bool, StoreError> {
        for tree in self.all_trees() {
            for kv in tree.iter() {
                let (k, _) = kv?;
                if *k != *MARKER.as_bytes() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::candidate;
    use super::*;
    use crate::model::SourceState;

    /// Everything a store holds, in a stable order, for comparing two stores.
    async fn contents(store: &Store) -> Vec<String> {
        let (tx, mut rx) = mpsc::channel(4);
        let reader = {
            let store = store.clone();
            tokio::spawn(async move { store.export(tx).await })
        };
        let mut out = Vec::new();
        while let Some(batch) = rx.recv().await {
            out.extend(batch.iter().map(|r| format!("{r:?}")));
        }
        reader.await.unwrap().unwrap();
        out.sort();
        out
    }

    fn sled_at(dir: &std::path::Path) -> Location {
        Location::Sled(dir.to_path_buf())
    }

    /// A store with a bit of everything a daemon writes.
    async fn seeded(path: &std::path::Path) {
        let store = Store::open(path).unwrap();
        // Whole seconds: sled keeps some times to the second, PostgreSQL to the microsecond.
        let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
        let batch = [
            candidate("a", true),
            candidate("b", false),
            candidate("c", true),
        ];
        store
            .accept("feed", &SourceState::default(), &batch, now)
            .await
            .unwrap();
        store.meta_set("digest:daily", &now).await.unwrap();
        store
            .mute("author:rss:dana", "slack:U1", now)
            .await
            .unwrap();
        assert!(store.first_request("slack:T1", now).await.unwrap());
        store.flush().await.unwrap();
    }

    /// sled → PostgreSQL → sled gives the same contents each way; copying again replaces the
    /// earlier copy with the same store (no duplicates); the copy hands out the next alert
    /// id; a target that holds other data, or a copy a daemon has written to since, is
    /// refused and left alone; the source is never changed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_copy_round_trips_between_backends_and_is_idempotent() {
        let Some(db) = crate::store::pg::throwaway::database().await else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        seeded(&a).await;
        let pg = Location::Postgres(PgUrl::new(db.url()));

        let first = copy(&sled_at(&a), &pg).await.unwrap();
        assert_eq!(first.count("alerts"), 2, "{first}");
        assert_eq!(first.count("seen keys"), 6, "{first}");
        assert_eq!(first.count("outbox entries"), 4, "{first}");
        assert!(!first.replaced);
        let source = Store::open(&a).unwrap();
        let original = contents(&source).await;
        drop(source);
        let mut config = StoreConfig::at("");
        config.backend = super::super::config::Backend::Postgres(db.config());
        let on_pg = Store::open_with(&config).await.unwrap();
        assert_eq!(contents(&on_pg).await, original);
        // A replica connected to the database (here: holding no lease) keeps a copy away.
        let e = copy(&sled_at(&a), &pg).await.unwrap_err();
        assert!(matches!(e, CopyError::PgConnected { count: 1, .. }), "{e}");
        drop(on_pg);

        let again = copy(&sled_at(&a), &pg).await.unwrap();
        assert!(again.replaced, "{again}");
        assert_eq!(again.count("alerts"), 2);
        let on_pg = Store::open_with(&config).await.unwrap();
        assert_eq!(contents(&on_pg).await, original, "no duplicates");
        drop(on_pg);
        let source = Store::open(&a).unwrap();
        assert_eq!(contents(&source).await, original, "the source is unchanged");
        drop(source);

        let back = copy(&pg, &sled_at(&b)).await.unwrap();
        assert_eq!(back.count("alerts"), 2);
        let copied = Store::open(&b).unwrap();
        assert_eq!(contents(&copied).await, original);
        drop(copied);

        // A daemon on the copy: the next alert is #3, nothing seen alerts again.
        let on_pg = Store::open_with(&config).await.unwrap();
        let now = Utc::now();
        let accepted = on_pg
            .accept(
                "feed",
                &SourceState::default(),
                &[candidate("d", true)],
                now,
            )
            .await
            .unwrap();
        assert_eq!(
            format!("{accepted:?}").matches("AlertId(3)").count(),
            1,
            "{accepted:?}"
        );
        assert!(on_pg.is_seen("url:https://example.com/a").await.unwrap());
        drop(on_pg);

        // Now the copy has changed: copying over it again is refused.
        let e = copy(&sled_at(&a), &pg).await.unwrap_err();
        assert!(matches!(e, CopyError::TargetChanged { .. }), "{e}");
        let on_pg = Store::open_with(&config).await.unwrap();
        assert_eq!(
            on_pg.alerts().await.unwrap().len(),
            3,
            "the target is untouched"
        );
        drop(on_pg);
        // And a store that is no copy of the source is refused as well.
        let e = copy(&sled_at(&b), &pg).await.unwrap_err();
        assert!(matches!(e, CopyError::TargetNotEmpty { .. }), "{e}");

        // A replica running on the database (a live source lease): refused as a source too,
        // naming the replica; nothing is written to the target.
        let replica = super::super::pg::PgStore::connect(&db.config())
            .await
            .unwrap();
        let lease = std::time::Duration::from_secs(60);
        replica
            .lease_source("feed", "desk-7", lease, None)
            .await
            .unwrap();
        let c = dir.path().join("c");
        let e = copy(&pg, &sled_at(&c)).await.unwrap_err();
        assert!(matches!(e, CopyError::PgLive { .. }), "{e}");
        assert!(e.to_string().contains("desk-7"), "{e}");
        assert!(!c.exists(), "the target was not even created");
    }

    /// Alerts' mentions keep their place in their record, not in the log (`accept.rs`); a
    /// copy still carries it, so the copy's preview lists what the source's does, in order.
    #[tokio::test]
    async fn a_copy_keeps_the_arrival_order_of_alerted_mentions() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        seeded(&a).await;
        let listed = |path: std::path::PathBuf| async move {
            let store = Store::open(&path).unwrap();
            let ids: Vec<String> = store
                .recent_mentions(10)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.mention.item_id)
                .collect();
            ids
        };
        let before = listed(a.clone()).await;
        assert_eq!(before, ["c", "b", "a"]);
        let summary = copy(&sled_at(&a), &sled_at(&b)).await.unwrap();
        assert_eq!(summary.count("mention log entries"), 3, "{summary}");
        assert_eq!(listed(b).await, before);
    }

    /// sled keeps a new alert's "created" audit entry as a number in the alert, not as an
    /// entry (one sled entry less per alert). Its history still starts with it, before the
    /// changes; a copy writes it out like any entry, and the copy's history shows it once.
    #[tokio::test]
    async fn a_created_entry_kept_as_a_number_is_in_the_history_once_before_and_after_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        seeded(&a).await;
        let store = Store::open(&a).unwrap();
        assert_eq!(store.sled().audit.len(), 0, "nothing stored at creation");
        let alert = store.alert(AlertId(1)).await.unwrap().unwrap();
        let created = AuditEntry {
            at: alert.created_at,
            actor: "system".into(),
            action: "created".into(),
            from: "-".into(),
            to: "open".into(),
            detail: Some("rules acme".into()),
        };
        assert_eq!(
            store.audit_log(AlertId(1)).await.unwrap(),
            vec![created.clone()]
        );
        let mut claimed = alert.clone();
        claimed.state = crate::model::AlertState::Claimed {
            by: "slack:U1".into(),
            at: Utc::now(),
        };
        let change = super::super::test_util::change(claimed);
        let claim = change.audit.clone();
        store.sled().change_alert(&alert, change).await.unwrap();
        let history = store.audit_log(AlertId(1)).await.unwrap();
        assert_eq!(history, [created.clone(), claim]);
        drop(store);

        let summary = copy(&sled_at(&a), &sled_at(&b)).await.unwrap();
        assert_eq!(summary.count("audit entries"), 3, "{summary}");
        let copied = Store::open(&b).unwrap();
        assert_eq!(copied.sled().audit.len(), 3, "written out in the copy");
        assert_eq!(copied.audit_log(AlertId(1)).await.unwrap(), history);
        assert_eq!(copied.audit_log(AlertId(2)).await.unwrap().len(), 1);
    }

    /// A missing sled store is not created; a store is not copied onto itself. (A store held
    /// by a running daemon is refused in `tests/it/store_copy.rs`: sled's lock is per
    /// process.)
    #[tokio::test]
    async fn a_held_or_missing_sled_source_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let missing = copy(&sled_at(&a), &sled_at(&b)).await.unwrap_err();
        assert!(
            matches!(missing, CopyError::NoSledStore { .. }),
            "{missing}"
        );
        assert!(!a.exists() && !b.exists(), "nothing created");
        seeded(&a).await;
        let same = copy(&sled_at(&a), &sled_at(&a)).await.unwrap_err();
        assert!(matches!(same, CopyError::SameStore(_)), "{same}");
        let ok = copy(&sled_at(&a), &sled_at(&b)).await.unwrap();
        assert_eq!(ok.count("alerts"), 2);
    }

    #[test]
    fn locations_are_read_and_passwords_never_shown() {
        let e = Location::parse("postgres", None).unwrap_err().to_string();
        assert!(e.contains("DATABASE_URL"), "{e}");
        match Location::parse("postgres", Some("postgres://u:secret@h/db".into())).unwrap() {
            Location::Postgres(url) => assert!(!url.redacted().contains("secret")),
            other => panic!("{other:?}"),
        }
        let e = Location::parse("mysql://u:secret@h/db", None)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
        let e = Location::parse("host=db user=desk password=secret dbname=md", None)
            .unwrap_err()
            .to_string();
        assert!(
            !e.contains("secret"),
            "a libpq connection string is not echoed: {e}"
        );
        let e = Location::parse("data/x", None).unwrap_err().to_string();
        assert!(
            e.starts_with("`data/x` is not a store: write sled:PATH"),
            "{e}"
        );
        assert!(matches!(
            Location::parse("sled:data/x", None).unwrap(),
            Location::Sled(_)
        ));
    }

    /// A sled copy that was interrupted is refused by the daemon's open, naming the fix;
    /// finishing the copy lets it open.
    #[tokio::test]
    async fn an_unfinished_sled_copy_is_refused_until_the_copy_is_run_again() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        seeded(&a).await;
        let target = SledStore::open(&b).unwrap();
        target.import_start("sled:/elsewhere").await.unwrap();
        target.flush().await.unwrap();
        drop(target);
        let e = Store::open_with(&StoreConfig::at(&b))
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("unfinished copy of sled:/elsewhere"), "{e}");
        assert!(e.contains("store copy"), "{e}");
        // Nothing but the mark was written: the target counts as empty, and a copy into it
        // finishes and lets the daemon open it.
        let done = copy(&sled_at(&a), &sled_at(&b)).await.unwrap();
        assert_eq!(done.count("alerts"), 2);
        let opened = Store::open_with(&StoreConfig::at(&b)).await.unwrap();
        assert_eq!(opened.alerts().await.unwrap().len(), 2);
    }
}
