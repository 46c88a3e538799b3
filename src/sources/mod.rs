//! Sources: where mentions come from. One file per kind behind the `Source` trait, plus the
//! shared HTTP fetch (`http.rs`) and the shared poll loop (`poll.rs`).
//! Sources never touch the store or chat: they return mentions and their new cursor state,
//! and the intake decides what to keep.

use crate::config::Secret;
use crate::model::Mention;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

pub mod bluesky;
pub mod file;
pub mod hackernews;
pub mod html;
pub mod http;
pub mod mastodon;
pub mod poll;
pub mod prefilter;
pub mod reddit;
pub mod rss;
pub mod stream;
#[cfg(test)]
mod tests;

/// The kinds a `[[sources]]` entry may name. Closed: an unknown kind is a config error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Rss,
    File,
    Reddit,
    Hackernews,
    Bluesky,
    Mastodon,
}

impl SourceKind {
    pub const ALL: [SourceKind; 6] = [
        SourceKind::Rss,
        SourceKind::File,
        SourceKind::Reddit,
        SourceKind::Hackernews,
        SourceKind::Bluesky,
        SourceKind::Mastodon,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Rss => "rss",
            SourceKind::File => "file",
            SourceKind::Reddit => "reddit",
            SourceKind::Hackernews => "hackernews",
            SourceKind::Bluesky => "bluesky",
            SourceKind::Mastodon => "mastodon",
        }
    }

    pub fn parse(s: &str) -> Option<SourceKind> {
        SourceKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A validated `[[sources]]` entry: everything a source needs to build itself.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
    pub name: String,
    pub kind: SourceKind,
    /// Feed URL (`rss`) or API base override (other HTTP kinds).
    pub url: Option<String>,
    /// Local file (`file`).
    pub path: Option<PathBuf>,
    /// Search query for kinds that search (`hackernews`, ...).
    pub query: Option<String>,
    /// Time between polls.
    pub every: Duration,
    /// Timeout of one whole poll (connect + body).
    pub timeout: Duration,
    /// Largest accepted body, counted after decompression.
    pub max_body_bytes: u64,
    /// Allow fetching from private / loopback addresses (tests, intranet feeds).
    pub allow_private: bool,
    /// Settings only some kinds use (accounts, instances, subreddits, failover).
    pub api: ApiOptions,
}

/// Kind-specific `[[sources]]` keys, kept apart so the common fields stay readable.
/// Every field is optional here; `config.rs` reports which ones a kind requires.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiOptions {
    /// `mastodon`: instance base URLs, e.g. `https://mastodon.social`.
    pub instances: Vec<String>,
    /// `mastodon`: hashtags to follow, without `#`.
    pub tags: Vec<String>,
    /// `mastodon`: an access token (timelines of instances that require one, and streaming).
    pub token: Option<Secret>,
    /// `mastodon`: also hold the streaming API (SSE) open for low latency; needs `token`.
    pub stream: bool,
    /// `reddit`: subreddits to watch, without `r/`.
    pub subreddits: Vec<String>,
    /// `reddit`: the app's client id.
    pub client_id: Option<String>,
    /// `reddit`: the app's client secret.
    pub client_secret: Option<Secret>,
    /// `reddit`: the User-Agent Reddit's rules ask for (`platform:app:version (by /u/name)`).
    pub user_agent: Option<String>,
    /// `reddit`: the OAuth token endpoint (override for tests and proxies).
    pub token_url: Option<String>,
    /// `bluesky`: a second Jetstream endpoint used when the first fails.
    pub failover_url: Option<String>,
    /// `bluesky`: the account (handle, DID or e-mail) that signs in for the search back-fill;
    /// set together with `app_password`, or neither.
    pub handle: Option<String>,
    /// `bluesky`: an app password of `handle` (Settings → Privacy and security → App passwords).
    pub app_password: Option<Secret>,
    /// `bluesky`: the XRPC base for signing in and searching (default the Bluesky PDS
    /// entryway, `https://bsky.social/xrpc`); an override for tests and proxies.
    pub search_url: Option<String>,
    /// `bluesky`: time between back-fill searches (default 5 minutes).
    pub search_every: Option<Duration>,
}

/// A source's resume point between polls (plain data in `model`, which the store keeps too).
pub use crate::model::SourceState;

/// Why a poll failed. Messages name the problem; the poll loop adds the source name.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    #[error("server answered HTTP {status}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("body is larger than the {limit} byte cap (after decompression); raise max_body_bytes if the feed is really that big")]
    TooLarge { limit: u64 },
    #[error("could not parse the response: {0}")]
    Parse(String),
    #[error("network error: {0}")]
    Network(String),
    #[error("refused to fetch {url}: {reason}")]
    Refused { url: String, reason: String },
    #[error("rate limit used up; waiting {}s until it resets", .wait.as_secs())]
    RateLimited { wait: Duration },
    #[error("{0}")]
    Io(String),
    /// The source cannot be built from its spec (missing url/path, kind not built yet).
    #[error("{0}")]
    Config(String),
}

impl SourceError {
    /// How long the server asked us to wait, if it did (429 / 503 with Retry-After).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SourceError::Status { retry_after, .. } => *retry_after,
            SourceError::RateLimited { wait } => Some(*wait),
            _ => None,
        }
    }
}

/// Builds the source a spec names. A spec missing what its kind needs is a clear error, so
/// `check` and start-up can say which source cannot run.
pub fn build(spec: &SourceSpec) -> Result<Box<dyn Source>, SourceError> {
    match spec.kind {
        SourceKind::Rss => Ok(Box::new(rss::RssSource::new(spec)?)),
        SourceKind::File => Ok(Box::new(file::FileSource::new(spec)?)),
        SourceKind::Hackernews => Ok(Box::new(hackernews::HackerNewsSource::new(spec)?)),
        SourceKind::Mastodon => Ok(Box::new(mastodon::MastodonSource::new(spec)?)),
        SourceKind::Reddit => Ok(Box::new(reddit::RedditSource::new(spec)?)),
        SourceKind::Bluesky => Ok(Box::new(bluesky::BlueskySource::new(spec)?)),
    }
}

/// One kind of source. `poll` is called by the shared poll loop, never concurrently.
#[async_trait::async_trait]
pub trait Source: Send {
    fn name(&self) -> &str;
    fn kind(&self) -> SourceKind;
    /// Fetches what is new since `state`, updating `state` in place on success.
    /// Returning items already seen is allowed; the intake deduplicates.
    async fn poll(&mut self, state: &mut SourceState) -> Result<Vec<Mention>, SourceError>;

    /// Resolves when a streaming source has something to hand over, so the poll loop can
    /// poll at once instead of sleeping out its interval. Polled sources never resolve.
    async fn ready(&mut self) {
        std::future::pending::<()>().await
    }

    /// What the last successful `poll` had to work around (some instances failed, a stream
    /// dropped), already secret-free; taken once by the poll loop, which records it in `Health`
    /// so a partial failure shows on `/healthz` and in metrics instead of only in the log.
    fn take_warning(&mut self) -> Option<String> {
        None
    }

    /// The longest the poll loop waits after failures. Streaming sources reconnect on their
    /// own schedule and only need the loop to keep draining, so they keep this short.
    fn max_backoff(&self) -> Duration {
        poll::MAX_BACKOFF
    }
}
