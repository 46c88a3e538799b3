//! The desk's side of relevance learning: which label an action gives an alert (written by
//! the store with the change), and the per-rule figures `/desk stats` and the digest report
//! (labels so far, held back, promoted, estimated precision). The model itself is
//! `analysis::relevance`; holding back is intake's.

use super::state::Action;
use crate::analysis::relevance::{self, LabelKind};
use crate::model::{Actor, Alert, AlertState};
use crate::store::{LabelWrite, Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};

/// The source kind of a spike alert's mention (`digest::report::SPIKE_KIND`, which the desk
/// may not import): a spike is about volume, not one mention, and teaches nothing.
const SPIKE_KIND: &str = "spike";

/// The label an action gives: acting on an alert (claim, assign, resolve, promote, and
/// through their own paths note and relabel) says it is relevant; Not relevant says it is
/// not; a snooze that runs out with nobody acting says so weakly.
pub(crate) fn label_of(action: &Action) -> Option<LabelKind> {
    match action {
        Action::Claim | Action::Assign { .. } | Action::Resolve { .. } | Action::Promote => {
            Some(LabelKind::Positive)
        }
        Action::Ignore { .. } => Some(LabelKind::Negative),
        Action::Wake => Some(LabelKind::WeakNegative),
        Action::Unclaim | Action::Reopen | Action::Snooze { .. } => None,
    }
}

/// The label a note or a relabel gives: engaging with an alert says it is relevant, except on
/// one marked Not relevant, where the note is most likely why ("this is the animal, not the
/// car") and must not turn the person's label around.
pub(crate) fn label_of_engagement(alert: &Alert) -> Option<LabelKind> {
    (!matches!(alert.state, AlertState::Ignored { .. })).then_some(LabelKind::Positive)
}

/// The label write for `alert`, with its mention's features; `None` when relevance learning
/// is off, the action gives no label, or the alert is a spike or lost its mention.
pub(crate) async fn label_write(
    store: &Store,
    enabled: bool,
    alert: &Alert,
    kind: Option<LabelKind>,
    action: &str,
    by: &Actor,
    at: DateTime<Utc>,
) -> Result<Option<LabelWrite>, StoreError> {
    let Some(kind) = kind.filter(|_| enabled) else {
        return Ok(None);
    };
    let Some(m) = store.alert_mention(alert).await? else {
        return Ok(None);
    };
    if m.mention.source_kind == SPIKE_KIND {
        return Ok(None);
    }
    Ok(Some(LabelWrite {
        rules: alert.rules.clone(),
        kind,
        by: by.clone(),
        action: action.to_string(),
        features: relevance::features(&m.mention),
        at,
    }))
}

/// One rule's relevance figures for a set of alerts (a period's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleRelevance {
    pub rule: String,
    /// Labels the rule's model learned from so far (all time).
    pub labels: u32,
    /// Whether the model holds mentions back (enough labels of both kinds).
    pub trained: bool,
    /// Alerts of the period held back (promoted ones included).
    pub held: usize,
    /// Of those, promoted by a person: each a miss of the filter.
    pub promoted: usize,
    /// Labelled alerts of the period that were posted (not held back), relevant and not
    /// (weak negatives included).
    pub posted_positive: usize,
    pub posted_negative: usize,
}

impl RuleRelevance {
    /// Estimated precision of what the filter posted: relevant / (relevant + not relevant)
    /// among the period's posted alerts that people labelled; `None` without any.
    pub fn precision(&self) -> Option<f64> {
        let n = self.posted_positive + self.posted_negative;
        (n > 0).then(|| self.posted_positive as f64 / n as f64)
    }

    /// `acme: 34 labels · 5 held back · 1 promoted · precision 82 % (of 28 labelled)`.
    pub fn line(&self, min_labels: u32) -> String {
        let learning = if self.trained {
            format!("{} labels", self.labels)
        } else {
            format!(
                "{} label{} (learning: holds back from {min_labels} with both kinds)",
                self.labels,
                if self.labels == 1 { "" } else { "s" }
            )
        };
        let precision = match self.precision() {
            Some(p) => format!(
                "precision {:.0} % (of {} labelled)",
                100.0 * p,
                self.posted_positive + self.posted_negative
            ),
            None => "precision: nothing labelled yet".to_string(),
        };
        format!(
            "{}: {learning} · {} held back · {} promoted · {precision}",
            self.rule, self.held, self.promoted
        )
    }
}

/// Relevance figures per rule for `alerts` (each under every rule it matched), rules in
/// name order; rules whose model has no label and that held nothing back are left out.
pub async fn figures(
    store: &Store,
    alerts: &[&Alert],
    min_labels: u32,
) -> Result<Vec<RuleRelevance>, StoreError> {
    let mut by_rule: BTreeMap<&str, Vec<&Alert>> = BTreeMap::new();
    for a in alerts {
        for r in &a.rules {
            by_rule.entry(r.as_str()).or_default().push(a);
        }
    }
    let mut out = Vec::new();
    for (rule, alerts) in by_rule {
        let header = store.relevance_header(rule).await?;
        let labels: HashMap<_, _> = store
            .labels(rule)
            .await?
            .into_iter()
            .map(|(id, l)| (id, l.kind))
            .collect();
        let mut f = RuleRelevance {
            rule: rule.to_string(),
            labels: header.labels.total(),
            trained: relevance::trained(&header.labels, min_labels),
            ..RuleRelevance::default()
        };
        for a in alerts {
            if a.held {
                f.held += 1;
                // Promoted: a miss of the filter. Held and then confirmed not relevant is
                // the filter being right, not a promotion.
                if a.promoted_at.is_some() {
                    f.promoted += 1;
                }
                continue;
            }
            match labels.get(&a.id) {
                Some(k) if k.is_positive() => f.posted_positive += 1,
                Some(_) => f.posted_negative += 1,
                None => {}
            }
        }
        if f.labels > 0 || f.held > 0 {
            out.push(f);
        }
    }
    Ok(out)
}
