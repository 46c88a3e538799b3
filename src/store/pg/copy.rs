//! The PostgreSQL backend's half of `mentiondesk store copy` (see `store/copy.rs`): exports
//! every table as [`Record`]s from one read-only snapshot, and imports a stream of them in
//! one transaction, so an interrupted copy into PostgreSQL leaves the target as it was.

use super::accept::mention_from;
use super::alerts::{db_id, kind_name as timer_kind_name};
use super::meta::to_value;
use super::{query_error, PgStore};
use crate::analysis::relevance::LabelKind;
use crate::model::AlertId;
use crate::store::copy::{
    finished_mark, started_mark, Counter, Counters, Fingerprint, Record, MARKER,
};
use crate::store::{LabelRecord, RuleHit, StoreError, StoredMention, ThreadMark};
use tokio::sync::mpsc;
use tokio_postgres::types::Json;
use tokio_postgres::Row;

/// Rows fetched from a cursor at a time.
const FETCH: usize = 1000;

/// The identity sequences behind the counters other than alert ids.
const SEQUENCES: [(&str, &str, Counter); 3] = [
    ("outbox", "seq", Counter::Outbox),
    ("mention_log", "seq", Counter::MentionLog),
    ("audit", "seq", Counter::Audit),
];

/// Every table a copy replaces (`counters` is reset separately: its alert id row stays).
const TABLES: &str = "meta, mentions, mention_log, seen, alerts, audit, timers, outbox, \
     message_refs, requests, mutes, threads, rule_log, labels, relevance_models, \
     relevance_features, source_state";

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn json<T: serde::de::DeserializeOwned>(what: &str, v: serde_json::Value) -> Result<T, StoreError> {
    serde_json::from_value(v).map_err(|e| StoreError::Corrupt {
        key: what.to_string(),
        reason: e.to_string(),
    })
}

/// One table's export: its query and how a row becomes a record.
struct Table {
    name: &'static str,
    query: &'static str,
    row: fn(&Row) -> Result<Option<Record>, StoreError>,
}

