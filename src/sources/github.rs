//! The `github` source: issues and pull requests that mention `query`, from GitHub's issue
//! search (`/search/issues`, optionally limited to `repos` / `orgs`), discussions from the
//! GraphQL search (`search(type: DISCUSSION)`, only with a token: GraphQL refuses requests
//! without one), and new comments on the watched `repos` from their comment listings, cut
//! down to those naming a query word.
//!
//! Search returns at most 1,000 results per query, so the source walks `created:` windows
//! sized from `total_count` to fit under that cap, oldest first (as `hackernews` does), and
//! keeps a watermark plus the ids it saw near it, so nothing is missed or handed on twice. It reads
//! GitHub's `x-ratelimit-*` headers per resource (`search`: 30 requests a minute with a token,
//! 10 without; `core`: 5,000 an hour with a token, 60 without), stops before a budget runs
//! out and waits for its reset, and honours `retry-after` on secondary rate limits.
//!
//! It does not find comments on issues outside `repos` (search matches an issue by its
//! comments, but only issues created inside the window), and never logs the token.

use super::config::{required_query, Common, KindConfig};
use super::http::{decode_json, parse_retry_after, ApiReply, Fetcher};
use super::prefilter::{positive_terms, Prefilter};
use super::{Quota, Source, SourceError, SourceKind, SourceState};
use crate::config::{Reader, Table};
use crate::model::{Mention, Secret};
use crate::retry::DEFAULT_MAX_RETRY_AFTER;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::HeaderMap;
use reqwest::Url;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

pub(crate) const DEFAULT_URL: &str = "https://api.github.com";
/// The REST API version the request and response shapes here follow.
const API_VERSION: &str = "2022-11-28";
/// Search's hard limit: results beyond the 1,000th of a query cannot be paged to.
pub(crate) const RESULT_CAP: u64 = 1000;
/// GitHub's largest page.
pub(crate) const PER_PAGE: u64 = 100;
/// Every poll re-reads this much before a watermark: the search index and the comment
/// listings can show an item a little after its `created_at`.
pub(crate) const OVERLAP_SECS: i64 = 600;
/// How far back the very first poll looks, so a new source does not alert on history.
pub(crate) const INITIAL_LOOKBACK_SECS: i64 = 3600;
/// Search requests one poll may make (10 a minute is the whole budget without a token); the
/// next poll continues from the last complete window.
pub(crate) const MAX_SEARCH_REQUESTS: u32 = 10;
/// Comment pages per repository per poll; the next poll continues where this one stopped.
pub(crate) const MAX_COMMENT_PAGES: u32 = 10;
/// Stop when this few requests are left of a budget: the rest is for whatever else uses the
/// same token, and a request at zero only earns a 403.
pub(crate) const RATE_RESERVE: u64 = 1;
/// Wait after a secondary rate limit that names no `retry-after` (GitHub: "at least one minute").
pub(crate) const SECONDARY_WAIT: Duration = Duration::from_secs(60);
/// GitHub allows at most five AND/OR/NOT operators in a search: six words joined by OR.
pub(crate) const MAX_SEARCH_WORDS: usize = 6;
/// Issue bodies can be 65,536 characters (templates, logs); the rules and the alert need the
/// start.
pub(crate) const MAX_TEXT_CHARS: usize = 8000;
/// Ids remembered per listing at most (the overlap window needs far fewer).
const MAX_SEEN: usize = 5000;

/// A narrowed search window aims at this many results: under the cap, so that a window sized
/// from `total_count` a little off still fits.
pub(crate) const WINDOW_TARGET: u64 = 900;
/// A window that answers `incomplete_results` this many polls in a row is taken as it came.
pub(crate) const MAX_INCOMPLETE: u32 = 3;

// State keys of a search (prefixed `search_` or `discussions_`, see `Searched::key`):
// `recent`: ids seen near the watermark; `hi`: the upper end of the window to read next
// (`created:lo..hi`), when one was narrowed; `read_at`: when a poll last moved the watermark
// (Unix seconds), the overlap is counted from it; `incomplete`: `<watermark> <n>`, the window
// from that watermark answered `incomplete_results` n polls in a row.
const RECENT: &str = "recent";
const HI: &str = "hi";
const READ_AT: &str = "read_at";
const INCOMPLETE: &str = "incomplete";

/// The discussion search (docs.github.com/en/graphql/reference/queries#search).
const DISCUSSION_QUERY: &str = "query($q: String!, $first: Int!, $after: String) { search(type: DISCUSSION, query: $q, first: $first, after: $after) { discussionCount pageInfo { hasNextPage endCursor } nodes { ... on Discussion { id url title bodyText createdAt author { login } } } } }";

/// `kind = "github"`: what to search for, an optional token, where to look, an API base.
#[derive(Debug, Clone, PartialEq)]
pub struct GithubConfig {
    pub(crate) common: Common,
    pub(crate) query: String,
    /// A personal access token: higher rate limits (search 30/min instead of 10, core
    /// 5,000/h instead of 60) and access to private repositories it may read.
    pub(crate) token: Option<Secret>,
    /// `owner/name`: search is limited to these (with `orgs`), and their comments are read.
    pub(crate) repos: Vec<String>,
    /// Organization logins: search is limited to their repositories (with `repos`).
    pub(crate) orgs: Vec<String>,
    /// API base (default [`DEFAULT_URL`]; GitHub Enterprise Server: `https://HOST/api/v3`).
    pub(crate) url: Option<String>,
    /// Search GitHub Discussions too (GraphQL, so only with a token); on by default when a
    /// token is set.
    pub(crate) discussions: bool,
}

