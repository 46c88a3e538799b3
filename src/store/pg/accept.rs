//! Accepting polled (or generated) mentions over PostgreSQL, with the sled backend's meaning
//! (`accept.rs`): the mentions, their dedup keys, their alerts or repeat notes, rule hits,
//! outbox entries, timers, thread keys and the source's new state, in one transaction.
//!
//! How the races sled detected optimistically are decided here:
//! - Dedup: a candidate's keys are inserted into `seen` with `ON CONFLICT DO NOTHING`; a key
//!   another transaction inserted and has not committed makes this insert wait for it, so of
//!   two replicas accepting the same mention one stores it and the other finds it known.
//! - Alert ids: a batch with any alert work locks the `next_alert_id` row first and writes it
//!   back in the same transaction, so ids are 1, 2, 3… without gaps (a rolled-back batch
//!   takes none) and such batches run one at a time.
//! - Thread keys are only written by batches that hold that lock, so checking intake's reads
//!   under it (`StoreError::Stale` when one changed) is as strict as sled's check.

use super::alerts::{db_id, insert_alert, push_audit, push_outbox, set_timer};
use super::tx::{corrupt, db_error, in_transaction, TxError};
use super::PgStore;
use crate::model::{Alert, AlertId, Mention, SourceState, Target};
use crate::store::{
    Accepted, Candidate, MentionPrune, NewAlert, OutboxAction, RepeatOf, StoreError, StoredMention,
    ThreadMark,
};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde::Serialize;

#[allow(dead_code)] // Dispatched to once the `Store` façade has its PostgreSQL variant.
impl PgStore {
    /// Writes a poll's results in one transaction (see the module doc and the sled backend's
    /// `accept`): nothing is written when a thread key intake read changed or a repeat names
    /// an alert its batch did not create (`StoreError::Stale`).
    pub async fn accept(
        &self,
        source: &str,
        state: &SourceState,
        candidates: &[Candidate],
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        self.write_batch(Some((source, state)), candidates, now, None, None)
            .await
    }

    /// `accept_owned` for a poll made under `owner`'s lease on `source` (fencing, issue 17):
    /// the transaction first writes the state (or, for a batch without it, locks the row)
    /// only where `owner` is still the lease's owner, and is rolled back with
    /// `StoreError::LeaseLost` when another replica took the source over, so a replica that
    /// lost its lease mid-poll never writes an older state over the new holder's. The row
    /// stays locked until the commit, so a takeover waits for it and resumes from it.
    pub(crate) async fn accept_leased(
        &self,
        source: &str,
        owner: &str,
        state: Option<SourceState>,
        candidates: Vec<Candidate>,
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        let with_state = state.as_ref().map(|s| (source, s));
        self.write_batch(with_state, &candidates, now, None, Some((source, owner)))
            .await
    }

    /// `accept` for a batch the caller hands over; `source` is `None` for a batch whose
    /// source state a later batch of the same poll writes.
    pub(crate) async fn accept_owned(
        &self,
        source: Option<(String, SourceState)>,
        candidates: Vec<Candidate>,
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        let source = source.as_ref().map(|(name, state)| (name.as_str(), state));
        self.write_batch(source, &candidates, now, None, None).await
    }

    /// Stores candidates from no source (spike alerts) and sets `meta[key]` to `mark` in the
    /// same transaction, even when the candidate turns out to be known; with `before`, only
    /// while the stored mark is earlier (see `SledStore::accept_generated_marked`), else
    /// nothing is written and the result is empty.
    pub(crate) async fn accept_generated_marked<T: Serialize>(
        &self,
        candidates: &[Candidate],
        now: DateTime<Utc>,
        key: &str,
        mark: &T,
        before: Option<DateTime<Utc>>,
    ) -> Result<Accepted, StoreError> {
        let mark =
            serde_json::to_value(mark).expect("store records are plain data and always serialise");
        self.write_batch(None, candidates, now, Some((key, &mark, before)), None)
            .await
    }

