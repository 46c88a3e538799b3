//! The `bluesky` source: new posts from a Jetstream websocket (`app.bsky.feed.post`), cut down
//! by a keyword prefilter from the source's `query` before anything else is decoded. The
//! connection lives in a task the source owns; `poll` drains what it kept and persists the
//! cursor (Jetstream's `time_us`), so a restart replays from where the last committed poll
//! ended. Drops reconnect with backoff, alternating to the failover endpoint.
//! With an account (`handle` + `app_password`) it also back-fills from the search API
//! (`search.rs`): posts missed while the stream was down longer than Jetstream replays are
//! found there, as the very same `Mention`, so the intake stores each post once.
//! Without an account it does not search; it never judges posts: the rules do that.
//! Authors are shown by handle with their follower count, looked up on the public AppView
//! (`profiles.rs`), unless `author_details = false`.

mod profiles;
mod richtext;
mod search;

use super::config::{required_query, Common, KindConfig};
use super::http::{is_private, redact_url, STREAM_IDLE_TIMEOUT};
use super::prefilter::Prefilter;
use super::stream::{StreamBuffer, TaskGuard, RECONNECT};
use super::{Source, SourceError, SourceKind, SourceState};
use crate::config::{Reader, Table};
use crate::model::{Mention, Secret};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use reqwest::Url;
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

pub(crate) const DEFAULT_URL: &str = "wss://jetstream2.us-east.bsky.network/subscribe";
pub(crate) const DEFAULT_FAILOVER_URL: &str = "wss://jetstream1.us-west.bsky.network/subscribe";
/// On reconnect, replay this much before the cursor: Jetstream instances stamp `time_us`
/// independently, so after a failover a few seconds of overlap close any gap (the intake drops
/// the repeats by post URI).
pub(crate) const REWIND_US: i64 = 5_000_000;
/// When only rejected events went by, the cursor is persisted at most this often: a restart
/// then re-reads at most this much of the firehose, and the store is not written every second.
pub(crate) const CURSOR_PERSIST_EVERY: Duration = Duration::from_secs(60);
/// How long the first poll listens, so `scan --once` hears something.
pub(crate) const FIRST_POLL_LISTEN: Duration = Duration::from_secs(2);

/// `kind = "bluesky"`: the query that prefilters the firehose, the Jetstream endpoints, and
/// the optional account for the search back-fill.
#[derive(Debug, Clone, PartialEq)]
pub struct BlueskyConfig {
    pub(crate) common: Common,
    pub(crate) query: String,
    /// Jetstream endpoint (default [`DEFAULT_URL`]).
    pub(crate) url: Option<String>,
    /// A second Jetstream endpoint used when the first fails.
    pub(crate) failover_url: Option<String>,
    /// The account (handle, DID or e-mail) that signs in for the search back-fill; set
    /// together with `app_password`, or neither.
    pub handle: Option<String>,
    /// An app password of `handle` (Settings → Privacy and security → App passwords).
    pub(crate) app_password: Option<Secret>,
    /// The XRPC base for signing in and searching (default the Bluesky PDS entryway,
    /// `https://bsky.social/xrpc`); an override for tests and proxies.
    pub(crate) search_url: Option<String>,
    /// Time between back-fill searches (default 5 minutes).
    pub search_every: Option<Duration>,
    /// Look authors' handles and follower counts up on the public AppView (default true).
    pub(crate) author_details: bool,
    /// The XRPC base for those lookups (default [`profiles::DEFAULT_PROFILES_URL`]); an
    /// override for tests and proxies.
    pub(crate) profiles_url: Option<String>,
}

