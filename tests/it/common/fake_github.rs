//! A fake GitHub REST API on 127.0.0.1 for the `github` source: issue search
//! (`GET /search/issues`) and a repository's issue comments
//! (`GET /repos/{owner}/{repo}/issues/comments`), with GitHub's rate-limit headers per
//! resource, its error bodies (401 "Bad credentials", 403 rate limits, 404, 422 "Validation
//! Failed"), `Link` paging, and the shared fault layer (`faults.rs`).
//!
//! Shapes follow docs.github.com (REST API version 2022-11-28):
//! - search: rest/search/search "Search issues and pull requests", example response;
//! - comments: rest/issues/comments "List issue comments for a repository", example response;
//! - errors and rate limits: rest/using-the-rest-api/troubleshooting-the-rest-api and
//!   rest/using-the-rest-api/rate-limits-for-the-rest-api (`x-ratelimit-limit`, `-remaining`,
//!   `-used`, `-reset` in UTC epoch seconds, `-resource`; 403/429 with remaining 0 for a
//!   primary limit, `retry-after` on a secondary one);
//! - paging: rest/using-the-rest-api/using-pagination-in-the-rest-api (`Link` header);
//! - discussions: `POST /graphql` with `search(type: DISCUSSION, query:, first:, after:)`
//!   (graphql/reference/queries#search, objects#searchresultitemconnection: `discussionCount`,
//!   `pageInfo { hasNextPage endCursor }`, `nodes` as `Discussion`), 401 without a token
//!   (graphql/guides/forming-calls-with-graphql#authenticating-with-graphql), and a used-up
//!   budget as `{"errors": [{"type": "RATE_LIMITED", …}]}` with `x-ratelimit-resource: graphql`
//!   (graphql/overview/rate-limits-and-query-limits-for-the-graphql-api).

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::fake_sources::Seen;
use super::faults::{self, Fault, Faults, Platform, ANY};

pub mod ops {
    pub const SEARCH: &str = "GET /search/issues";
    pub const COMMENTS: &str = "GET /repos/{owner}/{repo}/issues/comments";
    pub const GRAPHQL: &str = "POST /graphql";
    pub const ALL: &[&str] = &[SEARCH, COMMENTS, GRAPHQL];
}

/// The token the fake accepts when a test sets one.
pub const GITHUB_TOKEN: &str = "github_pat_11AAAAAAA0testtokenvalue";

/// One rate-limit resource's budget.
#[derive(Debug, Clone)]
pub struct Budget {
    pub limit: u64,
    pub remaining: u64,
    /// UTC epoch seconds.
    pub reset: i64,
}

/// `count` issues in `a/b` titled "acme backlog", the i-th created at `start + i * step` with
/// id `first_id + i`.
#[derive(Debug, Clone)]
pub struct Backlog {
    pub first_id: u64,
    pub start: i64,
    pub step: i64,
    pub count: u64,
}

impl Backlog {
    /// The indexes of the issues created in `lo..=hi`.
    fn range(&self, lo: i64, hi: i64) -> std::ops::Range<u64> {
        let (start, step) = (i128::from(self.start), i128::from(self.step.max(1)));
        let first = ((i128::from(lo) - start + step - 1).div_euclid(step)).max(0);
        let last = ((i128::from(hi) - start).div_euclid(step)).min(i128::from(self.count) - 1);
        if last < first {
            return 0..0;
        }
        first as u64..last as u64 + 1
    }

    fn issue(&self, i: u64) -> Value {
        gh_issue(
            self.first_id + i,
            "a/b",
            i + 1,
            self.start + i as i64 * self.step,
            "acme backlog",
            None,
        )
    }
}

impl Budget {
    fn new(limit: u64) -> Budget {
        Budget {
            limit,
            remaining: limit,
            reset: Utc::now().timestamp() + 60,
        }
    }
}

