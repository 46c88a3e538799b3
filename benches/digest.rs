//! Digest and spike costs: rendering the PNG chart, gathering a daily digest's figures from a
//! store holding 10,000 alerts, and one rule's spike check over 14 days of history.
//! Run: `cargo bench --bench digest`.

use chrono::{DateTime, Duration, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use mentiondesk::desk::config::DeskConfig;
use mentiondesk::digest::chart::{render_png, Bucket, ChartSpec};
use mentiondesk::digest::report::{self, Period};
use mentiondesk::model::{Mention, Priority, Target};
use mentiondesk::rules::config::RuleConfig;
use mentiondesk::sources::SourceState;
use mentiondesk::spikes::config::SpikeConfig;
use mentiondesk::store::{Candidate, NewAlert, Store};
use std::hint::black_box;

fn hourly() -> Vec<Bucket> {
    (0..24u32)
        .map(|h| Bucket {
            label: format!("{h:02}:00"),
            negative: h % 5,
            neutral: 10 + h,
            positive: 20 - h / 2,
        })
        .collect()
}

fn candidate(i: usize) -> Candidate {
    let mention = Mention {
        item_id: format!("m{i}"),
        source: ["hn", "reddit", "rss"][i % 3].into(),
        source_kind: "rss".into(),
        url: Some(format!("https://example.com/{i}")),
        title: None,
        text: format!("acme post number {i} about the router and support"),
        author: Some(format!("user{}", i % 500)),
        author_reach: None,
        published: None,
        lang: None,
        rating: None,
    };
    Candidate {
        dedup_keys: vec![format!("item:{i}")],
        mention,
        alert: Some(NewAlert {
            rules: vec!["acme".into()],
            priority: Priority::ALL[i % 4],
            sentiment: (i % 7) as f64 / 3.0 - 1.0,
            negative: i.is_multiple_of(3),
            targets: vec![Target::Slack("#pr-alerts".into())],
            highlights: vec![],
            timers: vec![],
            thread_keys: vec![],
            repeat_of: None,
            log_hit: true,
            relevance: None,
            held: false,
        }),
    }
}

/// `n` alerts spread evenly over the 14 days before `now`, stored in batches of 100.
fn store_with(
    n: usize,
    now: DateTime<Utc>,
    rt: &tokio::runtime::Runtime,
) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let span = Duration::days(14).num_seconds();
    rt.block_on(async {
        for batch in (0..n).collect::<Vec<_>>().chunks(100) {
            let at = now - Duration::seconds(span - span * batch[0] as i64 / n as i64);
            let cs: Vec<Candidate> = batch.iter().map(|&i| candidate(i)).collect();
            store
                .accept("bench", &SourceState::default(), &cs, at)
                .await
                .unwrap();
        }
    });
    (dir, store)
}

fn bench(c: &mut Criterion) {
    let buckets = hourly();
    c.bench_function("chart/render_png 24 hourly buckets", |b| {
        b.iter(|| {
            render_png(black_box(&ChartSpec {
                title: "Mentions per hour, last 24 hours",
                buckets: &buckets,
            }))
            .unwrap()
        })
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = DateTime::parse_from_rfc3339("2026-11-23T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let (_dir, store) = store_with(10_000, now, &rt);
    let rules = vec!["acme".to_string()];
    c.bench_function("digest/gather daily digest, 10k alerts in store", |b| {
        b.iter(|| {
            rt.block_on(report::gather(
                &store,
                &rules,
                Period {
                    from: now - Duration::hours(24),
                    to: now,
                },
                chrono_tz::Europe::Berlin,
                now,
            ))
            .unwrap()
        })
    });

    let rule = RuleConfig {
        name: "acme".into(),
        query: "acme".into(),
        alert: vec![Target::Slack("#pr-alerts".into())],
        priority: Priority::Normal,
    };
    let desk = DeskConfig {
        command: "/desk".into(),
        escalate_after: std::time::Duration::from_secs(900),
        escalate_to: None,
        remind_after: None,
        allowed: vec![],
        timezone: chrono_tz::UTC,
    };
    let cfg = SpikeConfig {
        min_count: 1,
        sigma: 1000.0,
        ..SpikeConfig::default()
    };
    c.bench_function("spikes/check one rule, 14 days of 10k mentions", |b| {
        b.iter(|| {
            rt.block_on(mentiondesk::spikes::check(&store, &cfg, &rule, &desk, now))
                .unwrap()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