impl KindConfig for BlueskyConfig {
    const KIND: &'static str = "bluesky";
    const KEYS: &'static [&'static str] = &[
        "query",
        "url",
        "failover_url",
        "handle",
        "app_password",
        "search_url",
        "search_every",
        "author_details",
        "profiles_url",
    ];
    const DEFAULT_EVERY: Duration = Duration::from_secs(10);

    fn read(r: &mut Reader, t: &Table, key: &str, common: Common) -> Option<BlueskyConfig> {
        let handle = r
            .string(t, key, "handle")
            .map(|h| h.trim().trim_start_matches('@').to_string());
        let search_url = r.string(t, key, "search_url");
        let search_every = r.duration(t, key, "search_every");
        let query = required_query(r, t, key, "its words prefilter the firehose");
        if query
            .as_deref()
            .is_some_and(|q| super::prefilter::positive_terms(q).is_empty())
        {
            let line = r.table_line(t);
            r.problem(
                line,
                &format!("{key}.query"),
                "names no word to look for (only NOT terms); the firehose cannot be filtered by it",
            );
        }
        let app_password = r.optional_secret(t, key, "app_password", "BLUESKY_APP_PASSWORD");
        search_keys(r, t, key, handle.as_deref());
        if let Some(u) = &search_url {
            r.check_url(t, key, "search_url", u, false);
        }
        let url = r.url(t, key, "url", true);
        let failover_url = r.url(t, key, "failover_url", true);
        let author_details = r.boolean(t, key, "author_details").unwrap_or(true);
        let profiles_url = r.string(t, key, "profiles_url");
        if let Some(u) = &profiles_url {
            r.check_url(t, key, "profiles_url", u, false);
        }
        Some(BlueskyConfig {
            common,
            query: query?,
            url,
            failover_url,
            handle,
            app_password,
            search_url,
            search_every,
            author_details,
            profiles_url,
        })
    }

    fn common(&self) -> &Common {
        &self.common
    }

    fn build(&self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(BlueskySource::new(self)?))
    }
}

/// The optional search back-fill: `handle` and `app_password` come together or not at all,
/// and the other search keys mean nothing without them.
fn search_keys(r: &mut Reader, t: &Table, key: &str, handle: Option<&str>) {
    if handle.is_some_and(str::is_empty) {
        let line = r.key_line(t, "handle");
        r.problem(
            line,
            &format!("{key}.handle"),
            "is empty; write the account's handle, e.g. handle = \"brand.bsky.social\"",
        );
    }
    match (t.contains_key("handle"), t.contains_key("app_password")) {
        (true, false) => {
            let line = r.key_line(t, "handle");
            r.problem(
                line,
                &format!("{key}.app_password"),
                "missing; the search back-fill signs in with handle and app_password together: add app_password = \"${BLUESKY_APP_PASSWORD}\" (create one in Bluesky under Settings → Privacy and security → App passwords), or remove handle to only stream",
            );
        }
        (false, true) => {
            let line = r.key_line(t, "app_password");
            r.problem(
                line,
                &format!("{key}.handle"),
                "missing; the search back-fill signs in with handle and app_password together: add handle = \"brand.bsky.social\" (the account the app password belongs to), or remove app_password to only stream",
            );
        }
        (false, false) => {
            for field in ["search_url", "search_every"] {
                if t.contains_key(field) {
                    let line = r.key_line(t, field);
                    r.problem(
                        line,
                        &format!("{key}.{field}"),
                        "has no effect without handle and app_password (the search back-fill needs an account); add both, or remove this key",
                    );
                }
            }
        }
        (true, true) => {}
    }
}

/// Listens to Jetstream for posts that may mention the brand.
pub(crate) struct BlueskySource {
    name: String,
    endpoints: Vec<String>,
    prefilter: Arc<Prefilter>,
    allow_private: bool,
    connect_timeout: Duration,
    max_frame: usize,
    buffer: StreamBuffer,
    task: Option<TaskGuard>,
    last_persist: Option<Instant>,
    /// The search back-fill, when the source has an account.
    search: Option<search::Search>,
    /// Handle and follower lookups, unless `author_details = false`.
    profiles: Option<profiles::Profiles>,
    /// What the last poll that still delivered had to work around; see `take_warning`.
    warning: Option<String>,
}

