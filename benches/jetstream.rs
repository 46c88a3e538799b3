//! Jetstream decode + reject throughput: how many firehose events one core can take through
//! `bluesky::decode_event` (prefilter, then JSON for the few candidates). The mix is 1 % posts
//! that mention the brand, 2 % that name it only in the DID or rkey (decoded, then rejected),
//! 7 % deletes and identity events, 90 % unrelated posts of realistic length.
//! Run: `cargo bench --bench jetstream`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mentiondesk::sources::bluesky::{decode_event, Decoded};
use mentiondesk::sources::prefilter::Prefilter;
use std::hint::black_box;

fn post(did: &str, rkey: &str, time_us: i64, text: &str) -> String {
    serde_json::json!({
        "did": did, "time_us": time_us, "kind": "commit",
        "commit": {"rev": "3l3qo2vuowo2b", "operation": "create",
            "collection": "app.bsky.feed.post", "rkey": rkey,
            "record": {"$type": "app.bsky.feed.post", "createdAt": "2024-09-09T19:46:02.102Z",
                "langs": ["en"], "text": text,
                "reply": {"parent": {"cid": "bafyreib2rxk3rh6kzwq", "uri": "at://did:plc:abc/app.bsky.feed.post/3l3qo2"},
                          "root": {"cid": "bafyreib2rxk3rh6kzwq", "uri": "at://did:plc:abc/app.bsky.feed.post/3l3qo2"}}},
            "cid": "bafyreidwaivazkwu67xztlmuobx35hs2lnfh3kolmgfmucldvhd3sgzcqi"}
    })
    .to_string()
}

fn events() -> Vec<String> {
    let words = [
        "just", "had", "the", "best", "coffee", "morning", "anyone", "else", "watching", "game",
        "tonight", "really", "love", "this", "new", "album", "thread", "about", "weather",
    ];
    (0..10_000i64)
        .map(|i| {
            let did = format!("did:plc:{:024x}", i * 7919);
            let rkey = format!("3l3q{:09}", i);
            let t = 1_725_911_162_000_000 + i;
            let text: Vec<&str> = (0..(20 + i % 25)).map(|j| words[((i + j) % 19) as usize]).collect();
            let text = text.join(" ");
            match i % 100 {
                0 => post(&did, &rkey, t, &format!("{text} and my Acme router died")),
                1 | 2 => post(&format!("did:plc:acme{i:020}"), &rkey, t, &text),
                3..=6 => format!(r#"{{"did":"{did}","time_us":{t},"kind":"commit","commit":{{"rev":"3l3qo","operation":"delete","collection":"app.bsky.feed.post","rkey":"{rkey}"}}}}"#),
                7..=9 => format!(r#"{{"did":"{did}","time_us":{t},"kind":"identity","identity":{{"did":"{did}","handle":"someone.bsky.social","seq":1409752997,"time":"2024-09-05T06:11:04.870Z"}}}}"#),
                _ => post(&did, &rkey, t, &text),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let events = events();
    let bytes: usize = events.iter().map(String::len).sum();
    let prefilter = Prefilter::from_query(r#"(acme OR "acme corp") AND NOT hiring"#).unwrap();
    let kept = events
        .iter()
        .filter(|e| matches!(decode_event(e, &prefilter, "b"), Decoded::Post { .. }))
        .count();
    assert_eq!(kept, 100, "1 % of the events mention the brand");
    eprintln!(
        "{} events, {} bytes on average",
        events.len(),
        bytes / events.len()
    );
    let mut group = c.benchmark_group("jetstream");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("decode_and_reject_10k_events", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for e in &events {
                if let Decoded::Post { .. } = decode_event(black_box(e), &prefilter, "b") {
                    n += 1;
                }
            }
            n
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
