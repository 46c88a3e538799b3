//! Per-post cost of the text analysis a matched mention gets (issue 14, goal 3: ≤ 5 µs per post
//! on one core; issue 15 allows ≤ 20 µs for the model): sentiment and negativity as the intake
//! runs them (`analysis::negativity::assess`, the trained model), and VADER's compound
//! (`analysis::sentiment::score`, still printed by `match` as `vader`). For comparison, the
//! `vader-parity` crate alone, which scored every post before.
//!
//! Posts: one per line from the file named by `MENTIONDESK_BENCH_POSTS` (e.g. the TweetEval
//! tweets `scripts/bench_match.sh` fetches), else the committed parity texts
//! (`tests/data/vader_parity_texts.txt`). Figures are per CPU-second of the bench thread
//! (`/proc/thread-self/schedstat`), because the machine's cores are shared.
//!
//! Run: `cargo bench --bench analysis` (or with `MENTIONDESK_BENCH_POSTS=/path/posts.txt`).

use mentiondesk::analysis::{negativity, sentiment};
use std::hint::black_box;
use vader_parity::SentimentIntensityAnalyzer;

/// One way of scoring a post, returning a number so the work cannot be optimised away.
type Scorer<'a> = dyn Fn(&str) -> f64 + 'a;

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU nanoseconds per post of `pass` over `posts`, over at least 3 CPU-seconds.
fn ns_per_post(posts: &[String], mut pass: impl FnMut(&str) -> f64) -> f64 {
    let mut sink = 0.0;
    for p in posts {
        sink += pass(p);
    }
    let start = thread_cpu_ns();
    let mut done = 0u64;
    while thread_cpu_ns() - start < 3_000_000_000 {
        for p in posts {
            sink += pass(p);
        }
        done += posts.len() as u64;
    }
    black_box(sink);
    (thread_cpu_ns() - start) as f64 / done as f64
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let (source, text) = match std::env::var("MENTIONDESK_BENCH_POSTS") {
        Ok(path) => {
            let text = std::fs::read_to_string(&path).expect("MENTIONDESK_BENCH_POSTS readable");
            (path, text)
        }
        Err(_) => (
            "tests/data/vader_parity_texts.txt".to_string(),
            include_str!("../tests/data/vader_parity_texts.txt").to_string(),
        ),
    };
    let posts: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let bytes = posts.iter().map(String::len).sum::<usize>() as f64 / posts.len() as f64;
    let non_ascii = posts.iter().filter(|p| !p.is_ascii()).count();
    println!(
        "analysis: {} posts from {source}, {bytes:.0} bytes on average, {:.0} % with non-ASCII characters",
        posts.len(),
        100.0 * non_ascii as f64 / posts.len() as f64
    );
    let reference = SentimentIntensityAnalyzer::new();
    let differ = posts
        .iter()
        .filter(|p| sentiment::score(p).score != reference.polarity_scores(p).compound)
        .count();
    println!("analysis: sentiment differs from vader-parity on {differ} posts");
    let rows: [(&str, &Scorer); 3] = [
        (
            "negativity::assess (the trained model, what intake runs)",
            &|p| negativity::assess(p).score,
        ),
        ("sentiment::score (VADER compound)", &|p| {
            sentiment::score(p).score
        }),
        ("vader-parity crate alone (before)", &|p| {
            reference.polarity_scores(p).compound
        }),
    ];
    for (name, f) in rows {
        let ns = ns_per_post(&posts, f);
        println!(
            "analysis: {name}: {:.2} µs per post, {:.0} posts per CPU-second",
            ns / 1e3,
            1e9 / ns
        );
    }
}
