//! The `reddit` source: new posts (search, restricted to the listed subreddits) and new
//! comments in those subreddits (their comment listing, cut down by the query's keywords),
//! through Reddit's OAuth API with an app-only token that is refreshed before it expires. It
//! sends the descriptive User-Agent Reddit asks for and stops before the `X-Ratelimit-*`
//! budget runs out. Listings come newest first; a watermark per listing plus the ids seen near
//! it make sure nothing is missed or handed on twice.
//! Each mention's reach is the size of its subreddit (`subreddit_subscribers`, which post
//! listings carry for free; a comment's subreddit is looked up once per 6 h on `/about`
//! unless `author_details = false`). Authors' karma is not looked up: it would cost one
//! request per author from the same 100-a-minute budget, and karma is not an audience.
//! It does not log in as a user and never logs the client secret or the token.

use super::authors::{AuthorCache, TTL};
use super::config::{required_query, Common, KindConfig};
use super::http::{decode_json, ratelimit_reset, ApiResponse, Fetcher};
use super::prefilter::Prefilter;
use super::{Source, SourceError, SourceKind, SourceState};
use crate::config::{Reader, Table};
use crate::model::{Mention, Secret};
use chrono::{DateTime, Utc};
use reqwest::Url;
use serde::Deserialize;
use std::time::Duration;
use tokio::time::Instant;

pub(crate) const DEFAULT_URL: &str = "https://oauth.reddit.com";
pub(crate) const DEFAULT_TOKEN_URL: &str = "https://www.reddit.com/api/v1/access_token";
/// Reddit's largest listing page.
pub(crate) const PAGE_LIMIT: usize = 100;
/// Pages per listing per poll; the next poll continues where this one stopped.
pub(crate) const MAX_PAGES: usize = 5;
/// A token is renewed when it has less than this left.
pub(crate) const REFRESH_MARGIN: Duration = Duration::from_secs(120);
/// Re-read this much before the watermark: search results can appear a little late.
pub(crate) const OVERLAP_SECS: i64 = 300;

/// `kind = "reddit"`: the search, the subreddits, and the app's OAuth credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct RedditConfig {
    pub(crate) common: Common,
    pub(crate) query: String,
    /// Subreddits to watch, without `r/`.
    pub(crate) subreddits: Vec<String>,
    /// The app's client id.
    pub(crate) client_id: String,
    /// The app's client secret.
    pub(crate) client_secret: Secret,
    /// The User-Agent Reddit's rules ask for (`platform:app:version (by /u/name)`).
    pub(crate) user_agent: Option<String>,
    /// The OAuth token endpoint (override for tests and proxies).
    pub(crate) token_url: Option<String>,
    /// API base (default [`DEFAULT_URL`]).
    pub(crate) url: Option<String>,
    /// Look up the size of a comment's subreddit when no post listing gave it (default true).
    pub(crate) author_details: bool,
}

