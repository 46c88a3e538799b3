//! The search back-fill of the `bluesky` source: with an account (`handle` + `app_password`)
//! it signs in (`com.atproto.server.createSession`), keeps the session alive
//! (`refreshSession` when the access token expires, a new session when that fails), and every
//! `search_every` asks `app.bsky.feed.searchPosts` (`sort=latest`) for each keyword of the
//! source's query, newest first, paging with `cursor` down to a persisted high-water mark.
//! It finds what Jetstream cannot replay (downtime longer than its replay window) and hands
//! each post on as exactly the `Mention` Jetstream would have made.
//! It never fails the poll it runs in: a failure is kept and shown as a warning (degraded in
//! `/healthz`) while the stream goes on delivering; it never logs the password or a token.

use super::super::http::{decode_json, ratelimit_reset_at, redact_url, ApiReply, Fetcher};
use super::super::prefilter::Prefilter;
use super::super::{SourceError, SourceState};
use super::BlueskyConfig;
use super::Record;
use crate::model::Mention;
use crate::model::Secret;
use crate::retry::Backoff;
use chrono::{DateTime, Utc};
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The Bluesky PDS entryway: accounts hosted by Bluesky sign in here, and it forwards
/// `app.bsky.*` queries to the AppView.
pub(crate) const DEFAULT_SEARCH_URL: &str = "https://bsky.social/xrpc";
/// Time between searches unless `search_every` says otherwise.
pub(crate) const DEFAULT_SEARCH_EVERY: Duration = Duration::from_secs(300);
/// Results per page (the API's maximum).
pub(crate) const PAGE_LIMIT: u32 = 100;
/// Pages per keyword per search; a larger back-log continues at the next poll.
pub(crate) const MAX_PAGES: usize = 10;
/// Every search re-reads this much before the high-water mark: posts reach the search index a
/// little after their time, and this is how late one may be and still be found.
pub(crate) const OVERLAP: chrono::Duration = chrono::Duration::minutes(5);
/// How far back the very first search looks, so a new source does not alert on history.
pub(crate) const INITIAL_LOOKBACK: chrono::Duration = chrono::Duration::hours(1);
/// The furthest back a back-fill reaches, however long the bot was down.
pub(crate) const MAX_LOOKBACK: chrono::Duration = chrono::Duration::days(7);
/// Longest wait between attempts while the search keeps failing.
pub(crate) const MAX_RETRY: Duration = Duration::from_secs(3600);
/// Share of the poll's timeout the search may use, so the poll still hands on what streamed.
pub(crate) const BUDGET_SHARE: f64 = 0.8;
/// A search with less time than this left waits for the next poll.
const MIN_BUDGET: Duration = Duration::from_secs(1);
/// Post URIs remembered per keyword at most (the overlap window needs far fewer).
const MAX_SEEN: usize = 5000;
/// The state key prefix; one entry per keyword.
const STATE_KEY: &str = "search";

/// The search half of a `bluesky` source.
pub(crate) struct Search {
    source: String,
    base: String,
    handle: String,
    password: Secret,
    /// The keywords searched, one query each (see `query_for`).
    terms: Vec<String>,
    prefilter: Arc<Prefilter>,
    fetcher: Fetcher,
    every: Duration,
    session: Option<Session>,
    /// No search before this instant (interval, backoff or rate limit); `None` = due now.
    next_at: Option<Instant>,
    failures: u32,
    /// Why the last search failed, until one succeeds (already free of secrets).
    last_error: Option<String>,
    /// Pages read and saved by the search in progress.
    pages_saved: usize,
}

/// The tokens of a session. Both rotate on refresh: the old refresh token stops working.
struct Session {
    access: Secret,
    refresh: Secret,
}

#[derive(Deserialize)]
struct SessionReply {
    #[serde(rename = "accessJwt")]
    access_jwt: String,
    #[serde(rename = "refreshJwt")]
    refresh_jwt: String,
    #[serde(default)]
    did: Option<String>,
    #[serde(default)]
    handle: Option<String>,
}

/// An XRPC error body: `{"error":"ExpiredToken","message":"Token has expired"}`.
#[derive(Deserialize, Default)]
struct XrpcError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct SearchPage {
    #[serde(default)]
    cursor: Option<String>,
    posts: Vec<PostView>,
}