    async fn write_batch(
        &self,
        source: Option<(&str, &SourceState)>,
        candidates: &[Candidate],
        now: DateTime<Utc>,
        mark: Option<(&str, &serde_json::Value, Option<DateTime<Utc>>)>,
        lease: Option<(&str, &str)>,
    ) -> Result<Accepted, StoreError> {
        let state = source.map(|(name, state)| {
            (
                name,
                serde_json::to_value(state)
                    .expect("store records are plain data and always serialise"),
            )
        });
        in_transaction!(self, "accepting mentions", |tx| {
            if let Some((name, owner)) = lease {
                let held = match &state {
                    Some((_, state)) => {
                        tx.execute(
                            "UPDATE source_state SET state = $3 WHERE name = $1 AND owner = $2",
                            &[&name, &owner, state],
                        )
                        .await?
                    }
                    None => tx
                        .query(
                            "SELECT 1 FROM source_state WHERE name = $1 AND owner = $2 FOR UPDATE",
                            &[&name, &owner],
                        )
                        .await?
                        .len() as u64,
                };
                if held == 0 {
                    return Err(TxError::Store(StoreError::LeaseLost {
                        name: name.to_string(),
                    }));
                }
            }
            if let Some((key, value, Some(before))) = mark {
                // First, so a second replica waits here for the first one's commit.
                if !super::meta::advance_mark(&tx, key, value, &before).await? {
                    return Ok(Accepted::default());
                }
            }
            let accepted = write_candidates(&tx, candidates, now).await?;
            if let (Some((name, state)), None) = (&state, lease) {
                tx.execute(
                    "INSERT INTO source_state (name, state) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET state = EXCLUDED.state",
                    &[name, state],
                )
                .await?;
            }
            if let Some((key, value, None)) = mark {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    &[&key, value],
                )
                .await?;
            }
            Ok(accepted)
        })
    }
}

fn stale(reason: String) -> TxError {
    TxError::Store(StoreError::Stale { reason })
}

/// The candidates' part of `accept`'s transaction.
async fn write_candidates(
    tx: &Transaction<'_>,
    candidates: &[Candidate],
    now: DateTime<Utc>,
) -> Result<Accepted, TxError> {
    // Batches with alert work run one at a time: the counter row is their lock.
    let mut next_id: Option<i64> = None;
    if candidates.iter().any(|c| c.alert.is_some()) {
        let row = tx
            .query_one(
                "SELECT next_value FROM counters WHERE name = 'next_alert_id' FOR UPDATE",
                &[],
            )
            .await?;
        next_id = Some(row.get(0));
        check_reads(tx, candidates).await?;
    }
    let mut accepted = Accepted::default();
    // Per candidate, the alert it created in this batch: what `Earlier` names.
    let mut created: Vec<Option<(AlertId, Vec<Target>)>> = Vec::with_capacity(candidates.len());
    for c in candidates {
        created.push(None);
        if !claim_keys(tx, &c.dedup_keys, now).await? {
            continue;
        }
        let key = c.mention.key();
        // Only a mention that opens an alert keeps its body past the retention.
        let alerted = matches!(&c.alert, Some(a) if a.repeat_of.is_none());
        let seq = insert_mention(tx, &c.mention, now, alerted).await?;
        accepted.new_mentions += 1;

        let Some(new) = &c.alert else {
            continue;
        };
        if new.log_hit {
            log_hits(tx, &c.mention, new, &key, seq, now).await?;
        }
        if let Some(repeat) = &new.repeat_of {
            let (id, targets) = match &repeat.of {
                RepeatOf::Stored { alert, targets } => (*alert, targets.as_slice()),
                RepeatOf::Earlier(i) => match created.get(*i) {
                    Some(Some((id, targets))) => (*id, targets.as_slice()),
                    _ => {
                        return Err(stale(format!(
                            "mention {key} repeats an alert its batch did not create"
                        )))
                    }
                },
            };
            for target in targets {
                let action = OutboxAction::ThreadNote(repeat.note.clone());
                push_outbox(tx, id, target, action, now).await?;
            }
            accepted.threaded.push(id);
            continue;
        }
        let counter = next_id.as_mut().expect("locked for a batch with alerts");
        let id = AlertId(u64::try_from(*counter).unwrap_or(0));
        *counter += 1;
        let alert = create_alert(tx, id, new, key, now).await?;
        for (kind, due) in &new.timers {
            set_timer(tx, alert.id, *kind, *due).await?;
        }
        for k in &new.thread_keys {
            tx.execute(
                "INSERT INTO threads (key, alert_id, claimed_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET alert_id = EXCLUDED.alert_id, \
                 claimed_at = EXCLUDED.claimed_at",
                &[&k.key, &db_id(alert.id), &now],
            )
            .await?;
        }
        if let Some(last) = created.last_mut() {
            *last = Some((alert.id, alert.targets.clone()));
        }
        accepted.alerts.push(alert);
    }
    if let Some(next) = next_id {
        tx.execute(
            "UPDATE counters SET next_value = $1 WHERE name = 'next_alert_id'",
            &[&next],
        )
        .await?;
    }
    Ok(accepted)
}

