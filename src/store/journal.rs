//! The mention journal: every stored mention's dedup keys, and the bodies of mentions that
//! matched no rule, in append-only files beside sled instead of in its trees.
//!
//! Why: most polled mentions match nothing, and sled 0.34 keeps state in memory for every
//! entry it holds and clones tree nodes on every insert. With four entries per mention (body,
//! arrival order, two dedup keys) a store of a million mentions needed 350 MiB of memory and
//! ingest spent most of its CPU in sled (BENCHMARKS.md, "Memory, store size…"). Here a
//! mention that matched nothing costs one appended record and 8 bytes per dedup key in
//! memory; sled keeps what the desk works on (alerts, their mentions, outbox, threads).
//!
//! Files under `<store>/journal/`:
//! - `NNNNNNNNNNNNNNNN.seg`: records, appended in arrival order. Once a batch in the next
//!   segment has committed, a closed segment is rewritten deflated as `….segz` (real posts
//!   shrink to less than half; BENCHMARKS.md, "Memory, store size…"). A closed segment older
//!   than `[store] keep_mentions` is rewritten as `….keys` without the bodies (dedup keys
//!   stay forever, as they always did).
//! - `seen.hashes`: one keyed 64-bit SipHash per dedup key, little-endian, in the order
//!   written; read at start into a packed sorted array (4 bytes per key in memory, see
//!   `seen_set.rs`).
//! - `key`: the 16-byte SipHash key, random per store, so nobody can craft a URL whose hash
//!   collides with another mention's and have it dropped as a duplicate.
//!
//! Crash safety: a batch's records and hashes are written and fsynced before the sled
//! transaction that records how far the files are valid (`journal_tip` in meta). On open,
//! anything past the tip is cut off, so a batch is in both or in neither.

use super::mention_record;
use super::replace_file;
use super::seen_set::SeenSet;
use super::StoredMention;
use chrono::{DateTime, Utc};
use std::fs::{File, OpenOptions};
use std::hash::Hasher;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

/// Where in meta the committed end of the journal is kept (see `Tip`).
pub(super) const JOURNAL_TIP: &[u8] = b"journal_tip";

/// A segment is closed once it holds this much: the unit of pruning and of what
/// `/desk preview` reads.
const SEGMENT_BYTES: u64 = 4 << 20;

/// A segment is also closed once its first mention is this old, so that a quiet store's
/// bodies are dropped within a day of `keep_mentions` too.
const SEGMENT_AGE: chrono::TimeDelta = chrono::TimeDelta::days(1);

const FULL: u8 = 1;
const KEYS_ONLY: u8 = 2;

/// What a file in the journal holds, by its extension. A rewrite goes through a `.tmp`
/// file renamed into place, then removes its source, so after a crash at any point each
/// segment's records are readable from at least one file (`clean_up` removes the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// `.seg`: records as appended (the segment being written, or a closed one not yet packed).
    Raw,
    /// `.segz`: a closed segment's records, deflated.
    Packed,
    /// `.keys`: a pruned segment's records without bodies.
    Keys,
    PackedTmp,
    KeysTmp,
}