/// `app.bsky.feed.defs#postView`, the fields a mention needs.
#[derive(Deserialize)]
struct PostView {
    uri: String,
    author: Author,
    /// Kept raw: one odd record must not fail the whole page.
    #[serde(default)]
    record: serde_json::Value,
    #[serde(rename = "indexedAt")]
    indexed_at: String,
}

#[derive(Deserialize)]
struct Author {
    did: String,
}

/// What the search remembers per keyword, persisted in `SourceState::extra` as JSON.
/// Times are the API's `sortAt` (the earlier of a post's `createdAt` and `indexedAt`), the
/// time `since` and `until` filter on.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct TermState {
    /// High-water mark: every post up to here has been handed on (the next search starts
    /// `OVERLAP` before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<DateTime<Utc>>,
    /// A back-fill larger than one search is in progress: everything from here up to `high`
    /// has been handed on; the next search continues below `until`, down to `since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<DateTime<Utc>>,
    /// The newest post of the back-fill in progress; it becomes `since` when it completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    high: Option<DateTime<Utc>>,
    /// Post URIs already handed on near the edges of what was read, with their `sortAt` in
    /// milliseconds: overlapping reads hand nothing on twice.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    seen: BTreeMap<String, i64>,
}

/// A search failure: the error (its kind decides retry waits) and what XRPC said about it.
struct Failure {
    error: SourceError,
    detail: String,
}

impl From<SourceError> for Failure {
    fn from(error: SourceError) -> Failure {
        Failure {
            error,
            detail: String::new(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.error, self.detail)
    }
}

/// How one keyword's read ended.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// Read down to the high-water mark.
    Complete,
    /// Stopped at the page cap or a rate limit; the state says where to continue.
    More,
}

impl Search {
    /// The search of a config with `handle` and `app_password`; `None` without them.
    pub(crate) fn from_config(
        spec: &BlueskyConfig,
        prefilter: Arc<Prefilter>,
    ) -> Result<Option<Search>, SourceError> {
        let (handle, password) = match (&spec.handle, &spec.app_password) {
            (Some(h), Some(p)) => (h.clone(), p.clone()),
            (None, None) => return Ok(None),
            _ => {
                return Err(SourceError::Config(format!(
                    "source {:?}: the bluesky search back-fill needs both handle and app_password",
                    spec.common.name
                )))
            }
        };
        let terms = prefilter.keywords().to_vec();
        Ok(Some(Search {
            source: spec.common.name.clone(),
            base: spec
                .search_url
                .clone()
                .unwrap_or_else(|| DEFAULT_SEARCH_URL.to_string())
                .trim_end_matches('/')
                .to_string(),
            handle,
            password,
            terms,
            prefilter,
            fetcher: Fetcher::new(&spec.common)?,
            every: spec.search_every.unwrap_or(DEFAULT_SEARCH_EVERY),
            session: None,
            next_at: None,
            failures: 0,
            last_error: None,
            pages_saved: 0,
        }))
    }

    /// While the search keeps failing: what is wrong and when it tries again, for the poll's
    /// warning (so `/healthz` shows it until a search succeeds).
    pub(crate) fn failing(&self) -> Option<String> {
        let error = self.last_error.as_ref()?;
        let retry = self
            .next_at
            .map(|at| {
                at.saturating_duration_since(Instant::now())
                    .as_secs_f64()
                    .ceil()
            })
            .unwrap_or(0.0);
        Some(format!(
            "bluesky search back-fill failed (streamed posts are not affected): {error}; next try in {retry}s"
        ))
    }

