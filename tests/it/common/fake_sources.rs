//! Fake public APIs for the source tests, on 127.0.0.1 with OS-chosen ports: Algolia HN
//! search, Mastodon timelines and streaming (SSE), Reddit OAuth and listings, Bluesky's XRPC
//! sign-in and post search, and a Jetstream websocket. Response shapes follow each API's
//! documentation. Each fake records requests and takes injected faults through the same
//! layer as the chat fakes (`faults.rs`: 429s with headers, 5xx, malformed or cut-off
//! bodies, hangs); the Jetstream fake can drop its connections.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

use super::faults::{self, Fault, Faults, Platform, ANY};

/// Operation keys of the source APIs for fault injection and the call log.
pub mod ops {
    pub const HN_SEARCH: &str = "GET /api/v1/search_by_date";
    pub const MASTODON_TIMELINE: &str = "GET /api/v1/timelines/tag/{tag}";
    pub const MASTODON_STREAM: &str = "GET /api/v1/streaming/hashtag";
    pub const REDDIT_TOKEN: &str = "POST /api/v1/access_token";
    pub const REDDIT_SEARCH: &str = "GET /r/{subs}/search";
    pub const REDDIT_COMMENTS: &str = "GET /r/{subs}/comments";
    pub const BSKY_SEARCH_POSTS: &str = "GET /xrpc/app.bsky.feed.searchPosts";
    pub const BSKY_GET_PROFILES: &str = "GET /xrpc/app.bsky.actor.getProfiles";
    pub const HN_USER: &str = "GET /v0/user/{id}";
    pub const REDDIT_ABOUT: &str = "GET /r/{sub}/about";
    pub const ALL: &[&str] = &[
        HN_SEARCH,
        MASTODON_TIMELINE,
        MASTODON_STREAM,
        REDDIT_TOKEN,
        REDDIT_SEARCH,
        REDDIT_COMMENTS,
        BSKY_SEARCH_POSTS,
        BSKY_GET_PROFILES,
        HN_USER,
        REDDIT_ABOUT,
    ];
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HashMap<String, String>,
}

#[derive(Default)]
pub struct ApiState {
    pub hn_hits: Vec<Value>,
    /// Mastodon statuses per tag, oldest first.
    pub statuses: BTreeMap<String, Vec<Value>>,
    pub reddit_posts: Vec<Value>,
    pub reddit_comments: Vec<Value>,
    pub reddit_client: (String, String),
    pub token_ttl_secs: u64,
    pub tokens_issued: u32,
    /// The token currently valid; anything else gets 401.
    pub valid_token: Option<String>,
    /// Sent as `x-ratelimit-remaining` on Reddit listings.
    pub ratelimit_remaining: f64,
    pub ratelimit_reset: u64,
    pub requests: Vec<Seen>,
    pub sse: Option<mpsc::UnboundedSender<Bytes>>,
    pub sse_connections: u32,
    pub mastodon_token: Option<String>,
    pub bsky: BskyState,
    /// Public AppView profiles (`profileViewDetailed`) by DID, for `getProfiles`.
    pub bsky_profiles: HashMap<String, Value>,
    /// HN users (`/v0/user/{id}.json`) by id; others answer `null`, as the real API does.
    pub hn_users: HashMap<String, Value>,
    /// Subreddit members by name, for `/r/{sub}/about`; others answer 404.
    pub reddit_subscribers: HashMap<String, u64>,
}

/// The fake Bluesky PDS: one account, its session tokens, and the posts search finds.
#[derive(Default)]
pub struct BskyState {
    /// `postView`s, in any order; search sorts them newest first by `sortAt`.
    pub posts: Vec<Value>,
    /// The account: (handle, did, app password).
    pub account: (String, String, String),
    pub sessions_created: u32,
    pub refreshes: u32,
    /// Bumped for every token pair issued, so tokens are never reused.
    pub tokens_issued: u32,
    pub access: Option<String>,
    pub refresh: Option<String>,
    /// The current access token has expired: searches get 400 `ExpiredToken`.
    pub access_expired: bool,
    /// Sent as `ratelimit-remaining` on search answers.
    pub ratelimit_remaining: u64,
}

#[derive(Clone)]
pub struct FakeApi {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<ApiState>>,
    /// Injected faults and the log of the calls that consult them (the routes in [`ops`];
    /// Bluesky sign-in takes none).
    pub faults: Faults,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<ApiState>>,
    faults: Faults,
}

impl std::ops::Deref for Shared {
    type Target = Mutex<ApiState>;
    fn deref(&self) -> &Mutex<ApiState> {
        &self.state
    }
}

