//! Fakes for two keyless public feeds, on 127.0.0.1 with an OS-chosen port:
//! - Apple's customer reviews feed,
//!   `/{country}/rss/customerreviews/page={n}/id={app}/sortby=mostrecent/json`: 50 reviews a
//!   page, newest first, at most 10 pages; page 1 may start with the app's own entry; a page
//!   with one entry sends it as an object, an empty page has no `entry`; an unknown app is a
//!   404. Shapes follow captured answers of the feed (see `review`).
//! - Google News search, `/rss/search?q=…&hl=…&gl=…&ceid=…`: an RSS 2.0 channel of `item`s
//!   with `<source url>` (see `news_item`).
//!
//! Both take injected faults through the shared layer (`faults.rs`) and record requests.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::faults::{self, Fault, Faults, Platform};

pub mod ops {
    pub const REVIEWS: &str = "GET /{country}/rss/customerreviews/{page}/{id}/{sort}/json";
    pub const NEWS_SEARCH: &str = "GET /rss/search";
    pub const ALL: &[&str] = &[REVIEWS, NEWS_SEARCH];
}

/// Reviews per page, as Apple serves them.
pub const PAGE_SIZE: usize = 50;

#[derive(Default)]
pub struct FeedState {
    /// Reviews per (app id, country), newest first.
    pub reviews: BTreeMap<(String, String), Vec<Value>>,
    /// Apps whose page 1 starts with the app's own entry (older feeds do this).
    pub app_entry_first: Vec<String>,
    /// Google News items, as XML `<item>` elements.
    pub news_items: Vec<String>,
    /// (path, query) of every request.
    pub requests: Vec<(String, HashMap<String, String>)>,
}

#[derive(Clone)]
pub struct FakeFeedsApi {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<FeedState>>,
    pub faults: Faults,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<FeedState>>,
    faults: Faults,
}

impl FakeFeedsApi {
    pub async fn start() -> FakeFeedsApi {
        let faults = Faults::new(Platform::Api, ops::ALL);
        let state = Arc::new(Mutex::new(FeedState::default()));
        let router = Router::new()
            .route(
                "/{country}/rss/customerreviews/{page}/{id}/{sort}/{format}",
                get(reviews),
            )
            .route("/rss/search", get(news_search))
            .with_state(Shared {
                state: state.clone(),
                faults: faults.clone(),
            });
        FakeFeedsApi {
            addr: super::serve(router).await,
            state,
            faults,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the reviews of `app` in `country`, newest first.
    pub fn set_reviews(&self, app: &str, country: &str, reviews: Vec<Value>) {
        self.state
            .lock()
            .unwrap()
            .reviews
            .insert((app.to_string(), country.to_string()), reviews);
    }

    /// Adds a review on top (the newest).
    pub fn add_review(&self, app: &str, country: &str, review: Value) {
        self.state
            .lock()
            .unwrap()
            .reviews
            .entry((app.to_string(), country.to_string()))
            .or_default()
            .insert(0, review);
    }

    /// The next call of `op` gets `fault`.
    pub fn fail_next(&self, op: &str, fault: Fault) {
        self.faults.next(op, 1, fault);
    }

    /// Requests whose path starts with `prefix`.
    pub fn requests(&self, prefix: &str) -> Vec<(String, HashMap<String, String>)> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .cloned()
            .collect()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }
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

/// `page=3` → 3.
fn after_eq<'a>(segment: &'a str, name: &str) -> Option<&'a str> {
    segment.strip_prefix(name)?.strip_prefix('=')
}

