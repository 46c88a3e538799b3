//! Accepting mentions over a real throwaway PostgreSQL (skipped, with one printed line, where
//! the server binaries are missing): what a poll stores, dedup, repeats threading into their
//! alert, stale decisions refused without a trace (and without a gap in alert ids), and two
//! replicas accepting the same mention at once.

use super::tests_alerts::{store, t0};
use crate::model::{AlertId, Note, SourceState, TimerKind};
use crate::store::test_util::candidate;
use crate::store::{OutboxAction, Repeat, RepeatOf, StoreError, ThreadKey, ThreadMark};
use chrono::Duration;

fn state(cursor: &str) -> SourceState {
    SourceState {
        cursor: Some(cursor.into()),
        ..SourceState::default()
    }
}

async fn count(store: &super::PgStore, sql: &str) -> i64 {
    store
        .client()
        .await
        .unwrap()
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

/// A poll's batch: new mentions are stored (a known one, or one repeated within the batch,
/// is dropped), a matching one opens alert 1 with one root-message entry per target, its
/// "created" audit entry, its timers, its rule hit, and the source's state is kept.
#[tokio::test]
async fn a_batch_stores_mentions_alerts_their_work_and_the_source_state() {
    let Some((_db, store)) = store().await else {
        return;
    };
    let now = t0();
    let mut m1 = candidate("m1", true);
    m1.alert.as_mut().unwrap().timers = vec![(TimerKind::Escalate, now + Duration::hours(1))];
    let batch = vec![m1.clone(), candidate("m2", false), candidate("m1", true)];
    let accepted = store
        .accept("feed", &state("c1"), &batch, now)
        .await
        .unwrap();
    assert_eq!(accepted.new_mentions, 2);
    assert_eq!(accepted.alerts.len(), 1);
    let alert = &accepted.alerts[0];
    assert_eq!(alert.id, AlertId(1));
    assert_eq!(store.alert(AlertId(1)).await.unwrap().as_ref(), Some(alert));
    assert_eq!(store.alert_count().await, 1);
    let outbox = store.outbox().await.unwrap();
    assert_eq!(outbox.len(), 2);
    assert!(outbox
        .iter()
        .all(|(_, e)| e.action == OutboxAction::PostAlert));
    assert_eq!(
        store.audit_log(AlertId(1)).await.unwrap()[0].action,
        "created"
    );
    assert_eq!(store.timers().await.unwrap().len(), 1);
    assert_eq!(
        count(&store, "SELECT count(*) FROM rule_log WHERE rule = 'acme'").await,
        1
    );
    let kept: serde_json::Value = store
        .client()
        .await
        .unwrap()
        .query_one("SELECT state FROM source_state WHERE name = 'feed'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        serde_json::from_value::<SourceState>(kept).unwrap(),
        state("c1")
    );

    let key = m1.mention.key();
    let stored = store.mention(&key).await.unwrap().unwrap();
    assert_eq!(stored.mention, m1.mention);
    assert!(store.is_seen(&m1.dedup_keys[1]).await.unwrap());
    assert!(!store
        .is_seen("url:https://example.com/other")
        .await
        .unwrap());
    assert_eq!(store.mention_count().await, 2);
    let recent = store.recent_mentions(10).await.unwrap();
    assert_eq!(
        recent
            .iter()
            .map(|m| m.mention.item_id.as_str())
            .collect::<Vec<_>>(),
        ["m2", "m1"],
        "newest first"
    );
    assert_eq!(store.recent_mentions(1).await.unwrap().len(), 1);

    // The next poll sees them again: nothing new, no alert, the state still moves on.
    let again = store
        .accept("feed", &state("c2"), &batch, now)
        .await
        .unwrap();
    assert_eq!((again.new_mentions, again.alerts.len()), (0, 0));
    assert_eq!(store.outbox().await.unwrap().len(), 2);
    assert_eq!(store.mention_count().await, 2);
}

/// A repeat goes into its alert's thread (one note per target) and opens no alert; a thread
/// key claimed by someone else since intake read it makes the whole batch stale, and so does
/// a repeat of an alert its batch did not create: nothing of such a batch is written and the
/// next alerts are numbered on without a gap.
#[tokio::test]
async fn repeats_thread_stale_batches_leave_nothing_and_ids_have_no_gaps() {
    let Some((_db, store)) = store().await else {
        return;
    };
    let now = t0();
    let mut first = candidate("m1", true);
    first.alert.as_mut().unwrap().thread_keys = vec![ThreadKey {
        key: "author:rss:ann".into(),
        read: None,
    }];
    let accepted = store
        .accept("feed", &state("c1"), std::slice::from_ref(&first), now)
        .await
        .unwrap();
    assert_eq!(accepted.alerts[0].id, AlertId(1));
    let mark = store.thread_mark("author:rss:ann").await.unwrap().unwrap();
    assert_eq!(mark.alert, AlertId(1));

    // Intake decided from an old read (no mark): stale, nothing written.
    let mut late = candidate("m2", true);
    late.alert.as_mut().unwrap().thread_keys = vec![ThreadKey {
        key: "author:rss:ann".into(),
        read: None,
    }];
    let err = store
        .accept("feed", &state("c2"), std::slice::from_ref(&late), now)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Stale { .. }), "{err}");
    // A repeat of a batch's candidate that turns out known (m1): stale as well.
    let mut repeat = candidate("m3", true);
    repeat.alert.as_mut().unwrap().repeat_of = Some(Repeat {
        of: RepeatOf::Earlier(0),
        note: Note::default().text("again"),
    });
    let err = store
        .accept("feed", &state("c2"), &[first.clone(), repeat], now)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Stale { .. }), "{err}");
    assert!(!store.is_seen(&late.dedup_keys[0]).await.unwrap());
    assert_eq!(store.mention_count().await, 1);
    assert_eq!(store.outbox().await.unwrap().len(), 2);
    assert_eq!(store.alert_count().await, 1);

    // Decided anew from the current read: m2 repeats alert 1 into its thread.
    late.alert.as_mut().unwrap().thread_keys[0].read = Some(mark);
    late.alert.as_mut().unwrap().repeat_of = Some(Repeat {
        of: RepeatOf::Stored {
            alert: AlertId(1),
            targets: first.alert.as_ref().unwrap().targets.clone(),
        },
        note: Note::default().text("again"),
    });
    let accepted = store
        .accept("feed", &state("c2"), &[late], now)
        .await
        .unwrap();
    assert_eq!(accepted.threaded, [AlertId(1)]);
    assert!(accepted.alerts.is_empty());
    let notes = store
        .outbox()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, e)| {
            matches!(e.action, OutboxAction::ThreadNote(_)) && e.alert_id == AlertId(1)
        })
        .count();
    assert_eq!(notes, 2);

    let next = store
        .accept(
            "feed",
            &state("c3"),
            &[candidate("m4", true), candidate("m5", true)],
            now,
        )
        .await
        .unwrap();
    let ids: Vec<u64> = next.alerts.iter().map(|a| a.id.0).collect();
    assert_eq!(ids, [2, 3], "no id lost to the stale batches");
    let all: Vec<u64> = store
        .alerts()
        .await
        .unwrap()
        .iter()
        .map(|a| a.id.0)
        .collect();
    assert_eq!(all, [1, 2, 3]);
    assert_eq!(
        store.thread_mark("nobody").await.unwrap(),
        None::<ThreadMark>
    );
}

