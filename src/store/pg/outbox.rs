//! The outbox over PostgreSQL: deliveries waiting for a chat platform, their attempts and
//! parking, and the message references a delivery leaves behind, with the sled backend's
//! meaning (`outbox.rs`). An entry is one row: the whole `OutboxEntry` as JSON beside the
//! columns queries use (`not_before`, `parked`), both written by the same statement.

use super::alerts::{db_id, push_outbox};
use super::tx::{corrupt, db_error, in_transaction, TxError};
use super::PgStore;
use crate::model::{AlertId, DigestPost, MessageRef, Target};
use crate::store::outbox::DIGEST_ENTRY;
use crate::store::{OutboxAction, OutboxEntry, OutboxKey, OutboxSummary, Parked, StoreError};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde::{de::DeserializeOwned, Serialize};
use tokio_postgres::types::Json;

fn db_seq(key: OutboxKey) -> i64 {
    i64::try_from(key.seq()).unwrap_or(i64::MAX)
}

fn entry_from(seq: i64, data: serde_json::Value) -> Result<(OutboxKey, OutboxEntry), StoreError> {
    let entry = serde_json::from_value(data).map_err(|e| corrupt(format!("outbox {seq}"), e))?;
    Ok((OutboxKey::from_seq(u64::try_from(seq).unwrap_or(0)), entry))
}

/// What writing an entry back does to its claim (`claims.rs`).
#[derive(Clone, Copy)]
enum ClaimWrite {
    /// Leave it: not the delivering replica's write (`retry_now`).
    Keep,
    /// The delivery is recorded: this replica's claim ends (another replica's is left).
    Release,
    /// A post is about to start: renew this replica's claim for a full period, and refuse
    /// ([`StoreError::ClaimLost`]) an entry another replica has claimed since.
    Renew,
}

/// Writes an entry's row back: its JSON and the columns that repeat it, and its claim.
async fn write_entry(
    tx: &Transaction<'_>,
    store: &PgStore,
    seq: i64,
    e: &OutboxEntry,
    claim: ClaimWrite,
) -> Result<(), TxError> {
    let columns: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&seq, &Json(e), &e.not_before, &e.parked.is_some()];
    let set = "UPDATE outbox SET data = $2, not_before = $3, parked = $4";
    match claim {
        ClaimWrite::Keep => {
            tx.execute(&format!("{set} WHERE seq = $1"), &columns)
                .await?
        }
        ClaimWrite::Release => {
            let sql = format!(
                "{set}, claimed_by = NULLIF(claimed_by, $5), \
                 claimed_until = CASE WHEN claimed_by = $5 THEN NULL ELSE claimed_until END \
                 WHERE seq = $1"
            );
            let params = [&columns[..], &[&store.replica]].concat();
            tx.execute(&sql, &params).await?
        }
        ClaimWrite::Renew => {
            let sql = format!(
                "{set}, claimed_by = $5, \
                 claimed_until = clock_timestamp() + $6 * interval '1 millisecond' \
                 WHERE seq = $1"
            );
            let period = store.claim_period_ms();
            let params = [&columns[..], &[&store.replica, &period]].concat();
            tx.execute(&sql, &params).await?
        }
    };
    Ok(())
}

#[allow(dead_code)] // Dispatched to once the `Store` façade has its PostgreSQL variant.
impl PgStore {
    /// The outbox as `/healthz` and `/metrics` show it: how many entries wait, when the
    /// oldest was queued, and every parked entry, oldest first (the partial indexes answer
    /// all three without reading every entry).
    pub(crate) async fn outbox_summary(&self) -> Result<OutboxSummary, StoreError> {
        let client = self.client().await?;
        let err = |e: tokio_postgres::Error| db_error(self, "reading the outbox summary", &e);
        let pending: i64 = client
            .query_one("SELECT count(*) FROM outbox", &[])
            .await
            .map_err(err)?
            .get(0);
        let oldest = client
            .query_opt("SELECT seq, data FROM outbox ORDER BY seq LIMIT 1", &[])
            .await
            .map_err(err)?
            .map(|r| entry_from(r.get(0), r.get(1)).map(|(_, e)| e.created_at))
            .transpose()?;
        let parked = client
            .query(
                "SELECT seq, data FROM outbox WHERE parked ORDER BY seq",
                &[],
            )
            .await
            .map_err(err)?
            .into_iter()
            .map(|r| entry_from(r.get(0), r.get(1)).map(|(_, e)| e))
            .collect::<Result<_, _>>()?;
        Ok(OutboxSummary {
            pending: u64::try_from(pending).unwrap_or(0),
            oldest,
            parked,
        })
    }

    /// Outbox entries in creation order.
    pub async fn outbox(&self) -> Result<Vec<(OutboxKey, OutboxEntry)>, StoreError> {
        self.outbox_page(None, None, usize::MAX).await
    }

