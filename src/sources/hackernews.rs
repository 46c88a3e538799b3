//! The `hackernews` source: stories and comments that match `query`, from the Algolia HN
//! search API (`search_by_date`). Algolia returns at most 1,000 hits per query, so the source
//! walks `created_at_i` windows small enough to fit under that cap, oldest first, and keeps a
//! watermark plus the ids it saw near it, so nothing is missed or handed on twice.
//! Authors come with their karma from the official HN API (`/v0/user/{id}.json`), looked up
//! once per author and remembered (`authors.rs`), unless `author_details = false`.
//! It does not filter by rules or remember items for longer than the overlap window.

use super::authors::{AuthorCache, CAPACITY, TTL};
use super::config::{required_query, Common, KindConfig};
use super::html::html_to_text;
use super::http::{decode_json, Fetcher};
use super::{Source, SourceError, SourceKind, SourceState};
use crate::config::{Reader, Table};
use crate::model::Mention;
use chrono::{DateTime, Utc};
use reqwest::Url;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

pub(crate) const DEFAULT_URL: &str = "https://hn.algolia.com/api/v1";
/// The official Hacker News API (Firebase), which has each user's karma.
pub(crate) const DEFAULT_USERS_URL: &str = "https://hacker-news.firebaseio.com/v0";
/// User lookups one poll may make; authors beyond them are shown without karma. The API
/// states no rate limit; this keeps a busy query polite.
pub(crate) const MAX_USER_LOOKUPS_PER_POLL: usize = 20;
/// Share of the poll's timeout the user lookups may use, so they never make it time out.
pub(crate) const LOOKUP_BUDGET_SHARE: f64 = 0.2;

/// `kind = "hackernews"`: what to search for, and an API base override.
#[derive(Debug, Clone, PartialEq)]
pub struct HackerNewsConfig {
    pub(crate) common: Common,
    pub(crate) query: String,
    /// API base (default [`DEFAULT_URL`]).
    pub(crate) url: Option<String>,
    /// Look each author's karma up on the official API (default true).
    pub(crate) author_details: bool,
    /// That API's base (default [`DEFAULT_USERS_URL`]); an override for tests and proxies.
    pub(crate) users_url: Option<String>,
}

impl KindConfig for HackerNewsConfig {
    const KIND: &'static str = "hackernews";
    const KEYS: &'static [&'static str] = &["query", "url", "author_details", "users_url"];
    const DEFAULT_EVERY: std::time::Duration = std::time::Duration::from_secs(120);

    fn read(r: &mut Reader, t: &Table, key: &str, common: Common) -> Option<HackerNewsConfig> {
        let query = required_query(r, t, key, "it is what the API is searched for");
        let url = r.url(t, key, "url", false);
        let author_details = r.boolean(t, key, "author_details").unwrap_or(true);
        let users_url = r.url(t, key, "users_url", false);
        Some(HackerNewsConfig {
            common,
            query: query?,
            url,
            author_details,
            users_url,
        })
    }

    fn common(&self) -> &Common {
        &self.common
    }

    fn build(&self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(HackerNewsSource::new(self)?))
    }
}
/// Algolia's hard limit: hits beyond the 1,000th of a query cannot be paged to.
pub(crate) const HIT_CAP: u64 = 1000;
/// Hits per page (Algolia allows up to 1,000; smaller pages keep bodies small).
pub(crate) const HITS_PER_PAGE: u64 = 500;
/// Every poll re-reads this much before the watermark: items reach the index a little after
/// their `created_at_i`, and this is how late one may be and still be seen.
pub(crate) const OVERLAP_SECS: i64 = 600;
/// How far back the very first poll looks, so a new source does not alert on years of history.
pub(crate) const INITIAL_LOOKBACK_SECS: i64 = 3600;
/// Requests one poll may make; the next poll continues from the last complete window.
pub(crate) const MAX_REQUESTS_PER_POLL: u32 = 20;

const RECENT_KEY: &str = "recent";

/// Polls Algolia for one query.
pub(crate) struct HackerNewsSource {
    name: String,
    base: String,
    /// Words sent to Algolia; with more than one they are all sent as optional words, so a
    /// hit needs any of them (the rules then decide).
    words: Vec<String>,
    fetcher: Fetcher,
    timeout: Duration,
    /// Karma lookups, unless `author_details = false`.
    karma: Option<Karma>,
}

