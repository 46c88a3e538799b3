//! The poll loop's lease gate over the store (issue 17): `sources::lease::LeaseGate`, which
//! the sources define and cannot implement themselves (they never touch the store). Only a
//! PostgreSQL store has one; on sled every source is held by the one process.

use crate::sources::lease::{Hold, LeaseError, LeaseGate};
use crate::store::{SourceLease, Store};
use std::sync::Arc;
use std::time::Duration;

/// This replica's source leases in the store.
pub(crate) struct StoreLeases {
    store: Store,
    replica: String,
    period: Duration,
}

impl StoreLeases {
    /// The gate for `store`'s replica, or `None` on sled (no leases: always held).
    pub(crate) fn gate(store: &Store) -> Option<Arc<dyn LeaseGate>> {
        let replica = store.replica()?.to_string();
        let period = store.lease_period()?;
        Some(Arc::new(StoreLeases {
            store: store.clone(),
            replica,
            period,
        }))
    }
}

#[async_trait::async_trait]
impl LeaseGate for StoreLeases {
    fn replica(&self) -> &str {
        &self.replica
    }

    fn period(&self) -> Duration {
        self.period
    }

    async fn hold(&self, source: &str, next_poll_in: Option<Duration>) -> Result<Hold, LeaseError> {
        match self.store.lease_source(source, next_poll_in).await {
            Ok(SourceLease::Held {
                state,
                next_poll_in,
            }) => Ok(Hold::Held {
                state,
                next_poll_in,
            }),
            Ok(SourceLease::Elsewhere { owner }) => Ok(Hold::Elsewhere { holder: owner }),
            Err(e) => Err(LeaseError(e.to_string())),
        }
    }

