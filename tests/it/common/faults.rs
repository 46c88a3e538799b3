//! Fault injection and a call log shared by every fake (Slack, Discord and the source APIs):
//! one list of injected faults, consulted before every handler and keyed by API method, so a
//! test can make any call fail the way the real service fails (429 with its headers, 5xx for
//! N calls or for a while, error codes, a revoked token, a malformed or cut-off body, a hang,
//! a slow answer) and assert how the client paced its calls.
//!
//! Method keys: Slack Web API method names (`"chat.postMessage"`, `"chat.update"`, …) plus
//! `"response_url"` and `"upload"` for the non-API URLs; Discord operations as in its OpenAPI
//! spec (`"POST /channels/{channel_id}/messages"`, see `discord::ops`); the source APIs'
//! routes (see `fake_sources::ops`). [`ANY`] matches every method.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Matches every method.
pub const ANY: &str = "*";

/// Which platform a fault list belongs to: faults of the other platform are refused when
/// injected, so a test cannot silently inject something its fake never answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Slack,
    Discord,
    /// A source's plain HTTP API (HN, Mastodon, Reddit, Bluesky).
    Api,
}

/// Discord's `X-RateLimit-Scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateScope {
    /// A per-route (bucket) limit of this bot.
    User,
    /// The bot's global limit (`"global": true`, `X-RateLimit-Global: true`).
    Global,
}

/// How a faulted call is answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// HTTP 429. Slack: `Retry-After: <ceil secs>` and `{"ok":false,"error":"ratelimited"}`.
    /// Discord: `Retry-After`, `X-RateLimit-*` (incl. `X-RateLimit-Scope`) and
    /// `{"message":"You are being rate limited.","retry_after":secs,"global":bool}`.
    RateLimited {
        retry_after: Duration,
        scope: RateScope,
    },
    /// An HTTP 5xx from a proxy in front of the API: 500 with an empty body, other codes
    /// with an nginx-style HTML page.
    Http(u16),
    /// This status with these headers and a small JSON error body (an API's own 429 or 4xx
    /// with the headers it documents).
    Status {
        status: u16,
        headers: Vec<(&'static str, String)>,
    },
    /// HTTP 200 whose body is not JSON (an HTML error page behind a JSON content type).
    Malformed,
    /// HTTP 200 whose body is cut off mid-way by a connection reset.
    Truncated,
    /// Never answers (the client must time out).
    Hang,
    /// The handler answers normally, but the answer is held this long (a slow platform:
    /// the call has taken effect while the client still waits).
    Slow(Duration),
    /// Slack: HTTP 200 with `{"ok":false,"error":code}`.
    Slack(String),
    /// Discord: `status` with `{"message":message,"code":code}`.
    Discord {
        status: u16,
        code: u64,
        message: String,
    },
}

