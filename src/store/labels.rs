//! The desk's relevance labels and the counts the relevance models score with: one label per
//! alert and rule (`labels`), and per rule (and for every rule together, the global prior)
//! a header with its totals and one small entry per feature (`relevance`). A label is written
//! in the transaction of the desk change that gives it (see `SledStore::change_alert`), so the
//! counts never disagree with the labels. What a label is and how a model scores is
//! `analysis::relevance`'s business.

use super::{from_json, to_json, SledStore, StoreError, TxResult};
use crate::analysis::relevance::{Counts, LabelKind, ModelHeader};
use crate::model::{Actor, AlertId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::TransactionalTree;
use std::collections::HashMap;

/// The model every rule shares (the global prior) is kept under the empty name, which no
/// rule can have.
const GLOBAL: &str = "";
/// After a model's name: its header.
pub(super) const HEADER: u8 = 0x1e;
/// After a model's name (or a rule's, in `labels`): a feature's hash or an alert id.
const SEP: u8 = 0x1f;

/// One alert's label for one rule, as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelRecord {
    pub kind: LabelKind,
    pub at: DateTime<Utc>,
    pub by: Actor,
    /// The desk action that gave it (`claim`, `ignore`, `wake`, `promote`, …).
    pub action: String,
    /// The mention's features when it was labelled: what is taken back if the label changes.
    pub features: Vec<u32>,
}

/// A label the desk writes with an alert change: for each of the alert's rules.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LabelWrite {
    pub(crate) rules: Vec<String>,
    pub(crate) kind: LabelKind,
    pub(crate) by: Actor,
    pub(crate) action: String,
    pub(crate) features: Vec<u32>,
    pub(crate) at: DateTime<Utc>,
}

pub(super) fn label_key(rule: &str, id: AlertId) -> Vec<u8> {
    let mut k = rule.as_bytes().to_vec();
    k.push(SEP);
    k.extend_from_slice(&id.0.to_be_bytes());
    k
}

pub(super) fn header_key(model: &str) -> Vec<u8> {
    let mut k = model.as_bytes().to_vec();
    k.push(HEADER);
    k
}

fn feature_prefix(model: &str) -> Vec<u8> {
    let mut k = model.as_bytes().to_vec();
    k.push(SEP);
    k
}

pub(super) fn feature_key(model: &str, f: u32) -> Vec<u8> {
    let mut k = feature_prefix(model);
    k.extend_from_slice(&f.to_be_bytes());
    k
}

pub(super) fn decode_counts(v: &[u8]) -> [u32; 2] {
    let mut out = [0u32; 2];
    for (i, slot) in out.iter_mut().enumerate() {
        if let Some(b) = v.get(i * 4..i * 4 + 4) {
            *slot = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
    }
    out
}

pub(super) fn encode_counts(c: [u32; 2]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&c[0].to_le_bytes());
    out[4..].copy_from_slice(&c[1].to_le_bytes());
    out
}

/// Writes `w` for alert `id` inside a transaction: per rule, the earlier label (if the new one
/// replaces it, see `LabelKind::replaces`) is taken back from the rule's and the global
/// counts and the new one added. Returns whether anything changed.
pub(super) fn apply_label(
    labels: &TransactionalTree,
    relevance: &TransactionalTree,
    id: AlertId,
    w: &LabelWrite,
) -> TxResult<bool> {
    let mut changed = false;
    for rule in &w.rules {
        let key = label_key(rule, id);
        // An unreadable record is replaced; its counts cannot be taken back.
        let old: Option<LabelRecord> = labels
            .get(&key)?
            .and_then(|v| serde_json::from_slice(&v).ok());
        if !w.kind.replaces(old.as_ref().map(|o| o.kind)) {
            continue;
        }
        for model in [rule.as_str(), GLOBAL] {
            if let Some(old) = &old {
                count(relevance, model, &old.features, old.kind, false)?;
            }
            count(relevance, model, &w.features, w.kind, true)?;
        }
        let record = LabelRecord {
            kind: w.kind,
            at: w.at,
            by: w.by.clone(),
            action: w.action.clone(),
            features: w.features.clone(),
        };
        labels.insert(key, to_json(&record))?;
        changed = true;
    }
    Ok(changed)
}

