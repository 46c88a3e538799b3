//! The outbox over a real throwaway PostgreSQL (skipped, with one printed line, where the
//! server binaries are missing): an entry's life from queueing to delivery, parking and
//! retries, and a digest queued with its slot.

use super::tests_alerts::{store, t0};
use crate::model::{AlertId, DigestPost, MessageRef, Note, Scope, Target};
use crate::store::{OutboxAction, Parked, StoreError};
use chrono::Duration;

fn digest() -> DigestPost {
    DigestPost {
        title: "Daily digest".into(),
        body: Note::default().text("3 mentions"),
        chart: Some(vec![0x89, b'P', b'N', b'G']),
        chart_alt: "a chart".into(),
    }
}

fn targets() -> Vec<Target> {
    vec![Target::Slack("#pr".into()), Target::Discord("123".into())]
}

/// A digest and its slot are written together; the entries come back in creation order, are
/// marked in flight (attempts counted, the first `in_flight_since` kept), completed (the
/// reference kept, the entry gone) or finished, once each.
#[tokio::test]
async fn outbox_entries_are_marked_completed_and_finished_once() {
    let Some((_db, store)) = store().await else {
        return;
    };
    let now = t0();
    store
        .enqueue_digest(
            Some(("digest:daily", &"2026-12-01".to_string())),
            &targets(),
            &digest(),
            now,
        )
        .await
        .unwrap();
    let slot: serde_json::Value = store
        .client()
        .await
        .unwrap()
        .query_one("SELECT value FROM meta WHERE key = 'digest:daily'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(slot, serde_json::json!("2026-12-01"));
    let outbox = store.outbox().await.unwrap();
    assert_eq!(outbox.len(), 2);
    assert!(outbox[0].0 < outbox[1].0, "creation order");
    assert_eq!(outbox[0].1.target, targets()[0]);
    assert_eq!(outbox[1].1.target, targets()[1]);
    assert_eq!(
        outbox[0].1.action,
        OutboxAction::Digest(Box::new(digest())),
        "the whole post, chart included"
    );
    assert_eq!(outbox[0].1.created_at, now);
    let summary = store.outbox_summary().await.unwrap();
    assert_eq!(summary.pending, 2);
    assert_eq!(summary.oldest, Some(now));
    assert!(summary.parked.is_empty());

    let (first, second) = (outbox[0].0, outbox[1].0);
    // A post starts only under this replica's claim.
    assert!(matches!(
        store.mark_in_flight(first, now).await,
        Err(StoreError::ClaimLost { .. })
    ));
    store.claim(first, now).await.unwrap().expect("claimed");
    let marked = store.mark_in_flight(first, now).await.unwrap();
    assert_eq!((marked.attempts, marked.in_flight_since), (1, Some(now)));
    let later = now + Duration::seconds(30);
    let marked = store.mark_in_flight(first, later).await.unwrap();
    assert_eq!((marked.attempts, marked.in_flight_since), (2, Some(now)));
    assert_eq!(store.outbox().await.unwrap()[0].1, marked, "kept");

    let msg = MessageRef {
        target: targets()[0].clone(),
        channel_id: "C1".into(),
        message_id: "1700000000.000100".into(),
        permalink: Some("https://example.slack.com/p1".into()),
    };
    store.complete(first, &marked, &msg).await.unwrap();
    assert_eq!(
        store.message_ref(AlertId(0), &targets()[0]).await.unwrap(),
        Some(msg.clone())
    );
    assert_eq!(
        store.message_ref(AlertId(0), &targets()[1]).await.unwrap(),
        None
    );
    assert_eq!(store.message_refs(AlertId(0)).await.unwrap(), vec![msg]);
    assert!(
        store.mark_in_flight(first, later).await.is_err(),
        "a delivered entry is gone"
    );

    store.finish(second).await.unwrap();
    store.finish(second).await.unwrap();
    assert!(store.outbox().await.unwrap().is_empty());
    let summary = store.outbox_summary().await.unwrap();
    assert_eq!((summary.pending, summary.oldest), (0, None));

    // Without a slot, only the entries.
    store
        .enqueue_digest::<String>(None, &targets()[..1], &digest(), now)
        .await
        .unwrap();
    assert_eq!(store.outbox().await.unwrap().len(), 1);
}

/// Failures wait for `not_before`; a refusal parks the entry (shown in the summary, its first
/// `since` kept while the reason stands); `retry_now` makes the chosen waiting entries due
/// and leaves the parking; `defer` counts no attempt.
#[tokio::test]
async fn failures_wait_parked_entries_show_and_retry_now_makes_them_due() {
    let Some((_db, store)) = store().await else {
        return;
    };
    let now = t0();
    store
        .enqueue_digest::<String>(None, &targets(), &digest(), now)
        .await
        .unwrap();
    let keys: Vec<_> = store
        .outbox()
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let retry_at = now + Duration::minutes(1);
    store
        .record_failure(keys[0], 3, "http 500", retry_at)
        .await
        .unwrap();
    let parked = Parked {
        reason: "missing_access".into(),
        fix: "invite the bot".into(),
        scope: Scope::Target,
        since: now,
    };
    store
        .park(keys[1], 1, "missing_access", &parked, Some(retry_at))
        .await
        .unwrap();
    let mut again = parked.clone();
    again.since = now + Duration::hours(1);
    store
        .park(keys[1], 2, "missing_access", &again, Some(retry_at))
        .await
        .unwrap();
    let outbox = store.outbox().await.unwrap();
    assert_eq!(outbox[0].1.attempts, 3);
    assert_eq!(outbox[0].1.last_error.as_deref(), Some("http 500"));
    assert_eq!(outbox[0].1.not_before, Some(retry_at));
    assert_eq!(outbox[1].1.attempts, 2);
    assert_eq!(outbox[1].1.parked, Some(parked.clone()), "first since kept");
    let summary = store.outbox_summary().await.unwrap();
    assert_eq!(summary.pending, 2);
    assert_eq!(summary.parked.len(), 1);
    assert_eq!(summary.parked[0].target, targets()[1]);

    // Only Discord's cause is gone.
    let n = store
        .retry_now(|e| matches!(e.target, Target::Discord(_)))
        .await
        .unwrap();
    assert_eq!(n, 1);
    let outbox = store.outbox().await.unwrap();
    assert_eq!(outbox[0].1.not_before, Some(retry_at));
    assert_eq!(outbox[1].1.not_before, None);
    assert_eq!(outbox[1].1.parked, Some(parked), "parked until delivered");
    assert_eq!(store.retry_now(|_| true).await.unwrap(), 1);
    assert_eq!(store.retry_now(|_| true).await.unwrap(), 0);

    store.defer(keys[0], retry_at).await.unwrap();
    let outbox = store.outbox().await.unwrap();
    assert_eq!(
        (outbox[0].1.attempts, outbox[0].1.not_before),
        (3, Some(retry_at))
    );
    store.finish(keys[0]).await.unwrap();
    assert!(store.defer(keys[0], retry_at).await.is_err(), "gone");
}

/// Two replicas (two stores on one database) reach the same digest slot at once: for every
/// slot exactly one queues the digest (one entry per target); the other learns it was sent
/// and queues nothing. An older slot than the one recorded is never queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_at_the_same_digest_slot_queue_it_once() {
    let Some((db, first)) = store().await else {
        return;
    };
    let second = super::PgStore::connect(&db.config()).await.unwrap();
    let now = t0();
    let (targets, digest) = (targets(), digest());
    for hour in 0..10 {
        let slot = now + Duration::hours(hour);
        let key = "digest_slot:daily";
        let (a, b) = tokio::join!(
            first.enqueue_digest(Some((key, &slot)), &targets, &digest, now),
            second.enqueue_digest(Some((key, &slot)), &targets, &digest, now)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a != b, "slot {hour}: exactly one queued it ({a}, {b})");
        let entries = first.outbox().await.unwrap().len() as i64;
        assert_eq!(entries, 2 * (hour + 1), "slot {hour}");
    }
    let older = now + Duration::hours(3);
    let queued = second
        .enqueue_digest(Some(("digest_slot:daily", &older)), &targets, &digest, now)
        .await
        .unwrap();
    assert!(!queued);
    assert_eq!(first.outbox().await.unwrap().len(), 20);
}