impl KindConfig for RedditConfig {
    const KIND: &'static str = "reddit";
    const KEYS: &'static [&'static str] = &[
        "query",
        "subreddits",
        "client_id",
        "client_secret",
        "user_agent",
        "token_url",
        "url",
        "author_details",
    ];
    const DEFAULT_EVERY: Duration = Duration::from_secs(120);

    fn read(r: &mut Reader, t: &Table, key: &str, common: Common) -> Option<RedditConfig> {
        let url = r.url(t, key, "url", false);
        let subreddits: Vec<String> = r
            .string_array(t, key, "subreddits")
            .into_iter()
            .map(|s| {
                s.trim_start_matches("/r/")
                    .trim_start_matches("r/")
                    .to_string()
            })
            .collect();
        let client_id = r.string(t, key, "client_id");
        let user_agent = r.string(t, key, "user_agent");
        let token_url = r.string(t, key, "token_url");
        let query = required_query(r, t, key, "it is what the API is searched for");
        let line = r.table_line(t);
        if subreddits.is_empty() {
            r.problem(
                line,
                &format!("{key}.subreddits"),
                "missing; add subreddits = [\"acme\", \"routers\"]",
            );
        }
        if client_id.is_none() {
            r.problem(
                line,
                &format!("{key}.client_id"),
                "missing; add client_id = \"${REDDIT_CLIENT_ID}\" (from reddit.com/prefs/apps)",
            );
        }
        if client_id.as_deref().is_some_and(|id| id.trim().is_empty()) {
            // Refused here so `check` names it (an unset `${VAR:-}` gives ""); the source
            // could not start with it.
            let line = r.key_line(t, "client_id");
            r.problem(
                line,
                &format!("{key}.client_id"),
                "is empty; set it to the app's id from reddit.com/prefs/apps, e.g. client_id = \"${REDDIT_CLIENT_ID}\"",
            );
        }
        let client_secret = r.secret(t, key, "client_secret", "REDDIT_CLIENT_SECRET");
        let author_details = r.boolean(t, key, "author_details").unwrap_or(true);
        if let Some(u) = &token_url {
            r.check_url(t, key, "token_url", u, false);
        }
        Some(RedditConfig {
            common,
            query: query?,
            subreddits,
            client_id: client_id?,
            client_secret: client_secret?,
            user_agent,
            token_url,
            url,
            author_details,
        })
    }

    fn common(&self) -> &Common {
        &self.common
    }

    fn build(&self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(RedditSource::new(self)?))
    }
}
/// Stop paging when fewer requests than this are left in the rate-limit window.
pub(crate) const RATE_RESERVE: f64 = 2.0;
/// Ids remembered per listing at most (the overlap window needs far fewer).
const MAX_SEEN: usize = 5000;
/// Subreddit sizes remembered at most (a source watches a handful).
const MAX_SUBREDDITS: usize = 1000;
/// `/about` lookups one poll may make.
const MAX_ABOUT_PER_POLL: usize = 5;

/// Watches subreddits through Reddit's OAuth API.
pub(crate) struct RedditSource {
    name: String,
    base: String,
    token_url: String,
    client_id: String,
    client_secret: Secret,
    user_agent: String,
    subreddits: String,
    search: String,
    prefilter: Option<Prefilter>,
    fetcher: Fetcher,
    token: Option<(Secret, Instant)>,
    /// Set when the rate-limit budget is used up: no request before this instant.
    paused_until: Option<Instant>,
    /// The budget as the last answer's `X-Ratelimit-*` headers gave it, for `/healthz`.
    quota: Option<super::Quota>,
    /// Members per subreddit (lowercase name), from post listings and `/about`.
    subscribers: AuthorCache<u64>,
    /// Whether a comment's subreddit may be looked up on `/about`.
    author_details: bool,
    timeout: Duration,
}

/// `/r/{sub}/about`: a `t5` thing whose data has `subscribers` (Reddit API docs,
/// `GET /r/subreddit/about`).
#[derive(Deserialize)]
struct About {
    data: AboutData,
}