pub struct GithubState {
    /// Search results (issues and pull requests), in any order.
    pub issues: Vec<Value>,
    /// Issue comments per `owner/repo`, in any order; a repo not listed answers 404.
    pub comments: BTreeMap<String, Vec<Value>>,
    /// The token accepted; any other `Authorization` gets 401 "Bad credentials".
    pub token: String,
    pub search: Budget,
    pub core: Budget,
    pub graphql: Budget,
    /// Discussions (GraphQL `Discussion` nodes as `gh_discussion` makes them), in any order.
    pub discussions: Vec<Value>,
    /// The discussion search ignores `sort:created-asc` and answers newest first.
    pub discussions_newest_first: bool,
    /// The next search answers 422 "Validation Failed" (a repo:/org: that does not exist).
    pub invalid_search: bool,
    /// The next call answers a secondary rate limit with this `retry-after`.
    pub secondary_limit: Option<u64>,
    /// Search answers `incomplete_results: true` (GitHub timed out).
    pub incomplete: bool,
    /// Issues made on demand, searched with `issues`: a backlog of tens of thousands costs
    /// nothing until a page of it is asked for.
    pub backlog: Option<Backlog>,
    pub requests: Vec<Seen>,
}

#[derive(Clone)]
pub struct FakeGithub {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<GithubState>>,
    pub faults: Faults,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<GithubState>>,
    faults: Faults,
    addr: SocketAddr,
}

