//! Outbox claims and the outbox listener over a real throwaway PostgreSQL (skipped, with one
//! printed line, where the server binaries are missing). Several `PgStore`s on one database,
//! each with its own `[store] replica` name, stand in for replicas.

use super::alerts::push_outbox;
use super::tests_alerts::t0;
use super::throwaway::{self, TestDatabase};
use super::tx::{in_transaction, TxError};
use super::{PgStore, MIN_CLAIM};
use crate::model::{AlertId, DigestPost, Note, Target};
use crate::store::{OutboxAction, OutboxKey, StoreError};
use chrono::Duration;
use std::collections::BTreeSet;
use std::time::Duration as StdDuration;

/// Two replicas, `a` and `b`, on one fresh database.
async fn replicas() -> Option<(TestDatabase, PgStore, PgStore)> {
    let db = throwaway::database().await?;
    let mut config = db.config();
    config.replica = "a".into();
    let a = PgStore::connect(&config).await.unwrap();
    config.replica = "b".into();
    let b = PgStore::connect(&config).await.unwrap();
    Some((db, a, b))
}

fn digest() -> DigestPost {
    DigestPost {
        title: "Daily digest".into(),
        body: Note::default().text("3 mentions"),
        chart: None,
        chart_alt: String::new(),
    }
}

/// Queues `entries` (alert, target, action) in one transaction, in order.
async fn queue(store: &PgStore, entries: &[(u64, Target, OutboxAction)]) {
    let entries = entries.to_vec();
    let write = || async {
        in_transaction!(store, "queueing test entries", |tx| {
            for (alert, target, action) in &entries {
                push_outbox(&tx, AlertId(*alert), target, action.clone(), t0()).await?;
            }
            Ok::<(), TxError>(())
        })
    };
    let r: Result<(), StoreError> = write().await;
    r.unwrap();
}

/// Queues one digest to `#pr` (an entry of no alert) and returns its key.
async fn one_digest(store: &PgStore) -> OutboxKey {
    queue(
        store,
        &[(
            0,
            Target::Slack("#pr".into()),
            OutboxAction::Digest(Box::new(digest())),
        )],
    )
    .await;
    keys(store).await[0]
}