impl FakeApi {
    pub async fn start() -> FakeApi {
        let faults = Faults::new(Platform::Api, ops::ALL);
        let state = Arc::new(Mutex::new(ApiState {
            token_ttl_secs: 3600,
            ratelimit_remaining: 600.0,
            ratelimit_reset: 300,
            reddit_client: ("client-id".into(), "client-secret-xyz".into()),
            bsky: BskyState {
                account: (
                    BSKY_HANDLE.into(),
                    BSKY_DID.into(),
                    BSKY_APP_PASSWORD.into(),
                ),
                ratelimit_remaining: 2999,
                ..Default::default()
            },
            ..Default::default()
        }));
        let router = Router::new()
            .route("/api/v1/search_by_date", get(hn_search))
            .route("/api/v1/timelines/tag/{tag}", get(mastodon_timeline))
            .route("/api/v1/streaming/hashtag", get(mastodon_stream))
            .route("/api/v1/access_token", post(reddit_token))
            .route("/r/{subs}/search", get(reddit_search))
            .route("/r/{subs}/comments", get(reddit_comments))
            .route(
                "/xrpc/com.atproto.server.createSession",
                post(bsky_create_session),
            )
            .route(
                "/xrpc/com.atproto.server.refreshSession",
                post(bsky_refresh_session),
            )
            .route("/xrpc/app.bsky.feed.searchPosts", get(bsky_search_posts))
            .route("/xrpc/app.bsky.actor.getProfiles", get(bsky_get_profiles))
            .route("/v0/user/{file}", get(hn_user_route))
            .route("/r/{subs}/about", get(reddit_about))
            .with_state(Shared {
                state: state.clone(),
                faults: faults.clone(),
            });
        FakeApi {
            addr: super::serve(router).await,
            state,
            faults,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next call of any route in [`ops`] gets `fault`.
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

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// Sends raw bytes down the open Mastodon stream; false if none is open.
    pub fn sse_send(&self, raw: &str) -> bool {
        let s = self.state.lock().unwrap();
        s.sse
            .as_ref()
            .is_some_and(|tx| tx.send(Bytes::from(raw.to_string())).is_ok())
    }

    /// Ends the open Mastodon stream, as a restarting server would.
    pub fn sse_drop(&self) {
        self.state.lock().unwrap().sse = None;
    }

    pub fn sse_connections(&self) -> u32 {
        self.state.lock().unwrap().sse_connections
    }

    /// The XRPC base to configure as a bluesky source's `search_url`.
    pub fn xrpc_url(&self) -> String {
        format!("http://{}/xrpc", self.addr)
    }

    pub fn bsky(&self) -> std::sync::MutexGuard<'_, ApiState> {
        self.state.lock().unwrap()
    }

    pub fn bsky_add(&self, post: Value) {
        self.state.lock().unwrap().bsky.posts.push(post);
    }

    /// The next searchPosts answer gets `fault` (sign-in is unaffected).
    pub fn bsky_fail_search(&self, fault: Fault) {
        self.faults.next(ops::BSKY_SEARCH_POSTS, 1, fault);
    }

    /// searchPosts requests seen so far.
    pub fn bsky_searches(&self) -> Vec<Seen> {
        self.requests("/xrpc/app.bsky.feed.searchPosts")
    }
}

pub const BSKY_HANDLE: &str = "brand.bsky.social";
pub const BSKY_DID: &str = "did:plc:brandbrandbrandbrand0001";
pub const BSKY_APP_PASSWORD: &str = "abcd-efgh-ijkl-mnop";

fn record(state: &Shared, path: &str, q: &HashMap<String, String>, headers: &HeaderMap) {
    let headers = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    state.lock().unwrap().requests.push(Seen {
        path: path.to_string(),
        query: q.clone(),
        headers,
    });
}

/// The fault injected for this call of `op`, if any, answered; a slow call is held here
/// and then answered by the handler.
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

fn json_response(v: Value) -> Response {
    ([("content-type", "application/json")], v.to_string()).into_response()
}

// ---------- Algolia HN ----------

/// A hit in the shape `search_by_date` returns: a story when `title` is set, else a comment.
pub fn hn_hit(id: u64, created_at_i: i64, title: Option<&str>, text: &str) -> Value {
    match title {
        Some(t) => json!({
            "created_at": chrono::DateTime::from_timestamp(created_at_i, 0).unwrap().to_rfc3339(),
            "created_at_i": created_at_i, "objectID": id.to_string(), "author": "dana",
            "title": t, "url": format!("https://example.com/{id}"), "story_text": text,
            "comment_text": null, "points": 3, "num_comments": 0,
            "_tags": ["story", "author_dana", format!("story_{id}")],
        }),
        None => json!({
            "created_at": chrono::DateTime::from_timestamp(created_at_i, 0).unwrap().to_rfc3339(),
            "created_at_i": created_at_i, "objectID": id.to_string(), "author": "kim",
            "comment_text": format!("<p>{text}</p>"), "story_id": 1, "parent_id": 1,
            "story_title": "Some story", "story_url": "https://example.com/s",
            "_tags": ["comment", "author_kim", "story_1"],
        }),
    }
}

async fn hn_search(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    record(&state, "/api/v1/search_by_date", &q, &headers);
    if let Some(r) = fault(&state, ops::HN_SEARCH).await {
        return r;
    }
    let hpp: usize = q
        .get("hitsPerPage")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let page: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(0);
    let filters = q.get("numericFilters").cloned().unwrap_or_default();
    let mut hits: Vec<Value> = state
        .lock()
        .unwrap()
        .hn_hits
        .iter()
        .filter(|h| {
            let t = h["created_at_i"].as_i64().unwrap();
            filters.split(',').filter(|f| !f.is_empty()).all(|f| {
                let f = f.trim_start_matches("created_at_i");
                let (op, n) = if let Some(n) = f.strip_prefix(">=") {
                    (">=", n)
                } else if let Some(n) = f.strip_prefix("<=") {
                    ("<=", n)
                } else if let Some(n) = f.strip_prefix('>') {
                    (">", n)
                } else {
                    ("<", f.trim_start_matches('<'))
                };
                let n: i64 = n.parse().unwrap();
                match op {
                    ">=" => t >= n,
                    "<=" => t <= n,
                    ">" => t > n,
                    _ => t < n,
                }
            })
        })
        .cloned()
        .collect();
    hits.sort_by_key(|h| std::cmp::Reverse(h["created_at_i"].as_i64().unwrap()));
    let nb_hits = hits.len();
    // Algolia's cap: only the first 1,000 hits can be paged to.
    hits.truncate(1000);
    let nb_pages = hits.len().div_ceil(hpp);
    let slice: Vec<Value> = hits.into_iter().skip(page * hpp).take(hpp).collect();
    json_response(json!({
        "hits": slice, "nbHits": nb_hits, "page": page, "nbPages": nb_pages,
        "hitsPerPage": hpp, "exhaustiveNbHits": true, "query": q.get("query"),
        "params": "", "processingTimeMS": 1,
    }))
}

/// A user in the shape the official HN API returns (github.com/HackerNews/API, "Users":
/// `id`, `created`, `karma`, `about`, `submitted`).
pub fn hn_user(id: &str, karma: u64) -> Value {
    json!({"id": id, "created": 1173923446, "karma": karma,
           "about": "This is a test", "submitted": [8265435, 8168423, 4289]})
}

async fn hn_user_route(
    State(state): State<Shared>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    record(
        &state,
        &format!("/v0/user/{file}"),
        &HashMap::new(),
        &headers,
    );
    if let Some(r) = fault(&state, ops::HN_USER).await {
        return r;
    }
    let Some(id) = file.strip_suffix(".json") else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    // An unknown user is `null` with 200, as Firebase answers.
    let user = state.lock().unwrap().hn_users.get(id).cloned();
    json_response(user.unwrap_or(Value::Null))
}

// ---------- Mastodon ----------

/// A status in the shape the Mastodon REST API returns.
pub fn status(id: u64, text: &str, lang: &str, followers: u64) -> Value {
    json!({
        "id": id.to_string(), "created_at": "2024-05-01T10:00:00.000Z", "in_reply_to_id": null,
        "in_reply_to_account_id": null, "sensitive": false, "spoiler_text": "",
        "visibility": "public", "language": lang,
        "uri": format!("https://remote.example/users/ann/statuses/{id}"),
        "url": format!("https://remote.example/@ann/{id}"),
        "replies_count": 0, "reblogs_count": 0, "favourites_count": 0,
        "content": format!("<p>{text}</p>"), "reblog": null,
        "account": {"id": "7", "username": "ann", "acct": "ann@remote.example",
            "display_name": "Ann", "followers_count": followers,
            "url": "https://remote.example/@ann"},
        "media_attachments": [], "mentions": [], "tags": [], "emojis": [], "card": null, "poll": null,
    })
}

async fn mastodon_timeline(
    State(state): State<Shared>,
    Path(tag): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    record(
        &state,
        &format!("/api/v1/timelines/tag/{tag}"),
        &q,
        &headers,
    );
    if let Some(r) = fault(&state, ops::MASTODON_TIMELINE).await {
        return r;
    }
    let limit: usize = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(20);
    let id = |v: &Value| v["id"].as_str().unwrap().parse::<u64>().unwrap();
    let all = state
        .lock()
        .unwrap()
        .statuses
        .get(&tag)
        .cloned()
        .unwrap_or_default();
    let mut page: Vec<Value> =
        if let Some(min) = q.get("min_id").and_then(|v| v.parse::<u64>().ok()) {
            // The statuses right after min_id, oldest first, at most `limit`.
            all.into_iter()
                .filter(|s| id(s) > min)
                .take(limit)
                .collect()
        } else {
            let since = q
                .get("since_id")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            let newer: Vec<Value> = all.into_iter().filter(|s| id(s) > since).collect();
            newer[newer.len().saturating_sub(limit)..].to_vec()
        };
    page.reverse(); // newest first, as Mastodon answers
    json_response(Value::Array(page))
}

async fn mastodon_stream(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    record(&state, "/api/v1/streaming/hashtag", &q, &headers);
    let expected = state.lock().unwrap().mastodon_token.clone();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if expected.is_some_and(|t| auth != Some(format!("Bearer {t}"))) {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"Missing access token"}"#,
        )
            .into_response();
    }
    if let Some(r) = fault(&state, ops::MASTODON_STREAM).await {
        return r;
    }
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let _ = tx.send(Bytes::from_static(b":)\n"));
    {
        let mut s = state.lock().unwrap();
        s.sse = Some(tx);
        s.sse_connections += 1;
    }
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, std::io::Error>(b), rx))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

