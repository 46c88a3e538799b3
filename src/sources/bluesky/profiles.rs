//! Bluesky authors as people know them: Jetstream and search name a post's author by DID
//! (`did:plc:…`), which nobody on a desk recognises. With `author_details` on (the default)
//! the source asks the public AppView's `app.bsky.actor.getProfiles` (no account needed, up
//! to 25 actors per request) for each new author's handle and follower count, remembers the
//! answers (`authors.rs`: bounded, 6 h), and applies Jetstream's identity events to the
//! authors it knows, so a handle change shows at once.
//! Best effort by design, and off the post's path: a background task looks the new authors
//! up in rounds at most every `LOOKUP_EVERY` (up to 25 per request), whatever the stream's
//! pace; a post is handed on at once with what is known by then (the DID for an author not
//! answered yet). A failed, slow or rate-limited lookup pauses further lookups for a while.

use super::super::authors::{AuthorCache, CAPACITY, TTL};
use super::super::http::{decode_json, redact_url, Fetcher};
use super::super::stream::TaskGuard;
use super::super::SourceError;
use crate::model::Mention;
use reqwest::Url;
use serde::Deserialize;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Bluesky's public AppView: the `app.bsky.*` read API without an account.
pub(crate) const DEFAULT_PROFILES_URL: &str = "https://public.api.bsky.app/xrpc";
/// `getProfiles` takes at most this many actors (its lexicon's `maxLength`).
pub(crate) const BATCH: usize = 25;
/// The shortest time between two lookup rounds, however often streamed posts wake the poll:
/// authors met in between are batched into the next round.
pub(crate) const LOOKUP_EVERY: Duration = Duration::from_secs(3);
/// Requests one round may make (100 authors). So at most 4 requests per 3 s, 400 per 5
/// minutes, well under the 3,000 per 5 minutes per IP Bluesky documents for its API hosts
/// (docs.bsky.app, "Rate Limits"); a 429 pauses the lookups for as long as it asks.
pub(crate) const MAX_BATCHES_PER_ROUND: usize = 4;
/// Authors waiting for a lookup at most; beyond that an author waits for a later post.
const MAX_PENDING: usize = 1_000;
/// The placeholder the AppView shows for a handle that no longer verifies: not a name.
const INVALID_HANDLE: &str = "handle.invalid";

/// What the AppView says about an author.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Profile {
    pub(crate) handle: Option<String>,
    pub(crate) followers: Option<u64>,
}

/// The remembered profiles and the authors waiting for a lookup.
#[derive(Debug)]
struct State {
    cache: AuthorCache<Profile>,
    pending: VecDeque<String>,
    queued: HashSet<String>,
}

impl State {
    /// Queues `did` for the next round unless it is known, queued, or lookups are paused.
    fn want(&mut self, did: &str) -> bool {
        if self.cache.paused()
            || !self.cache.wants(did)
            || self.queued.contains(did)
            || self.pending.len() >= MAX_PENDING
        {
            return false;
        }
        self.queued.insert(did.to_string());
        self.pending.push_back(did.to_string());
        true
    }
}

/// What the source, its Jetstream task and the lookup task share.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Wakes the lookup task when an author is queued.
    wake: Notify,
}

pub(crate) type SharedProfiles = Arc<Shared>;

/// `app.bsky.actor.getProfiles`' answer (lexicon: `{"profiles": [profileViewDetailed]}`).
#[derive(Deserialize)]
struct ProfilesPage {
    #[serde(default)]
    profiles: Vec<ProfileView>,
}

/// The parts of `app.bsky.actor.defs#profileViewDetailed` used here.
#[derive(Deserialize)]
struct ProfileView {
    did: String,
    #[serde(default)]
    handle: Option<String>,
    #[serde(default, rename = "followersCount")]
    followers_count: Option<u64>,
}

/// The profile lookups of one `bluesky` source.
pub(crate) struct Profiles {
    shared: SharedProfiles,
    /// Taken by the lookup task when it starts (on the first poll, inside the runtime).
    lookup: Option<Lookup>,
    task: Option<TaskGuard>,
}

impl Profiles {
    pub(crate) fn new(source: &str, base: &str, fetcher: Fetcher, timeout: Duration) -> Profiles {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                cache: AuthorCache::new(CAPACITY, TTL),
                pending: VecDeque::new(),
                queued: HashSet::new(),
            }),
            wake: Notify::new(),
        });
        Profiles {
            lookup: Some(Lookup {
                source: source.to_string(),
                base: base.trim_end_matches('/').to_string(),
                fetcher,
                timeout,
                shared: shared.clone(),
            }),
            shared,
            task: None,
        }
    }

    pub(crate) fn shared(&self) -> SharedProfiles {
        self.shared.clone()
    }

    /// Starts the lookup task (once; it ends when the source is dropped).
    pub(crate) fn start(&mut self) {
        if let Some(lookup) = self.lookup.take() {
            self.task = Some(TaskGuard::spawn(lookup.run()));
        }
    }

    /// Shows every author known by handle with its follower count, and queues the others
    /// for the lookup task. Never waits for a lookup: an author not answered yet keeps its
    /// DID in this post.
    pub(crate) fn enrich(&mut self, mentions: &mut [Mention]) {
        self.start();
        let mut queued = false;
        {
            let mut state = lock(&self.shared);
            for m in mentions.iter_mut() {
                let Some(did) = author_did(m).map(str::to_string) else {
                    continue;
                };
                queued |= state.want(&did);
                let Some(profile) = state.cache.value(&did) else {
                    continue;
                };
                if let Some(handle) = profile.handle.filter(|h| usable_handle(h)) {
                    m.author = Some(format!("@{handle}"));
                }
                m.author_reach = profile.followers;
            }
        }
        if queued {
            self.shared.wake.notify_one();
        }
    }
}

