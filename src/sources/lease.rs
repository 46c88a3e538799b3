//! The poll loop's seam to source leases (issue 17): with several replicas on one PostgreSQL
//! store, a replica polls a source only while it holds the source's lease. The loop asks a
//! `LeaseGate` before each poll and every third of the lease period while it waits; the gate
//! is implemented where the store is known (`intake::leases`), since sources never touch the
//! store. On sled there is no gate: one process holds the store, so every source is held.

use super::SourceState;
use std::time::Duration;

/// What a try for a source's lease found.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// This replica holds the source (taken, taken over or renewed).
    Held {
        /// The state the source's last committed poll stored: what a replica taking the
        /// source over resumes from (another replica may have advanced it).
        state: SourceState,
        /// How long until the stored next poll (zero when due; `None` before the first).
        next_poll_in: Option<Duration>,
    },
    /// Another replica holds the source; `holder` names it when known.
    Elsewhere { holder: Option<String> },
}

/// The store could not be asked (the database is unreachable); already free of secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct LeaseError(pub String);

/// Takes, renews and releases this replica's source leases.
#[async_trait::async_trait]
pub trait LeaseGate: Send + Sync {
    /// This replica's name (the leases' owner, shown on `/healthz`).
    fn replica(&self) -> &str;
    /// How long a lease lasts without renewal: the loop renews, and retries a source another
    /// replica holds, every third of it.
    fn period(&self) -> Duration;
    /// Takes or renews the lease on `source`; `next_poll_in`, when given, is stored as the
    /// source's next poll, so a replica taking it over keeps the schedule.
    async fn hold(&self, source: &str, next_poll_in: Option<Duration>) -> Result<Hold, LeaseError>;
    /// Gives the lease up (shutdown), so another replica takes the source at its next try.
    async fn release(&self, source: &str) -> Result<(), LeaseError>;
}
