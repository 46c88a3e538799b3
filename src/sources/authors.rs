//! What the sources that look authors up share (Bluesky profiles, Hacker News karma, Reddit
//! subreddit sizes): a bounded memory of the answers with a time to live, which also
//! remembers "no such author" and holds all lookups back for a while after the service
//! refused or failed. Looking up is best effort: a mention is handed on with or without it.
//! It does not make requests itself; each source asks its own API.

use super::SourceError;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// How long an answer is trusted: follower counts and karma move slowly, and a handle change
/// shows within this time (Bluesky also applies Jetstream's identity events at once).
pub(crate) const TTL: Duration = Duration::from_secs(6 * 3600);
/// Authors remembered at most per source; the oldest answer is forgotten first.
pub(crate) const CAPACITY: usize = 10_000;
/// No lookups for this long after a failure that named no wait (timeout, 5xx, bad body).
pub(crate) const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(60);
/// The longest a server's Retry-After holds lookups back; the mentions never wait for it.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(3600);

/// A remembered answer: the details, or `None` when the service said there is no such author.
#[derive(Debug, Clone)]
struct Entry<V> {
    value: Option<V>,
    at: Instant,
}

/// What the cache knows about one author.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Known<V> {
    /// Answered within the TTL (`None`: no such author).
    Fresh(Option<V>),
    /// Answered before the TTL ran out: worth asking again, and still shown if that fails.
    Stale(Option<V>),
    /// Never answered (or forgotten).
    Unknown,
}

/// Bounded author details with a time to live and a pause after failures.
#[derive(Debug)]
pub(crate) struct AuthorCache<V> {
    entries: HashMap<String, Entry<V>>,
    /// Keys in the order they were first stored, for forgetting the oldest.
    order: VecDeque<String>,
    capacity: usize,
    ttl: Duration,
    paused_until: Option<Instant>,
}

impl<V: Clone> AuthorCache<V> {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> AuthorCache<V> {
        AuthorCache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            ttl,
            paused_until: None,
        }
    }

    pub(crate) fn get(&self, key: &str) -> Known<V> {
        match self.entries.get(key) {
            None => Known::Unknown,
            Some(e) if e.at.elapsed() < self.ttl => Known::Fresh(e.value.clone()),
            Some(e) => Known::Stale(e.value.clone()),
        }
    }

    /// Whether `key` should be asked for now (unknown or stale).
    pub(crate) fn wants(&self, key: &str) -> bool {
        !matches!(self.get(key), Known::Fresh(_))
    }

    /// The details to show: fresh or stale, `None` when unknown or known missing.
    pub(crate) fn value(&self, key: &str) -> Option<V> {
        match self.get(key) {
            Known::Fresh(v) | Known::Stale(v) => v,
            Known::Unknown => None,
        }
    }

    /// Stores an answer (`None`: no such author), forgetting the oldest beyond the capacity.
    pub(crate) fn insert(&mut self, key: &str, value: Option<V>) {
        let entry = Entry {
            value,
            at: Instant::now(),
        };
        if let Some(e) = self.entries.get_mut(key) {
            *e = entry;
            return;
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
        self.entries.insert(key.to_string(), entry);
        self.order.push_back(key.to_string());
    }

    /// Changes what is known about `key` in place, if anything is: for updates the service
    /// pushes (a Bluesky handle change), which must not fill the cache with strangers.
    pub(crate) fn update(&mut self, key: &str, f: impl FnOnce(&mut V)) {
        if let Some(Entry { value: Some(v), .. }) = self.entries.get_mut(key) {
            f(v);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// True while lookups are held back after a failure.
    pub(crate) fn paused(&self) -> bool {
        self.paused_until.is_some_and(|t| Instant::now() < t)
    }

    /// Holds lookups back after `e`: as long as the server asked (capped), else a minute.
    pub(crate) fn pause_after(&mut self, e: &SourceError) {
        let wait = e
            .retry_after()
            .unwrap_or(PAUSE_AFTER_FAILURE)
            .clamp(Duration::from_secs(1), MAX_PAUSE);
        self.paused_until = Some(Instant::now() + wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_answer_is_forgotten_beyond_the_capacity() {
        let mut c: AuthorCache<u64> = AuthorCache::new(3, TTL);
        for (i, k) in ["a", "b", "c", "d"].into_iter().enumerate() {
            c.insert(k, Some(i as u64));
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.get("a"), Known::Unknown);
        assert_eq!(c.get("d"), Known::Fresh(Some(3)));
        // Answering again does not grow the cache or reorder it.
        c.insert("b", Some(9));
        assert_eq!(c.len(), 3);
        assert_eq!(c.value("b"), Some(9));
        for i in 0..1000 {
            c.insert(&format!("k{i}"), None);
        }
        assert_eq!(c.len(), 3, "bounded whatever comes");
    }

    #[tokio::test(start_paused = true)]
    async fn answers_go_stale_after_the_ttl_and_are_still_shown() {
        let mut c: AuthorCache<u64> = AuthorCache::new(10, Duration::from_secs(60));
        c.insert("a", Some(5));
        c.insert("gone", None);
        assert!(!c.wants("a"));
        assert!(
            !c.wants("gone"),
            "a known missing author is not asked again"
        );
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(c.get("a"), Known::Stale(Some(5)));
        assert!(c.wants("a"));
        assert_eq!(c.value("a"), Some(5));
        assert!(c.wants("never"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_pauses_lookups_for_the_servers_wait_or_a_minute() {
        let mut c: AuthorCache<u64> = AuthorCache::new(10, TTL);
        assert!(!c.paused());
        c.pause_after(&SourceError::Status {
            status: 429,
            retry_after: Some(Duration::from_secs(300)),
        });
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(c.paused());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!c.paused());
        c.pause_after(&SourceError::Timeout(Duration::from_secs(5)));
        assert!(c.paused());
        tokio::time::advance(PAUSE_AFTER_FAILURE).await;
        assert!(!c.paused());
    }

    #[test]
    fn pushed_updates_change_only_known_authors() {
        let mut c: AuthorCache<String> = AuthorCache::new(10, TTL);
        c.insert("did:a", Some("old.example".into()));
        c.update("did:a", |h| *h = "new.example".into());
        c.update("did:stranger", |h| *h = "x".into());
        assert_eq!(c.value("did:a").as_deref(), Some("new.example"));
        assert_eq!(c.get("did:stranger"), Known::Unknown);
    }
}