    /// Searches every keyword if a search is due and `budget` allows, appending what it finds
    /// to `out` and recording progress in `state` page by page, so a search cut short by the
    /// budget has handed on exactly what its state says.
    pub(crate) async fn run_if_due(
        &mut self,
        state: &mut SourceState,
        budget: Duration,
        out: &mut Vec<Mention>,
    ) {
        if self.next_at.is_some_and(|at| Instant::now() < at) || budget < MIN_BUDGET {
            return;
        }
        let found_before = out.len();
        self.pages_saved = 0;
        let result = match tokio::time::timeout(budget, self.search_all(state, out)).await {
            Ok(r) => r,
            // Progress up to the last saved page is in `state` and `out`: a long back-fill
            // that used up this poll's share continues at the next poll.
            Err(_) if self.pages_saved > 0 => {
                tracing::info!(source = %self.source, pages = self.pages_saved, "bluesky search used its share of the poll; continuing at the next poll");
                Ok(true)
            }
            // Not one page in the whole budget: the API hangs.
            Err(_) => Err(Failure::from(SourceError::Timeout(budget))),
        };
        let found = out.len() - found_before;
        match result {
            Ok(more) => {
                if self.last_error.take().is_some() {
                    tracing::info!(source = %self.source, "bluesky search works again");
                }
                self.failures = 0;
                // A back-log larger than one search continues at the next poll.
                if !more {
                    self.next_at = Some(Instant::now() + self.every);
                } else if self.next_at.is_some_and(|at| at <= Instant::now()) {
                    self.next_at = None;
                }
                tracing::debug!(source = %self.source, found, more, "bluesky search");
            }
            Err(failure) => {
                self.failures = self.failures.saturating_add(1);
                let wait = Backoff::new(self.every, MAX_RETRY.max(self.every))
                    .delay_after(self.failures, failure.error.retry_after());
                self.next_at = Some(Instant::now() + wait);
                let error = match failure.error {
                    // Say it as a rate limit, with the wait the server asked for.
                    SourceError::Status {
                        status: 429,
                        retry_after,
                    } => Failure {
                        error: SourceError::RateLimited {
                            wait: retry_after.unwrap_or(wait),
                        },
                        detail: failure.detail,
                    },
                    other => Failure {
                        error: other,
                        detail: failure.detail,
                    },
                };
                let message = error.to_string();
                tracing::warn!(source = %self.source, error = %message, found, retry_in_secs = wait.as_secs(), "bluesky search failed; the stream goes on");
                self.last_error = Some(message);
            }
        }
    }

    /// Reads every keyword; true when some keyword has more to read than one search takes.
    async fn search_all(
        &mut self,
        state: &mut SourceState,
        out: &mut Vec<Mention>,
    ) -> Result<bool, Failure> {
        let now = Utc::now();
        let mut more = false;
        for term in self.terms.clone() {
            let read = self.read_term(&term, state, out, now).await?;
            more |= read == Read::More;
            if self.next_at.is_some_and(|at| at > Instant::now()) {
                // The rate limit is used up: the other keywords wait for the reset.
                return Ok(true);
            }
        }
        Ok(more)
    }

