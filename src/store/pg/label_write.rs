//! Writing a relevance label over PostgreSQL, inside the transaction of the desk change that
//! gives it (see `PgStore::change_alert`), with the sled backend's meaning (`labels.rs`,
//! `apply_label`): per rule, the earlier label (if the new one replaces it) is taken back from
//! the rule's and the global counts and the new one added; a feature whose counts both reach
//! zero is deleted. The reads are in `labels.rs` beside this file.

use super::alerts::db_id;
use super::tx::TxError;
use crate::analysis::relevance::{LabelKind, ModelHeader};
use crate::model::AlertId;
use crate::store::labels::LabelStep;
use crate::store::LabelWrite;
use deadpool_postgres::Transaction;
use tokio_postgres::types::Json;

/// The model every rule shares (the global prior), under the empty name no rule can have.
const GLOBAL: &str = "";

/// `LabelKind` as serde writes it (the `labels.kind` column).
fn kind_name(kind: LabelKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Writes `w` for alert `id`. Returns whether anything changed. Locks the label row and each
/// model's header row before touching counts, so concurrent labels of one rule queue up
/// instead of losing an update; the rules are taken in sorted order so two writers lock
/// headers in the same order.
pub(super) async fn apply_label(
    tx: &Transaction<'_>,
    id: AlertId,
    w: &LabelWrite,
) -> Result<bool, TxError> {
    let mut rules: Vec<&String> = w.rules.iter().collect();
    rules.sort();
    let mut changed = false;
    for rule in rules {
        let row = tx
            .query_opt(
                "SELECT kind, features FROM labels WHERE rule = $1 AND alert_id = $2 FOR UPDATE",
                &[rule, &db_id(id)],
            )
            .await?;
        // An unreadable record is replaced; its counts cannot be taken back.
        let old: Option<(LabelKind, Vec<u32>)> = row.and_then(|r| {
            let kind: String = r.get(0);
            let kind: LabelKind = serde_json::from_value(serde_json::Value::String(kind)).ok()?;
            let features: Vec<i64> = r.get(1);
            let features = features
                .into_iter()
                .map(u32::try_from)
                .collect::<Result<Vec<u32>, _>>()
                .ok()?;
            Some((kind, features))
        });
        if !w.kind.replaces(old.as_ref().map(|o| o.0)) {
            continue;
        }
        for model in [rule.as_str(), GLOBAL] {
            if let Some((kind, features)) = &old {
                count(tx, model, features, *kind, false).await?;
            }
            count(tx, model, &w.features, w.kind, true).await?;
        }
        let features: Vec<i64> = w.features.iter().map(|&f| i64::from(f)).collect();
        tx.execute(
            "INSERT INTO labels (rule, alert_id, kind, labelled_at, labelled_by, action, features) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (rule, alert_id) DO UPDATE SET kind = EXCLUDED.kind, \
             labelled_at = EXCLUDED.labelled_at, labelled_by = EXCLUDED.labelled_by, \
             action = EXCLUDED.action, features = EXCLUDED.features",
            &[
                rule,
                &db_id(id),
                &kind_name(w.kind),
                &w.at,
                &w.by,
                &w.action,
                &features,
            ],
        )
        .await?;
        changed = true;
    }
    if changed {
        // Every replica's cached counts are old now: the `label_generation` counter that
        // `PgStore::label_generation` (labels.rs, helper pgside) reads, bumped exactly as its
        // `bump_label_generation` does (the first bump creates the row at 1).
        tx.execute(
            "INSERT INTO counters (name, next_value) VALUES ('label_generation', 1) \
             ON CONFLICT (name) DO UPDATE SET next_value = counters.next_value + 1",
            &[],
        )
        .await?;
    }
    Ok(changed)
}

/// Adds (or takes back) one label's features to a model's counts and totals.
async fn count(
    tx: &Transaction<'_>,
    model: &str,
    features: &[u32],
    kind: LabelKind,
    add: bool,
) -> Result<(), TxError> {
    // The header row exists (locked) before its counts change.
    tx.execute(
        "INSERT INTO relevance_models (model, header) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&model, &Json(ModelHeader::default())],
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT header FROM relevance_models WHERE model = $1 FOR UPDATE",
            &[&model],
        )
        .await?;
    // An unreadable header starts again from zero, as in sled.
    let mut header: ModelHeader = serde_json::from_value(row.get(0)).unwrap_or_default();
    let step = LabelStep::start(&mut header, kind, add);
    for &f in features {
        let row = tx
            .query_opt(
                "SELECT relevant, not_relevant FROM relevance_features \
                 WHERE model = $1 AND feature = $2 FOR UPDATE",
                &[&model, &i64::from(f)],
            )
            .await?;
        let c: [u32; 2] = match row {
            Some(r) => [
                u32::try_from(r.get::<_, i64>(0)).unwrap_or(u32::MAX),
                u32::try_from(r.get::<_, i64>(1)).unwrap_or(u32::MAX),
            ],
            None => [0, 0],
        };
        let c = step.feature(&mut header, c);
        if c == [0, 0] {
            tx.execute(
                "DELETE FROM relevance_features WHERE model = $1 AND feature = $2",
                &[&model, &i64::from(f)],
            )
            .await?;
        } else {
            tx.execute(
                "INSERT INTO relevance_features (model, feature, relevant, not_relevant) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (model, feature) DO UPDATE \
                 SET relevant = EXCLUDED.relevant, not_relevant = EXCLUDED.not_relevant",
                &[&model, &i64::from(f), &i64::from(c[0]), &i64::from(c[1])],
            )
            .await?;
        }
    }
    tx.execute(
        "UPDATE relevance_models SET header = $2 WHERE model = $1",
        &[&model, &Json(header)],
    )
    .await?;
    Ok(())
}
