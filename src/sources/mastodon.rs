//! The `mastodon` source: public hashtag timelines on one or more instances, read forward
//! from a `since_id` kept per instance and tag, plus (with `stream = true` and a token) the
//! streaming API (server-sent events) for low latency. The timeline poll also fills whatever
//! the stream missed while it was down, so a status is never lost; the intake drops the
//! second copy (same `uri`).
//! It does not filter by rules, and it does not read home or public timelines.

use super::config::{Common, KindConfig};
use super::html::html_to_text;
use super::http::{decode_json, redact_url, Fetcher};
use super::stream::{StreamBuffer, TaskGuard, RECONNECT};
use super::{Source, SourceError, SourceKind, SourceState};
use crate::config::{Reader, Table};
use crate::model::{Mention, Secret};
use chrono::{DateTime, Utc};
use reqwest::Url;
use serde::Deserialize;
use std::time::Duration;
use tokio::time::Instant;

/// Statuses per timeline request (Mastodon's maximum for tag timelines).
pub(crate) const PAGE_LIMIT: usize = 40;
/// Pages one poll reads per instance and tag; the next poll continues from `since_id`.
pub(crate) const MAX_PAGES_PER_TAG: usize = 10;
/// With a stream, the timelines are read again once this share of `every` has passed: the
/// poll loop waits `every` ±10 % between polls, so its interval polls always read, while the
/// polls each streamed status wakes never do.
pub(crate) const INTERVAL_SHARE: f64 = 0.9;
/// Connection problems in a row (the drop, then failed reconnects) before a poll that has
/// nothing to hand on counts as failed: a single drop is reconnected and read up alone, so
/// until then the source is only degraded.
pub(crate) const STREAM_FAILING_AFTER: u32 = 3;

/// `kind = "mastodon"`: instances and hashtags to follow, and the optional streaming API.
#[derive(Debug, Clone, PartialEq)]
pub struct MastodonConfig {
    pub(crate) common: Common,
    /// Instance base URLs, e.g. `https://mastodon.social`.
    pub(crate) instances: Vec<String>,
    /// Hashtags to follow, without `#`.
    pub(crate) tags: Vec<String>,
    /// An access token (timelines of instances that require one, and streaming).
    pub(crate) token: Option<Secret>,
    /// Also hold the streaming API (SSE) open for low latency; needs `token`.
    pub(crate) stream: bool,
}

impl KindConfig for MastodonConfig {
    const KIND: &'static str = "mastodon";
    const KEYS: &'static [&'static str] = &["instances", "tags", "token", "stream"];
    const DEFAULT_EVERY: Duration = Duration::from_secs(120);

    fn read(r: &mut Reader, t: &Table, key: &str, common: Common) -> Option<MastodonConfig> {
        let instances = r.string_array(t, key, "instances");
        let tags: Vec<String> = r
            .string_array(t, key, "tags")
            .into_iter()
            .map(|tag| tag.trim_start_matches('#').to_string())
            .collect();
        let stream = r.boolean(t, key, "stream").unwrap_or(false);
        let token = r.optional_secret(t, key, "token", "MASTODON_TOKEN");
        let line = r.table_line(t);
        if instances.is_empty() {
            r.problem(
                line,
                &format!("{key}.instances"),
                "missing; add instances = [\"https://mastodon.social\"]",
            );
        }
        for i in &instances {
            r.check_url(t, key, "instances", i, false);
        }
        if tags.is_empty() {
            r.problem(
                line,
                &format!("{key}.tags"),
                "missing; add tags = [\"acme\"] (hashtags without #)",
            );
        }
        if stream && token.is_none() {
            let line = r.key_line(t, "stream");
            r.problem(
                line,
                &format!("{key}.token"),
                "stream = true needs token = \"${MASTODON_TOKEN}\" (the streaming API asks for one)",
            );
        }
        Some(MastodonConfig {
            common,
            instances,
            tags,
            token,
            stream,
        })
    }

    fn common(&self) -> &Common {
        &self.common
    }

    fn build(&self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(MastodonSource::new(self)?))
    }
}