const EXPORTS: &[Table] = &[
    Table {
        name: "meta",
        query: "SELECT key, value FROM meta ORDER BY key",
        row: |r| {
            let key: String = r.get(0);
            Ok((key != MARKER).then(|| Record::Meta {
                key,
                value: r.get(1),
            }))
        },
    },
    Table {
        name: "source_state",
        // A row with only a lease (no poll committed yet) holds no state to copy.
        query: "SELECT name, state FROM source_state WHERE state <> '{}'::jsonb ORDER BY name",
        row: |r| {
            Ok(Some(Record::SourceState {
                name: r.get(0),
                state: r.get(1),
            }))
        },
    },
    Table {
        name: "seen",
        query: "SELECT key, seen_at FROM seen ORDER BY key",
        row: |r| {
            Ok(Some(Record::Seen {
                key: r.get(0),
                at: r.get(1),
            }))
        },
    },
    Table {
        name: "mentions",
        query: "SELECT source, item_id, source_kind, text, url, title, author, author_reach, \
                published, lang, rating, received_at, alerted FROM mentions m \
                ORDER BY source, item_id",
        row: |r| {
            let stored: StoredMention = mention_from(r);
            Ok(Some(Record::Mention {
                stored,
                alerted: r.get("alerted"),
            }))
        },
    },
    Table {
        name: "mention_log",
        query: "SELECT seq, source, item_id, received_at FROM mention_log ORDER BY seq",
        row: |r| {
            let (source, item): (String, String) = (r.get(1), r.get(2));
            Ok(Some(Record::MentionLog {
                seq: u64_of(r.get(0)),
                key: format!("{source}\u{1f}{item}"),
                at: r.get(3),
            }))
        },
    },
    Table {
        name: "alerts",
        query: "SELECT id, data FROM alerts ORDER BY id",
        row: |r| {
            let id: i64 = r.get(0);
            Ok(Some(Record::Alert(json(&format!("alert {id}"), r.get(1))?)))
        },
    },
    Table {
        name: "audit",
        query: "SELECT seq, alert_id, data FROM audit ORDER BY seq",
        row: |r| {
            let alert = AlertId(u64_of(r.get(1)));
            Ok(Some(Record::Audit {
                seq: u64_of(r.get(0)),
                alert,
                entry: json(&format!("audit of alert {alert}"), r.get(2))?,
            }))
        },
    },
    Table {
        name: "timers",
        query: "SELECT data FROM timers ORDER BY alert_id, kind",
        row: |r| Ok(Some(Record::Timer(json("timer", r.get(0))?))),
    },
    Table {
        name: "outbox",
        query: "SELECT seq, data FROM outbox ORDER BY seq",
        row: |r| {
            let seq = u64_of(r.get(0));
            Ok(Some(Record::Outbox {
                seq,
                entry: json(&format!("outbox {seq}"), r.get(1))?,
            }))
        },
    },
    Table {
        name: "message_refs",
        query: "SELECT alert_id, target, data FROM message_refs ORDER BY alert_id, target",
        row: |r| {
            let alert = AlertId(u64_of(r.get(0)));
            Ok(Some(Record::MessageRef {
                alert,
                target: r.get(1),
                data: json(&format!("message ref of alert {alert}"), r.get(2))?,
            }))
        },
    },
    Table {
        name: "requests",
        query: "SELECT key, received_at FROM requests ORDER BY key",
        row: |r| {
            Ok(Some(Record::Request {
                key: r.get(0),
                at: r.get(1),
            }))
        },
    },
    Table {
        name: "mutes",
        query: "SELECT key, muted_by, muted_at FROM mutes ORDER BY key",
        row: |r| {
            Ok(Some(Record::Mute {
                key: r.get(0),
                by: r.get(1),
                at: r.get(2),
            }))
        },
    },
    Table {
        name: "threads",
        query: "SELECT key, alert_id, claimed_at FROM threads ORDER BY key",
        row: |r| {
            Ok(Some(Record::Thread {
                key: r.get(0),
                mark: ThreadMark {
                    alert: AlertId(u64_of(r.get(1))),
                    at: r.get(2),
                },
            }))
        },
    },
    Table {
        name: "rule_log",
        query: "SELECT rule, mention_seq, at, mention_key, source, sentiment, negative, \
                published, held FROM rule_log ORDER BY rule, mention_seq",
        row: |r| {
            Ok(Some(Record::RuleHit {
                seq: u64_of(r.get(1)),
                hit: RuleHit {
                    rule: r.get(0),
                    at: r.get(2),
                    mention_key: r.get(3),
                    source: r.get(4),
                    sentiment: r.get(5),
                    negative: r.get(6),
                    published: r.get(7),
                    held: r.get(8),
                    alert: None,
                },
            }))
        },
    },
    Table {
        name: "labels",
        query: "SELECT rule, alert_id, kind, labelled_at, labelled_by, action, features \
                FROM labels ORDER BY rule, alert_id",
        row: |r| {
            let alert = AlertId(u64_of(r.get(1)));
            let what = format!("label of alert {alert}");
            let kind: LabelKind = json(&what, serde_json::Value::String(r.get(2)))?;
            let features = r
                .get::<_, Vec<i64>>(6)
                .into_iter()
                .map(|f| {
                    u32::try_from(f).map_err(|_| StoreError::Corrupt {
                        key: what.clone(),
                        reason: format!("feature {f} is not a u32"),
                    })
                })
                .collect::<Result<Vec<u32>, _>>()?;
            Ok(Some(Record::Label {
                rule: r.get(0),
                alert,
                record: LabelRecord {
                    kind,
                    at: r.get(3),
                    by: r.get(4),
                    action: r.get(5),
                    features,
                },
            }))
        },
    },
    Table {
        name: "relevance_models",
        query: "SELECT model, header FROM relevance_models ORDER BY model",
        row: |r| {
            Ok(Some(Record::RelevanceHeader {
                model: r.get(0),
                header: r.get(1),
            }))
        },
    },
    Table {
        name: "relevance_features",
        query: "SELECT model, feature, relevant, not_relevant FROM relevance_features \
                ORDER BY model, feature",
        row: |r| {
            let count = |i| u32::try_from(r.get::<_, i64>(i)).unwrap_or(u32::MAX);
            Ok(Some(Record::RelevanceFeature {
                model: r.get(0),
                feature: u32::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                counts: [count(2), count(3)],
            }))
        },
    },
];

