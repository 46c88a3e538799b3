//! stub
use super::{Source, SourceError, SourceKind, SourceSpec, SourceState};
use crate::model::Mention;
pub struct MastodonSource {
    name: String,
}
impl MastodonSource {
    pub fn new(spec: &SourceSpec) -> Result<MastodonSource, SourceError> {
        Ok(MastodonSource {
            name: spec.name.clone(),
        })
    }
}
#[async_trait::async_trait]
impl Source for MastodonSource {
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