    /// Pages through one keyword's results, newest first, down to its high-water mark or the
    /// page cap, saving progress after every page.
    async fn read_term(
        &mut self,
        term: &str,
        state: &mut SourceState,
        out: &mut Vec<Mention>,
        now: DateTime<Utc>,
    ) -> Result<Read, Failure> {
        let key = format!("{STATE_KEY} {term}");
        let mut t = load(state, &key);
        let mark = t.since.unwrap_or(now - INITIAL_LOOKBACK);
        let reach = now - MAX_LOOKBACK;
        let lo = (mark - OVERLAP).max(reach);
        if mark - OVERLAP < reach {
            tracing::warn!(source = %self.source, term, since = %mark, "the bot was away longer than the back-fill reaches; posts older than 7 days are not searched");
        }
        // The cursor pages through one query; `until` changes only between searches.
        let hi = t.until;
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let url = self.page_url(term, lo, hi, cursor.as_deref())?;
            let reply = self.authorized_get(&url).await?;
            let page: SearchPage = decode_json(&reply.bytes, "the Bluesky searchPosts API")?;
            let empty = page.posts.is_empty();
            let mut oldest: Option<DateTime<Utc>> = None;
            let mut below = false;
            for post in page.posts {
                let at = sort_at(&post);
                if let Some(at) = at {
                    if at < lo {
                        below = true;
                        continue;
                    }
                    oldest = Some(oldest.map_or(at, |o| o.min(at)));
                    t.high = Some(t.high.map_or(at, |h| h.max(at)));
                    if t.seen.contains_key(&post.uri) {
                        continue;
                    }
                    t.seen.insert(post.uri.clone(), at.timestamp_millis());
                }
                if let Some(m) = self.mention(post) {
                    out.push(m);
                }
            }
            cursor = page.cursor.filter(|c| !c.is_empty());
            let limited = self.note_rate_limit(&reply);
            if cursor.is_none() || empty || below {
                // Read down to the mark: everything up to the newest post is handed on.
                let newest = t.high.take().unwrap_or(mark);
                t.since = Some(mark.max(newest).max(reach));
                t.until = None;
                save(state, &key, t);
                self.pages_saved += 1;
                return Ok(Read::Complete);
            }
            // Part-way: remember the floor and how far down this read got, so a search cut
            // short here continues below the oldest post (its millisecond included; `seen`
            // drops the repeat) and never moves the mark past an unread gap.
            t.since = Some(mark);
            if let Some(o) = oldest {
                t.until = Some(o + chrono::Duration::milliseconds(1));
            }
            save(state, &key, t.clone());
            self.pages_saved += 1;
            if limited {
                return Ok(Read::More);
            }
        }
        tracing::info!(source = %self.source, term, pages = MAX_PAGES, "bluesky back-fill larger than one search; continuing at the next poll");
        Ok(Read::More)
    }

    fn page_url(
        &self,
        term: &str,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<Url, Failure> {
        let mut url = Url::parse(&format!("{}/app.bsky.feed.searchPosts", self.base))
            .map_err(|e| SourceError::Config(format!("bluesky search_url is not valid: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("q", &query_for(term))
                .append_pair("sort", "latest")
                .append_pair("limit", &PAGE_LIMIT.to_string())
                .append_pair("since", &iso(since));
            if let Some(u) = until {
                q.append_pair("until", &iso(u));
            }
            if let Some(c) = cursor {
                q.append_pair("cursor", c);
            }
        }
        Ok(url)
    }

    /// A search post as the `Mention` Jetstream makes of the same post; `None` for what
    /// Jetstream would not keep (another record type, or no keyword in the resolved text and
    /// embeds: search also matches handles and display names, which the record lacks).
    fn mention(&self, post: PostView) -> Option<Mention> {
        let rest = post.uri.strip_prefix("at://")?;
        let mut parts = rest.splitn(3, '/');
        let (repo, collection, rkey) = (parts.next()?, parts.next()?, parts.next()?);
        if collection != "app.bsky.feed.post" || rkey.is_empty() || rkey.contains('/') {
            return None;
        }
        // The URI names the repo by DID, as Jetstream does; the author's DID is the same.
        let did = if repo.starts_with("did:") {
            repo.to_string()
        } else {
            post.author.did
        };
        let record: Record = serde_json::from_value(post.record).ok()?;
        Some(super::post_mention(&self.source, &did, rkey, record))
            .filter(|m| self.prefilter.accepts(&m.text))
    }

    /// GETs with the session's access token; an expired or rejected token renews the session
    /// (refresh, or sign in anew) and the request is sent once more.
    async fn authorized_get(&mut self, url: &Url) -> Result<ApiReply, Failure> {
        for attempt in 0..2 {
            let access = self.access_token().await?;
            let auth = format!("Bearer {}", access.expose());
            let reply = self
                .fetcher
                .request_any(
                    Method::GET,
                    url.as_str(),
                    &[("authorization", &auth), ("accept", "application/json")],
                    None,
                )
                .await?;
            if reply.is_success() {
                return Ok(reply);
            }
            let xrpc = xrpc_error(&reply);
            if attempt == 0 && token_rejected(reply.status, &xrpc) {
                tracing::info!(source = %self.source, error = xrpc.error.as_deref().unwrap_or(""), "bluesky access token rejected; renewing the session");
                self.renew().await?;
                continue;
            }
            return Err(api_failure("searchPosts", url.as_str(), &reply, &xrpc));
        }
        unreachable!("the second attempt always returns")
    }

    async fn access_token(&mut self) -> Result<Secret, Failure> {
        if self.session.is_none() {
            self.session = Some(self.create_session().await?);
        }
        Ok(self
            .session
            .as_ref()
            .map(|s| s.access.clone())
            .expect("just set"))
    }

    /// Refreshes the session; if the refresh token is refused too, signs in anew.
    async fn renew(&mut self) -> Result<(), Failure> {
        if let Some(session) = self.session.take() {
            let url = format!("{}/com.atproto.server.refreshSession", self.base);
            let auth = format!("Bearer {}", session.refresh.expose());
            let reply = self
                .fetcher
                .request_any(
                    Method::POST,
                    &url,
                    &[("authorization", &auth), ("accept", "application/json")],
                    None,
                )
                .await?;
            if reply.is_success() {
                self.session = Some(session_from(&reply, "refreshSession")?.0);
                tracing::debug!(source = %self.source, "bluesky session refreshed");
                return Ok(());
            }
            let xrpc = xrpc_error(&reply);
            if !matches!(reply.status, 400 | 401) {
                // The server is in trouble, not the token: do not spend a sign-in on it.
                self.session = Some(session);
                return Err(api_failure("refreshSession", &url, &reply, &xrpc));
            }
            tracing::info!(source = %self.source, error = xrpc.error.as_deref().unwrap_or(""), "bluesky refresh token refused; signing in again");
        }
        self.session = Some(self.create_session().await?);
        Ok(())
    }

    /// Signs in with the handle and app password. Bluesky allows 30 sign-ins per 5 minutes
    /// and 300 a day per account, so this happens at start-up and when a session is lost,
    /// never per request.
    async fn create_session(&mut self) -> Result<Session, Failure> {
        let url = format!("{}/com.atproto.server.createSession", self.base);
        let body = serde_json::json!({
            "identifier": self.handle,
            "password": self.password.expose(),
        });
        let reply = self
            .fetcher
            .request_any(
                Method::POST,
                &url,
                &[("accept", "application/json")],
                Some(&body),
            )
            .await?;
        if reply.is_success() {
            let (session, did, handle) = session_from(&reply, "createSession")?;
            tracing::info!(source = %self.source, handle = %handle.unwrap_or_default(), did = %did.unwrap_or_default(), "signed in to bluesky for the search back-fill");
            return Ok(session);
        }
        let xrpc = xrpc_error(&reply);
        let code = xrpc.error.as_deref().unwrap_or("");
        let fix = "create an app password in Bluesky under Settings → Privacy and security → App passwords and put it in app_password";
        let message = match (reply.status, code) {
            (400 | 401, "AccountTakedown") => format!(
                "bluesky sign-in as {:?} failed: the account is taken down (AccountTakedown); sign in with another account",
                self.handle
            ),
            (400 | 401, "AuthFactorTokenRequired") => format!(
                "bluesky sign-in as {:?} failed: the account asks for an e-mail code (AuthFactorTokenRequired), so app_password is probably the account's own password; {fix}",
                self.handle
            ),
            (400 | 401, _) => format!(
                "bluesky sign-in as {:?} failed: handle or app password not accepted (HTTP {}{}); check handle, or {fix}",
                self.handle,
                reply.status,
                if code.is_empty() { String::new() } else { format!(" {code}") }
            ),
            _ => return Err(api_failure("createSession", &url, &reply, &xrpc)),
        };
        Err(Failure::from(SourceError::Config(message)))
    }

    /// Notes `ratelimit-remaining`: when the window is used up, no request until it resets.
    fn note_rate_limit(&mut self, reply: &ApiReply) -> bool {
        let remaining: Option<u64> = reply
            .headers
            .get("ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        if remaining.is_some_and(|r| r == 0) {
            let wait =
                ratelimit_reset_at(&reply.headers, Utc::now()).unwrap_or(Duration::from_secs(60));
            tracing::info!(source = %self.source, reset_secs = wait.as_secs(), "bluesky rate limit used up; searching again after the reset");
            self.next_at = Some(Instant::now() + wait);
            return true;
        }
        false
    }
}

/// The query sent for one keyword: the word itself, quoted when it holds anything but
/// letters and digits so search syntax (`from:`, `-`, `"`) is taken literally. One query per
/// keyword, because searchPosts leaves boolean syntax unspecified: words in one query are
/// all required, so `acme OR widget` must be two searches.
fn query_for(term: &str) -> String {
    if term.chars().all(char::is_alphanumeric) {
        term.to_string()
    } else {
        format!("\"{}\"", term.replace('"', " "))
    }
}

/// The time searchPosts filters and sorts by: the earlier of `createdAt` and `indexedAt`.
fn sort_at(post: &PostView) -> Option<DateTime<Utc>> {
    let parse = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let indexed = parse(&post.indexed_at);
    let created = post
        .record
        .get("createdAt")
        .and_then(|v| v.as_str())
        .and_then(parse);
    match (created, indexed) {
        (Some(c), Some(i)) => Some(c.min(i)),
        (c, i) => c.or(i),
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn session_from(
    reply: &ApiReply,
    what: &str,
) -> Result<(Session, Option<String>, Option<String>), Failure> {
    let s: SessionReply = decode_json(&reply.bytes, &format!("the Bluesky {what} API"))?;
    Ok((
        Session {
            access: Secret::new(s.access_jwt),
            refresh: Secret::new(s.refresh_jwt),
        },
        s.did,
        s.handle,
    ))
}

fn xrpc_error(reply: &ApiReply) -> XrpcError {
    serde_json::from_slice(&reply.bytes).unwrap_or_default()
}

/// An expired, revoked or unknown access token: 400 `ExpiredToken` / `InvalidToken`, or 401.
fn token_rejected(status: u16, xrpc: &XrpcError) -> bool {
    status == 401
        || (status == 400 && matches!(xrpc.error.as_deref(), Some("ExpiredToken" | "InvalidToken")))
}

/// A non-2xx answer as a failure: the status (with any wait it asked for) plus what XRPC said,
/// cut short. XRPC messages name the problem and carry no credentials.
fn api_failure(what: &str, url: &str, reply: &ApiReply, xrpc: &XrpcError) -> Failure {
    let mut detail = String::new();
    if let Some(e) = &xrpc.error {
        detail.push_str(&format!(" ({what} {e}"));
        if let Some(m) = &xrpc.message {
            let m: String = m.chars().take(200).collect();
            detail.push_str(&format!(": {m}"));
        }
        detail.push(')');
    } else {
        detail.push_str(&format!(" ({what} at {})", redact_url(url)));
    }
    Failure {
        error: reply.status_error(),
        detail,
    }
}

fn load(state: &SourceState, key: &str) -> TermState {
    state
        .extra
        .get(key)
        .and_then(|raw| serde_json::from_str(raw).ok())
        .unwrap_or_default()
}

/// Saves a keyword's state, first forgetting URIs no later read can return again.
fn save(state: &mut SourceState, key: &str, mut t: TermState) {
    prune(&mut t);
    let raw = serde_json::to_string(&t).expect("plain data always serialises");
    state.extra.insert(key.to_string(), raw);
}

/// Keeps the URIs a later read may return again: those in the overlap below the mark, and
/// while a back-fill is in progress, those at its lower edge (`until`) and near its top
/// (`high`, which the read after it completes overlaps). At most `MAX_SEEN`, newest first.
fn prune(t: &mut TermState) {
    let ms = |d: DateTime<Utc>| d.timestamp_millis();
    let floor = t.since.map(|s| ms(s - OVERLAP));
    let mark = t.since.map(ms);
    // The continuation reads below `until` only: what lies just under it comes again.
    let edge = t.until.map(|u| (ms(u) - 1_000, ms(u)));
    let top = t.high.map(|h| ms(h - OVERLAP));
    let backfilling = t.until.is_some();
    t.seen.retain(|_, at| {
        let at = *at;
        floor.is_none_or(|f| at >= f)
            && (!backfilling
                || mark.is_some_and(|m| at <= m)
                || edge.is_some_and(|(lo, hi)| at >= lo && at < hi)
                || top.is_some_and(|h| at >= h))
    });
    if t.seen.len() > MAX_SEEN {
        let mut entries: Vec<(String, i64)> = std::mem::take(&mut t.seen).into_iter().collect();
        entries.sort_by_key(|(_, at)| std::cmp::Reverse(*at));
        entries.truncate(MAX_SEEN);
        t.seen = entries.into_iter().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn post(uri: &str, created: &str, indexed: &str) -> PostView {
        serde_json::from_value(serde_json::json!({
            "uri": uri, "cid": "bafy", "indexedAt": indexed,
            "author": {"did": "did:plc:abc", "handle": "ann.bsky.social"},
            "record": {"$type": "app.bsky.feed.post", "text": "acme", "createdAt": created},
        }))
        .unwrap()
    }

    #[test]
    fn sort_at_is_the_earlier_of_created_and_indexed() {
        let p = post(
            "at://did:plc:abc/app.bsky.feed.post/1",
            "2024-09-09T19:46:02.102Z",
            "2024-09-09T19:46:03.000Z",
        );
        assert_eq!(sort_at(&p), Some(at("2024-09-09T19:46:02.102Z")));
        // A createdAt in the future sorts at its indexing time.
        let p = post(
            "at://did:plc:abc/app.bsky.feed.post/2",
            "2030-01-01T00:00:00Z",
            "2024-09-09T19:46:03.000Z",
        );
        assert_eq!(sort_at(&p), Some(at("2024-09-09T19:46:03.000Z")));
    }

    #[test]
    fn queries_are_single_words_or_quoted_literals() {
        assert_eq!(query_for("acme"), "acme");
        assert_eq!(query_for("größe"), "größe");
        assert_eq!(query_for("from:acme"), "\"from:acme\"");
        assert_eq!(query_for("a\"b"), "\"a b\"");
    }

    #[test]
    fn pruning_keeps_what_a_later_read_can_return_again() {
        let mut t = TermState {
            since: Some(at("2024-01-01T12:00:00Z")),
            ..Default::default()
        };
        let ms = |s: &str| at(s).timestamp_millis();
        for (uri, time) in [
            ("old", "2024-01-01T11:50:00Z"), // below the overlap: never read again
            ("overlap", "2024-01-01T11:57:00Z"), // inside the 5 min overlap
            ("new", "2024-01-01T12:00:00Z"),
        ] {
            t.seen.insert(uri.into(), ms(time));
        }
        prune(&mut t);
        assert_eq!(t.seen.keys().collect::<Vec<_>>(), ["new", "overlap"]);

        // A back-fill in progress from 12:00 to 18:00, read down to 15:00.
        let mut t = TermState {
            since: Some(at("2024-01-01T12:00:00Z")),
            until: Some(at("2024-01-01T15:00:00.001Z")),
            high: Some(at("2024-01-01T18:00:00Z")),
            ..Default::default()
        };
        for (uri, time) in [
            ("overlap", "2024-01-01T11:58:00Z"), // read by the last complete search
            ("middle", "2024-01-01T16:30:00Z"),  // read; no later read reaches it
            ("edge", "2024-01-01T15:00:00Z"),    // the lower edge: read again next time
            ("top", "2024-01-01T17:58:00Z"),     // overlapped once the back-fill completes
        ] {
            t.seen.insert(uri.into(), ms(time));
        }
        prune(&mut t);
        assert_eq!(
            t.seen.keys().collect::<Vec<_>>(),
            ["edge", "overlap", "top"]
        );
    }

    #[test]
    fn the_seen_set_is_bounded_to_the_newest() {
        let mut t = TermState::default();
        for i in 0..(MAX_SEEN as i64 + 100) {
            t.seen.insert(format!("u{i}"), i);
        }
        prune(&mut t);
        assert_eq!(t.seen.len(), MAX_SEEN);
        assert!(t.seen.contains_key(&format!("u{}", MAX_SEEN + 99)));
        assert!(!t.seen.contains_key("u0"));
    }

    #[test]
    fn term_state_round_trips_through_the_source_state() {
        let mut state = SourceState::default();
        let mut t = TermState {
            since: Some(at("2024-09-09T19:46:02.102Z")),
            ..Default::default()
        };
        t.seen
            .insert("at://did:plc:a/app.bsky.feed.post/1".into(), 1725911162102);
        save(&mut state, "search acme", t.clone());
        let raw = &state.extra["search acme"];
        assert!(raw.contains("2024-09-09T19:46:02.102Z"), "{raw}");
        assert_eq!(load(&state, "search acme"), t);
        assert_eq!(load(&state, "search other"), TermState::default());
    }

    #[test]
    fn token_problems_are_told_apart_from_other_errors() {
        let e = |name: &str| XrpcError {
            error: Some(name.into()),
            message: None,
        };
        assert!(token_rejected(400, &e("ExpiredToken")));
        assert!(token_rejected(400, &e("InvalidToken")));
        assert!(token_rejected(401, &XrpcError::default()));
        assert!(!token_rejected(400, &e("BadQueryString")));
        assert!(!token_rejected(500, &e("ExpiredToken")));
    }
}