/// Watches hashtags on Mastodon instances.
pub(crate) struct MastodonSource {
    name: String,
    instances: Vec<String>,
    tags: Vec<String>,
    token: Option<Secret>,
    stream: bool,
    fetcher: Fetcher,
    buffer: StreamBuffer,
    tasks: Vec<TaskGuard>,
    /// Which instances/tags failed in the last poll that still delivered; see `take_warning`.
    warning: Option<String>,
    /// The source's `every`: with a stream the timelines are read once per `every` and after
    /// each (re)connect, never per streamed status (each streamed status wakes a poll, and
    /// Mastodon allows only 300 requests per 5 minutes).
    every: Duration,
    /// When the timelines were last read.
    last_timeline: Option<Instant>,
    /// What the last timeline read had to work around, repeated by the polls in between so
    /// `/healthz` does not flip to healthy while an instance is still failing.
    timeline_warning: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Status {
    id: String,
    uri: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    content: String,
    /// The content warning; `sensitive` is true with it, and may be true without it (media).
    #[serde(default)]
    spoiler_text: String,
    #[serde(default)]
    language: Option<String>,
    account: Account,
    #[serde(default)]
    reblog: Option<Box<Status>>,
}

#[derive(Debug, Clone, Deserialize)]
struct Account {
    acct: String,
    #[serde(default)]
    followers_count: Option<u64>,
}

impl MastodonSource {
    pub(crate) fn new(spec: &MastodonConfig) -> Result<MastodonSource, SourceError> {
        let api = spec;
        if api.instances.is_empty() || api.tags.is_empty() {
            return Err(SourceError::Config(format!(
                "source {:?}: kind \"mastodon\" needs instances = [\"https://…\"] and tags = [\"…\"]",
                spec.common.name
            )));
        }
        if api.stream && api.token.is_none() {
            return Err(SourceError::Config(format!(
                "source {:?}: stream = true needs token = \"${{MASTODON_TOKEN}}\"",
                spec.common.name
            )));
        }
        Ok(MastodonSource {
            name: spec.common.name.clone(),
            instances: api
                .instances
                .iter()
                .map(|i| i.trim_end_matches('/').to_string())
                .collect(),
            tags: api.tags.clone(),
            token: api.token.clone(),
            stream: api.stream,
            fetcher: Fetcher::new(&spec.common)?,
            buffer: StreamBuffer::new(),
            tasks: Vec::new(),
            warning: None,
            every: spec.common.every,
            last_timeline: None,
            timeline_warning: None,
        })
    }

    fn auth_header(&self) -> Option<String> {
        self.token
            .as_ref()
            .map(|t| format!("Bearer {}", t.expose()))
    }

    fn start_streams(&mut self) {
        if !self.stream || !self.tasks.is_empty() {
            return;
        }
        for instance in &self.instances {
            for tag in &self.tags {
                let task = SseTask {
                    source: self.name.clone(),
                    instance: instance.clone(),
                    tag: tag.clone(),
                    auth: self.auth_header(),
                    fetcher: self.fetcher.clone(),
                    buffer: self.buffer.clone(),
                };
                self.tasks.push(TaskGuard::spawn(task.run()));
            }
        }
    }

    /// Reads one instance's tag timeline forward from `since` (or its newest page on the
    /// first poll). Returns the statuses and the new `since_id`.
    async fn timeline(
        &self,
        instance: &str,
        tag: &str,
        since: Option<String>,
    ) -> Result<(Vec<Status>, Option<String>), SourceError> {
        let auth = self.auth_header();
        let mut headers = vec![("accept", "application/json")];
        if let Some(a) = auth.as_deref() {
            headers.push(("authorization", a));
        }
        let mut since = since;
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES_PER_TAG {
            let mut url = Url::parse(instance).map_err(|e| {
                SourceError::Config(format!("instance {instance:?} is not a URL: {e}"))
            })?;
            url.path_segments_mut()
                .map_err(|_| SourceError::Config(format!("instance {instance:?} is not a URL")))?
                .pop_if_empty()
                .extend(["api", "v1", "timelines", "tag", tag]);
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("limit", &PAGE_LIMIT.to_string());
                // min_id (not since_id) returns the statuses right after it, oldest page
                // first, so a burst larger than one page is read in full, page by page.
                if let Some(s) = &since {
                    q.append_pair("min_id", s);
                }
            }
            let response = self.fetcher.get(url.as_str(), &headers).await?;
            let page: Vec<Status> = decode_json(&response.bytes, "the Mastodon timeline API")?;
            let full = page.len() >= PAGE_LIMIT;
            let newest = page
                .iter()
                .map(|s| s.id.clone())
                .max_by(|a, b| cmp_ids(a, b));
            let first_poll = since.is_none();
            out.extend(page);
            match newest {
                Some(id) if since.as_ref().is_none_or(|s| cmp_ids(&id, s).is_gt()) => {
                    since = Some(id)
                }
                _ => break,
            }
            if !full || first_poll {
                break;
            }
        }
        Ok((out, since))
    }
}

