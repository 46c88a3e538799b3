//! Source leases (issue 17): which replica polls a source. Two replicas must never poll one
//! source at once (they would fetch, and spend the API quota on, the same items), and a dead
//! replica's sources must move within a lease period. A lease is the `owner`/`lease_until`
//! pair of the source's `source_state` row, taken or renewed in one conditional upsert and
//! timed by the database's clock, so replicas whose clocks disagree still agree on who holds
//! it. The row's `next_poll` is the holder's schedule, written with each renewal, so a replica
//! taking the source over neither polls early nor waits out a whole interval more.

use super::{query_error, PgStore};
use crate::model::SourceState;
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Who holds a source now, as `/healthz` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lease {
    pub source: String,
    pub owner: String,
    pub until: DateTime<Utc>,
}

/// What a try for a source's lease found.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceLease {
    /// The caller holds the lease now (taken, taken over or renewed).
    Held {
        /// The state the source's last committed poll stored: what a replica taking the
        /// source over resumes from.
        state: SourceState,
        /// How long until the stored next poll (zero when it is due; `None` before the
        /// source's first poll).
        next_poll_in: Option<Duration>,
    },
    /// Another replica's lease is live; `owner` names it when the row could be read.
    Elsewhere { owner: Option<String> },
}

/// Longest lease or schedule written: a longer interval is out of PostgreSQL's range for no use.
const MAX_SPAN: Duration = Duration::from_secs(365 * 24 * 3600);

fn millis(d: Duration) -> f64 {
    d.min(MAX_SPAN).as_millis() as f64
}

impl PgStore {
    /// Takes the lease on `source` for `owner` for `ttl`, or renews it if `owner` holds it
    /// already; a lease another replica let lapse is taken over. `next_poll_in`, when given,
    /// is stored as the source's next poll (from the database's clock); `None` keeps the
    /// stored one. Returns the source's stored state and schedule, or who holds it while
    /// another replica's lease is live.
    pub(crate) async fn lease_source(
        &self,
        source: &str,
        owner: &str,
        ttl: Duration,
        next_poll_in: Option<Duration>,
    ) -> Result<SourceLease, StoreError> {
        let what = "taking a source lease";
        let client = self.client().await?;
        let ttl_ms = millis(ttl);
        let next_ms = next_poll_in.map(millis);
        // The conflict branch updates only when the lease is free, ours or lapsed; otherwise
        // `taken` is empty and the second branch names the holder (from the statement's
        // snapshot: a row another replica inserts at this moment is not seen, `owner` None).
        let rows = client
            .query(
                "WITH taken AS ( \
                   INSERT INTO source_state (name, owner, lease_until, next_poll) \
                   VALUES ($1, $2, clock_timestamp() + $3 * interval '1 millisecond', \
                           clock_timestamp() + $4::float8 * interval '1 millisecond') \
                   ON CONFLICT (name) DO UPDATE \
                   SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until, \
                       next_poll = COALESCE(EXCLUDED.next_poll, source_state.next_poll) \
                   WHERE source_state.owner IS NULL \
                      OR source_state.owner = EXCLUDED.owner \
                      OR source_state.lease_until IS NULL \
                      OR source_state.lease_until < clock_timestamp() \
                   RETURNING state, \
                     EXTRACT(EPOCH FROM (next_poll - clock_timestamp()))::float8 AS next_in \
                 ) \
                 SELECT state, next_in, NULL::text FROM taken \
                 UNION ALL \
                 SELECT NULL::jsonb, NULL::float8, owner FROM source_state \
                 WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM taken)",
                &[&source, &owner, &ttl_ms, &next_ms],
            )
            .await
            .map_err(|e| query_error(&self.url, what, e))?;
        let Some(row) = rows.first() else {
            return Ok(SourceLease::Elsewhere { owner: None });
        };
        let state: Option<serde_json::Value> = row.get(0);
        let Some(state) = state else {
            return Ok(SourceLease::Elsewhere { owner: row.get(2) });
        };
        let next_in: Option<f64> = row.get(1);
        let state = serde_json::from_value(state).map_err(|e| StoreError::Corrupt {
            key: format!("source_state/{source}"),
            reason: e.to_string(),
        })?;
        Ok(SourceLease::Held {
            state,
            next_poll_in: next_in
                .map(|s| Duration::from_secs_f64(s.clamp(0.0, MAX_SPAN.as_secs_f64()))),
        })
    }

