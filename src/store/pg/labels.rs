//! Reading the desk's relevance labels and the counts the relevance models score with: sled's
//! `labels` and `relevance` trees as the `labels`, `relevance_models` (one header per model)
//! and `relevance_features` tables. Labels are written with the desk change that gives them
//! (`label_write.rs`); this file reads them, and says how a writer tells every replica's
//! cached counts that they are old ([`LABEL_GENERATION`]).

use super::meta::from_value;
use super::{query_error, PgStore};
use crate::analysis::relevance::{Counts, LabelKind, ModelHeader};
use crate::model::AlertId;
use crate::store::{LabelRecord, StoreError};
use deadpool_postgres::GenericClient;
use std::collections::HashMap;

/// The model every rule shares (the global prior) is kept under the empty name, which no rule
/// can have (as in sled).
pub(super) const GLOBAL: &str = "";

/// The `counters` row every label write bumps in its transaction (`label_write.rs`: when
/// anything changed, `INSERT … VALUES ('label_generation', 1) ON CONFLICT (name) DO UPDATE SET
/// next_value = counters.next_value + 1`); [`PgStore::label_generation`] reads it.
pub(super) const LABEL_GENERATION: &str = "label_generation";

#[allow(dead_code)] // Called through the `Store` façade once it has a PostgreSQL variant.
impl PgStore {
    /// A rule's model totals (labels per kind); the default before its first label. The empty
    /// name is the global model, as in sled.
    pub async fn relevance_header(&self, rule: &str) -> Result<ModelHeader, StoreError> {
        let client = self.client().await?;
        header(&client, rule)
            .await
            .map_err(|e| query_error(&self.url, "reading a relevance header", e))?
            .map(|v| from_value(&header_name(rule), v))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// A rule's model as intake scores with it (`None`: the global model): its header and
    /// feature counts, read in one snapshot so they agree even while a label is written.
    pub(crate) async fn relevance_counts(&self, rule: Option<&str>) -> Result<Counts, StoreError> {
        let model = rule.unwrap_or(GLOBAL);
        let mut client = self.client().await?;
        let err = |e| query_error(&self.url, "reading relevance counts", e);
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(err)?;
        let header: ModelHeader = header(&tx, model)
            .await
            .map_err(err)?
            .map(|v| from_value(&header_name(model), v))
            .transpose()?
            .unwrap_or_default();
        let rows = tx
            .query(
                "SELECT feature, relevant, not_relevant FROM relevance_features WHERE model = $1",
                &[&model],
            )
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        let mut features = HashMap::with_capacity(rows.len());
        for r in &rows {
            let feature: i64 = r.get(0);
            let counts = [r.get::<_, i64>(1), r.get::<_, i64>(2)];
            let corrupt = || StoreError::Corrupt {
                key: format!("relevance feature {feature} of {}", header_name(model)),
                reason: format!("counts {counts:?} are not two u32"),
            };
            let feature = u32::try_from(feature).map_err(|_| corrupt())?;
            let c0 = u32::try_from(counts[0]).map_err(|_| corrupt())?;
            let c1 = u32::try_from(counts[1]).map_err(|_| corrupt())?;
            features.insert(feature, [c0, c1]);
        }
        Ok(Counts { header, features })
    }

    /// Every label of a rule, by alert (ascending id, sled's key order).
    pub async fn labels(&self, rule: &str) -> Result<Vec<(AlertId, LabelRecord)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT alert_id, kind, labelled_at, labelled_by, action, features \
                 FROM labels WHERE rule = $1 ORDER BY alert_id",
                &[&rule],
            )
            .await
            .map_err(|e| query_error(&self.url, "reading labels", e))?;
        rows.iter()
            .map(|r| {
                let id = AlertId(r.get::<_, i64>(0) as u64);
                let what = format!("label of alert {id}");
                let kind: LabelKind =
                    from_value(&what, serde_json::Value::String(r.get::<_, String>(1)))?;
                let features = r
                    .get::<_, Vec<i64>>(5)
                    .into_iter()
                    .map(|f| {
                        u32::try_from(f).map_err(|_| StoreError::Corrupt {
                            key: what.clone(),
                            reason: format!("feature {f} is not a u32"),
                        })
                    })
                    .collect::<Result<Vec<u32>, _>>()?;
                Ok((
                    id,
                    LabelRecord {
                        kind,
                        at: r.get(2),
                        by: r.get(3),
                        action: r.get(4),
                        features,
                    },
                ))
            })
            .collect()
    }

    /// Changes every time any replica writes a label (see `SledStore::label_generation`), so
    /// a scorer knows its cached counts are old: the [`LABEL_GENERATION`] counter that every
    /// label write bumps in its transaction; 0 before the first.
    pub(crate) async fn label_generation(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT next_value FROM counters WHERE name = $1",
                &[&LABEL_GENERATION],
            )
            .await
            .map_err(|e| query_error(&self.url, "reading the label generation", e))?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
    }
}