/// Mastodon ids are decimal strings of growing length; compare them as numbers.
fn cmp_ids(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn since_key(instance: &str, tag: &str) -> String {
    format!("since_id {instance} #{tag}")
}

#[async_trait::async_trait]
impl Source for MastodonSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Mastodon
    }

    async fn poll(&mut self, state: &mut SourceState) -> Result<Vec<Mention>, SourceError> {
        self.warning = None;
        self.start_streams();
        let streamed = self.buffer.drain();
        let mut mentions = streamed.mentions;
        // The stream delivers while it is up; the timelines fill the gaps: once after every
        // (re)connect (what was said while it was down), and once per interval (what a stream
        // may not carry). A poll woken by a streamed status, or by a drop, reads nothing: a
        // drop is read up after the reconnect, or at the next interval if that takes long.
        // A stream that keeps dropping is read up at most once per reconnect, and its
        // reconnects back off to one a minute (`RECONNECT`).
        let interval_due = self
            .last_timeline
            .is_none_or(|at| at.elapsed() >= self.every.mul_f64(INTERVAL_SHARE));
        if self.stream && !interval_due && !streamed.connect {
            let mut warnings: Vec<String> = self.timeline_warning.iter().cloned().collect();
            if let Some(err) = streamed.error {
                tracing::warn!(source = %self.name, error = %err, failures_in_row = streamed.failures_in_row, "stream interrupted; the timelines are read when it is back");
                if mentions.is_empty() && streamed.failures_in_row >= STREAM_FAILING_AFTER {
                    return Err(SourceError::Network(format!(
                        "{err} ({} connection failures in a row)",
                        streamed.failures_in_row
                    )));
                }
                warnings.push(format!("{err}; reconnecting"));
            }
            self.warning = (!warnings.is_empty()).then(|| warnings.join("; "));
            return Ok(unique(mentions));
        }
        self.last_timeline = Some(Instant::now());
        let mut failures = Vec::new();
        let mut succeeded = 0usize;
        for instance in self.instances.clone() {
            for tag in self.tags.clone() {
                let key = since_key(&instance, &tag);
                let since = state.extra.get(&key).cloned();
                match self.timeline(&instance, &tag, since).await {
                    Ok((statuses, since)) => {
                        succeeded += 1;
                        if let Some(s) = since {
                            state.extra.insert(key, s);
                        }
                        mentions.extend(
                            statuses
                                .into_iter()
                                .map(|s| to_mention(s, &self.name, &instance)),
                        );
                    }
                    Err(e) => {
                        tracing::warn!(source = %self.name, instance = %redact_url(&instance), tag = %tag, error = %e, "timeline poll failed");
                        failures.push((instance.clone(), tag.clone(), e));
                    }
                }
            }
        }
        if !failures.is_empty() {
            self.warning = Some(partial_warning(&failures, succeeded));
        }
        self.timeline_warning = self.warning.clone();
        if succeeded == 0 && !failures.is_empty() {
            if !mentions.is_empty() {
                // Hand over what the stream brought; the timelines are read again at the
                // next interval or reconnect (not per streamed status: a failing instance is
                // not hammered).
                return Ok(unique(mentions));
            }
            self.warning = None;
            let (instance, tag, e) = failures.remove(0);
            return Err(prefix(e, &format!("{} #{tag}: ", redact_url(&instance))));
        }
        if let Some(err) = streamed.error {
            // The timelines answered, so nothing is missed: the source is degraded, not down.
            tracing::warn!(source = %self.name, error = %err, "stream interrupted; the timeline poll fills the gap");
            let warning = format!("{err}; reconnecting");
            self.warning = Some(match self.warning.take() {
                Some(w) => format!("{w}; {warning}"),
                None => warning,
            });
        }
        Ok(unique(mentions))
    }

    fn take_warning(&mut self) -> Option<String> {
        self.warning.take()
    }

    fn disconnect(&mut self) {
        // Dropping the guards aborts the streams; a fresh buffer drops what they streamed but
        // no poll stored. The next poll (if this replica takes the source back) connects
        // again and reads the timelines from the stored `since_id`s first.
        self.tasks.clear();
        self.buffer = StreamBuffer::new();
        self.last_timeline = None;
    }

    async fn ready(&mut self) {
        if self.stream {
            self.buffer.ready().await
        } else {
            std::future::pending::<()>().await
        }
    }

    fn max_backoff(&self) -> Duration {
        if self.stream {
            Duration::from_secs(300)
        } else {
            super::poll::MAX_BACKOFF
        }
    }
}

/// One mention per status: a status and its reblogs (or the same status streamed and read
/// from a timeline, or found under two tags) all carry the original's `uri`.
fn unique(mut mentions: Vec<Mention>) -> Vec<Mention> {
    let mut seen = std::collections::HashSet::with_capacity(mentions.len());
    mentions.retain(|m| seen.insert(m.item_id.clone()));
    mentions
}