async fn reviews(
    State(s): State<Shared>,
    Path((country, page, id, sort, format)): Path<(String, String, String, String, String)>,
    _headers: HeaderMap,
) -> Response {
    let path = format!("/{country}/rss/customerreviews/{page}/{id}/{sort}/{format}");
    s.state
        .lock()
        .unwrap()
        .requests
        .push((path.clone(), HashMap::new()));
    if let Some(r) = fault(&s, ops::REVIEWS).await {
        return r;
    }
    let (Some(page), Some(app)) = (
        after_eq(&page, "page").and_then(|p| p.parse::<usize>().ok()),
        after_eq(&id, "id"),
    ) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !(1..=10).contains(&page) || format != "json" || sort != "sortby=mostrecent" {
        return (StatusCode::BAD_REQUEST, "Bad Request").into_response();
    }
    let state = s.state.lock().unwrap();
    let Some(all) = state.reviews.get(&(app.to_string(), country.clone())) else {
        // Apple answers an id that is no app in that store with an HTML 404 page.
        return (
            StatusCode::NOT_FOUND,
            [("content-type", "text/html")],
            "<html><body>Not Found</body></html>",
        )
            .into_response();
    };
    let mut entries: Vec<Value> = all
        .iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .cloned()
        .collect();
    if page == 1 && state.app_entry_first.iter().any(|a| a == app) {
        entries.insert(0, app_entry(app, &country));
    }
    let self_url = format!(
        "https://itunes.apple.com/{country}/rss/customerreviews/id={app}/sortBy=mostRecent/page={page}/json"
    );
    let mut feed = json!({
        "author": {"name": {"label": "iTunes Store"}, "uri": {"label": "http://www.apple.com/itunes/"}},
        "updated": {"label": "2026-11-30T05:12:00-07:00"},
        "rights": {"label": "Copyright 2008 Apple Inc."},
        "title": {"label": "iTunes Store: Customer Reviews"},
        "icon": {"label": "http://itunes.apple.com/favicon.ico"},
        "link": [
            {"attributes": {"rel": "alternate", "type": "text/html",
                "href": format!("https://music.apple.com/WebObjects/MZStore.woa/wa/viewGrouping?cc={country}&id=1000")}},
            {"attributes": {"rel": "self", "href": self_url}}
        ],
        "id": {"label": self_url}
    });
    match entries.len() {
        0 => {}
        1 => feed["entry"] = entries.remove(0),
        _ => feed["entry"] = Value::Array(entries),
    }
    (
        [("content-type", "text/javascript; charset=utf-8")],
        json!({ "feed": feed }).to_string(),
    )
        .into_response()
}

/// The app's own entry, as older feeds put it first on page 1 (captured from
/// `…/ca/rss/customerreviews/id=922693504/json`: `im:name`, `rights`, `im:price`, `im:image`,
/// `id` with `im:id`/`im:bundleId` attributes, `im:artist`, `category`; no `im:rating`).
pub fn app_entry(app: &str, country: &str) -> Value {
    json!({
        "im:name": {"label": "Acme Router"},
        "rights": {"label": "© 2026 Acme Inc."},
        "im:price": {"label": "Get", "attributes": {"amount": "0.00000", "currency": "USD"}},
        "im:image": [{"label": "https://is1-ssl.mzstatic.com/image/thumb/x/53x53bb.png", "attributes": {"height": "53"}}],
        "im:artist": {"label": "Acme Inc.", "attributes": {"href": format!("https://apps.apple.com/{country}/developer/acme/id1")}},
        "title": {"label": "Acme Router - Acme Inc."},
        "link": {"attributes": {"rel": "alternate", "type": "text/html", "href": format!("https://apps.apple.com/{country}/app/acme-router/id{app}?uo=2")}},
        "id": {"label": format!("https://apps.apple.com/{country}/app/acme-router/id{app}?uo=2"),
            "attributes": {"im:id": app, "im:bundleId": "com.acme.router"}},
        "im:contentType": {"attributes": {"term": "Application", "label": "Application"}},
        "category": {"attributes": {"im:id": "6002", "term": "Utilities", "scheme": "https://apps.apple.com/us/genre/ios-utilities/id6002?uo=2", "label": "Utilities"}},
        "im:releaseDate": {"label": "2019-05-01T00:00:00-07:00", "attributes": {"label": "May 1, 2019"}}
    })
}

