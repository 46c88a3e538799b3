//! `[store]`: where the store lives. Reads only its own section; opening the store is `store`'s job.

use crate::config::{Reader, Table};
use std::path::PathBuf;

const KEYS: &[&str] = &["path"];

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
        let path = t
            .and_then(|t| r.string(t, "store", "path"))
            .unwrap_or_else(|| "data/mentiondesk.sled".into());
        StoreConfig {
            path: PathBuf::from(path),
        }
    }
}
