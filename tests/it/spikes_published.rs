//! Spikes counted by publication time, with the hours mentiondesk did not hear in full left
//! out of the baseline (issue 15 part 4): a catch-up after the daemon was down and a new
//! source's back catalogue do not spike; a real burst of new posts still does. Through the
//! spike check and the coverage record on a real store; the spike task itself is tested in
//! `src/spikes.rs`.

use chrono::{DateTime, Duration, Utc};
use mentiondesk::desk::config::DeskConfig;
use mentiondesk::model::{Mention, Priority, Target};
use mentiondesk::rules::config::RuleConfig;
use mentiondesk::sources::SourceState;
use mentiondesk::spikes::config::SpikeConfig;
use mentiondesk::spikes::coverage::{Coverage, SourceSample};
use mentiondesk::store::{Candidate, NewAlert, Store};

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn rule() -> RuleConfig {
    RuleConfig {
        name: "acme".into(),
        query: "acme".into(),
        alert: vec![Target::Slack("#pr-alerts".into())],
        priority: Priority::Normal,
    }
}

fn desk() -> DeskConfig {
    DeskConfig {
        command: "/desk".into(),
        escalate_after: std::time::Duration::from_secs(900),
        escalate_to: None,
        remind_after: None,
        allowed: vec![],
        timezone: chrono_tz::UTC,
    }
}

/// One mention of the rule from `source`, published at `published` (`None`: the source
/// gives no time), stored as the intake would when it arrives at `arrived`.
async fn hit(
    store: &Store,
    source: &str,
    id: &str,
    published: Option<DateTime<Utc>>,
    arrived: DateTime<Utc>,
) {
    let mention = Mention {
        item_id: id.into(),
        source: source.into(),
        source_kind: "rss".into(),
        url: Some(format!("https://{source}.example/{id}")),
        title: None,
        text: format!("acme post {id}"),
        author: Some(format!("author-{id}")),
        author_reach: None,
        published,
        lang: None,
        rating: None,
    };
    let c = Candidate {
        dedup_keys: vec![format!("item:{source}:{id}")],
        mention,
        alert: Some(NewAlert {
            rules: vec!["acme".into()],
            priority: Priority::Normal,
            sentiment: 0.0,
            negative: false,
            targets: vec![Target::Slack("#pr-alerts".into())],
            highlights: vec![],
            timers: vec![],
            thread_keys: vec![],
            repeat_of: None,
            log_hit: true,
            relevance: None,
            held: false,
        }),
    };
    store
        .accept(source, &SourceState::default(), &[c], arrived)
        .await
        .unwrap();
}

fn healthy(names: &[&str]) -> Vec<SourceSample> {
    names
        .iter()
        .map(|n| SourceSample {
            name: n.to_string(),
            healthy: true,
            last_success: None,
        })
        .collect()
}

/// The daemon ran from `from` to `to` with `sources` healthy (its first and last rounds of
/// the spike watch), and heard about three mentions an hour on "hn" (2, 3 or 4), each
/// arriving a few minutes after it was published.
async fn usual_run(store: &Store, from: DateTime<Utc>, to: DateTime<Utc>, sources: &[&str]) {
    Coverage::record(store, from, from, &healthy(sources))
        .await
        .unwrap();
    let mut at = from;
    let mut n = 0;
    while at < to {
        for k in 0..(2 + (at.timestamp() / 3600) % 3) {
            n += 1;
            let published = at + Duration::minutes(5 + k * 10);
            if published < to {
                let id = format!("u{}-{n}", from.timestamp());
                hit(
                    store,
                    "hn",
                    &id,
                    Some(published),
                    published + Duration::minutes(2),
                )
                .await;
            }
        }
        at += Duration::hours(1);
    }
    Coverage::record(store, from, to, &healthy(sources))
        .await
        .unwrap();
}

async fn check(store: &Store, now: DateTime<Utc>) -> Option<mentiondesk::model::Alert> {
    let cfg = SpikeConfig::default();
    mentiondesk::spikes::check(store, &cfg, &rule(), &desk(), now)
        .await
        .unwrap()
}

/// The daemon was down for 5 hours; when it comes back, the sources hand over what was
/// published meanwhile. Counted by arrival, those ~15 posts would be a spike against about
/// 3 an hour; counted when published they fall into the hours of the outage, which the
/// baseline leaves out. A burst of new posts afterwards still alerts.
#[tokio::test]
async fn a_catch_up_after_downtime_is_not_a_spike_but_a_real_burst_is() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = utc("2026-11-23T12:00:00Z");
    let down_from = now - Duration::hours(5);
    usual_run(&store, now - Duration::days(15), down_from, &["hn"]).await;
    // Back at `now`: the new run's first round, then the catch-up arrives.
    Coverage::record(&store, now, now, &healthy(&["hn"]))
        .await
        .unwrap();
    let mut n = 0;
    let mut published = down_from + Duration::minutes(7);
    while published < now {
        n += 1;
        hit(&store, "hn", &format!("c{n}"), Some(published), now).await;
        published += Duration::minutes(20);
    }
    assert_eq!(n, 15, "15 posts published while the daemon was down");
    let arrived_now = store
        .rule_hits("acme", now - Duration::hours(1), now + Duration::seconds(1))
        .await
        .unwrap()
        .len();
    assert_eq!(arrived_now, 15, "all of them arrived in the last hour");
    assert!(
        check(&store, now + Duration::minutes(1)).await.is_none(),
        "a catch-up is not a spike"
    );

    // A real burst: 25 posts published and heard in the hour after.
    let later = now + Duration::hours(1);
    for k in 0..25 {
        let at = now + Duration::minutes(10 + 2 * k);
        hit(&store, "reddit", &format!("b{k}"), Some(at), at).await;
    }
    Coverage::record(&store, now, later, &healthy(&["hn"]))
        .await
        .unwrap();
    let alert = check(&store, later).await.expect("a real burst spikes");
    let m = store.alert_mention(&alert).await.unwrap().unwrap().mention;
    assert!(
        m.text
            .starts_with("25 mentions in the last hour; usually 3 ± 1"),
        "{}",
        m.text
    );
}

