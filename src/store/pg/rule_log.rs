//! Each rule's volume log (sled's `rule_log` tree as the `rule_log` table): one row per rule of
//! each matched mention, repeats included, keyed by the mention's place in the mention log,
//! so the digest and spike detection count a rule's mentions per hour with an index range.
//! Rows are written by `accept` (`accept.rs`), in the transaction of their mention.
//!
//! Order is sled's key order: by whole second, then by mention sequence (two replicas' clocks
//! may disagree within a second; the sequence decides there, as in sled).

use super::requests::whole_second;
use super::{query_error, PgStore};
use crate::store::{RuleHit, StoreError};
use chrono::{DateTime, Utc};

/// The columns a [`RuleHit`] is read from, in [`hit`]'s order.
const HIT_COLUMNS: &str = "rule, at, mention_key, source, sentiment, negative, published, held";

#[allow(dead_code)] // Called through the `Store` façade once it has a PostgreSQL variant.
impl PgStore {
    /// The hits of one rule in `[from, to)`, oldest first (see `SledStore::rule_hits`).
    pub async fn rule_hits(
        &self,
        rule: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RuleHit>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {HIT_COLUMNS} FROM rule_log \
                     WHERE rule = $1 AND at >= $2 AND at < $3 \
                     ORDER BY floor(extract(epoch FROM at)), mention_seq"
                ),
                &[&rule, &from, &to],
            )
            .await
            .map_err(|e| query_error(&self.url, "reading a rule's hits", e))?;
        Ok(rows.iter().map(hit).collect())
    }

    /// Drops rule hits older than `before`, in whole seconds as sled keys them (a hit in the
    /// same second as `before` stays). Returns how many were removed.
    pub(crate) async fn prune_rule_hits(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let removed = client
            .execute(
                "DELETE FROM rule_log WHERE at < $1",
                &[&whole_second(before)],
            )
            .await
            .map_err(|e| query_error(&self.url, "pruning rule hits", e))?;
        Ok(removed as usize)
    }

    /// When `rule` first matched anything: the first hit in sled's order (its earliest
    /// second, and there the lowest mention sequence).
    pub(crate) async fn first_hit(&self, rule: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let client = self.client().await?;
        // The earliest time comes from the (rule, at) index; only its second is then sorted.
        let row = client
            .query_opt(
                "WITH first AS ( \
                     SELECT to_timestamp(floor(extract(epoch FROM min(at)))) AS s \
                     FROM rule_log WHERE rule = $1) \
                 SELECT at FROM rule_log, first \
                 WHERE rule = $1 AND at >= first.s AND at < first.s + interval '1 second' \
                 ORDER BY mention_seq LIMIT 1",
                &[&rule],
            )
            .await
            .map_err(|e| query_error(&self.url, "reading a rule's first hit", e))?;
        Ok(row.map(|r| r.get(0)))
    }
}

