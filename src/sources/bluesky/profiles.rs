//! Bluesky authors as people know them: Jetstream and search name a post's author by DID
//! (`did:plc:…`), which nobody on a desk recognises. With `author_details` on (the default)
//! the source asks the public AppView's `app.bsky.actor.getProfiles` (no account needed, up
//! to 25 actors per request) for each new author's handle and follower count, remembers the
//! answers (`authors.rs`: bounded, 6 h), and applies Jetstream's identity events to the
//! authors it knows, so a handle change shows at once.
//! Best effort by design: a failed, slow or rate-limited lookup leaves the DID and no reach,
//! pauses further lookups for a while, and never holds back or drops a post.

use super::super::authors::{AuthorCache, CAPACITY, TTL};
use super::super::http::{decode_json, redact_url, Fetcher};
use super::super::SourceError;
use crate::model::Mention;
use reqwest::Url;
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bluesky's public AppView: the `app.bsky.*` read API without an account.
pub(crate) const DEFAULT_PROFILES_URL: &str = "https://public.api.bsky.app/xrpc";
/// `getProfiles` takes at most this many actors (its lexicon's `maxLength`).
pub(crate) const BATCH: usize = 25;
/// Requests one poll may make: 100 new authors; the rest keep their DID until a later poll
/// sees them again. At the default `every` of 10 s that is at most 120 requests per 5 minutes,
/// well under the 3,000 per 5 minutes per IP Bluesky documents for its API hosts
/// (docs.bsky.app, "Rate Limits"); a 429 pauses the lookups for as long as it asks.
pub(crate) const MAX_BATCHES_PER_POLL: usize = 4;
/// Share of the poll's timeout the lookups may use, so a slow AppView cannot make the poll
/// time out (which would lose the posts it drained from the stream).
pub(crate) const BUDGET_SHARE: f64 = 0.15;
/// The placeholder the AppView shows for a handle that no longer verifies: not a name.
const INVALID_HANDLE: &str = "handle.invalid";

/// What the AppView says about an author.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Profile {
    pub(crate) handle: Option<String>,
    pub(crate) followers: Option<u64>,
}

/// The remembered profiles, shared with the Jetstream task for identity events.
pub(crate) type SharedProfiles = Arc<Mutex<AuthorCache<Profile>>>;

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
    source: String,
    base: String,
    fetcher: Fetcher,
    cache: SharedProfiles,
}

impl Profiles {
    pub(crate) fn new(source: &str, base: &str, fetcher: Fetcher) -> Profiles {
        Profiles {
            source: source.to_string(),
            base: base.trim_end_matches('/').to_string(),
            fetcher,
            cache: Arc::new(Mutex::new(AuthorCache::new(CAPACITY, TTL))),
        }
    }

    pub(crate) fn shared(&self) -> SharedProfiles {
        self.cache.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AuthorCache<Profile>> {
        lock(&self.cache)
    }

    /// Looks up the authors of `mentions` not known yet (within `budget`) and shows every
    /// author known by handle with its follower count. Never fails: what cannot be looked
    /// up keeps its DID.
    pub(crate) async fn enrich(&self, mentions: &mut [Mention], budget: Duration) {
        let mut wanted: Vec<String> = Vec::new();
        {
            let cache = self.lock();
            if !cache.paused() {
                let mut seen = HashSet::new();
                for m in mentions.iter() {
                    if let Some(did) = author_did(m) {
                        if cache.wants(did) && seen.insert(did) {
                            wanted.push(did.to_string());
                        }
                    }
                }
            }
        }
        wanted.truncate(BATCH * MAX_BATCHES_PER_POLL);
        // A poll with no time left (a long search) leaves the lookups to the next one; that
        // is not the AppView's fault, so it does not pause them.
        if !wanted.is_empty() && !budget.is_zero() {
            let lookups = async {
                for batch in wanted.chunks(BATCH) {
                    self.lookup(batch).await?;
                }
                Ok::<(), SourceError>(())
            };
            let result = match tokio::time::timeout(budget, lookups).await {
                Ok(r) => r,
                Err(_) => Err(SourceError::Timeout(budget)),
            };
            if let Err(e) = result {
                self.lock().pause_after(&e);
                tracing::warn!(source = %self.source, url = %redact_url(&self.base), error = %e, "bluesky profile lookup failed; authors stay DIDs for now");
            }
        }
        let cache = self.lock();
        for m in mentions.iter_mut() {
            let Some(profile) = author_did(m).and_then(|did| cache.value(did)) else {
                continue;
            };
            if let Some(handle) = profile.handle.filter(|h| usable_handle(h)) {
                m.author = Some(format!("@{handle}"));
            }
            m.author_reach = profile.followers;
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
        let mut cache = self.lock();
        let mut answered = HashSet::new();
        for p in page.profiles {
            answered.insert(p.did.clone());
            cache.insert(
                &p.did,
                Some(Profile {
                    handle: p.handle,
                    followers: p.followers_count,
                }),
            );
        }
        for did in dids.iter().filter(|d| !answered.contains(*d)) {
            cache.insert(did, None);
        }
        Ok(())
    }
}

fn lock(cache: &SharedProfiles) -> std::sync::MutexGuard<'_, AuthorCache<Profile>> {
    cache.lock().unwrap_or_else(|e| e.into_inner())
}

/// A handle change from a Jetstream identity event, applied only to authors already known.
pub(crate) fn apply_identity(cache: &SharedProfiles, did: &str, handle: &str) {
    lock(cache).update(did, |p| p.handle = Some(handle.to_string()));
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