impl Fault {
    /// A per-route 429 asking to wait `secs`.
    pub fn rate_limited(secs: f64) -> Fault {
        Fault::RateLimited {
            retry_after: Duration::from_secs_f64(secs),
            scope: RateScope::User,
        }
    }
    /// Discord's global 429.
    pub fn global_rate_limit(secs: f64) -> Fault {
        Fault::RateLimited {
            retry_after: Duration::from_secs_f64(secs),
            scope: RateScope::Global,
        }
    }
    /// `status` with `headers` (e.g. `[("x-ratelimit-reset", "42")]`).
    pub fn status(status: u16, headers: &[(&'static str, &str)]) -> Fault {
        Fault::Status {
            status,
            headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        }
    }
    pub fn http(status: u16) -> Fault {
        assert!((500..600).contains(&status), "Fault::http takes a 5xx");
        Fault::Http(status)
    }
    /// A Slack error code (`invalid_auth`, `account_inactive`, `channel_not_found`,
    /// `not_in_channel`, `ratelimited`, …) answered with HTTP 200.
    pub fn slack(code: &str) -> Fault {
        Fault::Slack(code.to_string())
    }
    pub fn discord(status: u16, code: u64, message: &str) -> Fault {
        Fault::Discord {
            status,
            code,
            message: message.to_string(),
        }
    }
    /// 403 50001 Missing Access (the bot cannot see the channel).
    pub fn discord_missing_access() -> Fault {
        Fault::discord(403, 50001, "Missing Access")
    }
    /// 403 50013 Missing Permissions (e.g. no Send Messages / Create Public Threads).
    pub fn discord_missing_permissions() -> Fault {
        Fault::discord(403, 50013, "Missing Permissions")
    }

    fn platform(&self) -> Option<Platform> {
        match self {
            Fault::RateLimited { .. }
            | Fault::Http(_)
            | Fault::Status { .. }
            | Fault::Malformed
            | Fault::Truncated
            | Fault::Hang
            | Fault::Slow(_) => None,
            Fault::Slack(_) => Some(Platform::Slack),
            Fault::Discord { .. } => Some(Platform::Discord),
        }
    }
}

/// How long an injected fault lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lasting {
    /// The next N matching calls.
    Next(u32),
    /// Every matching call before this instant (tokio time, so paused clocks work).
    Until(Instant),
    /// Every matching call until [`Faults::clear`].
    UntilCleared,
}

#[derive(Debug, Clone)]
struct Rule {
    method: String,
    fault: Fault,
    lasting: Lasting,
}

/// One call a fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub at: Instant,
    /// Answered by an injected fault or the revoked token, not by the fake's handler.
    pub faulted: bool,
}

struct Inner {
    platform: Platform,
    known: Vec<String>,
    rules: Vec<Rule>,
    calls: Vec<Call>,
    revoked: bool,
}

/// The fault list and call log of one fake (a cheap clone of a shared handle).
#[derive(Clone)]
pub struct Faults {
    inner: Arc<Mutex<Inner>>,
}

impl Faults {
    /// `known` lists the method keys the fake routes, so a mistyped key is refused.
    pub fn new(platform: Platform, known: &[&str]) -> Faults {
        Faults {
            inner: Arc::new(Mutex::new(Inner {
                platform,
                known: known.iter().map(|k| k.to_string()).collect(),
                rules: Vec::new(),
                calls: Vec::new(),
                revoked: false,
            })),
        }
    }

    /// Answers calls of `method` (or [`ANY`]) with `fault` for as long as `lasting` says.
    /// Rules are consulted in the order they were injected; the first live one applies.
    pub fn inject(&self, method: &str, fault: Fault, lasting: Lasting) {
        let mut s = self.inner.lock().unwrap();
        assert!(
            method == ANY || s.known.iter().any(|k| k == method),
            "the fake has no method {method:?}; known: {:?}",
            s.known
        );
        if let Some(p) = fault.platform() {
            assert_eq!(p, s.platform, "{fault:?} is not a {:?} fault", s.platform);
        }
        s.rules.push(Rule {
            method: method.to_string(),
            fault,
            lasting,
        });
    }

    /// The next `n` calls of `method` get `fault`.
    pub fn next(&self, method: &str, n: u32, fault: Fault) {
        self.inject(method, fault, Lasting::Next(n));
    }

    /// Calls of `method` get `fault` until `until` (tokio time).
    pub fn until(&self, method: &str, until: Instant, fault: Fault) {
        self.inject(method, fault, Lasting::Until(until));
    }

    /// Calls of `method` get `fault` until [`Faults::clear`].
    pub fn always(&self, method: &str, fault: Fault) {
        self.inject(method, fault, Lasting::UntilCleared);
    }

    /// Removes every injected fault (not the token revocation).
    pub fn clear(&self) {
        self.inner.lock().unwrap().rules.clear();
    }

    /// From now on every call made with the bot token answers Slack `invalid_auth` /
    /// Discord 401, until [`Faults::restore_token`].
    pub fn revoke_token(&self) {
        self.inner.lock().unwrap().revoked = true;
    }

