//! The one `Store` the rest of mentiondesk uses, over a closed set of backends: sled (the
//! embedded default, one process) and, as issue 17 lands, PostgreSQL (several replicas). Every
//! operation is async because a database over a socket answers later; sled answers at once and
//! its writes that must survive a crash wait on its flusher. This file only dispatches: what an
//! operation means is documented on the sled backend's method of the same name, and every
//! backend keeps those semantics.

use super::config::{self, StoreConfig};
use super::pg::PgStore;
use super::{
    Accepted, Candidate, LabelRecord, MentionPrune, OutboxAction, OutboxEntry, OutboxKey,
    OutboxSummary, Parked, RuleHit, SledStore, StoreError, StoredMention, ThreadMark, ThreadPrune,
    Timer,
};
use super::{AlertChange, AlertHead, ChangeOutcome};
use super::{Lease, SourceLease};
use crate::analysis::relevance::{Counts, ModelHeader};
use crate::model::{
    Alert, AlertId, AuditEntry, DigestPost, MessageRef, SourceState, Target, TimerKind,
};
use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;
use std::sync::Arc;

/// The store: cheap to clone, every clone the same database.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sled(SledStore),
    Postgres(PgStore),
}

impl Store {
    /// Opens the sled store at `path` with the default cache size and retention.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Ok(Store::from(SledStore::open(path)?))
    }

    /// Opens the store as `[store]` configures it: the sled store at `path`, or connects to
    /// PostgreSQL and migrates its schema.
    pub async fn open_with(config: &StoreConfig) -> Result<Store, StoreError> {
        let backend = match &config.backend {
            config::Backend::Sled => {
                let s = SledStore::open_with(config)?;
                // Only sled can hold half a copy: into PostgreSQL a copy is one transaction.
                let mark = s.meta_get::<super::copy::CopyMark>(super::copy::MARKER)?;
                if let Some(mark) = mark.filter(|m| !m.complete) {
                    return Err(StoreError::UnfinishedCopy {
                        path: config.path.clone(),
                        from: mark.from,
                    });
                }
                Backend::Sled(s)
            }
            config::Backend::Postgres(pg) => Backend::Postgres(
                PgStore::connect(pg)
                    .await?
                    .with_keep_mentions(config.keep_mentions),
            ),
        };
        Ok(Store { backend })
    }

    /// This process's name among the replicas sharing a PostgreSQL store (the owner of its
    /// source leases and outbox claims); `None` on sled, which one process holds alone.
    pub fn replica(&self) -> Option<&str> {
        match &self.backend {
            Backend::Sled(_) => None,
            Backend::Postgres(p) => Some(p.replica()),
        }
    }

    /// Why this replica cannot reach its PostgreSQL database (its own connection is down),
    /// for `/healthz`; `None` while it can, and always on sled.
    pub fn connection_lost(&self) -> Option<String> {
        match &self.backend {
            Backend::Sled(_) => None,
            Backend::Postgres(p) => p.connection_lost(),
        }
    }

    /// How long a replica's lease or claim lasts without renewal; `None` on sled.
    pub fn lease_period(&self) -> Option<std::time::Duration> {
        match &self.backend {
            Backend::Sled(_) => None,
            Backend::Postgres(p) => Some(p.lease_period()),
        }
    }

    /// The sled backend, for tests of what only sled has (its flusher, its batches).
    #[cfg(test)]
    pub(crate) fn sled(&self) -> &SledStore {
        match &self.backend {
            Backend::Sled(s) => s,
            Backend::Postgres(_) => panic!("a sled-only test ran on the PostgreSQL backend"),
        }
    }

    /// The relay's wake-up: notified after every durable write that adds outbox entries or
    /// makes waiting ones due again.
    pub(crate) fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        match &self.backend {
            Backend::Sled(s) => s.outbox_signal(),
            Backend::Postgres(p) => p.outbox_signal(),
        }
    }

    /// Waits until everything written so far is durable (shutdown, CLI commands).
    pub async fn flush(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.flush().await,
            // A committed transaction is durable: nothing waits in a buffer.
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// The clean shutdown's last step: everything durable, and for sled the desk index
    /// snapshot written for the next start (see `desk_index.rs`).
    pub async fn close(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.close().await,
            Backend::Postgres(_) => Ok(()),
        }
    }

    // --- mentions (accept.rs) ---

    pub async fn accept(
        &self,
        source: &str,
        state: &SourceState,
        candidates: &[Candidate],
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.accept(source, state, candidates, now).await,

            Backend::Postgres(p) => {
                let written = p.accept(source, state, candidates, now).await;
                // This replica's relay at once; the others at their idle tick.
                p.outbox_signal().notify_one();
                written
            }
        }
    }

    pub(crate) async fn accept_generated_marked<T: Serialize>(
        &self,
        candidates: &[Candidate],
        now: DateTime<Utc>,
        key: &str,
        mark: &T,
        before: Option<DateTime<Utc>>,
    ) -> Result<Accepted, StoreError> {
        match &self.backend {
            Backend::Sled(s) => {
                s.accept_generated_marked(candidates, now, key, mark, before)
                    .await
            }

            Backend::Postgres(p) => {
                let written = p
                    .accept_generated_marked(candidates, now, key, mark, before)
                    .await;
                // This replica's relay at once; the others at their idle tick.
                p.outbox_signal().notify_one();
                written
            }
        }
    }

    pub(crate) async fn accept_owned(
        &self,
        source: Option<(String, SourceState)>,
        candidates: Vec<Candidate>,
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.accept_owned(source, candidates, now).await,

            Backend::Postgres(p) => {
                let written = p.accept_owned(source, candidates, now).await;
                // This replica's relay at once; the others at their idle tick.
                p.outbox_signal().notify_one();
                written
            }
        }
    }

    pub(crate) async fn is_seen(&self, key: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.is_seen(key),

            Backend::Postgres(p) => p.is_seen(key).await,
        }
    }

    pub(crate) async fn thread_mark(&self, key: &str) -> Result<Option<ThreadMark>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.thread_mark(key),

            Backend::Postgres(p) => p.thread_mark(key).await,
        }
    }

    /// The mention an alert is about; `None` once its body is gone.
    pub async fn alert_mention(&self, alert: &Alert) -> Result<Option<StoredMention>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.alert_mention(alert),

            Backend::Postgres(p) => p.mention(&alert.mention_key).await,
        }
    }

    /// The mention of a rule hit; `None` once its body is gone.
    pub async fn hit_mention(&self, hit: &RuleHit) -> Result<Option<StoredMention>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.hit_mention(hit),

            Backend::Postgres(p) => p.mention(&hit.mention_key).await,
        }
    }

    /// A stored mention by its key. An alert's or a rule hit's mention is read with
    /// `alert_mention` or `hit_mention`: on sled it may be held in its alert's value.
    pub async fn mention(&self, key: &str) -> Result<Option<StoredMention>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.mention(key),

            Backend::Postgres(p) => p.mention(key).await,
        }
    }

    /// One chunk of a prune of old mention bodies, off the runtime; hands the prune back with
    /// whether the walk is done.
    pub(crate) async fn prune_mentions_chunk(
        &self,
        mut prune: MentionPrune,
        limit: usize,
    ) -> (MentionPrune, Result<bool, StoreError>) {
        match &self.backend {
            Backend::Sled(s) => {
                let s = s.clone();
                super::off_runtime(move || {
                    let done = s.prune_mentions_chunk(&mut prune, limit);
                    (prune, done)
                })
                .await
            }

            Backend::Postgres(p) => p.prune_mentions_chunk(prune, limit).await,
        }
    }

    #[cfg(test)]
    pub(crate) async fn mention_count(&self) -> usize {
        match &self.backend {
            Backend::Sled(s) => s.mention_count(),

            Backend::Postgres(p) => p.mention_count().await,
        }
    }

    pub(crate) async fn recent_mentions(&self, n: usize) -> Result<Vec<StoredMention>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.recent_mentions(n),

            Backend::Postgres(p) => p.recent_mentions(n).await,
        }
    }

    // --- alerts, timers, audit (alerts.rs) ---

    pub async fn alert(&self, id: AlertId) -> Result<Option<Alert>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.alert(id),

            Backend::Postgres(p) => p.alert(id).await,
        }
    }

    pub(crate) async fn alert_count(&self) -> usize {
        match &self.backend {
            Backend::Sled(s) => s.alert_count(),

            Backend::Postgres(p) => p.alert_count().await,
        }
    }

    /// The alerts on the desk (neither resolved nor ignored), oldest first: what `/desk list`
    /// filters and sorts. On sled from memory; on PostgreSQL from the alerts.
    pub(crate) async fn desk_heads(&self) -> Result<Vec<AlertHead>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => Ok(s.desk_heads()),
            Backend::Postgres(p) => {
                Ok(p.alerts().await?.iter().filter_map(AlertHead::of).collect())
            }
        }
    }

    pub async fn alerts(&self) -> Result<Vec<Alert>, StoreError> {
        match &self.backend {
            // Every alert, decoded: a whole-store read, kept off the runtime's workers.
            Backend::Sled(s) => {
                let s = s.clone();
                super::off_runtime(move || s.alerts()).await
            }

            Backend::Postgres(p) => p.alerts().await,
        }
    }

    pub(crate) async fn change_alert(
        &self,
        expected: &Alert,
        change: AlertChange,
    ) -> Result<ChangeOutcome, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.change_alert(expected, change).await,

            Backend::Postgres(p) => {
                let written = p.change_alert(expected, change).await;
                // This replica's relay at once; the others at their idle tick.
                p.outbox_signal().notify_one();
                written
            }
        }
    }

    pub(crate) async fn fire_round(
        &self,
        fired: &[(Alert, Timer, AuditEntry)],
        messages: &[(Target, OutboxAction)],
        now: DateTime<Utc>,
    ) -> Result<Result<(), AlertId>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.fire_round(fired, messages, now).await,

            Backend::Postgres(p) => {
                let written = p.fire_round(fired, messages, now).await;
                // This replica's relay at once; the others at their idle tick.
                p.outbox_signal().notify_one();
                written
            }
        }
    }

    pub(crate) async fn remove_timer(&self, timer: &Timer) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.remove_timer(timer),

            Backend::Postgres(p) => p.remove_timer(timer).await,
        }
    }

    pub(crate) async fn timer(
        &self,
        id: AlertId,
        kind: TimerKind,
    ) -> Result<Option<Timer>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.timer(id, kind),

            Backend::Postgres(p) => p.timer(id, kind).await,
        }
    }

    pub(crate) async fn due_timers(&self, now: DateTime<Utc>) -> Result<Vec<Timer>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.due_timers(now),

            Backend::Postgres(p) => p.due_timers(now).await,
        }
    }

    pub async fn timers(&self) -> Result<Vec<Timer>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.timers(),

            Backend::Postgres(p) => p.timers().await,
        }
    }

    pub async fn audit_log(&self, id: AlertId) -> Result<Vec<AuditEntry>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.audit_log(id),

            Backend::Postgres(p) => p.audit_log(id).await,
        }
    }

    // --- relevance labels (labels.rs) ---

    pub async fn relevance_header(&self, rule: &str) -> Result<ModelHeader, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.relevance_header(rule),

            Backend::Postgres(p) => p.relevance_header(rule).await,
        }
    }

    pub(crate) async fn relevance_counts(&self, rule: Option<&str>) -> Result<Counts, StoreError> {
        match &self.backend {
            // A rule's whole vocabulary (or all of them): off the runtime's workers.
            Backend::Sled(s) => {
                let (s, rule) = (s.clone(), rule.map(str::to_string));
                super::off_runtime(move || s.relevance_counts(rule.as_deref())).await
            }

            Backend::Postgres(p) => p.relevance_counts(rule).await,
        }
    }

    pub async fn labels(&self, rule: &str) -> Result<Vec<(AlertId, LabelRecord)>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => {
                let (s, rule) = (s.clone(), rule.to_string());
                super::off_runtime(move || s.labels(&rule)).await
            }

            Backend::Postgres(p) => p.labels(rule).await,
        }
    }

    /// Changes whenever a label is written, so cached relevance counts know they are old.
    pub(crate) async fn label_generation(&self) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sled(s) => Ok(s.label_generation()),

            Backend::Postgres(p) => p.label_generation().await,
        }
    }

    // --- small values (mod.rs) ---

    pub(crate) async fn meta_get<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.meta_get(key),

            Backend::Postgres(p) => p.meta_get(key).await,
        }
    }

    pub async fn meta_set<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.meta_set(key, value).await,

            Backend::Postgres(p) => p.meta_set(key, value).await,
        }
    }

    // --- the outbox and message references (outbox.rs) ---

    pub(crate) async fn outbox_summary(&self) -> Result<OutboxSummary, StoreError> {
        match &self.backend {
            Backend::Sled(s) => {
                let s = s.clone();
                super::off_runtime(move || s.outbox_summary()).await
            }

            Backend::Postgres(p) => p.outbox_summary().await,
        }
    }

    /// Up to `limit` outbox entries with keys strictly between `after` and `before`, oldest
    /// first (the relay's pages).
    pub(crate) async fn outbox_page(
        &self,
        after: Option<OutboxKey>,
        before: Option<OutboxKey>,
        limit: usize,
    ) -> Result<Vec<(OutboxKey, OutboxEntry)>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => {
                let s = s.clone();
                super::off_runtime(move || s.outbox_page(after, before, limit)).await
            }
            Backend::Postgres(p) => p.outbox_page(after, before, limit).await,
        }
    }

    pub async fn outbox(&self) -> Result<Vec<(OutboxKey, OutboxEntry)>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.outbox(),

            Backend::Postgres(p) => p.outbox().await,
        }
    }

    /// Claims an outbox entry (read from `outbox()`) for this replica just before the relay
    /// delivers it, and returns it as stored now; `None` when another replica delivers it, it
    /// waits behind an earlier entry of its alert, or it is gone (see `pg/claims.rs`). On
    /// sled, which one process owns, the entry as read, unclaimed.
    pub(crate) async fn claim(
        &self,
        key: OutboxKey,
        entry: OutboxEntry,
        now: DateTime<Utc>,
    ) -> Result<Option<super::pg::Claimed>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => Ok(Some(super::pg::Claimed {
                entry,
                claimed: false,
                taken_over_from: None,
            })),

            Backend::Postgres(p) => p.claim(key, now).await,
        }
    }

    pub async fn mark_in_flight(
        &self,
        key: OutboxKey,
        now: DateTime<Utc>,
    ) -> Result<OutboxEntry, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.mark_in_flight(key, now).await,

            Backend::Postgres(p) => p.mark_in_flight(key, now).await,
        }
    }

    pub(crate) async fn record_failure(
        &self,
        key: OutboxKey,
        attempts: u32,
        error: &str,
        not_before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.record_failure(key, attempts, error, not_before),

            Backend::Postgres(p) => p.record_failure(key, attempts, error, not_before).await,
        }
    }

    pub(crate) async fn park(
        &self,
        key: OutboxKey,
        attempts: u32,
        error: &str,
        parked: &Parked,
        not_before: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.park(key, attempts, error, parked, not_before),

            Backend::Postgres(p) => p.park(key, attempts, error, parked, not_before).await,
        }
    }

    pub(crate) async fn retry_now(
        &self,
        which: impl Fn(&OutboxEntry) -> bool,
    ) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.retry_now(which),

            Backend::Postgres(p) => {
                let written = p.retry_now(which).await;
                // This replica's relay at once; the others at their idle tick.
                p.outbox_signal().notify_one();
                written
            }
        }
    }

    pub(crate) async fn complete(
        &self,
        key: OutboxKey,
        entry: &OutboxEntry,
        msg: &MessageRef,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.complete(key, entry, msg).await,

            Backend::Postgres(p) => p.complete(key, entry, msg).await,
        }
    }

    pub async fn finish(&self, key: OutboxKey) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.finish(key).await,

            Backend::Postgres(p) => p.finish(key).await,
        }
    }

    pub(crate) async fn defer(
        &self,
        key: OutboxKey,
        not_before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.defer(key, not_before),

            Backend::Postgres(p) => p.defer(key, not_before).await,
        }
    }

    pub async fn message_ref(
        &self,
        id: AlertId,
        target: &Target,
    ) -> Result<Option<MessageRef>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.message_ref(id, target),

            Backend::Postgres(p) => p.message_ref(id, target).await,
        }
    }

    /// `false`: the stored slot is not older than `slot` (another replica sent it), and
    /// nothing was queued.
    pub async fn enqueue_digest<T: Serialize + DeserializeOwned + PartialOrd + Sync>(
        &self,
        slot: Option<(&str, &T)>,
        targets: &[Target],
        post: &DigestPost,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.enqueue_digest(slot, targets, post, now).await,

            Backend::Postgres(p) => {
                let written = p.enqueue_digest(slot, targets, post, now).await;
                // This replica's relay at once; the others at their idle tick.
                p.outbox_signal().notify_one();
                written
            }
        }
    }

    // --- request dedup and mutes (requests.rs) ---

    pub(crate) async fn first_request(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.first_request(key, now).await,

            Backend::Postgres(p) => p.first_request(key, now).await,
        }
    }

    /// Drops thread marks too old to thread anything (`REPEAT_WINDOW_DAYS`): on sled among
    /// the next `prune.limit` marks, on PostgreSQL all at once (one delete).
    pub(crate) async fn prune_thread_marks(
        &self,
        before: DateTime<Utc>,
        prune: &mut ThreadPrune,
    ) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.prune_thread_marks(before, prune),
            Backend::Postgres(p) => p.prune_thread_marks(before).await,
        }
    }

    pub(crate) async fn prune_requests(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.prune_requests(before),

            Backend::Postgres(p) => p.prune_requests(before).await,
        }
    }

    pub(crate) async fn mute(
        &self,
        key: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.mute(key, by, now).await,

            Backend::Postgres(p) => p.mute(key, by, now).await,
        }
    }

    pub async fn is_muted(&self, key: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.is_muted(key),

            Backend::Postgres(p) => p.is_muted(key).await,
        }
    }

    // --- per-rule hit log (rule_log.rs) ---

    pub async fn rule_hits(
        &self,
        rule: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RuleHit>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.rule_hits(rule, from, to),

            Backend::Postgres(p) => p.rule_hits(rule, from, to).await,
        }
    }

    pub(crate) async fn prune_rule_hits(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.prune_rule_hits(before),

            Backend::Postgres(p) => p.prune_rule_hits(before).await,
        }
    }

    pub(crate) async fn first_hit(&self, rule: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.first_hit(rule),

            Backend::Postgres(p) => p.first_hit(rule).await,
        }
    }

    // --- source state (sources.rs) ---

    pub(crate) async fn source_state(&self, source: &str) -> Result<SourceState, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.source_state(source),

            Backend::Postgres(p) => p.source_state(source).await,
        }
    }

    // --- source leases (pg/leases.rs; issue 17) ---

    /// Takes or renews this replica's lease on `source` (`replica()`, for `lease_period()`),
    /// storing `next_poll_in` as its next poll when given. On sled, which one process holds
    /// alone, the source is always held: its stored state, no schedule.
    pub(crate) async fn lease_source(
        &self,
        source: &str,
        next_poll_in: Option<std::time::Duration>,
    ) -> Result<SourceLease, StoreError> {
        match &self.backend {
            Backend::Sled(s) => Ok(SourceLease::Held {
                state: s.source_state(source)?,
                next_poll_in: None,
            }),
            Backend::Postgres(p) => {
                p.lease_source(source, p.replica(), p.lease_period(), next_poll_in)
                    .await
            }
        }
    }

    /// Gives up this replica's lease on `source` (shutdown); nothing to do on sled.
    pub(crate) async fn release_source(&self, source: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(_) => Ok(()),
            Backend::Postgres(p) => p.release_source(source, p.replica()).await,
        }
    }

    /// Every live source lease, by source (none on sled).
    pub(crate) async fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => Ok(Vec::new()),
            Backend::Postgres(p) => p.leases().await,
        }
    }

    /// `accept_owned` for a batch of a poll made under this replica's lease on `source`
    /// (`state` only with the poll's last batch): on PostgreSQL nothing is written, with
    /// `StoreError::LeaseLost`, once another replica took the source over (fencing); on sled
    /// the same as `accept_owned`.
    pub(crate) async fn accept_leased(
        &self,
        source: &str,
        state: Option<SourceState>,
        candidates: Vec<Candidate>,
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        match &self.backend {
            Backend::Sled(s) => {
                let state = state.map(|st| (source.to_string(), st));
                s.accept_owned(state, candidates, now).await
            }
            Backend::Postgres(p) => {
                let written = p
                    .accept_leased(source, p.replica(), state, candidates, now)
                    .await;
                // This replica's relay at once; the others at their idle tick.
                p.outbox_signal().notify_one();
                written
            }
        }
    }
}

