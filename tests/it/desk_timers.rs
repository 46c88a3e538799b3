//! Durable desk timers under paused tokio time: an unclaimed alert escalates after
//! `[desk].escalate_after`, a claim cancels that, a claimed alert reminds its owner, a
//! snooze wakes up, and timers survive a restart of the store.

use chrono::{TimeZone, Utc};
use mentiondesk::clock::Clock;
use mentiondesk::desk::config::DeskConfig;
use mentiondesk::desk::state::Action;
use mentiondesk::desk::{timers, Desk};
use mentiondesk::model::{AlertId, AlertState, Mention, Priority, Target, TimerKind};
use mentiondesk::sources::SourceState;
use mentiondesk::store::{Candidate, NewAlert, OutboxAction, Store};
use std::time::Duration;

fn desk_config() -> DeskConfig {
    DeskConfig {
        command: "/desk".into(),
        escalate_after: Duration::from_secs(15 * 60),
        escalate_to: Some(Target::Slack("#pr-leads".into())),
        remind_after: Some(Duration::from_secs(2 * 3600)),
        allowed: vec![],
        timezone: chrono_tz::UTC,
    }
}

async fn new_alert(store: &Store, id: &str, now: chrono::DateTime<Utc>, escalate_after: Duration) {
    let mention = Mention {
        item_id: id.into(),
        source: "feed".into(),
        source_kind: "rss".into(),
        url: Some(format!("https://example.com/{id}")),
        title: None,
        text: "acme broke".into(),
        author: None,
        author_reach: None,
        published: None,
        lang: None,
        rating: None,
    };
    let c = Candidate {
        dedup_keys: vec![format!("item:{id}")],
        mention,
        alert: Some(NewAlert {
            rules: vec!["acme".into()],
            priority: Priority::Normal,
            sentiment: -0.5,
            negative: true,
            targets: vec![Target::Slack("#pr-alerts".into())],
            highlights: vec![],
            timers: vec![(
                TimerKind::Escalate,
                now + chrono::Duration::from_std(escalate_after).unwrap(),
            )],
            thread_keys: vec![],
            repeat_of: None,
            log_hit: true,
            relevance: None,
            held: false,
        }),
    };
    store
        .accept("feed", &SourceState::default(), &[c], now)
        .await
        .unwrap();
}

async fn notes(store: &Store) -> Vec<(Target, String)> {
    store
        .outbox()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|(_, e)| match e.action {
            OutboxAction::ThreadNote(n) => Some((e.target, format!("thread: {}", n.plain()))),
            OutboxAction::ChannelNote(n) => Some((e.target, format!("channel: {}", n.plain()))),
            _ => None,
        })
        .collect()
}

fn start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap()
}

#[tokio::test(start_paused = true)]
async fn unclaimed_alert_escalates_once_after_the_delay() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let clock = Clock::tokio_at(start());
    new_alert(&store, "a", clock.now(), Duration::from_secs(900)).await;
    let desk = Desk::new(store.clone(), desk_config());
    let (trigger, shutdown) = mentiondesk::shutdown::channel();
    let task = tokio::spawn(timers::Timers::new(desk, store.clone(), clock).run(shutdown));

    tokio::time::sleep(Duration::from_secs(14 * 60)).await;
    assert!(notes(&store).await.is_empty(), "not yet after 14 minutes");
    tokio::time::sleep(Duration::from_secs(2 * 60)).await;
    let n = notes(&store).await;
    assert_eq!(n.len(), 1, "one round message, no thread note: {n:?}");
    assert_eq!(n[0].0, Target::Slack("#pr-leads".into()));
    assert_eq!(
        n[0].1,
        "channel: ⏰ 1 alert has been unclaimed for 15 min or more. Who can take it?\n\
         • #1 “acme broke” · Normal · rule acme · 15 min old · /desk claim 1",
        "without a posted message to link to, the command is named"
    );
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(notes(&store).await.len(), 1, "escalates once");
    trigger.trigger();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_claim_cancels_escalation_and_starts_the_reminder() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let clock = Clock::tokio_at(start());
    new_alert(&store, "a", clock.now(), Duration::from_secs(900)).await;
    let desk = Desk::new(store.clone(), desk_config());
    tokio::time::sleep(Duration::from_secs(5 * 60)).await;
    let o = desk
        .act(
            AlertId(1),
            &"slack:U1".to_string(),
            Action::Claim,
            clock.now(),
        )
        .await
        .unwrap();
    assert!(o.applied);
    let timers_now: Vec<TimerKind> = store
        .timers()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.kind)
        .collect();
    assert_eq!(
        timers_now,
        vec![TimerKind::Remind],
        "escalation cancelled by the claim"
    );

    tokio::time::sleep(Duration::from_secs(30 * 60)).await;
    assert_eq!(
        timers::fire_due(&desk, &store, &clock).await,
        0,
        "nothing due: no escalation"
    );
    tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
    assert_eq!(timers::fire_due(&desk, &store, &clock).await, 1);
    let n = notes(&store).await;
    let reminder = n
        .iter()
        .find(|(_, t)| t.contains("still unresolved"))
        .expect("reminder");
    assert!(
        reminder
            .1
            .contains("@U1, 1 alert you claimed is still unresolved"),
        "{n:?}"
    );
    assert!(reminder.1.contains("yours for 2 h"), "{n:?}");
    assert!(!n.iter().any(|(_, t)| t.contains("unclaimed")), "{n:?}");
}

#[tokio::test(start_paused = true)]
async fn timers_survive_a_restart_and_snoozes_wake_up() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::tokio_at(start());
    {
        let store = Store::open(dir.path()).unwrap();
        new_alert(&store, "a", clock.now(), Duration::from_secs(900)).await;
        new_alert(&store, "b", clock.now(), Duration::from_secs(900)).await;
        let desk = Desk::new(store.clone(), desk_config());
        let until = clock.now() + chrono::Duration::hours(1);
        desk.act(
            AlertId(2),
            &"slack:U1".to_string(),
            Action::Snooze { until },
            clock.now(),
        )
        .await
        .unwrap();
        store.flush().await.unwrap();
    } // the process "stops" here

    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    let store = Store::open(dir.path()).unwrap();
    let desk = Desk::new(store.clone(), desk_config());
    assert_eq!(
        timers::fire_due(&desk, &store, &clock).await,
        2,
        "escalation of #1 and wake of #2"
    );
    assert_eq!(
        store.alert(AlertId(2)).await.unwrap().unwrap().state,
        AlertState::Open,
        "snooze over"
    );
    let n = notes(&store).await;
    assert!(
        n.iter()
            .any(|(_, t)| t.contains("#1 “acme broke” · Normal · rule acme · 3 h old")),
        "{n:?}"
    );
    assert!(
        n.iter().any(|(_, t)| t.contains("The snooze is over")),
        "{n:?}"
    );
    // The woken alert is open again, so its escalation clock restarted.
    let kinds: Vec<(AlertId, TimerKind)> = store
        .timers()
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.alert_id, t.kind))
        .collect();
    assert_eq!(kinds, vec![(AlertId(2), TimerKind::Escalate)]);
}
