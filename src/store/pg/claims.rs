//! Outbox claims (issue 17): which replica delivers an outbox entry. Several replicas' relays
//! read one outbox; each claims an entry just before delivering it (the `claimed_by` /
//! `claimed_until` columns, timed by the database's clock), so one replica delivers it and the
//! others skip it. A claim ends when the delivery is recorded (the entry is deleted, or its
//! failure, parking or deferral releases it) or, if its replica died, when it lapses: another
//! replica then takes it over, and the relay's find-before-repost recovery (an entry marked in
//! flight is looked up on the platform first) makes that produce no duplicate post. Marking an
//! entry in flight renews the claim and refuses an entry another replica took over
//! (`outbox.rs`), so a post only ever starts under a live claim of at least [`MIN_CLAIM`].
//!
//! Also here: the listener that wakes this replica's relay when another replica writes an
//! outbox entry (`LISTEN` on the channel the `0002_outbox_notify` trigger notifies).

use super::{describe, query_error, PgStore};
use crate::shutdown::Shutdown;
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
    /// The replica whose lapsed claim this one took over, if any.
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
    /// it is not claimed by another live replica (a lapsed claim is taken over), not locked
    /// by another replica's claim right now (`SKIP LOCKED`: no waiting), and no earlier entry
    /// of the same alert to the same target is still in the outbox, so an alert's state edit
    /// or thread note never goes before its post, whichever replicas deliver them. (Entries of
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
                            OR o.claimed_until IS NULL OR o.claimed_until < clock_timestamp()) \
                       AND (o.alert_id = 0 OR NOT EXISTS ( \
                            SELECT 1 FROM outbox e \
                            WHERE e.alert_id = o.alert_id AND e.seq < o.seq \
                              AND e.data->'target' = o.data->'target')) \
                     FOR UPDATE SKIP LOCKED) \
                 UPDATE outbox SET claimed_by = $2, \
                     claimed_until = clock_timestamp() + $3 * interval '1 millisecond' \
                 FROM c WHERE outbox.seq = c.seq \
                 RETURNING outbox.data, c.was",
                &[&seq, &self.replica, &self.claim_period_ms(), &now],
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

    /// Listens for outbox entries written by any replica (the trigger's `NOTIFY`) on a
    /// connection of its own, outside the pool, and rings this store's outbox signal for
    /// each, until shutdown. A lost connection is opened again with backoff; meanwhile the
    /// relay's idle tick still finds new entries, only later.
    pub(crate) async fn listen_for_outbox(&self, mut shutdown: Shutdown) {
        let mut wait = LISTEN_RETRY_FIRST;
        loop {
            match self.listen_once(&mut shutdown, &mut wait).await {
                Ok(()) => return,
                Err(reason) => tracing::warn!(
                    url = %self.url,
                    reason = %reason,
                    retry_in_secs = wait.as_secs(),
                    "lost the connection that wakes the relay for other replicas' outbox entries; they are delivered at the relay's idle tick until it is back"
                ),
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait() => return,
            }
            wait = (wait * 2).min(LISTEN_RETRY_MAX);
        }
    }

    /// One connection's life: connect, `LISTEN`, ring the signal per notification. `Ok` at
    /// shutdown; `Err` (redacted) when the connection fails. Resets `wait` once listening.
    async fn listen_once(
        &self,
        shutdown: &mut Shutdown,
        wait: &mut Duration,
    ) -> Result<(), String> {
        let mut config = self.connect.config.clone();
        config.keepalives_idle(LISTEN_KEEPALIVE);
        let connecting = config.connect(self.connect.tls.clone());
        let (client, mut connection) = tokio::select! {
            c = connecting => c.map_err(|e| self.url.scrub(&describe(&e)))?,
            _ = shutdown.wait() => return Ok(()),
        };
        let signal = self.outbox_signal.clone();
        // The connection does its work (the answer to LISTEN too) only while polled.
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        let ring = |m: Option<Result<AsyncMessage, tokio_postgres::Error>>| match m {
            Some(Ok(AsyncMessage::Notification(_))) => {
                signal.notify_one();
                Ok(())
            }
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(self.url.scrub(&describe(&e))),
            None => Err("the server closed the connection".to_string()),
        };
        let statement = format!("LISTEN {CHANNEL}");
        let listen = client.batch_execute(&statement);
        tokio::pin!(listen);
        loop {
            tokio::select! {
                r = &mut listen => {
                    r.map_err(|e| self.url.scrub(&describe(&e)))?;
                    break;
                }
                m = messages.next() => ring(m)?,
                _ = shutdown.wait() => return Ok(()),
            }
        }
        tracing::debug!(channel = CHANNEL, "listening for outbox entries");
        *wait = LISTEN_RETRY_FIRST;
        // Entries written while this replica was not listening wake the relay now.
        self.outbox_signal.notify_one();
        loop {
            tokio::select! {
                m = messages.next() => ring(m)?,
                _ = shutdown.wait() => return Ok(()),
            }
        }
    }
}
