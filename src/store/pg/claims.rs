//! Outbox claims (issue 17): which replica delivers an outbox entry. Several replicas' relays
//! read one outbox; each claims an entry just before delivering it (the `claimed_by` /
//! `claimed_until` columns, timed by the database's clock), so one replica delivers it and the
//! others skip it. A claim ends when the delivery is recorded (the entry is deleted, or its
//! failure, parking or deferral releases it); if its replica died, it ends when that replica's
//! presence lock goes with its session (at once, see [`Presence`]) or, at the latest, when it
//! lapses. Another replica then takes it over, and the relay's find-before-repost recovery (an
//! entry marked in flight is looked up on the platform first) makes that produce no duplicate
//! post. Marking an entry in flight renews the claim and refuses an entry another replica took
//! over (`outbox.rs`), so a post only ever starts under a live claim of at least
//! [`MIN_CLAIM`].
//!
//! Also here: the replica's own connection, which holds its presence lock and listens for the
//! outbox entries any replica writes (the `0002_outbox_notify` trigger's `NOTIFY`).

use super::{describe, query_error, PgStore};
use crate::store::{OutboxEntry, OutboxKey, StoreError};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::time::Duration;
use tokio_postgres::AsyncMessage;

/// The shortest claim: a relay's platform call (at most 30 s) plus a margin for the store
/// calls around it, so a live replica's post never outlives its claim (the relay checks its
/// call timeout against it at compile time). `[store] lease` lengthens it, never shortens it.
pub const MIN_CLAIM: Duration = Duration::from_secs(45);

/// The channel the outbox trigger notifies (`migrations/0002_outbox_notify.sql`).
const CHANNEL: &str = "mentiondesk_outbox";

/// The first wait before the listener connects again after losing its connection; it
/// doubles up to [`LISTEN_RETRY_MAX`] and starts over once listening again.
const LISTEN_RETRY_FIRST: Duration = Duration::from_secs(1);
const LISTEN_RETRY_MAX: Duration = Duration::from_secs(30);
/// TCP keepalive of the listening connection, which otherwise only reads: a dead server is
/// noticed within minutes, not the system's default two hours.
const LISTEN_KEEPALIVE: Duration = Duration::from_secs(30);

/// An outbox entry this replica now holds a claim on.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The entry as stored when claimed: its `in_flight_since` may have been set by a replica
    /// that died mid-post, which is what makes the relay look before posting again.
    pub entry: OutboxEntry,
    /// Whether a claim row was written (false on sled, where one process owns the outbox).
    pub claimed: bool,
    /// The replica whose claim this one took over (it lapsed, or that replica is gone).
    pub taken_over_from: Option<String>,
}

impl PgStore {
    /// How long this replica's claims last: `[store] lease`, at least [`MIN_CLAIM`].
    pub(crate) fn claim_period(&self) -> Duration {
        self.lease.max(MIN_CLAIM)
    }

    /// The claim period in milliseconds, as the claim statements take it.
    pub(super) fn claim_period_ms(&self) -> f64 {
        self.claim_period().as_millis() as f64
    }