impl Kind {
    fn ext(self) -> &'static str {
        match self {
            Kind::Raw => "seg",
            Kind::Packed => "segz",
            Kind::Keys => "keys",
            Kind::PackedTmp => "segz.tmp",
            Kind::KeysTmp => "keys.tmp",
        }
    }

    fn from_ext(ext: &str) -> Option<Kind> {
        [
            Kind::Raw,
            Kind::Packed,
            Kind::Keys,
            Kind::PackedTmp,
            Kind::KeysTmp,
        ]
        .into_iter()
        .find(|k| k.ext() == ext)
    }

    /// A rewrite's unfinished output.
    fn is_tmp(self) -> bool {
        matches!(self, Kind::PackedTmp | Kind::KeysTmp)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("mention journal {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("an earlier write to the mention journal {path} failed and could not be undone; restart mentiondesk (on start the store cuts the journal back to its last committed batch)")]
    Stuck { path: PathBuf },
    #[error("mention journal {path} is damaged ({reason}); restore the store from a backup, or move the journal folder away to start its dedup keys afresh (mentions seen before may then alert again)")]
    Damaged { path: PathBuf, reason: String },
}

/// Hands the first `count` hashes of the `seen.hashes` file at `path` to `f`, in file order.
fn read_hashes(path: &Path, count: u64, f: &mut dyn FnMut(u64)) -> Result<(), JournalError> {
    let mut buf = vec![0u8; 1 << 16];
    let mut reader = File::open(path).map_err(io_at(path))?;
    let mut left = count * 8;
    while left > 0 {
        let n = (left as usize).min(buf.len());
        reader.read_exact(&mut buf[..n]).map_err(io_at(path))?;
        for c in buf[..n].chunks_exact(8) {
            f(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        left -= n as u64;
    }
    Ok(())
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How far the journal's files are valid: written in the same sled transaction as the batch
/// that wrote them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Tip {
    segment: u64,
    offset: u64,
    hashes: u64,
}

impl Tip {
    pub(super) fn to_bytes(self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..8].copy_from_slice(&self.segment.to_be_bytes());
        out[8..16].copy_from_slice(&self.offset.to_be_bytes());
        out[16..].copy_from_slice(&self.hashes.to_be_bytes());
        out
    }

    fn from_bytes(b: &[u8]) -> Option<Tip> {
        if b.len() != 24 {
            return None;
        }
        let u = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Some(Tip {
            segment: u(0),
            offset: u(8),
            hashes: u(16),
        })
    }

    /// The hashes stored so far (copy fingerprints).
    pub(super) fn hash_count(self) -> u64 {
        self.hashes
    }
}

/// One mention as the journal keeps it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    pub(super) seq: u64,
    pub(super) received_at: DateTime<Utc>,
    pub(super) dedup_keys: Vec<String>,
    /// `None` for a mention whose body sled keeps (it matched a rule), or whose body was
    /// dropped after `keep_mentions`.
    pub(super) body: Option<StoredMention>,
}

/// The appending side: one batch at a time.
pub(super) struct Writer {
    dir: PathBuf,
    segment_no: u64,
    segment: File,
    segment_len: u64,
    hashes: File,
    hash_count: u64,
    /// Set when a batch could not be cut back off the files: appending more would commit
    /// its records with the next batch.
    broken: bool,
    /// When the first record of the current segment arrived (`None`: it is empty).
    started: Option<DateTime<Utc>>,
    /// Closed segments still `.seg`: packed once a later segment holds a committed batch.
    unpacked: Vec<u64>,
}

impl Writer {
    pub(super) fn tip(&self) -> Tip {
        Tip {
            segment: self.segment_no,
            offset: self.segment_len,
            hashes: self.hash_count,
        }
    }

    /// Appends a batch (records and hashes) received at `now` and makes it durable. Returns
    /// where the batch starts (what `rollback` cuts back to if its transaction fails) and
    /// the tip to commit. A full or day-old segment is closed first. On an error the files
    /// are already cut back.
    pub(super) fn append(
        &mut self,
        records: &[u8],
        hashes: &[u64],
        now: DateTime<Utc>,
    ) -> Result<(Tip, Tip), JournalError> {
        if self.broken {
            let path = segment_path(&self.dir, self.segment_no, Kind::Raw);
            return Err(JournalError::Stuck { path });
        }
        if !records.is_empty() {
            self.roll_if_due(now)?;
        }
        let start = self.tip();
        match self.write(records, hashes, now) {
            Ok(()) => Ok((start, self.tip())),
            Err(e) => {
                self.rollback(start)?;
                Err(e)
            }
        }
    }

    fn write(
        &mut self,
        records: &[u8],
        hashes: &[u64],
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        let seg_path = segment_path(&self.dir, self.segment_no, Kind::Raw);
        let hash_path = self.dir.join("seen.hashes");
        if !records.is_empty() {
            self.started.get_or_insert(now);
            self.segment.write_all(records).map_err(io_at(&seg_path))?;
            self.segment.sync_data().map_err(io_at(&seg_path))?;
            self.segment_len += records.len() as u64;
        }
        if !hashes.is_empty() {
            let mut bytes = Vec::with_capacity(hashes.len() * 8);
            for h in hashes {
                bytes.extend_from_slice(&h.to_le_bytes());
            }
            self.hashes.write_all(&bytes).map_err(io_at(&hash_path))?;
            self.hashes.sync_data().map_err(io_at(&hash_path))?;
            self.hash_count += hashes.len() as u64;
        }
        Ok(())
    }

    /// Cuts the files back to `tip`: the batch's transaction did not commit.
    pub(super) fn rollback(&mut self, tip: Tip) -> Result<(), JournalError> {
        self.broken = true;
        let seg_path = segment_path(&self.dir, self.segment_no, Kind::Raw);
        self.segment.set_len(tip.offset).map_err(io_at(&seg_path))?;
        self.segment_len = tip.offset;
        if tip.offset == 0 {
            self.started = None;
        }
        let hash_path = self.dir.join("seen.hashes");
        self.hashes
            .set_len(tip.hashes * 8)
            .map_err(io_at(&hash_path))?;
        self.hash_count = tip.hashes;
        self.broken = false;
        Ok(())
    }

    /// Before appending: starts the next segment once this one is full or a day old. The
    /// new file only counts once a batch in it commits (until then, opening the store
    /// removes it and appends go on in this one).
    fn roll_if_due(&mut self, now: DateTime<Utc>) -> Result<(), JournalError> {
        let old = self.started.is_some_and(|t| now - t >= SEGMENT_AGE);
        if self.segment_len == 0 || (self.segment_len < SEGMENT_BYTES && !old) {
            return Ok(());
        }
        let next = self.segment_no + 1;
        let path = segment_path(&self.dir, next, Kind::Raw);
        let file = open_append(&path)?;
        file.set_len(0).map_err(io_at(&path))?;
        sync_dir(&self.dir)?;
        self.unpacked.push(self.segment_no);
        self.segment = file;
        self.segment_no = next;
        self.segment_len = 0;
        self.started = None;
        Ok(())
    }

    /// After a batch committed at `tip`: packs the closed segments before `tip.segment`
    /// (never the one `tip` names, which a restart would append to) into `.segz`. A segment
    /// that cannot be packed stays `.seg` and readable; the next start tries again.
    pub(super) fn pack_closed(&mut self, tip: Tip) -> Result<(), JournalError> {
        while let Some(&no) = self.unpacked.first() {
            if no >= tip.segment {
                break;
            }
            self.unpacked.remove(0);
            let path = segment_path(&self.dir, no, Kind::Raw);
            if let Some(bytes) = read_segment(&path, Kind::Raw, None)? {
                rewrite(&self.dir, no, &path, Kind::Packed, &bytes)?;
            }
        }
        Ok(())
    }
}

/// Replaces segment file `source` by segment `no`'s file of kind `to` (`Packed` or `Keys`)
/// holding `records` (deflated for `Packed`): its `.tmp` (`PackedTmp`, `KeysTmp`) is made
/// durable and renamed into place (`replace_file`), then `source` is removed, so after a
/// crash at any point one of the two is whole.
fn rewrite(
    dir: &Path,
    no: u64,
    source: &Path,
    to: Kind,
    records: &[u8],
) -> Result<(), JournalError> {
    let dest = segment_path(dir, no, to);
    let deflated;
    let bytes = if to == Kind::Packed {
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(records).map_err(io_at(&dest))?;
        deflated = encoder.finish().map_err(io_at(&dest))?;
        &deflated
    } else {
        records
    };
    replace_file(&dest, bytes).map_err(io_at(&dest))?;
    std::fs::remove_file(source).map_err(io_at(source))?;
    Ok(())
}

/// The journal of one store.
pub(super) struct Journal {
    dir: PathBuf,
    key: (u64, u64),
    writer: Mutex<Writer>,
    seen: RwLock<SeenSet>,
    /// The last committed tip, for readers (they never read past it).
    committed: Mutex<Tip>,
}

impl Journal {
    /// Opens (or creates) the journal of the store at `store_path`, cutting off whatever lies
    /// past `tip` (a batch whose transaction never committed).
    pub(super) fn open(store_path: &Path, tip: Option<&[u8]>) -> Result<Journal, JournalError> {
        let dir = store_path.join("journal");
        std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let tip = match tip {
            None => Tip {
                segment: 1,
                ..Tip::default()
            },
            Some(b) => Tip::from_bytes(b).ok_or_else(|| JournalError::Damaged {
                path: dir.clone(),
                reason: format!("its recorded end is {} bytes, not 24", b.len()),
            })?,
        };
        let key = read_or_create_key(&dir)?;
        let unpacked = clean_up(&dir, tip.segment)?;

        let seg_path = segment_path(&dir, tip.segment, Kind::Raw);
        let segment = open_append(&seg_path)?;
        let len = segment.metadata().map_err(io_at(&seg_path))?.len();
        if len < tip.offset {
            return Err(JournalError::Damaged {
                path: seg_path,
                reason: format!(
                    "it holds {len} bytes but the store recorded {} as written",
                    tip.offset
                ),
            });
        }
        segment.set_len(tip.offset).map_err(io_at(&seg_path))?;
        // When the open segment's first mention arrived, so that it closes a day after that
        // across restarts too (and a quiet store's bodies are pruned on time).
        let started = match tip.offset {
            0 => None,
            _ => Some(first_arrival(&seg_path)?),
        };

        let hash_path = dir.join("seen.hashes");
        let hashes = open_append(&hash_path)?;
        let hlen = hashes.metadata().map_err(io_at(&hash_path))?.len();
        if hlen < tip.hashes * 8 {
            return Err(JournalError::Damaged {
                path: hash_path,
                reason: format!(
                    "it holds {} keys but the store recorded {}",
                    hlen / 8,
                    tip.hashes
                ),
            });
        }
        hashes.set_len(tip.hashes * 8).map_err(io_at(&hash_path))?;
        let seen = SeenSet::load(|f: &mut dyn FnMut(u64)| read_hashes(&hash_path, tip.hashes, f))?;
        sync_dir(&dir)?;
        Ok(Journal {
            writer: Mutex::new(Writer {
                dir: dir.clone(),
                segment_no: tip.segment,
                segment,
                segment_len: tip.offset,
                hashes,
                hash_count: tip.hashes,
                broken: false,
                started,
                unpacked,
            }),
            dir,
            key,
            seen: RwLock::new(seen),
            committed: Mutex::new(tip),
        })
    }

    /// The appending side, for one batch: held across the batch's sled transaction, so
    /// dedup decisions and appends never interleave.
    pub(super) fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A batch committed: its hashes count as seen, and readers may read up to `tip`.
    pub(super) fn committed(&self, tip: Tip, hashes: &[u64]) {
        self.seen
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert_all(hashes);
        *self
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = tip;
    }

    pub(super) fn hash(&self, key: &str) -> u64 {
        let mut h = siphasher::sip::SipHasher13::new_with_keys(self.key.0, self.key.1);
        h.write(key.as_bytes());
        h.finish()
    }

    /// Whether a committed mention had this dedup key (by hash; two keys share a hash with
    /// odds of about one in 10^12 per lookup at ten million keys).
    pub(super) fn is_seen_hash(&self, h: u64) -> bool {
        self.seen
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(h)
    }

    pub(super) fn tip(&self) -> Tip {
        *self
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every committed entry, oldest first, until `f` says stop (`store copy`).
    pub(super) fn for_each<E: From<JournalError>>(
        &self,
        mut f: impl FnMut(Entry) -> Result<bool, E>,
    ) -> Result<(), E> {
        let tip = self.tip();
        for (no, kind) in self.segments(tip)? {
            let Some((path, bytes)) = self.read_committed(no, kind, tip)? else {
                continue;
            };
            for entry in Records::new(&bytes, &path) {
                if !f(entry?)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The newest `n` mentions with a body here, newest first (`/desk preview`). Reads whole
    /// segments from the newest back until it has `n`.
    pub(super) fn recent(&self, n: usize) -> Result<Vec<(u64, StoredMention)>, JournalError> {
        let tip = self.tip();
        let mut out = Vec::new();
        for (no, kind) in self.segments(tip)?.into_iter().rev() {
            if out.len() >= n || kind == Kind::Keys {
                break;
            }
            let Some((path, bytes)) = self.read_committed(no, kind, tip)? else {
                continue;
            };
            let mut here = Vec::new();
            for entry in Records::new(&bytes, &path) {
                let entry = entry?;
                if let Some(body) = entry.body {
                    here.push((entry.seq, body));
                }
            }
            out.extend(here.into_iter().rev().take(n - out.len()));
        }
        Ok(out)
    }

    /// Rewrites the oldest closed segment whose newest mention arrived before `cutoff`
    /// without its bodies. Returns the bodies dropped, or `None` once no segment is left to
    /// rewrite (the rest are newer, or the one being written).
    pub(super) fn prune_one(&self, cutoff: DateTime<Utc>) -> Result<Option<usize>, JournalError> {
        let tip = self.tip();
        let Some((no, kind)) = self
            .segments(tip)?
            .into_iter()
            .find(|&(no, kind)| kind != Kind::Keys && no < tip.segment)
        else {
            return Ok(None);
        };
        // Under the writer's lock, so a pack never replaces the file being read here.
        let _writer = self.writer();
        let Some((path, bytes)) = self.read_committed(no, kind, tip)? else {
            return Ok(None);
        };
        let entries = Records::new(&bytes, &path).collect::<Result<Vec<_>, _>>()?;
        if entries.iter().any(|e| e.received_at >= cutoff) {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(bytes.len() / 4);
        let mut dropped = 0;
        for mut e in entries {
            dropped += usize::from(e.body.take().is_some());
            encode(&mut out, &e, None);
        }
        rewrite(&self.dir, no, &path, Kind::Keys, &out)?;
        Ok(Some(dropped))
    }

    /// Committed mentions with a body here (tests).
    #[cfg(test)]
    pub(super) fn bodies(&self) -> usize {
        let mut n = 0;
        self.for_each(|e| {
            n += usize::from(e.body.is_some());
            Ok::<_, JournalError>(true)
        })
        .expect("journal readable");
        n
    }

    /// The segment files up to `tip`, oldest first, with their kind (no unfinished rewrite).
    fn segments(&self, tip: Tip) -> Result<Vec<(u64, Kind)>, JournalError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io_at(&self.dir))? {
            let entry = entry.map_err(io_at(&self.dir))?;
            let name = entry.file_name();
            let Some((no, kind)) = parse_segment_name(&name.to_string_lossy()) else {
                continue;
            };
            if no <= tip.segment && !kind.is_tmp() {
                out.push((no, kind));
            }
        }
        // A pack or prune between renaming its output in and removing its source leaves
        // two files of one segment: only the newer kind (`Raw` < `Packed` < `Keys`) counts.
        out.sort_unstable_by_key(|&(no, kind)| (no, std::cmp::Reverse(kind)));
        out.dedup_by_key(|(no, _)| *no);
        Ok(out)
    }

    /// Segment `no`'s committed records (the segment being written only up to `tip`), and
    /// the file they came from. A `.seg` packed meanwhile is read from its `.segz`; `None`
    /// when the segment went away (pruned meanwhile: its bodies are gone anyway).
    fn read_committed(
        &self,
        no: u64,
        kind: Kind,
        tip: Tip,
    ) -> Result<Option<(PathBuf, Vec<u8>)>, JournalError> {
        let limit = (no == tip.segment).then_some(tip.offset);
        let path = segment_path(&self.dir, no, kind);
        if let Some(bytes) = read_segment(&path, kind, limit)? {
            return Ok(Some((path, bytes)));
        }
        if kind == Kind::Raw {
            let packed = segment_path(&self.dir, no, Kind::Packed);
            if let Some(bytes) = read_segment(&packed, Kind::Packed, None)? {
                return Ok(Some((packed, bytes)));
            }
        }
        Ok(None)
    }
}

/// Appends one record: `u32 length, u32 crc32 of the payload, payload`. The payload: kind,
/// seq, arrival (unix seconds), the dedup keys, and for `FULL` the mention record (the
/// mention's key, then `mention_record`'s encoding).
pub(super) fn encode(out: &mut Vec<u8>, e: &Entry, body: Option<&[u8]>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 8]);
    out.push(if body.is_some() { FULL } else { KEYS_ONLY });
    out.extend_from_slice(&e.seq.to_le_bytes());
    out.extend_from_slice(&e.received_at.timestamp().to_le_bytes());
    out.extend_from_slice(&(e.dedup_keys.len() as u16).to_le_bytes());
    for k in &e.dedup_keys {
        put_str(out, k);
    }
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
    let payload_len = (out.len() - start - 8) as u32;
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The body part of a `FULL` record.
pub(super) fn body_bytes(m: &crate::model::Mention, received_at: DateTime<Utc>) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.text.len() + 128);
    put_str(&mut out, &m.key());
    out.extend_from_slice(&mention_record::encode(m, received_at, false, None));
    out
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Keys and ids are short; a longer one is cut at a character boundary (it still
    // dedups: the hash is of the whole key).
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

/// The records of one segment's bytes.
struct Records<'a> {
    bytes: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl<'a> Records<'a> {
    fn new(bytes: &'a [u8], path: &'a Path) -> Records<'a> {
        Records { bytes, at: 0, path }
    }

    fn damaged(&self, reason: &str) -> JournalError {
        JournalError::Damaged {
            path: self.path.to_path_buf(),
            reason: format!("{reason} at byte {}", self.at),
        }
    }

    fn decode(&self, p: &[u8]) -> Option<Entry> {
        let mut r = Cursor(p);
        let kind = r.take(1)?[0];
        let seq = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
        let secs = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
        let received_at = DateTime::from_timestamp(secs, 0)?;
        let n = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
        let mut dedup_keys = Vec::with_capacity(n as usize);
        for _ in 0..n {
            dedup_keys.push(r.str()?);
        }
        let body = match kind {
            KEYS_ONLY => None,
            FULL => {
                let key = r.str()?;
                Some(mention_record::decode(&key, r.0).ok()?.stored)
            }
            _ => return None,
        };
        Some(Entry {
            seq,
            received_at,
            dedup_keys,
            body,
        })
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Entry, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let rest = &self.bytes[self.at..];
        if rest.len() < 8 {
            let e = self.damaged("a record is cut short");
            self.at = self.bytes.len();
            return Some(Err(e));
        }
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let Some(payload) = rest.get(8..8 + len) else {
            let e = self.damaged("a record is cut short");
            self.at = self.bytes.len();
            return Some(Err(e));
        };
        if crc32fast::hash(payload) != crc {
            let e = self.damaged("a record's checksum does not match");
            self.at = self.bytes.len();
            return Some(Err(e));
        }
        let entry = self.decode(payload);
        let result = entry.ok_or_else(|| self.damaged("a record is unreadable"));
        self.at += 8 + len;
        Some(result)
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn str(&mut self) -> Option<String> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// The arrival time of a segment's first record (the segment holds a committed one).
fn first_arrival(path: &Path) -> Result<DateTime<Utc>, JournalError> {
    let mut file = File::open(path).map_err(io_at(path))?;
    let mut record = vec![0u8; 8];
    file.read_exact(&mut record).map_err(io_at(path))?;
    let len = u32::from_le_bytes(record[..4].try_into().expect("4 bytes")) as usize;
    record.resize(8 + len.min(SEGMENT_BYTES as usize), 0);
    file.read_exact(&mut record[8..]).map_err(io_at(path))?;
    match Records::new(&record, path).next() {
        Some(entry) => Ok(entry?.received_at),
        None => Err(JournalError::Damaged {
            path: path.to_path_buf(),
            reason: "its first record is empty".into(),
        }),
    }
}

fn segment_path(dir: &Path, no: u64, kind: Kind) -> PathBuf {
    dir.join(format!("{no:016}.{}", kind.ext()))
}

fn parse_segment_name(name: &str) -> Option<(u64, Kind)> {
    let (no, ext) = name.split_once('.')?;
    Some((no.parse().ok()?, Kind::from_ext(ext)?))
}

/// A segment file's records (a `.segz` inflated) up to `limit` bytes of a `.seg`; `None`
/// if the file went away meanwhile (a pack or prune replaced it).
fn read_segment(
    path: &Path,
    kind: Kind,
    limit: Option<u64>,
) -> Result<Option<Vec<u8>>, JournalError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_at(path)(e)),
    };
    let mut bytes = Vec::new();
    match (kind, limit) {
        (Kind::Packed, _) => flate2::read::DeflateDecoder::new(file).read_to_end(&mut bytes),
        (_, Some(limit)) => file.take(limit).read_to_end(&mut bytes),
        (_, None) => (&file).read_to_end(&mut bytes),
    }
    .map_err(io_at(path))?;
    Ok(Some(bytes))
}

/// Removes what a crash left: segments past the committed one, unfinished rewrites, and the
/// source of a rewrite that finished (a `.segz` replaced its `.seg`, a `.keys` either).
/// Returns the closed segments still to pack, oldest first.
fn clean_up(dir: &Path, current: u64) -> Result<Vec<u64>, JournalError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let name = entry.map_err(io_at(dir))?.file_name();
        if let Some((no, kind)) = parse_segment_name(&name.to_string_lossy()) {
            names.push((no, kind));
        }
    }
    let mut unpacked = Vec::new();
    for &(no, kind) in &names {
        let replaced = |by: Kind| names.contains(&(no, by));
        let remove = kind.is_tmp()
            || no > current
            || match kind {
                Kind::Raw => replaced(Kind::Packed) || replaced(Kind::Keys),
                Kind::Packed => replaced(Kind::Keys),
                _ => false,
            };
        if remove {
            let path = segment_path(dir, no, kind);
            std::fs::remove_file(&path).map_err(io_at(&path))?;
        } else if kind == Kind::Raw && no < current {
            unpacked.push(no);
        }
    }
    unpacked.sort_unstable();
    Ok(unpacked)
}