impl BlueskySource {
    pub(crate) fn new(spec: &BlueskyConfig) -> Result<BlueskySource, SourceError> {
        let prefilter = Prefilter::from_query(&spec.query).ok_or_else(|| {
            SourceError::Config(format!(
                "source {:?}: kind \"bluesky\" needs a query with at least one word to look for",
                spec.common.name
            ))
        })?;
        let primary = spec.url.clone().unwrap_or_else(|| DEFAULT_URL.to_string());
        let failover = match (&spec.url, &spec.failover_url) {
            (_, Some(f)) => Some(f.clone()),
            // The default pair fails over to each other; a custom endpoint only when asked.
            (None, None) => Some(DEFAULT_FAILOVER_URL.to_string()),
            (Some(_), None) => None,
        };
        tracing::debug!(source = %spec.common.name, keywords = ?prefilter.keywords(), "bluesky prefilter");
        let prefilter = Arc::new(prefilter);
        let search = search::Search::from_config(spec, prefilter.clone())?;
        let profiles = if spec.author_details {
            let base = spec
                .profiles_url
                .as_deref()
                .unwrap_or(profiles::DEFAULT_PROFILES_URL);
            Some(profiles::Profiles::new(
                &spec.common.name,
                base,
                super::http::Fetcher::new(&spec.common)?,
                spec.common.timeout,
            ))
        } else {
            None
        };
        Ok(BlueskySource {
            name: spec.common.name.clone(),
            endpoints: std::iter::once(primary).chain(failover).collect(),
            prefilter,
            allow_private: spec.common.allow_private,
            connect_timeout: spec.common.timeout,
            max_frame: usize::try_from(spec.common.max_body_bytes).unwrap_or(usize::MAX),
            buffer: StreamBuffer::new(),
            task: None,
            last_persist: None,
            search,
            profiles,
            warning: None,
        })
    }

    fn ensure_task(&mut self, cursor: Option<i64>) -> bool {
        if self.task.as_ref().is_some_and(|t| !t.is_finished()) {
            return false;
        }
        let task = Jetstream {
            source: self.name.clone(),
            endpoints: self.endpoints.clone(),
            prefilter: self.prefilter.clone(),
            allow_private: self.allow_private,
            connect_timeout: self.connect_timeout,
            max_frame: self.max_frame,
            buffer: self.buffer.clone(),
            profiles: self.profiles.as_ref().map(profiles::Profiles::shared),
        };
        self.task = Some(TaskGuard::spawn(task.run(cursor)));
        true
    }
}

#[async_trait::async_trait]
impl Source for BlueskySource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Bluesky
    }

    async fn poll(&mut self, state: &mut SourceState) -> Result<Vec<Mention>, SourceError> {
        let started = Instant::now();
        self.warning = None;
        let saved = state.cursor.as_deref().and_then(|c| c.parse::<i64>().ok());
        if let Some(p) = self.profiles.as_mut() {
            p.start();
        }
        let first = self.ensure_task(saved);
        if first {
            self.buffer
                .wait_connected(self.connect_timeout.min(Duration::from_secs(10)))
                .await;
        }
        let listening_since = Instant::now();
        // The search runs before the stream's buffer is drained: if it overran the poll's
        // timeout, the poll loop would drop this future, and streamed posts already taken
        // out of the buffer would be lost with it. Its own budget keeps it well inside.
        let mut mentions = Vec::new();
        let mut search_failing = None;
        if let Some(search) = self.search.as_mut() {
            let budget = self
                .connect_timeout
                .mul_f64(search::BUDGET_SHARE)
                .saturating_sub(started.elapsed());
            search.run_if_due(state, budget, &mut mentions).await;
            search_failing = search.failing();
        }
        if first {
            if self.buffer.is_connected() {
                tokio::time::sleep(FIRST_POLL_LISTEN.saturating_sub(listening_since.elapsed()))
                    .await;
            }
            self.last_persist = Some(Instant::now());
        }
        let drained = self.buffer.drain();
        let persist_due = self
            .last_persist
            .is_none_or(|at| at.elapsed() >= CURSOR_PERSIST_EVERY);
        if !drained.mentions.is_empty() || persist_due {
            if let Some(c) = drained.cursor {
                state.cursor = Some(c);
                self.last_persist = Some(Instant::now());
            }
        }
        tracing::debug!(source = %self.name, events = drained.seen, kept = drained.mentions.len(), "drained jetstream");
        // A post found by two keywords' searches, or found and streamed in the same poll, is
        // handed on once.
        mentions.extend(drained.mentions);
        let mut ids: HashSet<String> = HashSet::with_capacity(mentions.len());
        mentions.retain(|m| ids.insert(m.item_id.clone()));
        if let Some(p) = self.profiles.as_mut() {
            // What is known now; the rest is looked up in the background (`profiles.rs`).
            p.enrich(&mut mentions);
        }
        let mut warnings: Vec<String> = Vec::new();
        if let Some(e) = drained.error {
            if mentions.is_empty() {
                let mut message = e;
                if let Some(s) = search_failing {
                    message.push_str(&format!("; {s}"));
                }
                return Err(SourceError::Network(message));
            }
            warnings.push(e);
        }
        warnings.extend(search_failing);
        if !warnings.is_empty() {
            self.warning = Some(warnings.join("; "));
        }
        Ok(mentions)
    }

    fn take_warning(&mut self) -> Option<String> {
        self.warning.take()
    }

    async fn ready(&mut self) {
        self.buffer.ready().await
    }

    fn disconnect(&mut self) {
        // Dropping the guard aborts the connection task; a fresh buffer drops what it streamed
        // but no poll stored: the replica holding the source now streams from the stored
        // cursor, and so does this one's next poll if it takes the source back.
        self.task = None;
        self.buffer = StreamBuffer::new();
        self.last_persist = None;
    }

    fn max_backoff(&self) -> Duration {
        // The task reconnects on its own backoff; the loop only needs to keep draining.
        Duration::from_secs(10)
    }
}

