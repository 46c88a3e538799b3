//! The `discourse` source: new posts on one Discourse forum (a vendor's own community, a
//! customer forum), read from the forum-wide latest-posts listing `/posts.json` and kept when
//! they contain a word of `query` (every post when there is no query).
//!
//! Why `/posts.json` and not `/search.json`: the listing is ordered by post id, so a watermark
//! on the id says exactly what was read and nothing is skipped or read twice; it carries each
//! post's whole text (`cooked` HTML), where search answers only a ~200-character `blurb`; and
//! it does not depend on the search index, which Discourse fills in a background job. The cost
//! is that every new post is fetched (50 a page) and filtered here; a forum with more new
//! posts per poll than one poll's page budget is caught up over the next polls, oldest gap
//! first, never skipped.
//!
//! Discourse limits requests per IP (defaults: 200 a minute, 50 per 10 s; an admin can lower
//! them): requests are spaced `REQUEST_SPACING` apart, which stays under both, and a 429's
//! `Retry-After` / `extras.wait_seconds` pauses the source (at most a day). `api_key` /
//! `api_username` are sent as the `Api-Key` / `Api-Username` headers, never in a URL, and
//! never logged; with them, a redirect off the forum's origin is not followed (reqwest would
//! carry these headers to the other host).

use super::config::{Common, KindConfig};
use super::html::html_to_text;
use super::http::{decode_json, parse_retry_after, redact_url, ApiReply, Fetcher};
use super::prefilter::Prefilter;
use super::{Quota, Source, SourceError, SourceKind, SourceState};
use crate::config::{Reader, Table};
use crate::model::{Mention, Secret};
use crate::retry::DEFAULT_MAX_RETRY_AFTER;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// `kind = "discourse"`: the forum, what to look for, and optional API credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscourseConfig {
    pub(crate) common: Common,
    /// The forum's base URL, e.g. `https://forum.example.com` (a sub-folder install keeps its
    /// folder: `https://example.com/forum`).
    pub(crate) url: String,
    /// Words a post must contain (rule language; its positive words are used). `None`: every
    /// new post is handed on and the rules decide.
    pub(crate) query: Option<String>,
    /// An API key (Admin → API), for forums that are private or login-only.
    pub(crate) api_key: Option<Secret>,
    /// The user the key acts as (`system` for an all-users key).
    pub(crate) api_username: Option<String>,
}

impl KindConfig for DiscourseConfig {
    const KIND: &'static str = "discourse";
    const KEYS: &'static [&'static str] = &["url", "query", "api_key", "api_username"];
    const DEFAULT_EVERY: Duration = Duration::from_secs(300);

    fn read(r: &mut Reader, t: &Table, key: &str, common: Common) -> Option<DiscourseConfig> {
        let line = r.table_line(t);
        let url = r.url(t, key, "url", false);
        if url.is_none() && !t.contains_key("url") {
            r.problem(
                line,
                &format!("{key}.url"),
                "missing; add url = \"https://forum.example.com\" (the forum's base URL)",
            );
        }
        let query = r.string(t, key, "query");
        if query.as_deref().is_some_and(|q| q.trim().is_empty()) {
            let line = r.key_line(t, "query");
            r.problem(
                line,
                &format!("{key}.query"),
                "is empty; set the words to look for, e.g. query = \"acme\", or remove it to take every new post",
            );
        }
        let api_key = r.optional_secret(t, key, "api_key", "DISCOURSE_API_KEY");
        let api_username = r.string(t, key, "api_username");
        match (t.contains_key("api_key"), t.contains_key("api_username")) {
            (true, false) => r.problem(
                line,
                &format!("{key}.api_username"),
                "missing; api_key needs api_username = \"system\" (the user the key acts as)",
            ),
            (false, true) => r.problem(
                line,
                &format!("{key}.api_key"),
                "missing; api_username needs api_key = \"${DISCOURSE_API_KEY}\" (Admin → API → New API key on the forum)",
            ),
            _ => {}
        }
        if api_username.as_deref().is_some_and(|u| u.trim().is_empty()) {
            let line = r.key_line(t, "api_username");
            r.problem(
                line,
                &format!("{key}.api_username"),
                "is empty; set the user the key acts as, e.g. api_username = \"system\"",
            );
        }
        Some(DiscourseConfig {
            common,
            url: url?,
            query,
            api_key,
            api_username,
        })
    }

    fn common(&self) -> &Common {
        &self.common
    }

    fn build(&self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(DiscourseSource::new(self)?))
    }
}

