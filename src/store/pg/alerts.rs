//! Alerts after they exist, over PostgreSQL: reads, the desk's compare-and-swap changes (with
//! their audit entries, outbox work, timers and label in one transaction), the durable timers
//! and the audit log; and the row writers `accept` shares. Same meaning as the sled backend's
//! `alerts.rs`: a change applies only to the alert exactly as the desk read it.

use super::label_write::apply_label;
use super::tx::{corrupt, db_error, in_transaction, TxError};
use super::PgStore;
use crate::model::{Alert, AlertId, AuditEntry, Target, TimerKind};
use crate::store::alerts::ROUND_ENTRY;
use crate::store::{AlertChange, ChangeOutcome, OutboxAction, OutboxEntry, StoreError, Timer};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use tokio_postgres::types::Json;

/// `TimerKind` as serde writes it (the `timers.kind` column).
pub(super) fn kind_name(kind: TimerKind) -> &'static str {
    match kind {
        TimerKind::Escalate => "escalate",
        TimerKind::Remind => "remind",
        TimerKind::Wake => "wake",
    }
}

/// Ids are `u64` in the model and `bigint` in the schema; alert ids start at 1 and never
/// come near `i64::MAX`.
pub(super) fn db_id(id: AlertId) -> i64 {
    i64::try_from(id.0).unwrap_or(i64::MAX)
}

fn alert_from(id: i64, data: serde_json::Value) -> Result<Alert, StoreError> {
    serde_json::from_value(data).map_err(|e| corrupt(format!("alert {id}"), e))
}

fn timer_from(data: serde_json::Value) -> Result<Timer, StoreError> {
    serde_json::from_value(data).map_err(|e| corrupt("timer".into(), e))
}

/// Writes a new alert row (`accept`).
pub(super) async fn insert_alert(tx: &Transaction<'_>, alert: &Alert) -> Result<(), TxError> {
    tx.execute(
        "INSERT INTO alerts (id, mention_key, state, priority, created_at, data) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &db_id(alert.id),
            &alert.mention_key,
            &alert.state.name(),
            &priority_name(alert),
            &alert.created_at,
            &Json(alert),
        ],
    )
    .await?;
    Ok(())
}

