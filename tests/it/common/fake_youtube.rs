//! A fake YouTube Data API v3 on 127.0.0.1: `commentThreads.list` (by
//! `allThreadsRelatedToChannelId` or `videoId`, `order=time`, `maxResults`, `pageToken`) and
//! `search.list` (`type=video`, `order=date`, `publishedAfter`), keyed by `key=` in the query
//! string. It charges quota as Google documents (1 unit per `commentThreads.list`, 100 per
//! `search.list`) and answers errors in Google's shape
//! (`{"error":{"code","message","errors":[{"message","domain","reason"}],…}}`, as in
//! developers.google.com/youtube/v3/docs/errors): `quotaExceeded`, `commentsDisabled`,
//! `videoNotFound`, `forbidden` (a video made private), `invalidPageToken`, a listing's own
//! 4xx/5xx, and an invalid key (400 `badRequest` with `API_KEY_INVALID` details). Page tokens
//! name the first comment of the next page, so comments arriving on top do not move a page.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::faults::{self, Fault, Faults, Platform, ANY};

pub mod ops {
    pub const COMMENT_THREADS: &str = "GET /youtube/v3/commentThreads";
    pub const SEARCH: &str = "GET /youtube/v3/search";
    pub const ALL: &[&str] = &[COMMENT_THREADS, SEARCH];
}

pub const KEY: &str = "AIzaSyTEST-key-0123456789abcdefghijk";
pub const CHANNEL: &str = "UC_x5XG1OV2P6uZZ5FSM9Ttw";

#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub query: HashMap<String, String>,
}

#[derive(Default)]
pub struct YoutubeState {
    /// `commentThread` resources, any order.
    pub threads: Vec<Value>,
    /// `searchResult` resources, any order.
    pub videos: Vec<Value>,
    pub comments_disabled: HashSet<String>,
    pub missing_videos: HashSet<String>,
    /// Videos whose comments answer 403 `forbidden` (made private).
    pub forbidden_videos: HashSet<String>,
    /// Listings (video or channel id) that answer this status with Google's error body.
    pub broken: HashMap<String, u16>,
    /// Every `pageToken` is refused (400 `invalidPageToken`), as an expired one is.
    pub expire_tokens: bool,
    /// Every call answers 403 `quotaExceeded`.
    pub quota_exceeded: bool,
    /// Units charged so far.
    pub units: u64,
    pub requests: Vec<Seen>,
}

#[derive(Clone)]
pub struct FakeYoutube {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<YoutubeState>>,
    pub faults: Faults,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<YoutubeState>>,
    faults: Faults,
}