/// Fails the transaction if any thread key no longer holds what intake read. Runs before the
/// batch writes anything, so a key claimed earlier in the same batch is not mistaken for a
/// concurrent change.
async fn check_reads(tx: &Transaction<'_>, candidates: &[Candidate]) -> Result<(), TxError> {
    for new in candidates.iter().filter_map(|c| c.alert.as_ref()) {
        for k in &new.thread_keys {
            if read_mark(tx, &k.key).await? != k.read {
                return Err(stale(format!("thread key {} changed", k.key)));
            }
        }
    }
    Ok(())
}

async fn read_mark<C: deadpool_postgres::GenericClient>(
    client: &C,
    key: &str,
) -> Result<Option<ThreadMark>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT alert_id, claimed_at FROM threads WHERE key = $1",
            &[&key],
        )
        .await?;
    Ok(row.map(|r| ThreadMark {
        alert: AlertId(u64::try_from(r.get::<_, i64>(0)).unwrap_or(0)),
        at: r.get(1),
    }))
}

/// Inserts a candidate's dedup keys unless one of them is known (then inserts none and
/// returns false). A key another transaction is inserting makes this wait for its outcome.
async fn claim_keys(
    tx: &Transaction<'_>,
    keys: &[String],
    now: DateTime<Utc>,
) -> Result<bool, TxError> {
    let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    // Sorted: two batches inserting the same keys take their locks in the same order.
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return Ok(true);
    }
    let inserted: Vec<String> = tx
        .query(
            "INSERT INTO seen (key, seen_at) SELECT k, $2 FROM unnest($1::text[]) AS k \
             ON CONFLICT (key) DO NOTHING RETURNING key",
            &[&keys, &now],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if inserted.len() == keys.len() {
        return Ok(true);
    }
    if !inserted.is_empty() {
        tx.execute("DELETE FROM seen WHERE key = ANY($1)", &[&inserted])
            .await?;
    }
    Ok(false)
}

