//! Each rule's volume log: one hit per matched mention (repeats included) in time order, so
//! the digest and spike detection count a rule's mentions per hour with a range scan. It does
//! not decide what counts as a hit; intake's `NewAlert::log_hit` does.

use super::accept::NewAlert;
use super::{from_json, to_json, u64_key, SledStore, StoreError, TxResult};
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
    pub(crate) fn prune_rule_hits(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let cutoff = before.timestamp() as u64 ^ (1 << 63);
        let mut removed = 0;
        for kv in self.rule_log.iter() {
            let (k, _) = kv?;
            // Key: rule, 0x1f, secs (8 bytes), seq (8 bytes).
            if k.len() >= 16 && u64_key(&k[k.len() - 16..k.len() - 8]) < cutoff {
                self.rule_log.remove(&k)?;
                removed += 1;
            }
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