    /// Up to `limit` entries with keys strictly between `after` and `before`, oldest first
    /// (see `SledStore::outbox_page`).
    pub async fn outbox_page(
        &self,
        after: Option<OutboxKey>,
        before: Option<OutboxKey>,
        limit: usize,
    ) -> Result<Vec<(OutboxKey, OutboxEntry)>, StoreError> {
        let after = after.map_or(-1, |k| i64::try_from(k.seq()).unwrap_or(i64::MAX));
        let before = before.map_or(i64::MAX, |k| i64::try_from(k.seq()).unwrap_or(i64::MAX));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        client
            .query(
                "SELECT seq, data FROM outbox WHERE seq > $1 AND seq < $2 ORDER BY seq LIMIT $3",
                &[&after, &before, &limit],
            )
            .await
            .map_err(|e| db_error(self, "reading the outbox", &e))?
            .into_iter()
            .map(|r| entry_from(r.get(0), r.get(1)))
            .collect()
    }

    /// Marks an entry as being sent (committed) before the platform is called.
    pub async fn mark_in_flight(
        &self,
        key: OutboxKey,
        now: DateTime<Utc>,
    ) -> Result<OutboxEntry, StoreError> {
        self.update_outbox(
            key,
            "marking an outbox entry in flight",
            ClaimWrite::Renew,
            |e| {
                e.attempts += 1;
                e.in_flight_since.get_or_insert(now);
            },
        )
        .await
    }

    /// Records a failed attempt: `attempts` is the entry's attempt count after it, and the
    /// entry is retried at `not_before`.
    pub(crate) async fn record_failure(
        &self,
        key: OutboxKey,
        attempts: u32,
        error: &str,
        not_before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.update_outbox(
            key,
            "recording a failed delivery",
            ClaimWrite::Release,
            |e| {
                e.attempts = attempts;
                e.last_error = Some(error.to_string());
                e.not_before = Some(not_before);
            },
        )
        .await?;
        Ok(())
    }

    /// Parks an entry the platform refused for good (`parked.reason`); it is tried again at
    /// `not_before` (`None`: as soon as the relay lets its platform and channel through). A
    /// park for the reason it is already parked for keeps its first `since`.
    pub(crate) async fn park(
        &self,
        key: OutboxKey,
        attempts: u32,
        error: &str,
        parked: &Parked,
        not_before: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.update_outbox(key, "parking an outbox entry", ClaimWrite::Release, |e| {
            e.attempts = attempts;
            e.last_error = Some(error.to_string());
            e.not_before = not_before;
            if e.parked.as_ref().map(|p| &p.reason) != Some(&parked.reason) {
                e.parked = Some(parked.clone());
            }
        })
        .await?;
        Ok(())
    }