/// A source added now hands over its back catalogue: 288 posts published over the last day
/// (12 an hour), all arriving now. Counted by arrival that is a spike of 288; counted when
/// published, the last hour still holds 11 of them plus the usual 3, which against a
/// baseline that never included the source (a day at 15 an hour, two weeks at 3) would look
/// like a spike too. The hours before the source was added were not heard in full, so they
/// are left out, and the rule has no usable baseline yet: nothing alerts.
#[tokio::test]
async fn a_new_sources_back_catalogue_is_not_a_spike() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = utc("2026-11-23T12:00:00Z");
    let start = now - Duration::days(15);
    usual_run(&store, start, now, &["hn"]).await;
    assert!(check(&store, now).await.is_none(), "the usual volume");

    // "forum" added at `now`: the spike watch sees it in its next round.
    Coverage::record(&store, start, now, &healthy(&["hn", "forum"]))
        .await
        .unwrap();
    for k in 0..288 {
        let published = now - Duration::minutes(5 * (k + 1));
        hit(&store, "forum", &format!("f{k}"), Some(published), now).await;
    }
    assert!(
        check(&store, now + Duration::minutes(5)).await.is_none(),
        "a back catalogue is not a spike"
    );
}

/// "hn" fails for three days and hands over nothing of them when it recovers (the quiet
/// hours are a gap in what was heard, not a quiet brand). Left in, those empty hours would
/// drag the baseline to 15 ± 8 an hour against the usual 19 ± 1, and a burst of 30 would
/// pass unseen; left out, it alerts.
#[tokio::test]
async fn a_failing_sources_empty_hours_do_not_hide_a_real_spike() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = utc("2026-11-23T12:00:00Z");
    let start = now - Duration::days(15);
    let (fail_from, fail_to) = (now - Duration::days(5), now - Duration::days(2));
    let hn = |healthy: bool, last_success: Option<DateTime<Utc>>| {
        vec![SourceSample {
            name: "hn".into(),
            healthy,
            last_success,
        }]
    };
    Coverage::record(&store, start, start, &hn(true, None))
        .await
        .unwrap();
    let mut at = start;
    let mut n = 0;
    while at < now - Duration::hours(1) {
        if at == fail_from {
            Coverage::record(&store, start, at, &hn(false, Some(fail_from)))
                .await
                .unwrap();
        }
        if at == fail_to {
            Coverage::record(&store, start, at, &hn(true, Some(fail_to)))
                .await
                .unwrap();
        }
        if at < fail_from || at >= fail_to {
            for k in 0..(18 + (at.timestamp() / 3600) % 3) {
                n += 1;
                let published = at + Duration::minutes(1 + 3 * k);
                hit(&store, "hn", &format!("v{n}"), Some(published), published).await;
            }
        }
        at += Duration::hours(1);
    }
    Coverage::record(&store, start, now, &hn(true, None))
        .await
        .unwrap();
    for k in 0..30 {
        let at = now - Duration::minutes(55) + Duration::minutes(k);
        hit(&store, "hn", &format!("b{k}"), Some(at), at).await;
    }
    let alert = check(&store, now).await.expect("a real spike");
    let m = store.alert_mention(&alert).await.unwrap().unwrap().mention;
    assert!(
        m.text
            .starts_with("30 mentions in the last hour; usually 19 ± 1"),
        "{}",
        m.text
    );
}

/// A source that gives no publication time is counted when its posts arrive, as before.
#[tokio::test]
async fn posts_without_a_publication_time_count_when_they_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = utc("2026-11-23T12:00:00Z");
    usual_run(
        &store,
        now - Duration::days(15),
        now - Duration::hours(1),
        &["hn"],
    )
    .await;
    for k in 0..30 {
        let at = now - Duration::minutes(55) + Duration::minutes(k);
        hit(&store, "hn", &format!("x{k}"), None, at).await;
    }
    // A post "published" after it arrived (a clock ahead) counts when it arrived.
    hit(
        &store,
        "hn",
        "future",
        Some(now + Duration::days(3)),
        now - Duration::minutes(1),
    )
    .await;
    let alert = check(&store, now).await.expect("a spike");
    let m = store.alert_mention(&alert).await.unwrap().unwrap().mention;
    assert!(
        m.text.starts_with("31 mentions in the last hour"),
        "{}",
        m.text
    );
}
