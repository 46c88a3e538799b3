//! Each rule's volume log: one hit per matched mention (repeats included) in time order, so
//! the digest and spike detection count a rule's mentions per hour with a range scan. It does
//! not decide what counts as a hit; intake's `NewAlert::log_hit` does.
//!
//! A batch's hits of one rule share their time, so they are stored together: one sled entry
//! per rule per batch (at most `PACK_MAX` hits), keyed by the time and the first hit's
//! place in the mention log. sled's memory grows with its entries, not their size; a busy
//! rule's hour is a few entries instead of hundreds. Entries written before hold one hit
//! each (plain JSON) and are read alike.

use super::accept::NewAlert;
use super::{from_json, to_json, SledStore, StoreError, TxResult};
use crate::model::{AlertId, Mention};
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
    /// sled: the alert whose value holds the mention's body (`alert_record.rs`), for a
    /// mention that opened one; `None` where the body is in `mentions` (PostgreSQL, repeats,
    /// hits stored before, copies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertId>,
}

/// At most this many hits in one entry (a batch is at most 500 mentions): an entry stays a
/// few KiB, well inside one of sled's pages.
const PACK_MAX: usize = 64;

/// The first byte of a packed entry; an entry from before starts with `{`.
const PACKED: u8 = 1;

/// Hits of one rule that arrived in the same batch, so at the same time.
#[derive(Debug, Serialize, Deserialize)]
struct Pack {
    rule: String,
    at: DateTime<Utc>,
    hits: Vec<PackedHit>,
}

/// One hit inside a `Pack`: what differs from the others.
#[derive(Debug, Serialize, Deserialize)]
struct PackedHit {
    /// Its mention's place in the mention log (what `store copy` carries).
    q: u64,
    #[serde(rename = "k")]
    mention_key: String,
    #[serde(rename = "s")]
    source: String,
    #[serde(rename = "v")]
    sentiment: f64,
    #[serde(rename = "n")]
    negative: bool,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    published: Option<DateTime<Utc>>,
    #[serde(rename = "h", default, skip_serializing_if = "std::ops::Not::not")]
    held: bool,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    alert: Option<AlertId>,
}

/// The hits one entry holds with their places in the mention log, in order. `key` is the
/// entry's key (an entry from before holds one hit, its place at the key's end).
pub(super) fn decode_entry(key: &[u8], v: &[u8]) -> Result<Vec<(u64, RuleHit)>, StoreError> {
    if v.first() != Some(&PACKED) {
        let seq = key
            .get(key.len().saturating_sub(8)..)
            .map(super::u64_key)
            .unwrap_or(0);
        return Ok(vec![(seq, from_json("rule hit", v)?)]);
    }
    let pack: Pack = from_json("rule hits", &v[1..])?;
    Ok(pack
        .hits
        .into_iter()
        .map(|h| {
            let hit = RuleHit {
                rule: pack.rule.clone(),
                at: pack.at,
                mention_key: h.mention_key,
                source: h.source,
                sentiment: h.sentiment,
                negative: h.negative,
                published: h.published,
                held: h.held,
                alert: h.alert,
            };
            (h.q, hit)
        })
        .collect())
}

/// A batch's hits, gathered per rule while its transaction runs and written at its end
/// (`write`), one entry per rule (or per `PACK_MAX` hits).
#[derive(Default)]
pub(super) struct BatchHits {
    by_rule: std::collections::BTreeMap<String, Vec<PackedHit>>,
}

impl BatchHits {
    /// One hit per rule of a newly stored mention (`seq`: its place in the mention log).
    /// `alert`: the alert that holds the mention's body, if one does.
    pub(super) fn add(
        &mut self,
        mention: &Mention,
        new: &NewAlert,
        mention_key: &str,
        seq: u64,
        alert: Option<AlertId>,
    ) {
        for rule in &new.rules {
            self.by_rule
                .entry(rule.clone())
                .or_default()
                .push(PackedHit {
                    q: seq,
                    mention_key: mention_key.to_string(),
                    source: mention.source.clone(),
                    sentiment: new.sentiment,
                    negative: new.negative,
                    published: mention.published,
                    held: new.held,
                    alert,
                });
        }
    }

