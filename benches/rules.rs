//! Benchmarks of the compiled rule matcher against issue 3's targets: throughput on ~100-byte
//! posts with 10,000 and 100,000 mixed rules (mostly no match, and 10 % matching), compile
//! time, heap used by 100,000 compiled rules, and a bare Aho-Corasick baseline. It does not
//! assert the targets; the figures go into BENCHMARKS.md.
//!
//! Run: `cargo bench --bench rules`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mentiondesk::rules::{Document, RuleSet};

/// Counts live heap bytes so the bench can state what compiled rules occupy.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Deterministic xorshift, so every run benches the same rules and posts.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &'a [String]) -> &'a str {
        &xs[self.below(xs.len())]
    }
}

/// Everyday words that posts are made of; some also appear in rules as context terms.
const COMMON: &[&str] = &[
    "the", "a", "and", "to", "of", "in", "is", "it", "for", "on", "with", "my", "this", "that",
    "was", "just", "but", "not", "so", "have", "new", "app", "order", "service", "support",
    "today", "refund", "still", "waiting", "love", "hate", "great", "broken", "again", "why",
    "customer", "delivery", "price", "update", "account", "phone", "store", "help", "anyone",
    "know", "really", "week", "days", "after", "email", "team", "thanks", "review", "issue",
];

/// Brand-like words: rare, 5 to 9 letters.
fn brand_words(n: usize, rng: &mut Rng) -> Vec<String> {
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let len = 5 + rng.below(5);
        let w: String = (0..len).map(|_| letters[rng.below(26)] as char).collect();
        if seen.insert(w.clone()) {
            out.push(w);
        }
    }
    out
}

/// `n` rules mixing words, phrases, AND/OR/NOT, NEAR and wildcards, the first word of each
/// rule being its own brand word (returned so posts can mention it).
fn rules(n: usize, rng: &mut Rng) -> (Vec<(String, String)>, Vec<String>) {
    let brands = brand_words(n * 2, rng);
    let common: Vec<String> = COMMON.iter().map(|s| s.to_string()).collect();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let b = &brands[2 * i];
        let b2 = &brands[2 * i + 1];
        let q = match i % 10 {
            0..=3 => b.clone(),
            4 => format!("\"{b} {b2}\""),
            5 => format!("{b} AND {}", rng.pick(&common)),
            6 => format!("({b} OR {b2}) NOT {}", rng.pick(&common)),
            7 => format!("{b} NEAR/3 {}", rng.pick(&common)),
            8 => format!("{}* -{}", &b[..5], rng.pick(&common)),
            _ => format!("{b} OR \"{b2} {}\" -hiring", rng.pick(&common)),
        };
        out.push((format!("rule{i}"), q));
    }
    // The word that makes each rule's post match: the brand for most, the prefix-matching brand
    // for wildcard rules.
    let triggers = (0..n).map(|i| brands[2 * i].clone()).collect();
    (out, triggers)
}

/// `count` posts of about 100 bytes of common words; `matching_every` > 0 puts a rule's
/// trigger word into every such post (10 = 10 %).
fn posts(count: usize, triggers: &[String], matching_every: usize, rng: &mut Rng) -> Vec<String> {
    let common: Vec<String> = COMMON.iter().map(|s| s.to_string()).collect();
    (0..count)
        .map(|i| {
            let mut p = String::new();
            while p.len() < 95 {
                if !p.is_empty() {
                    p.push(' ');
                }
                p.push_str(rng.pick(&common));
            }
            if matching_every > 0 && i % matching_every == 0 {
                // A simple-word rule's brand, so the post really matches.
                let r = 10 * rng.below(triggers.len() / 10);
                p = format!("{} {p}", triggers[r]);
                p.truncate(100);
            }
            if i % 3 == 0 {
                p = p.to_uppercase();
            }
            p
        })
        .collect()
}

/// CPU time this thread has run, in nanoseconds: on a machine shared with other work, wall time
/// counts the time others hold the core, so the figures that go into BENCHMARKS.md are per
/// CPU-second.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Posts per CPU-second of `pass`, which handles `posts` posts, over at least 2 CPU-seconds.
fn per_cpu_second(posts: usize, mut pass: impl FnMut() -> usize) -> f64 {
    pass();
    let start = thread_cpu_ns();
    let mut done = 0u64;
    let mut sink = 0;
    while thread_cpu_ns() - start < 2_000_000_000 {
        sink += pass();
        done += posts as u64;
    }
    black_box(sink);
    done as f64 / ((thread_cpu_ns() - start) as f64 / 1e9)
}