/// Two replicas poll the same feed and accept the same mention at the same moment: it opens
/// one alert, and the ids of the other mentions follow without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_accepting_the_same_mention_open_one_alert() {
    let Some((_db, store)) = store().await else {
        return;
    };
    let now = t0();
    for round in 0..10 {
        let batch = vec![candidate(&format!("same{round}"), true)];
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let store = store.clone();
                let batch = batch.clone();
                tokio::spawn(async move { store.accept("feed", &state("c"), &batch, now).await })
            })
            .collect();
        let mut opened = 0;
        for t in tasks {
            opened += t.await.unwrap().unwrap().alerts.len();
        }
        assert_eq!(opened, 1, "round {round}");
    }
    let ids: Vec<u64> = store
        .alerts()
        .await
        .unwrap()
        .iter()
        .map(|a| a.id.0)
        .collect();
    assert_eq!(ids, (1..=10).collect::<Vec<_>>());
    assert_eq!(store.outbox().await.unwrap().len(), 20);

    // Mentions that match nothing take no lock but their dedup keys: still stored once.
    for round in 0..10 {
        let batch = vec![candidate(&format!("quiet{round}"), false)];
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let store = store.clone();
                let batch = batch.clone();
                tokio::spawn(async move { store.accept("feed", &state("c"), &batch, now).await })
            })
            .collect();
        let mut new = 0;
        for t in tasks {
            new += t.await.unwrap().unwrap().new_mentions;
        }
        assert_eq!(new, 1, "round {round}");
    }
    assert_eq!(store.mention_count().await, 20);
}