    /// Makes every entry `which` accepts due now (its cause is gone, or the daemon restarted);
    /// parked entries keep their reason until they are delivered. Returns how many.
    pub(crate) async fn retry_now(
        &self,
        which: impl Fn(&OutboxEntry) -> bool,
    ) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let waiting: Vec<(OutboxKey, OutboxEntry)> = client
            .query(
                "SELECT seq, data FROM outbox WHERE not_before IS NOT NULL ORDER BY seq",
                &[],
            )
            .await
            .map_err(|e| db_error(self, "reading the waiting outbox entries", &e))?
            .into_iter()
            .map(|r| entry_from(r.get(0), r.get(1)))
            .collect::<Result<_, _>>()?;
        drop(client);
        let mut n = 0;
        for (key, entry) in waiting {
            if entry.not_before.is_some() && which(&entry) {
                match self
                    .update_outbox(key, "making an outbox entry due", ClaimWrite::Keep, |e| {
                        e.not_before = None
                    })
                    .await
                {
                    Ok(_) => n += 1,
                    // Delivered (and removed) since it was read: nothing left to make due.
                    Err(StoreError::Corrupt { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(n)
    }

    /// The platform has the message: drop the outbox entry and keep the reference, in one
    /// transaction, so a restart never posts it again.
    pub(crate) async fn complete(
        &self,
        key: OutboxKey,
        entry: &OutboxEntry,
        msg: &MessageRef,
    ) -> Result<(), StoreError> {
        let target = entry.target.to_string();
        let alert = db_id(entry.alert_id);
        in_transaction!(self, "completing an outbox entry", |tx| {
            tx.execute("DELETE FROM outbox WHERE seq = $1", &[&db_seq(key)])
                .await?;
            tx.execute(
                "INSERT INTO message_refs (alert_id, target, data) VALUES ($1, $2, $3) \
                 ON CONFLICT (alert_id, target) DO UPDATE SET data = EXCLUDED.data",
                &[&alert, &target, &Json(msg)],
            )
            .await?;
            Ok(())
        })
    }

    /// The platform did what an entry asked and there is no reference to keep: drop it.
    pub async fn finish(&self, key: OutboxKey) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM outbox WHERE seq = $1", &[&db_seq(key)])
            .await
            .map_err(|e| db_error(self, "finishing an outbox entry", &e))?;
        Ok(())
    }

    /// Puts an entry off until `not_before` without counting an attempt.
    pub(crate) async fn defer(
        &self,
        key: OutboxKey,
        not_before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.update_outbox(key, "deferring an outbox entry", ClaimWrite::Release, |e| {
            e.not_before = Some(not_before)
        })
        .await?;
        Ok(())
    }

    /// Where an alert was posted, one reference per target.
    #[cfg(test)]
    pub(crate) async fn message_refs(&self, id: AlertId) -> Result<Vec<MessageRef>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT data FROM message_refs WHERE alert_id = $1 ORDER BY target",
                &[&db_id(id)],
            )
            .await
            .map_err(|e| db_error(self, "reading message references", &e))?
            .into_iter()
            .map(|r| {
                serde_json::from_value(r.get(0))
                    .map_err(|e| corrupt(format!("message ref of alert {id}"), e))
            })
            .collect()
    }

    /// The message reference of an alert on one target, if it was posted there.
    pub async fn message_ref(
        &self,
        id: AlertId,
        target: &Target,
    ) -> Result<Option<MessageRef>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                "SELECT data FROM message_refs WHERE alert_id = $1 AND target = $2",
                &[&db_id(id), &target.to_string()],
            )
            .await
            .map_err(|e| db_error(self, "reading a message reference", &e))?
            .map(|r| {
                serde_json::from_value(r.get(0))
                    .map_err(|e| corrupt(format!("message ref of alert {id}"), e))
            })
            .transpose()
    }

    /// Queues a digest for each target and, when `slot` is given, records it as sent, in one
    /// transaction: a crash either keeps both or neither, so a slot is neither lost nor
    /// posted twice. The slot is written (and the digest queued) only while the stored one is
    /// older (see `SledStore::enqueue_digest`): of two replicas at the same slot, the second
    /// waits for the first's commit, finds the slot sent and queues nothing (`false`).
    pub async fn enqueue_digest<T: Serialize + DeserializeOwned + PartialOrd + Sync>(
        &self,
        slot: Option<(&str, &T)>,
        targets: &[Target],
        post: &DigestPost,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let encoded = slot.map(|(k, v)| {
            (
                k.to_string(),
                serde_json::to_value(v).expect("store records are plain data and always serialise"),
            )
        });
        in_transaction!(self, "queueing a digest", |tx| {
            if let (Some((k, v)), Some((_, slot))) = (&encoded, slot) {
                if !super::meta::advance_mark(&tx, k, v, slot).await? {
                    return Ok(false);
                }
            }
            for t in targets {
                let action = OutboxAction::Digest(Box::new(post.clone()));
                push_outbox(&tx, DIGEST_ENTRY, t, action, now).await?;
            }
            Ok(true)
        })
    }

    /// Rewrites an entry with `f` under a row lock and returns it, doing `claim` to its claim.
    /// A missing entry is an error; an unreadable one is deleted (as sled does) and an error
    /// too.
    async fn update_outbox(
        &self,
        key: OutboxKey,
        what: &'static str,
        claim: ClaimWrite,
        f: impl Fn(&mut OutboxEntry),
    ) -> Result<OutboxEntry, StoreError> {
        let seq = db_seq(key);
        let missing = || corrupt(format!("outbox {seq}"), "missing or unreadable");
        let outcome: Option<OutboxEntry> = in_transaction!(self, what, |tx| {
            let Some(row) = tx
                .query_opt(
                    "SELECT data, claimed_by FROM outbox WHERE seq = $1 FOR UPDATE",
                    &[&seq],
                )
                .await?
            else {
                return Ok(None);
            };
            let Ok(mut entry) = serde_json::from_value::<OutboxEntry>(row.get(0)) else {
                tx.execute("DELETE FROM outbox WHERE seq = $1", &[&seq])
                    .await?;
                return Ok(None);
            };
            let owner: Option<String> = row.get(1);
            // A post starts only under this replica's own live claim: not under another's
            // (it took the entry over), nor under none (another replica took it over,
            // delivered or failed, and released it while this one stalled; its copy of the
            // entry would not show that the message may be on the platform already).
            if matches!(claim, ClaimWrite::Renew) && owner.as_deref() != Some(&self.replica) {
                return Err(TxError::Store(StoreError::ClaimLost {
                    seq: key.seq(),
                    owner: owner.unwrap_or_else(|| "(released)".to_string()),
                }));
            }
            f(&mut entry);
            write_entry(&tx, self, seq, &entry, claim).await?;
            Ok(Some(entry))
        })?;
        outcome.ok_or_else(missing)
    }
}
