//! Several relays on one PostgreSQL outbox (skipped, with one printed line, where the server
//! binaries are missing): each entry is delivered once between them, and an entry whose
//! replica died mid-post is taken over without posting it again. Two `Store`s on one
//! throwaway database, each with its own `[store] replica` name, stand in for replicas; a
//! recording platform counts what reached "Slack".

use super::*;
use crate::chat::{AlertView, Posted};
use crate::model::{AlertId, DigestPost, MessageRef, Note};
use crate::store::config::{Backend, StoreConfig};
use crate::store::pg::throwaway::{self, TestDatabase};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A platform that records every digest posted (by delivery id) and answers `find_digest`
/// from that record, as Slack's channel history would.
#[derive(Default)]
struct Recorder {
    posted: Mutex<BTreeMap<String, u32>>,
    looked_up: Mutex<u32>,
}

impl Recorder {
    fn posted(&self) -> BTreeMap<String, u32> {
        self.posted.lock().unwrap().clone()
    }

    /// What a replica that died right after its post left on the platform.
    fn already_has(&self, delivery: &str) {
        self.posted.lock().unwrap().insert(delivery.to_string(), 1);
    }
}

fn unused() -> ChatError {
    ChatError::Config("not used by these tests".into())
}

#[async_trait::async_trait]
impl ChatPlatform for Recorder {
    fn name(&self) -> &'static str {
        "slack"
    }

    async fn post_alert(&self, _: &str, _: &AlertView) -> Result<Posted, ChatError> {
        Err(unused())
    }

    async fn find_alert(
        &self,
        _: &str,
        _: AlertId,
        _: DateTime<Utc>,
    ) -> Result<Option<Posted>, ChatError> {
        Err(unused())
    }

    async fn update_alert(&self, _: &MessageRef, _: &AlertView) -> Result<(), ChatError> {
        Err(unused())
    }

    async fn post_note(
        &self,
        _: &str,
        _: Option<&str>,
        _: &Note,
        _: &str,
    ) -> Result<Posted, ChatError> {
        Err(unused())
    }

    async fn find_note(
        &self,
        _: &str,
        _: Option<&str>,
        _: &str,
        _: DateTime<Utc>,
    ) -> Result<Option<Posted>, ChatError> {
        Err(unused())
    }

    async fn post_digest(
        &self,
        channel: &str,
        _: &DigestPost,
        delivery: &str,
    ) -> Result<Posted, ChatError> {
        // A real call takes a while: the other replica's relay runs meanwhile.
        tokio::task::yield_now().await;
        *self
            .posted
            .lock()
            .unwrap()
            .entry(delivery.to_string())
            .or_default() += 1;
        Ok(Posted {
            channel_id: channel.to_string(),
            message_id: delivery.to_string(),
        })
    }

    async fn find_digest(
        &self,
        channel: &str,
        delivery: &str,
        _: DateTime<Utc>,
    ) -> Result<Option<Posted>, ChatError> {
        *self.looked_up.lock().unwrap() += 1;
        Ok(self.posted.lock().unwrap().get(delivery).map(|_| Posted {
            channel_id: channel.to_string(),
            message_id: delivery.to_string(),
        }))
    }
}

fn platforms(recorder: &Arc<Recorder>) -> Platforms {
    let p: Arc<dyn ChatPlatform> = recorder.clone();
    Platforms {
        slack: Some(p.clone()),
        discord: None,
        console: p,
    }
}

/// The store of replica `name` on `db`.
async fn replica(db: &TestDatabase, name: &str) -> Store {
    let mut pg = db.config();
    pg.replica = name.into();
    let mut config = StoreConfig::at("unused-on-postgres");
    config.backend = Backend::Postgres(pg);
    Store::open_with(&config).await.unwrap()
}

fn digest() -> DigestPost {
    DigestPost {
        title: "Daily digest".into(),
        body: Note::default().text("3 mentions"),
        chart: None,
        chart_alt: String::new(),
    }
}

async fn queue_digests(store: &Store, channels: usize) {
    let targets: Vec<Target> = (0..channels)
        .map(|i| Target::Slack(format!("#c{i}")))
        .collect();
    store
        .enqueue_digest::<String>(None, &targets, &digest(), Utc::now())
        .await
        .unwrap();
}

