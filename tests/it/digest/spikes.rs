//! Spike detection: one alert on a real spike, none on noise or before a baseline.

use super::*;

fn spike_config() -> SpikeConfig {
    SpikeConfig {
        min_count: 10,
        ..SpikeConfig::default()
    }
}

fn rule() -> RuleConfig {
    RuleConfig {
        name: "acme".into(),
        query: "acme".into(),
        alert: vec![Target::Slack("#pr-alerts".into())],
        priority: Priority::Normal,
    }
}

/// 14 days of about three mentions an hour (2, 3 or 4), ending at `now - 1h`.
async fn usual_volume(store: &Store, now: DateTime<Utc>) {
    let mut n = 0;
    for hour in (1..=14 * 24).rev() {
        let start = now - CDuration::hours(hour + 1);
        for k in 0..(2 + hour % 3) {
            n += 1;
            let at = start + CDuration::minutes(5 + k * 10);
            let id = format!("u{n}");
            hit(
                store,
                &id,
                "acme",
                "hn",
                "acme works fine",
                0.0,
                false,
                Priority::Normal,
                at,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn spikes_alert_once_on_a_real_spike_and_never_on_noise() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = utc("2026-11-23T12:00:00Z");
    usual_volume(&store, now).await;
    let cfg = spike_config();
    let checked = mentiondesk::spikes::check(&store, &cfg, &rule(), &desk_config(), now)
        .await
        .unwrap();
    assert!(checked.is_none(), "the usual volume is not a spike");

    // 42 mentions in the last hour, most about an outage on reddit.
    for k in 0..42 {
        let source = if k < 30 { "reddit" } else { "hn" };
        let at = now - CDuration::minutes(50) + CDuration::seconds(k * 60);
        let text = if k % 2 == 0 {
            "acme login outage"
        } else {
            "acme outage again"
        };
        hit(
            &store,
            &format!("s{k}"),
            "acme",
            source,
            text,
            -0.5,
            true,
            Priority::Normal,
            at,
        )
        .await;
    }
    let later = now + CDuration::minutes(2);
    let alert = mentiondesk::spikes::check(&store, &cfg, &rule(), &desk_config(), later)
        .await
        .unwrap()
        .expect("a spike");
    let m = store.alert_mention(&alert).await.unwrap().unwrap().mention;
    assert!(
        m.text.starts_with(
            "42 mentions in the last hour; usually 3 ± 1 (mean ± σ per hour over the last 14 days)"
        ),
        "{}",
        m.text
    );
    assert!(
        m.text.contains("Top sources: reddit 30, hn 12"),
        "{}",
        m.text
    );
    assert!(m.text.contains("Top terms: outage 42"), "{}", m.text);
    assert_eq!(
        alert.priority,
        Priority::High,
        "a spike is one level above its rule"
    );
    assert!(alert.negative);
    assert_eq!(alert.state, AlertState::Open);
    // It is an alert like any other: posted, escalated, claimable.
    let outbox = store.outbox().await.unwrap();
    assert!(outbox
        .iter()
        .any(|(_, e)| e.alert_id == alert.id && e.action == OutboxAction::PostAlert));
    assert!(store
        .timers()
        .await
        .unwrap()
        .iter()
        .any(|t| t.alert_id == alert.id && t.kind == TimerKind::Escalate));
    let desk = Desk::new(store.clone(), desk_config());
    desk.act(alert.id, &"slack:U1".into(), Action::Claim, later)
        .await
        .unwrap();
    assert_eq!(
        store.alert(alert.id).await.unwrap().unwrap().state.name(),
        "claimed"
    );
    // The spike alert does not count as a mention of its own rule.
    assert_eq!(
        store
            .rule_hits(
                "acme",
                now - CDuration::hours(1),
                later + CDuration::seconds(1)
            )
            .await
            .unwrap()
            .len(),
        42
    );

    // Within the cooldown (6 h by default), the same spike does not alert again.
    for m in [5, 30, 120] {
        let again = mentiondesk::spikes::check(
            &store,
            &cfg,
            &rule(),
            &desk_config(),
            later + CDuration::minutes(m),
        )
        .await
        .unwrap();
        assert!(again.is_none(), "cooldown at +{m} min");
    }
    // The spike shows in the digest of the period.
    let r = report::gather(
        &store,
        &["acme".into()],
        Period {
            from: later - CDuration::hours(24),
            to: later + CDuration::minutes(1),
        },
        chrono_tz::UTC,
        later,
    )
    .await
    .unwrap();
    assert_eq!(r.spikes.len(), 1);
    assert!(
        r.top.iter().all(|i| i.id != alert.id),
        "spikes are listed on their own"
    );
}

#[tokio::test]
async fn a_new_rule_does_not_spike_before_it_has_a_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = utc("2026-11-23T12:00:00Z");
    for k in 0..50 {
        let at = now - CDuration::minutes(50) + CDuration::minutes(k);
        hit(
            &store,
            &format!("n{k}"),
            "acme",
            "hn",
            "acme launch",
            0.3,
            false,
            Priority::Normal,
            at,
        )
        .await;
    }
    let got = mentiondesk::spikes::check(&store, &spike_config(), &rule(), &desk_config(), now)
        .await
        .unwrap();
    assert!(
        got.is_none(),
        "no history yet: the first busy hour is not a spike"
    );
}