    /// Gives up `owner`'s lease on `source` (at shutdown), so another replica takes the
    /// source at its next try instead of after the lease period. A lease `owner` no longer
    /// holds is left alone; the stored next poll stays, so the next holder keeps the schedule.
    pub(crate) async fn release_source(&self, source: &str, owner: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE source_state SET owner = NULL, lease_until = NULL \
                 WHERE name = $1 AND owner = $2",
                &[&source, &owner],
            )
            .await
            .map_err(|e| query_error(&self.url, "releasing a source lease", e))?;
        Ok(())
    }

    /// Every live lease, by source (for `/healthz`: which replica polls what).
    pub(crate) async fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, owner, lease_until FROM source_state \
                 WHERE owner IS NOT NULL AND lease_until >= clock_timestamp() ORDER BY name",
                &[],
            )
            .await
            .map_err(|e| query_error(&self.url, "reading source leases", e))?;
        Ok(rows
            .iter()
            .map(|r| Lease {
                source: r.get(0),
                owner: r.get(1),
                until: r.get(2),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::throwaway;
    use super::*;

    impl SourceLease {
        /// The stored state when held, `None` when another replica holds the source.
        fn state(self) -> Option<SourceState> {
            match self {
                SourceLease::Held { state, .. } => Some(state),
                SourceLease::Elsewhere { .. } => None,
            }
        }
    }

    const SHORT: Duration = Duration::from_millis(300);
    const LONG: Duration = Duration::from_secs(60);

    /// Tries for `source`'s lease as `owner` every 25 ms until it is granted (the holder's
    /// lease lapsed), for at most 5 s: the stored state and next poll it was taken with.
    async fn take_over(
        store: &PgStore,
        source: &str,
        owner: &str,
    ) -> Option<(SourceState, Option<Duration>)> {
        for _ in 0..200 {
            if let SourceLease::Held {
                state,
                next_poll_in,
            } = store.lease_source(source, owner, LONG, None).await.unwrap()
            {
                return Some((state, next_poll_in));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        None
    }

    /// One replica holds a source; a second is refused while the lease is live, renewing
    /// keeps it, and once the holder stops renewing the other takes over after the lease
    /// period, with the state the first one stored.
    #[tokio::test]
    async fn one_replica_holds_a_source_until_its_lease_lapses() {
        let Some(db) = throwaway::database().await else {
            return;
        };
        let store = PgStore::connect(&db.config()).await.unwrap();
        assert_eq!(
            store
                .lease_source("hn", "a", SHORT, None)
                .await
                .unwrap()
                .state(),
            Some(SourceState::default()),
            "a new source starts from an empty state"
        );
        assert_eq!(
            store
                .lease_source("hn", "b", SHORT, None)
                .await
                .unwrap()
                .state(),
            None
        );
        assert!(store
            .lease_source("hn", "a", SHORT, None)
            .await
            .unwrap()
            .state()
            .is_some());
        let held = store.leases().await.unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(
            (held[0].source.as_str(), held[0].owner.as_str()),
            ("hn", "a")
        );

        // What "a" stored (accept writes it) is what "b" resumes from.
        let state = SourceState {
            cursor: Some("1700000000".into()),
            ..SourceState::default()
        };
        let client = store.client().await.unwrap();
        client
            .execute(
                "UPDATE source_state SET state = $1 WHERE name = 'hn'",
                &[&serde_json::to_value(&state).unwrap()],
            )
            .await
            .unwrap();
        // "a" stops renewing (it died): "b" gets the source once the lease lapses.
        let taken = take_over(&store, "hn", "b").await.map(|(state, _)| state);
        assert_eq!(
            taken,
            Some(state),
            "taken over, resuming from the stored state"
        );
        assert_eq!(
            store
                .lease_source("hn", "a", SHORT, None)
                .await
                .unwrap()
                .state(),
            None
        );
    }

    /// A replica that shuts down lets go at once; releasing a lease it no longer holds does
    /// not take it from the replica that does.
    #[tokio::test]
    async fn a_released_lease_moves_at_once_and_a_stale_release_changes_nothing() {
        let Some(db) = throwaway::database().await else {
            return;
        };
        let store = PgStore::connect(&db.config()).await.unwrap();
        assert!(store
            .lease_source("rss", "a", LONG, None)
            .await
            .unwrap()
            .state()
            .is_some());
        store.release_source("rss", "a").await.unwrap();
        assert!(store
            .lease_source("rss", "b", LONG, None)
            .await
            .unwrap()
            .state()
            .is_some());
        store.release_source("rss", "a").await.unwrap();
        assert_eq!(
            store
                .lease_source("rss", "a", LONG, None)
                .await
                .unwrap()
                .state(),
            None
        );
        assert_eq!(store.leases().await.unwrap()[0].owner, "b");
    }

    /// Many replicas racing for one free source: exactly one gets it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_replicas_get_a_source_exactly_once() {
        let Some(db) = throwaway::database().await else {
            return;
        };
        let store = PgStore::connect(&db.config()).await.unwrap();
        let tries: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .lease_source("bluesky", &format!("r{i}"), LONG, None)
                        .await
                        .unwrap()
                        .state()
                        .is_some()
                })
            })
            .collect();
        let mut winners = 0;
        for t in tries {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1);
    }

    /// Another replica's lease names its holder; the next poll time stored with a renewal
    /// is what a replica taking the source over gets (counted down by the database's clock),
    /// and a renewal without one keeps it.
    #[tokio::test]
    async fn a_takeover_gets_the_holders_name_and_its_stored_schedule() {
        let Some(db) = throwaway::database().await else {
            return;
        };
        let store = PgStore::connect(&db.config()).await.unwrap();
        let short = Duration::from_millis(500);
        let first = store.lease_source("gh", "a", short, None).await.unwrap();
        assert_eq!(
            first,
            SourceLease::Held {
                state: SourceState::default(),
                next_poll_in: None
            },
            "no schedule before the first poll"
        );
        assert_eq!(
            store.lease_source("gh", "b", LONG, None).await.unwrap(),
            SourceLease::Elsewhere {
                owner: Some("a".into())
            }
        );
        // "a" polled and stores its next poll an hour from now; a plain renewal keeps it.
        store
            .lease_source("gh", "a", short, Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        store.lease_source("gh", "a", short, None).await.unwrap();
        let (_, next) = take_over(&store, "gh", "b")
            .await
            .expect("taken over once the lease lapsed");
        let next = next.unwrap();
        assert!(
            next > Duration::from_secs(3000) && next <= Duration::from_secs(3600),
            "the stored schedule, not a poll at once: {next:?}"
        );
    }

    /// Fencing: once another replica took a source over, the replica that held it can store
    /// nothing of its poll (neither the batch with the state nor one before it), and what the
    /// new holder stores stands; a webhook's write, which no lease guards, still goes through.
    #[tokio::test]
    async fn a_replica_whose_lease_was_taken_cannot_store_its_poll() {
        use crate::store::test_util::candidate;
        let Some(db) = throwaway::database().await else {
            return;
        };
        let store = PgStore::connect(&db.config()).await.unwrap();
        let now = Utc::now();
        let polled = |c: &str| SourceState {
            cursor: Some(c.into()),
            ..SourceState::default()
        };
        store
            .lease_source("feed", "a", Duration::from_millis(300), None)
            .await
            .unwrap();
        // While it holds the lease, "a" stores its polls.
        store
            .accept_leased(
                "feed",
                "a",
                Some(polled("1")),
                vec![candidate("1", true)],
                now,
            )
            .await
            .unwrap();
        // "a" stalls; its lease lapses and "b" takes the source over from the stored state.
        let taken = take_over(&store, "feed", "b").await.map(|(state, _)| state);
        assert_eq!(taken, Some(polled("1")));
        store
            .accept_leased(
                "feed",
                "b",
                Some(polled("2")),
                vec![candidate("2", true)],
                now,
            )
            .await
            .unwrap();

        // "a" wakes up with its poll of items 3 and 4: refused, nothing written.
        for state in [None, Some(polled("stale"))] {
            let e = store
                .accept_leased("feed", "a", state, vec![candidate("3", true)], now)
                .await
                .unwrap_err();
            assert!(
                matches!(&e, StoreError::LeaseLost { name } if name == "feed"),
                "{e:?}"
            );
            assert!(
                e.to_string().contains("another replica took it over"),
                "{e}"
            );
        }
        assert_eq!(store.source_state("feed").await.unwrap(), polled("2"));
        assert_eq!(store.mention_count().await, 2, "items 1 and 2 only");
        assert_eq!(store.alert_count().await, 2);

        // A webhook source has no lease: its deliveries are stored by whichever replica
        // takes the request.
        store
            .accept_owned(
                Some(("hook".into(), SourceState::default())),
                vec![candidate("4", true)],
                now,
            )
            .await
            .unwrap();
        assert_eq!(store.mention_count().await, 3);
        assert!(store
            .leases()
            .await
            .unwrap()
            .iter()
            .all(|l| l.source != "hook"));
    }
}
