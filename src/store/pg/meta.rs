//! Small JSON values by name (digest slots, spike cooldowns, coverage): sled's `meta` tree as
//! the `meta` table. Any replica reads what any other wrote; nothing here decides what the
//! values mean.

use super::{query_error, PgStore};
use crate::store::StoreError;
use serde::{de::DeserializeOwned, Serialize};

#[allow(dead_code)] // Called through the `Store` façade once it has a PostgreSQL variant.
impl PgStore {
    /// A small value as JSON (see `SledStore::meta_get`); `None` when never set. A value that
    /// no longer reads as `T` is [`StoreError::Corrupt`], as in sled.
    pub(crate) async fn meta_get<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
            .await
            .map_err(|e| query_error(&self.url, "reading a meta value", e))?;
        row.map(|r| from_value(key, r.get(0))).transpose()
    }

    /// Sets (or replaces) a small value; durable once it returns (the commit).
    pub async fn meta_set<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let value = to_value(value);
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&key, &value],
            )
            .await
            .map_err(|e| query_error(&self.url, "writing a meta value", e))?;
        Ok(())
    }
}

/// Sets `meta[key]` to `value` only while the stored value is absent, unreadable or earlier
/// than `bound` (a digest slot not yet sent, a spike cooldown that has passed); answers
/// whether it did. The row lock makes two replicas at the same slot queue it once: the
/// second waits for the first's commit and then finds the newer value.
pub(super) async fn advance_mark<T: DeserializeOwned + PartialOrd + Sync>(
    tx: &deadpool_postgres::Transaction<'_>,
    key: &str,
    value: &serde_json::Value,
    bound: &T,
) -> Result<bool, tokio_postgres::Error> {
    loop {
        let row = tx
            .query_opt("SELECT value FROM meta WHERE key = $1 FOR UPDATE", &[&key])
            .await?;
        if let Some(row) = row {
            let earlier = serde_json::from_value::<T>(row.get(0)).map_or(true, |s| s < *bound);
            if earlier {
                tx.execute("UPDATE meta SET value = $2 WHERE key = $1", &[&key, value])
                    .await?;
            }
            return Ok(earlier);
        }
        let inserted = tx
            .execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, value],
            )
            .await?;
        if inserted == 1 {
            return Ok(true);
        }
        // Another replica inserted it meanwhile (and committed): compare with its value.
    }
}

/// A model struct as the JSON sled writes (`serde_json`), for a JSONB column.
pub(super) fn to_value<T: Serialize + ?Sized>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("store records are plain data and always serialise")
}

/// A JSONB column back as `T`; `key` names the record when it does not read.
pub(super) fn from_value<T: DeserializeOwned>(
    key: &str,
    value: serde_json::Value,
) -> Result<T, StoreError> {
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_store::store;
    use chrono::{DateTime, Utc};
    use std::collections::BTreeMap;

    /// A value set by one replica is read by another, replaced by a second set, and absent
    /// keys read as `None`; a value that does not read as the asked type is a corrupt record
    /// naming its key (sled's answers).
    #[tokio::test]
    async fn meta_values_round_trip_between_replicas() {
        let Some((db, a)) = store().await else { return };
        let b = super::PgStore::connect(&db.config()).await.unwrap();
        assert_eq!(a.meta_get::<u64>("nothing").await.unwrap(), None);
        let at: DateTime<Utc> = "2026-12-01T09:00:00.123456Z".parse().unwrap();
        a.meta_set("digest:daily:#pr", &at).await.unwrap();
        assert_eq!(
            b.meta_get::<DateTime<Utc>>("digest:daily:#pr")
                .await
                .unwrap(),
            Some(at)
        );
        let later = at + chrono::Duration::days(1);
        b.meta_set("digest:daily:#pr", &later).await.unwrap();
        assert_eq!(
            a.meta_get::<DateTime<Utc>>("digest:daily:#pr")
                .await
                .unwrap(),
            Some(later),
            "a second set replaces the first"
        );
        let map: BTreeMap<String, Vec<u32>> =
            [("acme".to_string(), vec![1, 2, 3])].into_iter().collect();
        a.meta_set("spikes:coverage", &map).await.unwrap();
        assert_eq!(
            b.meta_get::<BTreeMap<String, Vec<u32>>>("spikes:coverage")
                .await
                .unwrap(),
            Some(map)
        );
        let e = a.meta_get::<u64>("digest:daily:#pr").await.unwrap_err();
        assert!(
            matches!(&e, crate::store::StoreError::Corrupt { key, .. } if key == "digest:daily:#pr"),
            "{e:?}"
        );
    }
}