impl PgStore {
    /// Sends every record the database holds, read in one repeatable-read snapshot (so a
    /// replica still writing cannot tear it); stops early when the receiver is dropped.
    pub(crate) async fn export(&self, out: mpsc::Sender<Vec<Record>>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let err = |what| move |e| query_error(&self.url, what, e);
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(err("starting the export"))?;
        let mut counters = Vec::new();
        let row = tx
            .query_opt(
                "SELECT next_value FROM counters WHERE name = 'next_alert_id'",
                &[],
            )
            .await
            .map_err(err("reading the alert id counter"))?;
        if let Some(row) = row {
            counters.push(Record::Counter {
                counter: Counter::AlertId,
                next: u64_of(row.get(0)),
            });
        }
        for (table, column, counter) in SEQUENCES {
            let name: Option<String> = tx
                .query_one("SELECT pg_get_serial_sequence($1, $2)", &[&table, &column])
                .await
                .map_err(err("finding a counter's sequence"))?
                .get(0);
            // The name comes from the server, quoted as needed.
            let Some(name) = name else { continue };
            let row = tx
                .query_one(&format!("SELECT last_value, is_called FROM {name}"), &[])
                .await
                .map_err(err("reading a counter's sequence"))?;
            let last: i64 = row.get(0);
            let called: bool = row.get(1);
            let next = u64_of(last) + u64::from(called);
            counters.push(Record::Counter { counter, next });
        }
        if out.send(counters).await.is_err() {
            return Ok(());
        }
        for t in EXPORTS {
            tx.batch_execute(&format!(
                "DECLARE copy_{} NO SCROLL CURSOR FOR {}",
                t.name, t.query
            ))
            .await
            .map_err(err("opening an export cursor"))?;
            let fetch = format!("FETCH {FETCH} FROM copy_{}", t.name);
            loop {
                let rows = tx
                    .query(&fetch, &[])
                    .await
                    .map_err(err("reading rows to copy"))?;
                let mut batch = Vec::with_capacity(rows.len());
                for r in &rows {
                    if let Some(rec) = (t.row)(r)? {
                        batch.push(rec);
                    }
                }
                if !batch.is_empty() && out.send(batch).await.is_err() {
                    return Ok(());
                }
                if rows.len() < FETCH {
                    break;
                }
            }
            tx.batch_execute(&format!("CLOSE copy_{}", t.name))
                .await
                .map_err(err("closing an export cursor"))?;
        }
        tx.rollback().await.map_err(err("ending the export"))?;
        Ok(())
    }

    /// Opens the one transaction a copy is written in, emptied of everything (an earlier
    /// copy of the same source; the caller checked), and marks it as an unfinished copy.
    pub(crate) async fn import_start(&self, from: &str) -> Result<PgImporter, StoreError> {
        let client = self.client().await?;
        let importer = PgImporter {
            client,
            store: self.clone(),
        };
        let begin = format!(
            "BEGIN; TRUNCATE {TABLES} RESTART IDENTITY; \
             DELETE FROM counters WHERE name <> 'next_alert_id'; \
             UPDATE counters SET next_value = 1 WHERE name = 'next_alert_id'"
        );
        if let Err(e) = importer.client.batch_execute(&begin).await {
            importer.abort().await;
            return Err(query_error(&self.url, "emptying the copy's target", e));
        }
        let mark = to_value(&started_mark(from));
        importer
            .exec(
                "INSERT INTO meta (key, value) VALUES ($1, $2)",
                &[&MARKER, &mark],
            )
            .await?;
        Ok(importer)
    }

    /// Whether any replica holds a live source lease: the owner and the source.
    pub(crate) async fn live_lease(&self) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .leases()
            .await?
            .into_iter()
            .next()
            .map(|l| (l.owner, l.source)))
    }

    /// How many other replicas are connected to this database: the presence locks (see
    /// `claims::Presence`) of names other than this store's own, so a replica that holds no
    /// lease (webhook sources only, or just started) still keeps a copy away.
    pub(crate) async fn other_replicas_connected(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_locks l \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 \
                   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                   AND l.classid = $1::int4::oid \
                   AND l.objid <> hashtext($2)::oid",
                &[&super::claims::PRESENCE_LOCK, &self.replica()],
            )
            .await
            .map_err(|e| query_error(&self.url, "looking for running replicas", e))?;
        Ok(row.get(0))
    }

    /// See `Fingerprint`.
    pub(crate) async fn copy_fingerprint(&self) -> Result<Fingerprint, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT (SELECT COALESCE(MAX(next_value), 1) FROM counters \
                 WHERE name = 'next_alert_id'), (SELECT count(*) FROM seen)",
                &[],
            )
            .await
            .map_err(|e| query_error(&self.url, "reading the store's figures", e))?;
        Ok(Fingerprint {
            next_alert_id: u64_of(row.get(0)),
            seen: u64_of(row.get(1)),
        })
    }

    /// Whether the database holds anything a daemon wrote (a copy's mark aside).
    pub(crate) async fn holds_data(&self) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let tables = TABLES.split(", ").map(str::trim);
        let mut query = String::from("SELECT ");
        for (i, t) in tables.enumerate() {
            if i > 0 {
                query.push_str(" OR ");
            }
            let filter = if t == "meta" {
                format!(" WHERE key <> '{MARKER}'")
            } else {
                String::new()
            };
            query.push_str(&format!("EXISTS (SELECT 1 FROM {t}{filter})"));
        }
        let row = client
            .query_one(&query, &[])
            .await
            .map_err(|e| query_error(&self.url, "checking whether the target is empty", e))?;
        Ok(row.get(0))
    }
}

