//! Each source's resume point (ETag, cursor, ...), written by `accept` in the same transaction
//! as the mentions it produced. It does not poll anything; `sources/` does.

use super::{from_json, SledStore, StoreError};
use crate::model::SourceState;

impl SledStore {
    /// The state the source's last committed poll left (the default before its first).
    pub(crate) fn source_state(&self, source: &str) -> Result<SourceState, StoreError> {
        match self.sources.get(source.as_bytes())? {
            Some(v) => from_json(source, &v),
            None => Ok(SourceState::default()),
        }
    }
}