// ---------- Reddit ----------

/// A post (`t3`) in the shape Reddit's listings return.
pub fn reddit_post(id: &str, created_utc: f64, title: &str, selftext: &str) -> Value {
    json!({"kind": "t3", "data": {
        "id": id, "name": format!("t3_{id}"), "title": title, "selftext": selftext,
        "author": "u_dana", "subreddit": "routers", "subreddit_subscribers": 48_000,
        "created_utc": created_utc,
        "permalink": format!("/r/routers/comments/{id}/some_title/"),
        "url": format!("https://www.reddit.com/r/routers/comments/{id}/some_title/"),
        "over_18": false, "score": 5, "num_comments": 1,
    }})
}

/// A comment (`t1`) in the shape Reddit's listings return.
pub fn reddit_comment(id: &str, created_utc: f64, body: &str) -> Value {
    json!({"kind": "t1", "data": {
        "id": id, "name": format!("t1_{id}"), "body": body, "author": "u_kim",
        "subreddit": "routers", "created_utc": created_utc, "link_id": "t3_zzz",
        "link_title": "A thread", "permalink": format!("/r/routers/comments/zzz/a_thread/{id}/"),
        "score": 1,
    }})
}

async fn reddit_token(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    record(&state, "/api/v1/access_token", &HashMap::new(), &headers);
    if let Some(r) = fault(&state, ops::REDDIT_TOKEN).await {
        return r;
    }
    let mut s = state.lock().unwrap();
    use base64_check::expected_basic;
    let want = expected_basic(&s.reddit_client.0, &s.reddit_client.1);
    let got = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if got != want || !String::from_utf8_lossy(&body).contains("grant_type=client_credentials") {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"message":"Unauthorized","error":401}"#,
        )
            .into_response();
    }
    s.tokens_issued += 1;
    let token = format!("token-{}", s.tokens_issued);
    s.valid_token = Some(token.clone());
    json_response(json!({
        "access_token": token, "token_type": "bearer",
        "expires_in": s.token_ttl_secs, "scope": "*",
    }))
}