/// A copy being written into PostgreSQL: one connection inside one open transaction.
pub(crate) struct PgImporter {
    client: deadpool_postgres::Object,
    store: PgStore,
}

impl PgImporter {
    async fn exec(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let statement = self
            .client
            .prepare_cached(sql)
            .await
            .map_err(|e| query_error(&self.store.url, "preparing a copy statement", e))?;
        self.client
            .execute(&statement, params)
            .await
            .map_err(|e| query_error(&self.store.url, "writing a copied record", e))
    }

    /// Writes a batch with its statements pipelined on the one connection (tokio-postgres
    /// sends them without waiting for each answer): the rows are independent inserts, and a
    /// failing one aborts the transaction, which the caller then rolls back.
    pub(crate) async fn write(&mut self, batch: &[Record]) -> Result<(), StoreError> {
        futures_util::future::try_join_all(batch.iter().map(|r| self.write_one(r))).await?;
        Ok(())
    }

    async fn write_one(&self, r: &Record) -> Result<(), StoreError> {
        match r {
            Record::Counter { .. } => {}
            Record::Meta { key, value } => {
                if key != MARKER {
                    self.exec(
                        "INSERT INTO meta (key, value) VALUES ($1, $2)",
                        &[key, value],
                    )
                    .await?;
                }
            }
            Record::SourceState { name, state } => {
                self.exec(
                    "INSERT INTO source_state (name, state) VALUES ($1, $2)",
                    &[name, state],
                )
                .await?;
            }
            Record::Seen { key, at } => {
                self.exec(
                    "INSERT INTO seen (key, seen_at) VALUES ($1, $2)",
                    &[key, at],
                )
                .await?;
            }
            Record::Mention { stored, alerted } => {
                let m = &stored.mention;
                let reach = m.author_reach.map(|r| i64::try_from(r).unwrap_or(i64::MAX));
                let rating = m.rating.map(i16::from);
                self.exec(
                    "INSERT INTO mentions (source, item_id, source_kind, text, url, title, \
                     author, author_reach, published, lang, rating, received_at, alerted) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    &[
                        &m.source,
                        &m.item_id,
                        &m.source_kind,
                        &m.text,
                        &m.url,
                        &m.title,
                        &m.author,
                        &reach,
                        &m.published,
                        &m.lang,
                        &rating,
                        &stored.received_at,
                        alerted,
                    ],
                )
                .await?;
            }
            Record::MentionLog { seq, key, at } => {
                let (source, item) = key.split_once('\u{1f}').unwrap_or((key, ""));
                self.exec(
                    "INSERT INTO mention_log (seq, source, item_id, received_at) \
                     VALUES ($1, $2, $3, $4)",
                    &[&(*seq as i64), &source, &item, at],
                )
                .await?;
            }
            Record::Alert(a) => {
                let priority = serde_json::to_value(a.priority)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                self.exec(
                    "INSERT INTO alerts (id, mention_key, state, priority, created_at, data) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &db_id(a.id),
                        &a.mention_key,
                        &a.state.name(),
                        &priority,
                        &a.created_at,
                        &Json(a),
                    ],
                )
                .await?;
            }
            Record::Audit { seq, alert, entry } => {
                self.exec(
                    "INSERT INTO audit (seq, alert_id, data) VALUES ($1, $2, $3)",
                    &[&(*seq as i64), &db_id(*alert), &Json(entry)],
                )
                .await?;
            }
            Record::Timer(t) => {
                self.exec(
                    "INSERT INTO timers (alert_id, kind, due, data) VALUES ($1, $2, $3, $4)",
                    &[
                        &db_id(t.alert_id),
                        &timer_kind_name(t.kind),
                        &t.due,
                        &Json(t),
                    ],
                )
                .await?;
            }
            Record::Outbox { seq, entry } => {
                self.exec(
                    "INSERT INTO outbox (seq, alert_id, created_at, not_before, parked, data) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &(*seq as i64),
                        &db_id(entry.alert_id),
                        &entry.created_at,
                        &entry.not_before,
                        &entry.parked.is_some(),
                        &Json(entry),
                    ],
                )
                .await?;
            }
            Record::MessageRef {
                alert,
                target,
                data,
            } => {
                self.exec(
                    "INSERT INTO message_refs (alert_id, target, data) VALUES ($1, $2, $3)",
                    &[&db_id(*alert), target, &Json(data)],
                )
                .await?;
            }
            Record::Request { key, at } => {
                self.exec(
                    "INSERT INTO requests (key, received_at) VALUES ($1, $2)",
                    &[key, at],
                )
                .await?;
            }
            Record::Mute { key, by, at } => {
                self.exec(
                    "INSERT INTO mutes (key, muted_by, muted_at) VALUES ($1, $2, $3)",
                    &[key, by, at],
                )
                .await?;
            }
            Record::Thread { key, mark } => {
                self.exec(
                    "INSERT INTO threads (key, alert_id, claimed_at) VALUES ($1, $2, $3)",
                    &[key, &db_id(mark.alert), &mark.at],
                )
                .await?;
            }
            Record::RuleHit { seq, hit } => {
                self.exec(
                    "INSERT INTO rule_log (rule, mention_seq, at, mention_key, source, \
                     sentiment, negative, published, held) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &hit.rule,
                        &(*seq as i64),
                        &hit.at,
                        &hit.mention_key,
                        &hit.source,
                        &hit.sentiment,
                        &hit.negative,
                        &hit.published,
                        &hit.held,
                    ],
                )
                .await?;
            }
            Record::Label {
                rule,
                alert,
                record,
            } => {
                let kind = to_value(&record.kind);
                let features: Vec<i64> = record.features.iter().map(|&f| i64::from(f)).collect();
                self.exec(
                    "INSERT INTO labels (rule, alert_id, kind, labelled_at, labelled_by, \
                     action, features) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        rule,
                        &db_id(*alert),
                        &kind.as_str().unwrap_or_default(),
                        &record.at,
                        &record.by,
                        &record.action,
                        &features,
                    ],
                )
                .await?;
            }
            Record::RelevanceHeader { model, header } => {
                self.exec(
                    "INSERT INTO relevance_models (model, header) VALUES ($1, $2)",
                    &[model, header],
                )
                .await?;
            }
            Record::RelevanceFeature {
                model,
                feature,
                counts,
            } => {
                self.exec(
                    "INSERT INTO relevance_features (model, feature, relevant, not_relevant) \
                     VALUES ($1, $2, $3, $4)",
                    &[
                        model,
                        &i64::from(*feature),
                        &i64::from(counts[0]),
                        &i64::from(counts[1]),
                    ],
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Sets the counters past every number the copied rows use, marks the copy finished and
    /// commits: the target changes all at once.
    pub(crate) async fn finish(self, from: &str, counters: &Counters) -> Result<(), StoreError> {
        let written = self.finish_inner(from, counters).await;
        if written.is_err() {
            self.abort().await;
        }
        written
    }

    async fn finish_inner(&self, from: &str, counters: &Counters) -> Result<(), StoreError> {
        let next_id = counters.next(Counter::AlertId) as i64;
        self.exec(
            "INSERT INTO counters (name, next_value) VALUES ('next_alert_id', $1) \
             ON CONFLICT (name) DO UPDATE SET next_value = EXCLUDED.next_value",
            &[&next_id],
        )
        .await?;
        for (table, column, counter) in SEQUENCES {
            let next = counters.next(counter) as i64;
            self.exec(
                "SELECT setval(pg_get_serial_sequence($1, $2), $3, false)",
                &[&table, &column, &next],
            )
            .await?;
        }
        let fingerprint = Fingerprint {
            next_alert_id: counters.next(Counter::AlertId),
            seen: {
                let row = self
                    .client
                    .query_one("SELECT count(*) FROM seen", &[])
                    .await
                    .map_err(|e| query_error(&self.store.url, "counting seen keys", e))?;
                u64_of(row.get(0))
            },
        };
        let mark = to_value(&finished_mark(from, fingerprint));
        self.exec(
            "UPDATE meta SET value = $2 WHERE key = $1",
            &[&MARKER, &mark],
        )
        .await?;
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| query_error(&self.store.url, "committing the copy", e))
    }

    /// Rolls the copy back; the target is as it was before.
    pub(crate) async fn abort(self) {
        if let Err(e) = self.client.batch_execute("ROLLBACK").await {
            tracing::warn!(error = %self.store.url.scrub(&e.to_string()), "rolling back the copy failed; the database rolls it back when the connection closes");
        }
    }
}