/// Stores a mention's body and appends it to the mention log, in one round trip; returns its
/// place in the log.
async fn insert_mention(
    tx: &Transaction<'_>,
    m: &Mention,
    now: DateTime<Utc>,
    alerted: bool,
) -> Result<i64, TxError> {
    let reach = m.author_reach.map(|r| i64::try_from(r).unwrap_or(i64::MAX));
    let rating = m.rating.map(i16::from);
    let row = tx
        .query_one(
            "WITH body AS (INSERT INTO mentions (source, item_id, source_kind, text, url, \
             title, author, author_reach, published, lang, rating, received_at, alerted) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (source, item_id) DO UPDATE SET source_kind = EXCLUDED.source_kind, \
             text = EXCLUDED.text, url = EXCLUDED.url, title = EXCLUDED.title, \
             author = EXCLUDED.author, author_reach = EXCLUDED.author_reach, \
             published = EXCLUDED.published, lang = EXCLUDED.lang, rating = EXCLUDED.rating, \
             received_at = EXCLUDED.received_at, alerted = EXCLUDED.alerted) \
             INSERT INTO mention_log (source, item_id, received_at) VALUES ($1, $2, $12) \
             RETURNING seq",
            &[
                &m.source,
                &m.item_id,
                &m.source_kind,
                &m.text,
                &m.url,
                &m.title,
                &m.author,
                &reach,
                &m.published,
                &m.lang,
                &rating,
                &now,
                &alerted,
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// One hit per rule of a newly stored mention (`seq`: its place in the mention log).
async fn log_hits(
    tx: &Transaction<'_>,
    m: &Mention,
    new: &NewAlert,
    mention_key: &str,
    seq: i64,
    now: DateTime<Utc>,
) -> Result<(), TxError> {
    for rule in &new.rules {
        tx.execute(
            "INSERT INTO rule_log (rule, mention_seq, at, mention_key, source, sentiment, \
             negative, published, held) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (rule, mention_seq) DO NOTHING",
            &[
                rule,
                &seq,
                &now,
                &mention_key,
                &m.source,
                &new.sentiment,
                &new.negative,
                &m.published,
                &new.held,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Writes a new alert with its root-message outbox entries and its "created" audit entry.
async fn create_alert(
    tx: &Transaction<'_>,
    id: AlertId,
    new: &NewAlert,
    mention_key: String,
    now: DateTime<Utc>,
) -> Result<Alert, TxError> {
    let alert = new.alert(id, mention_key, now);
    insert_alert(tx, &alert).await?;
    // A held-back alert is not posted until someone promotes it.
    if !alert.held {
        for target in &alert.targets {
            push_outbox(tx, id, target, OutboxAction::PostAlert, now).await?;
        }
    }
    push_audit(tx, id, &alert.created_entry()).await?;
    Ok(alert)
}

pub(super) fn mention_from(r: &tokio_postgres::Row) -> StoredMention {
    StoredMention {
        mention: Mention {
            source: r.get("source"),
            item_id: r.get("item_id"),
            source_kind: r.get("source_kind"),
            text: r.get("text"),
            url: r.get("url"),
            title: r.get("title"),
            author: r.get("author"),
            author_reach: r
                .get::<_, Option<i64>>("author_reach")
                .map(|v| u64::try_from(v).unwrap_or(0)),
            published: r.get("published"),
            lang: r.get("lang"),
            rating: r
                .get::<_, Option<i16>>("rating")
                .map(|v| u8::try_from(v).unwrap_or(0)),
        },
        received_at: r.get("received_at"),
    }
}

const MENTION_COLUMNS: &str = "m.source, m.item_id, m.source_kind, m.text, m.url, m.title, \
     m.author, m.author_reach, m.published, m.lang, m.rating, m.received_at";

#[allow(dead_code)] // Dispatched to once the `Store` façade has its PostgreSQL variant.
impl PgStore {
    /// Whether any mention was stored under this dedup key (intake's read before deciding).
    pub(crate) async fn is_seen(&self, key: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT EXISTS (SELECT 1 FROM seen WHERE key = $1)", &[&key])
            .await
            .map_err(|e| db_error(self, "reading a dedup key", &e))?;
        Ok(row.get(0))
    }

    /// What a thread key points at now (intake's read before deciding).
    pub(crate) async fn thread_mark(&self, key: &str) -> Result<Option<ThreadMark>, StoreError> {
        let client = self.client().await?;
        read_mark(&client, key)
            .await
            .map_err(|e| db_error(self, "reading a thread key", &e))
    }

    /// A stored mention; `None` also once its body was dropped after `[store] keep_mentions`.
    pub async fn mention(&self, key: &str) -> Result<Option<StoredMention>, StoreError> {
        let Some((source, item_id)) = key.split_once('\u{1f}') else {
            return Err(corrupt(
                format!("mention {key}"),
                "a mention key is source 0x1f item id",
            ));
        };
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {MENTION_COLUMNS} FROM mentions m WHERE source = $1 AND item_id = $2"
                ),
                &[&source, &item_id],
            )
            .await
            .map_err(|e| db_error(self, "reading a mention", &e))?;
        Ok(row.as_ref().map(mention_from))
    }

    /// How many mentions the mention log holds.
    #[cfg(test)]
    pub(crate) async fn mention_count(&self) -> usize {
        let client = self.client().await.expect("a pooled connection");
        let n: i64 = client
            .query_one("SELECT count(*) FROM mention_log", &[])
            .await
            .expect("counting the mention log")
            .get(0);
        usize::try_from(n).unwrap_or(0)
    }

    /// The newest `n` stored mentions, newest first (for `/desk preview`); of the newest `n`
    /// in the log, those whose body is still kept.
    pub(crate) async fn recent_mentions(&self, n: usize) -> Result<Vec<StoredMention>, StoreError> {
        let client = self.client().await?;
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &format!(
                    "SELECT {MENTION_COLUMNS} FROM \
                     (SELECT seq, source, item_id FROM mention_log ORDER BY seq DESC LIMIT $1) l \
                     JOIN mentions m ON m.source = l.source AND m.item_id = l.item_id \
                     ORDER BY l.seq DESC"
                ),
                &[&n],
            )
            .await
            .map_err(|e| db_error(self, "reading the recent mentions", &e))?;
        Ok(rows.iter().map(mention_from).collect())
    }
}

#[allow(dead_code)] // Dispatched to once the `Store` façade has its PostgreSQL variant.
impl PgStore {
    /// One chunk of the retention (see the sled backend's `prune_mentions_chunk`): drops at
    /// most `limit` bodies of mentions received before `now - keep_mentions` that opened no
    /// alert (their dedup keys stay), oldest first, and forgets at most `limit` mention-log
    /// entries that old. Needs no cursor: what a chunk deleted is gone for the next.
    /// Hands the prune back with whether the walk is done.
    pub(crate) async fn prune_mentions_chunk(
        &self,
        mut prune: MentionPrune,
        limit: usize,
    ) -> (MentionPrune, Result<bool, StoreError>) {
        prune.calls += 1;
        let cutoff = prune.now() - self.keep_mentions;
        let limit_db = i64::try_from(limit).unwrap_or(i64::MAX);
        let result = async {
            let client = self.client().await?;
            let err = |e: tokio_postgres::Error| db_error(self, "pruning old mentions", &e);
            let dropped = client
                .execute(
                    "DELETE FROM mentions m USING (SELECT source, item_id FROM mentions \
                     WHERE NOT alerted AND received_at < $1 ORDER BY received_at LIMIT $2) o \
                     WHERE m.source = o.source AND m.item_id = o.item_id",
                    &[&cutoff, &limit_db],
                )
                .await
                .map_err(err)?;
            let forgotten = client
                .execute(
                    "DELETE FROM mention_log WHERE seq IN (SELECT seq FROM mention_log \
                     WHERE received_at < $1 ORDER BY seq LIMIT $2)",
                    &[&cutoff, &limit_db],
                )
                .await
                .map_err(err)?;
            Ok::<_, StoreError>((dropped, forgotten))
        }
        .await;
        match result {
            Ok((dropped, forgotten)) => {
                prune.dropped += usize::try_from(dropped).unwrap_or(usize::MAX);
                let done = dropped < limit_db as u64 && forgotten < limit_db as u64;
                (prune, Ok(done))
            }
            Err(e) => (prune, Err(e)),
        }
    }
}