impl FakeYoutube {
    pub async fn start() -> FakeYoutube {
        let faults = Faults::new(Platform::Api, ops::ALL);
        let state = Arc::new(Mutex::new(YoutubeState::default()));
        let router = Router::new()
            .route("/youtube/v3/commentThreads", get(comment_threads))
            .route("/youtube/v3/search", get(search))
            .with_state(Shared {
                state: state.clone(),
                faults: faults.clone(),
            });
        FakeYoutube {
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

    pub fn requests(&self, path: &str) -> Vec<Seen> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn units(&self) -> u64 {
        self.state.lock().unwrap().units
    }
}

fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A `commentThread` as `commentThreads.list?part=snippet` returns it
/// (developers.google.com/youtube/v3/docs/commentThreads, "Resource representation", with the
/// nested `comments` resource; `textDisplay` is HTML, `textOriginal` the typed text).
pub fn thread(id: &str, channel: &str, video: &str, published: i64, html: &str) -> Value {
    json!({
        "kind": "youtube#commentThread",
        "etag": format!("etag-{id}"),
        "id": id,
        "snippet": {
            "channelId": channel,
            "videoId": video,
            "topLevelComment": {
                "kind": "youtube#comment",
                "etag": format!("etag-c-{id}"),
                "id": id,
                "snippet": {
                    "channelId": channel,
                    "videoId": video,
                    "textDisplay": html,
                    "textOriginal": html.replace("<br>", "\n"),
                    "authorDisplayName": "@kim-reviews",
                    "authorProfileImageUrl": "https://yt3.ggpht.com/ytc/abc=s48-c-k-c0x00ffffff-no-rj",
                    "authorChannelUrl": "http://www.youtube.com/@kim-reviews",
                    "authorChannelId": {"value": "UCkimkimkimkimkimkimkim0"},
                    "canRate": true,
                    "viewerRating": "none",
                    "likeCount": 3,
                    "publishedAt": rfc3339(published),
                    "updatedAt": rfc3339(published)
                }
            },
            "canReply": true,
            "totalReplyCount": 0,
            "isPublic": true
        }
    })
}

/// A `searchResult` for a video (developers.google.com/youtube/v3/docs/search, "Resource
/// representation"): titles and descriptions come HTML-escaped (`&#39;`, `&amp;`).
pub fn video(id: &str, published: i64, title: &str, description: &str) -> Value {
    json!({
        "kind": "youtube#searchResult",
        "etag": format!("etag-v-{id}"),
        "id": {"kind": "youtube#video", "videoId": id},
        "snippet": {
            "publishedAt": rfc3339(published),
            "channelId": "UCreviewerreviewerrevie0",
            "title": title,
            "description": description,
            "thumbnails": {"default": {"url": format!("https://i.ytimg.com/vi/{id}/default.jpg"), "width": 120, "height": 90}},
            "channelTitle": "Gadget Reviews",
            "liveBroadcastContent": "none",
            "publishTime": rfc3339(published)
        }
    })
}

/// Google's error body.
pub fn google_error(code: u16, domain: &str, reason: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap(),
        [("content-type", "application/json; charset=UTF-8")],
        json!({"error": {"code": code, "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}]}})
        .to_string(),
    )
        .into_response()
}

fn invalid_key() -> Response {
    let message = "API key not valid. Please pass a valid API key.";
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/json; charset=UTF-8")],
        json!({"error": {"code": 400, "message": message,
            "errors": [{"message": message, "domain": "global", "reason": "badRequest"}],
            "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                "metadata": {"service": "youtube.googleapis.com"}}]}})
        .to_string(),
    )
        .into_response()
}

/// Logs the call, applies faults, checks the key and the quota; `Err` is the answer.
async fn gate(
    shared: &Shared,
    path: &str,
    op: &str,
    q: &HashMap<String, String>,
    cost: u64,
) -> Result<(), Response> {
    {
        let mut s = shared.state.lock().unwrap();
        s.requests.push(Seen {
            path: path.to_string(),
            query: q.clone(),
        });
    }
    match shared.faults.on_call(op, false) {
        None => {}
        Some(Some(Fault::Slow(hold))) => tokio::time::sleep(hold).await,
        Some(f) => return Err(faults::answer(Platform::Api, f, "").await),
    }
    let mut s = shared.state.lock().unwrap();
    if q.get("key").map(String::as_str) != Some(KEY) {
        return Err(invalid_key());
    }
    if s.quota_exceeded {
        return Err(google_error(
            403,
            "youtube.quota",
            "quotaExceeded",
            "The request cannot be completed because you have exceeded your <a href=\"/youtube/v3/getting-started#quota\">quota</a>.",
        ));
    }
    s.units += cost;
    Ok(())
}

fn published(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str().unwrap().parse().unwrap()
}

async fn comment_threads(
    State(shared): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = gate(
        &shared,
        "/youtube/v3/commentThreads",
        ops::COMMENT_THREADS,
        &q,
        1,
    )
    .await
    {
        return r;
    }
    let s = shared.state.lock().unwrap();
    let listing = q
        .get("videoId")
        .or(q.get("allThreadsRelatedToChannelId"))
        .cloned()
        .unwrap_or_default();
    if let Some(code) = s.broken.get(&listing) {
        return match *code {
            400 => google_error(
                400,
                "youtube.parameter",
                "invalidParameter",
                "The request specifies an invalid parameter value.",
            ),
            code => google_error(code, "global", "backendError", "Backend Error"),
        };
    }
    let mut items: Vec<Value> = if let Some(v) = q.get("videoId") {
        if s.comments_disabled.contains(v) {
            return google_error(
                403,
                "youtube.commentThread",
                "commentsDisabled",
                "The video identified by the <code><a href=\"/youtube/v3/docs/commentThreads/list#videoId\">videoId</a></code> parameter has disabled comments.",
            );
        }
        if s.missing_videos.contains(v) {
            return google_error(
                404,
                "youtube.commentThread",
                "videoNotFound",
                "The video identified by the <code><a href=\"/youtube/v3/docs/commentThreads/list#videoId\">videoId</a></code> parameter could not be found.",
            );
        }
        if s.forbidden_videos.contains(v) {
            // commentThreads.list, "Errors": forbidden (403) forbidden.
            return google_error(
                403,
                "youtube.commentThread",
                "forbidden",
                "The comment thread could not be retrieved due to insufficient permissions. The request might not be properly authorized.",
            );
        }
        s.threads
            .iter()
            .filter(|t| t["snippet"]["videoId"] == v.as_str())
            .cloned()
            .collect()
    } else if let Some(c) = q.get("allThreadsRelatedToChannelId") {
        s.threads
            .iter()
            .filter(|t| t["snippet"]["channelId"] == c.as_str())
            .cloned()
            .collect()
    } else {
        return google_error(
            400,
            "youtube.parameter",
            "missingRequiredParameter",
            "No filter selected. Expected one of: videoId, id, allThreadsRelatedToChannelId",
        );
    };
    items.sort_by_key(|t| {
        std::cmp::Reverse(published(
            &t["snippet"]["topLevelComment"]["snippet"]["publishedAt"],
        ))
    });
    let max: usize = q
        .get("maxResults")
        .and_then(|m| m.parse().ok())
        .unwrap_or(20);
    let start: usize = match q.get("pageToken") {
        None => 0,
        Some(token) => match items.iter().position(|t| t["id"] == token.as_str()) {
            Some(i) if !s.expire_tokens => i,
            _ => {
                return google_error(
                    400,
                    "youtube.parameter",
                    "invalidPageToken",
                    "The request specifies an invalid page token.",
                )
            }
        },
    };
    // The next page starts at this comment: its id is the token.
    let next = items.get(start + max).map(|t| t["id"].clone());
    let page: Vec<Value> = items.into_iter().skip(start).take(max).collect();
    let mut body = json!({
        "kind": "youtube#commentThreadListResponse",
        "etag": "etag-list",
        "pageInfo": {"totalResults": page.len(), "resultsPerPage": max},
        "items": page
    });
    if let Some(next) = next {
        body["nextPageToken"] = next;
    }
    (
        [("content-type", "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

async fn search(
    State(shared): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = gate(&shared, "/youtube/v3/search", ops::SEARCH, &q, 100).await {
        return r;
    }
    let s = shared.state.lock().unwrap();
    let after = q
        .get("publishedAfter")
        .map(|a| a.parse::<chrono::DateTime<chrono::Utc>>().unwrap());
    let mut items: Vec<Value> = s
        .videos
        .iter()
        .filter(|v| after.is_none_or(|a| published(&v["snippet"]["publishedAt"]) > a))
        .cloned()
        .collect();
    items.sort_by_key(|v| std::cmp::Reverse(published(&v["snippet"]["publishedAt"])));
    let max: usize = q
        .get("maxResults")
        .and_then(|m| m.parse().ok())
        .unwrap_or(5);
    items.truncate(max);
    (
        [("content-type", "application/json; charset=UTF-8")],
        json!({
            "kind": "youtube#searchListResponse", "etag": "etag-search",
            "regionCode": "US", "pageInfo": {"totalResults": items.len(), "resultsPerPage": max},
            "items": items
        })
        .to_string(),
    )
        .into_response()
}
