//! Process-wide counters for `/metrics`. Plain atomics: cheap to bump from any task, read
//! only when Prometheus scrapes. Per-source poll counters live in the sources' `Health`.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub mentions_total: AtomicU64,
    pub duplicates_total: AtomicU64,
    pub alerts_total: AtomicU64,
    pub alerts_posted_total: AtomicU64,
    pub post_errors_total: AtomicU64,
    pub recovered_posts_total: AtomicU64,
    pub digests_posted_total: AtomicU64,
    pub spikes_total: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
