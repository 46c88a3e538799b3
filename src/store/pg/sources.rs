//! Each source's resume point (ETag, cursor, …): sled's `source_state` tree as the
//! `source_state` table. The state is written by `accept` in the transaction of the mentions
//! a poll produced; the row's lease columns are the polling replica's, not read here.

use super::meta::from_value;
use super::{query_error, PgStore};
use crate::model::SourceState;
use crate::store::StoreError;

#[allow(dead_code)] // Called through the `Store` façade once it has a PostgreSQL variant.
impl PgStore {
    /// The state the source's last committed poll left (the default before its first, and
    /// for a row that holds only a lease so far).
    pub(crate) async fn source_state(&self, source: &str) -> Result<SourceState, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT state FROM source_state WHERE name = $1", &[&source])
            .await
            .map_err(|e| query_error(&self.url, "reading a source's state", e))?;
        match row {
            Some(r) => from_value(source, r.get(0)),
            None => Ok(SourceState::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::meta::to_value;
    use super::super::test_store::{sql, store};
    use crate::model::SourceState;

    /// A source never polled resumes from scratch; one whose poll committed resumes from the
    /// ETag and cursor it stored (as `accept` writes them: the state's serde JSON); a row
    /// another replica created with only its lease reads as a first poll; an unreadable
    /// state is a corrupt record naming the source.
    #[tokio::test]
    async fn a_source_resumes_from_its_committed_state() {
        let Some((db, store)) = store().await else {
            return;
        };
        assert_eq!(
            store.source_state("feed").await.unwrap(),
            SourceState::default()
        );
        let mut state = SourceState {
            etag: Some("\"abc\"".into()),
            last_modified: Some("Tue, 01 Dec 2026 09:00:00 GMT".into()),
            cursor: Some("page-7".into()),
            ..SourceState::default()
        };
        state.extra.insert("since_id".into(), "123".into());
        let sql = sql(&db).await;
        sql.execute(
            "INSERT INTO source_state (name, state) VALUES ('feed', $1)",
            &[&to_value(&state)],
        )
        .await
        .unwrap();
        assert_eq!(store.source_state("feed").await.unwrap(), state);
        assert_eq!(
            store.source_state("other").await.unwrap(),
            SourceState::default()
        );

        sql.execute(
            "INSERT INTO source_state (name, owner, lease_until) \
             VALUES ('leased', 'replica-2', now() + interval '15 seconds')",
            &[],
        )
        .await
        .unwrap();
        assert_eq!(
            store.source_state("leased").await.unwrap(),
            SourceState::default()
        );

        sql.execute(
            "INSERT INTO source_state (name, state) VALUES ('broken', '{\"cursor\": 7}')",
            &[],
        )
        .await
        .unwrap();
        let e = store.source_state("broken").await.unwrap_err();
        assert!(
            matches!(&e, crate::store::StoreError::Corrupt { key, .. } if key == "broken"),
            "{e:?}"
        );
    }
}