mod base64_check {
    /// `Basic base64(id:secret)`, written out so the fake does not share the client's encoder.
    pub fn expected_basic(id: &str, secret: &str) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let input = format!("{id}:{secret}");
        let b = input.as_bytes();
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = (chunk[0] as u32) << 16
                | (*chunk.get(1).unwrap_or(&0) as u32) << 8
                | *chunk.get(2).unwrap_or(&0) as u32;
            out.push(T[(n >> 18) as usize & 63] as char);
            out.push(T[(n >> 12) as usize & 63] as char);
            out.push(if chunk.len() > 1 {
                T[(n >> 6) as usize & 63] as char
            } else {
                '='
            });
            out.push(if chunk.len() > 2 {
                T[n as usize & 63] as char
            } else {
                '='
            });
        }
        format!("Basic {out}")
    }
}

/// Reddit's 401 answer when the request lacks the bearer token the fake issued.
fn reddit_unauthorized(s: &ApiState, headers: &HeaderMap) -> Option<Response> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    s.valid_token
        .as_ref()
        .is_none_or(|t| auth != format!("Bearer {t}"))
        .then(|| {
            (
                StatusCode::UNAUTHORIZED,
                r#"{"message":"Unauthorized","error":401}"#,
            )
                .into_response()
        })
}

