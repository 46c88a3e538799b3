//! `[store]`: where the store lives. Reads only its own section; opening the store is `store`'s job.

use crate::config::{Reader, Table};
use std::path::PathBuf;

const KEYS: &[&str] = &["path"];

/// Where the store lives without `[store] path`: `data/` next to the config file.
const DEFAULT_PATH: &str = "data/mentiondesk.sled";

#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    pub path: PathBuf,
}

impl StoreConfig {
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
        StoreConfig { path }
    }
}