/// Each author's karma from the official API, remembered per author.
struct Karma {
    base: String,
    cache: AuthorCache<u64>,
}

/// The parts of an HN user (`/v0/user/{id}.json`, documented at github.com/HackerNews/API:
/// `{"id","created","karma","about","submitted"}`) used here; an unknown user is `null`.
#[derive(Deserialize)]
struct User {
    #[serde(default)]
    karma: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    hits: Vec<Hit>,
    #[serde(rename = "nbHits")]
    nb_hits: u64,
    #[serde(rename = "nbPages", default)]
    nb_pages: u64,
}

#[derive(Debug, Clone, Deserialize)]
struct Hit {
    #[serde(rename = "objectID")]
    object_id: String,
    created_at_i: i64,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    story_text: Option<String>,
    #[serde(default)]
    comment_text: Option<String>,
    #[serde(default, rename = "_tags")]
    tags: Vec<String>,
}

impl HackerNewsSource {
    pub(crate) fn new(spec: &HackerNewsConfig) -> Result<HackerNewsSource, SourceError> {
        let query = spec.query.clone();
        if query.trim().is_empty() {
            return Err(SourceError::Config(format!(
                "source {:?}: kind \"hackernews\" needs query = \"…\"",
                spec.common.name
            )));
        }
        Ok(HackerNewsSource {
            name: spec.common.name.clone(),
            base: spec
                .url
                .clone()
                .unwrap_or_else(|| DEFAULT_URL.to_string())
                .trim_end_matches('/')
                .to_string(),
            words: search_words(&query),
            fetcher: Fetcher::new(&spec.common)?,
            timeout: spec.common.timeout,
            karma: spec.author_details.then(|| Karma {
                base: spec
                    .users_url
                    .as_deref()
                    .unwrap_or(DEFAULT_USERS_URL)
                    .trim_end_matches('/')
                    .to_string(),
                cache: AuthorCache::new(CAPACITY, TTL),
            }),
        })
    }

    /// Adds each author's karma as `author_reach` (unit `karma`, see `Mention::reach_unit`),
    /// looking up at most `MAX_USER_LOOKUPS_PER_POLL` new authors within `budget`. A failed
    /// lookup pauses the lookups and leaves the mentions as they are; it never fails the poll.
    async fn add_karma(&mut self, mentions: &mut [Mention], budget: Duration) {
        let Some(karma) = self.karma.as_mut() else {
            return;
        };
        let mut wanted: Vec<String> = Vec::new();
        if !karma.cache.paused() {
            let mut seen = HashSet::new();
            for a in mentions.iter().filter_map(|m| m.author.as_deref()) {
                if karma.cache.wants(a) && seen.insert(a) {
                    wanted.push(a.to_string());
                }
            }
        }
        wanted.truncate(MAX_USER_LOOKUPS_PER_POLL);
        if wanted.is_empty() || budget.is_zero() {
            // Nothing new, or no time left: not the API's fault, so no pause.
            Self::show_karma(&karma.cache, mentions);
            return;
        }
        let fetcher = &self.fetcher;
        let lookups = async {
            for user in &wanted {
                let found = user_karma(fetcher, &karma.base, user).await?;
                karma.cache.insert(user, found);
            }
            Ok::<(), SourceError>(())
        };
        let result = match tokio::time::timeout(budget, lookups).await {
            Ok(r) => r,
            Err(_) => Err(SourceError::Timeout(budget)),
        };
        if let Err(e) = result {
            karma.cache.pause_after(&e);
            tracing::warn!(source = %self.name, error = %e, "hacker news user lookup failed; mentions go on without karma for now");
        }
        Self::show_karma(&karma.cache, mentions);
    }

    fn show_karma(cache: &AuthorCache<u64>, mentions: &mut [Mention]) {
        for m in mentions.iter_mut() {
            if let Some(k) = m.author.as_deref().and_then(|a| cache.value(a)) {
                m.author_reach = Some(k);
            }
        }
    }
}