/// `/posts.json` answers at most this many posts a page (`LatestPostsQuery::PAGE_SIZE`).
pub(crate) const PAGE_SIZE: usize = 50;
/// Pages one poll reads at most; a longer backlog is continued by the next polls.
pub(crate) const MAX_PAGES: usize = 10;
/// Time between two requests: 200 a minute is one per 300 ms, 50 per 10 s one per 200 ms.
pub(crate) const REQUEST_SPACING: Duration = Duration::from_millis(350);
/// The per-minute budget Discourse allows one IP by default (`max_reqs_per_ip_per_minute`).
pub(crate) const REQUESTS_PER_MINUTE: u64 = 200;
/// How far back the very first poll looks, so a new source does not alert on old posts.
pub(crate) const INITIAL_LOOKBACK_SECS: i64 = 3600;
/// Posts just under the watermark are looked at again this long: ids are handed out when a
/// post is inserted, and one inserted a moment earlier may become visible a moment later.
pub(crate) const OVERLAP_SECS: i64 = 120;
/// A 429 without a wait in it pauses the source this long.
const DEFAULT_RATE_WAIT: Duration = Duration::from_secs(60);

/// State keys: the highest post id fully handled is `cursor`; these go in `extra`.
const GAP_KEY: &str = "gap";
const RECENT_KEY: &str = "recent";

/// Watches one forum's latest posts.
pub(crate) struct DiscourseSource {
    name: String,
    base: String,
    prefilter: Option<Prefilter>,
    credentials: Option<(Secret, String)>,
    fetcher: Fetcher,
    /// When the last request was sent, for `REQUEST_SPACING`.
    last_request: Option<Instant>,
    /// Requests sent in the last minute, for `quota()`.
    sent: VecDeque<Instant>,
    /// Set by a 429: no request before this instant.
    paused_until: Option<Instant>,
}

#[derive(Debug, Deserialize)]
struct LatestPosts {
    latest_posts: Vec<Post>,
}

/// A post as `PostSerializer` renders it in `/posts.json` (with `add_raw` and `add_title`).
#[derive(Debug, Clone, Deserialize)]
struct Post {
    id: u64,
    created_at: DateTime<Utc>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    cooked: Option<String>,
    #[serde(default)]
    raw: Option<String>,
    #[serde(default)]
    post_number: Option<u64>,
    topic_id: u64,
    #[serde(default)]
    topic_slug: Option<String>,
    #[serde(default)]
    topic_title: Option<String>,
    #[serde(default)]
    hidden: bool,
    #[serde(default)]
    deleted_at: Option<String>,
    #[serde(default)]
    user_deleted: bool,
}

/// Discourse's error body: `{"errors":[…],"error_type":"…","extras":{"wait_seconds":N}}`.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<String>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    extras: Option<ErrorExtras>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorExtras {
    #[serde(default)]
    wait_seconds: Option<f64>,
}

/// An unread stretch of ids left by a poll that ran out of pages: posts with
/// `floor < id < before` are unread; everything up to `top` above it has been read.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Gap {
    before: u64,
    top: u64,
}

impl DiscourseSource {
    pub(crate) fn new(spec: &DiscourseConfig) -> Result<DiscourseSource, SourceError> {
        let base = spec.url.trim().trim_end_matches('/').to_string();
        if base.is_empty() {
            return Err(SourceError::Config(format!(
                "source {:?}: kind \"discourse\" needs url = \"https://forum.example.com\"",
                spec.common.name
            )));
        }
        let credentials = match (&spec.api_key, &spec.api_username) {
            (Some(k), Some(u)) => Some((k.clone(), u.clone())),
            (None, None) => None,
            _ => {
                return Err(SourceError::Config(format!(
                    "source {:?}: api_key and api_username go together; set both or neither",
                    spec.common.name
                )))
            }
        };
        Ok(DiscourseSource {
            name: spec.common.name.clone(),
            base,
            prefilter: spec.query.as_deref().and_then(Prefilter::from_query),
            // The key must not follow a redirect to another host.
            fetcher: if credentials.is_some() {
                Fetcher::same_origin(&spec.common)?
            } else {
                Fetcher::new(&spec.common)?
            },
            credentials,
            last_request: None,
            sent: VecDeque::new(),
            paused_until: None,
        })
    }