/// One line naming every failed instance/tag (URLs redacted, errors are secret-free), e.g.
/// `1 of 3 timelines failed: https://b.example #acme: server answered HTTP 502`.
fn partial_warning(failures: &[(String, String, SourceError)], succeeded: usize) -> String {
    let total = failures.len() + succeeded;
    let detail: Vec<String> = failures
        .iter()
        .map(|(instance, tag, e)| format!("{} #{tag}: {e}", redact_url(instance)))
        .collect();
    format!(
        "{} of {total} timelines failed: {}",
        failures.len(),
        detail.join("; ")
    )
}

/// Puts which instance and tag failed in front of a message, keeping the error's kind.
fn prefix(e: SourceError, what: &str) -> SourceError {
    match e {
        SourceError::Parse(m) => SourceError::Parse(format!("{what}{m}")),
        SourceError::Network(m) => SourceError::Network(format!("{what}{m}")),
        other => other,
    }
}

fn to_mention(status: Status, source: &str, instance: &str) -> Mention {
    let status = match status.reblog {
        Some(inner) => *inner,
        None => status,
    };
    let host = Url::parse(instance)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    // Local accounts come without a domain; add the instance's so the handle is unambiguous.
    let acct = if status.account.acct.contains('@') || host.is_empty() {
        status.account.acct.clone()
    } else {
        format!("{}@{host}", status.account.acct)
    };
    Mention {
        item_id: status.uri.clone(),
        source: source.to_string(),
        source_kind: SourceKind::Mastodon.as_str().to_string(),
        url: status.url.clone().or(Some(status.uri.clone())),
        // The content warning is the title: rules match it like the text, and the alert
        // shows it marked as a warning.
        title: Some(status.spoiler_text.trim())
            .filter(|s| !s.is_empty())
            .map(|cw| format!("CW: {cw}")),
        text: html_to_text(&status.content),
        author: Some(format!("@{acct}")),
        author_reach: status.account.followers_count,
        published: status
            .created_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        lang: status.language.filter(|l| !l.is_empty()),
        rating: None,
    }
}

/// One streaming connection (instance + tag), reconnecting with backoff until dropped.
struct SseTask {
    source: String,
    instance: String,
    tag: String,
    auth: Option<String>,
    fetcher: Fetcher,
    buffer: StreamBuffer,
}

impl SseTask {
    async fn run(self) {
        let mut failures = 0u32;
        loop {
            let mut connected = false;
            let error = match self.session(&mut connected).await {
                Ok(()) => "the server ended the stream".to_string(),
                Err(e) => e.to_string(),
            };
            // A drop of a working connection reconnects quickly; only failed attempts back off.
            failures = if connected { 1 } else { failures + 1 };
            let message = format!(
                "stream {} #{}: {error}",
                redact_url(&self.instance),
                self.tag
            );
            let wait = RECONNECT.delay(failures);
            tracing::warn!(source = %self.source, error = %message, retry_in_ms = wait.as_millis() as u64, "stream dropped; reconnecting");
            self.buffer.set_error(message);
            tokio::time::sleep(wait).await;
        }
    }