impl KindConfig for GithubConfig {
    const KIND: &'static str = "github";
    const KEYS: &'static [&'static str] =
        &["query", "token", "repos", "orgs", "url", "discussions"];
    const DEFAULT_EVERY: Duration = Duration::from_secs(120);

    fn read(r: &mut Reader, t: &Table, key: &str, common: Common) -> Option<GithubConfig> {
        let query = required_query(r, t, key, "it is what GitHub is searched for");
        if let Some(q) = &query {
            let words = search_words(q);
            let line = r.key_line(t, "query");
            if words.is_empty() {
                r.problem(
                    line,
                    &format!("{key}.query"),
                    "names no word to search for (only NOT terms); add one, e.g. query = \"acme AND NOT hiring\"",
                );
            } else if words.len() > MAX_SEARCH_WORDS {
                r.problem(
                    line,
                    &format!("{key}.query"),
                    format!(
                        "searches for {} words ({}); GitHub search allows at most {MAX_SEARCH_WORDS} (five OR operators); split it into several github sources",
                        words.len(),
                        words.join(", ")
                    ),
                );
            }
        }
        let token = r.optional_secret(t, key, "token", "GITHUB_TOKEN");
        let repos = r.string_array(t, key, "repos");
        for repo in &repos {
            if !valid_repo(repo) {
                let line = r.key_line(t, "repos");
                r.problem(
                    line,
                    &format!("{key}.repos"),
                    format!("{repo:?} is not a repository as owner/name; write e.g. repos = [\"acme/widgets\"]"),
                );
            }
        }
        let orgs = r.string_array(t, key, "orgs");
        for org in &orgs {
            if !valid_login(org) {
                let line = r.key_line(t, "orgs");
                r.problem(
                    line,
                    &format!("{key}.orgs"),
                    format!("{org:?} is not an organization login (letters, digits and single hyphens); write e.g. orgs = [\"acme\"]"),
                );
            }
        }
        let url = r.url(t, key, "url", false);
        let discussions = r.boolean(t, key, "discussions");
        if discussions == Some(true) && token.is_none() {
            let line = r.key_line(t, "discussions");
            r.problem(
                line,
                &format!("{key}.discussions"),
                "needs a token: GitHub offers Discussions only through its GraphQL API, which refuses requests without one; set token = \"${GITHUB_TOKEN}\" or remove discussions",
            );
        }
        Some(GithubConfig {
            common,
            query: query?,
            discussions: discussions.unwrap_or(token.is_some()),
            token,
            repos,
            orgs,
            url,
        })
    }

    fn common(&self) -> &Common {
        &self.common
    }

    fn build(&self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(GithubSource::new(self)?))
    }
}

/// A GitHub login: 1–39 letters, digits or hyphens, not starting or ending with a hyphen.
fn valid_login(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 39
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `owner/name`: a login, a slash, and a repository name (letters, digits, `.`, `_`, `-`).
fn valid_repo(s: &str) -> bool {
    let Some((owner, name)) = s.split_once('/') else {
        return false;
    };
    valid_login(owner)
        && !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The positive words of the rule-language query, unique, without operators or negations:
/// GitHub does not speak the rule language, so it is asked for candidates (any of the words)
/// and the rules decide.
fn search_words(query: &str) -> Vec<String> {
    let mut unique: Vec<String> = Vec::new();
    for t in positive_terms(query) {
        if !unique.contains(&t) {
            unique.push(t);
        }
    }
    unique
}

/// GitHub's rate-limit resources this source uses, each with its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    Search,
    Core,
    /// GraphQL: 5,000 points an hour with a token (a search costs one).
    Graphql,
}

/// What a search reads: issues and pull requests (REST), or discussions (GraphQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Searched {
    Issues,
    Discussions,
}

impl Searched {
    /// The state key of `what`: the issue search keeps its original keys.
    fn key(self, what: &str) -> String {
        match self {
            Searched::Issues => format!("search_{what}"),
            Searched::Discussions => format!("discussions_{what}"),
        }
    }

    fn resource(self) -> Resource {
        match self {
            Searched::Issues => Resource::Search,
            Searched::Discussions => Resource::Graphql,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Searched::Issues => "search",
            Searched::Discussions => "discussion search",
        }
    }

    /// The watermark: the issue search keeps it in `cursor`, as it always did.
    fn watermark(self, state: &SourceState) -> Option<i64> {
        match self {
            Searched::Issues => state.cursor.as_deref()?.parse().ok(),
            Searched::Discussions => state.extra.get(&self.key("watermark"))?.parse().ok(),
        }
    }

    fn set_watermark(self, state: &mut SourceState, at: i64) {
        match self {
            Searched::Issues => state.cursor = Some(at.to_string()),
            Searched::Discussions => {
                state.extra.insert(self.key("watermark"), at.to_string());
            }
        }
    }
}

/// One resource's budget as its last answer's `x-ratelimit-*` headers gave it.
#[derive(Debug, Clone, Default)]
struct Budget {
    remaining: Option<u64>,
    limit: Option<u64>,
    reset: Option<DateTime<Utc>>,
    /// No request of this resource before this time.
    paused_until: Option<DateTime<Utc>>,
}

impl Budget {
    /// The wait left when paused (never more than a day, whatever the server said).
    fn paused(&self, now: DateTime<Utc>) -> Option<Duration> {
        let until = self.paused_until?;
        (until > now).then(|| {
            (until - now)
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(DEFAULT_MAX_RETRY_AFTER)
        })
    }

    fn quota(&self) -> Option<Quota> {
        Some(Quota {
            unit: "requests",
            remaining: self.remaining?,
            limit: self.limit,
            resets_at: self.reset,
        })
    }
}

/// Polls GitHub's issue search and the watched repositories' comments.
pub(crate) struct GithubSource {
    name: String,
    base: String,
    token: Option<Secret>,
    /// The search words (any of them), joined by ` OR ` into `q`.
    words: Vec<String>,
    /// `repo:` / `org:` qualifiers added to every search.
    scope: String,
    repos: Vec<String>,
    prefilter: Option<Prefilter>,
    fetcher: Fetcher,
    search: Budget,
    core: Budget,
    graphql: Budget,
    /// Search discussions too (GraphQL, with the token).
    discussions: bool,
    /// What the last poll had to skip (a repository that failed, incomplete results).
    warning: Option<String>,
}