impl FakeGithub {
    pub async fn start() -> FakeGithub {
        let faults = Faults::new(Platform::Api, ops::ALL);
        let state = Arc::new(Mutex::new(GithubState {
            issues: Vec::new(),
            comments: BTreeMap::new(),
            token: GITHUB_TOKEN.into(),
            search: Budget::new(30),
            core: Budget::new(5000),
            graphql: Budget::new(5000),
            discussions: Vec::new(),
            discussions_newest_first: false,
            invalid_search: false,
            secondary_limit: None,
            incomplete: false,
            backlog: None,
            requests: Vec::new(),
        }));
        // The router needs its own address for `Link` URLs: bind first.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new()
            .route("/search/issues", get(search))
            .route("/repos/{owner}/{repo}/issues/comments", get(comments))
            .route("/graphql", post(graphql))
            .with_state(Shared {
                state: state.clone(),
                faults: faults.clone(),
                addr,
            });
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FakeGithub {
            addr,
            state,
            faults,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next call of either route gets `fault`.
    pub fn fail_next(&self, fault: Fault) {
        self.faults.next(ANY, 1, fault);
    }

    pub fn requests(&self, path_prefix: &str) -> Vec<Seen> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    pub fn add_issue(&self, issue: Value) {
        self.state.lock().unwrap().issues.push(issue);
    }

    pub fn add_comment(&self, repo: &str, comment: Value) {
        self.state
            .lock()
            .unwrap()
            .comments
            .entry(repo.to_string())
            .or_default()
            .push(comment);
    }
}

pub fn iso(epoch: i64) -> String {
    DateTime::<Utc>::from_timestamp(epoch, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn user(login: &str, id: u64, kind: &str) -> Value {
    json!({
        "login": login, "id": id, "node_id": "MDQ6VXNlcjE=",
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "", "url": format!("https://api.github.com/users/{login}"),
        "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("https://api.github.com/users/{login}/followers"),
        "repos_url": format!("https://api.github.com/users/{login}/repos"),
        "type": kind, "site_admin": false
    })
}

/// An issue as search returns it: the fields of the docs' example item (`url`,
/// `repository_url`, `html_url`, `id`, `node_id`, `number`, `title`, `user`, `labels`,
/// `state`, `assignee`, `milestone`, `comments`, `created_at`, `updated_at`, `closed_at`,
/// `body` (Markdown, `null` when empty), `score`, `locked`, `author_association`,
/// `state_reason`, `reactions`).
pub fn gh_issue(
    id: u64,
    repo: &str,
    number: u64,
    created: i64,
    title: &str,
    body: Option<&str>,
) -> Value {
    json!({
        "url": format!("https://api.github.com/repos/{repo}/issues/{number}"),
        "repository_url": format!("https://api.github.com/repos/{repo}"),
        "labels_url": format!("https://api.github.com/repos/{repo}/issues/{number}/labels{{/name}}"),
        "comments_url": format!("https://api.github.com/repos/{repo}/issues/{number}/comments"),
        "events_url": format!("https://api.github.com/repos/{repo}/issues/{number}/events"),
        "html_url": format!("https://github.com/{repo}/issues/{number}"),
        "id": id, "node_id": "MDU6SXNzdWUzNTgwMg==", "number": number, "title": title,
        "user": user("Nick3C", 90254, "User"),
        "labels": [{"id": 4, "node_id": "MDU6TGFiZWw0", "url": format!("https://api.github.com/repos/{repo}/labels/bug"),
                    "name": "bug", "color": "ff0000", "default": true, "description": "Something isn't working"}],
        "state": "open", "locked": false, "assignee": null, "assignees": [], "milestone": null,
        "comments": 15, "created_at": iso(created), "updated_at": iso(created + 60),
        "closed_at": null, "author_association": "NONE", "active_lock_reason": null,
        "body": body, "score": 1.0, "state_reason": null,
        "reactions": {"url": format!("https://api.github.com/repos/{repo}/issues/{number}/reactions"),
                      "total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "hooray": 0, "confused": 0,
                      "heart": 0, "rocket": 0, "eyes": 0},
        "timeline_url": format!("https://api.github.com/repos/{repo}/issues/{number}/timeline"),
        "performed_via_github_app": null
    })
}

/// A pull request as search returns it: an issue with `pull_request` (docs' example item),
/// `draft`, and its `html_url` under `/pull/`.
pub fn gh_pull(
    id: u64,
    repo: &str,
    number: u64,
    created: i64,
    title: &str,
    body: Option<&str>,
) -> Value {
    let mut v = gh_issue(id, repo, number, created, title, body);
    v["html_url"] = json!(format!("https://github.com/{repo}/pull/{number}"));
    v["draft"] = json!(false);
    v["pull_request"] = json!({
        "url": format!("https://api.github.com/repos/{repo}/pulls/{number}"),
        "html_url": format!("https://github.com/{repo}/pull/{number}"),
        "diff_url": format!("https://github.com/{repo}/pull/{number}.diff"),
        "patch_url": format!("https://github.com/{repo}/pull/{number}.patch"),
        "merged_at": null
    });
    v
}

/// An issue comment as the repository listing returns it (docs' example: `id`, `node_id`,
/// `url`, `html_url` with `#issuecomment-{id}`, `body`, `user`, `created_at`, `updated_at`,
/// `issue_url`, `author_association`, `reactions`).
pub fn gh_comment(id: u64, repo: &str, issue: u64, created: i64, body: &str) -> Value {
    json!({
        "id": id, "node_id": "MDEyOklzc3VlQ29tbWVudDE=",
        "url": format!("https://api.github.com/repos/{repo}/issues/comments/{id}"),
        "html_url": format!("https://github.com/{repo}/issues/{issue}#issuecomment-{id}"),
        "body": body, "user": user("octocat", 1, "User"),
        "created_at": iso(created), "updated_at": iso(created),
        "issue_url": format!("https://api.github.com/repos/{repo}/issues/{issue}"),
        "author_association": "COLLABORATOR",
        "reactions": {"url": format!("https://api.github.com/repos/{repo}/issues/comments/{id}/reactions"),
                      "total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "hooray": 0, "confused": 0,
                      "heart": 0, "rocket": 0, "eyes": 0},
        "performed_via_github_app": null
    })
}

/// A discussion as the source's query asks for it: `id` (a node id), `url`, `title`,
/// `bodyText`, `createdAt`, `author { login }`.
pub fn gh_discussion(
    id: &str,
    repo: &str,
    number: u64,
    created: i64,
    title: &str,
    body: &str,
) -> Value {
    json!({
        "id": id,
        "url": format!("https://github.com/{repo}/discussions/{number}"),
        "title": title,
        "bodyText": body,
        "createdAt": iso(created),
        "author": {"login": "monalisa"}
    })
}

async fn graphql(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let req: Value = serde_json::from_str(&body).unwrap();
    let vars = &req["variables"];
    let query = vars["q"].as_str().unwrap_or("").to_string();
    let after = vars["after"].as_str().map(str::to_string);
    let mut seen = HashMap::new();
    seen.insert("q".to_string(), query.clone());
    seen.insert(
        "graphql".to_string(),
        req["query"].as_str().unwrap_or("").to_string(),
    );
    if let Some(a) = &after {
        seen.insert("after".to_string(), a.clone());
    }
    record(&state, "/graphql", &seen, &headers);
    if let Some(r) = fault(&state, ops::GRAPHQL).await {
        return r;
    }
    let mut s = state.state.lock().unwrap();
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => {
            return error(
                401,
                "This endpoint requires you to be authenticated.",
                "https://docs.github.com/graphql/guides/forming-calls-with-graphql#authenticating-with-graphql",
            )
        }
        Some(auth) if auth != format!("Bearer {}", s.token) => {
            return error(401, "Bad credentials", "https://docs.github.com/graphql")
        }
        Some(_) => {}
    }
    let json_reply = |v: Value| {
        (
            [("content-type", "application/json; charset=utf-8")],
            v.to_string(),
        )
            .into_response()
    };
    if s.graphql.remaining == 0 {
        let r = json_reply(json!({"errors": [{
            "type": "RATE_LIMITED",
            "code": "graphql_rate_limit",
            "message": "API rate limit already exceeded for user ID 1."
        }]}));
        return with_rate_headers(r, &s.graphql, "graphql");
    }
    s.graphql.remaining -= 1;
    let budget = s.graphql.clone();
    assert!(req["query"].as_str().unwrap().contains("type: DISCUSSION"));
    assert!(query.contains("sort:created-asc"), "{query}");
    let (lo, hi) = created_range(&query);
    let mut words = Vec::new();
    let mut repos = Vec::new();
    for t in query.split_whitespace() {
        if let Some(r) = t.strip_prefix("repo:") {
            repos.push(r.to_lowercase());
        } else if t != "OR"
            && !t.starts_with("created:")
            && !t.starts_with("sort:")
            && !t.starts_with("org:")
        {
            words.push(t.to_lowercase());
        }
    }
    let created = |d: &Value| {
        DateTime::parse_from_rfc3339(d["createdAt"].as_str().unwrap())
            .unwrap()
            .timestamp()
    };
    let mut hits: Vec<Value> = s
        .discussions
        .iter()
        .filter(|d| {
            let text = format!(
                "{} {}",
                d["title"].as_str().unwrap_or(""),
                d["bodyText"].as_str().unwrap_or("")
            )
            .to_lowercase();
            let url = d["url"].as_str().unwrap();
            let repo = url
                .trim_start_matches("https://github.com/")
                .split("/discussions/")
                .next()
                .unwrap()
                .to_lowercase();
            (lo..=hi).contains(&created(d))
                && (repos.is_empty() || repos.contains(&repo))
                && words.iter().any(|w| text.contains(w))
        })
        .cloned()
        .collect();
    hits.sort_by_key(|d| (created(d), d["id"].as_str().unwrap().to_string()));
    if s.discussions_newest_first {
        hits.reverse();
    }
    let total = hits.len();
    hits.truncate(1000);
    let first = vars["first"].as_u64().unwrap() as usize;
    let offset: usize = after
        .map(|a| {
            let raw = String::from_utf8(b64.decode(a).unwrap()).unwrap();
            raw.strip_prefix("cursor:").unwrap().parse().unwrap()
        })
        .unwrap_or(0);
    let nodes: Vec<Value> = hits.iter().skip(offset).take(first).cloned().collect();
    let end = offset + nodes.len();
    let r = json_reply(json!({"data": {"search": {
        "discussionCount": total,
        "pageInfo": {
            "hasNextPage": end < hits.len(),
            "endCursor": if nodes.is_empty() { Value::Null } else { json!(b64.encode(format!("cursor:{end}"))) }
        },
        "nodes": nodes
    }}}));
    with_rate_headers(r, &budget, "graphql")
}

fn record(state: &Shared, path: &str, q: &HashMap<String, String>, headers: &HeaderMap) {
    let headers = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    state.state.lock().unwrap().requests.push(Seen {
        path: path.to_string(),
        query: q.clone(),
        headers,
    });
}

async fn fault(state: &Shared, op: &str) -> Option<Response> {
    match state.faults.on_call(op, false) {
        None => None,
        Some(Some(Fault::Slow(hold))) => {
            tokio::time::sleep(hold).await;
            None
        }
        Some(f) => Some(faults::answer(Platform::Api, f, "").await),
    }
}

/// A JSON answer with GitHub's error shape.
fn error(status: u16, message: &str, doc: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json; charset=utf-8")],
        json!({"message": message, "documentation_url": doc, "status": status.to_string()})
            .to_string(),
    )
        .into_response()
}

fn with_rate_headers(mut r: Response, b: &Budget, resource: &str) -> Response {
    let h = r.headers_mut();
    let mut set = |k: &'static str, v: String| {
        h.insert(k, HeaderValue::from_str(&v).unwrap());
    };
    set("x-ratelimit-limit", b.limit.to_string());
    set("x-ratelimit-remaining", b.remaining.to_string());
    set("x-ratelimit-reset", b.reset.to_string());
    set("x-ratelimit-used", (b.limit - b.remaining).to_string());
    set("x-ratelimit-resource", resource.to_string());
    set("x-github-api-version-selected", "2022-11-28".to_string());
    r
}

/// Auth, secondary and primary limits, in GitHub's order; `Ok` with the budget after this
/// request when the call may proceed.
fn gate(state: &Shared, headers: &HeaderMap, search: bool) -> Result<Budget, Box<Response>> {
    let mut s = state.state.lock().unwrap();
    let resource = if search { "search" } else { "core" };
    if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        if auth != format!("Bearer {}", s.token) {
            return Err(Box::new(error(
                401,
                "Bad credentials",
                "https://docs.github.com/rest",
            )));
        }
    }
    if let Some(secs) = s.secondary_limit.take() {
        let mut r = error(
            403,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 1234:5678:9ABC.",
            "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
        );
        r.headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
        return Err(Box::new(r));
    }
    let budget = if search { &mut s.search } else { &mut s.core };
    if budget.remaining == 0 {
        let r = error(
            403,
            "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID 1234:5678:9ABC.",
            "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
        );
        return Err(Box::new(with_rate_headers(r, budget, resource)));
    }
    budget.remaining -= 1;
    Ok(budget.clone())
}