    /// One connection: reads events until the stream ends or fails.
    async fn session(&self, connected: &mut bool) -> Result<(), SourceError> {
        let mut url = Url::parse(&self.instance)
            .map_err(|e| SourceError::Config(format!("instance is not a URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| SourceError::Config("instance is not a URL".into()))?
            .pop_if_empty()
            .extend(["api", "v1", "streaming", "hashtag"]);
        url.query_pairs_mut().append_pair("tag", &self.tag);
        let mut headers = vec![("accept", "text/event-stream")];
        if let Some(a) = self.auth.as_deref() {
            headers.push(("authorization", a));
        }
        let shown = redact_url(url.as_str());
        let mut response = self.fetcher.open_stream(url.as_str(), &headers).await?;
        // The poll reads the timelines once now: what was said before the stream was up.
        self.buffer.mark_connect();
        *connected = true;
        tracing::info!(source = %self.source, url = %shown, "stream connected");
        let mut parser = SseParser::new(self.fetcher.max_body_bytes() as usize);
        while let Some(chunk) = self.fetcher.next_chunk(&mut response, &shown).await? {
            for event in parser.feed(&chunk)? {
                match event.name.as_str() {
                    "update" => {}
                    // An edit of a status already handed on: the intake keeps one alert per
                    // status (by `uri`), so an edit never makes a second one, and the alert
                    // keeps the words that raised it.
                    "status.update" => {
                        tracing::debug!(source = %self.source, "edited status in the stream; the first version stays");
                        continue;
                    }
                    // `delete` carries only the status id; an alert already posted stays on
                    // the desk, where people decide about it.
                    "delete" => {
                        tracing::debug!(source = %self.source, id = %event.data, "status deleted upstream");
                        continue;
                    }
                    _ => continue,
                }
                match serde_json::from_str::<Status>(&event.data) {
                    Ok(status) => {
                        let m = to_mention(status, &self.source, &self.instance);
                        self.buffer.push(None, Some(m));
                    }
                    Err(e) => {
                        // One bad event is skipped; the timeline poll still has the status.
                        tracing::warn!(source = %self.source, error = %e, "malformed status in the stream; skipped");
                    }
                }
            }
        }
        Ok(())
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub(crate) name: String,
    pub(crate) data: String,
}

/// Incremental `text/event-stream` parser: bytes in, complete events out. Comments
/// (`:thump` heartbeats) are dropped; an event larger than the cap is an error, not a
/// memory problem.
#[derive(Debug)]
pub(crate) struct SseParser {
    pending: Vec<u8>,
    name: String,
    data: String,
    cap: usize,
}

impl SseParser {
    pub(crate) fn new(cap: usize) -> SseParser {
        SseParser {
            pending: Vec::new(),
            name: String::new(),
            data: String::new(),
            cap,
        }
    }

    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SourceError> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if !self.data.is_empty() || !self.name.is_empty() {
                    let name = if self.name.is_empty() {
                        "message".to_string()
                    } else {
                        std::mem::take(&mut self.name)
                    };
                    events.push(SseEvent {
                        name,
                        data: std::mem::take(&mut self.data),
                    });
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            match field {
                "event" => self.name = value.to_string(),
                "data" => {
                    if !self.data.is_empty() {
                        self.data.push('\n');
                    }
                    self.data.push_str(value);
                }
                _ => {}
            }
        }
        if self.pending.len() + self.data.len() > self.cap {
            return Err(SourceError::TooLarge {
                limit: self.cap as u64,
            });
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_split_across_chunks_and_heartbeats_dropped() {
        let mut p = SseParser::new(1 << 20);
        assert!(p.feed(b":thump\n\nevent: upd").unwrap().is_empty());
        let ev = p
            .feed(b"ate\ndata: {\"a\":\ndata: 1}\n\r\nevent: delete\ndata: 42\n\n")
            .unwrap();
        assert_eq!(
            ev,
            [
                SseEvent {
                    name: "update".into(),
                    data: "{\"a\":\n1}".into()
                },
                SseEvent {
                    name: "delete".into(),
                    data: "42".into()
                }
            ]
        );
    }

    #[test]
    fn an_oversized_event_is_refused() {
        let mut p = SseParser::new(16);
        let err = p.feed(&[b'x'; 64]).unwrap_err();
        assert!(matches!(err, SourceError::TooLarge { .. }));
    }

    #[test]
    fn ids_compare_as_numbers() {
        assert!(cmp_ids("110", "99").is_gt());
        assert!(cmp_ids("103270115826048975", "103270115826048976").is_lt());
    }

    #[test]
    fn statuses_map_with_reach_language_and_full_handles() {
        let s: Status = serde_json::from_str(
            r#"{"id":"103270115826048975","created_at":"2019-12-08T03:48:33.901Z","in_reply_to_id":null,
                "sensitive":false,"spoiler_text":"","visibility":"public","language":"en",
                "uri":"https://mastodon.social/users/Gargron/statuses/103270115826048975",
                "url":"https://mastodon.social/@Gargron/103270115826048975",
                "content":"<p>My <a href=\"https://mastodon.social/tags/acme\">#<span>acme</span></a> phone &amp; me</p>",
                "reblog":null,"account":{"id":"1","username":"Gargron","acct":"Gargron","display_name":"Eugen",
                "followers_count":322930,"url":"https://mastodon.social/@Gargron"},"media_attachments":[],"tags":[]}"#,
        )
        .unwrap();
        let m = to_mention(s, "masto", "https://mastodon.social");
        assert_eq!(
            m.item_id,
            "https://mastodon.social/users/Gargron/statuses/103270115826048975"
        );
        assert_eq!(m.text, "My #acme phone & me");
        assert_eq!(m.author.as_deref(), Some("@Gargron@mastodon.social"));
        assert_eq!(m.author_reach, Some(322930));
        assert_eq!(m.lang.as_deref(), Some("en"));
        assert_eq!(m.title, None);
    }
}