/// One user's karma; `None` for a user the API does not know (`null`, or 404 from a proxy).
async fn user_karma(fetcher: &Fetcher, base: &str, user: &str) -> Result<Option<u64>, SourceError> {
    let mut url = Url::parse(&format!("{base}/user"))
        .map_err(|e| SourceError::Config(format!("users_url is not valid: {e}")))?;
    url.path_segments_mut()
        .map_err(|_| SourceError::Config("users_url is not valid".into()))?
        .push(&format!("{user}.json"));
    match fetcher
        .get(url.as_str(), &[("accept", "application/json")])
        .await
    {
        Ok(response) => {
            let user: Option<User> = decode_json(&response.bytes, "the HN user API")?;
            Ok(user.and_then(|u| u.karma))
        }
        Err(SourceError::Status { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

impl HackerNewsSource {
    /// One page of hits created in `[lo, hi]` (`hi` open when `None`), newest first.
    async fn page(&self, lo: i64, hi: Option<i64>, page: u64) -> Result<Page, SourceError> {
        let mut url = Url::parse(&format!("{}/search_by_date", self.base))
            .map_err(|e| SourceError::Config(format!("hackernews url is not valid: {e}")))?;
        let mut filters = format!("created_at_i>={lo}");
        if let Some(hi) = hi {
            filters.push_str(&format!(",created_at_i<={hi}"));
        }
        let joined = self.words.join(" ");
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("query", &joined);
            if self.words.len() > 1 {
                pairs.append_pair("optionalWords", &joined);
            }
            pairs
                .append_pair("tags", "(story,comment)")
                .append_pair("numericFilters", &filters)
                .append_pair("hitsPerPage", &HITS_PER_PAGE.to_string())
                .append_pair("page", &page.to_string());
        }
        let response = self
            .fetcher
            .get(url.as_str(), &[("accept", "application/json")])
            .await?;
        decode_json(&response.bytes, "the HN search API")
    }
}

/// The positive words of the rule-language query, without operators or negations: Algolia
/// does not speak the rule language, so it is asked for candidates and the rules decide.
fn search_words(query: &str) -> Vec<String> {
    let mut unique: Vec<String> = Vec::new();
    for t in super::prefilter::positive_terms(query) {
        if !unique.contains(&t) {
            unique.push(t);
        }
    }
    if unique.is_empty() {
        unique.push(query.trim().to_string());
    }
    unique
}

#[async_trait::async_trait]
impl Source for HackerNewsSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Hackernews
    }

    async fn poll(&mut self, state: &mut SourceState) -> Result<Vec<Mention>, SourceError> {
        let started = tokio::time::Instant::now();
        let now = Utc::now().timestamp();
        let watermark: i64 = state
            .cursor
            .as_deref()
            .and_then(|c| c.parse().ok())
            .unwrap_or(now - INITIAL_LOOKBACK_SECS);
        let mut recent = read_recent(state);

        let mut lo = watermark - OVERLAP_SECS;
        let mut hi: Option<i64> = None;
        let mut requests = 0u32;
        let mut hits: Vec<Hit> = Vec::new();
        // Everything created up to this second has been read (or handed on before).
        let mut covered = watermark;
        loop {
            let first = self.page(lo, hi, 0).await?;
            requests += 1;
            let top = hi.unwrap_or(now).max(lo);
            if first.nb_hits > HIT_CAP && top - lo >= 1 {
                // Too many hits to page through: halve the window and try its older half.
                hi = Some(lo + (top - lo) / 2);
                if requests >= MAX_REQUESTS_PER_POLL {
                    break;
                }
                continue;
            }
            if first.nb_hits > HIT_CAP {
                tracing::warn!(
                    source = %self.name,
                    second = lo,
                    hits = first.nb_hits,
                    "more than 1000 hits in one second; some cannot be read"
                );
            }
            let mut window = first.hits;
            let pages = first.nb_pages.min(HIT_CAP.div_ceil(HITS_PER_PAGE));
            for page in 1..pages {
                let next = self.page(lo, hi, page).await?;
                requests += 1;
                if next.hits.is_empty() {
                    break;
                }
                window.extend(next.hits);
            }
            let newest = window.iter().map(|h| h.created_at_i).max();
            hits.extend(window);
            match hi {
                None => {
                    covered = covered.max(newest.unwrap_or(covered));
                    break;
                }
                Some(h) => {
                    covered = covered.max(h);
                    lo = h + 1;
                    hi = None;
                    if requests >= MAX_REQUESTS_PER_POLL {
                        tracing::info!(
                            source = %self.name,
                            covered_to = covered,
                            "request budget used up; the next poll continues from here"
                        );
                        break;
                    }
                }
            }
        }

        let mut mentions = Vec::new();
        for hit in hits {
            if recent.contains_key(&hit.object_id) {
                continue;
            }
            recent.insert(hit.object_id.clone(), hit.created_at_i);
            if let Some(m) = to_mention(hit, &self.name) {
                mentions.push(m);
            }
        }
        recent.retain(|_, ts| *ts >= covered - OVERLAP_SECS);
        state.cursor = Some(covered.to_string());
        write_recent(state, &recent);
        let budget = self
            .timeout
            .mul_f64(LOOKUP_BUDGET_SHARE)
            .min(self.timeout.mul_f64(0.95).saturating_sub(started.elapsed()));
        self.add_karma(&mut mentions, budget).await;
        Ok(mentions)
    }
}

/// Ids seen inside the overlap window, with their creation second: `id@ts id@ts …`.
fn read_recent(state: &SourceState) -> BTreeMap<String, i64> {
    super::seen::decode(state.extra.get(RECENT_KEY))
}

fn write_recent(state: &mut SourceState, recent: &BTreeMap<String, i64>) {
    if recent.is_empty() {
        state.extra.remove(RECENT_KEY);
        return;
    }
    let joined: Vec<String> = recent.iter().map(|(id, ts)| format!("{id}@{ts}")).collect();
    state.extra.insert(RECENT_KEY.to_string(), joined.join(" "));
}

fn to_mention(hit: Hit, source: &str) -> Option<Mention> {
    let is_comment = hit.tags.iter().any(|t| t == "comment") || hit.comment_text.is_some();
    let (title, text) = if is_comment {
        // A comment's story title is context, not its words: matching on it would alert on
        // every reply to a story that names the brand.
        (
            None,
            html_to_text(hit.comment_text.as_deref().unwrap_or("")),
        )
    } else {
        let body = html_to_text(hit.story_text.as_deref().unwrap_or(""));
        let text = if body.is_empty() {
            hit.url.clone().unwrap_or_default()
        } else {
            body
        };
        (hit.title.clone().filter(|t| !t.is_empty()), text)
    };
    if title.is_none() && text.is_empty() {
        return None;
    }
    Some(Mention {
        url: Some(format!(
            "https://news.ycombinator.com/item?id={}",
            hit.object_id
        )),
        item_id: hit.object_id,
        source: source.to_string(),
        source_kind: SourceKind::Hackernews.as_str().to_string(),
        title,
        text,
        author: hit.author,
        // Karma, when the user lookup knows it (`add_karma`); HN has no followers.
        author_reach: None,
        published: DateTime::<Utc>::from_timestamp(hit.created_at_i, 0),
        lang: None,
        rating: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stories_and_comments_map_to_mentions_with_canonical_urls() {
        let story: Hit = serde_json::from_str(
            r#"{"created_at":"2024-05-01T10:00:00Z","created_at_i":1714557600,"objectID":"40000001",
                "author":"dana","title":"Acme router review","url":"https://example.com/r",
                "story_text":null,"comment_text":null,"points":12,"num_comments":3,
                "_tags":["story","author_dana","story_40000001"]}"#,
        )
        .unwrap();
        let m = to_mention(story, "hn").unwrap();
        assert_eq!(m.item_id, "40000001");
        assert_eq!(m.title.as_deref(), Some("Acme router review"));
        assert_eq!(m.text, "https://example.com/r");
        assert_eq!(
            m.url.as_deref(),
            Some("https://news.ycombinator.com/item?id=40000001")
        );
        assert_eq!(m.published.unwrap().timestamp(), 1714557600);

        let comment: Hit = serde_json::from_str(
            r#"{"created_at_i":1714557700,"objectID":"40000002","author":"kim",
                "comment_text":"<p>My Acme died &amp; support is silent</p>","story_title":"Acme router review",
                "story_id":40000001,"parent_id":40000001,"_tags":["comment","author_kim","story_40000001"]}"#,
        )
        .unwrap();
        let m = to_mention(comment, "hn").unwrap();
        assert_eq!(m.title, None);
        assert_eq!(m.text, "My Acme died & support is silent");
        assert_eq!(m.author.as_deref(), Some("kim"));
    }

    #[test]
    fn search_words_drop_operators_and_negations() {
        assert_eq!(
            search_words(r#"(acme OR "acme corp") AND NOT hiring"#),
            ["acme"]
        );
        assert_eq!(search_words("acme OR widgets"), ["acme", "widgets"]);
    }
}