/// `GET /search/issues` (docs.github.com/en/rest/search/search#search-issues-and-pull-requests).
#[derive(Debug, Deserialize)]
struct SearchPage {
    total_count: u64,
    #[serde(default)]
    incomplete_results: bool,
    #[serde(default)]
    items: Vec<Issue>,
}

/// An issue or pull request as search returns it (a pull request also has `pull_request`,
/// which changes nothing here: both are mentions, with their own `html_url`).
#[derive(Debug, Deserialize)]
struct Issue {
    id: u64,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    body: Option<String>,
    html_url: String,
    #[serde(default)]
    user: Option<User>,
    created_at: DateTime<Utc>,
}

/// An issue comment (docs.github.com/en/rest/issues/comments#list-issue-comments-for-a-repository).
#[derive(Debug, Deserialize)]
struct Comment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    html_url: String,
    #[serde(default)]
    user: Option<User>,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct User {
    login: String,
}

/// One page of a search, issues or discussions alike.
struct Hits {
    total_count: u64,
    incomplete_results: bool,
    items: Vec<Hit>,
    /// The discussion search's cursor for the next page, when there is one.
    after: Option<String>,
}

/// An issue, pull request or discussion found by a search.
struct Hit {
    /// What the seen-set remembers: the issue id, or a hash of the discussion's node id.
    key: u64,
    item_id: String,
    title: Option<String>,
    body: Option<String>,
    url: String,
    author: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<Issue> for Hit {
    fn from(i: Issue) -> Hit {
        Hit {
            key: i.id,
            item_id: format!("issue:{}", i.id),
            title: i.title,
            body: i.body,
            url: i.html_url,
            author: i.user.map(|u| u.login),
            created_at: i.created_at,
        }
    }
}

impl From<Discussion> for Hit {
    fn from(d: Discussion) -> Hit {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(d.id.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Hit {
            key: u64::from_be_bytes(first),
            item_id: format!("discussion:{}", d.id),
            title: d.title,
            body: d.body_text,
            url: d.url,
            author: d.author.map(|u| u.login),
            created_at: d.created_at,
        }
    }
}

/// The GraphQL answer: `{"data": {"search": …}}`, or `{"errors": [{"type", "message"}]}`
/// (docs.github.com/en/graphql/overview/rate-limits-and-query-limits-for-the-graphql-api).
#[derive(Debug, Deserialize)]
struct GraphqlReply {
    #[serde(default)]
    data: Option<GraphqlData>,
    #[serde(default)]
    errors: Vec<GraphqlError>,
}

#[derive(Debug, Deserialize)]
struct GraphqlData {
    search: DiscussionSearch,
}

/// `SearchResultItemConnection` (docs.github.com/en/graphql/reference/objects).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DiscussionSearch {
    #[serde(alias = "issueCount")]
    discussion_count: u64,
    page_info: PageInfo,
    /// Each a `Discussion`; anything else is skipped.
    #[serde(default)]
    nodes: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    #[serde(default)]
    has_next_page: bool,
    #[serde(default)]
    end_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Discussion {
    id: String,
    url: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    body_text: Option<String>,
    created_at: DateTime<Utc>,
    #[serde(default)]
    author: Option<User>,
}

#[derive(Debug, Deserialize)]
struct GraphqlError {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// GitHub's error body: `{"message": …, "errors": [{"message"|"code", …}], "documentation_url"}`.
#[derive(Debug, Default, Deserialize)]
struct ApiError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

impl GithubSource {
    pub(crate) fn new(spec: &GithubConfig) -> Result<GithubSource, SourceError> {
        let words = search_words(&spec.query);
        if words.is_empty() {
            return Err(SourceError::Config(format!(
                "source {:?}: kind \"github\" needs a query with at least one word to search for",
                spec.common.name
            )));
        }
        let mut scope = String::new();
        for repo in &spec.repos {
            scope.push_str(&format!(" repo:{repo}"));
        }
        for org in &spec.orgs {
            scope.push_str(&format!(" org:{org}"));
        }
        Ok(GithubSource {
            name: spec.common.name.clone(),
            base: spec
                .url
                .clone()
                .unwrap_or_else(|| DEFAULT_URL.to_string())
                .trim_end_matches('/')
                .to_string(),
            token: spec.token.clone(),
            prefilter: Prefilter::from_keywords(words.clone()),
            words,
            scope,
            repos: spec.repos.clone(),
            fetcher: Fetcher::new(&spec.common)?,
            search: Budget::default(),
            core: Budget::default(),
            graphql: Budget::default(),
            discussions: spec.discussions && spec.token.is_some(),
            warning: None,
        })
    }

    /// Adds to what this poll had to work around (shown on `/healthz`).
    fn add_warning(&mut self, warning: String) {
        self.warning = Some(match self.warning.take() {
            Some(w) => format!("{w}; {warning}"),
            None => warning,
        });
    }

    fn budget(&mut self, resource: Resource) -> &mut Budget {
        match resource {
            Resource::Search => &mut self.search,
            Resource::Core => &mut self.core,
            Resource::Graphql => &mut self.graphql,
        }
    }

    fn budget_of(&self, resource: Resource) -> &Budget {
        match resource {
            Resource::Search => &self.search,
            Resource::Core => &self.core,
            Resource::Graphql => &self.graphql,
        }
    }

    /// GETs `url` on `resource`'s budget: refuses while it is paused, notes the rate-limit
    /// headers of the answer, pauses when the budget is (nearly) used up, and turns error
    /// answers into errors that name the fix.
    async fn get(
        &mut self,
        url: &str,
        resource: Resource,
        what: &str,
    ) -> Result<(HeaderMap, Vec<u8>), SourceError> {
        self.request(reqwest::Method::GET, url, None, resource, what)
            .await
    }