    /// One page of the latest posts, newest first: below `before` when given.
    async fn page(&mut self, before: Option<u64>) -> Result<Vec<Post>, SourceError> {
        if let Some(last) = self.last_request {
            tokio::time::sleep_until(last + REQUEST_SPACING).await;
        }
        let now = Instant::now();
        self.last_request = Some(now);
        self.sent.push_back(now);
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.sent.pop_front();
        }
        let url = match before {
            Some(b) => format!("{}/posts.json?before={b}", self.base),
            None => format!("{}/posts.json", self.base),
        };
        let mut headers: Vec<(&str, &str)> = vec![("accept", "application/json")];
        if let Some((key, user)) = &self.credentials {
            headers.push(("api-key", key.expose()));
            headers.push(("api-username", user));
        }
        let reply = self
            .fetcher
            .request_any(reqwest::Method::GET, &url, &headers, None)
            .await?;
        if !reply.is_success() {
            return Err(self.refusal(&reply));
        }
        let page: LatestPosts = decode_json(&reply.bytes, "the Discourse /posts.json API")?;
        Ok(page.latest_posts)
    }

    /// The error a non-2xx answer stands for, named with its fix.
    fn refusal(&mut self, reply: &ApiReply) -> SourceError {
        let body: ErrorBody = serde_json::from_slice(&reply.bytes).unwrap_or_default();
        let said = body
            .errors
            .first()
            .map(|e| format!(": {}", e.chars().take(200).collect::<String>()))
            .unwrap_or_default();
        match reply.status {
            429 => {
                let wait = reply
                    .headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, Utc::now()))
                    .or_else(|| {
                        body.extras
                            .and_then(|e| e.wait_seconds)
                            .filter(|s| s.is_finite() && *s >= 0.0)
                            .map(|s| Duration::from_secs_f64(s.min(86_400.0)))
                    })
                    .unwrap_or(DEFAULT_RATE_WAIT)
                    .min(DEFAULT_MAX_RETRY_AFTER);
                tracing::info!(source = %self.name, wait_secs = wait.as_secs(), "discourse rate limit hit; pausing");
                self.paused_until = Instant::now().checked_add(wait);
                SourceError::RateLimited { wait }
            }
            // Only a redirect off the forum's origin comes back (the others are followed),
            // and only when a key is set.
            300..=399 => {
                let to = reply
                    .headers
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| reqwest::Url::parse(v).is_ok())
                    .map_or_else(|| "another address".to_string(), redact_url);
                SourceError::Config(format!(
                    "the forum at {} redirects to {to} (HTTP {}); the API key is only sent to the forum's own address, \
                     so set url to where the forum is now",
                    self.base, reply.status
                ))
            }
            401 | 403 if self.credentials.is_none() => SourceError::Config(format!(
                "the forum at {} refused anonymous reading (HTTP {}{said}); it is private or login-only: \
                 create a read-only API key on it (Admin → API → New API key) and set api_key and api_username",
                self.base, reply.status
            )),
            401 | 403 => SourceError::Config(format!(
                "the forum at {} refused the API key (HTTP {}{said}); check api_key and api_username: \
                 the key must exist and not be revoked, and a single-user key must belong to api_username",
                self.base, reply.status
            )),
            404 => SourceError::Config(format!(
                "no Discourse forum answers at {} (HTTP 404 for /posts.json); set url to the forum's base URL, e.g. https://forum.example.com",
                self.base
            )),
            _ => {
                if let Some(kind) = body.error_type {
                    tracing::debug!(source = %self.name, status = reply.status, error_type = %kind, "discourse error");
                }
                reply.status_error()
            }
        }
    }

    fn to_mention(&self, post: Post) -> Option<Mention> {
        if post.hidden || post.user_deleted || post.deleted_at.is_some() {
            return None;
        }
        let text = match post.cooked.as_deref() {
            Some(c) if !c.trim().is_empty() => html_to_text(c),
            _ => post.raw.clone().unwrap_or_default(),
        };
        let first = post.post_number == Some(1);
        // A reply's topic title is context, not its words: matching on it would alert on
        // every reply in a topic that names the brand.
        let title = first
            .then(|| post.topic_title.clone())
            .flatten()
            .filter(|t| !t.trim().is_empty());
        if let Some(p) = &self.prefilter {
            let in_title = title.as_deref().is_some_and(|t| p.accepts(t));
            if !in_title && !p.accepts(&text) {
                return None;
            }
        }
        if text.is_empty() && title.is_none() {
            return None;
        }
        let slug = post
            .topic_slug
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("-");
        let url = format!(
            "{}/t/{slug}/{}/{}",
            self.base,
            post.topic_id,
            post.post_number.unwrap_or(1)
        );
        let author = post
            .username
            .filter(|u| !u.is_empty())
            .or(post.name.filter(|n| !n.is_empty()));
        Some(Mention {
            item_id: post.id.to_string(),
            source: self.name.clone(),
            source_kind: SourceKind::Discourse.as_str().to_string(),
            url: Some(url),
            title,
            text,
            author,
            // The listing does not say how many people read an author.
            author_reach: None,
            published: Some(post.created_at),
            lang: None,
            rating: None,
        })
    }
}