/// A review entry in the feed's JSON shape (as captured answers of
/// `itunes.apple.com/{cc}/rss/customerreviews/…/json` have it: `author` with `uri`, `name` and
/// an empty `label`; `updated` with a `-07:00` offset; `im:rating`; `im:version`; `id`;
/// `title`; `content` with `attributes.type = "text"`; `link` to the app's review page;
/// `im:voteSum`, `im:contentType`, `im:voteCount`). `updated` is a Unix time.
pub fn review(id: &str, updated: i64, rating: u8, title: &str, content: &str) -> Value {
    let at = chrono::DateTime::from_timestamp(updated, 0)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::west_opt(7 * 3600).unwrap())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    json!({
        "author": {"uri": {"label": format!("https://itunes.apple.com/us/reviews/id{id}9")},
            "name": {"label": format!("reviewer{id}")}, "label": ""},
        "updated": {"label": at},
        "im:rating": {"label": rating.to_string()},
        "im:version": {"label": "4.2.1"},
        "id": {"label": id},
        "title": {"label": title},
        "content": {"label": content, "attributes": {"type": "text"}},
        "link": {"attributes": {"rel": "related", "href": "https://itunes.apple.com/us/review?id=1404176564&type=Purple%20Software"}},
        "im:voteSum": {"label": "0"},
        "im:contentType": {"attributes": {"term": "Application", "label": "Application"}},
        "im:voteCount": {"label": "0"}
    })
}

async fn news_search(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    s.state
        .lock()
        .unwrap()
        .requests
        .push(("/rss/search".to_string(), q.clone()));
    if let Some(r) = fault(&s, ops::NEWS_SEARCH).await {
        return r;
    }
    let items = s.state.lock().unwrap().news_items.join("\n");
    let query = q.get("q").cloned().unwrap_or_default();
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><rss xmlns:media="http://search.yahoo.com/mrss/" version="2.0"><channel><generator>NFE/5.0</generator><title>"{q}" - Google News</title><link>https://news.google.com/search?q={q}&amp;hl=en-US&amp;gl=US&amp;ceid=US:en</link><language>en-US</language><webMaster>news-webmaster@google.com</webMaster><copyright>Copyright © 2026 Google. All rights reserved. This XML feed is made available solely for the purpose of rendering Google News results within a personal feed reader for personal, non-commercial use. Any other use of the feed is expressly prohibited. By accessing this feed or using these results in any manner whatsoever, you agree to be bound by the foregoing restrictions.</copyright><lastBuildDate>Mon, 30 Nov 2026 12:00:00 GMT</lastBuildDate><description>Google News</description>{items}</channel></rss>"#,
        q = xml_escape(&query)
    );
    ([("content-type", "application/xml; charset=utf-8")], body).into_response()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A Google News search item as its RSS feed has them (captured from
/// `news.google.com/rss/search?q=…&hl=en-US&gl=US&ceid=US:en`): `title` is
/// "Headline - Publisher", `link` is `https://news.google.com/rss/articles/<id>?oc=5`, `guid`
/// (isPermaLink="false") is the id, `pubDate` RFC 822 in GMT, `description` escaped HTML
/// (`<a href=…>Headline</a>&nbsp;&nbsp;<font color="#6f6f6f">Publisher</font>`), and
/// `<source url="https://publisher.example">Publisher</source>`.
pub fn news_item(id: &str, published: i64, headline: &str, publisher: &str, site: &str) -> String {
    let date = chrono::DateTime::from_timestamp(published, 0)
        .unwrap()
        .format("%a, %d %b %Y %H:%M:%S GMT");
    let link = format!("https://news.google.com/rss/articles/{id}?oc=5");
    let description = xml_escape(&format!(
        "<a href=\"{link}\" target=\"_blank\">{}</a>&nbsp;&nbsp;<font color=\"#6f6f6f\">{}</font>",
        xml_escape(headline),
        xml_escape(publisher)
    ));
    format!(
        r#"<item><title>{title}</title><link>{link}</link><guid isPermaLink="false">{id}</guid><pubDate>{date}</pubDate><description>{description}</description><source url="{site}">{publisher}</source></item>"#,
        title = xml_escape(&format!("{headline} - {publisher}")),
        publisher = xml_escape(publisher),
    )
}