/// The lookup task's side: asks the AppView for the queued authors, one round at a time.
struct Lookup {
    source: String,
    base: String,
    fetcher: Fetcher,
    /// The source's `timeout`, for one round.
    timeout: Duration,
    shared: SharedProfiles,
}

impl Lookup {
    /// Rounds of up to `MAX_BATCHES_PER_ROUND` requests, at least `LOOKUP_EVERY` apart, while
    /// authors are queued; ends with the source (its `TaskGuard` aborts it).
    async fn run(self) {
        loop {
            self.shared.wake.notified().await;
            loop {
                let wanted: Vec<String> = {
                    let mut state = lock(&self.shared);
                    if state.cache.paused() {
                        state.pending.clear();
                        state.queued.clear();
                    }
                    let n = state.pending.len().min(BATCH * MAX_BATCHES_PER_ROUND);
                    let taken: Vec<String> = state.pending.drain(..n).collect();
                    for did in &taken {
                        state.queued.remove(did);
                    }
                    taken.into_iter().filter(|d| state.cache.wants(d)).collect()
                };
                if wanted.is_empty() {
                    break;
                }
                self.round(&wanted).await;
                tokio::time::sleep(LOOKUP_EVERY).await;
            }
        }
    }

    async fn round(&self, wanted: &[String]) {
        let lookups = async {
            for batch in wanted.chunks(BATCH) {
                self.lookup(batch).await?;
            }
            Ok::<(), SourceError>(())
        };
        let result = match tokio::time::timeout(self.timeout, lookups).await {
            Ok(r) => r,
            Err(_) => Err(SourceError::Timeout(self.timeout)),
        };
        if let Err(e) = result {
            lock(&self.shared).cache.pause_after(&e);
            tracing::warn!(source = %self.source, url = %redact_url(&self.base), error = %e, "bluesky profile lookup failed; authors stay DIDs for now");
        }
    }

    /// One `getProfiles` request; every actor asked for is remembered, those the AppView
    /// does not return (deleted, taken down) as missing.
    async fn lookup(&self, dids: &[String]) -> Result<(), SourceError> {
        let mut url = Url::parse(&format!("{}/app.bsky.actor.getProfiles", self.base))
            .map_err(|e| SourceError::Config(format!("profiles_url is not valid: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            for did in dids {
                q.append_pair("actors", did);
            }
        }
        let response = self
            .fetcher
            .get(url.as_str(), &[("accept", "application/json")])
            .await?;
        let page: ProfilesPage = decode_json(&response.bytes, "the Bluesky getProfiles API")?;
        let mut state = lock(&self.shared);
        let mut answered = HashSet::new();
        for p in page.profiles {
            answered.insert(p.did.clone());
            state.cache.insert(
                &p.did,
                Some(Profile {
                    handle: p.handle,
                    followers: p.followers_count,
                }),
            );
        }
        for did in dids.iter().filter(|d| !answered.contains(*d)) {
            state.cache.insert(did, None);
        }
        Ok(())
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// A handle change from a Jetstream identity event, applied only to authors already known.
pub(crate) fn apply_identity(shared: &SharedProfiles, did: &str, handle: &str) {
    lock(shared)
        .cache
        .update(did, |p| p.handle = Some(handle.to_string()));
}

/// Queues a streamed post's author as soon as the post arrives, so the lookup may be done
/// by the time the post is polled (the first poll listens for a while).
pub(crate) fn want(shared: &SharedProfiles, m: &Mention) {
    let Some(did) = author_did(m) else {
        return;
    };
    if lock(shared).want(did) {
        shared.wake.notify_one();
    }
}

/// The author's DID, from the post's `at://{did}/app.bsky.feed.post/{rkey}` URI: the author
/// field may already show a handle.
fn author_did(m: &Mention) -> Option<&str> {
    m.item_id
        .strip_prefix("at://")
        .and_then(|rest| rest.split('/').next())
        .filter(|d| d.starts_with("did:"))
}

fn usable_handle(h: &str) -> bool {
    !h.is_empty() && h != INVALID_HANDLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_did_comes_from_the_post_uri() {
        let m = Mention {
            item_id: "at://did:plc:abc/app.bsky.feed.post/3k".into(),
            source: "b".into(),
            source_kind: "bluesky".into(),
            url: None,
            title: None,
            text: String::new(),
            author: Some("@someone.example".into()),
            author_reach: None,
            published: None,
            lang: None,
            rating: None,
        };
        assert_eq!(author_did(&m), Some("did:plc:abc"));
        assert!(!usable_handle("handle.invalid"));
        assert!(usable_handle("dana.bsky.social"));
    }

    /// The answer's shape, from the lexicon and the AppView's documented example
    /// (docs.bsky.app, app.bsky.actor.getProfiles): extra fields are ignored.
    #[test]
    fn a_documented_answer_decodes() {
        let page: ProfilesPage = serde_json::from_str(
            r#"{"profiles":[{"did":"did:plc:z72i7hdynmk6r22z27h6tvur","handle":"bsky.app",
            "displayName":"Bluesky","avatar":"https://cdn.bsky.app/x.jpg","associated":{"lists":0},
            "indexedAt":"2024-01-25T23:46:46.000Z","createdAt":"2023-04-12T04:53:57.057Z",
            "followersCount":25834912,"followsCount":7,"postsCount":551,"labels":[]}]}"#,
        )
        .unwrap();
        assert_eq!(page.profiles[0].handle.as_deref(), Some("bsky.app"));
        assert_eq!(page.profiles[0].followers_count, Some(25834912));
    }
}