#[async_trait::async_trait]
impl Source for DiscourseSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Discourse
    }

    /// Requests this source sent in the last minute against Discourse's default per-IP
    /// budget (the forum sends no rate-limit headers); zero while a 429 pauses it.
    fn quota(&self) -> Option<Quota> {
        let now = Instant::now();
        let paused = self.paused_until.filter(|u| *u > now);
        let used = self
            .sent
            .iter()
            .filter(|t| now.duration_since(**t) < Duration::from_secs(60))
            .count() as u64;
        Some(Quota {
            unit: "requests",
            remaining: if paused.is_some() {
                0
            } else {
                REQUESTS_PER_MINUTE.saturating_sub(used)
            },
            limit: Some(REQUESTS_PER_MINUTE),
            resets_at: paused.and_then(|u| {
                Some(Utc::now() + chrono::Duration::from_std(u.duration_since(now)).ok()?)
            }),
        })
    }

    async fn poll(&mut self, state: &mut SourceState) -> Result<Vec<Mention>, SourceError> {
        if let Some(until) = self.paused_until {
            let now = Instant::now();
            if until > now {
                return Err(SourceError::RateLimited { wait: until - now });
            }
            self.paused_until = None;
        }
        let now = Utc::now().timestamp();
        let watermark: Option<u64> = state.cursor.as_deref().and_then(|c| c.parse().ok());
        let gap = read_gap(state);
        let mut recent = read_recent(state);
        // The newest time among already-handled posts: the overlap is measured from it.
        let newest_seen = recent.values().copied().max().unwrap_or(now);
        let mut before = gap.map(|g| g.before);
        let mut highest: Option<u64> = gap.map(|g| g.top);
        let mut lowest: Option<u64> = None;
        let mut complete = false;
        let mut posts: Vec<Post> = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = self.page(before).await?;
            let full = page.len() >= PAGE_SIZE;
            let mut reached_floor = page.is_empty();
            for post in page {
                highest = Some(highest.map_or(post.id, |h| h.max(post.id)));
                lowest = Some(lowest.map_or(post.id, |l| l.min(post.id)));
                let ts = post.created_at.timestamp();
                let below = match watermark {
                    Some(w) => post.id <= w,
                    None => ts < now - INITIAL_LOOKBACK_SECS,
                };
                if below {
                    reached_floor = true;
                    // Just under the watermark: a post that became visible late.
                    let late = watermark.is_some()
                        && ts >= newest_seen - OVERLAP_SECS
                        && !recent.contains_key(&post.id);
                    if !late {
                        continue;
                    }
                }
                posts.push(post);
            }
            if reached_floor || !full {
                complete = true;
                break;
            }
            before = lowest;
        }

        let mut mentions = Vec::new();
        for post in posts {
            if recent.contains_key(&post.id) {
                continue;
            }
            recent.insert(post.id, post.created_at.timestamp());
            if let Some(m) = self.to_mention(post) {
                mentions.push(m);
            }
        }

        if complete || watermark.is_none() {
            // Read down to the watermark (or, the first time, back one hour; older posts of
            // a first poll that ran out of pages are history, not news).
            if let Some(h) = highest.max(watermark) {
                state.cursor = Some(h.to_string());
            }
            state.extra.remove(GAP_KEY);
        } else if let Some(l) = lowest {
            let top = highest.unwrap_or(l);
            tracing::info!(source = %self.name, unread_below = l, "more new posts than one poll reads; the next poll continues here");
            write_gap(state, Gap { before: l, top });
        }
        let newest = recent.values().copied().max().unwrap_or(now);
        recent.retain(|_, ts| *ts >= newest - 2 * OVERLAP_SECS);
        write_recent(state, &recent);
        Ok(mentions)
    }
}