    async fn release(&self, source: &str) -> Result<(), LeaseError> {
        self.store
            .release_source(source)
            .await
            .map_err(|e| LeaseError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    //! Several replicas on one throwaway database, each a `Store` with its own name, the
    //! real intake and a poll loop with this gate, polling one source.
    use super::*;
    use crate::clock::Clock;
    use crate::intake::{Intake, Judge};
    use crate::metrics::Metrics;
    use crate::model::{Mention, SourceState};
    use crate::rules::RuleSet;
    use crate::shutdown::{self, ShutdownTrigger};
    use crate::sources::poll::{Health, Poller};
    use crate::sources::{Source, SourceError, SourceKind};
    use crate::store::pg::throwaway::{self, TestDatabase};
    use crate::store::StoreConfig;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use tokio::task::JoinHandle;
    use tokio::time::Instant;

    /// Short, so a takeover comes soon; a third of it (how long a lease call may take before
    /// it counts as a loss) is still long on a loaded machine.
    const LEASE: Duration = Duration::from_secs(5);
    /// How long a test waits for something that should happen within a lease period or two.
    const PATIENCE: Duration = Duration::from_secs(60);

    /// One poll: which replica made it, when, and the cursor it resumed from.
    #[derive(Debug, Clone)]
    struct Poll {
        replica: String,
        at: Instant,
        given: u64,
    }

    type Log = Arc<Mutex<Vec<Poll>>>;

    /// A polled source counting its polls in its cursor (each poll resumes from `n` and
    /// stores `n + 1`, with one new item), optionally "connected" like a stream: connected
    /// by `poll`, disconnected by `disconnect`.
    struct Counter {
        replica: String,
        log: Log,
        connected: Arc<AtomicBool>,
    }

    #[async_trait::async_trait]
    impl Source for Counter {
        fn name(&self) -> &str {
            "feed"
        }
        fn kind(&self) -> SourceKind {
            SourceKind::Rss
        }
        async fn poll(&mut self, state: &mut SourceState) -> Result<Vec<Mention>, SourceError> {
            self.connected.store(true, Ordering::SeqCst);
            let given: u64 = state.cursor.as_deref().map_or(0, |c| c.parse().unwrap());
            self.log.lock().unwrap().push(Poll {
                replica: self.replica.clone(),
                at: Instant::now(),
                given,
            });
            state.cursor = Some((given + 1).to_string());
            Ok(vec![Mention {
                item_id: format!("{given}"),
                source: "feed".into(),
                source_kind: "rss".into(),
                url: None,
                title: None,
                text: format!("post {given}"),
                author: None,
                author_reach: None,
                published: None,
                lang: None,
                rating: None,
            }])
        }
        fn disconnect(&mut self) {
            self.connected.store(false, Ordering::SeqCst);
        }
    }

    /// One replica: its store, health, the source's connection flag, and its tasks.
    struct Replica {
        store: Store,
        health: Health,
        connected: Arc<AtomicBool>,
        stop: ShutdownTrigger,
        poller: JoinHandle<()>,
        intake: JoinHandle<()>,
    }

    async fn open(db: &TestDatabase, name: &str, lease: Duration) -> Store {
        let mut pg = db.config();
        pg.replica = name.into();
        pg.lease = lease;
        let mut cfg = StoreConfig::at("unused-by-postgres");
        cfg.backend = crate::store::config::Backend::Postgres(pg);
        Store::open_with(&cfg).await.unwrap()
    }

    async fn start(db: &TestDatabase, name: &str, every: Duration, log: &Log) -> Replica {
        let store = open(db, name, LEASE).await;
        let health = Health::new();
        let connected = Arc::new(AtomicBool::new(false));
        let (stop, shutdown) = shutdown::channel();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let judge = Judge {
            matcher: Arc::new(RuleSet::compile([("acme", "acme")]).unwrap()),
            rules: Vec::new(),
            source_languages: HashMap::new(),
        };
        let intake = Intake::new(
            Arc::new(judge),
            Duration::from_secs(900),
            store.clone(),
            rx,
            Arc::new(Metrics::default()),
            Clock::System,
        );
        let source = Counter {
            replica: name.into(),
            log: log.clone(),
            connected: connected.clone(),
        };
        let poller = Poller::new(
            Box::new(source),
            every,
            Duration::from_secs(10),
            SourceState::default(),
            tx,
            health.clone(),
        )
        .with_lease(StoreLeases::gate(&store));
        Replica {
            poller: tokio::spawn(poller.run(shutdown.clone())),
            intake: tokio::spawn(intake.run(shutdown)),
            store,
            health,
            connected,
            stop,
        }
    }

    impl Replica {
        fn holds(&self) -> bool {
            self.health.get("feed").is_some_and(|s| s.lease_held)
        }

        /// Dies without letting go: no release, the lease lapses.
        fn kill(&self) {
            self.poller.abort();
            self.intake.abort();
        }
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stored_cursor(store: &Store) -> u64 {
        let state = store.source_state("feed").await.unwrap();
        state.cursor.map_or(0, |c| c.parse().unwrap())
    }

    fn polls_by(log: &Log, replica: &str) -> Vec<Poll> {
        let log = log.lock().unwrap();
        log.iter()
            .filter(|p| p.replica == replica)
            .cloned()
            .collect()
    }

    /// Two replicas, one source: only the holder polls, and the other shows who does (and
    /// is healthy). The holder dies without releasing: the other takes the source over
    /// within about a lease period, resumes from the stored cursor (not from its own
    /// start state), and keeps the stored schedule (no poll before the dead holder's next
    /// one was due).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_replica_polls_and_another_takes_over_from_the_stored_state_and_schedule() {
        let Some(db) = throwaway::database().await else {
            return;
        };
        let log: Log = Arc::default();
        let every = Duration::from_secs(4);
        let a = start(&db, "a", every, &log).await;
        until("a takes the source", || a.holds()).await;
        let b = start(&db, "b", every, &log).await;
        until("b sees that a holds it", || {
            b.health
                .get("feed")
                .is_some_and(|s| s.held_by.as_deref() == Some("a"))
        })
        .await;
        // Two of a's polls stored.
        let deadline = Instant::now() + PATIENCE;
        while stored_cursor(&a.store).await < 2 {
            assert!(Instant::now() < deadline, "a's polls were not stored");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(polls_by(&log, "b").is_empty(), "only the holder polls");
        let status = b.health.get("feed").unwrap();
        assert!(status.healthy && !status.lease_held, "{status:?}");
        assert_eq!(b.store.leases().await.unwrap()[0].owner, "a");

        // Kill a once its next poll time is stored (the renewal after its poll).
        let sql = {
            let (c, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            c
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            let ahead: bool = sql
                .query_one(
                    "SELECT next_poll > clock_timestamp() + interval '2 seconds' \
                     FROM source_state WHERE name = 'feed'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if ahead {
                break;
            }
            assert!(Instant::now() < deadline, "a never stored a next poll");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        a.kill();
        let killed = Instant::now();
        let last_of_a = polls_by(&log, "a").last().unwrap().clone();
        let stored = stored_cursor(&b.store).await;
        assert_eq!(stored, last_of_a.given + 1, "a's last poll was stored");

        until("b takes over and polls", || !polls_by(&log, "b").is_empty()).await;
        let first_of_b = polls_by(&log, "b")[0].clone();
        assert_eq!(
            first_of_b.given, stored,
            "b resumes from the stored cursor, not from its own start"
        );
        assert!(
            first_of_b.at >= last_of_a.at + every.mul_f64(0.9) - Duration::from_millis(100),
            "b kept the stored schedule: polled {:?} after a's last poll",
            first_of_b.at - last_of_a.at
        );
        // The lease lapses at most a lease period after a's last renewal, b retries every
        // third of it, and a's next poll was due at most `every × 1.1` after its last: a
        // generous bound that only a takeover "much later" (or never) exceeds.
        assert!(
            first_of_b.at - killed < LEASE + every * 2,
            "took over {:?} after the kill",
            first_of_b.at - killed
        );
        until("b holds it", || b.holds()).await;
        assert!(b.health.get("feed").unwrap().lease_acquired_total >= 1);
        b.stop.trigger();
        let _ = b.poller.await;
    }

    /// At shutdown a replica releases its lease: another takes the source at its next try,
    /// long before the lease would lapse.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_releases_the_lease() {
        let Some(db) = throwaway::database().await else {
            return;
        };
        let log: Log = Arc::default();
        let a = start(&db, "a", Duration::from_secs(3600), &log).await;
        until("a polls", || !polls_by(&log, "a").is_empty()).await;
        until("a holds", || a.holds()).await;
        let b = open(&db, "b", Duration::from_secs(3600)).await;
        assert!(matches!(
            b.lease_source("feed", None).await.unwrap(),
            SourceLease::Elsewhere { .. }
        ));
        a.stop.trigger();
        a.poller.await.unwrap();
        assert!(b.leases().await.unwrap().is_empty(), "released");
        let SourceLease::Held { state, .. } = b.lease_source("feed", None).await.unwrap() else {
            panic!("b could not take the released source at once");
        };
        assert_eq!(state.cursor.as_deref(), Some("1"), "with a's stored state");
    }

    /// A stream is connected only while its replica holds the lease: taken over by another
    /// replica, it disconnects (and its health says who holds the source, not an error);
    /// given back, it connects again and resumes from the cursor the other one stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_is_connected_only_while_its_lease_is_held() {
        let Some(db) = throwaway::database().await else {
            return;
        };
        let log: Log = Arc::default();
        let a = start(&db, "a", Duration::from_millis(200), &log).await;
        until("a connects", || a.connected.load(Ordering::SeqCst)).await;
        let sql = {
            let (c, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            c
        };
        // Replica "b" takes the source over (as if a had stalled for a lease period).
        sql.execute(
            "UPDATE source_state SET owner = 'b', lease_until = clock_timestamp() + interval '1 hour' \
             WHERE name = 'feed'",
            &[],
        )
        .await
        .unwrap();
        // (A loaded machine may also time a lease call out first: that is a loss too, and
        // the next try finds "b".)
        until("a disconnects and shows b as the holder", || {
            !a.connected.load(Ordering::SeqCst)
                && a.health.get("feed").unwrap().held_by.as_deref() == Some("b")
        })
        .await;
        let status = a.health.get("feed").unwrap();
        assert!(status.lease_lost_total >= 1, "{status:?}");
        let acquired = status.lease_acquired_total;
        assert!(
            status.healthy,
            "held elsewhere is not a problem: {status:?}"
        );
        let polls_then = polls_by(&log, "a").len();

        // "b" advances the cursor, then lets go.
        sql.execute(
            "UPDATE source_state SET state = '{\"cursor\": \"500\"}', owner = NULL, \
             lease_until = NULL WHERE name = 'feed'",
            &[],
        )
        .await
        .unwrap();
        until("a takes it back and polls", || {
            polls_by(&log, "a").len() > polls_then
        })
        .await;
        assert!(a.connected.load(Ordering::SeqCst));
        assert_eq!(
            polls_by(&log, "a")[polls_then].given,
            500,
            "resumed from the stored cursor, not from its own"
        );
        assert!(a.health.get("feed").unwrap().lease_acquired_total > acquired);
        a.stop.trigger();
        let _ = a.poller.await;
    }

    /// A replica that loses the database stops polling and says why; once the store
    /// answers again it takes the source back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replica_that_loses_the_database_stops_polling_and_says_why() {
        let Some(db) = throwaway::database().await else {
            return;
        };
        let log: Log = Arc::default();
        let a = start(&db, "a", Duration::from_millis(200), &log).await;
        until("a polls", || !polls_by(&log, "a").is_empty()).await;
        let sql = {
            let (c, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            c
        };
        // The database stops answering this replica's lease calls (the table is gone).
        sql.batch_execute("ALTER TABLE source_state RENAME TO source_state_away")
            .await
            .unwrap();
        until("a reports that it cannot reach the store", || {
            a.health.lease_error().is_some()
        })
        .await;
        let error = a.health.lease_error().unwrap();
        assert!(error.contains("cannot reach the store"), "{error}");
        assert!(error.contains("polls nothing"), "{error}");
        let status = a.health.get("feed").unwrap();
        assert!(!status.lease_held && status.held_by.is_none(), "{status:?}");
        assert!(status.lease_lost_total >= 1, "{status:?}");
        // Give the loop a few retries to (wrongly) poll meanwhile.
        let polls_then = polls_by(&log, "a").len();
        tokio::time::sleep(LEASE).await;
        assert_eq!(
            polls_by(&log, "a").len(),
            polls_then,
            "no polls while cut off"
        );

        sql.batch_execute("ALTER TABLE source_state_away RENAME TO source_state")
            .await
            .unwrap();
        until("a polls again", || polls_by(&log, "a").len() > polls_then).await;
        assert!(a.health.lease_error().is_none());
        assert!(a.holds());
        a.stop.trigger();
        let _ = a.poller.await;
    }
}
