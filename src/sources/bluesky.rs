//! stub
use super::{Source, SourceError, SourceKind, SourceSpec, SourceState};
use crate::model::Mention;
pub struct BlueskySource {
    name: String,
}
impl BlueskySource {
    pub fn new(spec: &SourceSpec) -> Result<BlueskySource, SourceError> {
        Ok(BlueskySource {
            name: spec.name.clone(),
        })
    }
}
#[async_trait::async_trait]
impl Source for BlueskySource {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> SourceKind {
        SourceKind::Rss
    }
    async fn poll(&mut self, _state: &mut SourceState) -> Result<Vec<Mention>, SourceError> {
        Ok(vec![])
    }
}
