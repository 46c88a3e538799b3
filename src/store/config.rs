//! `[store]`: where the store lives, how much memory its page cache may use, and how long
//! mention bodies are kept. Reads only its own section; opening the store is `store`'s job.

use crate::config::{Reader, Table};
use std::path::PathBuf;
use std::time::Duration;

const KEYS: &[&str] = &["path", "cache_mb", "keep_mentions"];

/// sled's page cache when `cache_mb` is not set. sled's own default is 1 GiB, which it fills
/// as the store grows: the daemon's memory then grows with the store instead of the config.
pub(crate) const DEFAULT_CACHE_MB: u64 = 16;

/// How long a mention's body is kept when `keep_mentions` is not set.
pub(crate) const DEFAULT_KEEP_MENTIONS: Duration = Duration::from_secs(90 * 24 * 3600);

/// Where the store lives without `[store] path`: `data/` next to the config file.
const DEFAULT_PATH: &str = "data/mentiondesk.sled";

#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    pub path: PathBuf,
    /// sled's page cache in MiB (`cache_mb`): the largest part of the daemon's memory that
    /// grows with the store (see README, "SledStore").
    pub cache_mb: u64,
    /// Mention bodies (text, title, author, link) of mentions that raised no alert are
    /// dropped this long after they were received (`keep_mentions`); their dedup keys stay,
    /// so they are never alerted again. Alerts keep their mention.
    pub keep_mentions: Duration,
    /// Where versions before config-relative paths opened this store: `path` (or the default)
    /// relative to the working directory, `${VAR}`s replaced. When nothing is at `path` but
    /// a store is here, opening refuses instead of starting an empty store that would alert
    /// on every mention again.
    pub previous: Option<PathBuf>,
}

impl StoreConfig {
    /// The defaults with the store at `path` (tests and tools that open a store directly).
    pub fn at(path: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            path: path.into(),
            cache_mb: DEFAULT_CACHE_MB,
            keep_mentions: DEFAULT_KEEP_MENTIONS,
            previous: None,
        }
    }

    /// Reads `[store]` (all keys optional).
    pub(crate) fn read(r: &mut Reader, root: &Table) -> StoreConfig {
        let t = r.table(root, "store");
        if let Some(t) = t {
            r.known_keys(t, "store", KEYS);
        }
        // Relative paths, the default too, are relative to the config file's folder.
        let path = t
            .and_then(|t| r.path(t, "store", "path"))
            .unwrap_or_else(|| r.resolve(DEFAULT_PATH));
        let mut config = StoreConfig::at(path);
        let raw = t.and_then(|t| r.peek_string(t, "path"));
        config.previous = Some(PathBuf::from(raw.as_deref().unwrap_or(DEFAULT_PATH)));
        if let Some(t) = t {
            if let Some(mb) = r.integer(t, "store", "cache_mb") {
                config.cache_mb = mb;
            }
            if let Some(keep) = r.duration(t, "store", "keep_mentions") {
                config.keep_mentions = keep;
            }
        }
        config
    }
}
