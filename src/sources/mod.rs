//! Sources: where mentions come from. One file per kind behind the `Source` trait, plus the
//! shared HTTP fetch (`http.rs`) and the shared poll loop (`poll.rs`).
//! Each kind owns its config (struct, keys, checks, `build()`) in its own file, behind the
//! `SourceConfig` enum tagged by `kind` (see `source_kinds!` below).
//! Sources never touch the store or chat: they return mentions and their new cursor state,
//! and the intake decides what to keep.

use crate::model::Mention;
use chrono::{DateTime, Utc};
use config::{Common, KindConfig};
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub(crate) mod appstore;
pub(crate) mod authors;
pub mod bluesky;
pub mod config;
pub(crate) mod discourse;
pub(crate) mod file;
pub(crate) mod github;
pub(crate) mod googlenews;
pub(crate) mod hackernews;
pub(crate) mod html;
pub mod http;
pub mod lease;
pub(crate) mod lemmy;
pub(crate) mod mastodon;
pub mod poll;
pub mod prefilter;
pub(crate) mod reddit;
pub(crate) mod rss;
pub(crate) mod seen;
pub(crate) mod stackexchange;
pub(crate) mod stream;
#[cfg(test)]
mod tests;
pub(crate) mod webhook;
pub(crate) mod youtube;

/// Declares the source kinds from one list: `SourceKind` (the closed set of `kind` names)
/// and `SourceConfig` (one arm per kind, holding that kind's own config). Adding a kind is
/// one arm here plus its file; everything else dispatches through `KindConfig`.
macro_rules! source_kinds {
    ($($variant:ident($config:ty)),+ $(,)?) => {
        /// The kinds a `[[sources]]` entry may name. Closed: an unknown kind is a config error.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum SourceKind {
            $($variant),+
        }

        impl SourceKind {
            pub const ALL: &'static [SourceKind] = &[$(SourceKind::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(SourceKind::$variant => <$config as KindConfig>::KIND),+
                }
            }

            pub fn parse(s: &str) -> Option<SourceKind> {
                SourceKind::ALL.iter().copied().find(|k| k.as_str() == s)
            }

            /// The keys this kind takes beyond the common ones.
            pub fn keys(self) -> &'static [&'static str] {
                match self {
                    $(SourceKind::$variant => <$config as KindConfig>::KEYS),+
                }
            }

            /// `every` when an entry of this kind does not say.
            pub(crate) fn default_every(self) -> Duration {
                match self {
                    $(SourceKind::$variant => <$config as KindConfig>::DEFAULT_EVERY),+
                }
            }
        }

        /// A validated `[[sources]]` entry, tagged by `kind`: that kind's own config.
        #[derive(Debug, Clone, PartialEq)]
        pub enum SourceConfig {
            $($variant($config)),+
        }

        impl SourceConfig {
            pub fn kind(&self) -> SourceKind {
                match self {
                    $(SourceConfig::$variant(_) => SourceKind::$variant),+
                }
            }

            /// The settings every kind has.
            pub fn common(&self) -> &Common {
                match self {
                    $(SourceConfig::$variant(c) => c.common()),+
                }
            }

            /// Builds the source this entry describes.
            pub fn build(&self) -> Result<Box<dyn Source>, SourceError> {
                match self {
                    $(SourceConfig::$variant(c) => c.build()),+
                }
            }

            fn read(
                kind: SourceKind,
                r: &mut crate::config::Reader,
                t: &crate::config::Table,
                key: &str,
                common: Common,
            ) -> Option<SourceConfig> {
                match kind {
                    $(SourceKind::$variant => {
                        <$config as KindConfig>::read(r, t, key, common).map(SourceConfig::$variant)
                    }),+
                }
            }
        }
    };
}

source_kinds! {
    Rss(rss::RssConfig),
    File(file::FileConfig),
    Reddit(reddit::RedditConfig),
    Hackernews(hackernews::HackerNewsConfig),
    Bluesky(bluesky::BlueskyConfig),
    Mastodon(mastodon::MastodonConfig),
    Appstore(appstore::AppStoreConfig),
    Googlenews(googlenews::GoogleNewsConfig),
    Github(github::GithubConfig),
    Webhook(webhook::WebhookConfig),
    Stackexchange(stackexchange::StackExchangeConfig),
    Lemmy(lemmy::LemmyConfig),
    Discourse(discourse::DiscourseConfig),
    Youtube(youtube::YoutubeConfig),
}

impl SourceConfig {
    pub fn name(&self) -> &str {
        &self.common().name
    }

    pub(crate) fn every(&self) -> Duration {
        self.common().every
    }

    pub fn timeout(&self) -> Duration {
        self.common().timeout
    }
}

/// A source's resume point between polls (plain data in `model`, which the store keeps too).
pub use crate::model::SourceState;

/// A service's request budget as a source last saw it (from its answers' headers or fields),
/// shown per source on `/healthz` and `/metrics` so a team sees a quota running out before
/// polling stops.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quota {
    /// What is counted: `"requests"`, or `"units"` where calls cost different amounts.
    pub unit: &'static str,
    /// What is left of the budget.
    pub remaining: u64,
    /// The whole budget per period, when the service says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// When the budget refills, when the service says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resets_at: Option<DateTime<Utc>>,
}

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
    /// The same error with `what` (which site or instance of several failed) in front of its
    /// message; kinds without a message of their own are returned as they are.
    pub(crate) fn prefixed(self, what: &str) -> SourceError {
        match self {
            SourceError::Parse(m) => SourceError::Parse(format!("{what}{m}")),
            SourceError::Network(m) => SourceError::Network(format!("{what}{m}")),
            SourceError::Config(m) => SourceError::Config(format!("{what}{m}")),
            other => other,
        }
    }

    /// How long the server asked us to wait, if it did (429 / 503 with Retry-After).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SourceError::Status { retry_after, .. } => *retry_after,
            SourceError::RateLimited { wait } => Some(*wait),
            _ => None,
        }
    }
}

/// Builds the source a config names. A config missing what its kind needs is a clear error,
/// so `check` and start-up can say which source cannot run.
pub fn build(config: &SourceConfig) -> Result<Box<dyn Source>, SourceError> {
    config.build()
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

    /// The service's request budget as of the last poll (successful or not), for `/healthz`
    /// and `/metrics`. Sources of services without a quota keep the default.
    fn quota(&self) -> Option<Quota> {
        None
    }

    /// Drops any connection the source keeps open (a stream), because this replica lost the
    /// source's lease (issue 17): another replica streams it now. The next `poll` connects
    /// again, resuming from the state it is given (the stored cursor). Polled sources keep
    /// nothing open and keep the default.
    fn disconnect(&mut self) {}

    /// The longest the poll loop waits after failures. Streaming sources reconnect on their
    /// own schedule and only need the loop to keep draining, so they keep this short.
    fn max_backoff(&self) -> Duration {
        poll::MAX_BACKOFF
    }
}