#[derive(Deserialize)]
struct AboutData {
    #[serde(default)]
    subscribers: Option<u64>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct Listing {
    data: ListingData,
}

#[derive(Deserialize)]
struct ListingData {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    children: Vec<Thing>,
}

#[derive(Deserialize)]
struct Thing {
    kind: String,
    data: ThingData,
}

#[derive(Deserialize)]
struct ThingData {
    name: String,
    #[serde(default)]
    created_utc: f64,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    selftext: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    permalink: Option<String>,
    #[serde(default)]
    url: Option<String>,
    /// A crosspost's original post (Reddit sends a list of one); the crosspost itself has no
    /// selftext and a relative `url` to the original.
    #[serde(default)]
    crosspost_parent_list: Option<Vec<CrosspostParent>>,
    #[serde(default)]
    subreddit: Option<String>,
    /// The subreddit's members; posts (`t3`) carry it, comments (`t1`) do not.
    #[serde(default)]
    subreddit_subscribers: Option<u64>,
}

#[derive(Deserialize)]
struct CrosspostParent {
    #[serde(default)]
    selftext: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

/// Reddit's placeholders for a deleted or moderator-removed author or text: not words of
/// the post and not a person (never grouped or muted on).
fn placeholder(s: &str) -> bool {
    matches!(s.trim(), "" | "[deleted]" | "[removed]")
}

/// A link as a reader can open it: Reddit gives crossposts a site-relative `url`.
fn absolute(url: &str) -> String {
    if url.starts_with('/') {
        format!("https://www.reddit.com{url}")
    } else {
        url.to_string()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Listed {
    Posts,
    Comments,
}

impl Listed {
    fn key(self) -> &'static str {
        match self {
            Listed::Posts => "posts",
            Listed::Comments => "comments",
        }
    }
}

impl RedditSource {
    pub(crate) fn new(spec: &RedditConfig) -> Result<RedditSource, SourceError> {
        let api = spec;
        let missing = |what: &str| {
            SourceError::Config(format!(
                "source {:?}: kind \"reddit\" needs {what}",
                spec.common.name
            ))
        };
        let client_id = api.client_id.clone();
        if client_id.trim().is_empty() {
            return Err(missing("client_id"));
        }
        let client_secret = api.client_secret.clone();
        if api.subreddits.is_empty() {
            return Err(missing("subreddits = [\"…\"]"));
        }
        let query = spec.query.clone();
        let terms = unique(super::prefilter::positive_terms(&query));
        let search = if terms.is_empty() {
            query.clone()
        } else {
            terms.join(" OR ")
        };
        Ok(RedditSource {
            name: spec.common.name.clone(),
            base: spec
                .url
                .clone()
                .unwrap_or_else(|| DEFAULT_URL.into())
                .trim_end_matches('/')
                .to_string(),
            token_url: api
                .token_url
                .clone()
                .unwrap_or_else(|| DEFAULT_TOKEN_URL.into()),
            client_id,
            client_secret,
            user_agent: api.user_agent.clone().unwrap_or_else(default_user_agent),
            subreddits: api.subreddits.join("+"),
            search,
            prefilter: Prefilter::from_keywords(terms),
            fetcher: Fetcher::new(&spec.common)?,
            token: None,
            paused_until: None,
            quota: None,
            subscribers: AuthorCache::new(MAX_SUBREDDITS, TTL),
            author_details: api.author_details,
            timeout: spec.common.timeout,
        })
    }

    /// A valid token, fetched or renewed when it is missing or close to expiry.
    async fn token(&mut self) -> Result<String, SourceError> {
        if let Some((t, expires)) = &self.token {
            if Instant::now() + REFRESH_MARGIN < *expires {
                return Ok(t.expose().to_string());
            }
        }
        let response = self
            .fetcher
            .post_form(
                &self.token_url,
                &[("user-agent", &self.user_agent)],
                (&self.client_id, self.client_secret.expose()),
                &[("grant_type", "client_credentials")],
            )
            .await
            .map_err(|e| match e {
                SourceError::Status {
                    status: status @ (400 | 401 | 403),
                    ..
                } => SourceError::Config(format!(
                    "reddit refused the app credentials (HTTP {status}); check client_id and client_secret"
                )),
                other => other,
            })?;
        let token: TokenResponse = decode_json(&response.bytes, "the Reddit token endpoint")?;
        let ttl = Duration::from_secs(token.expires_in.unwrap_or(3600));
        tracing::debug!(source = %self.name, expires_in_secs = ttl.as_secs(), "reddit token renewed");
        let value = token.access_token;
        self.token = Some((Secret::new(value.clone()), Instant::now() + ttl));
        Ok(value)
    }

    fn listing_url(&self, listed: Listed, after: Option<&str>) -> Result<Url, SourceError> {
        let path = match listed {
            Listed::Posts => "search",
            Listed::Comments => "comments",
        };
        let mut url = Url::parse(&format!("{}/r/{}/{path}", self.base, self.subreddits))
            .map_err(|e| SourceError::Config(format!("reddit url is not valid: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            if listed == Listed::Posts {
                q.append_pair("q", &self.search)
                    .append_pair("restrict_sr", "1")
                    .append_pair("sort", "new")
                    .append_pair("type", "link");
            }
            q.append_pair("limit", &PAGE_LIMIT.to_string())
                .append_pair("raw_json", "1");
            if let Some(a) = after {
                q.append_pair("after", a);
            }
        }
        Ok(url)
    }

    /// GETs a listing page with the token; a 401 renews the token once and retries.
    async fn get(&mut self, url: &Url) -> Result<ApiResponse, SourceError> {
        for attempt in 0..2 {
            let token = self.token().await?;
            let auth = format!("Bearer {token}");
            let result = self
                .fetcher
                .get(
                    url.as_str(),
                    &[
                        ("authorization", &auth),
                        ("user-agent", &self.user_agent),
                        ("accept", "application/json"),
                    ],
                )
                .await;
            match result {
                Err(SourceError::Status { status: 401, .. }) if attempt == 0 => {
                    tracing::info!(source = %self.name, "reddit token rejected; renewing");
                    self.token = None;
                }
                other => return other,
            }
        }
        unreachable!("the second attempt always returns")
    }

    /// Notes the rate-limit headers; true when paging should stop for now.
    fn budget_left(&mut self, headers: &reqwest::header::HeaderMap) -> bool {
        let number = |name: &str| -> Option<f64> {
            let v: f64 = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
            (v.is_finite() && v >= 0.0).then_some(v)
        };
        let remaining = number("x-ratelimit-remaining");
        if let Some(r) = remaining {
            // Reddit sends the remainder as a float ("598.0") and no limit: used + remaining is it.
            self.quota = Some(super::Quota {
                unit: "requests",
                remaining: r as u64,
                limit: number("x-ratelimit-used").map(|u| (u + r) as u64),
                resets_at: ratelimit_reset(headers).and_then(|wait| {
                    Some(chrono::Utc::now() + chrono::Duration::from_std(wait).ok()?)
                }),
            });
        }
        match remaining {
            Some(r) if r < RATE_RESERVE => {
                let wait = ratelimit_reset(headers).unwrap_or(Duration::from_secs(60));
                tracing::info!(source = %self.name, remaining = r, reset_secs = wait.as_secs(), "reddit rate limit nearly used up; pausing");
                self.paused_until = Some(Instant::now() + wait);
                false
            }
            _ => true,
        }
    }

    async fn read(
        &mut self,
        listed: Listed,
        state: &mut SourceState,
    ) -> Result<Vec<Mention>, SourceError> {
        let wm_key = format!("{}_watermark", listed.key());
        let seen_key = format!("{}_seen", listed.key());
        let watermark: Option<i64> = state.extra.get(&wm_key).and_then(|w| w.parse().ok());
        let mut seen = super::seen::decode(state.extra.get(&seen_key));
        let floor = watermark.map(|w| w - OVERLAP_SECS);
        let mut after: Option<String> = None;
        let mut newest = watermark.unwrap_or(i64::MIN);
        let mut complete = false;
        let mut out = Vec::new();
        for page in 0..MAX_PAGES {
            let url = self.listing_url(listed, after.as_deref())?;
            let response = self.get(&url).await?;
            let keep_going = self.budget_left(&response.headers);
            let listing: Listing = decode_json(&response.bytes, "the Reddit listing API")?;
            let mut reached_floor = false;
            for thing in listing.data.children {
                let created = thing.data.created_utc as i64;
                if floor.is_some_and(|f| created < f) {
                    reached_floor = true;
                    break;
                }
                newest = newest.max(created);
                if seen.contains_key(&thing.data.name) {
                    continue;
                }
                seen.insert(thing.data.name.clone(), created);
                if let (Some(sub), Some(n)) =
                    (&thing.data.subreddit, thing.data.subreddit_subscribers)
                {
                    self.subscribers.insert(&sub.to_lowercase(), Some(n));
                }
                if let Some(m) = self.to_mention(thing) {
                    out.push(m);
                }
            }
            after = listing.data.after;
            // The first poll reads one page only: the present, not the subreddit's history.
            if reached_floor || after.is_none() || watermark.is_none() {
                complete = true;
                break;
            }
            if !keep_going || page + 1 == MAX_PAGES {
                break;
            }
        }
        // Only a listing read down to the old watermark may move it; otherwise the next poll
        // reads the rest again, and the seen ids keep it from handing anything on twice.
        let new_wm = if complete {
            newest
        } else {
            watermark.unwrap_or(newest)
        };
        if new_wm != i64::MIN {
            state.extra.insert(wm_key, new_wm.to_string());
            seen.retain(|_, ts| *ts >= new_wm - OVERLAP_SECS || !complete);
        }
        super::seen::write(state, &seen_key, seen, MAX_SEEN);
        Ok(out)
    }

    /// Gives mentions without a reach their subreddit's size, looking up on `/about` the
    /// subreddits no listing gave (a few per poll, each once per 6 h, only while the rate
    /// limit has room). A failed lookup pauses the lookups; the mentions go on without it.
    async fn add_subreddit_sizes(&mut self, mentions: &mut [Mention], started: Instant) {
        if !self.author_details || self.subscribers.paused() {
            return;
        }
        let mut wanted: Vec<String> = Vec::new();
        for m in mentions.iter().filter(|m| m.author_reach.is_none()) {
            if let Some(sub) = subreddit_of(m) {
                if self.subscribers.wants(&sub) && !wanted.contains(&sub) {
                    wanted.push(sub);
                }
            }
        }
        // Well inside the poll's timeout, counting the time the listings took: a poll that
        // timed out would read its listings again. No time left: the next poll looks up.
        let left = self
            .timeout
            .mul_f64(0.2)
            .min(self.timeout.mul_f64(0.95).saturating_sub(started.elapsed()));
        if left.is_zero() {
            return;
        }
        let deadline = Instant::now() + left;
        for sub in wanted.into_iter().take(MAX_ABOUT_PER_POLL) {
            if self.paused_until.is_some() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = tokio::time::timeout(left, self.about(&sub))
                .await
                .unwrap_or(Err(SourceError::Timeout(left)));
            match answer {
                Ok(n) => self.subscribers.insert(&sub, n),
                Err(e) => {
                    tracing::warn!(source = %self.name, subreddit = %sub, error = %e, "subreddit size lookup failed; mentions go on without it");
                    self.subscribers.pause_after(&e);
                    break;
                }
            }
        }
        for m in mentions.iter_mut().filter(|m| m.author_reach.is_none()) {
            m.author_reach = subreddit_of(m).and_then(|s| self.subscribers.value(&s));
        }
    }

    /// One subreddit's members; `None` for one Reddit does not show (private, banned: 403/404).
    async fn about(&mut self, sub: &str) -> Result<Option<u64>, SourceError> {
        let mut url = Url::parse(&format!("{}/r", self.base))
            .map_err(|e| SourceError::Config(format!("reddit url is not valid: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| SourceError::Config("reddit url is not valid".into()))?
            .extend([sub, "about"]);
        url.query_pairs_mut().append_pair("raw_json", "1");
        match self.get(&url).await {
            Ok(response) => {
                self.budget_left(&response.headers);
                let about: About = decode_json(&response.bytes, "the Reddit subreddit API")?;
                Ok(about.data.subscribers)
            }
            Err(SourceError::Status {
                status: 403 | 404, ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn to_mention(&self, thing: Thing) -> Option<Mention> {
        let d = thing.data;
        let comment = thing.kind == "t1";
        let (title, text) = if comment {
            let body = d.body.unwrap_or_default();
            // The comment listing is every new comment in the subreddits: keep only those
            // that may match, as the search does for posts.
            if self.prefilter.as_ref().is_some_and(|p| !p.accepts(&body)) {
                return None;
            }
            (None, body)
        } else {
            // A crosspost's words are its original's: its own selftext is empty.
            let parent = d.crosspost_parent_list.as_ref().and_then(|l| l.first());
            let body = [
                d.selftext.as_deref(),
                parent.and_then(|p| p.selftext.as_deref()),
            ]
            .into_iter()
            .flatten()
            .find(|t| !placeholder(t));
            let text = match body {
                Some(b) => b.to_string(),
                None => parent
                    .and_then(|p| p.url.as_deref())
                    .or(d.url.as_deref())
                    .map(absolute)
                    .unwrap_or_default(),
            };
            (d.title.filter(|t| !t.is_empty()), text)
        };
        Some(Mention {
            item_id: d.name,
            source: self.name.clone(),
            source_kind: SourceKind::Reddit.as_str().to_string(),
            url: d.permalink.map(|p| format!("https://www.reddit.com{p}")),
            title,
            text,
            author: d
                .author
                .filter(|a| !placeholder(a))
                .map(|a| format!("u/{a}")),
            // The subreddit's members (`Mention::reach_unit`); a comment's come from the
            // cache or `add_subreddit_sizes`. Authors' karma would cost a request each.
            author_reach: d.subreddit_subscribers.or_else(|| {
                d.subreddit
                    .as_deref()
                    .and_then(|s| self.subscribers.value(&s.to_lowercase()))
            }),
            published: DateTime::<Utc>::from_timestamp(d.created_utc as i64, 0),
            lang: None,
            rating: None,
        })
    }
}

/// The subreddit a mention is in, lowercase, from its permalink (`/r/{sub}/comments/…`).
fn subreddit_of(m: &Mention) -> Option<String> {
    let rest = m
        .url
        .as_deref()?
        .strip_prefix("https://www.reddit.com/r/")?;
    let sub = rest.split('/').next()?;
    (!sub.is_empty()).then(|| sub.to_lowercase())
}

fn default_user_agent() -> String {
    format!(
        "server:mentiondesk:{} (self-hosted brand monitor)",
        env!("CARGO_PKG_VERSION")
    )
}

fn unique(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in v {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

#[async_trait::async_trait]
impl Source for RedditSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Reddit
    }

    fn quota(&self) -> Option<super::Quota> {
        self.quota.clone()
    }

    async fn poll(&mut self, state: &mut SourceState) -> Result<Vec<Mention>, SourceError> {
        if let Some(until) = self.paused_until {
            let now = Instant::now();
            if until > now {
                return Err(SourceError::RateLimited { wait: until - now });
            }
            self.paused_until = None;
        }
        let started = Instant::now();
        let mut mentions = self.read(Listed::Posts, state).await?;
        if self.paused_until.is_none() {
            mentions.extend(self.read(Listed::Comments, state).await?);
        }
        self.add_subreddit_sizes(&mut mentions, started).await;
        Ok(mentions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn seen_ids_round_trip_and_are_bounded() {
        let mut state = SourceState::default();
        let seen: BTreeMap<String, i64> = (0..6000).map(|i| (format!("t3_{i}"), i)).collect();
        crate::sources::seen::write(&mut state, "k", seen, MAX_SEEN);
        let back = crate::sources::seen::decode(state.extra.get("k"));
        assert_eq!(back.len(), MAX_SEEN);
        assert!(back.contains_key("t3_5999"), "the newest are kept");
    }
}
