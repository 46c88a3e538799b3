//! A fake Discourse forum on 127.0.0.1: `/posts.json` (latest posts across the forum, newest
//! first, 50 a page, paged with `before={post id}` meaning ids strictly below, as
//! `LatestPostsQuery#public_posts` does), API-key headers, a private (login-required) mode,
//! and the forum's own 429 (`Retry-After` plus `{"errors":[…],"error_type":"rate_limit",
//! "extras":{"wait_seconds":N}}`). Faults go through the shared layer (`faults.rs`). A forum
//! that moved answers `301 Moved Permanently` with a `Location` (to another address, or from
//! `/moved/posts.json` to its own `/posts.json`).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::faults::{self, Fault, Faults, Platform, ANY};

/// Operation keys for fault injection and the call log.
pub mod ops {
    pub const LATEST_POSTS: &str = "GET /posts.json";
    pub const ALL: &[&str] = &[LATEST_POSTS];
}

/// `LatestPostsQuery::PAGE_SIZE`.
pub const PAGE_SIZE: usize = 50;

#[derive(Debug, Clone)]
pub struct Seen {
    pub query: HashMap<String, String>,
    pub headers: HashMap<String, String>,
}

#[derive(Default)]
pub struct DiscourseState {
    /// Posts in any order; served by id, newest first.
    pub posts: Vec<Value>,
    /// Login required: requests without the right key get 403 `not_logged_in`.
    pub private: bool,
    /// The (key, username) the forum accepts; a wrong pair gets 403 `invalid_access`.
    pub api_key: Option<(String, String)>,
    /// The next N requests get the forum's own 429 with `wait_seconds` (and, when
    /// `retry_after_header`, a `Retry-After` header too).
    pub rate_limited: u32,
    pub wait_seconds: u64,
    pub retry_after_header: bool,
    /// `/posts.json` answers 301 to this base URL's `/posts.json` (same query).
    pub redirect_to: Option<String>,
    pub requests: Vec<Seen>,
}

#[derive(Clone)]
pub struct FakeDiscourse {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<DiscourseState>>,
    pub faults: Faults,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<DiscourseState>>,
    faults: Faults,
}

