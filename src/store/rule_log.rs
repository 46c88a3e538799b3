//! Each rule's volume log: one hit per matched mention (repeats included) in time order, so
//! the digest and spike detection count a rule's mentions per hour with a range scan. It does
//! not decide what counts as a hit; intake's `NewAlert::log_hit` does.

use super::accept::NewAlert;
use super::{from_json, to_json, SledStore, StoreError, TxResult};
use crate::model::Mention;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::TransactionalTree;

/// One matched mention in a rule's volume log: what the digest and spike detection count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleHit {
    pub rule: String,
    pub at: DateTime<Utc>,
    pub mention_key: String,
    pub source: String,
    pub sentiment: f64,
    pub negative: bool,
    /// When the source says the mention was published (`Mention::published`); spike
    /// detection counts by it, so a catch-up or a back catalogue lands in the hours it was
    /// written in, not the hour it arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<DateTime<Utc>>,
    /// Held back by the relevance filter when it came in: the digest still counts it as
    /// volume, but a spike of mentions the filter judged irrelevant is no spike.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
}

impl SledStore {
    /// The hits of one rule in `[from, to)`, oldest first.
    pub fn rule_hits(
        &self,
        rule: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RuleHit>, StoreError> {
        // Keys hold whole seconds: read the seconds around the bounds, then cut exactly.
        let start = rule_log_key(rule, from.timestamp(), 0);
        let end = rule_log_key(rule, to.timestamp().saturating_add(1), 0);
        let mut out = Vec::new();
        for kv in self.rule_log.range(start..end) {
            let (_, v) = kv?;
            let hit: RuleHit = from_json(&format!("rule hit of {rule}"), &v)?;
            if hit.at >= from && hit.at < to {
                out.push(hit);
            }
        }
        Ok(out)
    }

    /// Drops rule hits older than `before` (the digest and spike baseline read at most a few
    /// weeks back). Returns how many were removed.
    ///
    /// Each rule's hits are in time order, so this reads, per rule, only the hits it removes
    /// and the first one it keeps, then jumps to the next rule: an hourly prune of a large
    /// log costs what it drops, and does not pull the whole log into sled's cache (where it
    /// stayed, see `desk_index.rs`).
    pub(crate) fn prune_rule_hits(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let cutoff = before.timestamp();
        let mut removed = 0;
        let mut next_rule = self.rule_log.first()?.map(|(k, _)| k);
        while let Some(key) = next_rule {
            // Key: rule, 0x1f, secs (8 bytes), seq (8 bytes).
            let Some(rule) = key
                .len()
                .checked_sub(17)
                .and_then(|n| std::str::from_utf8(&key[..n]).ok())
            else {
                // Not a hit key (none is written): step over it.
                next_rule = self.rule_log.get_gt(&key)?.map(|(k, _)| k);
                continue;
            };
            let old = rule_log_key(rule, i64::MIN, 0)..rule_log_key(rule, cutoff, 0);
            for kv in self.rule_log.range(old) {
                let (k, _) = kv?;
                self.rule_log.remove(&k)?;
                removed += 1;
            }
            next_rule = self
                .rule_log
                .get_gt(rule_log_key(rule, i64::MAX, u64::MAX))?
                .map(|(k, _)| k);
        }
        Ok(removed)
    }

    /// When `rule` first matched anything (the start of its volume history).
    pub(crate) fn first_hit(&self, rule: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let start = rule_log_key(rule, i64::MIN, 0);
        let end = rule_log_key(rule, i64::MAX, u64::MAX);
        match self.rule_log.range(start..end).next() {
            Some(kv) => {
                let (_, v) = kv?;
                let hit: RuleHit = from_json(&format!("rule hit of {rule}"), &v)?;
                Ok(Some(hit.at))
            }
            None => Ok(None),
        }
    }
}

/// Logs one hit per rule of a newly stored mention (`seq`: its place in the mention log).
pub(super) fn log_hits(
    rule_log: &TransactionalTree,
    mention: &Mention,
    new: &NewAlert,
    mention_key: &str,
    seq: u64,
    now: DateTime<Utc>,
) -> TxResult<()> {
    for rule in &new.rules {
        let hit = RuleHit {
            rule: rule.clone(),
            at: now,
            mention_key: mention_key.to_string(),
            source: mention.source.clone(),
            sentiment: new.sentiment,
            negative: new.negative,
            published: mention.published,
            held: new.held,
        };
        rule_log.insert(rule_log_key(rule, now.timestamp(), seq), to_json(&hit))?;
    }
    Ok(())
}

pub(super) fn rule_log_key(rule: &str, secs: i64, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(rule.len() + 17);
    k.extend_from_slice(rule.as_bytes());
    k.push(0x1f);
    // Offset so negative (pre-1970) times still sort before positive ones.
    k.extend_from_slice(&(secs as u64 ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::super::test_util::candidate;
    use super::*;
    use crate::model::SourceState;

    /// Rules whose names prefix each other ("acm", "acme", "acme corp") and rules with only
    /// old hits: the prune's jump from rule to rule must neither skip one nor stop early.
    #[tokio::test]
    async fn pruning_drops_every_rules_old_hits_and_keeps_the_newer_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let hits: [(&str, &[&str], &str); 5] = [
            ("a", &["acme", "acme corp"], "2026-12-01T09:00:00Z"),
            ("b", &["acme"], "2026-12-01T10:00:00Z"),
            ("c", &["acm", "globex"], "2026-12-01T09:30:00Z"),
            ("d", &["acme corp"], "2026-12-01T11:00:00Z"),
            ("e", &["globex"], "2026-12-01T08:00:00Z"),
        ];
        for (id, rules, at) in hits {
            let mut c = candidate(id, true);
            c.alert.as_mut().unwrap().rules = rules.iter().map(|r| r.to_string()).collect();
            store
                .accept("feed", &SourceState::default(), &[c], t(at))
                .await
                .unwrap();
        }
        let count = |rule: &str| {
            store
                .rule_hits(rule, t("2026-01-01T00:00:00Z"), t("2027-01-01T00:00:00Z"))
                .unwrap()
                .len()
        };
        assert_eq!(
            [
                count("acm"),
                count("acme"),
                count("acme corp"),
                count("globex")
            ],
            [1, 2, 2, 2]
        );
        // Hits from before 10:00:00 go; b, at the cutoff, stays.
        assert_eq!(store.prune_rule_hits(t("2026-12-01T10:00:00Z")).unwrap(), 5);
        assert_eq!(
            [
                count("acm"),
                count("acme"),
                count("acme corp"),
                count("globex")
            ],
            [0, 1, 1, 0]
        );
        assert_eq!(store.prune_rule_hits(t("2026-12-01T10:00:00Z")).unwrap(), 0);
        assert_eq!(store.prune_rule_hits(t("2026-12-02T00:00:00Z")).unwrap(), 2);
        assert_eq!(store.rule_log.len(), 0);
    }
}