/// `created:>=T`, `created:A..B`: the range it names, inclusive.
fn created_range(q: &str) -> (i64, i64) {
    let parse = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp();
    let c = q
        .split_whitespace()
        .find_map(|t| t.strip_prefix("created:"))
        .expect("the source always sends created:");
    if let Some(from) = c.strip_prefix(">=") {
        (parse(from), i64::MAX)
    } else {
        let (a, b) = c.split_once("..").expect("created:A..B");
        (parse(a), parse(b))
    }
}

async fn search(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    record(&state, "/search/issues", &q, &headers);
    if let Some(r) = fault(&state, ops::SEARCH).await {
        return r;
    }
    let budget = match gate(&state, &headers, true) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let mut s = state.state.lock().unwrap();
    if std::mem::take(&mut s.invalid_search) {
        let r = (
            StatusCode::UNPROCESSABLE_ENTITY,
            [("content-type", "application/json; charset=utf-8")],
            json!({
                "message": "Validation Failed",
                "errors": [{
                    "message": "The listed users and repositories cannot be searched either because the resources do not exist or you do not have permission to view them.",
                    "resource": "Search", "field": "q", "code": "invalid"
                }],
                "documentation_url": "https://docs.github.com/v3/search/",
                "status": "422"
            })
            .to_string(),
        )
            .into_response();
        return with_rate_headers(r, &budget, "search");
    }
    let query = q.get("q").cloned().unwrap_or_default();
    let (lo, hi) = created_range(&query);
    let mut words = Vec::new();
    let mut repos = Vec::new();
    let mut orgs = Vec::new();
    for t in query.split_whitespace() {
        if let Some(r) = t.strip_prefix("repo:") {
            repos.push(r.to_lowercase());
        } else if let Some(o) = t.strip_prefix("org:") {
            orgs.push(o.to_lowercase());
        } else if t != "OR" && !t.starts_with("created:") {
            words.push(t.to_lowercase());
        }
    }
    let mut hits: Vec<Value> = s
        .issues
        .iter()
        .filter(|i| {
            let created = DateTime::parse_from_rfc3339(i["created_at"].as_str().unwrap())
                .unwrap()
                .timestamp();
            let text = format!(
                "{} {}",
                i["title"].as_str().unwrap_or(""),
                i["body"].as_str().unwrap_or("")
            )
            .to_lowercase();
            let repo = i["repository_url"]
                .as_str()
                .unwrap()
                .rsplitn(3, '/')
                .take(2)
                .collect::<Vec<_>>();
            let full = format!("{}/{}", repo[1], repo[0]).to_lowercase();
            let scoped = (repos.is_empty() && orgs.is_empty())
                || repos.contains(&full)
                || orgs.contains(&repo[1].to_lowercase());
            (lo..=hi).contains(&created) && scoped && words.iter().any(|w| text.contains(w))
        })
        .cloned()
        .collect();
    let mut total = hits.len();
    if let Some(b) = &s.backlog {
        let full = "a/b".to_string();
        let scoped = (repos.is_empty() && orgs.is_empty())
            || repos.contains(&full)
            || orgs.contains(&"a".to_string());
        if scoped && words.iter().any(|w| "acme backlog".contains(w.as_str())) {
            let r = b.range(lo, hi);
            total += (r.end - r.start) as usize;
            // Only the first 1,000 can be paged to.
            hits.extend((r.start..r.end.min(r.start + 1000)).map(|i| b.issue(i)));
        }
    }
    hits.sort_by_key(|i| {
        (
            i["created_at"].as_str().unwrap().to_string(),
            i["id"].as_u64(),
        )
    });
    let per_page: usize = q.get("per_page").and_then(|v| v.parse().ok()).unwrap_or(30);
    let page: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1);
    if page * per_page > 1000 && (page - 1) * per_page >= 1000 {
        let r = error(
            422,
            "Only the first 1000 search results are available",
            "https://docs.github.com/v3/search/",
        );
        return with_rate_headers(r, &budget, "search");
    }
    hits.truncate(1000);
    let items: Vec<Value> = hits
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let r = (
        [("content-type", "application/json; charset=utf-8")],
        json!({"total_count": total, "incomplete_results": s.incomplete, "items": items})
            .to_string(),
    )
        .into_response();
    with_rate_headers(r, &budget, "search")
}

