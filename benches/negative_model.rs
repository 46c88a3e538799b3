//! Time per post of the trained negative model (`analysis::model`, issue 15): scoring posts of
//! about 60 and about 380 bytes with the embedded model, both heads (load excluded), and
//! `negativity::assess`, what the intake runs per matched post. The figures go into
//! BENCHMARKS.md ("Negative model"); the bench asserts nothing.
//!
//! Run: `cargo bench --bench negative_model`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mentiondesk::analysis::{model::NegativeModel, negativity};

const SHORT: &[&str] = &[
    "@AcmeHelp my order is three weeks late and nobody answers my emails",
    "Does anyone know if the Acme X2 works with 5 GHz networks?",
    "Love the new Acme app update, the dark mode is great 👍",
    "Acme charged me twice this month, still waiting for the refund",
    "Just unboxed my Acme X2. Setup took five minutes, works fine",
    "why does the Acme app log me out every single time?! fix it",
    "Acme support was quick and friendly today, thanks @AcmeHelp",
    "The Acme store in Leeds is closed again, third time this week",
];

const LONG: &str = "I have been an Acme customer for six years and this is the first time I have \
    had to write publicly: my X2 stopped charging after the last firmware update, the chat \
    support closed my ticket twice without an answer, and the replacement I was promised has \
    not shipped. Please sort this out @AcmeHelp https://example.com/ticket/123";

fn bench(c: &mut Criterion) {
    let model = NegativeModel::embedded();
    let short_bytes: usize = SHORT.iter().map(|t| t.len()).sum();
    let mut g = c.benchmark_group("negative_model");
    g.throughput(Throughput::Elements(SHORT.len() as u64));
    g.bench_function(
        format!(
            "score {} posts of ~{} bytes",
            SHORT.len(),
            short_bytes / SHORT.len()
        ),
        |b| {
            b.iter(|| {
                for t in SHORT {
                    black_box(model.scores(black_box(t)));
                }
            })
        },
    );
    g.bench_function("negativity::assess, the same posts", |b| {
        b.iter(|| {
            for t in SHORT {
                black_box(negativity::assess(black_box(t)));
            }
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("score 1 post of {} bytes", LONG.len()), |b| {
        b.iter(|| black_box(model.scores(black_box(LONG))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