    /// Writes the hits, all at `now` (the batch's time).
    pub(super) fn write(self, rule_log: &TransactionalTree, now: DateTime<Utc>) -> TxResult<()> {
        for (rule, hits) in self.by_rule {
            let mut hits = hits.into_iter().peekable();
            while hits.peek().is_some() {
                let chunk: Vec<PackedHit> = hits.by_ref().take(PACK_MAX).collect();
                let key = rule_log_key(&rule, now.timestamp(), chunk[0].q);
                let pack = Pack {
                    rule: rule.clone(),
                    at: now,
                    hits: chunk,
                };
                let mut value = vec![PACKED];
                value.extend_from_slice(&to_json(&pack));
                rule_log.insert(key, value)?;
            }
        }
        Ok(())
    }
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
            let (k, v) = kv?;
            for (_, hit) in decode_entry(&k, &v)? {
                if hit.at >= from && hit.at < to {
                    out.push(hit);
                }
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
                let (k, v) = kv?;
                self.rule_log.remove(&k)?;
                // An unreadable entry goes too (it is older than anything kept), uncounted.
                removed += decode_entry(&k, &v).map_or(0, |hits| hits.len());
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
                let (k, v) = kv?;
                Ok(decode_entry(&k, &v)?.first().map(|(_, hit)| hit.at))
            }
            None => Ok(None),
        }
    }
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

    /// A batch's hits of a rule share one entry (at most `PACK_MAX` each) and read back one
    /// by one, in order, with everything they held; an entry of one hit written before packs
    /// is read beside them.
    #[tokio::test]
    async fn a_batchs_hits_are_stored_together_and_read_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let old = RuleHit {
            rule: "acme".into(),
            at: t("2026-12-01T08:00:00Z"),
            mention_key: "feed\u{1f}old".into(),
            source: "feed".into(),
            sentiment: -0.5,
            negative: true,
            published: Some(t("2026-11-30T08:00:00Z")),
            held: true,
            alert: None,
        };
        store
            .rule_log
            .insert(rule_log_key("acme", old.at.timestamp(), 7), to_json(&old))
            .unwrap();
        let batch: Vec<_> = (0..150)
            .map(|i| {
                let mut c = candidate(&format!("m{i}"), true);
                if i % 2 == 0 {
                    c.alert.as_mut().unwrap().rules = vec!["acme".into(), "globex".into()];
                }
                c
            })
            .collect();
        let now = t("2026-12-01T09:00:00Z");
        store
            .accept("feed", &SourceState::default(), &batch, now)
            .await
            .unwrap();
        // acme: 150 hits in 3 entries (64 + 64 + 22), globex: 75 in 2, and the old one.
        assert_eq!(store.rule_log.len(), 3 + 2 + 1);
        let all = |rule: &str| {
            store
                .rule_hits(rule, t("2026-01-01T00:00:00Z"), t("2027-01-01T00:00:00Z"))
                .unwrap()
        };
        let acme = all("acme");
        assert_eq!(acme.len(), 151);
        assert_eq!(acme[0], old);
        let keys: Vec<String> = (0..150).map(|i| format!("feed\u{1f}m{i}")).collect();
        assert_eq!(
            acme[1..]
                .iter()
                .map(|h| h.mention_key.clone())
                .collect::<Vec<_>>(),
            keys
        );
        assert!(acme[1..]
            .iter()
            .all(|h| h.at == now && h.source == "feed" && !h.held));
        assert_eq!(all("globex").len(), 75);
        assert_eq!(store.first_hit("acme").unwrap(), Some(old.at));
        assert_eq!(
            store.first_hit("globex").unwrap(),
            Some(now),
            "a packed entry's time"
        );
        // Each hit keeps its own place in the mention log (what a copy carries).
        let mut places = Vec::new();
        for kv in store.rule_log.iter() {
            let (k, v) = kv.unwrap();
            places.extend(
                decode_entry(&k, &v)
                    .unwrap()
                    .into_iter()
                    .map(|(q, h)| (h.rule, q)),
            );
        }
        assert_eq!(places.len(), 226);
        assert_eq!(places[0], ("acme".to_string(), 7));
        let acme_places: Vec<u64> = places[1..151].iter().map(|p| p.1).collect();
        let mut sorted = acme_places.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, acme_places, "150 distinct places, in order");
        assert_eq!(store.prune_rule_hits(now).unwrap(), 1, "only the old one");
        assert_eq!(
            store.prune_rule_hits(t("2026-12-01T09:00:01Z")).unwrap(),
            225
        );
    }

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