fn doc(text: &str) -> Document<'_> {
    Document {
        text,
        title: None,
        author: None,
        url: None,
        source: "bench",
        source_kind: "file",
        lang: None,
    }
}

fn compile(rules: &[(String, String)]) -> RuleSet {
    RuleSet::compile(rules.iter().map(|(n, q)| (n.as_str(), q.as_str()))).expect("valid rules")
}

fn bench_matching(c: &mut Criterion) {
    for n in [10_000, 100_000] {
        let mut rng = Rng(0x5eed_0000 + n as u64);
        let (rules, triggers) = rules(n, &mut rng);
        let before = LIVE.load(Ordering::Relaxed);
        let set = compile(&rules);
        let heap = LIVE.load(Ordering::Relaxed) - before;
        eprintln!(
            "rules: {n} compiled rules use {:.1} MiB of heap; {} evaluated on every post",
            heap as f64 / (1024.0 * 1024.0),
            set.untriggered()
        );
        let mut group = c.benchmark_group(format!("match_{n}_rules"));
        group.measurement_time(Duration::from_secs(5));
        for (label, every) in [("no_match", 0), ("10pct_match", 10)] {
            let posts = posts(10_000, &triggers, every, &mut rng);
            let matched = posts
                .iter()
                .filter(|p| !set.matches(&doc(p)).is_empty())
                .count();
            eprintln!(
                "rules: {n} rules, {label}: {matched} of {} posts match, avg {} bytes",
                posts.len(),
                posts.iter().map(String::len).sum::<usize>() / posts.len()
            );
            let rate = per_cpu_second(posts.len(), || {
                posts.iter().map(|p| set.matches(&doc(p)).len()).sum()
            });
            eprintln!(
                "rules: {n} rules, {label}: {:.2} M posts per CPU-second",
                rate / 1e6
            );
            group.throughput(Throughput::Elements(posts.len() as u64));
            group.bench_function(label, |b| {
                b.iter(|| {
                    let mut hits = 0;
                    for p in &posts {
                        hits += set.matches(black_box(&doc(p))).len();
                    }
                    hits
                })
            });
        }
        group.finish();
    }
}

fn bench_compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for n in [10_000, 100_000] {
        let (rules, _) = rules(n, &mut Rng(0x5eed_0000 + n as u64));
        let start = thread_cpu_ns();
        for _ in 0..5 {
            black_box(compile(&rules));
        }
        eprintln!(
            "rules: compiling {n} rules takes {:.1} ms of CPU (mean of 5)",
            (thread_cpu_ns() - start) as f64 / 5e6
        );
        group.bench_function(format!("{n}_rules"), |b| {
            b.iter(|| compile(black_box(&rules)))
        });
    }
    group.finish();
}

/// The reference point: one DFA over 10,000 case-insensitive terms, one call per post.
fn bench_baseline(c: &mut Criterion) {
    let mut rng = Rng(0xba5e);
    let terms = brand_words(10_000, &mut rng);
    let ac = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::DFA))
        .build(&terms)
        .expect("small patterns");
    let posts = posts(10_000, &terms, 0, &mut rng);
    let rate = per_cpu_second(posts.len(), || {
        posts
            .iter()
            .map(|p| ac.find_overlapping_iter(p.as_str()).count())
            .sum()
    });
    eprintln!(
        "rules: aho-corasick DFA alone, 10000 terms, overlapping: {:.2} M posts per CPU-second",
        rate / 1e6
    );
    let mut group = c.benchmark_group("aho_corasick_alone_10000_terms");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(posts.len() as u64));
    group.bench_function("overlapping_count", |b| {
        b.iter(|| {
            posts
                .iter()
                .map(|p| ac.find_overlapping_iter(black_box(p.as_str())).count())
                .sum::<usize>()
        })
    });
    group.bench_function("is_match", |b| {
        b.iter(|| {
            posts
                .iter()
                .filter(|p| ac.is_match(black_box(p.as_str())))
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_baseline, bench_matching, bench_compile);
criterion_main!(benches);