/// A generated (spike) alert and its cooldown mark are written together; the mark is written
/// even when the candidate turns out known. `accept_owned` without a source keeps no state.
#[tokio::test]
async fn generated_alerts_keep_their_mark_and_owned_batches_their_source() {
    let Some((_db, store)) = store().await else {
        return;
    };
    let now = t0();
    let spike = candidate("spike:acme:1", true);
    let a = store
        .accept_generated_marked(
            std::slice::from_ref(&spike),
            now,
            "spike:acme",
            &"2026-12-01T01",
            None,
        )
        .await
        .unwrap();
    assert_eq!(a.alerts.len(), 1);
    let a = store
        .accept_generated_marked(&[spike], now, "spike:acme", &"2026-12-01T02", None)
        .await
        .unwrap();
    assert_eq!(a.alerts.len(), 0);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM meta WHERE key = 'spike:acme' AND value = '\"2026-12-01T02\"'"
        )
        .await,
        1
    );
    let owned = store
        .accept_owned(None, vec![candidate("o1", false)], now)
        .await
        .unwrap();
    assert_eq!(owned.new_mentions, 1);
    assert_eq!(count(&store, "SELECT count(*) FROM source_state").await, 0);
    store
        .accept_owned(Some(("feed".into(), state("x"))), vec![], now)
        .await
        .unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM source_state").await, 1);
}

/// The retention drops the bodies of old mentions that opened no alert, in chunks, and
/// forgets their place in the log; their dedup keys stay (they are never alerted again) and
/// alerted mentions keep their body.
#[tokio::test]
async fn the_retention_drops_old_unalerted_bodies_in_chunks_and_keeps_their_keys() {
    let Some((_db, store)) = store().await else {
        return;
    };
    let store = store.with_keep_mentions(std::time::Duration::from_secs(24 * 3600));
    let old = t0();
    let batch = vec![
        candidate("m1", true),
        candidate("m2", false),
        candidate("m3", false),
    ];
    store
        .accept("feed", &state("c1"), &batch, old)
        .await
        .unwrap();
    let recent = old + Duration::days(2);
    store
        .accept("feed", &state("c2"), &[candidate("m4", false)], recent)
        .await
        .unwrap();
    let mut prune = crate::store::MentionPrune::new(recent + Duration::hours(1));
    loop {
        let (p, done) = store.prune_mentions_chunk(prune, 1).await;
        prune = p;
        if done.unwrap() {
            break;
        }
        assert!(prune.calls < 10, "the walk ends");
    }
    assert_eq!(prune.dropped, 2);
    assert!(prune.calls > 2, "one entry per chunk: {}", prune.calls);
    let body = |id: &str| batch_key(id);
    assert!(
        store.mention(&body("m1")).await.unwrap().is_some(),
        "alerted"
    );
    assert!(store.mention(&body("m2")).await.unwrap().is_none());
    assert!(store.mention(&body("m3")).await.unwrap().is_none());
    assert!(
        store.mention(&body("m4")).await.unwrap().is_some(),
        "recent"
    );
    assert_eq!(store.mention_count().await, 1);
    let again = store
        .accept("feed", &state("c3"), &[candidate("m2", true)], recent)
        .await
        .unwrap();
    assert_eq!(
        (again.new_mentions, again.alerts.len()),
        (0, 0),
        "still seen"
    );
}

fn batch_key(id: &str) -> String {
    candidate(id, false).mention.key()
}
