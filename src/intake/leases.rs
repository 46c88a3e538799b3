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