/// A model's header JSON, if it has one.
async fn header(
    client: &impl GenericClient,
    model: &str,
) -> Result<Option<serde_json::Value>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT header FROM relevance_models WHERE model = $1",
            &[&model],
        )
        .await?
        .map(|r| r.get(0)))
}

/// How a model's header is named in a corrupt-record error.
fn header_name(model: &str) -> String {
    if model == GLOBAL {
        "relevance header of the global model".to_string()
    } else {
        format!("relevance header of rule {model}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::meta::to_value;
    use super::super::test_store::{sql, store};
    use super::*;
    use crate::analysis::relevance::LabelCounts;
    use chrono::{DateTime, Utc};

    /// What the label writer (`label_write.rs`) does in every transaction that changed a
    /// label: bumps the generation (the first bump creates the row at 1).
    async fn bump_label_generation(
        tx: &tokio_postgres::Transaction<'_>,
    ) -> Result<(), tokio_postgres::Error> {
        tx.execute(
            "INSERT INTO counters (name, next_value) VALUES ($1, 1) \
             ON CONFLICT (name) DO UPDATE SET next_value = counters.next_value + 1",
            &[&LABEL_GENERATION],
        )
        .await?;
        Ok(())
    }

    /// Writes what a label write leaves in the tables (as `label_write.rs` does, with the
    /// schema's encoding): the label row, the rule's and the global header, their feature
    /// counts, and the generation bump, in one transaction.
    async fn write_label(
        store: &PgStore,
        rule: &str,
        id: i64,
        record: &LabelRecord,
        header: &ModelHeader,
        features: &[(u32, [u32; 2])],
    ) {
        let mut client = store.client().await.unwrap();
        let tx = client.transaction().await.unwrap();
        let kind = to_value(&record.kind);
        let features_col: Vec<i64> = record.features.iter().map(|&f| i64::from(f)).collect();
        tx.execute(
            "INSERT INTO labels (rule, alert_id, kind, labelled_at, labelled_by, action, features) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (rule, alert_id) DO UPDATE SET kind = EXCLUDED.kind, \
             labelled_at = EXCLUDED.labelled_at, labelled_by = EXCLUDED.labelled_by, \
             action = EXCLUDED.action, features = EXCLUDED.features",
            &[
                &rule,
                &id,
                &kind.as_str().unwrap(),
                &record.at,
                &record.by,
                &record.action,
                &features_col,
            ],
        )
        .await
        .unwrap();
        for model in [rule, GLOBAL] {
            tx.execute(
                "INSERT INTO relevance_models (model, header) VALUES ($1, $2) \
                 ON CONFLICT (model) DO UPDATE SET header = EXCLUDED.header",
                &[&model, &to_value(header)],
            )
            .await
            .unwrap();
            for (f, [r, n]) in features {
                tx.execute(
                    "INSERT INTO relevance_features (model, feature, relevant, not_relevant) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (model, feature) DO UPDATE \
                     SET relevant = EXCLUDED.relevant, not_relevant = EXCLUDED.not_relevant",
                    &[&model, &i64::from(*f), &i64::from(*r), &i64::from(*n)],
                )
                .await
                .unwrap();
            }
        }
        bump_label_generation(&tx).await.unwrap();
        tx.commit().await.unwrap();
    }

    fn record(kind: LabelKind, features: &[u32], at: &str) -> LabelRecord {
        LabelRecord {
            kind,
            at: at.parse::<DateTime<Utc>>().unwrap(),
            by: "slack:U1".into(),
            action: "claim".into(),
            features: features.to_vec(),
        }
    }

    /// Before any label: default headers, empty counts, no labels, generation 0. After label
    /// writes by one replica: another replica reads the rule's and the global header and
    /// counts, the rule's labels in alert order with every field, and a generation that moved
    /// with each write (so its cached counts are known to be old).
    #[tokio::test]
    async fn labels_and_counts_written_by_one_replica_are_read_by_another() {
        let Some((db, writer)) = store().await else {
            return;
        };
        let reader = PgStore::connect(&db.config()).await.unwrap();
        assert_eq!(
            reader.relevance_header("acme").await.unwrap(),
            ModelHeader::default()
        );
        assert_eq!(
            reader.relevance_counts(None).await.unwrap(),
            Counts::default()
        );
        assert!(reader.labels("acme").await.unwrap().is_empty());
        let g0 = reader.label_generation().await.unwrap();
        assert_eq!(g0, 0);

        let positive = record(LabelKind::Positive, &[1, 2, 3], "2026-12-01T10:00:00.5Z");
        let mut header = ModelHeader {
            labels: LabelCounts {
                positive: 1,
                ..LabelCounts::default()
            },
            docs: [2, 0],
            mass: [6, 0],
            vocab: 3,
        };
        write_label(
            &writer,
            "acme",
            7,
            &positive,
            &header,
            &[(1, [2, 0]), (2, [2, 0]), (3, [2, 0])],
        )
        .await;
        let g1 = reader.label_generation().await.unwrap();
        assert_ne!(g1, g0, "a label write moves the generation");

        let negative = LabelRecord {
            by: "discord:42".into(),
            action: "ignore".into(),
            ..record(
                LabelKind::Negative,
                &[3, 4, u32::MAX],
                "2026-12-01T11:00:00Z",
            )
        };
        header.labels.negative = 1;
        header.docs = [2, 2];
        header.mass = [6, 6];
        header.vocab = 5;
        write_label(
            &writer,
            "acme",
            3,
            &negative,
            &header,
            &[(3, [2, 2]), (4, [0, 2]), (u32::MAX, [0, 2])],
        )
        .await;
        let g2 = reader.label_generation().await.unwrap();
        assert!(g2 != g1 && g2 != g0, "{g0} {g1} {g2}");

        assert_eq!(reader.relevance_header("acme").await.unwrap(), header);
        assert_eq!(reader.relevance_header("").await.unwrap(), header);
        assert_eq!(
            reader.relevance_header("globex").await.unwrap(),
            ModelHeader::default()
        );
        for model in [Some("acme"), None] {
            let c = reader.relevance_counts(model).await.unwrap();
            assert_eq!(c.header, header);
            assert_eq!(c.features.len(), 5);
            assert_eq!(c.features[&3], [2, 2]);
            assert_eq!(c.features[&4], [0, 2]);
            assert_eq!(c.features[&u32::MAX], [0, 2]);
        }
        assert_eq!(
            reader.relevance_counts(Some("globex")).await.unwrap(),
            Counts::default()
        );
        let labels = reader.labels("acme").await.unwrap();
        assert_eq!(
            labels,
            vec![(AlertId(3), negative.clone()), (AlertId(7), positive)]
        );
        assert!(reader.labels("globex").await.unwrap().is_empty());
        assert_eq!(
            reader.label_generation().await.unwrap(),
            g2,
            "reads do not move it"
        );
    }

    /// Two replicas writing labels at the same moment both move the generation: after
    /// twenty concurrent label transactions, it has moved twenty times.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_label_writes_each_move_the_generation() {
        let Some((db, a)) = store().await else { return };
        let b = PgStore::connect(&db.config()).await.unwrap();
        let before = a.label_generation().await.unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move {
                    let mut client = store.client().await.unwrap();
                    let tx = client.transaction().await.unwrap();
                    bump_label_generation(&tx).await.unwrap();
                    tx.commit().await.unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(b.label_generation().await.unwrap(), before + 20);
    }

    /// Intake scores with a header and feature counts that belong together: while another
    /// replica writes label after label (each adding one feature to the global model and
    /// its header's `vocab`), every read finds exactly `vocab` features.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn counts_are_read_in_one_snapshot_while_labels_are_written() {
        let Some((db, writer)) = store().await else {
            return;
        };
        let reader = PgStore::connect(&db.config()).await.unwrap();
        let writing = tokio::spawn(async move {
            for i in 0..60u32 {
                let mut client = writer.client().await.unwrap();
                let tx = client.transaction().await.unwrap();
                let header = ModelHeader {
                    vocab: u64::from(i) + 1,
                    ..ModelHeader::default()
                };
                tx.execute(
                    "INSERT INTO relevance_models (model, header) VALUES ('', $1) \
                     ON CONFLICT (model) DO UPDATE SET header = EXCLUDED.header",
                    &[&to_value(&header)],
                )
                .await
                .unwrap();
                tx.execute(
                    "INSERT INTO relevance_features (model, feature, relevant) VALUES ('', $1, 2)",
                    &[&i64::from(i)],
                )
                .await
                .unwrap();
                bump_label_generation(&tx).await.unwrap();
                tx.commit().await.unwrap();
            }
        });
        let mut reads = 0;
        while !writing.is_finished() || reads == 0 {
            let c = reader.relevance_counts(None).await.unwrap();
            assert_eq!(c.features.len() as u64, c.header.vocab, "read {reads}");
            reads += 1;
        }
        writing.await.unwrap();
        let c = reader.relevance_counts(None).await.unwrap();
        assert_eq!(c.header.vocab, 60);
        assert_eq!(c.features.len(), 60);
        assert_eq!(reader.label_generation().await.unwrap(), 60);
    }

    /// sled's `labels_count_exactly_and_survive_a_reopen`, with the same assertions, through
    /// the PostgreSQL `accept` and `change_alert` (pgcore) and these reads: a label is counted
    /// in the rule's and the global model with its change; a label that changes kind is taken
    /// back exactly; a weak negative never replaces a person's label; counts and labels are
    /// read by another replica; every label write moves the generation, and one that changes
    /// nothing does not.
    #[tokio::test]
    async fn labels_count_exactly_through_desk_changes_as_in_sled() {
        use crate::model::SourceState;
        use crate::store::test_util::candidate;
        use crate::store::ChangeOutcome;

        async fn label(store: &PgStore, id: AlertId, kind: LabelKind, features: &[u32]) {
            let alert = store.alert(id).await.unwrap().unwrap();
            let change = crate::store::test_util::label_change(alert.clone(), kind, features);
            assert_eq!(
                store.change_alert(&alert, change).await.unwrap(),
                ChangeOutcome::Applied
            );
        }

        let Some((db, store)) = store().await else {
            return;
        };
        let batch = [candidate("a", true), candidate("b", true)];
        let got = store
            .accept("feed", &SourceState::default(), &batch, Utc::now())
            .await
            .unwrap();
        let (a, b) = (got.alerts[0].id, got.alerts[1].id);
        let g0 = store.label_generation().await.unwrap();
        label(&store, a, LabelKind::Positive, &[1, 2, 3]).await;
        assert!(store.label_generation().await.unwrap() > g0);
        label(&store, b, LabelKind::WeakNegative, &[3, 4]).await;
        // A snooze running out after a claim says nothing new.
        let g1 = store.label_generation().await.unwrap();
        label(&store, a, LabelKind::WeakNegative, &[1, 2, 3]).await;
        assert_eq!(
            store.label_generation().await.unwrap(),
            g1,
            "nothing changed"
        );
        // A person overrides the weak negative: taken back, the negative counted.
        label(&store, b, LabelKind::Negative, &[3, 4]).await;

        let store = PgStore::connect(&db.config()).await.unwrap();
        for model in [Some("acme"), None] {
            let c = store.relevance_counts(model).await.unwrap();
            assert_eq!(c.header.labels.positive, 1);
            assert_eq!(c.header.labels.negative, 1);
            assert_eq!(c.header.labels.weak_negative, 0);
            assert_eq!(c.header.docs, [2, 2]);
            assert_eq!(c.header.mass, [6, 4]);
            assert_eq!(c.header.vocab, 4);
            assert_eq!(c.features[&3], [2, 2]);
            assert_eq!(c.features[&4], [0, 2]);
        }
        assert_eq!(
            store.relevance_header("acme").await.unwrap(),
            store.relevance_counts(Some("acme")).await.unwrap().header
        );
        let labels = store.labels("acme").await.unwrap();
        assert_eq!(labels.len(), 2);
        assert_eq!(labels[1].1.kind, LabelKind::Negative);
        // Changing the claim to not relevant takes every positive count back.
        let a = labels[0].0;
        label(&store, a, LabelKind::Negative, &[1, 2, 3]).await;
        let c = store.relevance_counts(Some("acme")).await.unwrap();
        assert_eq!(c.header.docs, [0, 4]);
        assert_eq!(c.header.mass, [0, 10]);
        assert_eq!(c.features[&1], [0, 2]);
        assert_eq!(c.header.vocab, 4);
    }

    /// A header or a label that no longer reads is a corrupt record naming what it is, not a
    /// silent default.
    #[tokio::test]
    async fn unreadable_headers_and_labels_are_named() {
        let Some((db, store)) = store().await else {
            return;
        };
        let sql = sql(&db).await;
        sql.batch_execute(
            "INSERT INTO relevance_models (model, header) VALUES ('acme', '{\"vocab\": \"many\"}'); \
             INSERT INTO labels (rule, alert_id, kind, labelled_at, labelled_by, action, features) \
             VALUES ('acme', 1, 'maybe', now(), 'slack:U1', 'claim', '{1}')",
        )
        .await
        .unwrap();
        let e = store.relevance_header("acme").await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Corrupt { key, .. } if key == "relevance header of rule acme"),
            "{e:?}"
        );
        let e = store.relevance_counts(Some("acme")).await.unwrap_err();
        assert!(matches!(&e, StoreError::Corrupt { .. }), "{e:?}");
        let e = store.labels("acme").await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Corrupt { key, .. } if key == "label of alert 1"),
            "{e:?}"
        );
    }
}
