//! `POST /ingest/{source}`: mentions pushed by a `webhook` source's sender. Each request is
//! checked in this order, and refused with a JSON `{"error": …}` that names the problem but
//! never the secret:
//!
//! 1. 503 while the daemon shuts down;
//! 2. 404 when no webhook source has that name (a source of another kind is the same miss in
//!    the same map, so the two cannot be told apart, by answer or by timing; no secret is
//!    touched before the name is known);
//! 3. 401 when `X-Mentiondesk-Timestamp` / `X-Mentiondesk-Signature` are missing or malformed,
//!    or the timestamp is more than five minutes old or ahead (checked before the body is read);
//! 4. 413 when the body is over the source's `max_body_bytes`;
//! 5. 401 when the signature, `v1=<hex HMAC-SHA256 of "v1:{timestamp}:{body}">` with the
//!    source's secret, does not match (compared in constant time);
//! 6. 400 when the body is not a JSON object or array.
//!
//! The good items are then handed to the intake (`sources::webhook::Delivery`) and the answer
//! waits for it: 202 once they are stored and flushed, or 400 listing the bad items by index
//! and reason when some were bad (the good ones are stored all the same); 503 if they could
//! not be stored in time, so the sender retries (repeated items are dropped by their id).
//! Every outcome is recorded in the source's `/healthz` entry: requests refused before their
//! signature was checked only as `refused_total`/`last_refused`, never as the source's health.

use crate::clock::Clock;
use crate::model::Secret;
use crate::shutdown::Shutdown;
use crate::sources::poll::{Health, PollOutcome};
use crate::sources::webhook::{self, BadItem, Delivery, WebhookConfig};
use crate::sources::SourceState;
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub(crate) const TIMESTAMP_HEADER: &str = "x-mentiondesk-timestamp";
pub(crate) const SIGNATURE_HEADER: &str = "x-mentiondesk-signature";
/// The same replay window as Slack's callbacks.
const MAX_SKEW_SECS: i64 = super::slack::MAX_SKEW_SECS;

/// Why a request's signature was refused (401). Messages say what to fix, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum VerifyError {
    #[error("missing X-Mentiondesk-Timestamp header: send the Unix time in seconds you signed")]
    MissingTimestamp,
    #[error("X-Mentiondesk-Timestamp is not a Unix time in whole seconds")]
    MalformedTimestamp,
    #[error("missing X-Mentiondesk-Signature header: send v1=<hex HMAC-SHA256 of \"v1:{{timestamp}}:{{body}}\">")]
    MissingSignature,
    #[error("X-Mentiondesk-Signature is not v1=<64 hex digits>")]
    MalformedSignature,
    #[error("the timestamp is {0} s old; requests older than 5 minutes are refused (sign each request when you send it, and check the sender's clock)")]
    Stale(i64),
    #[error("the timestamp is {0} s in the future; requests more than 5 minutes ahead are refused (check the sender's clock)")]
    Future(i64),
    #[error("the signature does not match: sign \"v1:{{timestamp}}:{{body}}\" (the exact body bytes) with the source's secret, HMAC-SHA256, hex")]
    BadSignature,
}

/// The signed timestamp and the signature's bytes, read from the headers; checked before the
/// body is read, so a stale or unsigned request costs no body.
pub(crate) fn check_headers(
    timestamp: Option<&str>,
    signature: Option<&str>,
    now: i64,
) -> Result<(String, Vec<u8>), VerifyError> {
    let ts = timestamp.ok_or(VerifyError::MissingTimestamp)?.trim();
    let sig = signature.ok_or(VerifyError::MissingSignature)?.trim();
    let secs: i64 = ts.parse().map_err(|_| VerifyError::MalformedTimestamp)?;
    let age = now.saturating_sub(secs);
    if age > MAX_SKEW_SECS {
        return Err(VerifyError::Stale(age));
    }
    if -age > MAX_SKEW_SECS {
        return Err(VerifyError::Future(-age));
    }
    let expected = sig
        .strip_prefix("v1=")
        .and_then(|h| hex::decode(h).ok())
        .filter(|bytes| bytes.len() == 32)
        .ok_or(VerifyError::MalformedSignature)?;
    Ok((ts.to_string(), expected))
}