    pub fn restore_token(&self) {
        self.inner.lock().unwrap().revoked = false;
    }

    /// Every call received, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// When each call of `method` (or [`ANY`]) arrived.
    pub fn times(&self, method: &str) -> Vec<Instant> {
        self.calls()
            .into_iter()
            .filter(|c| method == ANY || c.method == method)
            .map(|c| c.at)
            .collect()
    }

    /// How many calls of `method` (or [`ANY`]) arrived.
    pub fn count(&self, method: &str) -> usize {
        self.times(method).len()
    }

    /// How many calls of `method` (or [`ANY`]) arrived in `[from, to)`.
    pub fn count_between(&self, method: &str, from: Instant, to: Instant) -> usize {
        self.times(method)
            .into_iter()
            .filter(|t| *t >= from && *t < to)
            .count()
    }

    /// How many calls of `method` (or [`ANY`]) were answered by a fault or the revoked token.
    pub fn faulted(&self, method: &str) -> usize {
        self.calls()
            .into_iter()
            .filter(|c| c.faulted && (method == ANY || c.method == method))
            .count()
    }

    /// Logs a call and decides whether a fault answers it: `Some(None)` for the revoked
    /// token, `Some(Some(fault))` for an injected fault, `None` to let the handler answer.
    /// A [`Fault::Slow`] is the gate's to apply: the handler still answers.
    pub(crate) fn on_call(&self, method: &str, with_bot_token: bool) -> Option<Option<Fault>> {
        let mut s = self.inner.lock().unwrap();
        let now = Instant::now();
        let outcome = if s.revoked && with_bot_token {
            Some(None)
        } else {
            let mut hit = None;
            s.rules.retain(|r| match r.lasting {
                Lasting::Next(0) => false,
                Lasting::Until(t) => now < t,
                _ => true,
            });
            for r in s.rules.iter_mut() {
                if r.method != ANY && r.method != method {
                    continue;
                }
                match &mut r.lasting {
                    Lasting::Next(n) => *n -= 1,
                    Lasting::Until(_) | Lasting::UntilCleared => {}
                }
                hit = Some(r.fault.clone());
                break;
            }
            hit.map(Some)
        };
        s.calls.push(Call {
            method: method.to_string(),
            at: now,
            faulted: !matches!(outcome, None | Some(Some(Fault::Slow(_)))),
        });
        outcome
    }
}

/// The HTML page a proxy answers with for a 5xx.
fn proxy_page(status: StatusCode) -> Response {
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        return status.into_response();
    }
    let line = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let html = format!(
        "<html>\r\n<head><title>{line}</title></head>\r\n<body>\r\n<center><h1>{line}</h1></center>\r\n</body>\r\n</html>\r\n"
    );
    (status, [("content-type", "text/html")], html).into_response()
}

/// The answer for a call that `on_call` faulted (`None` = revoked token): the faults every
/// fake shares are answered here, the platform's own (rate limits, error codes) in its
/// platform's shape; `bucket` names a Discord route's rate-limit bucket.
pub async fn answer(platform: Platform, fault: Option<Fault>, bucket: &str) -> Response {
    match fault {
        Some(Fault::Status { status, headers }) => {
            let mut r = (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                json!({"error": status}).to_string(),
            )
                .into_response();
            for (k, v) in headers {
                r.headers_mut()
                    .insert(k, HeaderValue::from_str(&v).unwrap());
            }
            r
        }
        Some(Fault::Malformed) => (
            [("content-type", "application/json")],
            "<html>502 Bad Gateway</html>",
        )
            .into_response(),
        Some(Fault::Truncated) => {
            let parts: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(b"{\"hits\":[{\"objectID\":\"1\",")),
                Err(std::io::Error::other("connection reset")),
            ];
            Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(futures_util::stream::iter(parts)))
                .unwrap()
        }
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Some(Fault::Slow(_)) => unreachable!("a slow call is answered by its handler"),
        fault => match platform {
            Platform::Slack => slack_answer(fault),
            Platform::Discord => discord_answer(fault, bucket),
            Platform::Api => api_answer(fault),
        },
    }
}