/// What one Jetstream frame turned out to be.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// Not a new post, or a post without any keyword; `time_us` when it could be read.
    Rejected { time_us: Option<i64> },
    /// A new post with a keyword in its text.
    Post { mention: Box<Mention>, time_us: i64 },
    /// An account's handle changed (Jetstream sends identity events whatever
    /// `wantedCollections` says).
    Identity {
        did: String,
        handle: String,
        time_us: i64,
    },
    /// Not a Jetstream event (bad JSON); skipped.
    Invalid,
}

#[derive(Deserialize)]
struct Event {
    did: String,
    time_us: i64,
    kind: String,
    #[serde(default)]
    commit: Option<Commit>,
}

#[derive(Deserialize)]
struct Commit {
    operation: String,
    collection: String,
    rkey: String,
    #[serde(default)]
    record: Option<Record>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(default)]
    text: String,
    #[serde(default, rename = "createdAt")]
    created_at: Option<String>,
    #[serde(default)]
    langs: Vec<String>,
    /// `app.bsky.richtext.facet`s, kept raw: see `richtext.rs`.
    #[serde(default)]
    facets: serde_json::Value,
    /// `app.bsky.embed.*`, kept raw.
    #[serde(default)]
    embed: serde_json::Value,
    /// `{root, parent}` strong refs when the post is a reply.
    #[serde(default)]
    reply: serde_json::Value,
}

/// Decodes one Jetstream frame, rejecting most of the firehose before parsing it: a frame
/// whose raw bytes contain no keyword cannot be a post that mentions one (JSON never escapes
/// ASCII letters and digits). Public for the throughput bench.
pub fn decode_event(raw: &str, prefilter: &Prefilter, source: &str) -> Decoded {
    if is_identity(raw) {
        return decode_identity(raw);
    }
    if !prefilter.may_contain(raw.as_bytes()) {
        return Decoded::Rejected {
            time_us: scan_time_us(raw),
        };
    }
    let Ok(event) = serde_json::from_str::<Event>(raw) else {
        return Decoded::Invalid;
    };
    let time_us = event.time_us;
    let Some(commit) = event.commit.filter(|c| {
        event.kind == "commit" && c.operation == "create" && c.collection == "app.bsky.feed.post"
    }) else {
        return Decoded::Rejected {
            time_us: Some(time_us),
        };
    };
    // The prefilter sees the resolved text: a keyword only in a link's full URI or a link
    // card counts, as it does for the rules.
    let Some(mention) = commit
        .record
        .map(|r| post_mention(source, &event.did, &commit.rkey, r))
        .filter(|m| prefilter.accepts(&m.text))
    else {
        return Decoded::Rejected {
            time_us: Some(time_us),
        };
    };
    Decoded::Post {
        mention: Box::new(mention),
        time_us,
    }
}

