//! A fake feed server: each route serves a fixed response (status, headers, body), and an
//! RSS 2.0 writer for the items a test needs.

use super::serve;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// A feed server whose routes each serve a fixed response.
#[derive(Clone)]
pub struct FakeFeeds {
    pub addr: SocketAddr,
    pub hits: Arc<Mutex<HashMap<String, u32>>>,
}

#[derive(Clone)]
pub struct FeedResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl FeedResponse {
    pub fn rss(body: String) -> FeedResponse {
        FeedResponse {
            status: 200,
            headers: vec![("content-type", "application/rss+xml".into())],
            body: body.into_bytes(),
        }
    }
}

impl FakeFeeds {
    pub async fn start(routes: Vec<(&'static str, FeedResponse)>) -> FakeFeeds {
        let hits: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let mut router = Router::new();
        for (path, resp) in routes {
            let hits = hits.clone();
            router = router.route(
                path,
                get(move || {
                    let resp = resp.clone();
                    let hits = hits.clone();
                    async move {
                        *hits.lock().unwrap().entry(path.to_string()).or_default() += 1;
                        let mut r =
                            (StatusCode::from_u16(resp.status).unwrap(), resp.body).into_response();
                        for (k, v) in resp.headers {
                            r.headers_mut().insert(k, v.parse().unwrap());
                        }
                        r
                    }
                }),
            );
        }
        FakeFeeds {
            addr: serve(router).await,
            hits,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// An RSS 2.0 document with one item per `(guid, title, description)`.
pub fn rss(items: &[(String, String, String)]) -> String {
    let mut out = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Test feed</title><link>https://example.com/</link><description>t</description>"#,
    );
    for (guid, title, desc) in items {
        out.push_str(&format!(
            "<item><guid>{guid}</guid><title>{}</title><link>https://example.com/posts/{guid}</link><description>{}</description></item>",
            xml_escape(title),
            xml_escape(desc)
        ));
    }
    out.push_str("</channel></rss>");
    out
}

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