impl Store {
    // --- moving a store (copy.rs) ---

    /// Sends every record the store holds to `out`, in batches (`mentiondesk store copy`).
    pub(crate) async fn export(
        &self,
        out: tokio::sync::mpsc::Sender<Vec<super::copy::Record>>,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.export(out).await,
            Backend::Postgres(p) => p.export(out).await,
        }
    }

    /// Empties the store and starts writing a copy of `from` into it.
    pub(crate) async fn import_start(
        &self,
        from: &str,
    ) -> Result<super::copy::Importer, StoreError> {
        use super::copy::{ImportInto, Importer};
        Ok(Importer::new(match &self.backend {
            Backend::Sled(s) => {
                s.import_start(from).await?;
                ImportInto::Sled(s.clone())
            }
            Backend::Postgres(p) => ImportInto::Postgres(Box::new(p.import_start(from).await?)),
        }))
    }

    /// A live source lease (holder, source): a replica runs on this database. Never on sled,
    /// whose lock keeps a second process out.
    pub(crate) async fn live_lease(&self) -> Result<Option<(String, String)>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => Ok(None),
            Backend::Postgres(p) => p.live_lease().await,
        }
    }

    /// Figures that change whenever a daemon works on the store (see `copy::Fingerprint`).
    pub(crate) async fn copy_fingerprint(&self) -> Result<super::copy::Fingerprint, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.copy_fingerprint(),
            Backend::Postgres(p) => p.copy_fingerprint().await,
        }
    }

    /// Whether the store holds anything but a copy's mark.
    /// Other replicas connected to a PostgreSQL store (0 on sled, which its lock guards).
    pub(crate) async fn other_replicas_connected(&self) -> Result<i64, StoreError> {
        match &self.backend {
            Backend::Sled(_) => Ok(0),
            Backend::Postgres(p) => p.other_replicas_connected().await,
        }
    }

    pub(crate) async fn holds_data(&self) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.holds_data(),
            Backend::Postgres(p) => p.holds_data().await,
        }
    }
}

impl From<SledStore> for Store {
    fn from(s: SledStore) -> Store {
        Store {
            backend: Backend::Sled(s),
        }
    }
}