/// Two relays delivering from one outbox at the same time post every entry exactly once,
/// and each entry is claimed once between them.
#[tokio::test]
async fn two_relays_on_one_database_post_each_entry_exactly_once() {
    let Some(db) = throwaway::database().await else {
        return;
    };
    let (a, b) = (replica(&db, "a").await, replica(&db, "b").await);
    for _ in 0..8 {
        queue_digests(&a, 10).await;
    }
    let recorder = Arc::new(Recorder::default());
    let platforms = platforms(&recorder);
    let (_trigger, shutdown) = crate::shutdown::channel();
    let run = |store: Store| {
        let (platforms, shutdown) = (platforms.clone(), shutdown.clone());
        async move {
            let metrics = Metrics::default();
            while !store.outbox().await.unwrap().is_empty() {
                deliver_due(&store, &platforms, &metrics, &shutdown).await;
                tokio::task::yield_now().await;
            }
            Metrics::get(&metrics.outbox_claims_total)
        }
    };
    let both = async { tokio::join!(tokio::spawn(run(a)), tokio::spawn(run(b))) };
    let (ca, cb) = tokio::time::timeout(Duration::from_secs(120), both)
        .await
        .expect("the outbox empties");
    let posted = recorder.posted();
    assert_eq!(posted.len(), 80, "every entry posted");
    assert!(
        posted.values().all(|&n| n == 1),
        "none posted twice: {posted:?}"
    );
    assert_eq!(ca.unwrap() + cb.unwrap(), 80, "each entry claimed once");
}

/// A replica died holding claims: one entry it had posted (the platform has it), one it had
/// marked in flight but not posted. Another replica leaves both alone while the claims are
/// live, then takes them over: it finds the first on the platform and does not post it again,
/// and posts the second once.
#[tokio::test]
async fn a_lapsed_in_flight_claim_is_taken_over_without_a_second_post() {
    let Some(db) = throwaway::database().await else {
        return;
    };
    let (dead, b) = (replica(&db, "dead").await, replica(&db, "b").await);
    queue_digests(&dead, 2).await;
    let entries = dead.outbox().await.unwrap();
    let recorder = Arc::new(Recorder::default());
    let now = Utc::now();
    for (key, entry) in entries.clone() {
        let claimed = dead.claim(key, entry, now).await.unwrap().unwrap();
        assert!(claimed.claimed);
        dead.mark_in_flight(key, now).await.unwrap();
    }
    let first = format!("digest-{}", entries[0].0.seq());
    let second = format!("digest-{}", entries[1].0.seq());
    recorder.already_has(&first);

    let platforms = platforms(&recorder);
    let metrics = Metrics::default();
    let (_trigger, shutdown) = crate::shutdown::channel();
    deliver_due(&b, &platforms, &metrics, &shutdown).await;
    assert_eq!(
        b.outbox().await.unwrap().len(),
        2,
        "live claims are skipped"
    );
    assert_eq!(*recorder.looked_up.lock().unwrap(), 0);
    assert_eq!(Metrics::get(&metrics.outbox_claims_total), 0);

    // The dead replica's claims lapse (the test does not wait the claim period out).
    let (sql, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    sql.execute(
        "UPDATE outbox SET claimed_until = clock_timestamp() - interval '1 second'",
        &[],
    )
    .await
    .unwrap();
    deliver_due(&b, &platforms, &metrics, &shutdown).await;
    assert!(b.outbox().await.unwrap().is_empty(), "both delivered");
    assert_eq!(
        recorder.posted(),
        BTreeMap::from([(first, 1), (second, 1)]),
        "the posted one not again, the other once"
    );
    assert_eq!(
        *recorder.looked_up.lock().unwrap(),
        2,
        "both looked up first"
    );
    assert_eq!(Metrics::get(&metrics.outbox_claims_total), 2);
    assert_eq!(Metrics::get(&metrics.outbox_claims_taken_over_total), 2);
}

/// On sled nothing is claimed: the relay delivers as it always did and counts no claims.
#[tokio::test]
async fn sled_delivers_without_claims() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    queue_digests(&store, 3).await;
    let recorder = Arc::new(Recorder::default());
    let metrics = Metrics::default();
    let (_trigger, shutdown) = crate::shutdown::channel();
    deliver_due(&store, &platforms(&recorder), &metrics, &shutdown).await;
    assert!(store.outbox().await.unwrap().is_empty());
    assert_eq!(recorder.posted().len(), 3);
    assert_eq!(Metrics::get(&metrics.outbox_claims_total), 0);
}

/// The relay reads the outbox a page at a time: a backlog of more than two pages (an outage
/// that kept 600 digests waiting) is delivered whole in one pass, each entry once,
/// on either backend.
#[tokio::test]
async fn a_backlog_larger_than_a_page_is_delivered_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = vec![Store::open(dir.path()).unwrap()];
    let db = throwaway::database().await;
    if let Some(db) = &db {
        stores.push(replica(db, "a").await);
    }
    for store in stores {
        queue_digests(&store, 600).await;
        let recorder = Arc::new(Recorder::default());
        let (_trigger, shutdown) = crate::shutdown::channel();
        deliver_due(
            &store,
            &platforms(&recorder),
            &Metrics::default(),
            &shutdown,
        )
        .await;
        assert_eq!(
            recorder.posted().len(),
            600,
            "every entry posted in one pass"
        );
        assert!(recorder.posted().values().all(|&n| n == 1));
        assert!(store.outbox().await.unwrap().is_empty());
    }
}
