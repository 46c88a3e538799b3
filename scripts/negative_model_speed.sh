#!/usr/bin/env bash
# CPU time per post of the trained negative model (src/analysis/model.rs, both heads, as
# `negativity::assess` calls it) and of the whole analysis a matched post gets in the daemon
# (`lang::detect` for a post without a language tag, then `negativity::assess`; priority is
# two comparisons), on many DISTINCT real posts, so that the model's weight lookups miss the
# cache as they do in the daemon (repeating a handful of posts keeps their weights cached and
# measures less than half the real cost).
#
# Builds a throwaway cargo project in a temporary directory that includes src/analysis/model.rs,
# negativity.rs and lang.rs by path (release profile, no need to build the whole crate), reads
# the posts (one per line), and for each of RUNS runs scores every post PASSES times, in file
# order, timing the thread's CPU time (/proc/thread-self/schedstat: what one dedicated core
# does, whatever else the machine runs; it may count in 4 ms ticks, hence several passes per
# run). Prints each run, the median and the fastest, and the load average.
#
#   scripts/negative_model_speed.sh POSTS.txt [RUNS] [PASSES]    (default 7 runs of 10 passes)
#
# POSTS.txt: e.g. the 18,403 TweetEval tweets `scripts/bench_match.sh` uses (not committed:
# TweetEval's terms are the original tasks' and Twitter's). To make it, bring
# github.com/cardiffnlp/tweeteval (commit 4fbd22c) with the `fetch` tool or git, and
#   cat datasets/sentiment/test_text.txt datasets/emotion/train_text.txt \
#       datasets/irony/train_text.txt > /tmp/tweets_bench.txt
# SPEED_TARGET_DIR: keep the build between runs (default: a fresh temporary directory).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 POSTS.txt [RUNS] [PASSES]" >&2; exit 2; }
posts="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
runs="${2:-7}"
passes="${3:-10}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/src"
whatlang=$(grep -A1 '^name = "whatlang"' "$root/Cargo.lock" | sed -n 's/^version = "\(.*\)"/\1/p')
cat > "$dir/Cargo.toml" <<EOF
[package]
name = "negative-model-speed"
version = "0.0.0"
edition = "2021"

[dependencies]
serde = { version = "1", features = ["derive"] }
serde_json = "1"
thiserror = "2"
whatlang = "=$whatlang"

[profile.release]
debug = false
EOF
cat > "$dir/src/main.rs" <<EOF
#[allow(dead_code)]
mod analysis {
    #[path = "$root/src/analysis/lang.rs"]
    pub mod lang;
    #[path = "$root/src/analysis/model.rs"]
    pub mod model;
    #[path = "$root/src/analysis/negativity.rs"]
    pub mod negativity;
}

use analysis::{lang, model::NegativeModel, negativity};
use std::hint::black_box;

/// CPU time of this thread in nanoseconds.
fn cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse().unwrap()
}

/// CPU nanoseconds per post of \`passes\` passes of \`f\` over \`posts\`, for each of \`runs\` runs.
fn per_post(posts: &[String], runs: usize, passes: usize, mut f: impl FnMut(&str) -> f64) -> Vec<f64> {
    let mut sink = 0.0;
    (0..runs)
        .map(|_| {
            let start = cpu_ns();
            for _ in 0..passes {
                for p in posts {
                    sink += f(black_box(p));
                }
            }
            let ns = (cpu_ns() - start) as f64 / (passes * posts.len()) as f64;
            black_box(sink);
            ns
        })
        .collect()
}

fn report(name: &str, mut ns: Vec<f64>) {
    let runs: Vec<String> = ns.iter().map(|n| format!("{:.2}", n / 1e3)).collect();
    ns.sort_by(f64::total_cmp);
    let median = ns[ns.len() / 2];
    println!(
        "{name}: median {:.2} µs CPU per post ({:.0} posts per CPU-second), fastest run {:.2} µs; runs: {} µs",
        median / 1e3,
        1e9 / median,
        ns[0] / 1e3,
        runs.join(" ")
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap();
    let runs: usize = args.next().unwrap().parse().unwrap();
    let passes: usize = args.next().unwrap().parse().unwrap();
    let posts: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let bytes = posts.iter().map(String::len).sum::<usize>() as f64 / posts.len() as f64;
    let model = NegativeModel::embedded();
    let features: usize = posts.iter().map(|p| model.feature_count(p)).sum();
    println!(
        "{} distinct posts from {path}, {bytes:.0} bytes and {:.0} model features on average; {runs} runs, each scores every post {passes} times",
        posts.len(),
        features as f64 / posts.len() as f64,
    );
    // One pass first, so no run pays for loading the model or first page faults.
    per_post(&posts, 1, 1, |p| f64::from(model.scores(p).negative));
    report(
        "model alone (NegativeModel::scores, both heads)",
        per_post(&posts, runs, passes, |p| {
            let s = model.scores(p);
            f64::from(s.negative + s.positive)
        }),
    );
    let mut english = 0usize;
    for p in &posts {
        english += usize::from(lang::is_scored(lang::detect(None, p)));
    }
    report(
        "lang::detect alone (no language tag)",
        per_post(&posts, runs, passes, |p| lang::detect(None, p).map_or(0.0, |l| l.len() as f64)),
    );
    report(
        &format!(
            "per matched post as the daemon runs it, no language tag (lang::detect, then negativity::assess for the {:.0} % scored)",
            100.0 * english as f64 / posts.len() as f64
        ),
        per_post(&posts, runs, passes, |p| {
            let lang = lang::detect(None, p);
            if lang::is_scored(lang) {
                negativity::assess(&negativity::analysed_text(None, p)).score
            } else {
                0.0
            }
        }),
    );
    println!("load average while running: {}", std::fs::read_to_string("/proc/loadavg").unwrap().trim());
}
EOF
cargo run --quiet --release --manifest-path "$dir/Cargo.toml" --target-dir "${SPEED_TARGET_DIR:-$dir/target}" -- "$posts" "$runs" "$passes"