fn hit(r: &tokio_postgres::Row) -> RuleHit {
    RuleHit {
        rule: r.get(0),
        at: r.get(1),
        mention_key: r.get(2),
        source: r.get(3),
        sentiment: r.get(4),
        negative: r.get(5),
        published: r.get(6),
        held: r.get(7),
        alert: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_store::store;
    use super::*;
    use crate::model::Mention;
    use crate::store::test_util::candidate;
    use crate::store::NewAlert;
    use chrono::Duration;

    /// Logs one hit per rule of a mention inside `tx` (`seq`: its `mention_log.seq`), in
    /// the rows the PostgreSQL `accept` writes (`accept.rs`); a rule listed twice is logged
    /// once, as sled's overwrite of the same key does.
    async fn log_hits(
        tx: &tokio_postgres::Transaction<'_>,
        mention: &Mention,
        new: &NewAlert,
        mention_key: &str,
        seq: i64,
        now: DateTime<Utc>,
    ) -> Result<(), tokio_postgres::Error> {
        for rule in &new.rules {
            tx.execute(
                "INSERT INTO rule_log \
                     (rule, mention_seq, at, mention_key, source, sentiment, negative, published, held) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (rule, mention_seq) DO UPDATE SET \
                     at = EXCLUDED.at, mention_key = EXCLUDED.mention_key, source = EXCLUDED.source, \
                     sentiment = EXCLUDED.sentiment, negative = EXCLUDED.negative, \
                     published = EXCLUDED.published, held = EXCLUDED.held",
                &[
                    rule,
                    &seq,
                    &now,
                    &mention_key,
                    &mention.source,
                    &new.sentiment,
                    &new.negative,
                    &mention.published,
                    &new.held,
                ],
            )
            .await?;
        }
        Ok(())
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// The item ids of the hits' mentions, in order.
    fn ids(hits: &[RuleHit]) -> Vec<&str> {
        hits.iter()
            .map(|h| h.mention_key.strip_prefix("feed\u{1f}").unwrap())
            .collect()
    }

    /// Logs `id`'s hits (rules `rules`) at `at` with mention sequence `seq`, through
    /// [`log_hits`] in a transaction, as `accept` does.
    async fn log(store: &PgStore, id: &str, rules: &[&str], seq: i64, at: DateTime<Utc>) {
        let c = candidate(id, true);
        let mut new = c.alert.unwrap();
        new.rules = rules.iter().map(|r| r.to_string()).collect();
        new.sentiment = -0.5;
        new.negative = true;
        let mut mention = c.mention;
        mention.published = Some(at - Duration::hours(3));
        let mut client = store.client().await.unwrap();
        let tx = client.transaction().await.unwrap();
        log_hits(&tx, &mention, &new, &mention.key(), seq, at)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    /// What the digest and spike detection read: a rule's hits in `[from, to)` oldest first,
    /// with every field as logged; other rules' hits apart; the first hit's time; pruning
    /// drops the older seconds only (whole seconds, as sled) and counts what it dropped.
    #[tokio::test]
    async fn a_rules_hits_are_read_by_range_then_pruned() {
        let Some((_db, store)) = store().await else {
            return;
        };
        assert_eq!(store.first_hit("acme").await.unwrap(), None);
        assert!(store
            .rule_hits("acme", t("2026-01-01T00:00:00Z"), t("2027-01-01T00:00:00Z"))
            .await
            .unwrap()
            .is_empty());

        log(
            &store,
            "a",
            &["acme", "globex"],
            1,
            t("2026-12-01T09:00:00.250Z"),
        )
        .await;
        log(&store, "b", &["acme"], 2, t("2026-12-01T10:00:00Z")).await;
        log(
            &store,
            "c",
            &["acme", "acme"],
            3,
            t("2026-12-01T10:59:59.999Z"),
        )
        .await;
        log(&store, "d", &["acme"], 4, t("2026-12-01T11:00:00Z")).await;

        let hits = store
            .rule_hits("acme", t("2026-12-01T10:00:00Z"), t("2026-12-01T11:00:00Z"))
            .await
            .unwrap();
        assert_eq!(ids(&hits), ["b", "c"], "[from, to): d is the next hour");
        let b = &hits[0];
        assert_eq!(b.rule, "acme");
        assert_eq!(b.at, t("2026-12-01T10:00:00Z"));
        assert_eq!(b.source, "feed");
        assert_eq!(b.sentiment, -0.5);
        assert!(b.negative);
        assert_eq!(b.published, Some(t("2026-12-01T07:00:00Z")));
        assert!(!b.held);
        let globex = store
            .rule_hits(
                "globex",
                t("2026-12-01T00:00:00Z"),
                t("2026-12-02T00:00:00Z"),
            )
            .await
            .unwrap();
        assert_eq!(globex.len(), 1);
        assert_eq!(ids(&globex), ["a"]);
        assert_eq!(
            store.first_hit("acme").await.unwrap(),
            Some(t("2026-12-01T09:00:00.250Z"))
        );
        assert_eq!(store.first_hit("initech").await.unwrap(), None);

        // Cutoff 10:00:00.5: a (09:00) goes for both rules; b (10:00:00.0) is in the cutoff's
        // second and stays, as in sled.
        assert_eq!(
            store
                .prune_rule_hits(t("2026-12-01T10:00:00.500Z"))
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            store.first_hit("acme").await.unwrap(),
            Some(t("2026-12-01T10:00:00Z"))
        );
        assert_eq!(store.first_hit("globex").await.unwrap(), None);
        let all = store
            .rule_hits("acme", t("2026-01-01T00:00:00Z"), t("2027-01-01T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(all.len(), 3);
    }

    /// Within one second, sled orders hits by the mention's sequence, not by the replicas'
    /// clocks: so do `rule_hits` and `first_hit`.
    #[tokio::test]
    async fn hits_within_one_second_follow_the_mention_sequence() {
        let Some((_db, store)) = store().await else {
            return;
        };
        // Mention 7 was logged by a replica whose clock ran a little ahead of mention 8's.
        log(
            &store,
            "late-clock",
            &["acme"],
            7,
            t("2026-12-01T10:00:00.900Z"),
        )
        .await;
        log(
            &store,
            "early-clock",
            &["acme"],
            8,
            t("2026-12-01T10:00:00.100Z"),
        )
        .await;
        log(&store, "next", &["acme"], 6, t("2026-12-01T10:00:01.000Z")).await;
        let hits = store
            .rule_hits("acme", t("2026-12-01T10:00:00Z"), t("2026-12-01T10:00:02Z"))
            .await
            .unwrap();
        assert_eq!(ids(&hits), ["late-clock", "early-clock", "next"]);
        assert_eq!(
            store.first_hit("acme").await.unwrap(),
            Some(t("2026-12-01T10:00:00.900Z"))
        );
    }
}