/// The one place a post becomes a `Mention`, for Jetstream and search alike: the same post
/// from either has the same id, URL, text, author, time and language, so the intake's dedup
/// drops the second copy.
fn post_mention(source: &str, did: &str, rkey: &str, record: Record) -> Mention {
    Mention {
        item_id: format!("at://{did}/app.bsky.feed.post/{rkey}"),
        source: source.to_string(),
        source_kind: SourceKind::Bluesky.as_str().to_string(),
        url: Some(format!("https://bsky.app/profile/{did}/post/{rkey}")),
        title: None,
        // Link facets resolved to their full URIs, plus embedded links, quotes, image and
        // video descriptions and the post replied to (`richtext.rs`).
        text: richtext::post_text(&record.text, &record.facets, &record.embed, &record.reply),
        // Jetstream carries the DID only, and so does this, for both paths alike: the poll
        // replaces it with the handle and adds the follower count when the profile lookup
        // knows them already (`profiles.rs`), and leaves the DID when it does not. Mutes and
        // repeat threads go by the DID either way (`analysis::dedup::mute_keys`).
        author: Some(did.to_string()),
        author_reach: None,
        published: record
            .created_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        lang: record.langs.into_iter().next(),
        rating: None,
    }
}

/// Whether a frame is an identity event, from its first bytes: Jetstream writes `did`,
/// `time_us` and `kind` first, so this costs a short scan, not a parse, per frame.
fn is_identity(raw: &str) -> bool {
    const KIND: &[u8] = b"\"kind\":\"identity\"";
    let head = &raw.as_bytes()[..raw.len().min(256)];
    memchr::memmem::find(head, KIND).is_some()
}

/// An identity event (`{"did","time_us","kind":"identity","identity":{"did","handle",…}}`,
/// as the Jetstream README shows it); one without a handle is only a resume point.
fn decode_identity(raw: &str) -> Decoded {
    #[derive(Deserialize)]
    struct IdentityEvent {
        did: String,
        time_us: i64,
        #[serde(default)]
        identity: Option<Identity>,
    }
    #[derive(Deserialize)]
    struct Identity {
        #[serde(default)]
        handle: Option<String>,
    }
    let Ok(event) = serde_json::from_str::<IdentityEvent>(raw) else {
        return Decoded::Rejected {
            time_us: scan_time_us(raw),
        };
    };
    match event.identity.and_then(|i| i.handle) {
        Some(handle) if !handle.is_empty() => Decoded::Identity {
            did: event.did,
            handle,
            time_us: event.time_us,
        },
        _ => Decoded::Rejected {
            time_us: Some(event.time_us),
        },
    }
}