/// One label added to (or taken back from) a model: how its totals and each feature's counts
/// change. Both backends count through here; they differ only in where the numbers live.
pub(super) struct LabelStep {
    weight: u32,
    class: usize,
    add: bool,
}

impl LabelStep {
    /// Counts the label itself in `header`.
    pub(super) fn start(header: &mut ModelHeader, kind: LabelKind, add: bool) -> LabelStep {
        let step = LabelStep {
            weight: kind.weight(),
            class: kind.class(),
            add,
        };
        header.labels.add(kind, if add { 1 } else { -1 });
        header.docs[step.class] = step.total(header.docs[step.class]);
        step
    }

    /// A feature's new counts from `counts`, with `header`'s mass and vocabulary kept in
    /// step; `[0, 0]` means the feature is gone from the model.
    pub(super) fn feature(&self, header: &mut ModelHeader, mut counts: [u32; 2]) -> [u32; 2] {
        let was_zero = counts == [0, 0];
        let c = &mut counts[self.class];
        *c = if self.add {
            *c + self.weight
        } else {
            c.saturating_sub(self.weight)
        };
        header.mass[self.class] = self.total(header.mass[self.class]);
        match (was_zero, counts == [0, 0]) {
            (true, false) => header.vocab += 1,
            (false, true) => header.vocab = header.vocab.saturating_sub(1),
            _ => {}
        }
        counts
    }

    fn total(&self, x: u64) -> u64 {
        if self.add {
            x + u64::from(self.weight)
        } else {
            x.saturating_sub(u64::from(self.weight))
        }
    }
}

/// Adds (or takes back) one label's features to a model's counts and totals.
fn count(
    relevance: &TransactionalTree,
    model: &str,
    features: &[u32],
    kind: LabelKind,
    add: bool,
) -> TxResult<()> {
    let hkey = header_key(model);
    let mut header: ModelHeader = relevance
        .get(&hkey)?
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_default();
    let step = LabelStep::start(&mut header, kind, add);
    for &f in features {
        let fkey = feature_key(model, f);
        let c = relevance
            .get(&fkey)?
            .map(|v| decode_counts(&v))
            .unwrap_or([0, 0]);
        let c = step.feature(&mut header, c);
        if c == [0, 0] {
            relevance.remove(fkey)?;
        } else {
            relevance.insert(fkey, &encode_counts(c))?;
        }
    }
    relevance.insert(hkey, to_json(&header))?;
    Ok(())
}

impl SledStore {
    /// A rule's model totals (labels per kind); the default before its first label.
    pub fn relevance_header(&self, rule: &str) -> Result<ModelHeader, StoreError> {
        Ok(self
            .relevance
            .get(header_key(rule))?
            .map(|v| from_json(&format!("relevance header of rule {rule}"), &v))
            .transpose()?
            .unwrap_or_default())
    }

    /// A rule's model as intake scores with it (`None`: the global model).
    pub(crate) fn relevance_counts(&self, rule: Option<&str>) -> Result<Counts, StoreError> {
        let model = rule.unwrap_or(GLOBAL);
        let header = if rule.is_some() {
            self.relevance_header(model)?
        } else {
            self.relevance
                .get(header_key(GLOBAL))?
                .map(|v| from_json("relevance header of the global model", &v))
                .transpose()?
                .unwrap_or_default()
        };
        let prefix = feature_prefix(model);
        let mut features = HashMap::with_capacity(header.vocab as usize);
        for kv in self.relevance.scan_prefix(&prefix) {
            let (k, v) = kv?;
            let Some(b) = k.get(prefix.len()..prefix.len() + 4) else {
                continue;
            };
            if k.len() != prefix.len() + 4 {
                continue;
            }
            features.insert(
                u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                decode_counts(&v),
            );
        }
        Ok(Counts { header, features })
    }