async fn comments(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = format!("/repos/{owner}/{repo}/issues/comments");
    record(&state, &path, &q, &headers);
    if let Some(r) = fault(&state, ops::COMMENTS).await {
        return r;
    }
    let budget = match gate(&state, &headers, false) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let s = state.state.lock().unwrap();
    let Some(all) = s.comments.get(&format!("{owner}/{repo}")) else {
        let r = error(
            404,
            "Not Found",
            "https://docs.github.com/rest/issues/comments#list-issue-comments-for-a-repository",
        );
        return with_rate_headers(r, &budget, "core");
    };
    let since = q
        .get("since")
        .map(|s| DateTime::parse_from_rfc3339(s).unwrap().timestamp())
        .unwrap_or(i64::MIN);
    let ts = |c: &Value, k: &str| {
        DateTime::parse_from_rfc3339(c[k].as_str().unwrap())
            .unwrap()
            .timestamp()
    };
    let mut list: Vec<Value> = all
        .iter()
        .filter(|c| ts(c, "updated_at") >= since)
        .cloned()
        .collect();
    assert_eq!(q.get("sort").map(String::as_str), Some("created"));
    let asc = q.get("direction").map(String::as_str) == Some("asc");
    list.sort_by_key(|c| (ts(c, "created_at"), c["id"].as_u64()));
    if !asc {
        list.reverse();
    }
    let per_page: usize = q.get("per_page").and_then(|v| v.parse().ok()).unwrap_or(30);
    let page: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1);
    let pages = list.len().div_ceil(per_page).max(1);
    let items: Vec<Value> = list
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut r = (
        [("content-type", "application/json; charset=utf-8")],
        Value::Array(items).to_string(),
    )
        .into_response();
    if page < pages {
        // GitHub's Link: the same query with `page` replaced.
        let base: Vec<&str> = raw
            .as_deref()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.starts_with("page=") && !p.is_empty())
            .collect();
        let link = |p: usize| format!("<http://{}{path}?{}&page={p}>", state.addr, base.join("&"));
        let value = format!(
            "{}; rel=\"next\", {}; rel=\"last\"",
            link(page + 1),
            link(pages)
        );
        r.headers_mut()
            .insert("link", HeaderValue::from_str(&value).unwrap());
    }
    with_rate_headers(r, &budget, "core")
}
