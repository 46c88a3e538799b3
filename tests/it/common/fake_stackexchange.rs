//! A fake Stack Exchange API 2.3 on 127.0.0.1: `/2.3/search/excerpts` over per-site items,
//! answered like the real API (api.stackexchange.com/docs): every body gzip-compressed, the
//! common wrapper (`items`, `has_more`, `quota_max`, `quota_remaining`, `backoff`), errors as
//! HTTP 400 with `error_id`/`error_name`/`error_message` (docs/error-handling), a quota that
//! counts down per request and, once used up, answers `throttle_violation` 502 "too many
//! requests from this IP, more requests available in N seconds". Faults go through the
//! shared layer (`faults.rs`).

use super::fake_sources::Seen;
use super::faults::{self, Fault, Faults, Platform, ANY};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub const SEARCH: &str = "GET /2.3/search/excerpts";

#[derive(Default)]
pub struct SeState {
    /// `search_excerpt` items per site.
    pub items: BTreeMap<String, Vec<Value>>,
    pub quota_max: u64,
    pub quota_remaining: u64,
    /// Sent as `backoff` on the next answer, then cleared.
    pub backoff_next: Option<u64>,
    /// The next answers are this error wrapper: (error_id, error_name, error_message).
    pub errors_next: Vec<(u64, String, String)>,
    /// The key the fake accepts; any other `key` is a `bad_parameter`.
    pub valid_key: Option<String>,
    pub requests: Vec<Seen>,
}

#[derive(Clone)]
pub struct FakeStackExchange {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<SeState>>,
    pub faults: Faults,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<SeState>>,
    faults: Faults,
}

impl FakeStackExchange {
    pub async fn start() -> FakeStackExchange {
        let faults = Faults::new(Platform::Api, &[SEARCH]);
        let state = Arc::new(Mutex::new(SeState {
            quota_max: 300,
            quota_remaining: 300,
            ..Default::default()
        }));
        let router = Router::new()
            .route("/2.3/search/excerpts", get(search))
            .with_state(Shared {
                state: state.clone(),
                faults: faults.clone(),
            });
        FakeStackExchange {
            addr: super::serve(router).await,
            state,
            faults,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add(&self, site: &str, item: Value) {
        self.state
            .lock()
            .unwrap()
            .items
            .entry(site.to_string())
            .or_default()
            .push(item);
    }

    pub fn fail_next(&self, fault: Fault) {
        self.faults.next(ANY, 1, fault);
    }

    /// The next answer is an API error wrapper.
    pub fn error_next(&self, id: u64, name: &str, message: &str) {
        self.state
            .lock()
            .unwrap()
            .errors_next
            .push((id, name.to_string(), message.to_string()));
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().requests.clone()
    }
}

/// A question as `/search/excerpts` returns it (docs/types/search-excerpt; `title` and
/// `body` HTML-encoded, `excerpt` with `<span class="highlight">` around the matched words).
pub fn question(id: u64, created: i64, title: &str, body_html: &str) -> Value {
    json!({
        "tags": ["acme", "networking"], "question_score": 2, "is_answered": false,
        "has_accepted_answer": false, "answer_count": 0, "is_accepted": false,
        "question_id": id, "item_type": "question", "score": 2,
        "last_activity_date": created, "creation_date": created,
        "body": body_html,
        "excerpt": format!("&hellip; {} &hellip;", highlight(&strip(body_html))),
        "title": title,
    })
}

/// An answer as `/search/excerpts` returns it: `title` is its question's.
pub fn answer(
    question_id: u64,
    id: u64,
    created: i64,
    question_title: &str,
    body_html: &str,
) -> Value {
    json!({
        "tags": ["acme"], "question_score": 2, "is_answered": true, "is_accepted": false,
        "question_id": question_id, "answer_id": id, "item_type": "answer", "score": 0,
        "last_activity_date": created, "creation_date": created,
        "body": body_html,
        "excerpt": highlight(&strip(body_html)),
        "title": question_title,
    })
}

fn strip(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn highlight(text: &str) -> String {
    text.replace("acme", "<span class=\"highlight\">acme</span>")
        .replace("Acme", "<span class=\"highlight\">Acme</span>")
}

/// A JSON body gzip-compressed, as the API always sends it.
fn gzipped(status: u16, v: Value) -> Response {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(v.to_string().as_bytes()).unwrap();
    let body = enc.finish().unwrap();
    (
        axum::http::StatusCode::from_u16(status).unwrap(),
        [
            ("content-type", "application/json; charset=utf-8"),
            ("content-encoding", "gzip"),
        ],
        body,
    )
        .into_response()
}

fn error_wrapper(id: u64, name: &str, message: &str) -> Response {
    gzipped(
        400,
        json!({"error_id": id, "error_message": message, "error_name": name}),
    )
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
            path: "/2.3/search/excerpts".into(),
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
    if !s.errors_next.is_empty() {
        let (id, name, message) = s.errors_next.remove(0);
        return error_wrapper(id, &name, &message);
    }
    if let Some(key) = q.get("key") {
        if s.valid_key.as_deref() != Some(key.as_str()) {
            return error_wrapper(400, "bad_parameter", "key");
        }
    }
    let Some(site) = q.get("site").cloned() else {
        return error_wrapper(400, "bad_parameter", "site is required");
    };
    if !s.items.contains_key(&site) && site != "stackoverflow" && site != "superuser" {
        return error_wrapper(
            400,
            "bad_parameter",
            &format!("No site found for name `{site}`"),
        );
    }
    if s.quota_remaining == 0 {
        return error_wrapper(
            502,
            "throttle_violation",
            "too many requests from this IP, more requests available in 81442 seconds",
        );
    }
    s.quota_remaining -= 1;
    let word = q.get("q").cloned().unwrap_or_default().to_lowercase();
    let from: i64 = q.get("fromdate").and_then(|v| v.parse().ok()).unwrap_or(0);
    let page: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1);
    let size: usize = q.get("pagesize").and_then(|v| v.parse().ok()).unwrap_or(30);
    let mut hits: Vec<Value> = s
        .items
        .get(&site)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| {
            i["creation_date"].as_i64().unwrap() >= from
                && (i["title"]
                    .as_str()
                    .unwrap_or("")
                    .to_lowercase()
                    .contains(&word)
                    || i["body"]
                        .as_str()
                        .unwrap_or("")
                        .to_lowercase()
                        .contains(&word))
        })
        .collect();
    hits.sort_by_key(|i| i["creation_date"].as_i64().unwrap());
    if q.get("order").map(String::as_str) != Some("asc") {
        hits.reverse();
    }
    let total = hits.len();
    let items: Vec<Value> = hits
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    let mut body = json!({
        "items": items,
        "has_more": page * size < total,
        "quota_max": s.quota_max,
        "quota_remaining": s.quota_remaining,
    });
    if let Some(b) = s.backoff_next.take() {
        body["backoff"] = json!(b);
    }
    gzipped(200, body)
}