    /// Claims the entry `key` for this replica, if it is due at `now` and may be delivered:
    /// it is not claimed by another live replica (a claim that lapsed, or whose replica's
    /// presence lock is gone, is taken over), not locked
    /// by another replica's claim right now (`SKIP LOCKED`: no waiting), and no earlier entry
    /// of the same alert to the same target is still in the outbox (parked ones excepted: a
    /// note refused for its content must not hold the alert's later edits for good, as on
    /// sled), so an alert's state edit or thread note never goes before its post, whichever
    /// replicas deliver them. (Entries of
    /// no alert, digests and timer rounds, have no such order.) `seq` is insert order, not
    /// commit order, but an alert's entries are written by transactions that each lock the
    /// alert (or create it), so a later entry of one alert is always inserted after the
    /// earlier one committed. `None`: gone, not due, or not this replica's to deliver now.
    pub(crate) async fn claim(
        &self,
        key: OutboxKey,
        now: DateTime<Utc>,
    ) -> Result<Option<Claimed>, StoreError> {
        let seq = i64::try_from(key.seq()).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let row = client
            .query_opt(
                "WITH c AS ( \
                     SELECT o.seq, o.claimed_by AS was FROM outbox o \
                     WHERE o.seq = $1 \
                       AND (o.not_before IS NULL OR o.not_before <= $4) \
                       AND (o.claimed_by IS NULL OR o.claimed_by = $2 \
                            OR o.claimed_until IS NULL OR o.claimed_until < clock_timestamp() \
                            OR NOT EXISTS ( \
                                SELECT 1 FROM pg_locks l \
                                WHERE l.locktype = 'advisory' AND l.granted \
                                  AND l.database = (SELECT oid FROM pg_database \
                                                    WHERE datname = current_database()) \
                                  AND l.classid = $5::int4::oid \
                                  AND l.objid = hashtext(o.claimed_by)::oid \
                                  AND l.objsubid = 2)) \
                       AND (o.alert_id = 0 OR NOT EXISTS ( \
                            SELECT 1 FROM outbox e \
                            WHERE e.alert_id = o.alert_id AND e.seq < o.seq \
                              AND e.data->'target' = o.data->'target' AND NOT e.parked)) \
                     FOR UPDATE SKIP LOCKED) \
                 UPDATE outbox SET claimed_by = $2, \
                     claimed_until = clock_timestamp() + $3 * interval '1 millisecond' \
                 FROM c WHERE outbox.seq = c.seq \
                 RETURNING outbox.data, c.was",
                &[
                    &seq,
                    &self.replica,
                    &self.claim_period_ms(),
                    &now,
                    &PRESENCE_LOCK,
                ],
            )
            .await
            .map_err(|e| query_error(&self.url, "claiming an outbox entry", e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let entry = serde_json::from_value(row.get(0)).map_err(|e| StoreError::Corrupt {
            key: format!("outbox {seq}"),
            reason: e.to_string(),
        })?;
        let was: Option<String> = row.get(1);
        Ok(Some(Claimed {
            entry,
            claimed: true,
            taken_over_from: was.filter(|w| *w != self.replica),
        }))
    }
}

/// This replica's connection of its own, outside the pool, opened by `PgStore::connect` and
/// closed when the store's last clone is dropped (at the end of `run`). It does two things:
///
/// - **Presence**: it holds a session advisory lock named after the replica
///   ([`PRESENCE_LOCK`], `hashtext(replica)`), which PostgreSQL releases the moment the
///   session ends. A replica killed mid-delivery (its process gone, so its sockets closed)
///   thereby frees its claims at once instead of after the claim period, so a restarted or
///   surviving replica recovers its in-flight entries right away; a replica that is only cut
///   off keeps its session (and claims) until the server notices, and its claims lapse by
///   time as before.
/// - **Wake-up**: it `LISTEN`s on the channel the outbox trigger notifies and rings the
///   store's outbox signal for each notification, so another replica's entry is delivered at
///   once; the relay's idle tick remains the fallback while it reconnects (with backoff).
pub(super) struct Presence {
    /// Dropped with the store's last clone: the connection's task then ends.
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// The first key of the presence locks (the bytes of "mdre"); the second is
/// `hashtext(replica)`, which `pg_locks` shows as `classid`/`objid` with `objsubid` 2.
pub(super) const PRESENCE_LOCK: i32 = 0x6d64_7265;

/// What the presence connection needs, owned (not a `PgStore` clone, which would keep it
/// open forever).
pub(super) struct PresenceTask {
    pub(super) connect: std::sync::Arc<super::Connect>,
    pub(super) url: super::PgUrl,
    pub(super) replica: String,
    pub(super) signal: std::sync::Arc<tokio::sync::Notify>,
    /// Why this replica's own connection is down (redacted), `None` while it is up: what
    /// `/healthz` reports for a replica that reaches the database through nothing else
    /// (no polled source, so no lease calls).
    pub(super) lost: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl PresenceTask {
    /// Opens the connection and takes the presence lock (or finds it held by another store of
    /// this replica's name), then keeps it open in a task of its own. Returns once claims of
    /// this replica count as present, so no claim is ever taken before; a database that
    /// cannot be reached is an error, as for the pool.
    pub(super) async fn start(self) -> Result<Presence, StoreError> {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (ready, is_ready) = tokio::sync::oneshot::channel();
        tokio::spawn(self.run(stopped, ready));
        match is_ready.await {
            Ok(Ok(())) => Ok(Presence { _stop: stop }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Postgres {
                what: "opening the presence connection",
                reason: "its task ended".into(),
            }),
        }
    }

    async fn run(
        self,
        mut stopped: tokio::sync::oneshot::Receiver<()>,
        ready: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
    ) {
        let mut ready = Some(ready);
        let mut wait = LISTEN_RETRY_FIRST;
        loop {
            let outcome = self.session(&mut stopped, &mut ready, &mut wait).await;
            let reason = match outcome {
                Ok(()) => return,
                Err(reason) => reason,
            };
            if let Some(ready) = ready.take() {
                // The first connection failed: `connect` reports it.
                let _ = ready.send(Err(StoreError::PgConnect {
                    url: self.url.redacted(),
                    reason,
                }));
                return;
            }
            *self.lost.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
            tracing::warn!(
                url = %self.url,
                reason = %reason,
                retry_in_secs = wait.as_secs(),
                "lost this replica's own PostgreSQL connection (presence and wake-up); other replicas' outbox entries are delivered at the relay's idle tick until it is back"
            );
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = &mut stopped => return,
            }
            wait = (wait * 2).min(LISTEN_RETRY_MAX);
        }
    }

    /// One connection's life: connect, `LISTEN`, take the presence lock, then ring the signal
    /// per notification (and retry a lock another store of this name holds). `Ok` when the
    /// store is dropped; `Err` (redacted) when the connection fails.
    async fn session(
        &self,
        stopped: &mut tokio::sync::oneshot::Receiver<()>,
        ready: &mut Option<tokio::sync::oneshot::Sender<Result<(), StoreError>>>,
        wait: &mut Duration,
    ) -> Result<(), String> {
        let scrub = |e: tokio_postgres::Error| self.url.scrub(&describe(&e));
        let mut config = self.connect.config.clone();
        config.keepalives_idle(LISTEN_KEEPALIVE);
        let connecting = config.connect(self.connect.tls.clone());
        let (client, mut connection) = tokio::select! {
            c = connecting => c.map_err(scrub)?,
            _ = &mut *stopped => return Ok(()),
        };
        let signal = self.signal.clone();
        // The connection does its work (the answers to our statements too) only while polled.
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        let ring = |m: Option<Result<AsyncMessage, tokio_postgres::Error>>| match m {
            Some(Ok(AsyncMessage::Notification(_))) => {
                signal.notify_one();
                Ok(())
            }
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(scrub(e)),
            None => Err("the server closed the connection".to_string()),
        };
        let statement = format!("LISTEN {CHANNEL}");
        let take_lock = || async {
            let row = client
                .query_one(
                    "SELECT pg_try_advisory_lock($1, hashtext($2))",
                    &[&PRESENCE_LOCK, &self.replica],
                )
                .await?;
            Ok::<bool, tokio_postgres::Error>(row.get(0))
        };
        let setup = async {
            client.batch_execute(&statement).await?;
            take_lock().await
        };
        tokio::pin!(setup);
        let mut locked = loop {
            tokio::select! {
                r = &mut setup => break r.map_err(scrub)?,
                m = messages.next() => ring(m)?,
                _ = &mut *stopped => return Ok(()),
            }
        };
        if !locked {
            // Another store of this name (a test's second store, or a second process
            // misconfigured with the same `[store] replica`) holds it: claims of the name are
            // present while it lives; this store takes the lock over if it goes.
            tracing::error!(replica = %self.replica, "another process connected to this database uses the replica name {:?}: both would poll the same sources and post the same alerts. Give each process its own [store] replica (or remove the key: the default is unique per process)", self.replica);
        }
        tracing::debug!(channel = CHANNEL, "listening for outbox entries");
        *self.lost.lock().unwrap_or_else(|p| p.into_inner()) = None;
        match ready.take() {
            Some(ready) => {
                let _ = ready.send(Ok(()));
            }
            // Reconnected: entries written while this replica was not listening go now.
            None => self.signal.notify_one(),
        }
        *wait = LISTEN_RETRY_FIRST;
        let mut retry_lock = tokio::time::interval(LISTEN_RETRY_MAX);
        retry_lock.tick().await;
        loop {
            tokio::select! {
                m = messages.next() => ring(m)?,
                _ = retry_lock.tick(), if !locked => {
                    let retry = take_lock();
                    tokio::pin!(retry);
                    locked = loop {
                        tokio::select! {
                            r = &mut retry => break r.map_err(scrub)?,
                            m = messages.next() => ring(m)?,
                        }
                    };
                }
                _ = &mut *stopped => return Ok(()),
            }
        }
    }
}