fn reddit_listing(
    state: &Shared,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    items: Vec<Value>,
) -> Response {
    let s = state.lock().unwrap();
    if let Some(refused) = reddit_unauthorized(&s, headers) {
        return refused;
    }
    let limit: usize = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(25);
    let mut items = items;
    items.sort_by(|a, b| {
        b["data"]["created_utc"]
            .as_f64()
            .partial_cmp(&a["data"]["created_utc"].as_f64())
            .unwrap()
    });
    let start = match q.get("after") {
        Some(after) => items
            .iter()
            .position(|i| i["data"]["name"] == after.as_str())
            .map_or(items.len(), |p| p + 1),
        None => 0,
    };
    let page: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
    let after = (start + page.len() < items.len())
        .then(|| page.last().map(|p| p["data"]["name"].clone()))
        .flatten();
    let body = json!({"kind": "Listing", "data": {
        "after": after, "before": null, "dist": page.len(), "modhash": "", "children": page,
    }});
    let mut r = json_response(body);
    let h = r.headers_mut();
    h.insert(
        "x-ratelimit-remaining",
        format!("{:.1}", s.ratelimit_remaining).parse().unwrap(),
    );
    h.insert("x-ratelimit-used", "1".parse().unwrap());
    h.insert(
        "x-ratelimit-reset",
        s.ratelimit_reset.to_string().parse().unwrap(),
    );
    r
}

async fn reddit_search(
    State(state): State<Shared>,
    Path(subs): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    record(&state, &format!("/r/{subs}/search"), &q, &headers);
    if let Some(r) = fault(&state, ops::REDDIT_SEARCH).await {
        return r;
    }
    let needle = q.get("q").cloned().unwrap_or_default().to_lowercase();
    let posts: Vec<Value> = state
        .lock()
        .unwrap()
        .reddit_posts
        .iter()
        .filter(|p| {
            let d = &p["data"];
            format!("{} {}", d["title"], d["selftext"])
                .to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .any(|w| needle.split_whitespace().any(|n| n == w))
        })
        .cloned()
        .collect();
    reddit_listing(&state, &headers, &q, posts)
}

async fn reddit_comments(
    State(state): State<Shared>,
    Path(subs): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    record(&state, &format!("/r/{subs}/comments"), &q, &headers);
    if let Some(r) = fault(&state, ops::REDDIT_COMMENTS).await {
        return r;
    }
    let comments = state.lock().unwrap().reddit_comments.clone();
    reddit_listing(&state, &headers, &q, comments)
}

/// `GET /r/{sub}/about`: a `t5` thing with `subscribers` (Reddit API docs), 404 for a
/// subreddit it does not know.
async fn reddit_about(
    State(state): State<Shared>,
    Path(sub): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    record(&state, &format!("/r/{sub}/about"), &q, &headers);
    if let Some(r) = fault(&state, ops::REDDIT_ABOUT).await {
        return r;
    }
    let s = state.lock().unwrap();
    if let Some(refused) = reddit_unauthorized(&s, &headers) {
        return refused;
    }
    match s.reddit_subscribers.get(&sub.to_lowercase()) {
        Some(n) => json_response(json!({"kind": "t5", "data": {
            "display_name": sub, "subscribers": n, "public_description": "",
            "subreddit_type": "public", "url": format!("/r/{sub}/"),
        }})),
        None => (
            StatusCode::NOT_FOUND,
            r#"{"message":"Not Found","error":404}"#,
        )
            .into_response(),
    }
}

// ---------- Bluesky XRPC (sign-in and search) ----------

/// A `profileViewDetailed` as the public AppView's `getProfiles` returns it (lexicon
/// app.bsky.actor.defs#profileViewDetailed; example values from docs.bsky.app).
pub fn bsky_profile(did: &str, handle: &str, followers: u64) -> Value {
    json!({"did": did, "handle": handle, "displayName": "Someone",
           "avatar": "https://cdn.bsky.app/img/avatar/plain/x/y@jpeg",
           "associated": {"lists": 0, "feedgens": 0, "starterPacks": 0, "labeler": false},
           "indexedAt": "2024-01-25T23:46:46.000Z", "createdAt": "2023-04-12T04:53:57.057Z",
           "followersCount": followers, "followsCount": 12, "postsCount": 340,
           "labels": []})
}

