//! Request ids (a replayed or retried Slack/Discord request is applied once, whichever replica
//! it reaches) and mutes: sled's `requests` and `mutes` trees as tables. The primary key of
//! `requests` is the dedup: of any number of replicas inserting one id at once, exactly one
//! inserts the row, and only that one acts.

use super::{query_error, PgStore};
use crate::store::StoreError;
use chrono::{DateTime, TimeZone, Utc};

#[allow(dead_code)] // Called through the `Store` façade once it has a PostgreSQL variant.
impl PgStore {
    /// Records a request id and says whether it is new (see `SledStore::first_request`): a
    /// concurrent insert of the same id waits for the first to commit and then inserts
    /// nothing, so it answers `false`.
    pub(crate) async fn first_request(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO requests (key, received_at) VALUES ($1, $2) \
                 ON CONFLICT (key) DO NOTHING",
                &[&key, &now],
            )
            .await
            .map_err(|e| query_error(&self.url, "recording a request id", e))?;
        Ok(inserted == 1)
    }

    /// Forgets request ids older than `before`, in whole seconds as sled keeps them (an id
    /// received in the same second as `before` stays). Returns how many were removed.
    /// Drops the thread marks set before `before` (sled's `prune_thread_marks`).
    pub(crate) async fn prune_thread_marks(
        &self,
        before: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        // No walk to bound here: PostgreSQL reads the table itself, outside this process.
        let client = self.client().await?;
        let removed = client
            .execute("DELETE FROM threads WHERE claimed_at < $1", &[&before])
            .await
            .map_err(|e| query_error(&self.url, "pruning thread marks", e))?;
        Ok(removed as usize)
    }

    pub(crate) async fn prune_requests(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let removed = client
            .execute(
                "DELETE FROM requests WHERE received_at < $1",
                &[&whole_second(before)],
            )
            .await
            .map_err(|e| query_error(&self.url, "pruning request ids", e))?;
        Ok(removed as usize)
    }

    /// Mutes an author or site (`author:<kind>:<name>` / `site:<domain>`) from now on; muting
    /// again records the later muter and time, as sled's overwrite does.
    pub(crate) async fn mute(
        &self,
        key: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO mutes (key, muted_by, muted_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE \
                 SET muted_by = EXCLUDED.muted_by, muted_at = EXCLUDED.muted_at",
                &[&key, &by, &now],
            )
            .await
            .map_err(|e| query_error(&self.url, "writing a mute", e))?;
        Ok(())
    }

    pub async fn is_muted(&self, key: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM mutes WHERE key = $1)",
                &[&key],
            )
            .await
            .map_err(|e| query_error(&self.url, "reading a mute", e))?;
        Ok(row.get(0))
    }
}

/// `at` cut down to its whole second (towards the past): sled keys these logs by whole
/// seconds, so "older than `before`" means an earlier second than `before`'s.
pub(super) fn whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_opt(at.timestamp(), 0)
        .single()
        .expect("a whole second of a valid time is valid")
}

#[cfg(test)]
mod tests {
    use super::super::test_store::{sql, store};
    use super::*;
    use chrono::Duration;

    /// sled's test, on PostgreSQL: a replay is refused, ids older than the cutoff are
    /// forgotten and recent ones stay; the cutoff counts whole seconds as sled does.
    #[tokio::test]
    async fn request_ids_are_remembered_then_pruned() {
        let Some((_db, store)) = store().await else {
            return;
        };
        let t0 = Utc::now() - Duration::days(2);
        assert!(store.first_request("slack:command:T1", t0).await.unwrap());
        assert!(
            !store.first_request("slack:command:T1", t0).await.unwrap(),
            "a replay is refused"
        );
        assert!(store
            .first_request("slack:command:T2", Utc::now())
            .await
            .unwrap());
        assert_eq!(
            store
                .prune_requests(Utc::now() - Duration::days(1))
                .await
                .unwrap(),
            1
        );
        assert!(
            !store
                .first_request("slack:command:T2", Utc::now())
                .await
                .unwrap(),
            "recent ids stay"
        );
        assert!(
            store.first_request("slack:command:T1", t0).await.unwrap(),
            "a pruned id is new again"
        );

        // Same second as the cutoff: kept (sled compares whole seconds); the second before:
        // pruned.
        let cutoff: DateTime<Utc> = "2020-06-01T10:00:00.700Z".parse().unwrap();
        let same = cutoff - Duration::milliseconds(500);
        let before = cutoff - Duration::milliseconds(701);
        assert!(store.first_request("same", same).await.unwrap());
        assert!(store.first_request("before", before).await.unwrap());
        assert_eq!(
            store.prune_requests(cutoff).await.unwrap(),
            1,
            "only `before`"
        );
        assert!(!store.first_request("same", same).await.unwrap());
        assert!(store.first_request("before", before).await.unwrap());
    }

    /// Slack retries a callback to whichever replica answers: twenty tasks on two replicas
    /// (separate pools) racing to record one request id get exactly one `true`, for each of
    /// several ids.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_replicas_apply_a_request_exactly_once() {
        let Some((db, a)) = store().await else { return };
        let b = PgStore::connect(&db.config()).await.unwrap();
        for round in 0..5 {
            let key = format!("slack:interaction:trigger-{round}");
            let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
            let tasks: Vec<_> = (0..20)
                .map(|i| {
                    let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                    let (key, barrier) = (key.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        store.first_request(&key, Utc::now()).await.unwrap()
                    })
                })
                .collect();
            let mut firsts = 0;
            for t in tasks {
                firsts += usize::from(t.await.unwrap());
            }
            assert_eq!(firsts, 1, "round {round}: {firsts} tasks acted on {key}");
        }
        let rows: i64 = sql(&db)
            .await
            .query_one("SELECT count(*) FROM requests", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 5);
    }

    /// A mute is seen by every replica at once; muting again keeps one mute and records the
    /// later muter; other keys stay unmuted.
    #[tokio::test]
    async fn a_mute_is_seen_by_every_replica() {
        let Some((db, a)) = store().await else { return };
        let b = PgStore::connect(&db.config()).await.unwrap();
        assert!(!b.is_muted("author:rss:spammer").await.unwrap());
        let t0: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        a.mute("author:rss:spammer", "slack:U1", t0).await.unwrap();
        assert!(b.is_muted("author:rss:spammer").await.unwrap());
        assert!(!b.is_muted("author:rss:other").await.unwrap());
        assert!(!b.is_muted("site:example.com").await.unwrap());
        b.mute("author:rss:spammer", "slack:U2", t0 + Duration::hours(1))
            .await
            .unwrap();
        assert!(a.is_muted("author:rss:spammer").await.unwrap());
        let row = sql(&db)
            .await
            .query_one("SELECT muted_by, muted_at FROM mutes", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "slack:U2");
        assert_eq!(row.get::<_, DateTime<Utc>>(1), t0 + Duration::hours(1));
    }
}