    /// Every label of a rule, by alert.
    pub fn labels(&self, rule: &str) -> Result<Vec<(AlertId, LabelRecord)>, StoreError> {
        let prefix = feature_prefix(rule);
        let mut out = Vec::new();
        for kv in self.labels.scan_prefix(&prefix) {
            let (k, v) = kv?;
            if k.len() != prefix.len() + 8 {
                continue;
            }
            let id = AlertId(super::u64_key(&k[prefix.len()..]));
            out.push((id, from_json(&format!("label of alert {id}"), &v)?));
        }
        Ok(out)
    }

    /// Changes every time a label is written, so a scorer knows its cached counts are old.
    pub(crate) fn label_generation(&self) -> u64 {
        self.label_generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    pub(super) fn labels_changed(&self) {
        self.label_generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{candidate, label_change};
    use super::super::ChangeOutcome;
    use super::*;
    use crate::model::SourceState;

    async fn label(store: &SledStore, id: AlertId, kind: LabelKind, features: &[u32]) {
        let expected = store.alert(id).unwrap().unwrap();
        let c = label_change(expected.clone(), kind, features);
        assert_eq!(
            store.change_alert(&expected, c).await.unwrap(),
            ChangeOutcome::Applied
        );
    }

    /// A label is counted in the rule's and the global model with its change; a label that
    /// changes kind is taken back exactly; a weak negative never replaces a person's label;
    /// counts and labels survive a reopen; every label write moves the generation.
    #[tokio::test]
    async fn labels_count_exactly_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            let batch = [candidate("a", true), candidate("b", true)];
            let got = store
                .accept("feed", &SourceState::default(), &batch, Utc::now())
                .await
                .unwrap();
            let (a, b) = (got.alerts[0].id, got.alerts[1].id);
            let g0 = store.label_generation();
            label(&store, a, LabelKind::Positive, &[1, 2, 3]).await;
            assert!(store.label_generation() > g0);
            label(&store, b, LabelKind::WeakNegative, &[3, 4]).await;
            // A snooze running out after a claim says nothing new.
            let g1 = store.label_generation();
            label(&store, a, LabelKind::WeakNegative, &[1, 2, 3]).await;
            assert_eq!(store.label_generation(), g1, "nothing changed");
            // A person overrides the weak negative: taken back, the negative counted.
            label(&store, b, LabelKind::Negative, &[3, 4]).await;
        }
        let store = SledStore::open(dir.path()).unwrap();
        for model in [Some("acme"), None] {
            let c = store.relevance_counts(model).unwrap();
            assert_eq!(c.header.labels.positive, 1);
            assert_eq!(c.header.labels.negative, 1);
            assert_eq!(c.header.labels.weak_negative, 0);
            assert_eq!(c.header.docs, [2, 2]);
            assert_eq!(c.header.mass, [6, 4]);
            assert_eq!(c.header.vocab, 4);
            assert_eq!(c.features[&3], [2, 2]);
            assert_eq!(c.features[&4], [0, 2]);
        }
        let labels = store.labels("acme").unwrap();
        assert_eq!(labels.len(), 2);
        assert_eq!(labels[1].1.kind, LabelKind::Negative);
        // Changing the claim to not relevant takes every positive count back.
        let a = labels[0].0;
        label(&store, a, LabelKind::Negative, &[1, 2, 3]).await;
        let c = store.relevance_counts(Some("acme")).unwrap();
        assert_eq!(c.header.docs, [0, 4]);
        assert_eq!(c.header.mass, [0, 10]);
        assert_eq!(c.features[&1], [0, 2]);
        assert_eq!(c.header.vocab, 4);
    }
}