/// `app.bsky.actor.getProfiles?actors=…&actors=…`: the known actors' profiles; unknown ones
/// are left out (not an error); more than 25 actors is 400 `InvalidRequest`, as the lexicon's
/// `maxLength` makes the AppView answer. No account needed.
async fn bsky_get_profiles(
    State(state): State<Shared>,
    headers: HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let actors: Vec<String> = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "actors")
        .map(|(_, v)| v.into_owned())
        .collect();
    let mut q = HashMap::new();
    q.insert("actors".to_string(), actors.join(","));
    record(&state, "/xrpc/app.bsky.actor.getProfiles", &q, &headers);
    if let Some(r) = fault(&state, ops::BSKY_GET_PROFILES).await {
        return r;
    }
    if actors.is_empty() || actors.len() > 25 {
        return xrpc_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Error: actors must not have more than 25 elements",
        );
    }
    let s = state.lock().unwrap();
    let profiles: Vec<Value> = actors
        .iter()
        .filter_map(|a| s.bsky_profiles.get(a).cloned())
        .collect();
    json_response(json!({ "profiles": profiles }))
}

/// A `postView` in the shape `app.bsky.feed.searchPosts` returns, created at `created_at`
/// (RFC 3339) and indexed a second later.
pub fn bsky_post(did: &str, handle: &str, rkey: &str, created_at: &str, text: &str) -> Value {
    let indexed =
        chrono::DateTime::parse_from_rfc3339(created_at).unwrap() + chrono::Duration::seconds(1);
    json!({
        "uri": format!("at://{did}/app.bsky.feed.post/{rkey}"),
        "cid": "bafyreidwaivazkwu67xztlmuobx35hs2lnfh3kolmgfmucldvhd3sgzcqi",
        "author": {"did": did, "handle": handle, "displayName": "Ann Example",
            "avatar": "https://cdn.bsky.app/img/avatar/plain/x/y@jpeg",
            "viewer": {"muted": false, "blockedBy": false}, "labels": [],
            "createdAt": "2023-05-01T10:00:00.000Z"},
        "record": {"$type": "app.bsky.feed.post", "createdAt": created_at,
            "langs": ["en"], "text": text},
        "replyCount": 0, "repostCount": 0, "likeCount": 3, "quoteCount": 0,
        "indexedAt": indexed.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "viewer": {"threadMuted": false, "embeddingDisabled": false},
        "labels": [],
    })
}

fn bsky_session_reply(s: &mut BskyState) -> Response {
    s.tokens_issued += 1;
    let access = format!("eyJhbGciOi.access-{}.sig", s.tokens_issued);
    let refresh = format!("eyJhbGciOi.refresh-{}.sig", s.tokens_issued);
    s.access = Some(access.clone());
    s.refresh = Some(refresh.clone());
    s.access_expired = false;
    json_response(json!({
        "accessJwt": access, "refreshJwt": refresh,
        "handle": s.account.0, "did": s.account.1,
        "email": "pr@brand.example", "emailConfirmed": true, "emailAuthFactor": false,
        "active": true,
    }))
}

fn xrpc_error(status: StatusCode, error: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"error": error, "message": message}).to_string(),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_string)
}

async fn bsky_create_session(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(
        &state,
        "/xrpc/com.atproto.server.createSession",
        &HashMap::new(),
        &headers,
    );
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut guard = state.lock().unwrap();
    let s = &mut guard.bsky;
    let identifier = body["identifier"].as_str().unwrap_or("");
    let password = body["password"].as_str().unwrap_or("");
    let known = identifier == s.account.0 || identifier == s.account.1;
    if !known || password != s.account.2 {
        return xrpc_error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationRequired",
            "Invalid identifier or password",
        );
    }
    s.sessions_created += 1;
    bsky_session_reply(s)
}

async fn bsky_refresh_session(State(state): State<Shared>, headers: HeaderMap) -> Response {
    record(
        &state,
        "/xrpc/com.atproto.server.refreshSession",
        &HashMap::new(),
        &headers,
    );
    let mut guard = state.lock().unwrap();
    let s = &mut guard.bsky;
    if bearer(&headers).is_none() || bearer(&headers) != s.refresh {
        return xrpc_error(
            StatusCode::BAD_REQUEST,
            "ExpiredToken",
            "Token has been revoked",
        );
    }
    s.refreshes += 1;
    bsky_session_reply(s)
}

fn bsky_sort_at(post: &Value) -> chrono::DateTime<chrono::Utc> {
    let parse = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    parse(&post["record"]["createdAt"]).min(parse(&post["indexedAt"]))
}

