//! The `webhook` source: mentions pushed to `POST /ingest/{name}` by anything that can send a
//! webhook (a review platform, Zapier, a support tool, a CRM) instead of polled from a service.
//! This file owns the source's config (`secret`, the body cap), what a delivery's body means
//! (the `file` source's JSON shape, one object or an array, decoded item by item) and the
//! hand-off to the intake. It does not verify signatures or speak HTTP (`server::ingest` does)
//! and it does not store anything (the intake does).
//!
//! The hand-off: `app` gives the server one `mpsc::Sender<Delivery>` and the intake its
//! receiver (`Intake::with_deliveries`). A verified, decoded delivery travels to the intake as a
//! `PollOutcome` with a oneshot `stored`; the intake stores it exactly as it stores a poll (one
//! `Store::accept` transaction, which returns only after the flush) and only then answers
//! `stored`. The HTTP handler answers 202 after that answer, so a 202 means the items survive
//! a crash; a dropped or failed answer (shutdown, store error) becomes a 503 and the sender
//! sends again, which the store's dedup by source and item id makes harmless. No poll loop runs
//! for a webhook source: there is nothing to poll, and `/healthz` counts deliveries instead.

use super::config::{Common, KindConfig};
use super::file::json_mention;
use super::poll::PollOutcome;
use super::{Source, SourceError, SourceKind, SourceState};
use crate::config::{Reader, Table};
use crate::model::{Mention, Secret};
use serde::Serialize;
use std::time::Duration;
use tokio::sync::oneshot;

/// The shortest secret accepted: an HMAC key much shorter than this can be guessed offline
/// from one signed request.
pub(crate) const MIN_SECRET_CHARS: usize = 16;

/// The body cap unless `max_body_bytes` says otherwise: deliveries are batches of short texts.
pub(crate) const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;

/// `kind = "webhook"`: mentions delivered to `POST /ingest/{name}`, signed with `secret`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// `max_body_bytes` defaults to [`DEFAULT_MAX_BODY_BYTES`] here; `timeout` is how long a
    /// delivery waits for the intake to store it before it is answered 503.
    pub(crate) common: Common,
    /// The HMAC-SHA256 key senders sign with.
    pub(crate) secret: Secret,
}

impl KindConfig for WebhookConfig {
    const KIND: &'static str = "webhook";
    const KEYS: &'static [&'static str] = &["secret"];
    /// Not used: nothing is polled.
    const DEFAULT_EVERY: Duration = Duration::from_secs(60);

    fn read(r: &mut Reader, t: &Table, key: &str, mut common: Common) -> Option<WebhookConfig> {
        let secret = r.secret(t, key, "secret", "MENTIONDESK_WEBHOOK_SECRET")?;
        if secret.expose().trim() != secret.expose() {
            // Senders sign with the secret as written; a stray newline from an env file
            // would make every delivery fail its signature.
            let line = r.key_line(t, "secret");
            r.problem(
                line,
                &format!("{key}.secret"),
                "starts or ends with whitespace (often a newline from an env file); remove it, senders sign with the exact value".to_string(),
            );
            return None;
        }
        let chars = secret.expose().chars().count();
        if chars < MIN_SECRET_CHARS {
            // Only the length is named: the value never appears in a problem.
            let line = r.key_line(t, "secret");
            r.problem(
                line,
                &format!("{key}.secret"),
                format!(
                    "is too short ({chars} characters); use at least {MIN_SECRET_CHARS} random characters, e.g. from `openssl rand -hex 32`"
                ),
            );
            return None;
        }
        if !t.contains_key("max_body_bytes") {
            common.max_body_bytes = DEFAULT_MAX_BODY_BYTES;
        }
        Some(WebhookConfig { common, secret })
    }

    fn common(&self) -> &Common {
        &self.common
    }

    fn build(&self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(WebhookSource {
            name: self.common.name.clone(),
        }))
    }
}

/// What `scan --once` (and anything else that polls every source) gets for a webhook source:
/// nothing, at once. Its mentions arrive through `server::ingest` while the daemon runs.
struct WebhookSource {
    name: String,
}

#[async_trait::async_trait]
impl Source for WebhookSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Webhook
    }

    async fn poll(&mut self, _state: &mut SourceState) -> Result<Vec<Mention>, SourceError> {
        Ok(Vec::new())
    }
}

/// A verified delivery on its way to the intake, and where the intake answers once the batch
/// is stored and flushed (`Ok`) or could not be stored (`Err`, the reason, free of secrets).
/// Dropped unanswered when the intake stops first (shutdown).
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) outcome: PollOutcome,
    pub(crate) stored: oneshot::Sender<Result<(), String>>,
}

/// An item of a delivery that is not a mention, by its position in the batch (0-based; a
/// single object is item 0).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct BadItem {
    pub(crate) index: usize,
    pub(crate) reason: String,
}

/// A delivery's body read item by item: the good items as mentions of `source`, the bad ones
/// with their reasons. `Err` when the body as a whole is not a JSON object or array.
pub(crate) fn decode(body: &[u8], source: &str) -> Result<(Vec<Mention>, Vec<BadItem>), String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let items =
        match value {
            serde_json::Value::Array(items) => items,
            object @ serde_json::Value::Object(_) => vec![object],
            _ => return Err(
                "the body must be one JSON object or an array of them, each with at least \"text\""
                    .into(),
            ),
        };
    let mut mentions = Vec::with_capacity(items.len());
    let mut bad = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match json_mention(item, source, SourceKind::Webhook) {
            Ok(m) => mentions.push(m),
            Err(reason) => bad.push(BadItem { index, reason }),
        }
    }
    Ok((mentions, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_object_or_an_array_decodes_item_by_item() {
        let (m, bad) = decode(br#"{"id": "r1", "text": "acme broke"}"#, "hook").unwrap();
        assert_eq!(m.len(), 1);
        assert!(bad.is_empty());
        assert_eq!(
            (
                m[0].item_id.as_str(),
                m[0].source.as_str(),
                m[0].source_kind.as_str()
            ),
            ("r1", "hook", "webhook")
        );

        let body = br#"[
            {"id": 7, "text": "numeric id", "url": "https://reviews.example/7", "published": "2024-05-01T10:00:00Z"},
            {"id": "x", "body": "text is missing"},
            "not an object",
            {"text": "no id: derived from the content"},
            {"id": "d", "text": "bad date", "published": "yesterday"}
        ]"#;
        let (m, bad) = decode(body, "hook").unwrap();
        let ids: Vec<_> = m.iter().map(|m| m.item_id.as_str()).collect();
        assert_eq!(ids.len(), 2, "{ids:?}");
        assert_eq!(ids[0], "7");
        assert_eq!(ids[1].len(), 32, "a content id");
        let at: Vec<_> = bad.iter().map(|b| b.index).collect();
        assert_eq!(at, [1, 2, 4]);
        assert!(bad[0].reason.contains("missing field `text`"), "{bad:?}");

        assert!(decode(b"not json", "hook")
            .unwrap_err()
            .contains("not JSON"));
        assert!(decode(b"42", "hook").unwrap_err().contains("array"));
        assert_eq!(decode(b"[]", "hook").unwrap().0.len(), 0);
    }
}
