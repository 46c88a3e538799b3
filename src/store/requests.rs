//! Request ids (so a replayed or retried Slack/Discord request is applied once) and mutes
//! (authors and sites whose mentions are stored without an alert). It does not verify
//! requests or decide who may mute; the server and the desk do.

use super::{to_json, SledStore, StoreError};
use chrono::{DateTime, Utc};

impl SledStore {
    /// Records a request id (Slack trigger id, ...) and says whether it is new. A replayed or
    /// retried request answers `false`, so its action is never applied twice.
    pub(crate) async fn first_request(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let fresh = self
            .requests
            .compare_and_swap(
                key.as_bytes(),
                None as Option<&[u8]>,
                Some(&now.timestamp().to_be_bytes()[..]),
            )?
            .is_ok();
        if fresh {
            self.durable().await?;
        }
        Ok(fresh)
    }

    /// Forgets request ids older than `before`; replays are refused by their timestamp long
    /// before that, so the ids are only needed for Slack's and Discord's retry window.
    pub(crate) fn prune_requests(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut removed = 0;
        for kv in self.requests.iter() {
            let (k, v) = kv?;
            let at = i64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8]));
            if at < before.timestamp() {
                self.requests.remove(k)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Mutes an author or site (`author:<kind>:<name>` / `site:<domain>`) from now on.
    pub(crate) async fn mute(
        &self,
        key: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.mutes.insert(key.as_bytes(), to_json(&(by, now)))?;
        self.durable().await?;
        Ok(())
    }

    pub fn is_muted(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.mutes.contains_key(key.as_bytes())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn request_ids_are_remembered_then_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let t0 = Utc::now() - chrono::Duration::days(2);
        assert!(store.first_request("slack:command:T1", t0).await.unwrap());
        assert!(
            !store.first_request("slack:command:T1", t0).await.unwrap(),
            "a replay is refused"
        );
        assert!(store
            .first_request("slack:command:T2", Utc::now())
            .await
            .unwrap());
        assert_eq!(
            store
                .prune_requests(Utc::now() - chrono::Duration::days(1))
                .unwrap(),
            1
        );
        assert!(
            !store
                .first_request("slack:command:T2", Utc::now())
                .await
                .unwrap(),
            "recent ids stay"
        );
    }
}