async fn bsky_search_posts(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    record(&state, "/xrpc/app.bsky.feed.searchPosts", &q, &headers);
    let (posts, remaining) = {
        let guard = state.lock().unwrap();
        // (Cloned whole so the lock is not held while answering.)
        let s = &guard.bsky;
        if bearer(&headers).is_none() || bearer(&headers) != s.access {
            return xrpc_error(
                StatusCode::UNAUTHORIZED,
                "AuthenticationRequired",
                "Authentication Required",
            );
        }
        if s.access_expired {
            return xrpc_error(StatusCode::BAD_REQUEST, "ExpiredToken", "Token has expired");
        }
        (s.posts.clone(), s.ratelimit_remaining)
    };
    if let Some(r) = fault(&state, ops::BSKY_SEARCH_POSTS).await {
        return r;
    }
    let Some(query) = q.get("q") else {
        return xrpc_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Error: Params must have the property \"q\"",
        );
    };
    // Words must all appear (case-insensitive, whole words); quotes make a phrase of one word.
    let words: Vec<String> = query
        .trim_matches('"')
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let time = |k: &str| {
        q.get(k).map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .unwrap()
                .with_timezone(&chrono::Utc)
        })
    };
    let (since, until) = (time("since"), time("until"));
    let mut keyed: Vec<(chrono::DateTime<chrono::Utc>, &Value)> = posts
        .iter()
        .filter(|p| {
            let text = p["record"]["text"].as_str().unwrap_or("").to_lowercase();
            let tokens: Vec<&str> = text.split(|c: char| !c.is_alphanumeric()).collect();
            words.iter().all(|w| tokens.contains(&w.as_str()))
        })
        .map(|p| (bsky_sort_at(p), p))
        .filter(|(at, _)| since.is_none_or(|s| *at >= s) && until.is_none_or(|u| *at < u))
        .collect();
    // Newest first, as sort=latest answers.
    keyed.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| b.1["uri"].as_str().cmp(&a.1["uri"].as_str()))
    });
    let hits: Vec<&Value> = keyed.into_iter().map(|(_, p)| p).collect();
    let limit: usize = q
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(25)
        .min(100);
    let offset: usize = q.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let total = hits.len();
    let page: Vec<Value> = hits.into_iter().skip(offset).take(limit).cloned().collect();
    let mut body = json!({"hitsTotal": total, "posts": page});
    if offset + limit < total {
        body["cursor"] = json!((offset + limit).to_string());
    }
    let mut r = json_response(body);
    let h = r.headers_mut();
    let reset = chrono::Utc::now().timestamp() + 300;
    h.insert("ratelimit-limit", "3000".parse().unwrap());
    h.insert(
        "ratelimit-remaining",
        remaining.to_string().parse().unwrap(),
    );
    h.insert("ratelimit-reset", reset.to_string().parse().unwrap());
    h.insert("ratelimit-policy", "3000;w=300".parse().unwrap());
    r
}

// ---------- Jetstream ----------

/// A post-create event in Jetstream's shape.
pub fn jet_post(did: &str, rkey: &str, time_us: i64, text: &str) -> String {
    jet_post_at(did, rkey, time_us, text, "2024-09-09T19:46:02.102Z")
}

/// A post-create event in Jetstream's shape, created at `created_at` (RFC 3339).
pub fn jet_post_at(did: &str, rkey: &str, time_us: i64, text: &str, created_at: &str) -> String {
    json!({
        "did": did, "time_us": time_us, "kind": "commit",
        "commit": {"rev": format!("rev{time_us}"), "operation": "create",
            "collection": "app.bsky.feed.post", "rkey": rkey,
            "record": {"$type": "app.bsky.feed.post", "createdAt": created_at,
                "langs": ["en"], "text": text},
            "cid": "bafyreidwaivazkwu67xztlmuobx35hs2lnfh3kolmgfmucldvhd3sgzcqi"}
    })
    .to_string()
}

/// A commit event creating `record` (an `app.bsky.feed.post` as JSON), in the shape of the
/// Jetstream README's commit example (bluesky-social/jetstream, "Example Jetstream events":
/// `did`, `time_us`, `kind: "commit"`, `commit.{rev, operation, collection, rkey, record,
/// cid}`).
pub fn jet_commit(did: &str, rkey: &str, time_us: i64, record: Value) -> String {
    json!({
        "did": did, "time_us": time_us, "kind": "commit",
        "commit": {"rev": format!("rev{time_us}"), "operation": "create",
            "collection": "app.bsky.feed.post", "rkey": rkey, "record": record,
            "cid": "bafyreidwaivazkwu67xztlmuobx35hs2lnfh3kolmgfmucldvhd3sgzcqi"}
    })
    .to_string()
}

