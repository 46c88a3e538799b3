//! The alert writes over a real throwaway PostgreSQL (skipped, with one printed line, where
//! the server binaries are missing): what the desk notices of a change, a stale change, a
//! race of two replicas, the timers and a timer round, and the label counts.

use super::alerts::{insert_alert, push_audit, set_timer};
use super::throwaway::{self, TestDatabase};
use super::PgStore;
use crate::analysis::relevance::LabelKind;
use crate::model::{Alert, AlertId, AlertState, AuditEntry, Priority, Target, TimerKind};
use crate::store::{AlertChange, ChangeOutcome, LabelWrite, OutboxAction, Timer};
use chrono::{DateTime, Duration, TimeZone, Utc};

pub(super) async fn store() -> Option<(TestDatabase, PgStore)> {
    let db = throwaway::database().await?;
    let store = PgStore::connect(&db.config()).await.unwrap();
    Some((db, store))
}

pub(super) fn t0() -> DateTime<Utc> {
    // Nanoseconds on purpose: the store must give back what it was given.
    Utc.with_ymd_and_hms(2026, 12, 1, 1, 0, 0).unwrap() + Duration::nanoseconds(123_456_789)
}

pub(super) fn alert(id: u64) -> Alert {
    Alert {
        id: AlertId(id),
        mention_key: format!("feed\u{1f}m{id}"),
        rules: vec!["acme".into()],
        priority: Priority::Normal,
        sentiment: -0.25,
        negative: true,
        targets: vec![Target::Slack("#pr".into()), Target::Slack("#leads".into())],
        state: AlertState::Open,
        created_at: t0(),
        highlights: vec![(0, 4)],
        first_claimed_at: None,
        resolved_at: None,
        human_negative: None,
        relevance: Some(0.3),
        held: false,
        promoted_at: None,
        created_audit_seq: None,
    }
}

fn entry(action: &str, from: &str, to: &str, at: DateTime<Utc>) -> AuditEntry {
    AuditEntry {
        at,
        actor: "slack:U1".into(),
        action: action.into(),
        from: from.into(),
        to: to.into(),
        detail: None,
    }
}

/// Stores `alert` as `accept` would (row, "created" audit entry, timers).
async fn seed(store: &PgStore, a: &Alert, timers: &[(TimerKind, DateTime<Utc>)]) {
    let a = a.clone();
    let timers = timers.to_vec();
    let r: Result<(), crate::store::StoreError> = async {
        super::tx::in_transaction!(store, "seeding", |tx| {
            insert_alert(&tx, &a).await?;
            push_audit(&tx, a.id, &entry("created", "-", "open", a.created_at)).await?;
            for (kind, due) in &timers {
                set_timer(&tx, a.id, *kind, *due).await?;
            }
            Ok(())
        })
    }
    .await;
    r.unwrap();
}

fn claim(a: &Alert, by: &str) -> AlertChange {
    let at = t0() + Duration::minutes(5);
    let mut alert = a.clone();
    alert.state = AlertState::Claimed { by: by.into(), at };
    alert.first_claimed_at = Some(at);
    AlertChange {
        alert,
        audit: entry("claim", "open", "claimed", at),
        outbox: vec![OutboxAction::UpdateAlert],
        extra_outbox: vec![],
        cancel_timers: vec![TimerKind::Escalate],
        set_timers: vec![(TimerKind::Remind, at + Duration::hours(4))],
        label: Some(LabelWrite {
            rules: a.rules.clone(),
            kind: LabelKind::Positive,
            by: by.into(),
            action: "claim".into(),
            features: vec![7, 9],
            at,
        }),
    }
}

