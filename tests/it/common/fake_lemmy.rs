//! A fake Lemmy instance on 127.0.0.1: `/api/v3/search` over posts and comments, answered in
//! the shape of Lemmy 0.19's `SearchResponse` (lemmy-js-client 0.19 `SearchResponse`,
//! `PostView`, `CommentView`: `{type_, comments, posts, communities, users}`), newest first
//! for `sort=New`, paged by `page`/`limit` per list. Errors as Lemmy sends them: HTTP 400
//! `{"error":"rate_limit_error"}` (0.19) or 429 (later versions), `{"error":"not_logged_in"}`
//! on private instances. Faults go through the shared layer (`faults.rs`).

use super::fake_sources::Seen;
use super::faults::{self, Fault, Faults, Platform, ANY};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub const SEARCH: &str = "GET /api/v3/search";

/// A canned answer: status, JSON body, headers.
pub type Canned = (u16, Value, Vec<(&'static str, String)>);

#[derive(Default)]
pub struct LemmyState {
    /// `PostView`s and `CommentView`s, in any order.
    pub posts: Vec<Value>,
    pub comments: Vec<Value>,
    /// The next answers: (status, JSON body, headers).
    pub answers_next: Vec<Canned>,
    pub requests: Vec<Seen>,
}

#[derive(Clone)]
pub struct FakeLemmy {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<LemmyState>>,
    pub faults: Faults,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<LemmyState>>,
    faults: Faults,
}

impl FakeLemmy {
    pub async fn start() -> FakeLemmy {
        let faults = Faults::new(Platform::Api, &[SEARCH]);
        let state = Arc::new(Mutex::new(LemmyState::default()));
        let router = Router::new()
            .route("/api/v3/search", get(search))
            .with_state(Shared {
                state: state.clone(),
                faults: faults.clone(),
            });
        FakeLemmy {
            addr: super::serve(router).await,
            state,
            faults,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_post(&self, post: Value) {
        self.state.lock().unwrap().posts.push(post);
    }

    pub fn add_comment(&self, comment: Value) {
        self.state.lock().unwrap().comments.push(comment);
    }

    pub fn fail_next(&self, fault: Fault) {
        self.faults.next(ANY, 1, fault);
    }

    /// The next answer is `status` with this JSON body and headers.
    pub fn answer_next(&self, status: u16, body: Value, headers: &[(&'static str, &str)]) {
        self.state.lock().unwrap().answers_next.push((
            status,
            body,
            headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        ));
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().requests.clone()
    }
}

/// `published` as Lemmy 0.19 writes it (RFC 3339 with microseconds and `Z`).
pub fn at(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 123_456_000)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// `published` as Lemmy 0.18 wrote it: no zone (UTC).
pub fn at_naive(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 123_456_000)
        .unwrap()
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}

/// A `Person` (0.19): `actor_id` is the home-instance URL.
pub fn person(name: &str, home: &str) -> Value {
    json!({
        "id": 4021, "name": name, "display_name": null, "avatar": null, "banned": false,
        "published": "2023-06-12T09:00:00.000000Z", "updated": null,
        "actor_id": format!("https://{home}/u/{name}"), "bio": null, "local": false,
        "banner": null, "deleted": false, "matrix_user_id": null, "bot_account": false,
        "ban_expires": null, "instance_id": 12,
    })
}

fn community(home: &str) -> Value {
    json!({
        "id": 88, "name": "technology", "title": "Technology", "description": null,
        "removed": false, "published": "2023-06-10T00:00:00.000000Z", "updated": null,
        "deleted": false, "nsfw": false, "actor_id": format!("https://{home}/c/technology"),
        "local": false, "icon": null, "banner": null, "hidden": false,
        "posting_restricted_to_mods": false, "instance_id": 12, "visibility": "Public",
    })
}

/// A `PostView` (0.19) of post `id` on `home`, published at `published` (already formatted).
pub fn post_view(
    home: &str,
    id: u64,
    published: &str,
    name: &str,
    body: Option<&str>,
    url: Option<&str>,
) -> Value {
    json!({
        "post": {
            "id": id, "name": name, "url": url, "body": body, "creator_id": 4021,
            "community_id": 88, "removed": false, "locked": false, "published": published,
            "updated": null, "deleted": false, "nsfw": false, "embed_title": null,
            "embed_description": null, "thumbnail_url": null,
            "ap_id": format!("https://{home}/post/{id}"), "local": false,
            "embed_video_url": null, "language_id": 37, "featured_community": false,
            "featured_local": false, "url_content_type": null, "alt_text": null,
        },
        "creator": person("ann", home),
        "community": community(home),
        "image_details": null,
        "creator_banned_from_community": false, "banned_from_community": false,
        "creator_is_moderator": false, "creator_is_admin": false,
        "counts": {"post_id": id, "comments": 0, "score": 5, "upvotes": 5, "downvotes": 0,
            "published": published, "newest_comment_time": published},
        "subscribed": "NotSubscribed", "saved": false, "read": false, "hidden": false,
        "creator_blocked": false, "my_vote": null, "unread_comments": 0,
    })
}

/// A `CommentView` (0.19) of comment `id` on `home`, under post `post_id`.
pub fn comment_view(home: &str, id: u64, post_id: u64, published: &str, content: &str) -> Value {
    let post = post_view(home, post_id, published, "Some thread", None, None)["post"].clone();
    json!({
        "comment": {
            "id": id, "creator_id": 5100, "post_id": post_id, "content": content,
            "removed": false, "published": published, "updated": null, "deleted": false,
            "ap_id": format!("https://{home}/comment/{id}"), "local": false,
            "path": format!("0.{id}"), "distinguished": false, "language_id": 0,
        },
        "creator": person("bob", home),
        "post": post,
        "community": community(home),
        "counts": {"comment_id": id, "score": 1, "upvotes": 1, "downvotes": 0,
            "published": published, "child_count": 0},
        "creator_banned_from_community": false, "banned_from_community": false,
        "creator_is_moderator": false, "creator_is_admin": false,
        "subscribed": "NotSubscribed", "saved": false, "creator_blocked": false,
        "my_vote": null,
    })
}

fn published(v: &Value, kind: &str) -> chrono::DateTime<chrono::Utc> {
    let s = v[kind]["published"].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .unwrap()
                .and_utc()
        })
}

fn page_of(mut list: Vec<Value>, kind: &str, page: usize, limit: usize) -> Vec<Value> {
    list.sort_by_key(|v| std::cmp::Reverse(published(v, kind)));
    list.into_iter()
        .skip((page - 1) * limit)
        .take(limit)
        .collect()
}

async fn search(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    {
        let headers = headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        shared.state.lock().unwrap().requests.push(Seen {
            path: "/api/v3/search".into(),
            query: q.clone(),
            headers,
        });
    }
    match shared.faults.on_call(SEARCH, false) {
        None => {}
        Some(Some(Fault::Slow(hold))) => tokio::time::sleep(hold).await,
        Some(f) => return faults::answer(Platform::Api, f, "").await,
    }
    let mut s = shared.state.lock().unwrap();
    if !s.answers_next.is_empty() {
        let (status, body, hs) = s.answers_next.remove(0);
        let mut r = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
        for (k, v) in hs {
            r.headers_mut()
                .insert(k, HeaderValue::from_str(&v).unwrap());
        }
        return r;
    }
    let word = q.get("q").cloned().unwrap_or_default().to_lowercase();
    let page: usize = q
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let limit: usize = q
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .min(50);
    let has = |v: &Value| v.as_str().unwrap_or("").to_lowercase().contains(&word);
    let posts: Vec<Value> = s
        .posts
        .iter()
        .filter(|p| has(&p["post"]["name"]) || has(&p["post"]["body"]))
        .cloned()
        .collect();
    let comments: Vec<Value> = s
        .comments
        .iter()
        .filter(|c| has(&c["comment"]["content"]))
        .cloned()
        .collect();
    axum::Json(json!({
        "type_": q.get("type_").cloned().unwrap_or_else(|| "All".into()),
        "comments": page_of(comments, "comment", page, limit),
        "posts": page_of(posts, "post", page, limit),
        "communities": [],
        "users": [],
    }))
    .into_response()
}