async fn keys(store: &PgStore) -> Vec<OutboxKey> {
    store
        .outbox()
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// Makes every claim on the outbox lapse, as if its replica stopped renewing it a claim period
/// ago (the test does not wait the period out).
async fn lapse_claims(store: &PgStore) {
    store
        .client()
        .await
        .unwrap()
        .execute(
            "UPDATE outbox SET claimed_until = clock_timestamp() - interval '1 second' \
             WHERE claimed_by IS NOT NULL",
            &[],
        )
        .await
        .unwrap();
}

/// A live claim is skipped by another replica; the holder may renew it; once it lapses
/// another replica takes it over (and says from whom), and then the first replica can no
/// longer mark it in flight. Recording a failure releases the claim.
#[tokio::test]
async fn a_live_claim_is_skipped_and_a_lapsed_one_is_taken_over() {
    let Some((_db, a, b)) = replicas().await else {
        return;
    };
    assert!(a.claim_period() >= MIN_CLAIM, "never shorter than a call");
    let key = one_digest(&a).await;
    let now = t0();

    let claimed = a.claim(key, now).await.unwrap().expect("free: a claims it");
    assert!(claimed.claimed);
    assert_eq!(claimed.taken_over_from, None);
    assert!(
        b.claim(key, now).await.unwrap().is_none(),
        "a's claim is live"
    );
    assert!(
        a.claim(key, now).await.unwrap().is_some(),
        "a renews its own"
    );
    a.mark_in_flight(key, now).await.unwrap();

    lapse_claims(&a).await;
    let taken = b.claim(key, now).await.unwrap().expect("a's claim lapsed");
    assert_eq!(taken.taken_over_from.as_deref(), Some("a"));
    assert_eq!(
        taken.entry.in_flight_since,
        Some(now),
        "b sees that a may have posted it, so it looks before posting"
    );
    let lost = a.mark_in_flight(key, now).await.unwrap_err();
    assert!(
        matches!(&lost, StoreError::ClaimLost { owner, .. } if owner == "b"),
        "{lost}"
    );
    assert!(
        a.claim(key, now).await.unwrap().is_none(),
        "b's claim is live"
    );

    b.record_failure(key, 2, "http 500", now).await.unwrap();
    let again = a.claim(key, now).await.unwrap().expect("b released it");
    assert_eq!(
        again.taken_over_from, None,
        "a released claim is no takeover"
    );
    assert_eq!(again.entry.attempts, 2);
}

/// An entry is claimable only when due: `not_before` in the future keeps it.
#[tokio::test]
async fn an_entry_is_claimed_only_when_due() {
    let Some((_db, a, _b)) = replicas().await else {
        return;
    };
    let key = one_digest(&a).await;
    let later = t0() + Duration::minutes(5);
    a.defer(key, later).await.unwrap();
    assert!(a.claim(key, t0()).await.unwrap().is_none());
    assert!(a.claim(key, later).await.unwrap().is_some());
}

/// Two replicas racing over the same outbox claim each entry exactly once between them.
#[tokio::test]
async fn two_replicas_racing_claim_each_entry_once() {
    let Some((_db, a, b)) = replicas().await else {
        return;
    };
    let entries: Vec<_> = (0..100)
        .map(|i| {
            let target = Target::Slack(format!("#c{}", i % 7));
            (0, target, OutboxAction::Digest(Box::new(digest())))
        })
        .collect();
    queue(&a, &entries).await;
    let all: BTreeSet<OutboxKey> = keys(&a).await.into_iter().collect();
    assert_eq!(all.len(), 100);
    // Each replica reads the whole outbox and claims what it can, as the relay does.
    let run = |store: PgStore| async move {
        let mut mine = Vec::new();
        for key in keys(&store).await {
            if store.claim(key, t0()).await.unwrap().is_some() {
                mine.push(key);
                tokio::task::yield_now().await;
            }
        }
        mine
    };
    let (ta, tb) = (tokio::spawn(run(a.clone())), tokio::spawn(run(b.clone())));
    let (ma, mb) = (ta.await.unwrap(), tb.await.unwrap());
    let (sa, sb): (BTreeSet<_>, BTreeSet<_>) =
        (ma.iter().copied().collect(), mb.iter().copied().collect());
    assert!(sa.is_disjoint(&sb), "no entry claimed by both");
    assert_eq!(ma.len() + mb.len(), 100, "every entry claimed once");
    assert_eq!(sa.union(&sb).copied().collect::<BTreeSet<_>>(), all);
}

/// An alert's later entry to a target is not claimable, by any replica, while an earlier entry
/// of that alert to that target is still in the outbox; other targets, other alerts and
/// entries of no alert (digests) do not wait.
#[tokio::test]
async fn an_alerts_later_entries_wait_for_its_earlier_ones_across_replicas() {
    let Some((_db, a, b)) = replicas().await else {
        return;
    };
    let (pr, leads) = (Target::Slack("#pr".into()), Target::Slack("#leads".into()));
    let note = || OutboxAction::ThreadNote(Note::default().text("claimed by @ann"));
    let digest = || OutboxAction::Digest(Box::new(digest()));
    queue(
        &a,
        &[
            (7, pr.clone(), OutboxAction::PostAlert),
            (7, pr.clone(), OutboxAction::UpdateAlert),
            (7, leads.clone(), OutboxAction::PostAlert),
            (8, pr.clone(), OutboxAction::PostAlert),
            (7, pr.clone(), note()),
            (0, pr.clone(), digest()),
            (0, pr.clone(), digest()),
        ],
    )
    .await;
    let k = keys(&a).await;
    let now = t0();
    assert!(a.claim(k[0], now).await.unwrap().is_some(), "7's post");
    for later in [k[1], k[4]] {
        assert!(
            b.claim(later, now).await.unwrap().is_none(),
            "behind 7's post"
        );
        assert!(
            a.claim(later, now).await.unwrap().is_none(),
            "for its holder too"
        );
    }
    assert!(
        b.claim(k[2], now).await.unwrap().is_some(),
        "another target"
    );
    assert!(b.claim(k[3], now).await.unwrap().is_some(), "another alert");
    assert!(
        b.claim(k[6], now).await.unwrap().is_some(),
        "digests have no order"
    );

    a.finish(k[0]).await.unwrap();
    assert!(
        b.claim(k[4], now).await.unwrap().is_none(),
        "behind 7's edit"
    );
    assert!(
        b.claim(k[1], now).await.unwrap().is_some(),
        "the post is done"
    );
    b.finish(k[1]).await.unwrap();
    assert!(
        a.claim(k[4], now).await.unwrap().is_some(),
        "the edit is done"
    );
}

/// An outbox entry written through one replica's store rings another replica's outbox signal
/// (the trigger's NOTIFY, heard on that store's own connection): nothing else rings it here.
#[tokio::test]
async fn an_entry_written_by_one_replica_wakes_anothers_relay() {
    let Some((_db, a, b)) = replicas().await else {
        return;
    };
    let signal = b.outbox_signal();
    a.enqueue_digest::<String>(None, &[Target::Slack("#pr".into())], &digest(), t0())
        .await
        .unwrap();
    tokio::time::timeout(StdDuration::from_secs(60), signal.notified())
        .await
        .expect("b's relay is woken by a's entry");
}

/// A replica whose process ends (its connections closed, as when it is killed) frees its
/// claims at once: another replica takes its in-flight entry over without waiting for the
/// claim period, and sees that it may already be on the platform.
#[tokio::test]
async fn a_dead_replicas_claims_are_taken_over_at_once() {
    let Some((db, dead, b)) = replicas().await else {
        return;
    };
    let key = one_digest(&dead).await;
    dead.claim(key, t0()).await.unwrap().expect("free");
    dead.mark_in_flight(key, t0()).await.unwrap();
    assert!(
        b.claim(key, t0()).await.unwrap().is_none(),
        "alive: skipped"
    );

    drop(dead);
    // The server notices the closed session soon; never the claim period (45 s or more).
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(20);
    let taken = loop {
        if let Some(c) = b.claim(key, t0()).await.unwrap() {
            break c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead replica's claim is still held"
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    };
    assert_eq!(
        taken.taken_over_from.as_deref(),
        Some("a"),
        "the dead one is a"
    );
    assert!(taken.entry.in_flight_since.is_some());
    let claimed_until: Option<chrono::DateTime<chrono::Utc>> = b
        .client()
        .await
        .unwrap()
        .query_one("SELECT claimed_until FROM outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert!(claimed_until.is_some());
    let _ = db;
}

/// A parked entry (its content refused, retried daily) does not hold the alert's later
/// entries to its channel: they are delivered as on sled, not stuck behind it for good.
#[tokio::test]
async fn a_parked_entry_does_not_hold_its_alerts_later_ones() {
    let Some((_db, a, b)) = replicas().await else {
        return;
    };
    let pr = Target::Slack("#pr".into());
    let note = OutboxAction::ThreadNote(Note::default().text("a note Slack refuses"));
    queue(
        &a,
        &[
            (9, pr.clone(), note),
            (9, pr.clone(), OutboxAction::UpdateAlert),
        ],
    )
    .await;
    let k = keys(&a).await;
    let now = t0();
    assert!(
        b.claim(k[1], now).await.unwrap().is_none(),
        "behind the note"
    );
    assert!(a.claim(k[0], now).await.unwrap().is_some());
    let parked = crate::store::Parked {
        reason: "msg_too_long".into(),
        fix: "shorten it".into(),
        scope: crate::model::Scope::Message,
        since: now,
    };
    a.park(k[0], 1, "refused", &parked, Some(now + Duration::days(1)))
        .await
        .unwrap();
    assert!(
        b.claim(k[1], now).await.unwrap().is_some(),
        "the edit goes although the note waits a day"
    );
}
