//! stub
use super::{Source, SourceError, SourceKind, SourceSpec, SourceState};
use crate::model::Mention;
pub struct RedditSource {
    name: String,
}
impl RedditSource {
    pub fn new(spec: &SourceSpec) -> Result<RedditSource, SourceError> {
        Ok(RedditSource {
            name: spec.name.clone(),
        })
    }
}
#[async_trait::async_trait]
impl Source for RedditSource {
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
