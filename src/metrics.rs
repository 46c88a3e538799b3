//! Process-wide counters for `/metrics`. Plain atomics: cheap to bump from any task, read
//! only when Prometheus scrapes. Per-source poll counters live in the sources' `Health`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) mentions_total: AtomicU64,
    pub(crate) duplicates_total: AtomicU64,
    /// Alerts created and put on the desk (posted); held-back alerts are in `held_total`.
    pub(crate) alerts_total: AtomicU64,
    /// Alerts the relevance filter held back instead of posting.
    pub(crate) held_total: AtomicU64,
    /// Held-back alerts a person promoted (posted after all): each a miss of the filter.
    pub(crate) promoted_total: AtomicU64,
    pub(crate) alerts_posted_total: AtomicU64,
    pub(crate) post_errors_total: AtomicU64,
    pub(crate) recovered_posts_total: AtomicU64,
    pub(crate) digests_posted_total: AtomicU64,
    pub(crate) spikes_total: AtomicU64,
    /// Outbox entries this replica's relay claimed before delivering them (PostgreSQL).
    pub(crate) outbox_claims_total: AtomicU64,
    /// Of those, entries whose claim by another replica had lapsed (that replica died or
    /// stalled mid-delivery).
    pub(crate) outbox_claims_taken_over_total: AtomicU64,
    /// Failed chat calls by (platform, kind): `mentiondesk_delivery_failures_total`.
    delivery_failures: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts one failed chat call of `kind` (`rate_limited`, `unavailable`,
    /// `refused_platform`, `refused_target`, `refused_message`, `error`).
    pub(crate) fn delivery_failure(&self, platform: &'static str, kind: &'static str) {
        *self
            .delivery_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((platform, kind))
            .or_default() += 1;
    }

    /// Every (platform, kind, count) so far.
    pub(crate) fn delivery_failures(&self) -> Vec<(&'static str, &'static str, u64)> {
        self.delivery_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((p, k), n)| (*p, *k, *n))
            .collect()
    }
}