/// A post deletion, as the Jetstream README's delete example: no `record`, no `cid`.
pub fn jet_delete(did: &str, rkey: &str, time_us: i64) -> String {
    json!({
        "did": did, "time_us": time_us, "kind": "commit",
        "commit": {"rev": format!("rev{time_us}"), "operation": "delete",
            "collection": "app.bsky.feed.post", "rkey": rkey}
    })
    .to_string()
}

/// A handle change, as the Jetstream README's identity example.
pub fn jet_identity(did: &str, handle: &str, time_us: i64) -> String {
    json!({
        "did": did, "time_us": time_us, "kind": "identity",
        "identity": {"did": did, "handle": handle, "seq": 1409752997,
            "time": "2024-09-05T06:11:04.870Z"}
    })
    .to_string()
}

/// An account status change, as the Jetstream README's account example (here deactivated).
pub fn jet_account(did: &str, time_us: i64) -> String {
    json!({
        "did": did, "time_us": time_us, "kind": "account",
        "account": {"active": false, "did": did, "seq": 1409753013,
            "status": "deactivated", "time": "2024-09-05T06:11:04.870Z"}
    })
    .to_string()
}

/// A `postView` as `app.bsky.feed.searchPosts` returns it, around any `record`.
pub fn bsky_post_view(
    did: &str,
    handle: &str,
    rkey: &str,
    indexed_at: &str,
    record: Value,
) -> Value {
    let mut v = bsky_post(did, handle, rkey, indexed_at, "");
    v["record"] = record;
    v["indexedAt"] = json!(indexed_at);
    v
}

#[derive(Default)]
pub struct JetState {
    /// Every event ever sent, for replay from a cursor.
    pub events: Vec<(i64, String)>,
    /// The request URI of each connection, in order.
    pub connections: Vec<String>,
    live: Vec<mpsc::UnboundedSender<Option<String>>>,
}

/// A Jetstream server: replays stored events from `cursor` (as Jetstream does, `time_us >=
/// cursor`), then forwards live ones; can drop every connection.
#[derive(Clone)]
pub struct FakeJetstream {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<JetState>>,
}

impl FakeJetstream {
    pub async fn start() -> FakeJetstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<Mutex<JetState>> = Arc::default();
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move { serve_jetstream(tcp, state).await });
            }
        });
        FakeJetstream { addr, state }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/subscribe", self.addr)
    }

    pub fn send(&self, time_us: i64, event: String) {
        let mut s = self.state.lock().unwrap();
        s.events.push((time_us, event.clone()));
        s.live.retain(|tx| tx.send(Some(event.clone())).is_ok());
    }

    /// Records an event without sending it live (it happened "while we were away").
    pub fn store_only(&self, time_us: i64, event: String) {
        self.state.lock().unwrap().events.push((time_us, event));
    }

    pub fn drop_all(&self) {
        let mut s = self.state.lock().unwrap();
        for tx in s.live.drain(..) {
            let _ = tx.send(None);
        }
    }

    pub fn connections(&self) -> Vec<String> {
        self.state.lock().unwrap().connections.clone()
    }

    /// How many connections are still open (those the client closed are dropped).
    pub fn open_connections(&self) -> usize {
        let mut s = self.state.lock().unwrap();
        s.live.retain(|tx| !tx.is_closed());
        s.live.len()
    }
}

#[allow(clippy::result_large_err)] // the callback's error type is tungstenite's, not ours
async fn serve_jetstream(tcp: tokio::net::TcpStream, state: Arc<Mutex<JetState>>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response as WsResponse};
    use tokio_tungstenite::tungstenite::Message;
    let mut uri = String::new();
    let ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, resp: WsResponse| {
        uri = req.uri().to_string();
        Ok(resp)
    })
    .await;
    let Ok(mut ws) = ws else { return };
    let cursor: Option<i64> = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("cursor="))
        .and_then(|c| c.parse().ok());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let replay: Vec<String> = {
        let mut s = state.lock().unwrap();
        s.connections.push(uri.clone());
        s.live.push(tx);
        match cursor {
            Some(c) => s
                .events
                .iter()
                .filter(|(t, _)| *t >= c)
                .map(|(_, e)| e.clone())
                .collect(),
            None => Vec::new(),
        }
    };
    for e in replay {
        if ws.send(Message::text(e)).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            next = rx.recv() => match next {
                Some(Some(e)) => if ws.send(Message::text(e)).await.is_err() { return },
                _ => { let _ = ws.close(None).await; return }
            },
            incoming = ws.next() => if incoming.is_none() { return },
        }
    }
}