async fn outbox_rows(store: &PgStore, id: AlertId) -> i64 {
    let client = store.client().await.unwrap();
    client
        .query_one(
            "SELECT count(*) FROM outbox WHERE alert_id = $1",
            &[&super::alerts::db_id(id)],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn alerts_read_back_exactly_and_count_by_the_last_id() {
    let Some((_db, store)) = store().await else {
        return;
    };
    assert_eq!(store.alert_count().await, 0);
    assert_eq!(store.alert(AlertId(1)).await.unwrap(), None);
    for id in [1, 2, 3] {
        seed(&store, &alert(id), &[]).await;
    }
    assert_eq!(store.alert(AlertId(2)).await.unwrap(), Some(alert(2)));
    assert_eq!(store.alert_count().await, 3);
    let ids: Vec<u64> = store
        .alerts()
        .await
        .unwrap()
        .iter()
        .map(|a| a.id.0)
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(store.audit_log(AlertId(3)).await.unwrap().len(), 1);
}

/// A change writes the alert, its audit entry, one outbox entry per target, its timers and
/// its label; a change from an out-of-date read is refused with the alert as it is now, and
/// writes nothing.
#[tokio::test]
async fn a_change_applies_with_everything_it_carries_and_a_stale_one_is_refused() {
    let Some((_db, store)) = store().await else {
        return;
    };
    let a = alert(1);
    seed(
        &store,
        &a,
        &[(TimerKind::Escalate, t0() + Duration::minutes(30))],
    )
    .await;
    let change = claim(&a, "slack:U1");
    let claimed = change.alert.clone();
    assert_eq!(
        store.change_alert(&a, change).await.unwrap(),
        ChangeOutcome::Applied
    );
    assert_eq!(store.alert(a.id).await.unwrap(), Some(claimed.clone()));
    let log = store.audit_log(a.id).await.unwrap();
    assert_eq!(
        log.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["created", "claim"]
    );
    assert_eq!(
        outbox_rows(&store, a.id).await,
        2,
        "one UpdateAlert per target"
    );
    assert_eq!(store.timer(a.id, TimerKind::Escalate).await.unwrap(), None);
    let remind = store.timer(a.id, TimerKind::Remind).await.unwrap().unwrap();
    assert_eq!(remind.due, t0() + Duration::minutes(5) + Duration::hours(4));

    // Someone still looking at the open alert tries to claim it too.
    let again = store.change_alert(&a, claim(&a, "slack:U2")).await.unwrap();
    assert_eq!(again, ChangeOutcome::Conflict(Box::new(claimed)));
    assert_eq!(store.audit_log(a.id).await.unwrap().len(), 2);
    assert_eq!(outbox_rows(&store, a.id).await, 2);
}

/// Two replicas take the same click at the same moment: exactly one applies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_changes_of_one_alert_apply_once() {
    let Some((_db, store)) = store().await else {
        return;
    };
    let a = alert(1);
    seed(&store, &a, &[]).await;
    for round in 0..5 {
        let current = store.alert(a.id).await.unwrap().unwrap();
        let tasks: Vec<_> = ["slack:U1", "slack:U2"]
            .into_iter()
            .map(|by| {
                let store = store.clone();
                let current = current.clone();
                let mut change = claim(&current, by);
                // Each round changes the alert again, so every round races anew.
                change.alert.sentiment = f64::from(round);
                tokio::spawn(async move { store.change_alert(&current, change).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap().unwrap());
        }
        let applied = outcomes
            .iter()
            .filter(|o| **o == ChangeOutcome::Applied)
            .count();
        assert_eq!(applied, 1, "round {round}: {outcomes:?}");
        let now = store.alert(a.id).await.unwrap().unwrap();
        assert!(
            outcomes.contains(&ChangeOutcome::Conflict(Box::new(now))),
            "the loser sees the winner's alert"
        );
    }
    assert_eq!(store.audit_log(a.id).await.unwrap().len(), 1 + 5);
    assert_eq!(outbox_rows(&store, a.id).await, 2 * 5);
}

/// The label a change gives is counted once per rule and in the global model; a stronger
/// label replaces it and takes its counts back; a weak one does not replace it.
#[tokio::test]
async fn labels_written_with_changes_keep_the_counts_in_step() {
    let Some((_db, store)) = store().await else {
        return;
    };
    let a = alert(1);
    seed(&store, &a, &[]).await;
    let change = claim(&a, "slack:U1");
    let claimed = change.alert.clone();
    store.change_alert(&a, change).await.unwrap();
    let client = store.client().await.unwrap();
    let features = |model: &'static str| {
        let client = &client;
        async move {
            client
                .query(
                    "SELECT feature, relevant, not_relevant FROM relevance_features \
                     WHERE model = $1 ORDER BY feature",
                    &[&model],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2)))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(features("acme").await, [(7, 2, 0), (9, 2, 0)]);
    assert_eq!(features("").await, [(7, 2, 0), (9, 2, 0)]);
    let generation = || {
        let client = &client;
        async move {
            client
                .query_one(
                    "SELECT next_value FROM counters WHERE name = 'label_generation'",
                    &[],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    assert_eq!(generation().await, 1, "cached counts are told they are old");

    // Ignored as not relevant: the positive label is taken back, the negative counted.
    let mut ignored = claimed.clone();
    ignored.state = AlertState::Ignored {
        by: "slack:U1".into(),
        at: t0(),
        reason: None,
    };
    let change = AlertChange {
        alert: ignored.clone(),
        audit: entry("ignore", "claimed", "ignored", t0()),
        outbox: vec![],
        extra_outbox: vec![],
        cancel_timers: vec![],
        set_timers: vec![],
        label: Some(LabelWrite {
            rules: vec!["acme".into()],
            kind: LabelKind::Negative,
            by: "slack:U1".into(),
            action: "ignore".into(),
            features: vec![9, 11],
            at: t0(),
        }),
    };
    assert_eq!(
        store.change_alert(&claimed, change).await.unwrap(),
        ChangeOutcome::Applied
    );
    assert_eq!(features("acme").await, [(9, 0, 2), (11, 0, 2)]);
    let header: serde_json::Value = client
        .query_one(
            "SELECT header FROM relevance_models WHERE model = 'acme'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let header: crate::analysis::relevance::ModelHeader = serde_json::from_value(header).unwrap();
    assert_eq!(header.docs, [0, 2]);
    assert_eq!(header.mass, [0, 4]);
    assert_eq!(header.vocab, 2);
    let kind: String = client
        .query_one(
            "SELECT kind FROM labels WHERE rule = 'acme' AND alert_id = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kind, "negative");

    // A weak negative does not replace a label a person gave.
    let mut snoozed = ignored.clone();
    snoozed.sentiment = 0.5;
    let change = AlertChange {
        alert: snoozed,
        audit: entry("expire", "ignored", "ignored", t0()),
        outbox: vec![],
        extra_outbox: vec![],
        cancel_timers: vec![],
        set_timers: vec![],
        label: Some(LabelWrite {
            rules: vec!["acme".into()],
            kind: LabelKind::WeakNegative,
            by: "system".into(),
            action: "expire".into(),
            features: vec![1],
            at: t0(),
        }),
    };
    store.change_alert(&ignored, change).await.unwrap();
    assert_eq!(features("acme").await, [(9, 0, 2), (11, 0, 2)]);
    assert_eq!(generation().await, 2, "no label changed, no bump");
}

/// Timers: due ones come soonest first to the nanosecond; a removal of a fired timer leaves
/// one that was re-armed meanwhile; a round fires only what is still as it read it.
#[tokio::test]
async fn timers_and_a_round_fire_only_what_is_unchanged() {
    let Some((_db, store)) = store().await else {
        return;
    };
    let (a, b) = (alert(1), alert(2));
    let due_a = t0() + Duration::minutes(10);
    let due_b = t0() + Duration::minutes(5);
    seed(&store, &a, &[(TimerKind::Escalate, due_a)]).await;
    seed(&store, &b, &[(TimerKind::Escalate, due_b)]).await;
    assert!(store.due_timers(t0()).await.unwrap().is_empty());
    let due = store.due_timers(due_a).await.unwrap();
    assert_eq!(
        due.iter().map(|t| t.alert_id.0).collect::<Vec<_>>(),
        [2, 1],
        "soonest first"
    );
    assert!(store
        .due_timers(due_a - Duration::nanoseconds(1))
        .await
        .unwrap()
        .iter()
        .all(|t| t.alert_id.0 == 2));
    assert_eq!(store.timers().await.unwrap().len(), 2);

    // Alert 2 is claimed and unclaimed: the alert is as it was, the timer re-armed later.
    let old_b = store
        .timer(b.id, TimerKind::Escalate)
        .await
        .unwrap()
        .unwrap();
    let rearm = AlertChange {
        alert: b.clone(),
        audit: entry("unclaim", "claimed", "open", t0()),
        outbox: vec![],
        extra_outbox: vec![],
        cancel_timers: vec![],
        set_timers: vec![(TimerKind::Escalate, due_b + Duration::hours(1))],
        label: None,
    };
    store.change_alert(&b, rearm).await.unwrap();
    let old_a = store
        .timer(a.id, TimerKind::Escalate)
        .await
        .unwrap()
        .unwrap();
    let fired = vec![
        (
            a.clone(),
            old_a.clone(),
            entry("escalated", "open", "open", due_a),
        ),
        (
            b.clone(),
            old_b.clone(),
            entry("escalated", "open", "open", due_a),
        ),
    ];
    let messages = vec![(Target::Slack("#leads".into()), OutboxAction::PostAlert)];
    assert_eq!(
        store.fire_round(&fired, &messages, due_a).await.unwrap(),
        Err(b.id)
    );
    assert_eq!(
        store.audit_log(a.id).await.unwrap().len(),
        1,
        "nothing written"
    );
    assert!(store
        .timer(a.id, TimerKind::Escalate)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        outbox_rows(&store, crate::store::alerts::ROUND_ENTRY).await,
        0
    );

    // The stale removal leaves the re-armed timer; the round without it fires.
    store.remove_timer(&old_b).await.unwrap();
    assert!(store
        .timer(b.id, TimerKind::Escalate)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store
            .fire_round(&fired[..1], &messages, due_a)
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(store.timer(a.id, TimerKind::Escalate).await.unwrap(), None);
    assert_eq!(
        store.audit_log(a.id).await.unwrap().last().unwrap().action,
        "escalated"
    );
    assert_eq!(
        outbox_rows(&store, crate::store::alerts::ROUND_ENTRY).await,
        1
    );
    let now_b = store
        .timer(b.id, TimerKind::Escalate)
        .await
        .unwrap()
        .unwrap();
    store.remove_timer(&now_b).await.unwrap();
    assert_eq!(store.timers().await.unwrap(), Vec::<Timer>::new());
}

/// Two writes that lock the same rows in opposite orders deadlock; the server aborts one,
/// and the store runs it again instead of failing the write: both complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_aborted_by_a_deadlock_is_run_again() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let Some((_db, store)) = store().await else {
        return;
    };
    store
        .client()
        .await
        .unwrap()
        .execute(
            "INSERT INTO meta (key, value) VALUES ('x', '0'), ('y', '0')",
            &[],
        )
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let runs = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = [("x", "y"), ("y", "x")]
        .into_iter()
        .map(|(first, second)| {
            let (store, barrier, runs) = (store.clone(), barrier.clone(), runs.clone());
            tokio::spawn(async move {
                let mine = AtomicU32::new(0);
                let r: Result<(), crate::store::StoreError> =
                    super::tx::in_transaction!(&store, "a test write", |tx| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let attempt = mine.fetch_add(1, Ordering::SeqCst);
                        tx.execute(
                            "UPDATE meta SET value = to_jsonb(value::text::int + 1) WHERE key = $1",
                            &[&first],
                        )
                        .await?;
                        if attempt == 0 {
                            // Both hold their first row before either asks for its second.
                            barrier.wait().await;
                        }
                        tx.execute(
                            "UPDATE meta SET value = to_jsonb(value::text::int + 1) WHERE key = $1",
                            &[&second],
                        )
                        .await?;
                        Ok(())
                    });
                r
            })
        })
        .collect();
    for t in tasks {
        t.await
            .unwrap()
            .expect("the deadlocked write was run again");
    }
    // At least one rerun (a loaded server may abort a retry once more before the other
    // commits; the retry bound still ends it). Without reruns the deadlocked write fails
    // above.
    let runs = runs.load(Ordering::SeqCst);
    assert!(runs >= 3, "{runs} runs: the deadlocked one ran again");
    let rows = store
        .client()
        .await
        .unwrap()
        .query("SELECT value::text FROM meta ORDER BY key", &[])
        .await
        .unwrap();
    let values: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(values, ["2", "2"], "each write applied once");
}

/// Two replicas (two stores on one database) fire the same due timers at the same moment:
/// for every timer exactly one round commits (its audit entry and its message are written
/// once); the other learns the alert changed and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_firing_the_same_timer_fire_it_once() {
    let Some((db, first)) = store().await else {
        return;
    };
    let second = PgStore::connect(&db.config()).await.unwrap();
    let due = t0() + Duration::minutes(15);
    for id in 1..=12u64 {
        let a = alert(id);
        seed(&first, &a, &[(TimerKind::Escalate, due)]).await;
        // Both replicas read the due timer before either fires it.
        let t1 = first
            .timer(a.id, TimerKind::Escalate)
            .await
            .unwrap()
            .unwrap();
        let t2 = second
            .timer(a.id, TimerKind::Escalate)
            .await
            .unwrap()
            .unwrap();
        let round = |t: Timer| {
            (
                vec![(a.clone(), t, entry("escalated", "open", "open", due))],
                vec![(Target::Slack("#leads".into()), OutboxAction::PostAlert)],
            )
        };
        let (f1, m1) = round(t1);
        let (f2, m2) = round(t2);
        let (r1, r2) = tokio::join!(
            first.fire_round(&f1, &m1, due),
            second.fire_round(&f2, &m2, due)
        );
        let outcomes = [r1.unwrap(), r2.unwrap()];
        assert_eq!(
            outcomes.iter().filter(|r| r.is_ok()).count(),
            1,
            "alert {id}: {outcomes:?}"
        );
        assert!(outcomes.contains(&Err(a.id)), "{outcomes:?}");
        let escalated = first
            .audit_log(a.id)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.action == "escalated")
            .count();
        assert_eq!(escalated, 1, "alert {id}");
        assert_eq!(first.timer(a.id, TimerKind::Escalate).await.unwrap(), None);
    }
    assert_eq!(
        outbox_rows(&first, crate::store::alerts::ROUND_ENTRY).await,
        12,
        "one round message per timer"
    );
}