fn read_gap(state: &SourceState) -> Option<Gap> {
    let (before, top) = state.extra.get(GAP_KEY)?.split_once(' ')?;
    Some(Gap {
        before: before.parse().ok()?,
        top: top.parse().ok()?,
    })
}

fn write_gap(state: &mut SourceState, gap: Gap) {
    state
        .extra
        .insert(GAP_KEY.into(), format!("{} {}", gap.before, gap.top));
}

/// Post ids handled near the watermark, with their creation second: `id@ts id@ts …`.
fn read_recent(state: &SourceState) -> BTreeMap<u64, i64> {
    state
        .extra
        .get(RECENT_KEY)
        .map(|s| {
            s.split_whitespace()
                .filter_map(|e| {
                    let (id, ts) = e.split_once('@')?;
                    Some((id.parse().ok()?, ts.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_recent(state: &mut SourceState, recent: &BTreeMap<u64, i64>) {
    if recent.is_empty() {
        state.extra.remove(RECENT_KEY);
        return;
    }
    let joined: Vec<String> = recent.iter().map(|(id, ts)| format!("{id}@{ts}")).collect();
    state.extra.insert(RECENT_KEY.into(), joined.join(" "));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(query: Option<&str>) -> DiscourseSource {
        DiscourseSource::new(&DiscourseConfig {
            common: Common::new("forum", Duration::from_secs(300)),
            url: "https://forum.example.com/".into(),
            query: query.map(str::to_string),
            api_key: None,
            api_username: None,
        })
        .unwrap()
    }

    #[test]
    fn a_post_becomes_a_mention_with_its_topic_url_and_clean_text() {
        // Shape of one `latest_posts` entry as `/posts.json` returns it (PostSerializer).
        let post: Post = serde_json::from_str(
            r#"{"id": 9001, "name": "Dana K", "username": "dana", "avatar_template": "/user_avatar/forum.example.com/dana/{size}/2_2.png",
                "created_at": "2024-05-01T10:00:00.000Z", "cooked": "<p>My <strong>Acme</strong> hub &amp; app won&#39;t pair.</p>\n<aside class=\"onebox\"></aside>",
                "post_number": 3, "post_type": 1, "updated_at": "2024-05-01T10:00:00.000Z", "reply_count": 0,
                "reply_to_post_number": null, "topic_id": 77, "topic_slug": "pairing-fails", "topic_title": "Pairing fails",
                "topic_html_title": "Pairing fails", "category_id": 5, "raw": "My **Acme** hub & app won't pair.",
                "hidden": false, "user_deleted": false, "deleted_at": null, "wiki": false}"#,
        )
        .unwrap();
        let m = source(Some("acme")).to_mention(post).unwrap();
        assert_eq!(m.item_id, "9001");
        assert_eq!(m.text, "My Acme hub & app won't pair.");
        assert_eq!(m.title, None, "a reply's topic title is context");
        assert_eq!(
            m.url.as_deref(),
            Some("https://forum.example.com/t/pairing-fails/77/3")
        );
        assert_eq!(m.author.as_deref(), Some("dana"));
    }

    #[test]
    fn the_query_filters_posts_and_a_first_post_matches_on_its_title() {
        let post = |n: u64, title: &str, cooked: &str| -> Post {
            serde_json::from_value(serde_json::json!({
                "id": n, "created_at": "2024-05-01T10:00:00Z", "cooked": cooked, "post_number": n,
                "topic_id": 1, "topic_slug": "t", "topic_title": title, "username": "u"
            }))
            .unwrap()
        };
        let s = source(Some("acme AND NOT hiring"));
        assert!(s
            .to_mention(post(1, "Acme is down", "<p>since noon</p>"))
            .is_some());
        assert!(s
            .to_mention(post(2, "Acme is down", "<p>same here</p>"))
            .is_none());
        assert!(s
            .to_mention(post(2, "Other", "<p>my ACME too</p>"))
            .is_some());
        assert!(source(None)
            .to_mention(post(2, "Other", "<p>anything</p>"))
            .is_some());
    }
}