    /// [`get`](Self::get) with any method and an optional JSON body.
    async fn request(
        &mut self,
        method: reqwest::Method,
        url: &str,
        body: Option<&serde_json::Value>,
        resource: Resource,
        what: &str,
    ) -> Result<(HeaderMap, Vec<u8>), SourceError> {
        if let Some(wait) = self.budget(resource).paused(Utc::now()) {
            return Err(SourceError::RateLimited { wait });
        }
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Bearer {}", t.expose()));
        let mut headers: Vec<(&str, &str)> = vec![
            ("accept", "application/vnd.github+json"),
            ("x-github-api-version", API_VERSION),
        ];
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        let reply = self
            .fetcher
            .request_any(method, url, &headers, body)
            .await?;
        let now = Utc::now();
        let resource = match header(&reply.headers, "x-ratelimit-resource").as_deref() {
            Some("search") => Resource::Search,
            Some("core") => Resource::Core,
            Some("graphql") => Resource::Graphql,
            _ => resource,
        };
        self.note_budget(resource, &reply.headers, now);
        if reply.is_success() {
            let budget = self.budget(resource);
            if budget.remaining.is_some_and(|r| r <= RATE_RESERVE) {
                let until = budget.reset.unwrap_or_else(|| later(now, SECONDARY_WAIT));
                tracing::info!(
                    source = %self.name,
                    resource = ?resource,
                    resets_at = %until,
                    "github rate limit nearly used up; pausing until it resets"
                );
                self.budget(resource).paused_until = Some(until);
            }
            return Ok((reply.headers, reply.bytes));
        }
        let err = self.error(&reply, resource, what, now);
        if let SourceError::RateLimited { wait } = &err {
            self.budget(resource).paused_until = Some(later(now, *wait));
        }
        Err(err)
    }

    fn note_budget(&mut self, resource: Resource, headers: &HeaderMap, now: DateTime<Utc>) {
        let number = |name: &str| -> Option<u64> { header(headers, name)?.trim().parse().ok() };
        let Some(remaining) = number("x-ratelimit-remaining") else {
            return;
        };
        let budget = self.budget(resource);
        budget.remaining = Some(remaining);
        budget.limit = number("x-ratelimit-limit");
        // GitHub sends the reset as a Unix time (UTC epoch seconds), at most an hour away; one
        // further than a day is a server mistake and is taken as a day.
        budget.reset = number("x-ratelimit-reset")
            .and_then(|s| DateTime::<Utc>::from_timestamp(i64::try_from(s).ok()?, 0))
            .map(|r| r.min(later(now, DEFAULT_MAX_RETRY_AFTER)));
    }

    /// The error for a non-2xx answer, naming the fix; never the token.
    fn error(
        &self,
        reply: &ApiReply,
        resource: Resource,
        what: &str,
        now: DateTime<Utc>,
    ) -> SourceError {
        let status = reply.status;
        let body: ApiError = serde_json::from_slice(&reply.bytes).unwrap_or_default();
        let message = body
            .message
            .as_deref()
            .map(|m| cut(m.trim(), 300))
            .unwrap_or_default();
        let said = if message.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {message}")
        };
        if matches!(status, 403 | 429) {
            if let Some(wait) = retry_after(&reply.headers, now) {
                return SourceError::RateLimited { wait };
            }
            if header(&reply.headers, "x-ratelimit-remaining").as_deref() == Some("0") {
                return SourceError::RateLimited {
                    wait: self.wait_for_reset(resource, now),
                };
            }
            if status == 429 || message.to_lowercase().contains("rate limit") {
                return SourceError::RateLimited {
                    wait: SECONDARY_WAIT,
                };
            }
        }
        let token_fix = "create a new token at https://github.com/settings/tokens (a fine-grained token with read-only access to public repositories is enough) and set token = \"${GITHUB_TOKEN}\"";
        match status {
            401 if self.token.is_some() => SourceError::Config(format!(
                "GitHub refused the token ({said}); it is wrong, expired or revoked: {token_fix}"
            )),
            401 => SourceError::Config(format!(
                "GitHub asks for a token ({said}): {token_fix}"
            )),
            403 => SourceError::Config(format!(
                "GitHub refused {what} ({said}); check that the token may read it (an organization with SAML single sign-on must authorize the token), or take the repository out of repos"
            )),
            404 => SourceError::Config(format!(
                "GitHub does not know {what} ({said}); check that repos names existing repositories as owner/name (a private one needs a token that can read it) and that url is the API base"
            )),
            422 => {
                let details: Vec<String> = body
                    .errors
                    .iter()
                    .filter_map(|e| {
                        e.get("message")
                            .or_else(|| e.get("code"))
                            .and_then(|m| m.as_str())
                            .map(|m| cut(m, 300))
                    })
                    .collect();
                let details = if details.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", details.join("; "))
                };
                SourceError::Config(format!(
                    "GitHub refused the search as invalid ({said}{details}); check query, repos and orgs: every repository and organization must exist and be visible to the token"
                ))
            }
            _ => SourceError::Status {
                status,
                retry_after: retry_after(&reply.headers, now),
            },
        }
    }