fn read_or_create_key(dir: &Path) -> Result<(u64, u64), JournalError> {
    let path = dir.join("key");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut b = [0u8; 16];
            getrandom::getrandom(&mut b).map_err(|e| io_at(&path)(std::io::Error::other(e)))?;
            replace_file(&path, &b).map_err(io_at(&path))?;
            b.to_vec()
        }
        Err(e) => return Err(io_at(&path)(e)),
    };
    if bytes.len() != 16 {
        return Err(JournalError::Damaged {
            path,
            reason: format!("the hash key is {} bytes, not 16", bytes.len()),
        });
    }
    let k0 = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let k1 = u64::from_le_bytes(bytes[8..].try_into().expect("8 bytes"));
    Ok((k0, k1))
}

/// A file appended to (created if missing): every write lands at its end, also after
/// `set_len` cut it back.
fn open_append(path: &Path) -> Result<File, JournalError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .append(true)
        .open(path)
        .map_err(io_at(path))
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::candidate;
    use super::super::{SledStore, StoreError, ThreadKey};
    use super::*;
    use crate::model::SourceState;

    fn at(day: i64) -> DateTime<Utc> {
        "2026-03-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::days(day)
    }

    /// What `/desk preview` would see: the kept mentions' ids, newest first.
    fn recent_ids(store: &SledStore) -> Vec<String> {
        store
            .recent_mentions(10)
            .unwrap()
            .into_iter()
            .map(|m| m.mention.item_id)
            .collect()
    }

    /// Mentions "d0" on day 0 and "d1" on day 1: segment 1 closed (and packed), 2 open.
    async fn two_days(store: &SledStore) {
        for (id, day) in [("d0", 0), ("d1", 1)] {
            store
                .accept(
                    "feed",
                    &SourceState::default(),
                    &[candidate(id, false)],
                    at(day),
                )
                .await
                .unwrap();
        }
    }

    /// A crash after a batch's journal records were written but before its transaction
    /// committed: on open the records are cut off, so the batch's mentions are new again
    /// (the source's state did not move either, so the next poll brings them back).
    #[tokio::test]
    async fn records_past_the_committed_end_are_cut_off_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let state = SourceState::default();
        let first = [candidate("a", false), candidate("b", true)];
        store.accept("feed", &state, &first, at(0)).await.unwrap();
        // What `write_batch` does before its transaction, without the transaction.
        let lost = candidate("lost", false);
        {
            let mut w = store.journal.writer();
            let entry = Entry {
                seq: 99,
                received_at: at(0),
                dedup_keys: lost.dedup_keys.clone(),
                body: None,
            };
            let mut records = Vec::new();
            encode(
                &mut records,
                &entry,
                Some(&body_bytes(&lost.mention, at(0))),
            );
            let hashes: Vec<u64> = lost
                .dedup_keys
                .iter()
                .map(|k| store.journal.hash(k))
                .collect();
            w.append(&records, &hashes, at(0)).unwrap();
        }
        drop(store);

        let store = SledStore::open(dir.path()).unwrap();
        for c in &first {
            for k in &c.dedup_keys {
                assert!(store.is_seen(k).unwrap(), "{k} survived the restart");
            }
        }
        for k in &lost.dedup_keys {
            assert!(!store.is_seen(k).unwrap(), "{k} was never committed");
        }
        let ids: Vec<String> = store
            .recent_mentions(10)
            .unwrap()
            .into_iter()
            .map(|m| m.mention.item_id)
            .collect();
        assert_eq!(ids, ["b", "a"], "newest first, the lost one absent");
        let again = store.accept("feed", &state, &[lost], at(0)).await.unwrap();
        assert_eq!(
            again.new_mentions, 1,
            "the lost mention is stored when polled again"
        );
    }

    /// A batch refused as stale writes nothing to the journal either: its mentions are not
    /// seen, and the next batch's records follow the last committed one.
    #[tokio::test]
    async fn a_stale_batch_leaves_no_journal_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let state = SourceState::default();
        let tip = store.journal.tip();
        let quiet = candidate("quiet", false);
        let mut stale = candidate("stale", true);
        if let Some(a) = stale.alert.as_mut() {
            // Intake read this key as claimed by an alert that does not exist.
            a.thread_keys = vec![ThreadKey {
                key: "author:feed:x".into(),
                read: Some(super::super::ThreadMark {
                    alert: crate::model::AlertId(7),
                    at: at(0),
                }),
            }];
        }
        let err = store
            .accept("feed", &state, &[quiet.clone(), stale], at(0))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Stale { .. }), "{err}");
        assert_eq!(store.journal.tip(), tip);
        assert!(!store.is_seen(&quiet.dedup_keys[0]).unwrap());
        let len = std::fs::metadata(dir.path().join("journal/seen.hashes"))
            .unwrap()
            .len();
        assert_eq!(len, 0, "the hashes were cut back too");
        store.accept("feed", &state, &[quiet], at(0)).await.unwrap();
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.recent_mentions(10).unwrap().len(), 1);
    }

    /// A journal shorter than the store recorded (a disk that lost writes) is refused with
    /// what to do, instead of silently forgetting which mentions were seen.
    #[tokio::test]
    async fn a_journal_that_lost_writes_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store
            .accept(
                "feed",
                &SourceState::default(),
                &[candidate("a", false)],
                at(0),
            )
            .await
            .unwrap();
        drop(store);
        let seg = dir.path().join("journal/0000000000000001.seg");
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(3).unwrap();
        let err = SledStore::open(dir.path())
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("0000000000000001.seg"), "{err}");
        assert!(err.contains("damaged"), "{err}");
        assert!(err.contains("backup"), "{err}");
    }

    /// A closed segment's bodies are dropped after the retention, the open one's never; the
    /// preview reads across segments and sled, newest first.
    #[tokio::test]
    async fn segments_close_by_age_and_only_closed_ones_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let state = SourceState::default();
        store
            .accept(
                "feed",
                &state,
                &[candidate("d0", false), candidate("d0-alert", true)],
                at(0),
            )
            .await
            .unwrap();
        store
            .accept(
                "feed",
                &state,
                &[candidate("d0-later", false)],
                at(0) + chrono::Duration::hours(23),
            )
            .await
            .unwrap();
        store
            .accept("feed", &state, &[candidate("d1", false)], at(1))
            .await
            .unwrap();
        assert_eq!(recent_ids(&store), ["d1", "d0-later", "d0-alert", "d0"]);
        assert_eq!(
            store.journal.tip().segment,
            2,
            "a day-old segment was closed"
        );
        assert!(
            dir.path().join("journal/0000000000000001.segz").is_file()
                && !dir.path().join("journal/0000000000000001.seg").exists(),
            "and packed once the next one held a committed batch"
        );
        // Long after: the closed segment loses its bodies, the open one keeps them.
        let dropped = store.prune_mentions(at(400)).unwrap();
        assert_eq!(
            dropped, 2,
            "d0 and d0-later; the alert's body stays in sled"
        );
        assert_eq!(
            recent_ids(&store),
            ["d1"],
            "the alert's mention left the log as before"
        );
        assert!(dir.path().join("journal/0000000000000001.keys").is_file());
        assert!(!dir.path().join("journal/0000000000000001.seg").exists());
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        let again = store
            .accept("feed", &state, &[candidate("d0", false)], at(401))
            .await
            .unwrap();
        assert_eq!(
            again.new_mentions, 0,
            "a pruned mention is still known after a restart"
        );
        assert_eq!(recent_ids(&store), ["d1"]);
    }

    /// A segment closes a day after its first mention also when the daemon restarted in
    /// between (the arrival is read back from the segment, not taken as the restart).
    #[tokio::test]
    async fn a_segment_closes_a_day_after_its_first_mention_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let state = SourceState::default();
        let store = SledStore::open(dir.path()).unwrap();
        store
            .accept("feed", &state, &[candidate("d0", false)], at(0))
            .await
            .unwrap();
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        store
            .accept(
                "feed",
                &state,
                &[candidate("d1", false)],
                at(1) + chrono::Duration::hours(1),
            )
            .await
            .unwrap();
        assert_eq!(store.journal.tip().segment, 2, "the day-old segment closed");
        assert_eq!(recent_ids(&store), ["d1", "d0"]);
    }

    /// A crash while a closed segment was being packed: a finished `.segz` beside its `.seg`
    /// wins, an unfinished `.segz.tmp` is dropped and the `.seg` packed again after the next
    /// batch; no mention is lost or read twice either way.
    #[tokio::test]
    async fn a_crash_while_packing_a_segment_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal");
        let file = |ext: &str| journal.join(format!("0000000000000001.{ext}"));
        let state = SourceState::default();
        let store = SledStore::open(dir.path()).unwrap();
        two_days(&store).await;
        assert!(file("segz").is_file() && !file("seg").exists());
        drop(store);
        let mut raw = Vec::new();
        flate2::read::DeflateDecoder::new(File::open(file("segz")).unwrap())
            .read_to_end(&mut raw)
            .unwrap();

        // Renamed in, the source not yet removed.
        std::fs::write(file("seg"), &raw).unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(recent_ids(&store), ["d1", "d0"]);
        assert!(!file("seg").exists(), "the packed copy replaced it");
        drop(store);

        // Half written: only the `.seg` and a cut-off `.segz.tmp`.
        let packed = std::fs::read(file("segz")).unwrap();
        std::fs::remove_file(file("segz")).unwrap();
        std::fs::write(file("seg"), &raw).unwrap();
        std::fs::write(file("segz.tmp"), &packed[..packed.len() / 2]).unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        assert!(!file("segz.tmp").exists());
        assert_eq!(recent_ids(&store), ["d1", "d0"]);
        store
            .accept("feed", &state, &[candidate("d2", false)], at(2))
            .await
            .unwrap();
        assert!(
            file("segz").is_file() && !file("seg").exists(),
            "packed again"
        );
        assert_eq!(recent_ids(&store), ["d2", "d1", "d0"]);
        let again = store
            .accept("feed", &state, &[candidate("d0", false)], at(3))
            .await
            .unwrap();
        assert_eq!(again.new_mentions, 0, "its keys are still known");
    }

    /// A packed segment that no longer inflates is an error naming the file, not mentions
    /// silently missing.
    #[tokio::test]
    async fn a_damaged_packed_segment_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        two_days(&store).await;
        let packed = dir.path().join("journal/0000000000000001.segz");
        std::fs::write(&packed, b"not deflate at all").unwrap();
        let err = store.recent_mentions(10).unwrap_err().to_string();
        assert!(err.contains("0000000000000001.segz"), "{err}");
    }
}
