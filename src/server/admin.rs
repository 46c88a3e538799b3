//! The loopback admin endpoints `POST /admin/digest` and `POST /admin/test-alert`: let
//! `mentiondesk digest --now` and `mentiondesk test-alert` ask the running daemon, because
//! sled lets only one process open the store (and the daemon's own credentials are what a
//! test alert should prove). Callers prove they may by a bearer token the daemon writes next
//! to the store (mode 0600) at start-up: whoever can read the store's directory may ask,
//! nobody else. It
//! also answers only loopback peers and refuses anything a reverse proxy forwarded, since
//! `[server].listen` is usually reachable from the internet for Slack's callbacks.

use crate::chat::setup;
use crate::clock::Clock;
use crate::digest::{self, DigestError, DigestJob};
use crate::model::Target;
use crate::relay::Platforms;
use crate::store::Store;
use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subtle::ConstantTimeEq;

#[derive(Clone)]
pub(crate) struct Admin {
    pub(crate) token: Arc<str>,
    pub(crate) jobs: Arc<[DigestJob]>,
    pub(crate) rules: Arc<[String]>,
    pub(crate) store: Store,
    pub(crate) clock: Clock,
    /// The chat platforms the daemon posts with, for test alerts.
    pub(crate) platforms: Platforms,
    /// Every configured alert, escalation and digest target, deduplicated.
    pub(crate) targets: Arc<[Target]>,
    /// `[discord].application_id`, for the invite URL in a permissions fix.
    pub(crate) discord_application: Option<u64>,
}

/// Where the admin token lives: beside the store, `<store path>.admin-token`.
pub fn token_path(store: &Path) -> PathBuf {
    let mut p = store.as_os_str().to_owned();
    p.push(".admin-token");
    PathBuf::from(p)
}

/// Writes a fresh random token readable only by this user, and returns it.
pub(crate) fn write_token(path: &Path) -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(std::io::Error::other)?;
    let token = hex::encode(bytes);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // A fresh file every time: an old one may have looser permissions, and `create_new`
    // refuses to follow a symlink planted in its place.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    opts.open(path)?.write_all(token.as_bytes())?;
    Ok(token)
}

#[derive(serde::Deserialize, Default)]
struct DigestRequest {
    name: Option<String>,
}

/// Headers a reverse proxy adds: a request carrying one came from elsewhere.
const FORWARDED: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

/// Refuses a request that is not from this machine or lacks the admin token; `command` is
/// the CLI command that should have sent it.
fn refuse(admin: &Admin, peer: SocketAddr, headers: &HeaderMap, command: &str) -> Option<Response> {
    if !peer.ip().is_loopback() || FORWARDED.iter().any(|h| headers.contains_key(*h)) {
        return Some(
            (
                StatusCode::FORBIDDEN,
                "the admin endpoint answers only on this machine (loopback, not through a proxy)",
            )
                .into_response(),
        );
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !bool::from(given.as_bytes().ct_eq(admin.token.as_bytes())) {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                format!("missing or wrong admin token; run `mentiondesk {command}` as the user that runs the daemon, with the same config"),
            )
                .into_response(),
        );
    }
    None
}

pub(crate) async fn digest(
    admin: Admin,
    peer: SocketAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = refuse(&admin, peer, &headers, "digest --now") {
        return refused;
    }
    let req: DigestRequest = match json_body(&body, r#"{"name": "Mentions digest"}"#) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    let now = admin.clock.now();
    match digest::queue_now(
        &admin.store,
        &admin.rules,
        &admin.jobs,
        req.name.as_deref(),
        now,
    )
    .await
    {
        Ok(queued) => {
            let list: Vec<_> = queued
                .iter()
                .map(|(name, post)| {
                    let job = admin.jobs.iter().find(|j| &j.name == name);
                    json!({
                        "name": name,
                        "title": post.title,
                        "to": job.map(|j| j.to.iter().map(|t| t.to_string()).collect::<Vec<_>>()).unwrap_or_default(),
                        "chart": post.chart.is_some(),
                    })
                })
                .collect();
            Json(json!({ "queued": list })).into_response()
        }
        Err(e @ (DigestError::UnknownName { .. } | DigestError::NotConfigured)) => {
            (StatusCode::BAD_REQUEST, e.to_string()).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "digest --now failed");
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    }
}

/// An admin request's optional JSON body: the defaults when empty, else a 400 that shows
/// what to send (`example`).
fn json_body<T: serde::de::DeserializeOwned + Default>(
    body: &Bytes,
    example: &str,
) -> Result<T, Box<Response>> {
    if body.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        Box::new(
            (
                StatusCode::BAD_REQUEST,
                format!("the body must be JSON like {example}: {e}"),
            )
                .into_response(),
        )
    })
}

#[derive(serde::Deserialize, Default)]
struct TestAlertRequest {
    /// One target (`slack:#x`, `discord:<id>`) instead of every configured one.
    to: Option<String>,
}

/// `POST /admin/test-alert`: posts the test alert to every configured target (or the one
/// asked for) and answers `{"results": [{"target", "ok", "detail"}]}`. Nothing is stored.
pub(crate) async fn test_alert(
    admin: Admin,
    peer: SocketAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = refuse(&admin, peer, &headers, "test-alert") {
        return refused;
    }
    let req: TestAlertRequest = match json_body(&body, r#"{"to": "slack:#pr-alerts"}"#) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    match send_test_alerts(
        &admin.platforms,
        &admin.targets,
        req.to.as_deref(),
        admin.clock.now(),
        admin.discord_application,
    )
    .await
    {
        Ok(results) => {
            let list: Vec<_> = results
                .into_iter()
                .map(|(target, outcome)| {
                    let (ok, detail) = match outcome {
                        Ok(d) => (true, d),
                        Err(d) => (false, d),
                    };
                    json!({ "target": target.to_string(), "ok": ok, "detail": detail })
                })
                .collect();
            Json(json!({ "results": list })).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

/// Posts the test alert to `to` (any valid target) or else to every target in `targets`, all
/// at once; one outcome per target, in target order, `Err` being the problem with its fix. `Err` as a
/// whole when `to` is not a target or there is nothing to post to.
pub(crate) async fn send_test_alerts(
    platforms: &Platforms,
    targets: &[Target],
    to: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
    discord_application: Option<u64>,
) -> Result<Vec<(Target, Result<String, String>)>, String> {
    let chosen: Vec<Target> = match to {
        Some(t) => vec![Target::parse(t)?],
        None => targets.to_vec(),
    };
    if chosen.is_empty() {
        return Err(
            "no alert target is configured: give a rule an alert target (alert = [\"slack:#pr-alerts\"]) or pass --to TARGET".into(),
        );
    }
    // All at once, so a platform that never answers costs one timeout, not one per target
    // (the CLI asking the daemon waits for the whole answer); results stay in target order.
    let posts = chosen.iter().map(|target| {
        let platform = platforms.for_target(target);
        async move {
            let outcome = setup::post_test_alert(
                platform.as_ref(),
                target.channel(),
                now,
                discord_application,
            )
            .await;
            match &outcome {
                Ok(_) => tracing::info!(target = %target, "test alert posted"),
                Err(problem) => tracing::warn!(target = %target, %problem, "test alert failed"),
            }
            outcome
        }
    });
    let outcomes = futures_util::future::join_all(posts).await;
    let out: Vec<_> = chosen.into_iter().zip(outcomes).collect();
    Ok(out)
}