impl FakeDiscourse {
    pub async fn start() -> FakeDiscourse {
        let faults = Faults::new(Platform::Api, ops::ALL);
        let state = Arc::new(Mutex::new(DiscourseState::default()));
        let router = Router::new()
            .route("/posts.json", get(latest_posts))
            .route("/moved/posts.json", get(moved))
            .with_state(Shared {
                state: state.clone(),
                faults: faults.clone(),
            });
        FakeDiscourse {
            addr: super::serve(router).await,
            state,
            faults,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn fail_next(&self, fault: Fault) {
        self.faults.next(ANY, 1, fault);
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn add(&self, post: Value) {
        self.state.lock().unwrap().posts.push(post);
    }
}

/// A post as `/posts.json` renders it: the fields of docs.discourse.org "Posts → List latest
/// posts across topics" (`latest_posts[]`), which `PostsController#latest` fills with
/// PostSerializer plus `add_raw`, `add_excerpt` and `add_title`: `cooked` is the rendered
/// HTML, `raw` the Markdown, `topic_slug`/`topic_title` name its topic.
pub fn post(id: u64, topic_id: u64, post_number: u64, created_at: i64, cooked: &str) -> Value {
    let at = chrono::DateTime::from_timestamp(created_at, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut p = json!({
        "id": id, "name": "Dana K", "username": "dana",
        "avatar_template": "/user_avatar/forum.example.com/dana/{size}/12_2.png",
        "created_at": at, "cooked": cooked, "post_number": post_number, "post_type": 1,
        "updated_at": at, "reply_count": 0, "reply_to_post_number": null, "quote_count": 0,
        "incoming_link_count": 0, "reads": 1, "readers_count": 0, "score": 0.2, "yours": false,
        "topic_id": topic_id, "topic_slug": format!("topic-{topic_id}"),
        "topic_title": format!("Topic {topic_id}"), "topic_html_title": format!("Topic {topic_id}"),
        "category_id": 4, "display_username": "Dana K", "primary_group_name": null,
    });
    let more = json!({
        "flair_name": null, "flair_url": null, "flair_bg_color": null, "flair_color": null,
        "flair_group_id": null, "version": 1, "can_edit": false, "can_delete": false,
        "can_recover": false, "can_see_hidden_post": false, "can_wiki": false,
        "user_title": null, "bookmarked": false, "raw": "", "actions_summary": [],
        "moderator": false, "admin": false, "staff": false, "user_id": 12, "hidden": false,
        "trust_level": 1, "deleted_at": null, "user_deleted": false, "edit_reason": null,
        "can_view_edit_history": true, "wiki": false, "excerpt": "", "truncated": false,
        "post_url": format!("/t/topic-{topic_id}/{topic_id}/{post_number}"),
        "reviewable_id": null, "reviewable_score_count": 0, "reviewable_score_pending_count": 0
    });
    for (k, v) in more.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

fn moved_to(location: String) -> Response {
    (StatusCode::MOVED_PERMANENTLY, [("location", location)], "").into_response()
}

fn query_string(q: &HashMap<String, String>) -> String {
    let pairs: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// The forum's old address: a relative redirect to its own `/posts.json`.
async fn moved(Query(q): Query<HashMap<String, String>>) -> Response {
    moved_to(format!("/posts.json{}", query_string(&q)))
}

fn error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json; charset=utf-8")],
        json!({"errors": [message], "error_type": error_type}).to_string(),
    )
        .into_response()
}

async fn latest_posts(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let seen_headers = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    shared.state.lock().unwrap().requests.push(Seen {
        query: q.clone(),
        headers: seen_headers,
    });
    match shared.faults.on_call(ops::LATEST_POSTS, false) {
        None => {}
        Some(Some(Fault::Slow(hold))) => tokio::time::sleep(hold).await,
        Some(f) => return faults::answer(Platform::Api, f, "").await,
    }
    let mut s = shared.state.lock().unwrap();
    if let Some(to) = &s.redirect_to {
        return moved_to(format!("{to}/posts.json{}", query_string(&q)));
    }
    if s.rate_limited > 0 {
        s.rate_limited -= 1;
        let wait = s.wait_seconds;
        // Discourse's RateLimiter::LimitExceeded answer (ApplicationController).
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            [("content-type", "application/json; charset=utf-8")],
            json!({
                "errors": [format!("You’ve performed this action too many times. Please wait {wait} seconds before trying again.")],
                "error_type": "rate_limit",
                "extras": {"wait_seconds": wait, "time_left": format!("{wait} seconds")}
            })
            .to_string(),
        )
            .into_response();
        r.headers_mut().insert(
            "discourse-rate-limit-error-code",
            "ip_10_secs_limit".parse().unwrap(),
        );
        if s.retry_after_header {
            r.headers_mut()
                .insert("retry-after", wait.to_string().parse().unwrap());
        }
        return r;
    }
    let key = headers.get("api-key").and_then(|v| v.to_str().ok());
    let user = headers.get("api-username").and_then(|v| v.to_str().ok());
    if let (Some(k), Some(u)) = (key, user) {
        let ok = s
            .api_key
            .as_ref()
            .is_some_and(|(ek, eu)| ek == k && eu == u);
        if !ok {
            return error(
                StatusCode::FORBIDDEN,
                "invalid_access",
                "You are not permitted to view the requested resource. The API username or key is invalid.",
            );
        }
    } else if s.private {
        return error(
            StatusCode::FORBIDDEN,
            "not_logged_in",
            "You are not permitted to view the requested resource.",
        );
    }
    let before: Option<u64> = q.get("before").and_then(|b| b.parse().ok());
    let mut posts: Vec<Value> = s
        .posts
        .iter()
        .filter(|p| before.is_none_or(|b| p["id"].as_u64().unwrap() < b))
        .cloned()
        .collect();
    posts.sort_by_key(|p| std::cmp::Reverse(p["id"].as_u64().unwrap()));
    posts.truncate(PAGE_SIZE);
    (
        [("content-type", "application/json; charset=utf-8")],
        json!({"latest_posts": posts}).to_string(),
    )
        .into_response()
}