/// A source API's answer for `fault` (`None` = revoked token).
fn api_answer(fault: Option<Fault>) -> Response {
    match fault {
        None => (
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            json!({"error": "unauthorized"}).to_string(),
        )
            .into_response(),
        Some(Fault::RateLimited { retry_after, .. }) => {
            let secs = retry_after.as_secs_f64().ceil() as u64;
            (
                StatusCode::TOO_MANY_REQUESTS,
                [
                    ("content-type", "application/json".to_string()),
                    ("retry-after", secs.to_string()),
                ],
                json!({"error": 429}).to_string(),
            )
                .into_response()
        }
        Some(Fault::Http(code)) => proxy_page(StatusCode::from_u16(code).unwrap()),
        Some(other) => unreachable!("{other:?} is answered by `answer` or refused at inject"),
    }
}

/// Slack's answer for `fault` (`None` = revoked token).
fn slack_answer(fault: Option<Fault>) -> Response {
    let err = |code: &str| {
        (
            [("content-type", "application/json; charset=utf-8")],
            json!({"ok": false, "error": code}).to_string(),
        )
            .into_response()
    };
    match fault {
        None => err("invalid_auth"),
        Some(Fault::RateLimited { retry_after, .. }) => {
            let mut r = err("ratelimited");
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            let secs = retry_after.as_secs_f64().ceil() as u64;
            r.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
            r
        }
        Some(Fault::Http(code)) => proxy_page(StatusCode::from_u16(code).unwrap()),
        Some(Fault::Slack(code)) => err(&code),
        Some(other) => unreachable!("{other:?} is answered by `answer` or refused at inject"),
    }
}

/// Discord's answer for `fault` (`None` = revoked token); `bucket` names the route's bucket.
fn discord_answer(fault: Option<Fault>, bucket: &str) -> Response {
    let err = |status: u16, code: u64, message: &str| {
        (
            StatusCode::from_u16(status).unwrap(),
            axum::Json(json!({"message": message, "code": code})),
        )
            .into_response()
    };
    match fault {
        None => err(401, 0, "401: Unauthorized"),
        Some(Fault::RateLimited { retry_after, scope }) => {
            let secs = retry_after.as_secs_f64();
            let global = scope == RateScope::Global;
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                // The docs' example omits `code`; the OpenAPI spec's RatelimitedResponse
                // requires it (allOf Error), and real answers carry `"code": 0`.
                axum::Json(json!({
                    "message": "You are being rate limited.",
                    "retry_after": secs,
                    "global": global,
                    "code": 0,
                })),
            )
                .into_response();
            let reset = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
                + secs;
            let h = r.headers_mut();
            let mut set = |k: &'static str, v: String| {
                h.insert(k, HeaderValue::from_str(&v).unwrap());
            };
            set("retry-after", (secs.ceil() as u64).to_string());
            set(
                "x-ratelimit-scope",
                match scope {
                    RateScope::User => "user",
                    RateScope::Global => "global",
                }
                .into(),
            );
            if global {
                set("x-ratelimit-global", "true".into());
            } else {
                set("x-ratelimit-limit", "5".into());
                set("x-ratelimit-remaining", "0".into());
                set("x-ratelimit-reset", format!("{reset:.3}"));
                set("x-ratelimit-reset-after", format!("{secs:.3}"));
                set("x-ratelimit-bucket", bucket.to_string());
            }
            r
        }
        Some(Fault::Http(code)) => proxy_page(StatusCode::from_u16(code).unwrap()),
        Some(Fault::Discord {
            status,
            code,
            message,
        }) => err(status, code, &message),
        Some(other) => unreachable!("{other:?} is answered by `answer` or refused at inject"),
    }
}