    /// The wait until `resource`'s budget resets, after it was used up.
    fn wait_for_reset(&self, resource: Resource, now: DateTime<Utc>) -> Duration {
        self.budget_of(resource)
            .reset
            .map(|r| (r - now).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(SECONDARY_WAIT)
            // A reset just past (clocks differ) still waits a moment; an hour is the
            // longest window GitHub has.
            .clamp(Duration::from_secs(1), Duration::from_secs(3600))
    }

    /// The search text: any of the words, the scope, the `created:` window.
    fn search_text(&self, lo: i64, hi: Option<i64>) -> String {
        let created = match hi {
            Some(hi) => format!("created:{}..{}", iso(lo), iso(hi)),
            None => format!("created:>={}", iso(lo)),
        };
        format!("{}{} {created}", self.words.join(" OR "), self.scope)
    }

    /// The GraphQL endpoint: `/graphql` beside the REST API (`https://api.github.com/graphql`;
    /// GitHub Enterprise Server: `https://HOST/api/graphql` for `https://HOST/api/v3`).
    fn graphql_url(&self) -> String {
        match self.base.strip_suffix("/v3") {
            Some(api) if api.ends_with("/api") => format!("{api}/graphql"),
            _ => format!("{}/graphql", self.base),
        }
    }

    /// One page of `searched` in the window: page `page` of the issue search, or the
    /// discussion search's page after `after`.
    async fn hits_page(
        &mut self,
        searched: Searched,
        lo: i64,
        hi: Option<i64>,
        page: u64,
        after: Option<String>,
    ) -> Result<Hits, SourceError> {
        match searched {
            Searched::Issues => {
                let p = self.search_page(lo, hi, page).await?;
                Ok(Hits {
                    total_count: p.total_count,
                    incomplete_results: p.incomplete_results,
                    items: p.items.into_iter().map(Hit::from).collect(),
                    after: None,
                })
            }
            Searched::Discussions => self.discussion_page(lo, hi, after).await,
        }
    }

    /// `POST /graphql` with the discussion search, oldest first.
    async fn discussion_page(
        &mut self,
        lo: i64,
        hi: Option<i64>,
        after: Option<String>,
    ) -> Result<Hits, SourceError> {
        let body = serde_json::json!({
            "query": DISCUSSION_QUERY,
            "variables": {
                "q": format!("{} sort:created-asc", self.search_text(lo, hi)),
                "first": PER_PAGE,
                "after": after,
            }
        });
        let url = self.graphql_url();
        let (_, bytes) = self
            .request(
                reqwest::Method::POST,
                &url,
                Some(&body),
                Resource::Graphql,
                "the discussion search",
            )
            .await?;
        let reply: GraphqlReply = decode_json(&bytes, "the GitHub GraphQL API")?;
        if !reply.errors.is_empty() {
            let now = Utc::now();
            if reply
                .errors
                .iter()
                .any(|e| e.kind.as_deref() == Some("RATE_LIMITED"))
            {
                let wait = self.wait_for_reset(Resource::Graphql, now);
                self.graphql.paused_until = Some(later(now, wait));
                return Err(SourceError::RateLimited { wait });
            }
            if reply.data.is_none() {
                let said: Vec<String> = reply
                    .errors
                    .iter()
                    .filter_map(|e| e.message.as_deref().map(|m| cut(m.trim(), 300)))
                    .collect();
                return Err(SourceError::Config(format!(
                    "GitHub refused the discussion search ({}); check query, repos and orgs, and that the token may read them",
                    said.join("; ")
                )));
            }
        }
        let search = reply
            .data
            .ok_or_else(|| SourceError::Parse("GitHub's GraphQL answer has no data".into()))?
            .search;
        Ok(Hits {
            total_count: search.discussion_count,
            incomplete_results: false,
            items: search
                .nodes
                .into_iter()
                .filter_map(|n| serde_json::from_value::<Discussion>(n).ok())
                .map(Hit::from)
                .collect(),
            after: search
                .page_info
                .has_next_page
                .then_some(search.page_info.end_cursor)
                .flatten(),
        })
    }

    fn search_url(&self, lo: i64, hi: Option<i64>, page: u64) -> Result<Url, SourceError> {
        let mut url = Url::parse(&format!("{}/search/issues", self.base))
            .map_err(|e| SourceError::Config(format!("github url is not valid: {e}")))?;
        let q = self.search_text(lo, hi);
        url.query_pairs_mut()
            .append_pair("q", &q)
            .append_pair("sort", "created")
            .append_pair("order", "asc")
            .append_pair("per_page", &PER_PAGE.to_string())
            .append_pair("page", &page.to_string());
        Ok(url)
    }

    async fn search_page(
        &mut self,
        lo: i64,
        hi: Option<i64>,
        page: u64,
    ) -> Result<SearchPage, SourceError> {
        let url = self.search_url(lo, hi, page)?;
        let (_, bytes) = self
            .get(url.as_str(), Resource::Search, "the search")
            .await?;
        decode_json(&bytes, "the GitHub search API")
    }

    /// Issues and pull requests created since the search watermark (`state.cursor`), in
    /// windows under the 1,000-result cap, oldest first.
    ///
    /// Every answer moves the read forward, however large the backlog: a window with more
    /// than 1,000 results still gives its oldest 100 on its first page (results come oldest
    /// first), which are read, and the next window is sized from `total_count` to hold about
    /// [`WINDOW_TARGET`] results. The window's upper end is kept in the state, so the next
    /// poll starts from a window that fits instead of narrowing again.
    async fn read_search(
        &mut self,
        searched: Searched,
        state: &mut SourceState,
    ) -> Result<Vec<Mention>, SourceError> {
        let now = Utc::now().timestamp();
        let number =
            |key: &str| -> Option<i64> { state.extra.get(&searched.key(key))?.parse().ok() };
        let watermark: i64 = searched
            .watermark(state)
            .unwrap_or(now - INITIAL_LOOKBACK_SECS);
        // The overlap is for items the index shows late: those created within OVERLAP_SECS
        // before the read that reached the watermark. A backlog read long after its items
        // were created needs none (re-reading ten minutes of a busy word every poll could
        // use the whole budget); the watermark's own second is always read again.
        let lo_floor = watermark - OVERLAP_SECS;
        let mut lo = match number(READ_AT) {
            Some(read_at) => watermark.min(read_at - OVERLAP_SECS).max(lo_floor),
            None => lo_floor,
        };
        let mut hi: Option<i64> = number(HI).filter(|h| *h >= lo && *h < now);
        // (watermark the window started at, incomplete answers in a row for it)
        let mut incomplete_run: Option<(i64, u32)> =
            state.extra.get(&searched.key(INCOMPLETE)).and_then(|v| {
                let (at, n) = v.split_once(' ')?;
                Some((at.parse().ok()?, n.parse().ok()?))
            });
        let mut recent = read_seen(state.extra.get(&searched.key(RECENT)));

        let mut requests = 0u32;
        let mut issues: Vec<Hit> = Vec::new();
        // Everything created up to this second has been read (or handed on before); its own
        // second may have more, and is read again.
        let mut covered = watermark;
        loop {
            let first = match self.hits_page(searched, lo, hi, 1, None).await {
                Ok(page) => page,
                // Later windows failing keep what the earlier ones read (they are covered).
                Err(e) if requests > 0 => {
                    self.add_warning(format!("{} stopped early: {e}", searched.label()));
                    break;
                }
                Err(e) => return Err(e),
            };
            requests += 1;
            let out_of_budget = |s: &Self, requests: u32| {
                requests >= MAX_SEARCH_REQUESTS
                    || s.budget_of(searched.resource())
                        .paused(Utc::now())
                        .is_some()
            };
            let top = hi.unwrap_or(now).max(lo);
            if first.total_count > RESULT_CAP && top > lo {
                // Too many results to page through. The first page holds the window's oldest
                // results: everything up to its newest second is read (that second again next).
                let aim = lo as i128
                    + (top - lo) as i128 * i128::from(WINDOW_TARGET)
                        / i128::from(first.total_count);
                // Only when GitHub really answered oldest first (`sort` honoured): otherwise the
                // page is no prefix of the window and says nothing about what is covered.
                if !first.incomplete_results
                    && oldest_first(first.items.iter().map(|i| i.created_at))
                {
                    if let Some(newest) = first.items.iter().map(|i| i.created_at.timestamp()).max()
                    {
                        covered = covered.max(newest);
                        lo = lo.max(newest);
                    }
                    issues.extend(first.items);
                }
                hi = Some((aim as i64).max(lo).min(top));
                if out_of_budget(self, requests) {
                    tracing::info!(source = %self.name, covered_to = covered, "search budget used up; the next poll continues from here");
                    break;
                }
                continue;
            }
            if first.total_count > RESULT_CAP {
                tracing::warn!(
                    source = %self.name,
                    second = lo,
                    results = first.total_count,
                    "more than 1000 results created in one second; some cannot be read"
                );
            }
            let total = first.total_count;
            let mut incomplete = first.incomplete_results;
            let mut window = first.items;
            // The pages' results in the order they came (checked before the watermark moves).
            let mut window_order: Vec<DateTime<Utc>> =
                window.iter().map(|i| i.created_at).collect();
            let mut after = first.after;
            let pages = total.min(RESULT_CAP).div_ceil(PER_PAGE);
            let mut stopped = false;
            for page in 2..=pages {
                // The discussion search pages by cursor: none means no more.
                if searched == Searched::Discussions && after.is_none() {
                    break;
                }
                if out_of_budget(self, requests) {
                    stopped = true;
                    break;
                }
                let next = match self.hits_page(searched, lo, hi, page, after.take()).await {
                    Ok(next) => next,
                    Err(e) => {
                        self.add_warning(format!("{} stopped early: {e}", searched.label()));
                        stopped = true;
                        break;
                    }
                };
                requests += 1;
                after = next.after;
                incomplete |= next.incomplete_results;
                if next.items.is_empty() {
                    break;
                }
                window_order.extend(next.items.iter().map(|i| i.created_at));
                window.extend(next.items);
            }
            let newest = window.iter().map(|i| i.created_at.timestamp()).max();
            issues.extend(window);
            if incomplete {
                // GitHub timed out inside this window: keep what came, and read the window
                // again next poll instead of moving past what may be missing; a window that
                // never answers completely is taken as it is after MAX_INCOMPLETE tries, so the
                // source does not stay stuck on it.
                let tries = match incomplete_run {
                    Some((at, n)) if at == covered => n.saturating_add(1),
                    _ => 1,
                };
                if tries < MAX_INCOMPLETE {
                    incomplete_run = Some((covered, tries));
                    self.add_warning(format!(
                        "GitHub search answered with incomplete_results (it timed out); the window from {} is read again next poll (try {tries} of {MAX_INCOMPLETE})",
                        iso(lo)
                    ));
                    break;
                }
                incomplete_run = None;
                self.add_warning(format!(
                    "GitHub search answered with incomplete_results {MAX_INCOMPLETE} times in a row for the window from {}; its results were taken as they came and may be incomplete",
                    iso(lo)
                ));
            } else if !stopped {
                incomplete_run = None;
            }
            if stopped {
                // Results come oldest first: everything before the newest one read is read
                // (its own second is read again). Out of order, nothing is known to be
                // covered: the window is read again next poll.
                if oldest_first(window_order.iter().copied()) {
                    covered = covered.max(newest.unwrap_or(covered));
                }
                tracing::info!(source = %self.name, covered_to = covered, "search budget used up; the next poll continues from here");
                break;
            }
            match hi {
                None => {
                    covered = covered.max(newest.unwrap_or(covered));
                    break;
                }
                Some(h) => {
                    covered = covered.max(h);
                    // The next window: this one's width scaled to hold about WINDOW_TARGET.
                    let width = i128::from(h - lo + 1);
                    let next_width = width * i128::from(WINDOW_TARGET) / i128::from(total.max(1));
                    lo = h + 1;
                    let aim = i128::from(lo) + next_width.max(1) - 1;
                    hi = (aim < i128::from(now)).then_some(aim as i64);
                    if out_of_budget(self, requests) {
                        tracing::info!(source = %self.name, covered_to = covered, "search budget used up; the next poll continues from here");
                        break;
                    }
                }
            }
        }

        let mut mentions = Vec::new();
        for issue in issues {
            let created = issue.created_at.timestamp();
            if recent.contains_key(&issue.key) {
                continue;
            }
            recent.insert(issue.key, created);
            if let Some(m) = self.issue_mention(issue) {
                mentions.push(m);
            }
        }
        recent.retain(|_, ts| *ts >= covered - OVERLAP_SECS);
        if covered > watermark {
            state.extra.insert(searched.key(READ_AT), now.to_string());
        }
        match hi {
            Some(h) => state.extra.insert(searched.key(HI), h.to_string()),
            None => state.extra.remove(&searched.key(HI)),
        };
        match incomplete_run {
            Some((at, n)) => state
                .extra
                .insert(searched.key(INCOMPLETE), format!("{at} {n}")),
            None => state.extra.remove(&searched.key(INCOMPLETE)),
        };
        searched.set_watermark(state, covered);
        write_seen(state, &searched.key(RECENT), recent);
        Ok(mentions)
    }

    /// New comments on `repo` since its watermark, oldest first, those naming a query word.
    async fn read_comments(
        &mut self,
        repo: &str,
        state: &mut SourceState,
    ) -> Result<Vec<Mention>, SourceError> {
        let wm_key = format!("comments_watermark:{repo}");
        let seen_key = format!("comments_seen:{repo}");
        let now = Utc::now().timestamp();
        let watermark: i64 = state
            .extra
            .get(&wm_key)
            .and_then(|w| w.parse().ok())
            .unwrap_or(now - INITIAL_LOOKBACK_SECS);
        let floor = watermark - OVERLAP_SECS;
        let mut seen = read_seen(state.extra.get(&seen_key));
        let mut url = Url::parse(&format!("{}/repos/{repo}/issues/comments", self.base))
            .map_err(|e| SourceError::Config(format!("github url is not valid: {e}")))?;
        url.query_pairs_mut()
            .append_pair("since", &iso(floor))
            .append_pair("sort", "created")
            .append_pair("direction", "asc")
            .append_pair("per_page", &PER_PAGE.to_string());
        let what = format!("the comments of {repo}");
        let mut next = Some(url.to_string());
        let mut newest = watermark;
        let mut pages = 0u32;
        let mut out = Vec::new();
        while let Some(page_url) = next.take() {
            if pages > 0 && self.core.paused(Utc::now()).is_some() {
                break;
            }
            let page = match self.get(&page_url, Resource::Core, &what).await {
                Ok((headers, bytes)) => {
                    decode_json::<Vec<Comment>>(&bytes, "the GitHub comments API")
                        .map(|comments| (headers, comments))
                }
                Err(e) => Err(e),
            };
            let (headers, comments) = match page {
                Ok(page) => page,
                // A later page failing keeps what the earlier ones read (oldest first).
                Err(e) if pages > 0 => {
                    self.add_warning(format!("comments of {repo} stopped early: {e}"));
                    break;
                }
                Err(e) => return Err(e),
            };
            pages += 1;
            for c in comments {
                let created = c.created_at.timestamp();
                // `since` is about updates: an old comment edited lately is not new.
                if created < floor {
                    continue;
                }
                newest = newest.max(created);
                if seen.contains_key(&c.id) {
                    continue;
                }
                seen.insert(c.id, created);
                if let Some(m) = self.comment_mention(c) {
                    out.push(m);
                }
            }
            next = next_link(&headers);
            // The token goes with every request: follow only links to the same API.
            if next
                .as_deref()
                .is_some_and(|n| !n.starts_with(&format!("{}/", self.base)))
            {
                tracing::warn!(source = %self.name, repo, "comment listing links outside the API base; not followed");
                next = None;
            }
            if pages >= MAX_COMMENT_PAGES {
                break;
            }
        }
        // Comments come oldest first, so the newest one read is a safe watermark even when the
        // listing was not read to its end.
        state.extra.insert(wm_key, newest.to_string());
        seen.retain(|_, ts| *ts >= newest - OVERLAP_SECS);
        write_seen(state, &seen_key, seen);
        Ok(out)
    }

    fn issue_mention(&self, issue: Hit) -> Option<Mention> {
        let title = issue
            .title
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let body = cut(issue.body.as_deref().unwrap_or("").trim(), MAX_TEXT_CHARS);
        let text = if body.is_empty() {
            issue.url.clone()
        } else {
            body
        };
        Some(Mention {
            item_id: issue.item_id,
            source: self.name.clone(),
            source_kind: SourceKind::Github.as_str().to_string(),
            url: Some(issue.url),
            title,
            text,
            author: issue.author,
            // Search results carry no follower count; looking each author up would spend
            // the core budget on every mention.
            author_reach: None,
            published: Some(issue.created_at),
            lang: None,
            rating: None,
        })
    }

    fn comment_mention(&self, c: Comment) -> Option<Mention> {
        let body = c.body.as_deref().unwrap_or("").trim();
        // The listing is every new comment on the repository: keep only those that may
        // match, as search does for issues.
        if body.is_empty() || self.prefilter.as_ref().is_some_and(|p| !p.accepts(body)) {
            return None;
        }
        Some(Mention {
            item_id: format!("comment:{}", c.id),
            source: self.name.clone(),
            source_kind: SourceKind::Github.as_str().to_string(),
            url: Some(c.html_url),
            title: None,
            text: cut(body, MAX_TEXT_CHARS),
            author: c.user.map(|u| u.login),
            author_reach: None,
            published: Some(c.created_at),
            lang: None,
            rating: None,
        })
    }
}

/// Whether results came oldest first, as asked (`sort=created&order=asc`, `sort:created-asc`).
fn oldest_first(times: impl IntoIterator<Item = DateTime<Utc>>) -> bool {
    let mut last: Option<DateTime<Utc>> = None;
    times.into_iter().all(|t| {
        let ok = last.is_none_or(|l| l <= t);
        last = Some(t);
        ok
    })
}

/// `now + wait`, with a wait taken from a server capped at a day first: a hostile
/// `retry-after: 10000000000000` must neither overflow the date nor stop the source for ages.
fn later(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    let wait = chrono::Duration::from_std(wait.min(DEFAULT_MAX_RETRY_AFTER)).unwrap_or_default();
    now.checked_add_signed(wait).unwrap_or(now)
}

/// A `retry-after` header as a wait, capped at a day.
fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    header(headers, "retry-after")
        .and_then(|v| parse_retry_after(&v, now))
        .map(|w| w.min(DEFAULT_MAX_RETRY_AFTER))
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_string)
}