/// The alert's priority as serde writes it (the `alerts.priority` column).
fn priority_name(alert: &Alert) -> String {
    serde_json::to_value(alert.priority)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Appends an entry to an alert's audit log.
pub(super) async fn push_audit(
    tx: &Transaction<'_>,
    id: AlertId,
    entry: &AuditEntry,
) -> Result<(), TxError> {
    tx.execute(
        "INSERT INTO audit (alert_id, data) VALUES ($1, $2)",
        &[&db_id(id), &Json(entry)],
    )
    .await?;
    Ok(())
}

/// Sets (or re-arms) the alert's timer of `kind`.
pub(super) async fn set_timer(
    tx: &Transaction<'_>,
    id: AlertId,
    kind: TimerKind,
    due: DateTime<Utc>,
) -> Result<(), TxError> {
    let t = Timer {
        alert_id: id,
        kind,
        due,
    };
    tx.execute(
        "INSERT INTO timers (alert_id, kind, due, data) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (alert_id, kind) DO UPDATE SET due = EXCLUDED.due, data = EXCLUDED.data",
        &[&db_id(id), &kind_name(kind), &due, &Json(&t)],
    )
    .await?;
    Ok(())
}

/// Queues a delivery, after every entry queued before it.
pub(super) async fn push_outbox(
    tx: &Transaction<'_>,
    alert_id: AlertId,
    target: &Target,
    action: OutboxAction,
    now: DateTime<Utc>,
) -> Result<(), TxError> {
    let entry = OutboxEntry::new(alert_id, target, action, now);
    tx.execute(
        "INSERT INTO outbox (alert_id, created_at, data) VALUES ($1, $2, $3)",
        &[&db_id(alert_id), &now, &Json(&entry)],
    )
    .await?;
    Ok(())
}

#[allow(dead_code)] // Dispatched to once the `Store` façade has its PostgreSQL variant.
impl PgStore {
    pub async fn alert(&self, id: AlertId) -> Result<Option<Alert>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT data FROM alerts WHERE id = $1", &[&db_id(id)])
            .await
            .map_err(|e| db_error(self, "reading an alert", &e))?;
        row.map(|r| alert_from(db_id(id), r.get(0))).transpose()
    }

    /// How many alerts are stored: ids are given out 1, 2, 3… without gaps by the locked
    /// `counters` row of the transaction that writes the alert, so the highest id is the
    /// count. A read error counts as none, as in sled (only start-up's hint reads it).
    pub(crate) async fn alert_count(&self) -> usize {
        let Ok(client) = self.client().await else {
            return 0;
        };
        match client
            .query_one("SELECT COALESCE(max(id), 0) FROM alerts", &[])
            .await
        {
            Ok(row) => usize::try_from(row.get::<_, i64>(0)).unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// Every alert, oldest first.
    pub async fn alerts(&self) -> Result<Vec<Alert>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT id, data FROM alerts ORDER BY id", &[])
            .await
            .map_err(|e| db_error(self, "reading the alerts", &e))?;
        rows.into_iter()
            .map(|r| alert_from(r.get(0), r.get(1)))
            .collect()
    }

    /// Compare-and-swap: writes `change` only if the alert is still exactly `expected`, with
    /// its audit entry, outbox work, timers and label in the same transaction. The alert's
    /// row is locked first, so of two replicas taking the same click one applies it and the
    /// other, once the first commits, reads the changed alert and gets `Conflict`.
    pub(crate) async fn change_alert(
        &self,
        expected: &Alert,
        change: AlertChange,
    ) -> Result<ChangeOutcome, StoreError> {
        let id = expected.id;
        in_transaction!(self, "writing an alert change", |tx| {
            let row = tx
                .query_opt(
                    "SELECT data FROM alerts WHERE id = $1 FOR UPDATE",
                    &[&db_id(id)],
                )
                .await?;
            let Some(row) = row else {
                return Err(corrupt(format!("alert {id}"), "missing").into());
            };
            let current = alert_from(db_id(id), row.get(0))?;
            if current != *expected {
                return Ok(ChangeOutcome::Conflict(Box::new(current)));
            }
            let alert = &change.alert;
            tx.execute(
                "UPDATE alerts SET data = $2, state = $3, priority = $4, version = version + 1 \
                 WHERE id = $1",
                &[
                    &db_id(id),
                    &Json(alert),
                    &alert.state.name(),
                    &priority_name(alert),
                ],
            )
            .await?;
            push_audit(&tx, id, &change.audit).await?;
            let now = change.audit.at;
            for action in &change.outbox {
                for target in &alert.targets {
                    push_outbox(&tx, id, target, action.clone(), now).await?;
                }
            }
            for (target, action) in &change.extra_outbox {
                push_outbox(&tx, id, target, action.clone(), now).await?;
            }
            for kind in &change.cancel_timers {
                tx.execute(
                    "DELETE FROM timers WHERE alert_id = $1 AND kind = $2",
                    &[&db_id(id), &kind_name(*kind)],
                )
                .await?;
            }
            for (kind, due) in &change.set_timers {
                set_timer(&tx, id, *kind, *due).await?;
            }
            if let Some(label) = &change.label {
                apply_label(&tx, id, label).await?;
            }
            Ok(ChangeOutcome::Applied)
        })
    }

    /// One timer round (see the sled backend's `fire_round`): for every alert in `fired`,
    /// still exactly as expected and with its timer as read, its audit entry and the removal
    /// of its fired timer; and the round's messages, in one transaction. Nothing is written
    /// when any alert or its timer changed meanwhile: its id comes back.
    pub(crate) async fn fire_round(
        &self,
        fired: &[(Alert, Timer, AuditEntry)],
        messages: &[(Target, OutboxAction)],
        now: DateTime<Utc>,
    ) -> Result<Result<(), AlertId>, StoreError> {
        in_transaction!(self, "writing a timer round", |tx| {
            for (alert, timer, _) in fired {
                let row = tx
                    .query_opt(
                        "SELECT data FROM alerts WHERE id = $1 FOR UPDATE",
                        &[&db_id(alert.id)],
                    )
                    .await?;
                let same_alert = match row {
                    Some(r) => alert_from(db_id(alert.id), r.get(0))? == *alert,
                    None => false,
                };
                let row = tx
                    .query_opt(
                        "SELECT data FROM timers WHERE alert_id = $1 AND kind = $2 FOR UPDATE",
                        &[&db_id(timer.alert_id), &kind_name(timer.kind)],
                    )
                    .await?;
                let same_timer = match row {
                    Some(r) => timer_from(r.get(0))? == *timer,
                    None => false,
                };
                if !same_alert || !same_timer {
                    return Ok(Err(alert.id));
                }
            }
            for (alert, timer, entry) in fired {
                push_audit(&tx, alert.id, entry).await?;
                tx.execute(
                    "DELETE FROM timers WHERE alert_id = $1 AND kind = $2",
                    &[&db_id(timer.alert_id), &kind_name(timer.kind)],
                )
                .await?;
            }
            for (target, action) in messages {
                push_outbox(&tx, ROUND_ENTRY, target, action.clone(), now).await?;
            }
            Ok(Ok(()))
        })
    }

    /// Removes a timer that fired, unless it was re-armed in the meantime.
    pub(crate) async fn remove_timer(&self, timer: &Timer) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM timers WHERE alert_id = $1 AND kind = $2 AND data = $3",
                &[&db_id(timer.alert_id), &kind_name(timer.kind), &Json(timer)],
            )
            .await
            .map_err(|e| db_error(self, "removing a timer", &e))?;
        Ok(())
    }

    /// The alert's timer of `kind`, if one is set.
    pub(crate) async fn timer(
        &self,
        id: AlertId,
        kind: TimerKind,
    ) -> Result<Option<Timer>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT data FROM timers WHERE alert_id = $1 AND kind = $2",
                &[&db_id(id), &kind_name(kind)],
            )
            .await
            .map_err(|e| db_error(self, "reading a timer", &e))?;
        row.map(|r| timer_from(r.get(0))).transpose()
    }

    /// Timers due at or before `now`, soonest first.
    pub(crate) async fn due_timers(&self, now: DateTime<Utc>) -> Result<Vec<Timer>, StoreError> {
        let client = self.client().await?;
        // `due` is kept to the microsecond: the nanosecond-exact filter runs on the JSON.
        let rows = client
            .query(
                "SELECT data FROM timers WHERE due <= $1 ORDER BY due, alert_id, kind",
                &[&(now + chrono::Duration::microseconds(1))],
            )
            .await
            .map_err(|e| db_error(self, "reading the due timers", &e))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let t = timer_from(r.get(0))?;
            if t.due <= now {
                out.push(t);
            }
        }
        out.sort_by_key(|t| t.due);
        Ok(out)
    }

    /// Every timer, for tests and `/healthz`.
    pub async fn timers(&self) -> Result<Vec<Timer>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT data FROM timers ORDER BY alert_id, kind", &[])
            .await
            .map_err(|e| db_error(self, "reading the timers", &e))?;
        rows.into_iter().map(|r| timer_from(r.get(0))).collect()
    }

    /// An alert's audit log, oldest first.
    pub async fn audit_log(&self, id: AlertId) -> Result<Vec<AuditEntry>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT data FROM audit WHERE alert_id = $1 ORDER BY seq",
                &[&db_id(id)],
            )
            .await
            .map_err(|e| db_error(self, "reading an audit log", &e))?;
        rows.into_iter()
            .map(|r| {
                serde_json::from_value(r.get(0))
                    .map_err(|e| corrupt(format!("audit of alert {id}"), e))
            })
            .collect()
    }
}