/// Checks `expected` against the HMAC of `v1:{timestamp}:{body}` in constant time.
pub(crate) fn verify(
    secret: &Secret,
    timestamp: &str,
    body: &[u8],
    expected: &[u8],
) -> Result<(), VerifyError> {
    mac(secret.expose(), timestamp, body)
        .verify_slice(expected)
        .map_err(|_| VerifyError::BadSignature)
}

fn mac(secret: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(b"v1:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// The `X-Mentiondesk-Signature` value for `body` sent at `timestamp`: what a sender computes
/// (`openssl dgst -sha256 -hmac`, see README), here for tests and scripts.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = mac(secret, &timestamp.to_string(), body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// One webhook source as the endpoint needs it.
struct Hook {
    secret: Secret,
    max_body_bytes: u64,
    /// How long a delivery waits for the intake (the source's `timeout`).
    timeout: Duration,
}

/// Everything `POST /ingest/{source}` needs: the webhook sources by name, the way to the
/// intake, and where health is recorded.
#[derive(Clone)]
pub(crate) struct IngestEndpoints {
    hooks: Arc<HashMap<String, Hook>>,
    deliveries: mpsc::Sender<Delivery>,
    health: Health,
    clock: Clock,
    shutdown: Shutdown,
    /// When each source last logged a refused request at warn level.
    warned: Arc<std::sync::Mutex<HashMap<String, std::time::Instant>>>,
}

/// Unauthenticated refusals are logged at warn level at most this often per source.
const REFUSAL_WARN_EVERY: Duration = Duration::from_secs(60);

impl IngestEndpoints {
    /// Whether a refusal for `source` may be logged at warn level now (and notes that it was).
    fn warn_now(&self, source: &str) -> bool {
        let now = std::time::Instant::now();
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        match warned.get(source) {
            Some(at) if now.duration_since(*at) < REFUSAL_WARN_EVERY => false,
            _ => {
                warned.insert(source.to_string(), now);
                true
            }
        }
    }
}

impl IngestEndpoints {
    pub(crate) fn new<'a>(
        sources: impl IntoIterator<Item = &'a WebhookConfig>,
        deliveries: mpsc::Sender<Delivery>,
        health: Health,
        clock: Clock,
        shutdown: Shutdown,
    ) -> IngestEndpoints {
        let hooks = sources
            .into_iter()
            .map(|c| {
                let hook = Hook {
                    secret: c.secret.clone(),
                    max_body_bytes: c.common.max_body_bytes,
                    timeout: c.common.timeout,
                };
                (c.common.name.clone(), hook)
            })
            .collect();
        IngestEndpoints {
            hooks: Arc::new(hooks),
            deliveries,
            health,
            clock,
            shutdown,
            warned: Arc::default(),
        }
    }
}

fn answer(code: StatusCode, body: serde_json::Value) -> Response {
    (code, Json(body)).into_response()
}

fn unavailable(error: &str) -> Response {
    let mut r = answer(StatusCode::SERVICE_UNAVAILABLE, json!({ "error": error }));
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    r
}

/// 404 for a name that is not a webhook source, whatever else it is.
pub(crate) fn unknown_source() -> Response {
    answer(
        StatusCode::NOT_FOUND,
        json!({ "error": "no webhook source has this name; add a [[sources]] entry with kind = \"webhook\" and use its name in the path" }),
    )
}

/// `POST /ingest/{name}` (see the module doc for the order of the checks).
pub(crate) async fn ingest(
    ep: IngestEndpoints,
    name: String,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const KIND: &str = "webhook";
    if ep.shutdown.is_triggered() {
        return unavailable("mentiondesk is shutting down; send the delivery again shortly");
    }
    let Some(hook) = ep.hooks.get(&name) else {
        return unknown_source();
    };
    // Before the signature is checked anyone can send anything: such refusals are counted
    // and logged but leave the source's health alone (a forger must not be able to flip it).
    let refuse = |code: StatusCode, reason: String| {
        // At most one warning a minute per source, so a flood of forged requests cannot
        // flood the log; the rest are counted in `refused_total` and logged at debug.
        if ep.warn_now(&name) {
            tracing::warn!(source = %name, status = code.as_u16(), reason = %reason, "refused a webhook delivery (further refusals this minute are only counted)");
        } else {
            tracing::debug!(source = %name, status = code.as_u16(), reason = %reason, "refused a webhook delivery");
        }
        ep.health.record_refused(&name, KIND, &reason);
        answer(code, json!({ "error": reason }))
    };
    // After it, the sender is the configured one: a bad body is its problem to see.
    let refuse_signed = |code: StatusCode, reason: String| {
        tracing::warn!(source = %name, status = code.as_u16(), reason = %reason, "refused a webhook delivery");
        ep.health
            .record_error(&name, KIND, &format!("refused a delivery: {reason}"));
        answer(code, json!({ "error": reason }))
    };

    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let now = ep.clock.now().timestamp();
    let (timestamp, expected) = match check_headers(h(TIMESTAMP_HEADER), h(SIGNATURE_HEADER), now) {
        Ok(v) => v,
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, e.to_string()),
    };

    let too_large = || {
        format!(
            "the body is larger than this source's {} byte cap (max_body_bytes); send fewer items per request",
            hook.max_body_bytes
        )
    };
    let declared = h(header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > hook.max_body_bytes) {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, too_large());
    }
    let limit = usize::try_from(hook.max_body_bytes).unwrap_or(usize::MAX);
    // A body trickled in slowly would hold a connection (and a graceful shutdown) open.
    let read = tokio::time::timeout(hook.timeout, Limited::new(body, limit).collect()).await;
    let body = match read {
        Err(_) => {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {}s (the source's timeout); send it in one go",
                    hook.timeout.as_secs()
                ),
            )
        }
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, too_large())
        }
        Ok(Err(e)) => {
            tracing::warn!(source = %name, error = %e, "could not read a webhook delivery");
            return answer(
                StatusCode::BAD_REQUEST,
                json!({ "error": "the body could not be read" }),
            );
        }
    };

    if let Err(e) = verify(&hook.secret, &timestamp, &body, &expected) {
        return refuse(StatusCode::UNAUTHORIZED, e.to_string());
    }

    let (mentions, bad) = match webhook::decode(&body, &name) {
        Ok(decoded) => decoded,
        Err(reason) => return refuse_signed(StatusCode::BAD_REQUEST, reason),
    };
    let accepted = mentions.len();
    if accepted > 0 {
        let (stored, answered) = oneshot::channel();
        let delivery = Delivery {
            outcome: PollOutcome {
                source: name.clone(),
                mentions,
                state: SourceState::default(),
            },
            stored,
        };
        let handed = tokio::time::timeout(hook.timeout, async {
            ep.deliveries.send(delivery).await.ok()?;
            answered.await.ok()
        })
        .await;
        match handed {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => {
                ep.health
                    .record_error(&name, KIND, &format!("could not store a delivery: {e}"));
                return unavailable("the items could not be stored; send them again (items already stored are recognised by their id)");
            }
            // The intake stopped first: the daemon is shutting down.
            Ok(None) => {
                return unavailable("mentiondesk is shutting down; send the delivery again shortly")
            }
            Err(_) => {
                let reason = format!(
                    "the items were not stored within {}s; send them again (items already stored are recognised by their id)",
                    hook.timeout.as_secs()
                );
                ep.health.record_error(&name, KIND, &reason);
                return unavailable(&reason);
            }
        }
    }

    if bad.is_empty() {
        ep.health.record_success(&name, KIND, accepted);
        tracing::info!(source = %name, items = accepted, "webhook delivery stored");
        return answer(StatusCode::ACCEPTED, json!({ "accepted": accepted }));
    }
    let reason = bad_items(&bad, accepted);
    tracing::warn!(source = %name, accepted, bad = bad.len(), "webhook delivery with bad items");
    if accepted > 0 {
        ep.health.record_partial(&name, KIND, accepted, &reason);
    } else {
        ep.health.record_error(&name, KIND, &reason);
    }
    answer(
        StatusCode::BAD_REQUEST,
        json!({ "error": reason, "accepted": accepted, "bad": bad }),
    )
}