/// `2024-05-01T10:00:00Z`, as GitHub's `created:` qualifier and `since` take it.
fn iso(epoch: i64) -> String {
    DateTime::<Utc>::from_timestamp(epoch, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The `rel="next"` URL of a `Link` header
/// (`<https://api.github.com/…?page=2>; rel="next", <…>; rel="last"`).
fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = header(headers, "link")?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        is_next.then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// `s` cut to `max` characters, with an ellipsis when cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((end, _)) => format!("{}…", s[..end].trim_end()),
    }
}

/// Ids seen inside an overlap window, with their creation second: `id@ts id@ts …`.
fn read_seen(raw: Option<&String>) -> BTreeMap<u64, i64> {
    raw.map(|s| {
        s.split_whitespace()
            .filter_map(|e| {
                let (id, ts) = e.split_once('@')?;
                Some((id.parse().ok()?, ts.parse().ok()?))
            })
            .collect()
    })
    .unwrap_or_default()
}

fn write_seen(state: &mut SourceState, key: &str, seen: BTreeMap<u64, i64>) {
    let mut entries: Vec<(u64, i64)> = seen.into_iter().collect();
    entries.sort_by_key(|(_, ts)| std::cmp::Reverse(*ts));
    entries.truncate(MAX_SEEN);
    if entries.is_empty() {
        state.extra.remove(key);
    } else {
        let joined: Vec<String> = entries
            .iter()
            .map(|(id, ts)| format!("{id}@{ts}"))
            .collect();
        state.extra.insert(key.to_string(), joined.join(" "));
    }
}