/// Reads `"time_us":<digits>` without parsing the event.
fn scan_time_us(raw: &str) -> Option<i64> {
    const KEY: &str = "\"time_us\":";
    let at = memchr::memmem::find(raw.as_bytes(), KEY.as_bytes())? + KEY.len();
    let digits: &str = raw[at..].trim_start();
    let end = digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// The connection task: one session at a time, reconnecting until the source is dropped.
struct Jetstream {
    source: String,
    endpoints: Vec<String>,
    prefilter: Arc<Prefilter>,
    allow_private: bool,
    connect_timeout: Duration,
    max_frame: usize,
    buffer: StreamBuffer,
    /// The remembered profiles, for identity events; none without `author_details`.
    profiles: Option<profiles::SharedProfiles>,
}

impl Jetstream {
    async fn run(self, mut cursor: Option<i64>) {
        let mut failures = 0u32;
        let mut endpoint = 0usize;
        loop {
            let url = &self.endpoints[endpoint];
            let mut frames = 0u64;
            let result = self.session(url, &mut cursor, &mut frames).await;
            if frames > 0 {
                failures = 0; // it worked for a while: reconnect quickly
            }
            failures += 1;
            let why = match result {
                Ok(()) => "the server closed the connection".to_string(),
                Err(e) => e.to_string(),
            };
            let message = format!("jetstream {}: {why}", redact_url(url));
            let wait = RECONNECT.delay(failures);
            // Fail over after a failed attempt; stay after a drop of a working connection.
            if frames == 0 {
                endpoint = (endpoint + 1) % self.endpoints.len();
            }
            tracing::warn!(source = %self.source, error = %message, retry_in_ms = wait.as_millis() as u64, next = %redact_url(&self.endpoints[endpoint]), "jetstream disconnected; reconnecting");
            self.buffer.set_error(message);
            tokio::time::sleep(wait).await;
        }
    }

    async fn session(
        &self,
        endpoint: &str,
        cursor: &mut Option<i64>,
        frames: &mut u64,
    ) -> Result<(), SourceError> {
        let mut url = Url::parse(endpoint).map_err(|e| SourceError::Refused {
            url: redact_url(endpoint),
            reason: format!("not a valid URL: {e}"),
        })?;
        url.query_pairs_mut()
            .append_pair("wantedCollections", "app.bsky.feed.post");
        if let Some(c) = *cursor {
            url.query_pairs_mut()
                .append_pair("cursor", &(c - REWIND_US).max(0).to_string());
        }
        let tcp = tokio::time::timeout(self.connect_timeout, self.connect_tcp(&url))
            .await
            .map_err(|_| SourceError::Timeout(self.connect_timeout))??;
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(self.max_frame);
        config.max_frame_size = Some(self.max_frame);
        let (mut ws, _) = tokio::time::timeout(
            self.connect_timeout,
            tokio_tungstenite::client_async_tls_with_config(url.as_str(), tcp, Some(config), None),
        )
        .await
        .map_err(|_| SourceError::Timeout(self.connect_timeout))?
        .map_err(|e| SourceError::Network(format!("websocket handshake failed: {e}")))?;
        self.buffer.set_connected(true);
        tracing::info!(source = %self.source, url = %redact_url(url.as_str()), "jetstream connected");
        loop {
            while self.buffer.is_full() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let next = tokio::time::timeout(STREAM_IDLE_TIMEOUT, ws.next())
                .await
                .map_err(|_| {
                    SourceError::Network(format!(
                        "no event for {}s; the connection looks dead",
                        STREAM_IDLE_TIMEOUT.as_secs()
                    ))
                })?;
            let message = match next {
                None => return Ok(()),
                Some(m) => m.map_err(|e| SourceError::Network(format!("websocket: {e}")))?,
            };
            let text = match message {
                Message::Text(t) => t,
                Message::Close(_) => return Ok(()),
                _ => continue,
            };
            *frames += 1;
            match decode_event(text.as_str(), &self.prefilter, &self.source) {
                Decoded::Post { mention, time_us } => {
                    if let Some(p) = &self.profiles {
                        profiles::want(p, &mention);
                    }
                    *cursor = Some(time_us);
                    self.buffer.push(Some(time_us.to_string()), Some(*mention));
                }
                Decoded::Identity {
                    did,
                    handle,
                    time_us,
                } => {
                    if let Some(p) = &self.profiles {
                        profiles::apply_identity(p, &did, &handle);
                    }
                    *cursor = Some(time_us);
                    self.buffer.push(Some(time_us.to_string()), None);
                }
                Decoded::Rejected { time_us } => {
                    if let Some(t) = time_us {
                        *cursor = Some(t);
                    }
                    self.buffer.push(time_us.map(|t| t.to_string()), None);
                }
                Decoded::Invalid => {
                    tracing::debug!(source = %self.source, "skipped a frame that is not a Jetstream event");
                }
            }
        }
    }

    /// Resolves the host and connects, refusing private addresses unless allowed: the same
    /// guard as HTTP sources, since the endpoint comes from configuration.
    async fn connect_tcp(&self, url: &Url) -> Result<tokio::net::TcpStream, SourceError> {
        let refuse = |reason: String| SourceError::Refused {
            url: redact_url(url.as_str()),
            reason,
        };
        if !matches!(url.scheme(), "ws" | "wss") {
            return Err(refuse(format!(
                "scheme {:?} is not allowed, only ws and wss",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| refuse("no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| refuse("no port".into()))?;
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| SourceError::Network(format!("cannot resolve {host}: {e}")))?
            .collect();
        let allowed: Vec<_> = addrs
            .iter()
            .filter(|a| self.allow_private || !is_private(a.ip()))
            .copied()
            .collect();
        if allowed.is_empty() {
            return Err(refuse(format!(
                "{host} resolves only to private or local addresses; set allow_private = true on the source if that is intended"
            )));
        }
        let mut last = None;
        for addr in allowed {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(SourceError::Network(format!(
            "cannot connect to {host}:{port}: {}",
            last.map_or_else(|| "no address".to_string(), |e| e.to_string())
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf() -> Prefilter {
        Prefilter::from_query(r#"acme OR "acme corp""#).unwrap()
    }

    const POST: &str = r#"{"did":"did:plc:eygmaihciaxprqvxpfvl6flk","time_us":1725911162329308,"kind":"commit","commit":{"rev":"3l3qo2vuowo2b","operation":"create","collection":"app.bsky.feed.post","rkey":"3l3qo2vutsw2b","record":{"$type":"app.bsky.feed.post","createdAt":"2024-09-09T19:46:02.102Z","langs":["en"],"text":"My ACME router died again"},"cid":"bafyreidwaivazkwu67xztlmuobx35hs2lnfh3kolmgfmucldvhd3sgzcqi"}}"#;

    #[test]
    fn a_matching_post_becomes_a_mention() {
        let Decoded::Post { mention, time_us } = decode_event(POST, &pf(), "bsky") else {
            panic!("not kept");
        };
        assert_eq!(time_us, 1725911162329308);
        assert_eq!(
            mention.item_id,
            "at://did:plc:eygmaihciaxprqvxpfvl6flk/app.bsky.feed.post/3l3qo2vutsw2b"
        );
        assert_eq!(
            mention.url.as_deref(),
            Some("https://bsky.app/profile/did:plc:eygmaihciaxprqvxpfvl6flk/post/3l3qo2vutsw2b")
        );
        assert_eq!(mention.lang.as_deref(), Some("en"));
        assert_eq!(mention.text, "My ACME router died again");
        assert!(mention.published.is_some());
    }

    #[test]
    fn other_events_are_rejected_with_their_time() {
        let other = POST.replace("ACME", "nice");
        assert_eq!(
            decode_event(&other, &pf(), "b"),
            Decoded::Rejected {
                time_us: Some(1725911162329308)
            }
        );
        let delete = r#"{"did":"did:plc:acme","time_us":7,"kind":"commit","commit":{"rev":"x","operation":"delete","collection":"app.bsky.feed.post","rkey":"acme"}}"#;
        assert_eq!(
            decode_event(delete, &pf(), "b"),
            Decoded::Rejected { time_us: Some(7) }
        );
        let identity = r#"{"did":"did:plc:x","time_us":8,"kind":"identity","identity":{"did":"did:plc:x","handle":"acme.bsky.social","seq":1,"time":"2024-09-05T06:11:04.870Z"}}"#;
        assert_eq!(
            decode_event(identity, &pf(), "b"),
            Decoded::Identity {
                did: "did:plc:x".into(),
                handle: "acme.bsky.social".into(),
                time_us: 8
            },
            "identity events are read whatever the prefilter says"
        );
        let no_handle = r#"{"did":"did:plc:x","time_us":9,"kind":"identity","identity":{"did":"did:plc:x","seq":2,"time":"2024-09-05T06:11:04.870Z"}}"#;
        assert_eq!(
            decode_event(no_handle, &pf(), "b"),
            Decoded::Rejected { time_us: Some(9) }
        );
        // A post quoting the words is still a post, not an identity event.
        let quoted = POST.replace("My ACME router died again", r#"acme \"kind\":\"identity\""#);
        assert!(matches!(
            decode_event(&quoted, &pf(), "b"),
            Decoded::Post { .. }
        ));
        // A keyword only in the DID or rkey is decoded and then rejected on the text.
        let in_did = POST.replace("ACME", "nice").replace("eygmaihc", "acmexxxx");
        assert!(matches!(
            decode_event(&in_did, &pf(), "b"),
            Decoded::Rejected { .. }
        ));
        assert_eq!(decode_event("{acme", &pf(), "b"), Decoded::Invalid);
    }
}