/// The 400's summary: how many items were bad, and that the good ones were kept.
fn bad_items(bad: &[BadItem], accepted: usize) -> String {
    let first = &bad[0];
    format!(
        "{} item{} of {} could not be read (item {}: {}); the other {accepted} {} stored",
        bad.len(),
        if bad.len() == 1 { "" } else { "s" },
        bad.len() + accepted,
        first.index,
        first.reason,
        if accepted == 1 { "was" } else { "were" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::config::Common;

    /// The README's recipe, computed outside this crate: `printf '%s'
    /// 'v1:1700000000:{"id":"1","text":"acme is down"}' | openssl dgst -sha256 -hmac
    /// 'correct horse battery staple'`. Catches a change to the signed message's format,
    /// which tests signing with `sign()` itself cannot.
    #[test]
    fn the_readme_recipe_signature_verifies() {
        let secret = "correct horse battery staple";
        let body = br#"{"id":"1","text":"acme is down"}"#;
        let openssl = "d404e49f18c7551f009f1e64703b52f4b9aaa85bb638f5b349ba73fe0b70cdf5";
        assert_eq!(sign(secret, 1_700_000_000, body), format!("v1={openssl}"));
        let expected = hex::decode(openssl).unwrap();
        verify(&Secret::new(secret), "1700000000", body, &expected).unwrap();
        assert!(verify(&Secret::new(secret), "1700000001", body, &expected).is_err());
    }

    const SECRET: &str = "0123456789abcdef0123";

    /// Endpoints for one webhook source `hook` waiting at most `timeout` for the intake, and
    /// the intake's end of the hand-off.
    fn endpoints(
        timeout: Duration,
        shutdown: Shutdown,
    ) -> (IngestEndpoints, mpsc::Receiver<Delivery>, Health) {
        let mut common = Common::new("hook", Duration::from_secs(60));
        common.timeout = timeout;
        let config = WebhookConfig {
            common,
            secret: Secret::new(SECRET),
        };
        let (tx, rx) = mpsc::channel(1);
        let health = Health::new();
        let ep = IngestEndpoints::new([&config], tx, health.clone(), Clock::System, shutdown);
        (ep, rx, health)
    }

    async fn send(ep: &IngestEndpoints) -> (StatusCode, String) {
        let body = r#"{"id":"1","text":"acme"}"#;
        let ts = chrono::Utc::now().timestamp();
        let mut headers = HeaderMap::new();
        headers.insert(TIMESTAMP_HEADER, ts.to_string().parse().unwrap());
        headers.insert(
            SIGNATURE_HEADER,
            sign(SECRET, ts, body.as_bytes()).parse().unwrap(),
        );
        let r = ingest(ep.clone(), "hook".into(), headers, Body::from(body)).await;
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_answer_waits_for_the_intake_and_says_when_it_cannot_store() {
        let (_trigger, shutdown) = crate::shutdown::channel();
        // Stored: 202 only after the intake answered.
        let (ep, mut rx, health) = endpoints(Duration::from_secs(5), shutdown.clone());
        let intake = tokio::spawn(async move {
            let d = rx.recv().await.unwrap();
            assert_eq!(d.outcome.mentions[0].item_id, "1");
            tokio::time::sleep(Duration::from_millis(100)).await;
            d.stored.send(Ok(())).unwrap();
            // The next one cannot be stored.
            let d = rx.recv().await.unwrap();
            d.stored.send(Err("disk full".into())).unwrap();
            // The next one is never answered: the intake stopped (shutdown).
            drop(rx.recv().await.unwrap());
            rx
        });
        let started = std::time::Instant::now();
        assert_eq!(send(&ep).await.0, StatusCode::ACCEPTED);
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!(health.get("hook").unwrap().mentions_total, 1);

        let (status, body) = send(&ep).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("send them again"), "{body}");
        assert!(health
            .get("hook")
            .unwrap()
            .last_error
            .unwrap()
            .contains("disk full"));

        let (status, body) = send(&ep).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("shutting down"), "{body}");

        // An intake that takes longer than the source's timeout.
        let _rx = intake.await.unwrap();
        let (ep, _rx, _) = endpoints(Duration::from_millis(100), shutdown);
        let (status, body) = send(&ep).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("not stored within"), "{body}");
    }

    #[tokio::test]
    async fn nothing_is_taken_once_shutdown_started() {
        let (trigger, shutdown) = crate::shutdown::channel();
        let (ep, mut rx, _) = endpoints(Duration::from_secs(5), shutdown);
        trigger.trigger();
        let r = ingest(ep, "hook".into(), HeaderMap::new(), Body::empty()).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_signed_request_verifies_and_any_change_does_not() {
        let now = 1_700_000_000;
        let body = br#"{"id":"1","text":"acme"}"#;
        let sig = sign(SECRET, now, body);
        assert!(sig.starts_with("v1=") && sig.len() == 67, "{sig}");
        let secret = Secret::new(SECRET);
        let ts = now.to_string();
        let (t, expected) = check_headers(Some(&ts), Some(&sig), now).unwrap();
        assert_eq!(verify(&secret, &t, body, &expected), Ok(()));
        assert_eq!(
            verify(&secret, &t, br#"{"id":"1","text":"acmf"}"#, &expected),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(
                &Secret::new("another-secret-of-length"),
                &t,
                body,
                &expected
            ),
            Err(VerifyError::BadSignature)
        );
        // The timestamp is part of what is signed.
        let later = (now + 1).to_string();
        let (t, expected) = check_headers(Some(&later), Some(&sig), now).unwrap();
        assert_eq!(
            verify(&secret, &t, body, &expected),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn headers_are_checked_with_a_reason_each() {
        let now = 1_700_000_000;
        let sig = sign(SECRET, now, b"x");
        let ts = now.to_string();
        let check = |ts: Option<&str>, sig: Option<&str>| check_headers(ts, sig, now).err();
        assert_eq!(check(None, Some(&sig)), Some(VerifyError::MissingTimestamp));
        assert_eq!(check(Some(&ts), None), Some(VerifyError::MissingSignature));
        assert_eq!(
            check(Some("soon"), Some(&sig)),
            Some(VerifyError::MalformedTimestamp)
        );
        assert_eq!(
            check(Some(&ts), Some("v0=abcd")),
            Some(VerifyError::MalformedSignature)
        );
        assert_eq!(
            check(Some(&ts), Some("v1=zz")),
            Some(VerifyError::MalformedSignature)
        );
        assert_eq!(
            check(Some(&ts), Some("v1=abcd")),
            Some(VerifyError::MalformedSignature)
        );
        let old = (now - 301).to_string();
        assert_eq!(check(Some(&old), Some(&sig)), Some(VerifyError::Stale(301)));
        let ahead = (now + 301).to_string();
        assert_eq!(
            check(Some(&ahead), Some(&sig)),
            Some(VerifyError::Future(301))
        );
        let edge = (now - 300).to_string();
        assert_eq!(check(Some(&edge), Some(&sig)), None);
        let text = VerifyError::BadSignature.to_string();
        assert!(!text.contains(SECRET));
    }
}