#[async_trait::async_trait]
impl Source for GithubSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Github
    }

    /// The budget closest to running out (search or core), as GitHub's headers last gave it.
    fn quota(&self) -> Option<Quota> {
        let fraction =
            |q: &Quota| q.remaining as f64 / q.limit.unwrap_or(q.remaining.max(1)).max(1) as f64;
        [self.search.quota(), self.core.quota(), self.graphql.quota()]
            .into_iter()
            .flatten()
            .min_by(|a, b| fraction(a).total_cmp(&fraction(b)))
    }

    fn take_warning(&mut self) -> Option<String> {
        self.warning.take()
    }

    async fn poll(&mut self, state: &mut SourceState) -> Result<Vec<Mention>, SourceError> {
        self.warning = None;
        let mut mentions = Vec::new();
        let mut failures: Vec<(String, SourceError)> = Vec::new();
        let mut succeeded = 0usize;
        match self.read_search(Searched::Issues, state).await {
            Ok(m) => {
                succeeded += 1;
                mentions.extend(m);
            }
            Err(e) => failures.push(("search".to_string(), e)),
        }
        if self.discussions {
            match self.read_search(Searched::Discussions, state).await {
                Ok(m) => {
                    succeeded += 1;
                    mentions.extend(m);
                }
                Err(e) => failures.push(("discussion search".to_string(), e)),
            }
        }
        for repo in self.repos.clone() {
            match self.read_comments(&repo, state).await {
                Ok(m) => {
                    succeeded += 1;
                    mentions.extend(m);
                }
                Err(e) => failures.push((format!("comments of {repo}"), e)),
            }
        }
        if succeeded == 0 {
            // Nothing could be read: a rate limit comes first, since it says when to try again.
            let first = failures
                .iter()
                .position(|(_, e)| e.retry_after().is_some())
                .unwrap_or(0);
            return Err(failures.swap_remove(first).1);
        }
        for (what, e) in failures {
            self.add_warning(format!("{what}: {e}"));
        }
        Ok(mentions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_give_the_next_page() {
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            r#"<https://api.github.com/repositories/1300192/issues/comments?page=2>; rel="next", <https://api.github.com/repositories/1300192/issues/comments?page=5>; rel="last""#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/repositories/1300192/issues/comments?page=2")
        );
        h.insert(
            "link",
            r#"<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=1>; rel="first""#
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn the_graphql_endpoint_sits_beside_the_rest_api() {
        // Built directly: `sources` sits above `settings` and must not use it.
        let source = |url: &str| {
            let spec = GithubConfig {
                common: Common::new("gh", Duration::from_secs(120)),
                query: "acme".into(),
                token: None,
                repos: vec![],
                orgs: vec![],
                url: Some(url.into()),
                discussions: false,
            };
            GithubSource::new(&spec).unwrap()
        };
        assert_eq!(
            source("https://api.github.com").graphql_url(),
            "https://api.github.com/graphql"
        );
        assert_eq!(
            source("https://ghe.example.com/api/v3/").graphql_url(),
            "https://ghe.example.com/api/graphql"
        );
    }

    #[test]
    fn names_and_times_are_checked_and_formatted() {
        assert!(valid_repo("acme/widgets") && valid_repo("a-b/c.d_e"));
        for bad in [
            "acme",
            "acme/",
            "/w",
            "a/b/c",
            "-a/b",
            "a/..",
            "https://github.com/a/b",
        ] {
            assert!(!valid_repo(bad), "{bad}");
        }
        assert!(valid_login("acme-inc") && !valid_login("acme_inc") && !valid_login(""));
        assert_eq!(iso(1714557600), "2024-05-01T10:00:00Z");
        assert_eq!(cut("héllo", 3), "hél…");
        assert_eq!(cut("hi", 3), "hi");
        assert_eq!(
            search_words(r#"(acme OR "acme corp") AND NOT hiring"#),
            ["acme"]
        );
    }
}
